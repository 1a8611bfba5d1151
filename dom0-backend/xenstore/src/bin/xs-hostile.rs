//! `xs-hostile`: a hostile xenstore client, run inside an unprivileged DomU
//! over the kernel's `/dev/xen/xenbus` relay (`tests/tests/xenstore_hostile.rs`).
//!
//! It writes outside its subtree, sends oversized and malformed requests,
//! floods watches, transactions, pipelined requests and nodes, and checks
//! that every answer that must be an error is one (from xenstored, or the
//! kernel's own refusal: the relay checks lengths, transaction ids and watch
//! payloads itself), and that the connection keeps working. Each step prints
//! `xs-hostile: <step>: <result>` (`UNEXPECTED` in the result when the answer
//! is wrong); the last line is `xs-hostile: done <n> steps, <k> unexpected`.
//! It cleans up what it made and exits 0 only if nothing was unexpected and
//! the connection still answers at the end.
//!
//! Usage: `xs-hostile [device]` (default `/dev/xen/xenbus`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use xen_abi::xenstore::{XS_CONTROL, XS_READ, XS_RELEASE, XS_SET_TARGET, XS_WATCH, XS_WRITE};
use xenstore::wire::{Decoder, Msg};
use xenstore::{Client, Error, Perm, XsError};

/// Watches the flood asks for (quota 128 per connection).
const WATCHES: usize = 200;
/// Transactions the flood starts (quota 10).
const TRANSACTIONS: usize = 20;
/// Nodes the flood tries to create (quota 1000 per domain).
const NODES: usize = 1100;
/// Requests written without reading replies (outstanding quota 20).
const PIPELINE: usize = 40;

struct Run {
    steps: usize,
    unexpected: usize,
}

impl Run {
    fn report(&mut self, step: &str, good: bool, what: &str) {
        self.steps += 1;
        if good {
            println!("xs-hostile: {step}: {what}");
        } else {
            self.unexpected += 1;
            println!("xs-hostile: {step}: UNEXPECTED {what}");
        }
    }

    /// An answer that must be one of `want` (empty: any error). Kernel
    /// refusals (a failed write to the device) count with their errno.
    fn expect_err<T: std::fmt::Debug>(
        &mut self,
        step: &str,
        r: Result<T, Error>,
        want: &[XsError],
    ) {
        match r {
            Ok(v) => self.report(step, false, &format!("success {v:?}")),
            Err(e) => {
                let name = describe(&e);
                let good = want.is_empty() || want.iter().any(|w| w.errno() == e.errno());
                self.report(step, good, &format!("error {name}"));
            }
        }
    }
}

fn errno_name(n: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(n))
}

fn describe(e: &Error) -> String {
    match e {
        Error::Xs(x) => format!("{x:?}"),
        Error::Again => "EAGAIN".into(),
        Error::Io(io) => format!(
            "{} (kernel refused the write)",
            io.raw_os_error().map_or_else(|| io.to_string(), errno_name)
        ),
        Error::Protocol(s) => format!("protocol: {s}"),
    }
}

/// Drains queued watch events (up to `max`, waiting `wait` for each).
fn drain(c: &mut Client, wait: Duration, max: usize) -> usize {
    let mut n = 0;
    while n < max {
        match c.read_watch_timeout(Some(wait)) {
            Ok(Some(_)) => n += 1,
            _ => break,
        }
    }
    n
}

/// One raw message on its own connection; `Ok(Some(reply))`, `Ok(None)`
/// when no reply came within `wait`, `Err(errno)` when the kernel refused
/// the write.
fn raw_exchange(dev: &str, bytes: &[u8], wait: Duration) -> Result<Option<Msg>, i32> {
    let mut f = open_raw(dev).map_err(|e| e.raw_os_error().unwrap_or(5))?;
    f.write_all(bytes)
        .map_err(|e| e.raw_os_error().unwrap_or(5))?;
    let mut d = Decoder::new();
    Ok(read_one(&mut f, &mut d, Instant::now() + wait))
}

fn open_raw(dev: &str) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(dev)
}

fn read_one(f: &mut File, d: &mut Decoder, deadline: Instant) -> Option<Msg> {
    loop {
        if let Ok(Some(m)) = d.next_msg() {
            return Some(m);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return None,
        }
        let mut buf = [0u8; 8192];
        match f.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => d.push(&buf[..n]),
        }
    }
}

