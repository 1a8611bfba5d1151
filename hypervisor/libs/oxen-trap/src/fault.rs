//! Fault status codes (DFSC/IFSC) and the IPA of a stage-2 fault.
//!
//! Source: Arm ARM (DDI 0487), "ISS encoding for an exception from a Data
//! Abort", field `DFSC` bits \[5:0\] (the Instruction Abort `IFSC` uses the
//! same code points), and "HPFAR_EL2, Hypervisor IPA Fault Address Register".

use core::fmt;

use oxen_types::Ipa;

/// FSC type mask: bits \[5:2\] select the kind for the level-indexed codes.
const FSC_TYPE_MASK: u8 = 0x3c;
/// FSC level mask: bits \[1:0\] hold the lookup level (0..3).
const FSC_LEVEL_MASK: u8 = 0x03;
/// FSC field width (6 bits).
const FSC_MASK: u8 = 0x3f;

/// 0b0000LL: address size fault, level LL.
const FSC_ADDR_SIZE: u8 = 0x00;
/// 0b0001LL: translation fault, level LL.
const FSC_TRANSLATION: u8 = 0x04;
/// 0b0010LL: access flag fault, level LL.
const FSC_ACCESS_FLAG: u8 = 0x08;
/// 0b0011LL: permission fault, level LL.
const FSC_PERMISSION: u8 = 0x0c;
/// 0b010000: synchronous external abort, not on a translation table walk.
const FSC_SYNC_EXTERNAL: u8 = 0x10;
/// 0b0101LL: synchronous external abort on a translation table walk, level LL.
const FSC_SYNC_EXTERNAL_WALK: u8 = 0x14;
/// 0b100001: alignment fault.
const FSC_ALIGNMENT: u8 = 0x21;
/// 0b110000: TLB conflict abort.
const FSC_TLB_CONFLICT: u8 = 0x30;

/// A decoded DFSC/IFSC fault status code.
///
/// Level-indexed kinds carry their lookup level 0..3. Codes without a
/// variant (parity/ECC errors, tag-check faults, level -1 faults of
/// FEAT_LPA2, IMPLEMENTATION DEFINED and reserved codes) are `Other(fsc)`;
/// [`FaultStatus::describe`] still names the architected ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    /// Address size fault at the given level.
    AddressSize(u8),
    /// Translation fault at the given level (no valid descriptor).
    Translation(u8),
    /// Access flag fault at the given level.
    AccessFlag(u8),
    /// Permission fault at the given level.
    Permission(u8),
    /// Synchronous external abort, not on a translation table walk.
    SyncExternal,
    /// Synchronous external abort on a translation table walk at the level.
    SyncExternalWalk(u8),
    /// Alignment fault.
    Alignment,
    /// TLB conflict abort.
    TlbConflict,
    /// Any other code (6-bit raw value).
    Other(u8),
}

impl FaultStatus {
    /// Decode a 6-bit fault status code (higher bits are ignored).
    pub fn from_fsc(fsc: u8) -> Self {
        let fsc = fsc & FSC_MASK;
        let level = fsc & FSC_LEVEL_MASK;
        match fsc {
            FSC_SYNC_EXTERNAL => return Self::SyncExternal,
            FSC_ALIGNMENT => return Self::Alignment,
            FSC_TLB_CONFLICT => return Self::TlbConflict,
            _ => {}
        }
        match fsc & FSC_TYPE_MASK {
            FSC_ADDR_SIZE => Self::AddressSize(level),
            FSC_TRANSLATION => Self::Translation(level),
            FSC_ACCESS_FLAG => Self::AccessFlag(level),
            FSC_PERMISSION => Self::Permission(level),
            FSC_SYNC_EXTERNAL_WALK => Self::SyncExternalWalk(level),
            _ => Self::Other(fsc),
        }
    }

