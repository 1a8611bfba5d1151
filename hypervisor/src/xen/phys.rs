//! Raw access to the host pages behind guest ABI structures: frames this
//! module allocates, atomic bit operations on `shared_info`/`vcpu_info`
//! (the [`GuestEventBits`] of a domain), atomic updates of grant entries
//! (the [`GrantEntries`] of a domain) and copies between guest pages.
//!
//! Everything goes through the hypervisor's identity map (host PA = EL2
//! VA, Normal write-back, like the guest's own mapping of the same pages,
//! so atomics and plain accesses are coherent with the guest's). The
//! `unsafe` is confined to the small functions at the top; their callers
//! guarantee that the address is RAM the domain owns (or a frame of this
//! module) for the duration of the access.

use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

use oxen_mm::TableMemory;
use oxen_types::{Ipa, PAGE_SIZE, PhysAddr, PhysRange, VcpuId};
use oxen_xen::evtchn::{GuestEventBits, NR_EVTCHN_2L, Port, VcpuBits};
use oxen_xen::grant::{GrantEntries, GrantRef};
use xen_abi::grant_table::{GRANT_ENTRIES_V1_PER_FRAME, GRANT_ENTRY_V1_SIZE, GrantEntryV1};
use xen_abi::shared_info::{
    OFF_SHARED_EVTCHN_MASK, OFF_SHARED_EVTCHN_PENDING, OFF_VCPU_PENDING_SEL,
    OFF_VCPU_UPCALL_PENDING,
};

use crate::arch;
use crate::mem::{FRAMES, HostTables};

// ---- the unsafe core ----

/// The 64-bit word at host address `pa`.
///
/// # Safety
/// `pa` is 8-byte aligned and lies in RAM that stays allocated to the
/// caller's purpose while the reference is used (a frame of this module or
/// RAM of a domain the caller keeps alive), identity-mapped Normal.
unsafe fn word64<'a>(pa: u64) -> &'a AtomicU64 {
    // SAFETY: per this function's contract; AtomicU64 has u64's layout and
    // every access to the word (ours and the guest's) is atomic or racy
    // only on the guest's side.
    unsafe { AtomicU64::from_ptr(pa as *mut u64) }
}

/// The 32-bit word at host address `pa`.
///
/// # Safety
/// As [`word64`], 4-byte aligned.
unsafe fn word32<'a>(pa: u64) -> &'a AtomicU32 {
    // SAFETY: per this function's contract.
    unsafe { AtomicU32::from_ptr(pa as *mut u32) }
}

/// The 16-bit word at host address `pa`.
///
/// # Safety
/// As [`word64`], 2-byte aligned.
unsafe fn word16<'a>(pa: u64) -> &'a AtomicU16 {
    // SAFETY: per this function's contract.
    unsafe { AtomicU16::from_ptr(pa as *mut u16) }
}

/// The byte at host address `pa`.
///
/// # Safety
/// As [`word64`].
unsafe fn byte<'a>(pa: u64) -> &'a AtomicU8 {
    // SAFETY: per this function's contract.
    unsafe { AtomicU8::from_ptr(pa as *mut u8) }
}

/// Copy `len` bytes between host addresses; the ranges may overlap.
///
/// # Safety
/// Both ranges are RAM as in [`word64`] (guest pages validated by the
/// caller for this copy).
pub(super) unsafe fn copy(dst: u64, src: u64, len: usize) {
    let disjoint = dst + len as u64 <= src || src + len as u64 <= dst;
    if disjoint && (dst ^ src) & 7 != 0 {
        // Mutually misaligned (netback's grant copies): the generic copy
        // would move single bytes on this strict-alignment target.
        // SAFETY: per this function's contract; the ranges do not overlap.
        unsafe { arch::copy_phys_unaligned(dst, src, len) };
    } else {
        // SAFETY: per this function's contract; `copy` allows overlap (a
        // grant copy within one page).
        unsafe { core::ptr::copy(src as *const u8, dst as *mut u8, len) };
    }
}

// ---- frames ----

/// A zeroed host page from `FRAMES`.
pub(super) fn alloc_frame() -> Option<PhysAddr> {
    let pa = crate::mem::alloc_scrubbing(|f| f.alloc(PAGE_SIZE, PAGE_SIZE)).ok()?;
    // SAFETY: a page just taken from the allocator: nobody else uses it.
    unsafe { arch::zero_phys(pa.as_u64(), PAGE_SIZE as usize) };
    Some(pa)
}

/// Scrub a page of ours and give it back to `FRAMES`.
pub(super) fn free_frame(pa: PhysAddr) {
    // SAFETY: a frame allocated by `alloc_frame`, no longer mapped anywhere.
    unsafe { arch::zero_phys(pa.as_u64(), PAGE_SIZE as usize) };
    if let Err(e) = FRAMES.lock().free(PhysRange::new(pa, PAGE_SIZE)) {
        log::error!("freeing Xen frame {pa}: {e:?}");
    }
}

