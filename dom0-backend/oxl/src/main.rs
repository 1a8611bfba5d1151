//! oxl, installed as `xl`: the toolstack CLI of oxen's Dom0, speaking Xen 4.17's toolstack ABI
//! and printing what xl 4.17 prints. It behaves the same whatever `argv[0]` is.
//!
//! Modules: [`cfg`] (xl.cfg), [`dt`] (guest device tree), [`build`] (domain builder),
//! [`cmd`] (verbs and the per-domain monitor), [`fmt`]/[`json`] (output formats),
//! [`console`] (xenconsole client), [`sys`] (the Hv/Store traits) with [`xen`]/[`xs`] (real
//! backends). Everything but `xen`, `xs`, `console::attach` and this file runs on the host
//! against fakes.

mod build;
mod cfg;
mod cmd;
mod console;
mod devices;
mod devspec;
mod dt;
#[cfg(test)]
mod fake;
mod fmt;
mod hostsys;
mod json;
mod sys;
mod xen;
mod xs;

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::cmd::{CreateEnv, Fail, Paths};
use crate::console::ConsoleType;
use crate::sys::{Hv, Store};

#[derive(Parser)]
#[command(
    name = "xl",
    about = "Xen management tool (oxen's oxl)",
    disable_version_flag = true
)]
struct Cli {
    /// Verbose: print what the toolstack does.
    #[arg(short = 'v', action = clap::ArgAction::Count, global = false)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a domain from a config file.
    Create {
        /// Connect to the console after creating the domain.
        #[arg(short = 'c')]
        console: bool,
        /// Leave the domain paused after it is created.
        #[arg(short = 'p')]
        paused: bool,
        /// Quiet.
        #[arg(short = 'q')]
        quiet: bool,
        /// Stay in the foreground: the monitor runs in this process.
        #[arg(short = 'F')]
        foreground: bool,
        /// Config file (xl.cfg format).
        config: String,
        /// key=value settings that override the file.
        overrides: Vec<String>,
    },
    /// List information about all or some domains.
    List {
        /// Output the configuration of each domain (JSON).
        #[arg(short = 'l', long = "long")]
        long: bool,
        /// Also the UUID and the shutdown reason.
        #[arg(short = 'v', long = "verbose")]
        verbose: bool,
        /// Domain name or id.
        domain: Option<String>,
    },
    /// Terminate a domain immediately.
    Destroy {
        /// Allow destroying domain 0 (refused anyway).
        #[arg(short = 'f')]
        force: bool,
        domain: String,
    },
    /// Issue a shutdown signal to a domain.
    Shutdown {
        /// All domains but Dom0.
        #[arg(short = 'a', long = "all")]
        all: bool,
        /// Wait for the domain(s) to shut down.
        #[arg(short = 'w', long = "wait")]
        wait: bool,
        /// Fall back to ACPI (not on Arm; accepted).
        #[arg(short = 'F')]
        fallback: bool,
        domain: Option<String>,
    },
    /// Issue a reboot signal to a domain.
    Reboot {
        #[arg(short = 'a', long = "all")]
        all: bool,
        #[arg(short = 'w', long = "wait")]
        wait: bool,
        #[arg(short = 'F')]
        fallback: bool,
        domain: Option<String>,
    },
    /// Pause execution of a domain.
    Pause { domain: String },
    /// Unpause a paused domain.
    Unpause { domain: String },
    /// Attach to a domain's console.
    Console {
        /// Console type.
        #[arg(short = 't', value_enum, default_value = "pv")]
        kind: ConsoleType,
        /// Console number.
        #[arg(short = 'n', default_value_t = 0)]
        num: u32,
        domain: String,
    },
    /// Get information about the host.
    Info {
        /// NUMA information (not available: prints the plain information).
        #[arg(short = 'n', long = "numa")]
        numa: bool,
        /// Print only this field's value.
        name: Option<String>,
    },
    /// List the vCPUs of all or some domains.
    #[command(name = "vcpu-list")]
    VcpuList { domains: Vec<String> },
    /// Set which CPUs a vCPU may run on (hard) and prefers (soft).
    #[command(name = "vcpu-pin")]
    VcpuPin {
        /// Undo a temporary pinning override (needs a single vCPU).
        #[arg(short = 'f', long = "force")]
        force: bool,
        /// Accepted for compatibility (no NUMA placement to ignore).
        #[arg(short = 'i', long = "ignore-global-affinity-masks")]
        ignore: bool,
        domain: String,
        /// A vCPU number or `all`.
        vcpu: String,
        /// Hard affinity: a CPU list, `all`, or `-` to keep it.
        hard: String,
        /// Soft affinity (same syntax).
        soft: Option<String>,
    },
    /// Get or set credit scheduler parameters.
    #[command(name = "sched-credit", allow_negative_numbers = true)]
    SchedCredit {
        /// The domain.
        #[arg(short = 'd', long = "domain")]
        domain: Option<String>,
        /// Weight (1..65535).
        #[arg(short = 'w', long = "weight")]
        weight: Option<i64>,
        /// Cap in percent of one CPU (0 = none).
        #[arg(short = 'c', long = "cap")]
        cap: Option<i64>,
        /// The cpupool.
        #[arg(short = 'p', long = "cpupool")]
        cpupool: Option<String>,
        /// Get or set the scheduler's own parameters.
        #[arg(short = 's', long = "schedparam")]
        schedparam: bool,
        /// Time slice, ms.
        #[arg(short = 't', long = "tslice_ms")]
        tslice: Option<i64>,
        /// Rate limit, µs.
        #[arg(short = 'r', long = "ratelimit_us")]
        ratelimit: Option<i64>,
        /// Migration delay, µs.
        #[arg(short = 'm', long = "migration_delay_us")]
        migr_delay: Option<i64>,
    },
    /// Attach a disk to a domain (`xl block-attach dom 'format=raw, vdev=xvdb, target=...'`).
    #[command(name = "block-attach")]
    BlockAttach {
        domain: String,
        /// Disk specification (its comma-separated parts may be separate arguments).
        #[arg(required = true)]
        spec: Vec<String>,
    },
    /// Detach a disk from a domain (by vdev name or device number).
    #[command(name = "block-detach")]
    BlockDetach { domain: String, dev: String },
    /// Attach a network interface to a domain (`xl network-attach dom mac=... bridge=...`).
    #[command(name = "network-attach")]
    NetworkAttach { domain: String, spec: Vec<String> },
    /// Detach a network interface from a domain (by index or MAC).
    #[command(name = "network-detach")]
    NetworkDetach { domain: String, dev: String },
    /// List the virtual block devices of domains.
    #[command(name = "block-list")]
    BlockList {
        #[arg(required = true)]
        domains: Vec<String>,
    },
    /// List the virtual network interfaces of domains.
    #[command(name = "network-list")]
    NetworkList {
        #[arg(required = true)]
        domains: Vec<String>,
    },
    /// Send debug keys to Xen.
    #[command(name = "debug-keys")]
    DebugKeys {
        /// The keys, handled one by one as if typed on the hypervisor's console.
        #[arg(value_name = "Keys")]
        keys: String,
        /// Ignored, as xl ignores arguments after the keys.
        #[arg(hide = true)]
        _rest: Vec<String>,
    },
    /// Read and/or clear Xen's message buffer (the hypervisor's console ring).
    Dmesg {
        /// Clear the buffer as well as printing it.
        #[arg(short = 'c', long = "clear")]
        clear: bool,
    },
    /// Convert a domain name to a domain id.
    Domid { name: String },
    /// Convert a domain id to a domain name.
    Domname { id: String },
    /// The per-domain monitor (started by `create`).
    #[command(name = "monitor-internal", hide = true)]
    Monitor { domid: u32 },
}

