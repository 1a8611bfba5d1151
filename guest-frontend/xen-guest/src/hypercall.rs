//! Xen hypercalls behind a trait, and typed wrappers for the few a small
//! guest needs (`console_io`, `xen_version`, `sched_op`).
//!
//! The arm64 register contract (`xen/include/public/arch-arm.h`): the call
//! number goes in x16, up to five arguments in x0..x4, the result comes back
//! in x0 (negative = `-errno`). The wrappers own the argument encoding; a
//! [`Hypercall`] implementation only performs the trap.
//!
//! Why the trait method is `unsafe`: a hypercall may read or write guest
//! memory through its pointer arguments, so an arbitrary argument vector can
//! corrupt memory. The wrappers here only ever pass pointers to live Rust
//! objects that outlive the call, which makes them safe to call.

use core::fmt;

use xen_abi::Errno;
use xen_abi::hypercall::xenver;
use xen_abi::hypercall::{CONSOLE_IO, SCHED_OP, ShutdownReason, XEN_VERSION, consoleio, schedop};

/// A way to issue Xen hypercalls: `hvc #0xEA1` on hardware, a recorder in
/// tests.
pub trait Hypercall {
    /// Issue hypercall `nr` with arguments x0..x4 and return x0.
    ///
    /// # Safety
    ///
    /// Every argument the hypercall `nr` interprets as a pointer must be the
    /// caller's virtual address of memory valid for the accesses (reads and
    /// writes) that hypercall performs, for the duration of the call.
    #[allow(unsafe_code)]
    unsafe fn hypercall(&mut self, nr: u64, args: [u64; 5]) -> i64;
}

/// Most bytes handed to one `CONSOLEIO_write` call; longer writes are split.
pub const CONSOLE_CHUNK: usize = 128;

/// Turn a hypercall return value into a result. Negative values are errors;
/// one that is not a known [`Errno`] is reported as [`Errno::EIO`].
fn check(ret: i64) -> Result<u64, Errno> {
    if ret < 0 {
        Err(Errno::from_ret(ret).unwrap_or(Errno::EIO))
    } else {
        Ok(ret.unsigned_abs())
    }
}

/// Write up to [`CONSOLE_CHUNK`] bytes of `bytes` to the hypervisor console
/// (`console_io(CONSOLEIO_write, count, buf)`, `buf` a guest virtual address)
/// and return how many were written.
///
/// Xen returns 0 once the whole buffer is consumed; a positive return is
/// taken as a partial count (clamped to what was offered). An empty slice
/// makes no hypercall.
pub fn console_write<H: Hypercall>(h: &mut H, bytes: &[u8]) -> Result<usize, Errno> {
    let chunk = &bytes[..bytes.len().min(CONSOLE_CHUNK)];
    if chunk.is_empty() {
        return Ok(0);
    }
    let args = [
        consoleio::WRITE,
        chunk.len() as u64,
        chunk.as_ptr() as u64,
        0,
        0,
    ];
    // SAFETY: CONSOLEIO_write only reads `count` bytes at `buf`, and `chunk`
    // is a live borrowed slice of exactly that length for the whole call.
    #[allow(unsafe_code)]
    let ret = unsafe { h.hypercall(CONSOLE_IO, args) };
    match check(ret)? {
        0 => Ok(chunk.len()),
        n => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(chunk.len())),
    }
}

/// The hypervisor's version, as `XENVER_version` reports it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct XenVersion {
    /// Major version (4 for oxen, which speaks Xen 4.17).
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

impl fmt::Display for XenVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// `xen_version(XENVER_version, NULL)`: `(major << 16) | minor`.
pub fn xen_version<H: Hypercall>(h: &mut H) -> Result<XenVersion, Errno> {
    // SAFETY: XENVER_version takes no pointer (the second argument is NULL).
    #[allow(unsafe_code)]
    let ret = unsafe { h.hypercall(XEN_VERSION, [xenver::VERSION, 0, 0, 0, 0]) };
    let v = check(ret)?;
    Ok(XenVersion {
        major: ((v >> 16) & 0xffff) as u32,
        minor: (v & 0xffff) as u32,
    })
}

/// `struct sched_shutdown` from `xen/include/public/sched.h`.
#[repr(C)]
struct SchedShutdown {
    reason: u32,
}

/// The `SHUTDOWN_*` value of a reason.
const fn reason_raw(reason: ShutdownReason) -> u32 {
    match reason {
        ShutdownReason::Poweroff => schedop::SHUTDOWN_POWEROFF,
        ShutdownReason::Reboot => schedop::SHUTDOWN_REBOOT,
        ShutdownReason::Suspend => schedop::SHUTDOWN_SUSPEND,
        ShutdownReason::Crash => schedop::SHUTDOWN_CRASH,
        ShutdownReason::Watchdog => schedop::SHUTDOWN_WATCHDOG,
        ShutdownReason::SoftReset => schedop::SHUTDOWN_SOFT_RESET,
    }
}

