//! Event channels, 2-level ABI.
//!
//! A domain's ports live in a [`DomainEvtchn`]: port → state
//! (free / unbound / interdomain / VIRQ / IPI) and the vCPU each port
//! notifies. The *signals* (pending bits, mask bits, per-vCPU selector and
//! `evtchn_upcall_pending`) live in guest memory and are reached through
//! [`GuestEventBits`]. Delivery follows Xen's `evtchn_2l_set_pending`:
//!
//! 1. test-and-set `evtchn_pending[p]`; if it was already set, stop;
//! 2. if `evtchn_mask[p]` is clear and test-and-set of selector bit
//!    `p / 64` in the notified vCPU's `vcpu_info` returns 0, test-and-set
//!    `evtchn_upcall_pending`; if that was 0, the caller must assert the
//!    upcall PPI on that vCPU (all delivery functions return
//!    `Some(vcpu)` exactly then).
//!
//! `EVTCHNOP_unmask` clears the mask bit and, if it was set and the port
//! is pending, does step 2 again.
//!
//! Invariants of a table: port 0 is `Reserved` and never allocated; every
//! port below `max_ports` (≤ 4096) has a slot once it has been allocated
//! (slots are created lazily, lowest free port first); a VIRQ port is
//! recorded in `virq_ports[vcpu][virq]` and nowhere else; an interdomain
//! port `(d1,p1) → (d2,p2)` always has the mirror `(d2,p2) → (d1,p1)`
//! (both ends change together under both domains' locks).
//!
//! Sending is two-phase so it needs one lock at a time:
//!
//! ```text
//! match local.send(port)? {
//!     SendAction::Dropped => {}
//!     SendAction::Local { port } => kick(local_dom, local.deliver(port, &mut local_bits)),
//!     SendAction::Remote { dom, from, port } => {
//!         // lock `dom`'s table; the target is re-validated there
//!         kick(dom, remote.deliver_from(local_domid, from, port, &mut remote_bits))
//!     }
//! }
//! ```

use alloc::vec::Vec;
use core::fmt;

use oxen_types::{DomId, VcpuId};
use xen_abi::Errno;
use xen_abi::event_channel as abi;
use xen_abi::shared_info::{EVTCHN_2L_NR_CHANNELS, EVTCHN_WORD_BITS, EVTCHN_WORDS};

use crate::Peer;

/// Ports of the 2-level ABI on arm64 (64 words × 64 bits).
pub const NR_EVTCHN_2L: u32 = EVTCHN_2L_NR_CHANNELS;

/// Number of VIRQs a port can be bound to (`NR_VIRQS`).
pub const NR_VIRQS: u32 = abi::NR_VIRQS;

/// An event channel port number of one domain.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct Port(pub u32);

impl Port {
    /// Index of the 64-bit pending/mask word (and selector bit) of the port.
    pub const fn word(self) -> u32 {
        self.0 / EVTCHN_WORD_BITS
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// Errors of the event channel operations, each with Xen's errno.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum EvtchnError {
    /// The port is out of range or was never allocated (`-EINVAL`).
    InvalidPort(Port),
    /// The port's state does not allow the operation, e.g. closing a free
    /// port or port 0, sending on a VIRQ port (`-EINVAL`).
    WrongState(Port),
    /// All ports up to the domain's limit are in use (`-ENOSPC`).
    NoFreePort,
    /// The hypervisor could not grow the port table (`-ENOMEM`).
    NoMemory,
    /// The caller may not act on that domain (`-EPERM`).
    NotPermitted,
    /// No such domain (`-ESRCH`); for the hypervisor's domain look-ups.
    NoSuchDomain(DomId),
    /// The vCPU does not exist in the domain (`-ENOENT`).
    NoSuchVcpu(VcpuId),
    /// VIRQ number out of range, or a non-per-vCPU VIRQ bound to a vCPU
    /// other than 0 (`-EINVAL`).
    InvalidVirq(u32),
    /// A global VIRQ that another domain handles (`-EBUSY`).
    VirqBusy(u32),
    /// The VIRQ is already bound on that vCPU (`-EEXIST`).
    VirqAlreadyBound(u32),
    /// The remote port of a bind_interdomain is not unbound or does not
    /// accept the caller (`-EINVAL`).
    RemoteNotBindable {
        /// Remote domain.
        dom: DomId,
        /// Remote port.
        port: Port,
    },
    /// The port's binding cannot be changed (IPI, per-vCPU VIRQ) (`-EINVAL`).
    CannotRebind(Port),
    /// The hypervisor passed the wrong peer table; it should lock `needed`
    /// and retry (`-EINVAL` if reported to the guest).
    PeerMismatch {
        /// The domain whose table the operation needs.
        needed: DomId,
    },
}

impl EvtchnError {
    /// The errno Xen returns for this error.
    pub const fn errno(&self) -> Errno {
        match self {
            EvtchnError::NoFreePort => Errno::ENOSPC,
            EvtchnError::NoMemory => Errno::ENOMEM,
            EvtchnError::NotPermitted => Errno::EPERM,
            EvtchnError::NoSuchDomain(_) => Errno::ESRCH,
            EvtchnError::NoSuchVcpu(_) => Errno::ENOENT,
            EvtchnError::VirqBusy(_) => Errno::EBUSY,
            EvtchnError::VirqAlreadyBound(_) => Errno::EEXIST,
            EvtchnError::InvalidPort(_)
            | EvtchnError::WrongState(_)
            | EvtchnError::InvalidVirq(_)
            | EvtchnError::RemoteNotBindable { .. }
            | EvtchnError::CannotRebind(_)
            | EvtchnError::PeerMismatch { .. } => Errno::EINVAL,
        }
    }
}

impl fmt::Display for EvtchnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvtchnError::InvalidPort(p) => write!(f, "invalid {p}"),
            EvtchnError::WrongState(p) => write!(f, "{p} is in the wrong state"),
            EvtchnError::NoFreePort => f.write_str("no free port"),
            EvtchnError::NoMemory => f.write_str("out of memory"),
            EvtchnError::NotPermitted => f.write_str("not permitted"),
            EvtchnError::NoSuchDomain(d) => write!(f, "no domain {d}"),
            EvtchnError::NoSuchVcpu(v) => write!(f, "no vcpu {v}"),
            EvtchnError::InvalidVirq(v) => write!(f, "invalid virq {v}"),
            EvtchnError::VirqBusy(v) => write!(f, "global virq {v} handled elsewhere"),
            EvtchnError::VirqAlreadyBound(v) => write!(f, "virq {v} already bound"),
            EvtchnError::RemoteNotBindable { dom, port } => {
                write!(f, "{dom} {port} is not bindable")
            }
            EvtchnError::CannotRebind(p) => write!(f, "{p} cannot be rebound"),
            EvtchnError::PeerMismatch { needed } => write!(f, "operation needs {needed}"),
        }
    }
}

/// How a VIRQ is scoped (Xen's `enum virq_type`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VirqKind {
    /// One binding per vCPU, fixed to that vCPU (TIMER, DEBUG, XENOPROF, XENPMU).
    PerVcpu,
    /// One binding per domain, bound on vCPU 0, re-targetable (ARGO).
    PerDomain,
    /// Like per-domain, but only the global handler domain may bind it
    /// (CONSOLE, DOM_EXC, ... and `VIRQ_ARCH_*` on ARM).
    Global,
}

