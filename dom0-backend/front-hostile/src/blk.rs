//! The blkif side of `front-hostile` (the default mode): one vbd taken
//! over from `xen-blkfront` and attacked case after case (see
//! [`front_hostile::CASES`]).

use std::thread::sleep;
use std::time::{Duration, Instant};

use front_hostile::{
    IndirectRequest, OP_READ, OP_WRITE, Outcome, PROTOCOL_NATIVE, REQ_PROD, RING_SIZE, RSP_EVENT,
    RSP_PROD, Response, RwRequest, Segment, slot_offset,
};
use xenctrl::Evtchn;
use xenstore::Client;

use crate::sys::{Gntalloc, GrantedPage};
use crate::xenbus::{self, BOGUS_REF, CONNECTED, Dev, Port, Ring};

/// How far past the responses `req_prod` is pushed.
const PAST_RING: u32 = 1000;

/// One connection's frontend state: the ring page and the event channel.
struct Conn {
    ring: GrantedPage,
    /// The port bound here (unbound again when the connection goes).
    port: Option<u32>,
    req_prod: u32,
    rsp_cons: u32,
}

pub struct Front {
    dev: Dev,
    gnt: Gntalloc,
    ev: Evtchn,
    other: u16,
    handle: u16,
    sectors: u64,
    conn: Option<Conn>,
    next_id: u64,
}

impl Front {
    /// Take the vbd `vbd` (default: the first) over; `other` is the domain
    /// of the "other domain" cases (default: this one); `vifs`: unbind the
    /// vifs from xen-netfront as well.
    pub fn take_over(
        vbd: Option<&str>,
        other: Option<u16>,
        timeout: Duration,
        vifs: bool,
    ) -> Result<Self, String> {
        let mut xs = Client::open().map_err(|e| format!("xenstore: {e}"))?;
        let (me, home) = xenbus::me(&mut xs)?;
        let vbd = match vbd {
            Some(v) => v.to_string(),
            None => xenbus::device_ids(&mut xs, &home, "vbd")
                .into_iter()
                .next()
                .ok_or("no vbd in device/vbd")?,
        };
        let handle: u16 = vbd.parse().map_err(|_| format!("bad vbd id '{vbd}'"))?;
        let dev = Dev::open(xs, &home, "vbd", &vbd, timeout)?;
        let gnt = Gntalloc::open().map_err(|e| format!("{}: {e}", crate::sys::GNTALLOC_PATH))?;
        let ev = Evtchn::open().map_err(|e| e.to_string())?;
        let took = xenbus::unbind(&format!("vbd-{vbd}"))?;
        println!(
            "front-hostile: vbd {vbd}: {} (backend {}, domain {}; this is domain {me})",
            if took {
                "taken from its driver"
            } else {
                "had no driver"
            },
            dev.be,
            dev.be_id
        );
        if vifs {
            for d in std::fs::read_dir("/sys/bus/xen/devices").map_err(|e| e.to_string())? {
                let name = d.map_err(|e| e.to_string())?.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("vif-") && xenbus::unbind(&name)? {
                    println!("front-hostile: {name}: taken from its driver (left unused)");
                }
            }
        }
        let mut f = Front {
            dev,
            gnt,
            ev,
            other: other.unwrap_or(me),
            handle,
            sectors: 0,
            conn: None,
            next_id: 1,
        };
        f.reset()?;
        Ok(f)
    }

    /// Close the connection (frontend Closed, backend Closed) and let
    /// the ring and port go.
    fn close(&mut self) -> Result<(), String> {
        let r = self.dev.close();
        if let Some(c) = self.conn.take()
            && let Some(p) = c.port
        {
            let _ = self.ev.unbind(p);
        }
        r
    }

    /// Bring the backend to InitWait (2) from whatever state it is in.
    fn reset(&mut self) -> Result<(), String> {
        let fresh = self.conn.is_some();
        if fresh {
            self.close()?;
        }
        self.dev.reset(false)
    }

    /// One connection attempt with the given ring and port.
    fn connect(&mut self, ring: Ring, port: Port, protocol: &str) -> Result<Outcome, String> {
        self.reset()?;
        let (be, other) = (self.dev.be_id, self.other);
        let (page, ring_ref) = xenbus::ring_page(&self.gnt, ring, be, other)?;
        let (port_no, bound) = xenbus::event_port(&self.ev, port, be, other)?;
        self.conn = Some(Conn {
            ring: page,
            port: bound,
            req_prod: 0,
            rsp_cons: 0,
        });
        for stale in ["ring-page-order", "multi-queue-num-queues", "ring-ref0"] {
            self.dev.rm(stale);
        }
        self.dev.write("ring-ref", &ring_ref.to_string())?;
        self.dev.write("event-channel", &port_no.to_string())?;
        self.dev.write("protocol", protocol)?;
        self.dev.write("feature-persistent", "0")?;
        self.dev.write("state", "3")?;
        Ok(match self.dev.wait_backend(&[4, 5, 6]) {
            Ok(CONNECTED) => {
                let p = format!("{}/sectors", self.dev.be);
                self.sectors = self.dev.read(&p).and_then(|s| s.parse().ok()).unwrap_or(0);
                Outcome::Connected
            }
            Ok(s) => Outcome::Closed(s),
            Err(_) => Outcome::Nothing(self.dev.timeout.as_secs()),
        })
    }