/// `sched_op(SCHEDOP_shutdown, &sched_shutdown { reason })`. On a real
/// hypervisor this does not return for poweroff/crash; a return is either
/// `Ok` from a hypervisor that defers the shutdown or the error it gave.
pub fn sched_shutdown<H: Hypercall>(h: &mut H, reason: ShutdownReason) -> Result<(), Errno> {
    let arg = SchedShutdown {
        reason: reason_raw(reason),
    };
    let ptr = &raw const arg as u64;
    // SAFETY: SCHEDOP_shutdown reads one `struct sched_shutdown` at `ptr`,
    // which points at `arg`, alive until after the call.
    #[allow(unsafe_code)]
    let ret = unsafe { h.hypercall(SCHED_OP, [schedop::SHUTDOWN, ptr, 0, 0, 0]) };
    check(ret).map(|_| ())
}

/// `sched_op(SCHEDOP_yield, NULL)`: give up the CPU.
pub fn sched_yield<H: Hypercall>(h: &mut H) -> Result<(), Errno> {
    // SAFETY: SCHEDOP_yield takes no pointer.
    #[allow(unsafe_code)]
    let ret = unsafe { h.hypercall(SCHED_OP, [schedop::YIELD, 0, 0, 0, 0]) };
    check(ret).map(|_| ())
}

/// A line-buffered [`fmt::Write`] over `CONSOLEIO_write`.
///
/// Text is collected in a [`CONSOLE_CHUNK`]-byte buffer and written with one
/// hypercall per line (or per full buffer), so a line assembled from several
/// `write!` pieces reaches the hypervisor's per-domain line buffer whole.
/// Whatever is left is flushed by [`Console::flush`] or on drop.
pub struct Console<'h, H: Hypercall> {
    hc: &'h mut H,
    buf: [u8; CONSOLE_CHUNK],
    len: usize,
    error: Option<Errno>,
}

impl<'h, H: Hypercall> Console<'h, H> {
    /// A console writing through `hc`.
    pub fn new(hc: &'h mut H) -> Self {
        Self {
            hc,
            buf: [0; CONSOLE_CHUNK],
            len: 0,
            error: None,
        }
    }

    /// Write out everything buffered. On error the buffer is dropped (so a
    /// broken console cannot wedge the writer) and the error is returned.
    pub fn flush(&mut self) -> Result<(), Errno> {
        let mut done = 0;
        let result = loop {
            if done >= self.len {
                break Ok(());
            }
            match console_write(self.hc, &self.buf[done..self.len]) {
                Ok(0) => break Err(Errno::EIO),
                Ok(n) => done += n,
                Err(e) => break Err(e),
            }
        };
        self.len = 0;
        if let Err(e) = result {
            self.error = Some(e);
        }
        result
    }

    /// The last error a hypercall returned, if any (`fmt::Error` carries no
    /// detail).
    pub fn last_error(&self) -> Option<Errno> {
        self.error
    }
}

impl<H: Hypercall> fmt::Write for Console<'_, H> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut failed = false;
        for &b in s.as_bytes() {
            self.buf[self.len] = b;
            self.len += 1;
            if (b == b'\n' || self.len == CONSOLE_CHUNK) && self.flush().is_err() {
                failed = true;
            }
        }
        if failed { Err(fmt::Error) } else { Ok(()) }
    }
}

