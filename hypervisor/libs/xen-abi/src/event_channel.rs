//! Event channel ABI (`event_channel.h`, VIRQ numbers from `xen.h`):
//! `EVTCHNOP_*` sub-op numbers, argument structs and status codes.
//!
//! Every `EVTCHNOP_*` takes a pointer to one of these structs in x1. Padding
//! that C inserts implicitly is spelled out as `_pad*` fields so the structs
//! can be copied to and from guest bytes with `zerocopy`.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// An event channel port number (`evtchn_port_t`).
pub type EvtchnPort = u32;

/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_BIND_INTERDOMAIN: u64 = 0;
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_BIND_VIRQ: u64 = 1;
/// `EVTCHNOP_bind_pirq`.
pub const EVTCHNOP_BIND_PIRQ: u64 = 2;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_CLOSE: u64 = 3;
/// `EVTCHNOP_send`.
pub const EVTCHNOP_SEND: u64 = 4;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_STATUS: u64 = 5;
/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
/// `EVTCHNOP_bind_ipi`.
pub const EVTCHNOP_BIND_IPI: u64 = 7;
/// `EVTCHNOP_bind_vcpu`.
pub const EVTCHNOP_BIND_VCPU: u64 = 8;
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_UNMASK: u64 = 9;
/// `EVTCHNOP_reset`.
pub const EVTCHNOP_RESET: u64 = 10;
/// `EVTCHNOP_init_control` (FIFO ABI probe).
pub const EVTCHNOP_INIT_CONTROL: u64 = 11;
/// `EVTCHNOP_expand_array` (FIFO ABI).
pub const EVTCHNOP_EXPAND_ARRAY: u64 = 12;
/// `EVTCHNOP_set_priority` (FIFO ABI).
pub const EVTCHNOP_SET_PRIORITY: u64 = 13;

/// `EVTCHNSTAT_closed`: the port is not in use.
pub const EVTCHNSTAT_CLOSED: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for an interdomain connection.
pub const EVTCHNSTAT_UNBOUND: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to a remote domain.
pub const EVTCHNSTAT_INTERDOMAIN: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
pub const EVTCHNSTAT_PIRQ: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
pub const EVTCHNSTAT_VIRQ: u32 = 4;
/// `EVTCHNSTAT_ipi`: bound to a virtual IPI.
pub const EVTCHNSTAT_IPI: u32 = 5;

/// `VIRQ_TIMER` (per-vCPU).
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG` (per-vCPU).
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE` (global): bytes received on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC` (global): exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF` (global).
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER` (global).
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF` (per-vCPU).
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING` (global): bytes received on the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE` (global).
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT` (global).
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO` (per-domain).
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM` (global).
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU` (per-vCPU).
pub const VIRQ_XENPMU: u32 = 13;
/// `VIRQ_ARCH_0`; `VIRQ_ARCH_0..=VIRQ_ARCH_7` are global on ARM.
pub const VIRQ_ARCH_0: u32 = 16;
/// `VIRQ_ARCH_7`.
pub const VIRQ_ARCH_7: u32 = 23;
/// Number of VIRQs (`NR_VIRQS`); a VIRQ number must be below this.
pub const NR_VIRQS: u32 = 24;

