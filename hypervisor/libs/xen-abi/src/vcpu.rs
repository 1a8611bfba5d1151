//! vCPU op ABI (`vcpu.h`): `VCPUOP_*` numbers, runstate and vcpu_info
//! registration structs, laid out for arm64. Xen on ARM implements only
//! `register_vcpu_info` and `register_runstate_memory_area`.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `VCPUOP_initialise`.
pub const VCPUOP_INITIALISE: u64 = 0;
/// `VCPUOP_up`.
pub const VCPUOP_UP: u64 = 1;
/// `VCPUOP_down`.
pub const VCPUOP_DOWN: u64 = 2;
/// `VCPUOP_is_up`.
pub const VCPUOP_IS_UP: u64 = 3;
/// `VCPUOP_get_runstate_info`.
pub const VCPUOP_GET_RUNSTATE_INFO: u64 = 4;
/// `VCPUOP_register_runstate_memory_area` (arg: guest *virtual* address).
pub const VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
/// `VCPUOP_set_periodic_timer`.
pub const VCPUOP_SET_PERIODIC_TIMER: u64 = 6;
/// `VCPUOP_stop_periodic_timer`.
pub const VCPUOP_STOP_PERIODIC_TIMER: u64 = 7;
/// `VCPUOP_set_singleshot_timer`.
pub const VCPUOP_SET_SINGLESHOT_TIMER: u64 = 8;
/// `VCPUOP_stop_singleshot_timer`.
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u64 = 9;
/// `VCPUOP_register_vcpu_info`.
pub const VCPUOP_REGISTER_VCPU_INFO: u64 = 10;
/// `VCPUOP_send_nmi`.
pub const VCPUOP_SEND_NMI: u64 = 11;
/// `VCPUOP_get_physid`.
pub const VCPUOP_GET_PHYSID: u64 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`.
pub const VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13;
/// `VCPUOP_register_runstate_phys_area`.
pub const VCPUOP_REGISTER_RUNSTATE_PHYS_AREA: u64 = 14;
/// `VCPUOP_register_vcpu_time_phys_area`.
pub const VCPUOP_REGISTER_VCPU_TIME_PHYS_AREA: u64 = 15;

/// `RUNSTATE_running`.
pub const RUNSTATE_RUNNING: i32 = 0;
/// `RUNSTATE_runnable`.
pub const RUNSTATE_RUNNABLE: i32 = 1;
/// `RUNSTATE_blocked`.
pub const RUNSTATE_BLOCKED: i32 = 2;
/// `RUNSTATE_offline`.
pub const RUNSTATE_OFFLINE: i32 = 3;
/// Bit set in `state_entry_time` while the hypervisor updates the area
/// (with `VMASST_TYPE_runstate_update_flag`).
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `VMASST_CMD_enable`.
pub const VMASST_CMD_ENABLE: u64 = 0;
/// `VMASST_CMD_disable`.
pub const VMASST_CMD_DISABLE: u64 = 1;
/// `VMASST_TYPE_runstate_update_flag`.
pub const VMASST_TYPE_RUNSTATE_UPDATE_FLAG: u64 = 5;

/// `struct vcpu_runstate_info` (48 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*`.
    pub state: i32,
    /// Implicit C padding.
    pub _pad: u32,
    /// System time (ns) when `state` was entered; bit 63 = update in progress.
    pub state_entry_time: u64,
    /// Time (ns) spent in each `RUNSTATE_*`.
    pub time: [u64; 4],
}

/// `struct vcpu_register_runstate_memory_area` (8 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// Guest kernel virtual address of a `vcpu_runstate_info`.
    pub addr: u64,
}

/// `struct vcpu_register_vcpu_info` (16 bytes).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuRegisterVcpuInfo {
    /// GFN of the page holding the `vcpu_info`.
    pub mfn: u64,
    /// Byte offset in that page.
    pub offset: u32,
    /// Reserved (must be 0).
    pub rsvd: u32,
}

const _: () = assert!(size_of::<VcpuRunstateInfo>() == 48);
const _: () = assert!(offset_of!(VcpuRunstateInfo, state_entry_time) == 8);
const _: () = assert!(offset_of!(VcpuRunstateInfo, time) == 16);
const _: () = assert!(size_of::<VcpuRegisterRunstateMemoryArea>() == 8);
const _: () = assert!(size_of::<VcpuRegisterVcpuInfo>() == 16);
const _: () = assert!(offset_of!(VcpuRegisterVcpuInfo, offset) == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_vcpu_info_bytes() {
        let r = VcpuRegisterVcpuInfo {
            mfn: 0x4_1234,
            offset: 0x40,
            rsvd: 0,
        };
        let b = r.as_bytes();
        assert_eq!(&b[0..8], &0x4_1234u64.to_le_bytes());
        assert_eq!(&b[8..12], &0x40u32.to_le_bytes());
        assert_eq!(
            VcpuRunstateInfo::read_from_bytes(&[0u8; 48]).unwrap().state,
            RUNSTATE_RUNNING
        );
    }
}
