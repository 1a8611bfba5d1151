//! Grant tables, version 1.
//!
//! A [`GrantTable`] is one domain's grant state, in two halves:
//!
//! * **granting side**: how many 4 KiB frames the table has (`nr_frames`,
//!   grown by `XENMEM_add_to_physmap(XENMAPSPACE_grant_table, idx)` up to
//!   `max_frames`), at which GFN the guest mapped each frame (the
//!   hypervisor owns the pages themselves), and the *active* entries: grants
//!   of this domain that another domain currently holds (pin counts, the
//!   holder, the frame captured at the first pin);
//! * **mapping side**: the maptrack — one handle per grant this domain has
//!   mapped, so `unmap_grant_ref(handle)` knows which grant it releases.
//!
//! The entries themselves (`grant_entry_v1`: flags, domid, frame) are in
//! the granting guest's memory, reached through [`GrantEntries`]. Xen's
//! protocol with the granting guest: while any mapping (or a copy in
//! flight) exists the hypervisor keeps `GTF_reading` set, and
//! `GTF_writing` while a writable one exists; it sets them with a bounded
//! compare-and-exchange loop that re-checks `GTF_permit_access`, the
//! grantee domid and `GTF_readonly`, and clears them when the last such
//! pin goes. The guest revokes a grant by cmpxchg-ing `flags` to 0 only
//! while neither bit is set.
//!
//! Map and unmap take a closure for the stage-2 work so that ordering is
//! right: the mapping is installed after the entry is pinned and the pin is
//! undone if installing fails; on unmap the mapping is removed *before* the
//! flags are cleared, so the granter can never reuse a page that is still
//! mapped elsewhere.
//!
//! Only version 1 exists (as on Xen/ARM, where `GNTTAB_MAX_VERSION` is 1):
//! `set_version(1)` succeeds, `set_version(2)` is `-ENOSYS`, like a Xen
//! whose maximum version is 1; Linux then keeps v1. Per-element failures
//! are `GNTST_*` codes ([`GrantError::status`]); failures of the whole
//! hypercall are errnos ([`GrantError::errno`]).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use oxen_types::{DomId, Ipa, PhysAddr};
use xen_abi::Errno;
use xen_abi::grant_table::{
    self as abi, GRANT_ENTRIES_V1_PER_FRAME, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY,
    GTF_SUB_PAGE, GTF_TYPE_MASK, GTF_WRITING, GnttabCopy, GrantEntryV1,
};

use crate::Peer;

/// A grant reference in the granting domain's table.
pub type GrantRef = u32;
/// A mapping handle in the mapping domain's maptrack.
pub type GrantHandle = u32;

/// Xen's default `gnttab_max_frames`.
pub const DEFAULT_MAX_FRAMES: u32 = 64;
/// Upper bound on `max_frames`: the 16 MiB guest grant window (4096 frames).
pub const MAX_FRAMES_LIMIT: u32 = 4096;
/// Default bound on a domain's simultaneous grant mappings.
pub const DEFAULT_MAX_MAPTRACK: u32 = 65536;
/// Pins of one kind (read-only or writable) one grant may hold, as Xen's
/// 8-bit pin counters.
pub const PIN_LIMIT: u32 = 0xff;
/// The only grant table version supported.
pub const GRANT_VERSION: u32 = 1;
/// Attempts of the compare-and-exchange on a guest entry before giving up
/// (a guest changing its entry faster than we can update it).
const CMPXCHG_TRIES: u32 = 5;
/// GFNs must fit a 52-bit IPA.
const MAX_GFN: u64 = 1 << (52 - 12);

/// Errors of the grant table operations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum GrantError {
    /// Map flags ask for neither a host nor a device mapping (`GNTST_bad_gntref`).
    NoMapKind,
    /// Device/application/PTE mappings, which translated guests cannot use
    /// (`GNTST_general_error`).
    UnsupportedMapFlags(u32),
    /// The domain does not exist (`GNTST_bad_domain`, `-ESRCH`).
    BadDomain(DomId),
    /// Reference beyond the granting table (`GNTST_bad_gntref`).
    BadGntref(GrantRef),
    /// Unknown or stale handle (`GNTST_bad_handle`).
    BadHandle(GrantHandle),
    /// The maptrack is full (`GNTST_no_space`).
    NoSpace,
    /// The entry does not grant access to the caller: wrong type, sub-page,
    /// or domid (`GNTST_general_error`).
    NotGranted(GrantRef),
    /// Writable access asked of a read-only grant (`GNTST_general_error`).
    ReadOnlyGrant(GrantRef),
    /// The grant is already held by another domain (`GNTST_general_error`).
    HeldByOther(GrantRef),
    /// Too many pins on one grant (`GNTST_general_error`).
    PinOverflow(GrantRef),
    /// The guest kept changing the entry during our update (`GNTST_general_error`).
    Unstable(GrantRef),
    /// The entry's memory could not be accessed (`GNTST_general_error`).
    EntryInaccessible(GrantRef),
    /// Unmap at an address other than where the handle is mapped
    /// (`GNTST_general_error`).
    HostAddrMismatch(GrantHandle),
    /// The granted frame is not RAM of the granter (`GNTST_bad_page`);
    /// for the hypervisor's install closure.
    BadPage,
    /// Installing or removing the stage-2 mapping failed (`GNTST_general_error`).
    MappingFailed,
    /// Copy beyond a page (`GNTST_bad_copy_arg`).
    BadCopyArg,
    /// Frame side of a copy not `DOMID_SELF`, or not allowed to act on the
    /// domain (`GNTST_permission_denied`, `-EPERM`).
    PermissionDenied,
    /// The hypervisor passed the wrong peer table (`GNTST_general_error`).
    PeerMismatch {
        /// The domain whose table the operation needs.
        needed: DomId,
    },
    /// Grant frame index at or beyond the maximum (`-EINVAL`).
    BadFrameIndex(u64),
    /// GFN beyond the 52-bit IPA space (`-EINVAL`).
    BadGfn(u64),
    /// Version 2 asked for (`-ENOSYS`, as Xen with max version 1).
    VersionUnsupported,
    /// Neither version 1 nor 2 (`-EINVAL`).
    BadVersion(u32),
    /// The hypervisor could not grow a table (`GNTST_no_space`, `-ENOMEM`).
    NoMemory,
}

impl GrantError {
    /// The `GNTST_*` status for per-element results.
    pub const fn status(&self) -> i16 {
        match self {
            GrantError::NoMapKind | GrantError::BadGntref(_) => abi::GNTST_BAD_GNTREF,
            GrantError::BadDomain(_) => abi::GNTST_BAD_DOMAIN,
            GrantError::BadHandle(_) => abi::GNTST_BAD_HANDLE,
            GrantError::NoSpace | GrantError::NoMemory => abi::GNTST_NO_SPACE,
            GrantError::BadPage => abi::GNTST_BAD_PAGE,
            GrantError::BadCopyArg => abi::GNTST_BAD_COPY_ARG,
            GrantError::PermissionDenied => abi::GNTST_PERMISSION_DENIED,
            GrantError::UnsupportedMapFlags(_)
            | GrantError::NotGranted(_)
            | GrantError::ReadOnlyGrant(_)
            | GrantError::HeldByOther(_)
            | GrantError::PinOverflow(_)
            | GrantError::Unstable(_)
            | GrantError::EntryInaccessible(_)
            | GrantError::HostAddrMismatch(_)
            | GrantError::MappingFailed
            | GrantError::PeerMismatch { .. }
            | GrantError::BadFrameIndex(_)
            | GrantError::BadGfn(_)
            | GrantError::VersionUnsupported
            | GrantError::BadVersion(_) => abi::GNTST_GENERAL_ERROR,
        }
    }

