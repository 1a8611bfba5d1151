//! Foundation tests: boot `build/oxen.bin` in QEMU with `build/test-guest.bin` as Dom0 or as
//! boot-time (dom0less) domains and check the console against docs/design.md's contract
//! (banner, log prefixes, crash report, test-guest scenarios).
//!
//! Contract details these tests pin down (agreed with the hypervisor side):
//!
//! * Domain ids: boot-time domains are numbered in device-tree order starting at **d1**, as
//!   Xen does when a Dom0 exists, **also when there is no Dom0** (then no d0 exists).
//! * RAM report of a non-1:1 domain, one line when it is built:
//!   `(oxen) d<N>: <MiB> MiB RAM at PA <hex> -> IPA <hex>` (hex as `{:#x}`: `0x` + lowercase),
//!   optionally followed by `, <more>`.
//!   Guest RAM is allocated top-down and deterministically, so two boots with the same
//!   machine and domain sizes place each domain at the same PA.
//! * A domain crash is reported by `(oxen) d<N>v<M>: <what> at IPA <ipa> (...): domain d<N>
//!   crashed`, a plain info line (no `ERROR`/`WARNING`), and the domain prints nothing more.
//!   For an access to a host device the IPA may be given page-aligned.
//! * Dom0's console output is printed raw; other domains' lines are prefixed `(d<N>) `.
//!
//! By default a line with `(oxen) ERROR`, `WARNING`, `panic` (any case) or `domain dN crashed`
//! fails the test, except the crash line a test explicitly expects.

use oxen_tests::{
    DEFAULT_TIMEOUT, DomainNode, Error, Line, Pattern, Qemu, Running, re, test_guest_bin,
};
use regex::Regex;
use std::time::Duration;

const T: Duration = DEFAULT_TIMEOUT;

/// Where the Dom0 test guest is loaded (design.md: modules at ≥ 0x5000_0000).
const DOM0_ADDR: u64 = 0x5000_0000;
/// Where the kernels of boot-time domains d1 and d2 are loaded.
const D1_ADDR: u64 = 0x5000_0000;
const D2_ADDR: u64 = 0x5200_0000;
/// RAM of each boot-time domain in these tests, and its base IPA (`GUEST_RAM0_BASE`).
const DOMU_MIB: u64 = 64;
const DOMU_RAM_IPA: u64 = 0x4000_0000;

/// The boot banner for `cpus` CPUs and GIC version `gic`.
fn banner(gic: u8, cpus: u32) -> Pattern {
    re(&format!(
        r"^\(oxen\) oxen \S+ \(Xen ABI 4\.17\) on .+: {cpus} CPUs, \d+ MiB RAM, GICv{gic}$"
    ))
}

/// The crash report of d2's vCPU 0 naming IPA `ipa` (a regex fragment, e.g. `0x0*44000000`).
fn d2_crash(ipa: &str) -> Pattern {
    re(&format!(
        r"^\(oxen\) d2v0: .*\bIPA {ipa}\b.*: domain d2 crashed$"
    ))
}

/// One `(d<N>) tick <i>` line.
fn tick_of(dom: u32) -> Pattern {
    re(&format!(r"^\(d{dom}\) tick \d+$"))
}

/// The tick number of a `(d<N>) tick <i>` line.
fn tick_number(line: &Line, dom: u32) -> Option<u64> {
    line.text
        .strip_prefix(&format!("(d{dom}) tick "))?
        .parse()
        .ok()
}

/// oxen with the test guest as Dom0 running `bootargs`.
fn with_dom0(gic: u8, bootargs: &str) -> Result<Qemu, Error> {
    Ok(Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .append("dom0_mem=128M")
        .guest_kernel(test_guest_bin()?, DOM0_ADDR, bootargs))
}

/// oxen without Dom0 and with two boot-time domains of 64 MiB and one vCPU each, running
/// the test guest with `d1_args` and `d2_args` (they become d1 and d2).
fn two_domains(smp: u32, d1_args: &str, d2_args: &str) -> Result<Qemu, Error> {
    let guest = test_guest_bin()?;
    Qemu::oxen()?.smp(smp).with_domains(&[
        DomainNode::new(&guest, D1_ADDR, d1_args)
            .memory_mib(DOMU_MIB)
            .cpus(1),
        DomainNode::new(&guest, D2_ADDR, d2_args)
            .memory_mib(DOMU_MIB)
            .cpus(1),
    ])
}

