//! `grant_table_op`, version 1: sizes and versions, map/unmap of other
//! domains' grants into the caller's stage 2 (Dom0 backends: gntdev,
//! blkback, netback), and `GNTTABOP_copy`.
//!
//! Batches report per-element `GNTST_*` status and return 0 (Linux BUGs on
//! a failing batch hypercall); long batches are continued like Xen's, by
//! re-issuing the hypercall with the array pointer and count advanced.
//!
//! Every page a map or copy touches is checked to be RAM of the domain it
//! comes from (the granter's for a grant, the caller's for a local frame)
//! and the grant to allow the access. A copy between a grant and a local
//! frame (netback's receive path) holds the granter's `xen` lock around
//! the copy and pins the grant only for that time, without an active-table
//! entry ([`gt::with_grant_for_copy`]); other copies pin and release.
//! Lock order: a domain's `xen` lock (two in domid order, `lock_pair`),
//! then its stage-2 and `extra_mem` locks.

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::size_of;

use oxen_types::{Ipa, PAGE_SIZE, PhysAddr};
use oxen_xen::Peer;
use oxen_xen::grant::{
    self as gt, CopyGrant, CopyOp, CopySide, GrantError, GrantHandle, MapRequest, MapTarget,
};
use oxen_xen::hcall;
use xen_abi::Errno;
use xen_abi::grant_table::{
    self as abi, GnttabCopy, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize,
    GnttabSetVersion, GnttabUnmapGrantRef,
};

use super::{
    DomainXen, continuation, foreign_attrs, lock, lock_pair, phys, read_arg, s2_lookup, s2_map,
    s2_unmap, write_arg,
};
use crate::arch::head::TrapFrame;
use crate::domain::Domain;

/// Xen's `GNTTABOP_CMD_MASK`: the sub-op is in the low 12 bits of `cmd`.
const GNTTABOP_CMD_MASK: u64 = (1 << 12) - 1;

pub(crate) fn grant_table_op(
    dom: &Arc<Domain>,
    _vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
    // Xen's cmd is an `unsigned int`: the upper half of x0 is ignored.
    let (cmd, uop, count) = (u64::from(a[0] as u32), a[1], a[2]);
    // Xen: bits above GNTTABOP_CMD_MASK are continuation state that only
    // cache_flush uses (-EINVAL otherwise); a count of 2^31 or more is
    // -EINVAL for every sub-op.
    if cmd & !GNTTABOP_CMD_MASK != 0 && cmd & GNTTABOP_CMD_MASK != abi::GNTTABOP_CACHE_FLUSH {
        return Err(Errno::EINVAL);
    }
    if count > u64::from(i32::MAX as u32) {
        return Err(Errno::EINVAL);
    }
    match cmd {
        abi::GNTTABOP_QUERY_SIZE => {
            if count != 1 {
                return Err(Errno::EINVAL);
            }
            let mut op: GnttabQuerySize = read_arg(dom, uop)?;
            match super::target_domain(dom, op.dom) {
                Ok(t) => {
                    (op.nr_frames, op.max_nr_frames) = lock(&t).grant.query_size();
                    op.status = abi::GNTST_OKAY;
                }
                Err(Errno::EPERM) => op.status = abi::GNTST_PERMISSION_DENIED,
                Err(_) => op.status = abi::GNTST_BAD_DOMAIN,
            }
            write_arg(dom, uop, &op)?;
            Ok(0)
        }
        abi::GNTTABOP_SET_VERSION => {
            if count != 1 {
                return Err(Errno::EINVAL);
            }
            let mut op: GnttabSetVersion = read_arg(dom, uop)?;
            let r = lock(dom).grant.set_version(op.version);
            op.version = lock(dom).grant.version();
            write_arg(dom, uop, &op)?;
            r.map(|_| 0).map_err(|e| e.errno())
        }
        abi::GNTTABOP_GET_VERSION => {
            if count != 1 {
                return Err(Errno::EINVAL);
            }
            let mut op: GnttabGetVersion = read_arg(dom, uop)?;
            let t = super::target_domain(dom, op.dom)?;
            op.version = lock(&t).grant.version();
            write_arg(dom, uop, &op)?;
            Ok(0)
        }
        abi::GNTTABOP_MAP_GRANT_REF => batch::<GnttabMapGrantRef>(dom, a, frame, |dom, op| {
            map_one(dom, op);
        }),
        abi::GNTTABOP_UNMAP_GRANT_REF => batch::<GnttabUnmapGrantRef>(dom, a, frame, |dom, op| {
            op.status = match unmap_one(dom, op.handle, Ipa(op.host_addr)) {
                Ok(()) => abi::GNTST_OKAY,
                Err(e) => {
                    log::debug!("{}: unmap_grant_ref handle {:#x}: {e}", dom.id, op.handle);
                    e.status()
                }
            };
        }),
        abi::GNTTABOP_COPY => batch::<GnttabCopy>(dom, a, frame, |dom, op| {
            op.status = match copy_one(dom, op) {
                Ok(()) => abi::GNTST_OKAY,
                Err(e) => {
                    log::debug!("{}: grant copy: {e}", dom.id);
                    e.status()
                }
            };
        }),
        // setup_table is for guests that are not auto-translated (never on
        // ARM); cache_flush is not offered, so Linux bounces foreign DMA
        // buffers instead; transfer/swap/status frames are v2 or PV only.
        _ => Err(Errno::ENOSYS),
    }
}