    /// The errno for operations that fail as a whole (set_version,
    /// add_to_physmap, get_version...).
    pub const fn errno(&self) -> Errno {
        match self {
            GrantError::BadDomain(_) => Errno::ESRCH,
            GrantError::PermissionDenied => Errno::EPERM,
            GrantError::VersionUnsupported => Errno::ENOSYS,
            GrantError::NoMemory => Errno::ENOMEM,
            GrantError::NoSpace => Errno::ENOSPC,
            _ => Errno::EINVAL,
        }
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::NoMapKind => f.write_str("no host/device map flag"),
            GrantError::UnsupportedMapFlags(fl) => write!(f, "unsupported map flags {fl:#x}"),
            GrantError::BadDomain(d) => write!(f, "no domain {d}"),
            GrantError::BadGntref(r) => write!(f, "bad grant ref {r:#x}"),
            GrantError::BadHandle(h) => write!(f, "bad handle {h:#x}"),
            GrantError::NoSpace => f.write_str("maptrack full"),
            GrantError::NotGranted(r) => write!(f, "ref {r:#x} not granted to caller"),
            GrantError::ReadOnlyGrant(r) => write!(f, "ref {r:#x} is read-only"),
            GrantError::HeldByOther(r) => write!(f, "ref {r:#x} held by another domain"),
            GrantError::PinOverflow(r) => write!(f, "ref {r:#x} pin overflow"),
            GrantError::Unstable(r) => write!(f, "ref {r:#x} unstable"),
            GrantError::EntryInaccessible(r) => write!(f, "ref {r:#x} entry inaccessible"),
            GrantError::HostAddrMismatch(h) => write!(f, "handle {h:#x} not mapped there"),
            GrantError::BadPage => f.write_str("bad page"),
            GrantError::MappingFailed => f.write_str("stage-2 mapping failed"),
            GrantError::BadCopyArg => f.write_str("copy crosses a page"),
            GrantError::PermissionDenied => f.write_str("permission denied"),
            GrantError::PeerMismatch { needed } => write!(f, "operation needs {needed}"),
            GrantError::BadFrameIndex(i) => write!(f, "bad grant frame index {i:#x}"),
            GrantError::BadGfn(g) => write!(f, "bad gfn {g:#x}"),
            GrantError::VersionUnsupported => f.write_str("grant table v2 unsupported"),
            GrantError::BadVersion(v) => write!(f, "bad grant table version {v}"),
            GrantError::NoMemory => f.write_str("out of memory"),
        }
    }
}

/// Access to the granting domain's v1 entries in its memory (the frames
/// the hypervisor allocated for its table). `gref` is below the table's
/// entry count when this crate calls; implementations must not panic on
/// other values (return `None`).
pub trait GrantEntries {
    /// Read entry `gref`.
    fn read(&self, gref: GrantRef) -> Option<GrantEntryV1>;
    /// Atomically compare-and-exchange the 32-bit header (`flags` in the
    /// low half, `domid` in the high half, see [`GrantEntryV1::header`])
    /// of entry `gref` from `old` to `new`. Returns the value found (equal
    /// to `old` on success), `None` if inaccessible.
    fn cmpxchg_header(&mut self, gref: GrantRef, old: u32, new: u32) -> Option<u32>;
    /// Atomically clear the `mask` bits of entry `gref`'s `flags`.
    fn clear_flags(&mut self, gref: GrantRef, mask: u16);
}

/// Grant entries in plain memory: a test fake (and a model of what the
/// hypervisor's implementation must do).
#[derive(Clone, Debug, Default)]
pub struct VecGrantEntries {
    /// The entries.
    pub entries: Vec<GrantEntryV1>,
    /// Number of upcoming `cmpxchg_header` calls that will see the guest
    /// "racing": the flags are toggled (GTF_PAT) just before the compare.
    pub interfere: u32,
}

impl VecGrantEntries {
    /// `n` invalid entries.
    pub fn new(n: usize) -> Self {
        Self {
            entries: alloc::vec![GrantEntryV1::default(); n],
            interfere: 0,
        }
    }

    /// What a granting guest does: entry `gref` grants `frame` to `domid`.
    pub fn grant(&mut self, gref: GrantRef, domid: DomId, frame: u32, readonly: bool) {
        if let Some(e) = self.entries.get_mut(gref as usize) {
            e.domid = domid.0;
            e.frame = frame;
            e.flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        }
    }

    /// What a guest does to revoke: flags to 0 unless reading/writing is
    /// set. Returns whether it succeeded.
    pub fn revoke(&mut self, gref: GrantRef) -> bool {
        match self.entries.get_mut(gref as usize) {
            Some(e) if e.flags & (GTF_READING | GTF_WRITING) == 0 => {
                e.flags = 0;
                true
            }
            _ => false,
        }
    }

    /// The flags of entry `gref` (0 if out of range).
    pub fn flags(&self, gref: GrantRef) -> u16 {
        self.entries.get(gref as usize).map_or(0, |e| e.flags)
    }
}

impl GrantEntries for VecGrantEntries {
    fn read(&self, gref: GrantRef) -> Option<GrantEntryV1> {
        self.entries.get(gref as usize).copied()
    }

    fn cmpxchg_header(&mut self, gref: GrantRef, old: u32, new: u32) -> Option<u32> {
        let interfere = self.interfere > 0;
        if interfere {
            self.interfere -= 1;
        }
        let e = self.entries.get_mut(gref as usize)?;
        if interfere {
            e.flags ^= abi::GTF_PAT;
        }
        let cur = e.header();
        if cur == old {
            e.flags = new as u16;
            e.domid = (new >> 16) as u16;
        }
        Some(cur)
    }

    fn clear_flags(&mut self, gref: GrantRef, mask: u16) {
        if let Some(e) = self.entries.get_mut(gref as usize) {
            e.flags &= !mask;
        }
    }
}

/// Limits of a domain's grant table, chosen by the hypervisor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GrantConfig {
    /// The domain's id.
    pub domid: DomId,
    /// Maximum grant frames (Xen default 64; clamped to 1..=4096).
    pub max_frames: u32,
    /// Maximum simultaneous mappings this domain may hold.
    pub max_maptrack: u32,
}

impl GrantConfig {
    /// Xen's defaults for `domid`: 64 frames, 65536 mappings.
    pub const fn new(domid: DomId) -> Self {
        Self {
            domid,
            max_frames: DEFAULT_MAX_FRAMES,
            max_maptrack: DEFAULT_MAX_MAPTRACK,
        }
    }
}

/// A grant of this domain held by another domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ActiveGrant {
    /// The domain holding the pins.
    pub holder: DomId,
    /// The granter's GFN captured at the first pin.
    pub frame: u64,
    /// Read-only pins (mappings and source copies).
    pub pins_ro: u32,
    /// Writable pins (mappings and destination copies).
    pub pins_rw: u32,
}

impl ActiveGrant {
    fn total(&self) -> u32 {
        self.pins_ro + self.pins_rw
    }
}

/// One grant this domain has mapped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Mapping {
    /// The granting domain.
    pub granter: DomId,
    /// The reference in the granter's table.
    pub gref: GrantRef,
    /// Where the frame is mapped in this domain.
    pub host_addr: Ipa,
    /// The granter's GFN that is mapped.
    pub frame: u64,
    /// Read-only mapping.
    pub readonly: bool,
    /// The host physical address returned as `dev_bus_addr`.
    pub phys: PhysAddr,
}

/// Granting-side state (separate struct so a loopback map can borrow it
/// and the maptrack of the same table at once).
#[derive(Clone, Debug)]
struct Granting {
    nr_frames: u32,
    max_frames: u32,
    /// GFN at which each frame `< nr_frames` is mapped by the guest.
    frame_gfn: Vec<Option<u64>>,
    active: BTreeMap<GrantRef, ActiveGrant>,
}

impl Granting {
    fn nr_entries(&self) -> u32 {
        self.nr_frames * GRANT_ENTRIES_V1_PER_FRAME
    }
}

/// Mapping-side state.
#[derive(Clone, Debug)]
struct MapTrack {
    entries: Vec<Option<Mapping>>,
    free: Vec<GrantHandle>,
    max: u32,
    live: u32,
}

impl MapTrack {
    fn alloc(&mut self) -> Result<GrantHandle, GrantError> {
        if let Some(h) = self.free.pop() {
            return Ok(h);
        }
        let next = self.entries.len() as u32;
        if next >= self.max {
            return Err(GrantError::NoSpace);
        }
        self.entries
            .try_reserve(1)
            .map_err(|_| GrantError::NoMemory)?;
        // Reserve the free-list slot now so `release` never allocates.
        self.free
            .try_reserve(self.entries.len() + 1 - self.free.len())
            .map_err(|_| GrantError::NoMemory)?;
        self.entries.push(None);
        Ok(next)
    }

