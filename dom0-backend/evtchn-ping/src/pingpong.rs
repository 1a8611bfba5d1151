//! Event-channel ping-pong and its statistics: between two handles of the same device
//! (loopback), or between two domains (a server in one, a client in the other).
//!
//! Loopback: handle A allocates an unbound port for the remote domain (Dom0 itself), handle
//! B binds an interdomain channel to it, so A's port and B's port are the two ends of one
//! loopback channel. One round trip: A notifies, B waits for its port and unmasks it, B
//! notifies back, A waits for its port and unmasks it.
//!
//! Between domains ([`listen`] + [`answer`] in one, [`ping_remote`] in the other): the
//! server allocates an unbound port for the client's domain and publishes its number (the
//! caller prints it); the client binds an interdomain channel to it, and each round trip is
//! the client notifying and waiting for the server's answer. Every wait has a timeout, so a
//! lost event ends the run with an error instead of a hang.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::device::{Clock, EvtchnDevice};

/// Linux errno values (identical on arm64 and x86-64) that get a specific hint.
const ESRCH: i32 = 3;
const ENOTTY: i32 = 25;

/// Which side of the channel an operation ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The handle that allocated the unbound port.
    A,
    /// The handle that bound interdomain to A's port.
    B,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// What failed during a ping-pong run. Each variant's message says what to try next.
#[derive(Debug)]
pub enum PingError {
    /// Opening the device failed.
    Open {
        /// Device path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// `--cpu`: pinning the process or the events failed.
    Pin {
        /// CPU to run on.
        cpu: usize,
        /// CPU for the events.
        event_cpu: usize,
        /// The OS error.
        source: io::Error,
    },
    /// `IOCTL_EVTCHN_BIND_UNBOUND_PORT` failed.
    BindUnbound {
        /// Remote domain asked for.
        remote_domain: u32,
        /// The OS error.
        source: io::Error,
    },
    /// `IOCTL_EVTCHN_BIND_INTERDOMAIN` failed.
    BindInterdomain {
        /// Remote domain asked for.
        remote_domain: u32,
        /// Remote (unbound) port.
        remote_port: u32,
        /// The OS error.
        source: io::Error,
    },
    /// `IOCTL_EVTCHN_NOTIFY` failed.
    Notify {
        /// Side that notified.
        side: Side,
        /// Local port.
        port: u32,
        /// Round (0-based).
        round: usize,
        /// The OS error.
        source: io::Error,
    },
    /// Waiting for or reading the event failed (timeout: the event was lost).
    Wait {
        /// Side that waited.
        side: Side,
        /// Port it waited for.
        port: u32,
        /// Round (0-based).
        round: usize,
        /// The OS error.
        source: io::Error,
    },
    /// A port other than the bound one fired.
    UnexpectedPort {
        /// Side that read.
        side: Side,
        /// Port it waited for.
        expected: u32,
        /// Port that was read.
        got: u32,
        /// Round (0-based).
        round: usize,
    },
    /// Unmasking (write) failed.
    Unmask {
        /// Side that unmasked.
        side: Side,
        /// Port.
        port: u32,
        /// The OS error.
        source: io::Error,
    },
    /// Unbinding a port at the end failed.
    Unbind {
        /// Side owning the port.
        side: Side,
        /// Port.
        port: u32,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for PingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PingError::Open { path, source } => {
                write!(f, "open {path}: {source}")?;
                match source.kind() {
                    io::ErrorKind::NotFound => f.write_str(
                        " (is xen-evtchn loaded? run on Dom0 under oxen or Xen: modprobe xen-evtchn)",
                    ),
                    io::ErrorKind::PermissionDenied => f.write_str(" (run as root)"),
                    _ => f.write_str(" (is this Dom0 under oxen or Xen?)"),
                }
            }
            PingError::Pin {
                cpu,
                event_cpu,
                source,
            } => write!(
                f,
                "run on CPU {cpu} with events on CPU {event_cpu}: {source} \
                 (is that CPU online? run as root with /proc mounted)"
            ),
            PingError::BindUnbound {
                remote_domain,
                source,
            } => {
                write!(
                    f,
                    "bind unbound port for remote domain {remote_domain:#x}: {source} "
                )?;
                f.write_str(match source.raw_os_error() {
                    Some(ENOTTY) => "(not an event-channel device: check --device)",
                    Some(ESRCH) => "(no such domain: use --domid 0 (Dom0) or 0x7ff0 (DOMID_SELF))",
                    _ => {
                        "(the hypervisor refused EVTCHNOP_alloc_unbound; \
                         try --domid 0 or --domid 0x7ff0)"
                    }
                })
            }
            PingError::BindInterdomain {
                remote_domain,
                remote_port,
                source,
            } => write!(
                f,
                "bind interdomain to domain {remote_domain:#x} port {remote_port}: {source} \
                 (the hypervisor refused EVTCHNOP_bind_interdomain on a loopback channel)"
            ),
            PingError::Notify {
                side,
                port,
                round,
                source,
            } => write!(
                f,
                "notify from {side} on port {port} (round {round}): {source} \
                 (EVTCHNOP_send failed)"
            ),
            PingError::Wait {
                side,
                port,
                round,
                source,
            } => {
                write!(
                    f,
                    "wait on {side} for port {port} (round {round}): {source}"
                )?;
                if source.kind() == io::ErrorKind::TimedOut {
                    f.write_str(
                        " (event lost: the hypervisor did not deliver the upcall or did not \
                         re-deliver after unmask)",
                    )?;
                }
                Ok(())
            }
            PingError::UnexpectedPort {
                side,
                expected,
                got,
                round,
            } => write!(
                f,
                "side {side} read port {got} but only port {expected} is bound (round {round}) \
                 (the hypervisor delivered the event to the wrong port)"
            ),
            PingError::Unmask { side, port, source } => {
                write!(f, "unmask port {port} on {side}: {source}")
            }
            PingError::Unbind { side, port, source } => {
                write!(
                    f,
                    "unbind port {port} on {side}: {source} (EVTCHNOP_close failed)"
                )
            }
        }
    }
}

