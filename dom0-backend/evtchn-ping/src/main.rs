//! `evtchn-ping`: event-channel ping-pong check for Dom0, or between two domains (see the
//! library docs).
//!
//! Prints `evtchn-ping: <N> round trips, median <x> us, mean <y> us, ...` and exits 0
//! (`--serve`: `evtchn-ping: serving port P for domain D` when the port is bound, then
//! `evtchn-ping: answered N events` at the end), or one `evtchn-ping: error: ...` line
//! saying what failed and what to check, and exits 1.

use std::process::ExitCode;

use evtchn_ping::cli::{self, Command};
use evtchn_ping::pingpong::{self, Config, PingError};

#[cfg(target_os = "linux")]
fn run(args: &cli::Args) -> Result<(), PingError> {
    // Pinned: this process on one CPU, the events of the ports bound below on
    // one CPU (the default affinity is put back when the run ends).
    let old_affinity = match args.pin {
        Some((cpu, event_cpu)) => {
            let old = evtchn_ping::linux::pin(cpu, event_cpu).map_err(|source| PingError::Pin {
                cpu,
                event_cpu,
                source,
            })?;
            println!("evtchn-ping: running on CPU {cpu}, events delivered to CPU {event_cpu}");
            Some(old)
        }
        None => None,
    };
    let r = run_pinned(args);
    if let Some(old) = old_affinity
        && let Err(e) = evtchn_ping::linux::unpin_events(&old)
    {
        eprintln!(
            "evtchn-ping: warning: could not restore /proc/irq/default_smp_affinity to {old}: {e}"
        );
    }
    r
}

#[cfg(target_os = "linux")]
fn run_pinned(args: &cli::Args) -> Result<(), PingError> {
    use evtchn_ping::cli::Mode;
    use evtchn_ping::device::MonotonicClock;
    use evtchn_ping::linux::LinuxEvtchn;

    let open = |path: &str| {
        LinuxEvtchn::open(std::path::Path::new(path)).map_err(|source| PingError::Open {
            path: path.to_string(),
            source,
        })
    };
    let mut a = open(&args.device)?;
    match args.mode {
        Mode::Loopback => {}
        Mode::Serve { remote_domain } => {
            let port = pingpong::listen(&mut a, remote_domain)?;
            println!("evtchn-ping: serving port {port} for domain {remote_domain}");
            pingpong::answer(
                &mut a,
                port,
                args.rounds,
                args.first_wait,
                args.timeout,
                &mut MonotonicClock::new(),
            )?;
            println!("evtchn-ping: answered {} events", args.rounds);
            return Ok(());
        }
        Mode::Connect {
            remote_domain,
            remote_port,
        } => {
            let (port, stats) = pingpong::ping_remote(
                &mut a,
                remote_domain,
                remote_port,
                args.rounds,
                args.timeout,
                &mut MonotonicClock::new(),
            )?;
            println!(
                "evtchn-ping: interdomain channel port {port} <-> domain {remote_domain} port {remote_port}"
            );
            println!("{}", stats.summary_line());
            return Ok(());
        }
    }
    let mut b = open(&args.device)?;
    let cfg = Config {
        rounds: args.rounds,
        remote_domain: args.domid,
        timeout: args.timeout,
    };
    let (ports, stats) = pingpong::run(&mut a, &mut b, &cfg, &mut MonotonicClock::new())?;
    println!(
        "evtchn-ping: loopback channel ports {} <-> {} (remote domain {:#x})",
        ports.a, ports.b, args.domid
    );
    println!("{}", stats.summary_line());
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn run(args: &cli::Args) -> Result<(), PingError> {
    Err(PingError::Open {
        path: args.device.clone(),
        source: std::io::Error::new(std::io::ErrorKind::Unsupported, "not Linux"),
    })
}

fn main() -> ExitCode {
    match cli::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            println!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Err(msg) => {
            eprintln!("evtchn-ping: error: {msg}\n{}", cli::USAGE);
            ExitCode::FAILURE
        }
        Ok(Command::Run(args)) => match run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("evtchn-ping: error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
