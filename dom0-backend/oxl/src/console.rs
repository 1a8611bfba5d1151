//! `xl console`: the xenconsole client. Finds the console's pty in xenstore (`console/tty` for
//! the PV console 0, `device/console/N/tty` for others, `serial/0/tty` for `-t serial`), waits
//! for xenconsoled to publish it, then copies between the terminal and the pty with the
//! terminal in raw mode. Ctrl-] (0x1d) typed on the terminal ends the session.
//!
//! Invariants: the terminal's settings are restored on every exit path (a guard restores
//! them on drop); the escape byte is never forwarded to the guest; bytes typed before it in
//! the same read are.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use crate::sys::{Hv, Store, SysError, SysResult};

/// The escape character (Ctrl-]).
pub const ESCAPE: u8 = 0x1d;

/// The console kinds `-t` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConsoleType {
    Pv,
    Serial,
}

/// The xenstore node holding the pty path.
pub fn tty_path(domid: u32, kind: ConsoleType, num: u32) -> String {
    match (kind, num) {
        (ConsoleType::Serial, n) => format!("/local/domain/{domid}/serial/{n}/tty"),
        (ConsoleType::Pv, 0) => format!("/local/domain/{domid}/console/tty"),
        (ConsoleType::Pv, n) => format!("/local/domain/{domid}/device/console/{n}/tty"),
    }
}

/// Splits input typed by the user at the escape byte: (bytes to forward, escape seen).
pub fn split_escape(buf: &[u8]) -> (&[u8], bool) {
    match buf.iter().position(|&b| b == ESCAPE) {
        Some(i) => (&buf[..i], true),
        None => (buf, false),
    }
}

/// Waits for the pty path to be published (xenconsoled writes it), while the domain exists.
pub fn wait_tty(
    hv: &dyn Hv,
    xs: &dyn Store,
    domid: u32,
    path: &str,
    timeout: Duration,
) -> SysResult<String> {
    let token = format!("oxl-console-{domid}");
    xs.watch(path, &token)?;
    let deadline = std::time::Instant::now() + timeout;
    let r = loop {
        if let Some(t) = xs.read(0, path)?
            && !t.is_empty()
        {
            break Ok(t);
        }
        if hv.domain_info(domid)?.is_none_or(|i| i.dying()) {
            break Err(SysError::msg(format!(
                "domain {domid} went away before its console appeared"
            )));
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            break Err(SysError::msg(format!(
                "{path} is not set: is xenconsoled running?"
            )));
        }
        xs.wait_watch(Some((deadline - now).min(Duration::from_secs(1))))?;
    };
    let _ = xs.unwatch(path, &token);
    r
}

/// Restores the terminal settings when dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    /// Puts `fd` in raw mode if it is a terminal.
    fn enter(fd: BorrowedFd<'a>) -> Option<RawMode<'a>> {
        if !nix::unistd::isatty(fd).unwrap_or(false) {
            return None;
        }
        let saved = tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(fd, SetArg::TCSAFLUSH, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Opens the pty and copies both ways until Ctrl-] or the pty closes.
pub fn attach(tty: &str) -> io::Result<()> {
    let pty: File = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOCTTY)
        .open(tty)?;
    // Raw mode on the pty too, as xenconsole does: no echo or line editing on our side.
    if let Ok(mut t) = tcgetattr(pty.as_fd()) {
        cfmakeraw(&mut t);
        let _ = tcsetattr(pty.as_fd(), SetArg::TCSANOW, &t);
    }
    let stdin = io::stdin();
    let _raw = RawMode::enter(stdin.as_fd());
    let mut stdout = io::stdout().lock();
    let mut buf = [0u8; 4096];
    loop {
        let mut fds = [
            PollFd::new(stdin.as_fd(), PollFlags::POLLIN),
            PollFd::new(pty.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
        if ready(1) {
            match nix::unistd::read(pty.as_fd(), &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EIO) => return Ok(()),
                Ok(n) => {
                    stdout.write_all(&buf[..n])?;
                    stdout.flush()?;
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if ready(0) {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => {
                    let (fwd, esc) = split_escape(&buf[..n]);
                    write_all_fd(pty.as_fd(), fwd)?;
                    if esc {
                        return Ok(());
                    }
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

fn write_all_fd(fd: BorrowedFd<'_>, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        match nix::unistd::write(fd, b) {
            Ok(n) => b = &b[n..],
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHv, FakeStore};

    #[test]
    fn paths() {
        assert_eq!(
            tty_path(1, ConsoleType::Pv, 0),
            "/local/domain/1/console/tty"
        );
        assert_eq!(
            tty_path(1, ConsoleType::Pv, 2),
            "/local/domain/1/device/console/2/tty"
        );
        assert_eq!(
            tty_path(3, ConsoleType::Serial, 0),
            "/local/domain/3/serial/0/tty"
        );
    }

    #[test]
    fn escape() {
        assert_eq!(split_escape(b"ls\r"), (&b"ls\r"[..], false));
        assert_eq!(split_escape(b"\x1d"), (&b""[..], true));
        assert_eq!(split_escape(b"ab\x1dcd"), (&b"ab"[..], true));
    }

    #[test]
    fn waits_for_the_tty() {
        let hv = FakeHv::new();
        let xs = FakeStore::new();
        xs.write(0, "/local/domain/0/console/tty", "").unwrap();
        xs.0.borrow_mut().console_tty = Some("/dev/pts/7".into());
        assert_eq!(
            wait_tty(
                &hv,
                &xs,
                0,
                "/local/domain/0/console/tty",
                Duration::from_secs(1)
            )
            .unwrap(),
            "/dev/pts/7"
        );
        let e = wait_tty(
            &hv,
            &xs,
            9,
            "/local/domain/9/console/tty",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(e.msg, "domain 9 went away before its console appeared");
    }

    #[test]
    fn copies_through_a_pty() {
        // The pty's other side plays the guest: what we write shows up there. attach() itself
        // needs the process's stdin, so only the open path is exercised here.
        let pt = nix::pty::openpty(None, None).unwrap();
        let name = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&pt.slave)
        ))
        .unwrap();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(&name)
            .unwrap();
        write_all_fd(f.as_fd(), b"hello").unwrap();
        let mut b = [0u8; 16];
        let n = nix::unistd::read(pt.master.as_fd(), &mut b).unwrap();
        assert_eq!(&b[..n], b"hello");
    }
}
