//! Host tests: syndromes built from the Arm ARM field definitions (and
//! checked against their literal values), PSCI/SMCCC ids, MMIO value
//! plumbing and the crash report's exact text.

use crate::psci::{self, Call};
use crate::smccc::{self, FunctionId, Owner};
use crate::{
    DataAbort, Esr, ExceptionClass, FaultStatus, InstrAbort, Pstate, SysRegAccess, TrapReport, Wfx,
    fault_ipa, spsr_mode_name, stage2_fault_ipa,
};
use crate::{mmio, sysreg};
use std::string::String;
use std::vec::Vec;

/// Build an ESR from EC, IL and ISS the way the hardware lays them out.
fn esr(ec: u64, il32: bool, iss: u64) -> u64 {
    (ec << 26) | (u64::from(il32) << 25) | iss
}

// ---------------------------------------------------------------- ESR basics

#[test]
fn hvc64_xen_hypercall() {
    let e = Esr(0x5a00_0ea1);
    assert_eq!(e.0, esr(0x16, true, 0xea1));
    assert_eq!(e.class(), ExceptionClass::Hvc64);
    assert_eq!(e.ec(), 0x16);
    assert!(e.il32());
    assert_eq!(e.instr_len(), 4);
    assert_eq!(e.iss(), 0xea1);
    assert_eq!(e.hvc_imm(), 0xea1);
    assert_eq!(e.class_name(), "HVC from AArch64");
    assert_eq!(e.data_abort(), None);
    assert_eq!(e.instr_abort(), None);
    assert_eq!(e.wfx(), None);
    assert_eq!(e.sysreg(), None);
    // hvc #0: an SMCCC call.
    assert_eq!(Esr(0x5a00_0000).hvc_imm(), 0);
    // SMC #0 trapped by HCR_EL2.TSC.
    let s = Esr(esr(0x17, true, 0));
    assert_eq!(s.class(), ExceptionClass::Smc64);
    assert_eq!(s.class_name(), "SMC from AArch64");
}

#[test]
fn iss_and_il_ignore_neighbouring_fields() {
    // ISS2 (bits [63:32]) set, IL clear: ISS stays 25 bits, EC unchanged.
    let e = Esr(0xffff_ffff_0000_0000 | esr(0x24, false, 0x1ff_ffff));
    assert_eq!(e.iss(), 0x1ff_ffff);
    assert!(!e.il32());
    assert_eq!(e.instr_len(), 2);
    assert_eq!(e.ec(), 0x24);
}

#[test]
fn every_exception_class_round_trips() {
    let named = [
        (0x00, ExceptionClass::Unknown),
        (0x01, ExceptionClass::WfxTrap),
        (0x07, ExceptionClass::FpAccess),
        (0x09, ExceptionClass::PAuthTrap),
        (0x16, ExceptionClass::Hvc64),
        (0x17, ExceptionClass::Smc64),
        (0x18, ExceptionClass::SysReg),
        (0x19, ExceptionClass::SveAccess),
        (0x1d, ExceptionClass::SmeAccess),
        (0x20, ExceptionClass::InstrAbortLower),
        (0x21, ExceptionClass::InstrAbortSame),
        (0x22, ExceptionClass::PcAlignment),
        (0x24, ExceptionClass::DataAbortLower),
        (0x25, ExceptionClass::DataAbortSame),
        (0x26, ExceptionClass::SpAlignment),
        (0x2f, ExceptionClass::SError),
        (0x30, ExceptionClass::BreakpointLower),
        (0x32, ExceptionClass::SoftwareStepLower),
        (0x34, ExceptionClass::WatchpointLower),
        (0x3c, ExceptionClass::Brk),
    ];
    for ec in 0u8..64 {
        let class = Esr(esr(u64::from(ec), true, 0)).class();
        assert_eq!(class.ec(), ec);
        match named.iter().find(|(e, _)| *e == ec) {
            Some((_, want)) => assert_eq!(class, *want, "ec {ec:#x}"),
            None => assert_eq!(class, ExceptionClass::Other(ec), "ec {ec:#x}"),
        }
    }
}

#[test]
fn class_names() {
    let name = |ec| Esr(esr(ec, true, 0)).class_name();
    assert_eq!(name(0x00), "unknown reason");
    assert_eq!(name(0x01), "WFI/WFE trap");
    assert_eq!(name(0x15), "SVC from AArch64");
    assert_eq!(name(0x18), "MSR/MRS/system instruction trap");
    assert_eq!(name(0x20), "instruction abort from a lower EL");
    assert_eq!(name(0x24), "data abort from a lower EL");
    assert_eq!(name(0x25), "data abort from the same EL");
    assert_eq!(name(0x2f), "SError");
    assert_eq!(name(0x3c), "BRK from AArch64");
    assert_eq!(name(0x3f), "reserved exception class");
}

