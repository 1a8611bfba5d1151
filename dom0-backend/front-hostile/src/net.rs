//! The netif side of `front-hostile` (`--netif`): the vifs taken over from
//! `xen-netfront` and attacked case after case (see
//! [`front_hostile::netif::NET_CASES`]).
//!
//! Linux's netback disables a vif for good when its tx ring is malformed
//! (`xenvif_fatal_tx_err`: "fatal error; disabling device"), so each case
//! marked `own_vif` runs on a vif of its own (the second, third, ...), after
//! one good ARP exchange on it; the others share the first vif, whose
//! connection is remade when a case left it unusable. The handshake is
//! netfront's for one queue and one event channel: `tx-ring-ref`,
//! `rx-ring-ref`, `event-channel`, `request-rx-copy` 1, `feature-rx-notify`
//! 1, then state Connected (4) directly.

use std::collections::HashMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

use front_hostile::netif::{
    ARP_FRAME, EXTRA_FLAG_MORE, GSO_TYPE_TCPV4, GsoExtra, NET_CASES, RSP_NULL, RxRequest,
    RxResponse, TX_RING_SIZE, TX_SLOT, TXF_EXTRA_INFO, TXF_MORE_DATA, TxRequest, TxResponse,
    arp_reply_sender, arp_request, ip_text, parse_mac, rx_error_outcome, rx_slot_offset,
    tx_outcome, tx_slot_offset,
};
use front_hostile::{Outcome, REQ_PROD, RSP_EVENT, RSP_PROD};
use xenctrl::Evtchn;
use xenstore::Client;

use crate::sys::{Gntalloc, GrantedPage};
use crate::xenbus::{self, BOGUS_REF, CLOSING, CONNECTED, Dev, Port, Ring};

/// How far past the responses tx `req_prod` is pushed.
const PAST_RING: u32 = 1000;
/// Rx requests kept posted for the ARP exchanges.
const RX_POSTED: u32 = 8;

/// What the `--netif` run needs besides the case list.
pub struct Options {
    /// The domain of the "other domain" cases (default: this one).
    pub other: Option<u16>,
    /// How long to wait for a state change or an answer that should come.
    pub timeout: Duration,
    /// How long to wait for an answer that should not come.
    pub silence: Duration,
    /// This domain's address in the ARP exchanges.
    pub ip: [u8; 4],
    /// The address asked for.
    pub peer: [u8; 4],
}

/// One connection: the two ring pages, the event channel, the ring
/// indices, and the data pages granted for it (kept until it goes).
struct Conn {
    tx: GrantedPage,
    rx: GrantedPage,
    port: Option<u32>,
    tx_prod: u32,
    tx_cons: u32,
    rx_prod: u32,
    rx_cons: u32,
    /// Rx requests posted whose pages are not good ones.
    rx_bad: bool,
    rx_pages: HashMap<u16, GrantedPage>,
    tx_pages: Vec<GrantedPage>,
}

/// The frontend of one vif.
struct NetFront<'a> {
    dev: Dev,
    gnt: Gntalloc,
    ev: Evtchn,
    other: u16,
    mac: [u8; 6],
    opts: &'a Options,
    conn: Option<Conn>,
    next_id: u16,
}

/// What rx pages a case posts.
#[derive(Clone, Copy)]
enum RxPages {
    Good,
    Bad(Ring),
}