/// How long `shutdown -w` waits, after the domain has shut down, for its monitor to
/// destroy it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn open() -> Result<(xen::XenHv, xs::XsStore), Fail> {
    let hv = xen::XenHv::open().map_err(|e| Fail(format!("xl: {e}")))?;
    let store = xs::XsStore::open().map_err(|e| Fail(format!("xl: {e}")))?;
    Ok((hv, store))
}

fn random(buf: &mut [u8]) -> Result<(), String> {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .map_err(|e| format!("/dev/urandom: {e}"))
}

fn now() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:02}", d.as_secs(), d.subsec_millis() / 10)
}

fn uname() -> fmt::Uname {
    match nix::sys::utsname::uname() {
        Ok(u) => fmt::Uname {
            nodename: u.nodename().to_string_lossy().into_owned(),
            release: u.release().to_string_lossy().into_owned(),
            version: u.version().to_string_lossy().into_owned(),
            machine: u.machine().to_string_lossy().into_owned(),
        },
        Err(_) => fmt::Uname {
            nodename: String::new(),
            release: String::new(),
            version: String::new(),
            machine: String::new(),
        },
    }
}

/// Starts the monitor of `domid` as a detached process logging to `/var/log/xen/xl-<name>.log`.
fn spawn_monitor(paths: &Paths, domid: u32, name: &str) -> Result<(), Fail> {
    let fail = |what: String| {
        Fail(format!(
            "xl: starting the monitor of domain {domid}: {what}"
        ))
    };
    let exe = std::env::current_exe().map_err(|e| fail(format!("finding oxl itself: {e}")))?;
    std::fs::create_dir_all(&paths.log)
        .map_err(|e| fail(format!("{}: {e}", paths.log.display())))?;
    let logp = paths.log.join(format!("xl-{name}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&logp)
        .map_err(|e| fail(format!("{}: {e}", logp.display())))?;
    let log2 = log.try_clone().map_err(|e| fail(e.to_string()))?;
    std::process::Command::new(exe)
        .arg("monitor-internal")
        .arg(domid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP blocked and readable through a signalfd, so a pending one can
/// be taken (consumed) at a safe point; unblocked again on drop.
struct HeldSignals {
    mask: SigSet,
    fd: SignalFd,
}

impl HeldSignals {
    fn hold() -> Option<HeldSignals> {
        let mut mask = SigSet::empty();
        for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            mask.add(s);
        }
        mask.thread_block().ok()?;
        match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => Some(HeldSignals { mask, fd }),
            Err(_) => {
                let _ = mask.thread_unblock();
                None
            }
        }
    }

    /// The first signal that arrived while held, if any (all pending ones are consumed).
    fn take(&mut self) -> Option<Signal> {
        let mut first = None;
        while let Ok(Some(info)) = self.fd.read_signal() {
            first = first.or_else(|| Signal::try_from(info.ssi_signo as i32).ok());
        }
        first
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        let _ = self.mask.thread_unblock();
    }
}

fn console_of(
    hv: &dyn Hv,
    xs: &dyn Store,
    domid: u32,
    kind: ConsoleType,
    num: u32,
) -> Result<(), Fail> {
    let path = console::tty_path(domid, kind, num);
    let tty = console::wait_tty(hv, xs, domid, &path, Duration::from_secs(30))
        .map_err(|e| Fail(format!("xl: console: {e}")))?;
    console::attach(&tty).map_err(|e| Fail(format!("xl: console {tty}: {e}")))
}

fn run(cli: Cli) -> Result<(), Fail> {
    let paths = Paths::default();
    let mut out = std::io::stdout().lock();
    match cli.cmd {
        Cmd::Create {
            console,
            paused,
            quiet,
            foreground,
            config,
            overrides,
        } => {
            // OXL_TIMING=1: every progress line (and the "@phase" marks, each printed when
            // its phase ends) with CLOCK_MONOTONIC seconds since start and since the last line.
            let timing = std::env::var_os("OXL_TIMING").is_some_and(|v| v != "0");
            let t0 = std::time::Instant::now();
            let mut last = t0;
            let verbose = cli.verbose > 0;
            let mut progress = |l: &str| {
                if timing {
                    let now = std::time::Instant::now();
                    eprintln!(
                        "xl: [{:9.6} +{:9.6}] {}",
                        (now - t0).as_secs_f64(),
                        (now - last).as_secs_f64(),
                        l.strip_prefix('@').unwrap_or(l)
                    );
                    last = now;
                } else if verbose && !l.starts_with('@') {
                    eprintln!("xl: {l}");
                }
            };
            if !quiet {
                eprintln!("Parsing config from {config}");
            }
            let loaded = cmd::load_config(&config, &overrides)?;
            progress("@config parse");
            let (hv, xs) = open()?;
            progress("@open privcmd + xenstore");
            let mut rnd = random;
            let mut env = CreateEnv {
                paths: &paths,
                random: &mut rnd,
                now: &now,
                console_timeout: Duration::from_secs(30),
                host: &hostsys::LinuxHost,
                device_timeout: devices::DEVICE_TIMEOUT,
            };
            // Ctrl-C (or SIGTERM/SIGHUP) while the domain is built is held until the builder
            // has finished, then undoes the domain instead of leaving it half-made.
            let mut held = HeldSignals::hold();
            let name = &loaded.cfg.name;
            let interrupted_by = |sig: Signal| {
                Fail(format!(
                    "xl: creating domain \"{name}\": interrupted by {sig:?}: the domain was destroyed"
                ))
            };
            // Before the unpause: a signal taken while building undoes the domain; the
            // monitor is started (the domain is destroyed if it cannot be).
            let mut before_unpause = |domid: u32| -> Result<(), Fail> {
                if let Some(sig) = held.as_mut().and_then(HeldSignals::take) {
                    return Err(interrupted_by(sig));
                }
                if !foreground {
                    spawn_monitor(&paths, domid, name)
                        .map_err(|e| Fail(format!("{}: the domain was destroyed", e.0)))?;
                }
                Ok(())
            };
            let created = cmd::create(
                &hv,
                &xs,
                &loaded,
                paused,
                &mut env,
                &mut progress,
                &mut before_unpause,
            );
            let interrupted = held.as_mut().and_then(HeldSignals::take);
            drop(held);
            let domid = created?;
            if let Some(sig) = interrupted {
                let _ = cmd::destroy_domid(&hv, &xs, &hostsys::LinuxHost, &paths, domid);
                return Err(interrupted_by(sig));
            }
            if console {
                console_of(&hv, &xs, domid, ConsoleType::Pv, 0)?;
            }
            if foreground {
                let mut err = std::io::stderr();
                cmd::monitor(&hv, &xs, domid, &loaded, &mut env, &mut err)?;
            }
            Ok(())
        }
        Cmd::Monitor { domid } => {
            // Detach from the creator's session so its shell's exit does not end us.
            let _ = nix::unistd::setsid();
            let text = cmd::saved_config(&paths, domid)
                .ok_or_else(|| Fail(format!("xl: no saved configuration for domain {domid}")))?;
            let src = format!("{}/userdata-d.{domid}.xl", paths.lib.display());
            let settings =
                cfg::Settings::parse(&src, &text, &[]).map_err(|e| Fail(e.to_string()))?;
            let loaded = cmd::Loaded {
                cfg: settings.domain_config().map_err(|e| Fail(e.to_string()))?,
                text,
            };
            let (hv, xs) = open()?;
            let mut rnd = random;
            let mut env = CreateEnv {
                paths: &paths,
                random: &mut rnd,
                now: &now,
                console_timeout: Duration::from_secs(30),
                host: &hostsys::LinuxHost,
                device_timeout: devices::DEVICE_TIMEOUT,
            };
            let mut err = std::io::stderr();
            cmd::monitor(&hv, &xs, domid, &loaded, &mut env, &mut err)
        }
        Cmd::List {
            long,
            verbose,
            domain,
        } => {
            let (hv, xs) = open()?;
            cmd::list(&hv, &xs, &paths, long, verbose, domain.as_deref(), &mut out)
        }
        Cmd::Destroy { force: _, domain } => {
            let (hv, xs) = open()?;
            cmd::destroy(&hv, &xs, &hostsys::LinuxHost, &paths, &domain)
        }
        Cmd::Shutdown {
            all,
            wait,
            fallback: _,
            domain,
        } => {
            let (hv, xs) = open()?;
            cmd::shutdown(
                &hv,
                &xs,
                domain.as_deref(),
                all,
                wait.then_some(SHUTDOWN_GRACE),
                false,
                &mut std::io::stderr(),
            )
        }
        Cmd::Reboot {
            all,
            wait,
            fallback: _,
            domain,
        } => {
            let (hv, xs) = open()?;
            cmd::shutdown(
                &hv,
                &xs,
                domain.as_deref(),
                all,
                wait.then_some(SHUTDOWN_GRACE),
                true,
                &mut std::io::stderr(),
            )
        }
        Cmd::Pause { domain } => {
            let (hv, xs) = open()?;
            cmd::pause(&hv, &xs, &domain, false)
        }
        Cmd::Unpause { domain } => {
            let (hv, xs) = open()?;
            cmd::pause(&hv, &xs, &domain, true)
        }
        Cmd::Console { kind, num, domain } => {
            let (hv, xs) = open()?;
            let d = cmd::find_domain(&hv, &xs, &domain)?;
            console_of(&hv, &xs, d, kind, num)
        }
        Cmd::Info { numa: _, name } => {
            let hv = xen::XenHv::open().map_err(|e| Fail(format!("xl: {e}")))?;
            cmd::info(&hv, &uname(), name.as_deref(), &mut out)
        }
        Cmd::VcpuList { domains } => {
            let (hv, xs) = open()?;
            cmd::vcpu_list(&hv, &xs, &domains, &mut out)
        }
        Cmd::VcpuPin {
            force,
            ignore: _,
            domain,
            vcpu,
            hard,
            soft,
        } => {
            let (hv, xs) = open()?;
            cmd::vcpu_pin(&hv, &xs, force, &domain, &vcpu, &hard, soft.as_deref())
        }
        Cmd::SchedCredit {
            domain,
            weight,
            cap,
            cpupool,
            schedparam,
            tslice,
            ratelimit,
            migr_delay,
        } => {
            let (hv, xs) = open()?;
            let o = cmd::SchedCreditOpts {
                domain,
                weight,
                cap,
                cpupool,
                schedparam,
                tslice,
                ratelimit,
                migr_delay,
            };
            cmd::sched_credit(&hv, &xs, &o, &mut out)
        }
        Cmd::BlockAttach { domain, spec } => {
            let (hv, xs) = open()?;
            cmd::block_attach(&hv, &xs, &hostsys::LinuxHost, &domain, &spec.join(","))
        }
        Cmd::BlockDetach { domain, dev } => {
            let (hv, xs) = open()?;
            cmd::detach(&hv, &xs, &hostsys::LinuxHost, &domain, "vbd", &dev)
        }
        Cmd::NetworkAttach { domain, spec } => {
            let (hv, xs) = open()?;
            let mut rnd = random;
            cmd::network_attach(
                &hv,
                &xs,
                &hostsys::LinuxHost,
                &domain,
                &spec.join(","),
                &mut rnd,
            )
        }
        Cmd::NetworkDetach { domain, dev } => {
            let (hv, xs) = open()?;
            cmd::detach(&hv, &xs, &hostsys::LinuxHost, &domain, "vif", &dev)
        }
        Cmd::BlockList { domains } => {
            let (hv, xs) = open()?;
            cmd::device_list(&hv, &xs, &domains, false, &mut out)
        }
        Cmd::NetworkList { domains } => {
            let (hv, xs) = open()?;
            cmd::device_list(&hv, &xs, &domains, true, &mut out)
        }
        Cmd::DebugKeys { keys, _rest: _ } => {
            let hv = xen::XenHv::open().map_err(|e| Fail(format!("xl: {e}")))?;
            cmd::debug_keys(&hv, &keys)
        }
        Cmd::Dmesg { clear } => {
            let hv = xen::XenHv::open().map_err(|e| Fail(format!("xl: {e}")))?;
            cmd::dmesg(&hv, clear, &mut out)
        }
        Cmd::Domid { name } => {
            let (hv, xs) = open()?;
            cmd::domid(&hv, &xs, &name, &mut out)
        }
        Cmd::Domname { id } => {
            let (hv, xs) = open()?;
            cmd::domname(&hv, &xs, &id, &mut out)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = run(cli);
    let _ = std::io::stdout().flush();
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(msg)) => {
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_signals_are_taken_not_delivered() {
        let mut held = HeldSignals::hold().expect("signalfd");
        assert_eq!(held.take(), None);
        // Thread-directed, so only this (blocking) thread sees it.
        nix::sys::signal::raise(Signal::SIGTERM).unwrap();
        nix::sys::signal::raise(Signal::SIGHUP).unwrap();
        let got = held.take();
        assert!(
            matches!(got, Some(Signal::SIGTERM) | Some(Signal::SIGHUP)),
            "{got:?}"
        );
        assert_eq!(held.take(), None);
        drop(held);
    }

    #[test]
    fn cli_parses_xl_usage() {
        let c = Cli::try_parse_from([
            "xl",
            "-vvv",
            "create",
            "-c",
            "-p",
            "/etc/xen/domu.cfg",
            "memory=512",
        ])
        .unwrap();
        assert_eq!(c.verbose, 3);
        assert!(
            matches!(c.cmd, Cmd::Create { console: true, paused: true, ref overrides, .. } if overrides == &["memory=512"])
        );
        let c = Cli::try_parse_from(["/usr/sbin/xl", "list", "-l", "domu"]).unwrap();
        assert!(
            matches!(c.cmd, Cmd::List { long: true, verbose: false, domain: Some(ref d) } if d == "domu")
        );
        let c = Cli::try_parse_from(["oxl", "console", "-t", "pv", "-n", "0", "1"]).unwrap();
        assert!(matches!(
            c.cmd,
            Cmd::Console {
                kind: ConsoleType::Pv,
                num: 0,
                ..
            }
        ));
        assert!(Cli::try_parse_from(["xl", "vcpu-list", "a", "b"]).is_ok());
        assert!(Cli::try_parse_from(["xl", "shutdown", "-w", "-a"]).is_ok());
        assert!(Cli::try_parse_from(["xl", "bogus"]).is_err());
        let c = Cli::try_parse_from(["xl", "debug-keys", "xh"]).unwrap();
        assert!(matches!(c.cmd, Cmd::DebugKeys { ref keys, .. } if keys == "xh"));
        assert!(Cli::try_parse_from(["xl", "debug-keys"]).is_err());
        assert!(Cli::try_parse_from(["xl", "debug-keys", "x", "extra"]).is_ok());
        let c = Cli::try_parse_from(["xl", "dmesg"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Dmesg { clear: false }));
        let c = Cli::try_parse_from(["xl", "dmesg", "-c"]).unwrap();
        assert!(matches!(c.cmd, Cmd::Dmesg { clear: true }));
        assert!(Cli::try_parse_from(["xl", "dmesg", "--clear"]).is_ok());
        assert!(Cli::try_parse_from(["xl", "dmesg", "extra"]).is_err());
    }
}