/// Zero one page of a domain's RAM (re-populated balloon page).
pub(super) fn zero_page(pa: PhysAddr) {
    // SAFETY: the caller passes a page of the domain's own RAM that the
    // guest does not map (it comes from the domain's pool).
    unsafe { arch::zero_phys(pa.as_u64(), PAGE_SIZE as usize) };
}

/// Zero host RAM just taken from `FRAMES` for a domain (run-time populate).
pub(super) fn zero_range(r: PhysRange) {
    // SAFETY: the range was just allocated from `FRAMES` and is not mapped
    // by anyone yet.
    unsafe { arch::zero_phys(r.start.as_u64(), r.size as usize) };
}

/// Copy a `vcpu_info` (48 bytes) from `src` to `dst`, or zero `dst`.
pub(super) fn move_vcpu_info(dst: PhysAddr, src: Option<PhysAddr>) {
    let len = core::mem::size_of::<xen_abi::shared_info::VcpuInfo>();
    match src {
        // SAFETY: both are vcpu_info areas of the same domain (its RAM or
        // its shared_info frame), validated at registration.
        Some(s) => unsafe { copy(dst.as_u64(), s.as_u64(), len) },
        // SAFETY: as above.
        None => unsafe { arch::zero_phys(dst.as_u64(), len) },
    }
}

// ---- stage-2 tables of a running domain ----

/// `HostTables` for a domain that may be running: block splits flush the
/// domain's TLB entries between break and make.
pub(super) struct LiveTables {
    /// The domain's VTTBR_EL2 (VMID).
    pub vttbr: u64,
    /// Where the pages come from.
    pub host: HostTables,
}

impl TableMemory for LiveTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        self.host.alloc_table()
    }

    fn free_table(&mut self, pa: PhysAddr) {
        self.host.free_table(pa)
    }

    fn table(&mut self, pa: PhysAddr) -> &mut [u64; 512] {
        self.host.table(pa)
    }

    fn alloc_root(&mut self, pages: usize) -> Option<PhysAddr> {
        self.host.alloc_root(pages)
    }

    fn flush_for_bbm(&mut self, _ipa: Ipa, _size: u64) {
        arch::flush_guest_tlb(self.vttbr);
    }
}

// ---- event bits ----

/// A domain's event bits: `shared_info`'s bitmaps and each vCPU's
/// selector/upcall flag (its registered `vcpu_info`, else vCPU 0's legacy
/// slot in `shared_info`, else a private copy).
pub(super) struct LiveBits<'a> {
    /// The shared_info frame (`None` only if it could not be allocated:
    /// then every port reads as pending and masked, so nothing is
    /// delivered).
    pub shared: Option<PhysAddr>,
    /// Registered vcpu_info areas.
    pub vcpu_info: &'a [Option<PhysAddr>],
    /// Bits of vCPUs without an area.
    pub private: &'a mut [VcpuBits],
}

/// Word address and bit of `port` in the bitmap at `off` of shared_info.
fn bitmap(shared: Option<PhysAddr>, off: usize, port: Port) -> Option<(u64, u64)> {
    let s = shared?;
    if port.0 >= NR_EVTCHN_2L {
        return None;
    }
    let word = s.as_u64() + off as u64 + u64::from(port.0 / 64) * 8;
    Some((word, 1u64 << (port.0 % 64)))
}

impl LiveBits<'_> {
    /// Host address of `vcpu`'s vcpu_info, if it has one in guest-visible
    /// memory.
    fn area(&self, vcpu: VcpuId) -> Option<u64> {
        match self.vcpu_info.get(vcpu.0 as usize) {
            Some(Some(pa)) => Some(pa.as_u64()),
            Some(None) if vcpu.0 == 0 => self.shared.map(|s| s.as_u64()),
            _ => None,
        }
    }

    /// `evtchn_upcall_pending` of `vcpu`.
    pub fn upcall_pending(&self, vcpu: VcpuId) -> bool {
        match self.area(vcpu) {
            Some(a) => {
                // SAFETY: a vcpu_info area (see `area`), byte access.
                let f = unsafe { byte(a + OFF_VCPU_UPCALL_PENDING as u64) };
                f.load(Ordering::Acquire) != 0
            }
            None => self
                .private
                .get(vcpu.0 as usize)
                .is_some_and(|b| b.upcall_pending),
        }
    }

    /// Mark everything pending on `vcpu` (after registering its vcpu_info,
    /// like Xen, so nothing sent before is lost). Returns whether the
    /// upcall flag went 0 → 1.
    pub fn mark_all_pending(&mut self, vcpu: VcpuId) -> bool {
        if let Some(a) = self.area(vcpu) {
            // SAFETY: a vcpu_info area, 8-aligned selector.
            unsafe { word64(a + OFF_VCPU_PENDING_SEL as u64) }.store(!0, Ordering::Release);
        }
        !self.set_upcall_pending(vcpu)
    }
}