// --------------------------------------------------------------- data aborts

#[test]
fn data_abort_ldr_x0_translation_l2() {
    // ldr x0, [..] from EL1 hitting an unmapped IPA: ISV, SAS=0b11, SF, DFSC 0b000110.
    let raw = esr(0x24, true, (1 << 24) | (0b11 << 22) | (1 << 15) | 0b000110);
    assert_eq!(raw, 0x93c0_8006);
    let e = Esr(raw);
    assert_eq!(e.class(), ExceptionClass::DataAbortLower);
    assert_eq!(e.iss(), 0x1c0_8006);
    let da = e.data_abort().unwrap();
    assert_eq!(
        da,
        DataAbort {
            isv: true,
            access_size: 8,
            sign_extend: false,
            reg: 0,
            sixty_four: true,
            acquire_release: false,
            write: false,
            s1ptw: false,
            far_valid: true,
            cache_maint: false,
            fault: FaultStatus::Translation(2),
        }
    );
}

#[test]
fn data_abort_strh_w3_translation_l3() {
    // strh w3, [..]: ISV, SAS=0b01, SRT=3, SF=0, WnR, DFSC 0b000111.
    let raw = esr(
        0x24,
        true,
        (1 << 24) | (0b01 << 22) | (3 << 16) | (1 << 6) | 0b000111,
    );
    assert_eq!(raw, 0x9343_0047);
    let da = Esr(raw).data_abort().unwrap();
    assert!(da.isv);
    assert_eq!(da.access_size, 2);
    assert!(!da.sign_extend);
    assert_eq!(da.reg, 3);
    assert!(!da.sixty_four);
    assert!(!da.acquire_release);
    assert!(da.write);
    assert!(!da.s1ptw);
    assert!(da.far_valid);
    assert!(!da.cache_maint);
    assert_eq!(da.fault, FaultStatus::Translation(3));
    assert_eq!(da.store_data(0xdead_beef_cafe_f00d), 0xf00d);
}

#[test]
fn data_abort_every_flag_set_same_el() {
    // ISV, SAS=0 (byte), SSE, SRT=31 (xzr), SF, AR, FnV, CM, S1PTW, read, DFSC 0x10.
    let iss = (1 << 24)
        | (1 << 21)
        | (31 << 16)
        | (1 << 15)
        | (1 << 14)
        | (1 << 10)
        | (1 << 8)
        | (1 << 7)
        | 0x10;
    let raw = esr(0x25, true, iss);
    assert_eq!(raw, 0x973f_c590);
    let e = Esr(raw);
    assert_eq!(e.class(), ExceptionClass::DataAbortSame);
    let da = e.data_abort().unwrap();
    assert_eq!(
        da,
        DataAbort {
            isv: true,
            access_size: 1,
            sign_extend: true,
            reg: 31,
            sixty_four: true,
            acquire_release: true,
            write: false,
            s1ptw: true,
            far_valid: false,
            cache_maint: true,
            fault: FaultStatus::SyncExternal,
        }
    );
    assert_eq!(da.load_result(0x80), 0xffff_ffff_ffff_ff80);
}

#[test]
fn data_abort_without_syndrome() {
    // A write with ISV=0 (e.g. an STP or post-indexed store), translation fault level 2.
    let e = Esr(0x9200_0046);
    assert_eq!(e.0, esr(0x24, true, (1 << 6) | 0x06));
    let da = e.data_abort().unwrap();
    assert!(!da.isv);
    assert!(da.write);
    assert_eq!(da.access_size, 0);
    assert_eq!(da.reg, 0);
    assert!(!da.sign_extend && !da.sixty_four && !da.acquire_release);
    assert!(da.far_valid);
    assert_eq!(da.fault, FaultStatus::Translation(2));
    // Syndrome bits [23:14] are ignored when ISV is clear.
    let junk = Esr(esr(0x24, true, 0x00ff_c000 | 0x06))
        .data_abort()
        .unwrap();
    assert_eq!((junk.access_size, junk.reg, junk.sixty_four), (0, 0, false));
    assert!(!junk.sign_extend && !junk.acquire_release && !junk.write);
}

