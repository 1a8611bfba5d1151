//! The small hypercalls: `xen_version` sub-ops that depend on the domain,
//! `vcpu_op` (vcpu_info and runstate registration), `hvm_op` params,
//! `vm_assist` and `platform_op`.

extern crate alloc;

use alloc::sync::Arc;

use oxen_types::{PAGE_SIZE, PhysAddr, VcpuId};
use oxen_xen::hcall;
use xen_abi::Errno;
use xen_abi::hvm::{
    HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN,
    HVM_PARAM_MONITOR_RING_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN, HVMOP_GET_PARAM,
    HVMOP_SET_PARAM, XenHvmParam,
};
use xen_abi::vcpu::{
    VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA, VCPUOP_REGISTER_VCPU_INFO, VMASST_CMD_DISABLE,
    VMASST_CMD_ENABLE, VMASST_TYPE_RUNSTATE_UPDATE_FLAG, VcpuRegisterRunstateMemoryArea,
    VcpuRegisterVcpuInfo,
};

use super::{Kicks, lock, phys, read_arg, s2_lookup, write_arg};
use crate::arch::head::TrapFrame;
use crate::domain::Domain;

/// `vcpu_op`: Xen on ARM accepts only the two registrations; everything
/// else is `-EINVAL`.
pub(crate) fn vcpu_op(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame) -> Result<i64, Errno> {
    let a = super::args(frame);
    let (cmd, target, arg) = (a[0], a[1], a[2]);
    // Xen checks the vCPU first (-ENOENT), then the command (-EINVAL).
    let target = usize::try_from(target)
        .ok()
        .filter(|&t| t < dom.vcpus.len())
        .ok_or(Errno::ENOENT)?;
    if !matches!(
        cmd,
        VCPUOP_REGISTER_VCPU_INFO | VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA
    ) {
        return Err(Errno::EINVAL);
    }
    match cmd {
        VCPUOP_REGISTER_VCPU_INFO => {
            let op: VcpuRegisterVcpuInfo = read_arg(dom, arg)?;
            register_vcpu_info(dom, vcpu, target, op.mfn, op.offset)?;
            Ok(0)
        }
        _ => {
            // Recorded only: oxen does not write runstate areas yet. Linux
            // accepts an all-zero area (no steal time).
            let op: VcpuRegisterRunstateMemoryArea = read_arg(dom, arg)?;
            lock(dom).runstate_va[target] = Some(op.addr);
            Ok(0)
        }
    }
}

/// `VCPUOP_register_vcpu_info`: `gfn` must be a page of the domain's own
/// RAM, the area inside it; only the calling vCPU registers itself (Linux
/// does it on the CPU being brought up), and only once (`-EINVAL`, as Xen).
fn register_vcpu_info(
    dom: &Arc<Domain>,
    vcpu: usize,
    target: usize,
    gfn: u64,
    offset: u32,
) -> Result<(), Errno> {
    // Xen's map_vcpu_info: an area that leaves the page or is misaligned
    // is -ENXIO.
    hcall::check_vcpu_info_offset(offset).map_err(|_| Errno::ENXIO)?;
    if target != vcpu {
        log::info!(
            "{}v{vcpu}: register_vcpu_info for v{target}: only for itself",
            dom.id
        );
        return Err(Errno::EINVAL);
    }
    let page = s2_lookup(dom, gfn).ok_or(Errno::EINVAL)?;
    if !dom.owns_phys(page, PAGE_SIZE) {
        log::info!("{}v{vcpu}: vcpu_info gfn {gfn:#x} is not RAM", dom.id);
        return Err(Errno::EINVAL);
    }
    let area = PhysAddr(page.as_u64() + u64::from(offset));
    let mut kicks = Kicks::default();
    {
        let mut x = lock(dom);
        if x.vcpu_info[target].is_some() {
            return Err(Errno::EINVAL);
        }
        // Carry over what the old location held (vCPU 0's legacy slot in
        // shared_info), then mark everything pending so nothing is lost.
        let old = if target == 0 { x.shared_info } else { None };
        phys::move_vcpu_info(area, old);
        x.vcpu_info[target] = Some(area);
        x.private_bits[target] = Default::default();
        let (_, mut bits) = x.evtchn_and_bits();
        if bits.mark_all_pending(VcpuId(target as u32)) {
            kicks.upcall(dom, Some(VcpuId(target as u32)));
        }
    }
    kicks.fire();
    log::debug!(
        "{}v{target}: vcpu_info at gfn {gfn:#x} + {offset:#x}",
        dom.id
    );
    Ok(())
}

