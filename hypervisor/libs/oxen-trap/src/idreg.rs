//! Guest-visible CPU identification registers (`HCR_EL2.TID3`).
//!
//! With `HCR_EL2.TID3` set, a guest's accesses to the ID register space —
//! op0 3, op1 0, CRn 0, CRm 1–7, any op2: the AArch32 and AArch64 feature
//! registers (Arm ARM DDI 0487, "HCR_EL2, Hypervisor Configuration
//! Register", field `TID3`) — trap to EL2 and the hypervisor answers them.
//! oxen answers as Xen 4.17 does (`create_guest_cpuinfo` in
//! `xen/arch/arm/cpufeature.c`, the `TID3` cases of `do_sysreg` in
//! `xen/arch/arm/arm64/vsysreg.c`):
//!
//! * the registers Xen names ([`HOST_REGS`]) read as the host's value with
//!   the fields of features the hypervisor does not virtualise set to 0
//!   ([`HIDDEN`]): SVE, SME, MTE, pointer authentication, the activity
//!   monitors (AMU), RAS and MPAM. A guest that believes the ID registers
//!   never uses them; their instructions and registers stay trapped to EL2
//!   (`CPTR_EL2.TZ`/`TSM`/`TAM`, `HCR_EL2.API`/`APK` clear) and a guest
//!   that tries anyway gets an UNDEFINED exception;
//! * `ID_AA64ZFR0_EL1` (the SVE feature register) reads as 0;
//! * every other encoding of the space (`ID_AA64ISAR2_EL1`,
//!   `ID_AA64SMFR0_EL1`, `ID_AA64MMFR3_EL1`, ..., reserved ones) reads as 0;
//! * the AArch32 registers (CRm 1–3) read as 0 when the host has no AArch32
//!   at EL0 (their values are UNKNOWN then; Xen does not read them either);
//! * the registers are read-only: a write, or an access from EL0, is
//!   UNDEFINED ([`IdRegAnswer::Undefined`]).
//!
//! One difference from Xen 4.17: `ID_AA64PFR1_EL1.SME` is cleared too (Xen
//! 4.17 predates SME and passed the field through; later Xen releases hide
//! it).
//!
//! Field positions: Arm ARM (DDI 0487) part D, each register's description
//! ("ID_AA64PFR0_EL1, AArch64 Processor Feature Register 0", ...). Every
//! hidden field is 4 bits wide; 0 means "not implemented" for all of them.

use crate::sysreg::{self, SysRegAccess};

/// A feature oxen hides from guests (one or more ID register fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    /// Scalable Vector Extension (FEAT_SVE).
    Sve,
    /// Scalable Matrix Extension (FEAT_SME).
    Sme,
    /// Memory Tagging Extension (FEAT_MTE).
    Mte,
    /// Pointer authentication (FEAT_PAuth).
    PAuth,
    /// Activity Monitors Extension (FEAT_AMUv1).
    Amu,
    /// Reliability, Availability and Serviceability Extension (FEAT_RAS).
    Ras,
    /// Memory Partitioning and Monitoring Extension (FEAT_MPAM).
    Mpam,
}

impl Feature {
    /// Every hidden feature, in log order.
    pub const ALL: [Feature; 7] = [
        Feature::Sve,
        Feature::Sme,
        Feature::Mte,
        Feature::PAuth,
        Feature::Amu,
        Feature::Ras,
        Feature::Mpam,
    ];

