//! The CPU identification registers guests read (`HCR_EL2.TID3` traps
//! them): the boot CPU's values with the features oxen does not virtualise
//! hidden, as Xen 4.17 does (`oxen_trap::idreg` decides which).

extern crate alloc;

use oxen_trap::idreg::GuestIdRegs;

use crate::arch::cpuid;

static GUEST: spin::Once<GuestIdRegs> = spin::Once::new();

/// The guest view, computed from this CPU's registers on first use.
pub fn guest() -> &'static GuestIdRegs {
    GUEST.call_once(|| GuestIdRegs::from_host(cpuid::host_id_reg))
}

/// Compute the guest view on the boot CPU (before any guest runs) and say
/// which of the host's features guests do not see.
pub fn init() {
    let mut hidden = alloc::string::String::new();
    for f in guest().hidden() {
        if !hidden.is_empty() {
            hidden.push_str(", ");
        }
        hidden.push_str(f.name());
    }
    if !hidden.is_empty() {
        log::info!("CPU features hidden from guests (as on Xen 4.17): {hidden}");
    }
}
