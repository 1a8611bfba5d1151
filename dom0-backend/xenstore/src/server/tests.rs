//! Host tests of the daemon core: socket clients, a fake hypervisor, and
//! guests played through their ring pages.

use super::*;
use xen_abi::xenstore::XS_ERROR;

#[derive(Default)]
struct FakeHv {
    /// Pages handed out by map_ring, prepared by the test.
    pages: HashMap<u16, Vec<u32>>,
    states: HashMap<u16, DomState>,
    binds: Vec<(u16, u32, u32)>,
    unbinds: Vec<u32>,
    notifies: Vec<u32>,
    next_port: u32,
    fail_map: bool,
}

impl Hypervisor for FakeHv {
    fn map_ring(&mut self, domid: u16, _gfn: u64) -> io::Result<Box<dyn RingMem>> {
        if self.fail_map {
            return Err(io::Error::from_raw_os_error(22));
        }
        Ok(Box::new(
            self.pages
                .remove(&domid)
                .unwrap_or_else(|| vec![0u32; 1024]),
        ))
    }
    fn bind_interdomain(&mut self, domid: u16, remote_port: u32) -> io::Result<u32> {
        self.next_port += 1;
        self.binds.push((domid, remote_port, self.next_port + 100));
        Ok(self.next_port + 100)
    }
    fn unbind(&mut self, port: u32) {
        self.unbinds.push(port);
    }
    fn notify(&mut self, port: u32) {
        self.notifies.push(port);
    }
    fn domain_state(&mut self, domid: u16) -> Option<DomState> {
        self.states.get(&domid).copied()
    }
}

type Srv = Server<FakeHv>;

fn srv() -> Srv {
    Server::new(FakeHv::default())
}

/// Sends a request on a socket connection and returns everything queued
/// for it afterwards.
fn sock(s: &mut Srv, id: ConnId, ty: u32, tx: u32, payload: &[u8]) -> Vec<Msg> {
    assert!(s.socket_input(id, &Msg::new(ty, 42, tx, payload.to_vec()).encode()));
    drain(s, id)
}

fn drain(s: &mut Srv, id: ConnId) -> Vec<Msg> {
    let mut d = Decoder::new();
    while let Some(b) = s.pending_output(id) {
        let b = b.to_vec();
        d.push(&b);
        s.output_sent(id, b.len());
    }
    let mut out = Vec::new();
    while let Some(m) = d.next_msg().unwrap() {
        out.push(m);
    }
    out
}

fn ok_reply(ms: &[Msg]) -> bool {
    ms.iter()
        .any(|m| m.ty != XS_WATCH_EVENT && m.payload == b"OK\0")
}

fn err_of(ms: &[Msg]) -> Option<XsError> {
    ms.iter().find_map(|m| m.as_error())
}

fn events(ms: &[Msg]) -> Vec<(String, String)> {
    ms.iter()
        .filter(|m| m.ty == XS_WATCH_EVENT)
        .map(|m| {
            let p = wire::strings(&m.payload);
            (
                String::from_utf8_lossy(p[0]).into_owned(),
                String::from_utf8_lossy(p[1]).into_owned(),
            )
        })
        .collect()
}

/// Plays a guest: writes requests into the ring, lets the daemon run,
/// reads all replies back.
fn guest(s: &mut Srv, domid: u16, reqs: &[Msg]) -> Vec<Msg> {
    let mut bytes = Vec::new();
    for r in reqs {
        bytes.extend(r.encode());
    }
    let mut out = Decoder::new();
    let mut off = 0;
    for _ in 0..1000 {
        {
            let r = RingPage::new(s.ring_page(domid).unwrap()).unwrap();
            off += r.write_requests(&bytes[off..]).unwrap();
        }
        s.service_rings();
        let r = RingPage::new(s.ring_page(domid).unwrap()).unwrap();
        let mut buf = [0u8; 1024];
        let n = r.read_responses(&mut buf).unwrap();
        out.push(&buf[..n]);
        if off == bytes.len() && n == 0 && !r.requests_pending() {
            break;
        }
    }
    let mut v = Vec::new();
    while let Ok(Some(m)) = out.next_msg() {
        v.push(m);
    }
    v
}

fn introduce(s: &mut Srv, admin: ConnId, domid: u16) {
    let r = sock(
        s,
        admin,
        XS_INTRODUCE,
        0,
        &wire::join(&[domid.to_string(), "233473".into(), "1".into()]),
    );
    assert!(ok_reply(&r), "{r:?}");
}

