//! Xen's own arm64 CI smoke scenarios for PV disk and network (xen-project/xen
//! `automation/scripts/qemu-smoke-dom0-arm64.sh`, `qemu-smoke-dom0less-arm64.sh`,
//! `qemu-alpine-x86_64.sh`), adapted to `xl create` from Dom0's shell, and `xl destroy`
//! under heavy traffic (the "PV disk and network" issue).
//!
//! One Dom0 boot per GIC version (GICv3 and GICv2; Dom0's `/init` starts xencommons and the
//! bridge `xenbr0` with 192.0.2.1/24), then in sequence, each DomU running a scenario of
//! its `/init` (`qemu/domu/init.sh`):
//! * **ext4**: Dom0 makes an ext4 filesystem (e2fsprogs' `mkfs.ext4`) in a file and writes
//!   a line and 512 KiB of random data there; a DomU with that file as `xvda` mounts it as
//!   ext4, reads both (checksum), writes its own random file and a line, unmounts and
//!   powers off; once it is gone (and its loop device freed) `e2fsck -fn` finds the
//!   filesystem clean and Dom0 reads the DomU's file (checksum) through a loop mount.
//! * **TCP both ways**: 4 MiB of random data DomU -> Dom0 and 4 MiB Dom0 -> DomU over the
//!   bridge with busybox `nc`, the sha256 on the receiving side equal to the sender's;
//!   then an event-channel ping-pong between a Dom0 process and a DomU process over an
//!   interdomain channel (`evtchn-ping --serve 0` in the DomU, `--connect` in Dom0).
//! * **`xl destroy` under traffic**: a DomU writes 1 MiB blocks to its `xvda` (syncing
//!   every second block and printing the checksums of what it synced) while streaming TCP
//!   to Dom0 and receiving a stream from it; Dom0 checks that both vif counters move, then
//!   destroys it. Afterwards Dom0's shell answers, its kernel log has no oops/BUG/stall,
//!   only Domain-0 is listed, no loop device holds the image, no vif is left, free memory
//!   is back; a new DomU on the same image reads back every block the first one had
//!   synced with the same checksum.
//!
//! Dom0's console is watched throughout for kernel errors ([`shell_forbidden`]); the DomU
//! consoles (xenconsoled's logs) are checked for `failed` lines and kernel errors.
//! Timeouts: [`BUDGET`] for the test, scaled by `OXEN_TEST_TIMEOUT_SCALE`.

use oxen_tests::dom0shell::{
    Budget, HYP_ARGS, PROMPT, assert_nothing_left, domu_value, free_memory, ok, power_off,
    shell_forbidden, wait_domu_log,
};
use oxen_tests::{Error, LinuxDom0, Qemu, Running, Shell, re};
use std::time::Duration;

/// Dom0's command line: xencommons and xenbr0, then the shell; `loglevel=5` keeps the
/// kernel's informational lines (ports, rings) from splitting a prompt.
const SHELL_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=shell loglevel=5";
const BUDGET: Duration = Duration::from_secs(2400);
const LOGS: &str = "/var/log/xen/console";
const DOM0_LINE: &str = "oxen-dom0-wrote-this";
const VIF: &str = "vif = [ 'mac=00:16:3e:00:00:02, bridge=xenbr0' ]";
/// Blocks the storm DomU writes once each (its oxen.storm_blocks); 8 more are rewritten.
const STORM_BLOCKS: usize = 24;
/// Blocks synced before Dom0 destroys the storm DomU.
const STORM_MIN_SYNCED: usize = 6;
/// A `grep -E` pattern for kernel errors and DomU failure lines, bracketed so that the
/// typed command (echoed on Dom0's console) does not match the harness's forbidden lines.
const KERNEL_ERRORS: &str = "^domu: .*fail[e]d|O[o]ps|B[U]G:|[C]all trace|U[n]able to handle|detected s[t]all|blocked for m[o]re than|soft l[o]ckup|I[n]ternal error";

fn boot(gic: u8, b: &Budget) -> Result<Running, Error> {
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
    let mut q = q.spawn()?;
    q.expect(re("^dom0: capabilities=control_d$"), b.left())?;
    q.expect(re("^dom0: xencommons rc=0$"), b.left())?;
    q.expect(re("^dom0: bridge xenbr0 192.0.2.1/24 up$"), b.left())?;
    Ok(q)
}

/// Writes `/tmp/<name>.cfg`: domu-plain.cfg named `name`, `args` on the kernel command line,
/// `devices` lines added; returns its path.
fn cfg(
    sh: &mut Shell<'_>,
    name: &str,
    args: &str,
    devices: &[&str],
    b: &Budget,
) -> Result<String, Error> {
    let path = format!("/tmp/{name}.cfg");
    let mut cmd = format!(
        "sed -e 's/^name = .*/name = \"{name}\"/' -e 's|rdinit=/init|& {args}|' /etc/xen/domu-plain.cfg > {path}"
    );
    for d in devices {
        cmd.push_str(&format!(" && echo \"{d}\" >> {path}"));
    }
    ok(sh, &cmd, b)?;
    Ok(path)
}

