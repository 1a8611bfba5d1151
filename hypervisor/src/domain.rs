//! Domains and their virtual CPUs.
//!
//! A [`Domain`] owns its RAM (host ranges mapped at guest IPAs), its stage-2
//! tables and VMID, and its vCPUs. Domains live in a global table as
//! `Arc<Domain>`; the scheduler's run queues hold further references, so a
//! dead domain's memory is scrubbed and returned when the last vCPU has
//! stopped running and the last reference goes away (`Drop`).
//!
//! Lock order: DOMAINS, then a run queue, then a domain's stage 2, then a
//! vCPU. A vCPU's lock is only taken by the physical CPU it is pinned to,
//! except while it is offline (PSCI CPU_ON).

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::sync::Mutex;
use oxen_mm::Stage2;
use oxen_types::{DomId, Ipa, PhysAddr, PhysRange};

use oxen_vgic::Vgic;

use crate::arch::context::{El1Context, FpContext};
use crate::arch::gich::VifState;
use crate::arch::head::TrapFrame;
use crate::console::LineBuf;
use crate::mem::{FRAMES, HostTables};
use crate::vgic::VgicLayout;

/// PSTATE a vCPU starts with: EL1h, D/A/I/F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// One contiguous piece of a domain's RAM.
#[derive(Clone, Copy, Debug)]
pub struct MemBank {
    /// Where the guest sees it.
    pub ipa: Ipa,
    /// The host memory behind it.
    pub phys: PhysRange,
}

/// Lifecycle of a domain.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum DomState {
    /// Running normally.
    Running = 0,
    /// Shut down (by itself or by a crash); vCPUs are being descheduled.
    Dead = 1,
}

/// Run state of one vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VcpuState {
    /// Not started (secondary before PSCI CPU_ON) or stopped (CPU_OFF).
    Offline,
    /// Wants a physical CPU.
    Runnable,
    /// Waiting for an event (sched_op block/poll, WFI); see `sched::wake`.
    Blocked,
}

/// A virtual CPU.
pub struct Vcpu {
    /// Physical CPU it is pinned to.
    pub pcpu: usize,
    /// General-purpose registers, PC and PSTATE while not running.
    pub frame: TrapFrame,
    /// EL1 system registers while not running.
    pub el1: El1Context,
    /// FP/SIMD registers while not running.
    pub fp: FpContext,
    /// Offline or runnable.
    pub state: VcpuState,
    /// GIC virtual interface state (VMCR, active priorities).
    pub vif: VifState,
    /// Virtual-timer deadline (physical count) while blocked, if armed.
    pub timer_deadline: Option<u64>,
    /// Unique id of this vCPU's register context (never reused), so a CPU
    /// can tell that the registers it holds are still this vCPU's.
    pub ctx_id: u64,
}

static NEXT_CTX_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

/// A fresh register-context id (a vCPU whose registers are reset gets one,
/// so no CPU mistakes stale hardware state for it).
pub fn new_ctx_id() -> u64 {
    NEXT_CTX_ID.fetch_add(1, Ordering::Relaxed)
}

/// A domain.
pub struct Domain {
    /// Its id (Dom0 = 0).
    pub id: DomId,
    /// Its name (from the device tree).
    pub name: String,
    /// Whether it is the privileged control domain.
    pub is_dom0: bool,
    /// RAM, in guest-address order.
    pub mem: Vec<MemBank>,
    /// VTTBR_EL2 value: VMID and stage-2 root.
    pub vttbr: u64,
    /// Stage-2 tables.
    pub stage2: Mutex<Option<Stage2>>,
    /// The vCPUs.
    pub vcpus: Vec<Mutex<Vcpu>>,
    state: AtomicU8,
    /// Console output not yet printed.
    pub console: Mutex<LineBuf>,
    /// Xen ABI state: shared_info, event channels, grant table.
    pub xen: Mutex<crate::xen::DomainXen>,
    /// The virtual GIC's register model.
    pub vgic: Mutex<Vgic>,
    /// Where the virtual GIC sits in the domain's IPA space.
    pub vgic_layout: VgicLayout,
    /// The emulated console UART (`vpl011` in the domain's DT node).
    pub vuart: Option<Mutex<oxen_vuart::VUart>>,
    /// Unimplemented hypercall numbers already reported (bit n = number n,
    /// bit 63 = any number ≥ 63).
    pub reported_hypercalls: core::sync::atomic::AtomicU64,
    /// Bumped on every change to the vGIC model that may make an interrupt
    /// deliverable (lets a CPU skip refilling list registers otherwise).
    pub vgic_gen: core::sync::atomic::AtomicU64,
}