/// libxl's skeleton for a domain.
fn skeleton(s: &mut Srv, admin: ConnId, d: u16) {
    let home = format!("/local/domain/{d}");
    assert!(ok_reply(&sock(
        s,
        admin,
        XS_WRITE,
        0,
        format!("{home}\0").as_bytes()
    )));
    assert!(ok_reply(&sock(
        s,
        admin,
        XS_SET_PERMS,
        0,
        format!("{home}\0n0\0r{d}\0").as_bytes()
    )));
    assert!(ok_reply(&sock(
        s,
        admin,
        XS_WRITE,
        0,
        format!("{home}/device\0").as_bytes()
    )));
    assert!(ok_reply(&sock(
        s,
        admin,
        XS_SET_PERMS,
        0,
        format!("{home}/device\0n{d}\0").as_bytes()
    )));
    assert!(ok_reply(&sock(
        s,
        admin,
        XS_WRITE,
        0,
        format!("{home}/name\0guest{d}").as_bytes()
    )));
}

#[test]
fn socket_basic_operations() {
    let mut s = srv();
    let a = s.add_socket_conn();
    let r = sock(&mut s, a, XS_WRITE, 0, b"/local/domain/0/name\0Domain-0");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].ty, r[0].req_id, r[0].payload.as_slice()),
        (XS_WRITE, 42, &b"OK\0"[..])
    );
    let r = sock(&mut s, a, XS_READ, 0, b"/local/domain/0/name\0");
    assert_eq!(r[0].payload, b"Domain-0");
    // Relative paths of socket clients are under /local/domain/0.
    let r = sock(&mut s, a, XS_READ, 0, b"name\0");
    assert_eq!(r[0].payload, b"Domain-0");
    let r = sock(&mut s, a, XS_DIRECTORY, 0, b"/local/domain/0\0");
    assert_eq!(r[0].payload, b"name\0");
    let r = sock(&mut s, a, XS_GET_PERMS, 0, b"/local\0");
    assert_eq!(r[0].payload, b"n0\0");
    let r = sock(&mut s, a, XS_GET_DOMAIN_PATH, 0, b"5\0");
    assert_eq!(r[0].payload, b"/local/domain/5\0");
    let r = sock(&mut s, a, XS_IS_DOMAIN_INTRODUCED, 0, b"5\0");
    assert_eq!(r[0].payload, b"F\0");
    let r = sock(&mut s, a, XS_READ, 0, b"/nope\0");
    assert_eq!(
        (r[0].ty, r[0].payload.as_slice()),
        (XS_ERROR, &b"ENOENT\0"[..])
    );
    let r = sock(&mut s, a, XS_RM, 0, b"/local/domain/0/name\0");
    assert!(ok_reply(&r));
    let r = sock(&mut s, a, XS_MKDIR, 0, b"/m\0");
    assert!(ok_reply(&r));
    let r = sock(&mut s, a, XS_CONTROL, 0, b"check\0");
    assert!(ok_reply(&r));
}

#[test]
fn hostile_messages_from_a_socket() {
    let mut s = srv();
    let a = s.add_socket_conn();
    // Unknown and removed types.
    for ty in [20u32, 23, 99, XS_WATCH_EVENT, XS_ERROR] {
        assert_eq!(
            err_of(&sock(&mut s, a, ty, 0, b"")),
            Some(XsError::ENOSYS),
            "type {ty}"
        );
    }
    // Missing NULs, extra NULs, bad UTF-8, empty payloads.
    assert_eq!(
        err_of(&sock(&mut s, a, XS_READ, 0, b"/x")),
        Some(XsError::EINVAL)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_READ, 0, b"/x\0y\0")),
        Some(XsError::EINVAL)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_READ, 0, b"/\xff\0")),
        Some(XsError::EINVAL)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_WRITE, 0, b"/novalue")),
        Some(XsError::EINVAL)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_WATCH, 0, b"/x\0")),
        Some(XsError::EINVAL)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_SET_PERMS, 0, b"/x\0q1\0")),
        Some(XsError::EINVAL)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_INTRODUCE, 0, b"1\0")),
        Some(XsError::EINVAL)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_TRANSACTION_END, 0, b"X\0")),
        Some(XsError::EINVAL)
    );
    // Unknown transaction.
    assert_eq!(
        err_of(&sock(&mut s, a, XS_READ, 77, b"/tool\0")),
        Some(XsError::ENOENT)
    );
    // A header announcing more than 4096 bytes drops the connection.
    let mut h = Msg::new(XS_READ, 1, 0, vec![]).encode();
    h[12..16].copy_from_slice(&5000u32.to_le_bytes());
    assert!(!s.socket_input(a, &h));
    assert!(!s.has_conn(a));
    assert!(s.take_logs().iter().any(|l| l.contains("5000")));
}

