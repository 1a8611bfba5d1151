//! A hostile PV block frontend in a DomU cannot hurt Dom0, the hypervisor or another DomU
//! (the "PV disk and network" issue's hostile-frontend item).
//!
//! Machine and Dom0 as `pv_io.rs` (QEMU virt, GICv3, `-smp 2`, 2048 MiB, Dom0 with 512 MiB,
//! xencommons and the bridge `xenbr0`), the hypervisor at `loglvl=debug` so that it prints
//! a line for each hypercall or grant operation it rejects. Dom0 starts:
//! * `good`, from `/etc/xen/domu.cfg` (no devices, a shell);
//! * `evil`, from `/etc/xen/domu-io.cfg` with its disk on `/tmp/evil.img`. The DomU image
//!   may lack the `xen-gntalloc` and `xen-evtchn` modules front-hostile needs, so Dom0 puts
//!   its own copies in a tar archive at the start of the disk image; evil's shell (through
//!   `xl console`) unpacks them from `/dev/xvda`, loads each (`modprobe`, else `insmod` of
//!   the copy) and runs `front-hostile --other-domid <good>`
//!   (`dom0-backend/front-hostile`): it takes the vbd (and the vif) over from the DomU's
//!   kernel and attacks Dom0's blkback case after case, printing one
//!   `front-hostile: <case>: <what happened>` line each.
//!
//! Checked: every case's outcome (bad grants and out-of-range requests answered with an
//! error status, bad rings/ports/protocols make the backend close the device, req_prod
//! past the ring halts it, good requests before and after answered OKAY); the
//! hypervisor's rejection lines for the bad grant references; Dom0's kernel log free of
//! oopses, BUGs, WARNs and stalls except Linux blkback's own `WARN_ON` after a ring that
//! failed to connect ([`BLKBACK_DISCONNECT_WARN`]), and Dom0's xenstore answering; `good` still answering
//! `xenstore-read name` on its console; `xl destroy evil` leaving nothing behind (no
//! domain, loop device, vif, device node; its memory back); then a well-behaved DomU on
//! the same disk image doing its `io` scenario (write, read back, same checksum; ping).
//!
//! Timeouts: [`BUDGET`] for the test, scaled by `OXEN_TEST_TIMEOUT_SCALE`; no wall-clock
//! figure is asserted.

use oxen_tests::dom0shell::{
    Budget, CONSOLE_LOG_DIR, DOMU_PROMPT, HYP_ARGS, PROMPT, assert_free_memory_back, domu_cfg,
    free_memory, ok, shell_forbidden, xl_list,
};
use oxen_tests::{Error, LinuxDom0, Qemu, Running, Shell, re, scaled};
use std::time::Duration;

/// Dom0's command line: xencommons and xenbr0, then the shell; `loglevel=5` as in
/// `pv_io.rs` (blkback's warnings still reach the console, where they are noise lines).
const SHELL_ARGS: &str = "console=hvc0 rdinit=/init oxen.dom0=shell loglevel=5";
const BUDGET: Duration = Duration::from_secs(1800);
const IMG: &str = "/tmp/evil.img";