/// Take every vif (and vbd) over, then run `cases` in order, printing one
/// line each. Fails only when the first vif cannot be set up.
pub fn run(cases: &[&str], opts: &Options) -> Result<(), String> {
    let mut xs = Client::open().map_err(|e| format!("xenstore: {e}"))?;
    let (me, home) = xenbus::me(&mut xs)?;
    let vifs = xenbus::device_ids(&mut xs, &home, "vif");
    if vifs.is_empty() {
        return Err("no vif in device/vif".into());
    }
    // No other driver may allocate grant references while the cases run
    // (a revoked reference must stay revoked).
    for vbd in xenbus::device_ids(&mut xs, &home, "vbd") {
        if xenbus::unbind(&format!("vbd-{vbd}"))? {
            println!("front-hostile: vbd-{vbd}: taken from its driver (left unused)");
        }
    }
    for v in &vifs {
        let took = xenbus::unbind(&format!("vif-{v}"))?;
        let be = xs
            .read_string(0, &format!("{home}/device/vif/{v}/backend"))
            .unwrap_or_default();
        println!(
            "front-hostile: vif {v}: {} (backend {be}; this is domain {me})",
            if took {
                "taken from its driver"
            } else {
                "had no driver"
            }
        );
    }
    drop(xs);
    let gnt = Gntalloc::open().map_err(|e| format!("{}: {e}", crate::sys::GNTALLOC_PATH))?;
    let other = opts.other.unwrap_or(me);
    let mut spare = vifs[1..].iter();
    let mut first = NetFront::open(&home, &vifs[0], &gnt, other, opts)?;
    // Vifs disabled by a case stay connected until the domain goes.
    let mut spent = Vec::new();
    for name in cases {
        let own = NET_CASES.iter().any(|c| c.name == *name && c.own_vif);
        let out = if own {
            match spare.next() {
                None => Outcome::LocalError(format!(
                    "no spare vif for this case ({} vifs, one per such case and one more needed)",
                    vifs.len()
                )),
                Some(v) => match NetFront::open(&home, v, &gnt, other, opts) {
                    Ok(mut f) => {
                        let o = f.run(name);
                        spent.push(f);
                        o
                    }
                    Err(e) => Outcome::LocalError(e),
                },
            }
        } else {
            first.run(name)
        };
        println!("front-hostile: {name}: {out}");
    }
    drop(spent);
    Ok(())
}

impl<'a> NetFront<'a> {
    fn open(
        home: &str,
        vif: &str,
        gnt: &Gntalloc,
        other: u16,
        opts: &'a Options,
    ) -> Result<Self, String> {
        let xs = Client::open().map_err(|e| format!("xenstore: {e}"))?;
        let mut dev = Dev::open(xs, home, "vif", vif, opts.timeout)?;
        let p = format!("{}/mac", dev.fe);
        let mac = dev
            .read(&p)
            .and_then(|m| parse_mac(&m))
            .ok_or(format!("no mac in {p}"))?;
        let ev = Evtchn::open().map_err(|e| e.to_string())?;
        dev.reset(false)?;
        Ok(Self {
            dev,
            gnt: gnt.clone(),
            ev,
            other,
            mac,
            opts,
            conn: None,
            next_id: 0,
        })
    }

    fn id(&mut self) -> u16 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// Close the connection, if any, and let its rings, port and pages go.
    fn close(&mut self) -> Result<(), String> {
        let r = self.dev.close();
        if let Some(c) = self.conn.take()
            && let Some(p) = c.port
        {
            let _ = self.ev.unbind(p);
        }
        r
    }

    /// One connection attempt with the given rings and port.
    fn connect(&mut self, tx: Ring, rx: Ring, port: Port) -> Result<Outcome, String> {
        if self.conn.is_some() {
            self.close()?;
        }
        self.dev.reset(false)?;
        let (be, other) = (self.dev.be_id, self.other);
        let (tx_page, tx_ref) = xenbus::ring_page(&self.gnt, tx, be, other)?;
        let (rx_page, rx_ref) = xenbus::ring_page(&self.gnt, rx, be, other)?;
        let (port_no, bound) = xenbus::event_port(&self.ev, port, be, other)?;
        self.conn = Some(Conn {
            tx: tx_page,
            rx: rx_page,
            port: bound,
            tx_prod: 0,
            tx_cons: 0,
            rx_prod: 0,
            rx_cons: 0,
            rx_bad: false,
            rx_pages: HashMap::new(),
            tx_pages: Vec::new(),
        });
        // What xen-netfront wrote before (its features, queues, split
        // channels) goes: one queue, one channel, no offloads.
        for stale in [
            "multi-queue-num-queues",
            "queue-0",
            "queue-1",
            "event-channel-tx",
            "event-channel-rx",
            "ctrl-ring-ref",
            "event-channel-ctrl",
            "xdp-headroom",
            "feature-sg",
            "feature-gso-tcpv4",
            "feature-gso-tcpv6",
            "feature-ipv6-csum-offload",
        ] {
            self.dev.rm(stale);
        }
        self.dev.write("tx-ring-ref", &tx_ref.to_string())?;
        self.dev.write("rx-ring-ref", &rx_ref.to_string())?;
        self.dev.write("event-channel", &port_no.to_string())?;
        self.dev.write("request-rx-copy", "1")?;
        self.dev.write("feature-rx-notify", "1")?;
        self.dev.write("state", "4")?;
        Ok(match self.dev.wait_backend(&[4, 5, 6]) {
            Ok(CONNECTED) => Outcome::Connected,
            // netback reports a failed connect with xenbus_dev_fatal
            // (Closing), then switches to Connected all the same.
            Ok(CLOSING) => {
                sleep(Duration::from_millis(500));
                match self.dev.backend_state() {
                    Some(CONNECTED) => Outcome::Connected,
                    s => Outcome::Closed(s.unwrap_or(CLOSING)),
                }
            }
            Ok(s) => Outcome::Closed(s),
            Err(_) => Outcome::Nothing(self.opts.timeout.as_secs()),
        })
    }