#[test]
fn large_directory_is_e2big_and_parts_work() {
    let mut s = srv();
    let a = s.add_socket_conn();
    for i in 0..400 {
        sock(
            &mut s,
            a,
            XS_WRITE,
            0,
            format!("/big/entry-number-{i:05}\0").as_bytes(),
        );
    }
    assert_eq!(
        err_of(&sock(&mut s, a, XS_DIRECTORY, 0, b"/big\0")),
        Some(XsError::E2BIG)
    );
    let r = sock(&mut s, a, XS_DIRECTORY_PART, 0, b"/big\x000\0");
    assert!(r[0].payload.len() <= 4096 && r[0].ty == XS_DIRECTORY_PART);
    assert_eq!(
        err_of(&sock(&mut s, a, XS_DIRECTORY_PART, 0, b"/big\0")),
        Some(XsError::EINVAL)
    );
}

#[test]
fn watches_fire_on_node_and_ancestors_and_initially() {
    let mut s = srv();
    let a = s.add_socket_conn();
    let w = s.add_socket_conn();
    let r = sock(&mut s, w, XS_WATCH, 0, b"/a\0tokA\0");
    assert!(ok_reply(&r));
    assert_eq!(r[0].ty, XS_WATCH, "ack first, then the initial event");
    assert_eq!(events(&r), vec![("/a".into(), "tokA".into())]);
    assert_eq!(
        err_of(&sock(&mut s, w, XS_WATCH, 0, b"/a\0tokA\0")),
        Some(XsError::EEXIST)
    );
    sock(&mut s, w, XS_WATCH, 0, b"/\0root\0");
    drain(&mut s, w);
    sock(&mut s, a, XS_WRITE, 0, b"/a/b/c\0v");
    let ev = events(&drain(&mut s, w));
    assert!(ev.contains(&("/a/b/c".into(), "tokA".into())));
    assert!(ev.contains(&("/a/b/c".into(), "root".into())));
    // Siblings don't match.
    sock(&mut s, a, XS_WRITE, 0, b"/ab\0v");
    assert_eq!(
        events(&drain(&mut s, w)),
        vec![("/ab".into(), "root".into())]
    );
    // Unwatch.
    assert!(ok_reply(&sock(&mut s, w, XS_UNWATCH, 0, b"/\0root\0")));
    assert_eq!(
        err_of(&sock(&mut s, w, XS_UNWATCH, 0, b"/\0root\0")),
        Some(XsError::ENOENT)
    );
}

#[test]
fn rm_fires_exact_watches_of_descendants() {
    let mut s = srv();
    let a = s.add_socket_conn();
    let w = s.add_socket_conn();
    sock(&mut s, a, XS_WRITE, 0, b"/a/b/c\0");
    sock(&mut s, w, XS_WATCH, 0, b"/a/b/c\0deep\0");
    sock(&mut s, w, XS_WATCH, 0, b"/a/b/c/missing\0none\0");
    drain(&mut s, w);
    sock(&mut s, a, XS_RM, 0, b"/a\0");
    assert_eq!(
        events(&drain(&mut s, w)),
        vec![("/a/b/c".into(), "deep".into())]
    );
}