    /// The feature's usual short name ("SVE").
    pub const fn name(self) -> &'static str {
        match self {
            Feature::Sve => "SVE",
            Feature::Sme => "SME",
            Feature::Mte => "MTE",
            Feature::PAuth => "PAuth",
            Feature::Amu => "AMU",
            Feature::Ras => "RAS",
            Feature::Mpam => "MPAM",
        }
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A 4-bit ID register field that guests read as 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HiddenField {
    /// The register's key ([`sysreg::key`]).
    pub reg: u32,
    /// Bit position of the field's least significant bit.
    pub shift: u32,
    /// `REGISTER.FIELD`, as the Arm ARM names it.
    pub name: &'static str,
    /// The feature the field advertises.
    pub feature: Feature,
}

/// Width of every hidden field.
const FIELD_MASK: u64 = 0xf;

macro_rules! hidden {
    ($($reg:ident . $field:ident @ $shift:literal => $feature:ident;)*) => {
        &[$(HiddenField {
            reg: sysreg::$reg,
            shift: $shift,
            name: concat!(stringify!($reg), ".", stringify!($field)),
            feature: Feature::$feature,
        }),*]
    };
}

/// The fields hidden from guests: Xen 4.17's `create_guest_cpuinfo` list
/// plus `ID_AA64PFR1_EL1.SME`.
pub const HIDDEN: &[HiddenField] = hidden! {
    ID_AA64PFR0_EL1.RAS @ 28 => Ras;
    ID_AA64PFR0_EL1.SVE @ 32 => Sve;
    ID_AA64PFR0_EL1.MPAM @ 40 => Mpam;
    ID_AA64PFR0_EL1.AMU @ 44 => Amu;
    ID_AA64PFR1_EL1.MTE @ 8 => Mte;
    ID_AA64PFR1_EL1.RAS_frac @ 12 => Ras;
    ID_AA64PFR1_EL1.MPAM_frac @ 16 => Mpam;
    ID_AA64PFR1_EL1.SME @ 24 => Sme;
    ID_AA64ISAR1_EL1.APA @ 4 => PAuth;
    ID_AA64ISAR1_EL1.API @ 8 => PAuth;
    ID_AA64ISAR1_EL1.GPA @ 24 => PAuth;
    ID_AA64ISAR1_EL1.GPI @ 28 => PAuth;
    ID_PFR0_EL1.AMU @ 20 => Amu;
    ID_PFR0_EL1.RAS @ 28 => Ras;
    ID_PFR2_EL1.RAS_frac @ 8 => Ras;
};

/// The registers whose guest value starts from the host's (the ones Xen
/// 4.17's `do_sysreg` names, less `ID_AA64ZFR0_EL1`, which reads as 0).
/// The caller of [`GuestIdRegs::from_host`] must be able to read these.
pub const HOST_REGS: &[u32] = &[
    sysreg::ID_PFR0_EL1,
    sysreg::ID_PFR1_EL1,
    sysreg::ID_DFR0_EL1,
    sysreg::ID_AFR0_EL1,
    sysreg::ID_MMFR0_EL1,
    sysreg::ID_MMFR1_EL1,
    sysreg::ID_MMFR2_EL1,
    sysreg::ID_MMFR3_EL1,
    sysreg::ID_ISAR0_EL1,
    sysreg::ID_ISAR1_EL1,
    sysreg::ID_ISAR2_EL1,
    sysreg::ID_ISAR3_EL1,
    sysreg::ID_ISAR4_EL1,
    sysreg::ID_ISAR5_EL1,
    sysreg::ID_MMFR4_EL1,
    sysreg::ID_ISAR6_EL1,
    sysreg::MVFR0_EL1,
    sysreg::MVFR1_EL1,
    sysreg::MVFR2_EL1,
    sysreg::ID_PFR2_EL1,
    sysreg::ID_DFR1_EL1,
    sysreg::ID_MMFR5_EL1,
    sysreg::ID_AA64PFR0_EL1,
    sysreg::ID_AA64PFR1_EL1,
    sysreg::ID_AA64DFR0_EL1,
    sysreg::ID_AA64DFR1_EL1,
    sysreg::ID_AA64AFR0_EL1,
    sysreg::ID_AA64AFR1_EL1,
    sysreg::ID_AA64ISAR0_EL1,
    sysreg::ID_AA64ISAR1_EL1,
    sysreg::ID_AA64MMFR0_EL1,
    sysreg::ID_AA64MMFR1_EL1,
    sysreg::ID_AA64MMFR2_EL1,
];

/// `ID_AA64PFR0_EL1.EL0`, bits \[3:0\]: 0b0010 = EL0 runs AArch64 and AArch32.
const PFR0_EL0_MASK: u64 = 0xf;
/// `ID_AA64PFR0_EL1.EL0` value for "AArch64 and AArch32".
const PFR0_EL0_AARCH32: u64 = 0b0010;

/// Number of encodings in the ID space: CRm 1–7 × op2 0–7.
const SLOTS: usize = 7 * 8;

/// The index of `key` in the ID space trapped by `HCR_EL2.TID3`, if it is
/// there (op0 3, op1 0, CRn 0, CRm 1–7).
fn slot(key: u32) -> Option<usize> {
    // Key layout: see `sysreg::key` (op0 [15:14], op1 [13:11], CRn [10:7],
    // CRm [6:3], op2 [2:0]).
    let op0 = (key >> 14) & 0x3;
    let op1 = (key >> 11) & 0x7;
    let crn = (key >> 7) & 0xf;
    let crm = (key >> 3) & 0xf;
    let op2 = key & 0x7;
    (op0 == 3 && op1 == 0 && crn == 0 && (1..=7).contains(&crm))
        .then(|| (crm as usize - 1) * 8 + op2 as usize)
}

/// Whether `key` is in the ID space `HCR_EL2.TID3` traps.
pub fn is_id_space(key: u32) -> bool {
    slot(key).is_some()
}

/// Whether `key` is one of the AArch32 feature registers (CRm 1–3).
fn is_aarch32(key: u32) -> bool {
    slot(key).is_some_and(|s| s < 3 * 8)
}

/// The guest's value of ID register `key` given the host's `host`: the
/// hidden fields cleared for [`HOST_REGS`], 0 for every other register.
pub fn sanitise(key: u32, host: u64) -> u64 {
    if !HOST_REGS.contains(&key) {
        return 0;
    }
    HIDDEN
        .iter()
        .filter(|f| f.reg == key)
        .fold(host, |v, f| v & !(FIELD_MASK << f.shift))
}

/// The hidden features the host value `host` of register `key` advertises.
fn features_in(key: u32, host: u64) -> u8 {
    HIDDEN
        .iter()
        .filter(|f| f.reg == key && (host >> f.shift) & FIELD_MASK != 0)
        .fold(0, |m, f| m | f.feature.bit())
}

/// What a trapped access to a system register gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdRegAnswer {
    /// Not an ID register: somebody else handles it.
    NotIdSpace,
    /// A read from EL1: put this value in the target register and go on.
    Read(u64),
    /// A write, or an access from EL0: UNDEFINED.
    Undefined,
}