    /// A good connection: made if there is none, it has no port, or its rx
    /// ring holds bad requests.
    fn ensure_connected(&mut self) -> Result<(), String> {
        let usable = self
            .conn
            .as_ref()
            .is_some_and(|c| c.port.is_some() && !c.rx_bad);
        if usable && self.dev.backend_state() == Some(CONNECTED) {
            return Ok(());
        }
        match self.connect(Ring::Good, Ring::Good, Port::Good)? {
            Outcome::Connected => Ok(()),
            o => Err(format!("good connection failed: {o}")),
        }
    }

    fn conn(&mut self) -> Result<&mut Conn, String> {
        self.conn.as_mut().ok_or_else(|| "no connection".into())
    }

    fn notify(&self) -> Result<(), String> {
        let port = self.conn.as_ref().and_then(|c| c.port).ok_or("no port")?;
        self.ev.notify(port).map_err(|e| e.to_string())
    }

    /// A data page granted to the backend read-only, holding `bytes` at 0,
    /// kept for the connection's life; returns its reference.
    fn tx_page(&mut self, to: u16, bytes: &[u8]) -> Result<u32, String> {
        let mut page = self
            .gnt
            .page(to, false)
            .map_err(|e| format!("gntalloc: {e}"))?;
        page.write(0, bytes);
        let gref = page.gref;
        self.conn()?.tx_pages.push(page);
        Ok(gref)
    }

    /// Put `slots` on the tx ring, publish and notify.
    fn push_tx(&mut self, slots: &[[u8; TX_SLOT]]) -> Result<(), String> {
        let c = self.conn()?;
        for s in slots {
            c.tx.write(tx_slot_offset(c.tx_prod), s);
            c.tx_prod = c.tx_prod.wrapping_add(1);
        }
        c.tx.store(REQ_PROD, c.tx_prod);
        self.notify()
    }

    /// Wait up to `wait` for the tx response to `id` (`None`: any response
    /// at all, extra-info ones included).
    fn wait_tx(&mut self, id: Option<u16>, wait: Duration) -> Result<Option<TxResponse>, String> {
        let end = Instant::now() + wait;
        loop {
            xenbus::drain(&self.ev);
            let c = self.conn()?;
            while c.tx.load(RSP_PROD) != c.tx_cons {
                let r = TxResponse::decode(&c.tx.read(tx_slot_offset(c.tx_cons), 4));
                c.tx_cons = c.tx_cons.wrapping_add(1);
                c.tx.store(RSP_EVENT, c.tx_cons.wrapping_add(1));
                match (r, id) {
                    (Some(r), None) => return Ok(Some(r)),
                    (Some(r), Some(id)) if r.id == id && r.status != RSP_NULL => {
                        return Ok(Some(r));
                    }
                    _ => {}
                }
            }
            if Instant::now() > end {
                return Ok(None);
            }
            sleep(Duration::from_millis(5));
        }
    }

    /// Send one single-slot packet and wait for its response.
    fn send(&mut self, req: TxRequest, wait: Duration) -> Result<Outcome, String> {
        self.push_tx(&[req.encode()])?;
        Ok(match self.wait_tx(Some(req.id), wait)? {
            Some(r) => Outcome::Text(tx_outcome(r.status)),
            None => Outcome::Nothing(wait.as_secs()),
        })
    }