#[test]
fn transactions_over_the_wire() {
    let mut s = srv();
    let a = s.add_socket_conn();
    let w = s.add_socket_conn();
    sock(&mut s, w, XS_WATCH, 0, b"/t\0tok\0");
    drain(&mut s, w);
    let r = sock(&mut s, a, XS_TRANSACTION_START, 0, b"\0");
    assert_eq!(r[0].payload, b"1\0");
    assert_eq!(
        err_of(&sock(&mut s, a, XS_TRANSACTION_START, 1, b"\0")),
        Some(XsError::EBUSY)
    );
    let r = sock(&mut s, a, XS_WRITE, 1, b"/t/x\0in-tx");
    assert_eq!(r[0].tx_id, 1);
    assert!(
        events(&drain(&mut s, w)).is_empty(),
        "no events before commit"
    );
    assert_eq!(
        err_of(&sock(&mut s, w, XS_READ, 0, b"/t/x\0")),
        Some(XsError::ENOENT)
    );
    assert!(ok_reply(&sock(&mut s, a, XS_TRANSACTION_END, 1, b"T\0")));
    assert_eq!(
        events(&drain(&mut s, w)),
        vec![("/t/x".into(), "tok".into())]
    );
    // Tx id is gone after end.
    assert_eq!(
        err_of(&sock(&mut s, a, XS_TRANSACTION_END, 1, b"T\0")),
        Some(XsError::ENOENT)
    );
    // Conflict: EAGAIN.
    let r = sock(&mut s, a, XS_TRANSACTION_START, 0, b"\0");
    assert_eq!(r[0].payload, b"2\0");
    sock(&mut s, a, XS_READ, 2, b"/t/x\0");
    sock(&mut s, w, XS_WRITE, 0, b"/t/x\0other");
    sock(&mut s, a, XS_WRITE, 2, b"/t/y\0");
    assert_eq!(
        err_of(&sock(&mut s, a, XS_TRANSACTION_END, 2, b"T\0")),
        Some(XsError::EAGAIN)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_READ, 0, b"/t/y\0")),
        Some(XsError::ENOENT)
    );
    // Abort.
    sock(&mut s, a, XS_TRANSACTION_START, 0, b"\0");
    sock(&mut s, a, XS_WRITE, 3, b"/t/z\0");
    assert!(ok_reply(&sock(&mut s, a, XS_TRANSACTION_END, 3, b"F\0")));
    assert_eq!(
        err_of(&sock(&mut s, a, XS_READ, 0, b"/t/z\0")),
        Some(XsError::ENOENT)
    );
}

#[test]
fn domain_introduction_and_ring_service() {
    let mut s = srv();
    let a = s.add_socket_conn();
    let w = s.add_socket_conn();
    sock(&mut s, w, XS_WATCH, 0, b"@introduceDomain\0domlist\0");
    drain(&mut s, w);
    skeleton(&mut s, a, 1);
    introduce(&mut s, a, 1);
    assert_eq!(
        events(&drain(&mut s, w)),
        vec![("@introduceDomain".into(), "domlist".into())]
    );
    assert_eq!(s.hv.binds, vec![(1, 1, 101)]);
    assert_eq!(
        sock(&mut s, a, XS_IS_DOMAIN_INTRODUCED, 0, b"1\0")[0].payload,
        b"T\0"
    );
    // The guest: reads its name relatively, writes in its device dir.
    let r = guest(
        &mut s,
        1,
        &[
            Msg::new(XS_READ, 1, 0, b"name\0".to_vec()),
            Msg::new(XS_WRITE, 2, 0, b"device/vbd/51712/state\x004".to_vec()),
            Msg::new(XS_WRITE, 3, 0, b"name\0evil".to_vec()),
            Msg::new(XS_WRITE, 4, 0, b"/local/domain/2/x\0evil".to_vec()),
            Msg::new(XS_INTRODUCE, 5, 0, b"2\x001\x001\0".to_vec()),
            Msg::new(XS_WATCH, 6, 0, b"device\0tokD\0".to_vec()),
        ],
    );
    let replies: Vec<&Msg> = r.iter().filter(|m| m.ty != XS_WATCH_EVENT).collect();
    assert_eq!(replies[0].payload, b"guest1");
    assert_eq!(replies[1].payload, b"OK\0");
    assert_eq!(replies[2].as_error(), Some(XsError::EACCES));
    assert_eq!(replies[3].as_error(), Some(XsError::EACCES));
    assert_eq!(replies[4].as_error(), Some(XsError::EACCES));
    assert_eq!(replies[5].payload, b"OK\0");
    assert_eq!(
        events(&r),
        vec![("device".into(), "tokD".into())],
        "relative initial event"
    );
    assert!(s.hv.notifies.contains(&101));
    // The node the guest made is its own.
    assert_eq!(
        sock(&mut s, a, XS_GET_PERMS, 0, b"/local/domain/1/device/vbd\0")[0].payload,
        b"n1\0"
    );
    // Dom0 writes under the guest's device dir: the guest sees a relative event.
    sock(
        &mut s,
        a,
        XS_WRITE,
        0,
        b"/local/domain/1/device/vbd/51712/backend\0/x",
    );
    let r = guest(&mut s, 1, &[]);
    assert_eq!(
        events(&r),
        vec![("device/vbd/51712/backend".into(), "tokD".into())]
    );
    // Unprivileged: the initial event only (as C), no later special events.
    let r = guest(
        &mut s,
        1,
        &[Msg::new(XS_WATCH, 7, 0, b"@releaseDomain\0rel\0".to_vec())],
    );
    assert_eq!(events(&r), vec![("@releaseDomain".into(), "rel".into())]);
    s.hv.states.insert(
        1,
        DomState {
            shutdown: true,
            dying: false,
        },
    );
    s.check_domains();
    assert!(events(&guest(&mut s, 1, &[])).is_empty());
}