fn disk(target: &str) -> String {
    format!("disk = [ 'format=raw, vdev=xvda, access=rw, target={target}' ]")
}

/// `xl create` of `cfg` with a fresh console log for `name`.
fn create(sh: &mut Shell<'_>, name: &str, cfg: &str, b: &Budget) -> Result<(), Error> {
    ok(
        sh,
        &format!("rm -f {LOGS}/guest-{name}.log; xl create {cfg}"),
        b,
    )
    .map(drop)
}

/// Wait (up to 300 guest seconds) until `name` is no longer a domain.
fn wait_gone(sh: &mut Shell<'_>, name: &str, b: &Budget) -> Result<(), Error> {
    let out = sh.run(
        &format!(
            "i=0; while xl domid {name} >/dev/null 2>&1 && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; ! xl domid {name} >/dev/null 2>&1"
        ),
        b.left(),
    )?;
    assert_eq!(out.status, 0, "{name} did not go away:\n{out}");
    Ok(())
}

/// The DomU's console has no failure line and no kernel error.
fn assert_domu_clean(sh: &mut Shell<'_>, name: &str, b: &Budget) -> Result<(), Error> {
    let out = ok(
        sh,
        &format!("grep -aE '{KERNEL_ERRORS}' {LOGS}/guest-{name}.log | tr -d '\\r'; true"),
        b,
    )?;
    assert!(
        out.lines.is_empty(),
        "{name}'s console shows errors:\n{out}"
    );
    Ok(())
}

/// The sha256 (hex) Dom0 computes of `file`.
fn sha256(sh: &mut Shell<'_>, file: &str, b: &Budget) -> Result<String, Error> {
    let out = ok(sh, &format!("sha256sum {file} | cut -d' ' -f1"), b)?;
    let sum = out.lines.first().cloned().unwrap_or_default();
    assert_eq!(sum.len(), 64, "no sha256 of {file}:\n{out}");
    Ok(sum)
}

/// ext4 on xvda, written by Dom0, read and written by the DomU, read back by Dom0.
fn ext4(sh: &mut Shell<'_>, free: u64, b: &Budget) -> Result<(), Error> {
    ok(
        sh,
        "rm -f /tmp/ext4.img && dd if=/dev/zero of=/tmp/ext4.img bs=1M count=0 seek=64 2>/dev/null && mkfs.ext4 -q -F -L oxen-smoke /tmp/ext4.img",
        b,
    )?;
    // s_feature_incompat (superblock at 1024, offset 0x60): extents (0x40) means ext4's
    // layout, not an ext2 filesystem mounted by the ext4 driver.
    let out = ok(sh, "od -An -tu4 -j 1120 -N 4 /tmp/ext4.img", b)?;
    let incompat: u32 = out.text().trim().parse().unwrap_or(0);
    assert_ne!(incompat & 0x40, 0, "mkfs.ext4 made no extents:\n{out}");
    ok(
        sh,
        &format!(
            "mkdir -p /mnt/d0 && mount -t ext4 -o loop /tmp/ext4.img /mnt/d0 && echo {DOM0_LINE} > /mnt/d0/dom0.txt && dd if=/dev/urandom of=/mnt/d0/dom0.bin bs=1k count=512 2>/dev/null && sha256sum /mnt/d0/dom0.bin > /tmp/dom0.bin.sha && umount -d /mnt/d0"
        ),
        b,
    )?;
    let dom0_sha = ok(sh, "cut -d' ' -f1 /tmp/dom0.bin.sha", b)?.text();
    assert_eq!(dom0_sha.len(), 64, "{dom0_sha}");

    let path = cfg(sh, "ext4", "oxen.domu=ext4", &[&disk("/tmp/ext4.img")], b)?;
    create(sh, "ext4", &path, b)?;
    let lines = wait_domu_log(
        sh,
        &format!("{LOGS}/guest-ext4.log"),
        "domu: ext4 done",
        600,
        b,
    )?;
    wait_gone(sh, "ext4", b)?;
    assert_domu_clean(sh, "ext4", b)?;
    assert_eq!(domu_value(&lines, "ext4_fstype"), "ext4", "{lines:?}");
    assert_eq!(domu_value(&lines, "ext4_dom0_line"), DOM0_LINE, "{lines:?}");
    assert_eq!(
        domu_value(&lines, "ext4_dom0_sha256"),
        dom0_sha,
        "the DomU read other data than Dom0 wrote: {lines:?}"
    );
    let domu_sha = domu_value(&lines, "ext4_domu_sha256").to_string();
    assert_nothing_left(sh, free, b)?;

    // The DomU unmounted cleanly: the filesystem checks clean, and its files are there.
    let out = sh.run("e2fsck -fn /tmp/ext4.img 2>&1", b.step())?;
    assert_eq!(out.status, 0, "e2fsck finds the filesystem damaged:\n{out}");
    let out = ok(
        sh,
        "mount -t ext4 -o loop,ro /tmp/ext4.img /mnt/d0 && cat /mnt/d0/domu.txt && sha256sum /mnt/d0/domu.bin | cut -d' ' -f1; umount -d /mnt/d0",
        b,
    )?;
    assert_eq!(
        out.lines,
        ["domu-wrote-this".to_string(), domu_sha],
        "Dom0 does not read what the DomU wrote:\n{out}"
    );
    ok(sh, "rm -f /tmp/ext4.img", b).map(drop)
}