/// Run `f` on each element of a batch of `T` at `a[1]` (`a[2]` elements),
/// writing each back; continue the hypercall after [`hcall::BATCH_CHUNK`].
fn batch<T: hcall::FromBytes + hcall::IntoBytes + hcall::Immutable>(
    dom: &Arc<Domain>,
    a: [u64; 5],
    frame: &mut TrapFrame,
    mut f: impl FnMut(&Arc<Domain>, &mut T),
) -> Result<i64, Errno> {
    let size = size_of::<T>() as u64;
    let (now, rest) = hcall::batch_split(a[1], a[2], size)?;
    for i in 0..u64::from(now) {
        let va = a[1] + i * size;
        let mut op: T = read_arg(dom, va)?;
        f(dom, &mut op);
        write_arg(dom, va, &op)?;
    }
    match rest {
        Some((ptr, count)) => {
            frame.x[1] = ptr;
            frame.x[2] = count;
            continuation(frame, a[0])
        }
        None => Ok(0),
    }
}

/// `GNTTABOP_map_grant_ref` for one element: map the granted frame at
/// `host_addr` (an IPA of the caller that must be empty or the caller's
/// own RAM), Normal memory, never executable, read-only if asked.
fn map_one(dom: &Arc<Domain>, op: &mut GnttabMapGrantRef) {
    let req = MapRequest::from_abi(op);
    let granter = if req.dom == dom.id {
        Some(dom.clone())
    } else {
        crate::domain::get(req.dom)
    };
    let r = match granter {
        None => Err(GrantError::BadDomain(req.dom)),
        Some(g) if Arc::ptr_eq(&g, dom) => {
            let mut x = lock(dom);
            let DomainXen {
                grant,
                grant_frames,
                pool,
                ..
            } = &mut *x;
            let mut entries = phys::FrameEntries(grant_frames);
            gt::map_grant_ref(grant, Peer::Same, &mut entries, &req, |t| {
                install(dom, dom, pool, t)
            })
        }
        Some(g) => {
            let (mut mx, mut gx) = lock_pair(dom, &g);
            let m: &mut DomainXen = &mut mx;
            let gg: &mut DomainXen = &mut gx;
            let mut entries = phys::FrameEntries(&gg.grant_frames);
            let pool = &mut m.pool;
            let r = gt::map_grant_ref(
                &mut m.grant,
                Peer::Other(&mut gg.grant),
                &mut entries,
                &req,
                |t| install(dom, &g, pool, t),
            );
            if r.is_ok() {
                m.hold(&g);
            }
            r
        }
    };
    match r {
        Ok(res) => {
            op.status = abi::GNTST_OKAY;
            op.handle = res.handle;
            op.dev_bus_addr = res.dev_bus_addr.as_u64();
        }
        Err(e) => {
            log::debug!(
                "{}: map_grant_ref d{} ref {:#x}: {e}",
                dom.id,
                req.dom.0,
                req.gref
            );
            op.status = e.status();
        }
    }
}