#[test]
fn watch_events_are_filtered_by_read_permission() {
    let mut s = srv();
    let a = s.add_socket_conn();
    skeleton(&mut s, a, 1);
    introduce(&mut s, a, 1);
    guest(
        &mut s,
        1,
        &[Msg::new(XS_WATCH, 1, 0, b"/local/domain/0\0spy\0".to_vec())],
    );
    sock(&mut s, a, XS_WRITE, 0, b"/local/domain/0/secret\0x");
    assert!(events(&guest(&mut s, 1, &[])).is_empty());
    // Granting read makes it visible.
    sock(
        &mut s,
        a,
        XS_SET_PERMS,
        0,
        b"/local/domain/0/secret\0n0\0r1\0",
    );
    assert_eq!(
        events(&guest(&mut s, 1, &[])),
        vec![("/local/domain/0/secret".into(), "spy".into())]
    );
}

#[test]
fn domain_quotas() {
    let mut s = srv();
    let a = s.add_socket_conn();
    skeleton(&mut s, a, 1);
    introduce(&mut s, a, 1);
    s.store.quota.watches = 2;
    s.store.quota.transactions = 1;
    let mut reqs = Vec::new();
    for i in 0..4 {
        reqs.push(Msg::new(
            XS_WATCH,
            i,
            0,
            format!("device\0t{i}\0").into_bytes(),
        ));
    }
    let r = guest(&mut s, 1, &reqs);
    let errs: Vec<Option<XsError>> = r
        .iter()
        .filter(|m| m.ty != XS_WATCH_EVENT)
        .map(|m| m.as_error())
        .collect();
    // C allows quota+1 watches (checks "> quota" before adding).
    assert_eq!(errs, vec![None, None, None, Some(XsError::E2BIG)]);
    let reqs: Vec<Msg> = (0..3)
        .map(|i| Msg::new(XS_TRANSACTION_START, i, 0, b"\0".to_vec()))
        .collect();
    let r = guest(&mut s, 1, &reqs);
    let errs: Vec<Option<XsError>> = r.iter().map(|m| m.as_error()).collect();
    assert_eq!(errs, vec![None, None, Some(XsError::ENOSPC)]);
}

#[test]
fn outstanding_replies_stop_reading() {
    let mut s = srv();
    let a = s.add_socket_conn();
    skeleton(&mut s, a, 1);
    let big = vec![b'x'; 3000];
    let mut w = b"/local/domain/1/big\0".to_vec();
    w.extend(&big);
    sock(&mut s, a, XS_WRITE, 0, &w);
    sock(&mut s, a, XS_SET_PERMS, 0, b"/local/domain/1/big\0n0\0r1\0");
    introduce(&mut s, a, 1);
    // 28 requests of 36 bytes fill the request ring; the guest never
    // consumes replies.
    let one = Msg::new(XS_READ, 1, 0, b"/local/domain/1/big\0".to_vec()).encode();
    {
        let r = RingPage::new(s.ring_page(1).unwrap()).unwrap();
        for _ in 0..28 {
            assert_eq!(r.write_requests(&one).unwrap(), one.len());
        }
    }
    s.service_rings();
    s.service_rings();
    let r = RingPage::new(s.ring_page(1).unwrap()).unwrap();
    let [req_cons, req_prod, _, rsp_prod] = r.indexes();
    assert_eq!(rsp_prod, 1024, "ring full of the first reply");
    // 20 outstanding replies: the rest of the requests stay unread.
    assert_eq!(req_cons as usize, 20 * one.len());
    assert!(req_cons < req_prod);
    // Dom0 is unaffected.
    assert_eq!(
        sock(&mut s, a, XS_READ, 0, b"/local/domain/1/name\0")[0].payload,
        b"guest1"
    );
}