impl std::error::Error for PingError {}

/// Options of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Number of round trips.
    pub rounds: usize,
    /// Remote domain for the unbound port and the interdomain bind (our own domain id).
    pub remote_domain: u32,
    /// Longest wait for one event.
    pub timeout: Duration,
}

/// The two ports of the loopback channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Port bound on handle A (the unbound one).
    pub a: u32,
    /// Port bound on handle B (the interdomain one).
    pub b: u32,
}

/// Connects A and B: A allocates an unbound port for `remote_domain`, B binds to it.
pub fn connect<D: EvtchnDevice>(
    a: &mut D,
    b: &mut D,
    remote_domain: u32,
) -> Result<Ports, PingError> {
    let pa = a
        .bind_unbound_port(remote_domain)
        .map_err(|source| PingError::BindUnbound {
            remote_domain,
            source,
        })?;
    let pb = match b.bind_interdomain(remote_domain, pa) {
        Ok(p) => p,
        Err(source) => {
            // Best effort: do not leak A's port; the bind error is the one to report.
            let _ = a.unbind(pa);
            return Err(PingError::BindInterdomain {
                remote_domain,
                remote_port: pa,
                source,
            });
        }
    };
    Ok(Ports { a: pa, b: pb })
}

/// Closes both ports (B first, then A).
pub fn disconnect<D: EvtchnDevice>(a: &mut D, b: &mut D, ports: Ports) -> Result<(), PingError> {
    b.unbind(ports.b).map_err(|source| PingError::Unbind {
        side: Side::B,
        port: ports.b,
        source,
    })?;
    a.unbind(ports.a).map_err(|source| PingError::Unbind {
        side: Side::A,
        port: ports.a,
        source,
    })
}

