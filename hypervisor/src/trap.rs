//! Exceptions taken to EL2: from guests (hypercalls, SMCCC, stage-2 faults,
//! trapped instructions, interrupts) and from the hypervisor itself (bugs).
//!
//! Anything a guest does wrong ends in an error code, an injected exception
//! or the guest's own domain being stopped — never in a hypervisor panic.

extern crate alloc;

use alloc::string::String;
use alloc::sync::Arc;
use core::fmt::Write;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use oxen_trap::idreg::IdRegAnswer;
use oxen_trap::{Esr, ExceptionClass, TrapReport, fault_ipa};
use xen_abi::XEN_HYPERCALL_TAG;

use crate::arch::head::{KIND_FIQ, KIND_IRQ, KIND_SERROR, KIND_SYNC, MAX_CPUS, TrapFrame};
use crate::arch::sysreg;
use crate::domain::Domain;
use crate::{hypercall, irq, sched, shutdown, vgic, vpsci};

/// VBAR_EL1 offsets of the synchronous vectors (Arm ARM D1.10.2).
const VEC_CURRENT_SP0: u64 = 0x000;
const VEC_CURRENT_SPX: u64 = 0x200;
const VEC_LOWER_A64: u64 = 0x400;
/// ESR "unknown reason" class with IL set: what an UNDEFINED instruction reports.
const ESR_UNDEF: u64 = 1 << 25;
/// SPSR_EL2.M\[3:0\]: the exception level and stack the trap came from.
const SPSR_M_MASK: u64 = 0xf;
/// SPSR_EL2.M\[3:0\] for EL0t.
const SPSR_M_EL0T: u64 = 0b0000;

/// Exits from guests by exception class (index 64: interrupts), for the
/// statistics line printed at power-off and by debug key `x`.
static EXITS: [AtomicU64; 65] = [const { AtomicU64::new(0) }; 65];

/// The exit counters at one moment (hypercalls, WFI, MMIO, system
/// registers, interrupts); shown as the one `guest exits: ...` line.
pub struct ExitStats {
    hypercall: u64,
    wfi: u64,
    mmio: u64,
    sysreg: u64,
    interrupt: u64,
}

/// The exit counters now.
pub fn exit_stats() -> ExitStats {
    let n = |i: usize| EXITS[i].load(Ordering::Relaxed);
    ExitStats {
        hypercall: n(0x16) + n(0x17),
        wfi: n(0x01),
        mmio: n(0x24),
        sysreg: n(0x18),
        interrupt: n(64),
    }
}

impl core::fmt::Display for ExitStats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "guest exits: {} hypercall/SMCCC, {} WFI/WFE, {} MMIO, {} sysreg, {} interrupt",
            self.hypercall, self.wfi, self.mmio, self.sysreg, self.interrupt
        )
    }
}

/// One line of exit statistics, printed when the machine stops.
pub fn log_exit_stats() {
    log::info!("{}", exit_stats());
}

