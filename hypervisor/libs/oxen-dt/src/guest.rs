//! Device tree for a non-1:1 guest, in Xen libxl's layout
//! (`tools/libs/light/libxl_arm.c`), so a stock Linux sees the same machine
//! it would under Xen: root `xen,xenvm-4.17`, 2/2 root cells, GIC with phandle
//! 65000 (`GUEST_PHANDLE_GIC`), PSCI over `hvc`, architected timer, optional
//! SBSA UART (vPL011) and the `/hypervisor` node Linux's Xen support keys on.
//!
//! The node builders here are shared with the Dom0 writer. Interrupts are
//! written as 3-cell GIC specifiers; PPIs carry Xen's `0xf08` flags (all
//! CPUs, level-low). Invalid configuration (PPI out of 16..32, zero vCPUs,
//! no RAM) is a [`DtError::Config`], never a panic.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use oxen_types::{Ipa, IpaRange};
use vm_fdt::FdtWriter;

use crate::{DtError, MAX_DTB_SIZE, Timer};

/// The GIC phandle Xen uses in guest device trees (`GUEST_PHANDLE_GIC`).
pub const GUEST_PHANDLE_GIC: u32 = 65000;
/// Xen version advertised in compatible strings.
pub const XEN_VERSION: (u32, u32) = (4, 17);
/// PPI flags Xen writes: CPU mask 0xf, level-low.
const PPI_FLAGS: u32 = 0xf08;
/// `IRQ_TYPE_LEVEL_HIGH`.
const LEVEL_HIGH: u32 = 4;

/// What to put in a DomU's device tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestDtConfig {
    /// RAM banks (one `/memory@<base>` node each).
    pub ram: Vec<IpaRange>,
    /// Number of vCPUs (≥ 1).
    pub vcpus: u32,
    /// `/chosen/bootargs`.
    pub bootargs: String,
    /// Initrd location (`linux,initrd-start/end`).
    pub initrd: Option<IpaRange>,
    /// The virtual GIC.
    pub gic: GuestGic,
    /// Timer INTIDs (secure phys, phys and virt are written).
    pub timer: Timer,
    /// `/hypervisor` node; `None` makes a non-Xen-aware guest.
    pub hypervisor: Option<HypervisorNode>,
    /// vPL011 base and its SPI INTID (≥ 32).
    pub vpl011: Option<(Ipa, u32)>,
}

/// Virtual GIC regions in the guest's IPA space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestGic {
    /// GICv2: distributor and CPU interface.
    V2 {
        /// Distributor.
        gicd: IpaRange,
        /// CPU interface.
        gicc: IpaRange,
    },
    /// GICv3: distributor and one redistributor region.
    V3 {
        /// Distributor.
        gicd: IpaRange,
        /// Redistributor region.
        gicr: IpaRange,
    },
}

/// The `/hypervisor` node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HypervisorNode {
    /// Xen version for `"xen,xen-<maj>.<min>"`.
    pub version: (u32, u32),
    /// `reg`: grant-table window first, then extended regions (ascending).
    pub regions: Vec<IpaRange>,
    /// Event-channel upcall PPI as an INTID (16..32).
    pub evtchn_ppi: u32,
}

pub(crate) fn ppi_num(intid: u32, what: &'static str) -> Result<u32, DtError> {
    if (16..32).contains(&intid) {
        Ok(intid - 16)
    } else {
        Err(DtError::Config(what))
    }
}

/// `"a\0b\0"` string-list bytes.
pub(crate) fn strlist(items: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in items {
        v.extend_from_slice(s.as_bytes());
        v.push(0);
    }
    v
}

/// Xen's virtual MPIDR affinity for vCPU `id` (Aff0 = id & 0xf, Aff1 = id >> 4).
pub const fn vcpu_mpidr(id: u32) -> u64 {
    (((id >> 4) as u64) << 8) | (id & 0xf) as u64
}

