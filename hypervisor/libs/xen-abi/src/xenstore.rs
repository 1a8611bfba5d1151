//! xenstore wire protocol (`io/xs_wire.h`, Xen 4.17): message types, the
//! message header, error names, limits and the shared ring page layout.
//!
//! Facts only. Every message on the wire (Unix socket, `/dev/xen/xenbus`,
//! or a domain's ring) is a 16-byte little-endian [`XsdSockmsg`] header
//! followed by `len` payload bytes, `len <= XENSTORE_PAYLOAD_MAX`. Replies
//! echo `type`, `req_id` and `tx_id`; a failure is `XS_ERROR` with the
//! error's name and a NUL as payload (see [`XsError`]).

use core::mem::{offset_of, size_of};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XS_CONTROL` (was `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// `XS_DIRECTORY`: `path\0` → `child\0child\0...`.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`: `path\0` → value bytes.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`: `path\0` → `perm\0perm\0...`.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`: `path\0token\0` → `OK\0`, then one `XS_WATCH_EVENT`.
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`: `path\0token\0` → `OK\0`.
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`: `\0` → `<decimal id>\0`.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`: `T\0` (commit) or `F\0` (abort) → `OK\0`.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`: `domid\0gfn\0port\0` → `OK\0`.
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`: `domid\0` → `OK\0`.
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`: `domid\0` → `/local/domain/<domid>\0`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`: `path\0value` (value not NUL-terminated) → `OK\0`.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`: `path\0` → `OK\0`.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`: `path\0` (recursive) → `OK\0`.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`: `path\0perm\0perm\0...` → `OK\0`.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT` (server → client, `req_id = tx_id = 0`): `path\0token\0`.
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: payload `<ERRNAME>\0`.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`: `domid\0` → `T\0` / `F\0`.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`: `domid\0` → `OK\0`.
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`: `domid\0target\0` → `OK\0`.
pub const XS_SET_TARGET: u32 = 19;
/// Type 20 (`XS_RESTRICT`) was removed; it is not a valid type.
pub const XS_RESTRICT_REMOVED: u32 = 20;
/// `XS_RESET_WATCHES`: `\0` → `OK\0`.
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`: `path\0<offset>\0` → `<generation>\0child\0...\0` (+ `\0` at the end).
pub const XS_DIRECTORY_PART: u32 = 22;
/// Number of message types in 4.17 (`XS_TYPE_COUNT`).
pub const XS_TYPE_COUNT: u32 = 23;
/// Guaranteed-invalid type (`XS_INVALID`).
pub const XS_INVALID: u32 = 0xffff;

/// Size of the message header.
pub const XSD_SOCKMSG_SIZE: usize = 16;
/// Largest payload either way; a peer exceeding it is disconnected.
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Longest absolute path (an error, not a disconnect).
pub const XENSTORE_ABS_PATH_MAX: usize = 3072;
/// Longest relative path.
pub const XENSTORE_REL_PATH_MAX: usize = 2048;

/// Size of each of the two rings in the page.
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// Server feature: the `connection` field can request a reconnect.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// Server feature: the `error` field is present.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `connection`: the steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `connection`: reconnect in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `error`: none.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `error`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `error`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `error`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;

/// Index of the path string in a watch event (`XS_WATCH_PATH`).
pub const XS_WATCH_PATH: usize = 0;
/// Index of the token string in a watch event (`XS_WATCH_TOKEN`).
pub const XS_WATCH_TOKEN: usize = 1;

/// Masks a free-running ring index (`MASK_XENSTORE_IDX`).
pub const fn mask_xenstore_idx(idx: u32) -> u32 {
    idx & (XENSTORE_RING_SIZE - 1)
}

/// The symbolic name of a message type, for logs (`None` if not a 4.17 type).
pub const fn type_name(ty: u32) -> Option<&'static str> {
    Some(match ty {
        XS_CONTROL => "CONTROL",
        XS_DIRECTORY => "DIRECTORY",
        XS_READ => "READ",
        XS_GET_PERMS => "GET_PERMS",
        XS_WATCH => "WATCH",
        XS_UNWATCH => "UNWATCH",
        XS_TRANSACTION_START => "TRANSACTION_START",
        XS_TRANSACTION_END => "TRANSACTION_END",
        XS_INTRODUCE => "INTRODUCE",
        XS_RELEASE => "RELEASE",
        XS_GET_DOMAIN_PATH => "GET_DOMAIN_PATH",
        XS_WRITE => "WRITE",
        XS_MKDIR => "MKDIR",
        XS_RM => "RM",
        XS_SET_PERMS => "SET_PERMS",
        XS_WATCH_EVENT => "WATCH_EVENT",
        XS_ERROR => "ERROR",
        XS_IS_DOMAIN_INTRODUCED => "IS_DOMAIN_INTRODUCED",
        XS_RESUME => "RESUME",
        XS_SET_TARGET => "SET_TARGET",
        XS_RESET_WATCHES => "RESET_WATCHES",
        XS_DIRECTORY_PART => "DIRECTORY_PART",
        _ => return None,
    })
}

/// `struct xsd_sockmsg`: the 16-byte message header (little endian).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct XsdSockmsg {
    /// `XS_*`.
    pub ty: u32,
    /// Request identifier, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0 = none).
    pub tx_id: u32,
    /// Payload length.
    pub len: u32,
}

/// The errors xenstored sends (`xsd_errors[]`, in table order), with the
/// Linux/Xen errno values they stand for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum XsError {
    /// Invalid argument.
    EINVAL = 22,
    /// Permission denied.
    EACCES = 13,
    /// Exists.
    EEXIST = 17,
    /// Is a directory.
    EISDIR = 21,
    /// No such node.
    ENOENT = 2,
    /// Out of memory.
    ENOMEM = 12,
    /// Quota exceeded.
    ENOSPC = 28,
    /// I/O error.
    EIO = 5,
    /// Directory not empty.
    ENOTEMPTY = 39,
    /// Unsupported message type.
    ENOSYS = 38,
    /// Read-only.
    EROFS = 30,
    /// Busy (too many outstanding requests).
    EBUSY = 16,
    /// Transaction conflict: retry.
    EAGAIN = 11,
    /// Already connected / introduced.
    EISCONN = 106,
    /// Reply too large (DIRECTORY → use DIRECTORY_PART).
    E2BIG = 7,
    /// Operation not permitted.
    EPERM = 1,
}

impl XsError {
    /// All errors in `xsd_errors[]` order.
    pub const ALL: [XsError; 16] = [
        XsError::EINVAL,
        XsError::EACCES,
        XsError::EEXIST,
        XsError::EISDIR,
        XsError::ENOENT,
        XsError::ENOMEM,
        XsError::ENOSPC,
        XsError::EIO,
        XsError::ENOTEMPTY,
        XsError::ENOSYS,
        XsError::EROFS,
        XsError::EBUSY,
        XsError::EAGAIN,
        XsError::EISCONN,
        XsError::E2BIG,
        XsError::EPERM,
    ];

    /// The name sent on the wire (without the NUL).
    pub const fn name(self) -> &'static str {
        match self {
            XsError::EINVAL => "EINVAL",
            XsError::EACCES => "EACCES",
            XsError::EEXIST => "EEXIST",
            XsError::EISDIR => "EISDIR",
            XsError::ENOENT => "ENOENT",
            XsError::ENOMEM => "ENOMEM",
            XsError::ENOSPC => "ENOSPC",
            XsError::EIO => "EIO",
            XsError::ENOTEMPTY => "ENOTEMPTY",
            XsError::ENOSYS => "ENOSYS",
            XsError::EROFS => "EROFS",
            XsError::EBUSY => "EBUSY",
            XsError::EAGAIN => "EAGAIN",
            XsError::EISCONN => "EISCONN",
            XsError::E2BIG => "E2BIG",
            XsError::EPERM => "EPERM",
        }
    }

    /// The errno value.
    pub const fn errno(self) -> i32 {
        self as i32
    }

    /// Parses an error name as sent on the wire (NUL already stripped).
    /// Unknown names are `None`; libxenstore maps them to `EINVAL`.
    pub fn from_name(name: &[u8]) -> Option<XsError> {
        XsError::ALL
            .iter()
            .copied()
            .find(|e| e.name().as_bytes() == name)
    }

    /// The error with this errno value, if it is one of the table's.
    pub fn from_errno(errno: i32) -> Option<XsError> {
        XsError::ALL.iter().copied().find(|e| e.errno() == errno)
    }
}

/// `struct xenstore_domain_interface`: the shared ring page (first 2076
/// bytes of a 4 KiB page). Indexes are free-running; mask them with
/// [`mask_xenstore_idx`]. `prod - cons` never exceeds the ring size.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenstoreDomainInterface {
    /// Requests to the daemon (client produces).
    pub req: [u8; 1024],
    /// Replies and watch events (daemon produces).
    pub rsp: [u8; 1024],
    /// Daemon's consumer index of `req`.
    pub req_cons: u32,
    /// Client's producer index of `req`.
    pub req_prod: u32,
    /// Client's consumer index of `rsp`.
    pub rsp_cons: u32,
    /// Daemon's producer index of `rsp`.
    pub rsp_prod: u32,
    /// `XENSTORE_SERVER_FEATURE_*` bitmap, set by the daemon.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`.
    pub error: u32,
}

