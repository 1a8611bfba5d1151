//! A hostile PV block or network frontend in a DomU cannot hurt Dom0, the hypervisor or
//! another DomU (the "PV disk and network" issue's hostile-frontend item).
//!
//! Machine and Dom0 as `pv_io.rs` (QEMU virt, `-smp 2`, 2048 MiB, Dom0 with 512 MiB,
//! xencommons and the bridge `xenbr0`), on GICv3 with Dom0 on 2 vCPUs and on GICv2 with
//! Dom0 on 1, the hypervisor at `loglvl=debug` so that it prints
//! a line for each hypercall or grant operation it rejects. Dom0 starts:
//! * `good`, from `/etc/xen/domu-plain.cfg` with a vif (192.0.2.3 on `xenbr0`), a shell;
//! * `evil`, from `/etc/xen/domu.cfg` with its disk on `/tmp/evil.img` and [`EVIL_VIFS`]
//!   vifs instead of one (no address: nothing but front-hostile uses them). The DomU image
//!   may lack the `xen-gntalloc` and `xen-evtchn` modules front-hostile needs, so Dom0 puts
//!   its own copies in a tar archive at the start of the disk image; evil's shell (through
//!   `xl console`) unpacks them from `/dev/xvda`, loads each (`modprobe`, else `insmod` of
//!   the copy) and runs `front-hostile --other-domid <good>`
//!   (`dom0-backend/front-hostile`): it takes the vbd (and the vif) over from the DomU's
//!   kernel and attacks Dom0's blkback case after case, printing one
//!   `front-hostile: <case>: <what happened>` line each; then `front-hostile --netif`
//!   does the same to the vifs and Dom0's netback (ARP with Dom0's 192.0.2.1 as the good
//!   traffic; each case that makes netback disable a vif on a vif of its own).
//!
//! Checked: every case's outcome (bad grants and out-of-range requests answered with an
//! error status, bad rings/ports/protocols make the backend close the device, req_prod
//! past the ring halts it, good requests before and after answered OKAY; for netif
//! [`EXPECTED_NET`]: bad tx grants and sizes answered with an error, bad rx grants give
//! rx responses with the grant copy's error, bad rings and ports never served, malformed
//! tx rings get the vif disabled with netback's `fatal error` line, the ARP exchange works
//! before and after); the hypervisor's rejection lines for the bad grant references (maps
//! and copies); Dom0's kernel log free of
//! oopses, BUGs, WARNs and stalls except Linux blkback's own `WARN_ON` after a ring that
//! failed to connect ([`BLKBACK_DISCONNECT_WARN`]), and Dom0's xenstore answering; `good` still answering
//! `xenstore-read name` on its console and pinging Dom0 over `xenbr0` with evil's vifs
//! disabled beside it; `xl destroy evil` leaving nothing behind (no
//! domain, loop device, vif, device node; its memory back); then a well-behaved DomU on
//! the same disk image doing its `io` scenario (write, read back, same checksum; ping).
//!
//! Timeouts: [`BUDGET`] for each test, scaled by `OXEN_TEST_TIMEOUT_SCALE`; no wall-clock
//! figure is asserted.