/// `reg` cells for `(address, size)` pairs in a parent with `cells` =
/// `(#address-cells, #size-cells)`, each 1 or 2 (the Raspberry Pi's root is
/// 2/1): with one size cell a range is split into pieces below 4 GiB; an
/// address or size that does not fit is a [`DtError::Config`].
pub(crate) fn reg_cells(
    ranges: impl Iterator<Item = (u64, u64)>,
    cells: (u32, u32),
    what: &'static str,
) -> Result<Vec<u32>, DtError> {
    let (ac, sc) = cells;
    if !(1..=2).contains(&ac) || !(1..=2).contains(&sc) {
        return Err(DtError::Config(what));
    }
    let max_piece: u64 = if sc == 1 { 1 << 31 } else { u64::MAX };
    let mut out = Vec::new();
    let mut push = |v: u64, n: u32| -> Result<(), DtError> {
        if n == 1 {
            out.push(u32::try_from(v).map_err(|_| DtError::Config(what))?);
        } else {
            out.push((v >> 32) as u32);
            out.push(v as u32);
        }
        Ok(())
    };
    for (mut a, mut s) in ranges {
        while s > 0 {
            let piece = s.min(max_piece);
            push(a, ac)?;
            push(piece, sc)?;
            a = a.checked_add(piece).ok_or(DtError::Config(what))?;
            s -= piece;
        }
    }
    Ok(out)
}

pub(crate) fn write_cpus(w: &mut FdtWriter, vcpus: u32, compatible: &[u8]) -> Result<(), DtError> {
    if vcpus == 0 || vcpus > 4096 {
        return Err(DtError::Config("vcpus"));
    }
    let n = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    for id in 0..vcpus {
        let mpidr = vcpu_mpidr(id);
        let c = w.begin_node(&format!("cpu@{mpidr:x}"))?;
        w.property_string("device_type", "cpu")?;
        w.property("compatible", compatible)?;
        w.property_string("enable-method", "psci")?;
        w.property_u32("reg", mpidr as u32)?;
        w.end_node(c)?;
    }
    w.end_node(n)?;
    Ok(())
}

pub(crate) fn write_psci(w: &mut FdtWriter) -> Result<(), DtError> {
    let n = w.begin_node("psci")?;
    w.property(
        "compatible",
        &strlist(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]),
    )?;
    w.property_string("method", "hvc")?;
    // Legacy PSCI 0.1 function ids, as libxl writes them.
    w.property_u32("cpu_off", 1)?;
    w.property_u32("cpu_on", 2)?;
    w.end_node(n)?;
    Ok(())
}

/// One `/memory@<first base>` node holding every bank (Xen's Dom0 style), or
/// one node per bank when `per_bank` (libxl's DomU style).
pub(crate) fn write_memory(
    w: &mut FdtWriter,
    ram: &[(u64, u64)],
    per_bank: bool,
    cells: (u32, u32),
) -> Result<(), DtError> {
    let banks: Vec<(u64, u64)> = ram.iter().copied().filter(|r| r.1 != 0).collect();
    if banks.is_empty() {
        return Err(DtError::Config("ram"));
    }
    let groups: Vec<&[(u64, u64)]> = if per_bank {
        banks.chunks(1).collect()
    } else {
        alloc::vec![&banks[..]]
    };
    for g in groups {
        let n = w.begin_node(&format!("memory@{:x}", g[0].0))?;
        w.property_string("device_type", "memory")?;
        w.property_array_u32("reg", &reg_cells(g.iter().copied(), cells, "ram")?)?;
        w.end_node(n)?;
    }
    Ok(())
}

pub(crate) fn write_timer(
    w: &mut FdtWriter,
    name: &str,
    t: &Timer,
    gic_phandle: u32,
    clock_frequency: Option<&[u8]>,
) -> Result<(), DtError> {
    let mut ints = Vec::new();
    for intid in [t.sec_phys, t.phys, t.virt] {
        ints.extend_from_slice(&[1, ppi_num(intid, "timer PPI")?, PPI_FLAGS]);
    }
    let n = w.begin_node(name)?;
    w.property_string("compatible", "arm,armv8-timer")?;
    w.property_array_u32("interrupts", &ints)?;
    w.property_u32("interrupt-parent", gic_phandle)?;
    if let Some(f) = clock_frequency {
        w.property("clock-frequency", f)?;
    }
    w.end_node(n)?;
    Ok(())
}

