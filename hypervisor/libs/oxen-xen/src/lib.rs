//! Event channels and grant tables: Xen's per-domain state machines.
//!
//! This crate holds the *bookkeeping* of two Xen facilities, written to
//! Xen's rules and errno semantics, and nothing that touches memory or
//! registers:
//!
//! * [`evtchn`]: the 2-level event channel ABI. A [`evtchn::DomainEvtchn`]
//!   is one domain's port table; the pending/mask bitmaps and per-vCPU
//!   selectors live in guest memory and are reached through the
//!   [`evtchn::GuestEventBits`] trait, which the hypervisor implements with
//!   atomics over the guest's `shared_info`/`vcpu_info` pages (and tests
//!   with [`evtchn::EventBitsModel`]).
//! * [`grant`]: grant table v1. A [`grant::GrantTable`] is one domain's
//!   table: its frame count and where its frames are mapped (granting
//!   side), the active (pinned) grants other domains hold on it, and the
//!   handles of the grants *it* has mapped (mapping side). The granting
//!   domain's entries are reached through [`grant::GrantEntries`].
//! * [`hcall`]: the argument rules of the smaller hypercalls (feature
//!   bits, `vcpu_info` placement, HVM param and platform-op checks,
//!   reservation windows and batch continuations) as pure functions, plus
//!   the few ABI structs `xen-abi` lacks (`sched_poll`, `xenpf_settime64`).
//!
//! # Locking
//!
//! Each domain's tables are plain `&mut` data: the hypervisor keeps them
//! behind one lock per domain (per facility). Operations that involve two
//! domains (interdomain bind/close, grant map/unmap) take the second
//! domain as a [`Peer`]: `Peer::Same` when both ends are the same domain
//! (loopback), `Peer::Other(&mut table)` otherwise. The caller must hold
//! both domains' locks, taken **in ascending domid order** (Xen's rule), so
//! two CPUs binding `d1↔d2` in opposite directions cannot deadlock. The
//! caller learns which peer to lock from the local table first
//! (`peer_domain`, `mapping`) and passes it in; a wrong peer is answered
//! with a `PeerMismatch` error rather than acted on, so a race between the
//! look-up and the lock only costs a retry. `EVTCHNOP_send`, the hot path,
//! needs only one lock at a time: [`evtchn::DomainEvtchn::send`] names the
//! target and the caller delivers it under the target's lock.
//!
//! Nothing here trusts guest input: every port, reference, handle, index
//! and vCPU number is range-checked, nothing panics, and every allocation
//! is bounded by a limit the hypervisor chose at domain creation.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod evtchn;
#[cfg(test)]
mod fuzz;
pub mod grant;
pub mod hcall;

/// The other domain of a two-domain operation.
///
/// `Same` means the remote end is the calling domain itself (loopback
/// channels, mapping one's own grants); the operation then works on the
/// local table only.
pub enum Peer<'a, T> {
    /// The remote end is the local domain.
    Same,
    /// The remote domain's table (its lock held by the caller).
    Other(&'a mut T),
}
