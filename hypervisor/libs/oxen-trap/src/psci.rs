//! PSCI 1.1 calls (Arm DEN0022) as a guest issues them with `HVC #0`.
//!
//! PSCI functions are SMCCC fast calls owned by the standard secure service
//! (owner 4), numbers 0x00-0x1F; the 64-bit variant of a function sets bit 30
//! of its ID (see [`crate::smccc`]). [`decode`] also recognises the two SMCCC
//! architecture calls Linux's PSCI driver issues through the same conduit.

use crate::smccc::{self, FunctionId};

/// `PSCI_VERSION`.
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// `CPU_SUSPEND`, SMC32.
pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
/// `CPU_SUSPEND`, SMC64.
pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
/// `CPU_OFF`.
pub const CPU_OFF: u32 = 0x8400_0002;
/// `CPU_ON`, SMC32.
pub const CPU_ON_32: u32 = 0x8400_0003;
/// `CPU_ON`, SMC64.
pub const CPU_ON_64: u32 = 0xc400_0003;
/// `AFFINITY_INFO`, SMC32.
pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
/// `AFFINITY_INFO`, SMC64.
pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
/// `MIGRATE`, SMC32.
pub const MIGRATE_32: u32 = 0x8400_0005;
/// `MIGRATE`, SMC64.
pub const MIGRATE_64: u32 = 0xc400_0005;
/// `MIGRATE_INFO_TYPE`.
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
/// `MIGRATE_INFO_UP_CPU`, SMC32.
pub const MIGRATE_INFO_UP_CPU_32: u32 = 0x8400_0007;
/// `MIGRATE_INFO_UP_CPU`, SMC64.
pub const MIGRATE_INFO_UP_CPU_64: u32 = 0xc400_0007;
/// `SYSTEM_OFF`.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// `SYSTEM_RESET`.
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// `PSCI_FEATURES`.
pub const PSCI_FEATURES: u32 = 0x8400_000a;
/// `CPU_FREEZE`.
pub const CPU_FREEZE: u32 = 0x8400_000b;
/// `CPU_DEFAULT_SUSPEND`, SMC32.
pub const CPU_DEFAULT_SUSPEND_32: u32 = 0x8400_000c;
/// `CPU_DEFAULT_SUSPEND`, SMC64.
pub const CPU_DEFAULT_SUSPEND_64: u32 = 0xc400_000c;
/// `NODE_HW_STATE`, SMC32.
pub const NODE_HW_STATE_32: u32 = 0x8400_000d;
/// `NODE_HW_STATE`, SMC64.
pub const NODE_HW_STATE_64: u32 = 0xc400_000d;
/// `SYSTEM_SUSPEND`, SMC32.
pub const SYSTEM_SUSPEND_32: u32 = 0x8400_000e;
/// `SYSTEM_SUSPEND`, SMC64.
pub const SYSTEM_SUSPEND_64: u32 = 0xc400_000e;
/// `PSCI_SET_SUSPEND_MODE`.
pub const PSCI_SET_SUSPEND_MODE: u32 = 0x8400_000f;
/// `PSCI_STAT_RESIDENCY`, SMC32.
pub const PSCI_STAT_RESIDENCY_32: u32 = 0x8400_0010;
/// `PSCI_STAT_RESIDENCY`, SMC64.
pub const PSCI_STAT_RESIDENCY_64: u32 = 0xc400_0010;
/// `PSCI_STAT_COUNT`, SMC32.
pub const PSCI_STAT_COUNT_32: u32 = 0x8400_0011;
/// `PSCI_STAT_COUNT`, SMC64.
pub const PSCI_STAT_COUNT_64: u32 = 0xc400_0011;
/// `SYSTEM_RESET2`, SMC32.
pub const SYSTEM_RESET2_32: u32 = 0x8400_0012;
/// `SYSTEM_RESET2`, SMC64.
pub const SYSTEM_RESET2_64: u32 = 0xc400_0012;
/// `MEM_PROTECT`.
pub const MEM_PROTECT: u32 = 0x8400_0013;
/// `MEM_PROTECT_CHECK_RANGE`, SMC32.
pub const MEM_PROTECT_CHECK_RANGE_32: u32 = 0x8400_0014;
/// `MEM_PROTECT_CHECK_RANGE`, SMC64.
pub const MEM_PROTECT_CHECK_RANGE_64: u32 = 0xc400_0014;

/// `PSCI_VERSION` result for PSCI 1.0 (major \[30:16\], minor \[15:0\]).
pub const VERSION_1_0: u64 = 0x0001_0000;
/// `PSCI_VERSION` result for PSCI 1.1.
pub const VERSION_1_1: u64 = 0x0001_0001;

