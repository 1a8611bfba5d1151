//! The Xen guest ABI as seen on arm64: hypercall numbers, sub-op numbers,
//! error codes and public structure layouts (`xen/include/public/*.h`).
//!
//! Facts only: this crate is compiled into the hypervisor (no_std), into the
//! bare-metal test guests and into the Dom0 tools, so a layout mistake cannot
//! hide on one side. Every `#[repr(C)]` struct carries a size assertion
//! checked against the arm64 (LP64) layout.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod console;
pub mod domctl;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hvm;
pub mod hypercall;
pub mod memory;
pub mod shared_info;
pub mod sysctl;
pub mod vcpu;
pub mod xenstore;

pub use errno::Errno;

/// The immediate of the `HVC` instruction that marks a Xen hypercall
/// (`XEN_HYPERCALL_TAG` in `arch-arm.h`). `HVC #0` is an SMCCC call instead.
pub const XEN_HYPERCALL_TAG: u16 = 0xEA1;

/// Xen version oxen reports: 4.17, the version of the reference Xen.
pub const XEN_VERSION_MAJOR: u32 = 4;
/// Minor part of the reported Xen version.
pub const XEN_VERSION_MINOR: u32 = 17;