    /// The ARP request for the peer as a single-slot packet from a page
    /// granted to `to`.
    fn arp_tx(&mut self, to: u16) -> Result<TxRequest, String> {
        let frame = arp_request(self.mac, self.opts.ip, self.opts.peer);
        let gref = self.tx_page(to, &frame)?;
        Ok(TxRequest {
            gref,
            offset: 0,
            flags: 0,
            id: self.id(),
            size: ARP_FRAME as u16,
        })
    }

    /// Post rx requests: good pages up to [`RX_POSTED`] outstanding, or
    /// [`RX_POSTED`] bad ones.
    fn post_rx(&mut self, pages: RxPages) -> Result<(), String> {
        let (be, other) = (self.dev.be_id, self.other);
        let gnt = self.gnt.clone();
        let c = self.conn()?;
        let outstanding = c.rx_prod.wrapping_sub(c.rx_cons);
        let n = match pages {
            RxPages::Good => RX_POSTED.saturating_sub(outstanding),
            RxPages::Bad(_) => RX_POSTED,
        };
        for _ in 0..n {
            let id = c.rx_prod as u16;
            let gref = match pages {
                RxPages::Bad(Ring::Ref(r)) => r,
                RxPages::Bad(Ring::Revoked) => {
                    gnt.revoked_ref(be).map_err(|e| format!("gntalloc: {e}"))?
                }
                p => {
                    let page = match p {
                        RxPages::Bad(Ring::OtherDomain) => gnt.page(other, true),
                        RxPages::Bad(Ring::ReadOnly) => gnt.page(be, false),
                        _ => gnt.page(be, true),
                    }
                    .map_err(|e| format!("gntalloc: {e}"))?;
                    let gref = page.gref;
                    c.rx_pages.insert(id, page);
                    gref
                }
            };
            c.rx.write(rx_slot_offset(c.rx_prod), &RxRequest { id, gref }.encode());
            c.rx_prod = c.rx_prod.wrapping_add(1);
        }
        c.rx_bad |= matches!(pages, RxPages::Bad(_));
        c.rx.store(REQ_PROD, c.rx_prod);
        self.notify()
    }

    /// The next rx response within `wait`, with the packet it carries.
    fn next_rx(&mut self, wait: Duration) -> Result<Option<(RxResponse, Vec<u8>)>, String> {
        let end = Instant::now() + wait;
        loop {
            xenbus::drain(&self.ev);
            let c = self.conn()?;
            if c.rx.load(RSP_PROD) != c.rx_cons {
                let r = RxResponse::decode(&c.rx.read(rx_slot_offset(c.rx_cons), 8))
                    .ok_or("short rx response")?;
                c.rx_cons = c.rx_cons.wrapping_add(1);
                c.rx.store(RSP_EVENT, c.rx_cons.wrapping_add(1));
                let data = match (c.rx_pages.remove(&r.id), usize::try_from(r.status)) {
                    (Some(p), Ok(len)) if usize::from(r.offset) + len <= 4096 => {
                        p.read(usize::from(r.offset), len)
                    }
                    _ => Vec::new(),
                };
                return Ok(Some((r, data)));
            }
            if Instant::now() > end {
                return Ok(None);
            }
            sleep(Duration::from_millis(5));
        }
    }

    /// Rx requests as `pages` says, then the ARP request for the peer;
    /// what came back on tx and rx.
    fn arp_exchange(&mut self, pages: RxPages) -> Result<Outcome, String> {
        self.ensure_connected()?;
        self.post_rx(pages)?;
        let be = self.dev.be_id;
        let req = self.arp_tx(be)?;
        let timeout = self.opts.timeout;
        match self.send(req, timeout)? {
            Outcome::Text(t) if t == tx_outcome(0) => {}
            o => return Ok(o),
        }
        let end = Instant::now() + timeout;
        let mut others = 0;
        while let Some((r, data)) = self.next_rx(end.saturating_duration_since(Instant::now()))? {
            if r.status <= 0 {
                return Ok(Outcome::Text(format!(
                    "{}, then {}",
                    tx_outcome(0),
                    rx_error_outcome(r.status)
                )));
            }
            match arp_reply_sender(&data) {
                Some(ip) if ip == self.opts.peer => {
                    return Ok(Outcome::Text(format!(
                        "{}, then an ARP reply from {} on rx",
                        tx_outcome(0),
                        ip_text(ip)
                    )));
                }
                _ => others += 1,
            }
        }
        Ok(Outcome::Text(format!(
            "{}, then no ARP reply on rx in {} s ({others} other packets)",
            tx_outcome(0),
            timeout.as_secs()
        )))
    }