fn main() {
    let dev = std::env::args()
        .nth(1)
        .unwrap_or_else(|| xenstore::client::XENBUS_DEV.to_string());
    let mut run = Run {
        steps: 0,
        unexpected: 0,
    };
    let mut c = match Client::open_device(&dev) {
        Ok(c) => c,
        Err(e) => {
            println!("xs-hostile: open {dev}: UNEXPECTED {e}");
            println!("xs-hostile: done 0 steps, 1 unexpected");
            std::process::exit(1);
        }
    };
    let domid: u32 = match c.read_string(0, "domid").map(|s| s.trim().parse()) {
        Ok(Ok(d)) => d,
        other => {
            println!("xs-hostile: domid: UNEXPECTED {other:?}");
            println!("xs-hostile: done 1 steps, 1 unexpected");
            std::process::exit(1);
        }
    };
    run.report("domid", true, &format!("{domid}"));
    let home = format!("/local/domain/{domid}");
    // Start clean (an earlier run in the same domain).
    let _ = c.rm(0, "data/xs-hostile");
    let w = c.write(0, "data/xs-hostile/ok", b"1");
    run.report("write own data/xs-hostile/ok", w.is_ok(), &format!("{w:?}"));

    outside(&mut c, &mut run, domid);
    oversized(&mut c, &mut run, &dev, &home);
    malformed(&mut c, &mut run, &dev);
    watch_flood(&mut c, &mut run);
    transaction_flood(&mut c, &mut run);
    pipeline_flood(&mut c, &mut run, &dev);
    node_flood(&mut c, &mut run);

    // The connection still works, and what was made is gone.
    let fin = c.read_string(0, "domid");
    let alive = fin.as_ref().is_ok_and(|s| s.trim() == domid.to_string());
    run.report("final read domid", alive, &format!("{fin:?}"));
    let rm = c.rm(0, "data/xs-hostile");
    run.report("cleanup rm data/xs-hostile", rm.is_ok(), &format!("{rm:?}"));
    let gone = c.read(0, "data/xs-hostile");
    run.report(
        "cleanup gone",
        matches!(gone, Err(Error::Xs(XsError::ENOENT))),
        &format!("{:?}", gone.map(|_| ())),
    );
    println!(
        "xs-hostile: done {} steps, {} unexpected",
        run.steps, run.unexpected
    );
    std::process::exit(i32::from(run.unexpected != 0 || !alive));
}

/// Writes and other changes outside the domain's own subtree.
fn outside(c: &mut Client, run: &mut Run, domid: u32) {
    let acc = [XsError::EACCES];
    run.expect_err(
        "write /local/domain/0/name",
        c.write(0, "/local/domain/0/name", b"evil"),
        &acc,
    );
    run.expect_err("write /tool/x", c.write(0, "/tool/x", b"evil"), &acc);
    run.expect_err("mkdir /tool/x", c.mkdir(0, "/tool/x"), &acc);
    run.expect_err("write /x", c.write(0, "/x", b"evil"), &acc);
    run.expect_err(
        "rm /local/domain/0/name",
        c.rm(0, "/local/domain/0/name"),
        &acc,
    );
    for other in [domid + 1, domid.saturating_sub(1)] {
        if other == 0 || other == domid {
            continue;
        }
        let p = format!("/local/domain/{other}/x");
        run.expect_err(&format!("write {p}"), c.write(0, &p, b"evil"), &acc);
        let p = format!("/local/domain/{other}/name");
        run.expect_err(
            &format!("write {p}"),
            c.write(0, &p, b"evil"),
            &[XsError::EACCES, XsError::ENOENT],
        );
    }
    let me = Perm::parse(&format!("b{domid}")).expect("perm");
    run.expect_err(
        "set_perms /local/domain/0",
        c.set_perms(0, "/local/domain/0", &[me]),
        &acc,
    );
    run.expect_err(
        "set_perms /local/domain/0/name",
        c.set_perms(0, "/local/domain/0/name", &[me]),
        &acc,
    );
    // Privileged operations.
    run.expect_err(
        "introduce",
        c.introduce(domid + 7, 0x39000, 1),
        &[XsError::EACCES, XsError::EPERM],
    );
    run.expect_err(
        "release 0",
        c.raw(XS_RELEASE, 0, b"0\0".to_vec()),
        &[XsError::EACCES, XsError::EPERM],
    );
    run.expect_err(
        "set_target",
        c.raw(XS_SET_TARGET, 0, format!("{domid}\x000\0").into_bytes()),
        &[XsError::EACCES, XsError::EPERM],
    );
    run.expect_err(
        "control print",
        c.raw(XS_CONTROL, 0, b"print\0x\0".to_vec()),
        &[XsError::EACCES, XsError::EPERM],
    );
}

