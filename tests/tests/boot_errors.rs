//! Fatal boot errors end the boot, as Xen's `panic()` does: when Dom0 cannot be built
//! (`dom0_mem=` larger than the free RAM, no Dom0 kernel module, a kernel that is not an
//! arm64 Image) oxen prints one `(oxen) fatal: <why>: <what to do>` line, then
//! "Reboot in five seconds..." and resets the machine (PSCI SYSTEM_RESET: under QEMU's
//! `-no-reboot` the run ends), or with Xen's `noreboot` option "Manual reset required
//! ('noreboot' specified)" and halts (PSCI SYSTEM_OFF, as Xen 4.17's `machine_halt`: QEMU
//! exits too). No domain runs in either case.
//!
//! Reset and halt are told apart by QEMU's `-action reboot=reset` (given after the
//! harness's `-no-reboot`, it wins): then a reset boots oxen again, a halt ends the run.
//! On QEMU's Raspberry Pi 4 model the reset goes through the board's PM watchdog
//! (`boards/rpi4.board`), which ends the run too.

use oxen_tests::{DEFAULT_TIMEOUT, Error, Pattern, Qemu, Running, re, temp_path, test_guest_bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = DEFAULT_TIMEOUT;
/// Where the Dom0 test guest is loaded.
const DOM0_ADDR: u64 = 0x5000_0000;
/// oxen's boot banner.
const BANNER: &str = r"^\(oxen\) oxen \S+ \(Xen ABI 4\.17\) on ";
/// What a fatal error with `dom0_mem=4096M` on a 2 GiB machine prints.
const TOO_LARGE: &str =
    r"^\(oxen\) fatal: dom0_mem=4096M is more than the (\d+) MiB of free RAM: lower dom0_mem$";

/// oxen on QEMU virt (2 GiB) with the test guest as Dom0 and `cmdline`; a domain that
/// runs, or a boot that completes, fails the test.
fn machine(cmdline: &str) -> Result<Qemu, Error> {
    Ok(no_domain_runs(Qemu::oxen()?.append(cmdline).guest_kernel(
        test_guest_bin()?,
        DOM0_ADDR,
        "oxen.test=hello",
    )))
}

fn no_domain_runs(q: Qemu) -> Qemu {
    q.forbid("TEST-GUEST")
        .forbid(re(r"^\(oxen\) boot done"))
        .forbid(re(r"^\(oxen\) d\d+: \d+ MiB RAM"))
}

/// The banners in the transcript so far.
fn banners(q: &Running) -> usize {
    let b = re(BANNER);
    q.lines().iter().filter(|l| b.matches(&l.text)).count()
}

/// The required case: too much `dom0_mem=` ends the QEMU run with the error line.
#[test]
fn too_large_dom0_mem_ends_the_run_with_one_line() -> Result<(), Error> {
    let mut q = machine("dom0_mem=4096M")?
        .forbid("Manual reset required")
        .spawn()?;
    let l = q.expect(re(TOO_LARGE), T)?;
    let free: u64 = regex::Regex::new(TOO_LARGE)
        .unwrap()
        .captures(&l.text)
        .unwrap()[1]
        .parse()
        .unwrap();
    assert!(
        (1900..2048).contains(&free),
        "free RAM of a 2 GiB machine less oxen and the module: {l}"
    );
    q.expect(re(r"^\(oxen\) Reboot in five seconds\.\.\.$"), T)?;
    q.expect_exit_code(0, T)?;
    assert_eq!(banners(&q), 1);
    Ok(())
}

/// The machine really is reset: with QEMU told to reboot on a reset, oxen boots again
/// (and fails again).
#[test]
fn fatal_error_resets_the_machine() -> Result<(), Error> {
    let mut q = machine("dom0_mem=4096M")?
        .arg("-action")
        .arg("reboot=reset")
        .spawn()?;
    q.expect(re(TOO_LARGE), T)?;
    q.expect(re(r"^\(oxen\) Reboot in five seconds\.\.\.$"), T)?;
    q.expect(re(BANNER), T)?;
    q.expect(re(TOO_LARGE), T)?;
    assert_eq!(banners(&q), 2);
    q.kill();
    Ok(())
}

/// With `noreboot` the machine halts (powers off, as Xen's machine_halt with PSCI 0.2+):
/// the run ends although a reset would have restarted it, after one boot.
#[test]
fn noreboot_halts_instead_of_rebooting() -> Result<(), Error> {
    let mut q = machine("dom0_mem=4096M noreboot")?
        .arg("-action")
        .arg("reboot=reset")
        .forbid("Reboot in five seconds")
        .spawn()?;
    q.expect(re(TOO_LARGE), T)?;
    q.expect(
        re(r"^\(oxen\) Manual reset required \('noreboot' specified\)$"),
        T,
    )?;
    q.expect_exit_code(0, T)?;
    assert_eq!(banners(&q), 1, "the machine was reset, not halted");
    Ok(())
}

/// No Dom0 kernel module and no boot-time domain: nothing to run.
#[test]
fn missing_dom0_module_ends_the_run() -> Result<(), Error> {
    let mut q = no_domain_runs(Qemu::oxen()?.append("dom0_mem=512M")).spawn()?;
    q.expect(
        re(r"^\(oxen\) fatal: no Dom0 kernel module and no boot-time domain: add a multiboot,kernel module under /chosen"),
        T,
    )?;
    q.expect(re(r"^\(oxen\) Reboot in five seconds\.\.\.$"), T)?;
    q.expect_exit_code(0, T)
}

/// A Dom0 kernel module that is not an arm64 Image (here 64 KiB of text) is refused, as
/// Xen refuses it ("Could not set up DOM0 guest OS").
#[test]
fn dom0_kernel_that_is_not_an_image_ends_the_run() -> Result<(), Error> {
    let junk = temp_path("not-an-image", "bin")?;
    std::fs::write(&junk, "not a kernel\n".repeat(5000)).unwrap();
    let q = no_domain_runs(Qemu::oxen()?.append("dom0_mem=512M noreboot").guest_kernel(
        &junk,
        DOM0_ADDR,
        "console=hvc0",
    ));
    let r = (|| {
        let mut q = q.spawn()?;
        q.expect(
            re(r"^\(oxen\) fatal: Dom0 cannot be built: its kernel module is not an arm64 Image .*: give an uncompressed arm64 Linux Image"),
            T,
        )?;
        q.expect(Pattern::from("Manual reset required"), T)?;
        q.expect_exit_code(0, T)
    })();
    let _ = std::fs::remove_file(&junk);
    r
}

fn fdtput(dtb: &Path, args: &[&str]) {
    let st = Command::new("fdtput")
        .arg(dtb)
        .args(args)
        .status()
        .expect("fdtput (device-tree-compiler) not found: run `make setup`");
    assert!(st.success(), "fdtput {args:?} failed");
}

/// Debian's `bcm2711-rpi-4-b.dtb` (unpacked by `make dom0`) edited for QEMU raspi4b as
/// `tests/rpi4.rs` does (nodes QEMU does not model disabled) with oxen's command line and
/// one Dom0 kernel module at `addr` of `size` bytes under `/chosen`.
fn rpi4_dtb(cmdline: &str, addr: u64, size: u64) -> PathBuf {
    let cache = std::env::var_os("OXEN_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| oxen_tests::workspace_root().join(".cache"));
    let kver = std::fs::read_to_string(cache.join("dom0/kver"))
        .expect(".cache/dom0/kver missing: run `make dom0`");
    let src = cache.join(format!(
        "dom0-root/usr/lib/linux-image-{}/broadcom/bcm2711-rpi-4-b.dtb",
        kver.trim()
    ));
    let out = temp_path("rpi4-fatal", "dtb").unwrap();
    std::fs::copy(&src, &out).unwrap_or_else(|e| panic!("{}: {e}: run `make dom0`", src.display()));
    for n in [
        "clock@7ef00000",
        "interrupt-controller@7ef00100",
        "hdmi@7ef00700",
        "i2c@7ef04500",
        "hdmi@7ef05700",
        "i2c@7ef09500",
    ] {
        fdtput(
            &out,
            &["-t", "s", &format!("/soc/{n}"), "status", "disabled"],
        );
    }
    fdtput(&out, &["-t", "x", "/chosen", "#address-cells", "2"]);
    fdtput(&out, &["-t", "x", "/chosen", "#size-cells", "2"]);
    fdtput(&out, &["-t", "s", "/chosen", "xen,xen-bootargs", cmdline]);
    let node = format!("/chosen/module@{addr:x}");
    fdtput(&out, &["-c", &node]);
    fdtput(
        &out,
        &[
            "-t",
            "s",
            &node,
            "compatible",
            "multiboot,kernel",
            "multiboot,module",
        ],
    );
    let cells = [
        addr >> 32,
        addr & 0xffff_ffff,
        size >> 32,
        size & 0xffff_ffff,
    ];
    let cells: Vec<String> = cells.iter().map(|c| format!("{c:x}")).collect();
    let mut args = vec!["-t", "x", node.as_str(), "reg"];
    args.extend(cells.iter().map(String::as_str));
    fdtput(&out, &args);
    out
}

/// On the Raspberry Pi 4 (QEMU raspi4b, 960 MiB) the fatal line is the same and the
/// board's reset, the PM watchdog, ends the run.
#[test]
fn raspi4b_too_large_dom0_mem_resets_through_the_pm_watchdog() -> Result<(), Error> {
    const ADDR: u64 = 0x1000_0000;
    let guest = test_guest_bin()?;
    let size = std::fs::metadata(&guest).unwrap().len();
    let dtb = rpi4_dtb("dom0_mem=2048M dtuart=serial0", ADDR, size);
    let q = no_domain_runs(
        Qemu::oxen()?
            .machine_type("raspi4b")
            .smp(4)
            .memory_mib(2048)
            .dtb(&dtb)
            .loader(&guest, ADDR),
    );
    let r = (|| {
        let mut q = q.spawn()?;
        q.expect(re(r"^\(oxen\) board: Raspberry Pi 4"), T)?;
        q.expect(
            re(r"^\(oxen\) fatal: dom0_mem=2048M is more than the \d+ MiB of free RAM: lower dom0_mem$"),
            T,
        )?;
        q.expect(re(r"^\(oxen\) Reboot in five seconds\.\.\.$"), T)?;
        q.expect_exit_code(0, T)
    })();
    let _ = std::fs::remove_file(&dtb);
    r
}