pub(crate) fn write_hypervisor(
    w: &mut FdtWriter,
    h: &HypervisorNode,
    gic_phandle: u32,
    cells: (u32, u32),
) -> Result<(), DtError> {
    let ppi = ppi_num(h.evtchn_ppi, "evtchn PPI")?;
    let versioned = format!("xen,xen-{}.{}", h.version.0, h.version.1);
    let n = w.begin_node("hypervisor")?;
    w.property("compatible", &strlist(&[&versioned, "xen,xen"]))?;
    if !h.regions.is_empty() {
        let v = reg_cells(
            h.regions.iter().map(|r| (r.start.0, r.size)),
            cells,
            "hypervisor regions",
        )?;
        w.property_array_u32("reg", &v)?;
    }
    w.property_array_u32("interrupts", &[1, ppi, PPI_FLAGS])?;
    w.property_u32("interrupt-parent", gic_phandle)?;
    w.end_node(n)?;
    Ok(())
}

pub(crate) fn write_chosen_args(
    w: &mut FdtWriter,
    bootargs: &str,
    initrd: Option<(u64, u64)>,
) -> Result<(), DtError> {
    w.property_string("bootargs", bootargs)?;
    if let Some((start, size)) = initrd {
        let end = start.checked_add(size).ok_or(DtError::Config("initrd"))?;
        w.property_u64("linux,initrd-start", start)?;
        w.property_u64("linux,initrd-end", end)?;
    }
    Ok(())
}

pub(crate) fn finish(w: FdtWriter) -> Result<Vec<u8>, DtError> {
    let v = w.finish()?;
    if v.len() > MAX_DTB_SIZE {
        return Err(DtError::TooBig);
    }
    Ok(v)
}

/// Build a DomU device tree (see the module docs for the layout).
pub fn build_guest_dt(cfg: &GuestDtConfig) -> Result<Vec<u8>, DtError> {
    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    let (maj, min) = cfg.hypervisor.as_ref().map_or(XEN_VERSION, |h| h.version);
    w.property_string("model", &format!("XENVM-{maj}.{min}"))?;
    w.property(
        "compatible",
        &strlist(&[&format!("xen,xenvm-{maj}.{min}"), "xen,xenvm"]),
    )?;
    w.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;

    let chosen = w.begin_node("chosen")?;
    write_chosen_args(
        &mut w,
        &cfg.bootargs,
        cfg.initrd.map(|r| (r.start.0, r.size)),
    )?;
    w.end_node(chosen)?;

    write_cpus(&mut w, cfg.vcpus, &strlist(&["arm,armv8"]))?;
    write_psci(&mut w)?;
    let ram: Vec<(u64, u64)> = cfg.ram.iter().map(|r| (r.start.0, r.size)).collect();
    write_memory(&mut w, &ram, true, (2, 2))?;

    let (compat, gicd, second) = match cfg.gic {
        GuestGic::V2 { gicd, gicc } => ("arm,cortex-a15-gic", gicd, gicc),
        GuestGic::V3 { gicd, gicr } => ("arm,gic-v3", gicd, gicr),
    };
    let gic = w.begin_node(&format!("interrupt-controller@{:x}", gicd.start.0))?;
    w.property_string("compatible", compat)?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_u32("#address-cells", 0)?;
    w.property_null("interrupt-controller")?;
    w.property_array_u64(
        "reg",
        &[gicd.start.0, gicd.size, second.start.0, second.size],
    )?;
    w.property_u32("linux,phandle", GUEST_PHANDLE_GIC)?;
    w.property_phandle(GUEST_PHANDLE_GIC)?;
    w.end_node(gic)?;

    write_timer(&mut w, "timer", &cfg.timer, GUEST_PHANDLE_GIC, None)?;

    if let Some((base, spi)) = cfg.vpl011 {
        if !(32..1020).contains(&spi) {
            return Err(DtError::Config("vpl011 SPI"));
        }
        let n = w.begin_node(&format!("sbsa-uart@{:x}", base.0))?;
        w.property_string("compatible", "arm,sbsa-uart")?;
        w.property_array_u64("reg", &[base.0, 0x1000])?;
        w.property_array_u32("interrupts", &[0, spi - 32, LEVEL_HIGH])?;
        w.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
        w.property_u32("current-speed", 115_200)?;
        w.end_node(n)?;
    }

    if let Some(h) = &cfg.hypervisor {
        write_hypervisor(&mut w, h, GUEST_PHANDLE_GIC, (2, 2))?;
    }
    w.end_node(root)?;
    finish(w)
}
