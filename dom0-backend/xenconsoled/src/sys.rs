//! The outside worlds xenconsoled talks to, as small traits: the hypervisor ([`Hyp`]: the
//! domain list, foreign maps of ring pages, interdomain event channels) and xenstore
//! ([`Store`]). The daemon ([`crate::daemon`]) only sees these, so it runs against fakes on
//! the host (its tests) and against `xenctrl`/`xenstore` in Dom0 ([`crate::xen`]).
//!
//! Invariant: every error is a [`SysError`] whose text is one line naming what failed.

use crate::ring::RingMem;
use std::fmt;
use std::os::fd::AsFd;

/// A failed hypervisor, xenstore or OS operation (one line of text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysError(pub String);

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SysError {}

impl From<std::io::Error> for SysError {
    fn from(e: std::io::Error) -> Self {
        SysError(e.to_string())
    }
}

impl From<nix::Error> for SysError {
    fn from(e: nix::Error) -> Self {
        SysError(e.desc().to_string())
    }
}

/// Result of a [`Hyp`] or [`Store`] call.
pub type SysResult<T> = Result<T, SysError>;

/// What the daemon needs to know of a domain (Xen's `xc_dominfo_t` subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomState {
    /// Domain id.
    pub domid: u16,
    /// Being destroyed: its console is closed.
    pub dying: bool,
}

/// One bound interdomain event channel, readable (for poll) when an event is pending.
pub trait EventPort: AsFd {
    /// Consume pending events without blocking; true if there was at least one. The port is
    /// then masked until [`EventPort::unmask`].
    fn pending(&mut self) -> SysResult<bool>;
    /// Let further events through.
    fn unmask(&mut self) -> SysResult<()>;
    /// Notify the guest.
    fn notify(&mut self) -> SysResult<()>;
}

/// The hypervisor side.
pub trait Hyp {
    /// A mapped ring page (unmapped on drop).
    type Ring: RingMem;
    /// A bound event channel (unbound on drop).
    type Port: EventPort;
    /// Every domain that exists, in domid order.
    fn domains(&mut self) -> SysResult<Vec<DomState>>;
    /// Map page `gfn` of `domid`.
    fn map_ring(&mut self, domid: u16, gfn: u64) -> SysResult<Self::Ring>;
    /// Bind to `remote_port` of `domid`.
    fn bind(&mut self, domid: u16, remote_port: u32) -> SysResult<Self::Port>;
    /// Bind `VIRQ_CON_RING` (new text in the hypervisor's console ring).
    fn bind_con_ring(&mut self) -> SysResult<Self::Port>;
    /// Hypervisor console text from `*index` on (at most `max` bytes; empty when there is
    /// no more), advancing `*index` (sysctl readconsole, incremental).
    fn read_hv_console(&mut self, index: &mut u32, max: u32) -> SysResult<Vec<u8>>;
}

/// The xenstore side (a privileged connection).
pub trait Store: AsFd {
    /// The value at `path`, `None` if it does not exist.
    fn read(&mut self, path: &str) -> SysResult<Option<String>>;
    /// Write `value` at `path`.
    fn write(&mut self, path: &str, value: &str) -> SysResult<()>;
    /// Watch `path` with `token`.
    fn watch(&mut self, path: &str, token: &str) -> SysResult<()>;
    /// Remove a watch (a missing one is no error).
    fn unwatch(&mut self, path: &str, token: &str) -> SysResult<()>;
    /// A watch event `(path, token)` that is queued or readable without blocking.
    fn watch_event(&mut self) -> SysResult<Option<(String, String)>>;
}
