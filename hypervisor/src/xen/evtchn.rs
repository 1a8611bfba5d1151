//! `event_channel_op` (2-level ABI), blocking and polling for events
//! (`sched_op` block/poll, see `schedop.rs`), and event
//! delivery from the rest of the hypervisor (VIRQs).
//!
//! FIFO (`EVTCHNOP_init_control`/`expand_array`/`set_priority`) is
//! `-ENOSYS`, so Linux stays on the 2-level ABI; PIRQs do not exist on ARM.

extern crate alloc;

use alloc::sync::Arc;
use alloc::vec::Vec;

use oxen_types::{DomId, VcpuId};
use oxen_xen::Peer;
use oxen_xen::evtchn::{self as ev, DomainEvtchn, EvtchnConfig, EvtchnError, Port, SendAction};
use xen_abi::Errno;
use xen_abi::event_channel::{
    self as abi, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindVcpu,
    EvtchnBindVirq, EvtchnClose, EvtchnReset, EvtchnSend, EvtchnStatus, EvtchnUnmask,
};

use super::{DomainXen, Kicks, domain_by_id, lock, lock_pair, read_arg, target_domain, write_arg};
use crate::domain::Domain;
use crate::guest_mem;

/// Xen's errno for an event-channel error.
fn errno(e: EvtchnError) -> Errno {
    e.errno()
}

/// How often an operation that needs a second domain's lock is retried
/// when that domain changed between look-up and locking.
const PEER_RETRIES: u32 = 4;

pub(crate) fn event_channel_op(
    dom: &Arc<Domain>,
    vcpu: usize,
    frame: &mut crate::arch::head::TrapFrame,
) -> Result<i64, Errno> {
    let a = super::args(frame);
    let (cmd, arg) = (a[0], a[1]);
    match cmd {
        abi::EVTCHNOP_ALLOC_UNBOUND => {
            let mut op: EvtchnAllocUnbound = read_arg(dom, arg)?;
            let td = target_domain(dom, op.dom)?;
            let port = lock(&td)
                .evtchn
                .alloc_unbound(dom.id, DomId(op.remote_dom))
                .map_err(errno)?;
            op.port = port.0;
            write_arg(dom, arg, &op)?;
            Ok(0)
        }
        abi::EVTCHNOP_BIND_INTERDOMAIN => {
            let mut op: EvtchnBindInterdomain = read_arg(dom, arg)?;
            let rid = ev::resolve_domid(dom.id, DomId(op.remote_dom));
            let rd = domain_by_id(dom, rid)?;
            let mut kicks = Kicks::default();
            let bound = {
                if Arc::ptr_eq(&rd, dom) {
                    let mut x = lock(dom);
                    let (tbl, mut bits) = x.evtchn_and_bits();
                    ev::bind_interdomain(tbl, Peer::Same, rid, Port(op.remote_port), &mut bits)
                        .map_err(errno)?
                } else {
                    let (mut lx, mut rx) = lock_pair(dom, &rd);
                    let (tbl, mut bits) = lx.evtchn_and_bits();
                    ev::bind_interdomain(
                        tbl,
                        Peer::Other(&mut rx.evtchn),
                        rid,
                        Port(op.remote_port),
                        &mut bits,
                    )
                    .map_err(errno)?
                }
            };
            kicks.upcall(dom, bound.upcall);
            kicks.fire();
            op.local_port = bound.port.0;
            write_arg(dom, arg, &op)?;
            Ok(0)
        }
        abi::EVTCHNOP_BIND_VIRQ => {
            let mut op: EvtchnBindVirq = read_arg(dom, arg)?;
            op.port = lock(dom)
                .evtchn
                .bind_virq(op.virq, VcpuId(op.vcpu))
                .map_err(errno)?
                .0;
            write_arg(dom, arg, &op)?;
            Ok(0)
        }
        abi::EVTCHNOP_BIND_IPI => {
            let mut op: EvtchnBindIpi = read_arg(dom, arg)?;
            op.port = lock(dom).evtchn.bind_ipi(VcpuId(op.vcpu)).map_err(errno)?.0;
            write_arg(dom, arg, &op)?;
            Ok(0)
        }
        abi::EVTCHNOP_CLOSE => {
            let op: EvtchnClose = read_arg(dom, arg)?;
            close_port(dom, Port(op.port))?;
            Ok(0)
        }
        abi::EVTCHNOP_SEND => {
            let op: EvtchnSend = read_arg(dom, arg)?;
            send(dom, Port(op.port))?;
            Ok(0)
        }
        abi::EVTCHNOP_STATUS => {
            let mut op: EvtchnStatus = read_arg(dom, arg)?;
            let td = target_domain(dom, op.dom)?;
            let chan = lock(&td).evtchn.status(Port(op.port)).map_err(errno)?;
            chan.fill_status(&mut op);
            write_arg(dom, arg, &op)?;
            Ok(0)
        }
        abi::EVTCHNOP_BIND_VCPU => {
            let op: EvtchnBindVcpu = read_arg(dom, arg)?;
            lock(dom)
                .evtchn
                .bind_vcpu(Port(op.port), VcpuId(op.vcpu))
                .map_err(errno)?;
            Ok(0)
        }
        abi::EVTCHNOP_UNMASK => {
            let op: EvtchnUnmask = read_arg(dom, arg)?;
            let up = {
                let mut x = lock(dom);
                let (tbl, mut bits) = x.evtchn_and_bits();
                tbl.unmask(Port(op.port), &mut bits).map_err(errno)?
            };
            let mut kicks = Kicks::default();
            kicks.upcall(dom, up);
            kicks.fire();
            Ok(0)
        }
        abi::EVTCHNOP_RESET => {
            let op: EvtchnReset = read_arg(dom, arg)?;
            let td = target_domain(dom, op.dom)?;
            close_all(&td);
            Ok(0)
        }
        abi::EVTCHNOP_BIND_PIRQ
        | abi::EVTCHNOP_INIT_CONTROL
        | abi::EVTCHNOP_EXPAND_ARRAY
        | abi::EVTCHNOP_SET_PRIORITY => Err(Errno::ENOSYS),
        _ => {
            log::info!("{}v{vcpu}: unknown EVTCHNOP {cmd}", dom.id);
            Err(Errno::ENOSYS)
        }
    }
}