/// Requests too large for a message or for a node.
fn oversized(c: &mut Client, run: &mut Run, dev: &str, home: &str) {
    // The client library refuses a payload over 4096 bytes itself ...
    run.expect_err(
        "write 5000-byte value (client)",
        c.write(0, "data/xs-hostile/big", &[b'x'; 5000]),
        &[XsError::E2BIG],
    );
    // ... so send one by hand: the kernel relay must refuse it, or
    // xenstored answer with an error.
    let mut hdr = Vec::new();
    for v in [XS_WRITE, 77, 0, 5000] {
        hdr.extend_from_slice(&v.to_le_bytes());
    }
    let mut payload = b"data/xs-hostile/big\0".to_vec();
    payload.resize(5000, b'x');
    let mut one = hdr.clone();
    one.extend_from_slice(&payload);
    raw_step(run, "raw 5000-byte payload, one write", dev, &one, &[]);
    // Header alone, then the payload: the kernel sees the length first.
    let r = (|| -> Result<Option<Msg>, i32> {
        let mut f = open_raw(dev).map_err(|e| e.raw_os_error().unwrap_or(5))?;
        f.write_all(&hdr)
            .map_err(|e| e.raw_os_error().unwrap_or(5))?;
        f.write_all(&payload)
            .map_err(|e| e.raw_os_error().unwrap_or(5))?;
        Ok(read_one(
            &mut f,
            &mut Decoder::new(),
            Instant::now() + Duration::from_secs(20),
        ))
    })();
    raw_result(run, "raw 5000-byte payload, header first", r, &[]);
    // A message that fits, but a value over the node size (2048).
    run.expect_err(
        "write 4000-byte value",
        c.write(0, "data/xs-hostile/big", &[b'x'; 4000]),
        &[XsError::ENOSPC, XsError::E2BIG],
    );
    run.expect_err(
        "write 2100-byte value",
        c.write(0, "data/xs-hostile/big", &[b'x'; 2100]),
        &[XsError::ENOSPC, XsError::E2BIG],
    );
    // Paths over the limits (2048 past the domain's home, 3072 absolute).
    let long = format!("data/xs-hostile/{}", "a".repeat(2100));
    run.expect_err(
        "write 2100-char relative path",
        c.write(0, &long, b"1"),
        &[XsError::EINVAL, XsError::E2BIG],
    );
    let long = format!("{home}/data/{}", "b/".repeat(1100) + "c");
    run.expect_err(
        "write 2200-char path, 1100 levels",
        c.write(0, &long, b"1"),
        &[XsError::EINVAL, XsError::E2BIG],
    );
    let long = format!("/{}", "a".repeat(4000));
    run.expect_err(
        "read 4001-char path",
        c.read(0, &long),
        &[XsError::EINVAL, XsError::E2BIG, XsError::EACCES],
    );
    run.expect_err(
        "watch 3000-char path",
        c.watch(&format!("data/{}", "w".repeat(3000)), "long"),
        &[XsError::EINVAL, XsError::E2BIG],
    );
    let nothing = c.read(0, "data/xs-hostile/big");
    run.report(
        "big value not stored",
        matches!(nothing, Err(Error::Xs(XsError::ENOENT))),
        &format!("{:?}", nothing.map(|v| v.len())),
    );
}

fn raw_step(run: &mut Run, step: &str, dev: &str, bytes: &[u8], want: &[XsError]) {
    let r = raw_exchange(dev, bytes, Duration::from_secs(20));
    raw_result(run, step, r, want);
}

