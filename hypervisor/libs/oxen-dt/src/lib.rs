//! Device-tree reading (boot information) and writing (guest device trees).
//!
//! Oxen boots like Xen on Arm: firmware (or QEMU) hands it a DTB describing
//! the machine, with the Dom0 kernel, its initrd and optional boot-time
//! (dom0less) domains as `/chosen` module nodes. This crate
//!
//! * validates and indexes a DTB ([`tree::DeviceTree`], a strict reader that
//!   never panics on malformed input — the `fdt` crate does, so it is only
//!   used in tests to cross-check our output),
//! * extracts what the hypervisor needs into [`BootInfo`]
//!   ([`parse_boot_info`]), following Xen's `/chosen` module and command-line
//!   rules (Xen `docs/misc/arm/device-tree/booting.txt`),
//! * parses Xen-style hypervisor options ([`parse_cmdline`]),
//! * writes a DomU device tree in Xen libxl's layout ([`build_guest_dt`]),
//! * turns the host tree into Dom0's ([`build_dom0_dt`]), like Xen's
//!   `domain_build.c`.
//!
//! Invariant: every function taking DTB bytes returns a [`DtError`] on any
//! malformed input; nothing here panics on data.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod boot;
mod cmdline;
mod dom0;
mod guest;
mod passthrough;
pub mod tree;

pub use boot::{
    BootInfo, Conduit, Cpu, DomainSpec, EnableMethod, Gic, Timer, Uart, UartKind, parse_boot_info,
};
pub use cmdline::{BootOptions, LogLevel, Timestamps, Vwfi, parse_cmdline, parse_size};
pub use dom0::{Dom0DtConfig, build_dom0_dt};
pub use guest::{GuestDtConfig, GuestGic, HypervisorNode, build_guest_dt};
pub use passthrough::{dom0_mmio_regions, spi_of};
pub use tree::{MAX_DTB_SIZE, dtb_size};

use core::fmt;

/// Errors of device-tree reading and writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// The header is invalid (bad magic, version, offsets, or the buffer is
    /// shorter than `totalsize`).
    Header,
    /// The structure block is malformed (bad token, truncated name or
    /// property, unbalanced nodes, bad string offset...).
    Structure,
    /// A required node or property is missing.
    Missing(&'static str),
    /// A property has the wrong size or an invalid value.
    BadProperty(&'static str),
    /// The writer (`vm-fdt`) rejected a node or property (e.g. an invalid
    /// node name copied from the host tree).
    Write,
    /// The blob is bigger than [`MAX_DTB_SIZE`].
    TooBig,
    /// The writer configuration is invalid (e.g. an interrupt number out of
    /// range); the payload names the field.
    Config(&'static str),
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DtError::Header => write!(f, "invalid DTB header"),
            DtError::Structure => write!(f, "malformed DTB structure block"),
            DtError::Missing(what) => write!(f, "missing {what}"),
            DtError::BadProperty(what) => write!(f, "bad property {what}"),
            DtError::Write => write!(f, "device tree writer error"),
            DtError::TooBig => write!(f, "device tree too big"),
            DtError::Config(what) => write!(f, "invalid device tree configuration: {what}"),
        }
    }
}

impl From<vm_fdt::Error> for DtError {
    fn from(_: vm_fdt::Error) -> Self {
        DtError::Write
    }
}