/// Return code: success.
pub const SUCCESS: i64 = 0;
/// Return code: function not supported.
pub const NOT_SUPPORTED: i64 = -1;
/// Return code: invalid parameters.
pub const INVALID_PARAMETERS: i64 = -2;
/// Return code: operation denied.
pub const DENIED: i64 = -3;
/// Return code (`CPU_ON`): the target is already on.
pub const ALREADY_ON: i64 = -4;
/// Return code (`CPU_ON`): a previous `CPU_ON` of the target is pending.
pub const ON_PENDING: i64 = -5;
/// Return code: internal failure.
pub const INTERNAL_FAILURE: i64 = -6;
/// Return code: not present.
pub const NOT_PRESENT: i64 = -7;
/// Return code: disabled.
pub const DISABLED: i64 = -8;
/// Return code: invalid address (e.g. a `CPU_ON` entry point).
pub const INVALID_ADDRESS: i64 = -9;

/// `AFFINITY_INFO` result: the affinity instance is on.
pub const AFFINITY_ON: u64 = 0;
/// `AFFINITY_INFO` result: the affinity instance is off.
pub const AFFINITY_OFF: u64 = 1;
/// `AFFINITY_INFO` result: the affinity instance is being turned on.
pub const AFFINITY_ON_PENDING: u64 = 2;
/// `MIGRATE_INFO_TYPE` result: no Trusted OS, or one that needs no migration.
pub const MIGRATE_INFO_TYPE_NOT_PRESENT: u64 = 2;

/// A decoded PSCI (or SMCCC architecture) call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `PSCI_VERSION`.
    Version,
    /// `CPU_SUSPEND(power_state, entry, context)`.
    CpuSuspend {
        /// The requested power state.
        power_state: u64,
        /// Where to resume if the state loses context.
        entry: u64,
        /// Value for x0 at `entry`.
        context: u64,
    },
    /// `CPU_OFF`.
    CpuOff,
    /// `CPU_ON(target_mpidr, entry, context)`.
    CpuOn {
        /// MPIDR affinity of the vCPU to start.
        target_mpidr: u64,
        /// Entry point (an IPA, MMU off).
        entry: u64,
        /// Value for the new vCPU's x0.
        context: u64,
    },
    /// `AFFINITY_INFO(target_mpidr, lowest_level)`.
    AffinityInfo {
        /// MPIDR affinity queried.
        target_mpidr: u64,
        /// Lowest affinity level that is valid in `target_mpidr`.
        lowest_level: u64,
    },
    /// `MIGRATE_INFO_TYPE`.
    MigrateInfoType,
    /// `SYSTEM_OFF`.
    SystemOff,
    /// `SYSTEM_RESET`.
    SystemReset,
    /// `PSCI_FEATURES(fid)`.
    Features {
        /// The function ID asked about.
        fid: u32,
    },
    /// `SMCCC_VERSION`.
    SmcccVersion,
    /// `SMCCC_ARCH_FEATURES(fid)`.
    SmcccArchFeatures {
        /// The function ID asked about.
        fid: u32,
    },
    /// Anything else; answer [`smccc::NOT_SUPPORTED`].
    Unknown {
        /// The function ID (W0).
        fid: u32,
    },
}

/// Mask selecting the low 32 bits: arguments of an SMC32/HVC32 call.
const ARG32_MASK: u64 = 0xffff_ffff;

/// Decode a call from x0..x3.
///
/// The function ID is W0 (the upper half of x0 is ignored, as SMCCC
/// requires). For a 32-bit ID (bit 30 clear) the arguments are the low 32
/// bits of x1..x3; a 64-bit ID uses them whole.
pub fn decode(x: [u64; 4]) -> Call {
    let fid = x[0] as u32;
    let wide = FunctionId(fid).is_64();
    let arg = |i: usize| if wide { x[i] } else { x[i] & ARG32_MASK };
    match fid {
        PSCI_VERSION => Call::Version,
        CPU_SUSPEND_32 | CPU_SUSPEND_64 => Call::CpuSuspend {
            power_state: arg(1),
            entry: arg(2),
            context: arg(3),
        },
        CPU_OFF => Call::CpuOff,
        CPU_ON_32 | CPU_ON_64 => Call::CpuOn {
            target_mpidr: arg(1),
            entry: arg(2),
            context: arg(3),
        },
        AFFINITY_INFO_32 | AFFINITY_INFO_64 => Call::AffinityInfo {
            target_mpidr: arg(1),
            lowest_level: arg(2),
        },
        MIGRATE_INFO_TYPE => Call::MigrateInfoType,
        SYSTEM_OFF => Call::SystemOff,
        SYSTEM_RESET => Call::SystemReset,
        PSCI_FEATURES => Call::Features { fid: x[1] as u32 },
        smccc::SMCCC_VERSION => Call::SmcccVersion,
        smccc::SMCCC_ARCH_FEATURES => Call::SmcccArchFeatures { fid: x[1] as u32 },
        _ => Call::Unknown { fid },
    }
}
