//! Xen guest-ABI state of a domain and the hypercalls built on it:
//! memory_op (shared_info and grant-table frames, reservations), vcpu_op
//! (vcpu_info and runstate registration), event_channel_op, grant_table_op,
//! hvm_op, vm_assist, platform_op and physdev_op.
//!
//! The state machines themselves live in the host-tested `oxen-xen` crate;
//! this module maps them onto guest memory and the scheduler.

extern crate alloc;

use alloc::sync::Arc;

use xen_abi::Errno;

use crate::arch::head::TrapFrame;
use crate::domain::Domain;

/// Per-domain Xen ABI state (shared_info, vcpu_info, event channels, grants).
pub struct DomainXen {}

impl DomainXen {
    /// State of a new domain with `nr_vcpus` vCPUs.
    pub fn new(_nr_vcpus: usize) -> Self {
        Self {}
    }
}

/// Handle hypercall `nr` if it belongs here; `None` means "not mine".
pub fn dispatch(_nr: u64, _dom: &Arc<Domain>, _vcpu: usize, _frame: &mut TrapFrame) -> Option<Result<i64, Errno>> {
    None
}
