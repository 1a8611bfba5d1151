//! `sysctl`: the toolstack's view of the machine (Xen 4.17, interface
//! version 0x15), Dom0 only: readconsole (`xl dmesg`), physinfo, sched_id, getdomaininfolist,
//! debug_keys (`xl debug-keys`: [`crate::debugkeys`]), cputopoinfo, numainfo (one node),
//! cpupool_op (one pool, Pool-0, holding every CPU) and the credit scheduler's pool
//! parameters (`sched`).
//! Everything else is -ENOSYS. Argument order as `domctl`'s.

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;

use oxen_types::{DomId, PAGE_SIZE};
use xen_abi::Errno;
use xen_abi::domctl::{XEN_SCHEDULER_CREDIT, XenctlBitmap};
use xen_abi::sysctl::*;

use super::{read_arg, write_arg};
use crate::arch::head::TrapFrame;
use crate::domain::{self, Domain};
use crate::mem::FRAMES;
use crate::{arch, guest_mem, sched};

/// `sysctl(op)`.
pub(crate) fn sysctl(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame) -> Result<i64, Errno> {
    let uop = frame.x[0];
    let mut op: XenSysctl = read_arg(dom, uop)?;
    if op.interface_version != XEN_SYSCTL_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    if !dom.is_dom0 {
        log::info!("{}v{vcpu}: sysctl {}: not permitted", dom.id, op.cmd);
        return Err(Errno::EPERM);
    }
    match op.cmd {
        XEN_SYSCTL_PHYSINFO => op.set_payload(&physinfo()),
        XEN_SYSCTL_READCONSOLE => {
            let mut r: ReadConsole = op.payload();
            readconsole(dom, &mut r)?;
            op.set_payload(&r);
        }
        XEN_SYSCTL_SCHED_ID => op.set_payload(&SchedId {
            sched_id: XEN_SCHEDULER_CREDIT,
        }),
        XEN_SYSCTL_GETDOMAININFOLIST => {
            let mut l: GetDomainInfoList = op.payload();
            l.num_domains = domain_info_list(dom, &l)?;
            op.set_payload(&l);
        }
        XEN_SYSCTL_DEBUG_KEYS => {
            debug_keys(dom, &op.payload())?;
            // As Xen: nothing to copy back.
            return Ok(0);
        }
        XEN_SYSCTL_CPUTOPOINFO => {
            let mut c: CpuTopoInfo = op.payload();
            let n = sched::nr_cpus() as u32;
            if c.cputopo != 0 {
                for i in 0..c.num_cpus.min(n) {
                    // Xen/Arm reports core 0, socket 0, node 0 for every CPU.
                    let t = CpuTopo {
                        core: 0,
                        socket: 0,
                        node: 0,
                    };
                    let at = elem(c.cputopo, i, size_of::<CpuTopo>())?;
                    write_arg(dom, at, &t)?;
                }
            }
            c.num_cpus = n;
            op.set_payload(&c);
        }
        XEN_SYSCTL_NUMAINFO => {
            let mut n: NumaInfo = op.payload();
            if n.num_nodes >= 1 {
                if n.meminfo != 0 {
                    let p = physinfo();
                    let m = MemInfo {
                        memsize: p.total_pages * PAGE_SIZE,
                        memfree: p.free_pages * PAGE_SIZE,
                    };
                    write_arg(dom, n.meminfo, &m)?;
                }
                if n.distance != 0 {
                    // Xen/Arm without NUMA: every distance is 20.
                    guest_mem::copy_to_guest(dom, n.distance, &20u32.to_le_bytes())?;
                }
            }
            n.num_nodes = 1;
            op.set_payload(&n);
        }
        XEN_SYSCTL_CPUPOOL_OP => {
            let mut c: CpupoolOp = op.payload();
            cpupool_op(dom, &mut c)?;
            op.set_payload(&c);
        }
        XEN_SYSCTL_SCHEDULER_OP => {
            let mut s: SysctlSchedulerOp = op.payload();
            if s.cpupool_id != 0 || s.sched_id != XEN_SCHEDULER_CREDIT {
                return Err(Errno::EINVAL);
            }
            match s.cmd {
                XEN_SYSCTL_SCHEDOP_GETINFO => {
                    let p = sched::sched_params();
                    s.set_params(&SysctlCreditSchedule {
                        tslice_ms: p.tslice_ms,
                        ratelimit_us: p.ratelimit_us,
                        vcpu_migr_delay_us: p.vcpu_migr_delay_us,
                    })
                }
                XEN_SYSCTL_SCHEDOP_PUTINFO => {
                    // Xen's credit limits (-EINVAL): tslice 1..1000 ms,
                    // ratelimit 0 or 100..500000 µs and not above the time
                    // slice, migration delay ≤ 100 ms.
                    let c: SysctlCreditSchedule = s.params();
                    let p = sched::set_sched_params(oxen_sched::SchedParams {
                        tslice_ms: c.tslice_ms,
                        ratelimit_us: c.ratelimit_us,
                        vcpu_migr_delay_us: c.vcpu_migr_delay_us,
                    })
                    .map_err(|e| e.errno())?;
                    s.set_params(&SysctlCreditSchedule {
                        tslice_ms: p.tslice_ms,
                        ratelimit_us: p.ratelimit_us,
                        vcpu_migr_delay_us: p.vcpu_migr_delay_us,
                    });
                }
                _ => return Err(Errno::EINVAL),
            }
            op.set_payload(&s);
        }
        cmd => {
            log::info!("d0: sysctl {cmd} not implemented: -ENOSYS");
            return Err(Errno::ENOSYS);
        }
    }
    write_arg(dom, uop, &op)?;
    Ok(0)
}