/// `struct evtchn_alloc_unbound` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnAllocUnbound {
    /// IN: domain to allocate the port in (usually `DOMID_SELF`).
    pub dom: u16,
    /// IN: domain allowed to bind to the port.
    pub remote_dom: u16,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_interdomain` (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindInterdomain {
    /// IN: the remote domain (may be `DOMID_SELF` for loopback).
    pub remote_dom: u16,
    /// Implicit C padding.
    pub _pad: u16,
    /// IN: the remote, unbound port.
    pub remote_port: u32,
    /// OUT: the new local port.
    pub local_port: u32,
}

/// `struct evtchn_bind_virq` (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN: vCPU to bind to (0 for global/per-domain VIRQs).
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_pirq` (12 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindPirq {
    /// IN: physical IRQ.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__*` flags.
    pub flags: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_bind_ipi` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindIpi {
    /// IN: vCPU to notify.
    pub vcpu: u32,
    /// OUT: the new port.
    pub port: u32,
}

/// `struct evtchn_close` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnClose {
    /// IN: local port to close.
    pub port: u32,
}

/// `struct evtchn_send` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnSend {
    /// IN: local port to notify through.
    pub port: u32,
}

/// `struct evtchn_unmask` (4 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnUnmask {
    /// IN: local port to unmask.
    pub port: u32,
}

/// `struct evtchn_status` (24 bytes). The C union `u` is flattened:
/// `u_dom` is `unbound.dom`/`interdomain.dom`, `u_word` is
/// `interdomain.port`; for PIRQ/VIRQ the number is the 32-bit value at
/// offset 16, i.e. `u_dom | (u_pad << 16)` — use [`EvtchnStatus::set_u32`].
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnStatus {
    /// IN: domain owning the port (`DOMID_SELF` allowed).
    pub dom: u16,
    /// Implicit C padding.
    pub _pad0: u16,
    /// IN: port to query.
    pub port: u32,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: vCPU notified by the port.
    pub vcpu: u32,
    /// OUT: union, low 16 bits (remote domain for unbound/interdomain).
    pub u_dom: u16,
    /// OUT: union, bits 16..32 (high half of a PIRQ/VIRQ number).
    pub u_pad: u16,
    /// OUT: union, second word (remote port for interdomain).
    pub u_word: u32,
}

impl EvtchnStatus {
    /// Store a 32-bit union value (`u.pirq` / `u.virq`) at offset 16.
    pub fn set_u32(&mut self, v: u32) {
        self.u_dom = v as u16;
        self.u_pad = (v >> 16) as u16;
    }

    /// The 32-bit union value at offset 16.
    pub fn u32_at_16(&self) -> u32 {
        u32::from(self.u_dom) | (u32::from(self.u_pad) << 16)
    }
}

/// `struct evtchn_bind_vcpu` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnBindVcpu {
    /// IN: local port.
    pub port: u32,
    /// IN: vCPU to notify from now on.
    pub vcpu: u32,
}

/// `struct evtchn_reset` (2 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnReset {
    /// IN: domain to reset.
    pub dom: u16,
}

/// `struct evtchn_init_control` (24 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnInitControl {
    /// IN: GFN of the control block page.
    pub control_gfn: u64,
    /// IN: offset of the control block in the page.
    pub offset: u32,
    /// IN: vCPU.
    pub vcpu: u32,
    /// OUT: number of link bits.
    pub link_bits: u8,
    /// Padding.
    pub _pad: [u8; 7],
}

/// `struct evtchn_expand_array` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnExpandArray {
    /// IN: GFN of the new event array page.
    pub array_gfn: u64,
}

/// `struct evtchn_set_priority` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct EvtchnSetPriority {
    /// IN: port.
    pub port: u32,
    /// IN: priority.
    pub priority: u32,
}

const _: () = assert!(size_of::<EvtchnAllocUnbound>() == 8);
const _: () = assert!(offset_of!(EvtchnAllocUnbound, port) == 4);
const _: () = assert!(size_of::<EvtchnBindInterdomain>() == 12);
const _: () = assert!(offset_of!(EvtchnBindInterdomain, remote_port) == 4);
const _: () = assert!(offset_of!(EvtchnBindInterdomain, local_port) == 8);
const _: () = assert!(size_of::<EvtchnBindVirq>() == 12);
const _: () = assert!(size_of::<EvtchnBindPirq>() == 12);
const _: () = assert!(size_of::<EvtchnBindIpi>() == 8);
const _: () = assert!(size_of::<EvtchnClose>() == 4);
const _: () = assert!(size_of::<EvtchnSend>() == 4);
const _: () = assert!(size_of::<EvtchnUnmask>() == 4);
const _: () = assert!(size_of::<EvtchnStatus>() == 24);
const _: () = assert!(offset_of!(EvtchnStatus, status) == 8);
const _: () = assert!(offset_of!(EvtchnStatus, vcpu) == 12);
const _: () = assert!(offset_of!(EvtchnStatus, u_dom) == 16);
const _: () = assert!(offset_of!(EvtchnStatus, u_word) == 20);
const _: () = assert!(size_of::<EvtchnBindVcpu>() == 8);
const _: () = assert!(size_of::<EvtchnReset>() == 2);
const _: () = assert!(size_of::<EvtchnInitControl>() == 24);
const _: () = assert!(offset_of!(EvtchnInitControl, link_bits) == 16);
const _: () = assert!(size_of::<EvtchnExpandArray>() == 8);
const _: () = assert!(size_of::<EvtchnSetPriority>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_union_and_bytes() {
        let mut st = EvtchnStatus {
            status: EVTCHNSTAT_VIRQ,
            ..Default::default()
        };
        st.set_u32(0x0001_0002);
        assert_eq!(st.u32_at_16(), 0x0001_0002);
        let b = st.as_bytes();
        assert_eq!(&b[16..20], &0x0001_0002u32.to_le_bytes());
        assert_eq!(&b[8..12], &EVTCHNSTAT_VIRQ.to_le_bytes());

        let raw = [0xf0u8, 0x7f, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0];
        let bi = EvtchnBindInterdomain::read_from_bytes(&raw).unwrap();
        assert_eq!(bi.remote_dom, 0x7ff0);
        assert_eq!(bi.remote_port, 5);
        assert_eq!(bi.local_port, 9);
    }
}