/// Waits on `dev` for `port` to fire, then unmasks it.
fn wait_and_unmask<D: EvtchnDevice>(
    dev: &mut D,
    side: Side,
    port: u32,
    round: usize,
    timeout: Duration,
) -> Result<(), PingError> {
    let mut buf = [0u32; 8];
    let n = dev
        .read_ports(&mut buf, timeout)
        .map_err(|source| PingError::Wait {
            side,
            port,
            round,
            source,
        })?;
    if n == 0 {
        return Err(PingError::Wait {
            side,
            port,
            round,
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "read returned no port"),
        });
    }
    // Only one port is bound per handle, so every entry must be it.
    if let Some(&got) = buf.iter().take(n).find(|&&p| p != port) {
        return Err(PingError::UnexpectedPort {
            side,
            expected: port,
            got,
            round,
        });
    }
    dev.unmask(&[port])
        .map_err(|source| PingError::Unmask { side, port, source })
}

/// Runs `rounds` round trips over connected ports and returns each one's duration in ns.
pub fn ping_pong<D: EvtchnDevice, C: Clock>(
    a: &mut D,
    b: &mut D,
    ports: Ports,
    rounds: usize,
    timeout: Duration,
    clock: &mut C,
) -> Result<Vec<u64>, PingError> {
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let t0 = clock.now_ns();
        a.notify(ports.a).map_err(|source| PingError::Notify {
            side: Side::A,
            port: ports.a,
            round,
            source,
        })?;
        wait_and_unmask(b, Side::B, ports.b, round, timeout)?;
        b.notify(ports.b).map_err(|source| PingError::Notify {
            side: Side::B,
            port: ports.b,
            round,
            source,
        })?;
        wait_and_unmask(a, Side::A, ports.a, round, timeout)?;
        samples.push(clock.now_ns().saturating_sub(t0));
    }
    Ok(samples)
}

/// Connects, runs the round trips, disconnects. Ports are closed even when a round fails.
/// B's port fires once when it is bound: that event is taken first ([`take_bind_event`]).
pub fn run<D: EvtchnDevice, C: Clock>(
    a: &mut D,
    b: &mut D,
    cfg: &Config,
    clock: &mut C,
) -> Result<(Ports, Stats), PingError> {
    let ports = connect(a, b, cfg.remote_domain)?;
    let samples = match take_bind_event(b, Side::B, ports.b)
        .and_then(|()| ping_pong(a, b, ports, cfg.rounds, cfg.timeout, clock))
    {
        Ok(s) => s,
        Err(e) => {
            let _ = disconnect(a, b, ports);
            return Err(e);
        }
    };
    disconnect(a, b, ports)?;
    Ok((ports, Stats::from_samples(&samples)))
}

/// Server side between domains: allocates a port `remote_domain` may bind to.
pub fn listen<D: EvtchnDevice>(dev: &mut D, remote_domain: u32) -> Result<u32, PingError> {
    dev.bind_unbound_port(remote_domain)
        .map_err(|source| PingError::BindUnbound {
            remote_domain,
            source,
        })
}

/// Server side: answers `rounds` events on `port` (wait, unmask, notify back), then closes
/// the port. The first event may take up to `first_wait` (the client binds and starts
/// when it has learnt the port number); later ones `timeout` each.
pub fn answer<D: EvtchnDevice, C: Clock>(
    dev: &mut D,
    port: u32,
    rounds: usize,
    first_wait: Duration,
    timeout: Duration,
    clock: &mut C,
) -> Result<(), PingError> {
    let res = (|| {
        for round in 0..rounds {
            if round == 0 {
                let start = clock.now_ns();
                loop {
                    match wait_and_unmask(dev, Side::A, port, round, timeout) {
                        Err(PingError::Wait { source, .. })
                            if source.kind() == io::ErrorKind::TimedOut
                                && u128::from(clock.now_ns().saturating_sub(start))
                                    < first_wait.as_nanos() => {}
                        other => break other,
                    }
                }?;
            } else {
                wait_and_unmask(dev, Side::A, port, round, timeout)?;
            }
            dev.notify(port).map_err(|source| PingError::Notify {
                side: Side::A,
                port,
                round,
                source,
            })?;
        }
        Ok(())
    })();
    let closed = dev.unbind(port).map_err(|source| PingError::Unbind {
        side: Side::A,
        port,
        source,
    });
    res.and(closed)
}

