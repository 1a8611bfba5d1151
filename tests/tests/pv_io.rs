//! PV disk and network: `xl create` with xl.cfg `disk = [...]` and `vif = [...]` lines gives
//! a DomU a working `xvda` and `eth0`, served by Dom0's unpatched `xen-blkback` and
//! `xen-netback` through oxen's grant tables and event channels (the "PV disk and network"
//! issue).
//!
//! One Dom0 boot per GIC version (GICv3 and GICv2, as `toolstack.rs`; Dom0's `/init` starts
//! xencommons and the bridge `xenbr0` with 192.0.2.1/24), then:
//! * bad device lines each fail `xl create` with one line and leave nothing (no domain, no
//!   xenstore nodes, no loop device): a missing disk target, a missing bridge, a vdev used
//!   twice, a MAC used twice;
//! * a DomU with a file-backed disk (Dom0 wrote a line at its start) and a vif on `xenbr0`,
//!   running `/init`'s `io` scenario: it reads Dom0's line from `/dev/xvda`, writes 4 MiB of
//!   random data and reads it back (same checksum, after dropping its caches), and pings
//!   192.0.2.1 ten times with no loss; Dom0 finds the DomU's data in the image file, pings
//!   192.0.2.2, and `xl block-list`/`network-list` show both devices connected (state 4);
//! * hot plug while it runs: `xl block-attach` (a Dom0 block device, `phy:/dev/loop7,xvdb,r`)
//!   and `xl network-attach` (a second vif) connect (frontend state 4, the vif on the
//!   bridge), `block-detach` and `network-detach` release them (interface, rows; the block
//!   device stays Dom0's);
//! * a second domain asking for the same image read-write is refused (one line, not created);
//! * `xl destroy`: the loop device, the vif interface and every device node are gone, and
//!   free memory is what it was;
//! * a DomU with both devices that checks itself and powers off: its monitor's destroy
//!   releases them as well; the image still holds what the first DomU wrote.
//!
//! Timeouts: [`BUDGET`] for the test, scaled by `OXEN_TEST_TIMEOUT_SCALE`.

use oxen_tests::dom0shell::{
    Budget, HYP_ARGS, PROMPT, assert_nothing_left, free_memory, ok, power_off, shell_forbidden,
};
use oxen_tests::{Error, LinuxDom0, Qemu, Running, Shell, re};
use std::time::Duration;

/// Dom0's command line: xencommons and xenbr0, then the shell. `loglevel=5` keeps the
/// kernel's informational lines about ports and rings (which arrive at any moment) off the
/// console, so they cannot split a prompt; warnings and worse still show.
const SHELL_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=shell loglevel=5";
const BUDGET: Duration = Duration::from_secs(1200);
const LOG: &str = "/var/log/xen/console/guest-domu.log";
const DISK_LINE: &str = "oxen-dom0-wrote-this";
const MAC: &str = "00:16:3e:00:00:02";

/// Writes `/tmp/<file>`: domu-plain.cfg with `args` on the kernel command line and `devices` lines.
fn cfg(
    sh: &mut Shell<'_>,
    file: &str,
    args: &str,
    devices: &[&str],
    b: &Budget,
) -> Result<String, Error> {
    let path = format!("/tmp/{file}");
    let mut cmd = format!("sed -e 's|rdinit=/init|& {args}|' /etc/xen/domu-plain.cfg > {path}");
    for d in devices {
        cmd.push_str(&format!(" && echo \"{d}\" >> {path}"));
    }
    ok(sh, &cmd, b)?;
    Ok(path)
}

fn value<'a>(lines: &'a [String], key: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("domu: {key}=")))
        .unwrap_or_else(|| panic!("no domu: {key}= in the DomU's console: {lines:?}"))
}