    /// Return an allocated, unused handle to the free list.
    fn release(&mut self, h: GrantHandle) {
        if let Some(slot) = self.entries.get_mut(h as usize) {
            if slot.take().is_some() {
                self.live -= 1;
            }
            self.free.push(h);
        }
    }

    fn get(&self, h: GrantHandle) -> Option<&Mapping> {
        self.entries.get(h as usize)?.as_ref()
    }
}

/// One domain's grant table (granting and mapping sides).
#[derive(Clone, Debug)]
pub struct GrantTable {
    domid: DomId,
    granting: Granting,
    maptrack: MapTrack,
}

/// Result of [`GrantTable::add_to_physmap`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct FrameMapping {
    /// The frame index now mapped.
    pub idx: u32,
    /// The GFN the frame was mapped at before, to unmap there.
    pub old_gfn: Option<u64>,
    /// Frames that came into existence with this call: the hypervisor
    /// must back them with zeroed pages (already done if it allocates all
    /// `max_frames` up front).
    pub new_frames: Range<u32>,
}

impl GrantTable {
    /// A table with one frame (Xen's `INITIAL_NR_GRANT_FRAMES`) and no
    /// mappings.
    pub fn new(cfg: GrantConfig) -> Self {
        Self {
            domid: cfg.domid,
            granting: Granting {
                nr_frames: 1,
                max_frames: cfg.max_frames.clamp(1, MAX_FRAMES_LIMIT),
                frame_gfn: alloc::vec![None],
                active: BTreeMap::new(),
            },
            maptrack: MapTrack {
                entries: Vec::new(),
                free: Vec::new(),
                max: cfg.max_maptrack,
                live: 0,
            },
        }
    }

    /// The owning domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// `GNTTABOP_query_size`: `(nr_frames, max_nr_frames)`.
    pub fn query_size(&self) -> (u32, u32) {
        (self.granting.nr_frames, self.granting.max_frames)
    }

    /// Number of usable grant references (`nr_frames × 512`).
    pub fn nr_entries(&self) -> u32 {
        self.granting.nr_entries()
    }

    /// `GNTTABOP_set_version`: returns the version in force (always 1).
    pub fn set_version(&mut self, version: u32) -> Result<u32, GrantError> {
        match version {
            1 => Ok(GRANT_VERSION),
            2 => Err(GrantError::VersionUnsupported),
            v => Err(GrantError::BadVersion(v)),
        }
    }

    /// `GNTTABOP_get_version`.
    pub fn version(&self) -> u32 {
        GRANT_VERSION
    }

    /// `XENMEM_add_to_physmap(XENMAPSPACE_grant_table, idx, gfn)`: grow
    /// the table to `idx + 1` frames if needed (up to `max_frames`, else
    /// `-EINVAL` like Xen) and record that frame `idx` is now at `gfn`.
    /// Any other frame recorded at `gfn` is forgotten (the new mapping
    /// replaced it).
    pub fn add_to_physmap(&mut self, idx: u64, gfn: u64) -> Result<FrameMapping, GrantError> {
        if gfn >= MAX_GFN {
            return Err(GrantError::BadGfn(gfn));
        }
        let g = &mut self.granting;
        if idx >= u64::from(g.max_frames) {
            return Err(GrantError::BadFrameIndex(idx));
        }
        let idx32 = idx as u32;
        let before = g.nr_frames;
        if idx32 >= g.nr_frames {
            let grow = (idx32 + 1 - g.nr_frames) as usize;
            g.frame_gfn
                .try_reserve(grow)
                .map_err(|_| GrantError::NoMemory)?;
            g.frame_gfn.resize(idx32 as usize + 1, None);
            g.nr_frames = idx32 + 1;
        }
        for (i, f) in g.frame_gfn.iter_mut().enumerate() {
            if i != idx32 as usize && *f == Some(gfn) {
                *f = None;
            }
        }
        let old_gfn = g
            .frame_gfn
            .get_mut(idx32 as usize)
            .and_then(|f| f.replace(gfn))
            .filter(|&old| old != gfn);
        Ok(FrameMapping {
            idx: idx32,
            old_gfn,
            new_frames: before..g.nr_frames,
        })
    }

    /// The GFN where frame `idx` is mapped.
    pub fn frame_gfn(&self, idx: u32) -> Option<u64> {
        *self.granting.frame_gfn.get(idx as usize)?
    }

    /// Which frame is mapped at `gfn`, if any.
    pub fn frame_at_gfn(&self, gfn: u64) -> Option<u32> {
        self.granting
            .frame_gfn
            .iter()
            .position(|f| *f == Some(gfn))
            .map(|i| i as u32)
    }

    /// Forget the frame mapped at `gfn` (`XENMEM_remove_from_physmap`, or
    /// the guest put something else there). Returns its index.
    pub fn remove_gfn(&mut self, gfn: u64) -> Option<u32> {
        let idx = self.frame_at_gfn(gfn)?;
        if let Some(f) = self.granting.frame_gfn.get_mut(idx as usize) {
            *f = None;
        }
        Some(idx)
    }

    /// The active (held) state of this domain's grant `gref`.
    pub fn active(&self, gref: GrantRef) -> Option<ActiveGrant> {
        self.granting.active.get(&gref).copied()
    }

    /// Number of this domain's grants held by others.
    pub fn active_count(&self) -> usize {
        self.granting.active.len()
    }

    /// The mapping behind `handle` (to find the granter to lock before
    /// [`unmap_grant_ref`]).
    pub fn mapping(&self, handle: GrantHandle) -> Option<Mapping> {
        self.maptrack.get(handle).copied()
    }

    /// Every live mapping of this domain (for teardown).
    pub fn mappings(&self) -> impl Iterator<Item = (GrantHandle, Mapping)> + '_ {
        self.maptrack
            .entries
            .iter()
            .enumerate()
            .filter_map(|(h, m)| m.map(|m| (h as GrantHandle, m)))
    }

    /// Number of live mappings.
    pub fn mapping_count(&self) -> u32 {
        self.maptrack.live
    }
}

/// Pin the entry for `holder` (Xen's `_set_status_v1`): set `GTF_reading`
/// (and `GTF_writing` unless `readonly`) with a bounded cmpxchg loop. When
/// not yet pinned, the entry must be a full-page `GTF_permit_access` grant
/// to `holder`.
fn set_status<E: GrantEntries + ?Sized>(
    entries: &mut E,
    gref: GrantRef,
    pinned: bool,
    readonly: bool,
    holder: DomId,
) -> Result<(), GrantError> {
    let mut cur = entries
        .read(gref)
        .ok_or(GrantError::EntryInaccessible(gref))?
        .header();
    for _ in 0..CMPXCHG_TRIES {
        let flags = cur as u16;
        let domid = (cur >> 16) as u16;
        if !pinned
            && ((flags & (GTF_TYPE_MASK | GTF_SUB_PAGE)) != GTF_PERMIT_ACCESS || domid != holder.0)
        {
            return Err(GrantError::NotGranted(gref));
        }
        let mut new = flags | GTF_READING;
        if !readonly {
            if flags & GTF_READONLY != 0 {
                return Err(GrantError::ReadOnlyGrant(gref));
            }
            new |= GTF_WRITING;
        }
        let new = u32::from(new) | (cur & 0xffff_0000);
        match entries.cmpxchg_header(gref, cur, new) {
            Some(prev) if prev == cur => return Ok(()),
            Some(prev) => cur = prev,
            None => return Err(GrantError::EntryInaccessible(gref)),
        }
    }
    Err(GrantError::Unstable(gref))
}

