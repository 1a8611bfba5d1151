//! [`Store`] over the real xenstore client (`xenstore::Client`: the daemon's socket, else
//! `/dev/xen/xenbus`).
//!
//! Invariants: ENOENT on read is `Ok(None)`; EAGAIN at transaction end is `Ok(false)`; every
//! other error names the xenstore operation and path.

use std::cell::RefCell;
use std::time::Duration;

use crate::sys::{Perm, PermKind, Store, SysError, SysResult};

pub struct XsStore(RefCell<xenstore::Client>);

fn err(op: &str, path: &str, e: xenstore::Error) -> SysError {
    SysError {
        errno: Some(e.errno()),
        msg: format!("xenstore {op} {path}: {e}"),
    }
}

impl XsStore {
    pub fn open() -> SysResult<XsStore> {
        xenstore::Client::open()
            .map(|c| XsStore(RefCell::new(c)))
            .map_err(|e| SysError {
                errno: Some(e.errno()),
                msg: format!("cannot connect to xenstored: {e} (is xenstored running?)"),
            })
    }
}

fn to_xs(p: &Perm) -> SysResult<xenstore::Perm> {
    let id =
        u16::try_from(p.id).map_err(|_| SysError::msg(format!("domid {} out of range", p.id)))?;
    let kind = match p.kind {
        PermKind::None => xenstore::PermKind::None,
        PermKind::Read => xenstore::PermKind::Read,
    };
    Ok(xenstore::Perm::new(id, kind))
}

impl Store for XsStore {
    fn read(&self, tx: u32, path: &str) -> SysResult<Option<String>> {
        match self.0.borrow_mut().read(tx, path) {
            Ok(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
            Err(e) if e.errno() == crate::sys::ENOENT => Ok(None),
            Err(e) => Err(err("read", path, e)),
        }
    }
    fn write(&self, tx: u32, path: &str, value: &str) -> SysResult<()> {
        self.0
            .borrow_mut()
            .write(tx, path, value.as_bytes())
            .map_err(|e| err("write", path, e))
    }
    fn rm(&self, tx: u32, path: &str) -> SysResult<()> {
        match self.0.borrow_mut().rm(tx, path) {
            Ok(()) => Ok(()),
            Err(e) if e.errno() == crate::sys::ENOENT => Ok(()),
            Err(e) => Err(err("rm", path, e)),
        }
    }
    fn directory(&self, tx: u32, path: &str) -> SysResult<Vec<String>> {
        match self.0.borrow_mut().directory(tx, path) {
            Ok(v) => Ok(v),
            Err(e) if e.errno() == crate::sys::ENOENT => Ok(Vec::new()),
            Err(e) => Err(err("directory", path, e)),
        }
    }
    fn set_perms(&self, tx: u32, path: &str, perms: &[Perm]) -> SysResult<()> {
        let acl = perms.iter().map(to_xs).collect::<SysResult<Vec<_>>>()?;
        self.0
            .borrow_mut()
            .set_perms(tx, path, &acl)
            .map_err(|e| err("set_perms", path, e))
    }
    fn transaction_start(&self) -> SysResult<u32> {
        self.0
            .borrow_mut()
            .transaction_start()
            .map_err(|e| err("transaction_start", "", e))
    }
    fn transaction_end(&self, tx: u32, commit: bool) -> SysResult<bool> {
        match self.0.borrow_mut().transaction_end(tx, commit) {
            Ok(()) => Ok(true),
            Err(xenstore::Error::Again) => Ok(false),
            Err(e) => Err(err("transaction_end", "", e)),
        }
    }
    fn introduce(&self, domid: u32, gfn: u64, port: u32) -> SysResult<()> {
        self.0
            .borrow_mut()
            .introduce(domid, gfn, port)
            .map_err(|e| err("introduce", &domid.to_string(), e))
    }
    fn watch(&self, path: &str, token: &str) -> SysResult<()> {
        self.0
            .borrow_mut()
            .watch(path, token)
            .map_err(|e| err("watch", path, e))
    }
    fn unwatch(&self, path: &str, token: &str) -> SysResult<()> {
        self.0
            .borrow_mut()
            .unwatch(path, token)
            .map_err(|e| err("unwatch", path, e))
    }
    fn wait_watch(&self, timeout: Option<Duration>) -> SysResult<Option<(String, String)>> {
        self.0
            .borrow_mut()
            .read_watch_timeout(timeout)
            .map_err(|e| err("read_watch", "", e))
    }
}