/// The ID register values guests see, computed once from the host's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestIdRegs {
    values: [u64; SLOTS],
    /// [`Feature::bit`]s of the hidden features the host has.
    hidden: u8,
}

impl GuestIdRegs {
    /// The guest view from the host's registers: `read(key)` returns the
    /// host's value of a register of [`HOST_REGS`] (only those are asked,
    /// and the AArch32 ones only when the host has AArch32 at EL0).
    pub fn from_host(mut read: impl FnMut(u32) -> u64) -> Self {
        let pfr0 = read(sysreg::ID_AA64PFR0_EL1);
        let aarch32 = pfr0 & PFR0_EL0_MASK == PFR0_EL0_AARCH32;
        let mut regs = GuestIdRegs {
            values: [0; SLOTS],
            hidden: 0,
        };
        for &key in HOST_REGS {
            if is_aarch32(key) && !aarch32 {
                continue;
            }
            let host = if key == sysreg::ID_AA64PFR0_EL1 {
                pfr0
            } else {
                read(key)
            };
            if let Some(i) = slot(key) {
                regs.values[i] = sanitise(key, host);
            }
            regs.hidden |= features_in(key, host);
        }
        regs
    }

    /// The guest's value of ID register `key`; `None` outside the ID space.
    pub fn read(&self, key: u32) -> Option<u64> {
        slot(key).map(|i| self.values[i])
    }

    /// The answer to a trapped access `acc` (from EL0 if `from_el0`).
    pub fn answer(&self, acc: &SysRegAccess, from_el0: bool) -> IdRegAnswer {
        match self.read(acc.encoding()) {
            None => IdRegAnswer::NotIdSpace,
            Some(v) if acc.read && !from_el0 => IdRegAnswer::Read(v),
            Some(_) => IdRegAnswer::Undefined,
        }
    }