/// Per CPU: the domain and vCPU that the last `sched::schedule` on this
/// CPU's exit path chose to run (null before the first exit).
///
/// Invariant: the pointer comes from `Arc::as_ptr` of the domain that
/// `schedule` returned, and this CPU's run queue keeps a strong reference to
/// it as its current vCPU until this CPU calls `schedule` again, which only
/// happens at the end of an exit (here), after the last use of the pointer.
/// Only this CPU reads or writes its own slots.
static RUNNING_DOM: [AtomicPtr<Domain>; MAX_CPUS] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_CPUS];
static RUNNING_VCPU: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// The vCPU this CPU was running when the guest exited, without taking the
/// run-queue lock or a reference count. `None` before the first exit.
fn running(cpu: usize) -> Option<(ManuallyDrop<Arc<Domain>>, usize)> {
    let p = RUNNING_DOM[cpu].load(Ordering::Relaxed);
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` came from `Arc::as_ptr` and the run queue still holds a
    // strong reference to it (invariant of RUNNING_DOM); ManuallyDrop keeps
    // this borrowed handle from giving that reference back.
    let dom = ManuallyDrop::new(unsafe { Arc::from_raw(p) });
    Some((dom, RUNNING_VCPU[cpu].load(Ordering::Relaxed)))
}

/// ESR_EL2 of `HVC #0xEA1` from AArch64: exception class 0x16, IL set, the
/// immediate in ISS\[15:0\].
const ESR_XEN_HYPERCALL: u64 = (0x16 << 26) | (1 << 25) | XEN_HYPERCALL_TAG as u64;

/// Entry from the vectors for exceptions from EL1/EL0.
pub extern "C" fn handle_lower_el(frame: &mut TrapFrame, kind: u64) {
    let cpu = sched::this_cpu();
    let esr = if kind == KIND_SYNC {
        sysreg::esr_el2()
    } else {
        0
    };
    // A Xen hypercall that changes no vCPU's scheduling or interrupt state
    // (see `hypercall::is_local`): nothing to look at before returning to
    // the same vCPU. Timer ticks and kicks that arrived meanwhile are
    // pending physical interrupts, taken as their own exit right after.
    if esr & 0xffff_ffff == ESR_XEN_HYPERCALL
        && hypercall::is_local(frame.x[16])
        && let Some((dom, vcpu)) = running(cpu)
    {
        EXITS[0x16].fetch_add(1, Ordering::Relaxed);
        hypercall::dispatch(&dom, vcpu, frame);
        return;
    }
    let slot = if kind == KIND_SYNC {
        (esr >> 26) as usize & 63
    } else {
        64
    };
    EXITS[slot].fetch_add(1, Ordering::Relaxed);
    let cur = match running(cpu) {
        Some((dom, vcpu)) => Some((Arc::clone(&dom), vcpu)),
        None => sched::current(),
    };
    if let Some((dom, vcpu)) = &cur {
        vgic::sync_from_hw(dom, *vcpu);
    }
    match cur {
        Some((dom, vcpu)) => match kind {
            KIND_SYNC => guest_sync(&dom, vcpu, frame),
            KIND_IRQ | KIND_FIQ => {
                irq::handle_pending(cpu);
            }
            KIND_SERROR => {
                log::info!(
                    "{}v{vcpu}: SError (ESR {:#x}): domain {} crashed",
                    dom.id,
                    sysreg::esr_el2(),
                    dom.id
                );
                shutdown::domain_crash(&dom);
            }
            _ => {}
        },
        None => {
            irq::handle_pending(cpu);
        }
    }
    let (dom, vcpu) = sched::schedule(frame);
    vgic::load_to_hw(&dom, vcpu);
    RUNNING_DOM[cpu].store(Arc::as_ptr(&dom).cast_mut(), Ordering::Relaxed);
    RUNNING_VCPU[cpu].store(vcpu, Ordering::Relaxed);
}

fn advance_pc(frame: &mut TrapFrame, esr: &Esr) {
    frame.elr += if esr.il32() { 4 } else { 2 };
}

fn guest_sync(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame) {
    let esr = Esr(sysreg::esr_el2());
    match esr.class() {
        ExceptionClass::Hvc64 => match esr.hvc_imm() {
            XEN_HYPERCALL_TAG => hypercall::dispatch(dom, vcpu, frame),
            0 => vpsci::handle(dom, vcpu, frame),
            imm => {
                log::info!(
                    "{}v{vcpu}: HVC #{imm:#x} is not a Xen or SMCCC call: undefined",
                    dom.id
                );
                inject_undef(frame, frame.elr - 4);
            }
        },
        ExceptionClass::Smc64 => {
            // SMC traps before it executes: resume after it.
            advance_pc(frame, &esr);
            vpsci::handle(dom, vcpu, frame);
        }
        ExceptionClass::WfxTrap => {
            advance_pc(frame, &esr);
            match esr.wfx() {
                Some(oxen_trap::Wfx::Wfi) => {
                    // An interrupt to take, or one that came while the
                    // vCPU waited in place: resume it. Otherwise block
                    // first, then look: an interrupt injected in between
                    // finds the vCPU blocked and wakes it.
                    if !vgic::current_has_pending(dom, vcpu) && !sched::wait_in_place() {
                        sched::block_current();
                        if vgic::current_has_pending(dom, vcpu) {
                            sched::wake(dom, vcpu);
                        }
                    }
                }
                _ => sched::yield_current(),
            }
        }
        ExceptionClass::DataAbortLower => data_abort(dom, vcpu, frame, &esr),
        ExceptionClass::InstrAbortLower => {
            let ipa = fault_ipa(sysreg::hpfar_el2(), sysreg::far_el2());
            if let Some(ia) = esr.instr_abort()
                && mapped_since(dom, ia.fault, ipa)
            {
                return;
            }
            log::info!(
                "{}v{vcpu}: instruction fetch from IPA {ipa:#x} (PC {:#x}): not executable memory of this domain: domain {} crashed",
                dom.id,
                frame.elr,
                dom.id
            );
            shutdown::domain_crash(dom);
        }
        ExceptionClass::SysReg => {
            if let Some(acc) = esr.sysreg() {
                let key = acc.encoding();
                if key == oxen_trap::sysreg::ICC_SGI1R_EL1 && !acc.read {
                    let v = oxen_trap::mmio::read_gpr(&frame.x, acc.rt);
                    vgic::sgi1r(dom, vcpu, v);
                    advance_pc(frame, &esr);
                    return;
                }
                if key == oxen_trap::sysreg::ICC_SGI0R_EL1
                    || key == oxen_trap::sysreg::ICC_ASGI1R_EL1
                {
                    // Group 0 / alternate-group SGIs: not offered; write ignored.
                    advance_pc(frame, &esr);
                    return;
                }
                // ID registers (HCR_EL2.TID3): the sanitised values.
                let from_el0 = frame.spsr & SPSR_M_MASK == SPSR_M_EL0T;
                match crate::idregs::guest().answer(&acc, from_el0) {
                    IdRegAnswer::Read(v) => {
                        oxen_trap::mmio::write_gpr(&mut frame.x, acc.rt, v);
                        advance_pc(frame, &esr);
                        return;
                    }
                    IdRegAnswer::Undefined => {
                        log::debug!(
                            "{}v{vcpu}: {acc} at {:#x}: read-only ID register: undefined",
                            dom.id,
                            frame.elr
                        );
                        inject_undef(frame, frame.elr);
                        return;
                    }
                    IdRegAnswer::NotIdSpace => {}
                }
            }
            let what = esr.sysreg().map(|s| s.encoding()).unwrap_or(0);
            log::debug!(
                "{}v{vcpu}: trapped system register access {what:#x} at {:#x}: undefined",
                dom.id,
                frame.elr
            );
            inject_undef(frame, frame.elr);
        }
        ExceptionClass::FpAccess
        | ExceptionClass::SveAccess
        | ExceptionClass::SmeAccess
        | ExceptionClass::PAuthTrap => {
            // Features guests do not see in their ID registers (SVE, SME,
            // pointer authentication) stay trapped: using them anyway is
            // UNDEFINED, as on Xen.
            log::debug!(
                "{}v{vcpu}: {} (ESR {:#x}) at {:#x}: not offered to guests: undefined",
                dom.id,
                esr.class_name(),
                esr.0,
                frame.elr
            );
            inject_undef(frame, frame.elr);
        }
        _ => {
            let mut s = String::new();
            let _ = write!(s, "{}v{vcpu}", dom.id);
            report(frame, &s, &esr);
            log::info!(
                "{}v{vcpu}: unexpected {}: domain {} crashed",
                dom.id,
                esr.class_name(),
                dom.id
            );
            shutdown::domain_crash(dom);
        }
    }
}

fn data_abort(dom: &Arc<Domain>, vcpu: usize, frame: &mut TrapFrame, esr: &Esr) {
    let far = sysreg::far_el2();
    let ipa = fault_ipa(sysreg::hpfar_el2(), far);
    if let Some(da) = esr.data_abort()
        && (vgic::mmio(dom, vcpu, oxen_types::Ipa(ipa), &da, frame)
            || crate::vuart::mmio(dom, vcpu, oxen_types::Ipa(ipa), &da, frame))
    {
        return;
    }
    if let Some(da) = esr.data_abort()
        && mapped_since(dom, da.fault, ipa)
    {
        return;
    }
    let (dir, fault) = match esr.data_abort() {
        Some(da) => (if da.write { "write" } else { "read" }, da.fault.describe()),
        None => ("access", "fault"),
    };
    log::info!(
        "{}v{vcpu}: {dir} at IPA {ipa:#x} (VA {far:#x}, PC {:#x}): {fault}, not memory of this domain: domain {} crashed",
        dom.id,
        frame.elr,
        dom.id
    );
    shutdown::domain_crash(dom);
}

/// Whether a translation or access-flag fault at `ipa` hit a page that
/// stage 2 maps by now. Another CPU changing this domain's stage 2 (a block
/// split break-before-make while a page inside it is unmapped, a page being
/// populated) leaves a moment where a valid IPA has no entry; the access is
/// retried, as Xen does. The stage-2 lock waits out a change in progress.
/// Permission and other faults on mapped pages are never retried (they
/// would fault forever).
fn mapped_since(dom: &Domain, fault: oxen_trap::FaultStatus, ipa: u64) -> bool {
    use oxen_trap::FaultStatus::{AccessFlag, Translation};
    if !matches!(fault, Translation(_) | AccessFlag(_)) {
        return false;
    }
    let s2 = dom.stage2.lock();
    s2.as_ref().is_some_and(|s2| {
        s2.translate(&mut crate::mem::HostTables, oxen_types::Ipa(ipa))
            .is_some()
    })
}

/// Deliver an UNDEFINED-instruction exception to the guest's EL1, as the
/// hardware would have: ESR_EL1/ELR_EL1/SPSR_EL1 set, PC at VBAR_EL1's
/// synchronous vector, PSTATE EL1h with interrupts masked.
fn inject_undef(frame: &mut TrapFrame, pc: u64) {
    inject_sync(frame, pc, ESR_UNDEF, None);
}

/// Complete a trapped access to an emulated device at `ipa`: the guest
/// register is read (store) or written (load, with the syndrome's size and
/// sign extension) around `access`, which gets `Some(value)` for a store and
/// `None` for a load and returns the loaded value (`None`: leave the
/// register alone). An access the hardware gave no syndrome for cannot be
/// decoded: the guest gets a data abort instead, as on Xen.
pub fn emulate_mmio(
    dom: &Domain,
    vcpu: usize,
    device: &str,
    ipa: oxen_types::Ipa,
    da: &oxen_trap::DataAbort,
    frame: &mut TrapFrame,
    access: impl FnOnce(Option<u64>) -> Option<u64>,
) {
    use oxen_trap::mmio;
    if !da.isv {
        log::info!(
            "{}v{vcpu}: {device} access at IPA {ipa} the hardware gave no syndrome for (PC {:#x}): data abort injected",
            dom.id,
            frame.elr
        );
        inject_data_abort(frame, sysreg::far_el2());
        return;
    }
    if da.write {
        access(Some(mmio::store_value(
            mmio::read_gpr(&frame.x, da.reg),
            da.access_size,
        )));
    } else if let Some(v) = access(None) {
        let v = mmio::load_value(v, da.access_size, da.sign_extend, da.sixty_four);
        mmio::write_gpr(&mut frame.x, da.reg, v);
    }
    frame.elr += 4;
}

/// Deliver a synchronous external data abort for `far` to the guest's EL1
/// (an emulated-device access the hypervisor cannot decode, as Xen does):
/// the faulting instruction is not executed.
pub fn inject_data_abort(frame: &mut TrapFrame, far: u64) {
    let from_el1 = frame.spsr & 0xc == 0x4;
    // EC 0x25 (same EL) or 0x24 (from EL0), IL, DFSC 0x10 (synchronous external abort).
    let ec: u64 = if from_el1 { 0x25 } else { 0x24 };
    let esr = (ec << 26) | (1 << 25) | 0x10;
    inject_sync(frame, frame.elr, esr, Some(far));
}

fn inject_sync(frame: &mut TrapFrame, pc: u64, esr: u64, far: Option<u64>) {
    let spsr = frame.spsr;
    let mode = spsr & 0xf;
    let offset = match mode {
        0b0101 => VEC_CURRENT_SPX,
        0b0100 => VEC_CURRENT_SP0,
        _ => VEC_LOWER_A64,
    };
    // SAFETY: the guest that trapped is loaded on this CPU; these are its
    // EL1 exception registers.
    unsafe {
        sysreg::set_esr_el1(esr);
        if let Some(far) = far {
            sysreg::set_far_el1(far);
        }
        sysreg::set_elr_el1(pc);
        sysreg::set_spsr_el1(spsr);
    }
    frame.elr = sysreg::vbar_el1() + offset;
    frame.spsr = crate::domain::SPSR_EL1H_MASKED;
}

fn report(frame: &TrapFrame, who: &str, esr: &Esr) {
    let r = TrapReport {
        cpu: sched::this_cpu() as u32,
        context: who,
        esr: esr.0,
        elr: frame.elr,
        spsr: frame.spsr,
        far: sysreg::far_el2(),
        hpfar: Some(sysreg::hpfar_el2()),
        regs: &frame.x,
        sp: sysreg::sp_el1(),
    };
    let mut s = String::new();
    let _ = r.write_to(&mut s);
    for line in s.lines() {
        log::info!("{line}");
    }
}

/// Entry from the vectors for exceptions taken at EL2 itself: a hypervisor
/// bug. Print everything a person needs and stop this CPU.
pub extern "C" fn handle_current_el(frame: &mut TrapFrame, kind: u64) {
    let esr = Esr(sysreg::esr_el2());
    let r = TrapReport {
        cpu: sched::this_cpu() as u32,
        context: "hypervisor",
        esr: esr.0,
        elr: frame.elr,
        spsr: frame.spsr,
        far: sysreg::far_el2(),
        hpfar: None,
        regs: &frame.x,
        sp: frame as *const TrapFrame as u64,
    };
    crate::console::emergency_print(format_args!(
        "\n(oxen) ERROR: hypervisor exception (kind {kind}) on CPU{}: {}\n",
        sched::this_cpu(),
        esr.class_name()
    ));
    let mut w = EmergencyWriter;
    let _ = r.write_to(&mut w);
    crate::arch::head::park();
}

struct EmergencyWriter;

impl Write for EmergencyWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        crate::console::emergency_print(format_args!("{s}"));
        Ok(())
    }
}