fn raw_result(run: &mut Run, step: &str, r: Result<Option<Msg>, i32>, want: &[XsError]) {
    match r {
        Err(errno) => run.report(
            step,
            true,
            &format!("kernel refused the write: {}", errno_name(errno)),
        ),
        Ok(None) => run.report(step, false, "no answer"),
        Ok(Some(m)) => match m.as_error() {
            Some(e) => {
                let good = want.is_empty() || want.contains(&e);
                run.report(step, good, &format!("error {e:?}"));
            }
            None => run.report(step, false, &format!("success type {}", m.ty)),
        },
    }
}

/// Malformed payloads: every one an error.
fn malformed(c: &mut Client, run: &mut Run, dev: &str) {
    let inval = [XsError::EINVAL];
    let cases: &[(&str, u32, &[u8])] = &[
        ("read without NUL", XS_READ, b"data/xs-hostile/ok"),
        ("write without NUL", XS_WRITE, b"data/xs-hostile/ok"),
        ("read non-UTF-8 path", XS_READ, b"data/\xff\xfe\0"),
        ("write non-UTF-8 path", XS_WRITE, b"data/\xc3\x28x\0v"),
        ("read empty path", XS_READ, b"\0"),
        ("read empty payload", XS_READ, b""),
        ("write empty path", XS_WRITE, b"\0v"),
        ("read path with space", XS_READ, b"data/a b\0"),
        ("write path with '*'", XS_WRITE, b"data/x*\0v"),
        ("write ..", XS_WRITE, b"data/../../0/name\0evil"),
        (
            "write /local/domain/0/..",
            XS_WRITE,
            b"/local/domain/0/../x\0v",
        ),
        ("write .", XS_WRITE, b"data/./x\0v"),
        ("write //", XS_WRITE, b"data//x\0v"),
        ("write trailing /", XS_WRITE, b"data/x/\0v"),
        ("read two args", XS_READ, b"data\0x\0"),
    ];
    for (step, ty, payload) in cases {
        run.expect_err(step, c.raw(*ty, 0, payload.to_vec()), &inval);
    }
    run.expect_err(
        "unknown type 999",
        c.raw(999, 0, b"data\0".to_vec()),
        &[XsError::EINVAL, XsError::ENOSYS],
    );
    run.expect_err(
        "unknown type 0x7fffffff",
        c.raw(0x7fff_ffff, 0, b"data\0".to_vec()),
        &[XsError::EINVAL, XsError::ENOSYS],
    );
    run.expect_err(
        "read in unknown transaction",
        c.raw(XS_READ, 12345, b"domid\0".to_vec()),
        &[XsError::ENOENT, XsError::EINVAL],
    );
    run.expect_err(
        "end unknown transaction",
        c.transaction_end(54321, false),
        &[XsError::ENOENT, XsError::EINVAL],
    );
    // Not sent: TRANSACTION_END with tx_id 0. Linux's relay passes it on and, on the
    // reply, finds no transaction 0: WARN_ON and the reply is dropped (the caller waits
    // forever). That is the DomU kernel's affair, not xenstored's.
    run.expect_err(
        "watch without token",
        c.raw(XS_WATCH, 0, b"data\0".to_vec()),
        &[],
    );
    run.expect_err(
        "watch without NULs",
        c.raw(XS_WATCH, 0, b"data".to_vec()),
        &[],
    );
    run.expect_err("watch invalid path", c.watch("data/a b", "t"), &[]);
    run.expect_err("watch ..", c.watch("data/../..", "t"), &[]);
    // A header whose length is larger than what follows, then the
    // connection closed: nothing must hang (the next steps would).
    let mut hdr = Vec::new();
    for v in [XS_READ, 1, 0, 100] {
        hdr.extend_from_slice(&v.to_le_bytes());
    }
    hdr.extend_from_slice(b"domid\0");
    let r = raw_exchange(dev, &hdr, Duration::from_secs(2));
    run.report(
        "truncated message, closed",
        !matches!(r, Ok(Some(ref m)) if m.as_error().is_none()),
        &match r {
            Ok(None) => "no answer (kernel waits for the rest)".to_string(),
            Ok(Some(m)) => format!("answer type {} {:?}", m.ty, m.as_error()),
            Err(e) => format!("kernel refused the write: {}", errno_name(e)),
        },
    );
    let ok = c.read_string(0, "domid");
    run.report("still answers", ok.is_ok(), &format!("{ok:?}"));
}

