//! Virtual GIC registers as Xen 4.17 presents them, seen by a guest that sets its GIC up the
//! way the Xen Test Framework's arm64 port does (issue 10 item 5).
//!
//! The test guest's `vgic` scenario (guest-frontend/test-guest/src/vgic.rs) reads
//! `GICR_WAKER` and polls until ChildrenAsleep clears *without writing it first* (Xen 4.17:
//! RAZ/WI, so the first read says awake), at most 10,000 reads, reporting
//! `TEST-GUEST error: GICR_WAKER still ...` and crashing instead of hanging. It then programs
//! its redistributor, distributor and CPU interface, sends SGI 5 to itself, takes the IRQ and
//! acknowledges it. On GICv2 it skips the redistributor and does the same through
//! `GICD_SGIR` and the GICC frame.
//!
//! Booted as Dom0 (host GIC addresses, the scenario's defaults) and as a boot-time DomU
//! (Xen's guest layout: GICD 0x0300_1000, GICR 0x0302_0000, GICC 0x0300_2000).

use oxen_tests::{DEFAULT_TIMEOUT, DomainNode, Error, Qemu, Running, re, test_guest_bin};
use std::time::Duration;

const T: Duration = DEFAULT_TIMEOUT;

/// Where the Dom0 test guest and the DomU's kernel are loaded.
const GUEST_ADDR: u64 = 0x5000_0000;
/// Xen's (and oxen's) guest layout for a DomU's virtual GIC.
const DOMU_GICD: u64 = 0x0300_1000;
const DOMU_GICR: u64 = 0x0302_0000;
const DOMU_GICC: u64 = 0x0300_2000;

/// The scenario's lines from the redistributor wake to its end, each prefixed with `pre`
/// (`""` for Dom0, `"(d1) "` for a DomU, as a regex).
fn expect_vgic_ok(q: &mut Running, gic: u8, pre: &str) -> Result<(), Error> {
    q.expect(re(&format!(r"^{pre}TEST-GUEST vgic start$")), T)?;
    if gic == 3 {
        q.expect(
            re(&format!(
                r"^{pre}vgic: GICv3 .*GICD_PIDR2 0x30 .*GICD_IIDR 0x34c$"
            )),
            T,
        )?;
        q.expect(
            // vCPU 0: affinity 0, Processor_Number 0, Last only if it is the only vCPU.
            re(&format!(
                r"^{pre}vgic: redistributor 0 for MPIDR 0x[0-9a-f]+: GICR_TYPER 0x0_000000[01]0$"
            )),
            T,
        )?;
        // The XTF-style wait: awake at the first read, never written.
        q.expect(
            re(&format!(
                r"^{pre}vgic: GICR_WAKER 0x0, awake after 0 polls \(never written\)$"
            )),
            T,
        )?;
    } else {
        q.expect(re(&format!(r"^{pre}vgic: GICv2 .*GICD_IIDR 0x43b$")), T)?;
        q.expect(
            re(&format!(r"^{pre}vgic: GICv2: no redistributor to wake$")),
            T,
        )?;
    }
    q.expect(
        re(&format!(r"^{pre}vgic: SGI 5 taken \(IAR 0x[0-9a-f]+\)$")),
        T,
    )?;
    q.expect(re(&format!(r"^{pre}vgic: ok$")), T)?;
    Ok(())
}

/// The test guest as Dom0 (2 vCPUs) running the `vgic` scenario on GIC version `gic`.
fn dom0(gic: u8) -> Result<(), Error> {
    let mut q = Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .append("dom0_mem=128M")
        .forbid("TEST-GUEST error")
        .guest_kernel(
            test_guest_bin()?,
            GUEST_ADDR,
            &format!("oxen.test=vgic oxen.gic={gic}"),
        )
        .spawn()?;
    expect_vgic_ok(&mut q, gic, "")?;
    q.expect_exit_code(0, T)
}

/// The test guest as a boot-time DomU (no Dom0), at Xen's guest GIC addresses.
fn domu(gic: u8) -> Result<(), Error> {
    let args = format!(
        "oxen.test=vgic oxen.gic={gic} oxen.gicd={DOMU_GICD:#x} oxen.gicr={DOMU_GICR:#x} \
         oxen.gicc={DOMU_GICC:#x}"
    );
    let guest = test_guest_bin()?;
    let mut q = Qemu::oxen()?
        .gic_version(gic)
        .smp(2)
        .forbid("TEST-GUEST error")
        .with_domains(&[DomainNode::new(&guest, GUEST_ADDR, &args)
            .memory_mib(64)
            .cpus(2)])?
        .spawn()?;
    expect_vgic_ok(&mut q, gic, r"\(d1\) ")?;
    q.expect(re(r"^\(oxen\) d1: shutdown \(poweroff\)$"), T)?;
    q.finish().map(|_| ())
}

#[test]
fn gicv3_dom0_wakes_redistributor_without_writing_waker_and_takes_sgi() -> Result<(), Error> {
    dom0(3)
}

#[test]
fn gicv3_domu_wakes_redistributor_without_writing_waker_and_takes_sgi() -> Result<(), Error> {
    domu(3)
}

#[test]
fn gicv2_dom0_skips_redistributor_and_takes_sgi() -> Result<(), Error> {
    dom0(2)
}
