//! `memory_op`: mapping shared_info and grant-table frames
//! (`XENMEM_add_to_physmap`), foreign pages for Dom0's toolstack
//! (`add_to_physmap_batch` with `XENMAPSPACE_gmfn_foreign`,
//! `remove_from_physmap`), the balloon (`decrease_reservation`,
//! `populate_physmap`) and reservation queries.
//!
//! Reservation calls are continued like Xen's: after a batch of extents
//! the start extent is stored in `cmd` bits 6.. and the guest re-issues
//! the call.

extern crate alloc;

use alloc::sync::Arc;

use oxen_mm::S2Attrs;
use oxen_types::{DomId, PAGE_SIZE, PhysAddr, PhysRange};
use oxen_xen::hcall;
use xen_abi::Errno;
use xen_abi::memory::{
    MEMOP_CMD_MASK, MEMOP_EXTENT_SHIFT, XENMAPIDX_GRANT_TABLE_STATUS, XENMAPSPACE_DEV_MMIO,
    XENMAPSPACE_GMFN_FOREIGN, XENMAPSPACE_GRANT_TABLE, XENMAPSPACE_SHARED_INFO,
    XENMEM_ACQUIRE_RESOURCE, XENMEM_ADD_TO_PHYSMAP, XENMEM_ADD_TO_PHYSMAP_BATCH,
    XENMEM_CLAIM_PAGES, XENMEM_CURRENT_RESERVATION, XENMEM_DECREASE_RESERVATION,
    XENMEM_INCREASE_RESERVATION, XENMEM_MAXIMUM_GPFN, XENMEM_MAXIMUM_RESERVATION,
    XENMEM_POPULATE_PHYSMAP, XENMEM_REMOVE_FROM_PHYSMAP, XENMEM_RESOURCE_GRANT_TABLE,
    XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED, XenAddToPhysmap, XenAddToPhysmapBatch,
    XenMemAcquireResource, XenMemoryReservation, XenRemoveFromPhysmap,
};

use super::{
    DomainXen, continuation, foreign_attrs, lock, phys, read_arg, s2_lookup, s2_map, s2_unmap,
    vacate,
};
use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::guest_mem;
use crate::mem::FRAMES;