/// TCP both ways over the bridge, checksums compared; then the interdomain event channel.
fn tcp_and_evtchn(sh: &mut Shell<'_>, free: u64, b: &Budget) -> Result<(), Error> {
    ok(
        sh,
        "rm -f /tmp/rx0 /tmp/rx0.done && dd if=/dev/urandom of=/tmp/tx0 bs=1M count=4 2>/dev/null",
        b,
    )?;
    let tx0 = sha256(sh, "/tmp/tx0", b)?;
    // the receiver of the DomU's data (a subshell keeps it out of the job table)
    ok(
        sh,
        "( nc -l -p 5001 -e sh -c 'cat > /tmp/rx0; touch /tmp/rx0.done' & )",
        b,
    )?;
    let path = cfg(sh, "net", "oxen.domu=tcp,evtchn", &[VIF], b)?;
    create(sh, "net", &path, b)?;
    let log = format!("{LOGS}/guest-net.log");
    let lines = wait_domu_log(sh, &log, "domu: tcp listening", 600, b)?;
    let tx = domu_value(&lines, "tcp_tx_sha256").to_string();
    let out = sh.run(
        "i=0; while [ ! -e /tmp/rx0.done ] && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; wc -c < /tmp/rx0",
        b.left(),
    )?;
    assert_eq!(out.lines, ["4194304"], "Dom0 did not receive 4 MiB:\n{out}");
    assert_eq!(
        sha256(sh, "/tmp/rx0", b)?,
        tx,
        "DomU -> Dom0: the data changed on the way"
    );
    ok(sh, "nc 192.0.2.2 5002 -e cat /tmp/tx0", b)?;
    let lines = wait_domu_log(sh, &log, "domu: tcp done", 600, b)?;
    assert_eq!(domu_value(&lines, "tcp_rx_bytes"), "4194304", "{lines:?}");
    assert_eq!(
        domu_value(&lines, "tcp_rx_sha256"),
        tx0,
        "Dom0 -> DomU: the data changed on the way"
    );

    // Event channel between a Dom0 process and a DomU process.
    let lines = wait_domu_log(sh, &log, "evtchn-ping: serving port", 300, b)?;
    let port = lines
        .iter()
        .find_map(|l| l.strip_prefix("evtchn-ping: serving port "))
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no port in {lines:?}"))
        .to_string();
    let out = ok(
        sh,
        &format!("evtchn-ping 1000 --connect $(xl domid net):{port}"),
        b,
    )?;
    assert!(
        out.lines
            .iter()
            .any(|l| l.starts_with("evtchn-ping: 1000 round trips, median ")),
        "{out}"
    );
    let lines = wait_domu_log(sh, &log, "domu: evtchn done", 300, b)?;
    assert!(
        lines.iter().any(|l| l == "domu: evtchn done rc=0")
            && lines
                .iter()
                .any(|l| l == "evtchn-ping: answered 1000 events"),
        "{lines:?}"
    );
    assert_domu_clean(sh, "net", b)?;
    ok(sh, "xl destroy net", b)?;
    ok(sh, "rm -f /tmp/tx0 /tmp/rx0 /tmp/rx0.done", b)?;
    assert_nothing_left(sh, free, b)
}

/// The `domu: storm_block=<i> <sha>` lines: what the DomU had synced, by block.
fn synced_blocks(lines: &[String]) -> Vec<(usize, String)> {
    let row = re(r"^domu: storm_block=(\d+) ([0-9a-f]{64})$");
    let mut v: Vec<(usize, String)> = lines
        .iter()
        .filter(|l| row.matches(l))
        .filter_map(|l| {
            let (i, sha) = l.strip_prefix("domu: storm_block=")?.split_once(' ')?;
            Some((i.parse().ok()?, sha.to_string()))
        })
        .collect();
    v.sort();
    v
}

