//! The pty of one console: the master (non-blocking, read and written by the daemon) and
//! the slave, kept open by the daemon in raw mode so that the master never sees a hang-up
//! when a `xl console` client closes it, and so that nothing echoes guest output back
//! into the guest's input (as Xen's xenconsoled does).

use crate::sys::SysResult;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

/// An open pty pair; closed on drop.
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
    _slave: OwnedFd,
    path: String,
}

impl Pty {
    /// A new pty in raw mode with a non-blocking master.
    pub fn open() -> SysResult<Pty> {
        let r = nix::pty::openpty(None, None)?;
        let mut t = tcgetattr(&r.slave)?;
        cfmakeraw(&mut t);
        tcsetattr(&r.slave, SetArg::TCSANOW, &t)?;
        let flags = OFlag::from_bits_truncate(fcntl(&r.master, FcntlArg::F_GETFL)?);
        fcntl(
            &r.master,
            FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC),
        )?;
        fcntl(&r.master, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
        fcntl(&r.slave, FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
        let path = nix::unistd::ttyname(&r.slave)?
            .to_string_lossy()
            .into_owned();
        Ok(Pty {
            master: r.master,
            _slave: r.slave,
            path,
        })
    }

    /// The slave's path (`/dev/pts/N`), written to `console/tty`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Read what a client typed (non-blocking: `Ok(0)` with EAGAIN mapped to `None`).
    pub fn read(&self, buf: &mut [u8]) -> nix::Result<usize> {
        nix::unistd::read(&self.master, buf)
    }

    /// Write guest output (non-blocking).
    pub fn write(&self, data: &[u8]) -> nix::Result<usize> {
        nix::unistd::write(&self.master, data)
    }
}

impl AsFd for Pty {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn raw_pty_passes_bytes_both_ways_without_echo() {
        let pty = Pty::open().unwrap();
        assert!(pty.path().starts_with("/dev/pts/"), "{}", pty.path());
        let mut client = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(pty.path())
            .unwrap();
        assert_eq!(pty.write(b"out\r\n").unwrap(), 5);
        let mut buf = [0u8; 5];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"out\r\n", "raw: no \\n -> \\r\\n translation");
        client.write_all(b"typed").unwrap();
        // The tty layer hands input to the master asynchronously: wait until readable.
        let mut fds = [nix::poll::PollFd::new(
            pty.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        assert_eq!(nix::poll::poll(&mut fds, 5000u16).unwrap(), 1);
        let mut got = [0u8; 16];
        let n = pty.read(&mut got).unwrap();
        assert_eq!(&got[..n], b"typed");
        // nothing echoed back to the client, nothing more on the master
        assert_eq!(pty.read(&mut got), Err(nix::errno::Errno::EAGAIN));
    }
}