/// What each case of front-hostile must report (anchored after `front-hostile: <case>: `).
const EXPECTED: &[(&str, &str)] = &[
    ("good-read", "backend answered OKAY$"),
    (
        "ring-ref-beyond-table",
        r"backend closed the device \(state [56]\)$",
    ),
    (
        "ring-ref-not-granted",
        r"backend closed the device \(state [56]\)$",
    ),
    (
        "ring-ref-other-domain",
        r"backend closed the device \(state [56]\)$",
    ),
    (
        "ring-ref-read-only",
        r"backend closed the device \(state [56]\)$",
    ),
    (
        "event-channel-unbound",
        r"backend closed the device \(state [56]\)$",
    ),
    (
        "event-channel-other-domain",
        r"backend closed the device \(state [56]\)$",
    ),
    (
        "protocol-unknown",
        r"backend closed the device \(state [56]\)$",
    ),
    (
        "gref-beyond-table",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "gref-not-granted",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "gref-other-domain",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "gref-read-only",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    ("write-from-read-only", "backend answered OKAY$"),
    (
        "nr-segments-zero",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "nr-segments-12",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "nr-segments-255",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "segment-sectors-reversed",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "segment-sectors-past-page",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "sector-past-end",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "sector-wraps",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "unknown-operation",
        r"backend answered error status -2 \(BLKIF_RSP_EOPNOTSUPP\)$",
    ),
    (
        "indirect-over-limit",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "indirect-bad-gref",
        r"backend answered error status -1 \(BLKIF_RSP_ERROR\)$",
    ),
    (
        "notify-flood",
        r"^\d+ notifications sent, then backend answered OKAY$",
    ),
    ("req-prod-past-ring", r"^nothing \(no answer in \d+ s\)$"),
    ("good-read-after", "backend answered OKAY$"),
];

/// Attach to DomU `name`'s console from Dom0's shell (`xl console`), returning once its
/// prompt answers. xl's client drops what was typed ahead: type Enter until it answers.
fn attach_console(q: &mut Running, name: &str, b: &Budget) -> Result<(), Error> {
    q.send(&format!("xl console {name}\r"))?;
    std::thread::sleep(scaled(Duration::from_secs(2)));
    for _ in 0..30 {
        q.send("\r")?;
        if q.expect_prompt(re(DOMU_PROMPT), scaled(Duration::from_secs(3)))
            .is_ok()
        {
            return Ok(());
        }
    }
    panic!("xl console {name}: no DomU prompt ({:?} left)", b.left());
}

/// Ctrl-] back to Dom0's prompt.
fn detach_console(q: &mut Running, b: &Budget) -> Result<(), Error> {
    q.send("\x1d")?;
    q.send("\r")?;
    q.expect_prompt(re(PROMPT), b.step())?;
    Ok(())
}

/// Dom0 Linux's own warning when a frontend's ring cannot be connected: blkback's
/// `read_per_ring_refs` frees the ring's request list when mapping the ring or binding its
/// event channel fails, then `xen_blkif_disconnect` counts the (now empty) list and
/// `WARN_ON`s (Debian 6.1's `xenbus.c:337`). Any hypervisor refusing the bad ring-ref or
/// port (Xen as well) gets it; the kernel carries on. It is the only warning allowed.
const BLKBACK_DISCONNECT_WARN: &str =
    r"WARNING: CPU: \d+ PID: \d+ at drivers/block/xen-blkback/xenbus\.c:\d+ xen_blkif_disconnect\+";

/// Dom0's kernel log has no oops, BUG, stall, lockup or warning other than
/// [`BLKBACK_DISCONNECT_WARN`] (with its `cut here` and `Call trace` lines); returns how
/// many of those there were. The log is read without its timestamps (the shell helper
/// drops `[ 1.23] ...` lines as console noise), the known warning is only counted (printed,
/// its lines would trip the console's forbidden patterns), and the typed patterns are
/// bracketed so that the typed line itself matches none.
fn dom0_kernel_clean(sh: &mut Shell<'_>, b: &Budget) -> Result<usize, Error> {
    let known =
        r"W[A]RNING: CPU: .* at drivers/block/xen-blkback/xenbus\.c:[0-9]+ xen_blkif_disconnect\+";
    let out = ok(
        sh,
        &format!(
            "dmesg | sed 's/^\\[[^]]*\\] //' > /tmp/kmsg; grep -cE '{known}' /tmp/kmsg; grep -E 'O[o]ps|B[U]G|W[A]RNING|cut h[e]re|[C]all [t]race|detected st[a]ll|soft lock[u]p|hard LOCK[U]P|blocked f[o]r more|Unable t[o] handle' /tmp/kmsg | grep -vE '{known}|cut h[e]re|^[C]all [t]race:$'; true"
        ),
        b,
    )?;
    let count = out.lines.first().and_then(|l| l.trim().parse().ok());
    let Some(count) = count else {
        panic!("no count of blkback's disconnect warning:\n{out}");
    };
    assert_eq!(out.lines.len(), 1, "Dom0's kernel complained:\n{out}");
    Ok(count)
}

/// Dom0's xenstore answers (bounded: a starved Dom0 fails the test).
fn dom0_served(sh: &mut Shell<'_>, b: &Budget) -> Result<(), Error> {
    let out = sh.run("timeout 60 xenstore-read /local/domain/0/name", b.step())?;
    assert_eq!(out.status, 0, "Dom0's xenstore read failed:\n{out}");
    assert_eq!(out.lines, ["Domain-0"], "{out}");
    Ok(())
}

/// `good` answers `xenstore-read name` on its console.
fn good_answers(sh: &mut Shell<'_>, b: &Budget) -> Result<(), Error> {
    attach_console(sh.running(), "good", b)?;
    let out = {
        let mut dsh = Shell::attach(sh.running(), re(DOMU_PROMPT), b.step())?;
        dsh.run("timeout 60 xenstore-read name", b.step())?
    };
    detach_console(sh.running(), b)?;
    assert_eq!(out.status, 0, "good's xenstore read failed:\n{out}");
    assert_eq!(out.lines, ["good"], "good's xenstore read:\n{out}");
    Ok(())
}

/// The value after `front-hostile: <case>: `.
fn outcome<'a>(lines: &'a [String], case: &str) -> &'a str {
    let prefix = format!("front-hostile: {case}: ");
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no line for case {case}:\n{}", lines.join("\n")))
}

