//! `xenconsoled`: Dom0's console daemon (see the library's docs). Checks its environment
//! (log directory, `/dev/xen/privcmd`, xenstored) in the foreground so that a failure is
//! one line on the caller's terminal and a non-zero status, then daemonizes (unless `-i`),
//! writes its pid file and serves until SIGTERM/SIGINT (SIGHUP reopens the log files, for
//! log rotation). Once daemonized its messages go to
//! `/var/log/xen/xenconsoled.log`.
use clap::Parser;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::{Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::Path;
use xenconsoled::cli::{Cli, LogWhat};
use xenconsoled::daemon::{Daemon, Options};
use xenconsoled::xen::{XenHyp, XenStore};

/// Where messages go once daemonized.
const DAEMON_LOG: &str = "/var/log/xen/xenconsoled.log";

fn fail(msg: impl std::fmt::Display) -> ! {
    eprintln!("xenconsoled: {msg}");
    std::process::exit(1);
}

/// The pid file, open and exclusively locked for the daemon's life (the lock passes to
/// the daemonized child): a second xenconsoled finds it locked and stops.
type PidFile = Flock<std::fs::File>;

fn lock_pid_file(path: &Path) -> Result<PidFile, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Flock::lock(f, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        let pid = std::fs::read_to_string(path).unwrap_or_default();
        match e {
            nix::errno::Errno::EWOULDBLOCK => format!(
                "already running (pid {} in {}): stop it first (/etc/init.d/xencommons stop)",
                pid.trim(),
                path.display()
            ),
            e => format!("cannot lock {}: {e}", path.display()),
        }
    })
}

fn write_pid(f: &mut PidFile) -> std::io::Result<()> {
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    writeln!(&mut **f, "{}", std::process::id())
}

fn main() {
    let cli = Cli::parse();
    let log_guest = matches!(cli.log, LogWhat::Guest | LogWhat::All);
    let log_hv = matches!(cli.log, LogWhat::Hv | LogWhat::All);
    if (log_guest || log_hv)
        && let Err(e) = std::fs::create_dir_all(&cli.log_dir)
    {
        fail(format!(
            "cannot create the log directory {}: {e}",
            cli.log_dir.display()
        ));
    }
    let hyp = XenHyp::open()
        .unwrap_or_else(|e| fail(format!("{e} (xenconsoled runs in Dom0 on Xen/oxen)")));
    let client = xenstore::Client::open().unwrap_or_else(|e| {
        fail(format!(
            "cannot connect to xenstored: {e} (start it first: /etc/init.d/xencommons start)"
        ))
    });

    // Signals arrive through a signalfd polled by the event loop.
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    if let Err(e) = mask.thread_block() {
        fail(format!("blocking signals failed: {e}"));
    }
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .unwrap_or_else(|e| fail(format!("signalfd failed: {e}")));

    let mut pid_file = lock_pid_file(&cli.pid_file).unwrap_or_else(|e| fail(e));

    if !cli.interactive {
        if let Err(e) = nix::unistd::daemon(false, false) {
            fail(format!("daemonizing failed: {e}"));
        }
        if let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(DAEMON_LOG)
        {
            let _ = nix::unistd::dup2_stderr(&f);
        }
    }
    if let Err(e) = write_pid(&mut pid_file) {
        fail(format!("cannot write {}: {e}", cli.pid_file.display()));
    }

    let opts = Options {
        log_guest,
        log_dir: cli.log_dir.clone(),
        overflow: cli.overflow_data.into(),
        log_hv,
    };
    let mut d = Daemon::new(hyp, XenStore(client), opts);
    let status = match serve(&mut d, &sigfd, cli.verbose) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("xenconsoled: {e}: exiting");
            1
        }
    };
    let _ = std::fs::remove_file(&cli.pid_file); // still locked by us: it is ours
    drop(pid_file);
    std::process::exit(status);
}

/// The event loop, until SIGTERM or SIGINT (Ok) or a lost xenstored connection (Err).
fn serve(
    d: &mut Daemon<XenHyp, XenStore>,
    sigfd: &SignalFd,
    verbose: bool,
) -> xenconsoled::sys::SysResult<()> {
    d.start()?;
    if verbose {
        eprintln!("xenconsoled: serving (pid {})", std::process::id());
    }
    loop {
        if d.run_once(Some(sigfd.as_fd()), None)? {
            while let Ok(Some(si)) = sigfd.read_signal() {
                if si.ssi_signo == Signal::SIGHUP as u32 {
                    d.reopen_logs();
                } else {
                    if verbose {
                        eprintln!("xenconsoled: signal {}: exiting", si.ssi_signo);
                    }
                    return Ok(());
                }
            }
        }
    }
}