/// `xl destroy` during heavy disk and network traffic, then the synced data read back.
fn destroy_under_traffic(sh: &mut Shell<'_>, free: u64, b: &Budget) -> Result<(), Error> {
    ok(
        sh,
        "rm -f /tmp/storm.img && dd if=/dev/zero of=/tmp/storm.img bs=1M count=0 seek=40 2>/dev/null",
        b,
    )?;
    ok(
        sh,
        "( nc -l -p 5003 -e dd of=/dev/null bs=64k 2>/dev/null & )",
        b,
    )?;
    let path = cfg(
        sh,
        "storm",
        &format!("oxen.domu=storm oxen.storm_blocks={STORM_BLOCKS}"),
        &[&disk("/tmp/storm.img"), VIF],
        b,
    )?;
    create(sh, "storm", &path, b)?;
    let log = format!("{LOGS}/guest-storm.log");
    wait_domu_log(sh, &log, "domu: storm listening", 600, b)?;
    ok(
        sh,
        "( nc 192.0.2.2 5004 -e dd if=/dev/zero bs=64k 2>/dev/null & )",
        b,
    )?;
    wait_domu_log(
        sh,
        &log,
        &format!("domu: storm_synced={STORM_MIN_SYNCED}"),
        900,
        b,
    )?;
    // Both streams flow: the vif's counters move in both directions.
    let out = ok(
        sh,
        "v=/sys/class/net/vif$(xl domid storm).0/statistics; a=$(cat $v/rx_bytes) c=$(cat $v/tx_bytes); sleep 2; echo $(( $(cat $v/rx_bytes) - a )) $(( $(cat $v/tx_bytes) - c ))",
        b,
    )?;
    let moved: Vec<u64> = out
        .text()
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    assert!(
        moved.len() == 2 && moved[0] > 256 << 10 && moved[1] > 256 << 10,
        "no heavy traffic on the vif (rx, tx bytes in 2 s):\n{out}"
    );
    ok(sh, "xl destroy storm", b)?;
    let synced = synced_blocks(&wait_domu_log(sh, &log, "domu: storm_synced=", 10, b)?);
    if synced.len() < STORM_MIN_SYNCED || synced.iter().enumerate().any(|(k, (i, _))| k != *i) {
        let raw = ok(
            sh,
            &format!("grep -av '^domu: storm_block=' {log} | cat -v"),
            b,
        )?;
        panic!("the synced blocks are not 0..n (n >= {STORM_MIN_SYNCED}): {synced:?}\n{raw}");
    }

    // Dom0 is healthy and everything of the DomU is released.
    ok(sh, "kill $(pidof nc dd) 2>/dev/null; true", b)?;
    let out = ok(sh, "echo dom0-alive", b)?;
    assert_eq!(out.lines, ["dom0-alive"], "{out}");
    let out = ok(sh, &format!("dmesg | grep -E '{KERNEL_ERRORS}'; true"), b)?;
    assert!(out.lines.is_empty(), "Dom0's kernel log has errors:\n{out}");
    assert_nothing_left(sh, free, b)?;
    let out = ok(sh, "losetup -a | grep storm.img; true", b)?;
    assert!(
        out.lines.is_empty(),
        "a loop device holds the image:\n{out}"
    );

    // A new DomU on the same disk reads back every block the first one had synced.
    let path = cfg(
        sh,
        "readback",
        &format!("oxen.domu=readback oxen.blocks={}", synced.len()),
        &[&disk("/tmp/storm.img")],
        b,
    )?;
    create(sh, "readback", &path, b)?;
    let lines = wait_domu_log(
        sh,
        &format!("{LOGS}/guest-readback.log"),
        "domu: readback done",
        600,
        b,
    )?;
    wait_gone(sh, "readback", b)?;
    assert_domu_clean(sh, "readback", b)?;
    for (i, sha) in &synced {
        let want = format!("domu: block={i} {sha}");
        assert!(
            lines.contains(&want),
            "block {i} lost what the destroyed DomU had synced ({sha}): {lines:?}"
        );
    }
    assert_nothing_left(sh, free, b)?;
    ok(sh, "rm -f /tmp/storm.img", b).map(drop)
}

fn smoke(gic: u8) -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let mut q = boot(gic, &b)?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;
    let free = free_memory(&mut sh, &b)?;
    ext4(&mut sh, free, &b)?;
    tcp_and_evtchn(&mut sh, free, &b)?;
    destroy_under_traffic(&mut sh, free, &b)?;
    power_off(&mut sh, &b)
}

#[test]
fn gicv3_xen_smoke_ext4_tcp_evtchn_and_destroy_under_traffic() -> Result<(), Error> {
    smoke(3)
}

#[test]
fn gicv2_xen_smoke_ext4_tcp_evtchn_and_destroy_under_traffic() -> Result<(), Error> {
    smoke(2)
}