#[test]
fn gicv3_hostile_blkif_frontend_gets_errors_and_dom0_and_others_keep_working() -> Result<(), Error>
{
    let b = Budget::start(BUDGET);
    let dom0 = LinuxDom0::from_cache()?;
    let mut q = Qemu::oxen()?
        .gic_version(3)
        .smp(2)
        .memory_mib(2048)
        .append(&HYP_ARGS.replace("loglvl=info", "loglvl=debug"))
        .linux_dom0(&dom0, SHELL_ARGS)?;
    for p in shell_forbidden()
        .into_iter()
        .chain([re(r"^dom0: bridge \S+ failed")])
    {
        q = q.forbid(p);
    }
    // Linux's blkback warning on a ring that cannot be connected (see dom0_kernel_clean,
    // which checks that no other warning is in Dom0's log).
    q = q
        .allow(re(BLKBACK_DISCONNECT_WARN))
        .allow(re(r"^\[ *[0-9.]+\] -+\[ cut here \]-+$"))
        .allow(re(r"^\[ *[0-9.]+\] Call trace:$"));
    let mut q: Running = q.spawn()?;
    q.expect(re("^dom0: xencommons rc=0$"), b.left())?;
    q.expect(re("^dom0: bridge xenbr0 192.0.2.1/24 up$"), b.left())?;
    let mut sh = Shell::attach(&mut q, re(PROMPT), b.left())?;

    // evil's disk: Dom0's xen-evtchn and xen-gntalloc modules in a tar at its start.
    ok(
        &mut sh,
        &format!(
            "d=/lib/modules/$(uname -r)/kernel/drivers/xen && mkdir -p /tmp/mods && cp $d/xen-evtchn.ko $d/xen-gntalloc.ko /tmp/mods/ && dd if=/dev/zero of={IMG} bs=1M count=16 2>/dev/null && (cd /tmp/mods && tar -cf - xen-evtchn.ko xen-gntalloc.ko) | dd of={IMG} conv=notrunc 2>/dev/null"
        ),
        &b,
    )?;
    ok(
        &mut sh,
        &format!(
            "sed -e 's/^name = .*/name = \"evil\"/' -e 's|target=[^ ]*'\"'\"'|target={IMG}'\"'\"'|' /etc/xen/domu-io.cfg > /tmp/evil.cfg && grep -q 'target={IMG}' /tmp/evil.cfg"
        ),
        &b,
    )?;
    let good = domu_cfg(&mut sh, "good", "", &b)?;
    let free = free_memory(&mut sh, &b)?;
    ok(
        &mut sh,
        &format!("xl create {good} && xl create /tmp/evil.cfg"),
        &b,
    )?;
    let good_id = ok(&mut sh, "xl domid good", &b)?.lines.join("");
    let evil_id = ok(&mut sh, "xl domid evil", &b)?.lines.join("");
    dom0_kernel_clean(&mut sh, &b)?;

    // evil: load the modules, run front-hostile.
    ok(
        &mut sh,
        &format!(
            "i=0; while ! grep -q 'domu: starting shell' {CONSOLE_LOG_DIR}/guest-evil.log 2>/dev/null && [ $i -lt 300 ]; do sleep 1; i=$((i+1)); done; grep -q 'domu: starting shell' {CONSOLE_LOG_DIR}/guest-evil.log"
        ),
        &b,
    )?;
    attach_console(sh.running(), "evil", &b)?;
    let (prep, run) = {
        let mut dsh = Shell::attach(sh.running(), re(DOMU_PROMPT), b.step())?;
        let prep = dsh.run(
            "i=0; while [ ! -e /dev/xvda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; mkdir -p /tmp/m && tar -xf /dev/xvda -C /tmp/m && for m in xen-evtchn xen-gntalloc; do modprobe $m 2>/dev/null || insmod /tmp/m/$m.ko || echo \"insmod $m failed\"; done; ls /dev/xen",
            b.step(),
        )?;
        let run = dsh.run(
            &format!("front-hostile --other-domid {good_id} > /tmp/fh.log 2>&1; echo \"front-hostile rc=$?\"; cat /tmp/fh.log"),
            b.step(),
        )?;
        (prep, run)
    };
    detach_console(sh.running(), &b)?;
    eprintln!("evil's setup:\n{prep}\nfront-hostile:\n{run}");
    for dev in ["evtchn", "gntalloc", "xenbus"] {
        assert!(
            prep.lines
                .iter()
                .any(|l| l.split_whitespace().any(|w| w == dev)),
            "/dev/xen/{dev} missing in evil:\n{prep}"
        );
    }
    let lines: Vec<String> = run
        .lines
        .iter()
        .map(|l| l.trim_end_matches('\r').to_string())
        .filter(|l| l.starts_with("front-hostile"))
        .collect();
    let report = lines.join("\n");
    assert!(
        lines.iter().any(|l| l == "front-hostile rc=0"),
        "front-hostile did not exit 0:\n{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("front-hostile: done {} cases", EXPECTED.len())),
        "front-hostile did not finish every case:\n{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("front-hostile: vbd 51712: taken from its driver")),
        "front-hostile did not take the vbd from xen-blkfront:\n{report}"
    );
    let mut wrong = Vec::new();
    for (case, want) in EXPECTED {
        let got = outcome(&lines, case);
        if !re(want).matches(got) {
            wrong.push(format!("{case}: got {got:?}, want /{want}/"));
        }
    }
    assert!(
        wrong.is_empty(),
        "cases with the wrong outcome:\n{}\nfront-hostile's report:\n{report}",
        wrong.join("\n")
    );

    // The hypervisor said no to Dom0's maps of evil's bad grants, with a line each.
    let hyp: Vec<String> = sh
        .running()
        .lines()
        .into_iter()
        .map(|l| l.text)
        .filter(|t| t.starts_with("(oxen)"))
        .collect();
    for want in [
        format!(
            r"^\(oxen\) debug: d0: map_grant_ref d{evil_id} ref 0xfffff0: bad grant ref 0xfffff0$"
        ),
        format!(
            r"^\(oxen\) debug: d0: map_grant_ref d{evil_id} ref 0x[0-9a-f]+: ref 0x[0-9a-f]+ not granted to caller$"
        ),
        format!(
            r"^\(oxen\) debug: d0: map_grant_ref d{evil_id} ref 0x[0-9a-f]+: ref 0x[0-9a-f]+ is read-only$"
        ),
    ] {
        let p = re(&want);
        assert!(
            hyp.iter().any(|l| p.matches(l)),
            "no hypervisor line matching {want:?}; its lines:\n{}",
            hyp.join("\n")
        );
    }

    // Dom0, the hypervisor and good are fine.
    let warns = dom0_kernel_clean(&mut sh, &b)?;
    eprintln!("blkback's disconnect warning: {warns} times");
    let out = ok(&mut sh, "dmesg | grep -c 'bogus ring requests'; true", &b)?;
    assert_ne!(
        out.lines,
        ["0"],
        "blkback did not see req_prod past the ring:\n{out}"
    );
    dom0_served(&mut sh, &b)?;
    let rows = xl_list(&mut sh, &b)?;
    assert_eq!(rows.len(), 3, "Domain-0, good and evil: {rows:?}");
    good_answers(&mut sh, &b)?;

    // Destroy evil (Dom0's blkback still maps its last ring): nothing of it is left.
    ok(&mut sh, "xl destroy evil", &b)?;
    let out = ok(
        &mut sh,
        "i=0; while [ $(xl list | wc -l) -gt 3 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done; xl list | tail -n +2 | cut -d' ' -f1",
        &b,
    )?;
    assert_eq!(out.lines, ["Domain-0", "good"], "evil left over:\n{out}");
    let out = ok(
        &mut sh,
        "i=0; while [ -n \"$(cat /sys/block/loop*/loop/backing_file 2>/dev/null)\" ] && [ $i -lt 20 ]; do sleep 1; i=$((i+1)); done; cat /sys/block/loop*/loop/backing_file 2>/dev/null; ls /sys/class/net | grep '^vif'; xenstore-ls -f / | grep -v '^/local/domain/0/error/' | grep -E '/(vbd|vif)( |/)'; true",
        &b,
    )?;
    assert!(
        out.lines.is_empty(),
        "evil's loop device, vif or device nodes left over:\n{out}"
    );
    // blkback's xenbus_dev_fatal messages stay under /local/domain/0/error (the toolstack
    // does not remove them), as they would with Xen's libxl: shown, not checked.
    let out = ok(
        &mut sh,
        "xenstore-ls -f /local/domain/0/error 2>/dev/null; true",
        &b,
    )?;
    eprintln!("blkback's error nodes after evil:\n{out}");
    dom0_kernel_clean(&mut sh, &b)?;

    // A well-behaved DomU with the same disk and a vif: its I/O works.
    ok(
        &mut sh,
        "sed -e 's/^name = .*/name = \"after\"/' -e 's|rdinit=/init|& oxen.domu=io|' /tmp/evil.cfg > /tmp/after.cfg && xl create /tmp/after.cfg",
        &b,
    )?;
    let log = format!("{CONSOLE_LOG_DIR}/guest-after.log");
    let out = sh.run(
        &format!(
            "i=0; while ! grep -q 'domu: io done' {log} 2>/dev/null && [ $i -lt 400 ]; do sleep 1; i=$((i+1)); done; grep -E '^domu: ' {log} | tr -d '\\r'; grep -q 'domu: io done' {log}"
        ),
        b.step(),
    )?;
    assert_eq!(
        out.status, 0,
        "the DomU after evil did not finish its io:\n{out}"
    );
    let value = |key: &str| {
        out.lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("domu: {key}=")))
            .unwrap_or_else(|| panic!("no domu: {key}= in:\n{out}"))
            .to_string()
    };
    assert!(
        !out.lines.iter().any(|l| l.contains(" failed")),
        "the DomU after evil reports a failure:\n{out}"
    );
    let wrote = value("disk_write_sha256");
    assert_eq!(wrote.len(), 64, "{out}");
    assert_eq!(
        value("disk_read_sha256"),
        wrote,
        "read back differs:\n{out}"
    );
    assert_eq!(value("ping_dom0"), "10/10", "{out}");

    // Everything goes; Dom0 is as before.
    ok(&mut sh, "xl destroy after && xl destroy good", &b)?;
    let out = ok(
        &mut sh,
        "i=0; while [ $(xl list | wc -l) -gt 2 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done; xl list | tail -n +2 | cut -d' ' -f1",
        &b,
    )?;
    assert_eq!(out.lines, ["Domain-0"], "domains left over:\n{out}");
    assert_free_memory_back(&mut sh, free, &b)?;
    dom0_kernel_clean(&mut sh, &b)?;
    dom0_served(&mut sh, &b)?;

    sh.running().send("poweroff\r")?;
    let q = sh.running();
    q.expect("reboot: Power down", b.step())?;
    q.expect_exit_code(0, b.step())
}