#[test]
fn instruction_aborts() {
    let e = Esr(0x8200_0006);
    assert_eq!(e.0, esr(0x20, true, 0x06));
    assert_eq!(e.class(), ExceptionClass::InstrAbortLower);
    assert_eq!(e.data_abort(), None);
    assert_eq!(
        e.instr_abort(),
        Some(InstrAbort {
            s1ptw: false,
            far_valid: true,
            fault: FaultStatus::Translation(2)
        })
    );
    // Same EL, on a stage-1 walk, FAR not valid, external abort.
    let e = Esr(esr(0x21, true, (1 << 10) | (1 << 7) | 0x10));
    assert_eq!(e.0, 0x8600_0490);
    assert_eq!(
        e.instr_abort(),
        Some(InstrAbort {
            s1ptw: true,
            far_valid: false,
            fault: FaultStatus::SyncExternal
        })
    );
}

// -------------------------------------------------------------- fault codes

#[test]
fn every_fsc_decodes_and_round_trips() {
    for fsc in 0u8..64 {
        let f = FaultStatus::from_fsc(fsc);
        assert_eq!(f.fsc(), fsc, "{f:?}");
        let l = fsc & 3;
        let want = match fsc {
            0x00..=0x03 => FaultStatus::AddressSize(l),
            0x04..=0x07 => FaultStatus::Translation(l),
            0x08..=0x0b => FaultStatus::AccessFlag(l),
            0x0c..=0x0f => FaultStatus::Permission(l),
            0x10 => FaultStatus::SyncExternal,
            0x14..=0x17 => FaultStatus::SyncExternalWalk(l),
            0x21 => FaultStatus::Alignment,
            0x30 => FaultStatus::TlbConflict,
            _ => FaultStatus::Other(fsc),
        };
        assert_eq!(f, want, "fsc {fsc:#x}");
        let has_level = !matches!(
            want,
            FaultStatus::SyncExternal
                | FaultStatus::Alignment
                | FaultStatus::TlbConflict
                | FaultStatus::Other(_)
        );
        assert_eq!(f.level(), has_level.then_some(l), "fsc {fsc:#x}");
    }
    // Only 6 bits count.
    assert_eq!(FaultStatus::from_fsc(0x46), FaultStatus::Translation(2));
}

#[test]
fn fault_descriptions() {
    let d = |fsc| FaultStatus::from_fsc(fsc).describe();
    assert_eq!(d(0x01), "address size fault");
    assert_eq!(d(0x07), "translation fault");
    assert_eq!(d(0x0a), "access flag fault");
    assert_eq!(d(0x0f), "permission fault");
    assert_eq!(d(0x10), "synchronous external abort");
    assert_eq!(d(0x15), "synchronous external abort on table walk");
    assert_eq!(d(0x21), "alignment fault");
    assert_eq!(d(0x30), "TLB conflict abort");
    assert_eq!(d(0x11), "synchronous tag check fault");
    assert_eq!(d(0x18), "synchronous parity or ECC error");
    assert_eq!(d(0x29), "address size fault, level -1");
    assert_eq!(d(0x2b), "translation fault, level -1");
    assert_eq!(d(0x31), "unsupported atomic hardware update fault");
    assert_eq!(d(0x3f), "reserved fault status code");
    assert_eq!(
        std::format!("{}", FaultStatus::Permission(3)),
        "permission fault, level 3 (FSC 0x0f)"
    );
    assert_eq!(
        std::format!("{}", FaultStatus::Alignment),
        "alignment fault (FSC 0x21)"
    );
}

#[test]
fn stage2_fault_address() {
    // IPA 0x0900_0ffe: FIPA = IPA[51:12] in HPFAR[43:4].
    let hpfar = (0x0900_0ffe_u64 >> 12) << 4;
    assert_eq!(hpfar, 0x9_0000);
    // FAR is a VA: only its page offset is used.
    assert_eq!(fault_ipa(hpfar, 0xffff_8000_1234_5ffe), 0x0900_0ffe);
    // NS (bit 63) and bits above FIPA are dropped; FIPA reaches IPA bit 51.
    let all = u64::MAX;
    assert_eq!(fault_ipa(all, 0), 0x000f_ffff_ffff_f000);
    assert_eq!(fault_ipa(1 << 63 | 0xf, 0xabc), 0xabc);
    assert_eq!(stage2_fault_ipa(hpfar, 4).as_u64(), 0x0900_0004);
}

// ------------------------------------------------------------------ WFx trap