use oxen_tests::dom0shell::{
    Budget, CONSOLE_LOG_DIR, DOMU_PROMPT, HYP_ARGS, PROMPT, assert_free_memory_back, domu_cfg,
    free_memory, ok, shell_forbidden, xl_list_dom0_vcpus,
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

/// evil's vifs: the first for netif cases that leave it usable, one for each case that
/// makes netback disable its vif (`front-hostile --netif --list` marks them).
const EVIL_VIFS: usize = 6;

/// What each case of `front-hostile --netif` must report. The good traffic is an ARP
/// request for Dom0's 192.0.2.1 on tx and its reply on rx. A bad tx grant or size gets
/// `XEN_NETIF_RSP_ERROR`; a bad rx grant gets the grant copy's status in the rx response
/// (Xen's: `GNTST_bad_gntref` beyond the table, `GNTST_general_error` otherwise). A bad
/// ring or port fails netback's connect (`xenbus_dev_fatal`, after which Linux's netback
/// says Connected all the same): the ring is never served. A malformed tx ring gets the
/// vif disabled (see [`NETBACK_FATAL`]): nothing is answered any more.
const EXPECTED_NET: &[(&str, &str)] = &[
    (
        "good-arp",
        r"^backend answered tx OKAY, then an ARP reply from 192\.0\.2\.1 on rx$",
    ),
    ("tx-ring-ref-beyond-table", NOT_SERVED),
    ("rx-ring-ref-not-granted", NOT_SERVED),
    ("tx-ring-ref-other-domain", NOT_SERVED),
    ("rx-ring-ref-read-only", NOT_SERVED),
    // No port left to notify: the connect attempt's outcome only.
    (
        "event-channel-unbound",
        r"^(backend connected|backend closed the device \(state [56]\))$",
    ),
    ("tx-gref-beyond-table", TX_ERROR),
    ("tx-gref-not-granted", TX_ERROR),
    ("tx-gref-other-domain", TX_ERROR),
    ("tx-big-gref-other-domain", TX_ERROR),
    ("tx-size-zero", TX_ERROR),
    ("tx-frag-larger-than-packet", TX_ERROR),
    (
        "rx-gref-beyond-table",
        r"^backend answered tx OKAY, then rx response status -3 \(GNTST_bad_gntref\)$",
    ),
    ("rx-gref-not-granted", RX_GENERAL_ERROR),
    ("rx-gref-other-domain", RX_GENERAL_ERROR),
    ("rx-gref-read-only", RX_GENERAL_ERROR),
    (
        "notify-flood",
        r"^20000 notifications sent, then backend answered tx OKAY, then an ARP reply from 192\.0\.2\.1 on rx$",
    ),
    ("tx-req-prod-past-ring", NOTHING),
    ("tx-offset-past-page", NOTHING),
    ("tx-size-64k", NOTHING),
    ("tx-extra-info-endless", NOTHING),
    ("tx-more-data-endless", NOTHING),
    (
        "good-arp-after",
        r"^backend answered tx OKAY, then an ARP reply from 192\.0\.2\.1 on rx$",
    ),
];
const NOT_SERVED: &str = r"^(backend connected, ring not served \(no answer in \d+ s\)|backend closed the device \(state [56]\))$";
const TX_ERROR: &str = r"^backend answered tx status -1 \(XEN_NETIF_RSP_ERROR\)$";
const RX_GENERAL_ERROR: &str =
    r"^backend answered tx OKAY, then rx response status -1 \(GNTST_general_error\)$";
const NOTHING: &str = r"^nothing \(no answer in \d+ s\)$";

/// The netif cases after which netback must have disabled the vif, with its reason in
/// Dom0's kernel log (`xenvif_fatal_tx_err` then prints `fatal error; disabling device`).
const NETBACK_FATAL: &[(&str, &str)] = &[
    ("tx-req-prod-past-ring", "Impossible number of requests"),
    ("tx-offset-past-page", "txreq.offset: 4000, size: 200"),
    ("tx-size-64k", "txreq.offset: 0, size: 65535"),
    ("tx-extra-info-endless", "Missing extra info"),
    ("tx-more-data-endless", "Malicious frontend using 20 slots"),
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

/// `good` answers `xenstore-read name` on its console and pings Dom0 over `xenbr0`.
fn good_answers(sh: &mut Shell<'_>, b: &Budget) -> Result<(), Error> {
    attach_console(sh.running(), "good", b)?;
    let (out, ping) = {
        let mut dsh = Shell::attach(sh.running(), re(DOMU_PROMPT), b.step())?;
        let out = dsh.run("timeout 60 xenstore-read name", b.step())?;
        let ping = dsh.run(
            "ping -c 5 -W 10 192.0.2.1 | grep 'packets received'",
            b.step(),
        )?;
        (out, ping)
    };
    detach_console(sh.running(), b)?;
    assert_eq!(out.status, 0, "good's xenstore read failed:\n{out}");
    assert_eq!(out.lines, ["good"], "good's xenstore read:\n{out}");
    assert!(
        ping.lines
            .iter()
            .any(|l| l.starts_with("5 packets transmitted, 5 packets received")),
        "good's ping of Dom0 over xenbr0:\n{ping}"
    );
    Ok(())
}

/// The domain names `xl list | tail -n +2 | cut -d' ' -f1` printed, without empty lines
/// (what is left of a name's line after an `(oxen)` line cut it, see [`report_lines`]).
fn names(out: &oxen_tests::Output) -> Vec<&str> {
    out.lines
        .iter()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .collect()
}

/// The `front-hostile` lines of a run's output (`rc=` line and report). A line that does
/// not start with `front-hostile` continues the one before: the hypervisor's console
/// starts its own lines on a line of their own, so an `(oxen)` line (dropped from the
/// output) printed while a report line was half out cuts that line in two (seen on
/// GICv2, a grant-copy rejection netback's retries caused during the `cat`).
fn report_lines(run: &oxen_tests::Output) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for l in run.lines.iter().map(|l| l.trim_end_matches('\r')) {
        match lines.last_mut() {
            Some(prev) if !l.starts_with("front-hostile") => prev.push_str(l),
            _ if l.starts_with("front-hostile") => lines.push(l.to_string()),
            _ => {}
        }
    }
    lines
}

/// The run exited 0 after all of `expected`'s cases, each with the outcome wanted.
fn check_cases(lines: &[String], expected: &[(&str, &str)]) {
    let report = lines.join("\n");
    assert!(
        lines.iter().any(|l| l == "front-hostile rc=0"),
        "front-hostile did not exit 0:\n{report}"
    );
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("front-hostile: done {} cases", expected.len())),
        "front-hostile did not finish every case:\n{report}"
    );
    let mut wrong = Vec::new();
    for (case, want) in expected {
        let got = outcome(lines, case);
        if !re(want).matches(got) {
            wrong.push(format!("{case}: got {got:?}, want /{want}/"));
        }
    }
    assert!(
        wrong.is_empty(),
        "cases with the wrong outcome:\n{}\nfront-hostile's report:\n{report}",
        wrong.join("\n")
    );
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
fn gicv3_hostile_blkif_and_netif_frontends_get_errors_and_dom0_and_others_keep_working()
-> Result<(), Error> {
    hostile_frontends(3, 2)
}

