//! Dom0 storage that keeps data: the machine has a virtio disk (as `make run` gives it,
//! `.cache/run-disk.img`), which oxen passes through to Dom0 as `/dev/vda`; Dom0's `/init`
//! makes an ext2 filesystem on it the first time, mounts it on `/var/lib/xen/images` and
//! keeps the ready DomU's disk image `domu.img` there; `/etc/xen/domu.cfg` gives that
//! DomU `xvda` (the image) and `eth0` on `xenbr0` as 192.0.2.2 (the "PV disk and network"
//! issue, part 3).
//!
//! Two Dom0 boots (GICv3) on the same new, empty disk file:
//! 1. Dom0 formats the disk; the DomU of `domu.cfg` (its `/init` scenario `persist`)
//!    finds no mark at 8 MiB into its `xvda` and writes `first`; Dom0 pings it at
//!    192.0.2.2; `xl destroy`, created again: it reads `first` and writes `second`;
//!    `poweroff`.
//! 2. Dom0 mounts the disk as it is (no new filesystem); the DomU reads `second`.
//!
//! Timeouts: [`BUDGET`] for the test, scaled by `OXEN_TEST_TIMEOUT_SCALE`.

use oxen_tests::dom0shell::{Budget, HYP_ARGS, PROMPT, ok, power_off, shell_forbidden};
use oxen_tests::{Error, LinuxDom0, Qemu, Running, Shell, re};
use std::path::Path;
use std::time::Duration;

/// Dom0's command line as in `pv_io.rs` (`loglevel=5`: ring and port info lines stay off
/// the console, so they cannot split a prompt).
const SHELL_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=shell loglevel=5";
const BUDGET: Duration = Duration::from_secs(1500);
const LOG: &str = "/var/log/xen/console/guest-domu.log";
const DISK_MB: u64 = 1024;

/// Boots Dom0 with `disk` as its virtio disk; returns once the shell runs, checking the
/// store line (`formatted`: Dom0 made the filesystem in this boot).
fn boot(disk: &Path, formatted: bool, b: &Budget) -> Result<Running, Error> {
    let dom0 = LinuxDom0::from_cache()?;
    let mut q = Qemu::oxen()?
        .gic_version(3)
        .smp(2)
        .memory_mib(2048)
        .append(HYP_ARGS)
        .arg("-drive")
        .arg(&format!(
            "file={},if=none,format=raw,id=store",
            disk.display()
        ))
        .arg("-device")
        .arg("virtio-blk-device,drive=store")
        .linux_dom0(&dom0, SHELL_ARGS)?;
    for p in shell_forbidden().into_iter().chain([
        re(r"^dom0: bridge \S+ failed"),
        re(r"^dom0: store failed"),
        re(r"^domu: eth0 failed"),
    ]) {
        q = q.forbid(p);
    }
    let mut q = q.spawn()?;
    q.expect(re("^dom0: capabilities=control_d$"), b.left())?;
    q.expect(re("^dom0: xencommons rc=0$"), b.left())?;
    q.expect(re("^dom0: bridge xenbr0 192.0.2.1/24 up$"), b.left())?;
    let made = if formatted {
        ", made a new ext2 filesystem"
    } else {
        ""
    };
    q.expect(
        re(&format!(
            r"^dom0: store /var/lib/xen/images on /dev/vda \({DISK_MB} MiB{}\)$",
            made.replace('(', r"\(")
        )),
        b.left(),
    )?;
    Ok(q)
}

/// Creates the DomU of `/etc/xen/domu.cfg` in its `persist` scenario (writing `mark`
/// when given) and returns the mark it found on its disk.
fn persist(sh: &mut Shell<'_>, mark: Option<&str>, b: &Budget) -> Result<String, Error> {
    let args = match mark {
        Some(m) => format!("oxen.domu=persist oxen.mark={m}"),
        None => "oxen.domu=persist".to_string(),
    };
    ok(
        sh,
        &format!(
            "sed -e 's|rdinit=/init|& {args}|' /etc/xen/domu.cfg > /tmp/p.cfg && rm -f {LOG} && xl create /tmp/p.cfg"
        ),
        b,
    )?;
    let out = sh.run(
        &format!(
            "i=0; while ! grep -q 'domu: persist done' {LOG} 2>/dev/null && [ $i -lt 400 ]; do sleep 1; i=$((i+1)); done; grep -E '^(DOMU-INIT|domu: )' {LOG} | tr -d '\\r'; grep -q 'domu: persist done' {LOG}"
        ),
        b.left(),
    )?;
    assert_eq!(out.status, 0, "the DomU did not finish:\n{out}");
    assert!(
        !out.lines.iter().any(|l| l.contains(" failed")),
        "the DomU reports a failure:\n{out}"
    );
    let found = out
        .lines
        .iter()
        .find_map(|l| l.strip_prefix("domu: disk_mark="))
        .unwrap_or_else(|| panic!("no disk_mark in the DomU's console:\n{out}"));
    Ok(found.to_string())
}

#[test]
fn gicv3_domu_disk_on_dom0_virtio_disk_survives_restarts() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let disk = std::env::temp_dir().join(format!("oxen-pv-store-{}.img", std::process::id()));
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(DISK_MB << 20))
        .unwrap_or_else(|e| panic!("cannot make {}: {e}", disk.display()));
    let result = (|| {
        // First boot: a new disk.
        let mut q = boot(&disk, true, &b)?;
        let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;
        let out = ok(
            &mut sh,
            "grep ' /var/lib/xen/images ' /proc/mounts | cut -d' ' -f1-3; ls -ls /var/lib/xen/images/domu.img",
            &b,
        )?;
        assert!(
            out.lines
                .first()
                .is_some_and(|l| l == "/dev/vda /var/lib/xen/images ext4"),
            "{out}"
        );
        assert_eq!(
            persist(&mut sh, Some("first"), &b)?,
            "",
            "a new disk has a mark"
        );
        // The ready DomU's network: eth0 is 192.0.2.2 on xenbr0.
        let out = ok(
            &mut sh,
            &format!(
                "i=0; while ! grep -q 'domu: eth0 ' {LOG} && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; grep 'domu: eth0 ' {LOG} | tr -d '\\r'; ping -c 3 -W 5 192.0.2.2 | grep 'packets received'"
            ),
            &b,
        )?;
        assert!(out.text().contains("domu: eth0 192.0.2.2/24 up"), "{out}");
        assert!(out.text().contains("3 packets received"), "{out}");
        ok(&mut sh, "xl destroy domu", &b)?;
        assert_eq!(
            persist(&mut sh, Some("second"), &b)?,
            "first",
            "the DomU's data did not survive its restart"
        );
        ok(&mut sh, "xl destroy domu", &b)?;
        power_off(&mut sh, &b)?;
        drop(sh);

        // Second boot: the same disk, kept as it is.
        let mut q = boot(&disk, false, &b)?;
        let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;
        assert_eq!(
            persist(&mut sh, None, &b)?,
            "second",
            "the DomU's data did not survive Dom0's reboot"
        );
        ok(&mut sh, "xl destroy domu", &b)?;
        power_off(&mut sh, &b)
    })();
    let _ = std::fs::remove_file(&disk);
    result
}