#[test]
fn wfi_and_wfe() {
    // TI = 0b00 WFI, 0b01 WFE, 0b10 WFIT, 0b11 WFET; CV/COND (0x1e0_0000) do not matter.
    for (iss, want, timed) in [
        (0b00, Wfx::Wfi, false),
        (0b01, Wfx::Wfe, false),
        (0b10, Wfx::Wfi, true),
        (0b11, Wfx::Wfe, true),
        (0x1e0_0000, Wfx::Wfi, false),
        (0x1e0_0001, Wfx::Wfe, false),
    ] {
        let e = Esr(esr(0x01, true, iss));
        assert_eq!(e.class(), ExceptionClass::WfxTrap);
        assert_eq!(e.wfx(), Some(want), "iss {iss:#x}");
        assert_eq!(e.wfx_timed(), timed, "iss {iss:#x}");
    }
    assert_eq!(Esr(0x0600_0000).wfx(), Some(Wfx::Wfi));
    assert_eq!(Esr(0x0600_0001).wfx(), Some(Wfx::Wfe));
    // Not a WFx trap: no answer even if bit 0 is set.
    assert_eq!(Esr(esr(0x24, true, 1)).wfx(), None);
    assert!(!Esr(esr(0x24, true, 3)).wfx_timed());
}

// ------------------------------------------------------------ sysreg traps

#[test]
fn sysreg_icc_sgi1r_write() {
    // msr ICC_SGI1R_EL1, x1: Op0 3, Op2 5, Op1 0, CRn 12, Rt 1, CRm 11, Direction 0.
    let iss = (3 << 20) | (5 << 17) | (12 << 10) | (1 << 5) | (11 << 1);
    let raw = esr(0x18, true, iss);
    assert_eq!(raw, 0x623a_3036);
    let a = Esr(raw).sysreg().unwrap();
    assert_eq!(
        a,
        SysRegAccess {
            op0: 3,
            op1: 0,
            crn: 12,
            crm: 11,
            op2: 5,
            rt: 1,
            read: false
        }
    );
    assert_eq!(a.encoding(), sysreg::ICC_SGI1R_EL1);
    assert_eq!(a.name(), Some("ICC_SGI1R_EL1"));
    assert_eq!(std::format!("{a}"), "MSR ICC_SGI1R_EL1, x1");
    assert!(matches!(a.encoding(), sysreg::ICC_SGI1R_EL1));
}

#[test]
fn sysreg_read_and_unknown() {
    // mrs x30, CNTP_CTL_EL0: op0 3, op1 3, CRn 14, CRm 2, op2 1, read.
    let iss = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | (30 << 5) | (2 << 1) | 1;
    let a = Esr(esr(0x18, true, iss)).sysreg().unwrap();
    assert!(a.read);
    assert_eq!(a.rt, 30);
    assert_eq!(a.encoding(), sysreg::CNTP_CTL_EL0);
    assert_eq!(std::format!("{a}"), "MRS x30, CNTP_CTL_EL0");
    // A register not in the table prints in generic form; xzr as Rt.
    let iss = (3 << 20) | (4 << 14) | (1 << 10) | (31 << 5) | (1 << 1);
    let a = Esr(esr(0x18, true, iss)).sysreg().unwrap();
    assert_eq!(a.name(), None);
    assert_eq!(std::format!("{a}"), "MSR S3_4_C1_C1_0, xzr");
    // A set/way DC (op0 = 1) prints as SYS.
    let iss = (1 << 20) | (2 << 17) | (7 << 10) | (6 << 1);
    let a = Esr(esr(0x18, true, iss)).sysreg().unwrap();
    assert_eq!(a.encoding(), sysreg::DC_ISW);
    assert_eq!(std::format!("{a}"), "SYS DC_ISW, x0");
}