pub(crate) fn memory_op(
    dom: &Arc<Domain>,
    _vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
    let cmd = a[0] & MEMOP_CMD_MASK;
    let start = a[0] >> MEMOP_EXTENT_SHIFT;
    let arg = a[1];
    match cmd {
        XENMEM_ADD_TO_PHYSMAP => {
            let op: XenAddToPhysmap = read_arg(dom, arg)?;
            // Xen: foreign mappings only through add_to_physmap_batch.
            if op.space == XENMAPSPACE_GMFN_FOREIGN {
                return Err(Errno::ENOSYS);
            }
            let target = target(dom, op.domid)?;
            // Xen's xatp_permission_check: dev_mmio only for the hardware
            // domain on itself.
            if op.space == XENMAPSPACE_DEV_MMIO && !(dom.is_dom0 && Arc::ptr_eq(dom, &target)) {
                return Err(Errno::EACCES);
            }
            add_to_physmap(&target, op.space, op.idx, op.gpfn)?;
            Ok(0)
        }
        XENMEM_ADD_TO_PHYSMAP_BATCH => add_to_physmap_batch(dom, arg),
        XENMEM_ACQUIRE_RESOURCE => acquire_resource(dom, arg),
        XENMEM_CLAIM_PAGES => {
            // libxl claims a new domain's memory before populating it (xl's
            // claim_mode, on by default). oxen keeps no claims: it checks that
            // the memory is free now, as Xen does when it takes a claim.
            let r: XenMemoryReservation = read_arg(dom, arg)?;
            let t = target(dom, r.domid)?;
            if !dom.is_dom0 || Arc::ptr_eq(dom, &t) {
                return Err(Errno::EPERM);
            }
            if r.extent_order != 0 || r.mem_flags != 0 {
                return Err(Errno::EINVAL);
            }
            let free = crate::mem::free_bytes() / PAGE_SIZE;
            if r.nr_extents > free {
                return Err(Errno::ENOMEM);
            }
            Ok(0)
        }
        XENMEM_REMOVE_FROM_PHYSMAP => {
            let op: XenRemoveFromPhysmap = read_arg(dom, arg)?;
            let target = target(dom, op.domid)?;
            remove_from_physmap(&target, op.gpfn)?;
            Ok(0)
        }
        XENMEM_DECREASE_RESERVATION | XENMEM_POPULATE_PHYSMAP | XENMEM_INCREASE_RESERVATION => {
            // Xen answers every argument error of these three (bad
            // pointer, no such domain, not permitted, bad sizes) with the
            // number of extents done so far, never an errno.
            let Ok(r) = read_arg::<XenMemoryReservation>(dom, arg) else {
                return Ok(start as i64);
            };
            let Ok(target) = target(dom, r.domid) else {
                return Ok(start as i64);
            };
            // Larger extents only for the toolstack building another domain.
            let max_order = if cmd == XENMEM_POPULATE_PHYSMAP && !Arc::ptr_eq(dom, &target) {
                hcall::CTLDOM_MAX_ORDER
            } else {
                hcall::MAX_EXTENT_ORDER
            };
            let Some(window) =
                hcall::reservation_window(start, r.nr_extents, r.extent_order, max_order)
            else {
                return Ok(start as i64);
            };
            let end = window.end;
            let done = match cmd {
                XENMEM_DECREASE_RESERVATION => decrease(dom, &target, r.extent_start, window)?,
                XENMEM_POPULATE_PHYSMAP => {
                    populate(dom, &target, r.extent_start, window, r.extent_order)?
                }
                // The pool only refills populate_physmap; an increase of an
                // auto-translated guest's reservation does nothing yet.
                _ => start,
            };
            if done == end && end < r.nr_extents {
                return continuation(frame, cmd | (end << MEMOP_EXTENT_SHIFT));
            }
            Ok(done as i64)
        }
        XENMEM_CURRENT_RESERVATION | XENMEM_MAXIMUM_RESERVATION | XENMEM_MAXIMUM_GPFN => {
            if start != 0 {
                return Err(Errno::EINVAL);
            }
            let mut id = [0u8; 2];
            guest_mem::copy_from_guest(dom, arg, &mut id)?;
            let target = target(dom, u16::from_le_bytes(id))?;
            let ram_pages = target.ram_bytes() / PAGE_SIZE;
            Ok(match cmd {
                XENMEM_CURRENT_RESERVATION => ram_pages - lock(&target).pool.len() as u64,
                XENMEM_MAXIMUM_RESERVATION => ram_pages,
                _ => max_gpfn(&target),
            } as i64)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// The domain a `domid` field names (self, or any domain for Dom0; a
/// missing domain is -ESRCH before a forbidden one is -EPERM, as in Xen).
fn target(dom: &Arc<Domain>, domid: u16) -> Result<Arc<Domain>, Errno> {
    super::target_domain(dom, domid)
}

/// Highest GFN the domain has mapped (RAM, shared_info, grant frames).
fn max_gpfn(dom: &Domain) -> u64 {
    let ram = dom
        .mem
        .iter()
        .map(|b| (b.ipa.as_u64() + b.phys.size) / PAGE_SIZE)
        .max()
        .unwrap_or(1)
        - 1;
    let x = lock(dom);
    let (nr, _) = x.grant.query_size();
    let grants = (0..nr)
        .filter_map(|i| x.grant.frame_gfn(i))
        .max()
        .unwrap_or(0);
    ram.max(x.shared_gfn.unwrap_or(0)).max(grants)
}

/// `XENMEM_add_to_physmap` for `dom` (the target domain).
fn add_to_physmap(dom: &Arc<Domain>, space: u32, idx: u64, gfn: u64) -> Result<(), Errno> {
    super::check_gfn(gfn)?;
    match space {
        XENMAPSPACE_SHARED_INFO => {
            if idx != 0 {
                return Err(Errno::EINVAL);
            }
            let mut x = lock(dom);
            let pa = x.shared_info.ok_or(Errno::ENOMEM)?;
            if x.shared_gfn == Some(gfn) {
                return Ok(());
            }
            if let Some(old) = x.shared_gfn.take() {
                s2_unmap(dom, old)?;
            }
            vacate(dom, &mut x, gfn)?;
            s2_map(dom, gfn, pa, S2Attrs::RAM)?;
            x.shared_gfn = Some(gfn);
            log::debug!("{}: shared_info at gfn {gfn:#x}", dom.id);
            Ok(())
        }
        XENMAPSPACE_GRANT_TABLE => {
            if idx & XENMAPIDX_GRANT_TABLE_STATUS != 0 {
                // Status frames exist only in grant table v2.
                return Err(Errno::EINVAL);
            }
            let mut x = lock(dom);
            let (_, max) = x.grant.query_size();
            if idx >= u64::from(max) {
                return Err(Errno::EINVAL);
            }
            // Back every frame up to idx first, so a failure changes nothing.
            while x.grant_frames.len() as u64 <= idx {
                x.grant_frames.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
                let f = phys::alloc_frame().ok_or(Errno::ENOMEM)?;
                x.grant_frames.push(f);
            }
            let pa = x.grant_frames[idx as usize];
            if s2_lookup(dom, gfn) == Some(pa) {
                return Ok(());
            }
            vacate(dom, &mut x, gfn)?;
            let fm = x.grant.add_to_physmap(idx, gfn).map_err(|e| e.errno())?;
            if let Some(old) = fm.old_gfn {
                s2_unmap(dom, old)?;
            }
            if let Err(e) = s2_map(dom, gfn, pa, S2Attrs::RAM) {
                x.grant.remove_gfn(gfn);
                return Err(e);
            }
            log::debug!("{}: grant frame {idx} at gfn {gfn:#x}", dom.id);
            Ok(())
        }
        _ => {
            // Xen/Arm's xenmem_add_to_physmap_one: any other space
            // (gmfn, gmfn_range, unknown) is -ENOSYS; oxen does not map
            // dev_mmio either.
            log::info!("{}: add_to_physmap space {space} unsupported", dom.id);
            Err(Errno::ENOSYS)
        }
    }
}

/// `XENMEM_add_to_physmap_batch`: only `gmfn_foreign` (privcmd's foreign
/// mappings); each element's result goes to `errs`, the call returns 0.
fn add_to_physmap_batch(dom: &Arc<Domain>, arg: u64) -> Result<i64, Errno> {
    let op: XenAddToPhysmapBatch = read_arg(dom, arg)?;
    let target = target(dom, op.domid)?;
    if u32::from(op.space) != XENMAPSPACE_GMFN_FOREIGN {
        log::info!(
            "{}: add_to_physmap_batch space {} unsupported",
            dom.id,
            op.space
        );
        return Err(Errno::EOPNOTSUPP);
    }
    let fid = DomId(op.foreign_domid);
    let foreign = match crate::domain::get(fid) {
        Some(f) if !Arc::ptr_eq(&f, &target) && dom.is_dom0 => f,
        Some(_) => return Err(Errno::EINVAL),
        None => return Err(Errno::ESRCH),
    };
    // Element addresses: guest pointers plus an offset, checked (a wrap is
    // -EFAULT, not an access somewhere else).
    let elem = |base: u64, i: u64, size: u64| {
        i.checked_mul(size)
            .and_then(|o| base.checked_add(o))
            .ok_or(Errno::EFAULT)
    };
    for i in 0..u64::from(op.size) {
        let mut b = [0u8; 8];
        guest_mem::copy_from_guest(dom, elem(op.idxs, i, 8)?, &mut b)?;
        let fgfn = u64::from_le_bytes(b);
        guest_mem::copy_from_guest(dom, elem(op.gpfns, i, 8)?, &mut b)?;
        let gfn = u64::from_le_bytes(b);
        let rc: i32 = match map_foreign(&target, &foreign, fgfn, gfn) {
            Ok(()) => 0,
            Err(e) => e.as_ret() as i32,
        };
        guest_mem::copy_to_guest(dom, elem(op.errs, i, 4)?, &rc.to_le_bytes())?;
    }
    Ok(0)
}

/// Frames one `acquire_resource` call maps (Linux's privcmd asks for what
/// one `mmap` covers; libxl asks for one).
const ACQUIRE_MAX: u32 = 64;

/// `XENMEM_acquire_resource` (privcmd's `IOCTL_PRIVCMD_MMAP_RESOURCE`):
/// Dom0 maps frames of another domain's grant table (shared frames; v1 has
/// no status frames) at GFNs of its own, listed in `frame_list`. A NULL
/// list with no frames asks the size. The mappings are foreign mappings:
/// `remove_from_physmap` undoes them, and each holds the owner (its frames
/// outlive the mapping). Other resource types are -EOPNOTSUPP, as in Xen.
fn acquire_resource(dom: &Arc<Domain>, arg: u64) -> Result<i64, Errno> {
    let mut r: XenMemAcquireResource = read_arg(dom, arg)?;
    let t = target(dom, r.domid)?;
    if Arc::ptr_eq(&t, dom) {
        return Err(Errno::EPERM);
    }
    if r.flags != 0 {
        return Err(Errno::EINVAL);
    }
    if r.r#type != XENMEM_RESOURCE_GRANT_TABLE {
        return Err(Errno::EOPNOTSUPP);
    }
    if r.id != XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED {
        return Err(Errno::EINVAL);
    }
    let max = super::GRANT_MAX_FRAMES;
    if r.frame_list == 0 && r.nr_frames == 0 {
        r.nr_frames = max;
        super::write_arg(dom, arg, &r)?;
        return Ok(0);
    }
    if r.nr_frames > ACQUIRE_MAX {
        return Err(Errno::E2BIG);
    }
    let end = r
        .frame
        .checked_add(u64::from(r.nr_frames))
        .ok_or(Errno::EINVAL)?;
    if end > u64::from(max) {
        return Err(Errno::EINVAL);
    }
    let mut gfns = [0u64; ACQUIRE_MAX as usize];
    for (i, g) in gfns.iter_mut().enumerate().take(r.nr_frames as usize) {
        *g = extent(dom, r.frame_list, i as u64)?;
        super::check_gfn(*g)?;
    }
    let (mut mx, mut tx) = super::lock_pair(dom, &t);
    // Back every frame asked for first, so a failure maps nothing.
    while (tx.grant_frames.len() as u64) < end {
        tx.grant_frames.try_reserve(1).map_err(|_| Errno::ENOMEM)?;
        let f = phys::alloc_frame().ok_or(Errno::ENOMEM)?;
        tx.grant_frames.push(f);
    }
    for (i, &gfn) in gfns.iter().enumerate().take(r.nr_frames as usize) {
        let pa = tx.grant_frames[r.frame as usize + i];
        if mx.foreign.contains_key(&gfn) {
            return Err(Errno::EBUSY);
        }
        vacate(dom, &mut mx, gfn)?;
        s2_map(dom, gfn, pa, foreign_attrs(false))?;
        mx.foreign.insert(gfn, t.id);
        mx.hold(&t);
    }
    Ok(0)
}

/// Map `foreign`'s page `fgfn` at `gfn` of `dom`.
fn map_foreign(dom: &Arc<Domain>, foreign: &Arc<Domain>, fgfn: u64, gfn: u64) -> Result<(), Errno> {
    super::check_gfn(gfn)?;
    let pa = s2_lookup(foreign, fgfn).ok_or(Errno::EINVAL)?;
    if !foreign.owns_phys(pa, PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let mut x = lock(dom);
    if x.foreign.contains_key(&gfn) {
        return Err(Errno::EBUSY);
    }
    vacate(dom, &mut x, gfn)?;
    s2_map(dom, gfn, pa, foreign_attrs(false))?;
    x.foreign.insert(gfn, foreign.id);
    x.hold(foreign);
    Ok(())
}

/// `XENMEM_remove_from_physmap` of `gfn` in `dom`.
fn remove_from_physmap(dom: &Arc<Domain>, gfn: u64) -> Result<(), Errno> {
    super::check_gfn(gfn)?;
    let released = {
        let mut x = lock(dom);
        match x.foreign.remove(&gfn) {
            Some(owner) => {
                s2_unmap(dom, gfn)?;
                x.unhold(owner)
            }
            None => {
                vacate(dom, &mut x, gfn)?;
                None
            }
        }
    };
    drop(released);
    Ok(())
}

/// Unmap every foreign page `dom` maps (domain death).
pub(super) fn unmap_all_foreign(dom: &Arc<Domain>) {
    let gfns: alloc::vec::Vec<u64> = lock(dom).foreign.keys().copied().collect();
    for g in gfns {
        if let Err(e) = remove_from_physmap(dom, g) {
            log::debug!("{}: unmapping foreign gfn {g:#x}: {e:?}", dom.id);
        }
    }
}

/// Read extent `i` (a GFN) of a reservation's list in the caller's memory.
fn extent(caller: &Domain, list: u64, i: u64) -> Result<u64, Errno> {
    let va = i
        .checked_mul(8)
        .and_then(|o| list.checked_add(o))
        .ok_or(Errno::EFAULT)?;
    let mut b = [0u8; 8];
    guest_mem::copy_from_guest(caller, va, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// `XENMEM_decrease_reservation`: the guest gives up the pages at the
/// listed GFNs. Own RAM goes to the domain's pool; a GFN that maps
/// nothing (or something that is not plain RAM) stops the call there, as
/// in Xen. Returns the index of the first extent not done.
fn decrease(
    caller: &Domain,
    dom: &Arc<Domain>,
    list: u64,
    window: core::ops::Range<u64>,
) -> Result<u64, Errno> {
    let mut x = lock(dom);
    for i in window.clone() {
        // Xen: an unreadable extent list ends the call with what is done.
        let Ok(gfn) = extent(caller, list, i) else {
            return Ok(i);
        };
        match s2_lookup(dom, gfn) {
            Some(pa) if dom.owns_phys(pa, PAGE_SIZE) && !x.foreign.contains_key(&gfn) => {
                vacate(dom, &mut x, gfn)?;
            }
            _ => {
                log::info!(
                    "{}: decrease_reservation of gfn {gfn:#x}: not RAM, stopping",
                    dom.id
                );
                return Ok(i);
            }
        }
    }
    Ok(window.end)
}

/// `XENMEM_populate_physmap`: back each listed (empty, `order`-aligned)
/// GFN with `2^order` pages. Single pages come from the domain's pool
/// first (pages it ballooned out); a 1:1 domain (Dom0) only gets back the
/// page whose address equals the GFN, so its RAM stays identity-mapped for
/// DMA. Any other domain gets fresh zeroed host memory, within its
/// `max_mem`. Stops at the first extent it cannot populate; returns the
/// index of the first extent not done.
fn populate(
    caller: &Domain,
    dom: &Arc<Domain>,
    list: u64,
    window: core::ops::Range<u64>,
    order: u32,
) -> Result<u64, Errno> {
    let pages = 1u64 << order;
    let mut x = lock(dom);
    for i in window.clone() {
        let Ok(gfn) = extent(caller, list, i) else {
            return Ok(i);
        };
        if super::check_gfn(gfn).is_err()
            || super::check_gfn(gfn + pages - 1).is_err()
            || !gfn.is_multiple_of(pages)
            || s2_lookup(dom, gfn).is_some()
        {
            return Ok(i);
        }
        if order == 0
            && let Some(pos) = pick_pool_page(dom, &x, gfn)
        {
            let pa = x.pool.swap_remove(pos);
            phys::zero_page(pa);
            if s2_map(dom, gfn, pa, S2Attrs::RAM).is_err() {
                x.pool.push(pa);
                return Ok(i);
            }
            continue;
        }
        if dom.is_dom0 || !new_ram(dom, &x, gfn, pages) {
            log::debug!(
                "{}: populate_physmap of gfn {gfn:#x} (order {order}): no page",
                dom.id
            );
            return Ok(i);
        }
    }
    Ok(window.end)
}

/// Give `dom` `pages` fresh pages of host RAM at `gfn`, within its
/// `max_mem`. False (nothing changed) if it may not have them, the host has
/// no such block free, or something is mapped in the range.
fn new_ram(dom: &Arc<Domain>, x: &DomainXen, gfn: u64, pages: u64) -> bool {
    let tot = (dom.ram_bytes() / PAGE_SIZE).saturating_sub(x.pool.len() as u64);
    if tot.saturating_add(pages) > dom.max_pages.load(core::sync::atomic::Ordering::Acquire) {
        return false;
    }
    let size = pages * PAGE_SIZE;
    let Ok(pa) = crate::mem::alloc_scrubbing(|f| f.alloc_top(size, size)) else {
        return false;
    };
    let range = PhysRange::new(pa, size);
    phys::zero_range(range);
    let mapped = {
        let mut s2 = dom.stage2.lock();
        match s2.as_mut() {
            Some(s2) => s2
                .map(
                    &mut phys::LiveTables {
                        vttbr: dom.vttbr,
                        host: crate::mem::HostTables,
                    },
                    oxen_types::Ipa(gfn << 12),
                    pa,
                    size,
                    S2Attrs::RAM,
                )
                .is_ok(),
            None => false,
        }
    };
    if !mapped {
        if let Err(e) = FRAMES.lock().free(range) {
            log::error!("{}: returning {range}: {e:?}", dom.id);
        }
        return false;
    }
    dom.add_extra_mem(range);
    true
}

fn pick_pool_page(dom: &Domain, x: &DomainXen, gfn: u64) -> Option<usize> {
    if dom.is_dom0 {
        let want = PhysAddr(gfn << 12);
        x.pool.iter().position(|&p| p == want)
    } else if x.pool.is_empty() {
        None
    } else {
        Some(x.pool.len() - 1)
    }
}