fn is_quota(e: &Error) -> bool {
    [XsError::E2BIG, XsError::ENOSPC]
        .iter()
        .any(|w| w.errno() == e.errno())
}

/// 200 watches: errors after the quota, answers all along.
fn watch_flood(c: &mut Client, run: &mut Run) {
    let mut ok = Vec::new();
    let mut errs = 0;
    let mut bad = Vec::new();
    for i in 0..WATCHES {
        let (p, t) = (format!("data/xs-hostile/w{i}"), format!("tok{i}"));
        match c.watch(&p, &t) {
            Ok(()) if errs == 0 => ok.push((p, t)),
            Ok(()) => {
                bad.push(format!("watch {i} accepted after an error"));
                ok.push((p, t));
            }
            Err(e) if is_quota(&e) => errs += 1,
            Err(e) => bad.push(format!("watch {i}: {}", describe(&e))),
        }
        if i % 50 == 49 {
            drain(c, Duration::from_millis(1), usize::MAX);
            if let Err(e) = c.read(0, "domid") {
                bad.push(format!("read after {} watches: {e}", i + 1));
            }
        }
    }
    let events = drain(c, Duration::from_millis(200), usize::MAX);
    // The kernel's own watches share the quota: a few fewer than 128.
    let good = bad.is_empty() && (100..=129).contains(&ok.len()) && errs == WATCHES - ok.len();
    run.report(
        "watch flood",
        good,
        &format!(
            "{} accepted, {errs} quota errors, {events} events{}",
            ok.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!(", {}", bad.join("; "))
            }
        ),
    );
    let mut failed = 0;
    for (p, t) in &ok {
        if c.unwatch(p, t).is_err() {
            failed += 1;
        }
    }
    drain(c, Duration::from_millis(50), usize::MAX);
    run.report(
        "unwatch all",
        failed == 0,
        &format!("{} removed, {failed} failed", ok.len() - failed),
    );
    let again = c.watch("data/xs-hostile/again", "again");
    run.report("watch after unwatch", again.is_ok(), &format!("{again:?}"));
    // The watch still fires on a change (the kernel relays the event).
    drain(c, Duration::from_millis(500), usize::MAX);
    let w = c.write(0, "data/xs-hostile/again", b"1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let fired = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.read_watch_timeout(Some(left)) {
            Ok(Some((p, t))) if t == "again" && p.ends_with("data/xs-hostile/again") => break true,
            Ok(Some(e)) => seen.push(e),
            _ => break false,
        }
    };
    run.report(
        "watch fires after the flood",
        w.is_ok() && fired,
        &format!("write {w:?}, event {fired}, others {seen:?}"),
    );
    let _ = c.unwatch("data/xs-hostile/again", "again");
    drain(c, Duration::from_millis(50), usize::MAX);
}

/// 20 transaction starts: errors after 10.
fn transaction_flood(c: &mut Client, run: &mut Run) {
    let mut ids = Vec::new();
    let mut errs = 0;
    let mut bad = Vec::new();
    for i in 0..TRANSACTIONS {
        match c.transaction_start() {
            Ok(t) if errs == 0 => ids.push(t),
            Ok(t) => {
                bad.push(format!("start {i} accepted after an error"));
                ids.push(t);
            }
            Err(e) if is_quota(&e) => errs += 1,
            Err(e) => bad.push(format!("start {i}: {}", describe(&e))),
        }
    }
    let mut uniq = ids.clone();
    uniq.sort_unstable();
    uniq.dedup();
    if uniq.len() != ids.len() {
        bad.push(format!("duplicate ids {ids:?}"));
    }
    // The kernel may hold a transaction of its own.
    let good = bad.is_empty() && (8..=11).contains(&ids.len()) && errs == TRANSACTIONS - ids.len();
    run.report(
        "transaction flood",
        good,
        &format!(
            "{} started, {errs} quota errors{}",
            ids.len(),
            if bad.is_empty() {
                String::new()
            } else {
                format!(", {}", bad.join("; "))
            }
        ),
    );
    // Work inside one of them still goes through.
    if let Some(&t) = ids.first() {
        let w = c.write(t, "data/xs-hostile/tx", b"1");
        run.report("write in transaction", w.is_ok(), &format!("{w:?}"));
    }
    let mut failed = 0;
    for &t in &ids {
        if c.transaction_end(t, false).is_err() {
            failed += 1;
        }
    }
    run.report(
        "abort all",
        failed == 0,
        &format!("{} aborted, {failed} failed", ids.len() - failed),
    );
    let gone = c.read(0, "data/xs-hostile/tx");
    run.report(
        "aborted write not stored",
        matches!(gone, Err(Error::Xs(XsError::ENOENT))),
        &format!("{:?}", gone.map(|_| ())),
    );
    let t = c.transaction_start();
    let ok = match t {
        Ok(t) => c.transaction_end(t, false).is_ok(),
        Err(_) => false,
    };
    run.report("transaction after abort", ok, &format!("{t:?}"));
}

