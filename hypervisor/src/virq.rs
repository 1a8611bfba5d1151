//! Interrupts delivered to guests: the seam between the Xen ABI code (event
//! channels) and the virtual GIC.

extern crate alloc;

use alloc::sync::Arc;

use crate::domain::Domain;

/// The event-channel upcall PPI (INTID) oxen gives every domain, as Xen does
/// for DomUs (`GUEST_EVTCHN_PPI`).
pub const EVTCHN_UPCALL_INTID: u32 = 31;

/// Raise the event-channel upcall interrupt on vCPU `vcpu` of `dom`
/// (level: it stays pending until the guest clears evtchn_upcall_pending).
pub fn raise_upcall(dom: &Arc<Domain>, vcpu: usize) {
    log::trace!("{}v{vcpu}: upcall (no vGIC yet)", dom.id);
}
