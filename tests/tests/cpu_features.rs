//! CPUs with features oxen does not virtualise (issue 10, "every Armv8/Armv9 CPU"):
//! Debian's Linux as Dom0 on QEMU's `-cpu max`, which has SVE, SME, MTE, pointer
//! authentication and RAS, on `-cpu neoverse-n2` (Armv9: SVE2, MTE, pointer
//! authentication) and on the Armv8.0 `-cpu cortex-a53` with a GICv2. As on Xen 4.17 the
//! ID registers Dom0 reads (trapped with `HCR_EL2.TID3`) hide them, so Linux never
//! touches them: it boots to its shell with no UNDEFINED instruction from the hypervisor
//! and no crash (before, its first SVE access trapped to EL2 and crashed Dom0), and
//! `/proc/cpuinfo` lists none of them.
//!
//! Machine: QEMU virt, GICv3 (GICv2 for the Cortex-A53), `-smp 2`, 2048 MiB; Dom0
//! 512 MiB running the `shell` scenario of `qemu/dom0/init.sh`. One Linux boot per CPU
//! model; the hypervisor's debug lines are on (`loglvl=all`) so that any UNDEFINED it
//! injects shows, and fails the test.
//!
//! The expectations of the Linux test hold on Xen 4.17 too (`OXEN_TEST_HYPERVISOR=
//! .cache/xen/root/boot/xen-4.17-arm64`), except that Xen 4.17 passes `ID_AA64PFR1_EL1.SME`
//! through.
//!
//! A second, quick test boots the bare-metal test guest's `cpufeatures` scenario on
//! `-cpu max`: it prints the ID registers it reads (each hidden field must be 0) and then,
//! with SVE and SME let through by its own `CPACR_EL1`, reads `ZCR_EL1`, runs `rdvl` and
//! reads `SMCR_EL1`: each traps to oxen (its debug line names the SVE or SME trap), and the
//! guest gets an UNDEFINED exception and carries on to a clean power-off.

use oxen_tests::{Error, LinuxDom0, Pattern, Qemu, Running, Shell, re, test_guest_bin};
use std::time::Duration;

/// The hypervisor command line (Xen's options; Xen needs the console ones).
const HYP_ARGS: &str =
    "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all";
/// Dom0's command line: the interactive shell.
const SHELL_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=shell";
/// The busybox shell's prompt, possibly followed by busybox's cursor position query.
const PROMPT: &str = r"dom0:\S*# (\x1b\[6n)?$";
/// Time allowed for each step (boot to the prompt, a command, power-off), before scaling.
const STEP: Duration = Duration::from_secs(300);

/// `/proc/cpuinfo` feature words (Linux `arch/arm64/kernel/cpuinfo.c`) of the features
/// hidden from guests: SVE, SME, MTE, pointer authentication.
const HIDDEN_HWCAPS: &[&str] = &[
    "sve",
    "sve2",
    "svebf16",
    "svei8mm",
    "svef32mm",
    "svef64mm",
    "sveaes",
    "svepmull",
    "svebitperm",
    "svesha3",
    "svesm4",
    "sme",
    "smei16i64",
    "smef64f64",
    "smei8i32",
    "smef16f32",
    "smeb16f32",
    "smef32f32",
    "smefa64",
    "mte",
    "mte3",
    "paca",
    "pacg",
];

/// Console lines that mean Linux, or the hypervisor on Linux's behalf, went wrong (on top of
/// the harness's `(oxen) ERROR`, `WARNING`, `panic`, `domain dN crashed`).
fn forbidden() -> Vec<Pattern> {
    vec![
        re(r"\bOops\b"),
        Pattern::from("BUG:"),
        re(r"(?i)call trace"),
        Pattern::from("Internal error:"),
        Pattern::from("Unable to handle kernel"),
        Pattern::from("Illegal instruction"),
        Pattern::from("dom0: shell exited"),
        // oxen's debug line for every UNDEFINED it injects ("...: undefined").
        re(r"^\(oxen\) .*: undefined$"),
    ]
}