/// Clear the status bits no pin needs any more (Xen's `reduce_status_for_pin`).
fn reduce_status<E: GrantEntries + ?Sized>(
    entries: &mut E,
    gref: GrantRef,
    act: Option<&ActiveGrant>,
    readonly: bool,
) {
    let (ro, rw) = act.map_or((0, 0), |a| (a.pins_ro, a.pins_rw));
    let mut clear = 0;
    if ro + rw == 0 {
        clear |= GTF_READING;
    }
    if !readonly && rw == 0 {
        clear |= GTF_WRITING;
    }
    if clear != 0 {
        entries.clear_flags(gref, clear);
    }
}

/// The checks and status update of a new pin of `holder` on `gref`,
/// without recording it: the active entry as it was (if any) and the
/// granter's GFN. On error the status bits are as they were.
fn set_pin_status<E: GrantEntries + ?Sized>(
    g: &Granting,
    entries: &mut E,
    gref: GrantRef,
    holder: DomId,
    readonly: bool,
) -> Result<(Option<ActiveGrant>, u64), GrantError> {
    if gref >= g.nr_entries() {
        return Err(GrantError::BadGntref(gref));
    }
    let act = g.active.get(&gref).copied();
    if let Some(a) = act {
        if a.holder != holder {
            return Err(GrantError::HeldByOther(gref));
        }
        let n = if readonly { a.pins_ro } else { a.pins_rw };
        if n >= PIN_LIMIT {
            return Err(GrantError::PinOverflow(gref));
        }
    }
    let need_status = match act {
        None => true,
        Some(a) => !readonly && a.pins_rw == 0,
    };
    if need_status {
        set_status(entries, gref, act.is_some(), readonly, holder)?;
    }
    let frame = match act {
        Some(a) => a.frame,
        None => match entries.read(gref) {
            Some(e) => u64::from(e.frame),
            None => {
                reduce_status(entries, gref, None, readonly);
                return Err(GrantError::EntryInaccessible(gref));
            }
        },
    };
    Ok((act, frame))
}

/// Acquire a pin of `holder` on `gref` (map or copy). On success the
/// active entry is updated and the granter's GFN returned.
fn pin<E: GrantEntries + ?Sized>(
    g: &mut Granting,
    entries: &mut E,
    gref: GrantRef,
    holder: DomId,
    readonly: bool,
) -> Result<u64, GrantError> {
    let (_, frame) = set_pin_status(g, entries, gref, holder, readonly)?;
    let a = g.active.entry(gref).or_insert(ActiveGrant {
        holder,
        frame,
        pins_ro: 0,
        pins_rw: 0,
    });
    if readonly {
        a.pins_ro += 1;
    } else {
        a.pins_rw += 1;
    }
    Ok(frame)
}

/// Drop one pin (of the given kind) of `gref` and clear the status bits
/// no longer needed. Returns false if there was no such pin.
fn unpin<E: GrantEntries + ?Sized>(
    g: &mut Granting,
    entries: &mut E,
    gref: GrantRef,
    readonly: bool,
) -> bool {
    let Some(a) = g.active.get_mut(&gref) else {
        return false;
    };
    let n = if readonly {
        &mut a.pins_ro
    } else {
        &mut a.pins_rw
    };
    if *n == 0 {
        return false;
    }
    *n -= 1;
    let snapshot = *a;
    if snapshot.total() == 0 {
        g.active.remove(&gref);
    }
    reduce_status(entries, gref, Some(&snapshot), readonly);
    true
}

/// A `GNTTABOP_map_grant_ref` request, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapRequest {
    /// IPA in the mapper where to map.
    pub host_addr: Ipa,
    /// `GNTMAP_*` flags.
    pub flags: u32,
    /// Reference in the granter's table.
    pub gref: GrantRef,
    /// The granting domain named by the request.
    pub dom: DomId,
}

impl MapRequest {
    /// From the guest's struct.
    pub fn from_abi(op: &abi::GnttabMapGrantRef) -> Self {
        Self {
            host_addr: Ipa(op.host_addr),
            flags: op.flags,
            gref: op.r#ref,
            dom: DomId(op.dom),
        }
    }

    /// Whether a read-only mapping is asked for.
    pub fn readonly(&self) -> bool {
        self.flags & abi::GNTMAP_READONLY != 0
    }
}

/// What the hypervisor must map (argument of the install closure).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapTarget {
    /// The granting domain.
    pub granter: DomId,
    /// The granter's GFN to map (translate with the granter's stage 2).
    pub frame: u64,
    /// Where, in the mapper.
    pub host_addr: Ipa,
    /// Map read-only.
    pub readonly: bool,
}

/// A successful map.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapResult {
    /// Handle for unmap.
    pub handle: GrantHandle,
    /// `dev_bus_addr`: host physical address of the frame.
    pub dev_bus_addr: PhysAddr,
}

fn split<'a>(
    mapper: &'a mut GrantTable,
    granter: Peer<'a, GrantTable>,
    needed: DomId,
) -> Result<(&'a mut MapTrack, &'a mut Granting, DomId), GrantError> {
    let mapper_id = mapper.domid;
    match granter {
        Peer::Same if needed == mapper_id => {
            Ok((&mut mapper.maptrack, &mut mapper.granting, mapper_id))
        }
        Peer::Other(g) if g.domid == needed && needed != mapper_id => {
            Ok((&mut mapper.maptrack, &mut g.granting, mapper_id))
        }
        _ => Err(GrantError::PeerMismatch { needed }),
    }
}

/// `GNTTABOP_map_grant_ref` for one element.
///
/// `mapper` is the calling domain, `granter` the domain `req.dom` names
/// (`Peer::Same` if it is the caller; the hypervisor answers
/// [`GrantError::BadDomain`] itself when `req.dom` does not exist — Xen
/// does not accept `DOMID_SELF` here), `entries` the granter's entries.
/// After the grant is validated and pinned, `install` gets the frame to
/// map; it returns the frame's host physical address, or an error, in
/// which case the pin is undone.
pub fn map_grant_ref<E, F>(
    mapper: &mut GrantTable,
    granter: Peer<'_, GrantTable>,
    entries: &mut E,
    req: &MapRequest,
    install: F,
) -> Result<MapResult, GrantError>
where
    E: GrantEntries + ?Sized,
    F: FnOnce(&MapTarget) -> Result<PhysAddr, GrantError>,
{
    if req.flags & (abi::GNTMAP_HOST_MAP | abi::GNTMAP_DEVICE_MAP) == 0 {
        return Err(GrantError::NoMapKind);
    }
    let bad = abi::GNTMAP_DEVICE_MAP | abi::GNTMAP_APPLICATION_MAP | abi::GNTMAP_CONTAINS_PTE;
    if req.flags & bad != 0 {
        return Err(GrantError::UnsupportedMapFlags(req.flags));
    }
    let readonly = req.readonly();
    let (mt, g, mapper_id) = split(mapper, granter, req.dom)?;
    let handle = mt.alloc()?;
    let frame = match pin(g, entries, req.gref, mapper_id, readonly) {
        Ok(f) => f,
        Err(e) => {
            mt.release(handle);
            return Err(e);
        }
    };
    let target = MapTarget {
        granter: req.dom,
        frame,
        host_addr: req.host_addr,
        readonly,
    };
    match install(&target) {
        Ok(phys) => {
            if let Some(slot) = mt.entries.get_mut(handle as usize) {
                *slot = Some(Mapping {
                    granter: req.dom,
                    gref: req.gref,
                    host_addr: req.host_addr,
                    frame,
                    readonly,
                    phys,
                });
                mt.live += 1;
            }
            Ok(MapResult {
                handle,
                dev_bus_addr: phys,
            })
        }
        Err(e) => {
            unpin(g, entries, req.gref, readonly);
            mt.release(handle);
            Err(e)
        }
    }
}

