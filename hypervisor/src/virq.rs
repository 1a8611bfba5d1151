//! Interrupts delivered to guests: the seam between the Xen ABI code (event
//! channels) and the virtual GIC.

extern crate alloc;

use alloc::sync::Arc;

use crate::domain::Domain;

/// The event-channel upcall PPI (INTID) oxen gives every domain, as Xen does
/// for DomUs (`GUEST_EVTCHN_PPI`).
pub const EVTCHN_UPCALL_INTID: u32 = 31;

/// Raise the event-channel upcall interrupt on vCPU `vcpu` of `dom` and
/// wake the vCPU if it is blocked.
pub fn raise_upcall(dom: &Arc<Domain>, vcpu: usize) {
    // Called on the 0 -> 1 change of the vCPU's evtchn_upcall_pending, as
    // Xen injects it: one edge (the PPI is forced edge-like, see
    // `vgic::new_model`); the guest's handler loops until the flag stays
    // clear, so an event arriving while it runs is not lost.
    crate::vgic::raise_private(dom, EVTCHN_UPCALL_INTID, vcpu);
}

/// Console input arrived: Dom0 gets VIRQ_CONSOLE.
pub fn console_input() {
    if let Some(d0) = crate::domain::get(oxen_types::DomId::DOM0) {
        crate::xen::raise_virq(&d0, xen_abi::event_channel::VIRQ_CONSOLE);
    }
}
