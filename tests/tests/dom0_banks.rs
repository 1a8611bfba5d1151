//! Dom0's 1:1 RAM in several banks, as Xen's `allocate_memory_11` gives it when one
//! contiguous block is not free: Linux Dom0 boots and sees all of it.
//!
//! The machine is made so that no single block holds Dom0: QEMU virt with 2 GiB (RAM
//! 0x4000_0000..0xC000_0000) and Dom0's kernel and initrd loaded in the middle, at
//! 0x8000_0000, so the free RAM is two blocks of about 900 MiB each (below and above the
//! modules) besides smaller pieces; `dom0_mem=1200M` then needs two banks. oxen logs
//! them ("d0: RAM bank i: start-end (N MiB)"); the test checks that Dom0's device tree
//! describes exactly those banks, that they add up to 1200 MiB, and that Linux uses more
//! than the largest of them (`/proc/meminfo`), then runs a DomU (foreign mappings go to
//! the extended regions, host RAM outside Dom0's banks).

use oxen_tests::dom0shell::{Budget, PROMPT, SHELL_ARGS, ok, shell_forbidden};
use oxen_tests::{Error, LinuxDom0, Qemu, Shell, initrd_addr_after, re};
use std::time::Duration;

const BUDGET: Duration = Duration::from_secs(900);
const MIB: u64 = 1 << 20;
/// Dom0's kernel, in the middle of RAM.
const KERNEL_ADDR: u64 = 0x8000_0000;
const DOM0_MEM_MIB: u64 = 1200;
const HYP_ARGS: &str =
    "dom0_mem=1200M console=dtuart dtuart=/pl011@9000000 loglvl=info guest_loglvl=info";

/// `(start, end)` of each "d0: RAM bank" line.
fn logged_banks(lines: &[oxen_tests::Line]) -> Vec<(u64, u64)> {
    let bank =
        regex::Regex::new(r"^\(oxen\) d0: RAM bank \d+: 0x([0-9a-f]+)-0x([0-9a-f]+) ").unwrap();
    lines
        .iter()
        .filter_map(|l| bank.captures(&l.text))
        .map(|c| {
            (
                u64::from_str_radix(&c[1], 16).unwrap(),
                u64::from_str_radix(&c[2], 16).unwrap(),
            )
        })
        .collect()
}

/// The `(start, end)` pairs of Dom0's `/memory*` nodes, from `od` output of their `reg`
/// (2 address and 2 size cells on virt, big-endian).
fn dt_banks(od: &str) -> Vec<(u64, u64)> {
    let bytes: Vec<u8> = od
        .split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("od byte"))
        .collect();
    assert_eq!(bytes.len() % 16, 0, "reg is not (2, 2) cells: {od}");
    bytes
        .chunks(16)
        .map(|c| {
            let start = u64::from_be_bytes(c[..8].try_into().unwrap());
            let size = u64::from_be_bytes(c[8..].try_into().unwrap());
            (start, start + size)
        })
        .collect()
}

#[test]
fn linux_dom0_boots_on_ram_in_two_banks() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let dom0 = LinuxDom0::from_cache()?;
    let kernel_len = std::fs::metadata(&dom0.image).unwrap().len();
    let initrd_addr = initrd_addr_after(KERNEL_ADDR, kernel_len);
    let mut q = Qemu::oxen()?
        .gic_version(3)
        .smp(2)
        .memory_mib(2048)
        .append(HYP_ARGS)
        .guest_kernel(&dom0.image, KERNEL_ADDR, SHELL_ARGS)
        .guest_initrd(&dom0.initrd, initrd_addr);
    for p in shell_forbidden() {
        q = q.forbid(p);
    }
    let mut q = q.spawn()?;
    q.expect(re(r"^\(oxen\) boot done"), b.left())?;
    let banks = logged_banks(&q.lines());
    assert!(banks.len() >= 2, "one block held Dom0: {banks:x?}");
    let total: u64 = banks.iter().map(|(s, e)| e - s).sum();
    assert_eq!(total, DOM0_MEM_MIB * MIB, "banks {banks:x?}");
    let largest = banks.iter().map(|(s, e)| e - s).max().unwrap();
    let modules = (
        KERNEL_ADDR,
        initrd_addr + std::fs::metadata(&dom0.initrd).unwrap().len(),
    );
    for w in banks.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "banks unsorted or overlapping: {banks:x?}"
        );
    }
    for &(s, e) in &banks {
        assert!(
            e <= modules.0 || s >= modules.1,
            "bank {s:#x}-{e:#x} over the modules"
        );
    }
    // Its summary line names the first bank, where the kernel is.
    let want = format!(
        "d0: {DOM0_MEM_MIB} MiB RAM at PA {:#x} -> IPA {:#x}, ",
        banks[0].0, banks[0].0
    );
    assert!(
        q.lines().iter().any(|l| l.text.contains(&want)),
        "no '{want}' line"
    );

    q.expect(re("^dom0: xencommons rc=0$"), b.left())?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;
    // Kernel console messages off: one printed while a command runs (after `xl destroy`,
    // "Unknown online node for memory at 0x0") can split the command's end marker.
    ok(&mut sh, "dmesg -n 1", &b)?;
    let od = ok(
        &mut sh,
        "for n in /proc/device-tree/memory*; do od -An -tx1 -v $n/reg; done",
        &b,
    )?;
    let mut seen = dt_banks(&od.text());
    seen.sort_unstable();
    assert_eq!(seen, banks, "Dom0's /memory reg against oxen's banks");

    let mem = ok(&mut sh, "grep MemTotal /proc/meminfo", &b)?;
    let kib: u64 = mem
        .value("MemTotal:")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no MemTotal:\n{mem}"));
    assert!(
        kib * 1024 > largest && kib * 1024 <= DOM0_MEM_MIB * MIB,
        "MemTotal {kib} kB: Linux does not use all banks ({banks:x?})"
    );

    // A DomU: grant and foreign mappings land in Dom0's extended regions.
    let out = sh.run("xl create /etc/xen/domu-plain.cfg && xl list", b.step())?;
    assert_eq!(out.status, 0, "{out}");
    assert!(out.lines.iter().any(|l| l.starts_with("domu ")), "{out}");
    ok(&mut sh, "xl destroy domu", &b)?;
    drop(sh);
    q.kill();
    Ok(())
}
