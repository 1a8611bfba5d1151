//! Physical memory: the global range allocator, the RAM of destroyed
//! domains waiting to be scrubbed, the heap, and the `TableMemory`
//! implementation stage-2 tables are built with.
//!
//! Invariant: every page in [`FRAMES`] holds nothing a domain wrote. A
//! destroyed domain's RAM goes to [`DIRTY`] instead ([`free_dirty`]) and
//! reaches `FRAMES` only once zeroed: by idle CPUs and CPUs whose vCPU
//! waits in place for an interrupt (guests trap WFI meanwhile), a piece at
//! a time ([`scrub_some`]), or all at once when an allocation finds
//! `FRAMES` short ([`alloc_scrubbing`]), as Xen scrubs freed pages in its
//! idle loop and on demand. Free-memory figures count both
//! ([`free_bytes`]), as Xen's do.
//!
//! Lock order: `DIRTY` and `FRAMES` are never held together (a piece is
//! taken from `DIRTY`, zeroed with no lock held, then given to `FRAMES`).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::sync::Mutex;
use buddy_system_allocator::LockedHeap;
use oxen_mm::{AllocError, PhysAllocator, TableMemory};
use oxen_types::{PAGE_SIZE, PhysAddr, PhysRange};

use crate::arch;

/// Every free page of host RAM (not the image, DTB, boot modules or
/// memory given to domains).
pub static FRAMES: Mutex<PhysAllocator> = Mutex::new(PhysAllocator::new());

/// RAM of destroyed domains not zeroed yet (see the module docs).
static DIRTY: Mutex<PhysAllocator> = Mutex::new(PhysAllocator::new());
/// Bytes in [`DIRTY`] plus those being zeroed, readable without its lock.
static DIRTY_BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes scrubbed since boot, and of those, scrubbed because an allocation
/// needed them (the rest by idle CPUs or because `DIRTY` was full).
static SCRUBBED: AtomicU64 = AtomicU64::new(0);
static SCRUBBED_ON_DEMAND: AtomicU64 = AtomicU64::new(0);

/// What an idle CPU zeroes before it looks for work again: 512 KiB, about
/// 30 us under QEMU (DC ZVA), so a wake-up waits at most that long.
const SCRUB_PIECE: u64 = 512 << 10;

/// Give back the RAM of a destroyed domain: free, but allocatable only once
/// zeroed. If the list is full the range is zeroed here and now.
pub fn free_dirty(r: PhysRange) {
    DIRTY_BYTES.fetch_add(r.size, Ordering::SeqCst);
    if DIRTY.lock().free(r).is_ok() {
        crate::sched::memory_to_scrub();
        return;
    }
    scrub_and_free(r);
}

/// Zero `r` (a range taken from [`DIRTY`] or refused by it) and give it to
/// [`FRAMES`].
fn scrub_and_free(r: PhysRange) {
    // SAFETY: `r` belongs to no domain any more and is in neither list, so
    // only this CPU touches it until it is freed below.
    unsafe { arch::zero_phys(r.start.as_u64(), r.size as usize) };
    if let Err(e) = FRAMES.lock().free(r) {
        log::error!("returning scrubbed RAM {r}: {e:?}");
    }
    DIRTY_BYTES.fetch_sub(r.size, Ordering::SeqCst);
    SCRUBBED.fetch_add(r.size, Ordering::Relaxed);
}

/// Whether RAM waits to be scrubbed.
pub fn has_dirty() -> bool {
    DIRTY_BYTES.load(Ordering::SeqCst) != 0
}

/// Zero one piece (at most [`SCRUB_PIECE`]) of the RAM waiting in
/// [`DIRTY`] and make it allocatable. Returns false if there was none (at
/// the cost of an atomic load while none waits: CPUs call it before they
/// wait).
pub fn scrub_some() -> bool {
    if !has_dirty() {
        return false;
    }
    let Some(r) = DIRTY.lock().take_top(SCRUB_PIECE) else {
        return false;
    };
    scrub_and_free(r);
    true
}