/// How long to wait for the event a fresh interdomain binding may raise.
pub const BIND_EVENT_WAIT: Duration = Duration::from_millis(100);

/// Xen's `EVTCHNOP_bind_interdomain` sets the new local port pending (notifications sent
/// to the unbound port might otherwise be lost), so a freshly bound port fires once with
/// nothing sent: take that event (waiting up to [`BIND_EVENT_WAIT`]) before the first
/// round, or the bound side runs one event ahead of its peer (between domains the server
/// then saw 999 of 1000 events). Loopback takes it too, so both modes start alike (its
/// figure did not move: 47.0 -> 46.7 us on oxen, 47.8 us on Xen, icount).
fn take_bind_event<D: EvtchnDevice>(dev: &mut D, side: Side, port: u32) -> Result<(), PingError> {
    let mut buf = [0u32; 8];
    match dev.read_ports(&mut buf, BIND_EVENT_WAIT) {
        Ok(n) => match buf.iter().take(n).copied().find(|&p| p != port) {
            None => dev
                .unmask(&[port])
                .map_err(|source| PingError::Unmask { side, port, source }),
            Some(got) => Err(PingError::UnexpectedPort {
                side,
                expected: port,
                got,
                round: 0,
            }),
        },
        Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(()),
        Err(source) => Err(PingError::Wait {
            side,
            port,
            round: 0,
            source,
        }),
    }
}

/// Client side between domains: binds to `remote_port` of `remote_domain`, runs `rounds`
/// round trips (notify, wait for the answer), closes its port. Returns the local port and
/// the statistics.
/// The event of the fresh binding is taken first (see [`take_bind_event`]).
pub fn ping_remote<D: EvtchnDevice, C: Clock>(
    dev: &mut D,
    remote_domain: u32,
    remote_port: u32,
    rounds: usize,
    timeout: Duration,
    clock: &mut C,
) -> Result<(u32, Stats), PingError> {
    let port = dev
        .bind_interdomain(remote_domain, remote_port)
        .map_err(|source| PingError::BindInterdomain {
            remote_domain,
            remote_port,
            source,
        })?;
    let res = (|| {
        take_bind_event(dev, Side::B, port)?;
        let mut samples = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let t0 = clock.now_ns();
            dev.notify(port).map_err(|source| PingError::Notify {
                side: Side::B,
                port,
                round,
                source,
            })?;
            wait_and_unmask(dev, Side::B, port, round, timeout)?;
            samples.push(clock.now_ns().saturating_sub(t0));
        }
        Ok(samples)
    })();
    let closed = dev.unbind(port).map_err(|source| PingError::Unbind {
        side: Side::B,
        port,
        source,
    });
    let samples = res?;
    closed?;
    Ok((port, Stats::from_samples(&samples)))
}

/// Round-trip statistics, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Number of samples.
    pub count: usize,
    /// Fastest round trip.
    pub min_ns: u64,
    /// Median (mean of the two middle samples for an even count).
    pub median_ns: f64,
    /// Arithmetic mean.
    pub mean_ns: f64,
    /// Slowest round trip.
    pub max_ns: u64,
    /// 10th and 90th percentiles (nearest rank).
    pub p10_ns: u64,
    /// See `p10_ns`.
    pub p90_ns: u64,
}