/// GICv2 with Dom0 on 1 vCPU. On 2 vCPUs a GICv2 run sometimes (2 in 29) fails on a race in
/// Dom0's Linux netback, not in oxen: `xenvif_connect_data` starts the rx kthread and binds
/// the event channel (pending at once: `EVTCHNOP_bind_interdomain` sets the new local port
/// pending, as Xen does) before it stores `queue->rx_irq`. The bind-time event runs
/// `xenvif_interrupt` inside `request_irq`; when that finds rx work it kicks the rx kthread,
/// which takes `NETBK_COMMON_EOI` and calls `xen_irq_lateeoi(queue->rx_irq)` with `rx_irq`
/// still 0 (Dom0's xenbus irq). The real irq keeps its EOI-pending mask: the port stays
/// masked, every later notification is only latched (seen in a kprobe trace of Dom0,
/// `xen_irq_lateeoi` irq=0 from `vifN.M-q0-guest`, then nothing on the port for 33 s; see
/// commit 8465a45). Xen sets the port pending at bind too, so only the timing (the kthread
/// on the other vCPU winning against `request_irq`'s caller) is oxen's and GICv2's. On one
/// vCPU the kthread cannot run before `request_irq`'s caller stores `rx_irq`.
///
/// Dom0 on fewer vCPUs than there are CPUs is also what once left the good DomU a zombie
/// here: the CPU Dom0 does not use runs a run-time DomU first, and the scheduler's entry
/// path kept a reference to the first domain each CPU ran.
#[test]
fn gicv2_hostile_blkif_and_netif_frontends_with_dom0_on_one_vcpu() -> Result<(), Error> {
    hostile_frontends(2, 1)
}

