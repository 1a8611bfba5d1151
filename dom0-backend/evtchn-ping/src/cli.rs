//! Command line of `evtchn-ping` (hand-parsed: a few options do not need a parser crate).

use std::time::Duration;

use crate::abi::DOMID_DOM0;

/// Usage text printed by `--help` and after a usage error.
pub const USAGE: &str = "usage: evtchn-ping [ROUNDS] [--domid ID] [--timeout-ms MS] [--device PATH]
       evtchn-ping [ROUNDS] --serve DOMID [--wait-ms MS] ...
       evtchn-ping [ROUNDS] --connect DOMID:PORT ...
  ROUNDS          round trips to measure (or answer, with --serve; default 1000)
  --domid ID      our own domain id, used as the remote domain of the loopback
                  channel (default 0 = Dom0; 0x7ff0 = DOMID_SELF)
  --serve DOMID   between domains, server side: bind a port DOMID may connect to,
                  print `evtchn-ping: serving port P for domain DOMID`, answer ROUNDS
                  events on it, close it
  --connect DOMID:PORT  between domains, client side: bind to PORT of domain DOMID
                  (a server's), measure ROUNDS round trips
  --wait-ms MS    with --serve: how long the first event may take (default 600000)
  --timeout-ms MS give up when one event takes longer (default 5000)
  --cpu N         run on CPU N only, and have the events of the ports bound here
                  delivered to CPU N (Linux spreads new ports over the CPUs)
  --event-cpu M   with --cpu: deliver the events to CPU M instead
  --device PATH   event-channel device (default /dev/xen/evtchn)";

/// What to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Two handles of this domain joined by a loopback channel.
    Loopback,
    /// Between domains, server side: answer the events of `remote_domain`.
    Serve {
        /// The client's domain.
        remote_domain: u32,
    },
    /// Between domains, client side: bind to a server's port and measure.
    Connect {
        /// The server's domain.
        remote_domain: u32,
        /// The server's port.
        remote_port: u32,
    },
}

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Round trips to run.
    pub rounds: usize,
    /// Remote domain id of the loopback channel.
    pub domid: u32,
    /// Per-event timeout.
    pub timeout: Duration,
    /// Device path.
    pub device: String,
    /// Loopback or between domains.
    pub mode: Mode,
    /// `--serve`: how long the first event may take.
    pub first_wait: Duration,
    /// `--cpu N [--event-cpu M]`: the CPU to run on and the CPU the events
    /// are delivered to.
    pub pin: Option<(usize, usize)>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            rounds: 1000,
            domid: DOMID_DOM0,
            timeout: Duration::from_millis(5000),
            device: "/dev/xen/evtchn".to_string(),
            mode: Mode::Loopback,
            first_wait: Duration::from_secs(600),
            pin: None,
        }
    }
}

/// Result of parsing: run with these arguments, or print the usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the ping-pong.
    Run(Args),
    /// `-h`/`--help`.
    Help,
}

/// Parses a decimal or `0x` hexadecimal number.
fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A domain id (at most 0xffff).
fn parse_domid(v: &str) -> Result<u32, String> {
    parse_num(v)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= 0xFFFF)
        .ok_or_else(|| format!("bad domain id {v:?}"))
}

