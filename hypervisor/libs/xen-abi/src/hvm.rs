//! HVM op ABI (`hvm/hvm_op.h`, `hvm/params.h`): the two HVMOPs Xen on ARM
//! implements and the `HVM_PARAM_*` indices guests read at boot.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `HVMOP_set_param`.
pub const HVMOP_SET_PARAM: u64 = 0;
/// `HVMOP_get_param`.
pub const HVMOP_GET_PARAM: u64 = 1;

/// `HVM_PARAM_CALLBACK_IRQ`: upcall delivery (ACPI guests; type in bits 63:56).
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_STORE_PFN`: GFN of the xenstore ring page.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`: port of the xenstore event channel.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_PAE_ENABLED`.
pub const HVM_PARAM_PAE_ENABLED: u32 = 4;
/// `HVM_PARAM_IOREQ_PFN`.
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;
/// `HVM_PARAM_BUFIOREQ_PFN`.
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;
/// `HVM_PARAM_TIMER_MODE`.
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// `HVM_PARAM_DM_DOMAIN`.
pub const HVM_PARAM_DM_DOMAIN: u32 = 13;
/// `HVM_PARAM_CONSOLE_PFN`: GFN of the PV console ring page.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`: port of the PV console event channel.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_PARAM_BUFIOREQ_EVTCHN`.
pub const HVM_PARAM_BUFIOREQ_EVTCHN: u32 = 26;
/// `HVM_PARAM_MONITOR_RING_PFN`.
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
/// `HVM_PARAM_IOREQ_SERVER_PFN`.
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
/// `HVM_PARAM_NR_IOREQ_SERVER_PAGES`.
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;
/// Number of HVM params (`HVM_NR_PARAMS`); an index must be below this.
pub const HVM_NR_PARAMS: u32 = 39;

/// Mask of the callback type in `HVM_PARAM_CALLBACK_IRQ`.
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xFF00_0000_0000_0000;
/// Shift of the callback type in `HVM_PARAM_CALLBACK_IRQ`.
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_SHIFT: u32 = 56;
/// Callback type: ARM PPI (`HVM_PARAM_CALLBACK_TYPE_PPI`).
pub const HVM_PARAM_CALLBACK_TYPE_PPI: u64 = 2;
/// PPI flags mask (bits 15:8).
pub const HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_MASK: u64 = 0xFF00;
/// PPI flag: level triggered, active low.
pub const HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_LOW_LEVEL: u64 = 2;

/// `struct xen_hvm_param` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XenHvmParam {
    /// Domain (`DOMID_SELF` allowed).
    pub domid: u16,
    /// Padding.
    pub pad: u16,
    /// `HVM_PARAM_*`.
    pub index: u32,
    /// IN (set) / OUT (get).
    pub value: u64,
}

const _: () = assert!(size_of::<XenHvmParam>() == 16);
const _: () = assert!(offset_of!(XenHvmParam, index) == 4);
const _: () = assert!(offset_of!(XenHvmParam, value) == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hvm_param_bytes() {
        let p = XenHvmParam {
            domid: 0x7ff0,
            pad: 0,
            index: HVM_PARAM_CONSOLE_EVTCHN,
            value: 3,
        };
        let b = p.as_bytes();
        assert_eq!(&b[4..8], &18u32.to_le_bytes());
        assert_eq!(&b[8..16], &3u64.to_le_bytes());
    }
}