/// 40 requests written before any reply is read (outstanding quota 20):
/// every one answered, in order, none lost.
fn pipeline_flood(c: &mut Client, run: &mut Run, dev: &str) {
    let domid = c.read_string(0, "domid").unwrap_or_default();
    let r = (|| -> Result<(usize, usize), String> {
        let mut f = open_raw(dev).map_err(|e| e.to_string())?;
        for i in 0..PIPELINE {
            let req = u32::try_from(1000 + i).unwrap_or(0);
            f.write_all(&Msg::new(XS_READ, req, 0, b"domid\0".to_vec()).encode())
                .map_err(|e| format!("write {i}: {e}"))?;
        }
        let mut d = Decoder::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut right, mut wrong) = (0, 0);
        for _ in 0..PIPELINE {
            match read_one(&mut f, &mut d, deadline) {
                Some(m) if m.ty == XS_READ && m.payload == domid.as_bytes() => right += 1,
                Some(_) => wrong += 1,
                None => break,
            }
        }
        Ok((right, wrong))
    })();
    match r {
        Ok((right, wrong)) => run.report(
            "pipelined requests",
            right == PIPELINE && wrong == 0,
            &format!("{right} of {PIPELINE} answered right, {wrong} wrong"),
        ),
        Err(e) => run.report("pipelined requests", false, &e),
    }
}

/// 1100 nodes under the domain's own `data/`: errors after the quota (the
/// domain's other nodes count too).
fn node_flood(c: &mut Client, run: &mut Run) {
    // In groups of 50: a directory's record holds its children's names, so one
    // directory of 1000 children would meet the node-size quota (2048) first.
    let mut made = 0;
    let mut errs = 0;
    let mut bad = Vec::new();
    for i in 0..NODES {
        let new_group = i % 50 == 0;
        match c.write(0, &format!("data/xs-hostile/g{}/n{}", i / 50, i % 50), b"x") {
            Ok(()) if errs == 0 => made += 1 + usize::from(new_group),
            Ok(()) => bad.push(format!("node {i} made after an error")),
            Err(e) if is_quota(&e) => errs += 1,
            Err(e) => bad.push(format!("node {i}: {}", describe(&e))),
        }
        if !bad.is_empty() || errs >= 20 {
            break;
        }
    }
    let good = bad.is_empty() && (900..=1000).contains(&made) && errs > 0;
    run.report(
        "node flood",
        good,
        &format!(
            "{made} nodes made, then {errs} quota errors{}",
            if bad.is_empty() {
                String::new()
            } else {
                format!(", {}", bad.join("; "))
            }
        ),
    );
    run.expect_err(
        "mkdir over quota",
        c.mkdir(0, "data/xs-hostile/more"),
        &[XsError::ENOSPC, XsError::E2BIG],
    );
    let alive = c.read_string(0, "domid");
    run.report("read at quota", alive.is_ok(), &format!("{alive:?}"));
    let rm = c.rm(0, "data/xs-hostile");
    run.report("rm the flood", rm.is_ok(), &format!("{rm:?}"));
    let w = c.write(0, "data/xs-hostile/after", b"1");
    run.report("write after rm", w.is_ok(), &format!("{w:?}"));
}
