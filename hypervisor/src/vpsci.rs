//! PSCI and SMCCC as seen by guests (`HVC #0` or `SMC #0`): CPU bring-up,
//! system power, and "not supported" for every probe oxen does not answer
//! (Linux probes vendor services, TRNG, PV time and must be told no).

extern crate alloc;

use alloc::sync::Arc;

use oxen_trap::psci::{self, Call};
use oxen_trap::smccc;
use xen_abi::hypercall::ShutdownReason;

use crate::arch::context::El1Context;
use crate::arch::head::TrapFrame;
use crate::domain::{self, Domain, SPSR_EL1H_MASKED, VcpuState};
use crate::{sched, shutdown};

use oxen_trap::psci::{ALREADY_ON, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, SUCCESS};

/// AFFINITY_INFO answers.
const AFF_ON: i64 = psci::AFFINITY_ON as i64;
const AFF_OFF: i64 = psci::AFFINITY_OFF as i64;
/// MIGRATE_INFO_TYPE: no trusted OS needing migration.
const MIGRATE_NONE: i64 = psci::MIGRATE_INFO_TYPE_NOT_PRESENT as i64;
/// SMCCC version 1.1.
const SMCCC_VERSION_1_1: i64 = smccc::VERSION_1_1 as i64;

/// Handle the SMCCC call in `frame` from vCPU `vcpu` of `dom`.
pub fn handle(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame) {
    let call = psci::decode([frame.x[0], frame.x[1], frame.x[2], frame.x[3]]);
    let ret: i64 = match call {
        Call::Version => psci::VERSION_1_1 as i64,
        Call::CpuOn {
            target_mpidr,
            entry,
            context,
        } => cpu_on(dom, target_mpidr, entry, context),
        Call::CpuOff => {
            dom.vcpus[vcpu].lock().state = VcpuState::Offline;
            sched::yield_current();
            SUCCESS
        }
        Call::AffinityInfo { target_mpidr, .. } => match domain::vcpu_from_mpidr(target_mpidr) {
            Some(t) if (t as usize) < dom.vcpus.len() => {
                if dom.vcpus[t as usize].lock().state == VcpuState::Offline && t as usize != vcpu {
                    AFF_OFF
                } else {
                    AFF_ON
                }
            }
            _ => INVALID_PARAMETERS,
        },
        Call::MigrateInfoType => MIGRATE_NONE,
        Call::SystemOff => {
            shutdown::domain_shutdown(dom, ShutdownReason::Poweroff);
            SUCCESS
        }
        Call::SystemReset => {
            shutdown::domain_shutdown(dom, ShutdownReason::Reboot);
            SUCCESS
        }
        Call::Features { fid } => match psci::decode([u64::from(fid), 0, 0, 0]) {
            Call::Unknown { .. } | Call::SmcccArchFeatures { .. } => NOT_SUPPORTED,
            _ => SUCCESS,
        },
        Call::SmcccVersion => SMCCC_VERSION_1_1,
        Call::SmcccArchFeatures { .. } => smccc::NOT_SUPPORTED,
        Call::CpuSuspend { .. } => {
            // A suspended vCPU may resume at once: treat as a yield.
            sched::yield_current();
            SUCCESS
        }
        Call::Unknown { fid } => {
            log::debug!("{}v{vcpu}: unsupported SMCCC call {fid:#x}", dom.id);
            NOT_SUPPORTED
        }
    };
    frame.x[0] = ret as u64;
}

fn cpu_on(dom: &Arc<Domain>, target: u64, entry: u64, context: u64) -> i64 {
    let Some(t) = domain::vcpu_from_mpidr(target).map(|t| t as usize) else {
        return INVALID_PARAMETERS;
    };
    if t >= dom.vcpus.len() {
        return INVALID_PARAMETERS;
    }
    // As Xen's vPSCI: an entry point with bit 0 set (Thumb) cannot start a
    // 64-bit vCPU.
    if entry & 1 != 0 {
        return INVALID_ADDRESS;
    }
    {
        let mut v = dom.vcpus[t].lock();
        if v.state != VcpuState::Offline {
            return ALREADY_ON;
        }
        v.frame = TrapFrame::default();
        v.frame.elr = entry;
        v.frame.x[0] = context;
        v.frame.spsr = SPSR_EL1H_MASKED;
        v.el1 = El1Context::reset(domain::vmpidr(t as u32));
        v.fp = Default::default();
        v.ctx_id = domain::new_ctx_id();
        v.state = VcpuState::Runnable;
    }
    log::debug!("{}v{t}: started at {entry:#x}", dom.id);
    sched::enqueue(dom, t);
    SUCCESS
}
