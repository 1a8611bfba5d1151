//! CPUs with features oxen does not virtualise (issue 10, "every Armv8/Armv9 CPU"):
//! Debian's Linux as Dom0 on QEMU's `-cpu max`, which has SVE, SME, MTE, pointer
//! authentication and RAS. As on Xen 4.17 the ID registers Dom0 reads (trapped with
//! `HCR_EL2.TID3`) hide them, so Linux never touches them: it boots to its shell with no
//! UNDEFINED instruction from the hypervisor and no crash (before, its first SVE access
//! trapped to EL2 and crashed Dom0), and `/proc/cpuinfo` lists none of them.
//!
//! Machine: QEMU virt, GICv3, `-cpu max`, `-smp 2`, 2048 MiB; Dom0 512 MiB running the
//! `shell` scenario of `qemu/dom0/init.sh`. One Linux boot; the hypervisor's debug lines
//! are on (`loglvl=all`) so that any UNDEFINED it injects shows, and fails the test.
//!
//! The expectations hold on Xen 4.17 too (`OXEN_TEST_HYPERVISOR=.cache/xen/root/boot/
//! xen-4.17-arm64`), except that Xen 4.17 passes `ID_AA64PFR1_EL1.SME` through.

use oxen_tests::{Error, LinuxDom0, Pattern, Qemu, Shell, re};
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

#[test]
fn linux_dom0_on_cpu_max_boots_to_its_shell_without_sve_sme_mte_or_pauth() -> Result<(), Error> {
    let dom0 = LinuxDom0::from_cache()?;
    let mut qemu = Qemu::oxen()?
        .cpu("max")
        .gic_version(3)
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
    // The CPU is what `-cpu max` says (FP, Advanced SIMD, atomics, ...)...
    for want in ["fp", "asimd", "atomics"] {
        assert!(words.contains(&want), "{want} missing: {out}");
    }
    // ...without the features the hypervisor does not virtualise.
    for hidden in HIDDEN_HWCAPS {
        assert!(!words.contains(hidden), "{hidden} offered to Dom0: {out}");
    }

    let q = sh.running();
    q.send("poweroff\r")?;
    q.expect("reboot: Power down", STEP)?;
    q.expect_exit_code(0, Duration::from_secs(60))
}
