//! xenstore permissions: ACL entries (`n0`, `r1`, `w2`, `b3`), their wire
//! form, and C xenstored's `perm_for_conn` rule.
//!
//! An ACL is never empty: entry 0 names the owner and gives the default
//! access of every domain not listed later; later entries grant access to
//! one domain each. Privileged callers (Dom0) and the owner get everything.

use xen_abi::xenstore::XsError;

/// The access an ACL entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PermKind {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl PermKind {
    /// The letter used on the wire and by the tools.
    pub fn letter(self) -> char {
        match self {
            PermKind::None => 'n',
            PermKind::Read => 'r',
            PermKind::Write => 'w',
            PermKind::Both => 'b',
        }
    }

    /// Parses a letter.
    pub fn from_letter(c: u8) -> Option<PermKind> {
        Some(match c {
            b'n' => PermKind::None,
            b'r' => PermKind::Read,
            b'w' => PermKind::Write,
            b'b' => PermKind::Both,
            _ => return None,
        })
    }

    fn access(self) -> Access {
        match self {
            PermKind::None => Access::NONE,
            PermKind::Read => Access::READ,
            PermKind::Write => Access::WRITE,
            PermKind::Both => Access {
                read: true,
                write: true,
                owner: false,
            },
        }
    }
}

/// One ACL entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Perm {
    /// Domain id.
    pub id: u16,
    /// What it may do.
    pub kind: PermKind,
}

impl Perm {
    /// An entry.
    pub fn new(id: u16, kind: PermKind) -> Perm {
        Perm { id, kind }
    }

    /// Parses `"r1"` etc. The id is a C `strtol(.., 0)` number (decimal,
    /// `0x` hex or `0` octal) that must fit a domid.
    pub fn parse(s: &str) -> Result<Perm, XsError> {
        let b = s.as_bytes();
        let kind = b
            .first()
            .and_then(|&c| PermKind::from_letter(c))
            .ok_or(XsError::EINVAL)?;
        let num = &s[1..];
        let id = parse_c_uint(num).ok_or(XsError::EINVAL)?;
        let id = u16::try_from(id).map_err(|_| XsError::EINVAL)?;
        Ok(Perm { id, kind })
    }
}

impl core::fmt::Display for Perm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}{}", self.kind.letter(), self.id)
    }
}

/// Parses a `strtol(s, &end, 0)` number that must use the whole string.
fn parse_c_uint(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// The access a caller has to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Access {
    /// May read.
    pub read: bool,
    /// May write.
    pub write: bool,
    /// Owns the node (may change its ACL).
    pub owner: bool,
}

impl Access {
    /// Nothing.
    pub const NONE: Access = Access {
        read: false,
        write: false,
        owner: false,
    };
    /// Read only.
    pub const READ: Access = Access {
        read: true,
        write: false,
        owner: false,
    };
    /// Write only.
    pub const WRITE: Access = Access {
        read: false,
        write: true,
        owner: false,
    };
    /// Everything.
    pub const ALL: Access = Access {
        read: true,
        write: true,
        owner: true,
    };

    /// Whether every right in `want` is present.
    pub fn covers(self, want: Access) -> bool {
        (self.read || !want.read) && (self.write || !want.write) && (self.owner || !want.owner)
    }

    /// Whether any right in `want` is present.
    pub fn any_of(self, want: Access) -> bool {
        (self.read && want.read) || (self.write && want.write) || (self.owner && want.owner)
    }
}

/// Who is asking: the connection's domain, whether it is privileged (Dom0
/// kernel, Dom0 tools over the socket) and its `SET_TARGET` target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Domain id of the connection (0 for sockets).
    pub domid: u16,
    /// Privileged connections bypass ACLs and quotas.
    pub privileged: bool,
    /// Domain this one acts for (device model stubdoms).
    pub target: Option<u16>,
}

impl Caller {
    /// A privileged (Dom0) caller.
    pub fn dom0() -> Caller {
        Caller {
            domid: 0,
            privileged: true,
            target: None,
        }
    }

    /// An unprivileged domain.
    pub fn domu(domid: u16) -> Caller {
        Caller {
            domid,
            privileged: false,
            target: None,
        }
    }

    fn is(&self, id: u16) -> bool {
        id == self.domid || self.target == Some(id)
    }

    /// C `perm_for_conn`.
    pub fn access(&self, perms: &[Perm]) -> Access {
        let Some(owner) = perms.first() else {
            return if self.privileged {
                Access::ALL
            } else {
                Access::NONE
            };
        };
        if self.privileged || self.is(owner.id) {
            return Access::ALL;
        }
        for p in &perms[1..] {
            if self.is(p.id) {
                return p.kind.access();
            }
        }
        owner.kind.access()
    }
}

/// The wire form of an ACL: `"n0\0r1\0"`.
pub fn to_wire(perms: &[Perm]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in perms {
        out.extend_from_slice(p.to_string().as_bytes());
        out.push(0);
    }
    out
}

/// Parses NUL-separated ACL strings (bytes after the last NUL ignored).
/// An empty list or any malformed entry is `EINVAL`.
pub fn from_wire(parts: &[&[u8]]) -> Result<Vec<Perm>, XsError> {
    if parts.is_empty() {
        return Err(XsError::EINVAL);
    }
    parts
        .iter()
        .map(|p| {
            core::str::from_utf8(p)
                .map_err(|_| XsError::EINVAL)
                .and_then(Perm::parse)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_format() {
        assert_eq!(Perm::parse("r1"), Ok(Perm::new(1, PermKind::Read)));
        assert_eq!(Perm::parse("b0x10"), Ok(Perm::new(16, PermKind::Both)));
        assert_eq!(Perm::parse("n010"), Ok(Perm::new(8, PermKind::None)));
        assert_eq!(Perm::parse("x1"), Err(XsError::EINVAL));
        assert_eq!(Perm::parse("r"), Err(XsError::EINVAL));
        assert_eq!(Perm::parse("r1a"), Err(XsError::EINVAL));
        assert_eq!(Perm::parse("r70000"), Err(XsError::EINVAL));
        assert_eq!(Perm::parse(""), Err(XsError::EINVAL));
        assert_eq!(Perm::new(3, PermKind::Write).to_string(), "w3");
        let acl = [Perm::new(0, PermKind::None), Perm::new(1, PermKind::Read)];
        assert_eq!(to_wire(&acl), b"n0\0r1\0");
        assert_eq!(from_wire(&[b"n0", b"r1"]), Ok(acl.to_vec()));
        assert_eq!(from_wire(&[]), Err(XsError::EINVAL));
    }

    #[test]
    fn perm_for_conn_rules() {
        let acl = [
            Perm::new(0, PermKind::None),
            Perm::new(1, PermKind::Read),
            Perm::new(2, PermKind::Both),
        ];
        assert_eq!(Caller::dom0().access(&acl), Access::ALL);
        assert_eq!(Caller::domu(1).access(&acl), Access::READ);
        assert!(Caller::domu(2).access(&acl).covers(Access {
            read: true,
            write: true,
            owner: false
        }));
        assert!(!Caller::domu(2).access(&acl).owner);
        assert_eq!(Caller::domu(3).access(&acl), Access::NONE);
        let owned = [Perm::new(3, PermKind::None)];
        assert_eq!(Caller::domu(3).access(&owned), Access::ALL);
        let open = [Perm::new(0, PermKind::Both)];
        assert!(Caller::domu(9).access(&open).covers(Access {
            read: true,
            write: true,
            owner: false
        }));
        let mut t = Caller::domu(5);
        t.target = Some(1);
        assert_eq!(t.access(&acl), Access::READ);
    }
}