/// Dom0 says hello and powers off, which ends QEMU with status 0.
fn banner_and_dom0_hello(gic: u8) -> Result<(), Error> {
    let mut q = with_dom0(gic, "oxen.test=hello")?.spawn()?;
    q.expect(banner(gic, 2), T)?;
    q.expect("TEST-GUEST hello start", T)?;
    q.expect("hello from test guest", T)?;
    q.expect_exit_code(0, T)
}

#[test]
fn gicv2_smp2_banner_then_dom0_hello_and_clean_poweroff() -> Result<(), Error> {
    banner_and_dom0_hello(2)
}

#[test]
fn gicv3_smp2_banner_then_dom0_hello_and_clean_poweroff() -> Result<(), Error> {
    banner_and_dom0_hello(3)
}

#[test]
fn unknown_hypercall_63_returns_enosys_to_dom0() -> Result<(), Error> {
    let mut q = with_dom0(3, "oxen.test=enosys")?.spawn()?;
    q.expect("TEST-GUEST enosys start", T)?;
    q.expect(re(r"hypercall 63 returned -38$"), T)?;
    q.expect_exit_code(0, T)
}

/// Both domains count to 19; their lines interleave: both reach tick 5 before either
/// reaches tick 19, and each counts 0..=19 in order.
#[test]
fn two_boot_time_domains_run_concurrently() -> Result<(), Error> {
    let args = "oxen.test=count oxen.count=20";
    let mut q = two_domains(2, args, args)?.spawn()?;
    q.expect_all(&[re(r"^\(d1\) tick 19$"), re(r"^\(d2\) tick 19$")], T)?;
    let lines = q.finish()?;
    let pos = |text: &str| lines.iter().position(|l| l.text == text);
    for d in [1, 2] {
        let ticks: Vec<u64> = lines.iter().filter_map(|l| tick_number(l, d)).collect();
        assert_eq!(ticks, (0..20).collect::<Vec<_>>(), "ticks of d{d}");
        assert!(
            pos(&format!("(d{d}) TEST-GUEST count start")).is_some(),
            "d{d} start line"
        );
    }
    let (a5, b5) = (pos("(d1) tick 5").unwrap(), pos("(d2) tick 5").unwrap());
    let (a19, b19) = (pos("(d1) tick 19").unwrap(), pos("(d2) tick 19").unwrap());
    assert!(
        a5.max(b5) < a19.min(b19),
        "domains ran one after the other: tick 5 at lines {a5}/{b5}, tick 19 at {a19}/{b19}"
    );
    Ok(())
}

/// d2 runs `d2_args` and is crashed with a report naming `ipa`; d1 (counting forever) keeps
/// ticking afterwards and d2 prints nothing more.
fn d2_crash_leaves_d1_running(mut q: Running, ipa: &str) -> Result<(), Error> {
    let crash = q.expect(d2_crash(ipa), T)?;
    let mut last = None;
    for _ in 0..3 {
        let l = q.expect(tick_of(1), T)?;
        let n = tick_number(&l, 1);
        assert!(n > last, "d1 ticks out of order: {last:?} then {l}");
        last = n;
    }
    let lines = q.finish()?;
    let at = lines.iter().position(|l| *l == crash).unwrap();
    let after: Vec<&Line> = lines[at + 1..]
        .iter()
        .filter(|l| l.text.starts_with("(d2) "))
        .collect();
    assert!(after.is_empty(), "d2 printed after its crash: {after:?}");
    Ok(())
}

#[test]
fn reading_past_own_ram_crashes_only_that_domain() -> Result<(), Error> {
    let end = DOMU_RAM_IPA + DOMU_MIB * 1024 * 1024;
    d2_crash_leaves_d1_running(
        two_domains(2, "oxen.test=count", "oxen.test=oob")?.spawn()?,
        &format!("0x0*{end:x}"),
    )
}