    /// A connection attempt; if the backend says Connected and there is a
    /// port to notify, is the ring served?
    fn connect_case(&mut self, tx: Ring, rx: Ring, port: Port) -> Result<Outcome, String> {
        let o = self.connect(tx, rx, port).and_then(|o| {
            let notifiable = self.conn.as_ref().is_some_and(|c| c.port.is_some());
            if !matches!(o, Outcome::Connected) || !notifiable {
                return Ok(o);
            }
            let be = self.dev.be_id;
            let req = self.arp_tx(be)?;
            let silence = self.opts.silence;
            Ok(match self.send(req, silence)? {
                Outcome::Nothing(s) => Outcome::Text(format!(
                    "backend connected, ring not served (no answer in {s} s)"
                )),
                a => Outcome::Text(format!("backend connected and served the ring: {a}")),
            })
        });
        // Whatever happened, start the next case afresh.
        let _ = self.close();
        o
    }

    /// One good ARP exchange, then `slots` on the tx ring (and `req_prod`
    /// that many slots further, if given); anything at all answered within
    /// the silence?
    fn malformed(
        &mut self,
        slots: &[[u8; TX_SLOT]],
        ahead: Option<u32>,
    ) -> Result<Outcome, String> {
        match self.arp_exchange(RxPages::Good)? {
            Outcome::Text(t) if t.contains("ARP reply") => {}
            o => return Err(format!("the vif did not work before the attack: {o}")),
        }
        self.push_tx(slots)?;
        if let Some(n) = ahead {
            let c = self.conn()?;
            c.tx.store(REQ_PROD, c.tx_prod.wrapping_add(n));
            self.notify()?;
        }
        let silence = self.opts.silence;
        Ok(match self.wait_tx(None, silence)? {
            None => Outcome::Nothing(silence.as_secs()),
            Some(r) => Outcome::Text(format!("{} (id {})", tx_outcome(r.status), r.id)),
        })
    }

    fn run(&mut self, name: &str) -> Outcome {
        match self.run_case(name) {
            Ok(o) => o,
            Err(e) => Outcome::LocalError(e),
        }
    }