impl GuestEventBits for LiveBits<'_> {
    fn set_pending(&mut self, port: Port) -> bool {
        match bitmap(self.shared, OFF_SHARED_EVTCHN_PENDING, port) {
            // SAFETY: a word of the pending bitmap in our shared_info frame.
            Some((w, b)) => unsafe { word64(w) }.fetch_or(b, Ordering::AcqRel) & b != 0,
            None => true,
        }
    }

    fn clear_pending(&mut self, port: Port) {
        if let Some((w, b)) = bitmap(self.shared, OFF_SHARED_EVTCHN_PENDING, port) {
            // SAFETY: as in set_pending.
            unsafe { word64(w) }.fetch_and(!b, Ordering::AcqRel);
        }
    }

    fn is_pending(&self, port: Port) -> bool {
        match bitmap(self.shared, OFF_SHARED_EVTCHN_PENDING, port) {
            // SAFETY: as in set_pending.
            Some((w, b)) => unsafe { word64(w) }.load(Ordering::Acquire) & b != 0,
            None => false,
        }
    }

    fn is_masked(&self, port: Port) -> bool {
        match bitmap(self.shared, OFF_SHARED_EVTCHN_MASK, port) {
            // SAFETY: a word of the mask bitmap in our shared_info frame.
            Some((w, b)) => unsafe { word64(w) }.load(Ordering::Acquire) & b != 0,
            None => true,
        }
    }

    fn clear_mask(&mut self, port: Port) -> bool {
        match bitmap(self.shared, OFF_SHARED_EVTCHN_MASK, port) {
            // SAFETY: as in is_masked.
            Some((w, b)) => unsafe { word64(w) }.fetch_and(!b, Ordering::AcqRel) & b != 0,
            None => false,
        }
    }

    fn set_selector(&mut self, vcpu: VcpuId, word: u32) -> bool {
        if word >= 64 {
            return true;
        }
        let b = 1u64 << word;
        match self.area(vcpu) {
            Some(a) => {
                // SAFETY: a vcpu_info area, 8-aligned selector.
                let sel = unsafe { word64(a + OFF_VCPU_PENDING_SEL as u64) };
                sel.fetch_or(b, Ordering::AcqRel) & b != 0
            }
            None => match self.private.get_mut(vcpu.0 as usize) {
                Some(p) => {
                    let was = p.selector & b != 0;
                    p.selector |= b;
                    was
                }
                None => true,
            },
        }
    }

    fn set_upcall_pending(&mut self, vcpu: VcpuId) -> bool {
        match self.area(vcpu) {
            Some(a) => {
                // SAFETY: a vcpu_info area, byte access.
                let f = unsafe { byte(a + OFF_VCPU_UPCALL_PENDING as u64) };
                f.swap(1, Ordering::AcqRel) != 0
            }
            None => match self.private.get_mut(vcpu.0 as usize) {
                Some(p) => core::mem::replace(&mut p.upcall_pending, true),
                None => true,
            },
        }
    }
}

// ---- grant entries ----

/// A domain's v1 grant entries in its grant frames.
pub(super) struct FrameEntries<'a>(pub &'a [PhysAddr]);

impl FrameEntries<'_> {
    fn entry(&self, gref: GrantRef) -> Option<u64> {
        let frame = self.0.get((gref / GRANT_ENTRIES_V1_PER_FRAME) as usize)?;
        Some(
            frame.as_u64()
                + u64::from(gref % GRANT_ENTRIES_V1_PER_FRAME) * GRANT_ENTRY_V1_SIZE as u64,
        )
    }
}

impl GrantEntries for FrameEntries<'_> {
    fn read(&self, gref: GrantRef) -> Option<GrantEntryV1> {
        let e = self.entry(gref)?;
        // SAFETY: an 8-aligned entry inside one of our grant frames.
        let v = unsafe { word64(e) }.load(Ordering::Acquire);
        Some(GrantEntryV1 {
            flags: v as u16,
            domid: (v >> 16) as u16,
            frame: (v >> 32) as u32,
        })
    }

    fn cmpxchg_header(&mut self, gref: GrantRef, old: u32, new: u32) -> Option<u32> {
        let e = self.entry(gref)?;
        // SAFETY: the 4-aligned header word of an entry in our grant frames.
        let w = unsafe { word32(e) };
        Some(
            match w.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(v) | Err(v) => v,
            },
        )
    }

    fn clear_flags(&mut self, gref: GrantRef, mask: u16) {
        if let Some(e) = self.entry(gref) {
            // SAFETY: the 2-aligned flags of an entry in our grant frames.
            unsafe { word16(e) }.fetch_and(!mask, Ordering::AcqRel);
        }
    }
}