/// The kind of a VIRQ; `None` if `virq >= NR_VIRQS`.
pub const fn virq_kind(virq: u32) -> Option<VirqKind> {
    if virq >= NR_VIRQS {
        return None;
    }
    Some(match virq {
        abi::VIRQ_TIMER | abi::VIRQ_DEBUG | abi::VIRQ_XENOPROF | abi::VIRQ_XENPMU => {
            VirqKind::PerVcpu
        }
        abi::VIRQ_ARGO => VirqKind::PerDomain,
        _ => VirqKind::Global,
    })
}

/// Access to a domain's event bits in guest memory (`shared_info`'s
/// pending/mask bitmaps and each vCPU's `vcpu_info`).
///
/// Every method is one atomic operation on guest memory. Ports are below
/// [`NR_EVTCHN_2L`] and vCPUs exist when this crate calls; an
/// implementation must still not panic on other values (treat them as
/// masked / already set). Before a vCPU registered its `vcpu_info`, or
/// before `shared_info` is mapped, the implementation keeps the bits in a
/// hypervisor-private copy (e.g. an [`EventBitsModel`]) and copies them in
/// on registration.
pub trait GuestEventBits {
    /// Test-and-set `evtchn_pending[port]`; returns whether it was already set.
    fn set_pending(&mut self, port: Port) -> bool;
    /// Clear `evtchn_pending[port]`.
    fn clear_pending(&mut self, port: Port);
    /// Whether `evtchn_pending[port]` is set.
    fn is_pending(&self, port: Port) -> bool;
    /// Whether `evtchn_mask[port]` is set.
    fn is_masked(&self, port: Port) -> bool;
    /// Test-and-clear `evtchn_mask[port]`; returns whether it was set.
    fn clear_mask(&mut self, port: Port) -> bool;
    /// Test-and-set bit `word` of `vcpu`'s `evtchn_pending_sel`; returns
    /// whether it was already set.
    fn set_selector(&mut self, vcpu: VcpuId, word: u32) -> bool;
    /// Test-and-set `vcpu`'s `evtchn_upcall_pending`; returns whether it
    /// was already set.
    fn set_upcall_pending(&mut self, vcpu: VcpuId) -> bool;

    /// Raise selector bit `word` on `vcpu` and, if it was clear, the
    /// vCPU's `evtchn_upcall_pending`. Returns `true` when the upcall
    /// interrupt must be injected (the upcall flag went 0 → 1).
    fn set_vcpu_pending(&mut self, vcpu: VcpuId, word: u32) -> bool {
        !self.set_selector(vcpu, word) && !self.set_upcall_pending(vcpu)
    }
}

/// A plain-memory model of the event bits: the hypervisor's private copy
/// before the guest maps `shared_info`/registers `vcpu_info`, and the fake
/// used by tests. It can also play the guest's upcall handler
/// ([`EventBitsModel::guest_upcall`]).
#[derive(Clone, Debug)]
pub struct EventBitsModel {
    pending: [u64; EVTCHN_WORDS],
    mask: [u64; EVTCHN_WORDS],
    vcpus: Vec<VcpuBits>,
}

/// One vCPU's part of [`EventBitsModel`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuBits {
    /// `evtchn_pending_sel`.
    pub selector: u64,
    /// `evtchn_upcall_pending`.
    pub upcall_pending: bool,
}

fn bit(port: Port) -> Option<(usize, u64)> {
    if port.0 >= NR_EVTCHN_2L {
        return None;
    }
    Some(((port.0 / 64) as usize, 1u64 << (port.0 % 64)))
}

impl EventBitsModel {
    /// All bits clear (ports unmasked, as in a fresh `shared_info`) for
    /// `nr_vcpus` vCPUs.
    pub fn new(nr_vcpus: u32) -> Self {
        Self {
            pending: [0; EVTCHN_WORDS],
            mask: [0; EVTCHN_WORDS],
            vcpus: alloc::vec![VcpuBits::default(); nr_vcpus as usize],
        }
    }

    /// Set or clear the mask bit of `port` (what the guest does).
    pub fn set_mask(&mut self, port: Port, masked: bool) {
        if let Some((w, b)) = bit(port) {
            if masked {
                self.mask[w] |= b;
            } else {
                self.mask[w] &= !b;
            }
        }
    }

    /// The state of one vCPU's bits (`None` if it does not exist).
    pub fn vcpu(&self, vcpu: VcpuId) -> Option<VcpuBits> {
        self.vcpus.get(vcpu.0 as usize).copied()
    }

    /// The 64 pending words.
    pub fn pending_words(&self) -> &[u64; EVTCHN_WORDS] {
        &self.pending
    }

    /// The 64 mask words.
    pub fn mask_words(&self) -> &[u64; EVTCHN_WORDS] {
        &self.mask
    }

    /// Play Linux's 2-level upcall handler on `vcpu`: clear
    /// `upcall_pending`, take the selector, and collect (and clear) every
    /// pending, unmasked port of the selected words. `ports_of_vcpu`
    /// filters the ports the guest routes to this vCPU.
    pub fn guest_upcall(
        &mut self,
        vcpu: VcpuId,
        mut ports_of_vcpu: impl FnMut(Port) -> bool,
    ) -> Vec<Port> {
        let mut out = Vec::new();
        let Some(v) = self.vcpus.get_mut(vcpu.0 as usize) else {
            return out;
        };
        v.upcall_pending = false;
        let sel = core::mem::take(&mut v.selector);
        for w in 0..EVTCHN_WORDS {
            if sel & (1 << w) == 0 {
                continue;
            }
            let ready = self.pending[w] & !self.mask[w];
            for b in 0..64u32 {
                let port = Port(w as u32 * 64 + b);
                if ready & (1 << b) != 0 && ports_of_vcpu(port) {
                    self.pending[w] &= !(1 << b);
                    out.push(port);
                }
            }
        }
        out
    }
}

impl GuestEventBits for EventBitsModel {
    fn set_pending(&mut self, port: Port) -> bool {
        match bit(port) {
            Some((w, b)) => {
                let was = self.pending[w] & b != 0;
                self.pending[w] |= b;
                was
            }
            None => true,
        }
    }

    fn clear_pending(&mut self, port: Port) {
        if let Some((w, b)) = bit(port) {
            self.pending[w] &= !b;
        }
    }

    fn is_pending(&self, port: Port) -> bool {
        bit(port).is_some_and(|(w, b)| self.pending[w] & b != 0)
    }

    fn is_masked(&self, port: Port) -> bool {
        bit(port).is_none_or(|(w, b)| self.mask[w] & b != 0)
    }

    fn clear_mask(&mut self, port: Port) -> bool {
        match bit(port) {
            Some((w, b)) => {
                let was = self.mask[w] & b != 0;
                self.mask[w] &= !b;
                was
            }
            None => false,
        }
    }

    fn set_selector(&mut self, vcpu: VcpuId, word: u32) -> bool {
        match self.vcpus.get_mut(vcpu.0 as usize) {
            Some(v) if word < 64 => {
                let was = v.selector & (1 << word) != 0;
                v.selector |= 1 << word;
                was
            }
            _ => true,
        }
    }

    fn set_upcall_pending(&mut self, vcpu: VcpuId) -> bool {
        match self.vcpus.get_mut(vcpu.0 as usize) {
            Some(v) => core::mem::replace(&mut v.upcall_pending, true),
            None => true,
        }
    }
}