/// vMPIDR of vCPU `id` (Xen's layout: Aff0 = id % 16, Aff1 = id / 16; bit 31 RES1).
pub fn vmpidr(id: u32) -> u64 {
    (1 << 31) | oxen_vgic::vcpu_mpidr(id as usize)
}

/// The vCPU index a guest-supplied MPIDR names, if well-formed.
pub fn vcpu_from_mpidr(mpidr: u64) -> Option<u32> {
    let aff0 = mpidr & 0xff;
    let aff1 = (mpidr >> 8) & 0xff;
    if aff0 > 0xf || mpidr & !0xffff != 0 {
        return None;
    }
    Some((aff1 * 16 + aff0) as u32)
}

impl Domain {
    /// Assemble a domain from its parts; vCPU 0 starts at `entry` with x0 = `dtb`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: DomId,
        name: String,
        is_dom0: bool,
        mem: Vec<MemBank>,
        stage2: Stage2,
        vmid: u16,
        vgic: Vgic,
        vgic_layout: VgicLayout,
        pcpus: &[usize],
        entry: Ipa,
        dtb: Ipa,
    ) -> Self {
        let vttbr = (u64::from(vmid) << 48) | stage2.root().as_u64();
        let vcpus = pcpus
            .iter()
            .enumerate()
            .map(|(i, &pcpu)| {
                let mut frame = TrapFrame::default();
                frame.spsr = SPSR_EL1H_MASKED;
                let state = if i == 0 {
                    frame.elr = entry.as_u64();
                    frame.x[0] = dtb.as_u64();
                    VcpuState::Runnable
                } else {
                    VcpuState::Offline
                };
                Mutex::new(Vcpu {
                    pcpu,
                    frame,
                    el1: El1Context::reset(vmpidr(i as u32)),
                    fp: FpContext::default(),
                    state,
                    vif: VifState::default(),
                    timer_deadline: None,
                    ctx_id: new_ctx_id(),
                })
            })
            .collect();
        Self {
            id,
            name,
            is_dom0,
            mem,
            vttbr,
            stage2: Mutex::new(Some(stage2)),
            vcpus,
            state: AtomicU8::new(DomState::Running as u8),
            console: Mutex::new(LineBuf::new()),
            xen: Mutex::new(crate::xen::DomainXen::new(pcpus.len())),
            vgic: Mutex::new(vgic),
            vgic_layout,
            vgic_gen: core::sync::atomic::AtomicU64::new(1),
            reported_hypercalls: core::sync::atomic::AtomicU64::new(0),
            vuart: None,
        }
    }

    /// Whether the domain is still running.
    pub fn is_alive(&self) -> bool {
        self.state.load(Ordering::Acquire) == DomState::Running as u8
    }

    /// Mark the domain dead. Returns false if it already was.
    pub fn kill(&self) -> bool {
        self.state.swap(DomState::Dead as u8, Ordering::AcqRel) == DomState::Running as u8
    }

    /// The host range behind `[pa, pa+len)` if all of it is this domain's RAM.
    pub fn owns_phys(&self, pa: PhysAddr, len: u64) -> bool {
        self.mem.iter().any(|b| b.phys.contains_range(pa, len))
    }

    /// Total RAM in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.mem.iter().map(|b| b.phys.size).sum()
    }
}

impl Drop for Domain {
    fn drop(&mut self) {
        crate::arch::flush_guest_tlb(self.vttbr);
        if let Some(s2) = self.stage2.lock().take() {
            s2.destroy(&mut HostTables);
        }
        for b in &self.mem {
            // SAFETY: the domain is gone (no vCPU runs, no reference is
            // left), so its RAM is ours again; scrub it before reuse so no
            // other domain can read what this one left behind.
            unsafe { crate::arch::zero_phys(b.phys.start.as_u64(), b.phys.size as usize) };
            if let Err(e) = FRAMES.lock().free(b.phys) {
                log::error!("{}: returning RAM {}: {e:?}", self.id, b.phys);
            }
        }
        log::info!(
            "{}: destroyed, {} MiB returned",
            self.id,
            self.ram_bytes() >> 20
        );
    }
}

/// Every domain, by id.
pub static DOMAINS: Mutex<Vec<Arc<Domain>>> = Mutex::new(Vec::new());

/// Look a domain up by id.
pub fn get(id: DomId) -> Option<Arc<Domain>> {
    DOMAINS.lock().iter().find(|d| d.id == id).cloned()
}

/// Number of domains still running.
pub fn alive_count() -> usize {
    DOMAINS.lock().iter().filter(|d| d.is_alive()).count()
}

/// Remove dead domains from the table (they are freed once the scheduler
/// drops its last reference).
pub fn reap() {
    DOMAINS.lock().retain(|d| d.is_alive());
}