/// `GNTTABOP_unmap_grant_ref` for one element.
///
/// `granter` must be the domain of `mapper.mapping(handle)` (`Peer::Same`
/// if the caller mapped its own grant). `host_addr` must be where the
/// handle is mapped (Xen/ARM fails otherwise). `remove` takes the stage-2
/// mapping down (and invalidates TLBs) *before* the grant is released; if
/// it fails nothing changes.
pub fn unmap_grant_ref<E, F>(
    mapper: &mut GrantTable,
    granter: Peer<'_, GrantTable>,
    entries: &mut E,
    handle: GrantHandle,
    host_addr: Ipa,
    remove: F,
) -> Result<Mapping, GrantError>
where
    E: GrantEntries + ?Sized,
    F: FnOnce(&Mapping) -> Result<(), GrantError>,
{
    let m = mapper
        .maptrack
        .get(handle)
        .copied()
        .ok_or(GrantError::BadHandle(handle))?;
    let (mt, g, _) = split(mapper, granter, m.granter)?;
    if m.gref >= g.nr_entries() {
        return Err(GrantError::BadHandle(handle));
    }
    if m.host_addr != host_addr {
        return Err(GrantError::HostAddrMismatch(handle));
    }
    remove(&m)?;
    unpin(g, entries, m.gref, m.readonly);
    mt.release(handle);
    Ok(m)
}

/// One side of a `GNTTABOP_copy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CopySide {
    /// A grant of `dom` (which must grant the caller).
    Grant {
        /// The granting domain (`DOMID_SELF` allowed: the caller).
        dom: DomId,
        /// The reference.
        gref: GrantRef,
        /// Byte offset in the page.
        offset: u16,
    },
    /// A frame of the caller itself.
    Local {
        /// The caller's GFN.
        gfn: u64,
        /// Byte offset in the page.
        offset: u16,
    },
}

impl CopySide {
    fn offset(&self) -> u16 {
        match self {
            CopySide::Grant { offset, .. } | CopySide::Local { offset, .. } => *offset,
        }
    }
}

/// A decoded, validated `gnttab_copy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CopyOp {
    /// Source.
    pub source: CopySide,
    /// Destination.
    pub dest: CopySide,
    /// Bytes (1..=4096).
    pub len: u16,
}

impl CopyOp {
    /// Decode and check a guest's `gnttab_copy`. `Ok(None)`: `len` is 0,
    /// nothing to do (Xen answers `GNTST_okay` without looking further).
    /// A frame side must name `DOMID_SELF` (`GNTST_permission_denied`);
    /// `offset + len` must stay within the page on both sides
    /// (`GNTST_bad_copy_arg`; Xen checks this after acquiring the grants,
    /// the status is the same unless a grant is also bad). GFNs beyond the
    /// IPA space give `GNTST_general_error`.
    pub fn parse(op: &GnttabCopy) -> Result<Option<CopyOp>, GrantError> {
        if op.len == 0 {
            return Ok(None);
        }
        let side = |p: &abi::GnttabCopyPtr, is_gref: bool| -> Result<CopySide, GrantError> {
            if is_gref {
                Ok(CopySide::Grant {
                    dom: DomId(p.domid),
                    gref: p.gref(),
                    offset: p.offset,
                })
            } else if DomId(p.domid) != DomId::SELF {
                Err(GrantError::PermissionDenied)
            } else if p.u >= MAX_GFN {
                Err(GrantError::BadGfn(p.u))
            } else {
                Ok(CopySide::Local {
                    gfn: p.u,
                    offset: p.offset,
                })
            }
        };
        let source = side(&op.source, op.flags & abi::GNTCOPY_SOURCE_GREF != 0)?;
        let dest = side(&op.dest, op.flags & abi::GNTCOPY_DEST_GREF != 0)?;
        for s in [&source, &dest] {
            if u32::from(s.offset()) + u32::from(op.len) > 4096 {
                return Err(GrantError::BadCopyArg);
            }
        }
        Ok(Some(CopyOp {
            source,
            dest,
            len: op.len,
        }))
    }
}

/// A grant pinned for the duration of one copy. Must be given back with
/// [`release_for_copy`].
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CopyGrant {
    /// The granting domain.
    pub granter: DomId,
    /// The reference.
    pub gref: GrantRef,
    /// The granter's GFN to copy from/to.
    pub frame: u64,
    /// Pinned for reading only (source side).
    pub readonly: bool,
}

/// Pin `granter`'s grant `gref` for a copy by `caller` (`readonly` for the
/// source side, writable for the destination). Holding the pin keeps the
/// grant from being revoked, so the caller may drop the granter's lock
/// while copying.
pub fn acquire_for_copy<E: GrantEntries + ?Sized>(
    granter: &mut GrantTable,
    entries: &mut E,
    gref: GrantRef,
    caller: DomId,
    readonly: bool,
) -> Result<CopyGrant, GrantError> {
    let frame = pin(&mut granter.granting, entries, gref, caller, readonly)?;
    Ok(CopyGrant {
        granter: granter.domid,
        gref,
        frame,
        readonly,
    })
}

/// Run `f` on the GFN of `granter`'s grant `gref`, pinned for `caller`
/// (read-only for a copy's source, writable for its destination) for the
/// duration of `f` only: the same checks and status bits as
/// [`acquire_for_copy`] then [`release_for_copy`], but the pin is not
/// recorded in the active table. That is sound because the caller holds
/// `granter` (`&mut`, i.e. the granter's lock in the hypervisor) for the
/// whole call, so no other pin can come or go and nobody can look at the
/// active table meanwhile; the guest sees the same `GTF_reading`/
/// `GTF_writing` bits as with a recorded pin. It saves the active table's
/// insert and remove (an allocation and a free) per copy. `f`'s error is
/// returned after the status bits are put back.
pub fn with_grant_for_copy<E: GrantEntries + ?Sized, R>(
    granter: &mut GrantTable,
    entries: &mut E,
    gref: GrantRef,
    caller: DomId,
    readonly: bool,
    f: impl FnOnce(u64) -> Result<R, GrantError>,
) -> Result<R, GrantError> {
    let (act, frame) = set_pin_status(&granter.granting, entries, gref, caller, readonly)?;
    let r = f(frame);
    // As unpin: the pins left are the ones there were before.
    reduce_status(entries, gref, act.as_ref(), readonly);
    r
}

