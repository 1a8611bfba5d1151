//! Dom0 access to the hypervisor: the roles of libxencall, libxenctrl,
//! libxenforeignmemory and libxenevtchn, over Linux's `/dev/xen/*` devices
//! (interface: `docs/toolstack.md`).
//!
//! - [`abi`]: ioctl numbers and argument layouts (host-tested).
//! - [`conring`]: reading the hypervisor's console ring whole (`xl dmesg`; host-tested).
//! - [`error`]: [`Error`], one-line messages naming the operation and errno.
//! - [`domain`]: [`DomainInfo`] decoded from getdomaininfo.
//! - Linux only: [`Xc`] (hypercalls, domctl/sysctl and typed helpers),
//!   [`HypercallBuf`], [`ForeignMap`], [`Evtchn`], [`XenbusBackend`]; all
//!   `unsafe` is in the private `sys` module (the crate denies it
//!   elsewhere; the one `unsafe fn`, [`Xc::hypercall`], only declares the
//!   raw call's contract).
#![deny(unsafe_code)]

pub mod abi;
pub mod conring;
pub mod domain;
pub mod error;

#[cfg(target_os = "linux")]
pub mod evtchn;
#[cfg(target_os = "linux")]
pub mod foreign;
#[cfg(target_os = "linux")]
pub mod hcall;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
pub mod xc;
#[cfg(target_os = "linux")]
pub mod xenbus;

pub use domain::DomainInfo;
pub use error::{Error, Result};
#[cfg(target_os = "linux")]
pub use evtchn::Evtchn;
#[cfg(target_os = "linux")]
pub use foreign::ForeignMap;
#[cfg(target_os = "linux")]
pub use hcall::HypercallBuf;
#[cfg(target_os = "linux")]
pub use xc::{CompileInfo, CpupoolInfo, Xc};
pub use xen_abi;
#[cfg(target_os = "linux")]
pub use xenbus::XenbusBackend;