/// `EVTCHNOP_send` through `port` of `dom`.
fn send(dom: &Arc<Domain>, port: Port) -> Result<(), Errno> {
    let mut kicks = Kicks::default();
    let action = lock(dom).evtchn.send(port).map_err(errno)?;
    match action {
        SendAction::Dropped => {}
        SendAction::Local { port } => {
            deliver(dom, &mut kicks, |tbl, bits| tbl.deliver(port, bits), port)
        }
        SendAction::Remote {
            dom: rid,
            from,
            port: rport,
        } => {
            let target = if rid == dom.id {
                Some(dom.clone())
            } else {
                crate::domain::get(rid)
            };
            if let Some(td) = target {
                let from_dom = dom.id;
                deliver(
                    &td,
                    &mut kicks,
                    |tbl, bits| tbl.deliver_from(from_dom, from, rport, bits),
                    rport,
                );
            }
        }
    }
    kicks.fire();
    Ok(())
}

/// Run a delivery on `dom`'s table under its lock and collect the upcall
/// and the wake-up of a vCPU polling `port`.
fn deliver(
    dom: &Arc<Domain>,
    kicks: &mut Kicks,
    f: impl FnOnce(&DomainEvtchn, &mut super::phys::LiveBits<'_>) -> Option<VcpuId>,
    port: Port,
) {
    let mut x = lock(dom);
    let up = {
        let (tbl, mut bits) = x.evtchn_and_bits();
        f(tbl, &mut bits)
    };
    kicks.upcall(dom, up);
    wake_pollers(dom, &mut x, port, kicks);
}

/// vCPUs blocked in `SCHEDOP_poll` on `port` wake up (even for a masked
/// port, as in Xen).
fn wake_pollers(dom: &Arc<Domain>, x: &mut DomainXen, port: Port, kicks: &mut Kicks) {
    for (v, ports) in x.polling.iter_mut().enumerate() {
        if ports.contains(&port.0) {
            ports.clear();
            kicks.wakes.push((dom.clone(), v));
        }
    }
}

/// `EVTCHNOP_close` of `port` of `dom`, locking the remote domain of an
/// interdomain port too.
pub(super) fn close_port(dom: &Arc<Domain>, port: Port) -> Result<(), Errno> {
    for _ in 0..PEER_RETRIES {
        let peer = lock(dom).evtchn.peer_domain(port);
        let r = match peer {
            None => {
                let mut x = lock(dom);
                let (tbl, mut bits) = x.evtchn_and_bits();
                ev::close(tbl, port, Peer::Same, &mut bits)
            }
            Some(pid) if pid == dom.id => {
                let mut x = lock(dom);
                let (tbl, mut bits) = x.evtchn_and_bits();
                ev::close(tbl, port, Peer::Same, &mut bits)
            }
            Some(pid) => match crate::domain::get(pid) {
                Some(pd) => {
                    let (mut lx, mut px) = lock_pair(dom, &pd);
                    let (tbl, mut bits) = lx.evtchn_and_bits();
                    ev::close(tbl, port, Peer::Other(&mut px.evtchn), &mut bits)
                }
                None => {
                    // The peer is gone without tearing down: there is no
                    // mirror to fix, close our end against an empty table.
                    let mut gone = DomainEvtchn::new(EvtchnConfig {
                        domid: pid,
                        nr_vcpus: 1,
                        max_ports: 1,
                        global_virq_handler: false,
                    });
                    let mut x = lock(dom);
                    let (tbl, mut bits) = x.evtchn_and_bits();
                    ev::close(tbl, port, Peer::Other(&mut gone), &mut bits)
                }
            },
        };
        match r {
            Err(EvtchnError::PeerMismatch { .. }) => continue,
            r => return r.map_err(errno),
        }
    }
    log::info!("{}: close of port {} kept racing: -EINVAL", dom.id, port.0);
    Err(Errno::EINVAL)
}

/// Close every port of `dom` (`EVTCHNOP_reset`, domain death).
pub(super) fn close_all(dom: &Arc<Domain>) {
    let ports: Vec<Port> = lock(dom).evtchn.ports_in_use().map(|(p, _)| p).collect();
    for p in ports {
        if let Err(e) = close_port(dom, p) {
            log::debug!("{}: closing port {}: {e:?}", dom.id, p.0);
        }
    }
}

/// Raise `virq` for `dom` (global and per-domain VIRQs go to the port
/// bound on vCPU 0; per-vCPU ones to vCPU 0's binding). Nothing happens if
/// the domain has not bound it. E.g. `VIRQ_CONSOLE` when console input for
/// Dom0 arrives, `VIRQ_DOM_EXC` when a domain dies.
pub fn raise_virq(dom: &Arc<Domain>, virq: u32) {
    let mut kicks = Kicks::default();
    let port = lock(dom).evtchn.virq_port(VcpuId(0), virq);
    if let Some(port) = port {
        deliver(
            dom,
            &mut kicks,
            |tbl, bits| tbl.raise_virq(VcpuId(0), virq, bits),
            port,
        );
    }
    kicks.fire();
}

/// Whether `evtchn_upcall_pending` is set for `vcpu` of `dom` (for wake-up
/// decisions of a blocked vCPU). The upcall PPI must be pending as long as
/// this is true.
pub fn has_pending_upcall(dom: &Domain, vcpu: usize) -> bool {
    let mut x = lock(dom);
    let (_, bits) = x.evtchn_and_bits();
    bits.upcall_pending(VcpuId(vcpu as u32))
}

/// `dom`'s event channels as text, for the `e` debug key: each port in
/// use with its pending and masked bits, and each vCPU's upcall flag.
pub fn dump(dom: &Domain, out: &mut dyn core::fmt::Write) {
    use oxen_xen::evtchn::GuestEventBits as _;
    let mut x = lock(dom);
    let (ev, bits) = x.evtchn_and_bits();
    let _ = write!(out, "  upcall pending:");
    for v in 0..ev.nr_vcpus() {
        let _ = write!(out, " v{v}={}", u8::from(bits.upcall_pending(VcpuId(v))));
    }
    let _ = writeln!(out);
    let ports: Vec<_> = ev.ports_in_use().collect();
    for (port, ch) in ports {
        let _ = writeln!(
            out,
            "  port {:>4}: {ch:?}{}{}",
            port.0,
            if bits.is_pending(port) {
                " pending"
            } else {
                ""
            },
            if bits.is_masked(port) { " masked" } else { "" },
        );
    }
}

/// Block the current vCPU until an upcall is pending. The vCPU is marked
/// blocked *before* the flag is checked, so an event arriving in between
/// (its `raise_upcall` wakes the vCPU) is not lost.
pub(super) fn block(dom: &Arc<Domain>, vcpu: usize) {
    crate::sched::block_current();
    if has_pending_upcall(dom, vcpu) {
        crate::sched::wake(dom, vcpu);
    }
}

/// `SCHEDOP_poll`: 0 at once if one of the ports is pending; otherwise
/// block until one becomes pending (even masked) or an upcall arrives.
/// A timeout is not implemented: a poll with a timeout just yields and
/// returns 0 (a spurious wake-up, which callers must tolerate anyway).
pub(super) fn poll(dom: &Arc<Domain>, vcpu: usize, arg: u64) -> Result<i64, Errno> {
    let sp: oxen_xen::hcall::SchedPoll = read_arg(dom, arg)?;
    let n = oxen_xen::hcall::check_poll_ports(sp.nr_ports)?;
    let mut raw = [0u8; 128 * 4];
    guest_mem::copy_from_guest(dom, sp.ports, &mut raw[..n * 4])?;
    let ports: Vec<u32> = raw[..n * 4]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    {
        let mut x = lock(dom);
        let max = x.evtchn.max_ports();
        if ports.iter().any(|&p| p >= max) {
            return Err(Errno::EINVAL);
        }
        let (_, bits) = x.evtchn_and_bits();
        use oxen_xen::evtchn::GuestEventBits;
        if ports.iter().any(|&p| bits.is_pending(Port(p))) {
            return Ok(0);
        }
        if sp.timeout != 0 {
            drop(x);
            crate::sched::yield_current();
            return Ok(0);
        }
    }
    // Blocked first, then registered as a poller and the ports looked at
    // again: an event that slips in before the registration is seen here,
    // one after it finds the vCPU blocked and wakes it.
    crate::sched::block_current();
    let pending = {
        let mut x = lock(dom);
        let (_, bits) = x.evtchn_and_bits();
        use oxen_xen::evtchn::GuestEventBits;
        let pending = ports.iter().any(|&p| bits.is_pending(Port(p)));
        if let Some(slot) = x.polling.get_mut(vcpu) {
            *slot = if pending { Vec::new() } else { ports };
        }
        pending
    };
    if pending || has_pending_upcall(dom, vcpu) {
        crate::sched::wake(dom, vcpu);
    }
    Ok(0)
}
