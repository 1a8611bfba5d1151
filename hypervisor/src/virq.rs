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
    // The line follows evtchn_upcall_pending (re-evaluated at every guest
    // entry); the extra edge covers a guest that configured it edge-triggered.
    crate::vgic::raise_line_and_edge(dom, EVTCHN_UPCALL_INTID, vcpu);
}

/// Console input arrived: Dom0 gets VIRQ_CONSOLE.
pub fn console_input() {
    if let Some(d0) = crate::domain::get(oxen_types::DomId::DOM0) {
        crate::xen::raise_virq(&d0, xen_abi::event_channel::VIRQ_CONSOLE);
    }
}