/// Drop the pin of a [`CopyGrant`] (clears `GTF_reading`/`GTF_writing` if
/// it was the last). A grant of another table is refused.
pub fn release_for_copy<E: GrantEntries + ?Sized>(
    granter: &mut GrantTable,
    entries: &mut E,
    grant: CopyGrant,
) -> Result<(), GrantError> {
    if grant.granter != granter.domid {
        return Err(GrantError::PeerMismatch {
            needed: grant.granter,
        });
    }
    if unpin(&mut granter.granting, entries, grant.gref, grant.readonly) {
        Ok(())
    } else {
        Err(GrantError::BadGntref(grant.gref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const D1: DomId = DomId(1);
    const D2: DomId = DomId(2);
    const D3: DomId = DomId(3);
    const HOST: Ipa = Ipa(0x9000_0000);

    fn table(domid: DomId) -> GrantTable {
        GrantTable::new(GrantConfig::new(domid))
    }

    fn req(gref: GrantRef, dom: DomId, readonly: bool) -> MapRequest {
        MapRequest {
            host_addr: HOST,
            flags: abi::GNTMAP_HOST_MAP | if readonly { abi::GNTMAP_READONLY } else { 0 },
            gref,
            dom,
        }
    }

    /// An install closure that "maps" GFN `f` at PA `0x1_0000_0000 + f*4K`.
    fn ok_install(t: &MapTarget) -> Result<PhysAddr, GrantError> {
        Ok(PhysAddr(0x1_0000_0000 + (t.frame << 12)))
    }

    fn ok_remove(_: &Mapping) -> Result<(), GrantError> {
        Ok(())
    }

    /// d1 grants (granter), d2 maps.
    fn setup() -> (GrantTable, GrantTable, VecGrantEntries) {
        let mut e = VecGrantEntries::new(512 * 4);
        e.grant(8, D2, 0x4_0123, false);
        e.grant(9, D2, 0x4_0124, true);
        e.grant(10, D3, 0x4_0125, false);
        (table(D1), table(D2), e)
    }

    #[test]
    fn versions_and_size() {
        let mut t = table(D1);
        assert_eq!(t.query_size(), (1, 64));
        assert_eq!(t.nr_entries(), 512);
        assert_eq!(t.set_version(1), Ok(1));
        let e = t.set_version(2).unwrap_err();
        assert_eq!(
            (e, e.errno()),
            (GrantError::VersionUnsupported, Errno::ENOSYS)
        );
        assert_eq!(t.set_version(0).unwrap_err().errno(), Errno::EINVAL);
        assert_eq!(t.set_version(3).unwrap_err().errno(), Errno::EINVAL);
        assert_eq!(t.version(), 1);
        let small = GrantTable::new(GrantConfig {
            domid: D1,
            max_frames: 0,
            max_maptrack: 1,
        });
        assert_eq!(small.query_size(), (1, 1));
    }

    #[test]
    fn add_to_physmap_bookkeeping() {
        let mut t = table(D1);
        let base = 0x38000;
        let m = t.add_to_physmap(0, base).unwrap();
        assert_eq!(
            m,
            FrameMapping {
                idx: 0,
                old_gfn: None,
                new_frames: 1..1
            }
        );
        // Linux grows the table highest index first.
        let m = t.add_to_physmap(3, base + 3).unwrap();
        assert_eq!(m.new_frames, 1..4);
        assert_eq!(t.query_size(), (4, 64));
        assert_eq!(t.nr_entries(), 2048);
        assert_eq!(t.frame_gfn(3), Some(base + 3));
        assert_eq!(t.frame_gfn(2), None);
        assert_eq!(t.add_to_physmap(2, base + 2).unwrap().new_frames, 4..4);
        // Moving a frame reports where it was.
        assert_eq!(t.add_to_physmap(0, 0x5000).unwrap().old_gfn, Some(base));
        assert_eq!(t.add_to_physmap(0, 0x5000).unwrap().old_gfn, None);
        // Another frame at the same GFN replaces the first.
        t.add_to_physmap(1, 0x5000).unwrap();
        assert_eq!(t.frame_gfn(0), None);
        assert_eq!(t.frame_at_gfn(0x5000), Some(1));
        assert_eq!(t.remove_gfn(0x5000), Some(1));
        assert_eq!(t.remove_gfn(0x5000), None);
        // Limits.
        for idx in [64, 0x8000_0000, u64::MAX] {
            let e = t.add_to_physmap(idx, base).unwrap_err();
            assert_eq!(
                (e, e.errno()),
                (GrantError::BadFrameIndex(idx), Errno::EINVAL)
            );
        }
        assert_eq!(t.add_to_physmap(63, base + 63).unwrap().new_frames, 4..64);
        assert_eq!(
            t.add_to_physmap(1, 1 << 40),
            Err(GrantError::BadGfn(1 << 40))
        );
        assert_eq!(t.query_size(), (64, 64));
    }

    #[test]
    fn map_and_unmap_writable() {
        let (mut g, mut m, mut e) = setup();
        let r = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            |t| {
                assert_eq!(
                    *t,
                    MapTarget {
                        granter: D1,
                        frame: 0x4_0123,
                        host_addr: HOST,
                        readonly: false
                    }
                );
                ok_install(t)
            },
        )
        .unwrap();
        assert_eq!(r.dev_bus_addr, PhysAddr(0x1_4012_3000));
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        assert_eq!(
            g.active(8),
            Some(ActiveGrant {
                holder: D2,
                frame: 0x4_0123,
                pins_ro: 0,
                pins_rw: 1
            })
        );
        assert_eq!(m.mapping_count(), 1);
        let mp = m.mapping(r.handle).unwrap();
        assert_eq!(
            (mp.granter, mp.gref, mp.readonly, mp.phys),
            (D1, 8, false, r.dev_bus_addr)
        );
        // The granter cannot revoke while mapped.
        assert!(!e.revoke(8));
        // Changing the frame while mapped doesn't change what is mapped.
        e.entries[8].frame = 0x666;
        let r2 = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        assert_eq!(r2.dev_bus_addr, r.dev_bus_addr);
        assert_ne!(r2.handle, r.handle);
        // Unmap both; the flags go with the last one.
        let mut removed = None;
        let um = unmap_grant_ref(&mut m, Peer::Other(&mut g), &mut e, r.handle, HOST, |mp| {
            removed = Some(mp.host_addr);
            Ok(())
        })
        .unwrap();
        assert_eq!(removed, Some(HOST));
        assert_eq!(um.gref, 8);
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            r2.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
        assert_eq!(g.active(8), None);
        assert_eq!(m.mapping_count(), 0);
        assert!(e.revoke(8));
        // Double unmap.
        let err = unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            r.handle,
            HOST,
            ok_remove,
        )
        .unwrap_err();
        assert_eq!(
            (err, err.status()),
            (GrantError::BadHandle(r.handle), abi::GNTST_BAD_HANDLE)
        );
    }

    #[test]
    fn readonly_rules() {
        let (mut g, mut m, mut e) = setup();
        // rw map of an ro grant.
        let err = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(9, D1, false),
            ok_install,
        )
        .unwrap_err();
        assert_eq!(
            (err, err.status()),
            (GrantError::ReadOnlyGrant(9), abi::GNTST_GENERAL_ERROR)
        );
        assert_eq!(e.flags(9), GTF_PERMIT_ACCESS | GTF_READONLY);
        assert_eq!(m.mapping_count(), 0);
        // ro map of an ro grant.
        let ro = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(9, D1, true),
            |t| {
                assert!(t.readonly);
                ok_install(t)
            },
        )
        .unwrap();
        assert_eq!(e.flags(9), GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
        // rw map of an already ro-mapped ro grant still fails.
        assert_eq!(
            map_grant_ref(
                &mut m,
                Peer::Other(&mut g),
                &mut e,
                &req(9, D1, false),
                ok_install
            ),
            Err(GrantError::ReadOnlyGrant(9))
        );
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            ro.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        assert_eq!(e.flags(9), GTF_PERMIT_ACCESS | GTF_READONLY);

        // ro then rw of a writable grant: writing appears with the rw pin
        // and goes with it; reading stays for the ro pin.
        let ro = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, true),
            ok_install,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING);
        let rw = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            rw.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING);
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            ro.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
    }

    #[test]
    fn permission_and_entry_checks() {
        let (mut g, mut m, mut e) = setup();
        // Granted to d3, mapped by d2.
        let err = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(10, D1, false),
            ok_install,
        )
        .unwrap_err();
        assert_eq!(
            (err, err.status()),
            (GrantError::NotGranted(10), abi::GNTST_GENERAL_ERROR)
        );
        // Invalid entry, transfer entry, sub-page entry.
        e.entries[11] = GrantEntryV1 {
            flags: abi::GTF_ACCEPT_TRANSFER,
            domid: 2,
            frame: 1,
        };
        e.entries[12] = GrantEntryV1 {
            flags: GTF_PERMIT_ACCESS | GTF_SUB_PAGE,
            domid: 2,
            frame: 1,
        };
        for gref in [0, 11, 12] {
            let err = map_grant_ref(
                &mut m,
                Peer::Other(&mut g),
                &mut e,
                &req(gref, D1, true),
                ok_install,
            )
            .unwrap_err();
            assert_eq!(err, GrantError::NotGranted(gref));
        }
        // Nothing changed in the entries, no handles leaked.
        assert_eq!(e.flags(10), GTF_PERMIT_ACCESS);
        assert_eq!(e.flags(11), abi::GTF_ACCEPT_TRANSFER);
        assert_eq!(m.mapping_count(), 0);
        assert_eq!(g.active_count(), 0);
        // Held by d2; d3 may not pin it even if the guest re-grants to d3.
        let (mut d3, _, _) = (table(D3), (), ());
        map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        e.entries[8].domid = 3;
        let err = map_grant_ref(
            &mut d3,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap_err();
        assert_eq!(err, GrantError::HeldByOther(8));
    }

    #[test]
    fn ref_range_and_flags() {
        let (mut g, mut m, mut e) = setup();
        e.grant(600, D2, 0x4_0200, false);
        for gref in [512, 600, u32::MAX] {
            let err = map_grant_ref(
                &mut m,
                Peer::Other(&mut g),
                &mut e,
                &req(gref, D1, false),
                ok_install,
            )
            .unwrap_err();
            assert_eq!(
                (err, err.status()),
                (GrantError::BadGntref(gref), abi::GNTST_BAD_GNTREF)
            );
        }
        // After the granter grows its table the ref is valid.
        g.add_to_physmap(1, 0x38001).unwrap();
        map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(600, D1, false),
            ok_install,
        )
        .unwrap();
        // Map flags.
        let mut r = req(8, D1, false);
        r.flags = 0;
        assert_eq!(
            map_grant_ref(&mut m, Peer::Other(&mut g), &mut e, &r, ok_install)
                .map_err(|e| e.status()),
            Err(abi::GNTST_BAD_GNTREF)
        );
        r.flags = abi::GNTMAP_READONLY;
        assert_eq!(
            map_grant_ref(&mut m, Peer::Other(&mut g), &mut e, &r, ok_install),
            Err(GrantError::NoMapKind)
        );
        for extra in [
            abi::GNTMAP_DEVICE_MAP,
            abi::GNTMAP_APPLICATION_MAP,
            abi::GNTMAP_CONTAINS_PTE,
        ] {
            r.flags = abi::GNTMAP_HOST_MAP | extra;
            let err =
                map_grant_ref(&mut m, Peer::Other(&mut g), &mut e, &r, ok_install).unwrap_err();
            assert_eq!(err.status(), abi::GNTST_GENERAL_ERROR);
        }
        // Guest-available bits are ignored.
        r.flags = abi::GNTMAP_HOST_MAP | 0xffff_0000;
        assert!(map_grant_ref(&mut m, Peer::Other(&mut g), &mut e, &r, ok_install).is_ok());
        assert_eq!(m.mapping_count(), 2);
    }

    #[test]
    fn install_and_remove_failures_roll_back() {
        let (mut g, mut m, mut e) = setup();
        let err = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            |_| Err(GrantError::BadPage),
        )
        .unwrap_err();
        assert_eq!(err.status(), abi::GNTST_BAD_PAGE);
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
        assert_eq!(g.active(8), None);
        assert_eq!(m.mapping_count(), 0);
        // The failed attempt's handle is reused.
        let r = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        assert_eq!(r.handle, 0);
        // A failing rw install on top of an ro pin drops only GTF_writing.
        let ro = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(9, D1, true),
            ok_install,
        )
        .unwrap();
        let _ = ro;
        e.grant(13, D2, 0x4_0300, false);
        map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(13, D1, true),
            ok_install,
        )
        .unwrap();
        map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(13, D1, false),
            |_| Err(GrantError::MappingFailed),
        )
        .unwrap_err();
        assert_eq!(e.flags(13), GTF_PERMIT_ACCESS | GTF_READING);

        // Unmap at the wrong address, or a failing removal: nothing changes.
        let err = unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            r.handle,
            Ipa(0x1000),
            ok_remove,
        )
        .unwrap_err();
        assert_eq!(
            (err, err.status()),
            (
                GrantError::HostAddrMismatch(r.handle),
                abi::GNTST_GENERAL_ERROR
            )
        );
        unmap_grant_ref(&mut m, Peer::Other(&mut g), &mut e, r.handle, HOST, |_| {
            Err(GrantError::MappingFailed)
        })
        .unwrap_err();
        assert!(m.mapping(r.handle).is_some());
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            r.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
    }

    #[test]
    fn bad_handles_and_peers() {
        let (mut g, mut m, mut e) = setup();
        let mut other = table(D3);
        for h in [0, 1, u32::MAX] {
            let err = unmap_grant_ref(&mut m, Peer::Other(&mut g), &mut e, h, HOST, ok_remove)
                .unwrap_err();
            assert_eq!(err, GrantError::BadHandle(h));
        }
        // Wrong granter table passed in.
        assert_eq!(
            map_grant_ref(
                &mut m,
                Peer::Other(&mut other),
                &mut e,
                &req(8, D1, false),
                ok_install
            ),
            Err(GrantError::PeerMismatch { needed: D1 })
        );
        assert_eq!(
            map_grant_ref(&mut m, Peer::Same, &mut e, &req(8, D1, false), ok_install),
            Err(GrantError::PeerMismatch { needed: D1 })
        );
        let r = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        assert_eq!(
            unmap_grant_ref(
                &mut m,
                Peer::Other(&mut other),
                &mut e,
                r.handle,
                HOST,
                ok_remove
            ),
            Err(GrantError::PeerMismatch { needed: D1 })
        );
        assert_eq!(m.mapping(r.handle).map(|mp| mp.granter), Some(D1));
    }

    #[test]
    fn maptrack_limit() {
        let (mut g, _, mut e) = setup();
        let mut m = GrantTable::new(GrantConfig {
            domid: D2,
            max_frames: 1,
            max_maptrack: 2,
        });
        let a = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(9, D1, true),
            ok_install,
        )
        .unwrap();
        let err = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap_err();
        assert_eq!(
            (err, err.status()),
            (GrantError::NoSpace, abi::GNTST_NO_SPACE)
        );
        // The failed map left no pin behind.
        assert_eq!(g.active(8).unwrap().pins_rw, 1);
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            a.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        let b = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        assert_eq!(b.handle, a.handle);
        assert_eq!(m.mappings().count(), 2);
    }

    #[test]
    fn pin_limit() {
        let (mut g, mut m, mut e) = setup();
        for _ in 0..PIN_LIMIT {
            map_grant_ref(
                &mut m,
                Peer::Other(&mut g),
                &mut e,
                &req(8, D1, true),
                ok_install,
            )
            .unwrap();
        }
        assert_eq!(
            map_grant_ref(
                &mut m,
                Peer::Other(&mut g),
                &mut e,
                &req(8, D1, true),
                ok_install
            ),
            Err(GrantError::PinOverflow(8))
        );
        // The other kind still works.
        map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        assert_eq!(m.mapping_count(), PIN_LIMIT + 1);
    }

    #[test]
    fn racing_guest_is_bounded() {
        let (mut g, mut m, mut e) = setup();
        e.interfere = 4;
        map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, false),
            ok_install,
        )
        .unwrap();
        assert_eq!(
            e.flags(8) & (GTF_READING | GTF_WRITING),
            GTF_READING | GTF_WRITING
        );
        e.interfere = 5;
        let err = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(9, D1, true),
            ok_install,
        )
        .unwrap_err();
        assert_eq!(
            (err, err.status()),
            (GrantError::Unstable(9), abi::GNTST_GENERAL_ERROR)
        );
        assert_eq!(e.flags(9) & GTF_READING, 0);
        // A guest revoking between our read and our cmpxchg is caught.
        struct Revoker(VecGrantEntries);
        impl GrantEntries for Revoker {
            fn read(&self, gref: GrantRef) -> Option<GrantEntryV1> {
                self.0.read(gref)
            }
            fn cmpxchg_header(&mut self, gref: GrantRef, old: u32, new: u32) -> Option<u32> {
                self.0.revoke(gref);
                self.0.cmpxchg_header(gref, old, new)
            }
            fn clear_flags(&mut self, gref: GrantRef, mask: u16) {
                self.0.clear_flags(gref, mask)
            }
        }
        let mut rv = Revoker(e.clone());
        rv.0.grant(14, D2, 5, false);
        assert_eq!(
            map_grant_ref(
                &mut m,
                Peer::Other(&mut g),
                &mut rv,
                &req(14, D1, false),
                ok_install
            ),
            Err(GrantError::NotGranted(14))
        );
        assert_eq!(rv.0.flags(14), 0);
    }

    #[test]
    fn loopback_map() {
        let mut d = table(D1);
        let mut e = VecGrantEntries::new(512);
        e.grant(20, D1, 0x4_0000, false);
        let r = map_grant_ref(&mut d, Peer::Same, &mut e, &req(20, D1, false), ok_install).unwrap();
        assert_eq!(d.active(20).unwrap().holder, D1);
        assert_eq!(d.mapping_count(), 1);
        unmap_grant_ref(&mut d, Peer::Same, &mut e, r.handle, HOST, ok_remove).unwrap();
        assert_eq!(e.flags(20), GTF_PERMIT_ACCESS);
    }

    fn copy_op(src: (u64, u16, u16), dst: (u64, u16, u16), len: u16, flags: u16) -> GnttabCopy {
        GnttabCopy {
            source: abi::GnttabCopyPtr {
                u: src.0,
                domid: src.1,
                offset: src.2,
                _pad: 0,
            },
            dest: abi::GnttabCopyPtr {
                u: dst.0,
                domid: dst.1,
                offset: dst.2,
                _pad: 0,
            },
            len,
            flags,
            status: 0,
            _pad: 0,
        }
    }

    #[test]
    fn copy_parse() {
        let selfd = DomId::SELF.0;
        assert_eq!(
            CopyOp::parse(&copy_op((1, 99, 4000), (2, 99, 4000), 0, 0)),
            Ok(None)
        );
        let op = copy_op(
            (8, 1, 100),
            (0x4_1000, selfd, 0),
            200,
            abi::GNTCOPY_SOURCE_GREF,
        );
        assert_eq!(
            CopyOp::parse(&op),
            Ok(Some(CopyOp {
                source: CopySide::Grant {
                    dom: D1,
                    gref: 8,
                    offset: 100
                },
                dest: CopySide::Local {
                    gfn: 0x4_1000,
                    offset: 0
                },
                len: 200,
            }))
        );
        // Frame side not DOMID_SELF.
        let op = copy_op((8, 1, 0), (0x4_1000, 2, 0), 1, abi::GNTCOPY_SOURCE_GREF);
        let err = CopyOp::parse(&op).unwrap_err();
        assert_eq!(
            (err.status(), err.errno()),
            (abi::GNTST_PERMISSION_DENIED, Errno::EPERM)
        );
        // Beyond the page.
        let op = copy_op((8, 1, 4000), (1, selfd, 0), 97, abi::GNTCOPY_SOURCE_GREF);
        assert_eq!(
            CopyOp::parse(&op).unwrap_err().status(),
            abi::GNTST_BAD_COPY_ARG
        );
        let op = copy_op(
            (8, 1, 0),
            (1, selfd, 0xffff),
            0xffff,
            abi::GNTCOPY_SOURCE_GREF,
        );
        assert_eq!(CopyOp::parse(&op), Err(GrantError::BadCopyArg));
        let op = copy_op((8, 1, 0), (1, selfd, 0), 4096, 3);
        assert!(CopyOp::parse(&op).unwrap().is_some());
        let op = copy_op((u64::MAX, selfd, 0), (1, 1, 0), 1, abi::GNTCOPY_DEST_GREF);
        assert_eq!(CopyOp::parse(&op), Err(GrantError::BadGfn(u64::MAX)));
    }

    #[test]
    fn copy_pins() {
        let (mut g, _, mut e) = setup();
        let src = acquire_for_copy(&mut g, &mut e, 9, D2, true).unwrap();
        assert_eq!(src.frame, 0x4_0124);
        assert_eq!(e.flags(9), GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING);
        let dst = acquire_for_copy(&mut g, &mut e, 8, D2, false).unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
        // Writable copy into a read-only grant, or a grant for someone else.
        assert_eq!(
            acquire_for_copy(&mut g, &mut e, 9, D2, false),
            Err(GrantError::ReadOnlyGrant(9))
        );
        assert_eq!(
            acquire_for_copy(&mut g, &mut e, 10, D2, true),
            Err(GrantError::NotGranted(10))
        );
        assert_eq!(
            acquire_for_copy(&mut g, &mut e, 512, D2, true),
            Err(GrantError::BadGntref(512))
        );
        // A different table refuses the release.
        let mut other = table(D3);
        assert_eq!(
            release_for_copy(&mut other, &mut e, src),
            Err(GrantError::PeerMismatch { needed: D1 })
        );
        release_for_copy(&mut g, &mut e, src).unwrap();
        release_for_copy(&mut g, &mut e, dst).unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
        assert_eq!(e.flags(9), GTF_PERMIT_ACCESS | GTF_READONLY);
        // Releasing twice is an error, not an underflow.
        assert_eq!(
            release_for_copy(&mut g, &mut e, dst),
            Err(GrantError::BadGntref(8))
        );
        assert_eq!(g.active_count(), 0);
    }

    #[test]
    fn transient_copy_pins() {
        let (mut g, mut m, mut e) = setup();
        // Source (read-only grant 9) and destination (grant 8): bits set
        // during the call, cleared after, nothing recorded.
        let f = with_grant_for_copy(&mut g, &mut e, 9, D2, true, Ok);
        assert_eq!(f, Ok(0x4_0124));
        assert_eq!(e.flags(9), GTF_PERMIT_ACCESS | GTF_READONLY);
        let mut seen = 0;
        let r = with_grant_for_copy(&mut g, &mut e, 8, D2, false, |_| {
            seen += 1;
            Ok(())
        });
        assert_eq!((r, seen), (Ok(()), 1));
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
        assert_eq!(g.active_count(), 0);
        // The same refusals as acquire_for_copy, and f is not called.
        let never = |_| -> Result<(), GrantError> { panic!("called on a refused grant") };
        assert_eq!(
            with_grant_for_copy(&mut g, &mut e, 9, D2, false, never),
            Err(GrantError::ReadOnlyGrant(9))
        );
        assert_eq!(
            with_grant_for_copy(&mut g, &mut e, 10, D2, true, never),
            Err(GrantError::NotGranted(10))
        );
        assert_eq!(
            with_grant_for_copy(&mut g, &mut e, 512, D2, true, never),
            Err(GrantError::BadGntref(512))
        );
        assert_eq!(
            with_grant_for_copy(&mut g, &mut e, 8, D3, true, never),
            Err(GrantError::NotGranted(8))
        );
        // f's error comes back with the bits put back.
        assert_eq!(
            with_grant_for_copy(&mut g, &mut e, 8, D2, false, |_| -> Result<(), _> {
                Err(GrantError::BadPage)
            }),
            Err(GrantError::BadPage)
        );
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
        // With a read-only mapping of grant 8 held by D2: a writable copy
        // adds GTF_writing for its duration only; the mapping's pin and
        // GTF_reading stay; another domain is refused.
        let r = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, true),
            ok_install,
        )
        .unwrap();
        with_grant_for_copy(&mut g, &mut e, 8, D2, false, |frame| {
            assert_eq!(frame, 0x4_0123);
            Ok(())
        })
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING);
        assert_eq!(g.active(8).map(|a| (a.pins_ro, a.pins_rw)), Some((1, 0)));
        assert_eq!(
            with_grant_for_copy(&mut g, &mut e, 8, D3, true, never),
            Err(GrantError::HeldByOther(8))
        );
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            r.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
        assert_eq!(g.active_count(), 0);
    }

    #[test]
    fn copy_and_map_share_pins() {
        let (mut g, mut m, mut e) = setup();
        let r = map_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            &req(8, D1, true),
            ok_install,
        )
        .unwrap();
        let c = acquire_for_copy(&mut g, &mut e, 8, D2, false).unwrap();
        assert_eq!(g.active(8).map(|a| (a.pins_ro, a.pins_rw)), Some((1, 1)));
        release_for_copy(&mut g, &mut e, c).unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS | GTF_READING);
        unmap_grant_ref(
            &mut m,
            Peer::Other(&mut g),
            &mut e,
            r.handle,
            HOST,
            ok_remove,
        )
        .unwrap();
        assert_eq!(e.flags(8), GTF_PERMIT_ACCESS);
        let _ = vec![0u8; 0];
    }

    #[test]
    fn from_abi() {
        let op = abi::GnttabMapGrantRef {
            host_addr: 0x1234_5000,
            flags: abi::GNTMAP_HOST_MAP | abi::GNTMAP_READONLY,
            r#ref: 7,
            dom: 3,
            ..Default::default()
        };
        let r = MapRequest::from_abi(&op);
        assert_eq!(
            (r.host_addr, r.gref, r.dom, r.readonly()),
            (Ipa(0x1234_5000), 7, D3, true)
        );
        assert_eq!(GrantError::BadDomain(D3).status(), abi::GNTST_BAD_DOMAIN);
        assert_eq!(GrantError::BadDomain(D3).errno(), Errno::ESRCH);
    }
}