/// The state of one port.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum ChannelState {
    /// Not in use.
    #[default]
    Free,
    /// Port 0: never allocated.
    Reserved,
    /// Allocated, waiting for `remote` to bind to it.
    Unbound {
        /// The domain allowed to bind (never `DOMID_SELF`: resolved at allocation).
        remote: DomId,
    },
    /// Connected to `remote_port` of `remote` (possibly this domain).
    Interdomain {
        /// Remote domain.
        remote: DomId,
        /// Remote port.
        remote_port: Port,
    },
    /// Bound to a VIRQ.
    Virq {
        /// `VIRQ_*`.
        virq: u32,
    },
    /// Bound to an IPI.
    Ipi,
}

/// A port's state and the vCPU it notifies (`EVTCHNOP_status`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Channel {
    /// What the port is bound to.
    pub state: ChannelState,
    /// The vCPU notified when the port becomes pending.
    pub notify: VcpuId,
}

impl Channel {
    /// Fill the OUT fields of an `evtchn_status`.
    pub fn fill_status(&self, out: &mut abi::EvtchnStatus) {
        out.vcpu = self.notify.0;
        out.u_dom = 0;
        out.u_pad = 0;
        out.u_word = 0;
        out.status = match self.state {
            ChannelState::Free | ChannelState::Reserved => abi::EVTCHNSTAT_CLOSED,
            ChannelState::Unbound { remote } => {
                out.u_dom = remote.0;
                abi::EVTCHNSTAT_UNBOUND
            }
            ChannelState::Interdomain {
                remote,
                remote_port,
            } => {
                out.u_dom = remote.0;
                out.u_word = remote_port.0;
                abi::EVTCHNSTAT_INTERDOMAIN
            }
            ChannelState::Virq { virq } => {
                out.set_u32(virq);
                abi::EVTCHNSTAT_VIRQ
            }
            ChannelState::Ipi => abi::EVTCHNSTAT_IPI,
        };
    }
}

/// What the caller must do after [`DomainEvtchn::send`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SendAction {
    /// Nothing (the port is unbound: Xen silently drops the event).
    Dropped,
    /// Deliver to `port` of the sending domain (IPI) with
    /// [`DomainEvtchn::deliver`].
    Local {
        /// The port to set pending.
        port: Port,
    },
    /// Deliver to `port` of domain `dom` with [`DomainEvtchn::deliver_from`]
    /// under `dom`'s lock (`dom` may be the sender itself: loopback).
    Remote {
        /// Target domain.
        dom: DomId,
        /// The sender's port (for re-validation at the target).
        from: Port,
        /// The target's port.
        port: Port,
    },
}

/// Limits of a domain's event channels, chosen by the hypervisor.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EvtchnConfig {
    /// The domain's id.
    pub domid: DomId,
    /// Number of vCPUs (at least 1).
    pub nr_vcpus: u32,
    /// Ports the domain may use, port 0 included (clamped to 1..=4096).
    pub max_ports: u32,
    /// Whether this domain receives the global VIRQs (the hardware domain).
    pub global_virq_handler: bool,
}

/// One domain's event channel table.
#[derive(Clone, Debug)]
pub struct DomainEvtchn {
    domid: DomId,
    max_ports: u32,
    global_virq_handler: bool,
    /// Slot per allocated port; grows lazily up to `max_ports`.
    chans: Vec<Channel>,
    /// `virq_ports[vcpu][virq]`: bound port, 0 = none.
    virq_ports: Vec<[u32; NR_VIRQS as usize]>,
}

impl DomainEvtchn {
    /// An empty table (only the reserved port 0).
    pub fn new(cfg: EvtchnConfig) -> Self {
        let nr_vcpus = cfg.nr_vcpus.max(1) as usize;
        let mut chans = Vec::with_capacity(64);
        chans.push(Channel {
            state: ChannelState::Reserved,
            notify: VcpuId(0),
        });
        Self {
            domid: cfg.domid,
            max_ports: cfg.max_ports.clamp(1, NR_EVTCHN_2L),
            global_virq_handler: cfg.global_virq_handler,
            chans,
            virq_ports: alloc::vec![[0; NR_VIRQS as usize]; nr_vcpus],
        }
    }