/// Run `f` on [`FRAMES`]; if it fails while RAM waits to be scrubbed,
/// scrub all of it and run `f` once more. Call with no lock `scrub_some`
/// or `free_dirty` takes held (it may wait for another CPU's piece).
pub fn alloc_scrubbing<T>(
    mut f: impl FnMut(&mut PhysAllocator) -> Result<T, AllocError>,
) -> Result<T, AllocError> {
    let r = f(&mut FRAMES.lock());
    if r.is_ok() || !has_dirty() {
        return r;
    }
    let before = SCRUBBED.load(Ordering::Relaxed);
    loop {
        if scrub_some() {
            continue;
        }
        if !has_dirty() {
            break;
        }
        // Another CPU is zeroing a piece, or adding a range: microseconds.
        core::hint::spin_loop();
    }
    let now = SCRUBBED.load(Ordering::Relaxed);
    SCRUBBED_ON_DEMAND.fetch_add(now.saturating_sub(before), Ordering::Relaxed);
    f(&mut FRAMES.lock())
}

/// The scrubbing figures at one moment, shown as one `memory: ...` line
/// (debug key `x`).
pub struct ScrubStats {
    free: u64,
    dirty: u64,
    scrubbed: u64,
    on_demand: u64,
}

/// The scrubbing figures now.
pub fn scrub_stats() -> ScrubStats {
    ScrubStats {
        free: FRAMES.lock().free_bytes(),
        dirty: DIRTY_BYTES.load(Ordering::Acquire),
        scrubbed: SCRUBBED.load(Ordering::Relaxed),
        on_demand: SCRUBBED_ON_DEMAND.load(Ordering::Relaxed),
    }
}

impl core::fmt::Display for ScrubStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "memory: {} KiB free, {} KiB waiting to be scrubbed, {} KiB scrubbed ({} KiB when an allocation needed it)",
            self.free >> 10,
            self.dirty >> 10,
            self.scrubbed >> 10,
            self.on_demand >> 10
        )
    }
}

/// Free host RAM in bytes: allocatable plus waiting to be scrubbed.
pub fn free_bytes() -> u64 {
    FRAMES.lock().free_bytes() + DIRTY_BYTES.load(Ordering::Acquire)
}

/// Heap size, carved out of .bss.
const HEAP_SIZE: usize = 8 << 20;

#[repr(C, align(4096))]
struct HeapArea([u8; HEAP_SIZE]);
static mut HEAP_AREA: HeapArea = HeapArea([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Give the heap its memory (MMU on, before any allocation).
pub fn init_heap() {
    let start = (&raw mut HEAP_AREA) as usize;
    // SAFETY: HEAP_AREA is used for nothing else and lives forever.
    unsafe { HEAP.lock().init(start, HEAP_SIZE) };
}

/// Bytes of heap in use / total, for the memory figure.
pub fn heap_usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.stats_alloc_actual(), HEAP_SIZE)
}

/// Translation-table pages come from [`FRAMES`] and are reached through the
/// identity map.
pub struct HostTables;

impl TableMemory for HostTables {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        let pa = alloc_scrubbing(|f| f.alloc(PAGE_SIZE, PAGE_SIZE)).ok()?;
        // SAFETY: a page just taken from the allocator: nobody else uses it.
        unsafe { arch::zero_phys(pa.as_u64(), PAGE_SIZE as usize) };
        Some(pa)
    }

    fn alloc_root(&mut self, pages: usize) -> Option<PhysAddr> {
        let size = pages as u64 * PAGE_SIZE;
        let pa = alloc_scrubbing(|f| f.alloc(size, size)).ok()?;
        // SAFETY: pages just taken from the allocator.
        unsafe { arch::zero_phys(pa.as_u64(), size as usize) };
        Some(pa)
    }

    fn free_table(&mut self, pa: PhysAddr) {
        if let Err(e) = FRAMES.lock().free(PhysRange::new(pa, PAGE_SIZE)) {
            log::error!("freeing table page {pa}: {e:?}");
        }
    }

    fn table(&mut self, pa: PhysAddr) -> &mut [u64; 512] {
        // SAFETY: `pa` is a table page owned by the stage-2 structure that
        // asks for it (allocated through alloc_table/alloc_root above).
        unsafe { arch::phys_page_mut(pa.as_u64()) }
    }
}
