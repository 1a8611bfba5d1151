//! Physical memory: the global range allocator, the heap, and the
//! `TableMemory` implementation stage-2 tables are built with.

use crate::sync::Mutex;
use buddy_system_allocator::LockedHeap;
use oxen_mm::{PhysAllocator, TableMemory};
use oxen_types::{PAGE_SIZE, PhysAddr, PhysRange};

use crate::arch;

/// Every free page of host RAM (not the image, DTB, boot modules or
/// memory given to domains).
pub static FRAMES: Mutex<PhysAllocator> = Mutex::new(PhysAllocator::new());

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
        let pa = FRAMES.lock().alloc(PAGE_SIZE, PAGE_SIZE).ok()?;
        // SAFETY: a page just taken from the allocator: nobody else uses it.
        unsafe { arch::zero_phys(pa.as_u64(), PAGE_SIZE as usize) };
        Some(pa)
    }

    fn alloc_root(&mut self, pages: usize) -> Option<PhysAddr> {
        let size = pages as u64 * PAGE_SIZE;
        let pa = FRAMES.lock().alloc(size, size).ok()?;
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