#[test]
fn hostile_ring_is_ignored_without_harm() {
    let mut s = srv();
    let a = s.add_socket_conn();
    skeleton(&mut s, a, 1);
    skeleton(&mut s, a, 2);
    introduce(&mut s, a, 1);
    introduce(&mut s, a, 2);
    // Domain 1 announces a 5000-byte payload.
    let mut h = Msg::new(XS_READ, 1, 0, vec![]).encode();
    h[12..16].copy_from_slice(&5000u32.to_le_bytes());
    guest(&mut s, 1, &[Msg::new(XS_READ, 9, 0, b"name\0".to_vec())]);
    {
        let r = RingPage::new(s.ring_page(1).unwrap()).unwrap();
        r.write_requests(&h).unwrap();
    }
    s.service_rings();
    assert!(s.is_ignored(1));
    assert_eq!(
        RingPage::new(s.ring_page(1).unwrap()).unwrap().error(),
        XENSTORE_ERROR_PROTO
    );
    assert!(
        s.take_logs()
            .iter()
            .any(|l| l.starts_with("D1: ignoring connection"))
    );
    // Domain 2 breaks its indexes.
    {
        let r = RingPage::new(s.ring_page(2).unwrap()).unwrap();
        r.set_index(1, 0x10_0000);
    }
    s.service_rings();
    assert!(s.is_ignored(2));
    assert_eq!(
        RingPage::new(s.ring_page(2).unwrap()).unwrap().error(),
        XENSTORE_ERROR_RINGIDX
    );
    // Garbage on a fresh domain: random bytes, handled without panics.
    skeleton(&mut s, a, 3);
    introduce(&mut s, a, 3);
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..900)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    {
        let r = RingPage::new(s.ring_page(3).unwrap()).unwrap();
        r.write_requests(&garbage).unwrap();
    }
    s.service_rings();
    // Dom0 still served.
    assert_eq!(
        sock(&mut s, a, XS_READ, 0, b"/local/domain/1/name\0")[0].payload,
        b"guest1"
    );
}

#[test]
fn domain_shutdown_and_death() {
    let mut s = srv();
    let a = s.add_socket_conn();
    let w = s.add_socket_conn();
    skeleton(&mut s, a, 1);
    introduce(&mut s, a, 1);
    guest(
        &mut s,
        1,
        &[Msg::new(
            XS_WRITE,
            1,
            0,
            b"device/vif/0/state\x001".to_vec(),
        )],
    );
    sock(&mut s, w, XS_WATCH, 0, b"@releaseDomain\0domlist\0");
    sock(
        &mut s,
        w,
        XS_WATCH,
        0,
        b"/local/domain/1/device/vif/0/state\0st\0",
    );
    drain(&mut s, w);
    s.hv.states.insert(
        1,
        DomState {
            shutdown: false,
            dying: false,
        },
    );
    s.check_domains();
    assert!(events(&drain(&mut s, w)).is_empty());
    s.hv.states.insert(
        1,
        DomState {
            shutdown: true,
            dying: false,
        },
    );
    s.check_domains();
    assert_eq!(
        events(&drain(&mut s, w)),
        vec![("@releaseDomain".into(), "domlist".into())]
    );
    s.check_domains();
    assert!(
        events(&drain(&mut s, w)).is_empty(),
        "shutdown reported once"
    );
    s.hv.states.insert(
        1,
        DomState {
            shutdown: true,
            dying: true,
        },
    );
    s.check_domains();
    let ev = events(&drain(&mut s, w));
    assert!(ev.contains(&("/local/domain/1/device/vif/0/state".into(), "st".into())));
    assert_eq!(
        ev.last(),
        Some(&("@releaseDomain".into(), "domlist".into()))
    );
    assert_eq!(s.hv.unbinds, vec![101]);
    assert_eq!(
        err_of(&sock(&mut s, a, XS_READ, 0, b"/local/domain/1/device\0")),
        Some(XsError::ENOENT)
    );
    assert_eq!(
        sock(&mut s, a, XS_READ, 0, b"/local/domain/1/name\0")[0].payload,
        b"guest1"
    );
    assert_eq!(
        sock(&mut s, a, XS_IS_DOMAIN_INTRODUCED, 0, b"1\0")[0].payload,
        b"F\0"
    );
    assert!(s.domain_ids().is_empty());
}