#[test]
fn sysreg_keys_match_mrs_encoding_and_are_unique() {
    // Keys equal bits [20:5] of the MRS/MSR instruction.
    let mrs_x0_cntpct_el0: u32 = 0xd53b_e020;
    let msr_sgi1r_x0: u32 = 0xd518_cba0;
    assert_eq!((mrs_x0_cntpct_el0 >> 5) & 0xffff, sysreg::CNTPCT_EL0);
    assert_eq!((msr_sgi1r_x0 >> 5) & 0xffff, sysreg::ICC_SGI1R_EL1);
    let keys = [
        sysreg::ICC_SGI1R_EL1,
        sysreg::ICC_SRE_EL1,
        sysreg::ICC_SGI0R_EL1,
        sysreg::ICC_ASGI1R_EL1,
        sysreg::CNTP_CTL_EL0,
        sysreg::CNTP_CVAL_EL0,
        sysreg::CNTP_TVAL_EL0,
        sysreg::CNTPCT_EL0,
        sysreg::MPIDR_EL1,
    ];
    for (i, a) in keys.iter().enumerate() {
        assert!(sysreg::name(*a).is_some());
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_eq!(sysreg::ICC_SRE_EL1, sysreg::key(3, 0, 12, 12, 5));
    assert_eq!(sysreg::name(sysreg::ICC_SRE_EL1), Some("ICC_SRE_EL1"));
    assert_eq!(sysreg::name(sysreg::CNTP_TVAL_EL0), Some("CNTP_TVAL_EL0"));
}

// ------------------------------------------------------------- SMCCC / PSCI

#[test]
fn function_id_fields() {
    let f = FunctionId(0x8400_0000);
    assert!(f.fast() && !f.is_64());
    assert_eq!(f.owner(), Owner::StdSecure);
    assert_eq!(f.number(), 0);
    let f = FunctionId(0xc400_0003);
    assert!(f.fast() && f.is_64());
    assert_eq!(f.owner(), Owner::StdSecure);
    assert_eq!(f.number(), 3);
    assert_eq!(FunctionId(0x8600_0000).owner(), Owner::VendorHyp);
    let f = FunctionId(smccc::SMCCC_ARCH_WORKAROUND_1);
    assert_eq!((f.owner(), f.number()), (Owner::Arch, 0x8000));
    let owners = [
        (0x8100_0000, Owner::Cpu),
        (0x8200_0000, Owner::Sip),
        (0xc300_0000, Owner::Oem),
        (0x8500_0000, Owner::StdHyp),
        (0xb000_0000, Owner::TrustedApp),
        (0xb100_0000, Owner::TrustedApp),
        (0xb200_0000, Owner::TrustedOs),
        (0xbf00_0000, Owner::TrustedOs),
        (0x8700_0000, Owner::Other(7)),
        (0xaf00_0000, Owner::Other(47)),
    ];
    for (id, owner) in owners {
        assert_eq!(FunctionId(id).owner(), owner, "{id:#x}");
    }
    assert!(!FunctionId(0x0400_0000).fast());
    assert!(FunctionId(0x8401_0000).sve_hint());
    assert!(!FunctionId(0x8400_0000).sve_hint());
    assert_eq!(FunctionId(0x8600_ff01).number(), 0xff01);
}

#[test]
fn psci_ids_have_the_documented_layout() {
    for id in [
        psci::PSCI_VERSION,
        psci::CPU_OFF,
        psci::SYSTEM_OFF,
        psci::PSCI_FEATURES,
    ] {
        let f = FunctionId(id);
        assert!(f.fast() && !f.is_64() && f.owner() == Owner::StdSecure);
    }
    for (a, b) in [
        (psci::CPU_SUSPEND_32, psci::CPU_SUSPEND_64),
        (psci::CPU_ON_32, psci::CPU_ON_64),
        (psci::AFFINITY_INFO_32, psci::AFFINITY_INFO_64),
        (psci::SYSTEM_SUSPEND_32, psci::SYSTEM_SUSPEND_64),
    ] {
        assert_eq!(a | (1 << 30), b);
        assert_eq!(FunctionId(a).number(), FunctionId(b).number());
    }
}

#[test]
fn psci_decode_32_and_64() {
    let junk = 0xaaaa_bbbb_0000_0000;
    assert_eq!(psci::decode([0x8400_0000, 0, 0, 0]), Call::Version);
    // The upper half of x0 is not part of the function id.
    assert_eq!(psci::decode([junk | 0x8400_0000, 0, 0, 0]), Call::Version);
    // CPU_ON 32: arguments truncated to 32 bits.
    let args = [junk | 0x101, junk | 0x4008_0000, junk | 0xcafe];
    assert_eq!(
        psci::decode([u64::from(psci::CPU_ON_32), args[0], args[1], args[2]]),
        Call::CpuOn {
            target_mpidr: 0x101,
            entry: 0x4008_0000,
            context: 0xcafe
        }
    );
    assert_eq!(
        psci::decode([u64::from(psci::CPU_ON_64), args[0], args[1], args[2]]),
        Call::CpuOn {
            target_mpidr: args[0],
            entry: args[1],
            context: args[2]
        }
    );
    assert_eq!(
        psci::decode([u64::from(psci::CPU_SUSPEND_32), args[0], args[1], args[2]]),
        Call::CpuSuspend {
            power_state: 0x101,
            entry: 0x4008_0000,
            context: 0xcafe
        }
    );
    assert_eq!(
        psci::decode([u64::from(psci::CPU_SUSPEND_64), 1, 2, 3]),
        Call::CpuSuspend {
            power_state: 1,
            entry: 2,
            context: 3
        }
    );
    assert_eq!(
        psci::decode([u64::from(psci::AFFINITY_INFO_32), junk | 1, junk, 0]),
        Call::AffinityInfo {
            target_mpidr: 1,
            lowest_level: 0
        }
    );
    assert_eq!(
        psci::decode([u64::from(psci::AFFINITY_INFO_64), junk | 1, 0, 0]),
        Call::AffinityInfo {
            target_mpidr: junk | 1,
            lowest_level: 0
        }
    );
    let simple = [
        (psci::CPU_OFF, Call::CpuOff),
        (psci::MIGRATE_INFO_TYPE, Call::MigrateInfoType),
        (psci::SYSTEM_OFF, Call::SystemOff),
        (psci::SYSTEM_RESET, Call::SystemReset),
        (smccc::SMCCC_VERSION, Call::SmcccVersion),
    ];
    for (fid, call) in simple {
        assert_eq!(psci::decode([u64::from(fid), 0, 0, 0]), call);
    }
    assert_eq!(
        psci::decode([
            u64::from(psci::PSCI_FEATURES),
            junk | u64::from(psci::CPU_ON_64),
            0,
            0
        ]),
        Call::Features {
            fid: psci::CPU_ON_64
        }
    );
    assert_eq!(
        psci::decode([
            u64::from(smccc::SMCCC_ARCH_FEATURES),
            u64::from(smccc::SMCCC_ARCH_WORKAROUND_1),
            0,
            0
        ]),
        Call::SmcccArchFeatures {
            fid: smccc::SMCCC_ARCH_WORKAROUND_1
        }
    );
}

#[test]
fn psci_decode_unknown_ids() {
    for fid in [
        0,
        psci::SYSTEM_SUSPEND_64,
        smccc::VENDOR_HYP_CALL_UID,
        smccc::SMCCC_ARCH_WORKAROUND_2,
        0x8400_0050,             // TRNG_VERSION: same owner, not PSCI
        psci::CPU_OFF | 1 << 30, // CPU_OFF has no 64-bit variant
        0x0400_0000,             // yielding call
        u32::MAX,
    ] {
        assert_eq!(
            psci::decode([u64::from(fid), 1, 2, 3]),
            Call::Unknown { fid }
        );
    }
}

#[test]
fn return_codes() {
    assert_eq!(
        [
            psci::SUCCESS,
            psci::NOT_SUPPORTED,
            psci::INVALID_PARAMETERS,
            psci::DENIED,
            psci::ALREADY_ON,
            psci::ON_PENDING,
            psci::INTERNAL_FAILURE,
            psci::NOT_PRESENT,
            psci::DISABLED,
            psci::INVALID_ADDRESS
        ],
        [0, -1, -2, -3, -4, -5, -6, -7, -8, -9]
    );
    assert_eq!(smccc::NOT_SUPPORTED as u64, u64::MAX);
    assert_eq!(psci::VERSION_1_1, 0x1_0001);
}

// ---------------------------------------------------------------------- MMIO

#[test]
fn mmio_load_values() {
    let raw = 0x1234_5678_9abc_def0;
    assert_eq!(mmio::load_value(raw, 1, false, true), 0xf0);
    assert_eq!(mmio::load_value(raw, 2, false, true), 0xdef0);
    assert_eq!(mmio::load_value(raw, 4, false, true), 0x9abc_def0);
    assert_eq!(mmio::load_value(raw, 8, false, true), raw);
    // Sign extension to X and to W (upper half of X zeroed).
    assert_eq!(mmio::load_value(0x80, 1, true, true), 0xffff_ffff_ffff_ff80);
    assert_eq!(mmio::load_value(0x80, 1, true, false), 0xffff_ff80);
    assert_eq!(mmio::load_value(0x7f, 1, true, true), 0x7f);
    assert_eq!(
        mmio::load_value(0x8000, 2, true, true),
        0xffff_ffff_ffff_8000
    );
    assert_eq!(mmio::load_value(0x8000, 2, true, false), 0xffff_8000);
    assert_eq!(
        mmio::load_value(0x8000_0000, 4, true, true),
        0xffff_ffff_8000_0000
    );
    // A 32-bit load into Wt drops high garbage.
    assert_eq!(
        mmio::load_value(0x1_2345_6789, 4, false, false),
        0x2345_6789
    );
    // Degenerate sizes never panic.
    assert_eq!(mmio::load_value(raw, 0, true, true), 0);
    assert_eq!(mmio::load_value(raw, 255, true, true), raw);
    assert_eq!(mmio::access_mask(3), 0xff_ffff);
}

#[test]
fn mmio_store_values_and_gprs() {
    let v = 0xdead_beef_cafe_f00d;
    assert_eq!(mmio::store_value(v, 1), 0x0d);
    assert_eq!(mmio::store_value(v, 2), 0xf00d);
    assert_eq!(mmio::store_value(v, 4), 0xcafe_f00d);
    assert_eq!(mmio::store_value(v, 8), v);
    let mut regs = [0u64; 31];
    regs[30] = 7;
    assert_eq!(mmio::read_gpr(&regs, 30), 7);
    assert_eq!(mmio::read_gpr(&regs, mmio::ZERO_REG), 0);
    assert_eq!(mmio::read_gpr(&regs, 200), 0);
    mmio::write_gpr(&mut regs, 5, 9);
    mmio::write_gpr(&mut regs, mmio::ZERO_REG, 1);
    mmio::write_gpr(&mut regs, 255, 1);
    let mut want = [0u64; 31];
    want[30] = 7;
    want[5] = 9;
    assert_eq!(regs, want);
}

#[test]
fn mmio_from_a_decoded_abort() {
    // ldrsh w2, [..]: SAS 0b01, SSE, SRT 2, SF 0.
    let da = Esr(esr(
        0x24,
        true,
        (1 << 24) | (1 << 22) | (1 << 21) | (2 << 16) | 0x07,
    ))
    .data_abort()
    .unwrap();
    assert_eq!(da.load_result(0xffff_8001), 0xffff_8001);
    assert_eq!(da.load_result(0x0000_7001), 0x7001);
    let mut regs = [0u64; 31];
    mmio::write_gpr(&mut regs, da.reg, da.load_result(0x1_8000));
    assert_eq!(regs[2], 0xffff_8000);
}

// -------------------------------------------------------------- SPSR / report

#[test]
fn spsr_modes() {
    for (spsr, name) in [
        (0x0, "EL0t"),
        (0x3c4, "EL1t"),
        (0x3c5, "EL1h"),
        (0x3c8, "EL2t"),
        (0x3c9, "EL2h"),
        (0xc, "EL3t"),
        (0xd, "EL3h"),
        (0x1, "invalid"),
        (0x10, "usr32"),
        (0x13, "svc32"),
        (0x1a, "hyp32"),
        (0x1f, "sys32"),
        (0x14, "invalid32"),
    ] {
        assert_eq!(spsr_mode_name(spsr), name, "spsr {spsr:#x}");
    }
    assert_eq!(std::format!("{}", Pstate(0x6000_03c5)), "EL1h nZCv DAIF");
    assert_eq!(std::format!("{}", Pstate(0x5)), "EL1h nzcv daif");
    assert_eq!(std::format!("{}", Pstate(0x9000_0340)), "EL0t NzcV DAiF");
}

fn numbered_regs() -> [u64; 31] {
    core::array::from_fn(|i| (i as u64) << 32 | i as u64)
}

#[test]
fn trap_report_golden_data_abort() {
    let regs = numbered_regs();
    let report = TrapReport {
        cpu: 1,
        context: "d1v0",
        esr: 0x9343_0047,
        elr: 0x4008_1234,
        spsr: 0x6000_03c5,
        far: 0x0900_0ffe,
        hpfar: Some(0x9_0000),
        regs: &regs,
        sp: 0x4010_0000,
    };
    let mut out = String::new();
    report.write_to(&mut out).unwrap();
    let want = "\
(oxen) d1v0 on CPU1: data abort from a lower EL (ESR 0x93430047: EC 0x24, IL 32, ISS 0x1430047)
(oxen)   data abort: write 2 bytes from w3; translation fault, level 3 (FSC 0x07)
(oxen)   ELR 0x0000000040081234  SPSR 0x600003c5 (EL1h nZCv DAIF)
(oxen)   FAR 0x0000000009000ffe  HPFAR 0x0000000000090000 (IPA 0x9000ffe)
(oxen)   x0  0000000000000000  x1  0000000100000001  x2  0000000200000002  x3  0000000300000003
(oxen)   x4  0000000400000004  x5  0000000500000005  x6  0000000600000006  x7  0000000700000007
(oxen)   x8  0000000800000008  x9  0000000900000009  x10 0000000a0000000a  x11 0000000b0000000b
(oxen)   x12 0000000c0000000c  x13 0000000d0000000d  x14 0000000e0000000e  x15 0000000f0000000f
(oxen)   x16 0000001000000010  x17 0000001100000011  x18 0000001200000012  x19 0000001300000013
(oxen)   x20 0000001400000014  x21 0000001500000015  x22 0000001600000016  x23 0000001700000017
(oxen)   x24 0000001800000018  x25 0000001900000019  x26 0000001a0000001a  x27 0000001b0000001b
(oxen)   x28 0000001c0000001c  x29 0000001d0000001d  x30 0000001e0000001e  sp  0000000040100000
";
    assert_eq!(out, want);

    // The callback form yields the same lines without prefix and newline.
    let mut lines = Vec::new();
    report.for_each_line(|args| lines.push(std::format!("{args}")));
    let from_text: Vec<String> = want
        .lines()
        .map(|l| l.strip_prefix("(oxen) ").unwrap().into())
        .collect();
    assert_eq!(lines, from_text);
}

#[test]
fn trap_report_golden_hypervisor_and_sysreg() {
    let regs = [0u64; 31];
    let mut report = TrapReport {
        cpu: 0,
        context: "hypervisor",
        esr: esr(0x25, true, 0x21 | (1 << 10)),
        elr: 0x4020_0abc,
        spsr: 0x3c9,
        far: 0,
        hpfar: None,
        regs: &regs,
        sp: 0,
    };
    let mut out = String::new();
    report.write_to(&mut out).unwrap();
    let head: Vec<&str> = out.lines().take(4).collect();
    assert_eq!(
        head,
        [
            "(oxen) hypervisor on CPU0: data abort from the same EL (ESR 0x96000421: EC 0x25, IL 32, ISS 0x421)",
            "(oxen)   data abort: read, no instruction syndrome (ISV=0); alignment fault (FSC 0x21); FAR not valid",
            "(oxen)   ELR 0x0000000040200abc  SPSR 0x000003c9 (EL2h nzcv DAIF)",
            "(oxen)   FAR 0x0000000000000000",
        ]
    );
    assert_eq!(out.lines().count(), 4 + 8);

    for (esr_val, line) in [
        (0x623a_3036, "  instruction: MSR ICC_SGI1R_EL1, x1"),
        (0x5a00_0ea1, "  instruction: HVC #0xea1"),
        (0x0600_0003, "  instruction: WFET"),
        (
            0x8200_0006,
            "  instruction abort: translation fault, level 2 (FSC 0x06)",
        ),
    ] {
        report.esr = esr_val;
        let mut lines = Vec::new();
        report.for_each_line(|a| lines.push(std::format!("{a}")));
        assert_eq!(lines[1], line);
    }
    // Classes without a detail line go straight to ELR.
    report.esr = esr(0x3c, true, 0x800);
    let mut lines = Vec::new();
    report.for_each_line(|a| lines.push(std::format!("{a}")));
    assert_eq!(
        lines[0],
        "hypervisor on CPU0: BRK from AArch64 (ESR 0xf2000800: EC 0x3c, IL 32, ISS 0x800)"
    );
    assert!(lines[1].starts_with("  ELR "));
}

#[test]
fn hostile_values_never_panic() {
    let regs = [u64::MAX; 31];
    let mut out = String::new();
    let mut seen_classes = 0;
    for ec in 0u64..64 {
        for iss in [0, 0x1ff_ffff, 0x155_5555, 0x0aa_aaaa, 0x100_003f] {
            for high in [0, 0xffff_ffff_0000_0000] {
                let raw = high | esr(ec, ec & 1 == 0, iss);
                let e = Esr(raw);
                let _ = (
                    e.data_abort(),
                    e.instr_abort(),
                    e.wfx(),
                    e.sysreg(),
                    e.hvc_imm(),
                );
                out.clear();
                TrapReport {
                    cpu: u32::MAX,
                    context: "d32767v4294967295",
                    esr: raw,
                    elr: u64::MAX,
                    spsr: u64::MAX,
                    far: u64::MAX,
                    hpfar: Some(u64::MAX),
                    regs: &regs,
                    sp: u64::MAX,
                }
                .write_to(&mut out)
                .unwrap();
                assert!(out.starts_with("(oxen) d32767v4294967295 on CPU4294967295: "));
                assert!(out.lines().all(|l| l.starts_with("(oxen) ")));
            }
        }
        seen_classes += 1;
    }
    assert_eq!(seen_classes, 64);
    for x0 in [0, u64::MAX, 0x8400_0003, 0xc400_0003] {
        let _ = psci::decode([x0, u64::MAX, u64::MAX, u64::MAX]);
    }
}

#[test]
fn sysreg_table_has_unique_keys_and_names() {
    let table = sysreg::NAMES;
    assert!(table.len() > 60);
    for (i, (k, n)) in table.iter().enumerate() {
        assert!(*k <= 0xffff, "{n}");
        assert_eq!(sysreg::name(*k), Some(*n));
        for (k2, n2) in &table[i + 1..] {
            assert_ne!(k, k2, "{n} and {n2} share a key");
            assert_ne!(n, n2);
        }
    }
}
