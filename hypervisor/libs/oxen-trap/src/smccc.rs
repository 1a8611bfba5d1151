//! SMC Calling Convention function identifiers (Arm DEN0028, SMCCC 1.x).
//!
//! A guest's `HVC #0` (or a trapped `SMC #0`) carries a 32-bit function ID
//! in W0. Its layout (DEN0028, "Function Identifiers"):
//!
//! | bits | meaning |
//! |---|---|
//! | 31 | 1 = fast call, 0 = yielding call |
//! | 30 | 1 = SMC64/HVC64 convention, 0 = SMC32/HVC32 |
//! | 29:24 | owning entity number |
//! | 23:17 | must be zero for fast calls |
//! | 16 | SVE live-state hint (SMCCC 1.3) |
//! | 15:0 | function number |

/// Bit 31: fast call.
const FID_FAST: u32 = 1 << 31;
/// Bit 30: SMC64/HVC64 calling convention.
const FID_64: u32 = 1 << 30;
/// Bits \[29:24\]: owning entity number.
const FID_OWNER_SHIFT: u32 = 24;
/// Width mask of the owner field (6 bits).
const FID_OWNER_MASK: u32 = 0x3f;
/// Bit 16: the caller holds no live SVE state (SMCCC 1.3 "SVE hint").
const FID_SVE_HINT: u32 = 1 << 16;
/// Bits \[15:0\]: function number within the owner's range.
const FID_NUMBER_MASK: u32 = 0xffff;

/// Who owns a function ID (DEN0028, "Owning Entity Number" table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// 0: Arm architecture calls (SMCCC_VERSION, ARCH_FEATURES, workarounds).
    Arch,
    /// 1: CPU service calls.
    Cpu,
    /// 2: SiP (silicon partner) service calls.
    Sip,
    /// 3: OEM service calls.
    Oem,
    /// 4: standard secure service calls (PSCI, SDEI, TRNG, ...).
    StdSecure,
    /// 5: standard hypervisor service calls (PV time, ...).
    StdHyp,
    /// 6: vendor-specific hypervisor service calls (KVM UID probe, ...).
    VendorHyp,
    /// 48-49: trusted application calls.
    TrustedApp,
    /// 50-63: trusted OS calls.
    TrustedOs,
    /// Any other (reserved or newer) owner number.
    Other(u8),
}

/// A 32-bit SMCCC function identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionId(pub u32);

impl FunctionId {
    /// Bit 31: a fast (atomic) call rather than a yielding one.
    pub fn fast(&self) -> bool {
        self.0 & FID_FAST != 0
    }

    /// Bit 30: the SMC64/HVC64 convention (64-bit arguments).
    pub fn is_64(&self) -> bool {
        self.0 & FID_64 != 0
    }

    /// The raw owning entity number, bits \[29:24\].
    pub fn owner_number(&self) -> u8 {
        ((self.0 >> FID_OWNER_SHIFT) & FID_OWNER_MASK) as u8
    }

    /// The owning entity.
    pub fn owner(&self) -> Owner {
        match self.owner_number() {
            0 => Owner::Arch,
            1 => Owner::Cpu,
            2 => Owner::Sip,
            3 => Owner::Oem,
            4 => Owner::StdSecure,
            5 => Owner::StdHyp,
            6 => Owner::VendorHyp,
            48..=49 => Owner::TrustedApp,
            50..=63 => Owner::TrustedOs,
            n => Owner::Other(n),
        }
    }

    /// The function number, bits \[15:0\].
    pub fn number(&self) -> u16 {
        (self.0 & FID_NUMBER_MASK) as u16
    }

    /// Bit 16: the caller's SVE hint (no live SVE state), SMCCC 1.3.
    pub fn sve_hint(&self) -> bool {
        self.0 & FID_SVE_HINT != 0
    }
}

/// `SMCCC_VERSION`: returns the implemented SMCCC version.
pub const SMCCC_VERSION: u32 = 0x8000_0000;
/// `SMCCC_ARCH_FEATURES(fid)`: is the arch call `fid` implemented?
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
/// `SMCCC_ARCH_SOC_ID`.
pub const SMCCC_ARCH_SOC_ID: u32 = 0x8000_0002;
/// `SMCCC_ARCH_WORKAROUND_1` (Spectre v2 branch predictor invalidation).
pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
/// `SMCCC_ARCH_WORKAROUND_2` (Spectre v4 speculative store bypass).
pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7fff;
/// `SMCCC_ARCH_WORKAROUND_3` (Spectre-BHB).
pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3fff;
/// Vendor-specific hypervisor service "call UID" query (Linux probes it to
/// detect KVM; oxen answers `NOT_SUPPORTED`).
pub const VENDOR_HYP_CALL_UID: u32 = 0x8600_ff01;

/// `SMCCC_VERSION` return value for SMCCC 1.1 (major in \[30:16\], minor in \[15:0\]).
pub const VERSION_1_1: u32 = 0x0001_0001;

/// Return code: the function is not implemented.
pub const NOT_SUPPORTED: i64 = -1;
/// Return code (ARCH_FEATURES of a workaround): not required on this system.
pub const NOT_REQUIRED: i64 = -2;
/// Return code: an argument was invalid.
pub const INVALID_PARAMETER: i64 = -3;