    /// The 6-bit code this status decodes from (inverse of [`Self::from_fsc`]).
    pub fn fsc(&self) -> u8 {
        let lvl = |l: u8| l & FSC_LEVEL_MASK;
        match *self {
            Self::AddressSize(l) => FSC_ADDR_SIZE | lvl(l),
            Self::Translation(l) => FSC_TRANSLATION | lvl(l),
            Self::AccessFlag(l) => FSC_ACCESS_FLAG | lvl(l),
            Self::Permission(l) => FSC_PERMISSION | lvl(l),
            Self::SyncExternal => FSC_SYNC_EXTERNAL,
            Self::SyncExternalWalk(l) => FSC_SYNC_EXTERNAL_WALK | lvl(l),
            Self::Alignment => FSC_ALIGNMENT,
            Self::TlbConflict => FSC_TLB_CONFLICT,
            Self::Other(fsc) => fsc & FSC_MASK,
        }
    }

    /// Human description, e.g. "translation fault" (level not included; see
    /// [`Self::level`] or the `Display` impl).
    pub fn describe(&self) -> &'static str {
        match *self {
            Self::AddressSize(_) => "address size fault",
            Self::Translation(_) => "translation fault",
            Self::AccessFlag(_) => "access flag fault",
            Self::Permission(_) => "permission fault",
            Self::SyncExternal => "synchronous external abort",
            Self::SyncExternalWalk(_) => "synchronous external abort on table walk",
            Self::Alignment => "alignment fault",
            Self::TlbConflict => "TLB conflict abort",
            Self::Other(fsc) => match fsc & FSC_MASK {
                0x11 => "synchronous tag check fault",
                0x13 => "synchronous external abort on table walk, level -1",
                0x18 => "synchronous parity or ECC error",
                0x1b => "parity or ECC error on table walk, level -1",
                0x1c..=0x1f => "parity or ECC error on table walk",
                0x23 => "granule protection fault on table walk, level -1",
                0x24..=0x27 => "granule protection fault on table walk",
                0x28 => "granule protection fault",
                0x29 => "address size fault, level -1",
                0x2b => "translation fault, level -1",
                0x31 => "unsupported atomic hardware update fault",
                0x34 => "IMPLEMENTATION DEFINED fault (lockdown)",
                0x35 => "IMPLEMENTATION DEFINED fault (unsupported exclusive or atomic)",
                0x3d => "section domain fault",
                0x3e => "page domain fault",
                _ => "reserved fault status code",
            },
        }
    }

    /// The translation table level (0..3) for level-indexed kinds.
    pub fn level(&self) -> Option<u8> {
        match *self {
            Self::AddressSize(l)
            | Self::Translation(l)
            | Self::AccessFlag(l)
            | Self::Permission(l)
            | Self::SyncExternalWalk(l) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for FaultStatus {
    /// `translation fault, level 2 (FSC 0x06)`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())?;
        if let Some(l) = self.level() {
            write!(f, ", level {l}")?;
        }
        write!(f, " (FSC {:#04x})", self.fsc())
    }
}

/// `HPFAR_EL2.FIPA`, bits \[43:4\]: faulting IPA bits \[51:12\] (bits \[43:40\]
/// are RES0 without FEAT_LPA). Bit 63 (`NS`) and the rest are dropped.
const HPFAR_FIPA_MASK: u64 = ((1 << 44) - 1) & !((1 << 4) - 1);
/// FIPA bit 4 holds IPA bit 12: shift left by 8 to place it.
const HPFAR_FIPA_TO_IPA_SHIFT: u32 = 8;
/// `HPFAR_EL2` reports the IPA in 4 KiB units whatever the granule: the low
/// 12 bits come from `FAR_EL2`.
const PAGE_OFFSET_MASK: u64 = (1 << 12) - 1;

/// IPA of a stage-2 fault: `HPFAR_EL2.FIPA` (bits \[43:4\] → IPA\[51:12\])
/// plus the page offset from `FAR_EL2` bits \[11:0\].
///
/// Only meaningful when the hardware set HPFAR_EL2, i.e. for a stage-2
/// translation/access-flag/permission fault, or a fault on a stage-1 walk.
pub fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & HPFAR_FIPA_MASK) << HPFAR_FIPA_TO_IPA_SHIFT) | (far & PAGE_OFFSET_MASK)
}

/// [`fault_ipa`] as a typed [`Ipa`], for passing across module boundaries.
pub fn stage2_fault_ipa(hpfar: u64, far: u64) -> Ipa {
    Ipa::new(fault_ipa(hpfar, far))
}