/// Boot Linux Dom0 to its shell on QEMU's `-cpu cpu` with GIC version `gic`, check that
/// `/proc/cpuinfo` lists the `wanted` features and none of [`HIDDEN_HWCAPS`], power off.
fn linux_dom0_shell_on(cpu: &str, gic: u8, wanted: &[&str]) -> Result<(), Error> {
    let dom0 = LinuxDom0::from_cache()?;
    let mut qemu = Qemu::oxen()?
        .cpu(cpu)
        .gic_version(gic)
        .smp(2)
        .memory_mib(2048)
        .append(HYP_ARGS)
        .linux_dom0(&dom0, SHELL_ARGS)?;
    for p in forbidden() {
        qemu = qemu.forbid(p);
    }
    let mut q = qemu.spawn()?;
    q.expect("Xen 4.17 support found", STEP)?;
    q.expect("smp: Brought up 1 node, 2 CPUs", STEP)?;
    q.expect(re("^dom0: starting shell"), STEP)?;

    let mut sh = Shell::attach(&mut q, re(PROMPT), STEP)?;
    let out = sh.run("grep -m1 '^Features' /proc/cpuinfo", STEP)?;
    assert_eq!(out.status, 0, "{out}");
    let words: Vec<&str> = out
        .value("Features")
        .and_then(|v| v.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no Features line: {out}"))
        .split_whitespace()
        .collect();
    // The CPU is what `-cpu` says (FP, Advanced SIMD, atomics, ...)...
    for want in wanted {
        assert!(words.contains(want), "{want} missing on -cpu {cpu}: {out}");
    }
    // ...without the features the hypervisor does not virtualise.
    for hidden in HIDDEN_HWCAPS {
        assert!(
            !words.contains(hidden),
            "{hidden} offered to Dom0 on -cpu {cpu}: {out}"
        );
    }

    let q = sh.running();
    q.send("poweroff\r")?;
    q.expect("reboot: Power down", STEP)?;
    q.expect_exit_code(0, Duration::from_secs(60))
}

#[test]
fn linux_dom0_on_cpu_max_boots_to_its_shell_without_sve_sme_mte_or_pauth() -> Result<(), Error> {
    linux_dom0_shell_on("max", 3, &["fp", "asimd", "atomics"])
}

/// An Armv9 server core (SVE2, MTE, pointer authentication, BTI), GICv3.
#[test]
fn linux_dom0_on_neoverse_n2_boots_to_its_shell_without_sve_or_pauth() -> Result<(), Error> {
    linux_dom0_shell_on("neoverse-n2", 3, &["fp", "asimd", "atomics"])
}

/// The oldest Armv8.0 core QEMU models (no LSE atomics), on a GICv2 machine.
#[test]
fn linux_dom0_on_cortex_a53_gicv2_boots_to_its_shell() -> Result<(), Error> {
    linux_dom0_shell_on("cortex-a53", 2, &["fp", "asimd"])
}

/// The value the test guest printed for `reg` (`cpufeatures: <reg> = 0x...`).
fn id_value(q: &mut Running, reg: &str) -> Result<u64, Error> {
    let prefix = format!("cpufeatures: {reg} = 0x");
    let line = q.expect(re(&format!("^{prefix}[0-9a-f]+$")), STEP)?;
    Ok(u64::from_str_radix(&line.text[prefix.len()..], 16).unwrap())
}

/// The 4-bit field of `v` at `shift`.
fn field(v: u64, shift: u32) -> u64 {
    (v >> shift) & 0xf
}

#[test]
fn guest_on_cpu_max_sees_no_sve_sme_mte_pauth_and_gets_undefined_for_them() -> Result<(), Error> {
    let mut q = Qemu::oxen()?
        .cpu("max")
        .gic_version(3)
        .smp(1)
        .memory_mib(1024)
        .append("dom0_mem=128M loglvl=all")
        .guest_kernel(test_guest_bin()?, 0x5000_0000, "oxen.test=cpufeatures")
        .spawn()?;
    q.expect("TEST-GUEST cpufeatures start", STEP)?;

    let pfr0 = id_value(&mut q, "ID_AA64PFR0_EL1")?;
    assert_eq!(
        field(pfr0, 0),
        2,
        "EL0 AArch64+AArch32, from the host: {pfr0:#x}"
    );
    for (name, shift) in [("RAS", 28), ("SVE", 32), ("MPAM", 40), ("AMU", 44)] {
        assert_eq!(field(pfr0, shift), 0, "ID_AA64PFR0_EL1.{name}: {pfr0:#x}");
    }
    let pfr1 = id_value(&mut q, "ID_AA64PFR1_EL1")?;
    for (name, shift) in [("MTE", 8), ("RAS_frac", 12), ("MPAM_frac", 16), ("SME", 24)] {
        assert_eq!(field(pfr1, shift), 0, "ID_AA64PFR1_EL1.{name}: {pfr1:#x}");
    }
    assert_eq!(id_value(&mut q, "ID_AA64ZFR0_EL1")?, 0);
    assert_eq!(id_value(&mut q, "ID_AA64SMFR0_EL1")?, 0);
    let isar1 = id_value(&mut q, "ID_AA64ISAR1_EL1")?;
    for (name, shift) in [("APA", 4), ("API", 8), ("GPA", 24), ("GPI", 28)] {
        assert_eq!(
            field(isar1, shift),
            0,
            "ID_AA64ISAR1_EL1.{name}: {isar1:#x}"
        );
    }
    assert_ne!(field(isar1, 12), 0, "JSCVT, from the host: {isar1:#x}");

    // UNDEFINED: EC 0 with IL set.
    let undef = r"undefined \(ESR 0x2000000\)$";
    q.expect(
        re(&format!("^cpufeatures: write ID_AA64PFR0_EL1 {undef}")),
        STEP,
    )?;
    let trap = |class: &str| {
        re(&format!(
            r"^\(oxen\) debug: d0v0: {class} access trap .*: undefined$"
        ))
    };
    q.expect(trap("SVE"), STEP)?;
    q.expect(re(&format!("^cpufeatures: ZCR_EL1 {undef}")), STEP)?;
    q.expect(trap("SVE"), STEP)?;
    q.expect(re(&format!("^cpufeatures: RDVL {undef}")), STEP)?;
    q.expect(trap("SME"), STEP)?;
    q.expect(re(&format!("^cpufeatures: SMCR_EL1 {undef}")), STEP)?;
    q.expect("(oxen) d0: shutdown (poweroff)", STEP)?;
    q.expect_exit_code(0, STEP)
}
