//! [`Error`]: what a failed xenctrl call reports.
//!
//! A hypercall that the hypervisor refused is [`Error::Xen`] with the Xen
//! errno (Xen's numbers equal Linux's on arm64, so the errno Linux' privcmd
//! hands back maps one to one). A failing system call (open, mmap, ioctl of
//! a non-hypercall device) is [`Error::Os`]. `Display` is one line naming the
//! operation, e.g. `domctl createdomain: ENOMEM (out of memory)`.

use std::fmt;
use std::io;

use xen_abi::Errno;

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// An error of a xenctrl operation.
#[derive(Debug)]
pub enum Error {
    /// The hypervisor returned `-errno` for the hypercall `op`.
    Xen {
        /// The operation, e.g. `"domctl createdomain"`.
        op: &'static str,
        /// The Xen error.
        errno: Errno,
    },
    /// A system call failed (device missing, mmap refused, ...).
    Os {
        /// The operation, e.g. `"open /dev/xen/privcmd"`.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// One page of a foreign mapping could not be mapped.
    ForeignPage {
        /// The foreign domain.
        domid: u16,
        /// The GFN that failed.
        gfn: u64,
        /// The error of that page.
        errno: Errno,
    },
    /// The hypervisor answered with something that violates the ABI (e.g.
    /// more list entries than asked for), or the caller passed an argument
    /// that cannot be encoded.
    Invalid {
        /// The operation.
        op: &'static str,
        /// What was wrong.
        what: String,
    },
}

impl Error {
    /// The Xen errno, if this is a hypercall or foreign-page failure.
    pub fn xen_errno(&self) -> Option<Errno> {
        match self {
            Error::Xen { errno, .. } | Error::ForeignPage { errno, .. } => Some(*errno),
            _ => None,
        }
    }

    /// The raw errno of any variant that has one (Xen errnos equal Linux's
    /// on arm64): for callers that map errors into their own types.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Xen { errno, .. } | Error::ForeignPage { errno, .. } => Some(*errno as i32),
            Error::Os { source, .. } => source.raw_os_error(),
            Error::Invalid { .. } => None,
        }
    }

    /// An error from an OS errno: a Xen errno when it is one Xen defines and
    /// the call was a hypercall, else an OS error.
    pub(crate) fn from_hypercall_errno(op: &'static str, raw: i32) -> Self {
        match Errno::from_ret(-i64::from(raw)) {
            Some(errno) => Error::Xen { op, errno },
            None => Error::Os {
                op,
                source: io::Error::from_raw_os_error(raw),
            },
        }
    }

    /// An [`Error::Os`] from an `io::Error`.
    pub(crate) fn os(op: &'static str, source: io::Error) -> Self {
        Error::Os { op, source }
    }

    /// An [`Error::Invalid`].
    pub(crate) fn invalid(op: &'static str, what: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            what: what.into(),
        }
    }
}

/// Short description of a Xen errno, in the words of `strerror`.
pub fn errno_description(e: Errno) -> &'static str {
    match e {
        Errno::EPERM => "operation not permitted",
        Errno::ENOENT => "no such file or directory",
        Errno::ESRCH => "no such domain",
        Errno::EINTR => "interrupted",
        Errno::EIO => "I/O error",
        Errno::ENXIO => "no such device or address",
        Errno::E2BIG => "argument list too long",
        Errno::EBADF => "bad file descriptor",
        Errno::EAGAIN => "try again",
        Errno::ENOMEM => "out of memory",
        Errno::EACCES => "permission denied",
        Errno::EFAULT => "bad address",
        Errno::EBUSY => "device or resource busy",
        Errno::EEXIST => "already exists",
        Errno::ENODEV => "no such device",
        Errno::EINVAL => "invalid argument",
        Errno::ENOSPC => "no space left",
        Errno::ERANGE => "result out of range",
        Errno::ENOSYS => "function not implemented",
        Errno::ENOTEMPTY => "not empty",
        Errno::ENODATA => "no data available",
        Errno::ETIME => "timer expired",
        Errno::EOPNOTSUPP => "operation not supported",
        Errno::EISCONN => "already connected",
        Errno::ENOTCONN => "not connected",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xen { op, errno } => {
                write!(f, "{op}: {} ({})", errno.name(), errno_description(*errno))
            }
            Error::Os { op, source } => write!(f, "{op}: {source}"),
            Error::ForeignPage { domid, gfn, errno } => write!(
                f,
                "map page {gfn:#x} of domain {domid}: {} ({})",
                errno.name(),
                errno_description(*errno)
            ),
            Error::Invalid { op, what } => write!(f, "{op}: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_op_and_errno() {
        let e = Error::Xen {
            op: "domctl createdomain",
            errno: Errno::ENOMEM,
        };
        assert_eq!(e.to_string(), "domctl createdomain: ENOMEM (out of memory)");
        let e = Error::ForeignPage {
            domid: 3,
            gfn: 0x39001,
            errno: Errno::EINVAL,
        };
        assert_eq!(
            e.to_string(),
            "map page 0x39001 of domain 3: EINVAL (invalid argument)"
        );
    }

    #[test]
    fn linux_errno_maps_to_xen_errno() {
        // Linux arm64 errno numbers equal Xen's.
        let e = Error::from_hypercall_errno("domctl getdomaininfo", 3);
        assert_eq!(e.xen_errno(), Some(Errno::ESRCH));
        let e = Error::from_hypercall_errno("sysctl physinfo", 13);
        assert_eq!(e.xen_errno(), Some(Errno::EACCES));
        let e = Error::from_hypercall_errno("x", 38);
        assert_eq!(e.xen_errno(), Some(Errno::ENOSYS));
        // ENOTTY (25) is not a Xen errno: an OS error (e.g. not a privcmd fd).
        let e = Error::from_hypercall_errno("privcmd hypercall", 25);
        assert!(matches!(e, Error::Os { .. }));
        assert_eq!(e.errno(), Some(25));
        assert_eq!(Error::from_hypercall_errno("x", 12).errno(), Some(12));
        assert_eq!(Error::invalid("x", "y").errno(), None);
        assert!(e.to_string().starts_with("privcmd hypercall: "));
    }
}