/// The stage-2 part of a map: find the granted page, check it is the
/// granter's RAM, and map it into the mapper at `host_addr`.
fn install(
    mapper: &Domain,
    granter: &Domain,
    pool: &mut Vec<PhysAddr>,
    t: &MapTarget,
) -> Result<PhysAddr, GrantError> {
    let pa = s2_lookup(granter, t.frame).ok_or(GrantError::BadPage)?;
    if !granter.owns_phys(pa, PAGE_SIZE) {
        return Err(GrantError::BadPage);
    }
    let ipa = t.host_addr.as_u64();
    if !ipa.is_multiple_of(PAGE_SIZE) {
        return Err(GrantError::MappingFailed);
    }
    let gfn = ipa >> 12;
    // The mapper's own RAM at host_addr is given up to its pool, as Xen
    // replaces whatever was mapped there.
    if let Some(old) = s2_lookup(mapper, gfn) {
        if !mapper.owns_phys(old, PAGE_SIZE) || pool.try_reserve(1).is_err() {
            return Err(GrantError::MappingFailed);
        }
        s2_unmap(mapper, gfn).map_err(|_| GrantError::MappingFailed)?;
        pool.push(old);
    }
    s2_map(mapper, gfn, pa, foreign_attrs(t.readonly)).map_err(|_| GrantError::MappingFailed)?;
    Ok(pa)
}

/// `GNTTABOP_unmap_grant_ref` for one element.
fn unmap_one(dom: &Arc<Domain>, handle: GrantHandle, host_addr: Ipa) -> Result<(), GrantError> {
    let (m, held) = {
        let x = lock(dom);
        let m = x
            .grant
            .mapping(handle)
            .ok_or(GrantError::BadHandle(handle))?;
        let held = x.held(m.granter);
        (m, held)
    };
    let remove = |m: &gt::Mapping| -> Result<(), GrantError> {
        s2_unmap(dom, m.host_addr.as_u64() >> 12).map_err(|_| GrantError::MappingFailed)
    };
    if m.granter == dom.id {
        let mut x = lock(dom);
        let DomainXen {
            grant,
            grant_frames,
            ..
        } = &mut *x;
        let mut entries = phys::FrameEntries(grant_frames);
        gt::unmap_grant_ref(grant, Peer::Same, &mut entries, handle, host_addr, remove)?;
        return Ok(());
    }
    // The granter is kept alive by our hold while the mapping exists.
    let g = held.ok_or(GrantError::BadHandle(handle))?;
    let released = {
        let (mut mx, mut gx) = lock_pair(dom, &g);
        let gg: &mut DomainXen = &mut gx;
        let mut entries = phys::FrameEntries(&gg.grant_frames);
        gt::unmap_grant_ref(
            &mut mx.grant,
            Peer::Other(&mut gg.grant),
            &mut entries,
            handle,
            host_addr,
            remove,
        )?;
        mx.unhold(g.id)
    };
    drop(released);
    Ok(())
}

/// Unmap every grant `dom` has mapped (domain death).
pub(super) fn unmap_all(dom: &Arc<Domain>) {
    let maps: Vec<(GrantHandle, Ipa)> = lock(dom)
        .grant
        .mappings()
        .map(|(h, m)| (h, m.host_addr))
        .collect();
    for (h, ipa) in maps {
        if let Err(e) = unmap_one(dom, h, ipa) {
            log::debug!("{}: unmapping grant handle {h:#x}: {e}", dom.id);
        }
    }
}

/// One side of a copy, resolved to a host address; `pin` is set for a
/// grant side and must be released.
struct Side {
    pa: PhysAddr,
    pin: Option<(Arc<Domain>, CopyGrant)>,
}

