//! `evtchn-ping`: measures event-channel round trips inside Dom0 over `/dev/xen/evtchn`.
//!
//! Two handles of the device form a loopback interdomain channel (Dom0 to itself, the same
//! kind of channel the Dom0 kernel uses to talk to a local xenstored) and bounce an event
//! back and forth. It checks, end to end, that the hypervisor implements
//! `EVTCHNOP_alloc_unbound`, `bind_interdomain`, `send`, `unmask` and `close` and delivers
//! the upcall, and reports the round-trip latency.
//!
//! The logic ([`pingpong`]) is generic over [`device::EvtchnDevice`], so it is tested on the
//! host with a fake device; only [`linux`] talks to the kernel.

#![deny(unsafe_code)]

pub mod abi;
pub mod cli;
pub mod device;
#[cfg(target_os = "linux")]
pub mod linux;
pub mod pingpong;

#[cfg(test)]
mod fake;