fn pv_io(gic: u8) -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let dom0 = LinuxDom0::from_cache()?;
    let mut q = Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .memory_mib(2048)
        .append(HYP_ARGS)
        .linux_dom0(&dom0, SHELL_ARGS)?;
    for p in shell_forbidden()
        .into_iter()
        .chain([re(r"^dom0: bridge \S+ failed")])
    {
        q = q.forbid(p);
    }
    let mut q: Running = q.spawn()?;
    q.expect(re("^dom0: capabilities=control_d$"), b.left())?;
    q.expect(re("^dom0: xencommons rc=0$"), b.left())?;
    q.expect(re("^dom0: bridge xenbr0 192.0.2.1/24 up$"), b.left())?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;

    // The disk image, with a line from Dom0 at its start.
    ok(
        &mut sh,
        &format!(
            "dd if=/dev/zero of=/tmp/disk.img bs=1M count=8 2>/dev/null && printf '{DISK_LINE}\\n' | dd of=/tmp/disk.img conv=notrunc 2>/dev/null"
        ),
        &b,
    )?;
    let free = free_memory(&mut sh, &b)?;
    let disk = "disk = [ 'format=raw, vdev=xvda, access=rw, target=/tmp/disk.img' ]";
    let vif = format!("vif = [ 'mac={MAC}, bridge=xenbr0' ]");

    // Bad device lines: one error line each, nothing created.
    let bad = [
        (
            "missing target",
            vec!["disk = [ '/tmp/no-such.img,raw,xvda,rw' ]"],
            "no-such.img",
        ),
        (
            "missing bridge",
            vec!["vif = [ 'bridge=xenbr9' ]"],
            "xenbr9",
        ),
        (
            "vdev twice",
            vec!["disk = [ '/tmp/disk.img,raw,xvda,rw', 'phy:/tmp/disk.img,xvda,r' ]"],
            "xvda",
        ),
        (
            "MAC twice",
            vec!["vif = [ 'mac=00:16:3e:00:00:07', 'mac=00:16:3e:00:00:07' ]"],
            "00:16:3e:00:00:07",
        ),
    ];
    for (what, lines, word) in bad {
        let path = cfg(&mut sh, "bad.cfg", "", &lines, &b)?;
        let out = sh.run(
            &format!(
                "xl create {path} >/tmp/out 2>/tmp/err; rc=$?; grep -v '^Parsing config from' /tmp/err | grep -v '^\\[ *[0-9.]*\\]'; cat /tmp/out; exit_is() {{ return $1; }}; exit_is $rc"
            ),
            b.step(),
        )?;
        assert_ne!(out.status, 0, "{what}: xl create succeeded:\n{out}");
        assert_eq!(
            out.lines.len(),
            1,
            "{what}: one error line expected:\n{out}"
        );
        assert!(
            out.lines[0].contains(word),
            "{what}: the error does not name {word}:\n{out}"
        );
        assert_nothing_left(&mut sh, free, &b)?;
    }

    // The DomU with a disk and a vif.
    let good = cfg(&mut sh, "io.cfg", "oxen.domu=io", &[disk, &vif], &b)?;
    ok(&mut sh, &format!("rm -f {LOG}; xl create {good}"), &b)?;
    let out = sh.run(
        &format!(
            "i=0; while ! grep -q 'domu: io done' {LOG} 2>/dev/null && [ $i -lt 400 ]; do sleep 1; i=$((i+1)); done; grep -E '^(DOMU-INIT|domu: )' {LOG} | tr -d '\\r'; grep -q 'domu: io done' {LOG}"
        ),
        b.left(),
    )?;
    assert_eq!(
        out.status, 0,
        "the DomU did not finish its io scenario:\n{out}"
    );
    let lines = &out.lines;
    assert!(
        !lines.iter().any(|l| l.contains(" failed")),
        "the DomU reports a failure:\n{out}"
    );
    assert_eq!(value(lines, "disk_hello"), DISK_LINE, "{out}");
    let wrote = value(lines, "disk_write_sha256").to_string();
    assert_eq!(wrote.len(), 64, "{out}");
    assert_eq!(
        value(lines, "disk_read_sha256"),
        wrote,
        "read back differs:\n{out}"
    );
    assert_eq!(value(lines, "eth0_mac"), MAC, "{out}");
    assert_eq!(
        value(lines, "ping_dom0"),
        "10/10",
        "ping from the DomU lost packets:\n{out}"
    );

    // What the DomU wrote is in Dom0's file; Dom0 reaches the DomU; both devices connected.
    let out = ok(
        &mut sh,
        "dd if=/tmp/disk.img bs=1M skip=1 count=4 2>/dev/null | sha256sum | cut -d' ' -f1",
        &b,
    )?;
    assert_eq!(
        out.lines.first(),
        Some(&wrote),
        "the image does not hold the DomU's data:\n{out}"
    );
    let out = ok(
        &mut sh,
        "ping -c 3 -W 5 192.0.2.2 | grep 'packets received'",
        &b,
    )?;
    assert!(out.text().contains("3 packets received"), "{out}");
    let out = ok(&mut sh, "xl block-list domu", &b)?;
    assert_eq!(
        out.lines[0].trim_end(),
        "Vdev  BE  handle state evt-ch ring-ref BE-path",
        "{out}"
    );
    let row = re(r"^51712 0   \d+\s+4     \d+\s+\d+\s+/local/domain/0/backend/vbd/\d+/51712");
    assert!(out.lines.get(1).is_some_and(|l| row.matches(l)), "{out}");
    let out = ok(&mut sh, "xl network-list domu", &b)?;
    let row = re(&format!(
        r"^0   0  {MAC}     0     4     -1\s+\d+/\d+\s+/local/domain/0/backend/vif/\d+/0"
    ));
    assert!(out.lines.get(1).is_some_and(|l| row.matches(l)), "{out}");
    let out = ok(
        &mut sh,
        "ls /sys/class/net/xenbr0/brif; cat /sys/block/loop*/loop/backing_file",
        &b,
    )?;
    assert!(
        out.lines
            .iter()
            .any(|l| l.starts_with("vif") && l.ends_with(".0")),
        "{out}"
    );
    assert!(out.lines.iter().any(|l| l == "/tmp/disk.img"), "{out}");

    // The same image for a second domain, read-write: refused while domu has it.
    let other = cfg(&mut sh, "other.cfg", "", &[disk], &b)?;
    let out = sh.run(
        &format!("sed -i 's/^name = .*/name = \"other\"/' {other} && xl create {other} 2>&1 | grep -v '^Parsing config'; xl list | grep -c '^other '"),
        b.step(),
    )?;
    assert!(
        out.lines
            .first()
            .is_some_and(|l| l.contains("already attached to domain")),
        "a disk in use read-write was attached again:\n{out}"
    );
    assert_eq!(out.lines.last().map(String::as_str), Some("0"), "{out}");

    // Hot plug while the DomU runs: a read-only second disk and a second vif connect
    // (their frontends reach Connected), then detach releases them.
    ok(
        &mut sh,
        "dd if=/dev/zero of=/tmp/disk2.img bs=1M count=2 2>/dev/null && losetup /dev/loop7 /tmp/disk2.img",
        &b,
    )?;
    ok(
        &mut sh,
        "xl block-attach domu phy:/dev/loop7,xvdb,r && xl network-attach domu mac=00:16:3e:00:00:03 bridge=xenbr0",
        &b,
    )?;
    let connected = |dev: &str| {
        format!(
            "d=$(xl domid domu); i=0; while [ \"$(xenstore-read /local/domain/$d/device/{dev}/state)\" != 4 ] && [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done; xenstore-read /local/domain/$d/device/{dev}/state"
        )
    };
    for dev in ["vbd/51728", "vif/1"] {
        let out = ok(&mut sh, &connected(dev), &b)?;
        assert_eq!(
            out.lines,
            ["4"],
            "hot-plugged {dev} did not connect:\n{out}"
        );
    }
    let out = ok(
        &mut sh,
        "xl block-list domu; xl network-list domu; ls /sys/class/net/xenbr0/brif",
        &b,
    )?;
    assert!(out.lines.iter().any(|l| l.starts_with("51728 0 ")), "{out}");
    assert!(
        out.lines
            .iter()
            .any(|l| l.starts_with("1   0  00:16:3e:00:00:03")),
        "{out}"
    );
    assert!(
        out.lines
            .iter()
            .any(|l| l.starts_with("vif") && l.ends_with(".1")),
        "{out}"
    );
    ok(
        &mut sh,
        "xl block-detach domu xvdb && xl network-detach domu 00:16:3e:00:00:03",
        &b,
    )?;
    let out = ok(
        &mut sh,
        "sleep 2; xl block-list domu; xl network-list domu; cat /sys/block/loop*/loop/backing_file; ls /sys/class/net | grep '^vif'",
        &b,
    )?;
    assert!(!out.lines.iter().any(|l| l.starts_with("51728")), "{out}");
    assert!(
        !out.lines.iter().any(|l| l.contains("00:16:3e:00:00:03")),
        "{out}"
    );
    // A block device given by the user stays as it was (only loop devices xl made go).
    assert!(out.lines.iter().any(|l| l == "/tmp/disk2.img"), "{out}");
    assert!(
        !out.lines
            .iter()
            .any(|l| l.starts_with("vif") && l.ends_with(".1")),
        "{out}"
    );
    assert!(out.lines.iter().any(|l| l == "/tmp/disk.img"), "{out}");
    ok(&mut sh, "losetup -d /dev/loop7", &b)?;

    ok(&mut sh, "xl destroy domu", &b)?;
    assert_nothing_left(&mut sh, free, &b)?;

    // A DomU that checks itself and powers off with both devices connected: its monitor's
    // destroy releases them too. The disk still holds what the first DomU wrote.
    let check = cfg(&mut sh, "check.cfg", "oxen.domu=check", &[disk, &vif], &b)?;
    ok(&mut sh, &format!("rm -f {LOG}; xl create {check}"), &b)?;
    ok(
        &mut sh,
        &format!(
            "i=0; while ! grep -q 'domu: check done' {LOG} 2>/dev/null && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; grep -q 'domu: check done' {LOG} && i=0; while xl domid domu >/dev/null 2>&1 && [ $i -lt 120 ]; do sleep 1; i=$((i+1)); done; ! xl domid domu >/dev/null 2>&1"
        ),
        &b,
    )?;
    assert_nothing_left(&mut sh, free, &b)?;
    let out = ok(
        &mut sh,
        "dd if=/tmp/disk.img bs=1M skip=1 count=4 2>/dev/null | sha256sum | cut -d' ' -f1",
        &b,
    )?;
    assert_eq!(
        out.lines.first(),
        Some(&wrote),
        "the DomU's data did not stay:\n{out}"
    );

    power_off(&mut sh, &b)
}

#[test]
fn gicv3_domu_disk_and_network_through_blkback_and_netback() -> Result<(), Error> {
    pv_io(3)
}

#[test]
fn gicv2_domu_disk_and_network_through_blkback_and_netback() -> Result<(), Error> {
    pv_io(2)
}
