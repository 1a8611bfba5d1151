//! Xen's errno values (`xen/include/public/errno.h`). Hypercalls return
//! `-(errno)` in x0. The numbering matches Linux for every value Linux checks.

/// A Xen error code. `as_ret()` gives the value a hypercall returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(i64)]
pub enum Errno {
    /// Operation not permitted.
    EPERM = 1,
    /// No such file or directory.
    ENOENT = 2,
    /// No such process (no such domain).
    ESRCH = 3,
    /// Interrupted.
    EINTR = 4,
    /// I/O error.
    EIO = 5,
    /// No such device or address.
    ENXIO = 6,
    /// Argument list too long.
    E2BIG = 7,
    /// Bad file descriptor (bad port).
    EBADF = 9,
    /// Try again.
    EAGAIN = 11,
    /// Out of memory.
    ENOMEM = 12,
    /// Permission denied.
    EACCES = 13,
    /// Bad address.
    EFAULT = 14,
    /// Device or resource busy.
    EBUSY = 16,
    /// Exists.
    EEXIST = 17,
    /// No such device.
    ENODEV = 19,
    /// Invalid argument.
    EINVAL = 22,
    /// No space left.
    ENOSPC = 28,
    /// Result out of range.
    ERANGE = 34,
    /// Function not implemented.
    ENOSYS = 38,
    /// Not empty.
    ENOTEMPTY = 39,
    /// No data available.
    ENODATA = 61,
    /// Timer expired.
    ETIME = 62,
    /// Operation not supported.
    EOPNOTSUPP = 95,
    /// Already connected.
    EISCONN = 106,
    /// Not connected.
    ENOTCONN = 107,
}

impl Errno {
    /// The value placed in x0: the negated error number.
    pub const fn as_ret(self) -> i64 {
        -(self as i64)
    }

    /// The symbolic name, for log lines.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ENOENT => "ENOENT",
            Errno::ESRCH => "ESRCH",
            Errno::EINTR => "EINTR",
            Errno::EIO => "EIO",
            Errno::ENXIO => "ENXIO",
            Errno::E2BIG => "E2BIG",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::ENOMEM => "ENOMEM",
            Errno::EACCES => "EACCES",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::ENODEV => "ENODEV",
            Errno::EINVAL => "EINVAL",
            Errno::ENOSPC => "ENOSPC",
            Errno::ERANGE => "ERANGE",
            Errno::ENOSYS => "ENOSYS",
            Errno::ENOTEMPTY => "ENOTEMPTY",
            Errno::ENODATA => "ENODATA",
            Errno::ETIME => "ETIME",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::EISCONN => "EISCONN",
            Errno::ENOTCONN => "ENOTCONN",
        }
    }

    /// Decode a hypercall return value (negative errno) back into an `Errno`.
    pub fn from_ret(ret: i64) -> Option<Errno> {
        const ALL: [Errno; 25] = [
            Errno::EPERM,
            Errno::ENOENT,
            Errno::ESRCH,
            Errno::EINTR,
            Errno::EIO,
            Errno::ENXIO,
            Errno::E2BIG,
            Errno::EBADF,
            Errno::EAGAIN,
            Errno::ENOMEM,
            Errno::EACCES,
            Errno::EFAULT,
            Errno::EBUSY,
            Errno::EEXIST,
            Errno::ENODEV,
            Errno::EINVAL,
            Errno::ENOSPC,
            Errno::ERANGE,
            Errno::ENOSYS,
            Errno::ENOTEMPTY,
            Errno::ENODATA,
            Errno::ETIME,
            Errno::EOPNOTSUPP,
            Errno::EISCONN,
            Errno::ENOTCONN,
        ];
        ALL.iter().copied().find(|e| e.as_ret() == ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        assert_eq!(Errno::ENOSYS.as_ret(), -38);
        assert_eq!(Errno::from_ret(-38), Some(Errno::ENOSYS));
        assert_eq!(Errno::from_ret(-22), Some(Errno::EINVAL));
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::EFAULT.name(), "EFAULT");
    }
}