/// `hvm_op`: get/set of HVM params (any index below `HVM_NR_PARAMS`, on
/// itself, or on any domain for Dom0 — Xen/ARM's `XSM_TARGET`); unset
/// params read as 0. Other HVMOPs are `-ENOSYS` on ARM.
pub(crate) fn hvm_op(dom: &Arc<Domain>, _vcpu: usize, frame: &mut TrapFrame) -> Result<i64, Errno> {
    let a = super::args(frame);
    let (op, arg) = (a[0], a[1]);
    if op != HVMOP_SET_PARAM && op != HVMOP_GET_PARAM {
        return Err(Errno::ENOSYS);
    }
    let mut p: XenHvmParam = read_arg(dom, arg)?;
    let t = super::target_domain(dom, p.domid)?;
    let idx = hcall::check_hvm_param(p.index)?;
    let on_self = Arc::ptr_eq(&t, dom);
    if op == HVMOP_SET_PARAM {
        hvm_allow_set_param(p.index, on_self)?;
        lock(&t).hvm_params[idx] = p.value;
        log::debug!(
            "{}: set HVM param {} of {} = {:#x}",
            dom.id,
            p.index,
            t.id,
            p.value
        );
        Ok(0)
    } else {
        hvm_allow_get_param(p.index, on_self)?;
        p.value = lock(&t).hvm_params[idx];
        write_arg(dom, arg, &p)?;
        Ok(0)
    }
}

/// Xen/Arm's `hvm_allow_set_param`: only the toolstack params may be set,
/// and only on another domain (-EPERM on itself); every other index is
/// -EINVAL.
fn hvm_allow_set_param(index: u32, on_self: bool) -> Result<(), Errno> {
    match index {
        HVM_PARAM_CALLBACK_IRQ
        | HVM_PARAM_STORE_PFN
        | HVM_PARAM_STORE_EVTCHN
        | HVM_PARAM_CONSOLE_PFN
        | HVM_PARAM_CONSOLE_EVTCHN
        | HVM_PARAM_MONITOR_RING_PFN => {
            if on_self {
                Err(Errno::EPERM)
            } else {
                Ok(())
            }
        }
        _ => Err(Errno::EINVAL),
    }
}

/// Xen/Arm's `hvm_allow_get_param`: the callback, xenstore and console
/// params are readable by anyone allowed on the domain; the monitor ring
/// only by another domain; every other index is -EINVAL.
fn hvm_allow_get_param(index: u32, on_self: bool) -> Result<(), Errno> {
    match index {
        HVM_PARAM_CALLBACK_IRQ
        | HVM_PARAM_STORE_PFN
        | HVM_PARAM_STORE_EVTCHN
        | HVM_PARAM_CONSOLE_PFN
        | HVM_PARAM_CONSOLE_EVTCHN => Ok(()),
        HVM_PARAM_MONITOR_RING_PFN if on_self => Err(Errno::EPERM),
        HVM_PARAM_MONITOR_RING_PFN => Ok(()),
        _ => Err(Errno::EINVAL),
    }
}

/// `vm_assist`: Xen/ARM knows only `runstate_update_flag`.
pub(crate) fn vm_assist(
    dom: &Arc<Domain>,
    _vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
    let (cmd, ty) = (a[0], a[1]);
    if ty != VMASST_TYPE_RUNSTATE_UPDATE_FLAG {
        return Err(Errno::EINVAL);
    }
    let mut x = lock(dom);
    match cmd {
        VMASST_CMD_ENABLE => x.vm_assist |= 1 << ty,
        VMASST_CMD_DISABLE => x.vm_assist &= !(1 << ty),
        _ => return Err(Errno::ENOSYS),
    }
    Ok(0)
}

/// `platform_op`: only `XENPF_settime64` from Dom0 succeeds (and is not
/// acted on yet: oxen keeps no wall clock for `shared_info.wc_*`).
pub(crate) fn platform_op(
    dom: &Arc<Domain>,
    _vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
    let op: hcall::PlatformOpSettime64 = read_arg(dom, a[0])?;
    hcall::platform_op_result(op.interface_version, dom.is_dom0, op.cmd, op.mbz)?;
    log::debug!("{}: settime64 {}.{:09}", dom.id, op.secs, op.nsecs);
    Ok(0)
}

/// `physdev_op`: Xen/ARM without PCI passthrough (4.17's default) answers
/// every PHYSDEVOP "not implemented"; Linux only logs it.
pub(crate) fn physdev_op(
    dom: &Arc<Domain>,
    vcpu: usize,
    frame: &mut TrapFrame,
) -> Result<i64, Errno> {
    log::debug!("{}v{vcpu}: physdev_op {}: -ENOSYS", dom.id, frame.x[0]);
    Err(Errno::ENOSYS)
}