#[test]
fn reading_host_gic_distributor_crashes_only_that_domain() -> Result<(), Error> {
    // The test guest reads GICD_TYPER at 0x0800_0004; the report may give the exact IPA or
    // its page.
    d2_crash_leaves_d1_running(
        two_domains(2, "oxen.test=count", "oxen.test=gicd")?.spawn()?,
        "0x0*800000[04]",
    )
}

/// An access to an emulated device that the hardware reports without a syndrome (here an
/// `ldp` from the virtual GIC distributor) cannot be emulated: the guest gets a data abort
/// (as on Xen), its own exception handler runs, and the other domain is unaffected.
#[test]
fn undecodable_vgic_access_gets_a_data_abort_in_the_guest() -> Result<(), Error> {
    let mut run =
        two_domains(2, "oxen.test=count", "oxen.test=ldp oxen.addr=0x3001000")?.spawn()?;
    run.expect(
        re(r"^\(oxen\) d2v0: vGIC access at IPA 0x3001000 .*no syndrome.*: data abort injected$"),
        T,
    )?;
    // The guest's EL1 handler sees a synchronous external abort at that address.
    run.expect(
        re(r"^\(d2\) TEST-GUEST exception: .*ESR=0x96000010.*FAR=0x3001000"),
        T,
    )?;
    run.expect(re(r"^\(oxen\) d2: shutdown \(crash\)$"), T)?;
    for _ in 0..3 {
        run.expect(tick_of(1), T)?;
    }
    run.check()
}

/// Boot once to learn where d1's RAM is, then boot identically except that d2 writes to
/// that physical address (as an IPA of its own, which must not reach d1's RAM).
#[test]
fn writing_to_another_domains_ram_crashes_the_writer() -> Result<(), Error> {
    let ram =
        Regex::new(r"^\(oxen\) d1: (\d+) MiB RAM at PA 0x([0-9a-f]+) -> IPA 0x([0-9a-f]+)(,|$)")
            .unwrap();
    let parse = |l: &Line| -> (u64, u64, u64) {
        let c = ram.captures(&l.text).unwrap();
        let hex = |i: usize| u64::from_str_radix(&c[i], 16).unwrap();
        (c[1].parse().unwrap(), hex(2), hex(3))
    };

    let mut q = two_domains(2, "oxen.test=count", "oxen.test=count")?
        .name("writing_to_another_domains_ram_crashes_the_writer-1")
        .spawn()?;
    let (mib, pa, ipa) = parse(&q.expect(Pattern::Regex(ram.clone()), T)?);
    assert_eq!((mib, ipa), (DOMU_MIB, DOMU_RAM_IPA), "d1's RAM line");
    let d2_ram = DOMU_RAM_IPA..DOMU_RAM_IPA + DOMU_MIB * 1024 * 1024;
    assert!(
        !d2_ram.contains(&pa),
        "d1's RAM at PA {pa:#x} is inside d2's own IPA window: the test would prove nothing"
    );
    q.expect(tick_of(1), T)?;
    q.finish()?;

    let mut q = two_domains(
        2,
        "oxen.test=count",
        &format!("oxen.test=touch oxen.addr={pa:#x}"),
    )?
    .name("writing_to_another_domains_ram_crashes_the_writer-2")
    .spawn()?;
    let again = parse(&q.expect(Pattern::Regex(ram.clone()), T)?);
    assert_eq!(
        again,
        (mib, pa, ipa),
        "d1's RAM moved between identical boots"
    );
    d2_crash_leaves_d1_running(q, &format!("0x0*{pa:x}"))
}

/// On one physical CPU, d2 spins without hypercalls after its start line; d1 must still get
/// to tick (the scheduler preempts the spinner).
#[test]
fn spinning_domain_is_preempted_on_one_cpu() -> Result<(), Error> {
    let mut q = two_domains(1, "oxen.test=count", "oxen.test=spin")?.spawn()?;
    q.expect(re(r"^\(d2\) TEST-GUEST spin start$"), T)?;
    let mut last = None;
    for _ in 0..5 {
        let l = q.expect(tick_of(1), T)?;
        let n = tick_number(&l, 1);
        assert!(n > last, "d1 ticks out of order: {last:?} then {l}");
        last = n;
    }
    q.finish()?;
    Ok(())
}