    fn run_case(&mut self, name: &str) -> Result<Outcome, String> {
        let be = self.dev.be_id;
        let other = self.other;
        let timeout = self.opts.timeout;
        let arp = arp_request(self.mac, self.opts.ip, self.opts.peer);
        match name {
            "good-arp" => self.arp_exchange(RxPages::Good),
            "good-arp-after" => {
                if self.conn.is_some() {
                    self.close()?;
                }
                self.arp_exchange(RxPages::Good)
            }
            "tx-ring-ref-beyond-table" => {
                self.connect_case(Ring::Ref(BOGUS_REF), Ring::Good, Port::Good)
            }
            "rx-ring-ref-not-granted" => self.connect_case(Ring::Good, Ring::Revoked, Port::Good),
            "tx-ring-ref-other-domain" => {
                self.connect_case(Ring::OtherDomain, Ring::Good, Port::Good)
            }
            "rx-ring-ref-read-only" => self.connect_case(Ring::Good, Ring::ReadOnly, Port::Good),
            "event-channel-unbound" => self.connect_case(Ring::Good, Ring::Good, Port::Closed),
            "tx-gref-beyond-table"
            | "tx-gref-not-granted"
            | "tx-gref-other-domain"
            | "tx-big-gref-other-domain" => {
                self.ensure_connected()?;
                let (gref, size) = match name {
                    "tx-gref-beyond-table" => (BOGUS_REF, ARP_FRAME as u16),
                    "tx-gref-not-granted" => (
                        self.gnt
                            .revoked_ref(be)
                            .map_err(|e| format!("gntalloc: {e}"))?,
                        ARP_FRAME as u16,
                    ),
                    "tx-gref-other-domain" => (self.tx_page(other, &arp)?, ARP_FRAME as u16),
                    _ => (self.tx_page(other, &arp)?, 1000),
                };
                let id = self.id();
                self.send(
                    TxRequest {
                        gref,
                        offset: 0,
                        flags: 0,
                        id,
                        size,
                    },
                    timeout,
                )
            }
            "tx-size-zero" => {
                self.ensure_connected()?;
                let gref = self.tx_page(be, &arp)?;
                let id = self.id();
                self.send(
                    TxRequest {
                        gref,
                        offset: 0,
                        flags: 0,
                        id,
                        size: 0,
                    },
                    timeout,
                )
            }
            "tx-frag-larger-than-packet" => {
                self.ensure_connected()?;
                let g0 = self.tx_page(be, &arp)?;
                let g1 = self.tx_page(be, &[0; 2000])?;
                let (id0, id1) = (self.id(), self.id());
                let first = TxRequest {
                    gref: g0,
                    offset: 0,
                    flags: TXF_MORE_DATA,
                    id: id0,
                    size: 100,
                };
                let second = TxRequest {
                    gref: g1,
                    offset: 0,
                    flags: 0,
                    id: id1,
                    size: 2000,
                };
                self.push_tx(&[first.encode(), second.encode()])?;
                Ok(match self.wait_tx(Some(id0), timeout)? {
                    Some(r) => Outcome::Text(tx_outcome(r.status)),
                    None => Outcome::Nothing(timeout.as_secs()),
                })
            }
            "rx-gref-beyond-table"
            | "rx-gref-not-granted"
            | "rx-gref-other-domain"
            | "rx-gref-read-only" => {
                let bad = match name {
                    "rx-gref-beyond-table" => Ring::Ref(BOGUS_REF),
                    "rx-gref-not-granted" => Ring::Revoked,
                    "rx-gref-other-domain" => Ring::OtherDomain,
                    _ => Ring::ReadOnly,
                };
                // A fresh ring: the reply must land in one of these requests.
                if self.conn.is_some() {
                    self.close()?;
                }
                self.arp_exchange(RxPages::Bad(bad))
            }
            "notify-flood" => {
                self.ensure_connected()?;
                let sent = xenbus::flood(&self.ev, self.conn.as_ref().and_then(|c| c.port));
                let after = self.arp_exchange(RxPages::Good)?;
                Ok(Outcome::Text(format!(
                    "{sent} notifications sent, then {after}"
                )))
            }
            "tx-req-prod-past-ring" => self.malformed(&[], Some(PAST_RING)).map(|o| match o {
                Outcome::Nothing(_) => o,
                o => Outcome::Text(format!(
                    "{o} (req_prod {PAST_RING} ahead, ring of {TX_RING_SIZE})"
                )),
            }),
            "tx-offset-past-page" | "tx-size-64k" => {
                self.ensure_connected()?;
                let gref = self.tx_page(be, &arp)?;
                let (offset, size) = if name == "tx-offset-past-page" {
                    (4000, 200)
                } else {
                    (0, u16::MAX)
                };
                let id = self.id();
                let req = TxRequest {
                    gref,
                    offset,
                    flags: 0,
                    id,
                    size,
                };
                self.malformed(&[req.encode()], None)
            }
            "tx-extra-info-endless" | "tx-more-data-endless" => {
                self.ensure_connected()?;
                let gref = self.tx_page(be, &arp)?;
                let mut slots = Vec::new();
                let id = self.id();
                if name == "tx-extra-info-endless" {
                    let first = TxRequest {
                        gref,
                        offset: 0,
                        flags: TXF_EXTRA_INFO,
                        id,
                        size: ARP_FRAME as u16,
                    };
                    slots.push(first.encode());
                    let extra = GsoExtra {
                        flags: EXTRA_FLAG_MORE,
                        size: 1400,
                        gso_type: GSO_TYPE_TCPV4,
                    };
                    slots.resize(TX_RING_SIZE as usize, extra.encode());
                } else {
                    for _ in 1..TX_RING_SIZE {
                        let id = self.id();
                        slots.push(
                            TxRequest {
                                gref,
                                offset: 0,
                                flags: TXF_MORE_DATA,
                                id,
                                size: 100,
                            }
                            .encode(),
                        );
                    }
                }
                self.malformed(&slots, None)
            }
            _ => Err(format!("no case {name}")),
        }
    }
}