/// `XEN_SYSCTL_readconsole`: copy the console ring to the caller's
/// buffer: from where the last incremental read stopped (`index`), or
/// from the oldest byte; `count` = bytes copied; `clear` forgets what was
/// read (and anything older).
fn readconsole(dom: &Domain, r: &mut ReadConsole) -> Result<(), Errno> {
    let mut chunk = [0u8; 512];
    let from = if r.incremental != 0 {
        crate::console::CONRING.lock().position(r.index)
    } else {
        0
    };
    let mut pos = from;
    let mut done = 0u32;
    while done < r.count {
        let want = ((r.count - done) as usize).min(chunk.len());
        let (n, next) = crate::console::CONRING.lock().read(pos, &mut chunk[..want]);
        if n == 0 {
            break;
        }
        let at = r.buffer.checked_add(u64::from(done)).ok_or(Errno::EFAULT)?;
        guest_mem::copy_to_guest(dom, at, &chunk[..n])?;
        done += n as u32;
        pos = next;
    }
    if r.clear != 0 {
        crate::console::CONRING.lock().clear_to(pos);
    }
    r.count = done;
    r.index = pos as u32;
    Ok(())
}

/// Most keys one `XEN_SYSCTL_debug_keys` takes (Xen has no limit; `xl
/// debug-keys` sends what was typed on its command line).
const MAX_DEBUG_KEYS: usize = 256;

/// `XEN_SYSCTL_debug_keys`: handle each key as if typed on the console
/// ([`crate::debugkeys::handle`]). More than [`MAX_DEBUG_KEYS`] keys is
/// -EINVAL and an unreadable buffer -EFAULT, both before any key is handled
/// (Xen handles the keys before a fault and takes any number).
fn debug_keys(dom: &Domain, k: &DebugKeys) -> Result<(), Errno> {
    let n = k.nr_keys as usize;
    if n > MAX_DEBUG_KEYS {
        return Err(Errno::EINVAL);
    }
    let mut keys = [0u8; MAX_DEBUG_KEYS];
    guest_mem::copy_from_guest(dom, k.keys, &mut keys[..n])?;
    for &c in &keys[..n] {
        crate::debugkeys::handle(c);
    }
    Ok(())
}