#[test]
fn release_and_failed_introduce() {
    let mut s = srv();
    let a = s.add_socket_conn();
    introduce(&mut s, a, 4);
    assert!(ok_reply(&sock(&mut s, a, XS_RELEASE, 0, b"4\0")));
    assert_eq!(
        err_of(&sock(&mut s, a, XS_RELEASE, 0, b"4\0")),
        Some(XsError::ENOENT)
    );
    assert_eq!(
        err_of(&sock(&mut s, a, XS_RELEASE, 0, b"0\0")),
        Some(XsError::EINVAL)
    );
    s.hv.fail_map = true;
    assert_eq!(
        err_of(&sock(&mut s, a, XS_INTRODUCE, 0, b"5\x001\x001\0")),
        Some(XsError::EINVAL)
    );
    assert!(s.domain_ids().is_empty());
    assert_eq!(
        err_of(&sock(&mut s, a, XS_INTRODUCE, 0, b"5\x001\x000\0")),
        Some(XsError::EINVAL)
    );
}

#[test]
fn introduce_resets_ring_and_honours_reconnect() {
    let mut s = srv();
    let a = s.add_socket_conn();
    let mut page = vec![0u32; 1024];
    {
        let r = RingPage::new(zerocopy::IntoBytes::as_mut_bytes(page.as_mut_slice())).unwrap();
        r.set_index(0, 77);
        r.set_index(1, 77);
        r.set_connection(XENSTORE_RECONNECT);
    }
    s.hv.pages.insert(6, page);
    introduce(&mut s, a, 6);
    let r = RingPage::new(s.ring_page(6).unwrap()).unwrap();
    assert_eq!(r.indexes(), [0, 0, 0, 0]);
    assert_eq!(r.connection(), XENSTORE_CONNECTED);
}

#[test]
fn dom0_ring_attach() {
    let mut s = srv();
    s.attach_dom0(Box::new(vec![0u32; 1024]), 7).unwrap();
    assert_eq!(s.hv.binds, vec![(0, 7, 101)]);
    assert_eq!(s.hv.notifies, vec![101]);
    let r = guest(
        &mut s,
        0,
        &[
            Msg::new(XS_WRITE, 1, 0, b"/local/domain/0/domid\x000".to_vec()),
            Msg::new(XS_READ, 2, 0, b"domid\0".to_vec()),
        ],
    );
    assert_eq!(r[1].payload, b"0");
    // The kernel connection is privileged.
    let r = guest(
        &mut s,
        0,
        &[Msg::new(XS_INTRODUCE, 3, 0, b"9\x001\x001\0".to_vec())],
    );
    assert_eq!(r[0].payload, b"OK\0");
}

#[test]
fn special_watch_permissions() {
    let mut s = srv();
    let a = s.add_socket_conn();
    skeleton(&mut s, a, 1);
    introduce(&mut s, a, 1);
    // Dom0 lets domain 1 see @releaseDomain.
    assert!(ok_reply(&sock(
        &mut s,
        a,
        XS_SET_PERMS,
        0,
        b"@releaseDomain\0n0\0r1\0"
    )));
    guest(
        &mut s,
        1,
        &[Msg::new(XS_WATCH, 1, 0, b"@releaseDomain\0rel\0".to_vec())],
    );
    let r = guest(
        &mut s,
        1,
        &[Msg::new(
            XS_SET_PERMS,
            2,
            0,
            b"@releaseDomain\0b1\0".to_vec(),
        )],
    );
    assert_eq!(r[0].as_error(), Some(XsError::EACCES));
    skeleton(&mut s, a, 2);
    introduce(&mut s, a, 2);
    s.hv.states.insert(
        1,
        DomState {
            shutdown: false,
            dying: false,
        },
    );
    s.check_domains();
    assert_eq!(
        events(&guest(&mut s, 1, &[])),
        vec![("@releaseDomain".into(), "rel".into())]
    );
}