/// `GNTTABOP_copy` for one element.
fn copy_one(dom: &Arc<Domain>, op: &GnttabCopy) -> Result<(), GrantError> {
    let Some(c) = CopyOp::parse(op)? else {
        return Ok(());
    };
    let len = usize::from(c.len);
    // One grant side and one local side (netback's receive path copies
    // from Dom0's own pages into a DomU's grants): the grant is pinned
    // only while the granter's lock is held around the copy.
    match (c.source, c.dest) {
        (
            CopySide::Grant {
                dom: gid,
                gref,
                offset,
            },
            CopySide::Local {
                gfn,
                offset: local_off,
            },
        ) => {
            let dst = local_page(dom, gfn)?.as_u64() + u64::from(local_off);
            return with_granted_page(dom, gid, gref, true, |src| {
                // SAFETY: `dst` is in a page of the caller's RAM and `src`
                // is the granter's RAM page, pinned while this runs (the
                // granter's lock is held); offset + len stay within the
                // pages (CopyOp::parse).
                unsafe { phys::copy(dst, src.as_u64() + u64::from(offset), len) };
            });
        }
        (
            CopySide::Local {
                gfn,
                offset: local_off,
            },
            CopySide::Grant {
                dom: gid,
                gref,
                offset,
            },
        ) => {
            let src = local_page(dom, gfn)?.as_u64() + u64::from(local_off);
            return with_granted_page(dom, gid, gref, false, |dst| {
                // SAFETY: as above, in the other direction.
                unsafe { phys::copy(dst.as_u64() + u64::from(offset), src, len) };
            });
        }
        _ => {}
    }
    let src = resolve(dom, &c.source, true)?;
    let dst = match resolve(dom, &c.dest, false) {
        Ok(d) => d,
        Err(e) => {
            release(src);
            return Err(e);
        }
    };
    let off = |s: &CopySide| match s {
        CopySide::Grant { offset, .. } | CopySide::Local { offset, .. } => u64::from(*offset),
    };
    // SAFETY: both pages were checked to be RAM of their domains, which are
    // alive (the caller, or held by the pins' Arcs); offset + len stay
    // within the pages (CopyOp::parse).
    unsafe {
        phys::copy(
            dst.pa.as_u64() + off(&c.dest),
            src.pa.as_u64() + off(&c.source),
            usize::from(c.len),
        )
    };
    release(src);
    release(dst);
    Ok(())
}

/// The host page of the caller's own RAM at `gfn`.
fn local_page(dom: &Domain, gfn: u64) -> Result<PhysAddr, GrantError> {
    s2_lookup(dom, gfn)
        .filter(|&pa| dom.owns_phys(pa, PAGE_SIZE))
        .ok_or(GrantError::BadPage)
}

/// Run `f` on the host page of grant `gref` of domain `gid`, pinned for
/// the caller (read-only or writable) while `f` runs with the granter's
/// lock held ([`gt::with_grant_for_copy`]): the page must be the granter's
/// own RAM. Lock order: the granter's `xen` lock, then its stage-2 and
/// `extra_mem` locks (as `map_one`'s install).
fn with_granted_page(
    dom: &Arc<Domain>,
    gid: oxen_types::DomId,
    gref: gt::GrantRef,
    readonly: bool,
    f: impl FnOnce(PhysAddr),
) -> Result<(), GrantError> {
    let g = super::domain_by_id(dom, gid).map_err(|_| GrantError::BadDomain(gid))?;
    let mut x = lock(&g);
    let DomainXen {
        grant,
        grant_frames,
        ..
    } = &mut *x;
    gt::with_grant_for_copy(
        grant,
        &mut phys::FrameEntries(grant_frames),
        gref,
        dom.id,
        readonly,
        |frame| {
            let pa = local_page(&g, frame)?;
            f(pa);
            Ok(())
        },
    )
}

fn resolve(dom: &Arc<Domain>, side: &CopySide, readonly: bool) -> Result<Side, GrantError> {
    match *side {
        CopySide::Local { gfn, .. } => Ok(Side {
            pa: local_page(dom, gfn)?,
            pin: None,
        }),
        CopySide::Grant { dom: gid, gref, .. } => {
            let g = super::domain_by_id(dom, gid).map_err(|_| GrantError::BadDomain(gid))?;
            let cg = {
                let mut x = lock(&g);
                let DomainXen {
                    grant,
                    grant_frames,
                    ..
                } = &mut *x;
                gt::acquire_for_copy(
                    grant,
                    &mut phys::FrameEntries(grant_frames),
                    gref,
                    dom.id,
                    readonly,
                )?
            };
            let pa = s2_lookup(&g, cg.frame).filter(|&pa| g.owns_phys(pa, PAGE_SIZE));
            let side = Side {
                pa: pa.unwrap_or(PhysAddr(0)),
                pin: Some((g, cg)),
            };
            if pa.is_none() {
                release(side);
                return Err(GrantError::BadPage);
            }
            Ok(side)
        }
    }
}

fn release(side: Side) {
    if let Some((g, cg)) = side.pin {
        let mut x = lock(&g);
        let DomainXen {
            grant,
            grant_frames,
            ..
        } = &mut *x;
        if let Err(e) = gt::release_for_copy(grant, &mut phys::FrameEntries(grant_frames), cg) {
            log::error!("{}: releasing a copy pin: {e}", g.id);
        }
    }
}