/// The whole scenario on GIC version `gic`, Dom0 on `dom0_vcpus` vCPUs.
fn hostile_frontends(gic: u8, dom0_vcpus: u32) -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let dom0 = LinuxDom0::from_cache()?;
    let mut q = Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .memory_mib(2048)
        .append(&format!(
            "{} dom0_max_vcpus={dom0_vcpus}",
            HYP_ARGS.replace("loglvl=info", "loglvl=debug")
        ))
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
            "sed -e 's/^name = .*/name = \"evil\"/' -e 's|target=[^ ]*'\"'\"'|target={IMG}'\"'\"'|' /etc/xen/domu.cfg > /tmp/io.cfg && grep -q 'target={IMG}' /tmp/io.cfg"
        ),
        &b,
    )?;
    // evil: EVIL_VIFS vifs (MACs 00:16:3e:00:0e:0N), no address.
    let vifs: Vec<String> = (0..EVIL_VIFS)
        .map(|i| format!("'mac=00:16:3e:00:0e:{i:02x}, bridge=xenbr0'"))
        .collect();
    ok(
        &mut sh,
        &format!(
            "sed -e 's/ oxen.ip=[^ \"]*//' -e \"s/^vif = .*/vif = [ {} ]/\" /tmp/io.cfg > /tmp/evil.cfg && ! grep -q '^extra.*oxen.ip' /tmp/evil.cfg",
            vifs.join(", ")
        ),
        &b,
    )?;
    // good: a vif with 192.0.2.3.
    let good = domu_cfg(&mut sh, "good", "oxen.ip=192.0.2.3/24", &b)?;
    ok(
        &mut sh,
        &format!("echo \"vif = [ 'mac=00:16:3e:00:00:03, bridge=xenbr0' ]\" >> {good}"),
        &b,
    )?;
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
    let (prep, run, net) = {
        let mut dsh = Shell::attach(sh.running(), re(DOMU_PROMPT), b.step())?;
        let prep = dsh.run(
            "i=0; while [ ! -e /dev/xvda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; mkdir -p /tmp/m && tar -xf /dev/xvda -C /tmp/m && for m in xen-evtchn xen-gntalloc; do modprobe $m 2>/dev/null || insmod /tmp/m/$m.ko || echo \"insmod $m failed\"; done; ls /dev/xen",
            b.step(),
        )?;
        let run = dsh.run(
            &format!("front-hostile --other-domid {good_id} > /tmp/fh.log 2>&1; echo \"front-hostile rc=$?\"; cat /tmp/fh.log"),
            b.step(),
        )?;
        let net = dsh.run(
            &format!("front-hostile --netif --other-domid {good_id} > /tmp/fhn.log 2>&1; echo \"front-hostile rc=$?\"; cat /tmp/fhn.log"),
            b.step(),
        )?;
        (prep, run, net)
    };
    detach_console(sh.running(), &b)?;
    eprintln!("evil's setup:\n{prep}\nfront-hostile:\n{run}\nfront-hostile --netif:\n{net}");
    for dev in ["evtchn", "gntalloc", "xenbus"] {
        assert!(
            prep.lines
                .iter()
                .any(|l| l.split_whitespace().any(|w| w == dev)),
            "/dev/xen/{dev} missing in evil:\n{prep}"
        );
    }
    let lines = report_lines(&run);
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("front-hostile: vbd 51712: taken from its driver")),
        "front-hostile did not take the vbd from xen-blkfront:\n{}",
        lines.join("\n")
    );
    check_cases(&lines, EXPECTED);
    // The blkif run left the vifs without a driver; the netif run takes each.
    let lines = report_lines(&net);
    for i in 0..EVIL_VIFS {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("front-hostile: vif {i}: had no driver"))),
            "front-hostile --netif did not take vif {i}:\n{}",
            lines.join("\n")
        );
    }
    check_cases(&lines, EXPECTED_NET);

    // The hypervisor said no to Dom0's maps and copies of evil's bad grants, with a line
    // each (a copy's line names no granter: only netback copies, only from evil).
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
        r"^\(oxen\) debug: d0: grant copy: bad grant ref 0xfffff0$".to_string(),
        r"^\(oxen\) debug: d0: grant copy: ref 0x[0-9a-f]+ not granted to caller$".to_string(),
        r"^\(oxen\) debug: d0: grant copy: ref 0x[0-9a-f]+ is read-only$".to_string(),
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
    // netback disabled one vif per malformed tx ring, saying why.
    let out = ok(
        &mut sh,
        &format!("dmesg | grep -E ' vif{evil_id}\\.[0-9]+: ' | sed 's/^\\[[^]]*\\] //'; true"),
        &b,
    )?;
    eprintln!("netback's messages about evil's vifs:\n{out}");
    let fatal = out
        .lines
        .iter()
        .filter(|l| l.ends_with(": fatal error; disabling device"))
        .count();
    assert_eq!(
        fatal,
        NETBACK_FATAL.len(),
        "netback did not disable one vif per malformed ring:\n{out}"
    );
    for (case, why) in NETBACK_FATAL {
        assert!(
            out.lines.iter().any(|l| l.contains(why)),
            "no netback line with {why:?} (case {case}):\n{out}"
        );
    }
    dom0_served(&mut sh, &b)?;
    let rows = xl_list_dom0_vcpus(&mut sh, dom0_vcpus, &b)?;
    assert_eq!(rows.len(), 3, "Domain-0, good and evil: {rows:?}");
    // good's eth0 is on the same bridge as evil's disabled vifs.
    good_answers(&mut sh, &b)?;

    // Destroy evil (Dom0's blkback and netback still map its last rings): nothing of it is
    // left.
    ok(&mut sh, "xl destroy evil", &b)?;
    let out = ok(
        &mut sh,
        "i=0; while [ $(xl list | wc -l) -gt 3 ] && [ $i -lt 30 ]; do sleep 1; i=$((i+1)); done; xl list | tail -n +2 | cut -d' ' -f1",
        &b,
    )?;
    assert_eq!(names(&out), ["Domain-0", "good"], "evil left over:\n{out}");
    let out = ok(
        &mut sh,
        &format!(
            "i=0; while [ -n \"$(cat /sys/block/loop*/loop/backing_file 2>/dev/null)\" ] && [ $i -lt 20 ]; do sleep 1; i=$((i+1)); done; cat /sys/block/loop*/loop/backing_file 2>/dev/null; ls /sys/class/net | grep '^vif{evil_id}\\.'; xenstore-ls -f / | grep -v '^/local/domain/0/error/' | grep -E '/backend/(vbd|vif)/{evil_id}( |/)|^/local/domain/{evil_id}( |/)'; true"
        ),
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
    assert_eq!(names(&out), ["Domain-0"], "domains left over:\n{out}");
    assert_free_memory_back(&mut sh, free, &b)?;
    dom0_kernel_clean(&mut sh, &b)?;
    dom0_served(&mut sh, &b)?;

    sh.running().send("poweroff\r")?;
    let q = sh.running();
    q.expect("reboot: Power down", b.step())?;
    q.expect_exit_code(0, b.step())
}