/// Address of element `i` of `size` bytes in an array at `base` (-EFAULT on
/// overflow).
fn elem(base: u64, i: u32, size: usize) -> Result<u64, Errno> {
    u64::from(i)
        .checked_mul(size as u64)
        .and_then(|o| base.checked_add(o))
        .ok_or(Errno::EFAULT)
}

/// `XEN_SYSCTL_physinfo`.
pub(super) fn physinfo() -> PhysInfo {
    let n = sched::nr_cpus() as u32;
    let host = crate::domain_build::HOST.get();
    let free = crate::mem::free_bytes();
    let max_pa = FRAMES.lock().ranges().map(|r| r.end()).max().unwrap_or(0);
    let total = host.map_or(0, |h| h.total_ram);
    PhysInfo {
        // As Xen/Arm, which knows no CPU topology: one core per socket.
        threads_per_core: 1,
        cores_per_socket: 1,
        nr_cpus: n,
        max_cpu_id: n - 1,
        nr_nodes: 1,
        max_node_id: 0,
        cpu_khz: (arch::timer::freq() / 1000) as u32,
        capabilities: XEN_SYSCTL_PHYSCAP_HVM
            | XEN_SYSCTL_PHYSCAP_HAP
            | XEN_SYSCTL_PHYSCAP_GNTTAB_V1,
        total_pages: total / PAGE_SIZE,
        free_pages: free / PAGE_SIZE,
        max_mfn: max_pa.max(total) / PAGE_SIZE,
        ..Default::default()
    }
}

/// Fill the caller's buffer with the records of the domains whose id is
/// ≥ `first_domain`, ascending, at most `max_domains`; returns how many.
fn domain_info_list(dom: &Domain, l: &GetDomainInfoList) -> Result<u32, Errno> {
    let mut n = 0u32;
    let mut next = l.first_domain;
    while n < l.max_domains && next < DomId::MAX_REAL + 1 {
        let Some((id, info)) = super::domctl::first_from(DomId(next)) else {
            break;
        };
        let at = elem(l.buffer, n, size_of_val(&info))?;
        write_arg(dom, at, &info)?;
        n += 1;
        next = id.0 + 1;
    }
    Ok(n)
}

/// `XEN_SYSCTL_cpupool_op` with one pool (id 0, credit, every CPU).
fn cpupool_op(dom: &Domain, c: &mut CpupoolOp) -> Result<(), Errno> {
    let all = super::domctl::online_cpus();
    match c.op {
        XEN_SYSCTL_CPUPOOL_OP_INFO => {
            // The first pool with an id ≥ the one asked for.
            if c.cpupool_id != 0 && c.cpupool_id != XEN_SYSCTL_CPUPOOL_PAR_ANY {
                return Err(Errno::ENOENT);
            }
            c.cpupool_id = 0;
            c.sched_id = XEN_SCHEDULER_CREDIT;
            c.n_dom = domain::DOMAINS.lock().len() as u32;
            write_cpumap(dom, &c.cpumap, all)
        }
        XEN_SYSCTL_CPUPOOL_OP_FREEINFO => write_cpumap(dom, &c.cpumap, 0),
        _ => Err(Errno::EOPNOTSUPP),
    }
}

/// Write a CPU mask into a `xenctl_bitmap`, zero-filling its other bytes.
pub(super) fn write_cpumap(dom: &Domain, b: &XenctlBitmap, mask: u64) -> Result<(), Errno> {
    let total = (b.nr_bits as usize).div_ceil(8).min(4096);
    let mut bytes: Vec<u8> = alloc::vec![0u8; total];
    for (i, byte) in bytes.iter_mut().enumerate().take(8) {
        *byte = (mask >> (8 * i)) as u8;
    }
    guest_mem::copy_to_guest(dom, b.bitmap, &bytes)?;
    Ok(())
}