/// Byte offset of `req_cons` in the ring page.
pub const OFF_REQ_CONS: usize = offset_of!(XenstoreDomainInterface, req_cons);
/// Byte offset of `req_prod`.
pub const OFF_REQ_PROD: usize = offset_of!(XenstoreDomainInterface, req_prod);
/// Byte offset of `rsp_cons`.
pub const OFF_RSP_CONS: usize = offset_of!(XenstoreDomainInterface, rsp_cons);
/// Byte offset of `rsp_prod`.
pub const OFF_RSP_PROD: usize = offset_of!(XenstoreDomainInterface, rsp_prod);
/// Byte offset of `server_features`.
pub const OFF_SERVER_FEATURES: usize = offset_of!(XenstoreDomainInterface, server_features);
/// Byte offset of `connection`.
pub const OFF_CONNECTION: usize = offset_of!(XenstoreDomainInterface, connection);
/// Byte offset of `error`.
pub const OFF_ERROR: usize = offset_of!(XenstoreDomainInterface, error);
/// Byte offset of `req`.
pub const OFF_REQ: usize = offset_of!(XenstoreDomainInterface, req);
/// Byte offset of `rsp`.
pub const OFF_RSP: usize = offset_of!(XenstoreDomainInterface, rsp);

const _: () = assert!(size_of::<XsdSockmsg>() == XSD_SOCKMSG_SIZE);
const _: () = assert!(offset_of!(XsdSockmsg, ty) == 0);
const _: () = assert!(offset_of!(XsdSockmsg, req_id) == 4);
const _: () = assert!(offset_of!(XsdSockmsg, tx_id) == 8);
const _: () = assert!(offset_of!(XsdSockmsg, len) == 12);
const _: () = assert!(OFF_REQ == 0);
const _: () = assert!(OFF_RSP == 1024);
const _: () = assert!(OFF_REQ_CONS == 2048);
const _: () = assert!(OFF_REQ_PROD == 2052);
const _: () = assert!(OFF_RSP_CONS == 2056);
const _: () = assert!(OFF_RSP_PROD == 2060);
const _: () = assert!(OFF_SERVER_FEATURES == 2064);
const _: () = assert!(OFF_CONNECTION == 2068);
const _: () = assert!(OFF_ERROR == 2072);
const _: () = assert!(size_of::<XenstoreDomainInterface>() == 2076);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_round_trip() {
        for e in XsError::ALL {
            assert_eq!(XsError::from_name(e.name().as_bytes()), Some(e));
            assert_eq!(XsError::from_errno(e.errno()), Some(e));
        }
        assert_eq!(XsError::from_name(b"EWHAT"), None);
        assert_eq!(XsError::EISDIR.errno(), 21);
        assert_eq!(XsError::EROFS.errno(), 30);
    }

    #[test]
    fn type_numbers() {
        assert_eq!(XS_RESET_WATCHES, XS_SET_TARGET + 2);
        assert_eq!(XS_TYPE_COUNT, XS_DIRECTORY_PART + 1);
        assert_eq!(type_name(XS_RESTRICT_REMOVED), None);
        assert_eq!(type_name(XS_WATCH_EVENT), Some("WATCH_EVENT"));
        assert_eq!(mask_xenstore_idx(1025), 1);
    }

    #[test]
    fn header_is_little_endian_bytes() {
        let h = XsdSockmsg {
            ty: XS_READ,
            req_id: 7,
            tx_id: 0,
            len: 4,
        };
        assert_eq!(
            h.as_bytes(),
            &[2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]
        );
    }
}