#[test]
fn a_flooding_domain_is_served_in_batches() {
    let mut s = srv();
    let a = s.add_socket_conn();
    introduce(&mut s, a, 1);
    s.ring_batch = 4;
    let one = Msg::new(XS_GET_DOMAIN_PATH, 1, 0, b"1\0".to_vec()).encode();
    {
        let r = RingPage::new(s.ring_page(1).unwrap()).unwrap();
        for _ in 0..10 {
            r.write_requests(&one).unwrap();
        }
    }
    assert!(s.service_rings(), "more work pending after one batch");
    let r = RingPage::new(s.ring_page(1).unwrap()).unwrap();
    assert_eq!(r.indexes()[0] as usize, 4 * one.len());
    assert!(s.service_rings());
    assert!(!s.service_rings(), "10 requests: 4 + 4 + 2");
    let r = RingPage::new(s.ring_page(1).unwrap()).unwrap();
    assert_eq!(r.indexes()[0] as usize, 10 * one.len());
}

/// Deterministic xorshift generator for the random tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

#[test]
fn random_requests_from_a_domain_never_harm_dom0() {
    let mut s = srv();
    let a = s.add_socket_conn();
    skeleton(&mut s, a, 1);
    introduce(&mut s, a, 1);
    let paths = [
        "device",
        "device/x",
        "device/x/y",
        "name",
        "/local/domain/0/z",
        "/",
        "/tool",
        "@releaseDomain",
        "@introduceDomain",
        "/local/domain/1",
        "bad//path",
        "trailing/",
        "",
        "/local/domain/1/device/q",
    ];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let (mut sent, mut answered, mut oks) = (0, 0, 0);
    for round in 0..300 {
        let mut reqs = Vec::new();
        for _ in 0..rng.below(6) + 1 {
            let ty = match rng.below(4) {
                0 => rng.below(30) as u32,
                _ => [
                    XS_READ,
                    XS_WRITE,
                    XS_MKDIR,
                    XS_RM,
                    XS_DIRECTORY,
                    XS_WATCH,
                    XS_UNWATCH,
                    XS_SET_PERMS,
                    XS_TRANSACTION_START,
                    XS_TRANSACTION_END,
                    XS_GET_PERMS,
                    XS_DIRECTORY_PART,
                    XS_RESET_WATCHES,
                ][rng.below(13) as usize],
            };
            let mut payload = Vec::new();
            for _ in 0..rng.below(4) {
                match rng.below(5) {
                    0 => payload.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
                    1 => payload.extend_from_slice(
                        ["n0", "r1", "b1", "w2", "T", "F", "0", "1"][rng.below(8) as usize]
                            .as_bytes(),
                    ),
                    _ => payload.extend_from_slice(rng.pick(&paths).as_bytes()),
                }
                if rng.below(5) != 0 {
                    payload.push(0);
                }
            }
            let tx = if rng.below(4) == 0 {
                rng.below(4) as u32
            } else {
                0
            };
            reqs.push(Msg::new(ty, round, tx, payload));
        }
        let replies = guest(&mut s, 1, &reqs);
        let answers: Vec<&Msg> = replies.iter().filter(|m| m.ty != XS_WATCH_EVENT).collect();
        assert_eq!(answers.len(), reqs.len(), "one answer per request");
        sent += reqs.len();
        answered += answers.len();
        oks += answers.iter().filter(|m| m.as_error().is_none()).count();
    }
    assert!(
        sent > 600 && answered == sent && oks > 50,
        "{sent} {answered} {oks}"
    );
    assert!(
        !s.is_ignored(1),
        "well-framed garbage is answered, not fatal"
    );
    // Dom0's view is intact and the domain never escaped its subtree.
    assert_eq!(
        sock(&mut s, a, XS_READ, 0, b"/local/domain/1/name\0")[0].payload,
        b"guest1"
    );
    for p in s.store.walk("/") {
        let owner = s.store.node(&p).unwrap().owner();
        if owner == 1 {
            assert!(p.starts_with("/local/domain/1/device"), "{p}");
        }
    }
    // A hostile framing error afterwards is still contained.
    let mut h = Msg::new(XS_READ, 1, 0, vec![]).encode();
    h[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    RingPage::new(s.ring_page(1).unwrap())
        .unwrap()
        .write_requests(&h)
        .unwrap();
    s.service_rings();
    assert!(s.is_ignored(1));
    assert!(ok_reply(&sock(&mut s, a, XS_WRITE, 0, b"/after\0ok")));
}