impl<H: Hypercall> Drop for Console<'_, H> {
    fn drop(&mut self) {
        // Nothing to report to from a destructor; the error is the console's.
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    /// One recorded hypercall, with the memory its pointer argument named
    /// copied out while the call was in progress.
    #[derive(Debug, Clone, PartialEq)]
    struct Call {
        nr: u64,
        args: [u64; 5],
        data: Vec<u8>,
    }

    /// A fake hypervisor: records calls and answers from a script.
    #[derive(Default)]
    struct Fake {
        calls: Vec<Call>,
        /// Return values to hand out in order; 0 once exhausted.
        rets: Vec<i64>,
    }

    impl Hypercall for Fake {
        #[allow(unsafe_code)]
        unsafe fn hypercall(&mut self, nr: u64, args: [u64; 5]) -> i64 {
            let data = match (nr, args[0]) {
                (CONSOLE_IO, consoleio::WRITE) => {
                    // SAFETY: the contract of `hypercall` guarantees that
                    // `args[2]` points at `args[1]` readable bytes now.
                    unsafe { std::slice::from_raw_parts(args[2] as *const u8, args[1] as usize) }
                        .to_vec()
                }
                (SCHED_OP, schedop::SHUTDOWN) => {
                    // SAFETY: as above, `args[1]` points at a live
                    // `struct sched_shutdown` (a `u32`, suitably aligned).
                    let r = unsafe { *(args[1] as *const u32) };
                    r.to_le_bytes().to_vec()
                }
                _ => Vec::new(),
            };
            self.calls.push(Call { nr, args, data });
            if self.rets.is_empty() {
                0
            } else {
                self.rets.remove(0)
            }
        }
    }

    #[test]
    fn console_write_encodes_registers() {
        let mut f = Fake::default();
        assert_eq!(console_write(&mut f, b"hi\n"), Ok(3));
        assert_eq!(f.calls.len(), 1);
        let c = &f.calls[0];
        assert_eq!(c.nr, 18);
        assert_eq!(c.args[0], 0, "CONSOLEIO_write");
        assert_eq!(c.args[1], 3);
        assert_eq!(c.data, b"hi\n");
    }

    #[test]
    fn console_write_limits_and_errors() {
        let mut f = Fake::default();
        assert_eq!(console_write(&mut f, &[]), Ok(0));
        assert!(f.calls.is_empty(), "empty write makes no hypercall");

        let big = [b'x'; CONSOLE_CHUNK + 10];
        assert_eq!(console_write(&mut f, &big), Ok(CONSOLE_CHUNK));
        assert_eq!(f.calls[0].args[1], CONSOLE_CHUNK as u64);

        f.rets = vec![-38, -1000, 2, 99];
        assert_eq!(console_write(&mut f, b"abc"), Err(Errno::ENOSYS));
        assert_eq!(console_write(&mut f, b"abc"), Err(Errno::EIO));
        assert_eq!(console_write(&mut f, b"abc"), Ok(2), "partial count");
        assert_eq!(console_write(&mut f, b"abc"), Ok(3), "clamped");
    }

    #[test]
    fn console_is_line_buffered() {
        let mut f = Fake::default();
        {
            let mut c = Console::new(&mut f);
            let name = "hello";
            write!(c, "TEST-GUEST {name} ").unwrap();
            writeln!(c, "start").unwrap();
            write!(c, "tick {}", 7).unwrap();
        }
        let lines: Vec<_> = f.calls.iter().map(|c| c.data.clone()).collect();
        assert_eq!(
            lines,
            vec![b"TEST-GUEST hello start\n".to_vec(), b"tick 7".to_vec()],
            "one hypercall per line, remainder flushed on drop"
        );
    }

    #[test]
    fn console_splits_long_text_and_resumes_partial_writes() {
        let mut f = Fake::default();
        let text: String = (0..300)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        {
            let mut c = Console::new(&mut f);
            c.write_str(&text).unwrap();
            c.flush().unwrap();
        }
        assert!(f.calls.iter().all(|c| c.data.len() <= CONSOLE_CHUNK));
        let joined: Vec<u8> = f.calls.iter().flat_map(|c| c.data.clone()).collect();
        assert_eq!(joined, text.as_bytes());

        // The hypervisor takes 2 bytes, then the rest.
        let mut f = Fake {
            rets: vec![2, 0],
            ..Fake::default()
        };
        {
            let mut c = Console::new(&mut f);
            c.write_str("abcde\n").unwrap();
        }
        assert_eq!(f.calls[0].data, b"abcde\n");
        assert_eq!(f.calls[1].data, b"cde\n");
        assert_eq!(f.calls.len(), 2);
    }

    #[test]
    fn console_reports_errors_and_recovers() {
        let mut f = Fake {
            rets: vec![-14],
            ..Fake::default()
        };
        let mut c = Console::new(&mut f);
        assert!(writeln!(c, "lost").is_err());
        assert_eq!(c.last_error(), Some(Errno::EFAULT));
        writeln!(c, "ok").unwrap();
        drop(c);
        assert_eq!(f.calls.last().unwrap().data, b"ok\n");
    }

    #[test]
    fn shutdown_passes_pointer_to_reason() {
        let mut f = Fake::default();
        sched_shutdown(&mut f, ShutdownReason::Crash).unwrap();
        sched_shutdown(&mut f, ShutdownReason::Poweroff).unwrap();
        assert_eq!(f.calls[0].nr, 29);
        assert_eq!(f.calls[0].args[0], 2, "SCHEDOP_shutdown");
        assert_eq!(f.calls[0].data, 3u32.to_le_bytes(), "SHUTDOWN_crash");
        assert_eq!(f.calls[1].data, 0u32.to_le_bytes(), "SHUTDOWN_poweroff");
        for r in [
            ShutdownReason::Reboot,
            ShutdownReason::Suspend,
            ShutdownReason::Watchdog,
            ShutdownReason::SoftReset,
        ] {
            assert_eq!(ShutdownReason::from_raw(reason_raw(r)), Some(r));
        }
        f.rets = vec![-22];
        assert_eq!(
            sched_shutdown(&mut f, ShutdownReason::Crash),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn yield_and_version() {
        let mut f = Fake {
            rets: vec![0, (4 << 16) | 17, -38],
            ..Fake::default()
        };
        sched_yield(&mut f).unwrap();
        assert_eq!((f.calls[0].nr, f.calls[0].args), (29, [0; 5]));
        let v = xen_version(&mut f).unwrap();
        assert_eq!(
            v,
            XenVersion {
                major: 4,
                minor: 17
            }
        );
        assert_eq!(v.to_string(), "4.17");
        assert_eq!((f.calls[1].nr, f.calls[1].args), (17, [0; 5]));
        assert_eq!(xen_version(&mut f), Err(Errno::ENOSYS));
    }
}