    /// A good connection, made if there is none.
    fn ensure_connected(&mut self) -> Result<(), String> {
        if self.conn.is_some() && self.dev.backend_state() == Some(4) {
            return Ok(());
        }
        match self.connect(Ring::Good, Port::Good, PROTOCOL_NATIVE)? {
            Outcome::Connected => Ok(()),
            o => Err(format!("good connection failed: {o}")),
        }
    }

    fn notify(&self) -> Result<(), String> {
        let port = self.conn.as_ref().and_then(|c| c.port).ok_or("no port")?;
        self.ev.notify(port).map_err(|e| e.to_string())
    }

    /// Put `slot` on the ring and wait for one response.
    fn request(&mut self, slot: [u8; 112], id: u64) -> Result<Outcome, String> {
        self.ensure_connected()?;
        let c = self.conn.as_mut().ok_or("no connection")?;
        let off = slot_offset(c.req_prod);
        c.ring.write(off, &slot);
        c.req_prod = c.req_prod.wrapping_add(1);
        c.ring.store(REQ_PROD, c.req_prod);
        self.notify()?;
        Ok(self.wait_response(id))
    }

    fn wait_response(&mut self, id: u64) -> Outcome {
        let end = Instant::now() + self.dev.timeout;
        loop {
            xenbus::drain(&self.ev);
            let Some(c) = self.conn.as_mut() else {
                return Outcome::LocalError("no connection".into());
            };
            if c.ring.load(RSP_PROD) != c.rsp_cons {
                let r = Response::decode(&c.ring.read(slot_offset(c.rsp_cons), 16));
                c.rsp_cons = c.rsp_cons.wrapping_add(1);
                c.ring.store(RSP_EVENT, c.rsp_cons.wrapping_add(1));
                return match r {
                    Some(r) if r.id == id => Outcome::Answered(r.status),
                    Some(r) => Outcome::AnsweredWrong(r),
                    None => Outcome::LocalError("short response".into()),
                };
            }
            if Instant::now() > end {
                return Outcome::Nothing(self.dev.timeout.as_secs());
            }
            sleep(Duration::from_millis(5));
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A read/write request of `segs` claiming `nr` segments.
    fn rw(&mut self, op: u8, nr: u8, sector: u64, segs: Vec<Segment>) -> Result<Outcome, String> {
        let id = self.id();
        let slot = RwRequest {
            op,
            nr_segments: nr,
            handle: self.handle,
            id,
            sector,
            segs,
        }
        .encode();
        self.request(slot, id)
    }

    /// Read 8 sectors at `sector` into a page granted as given.
    fn read_into(&mut self, page_to: u16, writable: bool, sector: u64) -> Result<Outcome, String> {
        self.ensure_connected()?;
        let page = self
            .gnt
            .page(page_to, writable)
            .map_err(|e| format!("gntalloc: {e}"))?;
        let r = self.rw(OP_READ, 1, sector, vec![Segment::page(page.gref)]);
        drop(page);
        r
    }

    /// A read of one segment `seg` (whose page is granted to the backend).
    fn read_seg(&mut self, first: u8, last: u8) -> Result<Outcome, String> {
        self.ensure_connected()?;
        let page = self
            .gnt
            .page(self.dev.be_id, true)
            .map_err(|e| format!("gntalloc: {e}"))?;
        let seg = Segment {
            gref: page.gref,
            first_sect: first,
            last_sect: last,
        };
        self.rw(OP_READ, 1, 0, vec![seg])
    }

    pub fn run(&mut self, name: &str) -> Outcome {
        match self.run_case(name) {
            Ok(o) => o,
            Err(e) => Outcome::LocalError(e),
        }
    }

    fn connect_case(&mut self, ring: Ring, port: Port, protocol: &str) -> Result<Outcome, String> {
        let o = self.connect(ring, port, protocol)?;
        // Whatever happened, start the next case afresh.
        let _ = self.close();
        Ok(o)
    }

    fn run_case(&mut self, name: &str) -> Result<Outcome, String> {
        let be = self.dev.be_id;
        let other = self.other;
        match name {
            "good-read" | "good-read-after" => {
                if name == "good-read-after" {
                    self.reset()?;
                }
                self.read_into(be, true, 0)
            }
            "ring-ref-beyond-table" => {
                self.connect_case(Ring::Ref(BOGUS_REF), Port::Good, PROTOCOL_NATIVE)
            }
            "ring-ref-not-granted" => self.connect_case(Ring::Revoked, Port::Good, PROTOCOL_NATIVE),
            "ring-ref-other-domain" => {
                self.connect_case(Ring::OtherDomain, Port::Good, PROTOCOL_NATIVE)
            }
            "ring-ref-read-only" => self.connect_case(Ring::ReadOnly, Port::Good, PROTOCOL_NATIVE),
            "event-channel-unbound" => self.connect_case(Ring::Good, Port::Closed, PROTOCOL_NATIVE),
            "event-channel-other-domain" => {
                self.connect_case(Ring::Good, Port::OtherDomain, PROTOCOL_NATIVE)
            }
            "protocol-unknown" => self.connect_case(Ring::Good, Port::Good, "x86_99-abi"),
            "gref-beyond-table" => self.rw(OP_READ, 1, 0, vec![Segment::page(BOGUS_REF)]),
            "gref-not-granted" => {
                let r = self
                    .gnt
                    .revoked_ref(be)
                    .map_err(|e| format!("gntalloc: {e}"))?;
                self.rw(OP_READ, 1, 0, vec![Segment::page(r)])
            }
            "gref-other-domain" => self.read_into(other, true, 0),
            "gref-read-only" => self.read_into(be, false, 0),
            "write-from-read-only" => {
                self.ensure_connected()?;
                let mut page = self
                    .gnt
                    .page(be, false)
                    .map_err(|e| format!("gntalloc: {e}"))?;
                page.write(0, b"front-hostile wrote this from a read-only grant\n");
                // 1 MiB in: away from anything the test reads at the start.
                let r = self.rw(OP_WRITE, 1, 2048, vec![Segment::page(page.gref)]);
                drop(page);
                r
            }
            "nr-segments-zero" => self.rw(OP_READ, 0, 0, vec![]),
            "nr-segments-12" | "nr-segments-255" => {
                self.ensure_connected()?;
                let page = self
                    .gnt
                    .page(be, true)
                    .map_err(|e| format!("gntalloc: {e}"))?;
                let nr = if name == "nr-segments-12" { 12 } else { 255 };
                let r = self.rw(OP_READ, nr, 0, vec![Segment::page(page.gref); 11]);
                drop(page);
                r
            }
            "segment-sectors-reversed" => self.read_seg(7, 0),
            "segment-sectors-past-page" => self.read_seg(0, 8),
            "sector-past-end" => {
                self.ensure_connected()?;
                let s = self.sectors;
                if s == 0 {
                    return Err("backend wrote no sectors".into());
                }
                self.read_into(be, true, s)
            }
            "sector-wraps" => self.read_into(be, true, u64::MAX - 3),
            "unknown-operation" => {
                self.ensure_connected()?;
                let page = self
                    .gnt
                    .page(be, true)
                    .map_err(|e| format!("gntalloc: {e}"))?;
                let r = self.rw(200, 1, 0, vec![Segment::page(page.gref)]);
                drop(page);
                r
            }
            "indirect-over-limit" | "indirect-bad-gref" => {
                self.ensure_connected()?;
                let page = self
                    .gnt
                    .page(be, true)
                    .map_err(|e| format!("gntalloc: {e}"))?;
                let (nr, gref) = if name == "indirect-over-limit" {
                    (u16::MAX, page.gref)
                } else {
                    (16, BOGUS_REF)
                };
                let id = self.id();
                let slot = IndirectRequest {
                    indirect_op: OP_READ,
                    nr_segments: nr,
                    id,
                    sector: 0,
                    handle: self.handle,
                    indirect_grefs: vec![gref],
                }
                .encode();
                let r = self.request(slot, id);
                drop(page);
                r
            }
            "notify-flood" => {
                self.ensure_connected()?;
                let sent = xenbus::flood(&self.ev, self.conn.as_ref().and_then(|c| c.port));
                let after = self.read_into(be, true, 0)?;
                Ok(Outcome::Text(format!(
                    "{sent} notifications sent, then {after}"
                )))
            }
            "req-prod-past-ring" => {
                self.ensure_connected()?;
                let c = self.conn.as_mut().ok_or("no connection")?;
                let bogus = c.rsp_cons.wrapping_add(PAST_RING);
                c.ring.store(REQ_PROD, bogus);
                self.notify()?;
                let o = self.wait_response(0);
                let _ = self.close();
                Ok(match o {
                    Outcome::Nothing(_) => o,
                    other => {
                        Outcome::Text(format!("{other} (req_prod {bogus}, ring of {RING_SIZE})"))
                    }
                })
            }
            _ => Err(format!("no case {name}")),
        }
    }
}