    /// The owning domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> u32 {
        self.virq_ports.len() as u32
    }

    /// The port limit (ports are `0..max_ports`).
    pub fn max_ports(&self) -> u32 {
        self.max_ports
    }

    /// The channel at `port`, `None` if never allocated or out of range.
    pub fn channel(&self, port: Port) -> Option<Channel> {
        self.chans.get(port.0 as usize).copied()
    }

    /// The domain at the other end of `port` if it is interdomain: the
    /// second table to lock before [`close`].
    pub fn peer_domain(&self, port: Port) -> Option<DomId> {
        match self.channel(port)?.state {
            ChannelState::Interdomain { remote, .. } => Some(remote),
            _ => None,
        }
    }

    /// Every port that is not free (port 0 excluded), in port order.
    pub fn ports_in_use(&self) -> impl Iterator<Item = (Port, Channel)> + '_ {
        self.chans
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, c)| c.state != ChannelState::Free)
            .map(|(i, c)| (Port(i as u32), *c))
    }

    /// The port bound to `virq` for `vcpu` (global/per-domain VIRQs are
    /// recorded on vCPU 0 whatever vCPU they notify).
    pub fn virq_port(&self, vcpu: VcpuId, virq: u32) -> Option<Port> {
        let slot_vcpu = match virq_kind(virq)? {
            VirqKind::PerVcpu => vcpu.0,
            _ => 0,
        };
        let p = *self
            .virq_ports
            .get(slot_vcpu as usize)?
            .get(virq as usize)?;
        (p != 0).then_some(Port(p))
    }

    fn check_vcpu(&self, vcpu: VcpuId) -> Result<(), EvtchnError> {
        if (vcpu.0 as usize) < self.virq_ports.len() {
            Ok(())
        } else {
            Err(EvtchnError::NoSuchVcpu(vcpu))
        }
    }

    fn slot(&self, port: Port) -> Result<&Channel, EvtchnError> {
        self.chans
            .get(port.0 as usize)
            .ok_or(EvtchnError::InvalidPort(port))
    }

    /// Lowest free port, without taking it.
    fn find_free(&self) -> Result<Port, EvtchnError> {
        if let Some(i) = self
            .chans
            .iter()
            .position(|c| c.state == ChannelState::Free)
        {
            return Ok(Port(i as u32));
        }
        let next = self.chans.len() as u32;
        if next < self.max_ports {
            Ok(Port(next))
        } else {
            Err(EvtchnError::NoFreePort)
        }
    }

    /// Make sure `port` (from `find_free`) has a slot.
    fn ensure_slot(&mut self, port: Port) -> Result<(), EvtchnError> {
        let idx = port.0 as usize;
        if idx < self.chans.len() {
            return Ok(());
        }
        if idx != self.chans.len() || port.0 >= self.max_ports {
            return Err(EvtchnError::InvalidPort(port));
        }
        self.chans
            .try_reserve(1)
            .map_err(|_| EvtchnError::NoMemory)?;
        self.chans.push(Channel::default());
        Ok(())
    }

    /// Take the lowest free port and give it `chan`.
    fn alloc_port(&mut self, chan: Channel) -> Result<Port, EvtchnError> {
        let port = self.find_free()?;
        self.ensure_slot(port)?;
        self.chans[port.0 as usize] = chan;
        Ok(port)
    }

    /// Free `port` (Xen's `evtchn_free`): clear its pending bit, reset the
    /// binding to vCPU 0.
    fn free_port<B: GuestEventBits + ?Sized>(&mut self, port: Port, bits: &mut B) {
        bits.clear_pending(port);
        if let Some(c) = self.chans.get_mut(port.0 as usize) {
            *c = Channel::default();
        }
    }

    /// `EVTCHNOP_alloc_unbound` in this domain: a new port that `remote_dom`
    /// may bind to. `DOMID_SELF` as `remote_dom` means `caller` (Xen
    /// resolves it to the *calling* domain). The caller checks first that
    /// it may allocate in this domain ([`resolve_target`]).
    pub fn alloc_unbound(&mut self, caller: DomId, remote_dom: DomId) -> Result<Port, EvtchnError> {
        let remote = if remote_dom == DomId::SELF {
            caller
        } else {
            remote_dom
        };
        self.alloc_port(Channel {
            state: ChannelState::Unbound { remote },
            notify: VcpuId(0),
        })
    }

    /// `EVTCHNOP_bind_virq`: bind `virq` on `vcpu` to a new port.
    pub fn bind_virq(&mut self, virq: u32, vcpu: VcpuId) -> Result<Port, EvtchnError> {
        let kind = virq_kind(virq).ok_or(EvtchnError::InvalidVirq(virq))?;
        if kind != VirqKind::PerVcpu && vcpu.0 != 0 {
            return Err(EvtchnError::InvalidVirq(virq));
        }
        self.check_vcpu(vcpu)?;
        if kind == VirqKind::Global && !self.global_virq_handler {
            return Err(EvtchnError::VirqBusy(virq));
        }
        if self.virq_port(vcpu, virq).is_some() {
            return Err(EvtchnError::VirqAlreadyBound(virq));
        }
        let port = self.alloc_port(Channel {
            state: ChannelState::Virq { virq },
            notify: vcpu,
        })?;
        if let Some(slot) = self
            .virq_ports
            .get_mut(vcpu.0 as usize)
            .and_then(|v| v.get_mut(virq as usize))
        {
            *slot = port.0;
        }
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`: a new port that notifies `vcpu`.
    pub fn bind_ipi(&mut self, vcpu: VcpuId) -> Result<Port, EvtchnError> {
        self.check_vcpu(vcpu)?;
        self.alloc_port(Channel {
            state: ChannelState::Ipi,
            notify: vcpu,
        })
    }

    /// `EVTCHNOP_status` of `port` (permission checked by the caller with
    /// [`resolve_target`]).
    pub fn status(&self, port: Port) -> Result<Channel, EvtchnError> {
        self.slot(port).copied()
    }

    /// `EVTCHNOP_bind_vcpu`: make `port` notify `vcpu` from now on.
    pub fn bind_vcpu(&mut self, port: Port, vcpu: VcpuId) -> Result<(), EvtchnError> {
        self.check_vcpu(vcpu)?;
        let chan = self
            .chans
            .get_mut(port.0 as usize)
            .ok_or(EvtchnError::InvalidPort(port))?;
        match chan.state {
            ChannelState::Virq { virq } if virq_kind(virq) != Some(VirqKind::PerVcpu) => {
                chan.notify = vcpu;
                Ok(())
            }
            ChannelState::Unbound { .. } | ChannelState::Interdomain { .. } => {
                chan.notify = vcpu;
                Ok(())
            }
            _ => Err(EvtchnError::CannotRebind(port)),
        }
    }

    /// `EVTCHNOP_send` from this domain: validates `port` and says where
    /// the event goes (see [`SendAction`]).
    pub fn send(&self, port: Port) -> Result<SendAction, EvtchnError> {
        match self.slot(port)?.state {
            ChannelState::Interdomain {
                remote,
                remote_port,
            } => Ok(SendAction::Remote {
                dom: remote,
                from: port,
                port: remote_port,
            }),
            ChannelState::Ipi => Ok(SendAction::Local { port }),
            ChannelState::Unbound { .. } => Ok(SendAction::Dropped),
            _ => Err(EvtchnError::WrongState(port)),
        }
    }

    /// Set `port` pending and notify its vCPU (2-level rules, see the
    /// module docs). Returns the vCPU to inject the upcall into, if any.
    /// Ports that were never allocated are ignored.
    pub fn deliver<B: GuestEventBits + ?Sized>(&self, port: Port, bits: &mut B) -> Option<VcpuId> {
        let chan = self.chans.get(port.0 as usize)?;
        if bits.set_pending(port) {
            return None;
        }
        if !bits.is_masked(port) && bits.set_vcpu_pending(chan.notify, port.word()) {
            Some(chan.notify)
        } else {
            None
        }
    }

    /// Deliver an interdomain event sent by `(from_dom, from_port)` to our
    /// `port`, after checking that `port` is still connected to exactly
    /// that end (the channel may have been closed between the sender's
    /// look-up and this call; then the event is dropped).
    pub fn deliver_from<B: GuestEventBits + ?Sized>(
        &self,
        from_dom: DomId,
        from_port: Port,
        port: Port,
        bits: &mut B,
    ) -> Option<VcpuId> {
        match self.channel(port)?.state {
            ChannelState::Interdomain {
                remote,
                remote_port,
            } if remote == from_dom && remote_port == from_port => self.deliver(port, bits),
            _ => None,
        }
    }

    /// Raise `virq` (for `vcpu` if it is per-vCPU): deliver to the bound
    /// port, if any. Returns the vCPU to inject the upcall into.
    pub fn raise_virq<B: GuestEventBits + ?Sized>(
        &self,
        vcpu: VcpuId,
        virq: u32,
        bits: &mut B,
    ) -> Option<VcpuId> {
        let port = self.virq_port(vcpu, virq)?;
        self.deliver(port, bits)
    }

    /// `EVTCHNOP_unmask`: clear the mask bit; if it was set and the port
    /// is pending, re-raise the selector/upcall of the port's vCPU.
    /// Returns the vCPU to inject the upcall into.
    pub fn unmask<B: GuestEventBits + ?Sized>(
        &self,
        port: Port,
        bits: &mut B,
    ) -> Result<Option<VcpuId>, EvtchnError> {
        let chan = *self.slot(port)?;
        if bits.clear_mask(port)
            && bits.is_pending(port)
            && bits.set_vcpu_pending(chan.notify, port.word())
        {
            Ok(Some(chan.notify))
        } else {
            Ok(None)
        }
    }
}

/// Which domain an `EVTCHNOP_alloc_unbound`/`status` with `dom` acts on.
/// `DOMID_SELF` and the caller's own id mean the caller; any other domain
/// needs `privileged` (Xen's XSM_TARGET dummy policy), else `-EPERM`. The
/// hypervisor checks afterwards that the domain exists (`-ESRCH`).
pub fn resolve_target(caller: DomId, privileged: bool, dom: DomId) -> Result<DomId, EvtchnError> {
    if dom == DomId::SELF || dom == caller {
        Ok(caller)
    } else if privileged {
        Ok(dom)
    } else {
        Err(EvtchnError::NotPermitted)
    }
}

/// The domain a `remote_dom` argument names: `DOMID_SELF` is the caller.
pub fn resolve_domid(caller: DomId, dom: DomId) -> DomId {
    if dom == DomId::SELF { caller } else { dom }
}

fn check_peer<'a>(
    local: &DomainEvtchn,
    peer: &'a Peer<'_, DomainEvtchn>,
    needed: DomId,
) -> Result<Option<&'a DomainEvtchn>, EvtchnError> {
    match peer {
        Peer::Same if needed == local.domid => Ok(None),
        Peer::Other(r) if r.domid == needed && needed != local.domid => Ok(Some(&**r)),
        _ => Err(EvtchnError::PeerMismatch { needed }),
    }
}

/// A successful bind: the new local port and the vCPU to kick, if any.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Bound {
    /// The new local port.
    pub port: Port,
    /// The vCPU of the local domain to inject the upcall into.
    pub upcall: Option<VcpuId>,
}

/// `EVTCHNOP_bind_interdomain`: connect a new port of `local` to
/// `remote_port` of `remote`, which must be unbound and accept `local`.
///
/// `remote` is `Peer::Same` for loopback (`remote_dom` = the caller). The
/// caller holds both domains' locks (lower domid first). Like Xen, the new
/// local port is set pending at once (events sent to the unbound end were
/// dropped), so `local_bits` are the local domain's event bits.
pub fn bind_interdomain<B: GuestEventBits + ?Sized>(
    local: &mut DomainEvtchn,
    remote: Peer<'_, DomainEvtchn>,
    remote_dom: DomId,
    remote_port: Port,
    local_bits: &mut B,
) -> Result<Bound, EvtchnError> {
    let remote_tbl = check_peer(local, &remote, remote_dom)?;
    let lport = local.find_free()?;
    let rchan = match remote_tbl {
        Some(r) => r.channel(remote_port),
        None => local.channel(remote_port),
    };
    let Some(rchan) = rchan else {
        return Err(EvtchnError::InvalidPort(remote_port));
    };
    if rchan.state
        != (ChannelState::Unbound {
            remote: local.domid,
        })
    {
        return Err(EvtchnError::RemoteNotBindable {
            dom: remote_dom,
            port: remote_port,
        });
    }
    local.ensure_slot(lport)?;
    let local_id = local.domid;
    local.chans[lport.0 as usize] = Channel {
        state: ChannelState::Interdomain {
            remote: remote_dom,
            remote_port,
        },
        notify: VcpuId(0),
    };
    let rtable: &mut DomainEvtchn = match remote {
        Peer::Same => &mut *local,
        Peer::Other(r) => r,
    };
    if let Some(c) = rtable.chans.get_mut(remote_port.0 as usize) {
        c.state = ChannelState::Interdomain {
            remote: local_id,
            remote_port: lport,
        };
    }
    let upcall = local.deliver(lport, local_bits);
    Ok(Bound {
        port: lport,
        upcall,
    })
}

/// `EVTCHNOP_close` of `port` in `local`. Closing one end of an
/// interdomain channel turns the other end back into `Unbound` (accepting
/// `local` again). `peer` must be the port's [`DomainEvtchn::peer_domain`]
/// (`Peer::Same` for every other kind of port), locked in domid order.
/// The closed port's pending bit is cleared in `local_bits`.
pub fn close<B: GuestEventBits + ?Sized>(
    local: &mut DomainEvtchn,
    port: Port,
    peer: Peer<'_, DomainEvtchn>,
    local_bits: &mut B,
) -> Result<(), EvtchnError> {
    let chan = *local.slot(port)?;
    match chan.state {
        ChannelState::Free | ChannelState::Reserved => Err(EvtchnError::WrongState(port)),
        ChannelState::Unbound { .. } | ChannelState::Ipi => {
            local.free_port(port, local_bits);
            Ok(())
        }
        ChannelState::Virq { virq } => {
            let slot_vcpu = match virq_kind(virq) {
                Some(VirqKind::PerVcpu) => chan.notify.0,
                _ => 0,
            };
            if let Some(slot) = local
                .virq_ports
                .get_mut(slot_vcpu as usize)
                .and_then(|v| v.get_mut(virq as usize))
                .filter(|s| **s == port.0)
            {
                *slot = 0;
            }
            local.free_port(port, local_bits);
            Ok(())
        }
        ChannelState::Interdomain {
            remote,
            remote_port,
        } => {
            check_peer(local, &peer, remote)?;
            let local_id = local.domid;
            let rtable: &mut DomainEvtchn = match peer {
                Peer::Same => &mut *local,
                Peer::Other(r) => r,
            };
            if let Some(c) = rtable.chans.get_mut(remote_port.0 as usize)
                && c.state
                    == (ChannelState::Interdomain {
                        remote: local_id,
                        remote_port: port,
                    })
            {
                c.state = ChannelState::Unbound { remote: local_id };
            }
            local.free_port(port, local_bits);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D0: DomId = DomId(0);
    const D1: DomId = DomId(1);
    const D2: DomId = DomId(2);

    fn dom(domid: DomId, nr_vcpus: u32) -> (DomainEvtchn, EventBitsModel) {
        let t = DomainEvtchn::new(EvtchnConfig {
            domid,
            nr_vcpus,
            max_ports: NR_EVTCHN_2L,
            global_virq_handler: domid == D0,
        });
        (t, EventBitsModel::new(nr_vcpus))
    }

    /// Send through `port` of `from`, delivering into `to` (a different
    /// domain). Returns the vCPU of `to` to kick.
    fn send_remote(
        from: &DomainEvtchn,
        port: Port,
        to: &DomainEvtchn,
        to_bits: &mut EventBitsModel,
    ) -> Option<VcpuId> {
        match from.send(port).unwrap() {
            SendAction::Remote {
                dom,
                from: fp,
                port,
            } => {
                assert_eq!(dom, to.domid());
                to.deliver_from(from.domid(), fp, port, to_bits)
            }
            other => panic!("expected remote delivery, got {other:?}"),
        }
    }

    #[test]
    fn port_zero_is_reserved() {
        let (mut t, mut bits) = dom(D1, 1);
        assert_eq!(t.alloc_unbound(D1, D0), Ok(Port(1)));
        assert_eq!(t.status(Port(0)).unwrap().state, ChannelState::Reserved);
        let e = close(&mut t, Port(0), Peer::Same, &mut bits).unwrap_err();
        assert_eq!(e, EvtchnError::WrongState(Port(0)));
        assert_eq!(e.errno(), Errno::EINVAL);
        assert_eq!(t.send(Port(0)), Err(EvtchnError::WrongState(Port(0))));
        assert_eq!(
            t.bind_vcpu(Port(0), VcpuId(0)),
            Err(EvtchnError::CannotRebind(Port(0)))
        );
        let mut st = abi::EvtchnStatus::default();
        t.status(Port(0)).unwrap().fill_status(&mut st);
        assert_eq!(st.status, abi::EVTCHNSTAT_CLOSED);
    }

    #[test]
    fn bad_ports_are_einval() {
        let (mut t, mut bits) = dom(D1, 1);
        for p in [Port(5), Port(4096), Port(u32::MAX)] {
            assert_eq!(t.send(p), Err(EvtchnError::InvalidPort(p)));
            assert_eq!(t.status(p), Err(EvtchnError::InvalidPort(p)));
            assert_eq!(t.unmask(p, &mut bits), Err(EvtchnError::InvalidPort(p)));
            assert_eq!(t.bind_vcpu(p, VcpuId(0)), Err(EvtchnError::InvalidPort(p)));
            assert_eq!(
                close(&mut t, p, Peer::Same, &mut bits),
                Err(EvtchnError::InvalidPort(p))
            );
            assert_eq!(t.deliver(p, &mut bits), None);
            assert_eq!(EvtchnError::InvalidPort(p).errno(), Errno::EINVAL);
        }
        assert!(bits.pending_words().iter().all(|w| *w == 0));
    }

    #[test]
    fn alloc_unbound_resolves_self_and_checks_target() {
        let (mut t, _) = dom(D1, 1);
        let p = t.alloc_unbound(D1, DomId::SELF).unwrap();
        assert_eq!(
            t.status(p).unwrap().state,
            ChannelState::Unbound { remote: D1 }
        );
        assert_eq!(resolve_target(D1, false, DomId::SELF), Ok(D1));
        assert_eq!(resolve_target(D1, false, D1), Ok(D1));
        assert_eq!(
            resolve_target(D1, false, D2),
            Err(EvtchnError::NotPermitted)
        );
        assert_eq!(EvtchnError::NotPermitted.errno(), Errno::EPERM);
        assert_eq!(resolve_target(D0, true, D2), Ok(D2));
        assert_eq!(resolve_domid(D1, DomId::SELF), D1);
        assert_eq!(resolve_domid(D1, D2), D2);
        // Dom0 allocating in d2 on d2's behalf: SELF means the caller (d0).
        let (mut t2, _) = dom(D2, 1);
        let p = t2.alloc_unbound(D0, DomId::SELF).unwrap();
        assert_eq!(
            t2.status(p).unwrap().state,
            ChannelState::Unbound { remote: D0 }
        );
    }

    #[test]
    fn interdomain_bind_send_close() {
        let (mut a, mut abits) = dom(D1, 2);
        let (mut b, mut bbits) = dom(D2, 2);
        // Frontend in d1 offers a port to d2 (the backend).
        let pa = a.alloc_unbound(D1, D2).unwrap();
        // Events sent before the bind are dropped.
        assert_eq!(a.send(pa), Ok(SendAction::Dropped));

        let bound = bind_interdomain(&mut b, Peer::Other(&mut a), D1, pa, &mut bbits).unwrap();
        let pb = bound.port;
        assert_eq!(pb, Port(1));
        // Xen sets the new local port pending at once.
        assert_eq!(bound.upcall, Some(VcpuId(0)));
        assert!(bbits.is_pending(pb));
        assert_eq!(
            a.status(pa).unwrap().state,
            ChannelState::Interdomain {
                remote: D2,
                remote_port: pb
            }
        );
        assert_eq!(
            b.status(pb).unwrap().state,
            ChannelState::Interdomain {
                remote: D1,
                remote_port: pa
            }
        );
        let mut st = abi::EvtchnStatus::default();
        b.status(pb).unwrap().fill_status(&mut st);
        assert_eq!(
            (st.status, st.u_dom, st.u_word),
            (abi::EVTCHNSTAT_INTERDOMAIN, 1, pa.0)
        );
        assert_eq!(a.peer_domain(pa), Some(D2));

        // The backend consumes the initial event.
        assert_eq!(bbits.guest_upcall(VcpuId(0), |_| true), alloc::vec![pb]);

        // a → b sets b's bit, not a's.
        assert_eq!(send_remote(&a, pa, &b, &mut bbits), Some(VcpuId(0)));
        assert!(bbits.is_pending(pb));
        assert!(!abits.is_pending(pa));
        // b → a.
        assert_eq!(send_remote(&b, pb, &a, &mut abits), Some(VcpuId(0)));
        assert!(abits.is_pending(pa));

        // d1 closes: d2's end goes back to unbound, accepting d1 again.
        let needed = a.peer_domain(pa).unwrap();
        assert_eq!(needed, D2);
        close(&mut a, pa, Peer::Other(&mut b), &mut abits).unwrap();
        assert_eq!(a.status(pa).unwrap().state, ChannelState::Free);
        assert!(!abits.is_pending(pa), "close clears the pending bit");
        assert_eq!(
            b.status(pb).unwrap().state,
            ChannelState::Unbound { remote: D1 }
        );
        // A stale delivery after the close is dropped.
        assert_eq!(b.deliver_from(D1, pa, pb, &mut bbits), None);
        assert_eq!(a.deliver_from(D2, pb, pa, &mut abits), None);
        assert_eq!(b.send(pb), Ok(SendAction::Dropped));
        // Closing again fails.
        assert_eq!(
            close(&mut a, pa, Peer::Same, &mut abits),
            Err(EvtchnError::WrongState(pa))
        );

        // d1 can reconnect to d2's now-unbound port.
        let again = bind_interdomain(&mut a, Peer::Other(&mut b), D2, pb, &mut abits).unwrap();
        assert_eq!(
            b.status(pb).unwrap().state,
            ChannelState::Interdomain {
                remote: D1,
                remote_port: again.port
            }
        );
    }

    #[test]
    fn bind_interdomain_errors() {
        let (mut a, _) = dom(D1, 1);
        let (mut b, mut bbits) = dom(D2, 1);
        let (mut c, mut cbits) = dom(DomId(3), 1);
        let for_c = a.alloc_unbound(D1, DomId(3)).unwrap();
        let for_b = a.alloc_unbound(D1, D2).unwrap();

        // Port offered to d3, d2 tries: -EINVAL.
        let e = bind_interdomain(&mut b, Peer::Other(&mut a), D1, for_c, &mut bbits).unwrap_err();
        assert_eq!(
            e,
            EvtchnError::RemoteNotBindable {
                dom: D1,
                port: for_c
            }
        );
        assert_eq!(e.errno(), Errno::EINVAL);
        // Remote port 0, free, out of range.
        for p in [Port(0), Port(3), Port(4096), Port(u32::MAX)] {
            let e = bind_interdomain(&mut b, Peer::Other(&mut a), D1, p, &mut bbits).unwrap_err();
            assert_eq!(e.errno(), Errno::EINVAL, "{p}");
        }
        // Wrong peer table passed by the hypervisor.
        assert_eq!(
            bind_interdomain(&mut b, Peer::Other(&mut c), D1, for_b, &mut bbits),
            Err(EvtchnError::PeerMismatch { needed: D1 })
        );
        assert_eq!(
            bind_interdomain(&mut b, Peer::Same, D1, for_b, &mut bbits),
            Err(EvtchnError::PeerMismatch { needed: D1 })
        );
        // Nothing was allocated by the failures.
        assert_eq!(b.ports_in_use().count(), 0);
        // A port already connected cannot be bound twice.
        bind_interdomain(&mut b, Peer::Other(&mut a), D1, for_b, &mut bbits).unwrap();
        let e = bind_interdomain(&mut c, Peer::Other(&mut a), D1, for_b, &mut cbits).unwrap_err();
        assert_eq!(
            e,
            EvtchnError::RemoteNotBindable {
                dom: D1,
                port: for_b
            }
        );
        // Closing an interdomain port with the wrong peer is refused and
        // changes nothing.
        let pb = Port(1);
        assert_eq!(
            close(&mut b, pb, Peer::Other(&mut c), &mut bbits),
            Err(EvtchnError::PeerMismatch { needed: D1 })
        );
        assert_eq!(b.peer_domain(pb), Some(D1));
    }

    #[test]
    fn loopback_channel() {
        let (mut d, mut bits) = dom(D0, 1);
        // Dom0's kernel offers a port to itself (xenstored), as Linux does.
        let p = d.alloc_unbound(D0, DomId::SELF).unwrap();
        let bound = bind_interdomain(&mut d, Peer::Same, D0, p, &mut bits).unwrap();
        let q = bound.port;
        assert_ne!(p, q);
        assert_eq!(bits.guest_upcall(VcpuId(0), |_| true), alloc::vec![q]);
        match d.send(p).unwrap() {
            SendAction::Remote { dom, from, port } => {
                assert_eq!((dom, from, port), (D0, p, q));
                assert_eq!(d.deliver_from(D0, from, port, &mut bits), Some(VcpuId(0)));
            }
            other => panic!("{other:?}"),
        }
        assert!(bits.is_pending(q));
        assert_eq!(d.peer_domain(q), Some(D0));
        close(&mut d, q, Peer::Same, &mut bits).unwrap();
        assert_eq!(
            d.status(p).unwrap().state,
            ChannelState::Unbound { remote: D0 }
        );
        assert!(!bits.is_pending(q));
    }

    #[test]
    fn virq_binding_rules() {
        let (mut d0, mut bits0) = dom(D0, 2);
        let (mut du, _) = dom(D1, 2);
        // Global VIRQs belong to the hardware domain.
        let e = du.bind_virq(abi::VIRQ_CONSOLE, VcpuId(0)).unwrap_err();
        assert_eq!((e, e.errno()), (EvtchnError::VirqBusy(2), Errno::EBUSY));
        let pc = d0.bind_virq(abi::VIRQ_CONSOLE, VcpuId(0)).unwrap();
        let e = d0.bind_virq(abi::VIRQ_CONSOLE, VcpuId(0)).unwrap_err();
        assert_eq!(
            (e, e.errno()),
            (EvtchnError::VirqAlreadyBound(2), Errno::EEXIST)
        );
        // Non-per-vCPU VIRQs only on vCPU 0; bad numbers; missing vCPUs.
        assert_eq!(
            d0.bind_virq(abi::VIRQ_DOM_EXC, VcpuId(1)),
            Err(EvtchnError::InvalidVirq(3))
        );
        assert_eq!(
            d0.bind_virq(NR_VIRQS, VcpuId(0)),
            Err(EvtchnError::InvalidVirq(NR_VIRQS))
        );
        assert_eq!(
            d0.bind_virq(u32::MAX, VcpuId(0)),
            Err(EvtchnError::InvalidVirq(u32::MAX))
        );
        let e = d0.bind_virq(abi::VIRQ_TIMER, VcpuId(2)).unwrap_err();
        assert_eq!(
            (e, e.errno()),
            (EvtchnError::NoSuchVcpu(VcpuId(2)), Errno::ENOENT)
        );
        // Per-vCPU VIRQs: one per vCPU.
        let t0 = d0.bind_virq(abi::VIRQ_TIMER, VcpuId(0)).unwrap();
        let t1 = d0.bind_virq(abi::VIRQ_TIMER, VcpuId(1)).unwrap();
        assert_ne!(t0, t1);
        assert_eq!(du.bind_virq(abi::VIRQ_TIMER, VcpuId(1)).map(|_| ()), Ok(()));
        assert_eq!(d0.virq_port(VcpuId(1), abi::VIRQ_TIMER), Some(t1));
        // Raising goes to the bound vCPU.
        assert_eq!(
            d0.raise_virq(VcpuId(1), abi::VIRQ_TIMER, &mut bits0),
            Some(VcpuId(1))
        );
        assert!(bits0.is_pending(t1) && !bits0.is_pending(t0));
        assert_eq!(
            d0.raise_virq(VcpuId(0), abi::VIRQ_CONSOLE, &mut bits0),
            Some(VcpuId(0))
        );
        // An unbound VIRQ is not delivered anywhere.
        assert_eq!(d0.raise_virq(VcpuId(0), abi::VIRQ_DEBUG, &mut bits0), None);
        // Per-vCPU VIRQ ports can't move; global ones can.
        assert_eq!(
            d0.bind_vcpu(t1, VcpuId(0)),
            Err(EvtchnError::CannotRebind(t1))
        );
        d0.bind_vcpu(pc, VcpuId(1)).unwrap();
        assert_eq!(d0.status(pc).unwrap().notify, VcpuId(1));
        bits0.clear_pending(pc);
        // vCPU 1 still has the timer event outstanding: handle it first.
        assert_eq!(bits0.guest_upcall(VcpuId(1), |_| true), alloc::vec![t1]);
        assert_eq!(
            d0.raise_virq(VcpuId(0), abi::VIRQ_CONSOLE, &mut bits0),
            Some(VcpuId(1))
        );
        // Sending on a VIRQ port is invalid.
        assert_eq!(d0.send(pc), Err(EvtchnError::WrongState(pc)));
        let mut st = abi::EvtchnStatus::default();
        d0.status(pc).unwrap().fill_status(&mut st);
        assert_eq!(
            (st.status, st.u32_at_16(), st.vcpu),
            (abi::EVTCHNSTAT_VIRQ, 2, 1)
        );
        // Close frees the VIRQ for rebinding (even after a vCPU move).
        close(&mut d0, pc, Peer::Same, &mut bits0).unwrap();
        assert_eq!(d0.virq_port(VcpuId(0), abi::VIRQ_CONSOLE), None);
        assert_eq!(d0.bind_virq(abi::VIRQ_CONSOLE, VcpuId(0)), Ok(pc));
        close(&mut d0, t1, Peer::Same, &mut bits0).unwrap();
        assert_eq!(d0.virq_port(VcpuId(1), abi::VIRQ_TIMER), None);
        assert_eq!(d0.virq_port(VcpuId(0), abi::VIRQ_TIMER), Some(t0));
    }

    #[test]
    fn ipi_ports() {
        let (mut d, mut bits) = dom(D1, 2);
        let e = d.bind_ipi(VcpuId(9)).unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT);
        let p = d.bind_ipi(VcpuId(1)).unwrap();
        assert_eq!(d.send(p), Ok(SendAction::Local { port: p }));
        assert_eq!(d.deliver(p, &mut bits), Some(VcpuId(1)));
        assert_eq!(bits.vcpu(VcpuId(1)).unwrap().selector, 1 << p.word());
        assert!(!bits.vcpu(VcpuId(0)).unwrap().upcall_pending);
        assert_eq!(d.bind_vcpu(p, VcpuId(0)), Err(EvtchnError::CannotRebind(p)));
        let mut st = abi::EvtchnStatus::default();
        d.status(p).unwrap().fill_status(&mut st);
        assert_eq!((st.status, st.vcpu), (abi::EVTCHNSTAT_IPI, 1));
        close(&mut d, p, Peer::Same, &mut bits).unwrap();
        assert_eq!(d.send(p), Err(EvtchnError::WrongState(p)));
    }

    #[test]
    fn selector_and_upcall_semantics() {
        let (mut d, mut bits) = dom(D1, 1);
        let ports: Vec<Port> = (0..70).map(|_| d.alloc_unbound(D1, D2).unwrap()).collect();
        let (p1, p2, p65) = (ports[0], ports[1], ports[64]);
        assert_eq!((p1.0, p2.0, p65.0), (1, 2, 65));
        let v0 = VcpuId(0);
        // First event: pending, selector bit 0, upcall → inject.
        assert_eq!(d.deliver(p1, &mut bits), Some(v0));
        assert_eq!(
            bits.vcpu(v0).unwrap(),
            VcpuBits {
                selector: 1,
                upcall_pending: true
            }
        );
        // Already pending: nothing at all.
        assert_eq!(d.deliver(p1, &mut bits), None);
        // Same word, selector already set: no new upcall.
        assert_eq!(d.deliver(p2, &mut bits), None);
        assert!(bits.is_pending(p2));
        // Other word: selector bit 1 set, but upcall already pending.
        assert_eq!(d.deliver(p65, &mut bits), None);
        assert_eq!(
            bits.vcpu(v0).unwrap(),
            VcpuBits {
                selector: 0b11,
                upcall_pending: true
            }
        );
        // The guest handles everything.
        assert_eq!(bits.guest_upcall(v0, |_| true), alloc::vec![p1, p2, p65]);
        assert_eq!(bits.vcpu(v0).unwrap(), VcpuBits::default());
        // Next event injects again.
        assert_eq!(d.deliver(p2, &mut bits), Some(v0));
        bits.guest_upcall(v0, |_| true);
        // Guest cleared upcall_pending but the selector bit is still set
        // (handler running): no new injection, the handler loop sees it.
        assert_eq!(d.deliver(p1, &mut bits), Some(v0));
        let mut v = bits.vcpu(v0).unwrap();
        assert!(v.upcall_pending);
        bits.vcpus[0].upcall_pending = false;
        assert_eq!(d.deliver(p2, &mut bits), None);
        v.upcall_pending = false;
        assert_eq!(bits.vcpu(v0).unwrap(), v);
    }

    #[test]
    fn mask_and_unmask_reraise() {
        let (mut d, mut bits) = dom(D1, 2);
        let p = d.alloc_unbound(D1, D2).unwrap();
        d.bind_vcpu(p, VcpuId(1)).unwrap();
        bits.set_mask(p, true);
        // Masked: pending is set but nobody is told.
        assert_eq!(d.deliver(p, &mut bits), None);
        assert!(bits.is_pending(p));
        assert_eq!(bits.vcpu(VcpuId(1)).unwrap(), VcpuBits::default());
        // Unmask re-raises on the port's vCPU.
        assert_eq!(d.unmask(p, &mut bits), Ok(Some(VcpuId(1))));
        assert!(!bits.is_masked(p));
        assert_eq!(
            bits.vcpu(VcpuId(1)).unwrap(),
            VcpuBits {
                selector: 1,
                upcall_pending: true
            }
        );
        // Unmasking an unmasked port does nothing, even if pending.
        bits.vcpus[1] = VcpuBits::default();
        assert_eq!(d.unmask(p, &mut bits), Ok(None));
        assert_eq!(bits.vcpu(VcpuId(1)).unwrap(), VcpuBits::default());
        // Masked but not pending: unmask just clears the mask.
        bits.clear_pending(p);
        bits.set_mask(p, true);
        assert_eq!(d.unmask(p, &mut bits), Ok(None));
        assert!(!bits.is_masked(p));
        // Masked + pending while the selector is already set: no upcall.
        bits.set_mask(p, true);
        d.deliver(p, &mut bits);
        bits.vcpus[1].selector = 1;
        assert_eq!(d.unmask(p, &mut bits), Ok(None));
        assert!(!bits.vcpu(VcpuId(1)).unwrap().upcall_pending);
    }

    #[test]
    fn bind_vcpu_retargets_interdomain() {
        let (mut a, mut abits) = dom(D1, 1);
        let (mut b, mut bbits) = dom(D2, 4);
        let pa = a.alloc_unbound(D1, D2).unwrap();
        let pb = bind_interdomain(&mut b, Peer::Other(&mut a), D1, pa, &mut bbits)
            .unwrap()
            .port;
        bbits.guest_upcall(VcpuId(0), |_| true);
        b.bind_vcpu(pb, VcpuId(3)).unwrap();
        assert_eq!(
            b.bind_vcpu(pb, VcpuId(4)),
            Err(EvtchnError::NoSuchVcpu(VcpuId(4)))
        );
        assert_eq!(send_remote(&a, pa, &b, &mut bbits), Some(VcpuId(3)));
        assert_eq!(bbits.vcpu(VcpuId(0)).unwrap(), VcpuBits::default());
        // Closing resets the binding of a reused port to vCPU 0.
        close(&mut b, pb, Peer::Other(&mut a), &mut bbits).unwrap();
        let again = b.alloc_unbound(D2, D1).unwrap();
        assert_eq!(again, pb);
        assert_eq!(b.status(again).unwrap().notify, VcpuId(0));
        let _ = &mut abits;
    }

    #[test]
    fn port_exhaustion_and_reuse() {
        let mut t = DomainEvtchn::new(EvtchnConfig {
            domid: D1,
            nr_vcpus: 1,
            max_ports: 8,
            global_virq_handler: false,
        });
        let mut bits = EventBitsModel::new(1);
        for i in 1..8 {
            assert_eq!(t.alloc_unbound(D1, D0), Ok(Port(i)));
        }
        let e = t.alloc_unbound(D1, D0).unwrap_err();
        assert_eq!((e, e.errno()), (EvtchnError::NoFreePort, Errno::ENOSPC));
        assert_eq!(t.bind_ipi(VcpuId(0)), Err(EvtchnError::NoFreePort));
        close(&mut t, Port(3), Peer::Same, &mut bits).unwrap();
        close(&mut t, Port(5), Peer::Same, &mut bits).unwrap();
        assert_eq!(t.bind_ipi(VcpuId(0)), Ok(Port(3)));
        assert_eq!(t.alloc_unbound(D1, D0), Ok(Port(5)));
        assert_eq!(t.ports_in_use().count(), 7);
        // A table larger than the ABI is clamped.
        let big = DomainEvtchn::new(EvtchnConfig {
            domid: D1,
            nr_vcpus: 0,
            max_ports: u32::MAX,
            global_virq_handler: false,
        });
        assert_eq!(big.max_ports(), NR_EVTCHN_2L);
        assert_eq!(big.nr_vcpus(), 1);
    }

    #[test]
    fn errnos() {
        use EvtchnError::*;
        let cases = [
            (InvalidPort(Port(1)), Errno::EINVAL),
            (WrongState(Port(1)), Errno::EINVAL),
            (NoFreePort, Errno::ENOSPC),
            (NoMemory, Errno::ENOMEM),
            (NotPermitted, Errno::EPERM),
            (NoSuchDomain(D1), Errno::ESRCH),
            (NoSuchVcpu(VcpuId(1)), Errno::ENOENT),
            (InvalidVirq(99), Errno::EINVAL),
            (VirqBusy(2), Errno::EBUSY),
            (VirqAlreadyBound(2), Errno::EEXIST),
            (CannotRebind(Port(1)), Errno::EINVAL),
            (PeerMismatch { needed: D1 }, Errno::EINVAL),
        ];
        for (e, errno) in cases {
            assert_eq!(e.errno(), errno, "{e}");
        }
        assert_eq!(virq_kind(abi::VIRQ_ARGO), Some(VirqKind::PerDomain));
        assert_eq!(virq_kind(abi::VIRQ_ARCH_0), Some(VirqKind::Global));
        assert_eq!(virq_kind(abi::VIRQ_XENPMU), Some(VirqKind::PerVcpu));
        assert_eq!(virq_kind(NR_VIRQS), None);
    }
}
