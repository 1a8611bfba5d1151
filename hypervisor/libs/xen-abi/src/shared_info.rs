//! `struct shared_info` and `struct vcpu_info` (`xen.h`, `arch-arm.h`) as
//! laid out on arm64.
//!
//! Both live in guest RAM and are updated by the hypervisor while the guest
//! runs, so the hypervisor must touch the event words with atomic
//! read-modify-write operations at the byte offsets exported here
//! (`OFF_*`), never by copying the whole structure. On ARM
//! `xen_ulong_t` is 64 bits, so the 2-level event channel ABI has 64
//! pending words of 64 bits: 4096 ports. `arch_vcpu_info` and
//! `arch_shared_info` are empty on ARM. The structs derive `zerocopy`
//! traits so a snapshot can be read from or written to guest bytes.

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_LEGACY_MAX_VCPUS` on ARM: only vCPU0 has a slot in `shared_info`;
/// every vCPU (including 0) registers its own `vcpu_info` instead.
pub const XEN_LEGACY_MAX_VCPUS: usize = 1;

/// Bits in an event word (`sizeof(xen_ulong_t) * 8`).
pub const EVTCHN_WORD_BITS: u32 = 64;

/// Number of pending/mask words in `shared_info` (`sizeof(xen_ulong_t) * 8`).
pub const EVTCHN_WORDS: usize = 64;

/// Ports of the 2-level ABI on a 64-bit guest (`EVTCHN_2L_NR_CHANNELS`).
pub const EVTCHN_2L_NR_CHANNELS: u32 = 4096;

/// `struct vcpu_time_info` (32 bytes). Unused by Linux on ARM.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuTimeInfo {
    /// Seqlock-style version, odd while an update is in progress.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// Counter value at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns) at the last update.
    pub system_time: u64,
    /// Counter-to-ns multiplier (32.32 fixed point).
    pub tsc_to_system_mul: u32,
    /// Shift applied to the counter delta before multiplying.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}

/// `struct vcpu_info` (48 bytes on arm64).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct VcpuInfo {
    /// Set to 1 by the hypervisor when an upcall is due; cleared by the guest.
    pub evtchn_upcall_pending: u8,
    /// `evtchn_upcall_mask` on x86; a pad byte on ARM (ignored).
    pub evtchn_upcall_mask: u8,
    /// Implicit C padding before the 8-aligned selector.
    pub pad: [u8; 6],
    /// 2-level selector: bit `w` means word `w` of `evtchn_pending` has work.
    pub evtchn_pending_sel: u64,
    /// PV clock (unused on ARM).
    pub time: VcpuTimeInfo,
}

/// `struct shared_info` (1088 bytes on arm64).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SharedInfo {
    /// Legacy per-vCPU slots (only vCPU0's on ARM).
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// Pending bit per port.
    pub evtchn_pending: [u64; EVTCHN_WORDS],
    /// Mask bit per port (set = masked).
    pub evtchn_mask: [u64; EVTCHN_WORDS],
    /// Wall-clock version counter (odd while updating).
    pub wc_version: u32,
    /// Wall-clock seconds at guest system time 0 (low 32 bits).
    pub wc_sec: u32,
    /// Wall-clock nanoseconds.
    pub wc_nsec: u32,
    /// High 32 bits of the wall-clock seconds.
    pub wc_sec_hi: u32,
}

impl Default for SharedInfo {
    fn default() -> Self {
        Self {
            vcpu_info: [VcpuInfo::default(); XEN_LEGACY_MAX_VCPUS],
            evtchn_pending: [0; EVTCHN_WORDS],
            evtchn_mask: [0; EVTCHN_WORDS],
            wc_version: 0,
            wc_sec: 0,
            wc_nsec: 0,
            wc_sec_hi: 0,
        }
    }
}

/// Byte offset of `vcpu_info.evtchn_upcall_pending`.
pub const OFF_VCPU_UPCALL_PENDING: usize = offset_of!(VcpuInfo, evtchn_upcall_pending);
/// Byte offset of `vcpu_info.evtchn_pending_sel`.
pub const OFF_VCPU_PENDING_SEL: usize = offset_of!(VcpuInfo, evtchn_pending_sel);
/// Byte offset of `shared_info.evtchn_pending`.
pub const OFF_SHARED_EVTCHN_PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
/// Byte offset of `shared_info.evtchn_mask`.
pub const OFF_SHARED_EVTCHN_MASK: usize = offset_of!(SharedInfo, evtchn_mask);
/// Byte offset of `shared_info.wc_version`.
pub const OFF_SHARED_WC_VERSION: usize = offset_of!(SharedInfo, wc_version);

const _: () = assert!(size_of::<VcpuTimeInfo>() == 32);
const _: () = assert!(size_of::<VcpuInfo>() == 48);
const _: () = assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == 8);
const _: () = assert!(offset_of!(VcpuInfo, time) == 16);
const _: () = assert!(offset_of!(VcpuTimeInfo, tsc_to_system_mul) == 24);
const _: () = assert!(offset_of!(VcpuTimeInfo, flags) == 29);
const _: () = assert!(size_of::<SharedInfo>() == 1088);
const _: () = assert!(OFF_SHARED_EVTCHN_PENDING == 48);
const _: () = assert!(OFF_SHARED_EVTCHN_MASK == 560);
const _: () = assert!(OFF_SHARED_WC_VERSION == 1072);
const _: () = assert!(offset_of!(SharedInfo, wc_sec_hi) == 1084);
const _: () = assert!(EVTCHN_WORDS as u32 * EVTCHN_WORD_BITS == EVTCHN_2L_NR_CHANNELS);

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn shared_info_round_trips_through_bytes() {
        let mut s = SharedInfo::new_zeroed();
        s.evtchn_pending[1] = 0x8000_0000_0000_0001;
        s.wc_sec = 0x1234_5678;
        let bytes = s.as_bytes();
        assert_eq!(bytes.len(), 1088);
        // Port 64 is bit 0 of word 1, at byte 48 + 8.
        assert_eq!(bytes[OFF_SHARED_EVTCHN_PENDING + 8], 1);
        assert_eq!(bytes[OFF_SHARED_EVTCHN_PENDING + 15], 0x80);
        assert_eq!(&bytes[1076..1080], &0x1234_5678u32.to_le_bytes());
        let back = SharedInfo::read_from_bytes(bytes).unwrap();
        assert_eq!(back, s);
        assert_eq!(SharedInfo::default(), SharedInfo::new_zeroed());
    }
}