/// The kernel's text form of a CPU mask holding only `cpu`: 32-bit hex
/// groups, most significant first, separated by commas.
pub fn cpu_mask(cpu: usize) -> String {
    let groups = cpu / 32 + 1;
    (0..groups)
        .rev()
        .map(|g| {
            let bits: u32 = if g == cpu / 32 { 1 << (cpu % 32) } else { 0 };
            format!("{bits:08x}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// A CPU number (below 1024, the kernel's usual limit).
fn parse_cpu(name: &str, v: &str) -> Result<usize, String> {
    parse_num(v)
        .filter(|&n| n < 1024)
        .map(|n| n as usize)
        .ok_or_else(|| format!("bad {name} {v:?}"))
}

/// Parses the arguments after the program name; errors are one-line messages.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut out = Args::default();
    let mut it = args.into_iter();
    let mut rounds_seen = false;
    let (mut cpu, mut event_cpu) = (None, None);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--domid" => {
                let v = value("--domid")?;
                out.domid = parse_domid(&v)?;
            }
            "--serve" => {
                let v = value("--serve")?;
                if out.mode != Mode::Loopback {
                    return Err("--serve and --connect exclude each other".into());
                }
                out.mode = Mode::Serve {
                    remote_domain: parse_domid(&v)?,
                };
            }
            "--connect" => {
                let v = value("--connect")?;
                if out.mode != Mode::Loopback {
                    return Err("--serve and --connect exclude each other".into());
                }
                let (d, p) = v
                    .split_once(':')
                    .ok_or_else(|| format!("--connect wants DOMID:PORT, not {v:?}"))?;
                out.mode = Mode::Connect {
                    remote_domain: parse_domid(d)?,
                    remote_port: parse_num(p)
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|&n| n > 0)
                        .ok_or_else(|| format!("bad port {p:?}"))?,
                };
            }
            "--wait-ms" => {
                let v = value("--wait-ms")?;
                let ms = parse_num(&v)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad wait {v:?}"))?;
                out.first_wait = Duration::from_millis(ms);
            }
            "--timeout-ms" => {
                let v = value("--timeout-ms")?;
                let ms = parse_num(&v)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad timeout {v:?}"))?;
                out.timeout = Duration::from_millis(ms);
            }
            "--device" => out.device = value("--device")?,
            "--cpu" => cpu = Some(parse_cpu("--cpu", &value("--cpu")?)?),
            "--event-cpu" => event_cpu = Some(parse_cpu("--event-cpu", &value("--event-cpu")?)?),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s if !rounds_seen => {
                out.rounds = parse_num(s)
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| format!("bad round count {s:?}"))?;
                rounds_seen = true;
            }
            s => return Err(format!("unexpected argument {s}")),
        }
    }
    out.pin = match (cpu, event_cpu) {
        (Some(c), e) => Some((c, e.unwrap_or(c))),
        (None, Some(_)) => return Err("--event-cpu needs --cpu".into()),
        (None, None) => None,
    };
    Ok(Command::Run(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        assert_eq!(p(&[]), Ok(Command::Run(Args::default())));
    }

    #[test]
    fn all_options() {
        let Ok(Command::Run(a)) = p(&[
            "10000",
            "--domid",
            "0x7ff0",
            "--timeout-ms",
            "250",
            "--device",
            "/tmp/x",
        ]) else {
            panic!("parse failed");
        };
        assert_eq!(a.rounds, 10000);
        assert_eq!(a.domid, 0x7FF0);
        assert_eq!(a.timeout, Duration::from_millis(250));
        assert_eq!(a.device, "/tmp/x");
    }

    #[test]
    fn cpu_masks() {
        assert_eq!(cpu_mask(0), "00000001");
        assert_eq!(cpu_mask(5), "00000020");
        assert_eq!(cpu_mask(33), "00000002,00000000");
    }

    #[test]
    fn pinning() {
        let Ok(Command::Run(a)) = p(&["--cpu", "1"]) else {
            panic!("parse failed");
        };
        assert_eq!(a.pin, Some((1, 1)));
        let Ok(Command::Run(a)) = p(&["--event-cpu", "0", "--cpu", "1"]) else {
            panic!("parse failed");
        };
        assert_eq!(a.pin, Some((1, 0)));
        assert_eq!(
            p(&["--event-cpu", "0"]),
            Err("--event-cpu needs --cpu".into())
        );
        assert_eq!(p(&["--cpu", "x"]), Err("bad --cpu \"x\"".into()));
    }

    #[test]
    fn serve_and_connect() {
        let Ok(Command::Run(a)) = p(&["50", "--serve", "0", "--wait-ms", "1000"]) else {
            panic!("parse failed");
        };
        assert_eq!(a.mode, Mode::Serve { remote_domain: 0 });
        assert_eq!((a.rounds, a.first_wait), (50, Duration::from_millis(1000)));
        let Ok(Command::Run(a)) = p(&["--connect", "3:0x11"]) else {
            panic!("parse failed");
        };
        assert_eq!(
            a.mode,
            Mode::Connect {
                remote_domain: 3,
                remote_port: 17
            }
        );
        assert!(p(&["--connect", "3"]).is_err());
        assert!(p(&["--connect", "3:0"]).is_err());
        assert!(p(&["--connect", "0x10000:5"]).is_err());
        assert!(p(&["--serve", "0", "--connect", "0:5"]).is_err());
        assert!(p(&["--wait-ms", "0"]).is_err());
    }

    #[test]
    fn help() {
        assert_eq!(p(&["5", "--help"]), Ok(Command::Help));
    }

    #[test]
    fn errors() {
        assert!(p(&["0"]).is_err());
        assert!(p(&["x"]).is_err());
        assert!(p(&["1", "2"]).is_err());
        assert!(p(&["--domid"]).is_err());
        assert!(p(&["--domid", "0x10000"]).is_err());
        assert!(p(&["--timeout-ms", "0"]).is_err());
        assert!(p(&["--bogus"]).is_err());
    }
}