    /// The features the host has that guests do not see, in [`Feature::ALL`] order.
    pub fn hidden(&self) -> impl Iterator<Item = Feature> + '_ {
        Feature::ALL
            .into_iter()
            .filter(|f| self.hidden & f.bit() != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sysreg::*;
    use std::collections::HashMap;
    use std::vec::Vec;

    /// A host whose registers are given by `regs` (others read as 0) and
    /// which records what was asked.
    fn host(regs: &[(u32, u64)]) -> (GuestIdRegs, Vec<u32>) {
        let m: HashMap<u32, u64> = regs.iter().copied().collect();
        let mut asked = Vec::new();
        let g = GuestIdRegs::from_host(|k| {
            asked.push(k);
            m.get(&k).copied().unwrap_or(0)
        });
        (g, asked)
    }

    /// `value` with 4-bit `field` at `shift`.
    fn f(shift: u32, value: u64) -> u64 {
        value << shift
    }

    /// An Armv9-like CPU with every hidden feature. ID_AA64PFR0_EL1: CSV3 1,
    /// CSV2 2, DIT 1, AMU 1, MPAM 1, SEL2 1, SVE 1, RAS 2, GIC 1,
    /// AdvSIMD 1, FP 1, EL3/EL2 AArch64, EL1/EL0 AArch64 and AArch32.
    const MAX_PFR0: u64 = 0x1201_1111_2111_1122;
    /// ID_AA64PFR1_EL1: SME 1, MTE 3, SSBS 2, BT 1.
    const MAX_PFR1: u64 = 0x0000_0000_0100_0321;
    /// ID_AA64ISAR1_EL1: APA 5 (QARMA5), GPA 1, GPI 1, LRCPC 2, JSCVT 1, DPB 1, ...
    const MAX_ISAR1: u64 = 0x0011_2120_1120_1051;
    /// MAX_PFR0 as guests see it.
    const MAX_PFR0_GUEST: u64 = 0x1201_0010_0111_1122;

    #[test]
    fn id_space_is_crm_1_to_7_of_op0_3_op1_0_crn_0() {
        assert!(is_id_space(ID_AA64PFR0_EL1));
        assert!(is_id_space(ID_PFR0_EL1));
        assert!(is_id_space(ID_AA64SMFR0_EL1));
        assert!(is_id_space(key(3, 0, 0, 7, 7)));
        assert!(!is_id_space(MIDR_EL1)); // CRm 0: TID1/VPIDR, not TID3
        assert!(!is_id_space(MPIDR_EL1));
        assert!(!is_id_space(key(3, 0, 0, 8, 0)));
        assert!(!is_id_space(key(3, 1, 0, 0, 0))); // CCSIDR_EL1 (TID2)
        assert!(!is_id_space(key(3, 1, 0, 4, 0)));
        assert!(!is_id_space(key(2, 0, 0, 4, 0)));
        assert!(!is_id_space(key(3, 0, 1, 4, 0)));
        assert!(!is_id_space(ICC_SGI1R_EL1));
        let all: Vec<u32> = (1..=7)
            .flat_map(|crm| (0..8).map(move |op2| key(3, 0, 0, crm, op2)))
            .collect();
        let mut slots: Vec<usize> = all.iter().map(|&k| slot(k).unwrap()).collect();
        slots.sort_unstable();
        assert_eq!(slots, (0..SLOTS).collect::<Vec<_>>());
    }

    #[test]
    fn hidden_table_is_consistent() {
        for (i, h) in HIDDEN.iter().enumerate() {
            assert!(HOST_REGS.contains(&h.reg), "{}", h.name);
            assert_eq!(h.shift % 4, 0, "{}", h.name);
            assert!(h.shift <= 60, "{}", h.name);
            assert!(h.name.starts_with(sysreg::name(h.reg).unwrap()));
            assert!(
                !HIDDEN[..i]
                    .iter()
                    .any(|o| o.reg == h.reg && o.shift == h.shift),
                "{} twice",
                h.name
            );
        }
        for &k in HOST_REGS {
            assert!(is_id_space(k), "{:?}", sysreg::name(k));
        }
        assert!(!HOST_REGS.contains(&ID_AA64ZFR0_EL1));
        assert!(!HOST_REGS.contains(&ID_AA64SMFR0_EL1));
        assert!(!HOST_REGS.contains(&ID_AA64ISAR2_EL1));
        // Every feature has at least one field.
        for feat in Feature::ALL {
            assert!(HIDDEN.iter().any(|h| h.feature == feat), "{feat:?}");
        }
    }

    #[test]
    fn sve_sme_mte_pauth_amu_ras_mpam_read_as_zero() {
        let pfr0 = MAX_PFR0 | f(40, 1); // and MPAM 1
        let pfr1 = MAX_PFR1 | f(12, 1) | f(16, 1); // RAS_frac 1, MPAM_frac 1
        let (g, _) = host(&[
            (ID_AA64PFR0_EL1, pfr0),
            (ID_AA64PFR1_EL1, pfr1),
            (ID_AA64ISAR1_EL1, MAX_ISAR1 | f(8, 1) | f(28, 1)),
            (ID_AA64ZFR0_EL1, 0x0110_0110_0001_0011),
            (ID_AA64SMFR0_EL1, 0x80f1_0000_0000_0000),
        ]);
        let p0 = g.read(ID_AA64PFR0_EL1).unwrap();
        for shift in [28, 32, 40, 44] {
            assert_eq!((p0 >> shift) & 0xf, 0, "PFR0 field at {shift}");
        }
        // Everything else is the host's: EL0-EL3, FP, AdvSIMD, GIC, CSV2, CSV3, DIT.
        assert_eq!(
            p0,
            pfr0 & !(f(28, 0xf) | f(32, 0xf) | f(40, 0xf) | f(44, 0xf))
        );
        assert_eq!(p0, MAX_PFR0_GUEST);
        let p1 = g.read(ID_AA64PFR1_EL1).unwrap();
        assert_eq!(p1, 0x21, "SSBS and BT stay, MTE/RAS_frac/MPAM_frac/SME go");
        let i1 = g.read(ID_AA64ISAR1_EL1).unwrap();
        for shift in [4, 8, 24, 28] {
            assert_eq!((i1 >> shift) & 0xf, 0, "ISAR1 field at {shift}");
        }
        assert_eq!(i1, 0x0011_2120_0020_1001);
        assert_eq!(g.read(ID_AA64ZFR0_EL1), Some(0));
        assert_eq!(g.read(ID_AA64SMFR0_EL1), Some(0));
        let hidden: Vec<&str> = g.hidden().map(Feature::name).collect();
        assert_eq!(hidden, ["SVE", "SME", "MTE", "PAuth", "AMU", "RAS", "MPAM"]);
    }

    #[test]
    fn a_cpu_without_hidden_features_is_seen_as_it_is() {
        // Cortex-A72 (r0p3): ID_AA64PFR0 0x2222, ISAR0 0x11120, ...
        let regs = [
            (ID_AA64PFR0_EL1, 0x2222),
            (ID_AA64DFR0_EL1, 0x1030_5106),
            (ID_AA64ISAR0_EL1, 0x1_1120),
            (ID_AA64MMFR0_EL1, 0x1124),
            (ID_PFR0_EL1, 0x131),
            (ID_PFR1_EL1, 0x1_1011),
            (ID_ISAR5_EL1, 0x1_1121),
            (MVFR0_EL1, 0x1022_2222),
        ];
        let (g, _) = host(&regs);
        for (k, v) in regs {
            assert_eq!(g.read(k), Some(v), "{:?}", sysreg::name(k));
        }
        assert_eq!(g.hidden().count(), 0);
    }

    #[test]
    fn only_named_registers_are_read_from_the_host() {
        let (g, asked) = host(&[
            (ID_AA64PFR0_EL1, 0x2222),
            (ID_AA64ISAR2_EL1, 0x1234),
            (key(3, 0, 0, 7, 3), 0x1),
        ]);
        for &k in &asked {
            assert!(HOST_REGS.contains(&k), "{:?}", sysreg::name(k));
        }
        // ISAR2 (WFxT, CLRBHB, PAuth QARMA3, ...), MMFR3 and the reserved
        // encodings read as zero, as on Xen 4.17.
        assert_eq!(g.read(ID_AA64ISAR2_EL1), Some(0));
        assert_eq!(g.read(key(3, 0, 0, 7, 3)), Some(0));
        assert_eq!(g.read(key(3, 0, 0, 3, 3)), Some(0));
        assert_eq!(g.read(MIDR_EL1), None);
    }

    #[test]
    fn aarch32_registers_are_zero_without_aarch32_at_el0() {
        let regs = [
            (ID_AA64PFR0_EL1, 0x1111), // EL0..EL3 AArch64 only
            (ID_PFR0_EL1, 0x131),
            (MVFR0_EL1, 0x1022_2222),
            (ID_AA64ISAR0_EL1, 0x1_1120),
        ];
        let (g, asked) = host(&regs);
        assert!(!asked.iter().any(|&k| is_aarch32(k)), "{asked:?}");
        assert_eq!(g.read(ID_PFR0_EL1), Some(0));
        assert_eq!(g.read(MVFR0_EL1), Some(0));
        assert_eq!(g.read(ID_AA64ISAR0_EL1), Some(0x1_1120));

        // With AArch32 at EL0 they are the host's, AMU and RAS hidden.
        let (g, _) = host(&[
            (ID_AA64PFR0_EL1, 0x1112),
            (ID_PFR0_EL1, 0x1021_0131), // RAS 1, AMU 2, CSV2 1
            (ID_PFR2_EL1, 0x111),       // RAS_frac 1, SSBS 1, CSV3 1
        ]);
        assert_eq!(g.read(ID_PFR0_EL1), Some(0x0001_0131));
        assert_eq!(g.read(ID_PFR2_EL1), Some(0x011));
        let hidden: Vec<_> = g.hidden().collect();
        assert_eq!(hidden, [Feature::Amu, Feature::Ras]);
    }

    #[test]
    fn sanitise_clears_only_hidden_fields() {
        assert_eq!(sanitise(ID_AA64PFR0_EL1, u64::MAX), 0xffff_00f0_0fff_ffff);
        assert_eq!(sanitise(ID_AA64PFR1_EL1, u64::MAX), 0xffff_ffff_f0f0_00ff);
        assert_eq!(sanitise(ID_AA64ISAR1_EL1, u64::MAX), 0xffff_ffff_00ff_f00f);
        assert_eq!(sanitise(ID_AA64MMFR1_EL1, u64::MAX), u64::MAX);
        assert_eq!(sanitise(ID_AA64ZFR0_EL1, u64::MAX), 0);
        assert_eq!(sanitise(ID_AA64SMFR0_EL1, u64::MAX), 0);
        assert_eq!(sanitise(MIDR_EL1, u64::MAX), 0);
    }

    #[test]
    fn reads_from_el1_are_answered_writes_and_el0_are_undefined() {
        let (g, _) = host(&[(ID_AA64PFR0_EL1, MAX_PFR0)]);
        // MRS x3, ID_AA64PFR0_EL1: op0 3, op1 0, CRn 0, CRm 4, op2 0, Rt 3, read.
        let mrs = SysRegAccess {
            op0: 3,
            op1: 0,
            crn: 0,
            crm: 4,
            op2: 0,
            rt: 3,
            read: true,
        };
        assert_eq!(g.answer(&mrs, false), IdRegAnswer::Read(MAX_PFR0_GUEST));
        assert_eq!(g.answer(&mrs, true), IdRegAnswer::Undefined);
        let msr = SysRegAccess { read: false, ..mrs };
        assert_eq!(g.answer(&msr, false), IdRegAnswer::Undefined);
        let zfr0 = SysRegAccess { op2: 4, ..mrs };
        assert_eq!(g.answer(&zfr0, false), IdRegAnswer::Read(0));
        let midr = SysRegAccess { crm: 0, ..mrs };
        assert_eq!(g.answer(&midr, false), IdRegAnswer::NotIdSpace);
        // The ISS of `mrs x3, id_aa64pfr0_el1` decodes to the same access.
        let iss = (3 << 20) | (4 << 1) | (3 << 5) | 1;
        assert_eq!(SysRegAccess::from_iss(iss), mrs);
    }
}
