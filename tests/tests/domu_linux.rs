//! Linux as a boot-time domain: Debian's stock arm64 kernel runs as a dom0less DomU (Xen's
//! `xen,domain` binding, no `xen,enhanced`: no xenstore, no PV drivers) next to a
//! bare-metal test guest, with the emulated console UART (`vpl011`, an SBSA UART at
//! 0x2200_0000, SPI 32) as its console — the static-partitioning setup a secure domain
//! beside a general one starts from.
//!
//! Checks: the kernel boots on the guest memory map with 2 vCPUs (virtual GICv3 at Xen's
//! guest addresses, virtual timer, PSCI), prints through the vUART as `(d1) ...` lines,
//! reaches its `/init` and busybox shell, which answers typed input through the vUART
//! (`echo domu-$((40+2))` gives `domu-42`), and powers itself off when told (`(oxen) d1:
//! shutdown (poweroff)`), while d2
//! keeps printing; when both are done the machine powers off (QEMU exits 0). No oxen
//! warning or error and no Linux oops, BUG or stall anywhere.

use oxen_tests::{DomainNode, LinuxDom0, Qemu, re, scaled, test_guest_bin};
use std::time::Duration;

/// Where the DomU kernel, its initrd and the test guest are loaded.
const LINUX_ADDR: u64 = 0x5000_0000;
const TEST_GUEST_ADDR: u64 = 0x4a00_0000;

const LINUX_FORBIDDEN: &[&str] = &[
    r"Oops",
    r"BUG:",
    r"kernel BUG at",
    r"\[ cut here \]",
    r"Call trace",
    r"Unable to handle kernel",
    r"Internal error:",
    r"soft lockup",
    r"rcu_sched self-detected stall",
    r"Kernel panic",
];

#[test]
fn linux_boots_as_a_dom0less_domu_with_a_vuart_console_beside_another_domain() {
    linux_domu(3, "domu_linux");
}

/// The same on GICv2: the DomU's GICC is the hardware's virtual CPU interface (GICV)
/// mapped at Xen's guest address 0x0300_2000.
#[test]
fn linux_domu_on_gicv2() {
    linux_domu(2, "domu_linux_gicv2");
}

fn linux_domu(gic: u8, name: &str) {
    let linux = LinuxDom0::from_cache().unwrap();
    let initrd_addr =
        oxen_tests::initrd_addr_after(LINUX_ADDR, std::fs::metadata(&linux.image).unwrap().len());
    let domu = DomainNode::new(
        &linux.image,
        LINUX_ADDR,
        "console=ttyAMA0 rdinit=/init oxen.dom0=shell",
    )
    .memory_mib(256)
    .cpus(2)
    .vpl011()
    .ramdisk(&linux.initrd, initrd_addr)
    .unwrap();
    let ticker = DomainNode::new(
        test_guest_bin().unwrap(),
        TEST_GUEST_ADDR,
        "oxen.test=count",
    );
    let mut q = Qemu::oxen()
        .unwrap()
        .gic_version(gic)
        .smp(2)
        .name(name)
        .with_domains(&[domu, ticker])
        .unwrap();
    for f in LINUX_FORBIDDEN {
        q = q.forbid(re(f));
    }
    let t = scaled(Duration::from_secs(300));
    let mut run = q.spawn().unwrap();
    run.expect(
        re(r"^\(oxen\) d1: \d+ MiB RAM at PA 0x[0-9a-f]+ -> IPA 0x40000000, 2 vCPU"),
        t,
    )
    .unwrap();
    run.expect(re(r"^\(d1\) .*Booting Linux on physical CPU"), t)
        .unwrap();
    if gic == 3 {
        run.expect(
            re(r"^\(d1\) .*GICv3: CPU0: found redistributor 0 region 0:0x0*3020000"),
            t,
        )
        .unwrap();
    } else {
        run.expect(re(r"^\(d1\) .*Root IRQ handler: gic_handle_irq$"), t)
            .unwrap();
    }
    run.expect(re(r"^\(d1\) .*smp: Brought up 1 node, 2 CPUs"), t)
        .unwrap();
    run.expect(re(r"^\(d1\) OXEN-DOM0-INIT$"), t).unwrap();
    run.expect(re(r"^\(d1\) dom0: hypervisor=none$"), t)
        .unwrap();
    // With no Dom0, console input goes to the domain with the console UART: the DomU's
    // shell answers through the vUART (RX interrupts), and powers the domain off.
    run.expect(
        re(r"^\(d1\) Enter 'help' for a list of built-in commands\.$"),
        t,
    )
    .unwrap();
    run.send("echo domu-$((40+2))\r").unwrap();
    run.expect(re(r"^\(d1\) domu-42$"), t).unwrap();
    run.send("poweroff\r").unwrap();
    run.expect(re(r"^\(oxen\) d1: shutdown \(poweroff\)$"), t)
        .unwrap();
    // The other domain ran all along (it ticked while Linux booted) and goes on.
    let before = run
        .lines()
        .iter()
        .filter(|l| l.text.starts_with("(d2) tick "))
        .count();
    assert!(before >= 3, "d2 ticked only {before} times while d1 ran");
    for _ in 0..3 {
        run.expect(re(r"^\(d2\) tick \d+$"), t).unwrap();
    }
    run.check().unwrap();
}
