//! `front-hostile`: a hostile Xen PV block frontend, run inside an
//! unprivileged Linux DomU by `tests/tests/pv_hostile.rs`.
//!
//! It takes a vbd over from the DomU's kernel (unbinds `xen-blkfront` from it
//! through sysfs; by default `xen-netfront` from the vifs too, so that no
//! other driver allocates grant references while it runs), then acts as the
//! frontend itself: ring and data pages granted through `/dev/xen/gntalloc`,
//! the event channel through `/dev/xen/evtchn`, and the xenbus handshake
//! (`ring-ref`, `event-channel`, `protocol`, `state`) through
//! `/dev/xen/xenbus`, as `xen-blkfront` does. Then it runs the attack cases
//! of [`front_hostile::CASES`] one after another, closing and reconnecting
//! the device between them, and prints one `front-hostile: <case>: <what
//! happened>` line per case and `front-hostile: done <n> cases` at the end.
//! It judges nothing: the test decides which outcome each case must have.
//! The last connection is left connected (the test destroys the domain
//! with Dom0 still mapping its ring).
//!
//! Exit status: 0 when every case ran (whatever the backend answered), 1
//! when the device could not be taken over or set up, 2 for usage errors.

#[cfg(target_os = "linux")]
mod sys;

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("front-hostile: runs only on Linux (inside a Xen DomU)");
    std::process::exit(1);
}

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::Path;
    use std::thread::sleep;
    use std::time::{Duration, Instant};

    use clap::Parser;
    use front_hostile::{
        CASES, IndirectRequest, OP_READ, OP_WRITE, Outcome, PROTOCOL_NATIVE, REQ_EVENT, REQ_PROD,
        RING_SIZE, RSP_EVENT, RSP_PROD, Response, RwRequest, Segment, slot_offset,
    };
    use xenctrl::Evtchn;
    use xenstore::Client;

    use crate::sys::{Gntalloc, GrantedPage};

    /// A reference no grant table has (oxen's and Xen's limit is far below).
    const BOGUS_REF: u32 = 0x00ff_fff0;
    /// Notifications of the flood case.
    const FLOOD: u32 = 20_000;
    /// How far past the responses `req_prod` is pushed.
    const PAST_RING: u32 = 1000;

    /// A hostile Xen PV block frontend, for tests.
    ///
    /// Run inside an unprivileged DomU that has a vbd served by Dom0's
    /// blkback. It unbinds xen-blkfront from the vbd (and xen-netfront from
    /// the vifs unless --keep-vif), becomes the frontend itself through
    /// /dev/xen/gntalloc, /dev/xen/evtchn and /dev/xen/xenbus (modules
    /// xen-gntalloc and xen-evtchn must be loaded), and attacks the backend
    /// one case after another: bad grant references, pages granted to other
    /// domains or read-only, rings and event channels that are not what they
    /// claim, segment counts and sector ranges out of bounds, an unknown
    /// operation, a notification flood, req_prod far past the ring. Between
    /// cases it closes and reconnects the device. Each case prints
    /// `front-hostile: <case>: <what happened>` (backend answered OKAY or an
    /// error status, backend closed the device, nothing within the timeout,
    /// or a local error); the last line is `front-hostile: done <n> cases`.
    /// Exit status 0 when all cases ran, 1 when the device could not be
    /// taken over or connected, 2 for usage errors. --list shows the cases.
    #[derive(Parser, Debug)]
    #[command(name = "front-hostile", version, verbatim_doc_comment)]
    struct Cli {
        /// The vbd to take over: its id under device/vbd/ (e.g. 51712 for
        /// xvda); default: the first one
        #[arg(long, value_name = "ID")]
        vbd: Option<String>,
        /// The domain pages are granted to and ports offered to in the
        /// "other domain" cases (default: this domain itself, which is not
        /// the backend either)
        #[arg(long, value_name = "DOMID")]
        other_domid: Option<u16>,
        /// Seconds to wait for an answer or a backend state change
        #[arg(long, value_name = "SECS", default_value_t = 15)]
        timeout: u64,
        /// Run only these cases, in the order given (repeat or separate
        /// with commas); default: every case
        #[arg(long = "case", value_name = "NAME", value_delimiter = ',')]
        cases: Vec<String>,
        /// Leave the vifs to xen-netfront
        #[arg(long)]
        keep_vif: bool,
        /// Print the cases with what each does, and exit
        #[arg(long)]
        list: bool,
    }

    pub fn main() {
        let cli = Cli::parse();
        if cli.list {
            for (name, what) in CASES {
                println!("{name:28} {what}");
            }
            return;
        }
        for c in &cli.cases {
            if !CASES.iter().any(|(n, _)| n == c) {
                eprintln!("front-hostile: unknown case '{c}' (--list shows them)");
                std::process::exit(2);
            }
        }
        let cases: Vec<&str> = if cli.cases.is_empty() {
            CASES.iter().map(|c| c.0).collect()
        } else {
            cli.cases.iter().map(String::as_str).collect()
        };
        let mut f = match Front::take_over(&cli) {
            Ok(f) => f,
            Err(e) => {
                println!("front-hostile: setup failed: {e}");
                std::process::exit(1);
            }
        };
        for name in &cases {
            let out = f.run(name);
            println!("front-hostile: {name}: {out}");
        }
        println!("front-hostile: done {} cases", cases.len());
    }

    /// One connection's frontend state: the ring page and the event channel.
    struct Conn {
        ring: GrantedPage,
        /// The port bound here (unbound again when the connection goes).
        port: Option<u32>,
        req_prod: u32,
        rsp_cons: u32,
    }

    /// What a connection attempt gives the backend.
    #[derive(Clone, Copy)]
    enum Ring {
        Good,
        Ref(u32),
        Revoked,
        OtherDomain,
        ReadOnly,
    }

    #[derive(Clone, Copy)]
    enum Port {
        Good,
        Closed,
        OtherDomain,
    }

    struct Front {
        xs: Client,
        gnt: Gntalloc,
        ev: Evtchn,
        be_id: u16,
        other: u16,
        fe: String,
        be: String,
        handle: u16,
        sectors: u64,
        timeout: Duration,
        conn: Option<Conn>,
        next_id: u64,
    }

    /// Unbind the xenbus device `dev` (e.g. `vbd-51712`) from its driver, if any.
    fn unbind(dev: &str) -> Result<bool, String> {
        let link = format!("/sys/bus/xen/devices/{dev}/driver");
        let Ok(driver) = std::fs::read_link(&link) else {
            return Ok(false);
        };
        let unbind = Path::new("/sys/bus/xen/devices")
            .join(dev)
            .join(&driver)
            .join("unbind");
        std::fs::write(&unbind, dev).map_err(|e| format!("{}: {e}", unbind.display()))?;
        Ok(true)
    }

    impl Front {
        fn take_over(cli: &Cli) -> Result<Self, String> {
            let mut xs = Client::open().map_err(|e| format!("xenstore: {e}"))?;
            let me: u16 = xs
                .read_string(0, "domid")
                .map_err(|e| format!("read domid: {e}"))?
                .parse()
                .map_err(|e| format!("domid: {e}"))?;
            let home = format!("/local/domain/{me}");
            let vbd = match &cli.vbd {
                Some(v) => v.clone(),
                None => xs
                    .directory(0, &format!("{home}/device/vbd"))
                    .ok()
                    .and_then(|v| v.into_iter().next())
                    .ok_or("no vbd in device/vbd")?,
            };
            let handle: u16 = vbd.parse().map_err(|_| format!("bad vbd id '{vbd}'"))?;
            let fe = format!("{home}/device/vbd/{vbd}");
            let be = xs
                .read_string(0, &format!("{fe}/backend"))
                .map_err(|e| format!("{fe}/backend: {e}"))?;
            let be_id: u16 = xs
                .read_string(0, &format!("{fe}/backend-id"))
                .map_err(|e| format!("{fe}/backend-id: {e}"))?
                .parse()
                .map_err(|e| format!("backend-id: {e}"))?;
            let gnt =
                Gntalloc::open().map_err(|e| format!("{}: {e}", crate::sys::GNTALLOC_PATH))?;
            let ev = Evtchn::open().map_err(|e| e.to_string())?;
            let took = unbind(&format!("vbd-{vbd}"))?;
            println!(
                "front-hostile: vbd {vbd}: {} (backend {be}, domain {be_id}; this is domain {me})",
                if took {
                    "taken from its driver"
                } else {
                    "had no driver"
                }
            );
            if !cli.keep_vif {
                for d in std::fs::read_dir("/sys/bus/xen/devices").map_err(|e| e.to_string())? {
                    let name = d.map_err(|e| e.to_string())?.file_name();
                    let name = name.to_string_lossy();
                    if name.starts_with("vif-") && unbind(&name)? {
                        println!("front-hostile: {name}: taken from its driver (left unused)");
                    }
                }
            }
            let mut f = Front {
                xs,
                gnt,
                ev,
                be_id,
                other: cli.other_domid.unwrap_or(me),
                fe,
                be,
                handle,
                sectors: 0,
                timeout: Duration::from_secs(cli.timeout),
                conn: None,
                next_id: 1,
            };
            f.reset()?;
            Ok(f)
        }

        fn read(&mut self, path: &str) -> Option<String> {
            self.xs.read_string(0, path).ok()
        }

        fn write(&mut self, key: &str, val: &str) -> Result<(), String> {
            let p = format!("{}/{key}", self.fe);
            self.xs
                .write(0, &p, val.as_bytes())
                .map_err(|e| format!("write {p}: {e}"))
        }

        fn backend_state(&mut self) -> Option<u32> {
            let p = format!("{}/state", self.be);
            self.read(&p)?.parse().ok()
        }

        /// Wait until the backend's state is one of `want`.
        fn wait_backend(&mut self, want: &[u32]) -> Result<u32, Option<u32>> {
            let end = Instant::now() + self.timeout;
            loop {
                let s = self.backend_state();
                if let Some(s) = s.filter(|s| want.contains(s)) {
                    return Ok(s);
                }
                if Instant::now() > end {
                    return Err(s);
                }
                sleep(Duration::from_millis(20));
            }
        }

        /// Close the connection (frontend Closed, backend Closed) and let
        /// the ring and port go.
        fn close(&mut self) -> Result<(), String> {
            self.write("state", "6")?;
            let r = self.wait_backend(&[6]);
            if let Some(c) = self.conn.take()
                && let Some(p) = c.port
            {
                let _ = self.ev.unbind(p);
            }
            r.map(drop)
                .map_err(|s| format!("backend did not close (state {s:?})"))
        }

        /// Bring the backend to InitWait (2) from whatever state it is in.
        fn reset(&mut self) -> Result<(), String> {
            if self.backend_state() != Some(2) || self.conn.is_some() {
                self.close()?;
                self.write("state", "1")?;
                self.wait_backend(&[2])
                    .map_err(|s| format!("backend did not return to InitWait (state {s:?})"))?;
            }
            Ok(())
        }

        /// One connection attempt with the given ring and port.
        fn connect(&mut self, ring: Ring, port: Port, protocol: &str) -> Result<Outcome, String> {
            self.reset()?;
            let page = match ring {
                Ring::OtherDomain => self.gnt.page(self.other, true),
                Ring::ReadOnly => self.gnt.page(self.be_id, false),
                _ => self.gnt.page(self.be_id, true),
            }
            .map_err(|e| format!("gntalloc: {e}"))?;
            page.store(REQ_PROD, 0);
            page.store(REQ_EVENT, 1);
            page.store(RSP_PROD, 0);
            page.store(RSP_EVENT, 1);
            let ring_ref = match ring {
                Ring::Ref(r) => r,
                Ring::Revoked => self
                    .gnt
                    .revoked_ref(self.be_id)
                    .map_err(|e| format!("gntalloc: {e}"))?,
                _ => page.gref,
            };
            let (port_no, bound) = match port {
                Port::Good => {
                    let p = self
                        .ev
                        .bind_unbound(self.be_id)
                        .map_err(|e| e.to_string())?;
                    (p, Some(p))
                }
                Port::OtherDomain => {
                    let p = self
                        .ev
                        .bind_unbound(self.other)
                        .map_err(|e| e.to_string())?;
                    (p, Some(p))
                }
                Port::Closed => {
                    let p = self
                        .ev
                        .bind_unbound(self.be_id)
                        .map_err(|e| e.to_string())?;
                    self.ev.unbind(p).map_err(|e| e.to_string())?;
                    (p, None)
                }
            };
            self.conn = Some(Conn {
                ring: page,
                port: bound,
                req_prod: 0,
                rsp_cons: 0,
            });
            for stale in ["ring-page-order", "multi-queue-num-queues", "ring-ref0"] {
                let _ = self.xs.rm(0, &format!("{}/{stale}", self.fe));
            }
            self.write("ring-ref", &ring_ref.to_string())?;
            self.write("event-channel", &port_no.to_string())?;
            self.write("protocol", protocol)?;
            self.write("feature-persistent", "0")?;
            self.write("state", "3")?;
            Ok(match self.wait_backend(&[4, 5, 6]) {
                Ok(4) => {
                    let p = format!("{}/sectors", self.be);
                    self.sectors = self.read(&p).and_then(|s| s.parse().ok()).unwrap_or(0);
                    Outcome::Connected
                }
                Ok(s) => Outcome::Closed(s),
                Err(_) => Outcome::Nothing(self.timeout.as_secs()),
            })
        }

        /// A good connection, made if there is none.
        fn ensure_connected(&mut self) -> Result<(), String> {
            if self.conn.is_some() && self.backend_state() == Some(4) {
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
            let end = Instant::now() + self.timeout;
            loop {
                // Drain and re-enable the port (responses are read from the ring).
                for p in self.ev.pending_all().unwrap_or_default() {
                    let _ = self.ev.unmask(p);
                }
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
                    return Outcome::Nothing(self.timeout.as_secs());
                }
                sleep(Duration::from_millis(5));
            }
        }

        fn id(&mut self) -> u64 {
            self.next_id += 1;
            self.next_id
        }

        /// A read/write request of `segs` claiming `nr` segments.
        fn rw(
            &mut self,
            op: u8,
            nr: u8,
            sector: u64,
            segs: Vec<Segment>,
        ) -> Result<Outcome, String> {
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
        fn read_into(
            &mut self,
            page_to: u16,
            writable: bool,
            sector: u64,
        ) -> Result<Outcome, String> {
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
                .page(self.be_id, true)
                .map_err(|e| format!("gntalloc: {e}"))?;
            let seg = Segment {
                gref: page.gref,
                first_sect: first,
                last_sect: last,
            };
            self.rw(OP_READ, 1, 0, vec![seg])
        }

        fn run(&mut self, name: &str) -> Outcome {
            match self.run_case(name) {
                Ok(o) => o,
                Err(e) => Outcome::LocalError(e),
            }
        }

        fn connect_case(
            &mut self,
            ring: Ring,
            port: Port,
            protocol: &str,
        ) -> Result<Outcome, String> {
            let o = self.connect(ring, port, protocol)?;
            // Whatever happened, start the next case afresh.
            let _ = self.close();
            Ok(o)
        }

        fn run_case(&mut self, name: &str) -> Result<Outcome, String> {
            let be = self.be_id;
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
                "ring-ref-not-granted" => {
                    self.connect_case(Ring::Revoked, Port::Good, PROTOCOL_NATIVE)
                }
                "ring-ref-other-domain" => {
                    self.connect_case(Ring::OtherDomain, Port::Good, PROTOCOL_NATIVE)
                }
                "ring-ref-read-only" => {
                    self.connect_case(Ring::ReadOnly, Port::Good, PROTOCOL_NATIVE)
                }
                "event-channel-unbound" => {
                    self.connect_case(Ring::Good, Port::Closed, PROTOCOL_NATIVE)
                }
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
                    let mut sent = 0;
                    for _ in 0..FLOOD {
                        if self.notify().is_ok() {
                            sent += 1;
                        }
                    }
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
                        other => Outcome::Text(format!(
                            "{other} (req_prod {bogus}, ring of {RING_SIZE})"
                        )),
                    })
                }
                _ => Err(format!("no case {name}")),
            }
        }
    }
}