impl Stats {
    /// Statistics of `samples` (all zero for an empty slice).
    pub fn from_samples(samples: &[u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        let mut v = samples.to_vec();
        v.sort_unstable();
        let n = v.len();
        let median_ns = if n % 2 == 1 {
            v[n / 2] as f64
        } else {
            (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
        };
        let sum: u128 = v.iter().map(|&x| u128::from(x)).sum();
        // Nearest rank: the smallest sample with at least p% of them at or below it.
        let pct = |p: usize| v[(n * p).div_ceil(100).clamp(1, n) - 1];
        Self {
            count: n,
            min_ns: v[0],
            median_ns,
            mean_ns: sum as f64 / n as f64,
            max_ns: v[n - 1],
            p10_ns: pct(10),
            p90_ns: pct(90),
        }
    }

    /// The result line: `evtchn-ping: <N> round trips, median <x> us, mean <y> us, ...`.
    pub fn summary_line(&self) -> String {
        format!(
            "evtchn-ping: {} round trips, median {:.1} us, mean {:.1} us, min {:.1} us, max {:.1} us, p10 {:.1} us, p90 {:.1} us",
            self.count,
            self.median_ns / 1000.0,
            self.mean_ns / 1000.0,
            self.min_ns as f64 / 1000.0,
            self.max_ns as f64 / 1000.0,
            self.p10_ns as f64 / 1000.0,
            self.p90_ns as f64 / 1000.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::DOMID_SELF;
    use crate::fake::{Faults, ScriptClock, pair};

    fn cfg(rounds: usize, remote_domain: u32) -> Config {
        Config {
            rounds,
            remote_domain,
            timeout: Duration::from_millis(10),
        }
    }

    fn clock() -> ScriptClock {
        ScriptClock {
            now: 0,
            steps: vec![1000],
            i: 0,
        }
    }

    #[test]
    fn round_trips_notify_and_unmask_both_sides_every_round() {
        let (mut a, mut b, hv) = pair(0, Faults::default());
        let (ports, stats) = run(&mut a, &mut b, &cfg(100, 0), &mut clock()).unwrap();
        assert_ne!(ports.a, ports.b);
        assert_eq!(stats.count, 100);
        let hv = hv.borrow();
        assert_eq!(hv.sends, 200);
        assert_eq!(hv.unmasks, 200);
        assert!(hv.ports.is_empty(), "both ports closed: {:?}", hv.ports);
    }

    #[test]
    fn loopback_takes_b_s_binding_event_so_b_never_runs_ahead() {
        let faults = Faults {
            event_on_bind: true,
            ..Faults::default()
        };
        let (mut a, mut b, hv) = pair(0, faults);
        let (_, stats) = run(&mut a, &mut b, &cfg(10, 0), &mut clock()).unwrap();
        assert_eq!(stats.count, 10);
        let hv = hv.borrow();
        assert_eq!((hv.sends, hv.unmasks), (20, 21));
        assert!(hv.rings.iter().all(|r| r.is_empty()), "no event left over");
    }

    #[test]
    fn domid_self_works_as_remote_domain() {
        let (mut a, mut b, _hv) = pair(0, Faults::default());
        let (_, stats) = run(&mut a, &mut b, &cfg(3, DOMID_SELF), &mut clock()).unwrap();
        assert_eq!(stats.count, 3);
    }

    #[test]
    fn wrong_domid_fails_bind_and_frees_the_unbound_port() {
        let (mut a, mut b, hv) = pair(0, Faults::default());
        let e = run(&mut a, &mut b, &cfg(3, 5), &mut clock()).unwrap_err();
        assert!(
            matches!(
                e,
                PingError::BindInterdomain {
                    remote_domain: 5,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(hv.borrow().ports.is_empty());
    }

    #[test]
    fn bind_unbound_failure_is_reported_with_a_hint() {
        let faults = Faults {
            bind_unbound: Some(io::ErrorKind::PermissionDenied),
            ..Faults::default()
        };
        let (mut a, mut b, _hv) = pair(0, faults);
        let e = run(&mut a, &mut b, &cfg(3, 0), &mut clock()).unwrap_err();
        assert!(matches!(e, PingError::BindUnbound { .. }), "{e:?}");
        assert!(e.to_string().contains("EVTCHNOP_alloc_unbound"), "{e}");
    }

    #[test]
    fn lost_event_times_out_on_the_waiting_side_and_closes_ports() {
        // Sends: round r has index 2r (A -> B) and 2r+1 (B -> A); drop B's reply of round 2.
        let faults = Faults {
            drop_send: Some(5),
            ..Faults::default()
        };
        let (mut a, mut b, hv) = pair(0, faults);
        let e = run(&mut a, &mut b, &cfg(10, 0), &mut clock()).unwrap_err();
        match &e {
            PingError::Wait {
                side: Side::A,
                round: 2,
                source,
                ..
            } => assert_eq!(source.kind(), io::ErrorKind::TimedOut),
            other => panic!("unexpected {other:?}"),
        }
        assert!(e.to_string().contains("event lost"), "{e}");
        assert!(hv.borrow().ports.is_empty());
    }

    #[test]
    fn wrong_port_delivered_is_detected() {
        let faults = Faults {
            wrong_port_at: Some((0, 99)),
            ..Faults::default()
        };
        let (mut a, mut b, _hv) = pair(0, faults);
        let e = run(&mut a, &mut b, &cfg(2, 0), &mut clock()).unwrap_err();
        match e {
            PingError::UnexpectedPort {
                side: Side::B,
                got: 99,
                round: 0,
                expected,
            } => assert_ne!(expected, 99),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn samples_measure_each_round_trip() {
        let (mut a, mut b, _hv) = pair(0, Faults::default());
        let ports = connect(&mut a, &mut b, 0).unwrap();
        // now() is read twice per round: start (+0) and end (+2000 or +4000 alternately).
        let mut clk = ScriptClock {
            now: 0,
            steps: vec![0, 2000, 0, 4000],
            i: 0,
        };
        let s = ping_pong(&mut a, &mut b, ports, 4, Duration::ZERO, &mut clk).unwrap();
        assert_eq!(s, vec![2000, 4000, 2000, 4000]);
    }

    #[test]
    fn server_answers_each_client_event_then_closes_its_port() {
        let (mut server, mut client, hv) = pair(0, Faults::default());
        let port = listen(&mut server, 0).unwrap();
        let local = client.bind_interdomain(0, port).unwrap();
        // The fake cannot block, so the rounds are interleaved by hand: the client
        // notifies, the server answers one round, the client reads the answer.
        let mut buf = [0u32; 8];
        for round in 0..5 {
            client.notify(local).unwrap();
            assert!(client.read_ports(&mut buf, Duration::ZERO).is_err());
            wait_and_unmask(&mut server, Side::A, port, round, Duration::ZERO).unwrap();
            server.notify(port).unwrap();
            assert_eq!(client.read_ports(&mut buf, Duration::ZERO).unwrap(), 1);
            assert_eq!(buf[0], local);
            client.unmask(&[local]).unwrap();
        }
        // answer(): one round, then the server's port is closed
        client.notify(local).unwrap();
        let one_ms = Duration::from_millis(1);
        answer(&mut server, port, 1, one_ms, Duration::ZERO, &mut clock()).unwrap();
        assert_eq!(client.read_ports(&mut buf, Duration::ZERO).unwrap(), 1);
        assert!(!hv.borrow().ports.contains_key(&port), "server port closed");
        assert_eq!(hv.borrow().sends, 12);
    }

    #[test]
    fn server_waits_up_to_first_wait_then_reports_the_lost_event() {
        let (mut server, _client, hv) = pair(0, Faults::default());
        let port = listen(&mut server, 0).unwrap();
        // each clock read advances 1 ms: ten reads fit in a 10 ms first wait
        let mut clk = ScriptClock {
            now: 0,
            steps: vec![1_000_000],
            i: 0,
        };
        let e = answer(
            &mut server,
            port,
            3,
            Duration::from_millis(10),
            Duration::ZERO,
            &mut clk,
        )
        .unwrap_err();
        assert!(
            matches!(
                e,
                PingError::Wait {
                    side: Side::A,
                    round: 0,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            clk.i >= 10,
            "the server gave up after {} clock reads",
            clk.i
        );
        assert!(hv.borrow().ports.is_empty(), "port closed after the error");
    }

    #[test]
    fn client_without_server_fails_to_bind_or_times_out() {
        let (mut server, mut client, hv) = pair(0, Faults::default());
        let e = ping_remote(&mut client, 0, 77, 3, Duration::ZERO, &mut clock()).unwrap_err();
        assert!(
            matches!(
                e,
                PingError::BindInterdomain {
                    remote_port: 77,
                    ..
                }
            ),
            "{e:?}"
        );
        // bound, but nobody answers: round 0's wait times out and the port is closed
        let port = listen(&mut server, 0).unwrap();
        let e = ping_remote(&mut client, 0, port, 3, Duration::ZERO, &mut clock()).unwrap_err();
        assert!(
            matches!(
                e,
                PingError::Wait {
                    side: Side::B,
                    round: 0,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(hv.borrow().ports.len(), 1, "only the server's port is left");
    }

    #[test]
    fn client_takes_the_event_of_its_fresh_binding_before_the_first_round() {
        // As on Xen, binding raises an event on the new port; the client must not count
        // it as the server's answer: with no server its first round still times out.
        let faults = Faults {
            event_on_bind: true,
            ..Faults::default()
        };
        let (mut server, mut client, hv) = pair(0, faults);
        let port = listen(&mut server, 0).unwrap();
        let e = ping_remote(&mut client, 0, port, 2, Duration::ZERO, &mut clock()).unwrap_err();
        assert!(
            matches!(
                e,
                PingError::Wait {
                    side: Side::B,
                    round: 0,
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(hv.borrow().unmasks, 1, "the binding's event was unmasked");
    }

    #[test]
    fn client_event_reaches_the_server_port() {
        // Without a concurrent server the client's first round times out, but its event
        // fired the server's port, once.
        let (mut server, mut client, hv) = pair(0, Faults::default());
        let port = listen(&mut server, 0).unwrap();
        assert!(ping_remote(&mut client, 0, port, 1, Duration::ZERO, &mut clock()).is_err());
        let mut buf = [0u32; 8];
        assert_eq!(server.read_ports(&mut buf, Duration::ZERO).unwrap(), 1);
        assert_eq!(buf[0], port);
        assert_eq!(hv.borrow().sends, 1);
    }

    #[test]
    fn stats_odd_even_empty() {
        let s = Stats::from_samples(&[5, 1, 3]);
        assert_eq!((s.count, s.min_ns, s.max_ns), (3, 1, 5));
        assert_eq!(s.median_ns, 3.0);
        assert_eq!(s.mean_ns, 3.0);
        let s = Stats::from_samples(&[4000, 1000, 2000, 9000]);
        assert_eq!(s.median_ns, 3000.0);
        assert_eq!(s.mean_ns, 4000.0);
        assert_eq!(Stats::from_samples(&[]), Stats::default());
        assert_eq!(
            s.summary_line(),
            "evtchn-ping: 4 round trips, median 3.0 us, mean 4.0 us, min 1.0 us, max 9.0 us, p10 1.0 us, p90 9.0 us"
        );
        // Nearest-rank percentiles of 1..=100 µs.
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        let s = Stats::from_samples(&v);
        assert_eq!((s.p10_ns, s.p90_ns), (10_000, 90_000));
        assert_eq!(Stats::from_samples(&[7]).p10_ns, 7);
    }

    #[test]
    fn bind_unbound_hints_follow_the_errno() {
        let msg = |errno| {
            PingError::BindUnbound {
                remote_domain: 5,
                source: io::Error::from_raw_os_error(errno),
            }
            .to_string()
        };
        assert!(msg(ENOTTY).contains("not an event-channel device"));
        assert!(msg(ESRCH).contains("no such domain"));
        assert!(msg(1).contains("refused EVTCHNOP_alloc_unbound"));
    }

    #[test]
    fn open_error_message_points_at_the_module() {
        let e = PingError::Open {
            path: "/dev/xen/evtchn".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let msg = e.to_string();
        assert!(msg.starts_with("open /dev/xen/evtchn: "), "{msg}");
        assert!(msg.contains("is xen-evtchn loaded?"), "{msg}");
    }
}
