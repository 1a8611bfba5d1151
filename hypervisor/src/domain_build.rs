//! Building the boot-time domains: Dom0 from the first `multiboot,kernel`
//! module under `/chosen`, and every `xen,domain` node (Xen's dom0less
//! binding) as a further domain.
//!
//! Dom0's RAM is mapped 1:1 (IPA = PA) so its DMA works without an IOMMU.
//! Other domains get Xen's guest layout: RAM at IPA 0x4000_0000, allocated
//! top-down from host RAM (deterministic placement). The kernel goes to
//! RAM base + its Image `text_offset`, the DTB to the top of RAM, the
//! initrd below the DTB.

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use oxen_dt::{
    BootInfo, BootOptions, Dom0DtConfig, DomainSpec, Gic, GuestDtConfig, GuestGic, HypervisorNode,
};
use oxen_mm::{BankError, BankRequest, MemType, PhysAllocator, S2Attrs, Stage2, Stage2Config};
use oxen_types::{DomId, Ipa, IpaRange, PhysAddr, PhysRange, align_up};
use oxen_vgic::{GICV3_REDIST_STRIDE, GicVersion};

use crate::arch::{self, gic, head, sysreg};
use crate::domain::{self, Domain, MemBank};
use crate::mem::{FRAMES, HostTables};
use crate::shutdown::fatal;
use crate::vgic::VgicLayout;
use crate::{irq, sched};

const MIB: u64 = 1 << 20;
const MIB2: u64 = 2 << 20;
/// Xen's `GUEST_RAM0_BASE`.
const GUEST_RAM0_BASE: u64 = 0x4000_0000;
/// Xen's guest vGIC layout.
const GUEST_GICD: u64 = 0x0300_1000;
const GUEST_GICC: u64 = 0x0300_2000;
const GUEST_GICR: u64 = 0x0302_0000;
/// Xen's `GUEST_GNTTAB_BASE` and size.
const GUEST_GNTTAB_BASE: u64 = 0x3800_0000;
const GUEST_GNTTAB_SIZE: u64 = 16 * MIB;
/// The event-channel upcall PPI Xen gives guests.
const EVTCHN_PPI: u32 = 31;
/// Dom0's RAM when `dom0_mem=` is not given (Xen on Arm's default).
const DOM0_MEM_DEFAULT: u64 = 512 * MIB;
/// Where a kernel without a usable Image header is placed.
const DEFAULT_TEXT_OFFSET: u64 = 0x8_0000;
/// Room kept at the top of a domain's RAM for its device tree.
const DTB_SLOT: u64 = MIB2;
/// Linux hot-plugs extended regions in 128 MiB sections.
const SECTION: u64 = 128 * MIB;
/// Dom0's view of passed-through MMIO: Normal memory at stage 2, so Dom0's
/// own stage-1 attributes (Device for registers) decide, as on Xen.
const DOM0_MMIO: S2Attrs = S2Attrs {
    read: true,
    write: true,
    exec: false,
    mem: MemType::Normal,
};
/// SPIs a DomU's vGIC has (one bank, for emulated devices).
const DOMU_SPIS: u32 = 32;

/// Xen's `NR_MEM_BANKS` (4.17): most RAM banks Dom0 may get.
const NR_MEM_BANKS: usize = 256;

/// Why a domain could not be built. Each is fatal for the boot, as in Xen
/// (`panic()` for Dom0 and for dom0less domains); the text says why and
/// what to do.
#[derive(Debug)]
pub enum BuildError {
    /// Not enough free host RAM: `size` asked, `free` free (bytes).
    NoMemory { size: u64, free: u64 },
    /// Enough free RAM for Dom0, but not in few enough banks, or not with
    /// a first bank that holds its kernel, initrd and device tree.
    Banks(BankError, u64),
    /// Stage-2 tables could not be built.
    Stage2(oxen_mm::MmError),
    /// The kernel, initrd and DTB do not fit in the domain's (first) RAM bank.
    TooBig(&'static str),
    /// The kernel module is not an arm64 `Image` (why).
    NotImage(&'static str),
    /// The device tree could not be written.
    Dt,
    /// The virtual GIC could not be set up.
    Vgic,
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoMemory { size, free } => write!(
                f,
                "{} MiB of RAM asked for, only {} MiB free",
                size >> 20,
                free >> 20
            ),
            Self::Banks(BankError::NoMemory { free }, size) => write!(
                f,
                "{} MiB of RAM asked for, only {} MiB free in 2 MiB blocks",
                size >> 20,
                free >> 20
            ),
            Self::Banks(BankError::TooManyBanks { .. }, size) => write!(
                f,
                "{} MiB of RAM would take more than {NR_MEM_BANKS} banks",
                size >> 20
            ),
            Self::Banks(BankError::FirstBankTooSmall { largest }, _) => write!(
                f,
                "no free RAM block holds its kernel, initrd and device tree \
                 with its other banks (largest free block {} MiB)",
                largest >> 20
            ),
            Self::Banks(BankError::Alloc(e), _) => write!(f, "RAM banks: {e:?}"),
            Self::Stage2(e) => write!(f, "stage-2 tables: {e:?}"),
            Self::TooBig(what) => write!(f, "the {what} does not fit in the domain's RAM"),
            Self::NotImage(why) => write!(f, "its kernel module {why}"),
            Self::Dt => write!(f, "its device tree could not be written"),
            Self::Vgic => write!(f, "its virtual GIC could not be set up"),
        }
    }
}

impl BuildError {
    /// What the user can do about it (the end of the fatal line).
    fn advice(&self, is_dom0: bool) -> &'static str {
        match self {
            Self::NoMemory { .. } | Self::Banks(..) if is_dom0 => "lower dom0_mem",
            Self::NoMemory { .. } | Self::Banks(..) => {
                "lower the domain's memory or dom0_mem, or give the machine more RAM"
            }
            Self::TooBig(_) if is_dom0 => "raise dom0_mem",
            Self::TooBig(_) => "raise the domain's memory",
            Self::NotImage(_) => "give an uncompressed arm64 Linux Image (zcat vmlinuz > Image)",
            Self::Stage2(_) | Self::Dt | Self::Vgic => "report this as a bug in oxen",
        }
    }
}

/// Where the domain's virtual GIC goes: Dom0 sees the host's layout,
/// other domains Xen's guest layout.
fn vgic_layout(info: &BootInfo, is_dom0: bool, vcpus: u32) -> VgicLayout {
    let redist = GICV3_REDIST_STRIDE * u64::from(vcpus);
    match (&info.gic, is_dom0) {
        (Gic::V2 { gicd, .. }, true) => VgicLayout {
            version: GicVersion::V2,
            gicd: IpaRange::new(Ipa(gicd.start.as_u64()), 0x1000),
            gicr: None,
        },
        (Gic::V3 { gicd, gicr, .. }, true) => VgicLayout {
            version: GicVersion::V3,
            gicd: IpaRange::new(Ipa(gicd.start.as_u64()), 0x10000),
            gicr: Some(IpaRange::new(
                Ipa(gicr.first().map(|r| r.start.as_u64()).unwrap_or(0)),
                redist,
            )),
        },
        (gic, false) => guest_vgic_layout(gic, vcpus),
    }
}

/// Xen's guest vGIC layout for a domain with `vcpus` vCPUs.
fn guest_vgic_layout(gic: &Gic, vcpus: u32) -> VgicLayout {
    match gic {
        Gic::V2 { .. } => VgicLayout {
            version: GicVersion::V2,
            gicd: IpaRange::new(Ipa(GUEST_GICD), 0x1000),
            gicr: None,
        },
        Gic::V3 { .. } => VgicLayout {
            version: GicVersion::V3,
            gicd: IpaRange::new(Ipa(GUEST_GICD), 0x10000),
            gicr: Some(IpaRange::new(
                Ipa(GUEST_GICR),
                GICV3_REDIST_STRIDE * u64::from(vcpus),
            )),
        },
    }
}

/// Dom0's `/hypervisor` regions: the grant-table window first — host
/// memory the hypervisor image occupies, which Dom0 never maps (as Xen
/// does with its own text) — then extended regions: host RAM that is not
/// Dom0's (nor the image), in whole 128 MiB sections, for foreign and grant
/// mappings (free guest-physical space in Dom0's 1:1 layout).
fn dom0_hypervisor_regions(info: &BootInfo, dom0_ram: &[MemBank]) -> Vec<IpaRange> {
    let (s, e) = head::image_range();
    let image = PhysRange::new(PhysAddr(s), e - s);
    let mut v = vec![IpaRange::new(Ipa(s), e - s)];
    // Set arithmetic with an allocator: host RAM minus Dom0's and the image.
    let mut rest = PhysAllocator::new();
    for r in &info.ram {
        let _ = rest.add(*r);
    }
    for r in dom0_ram.iter().map(|b| b.phys).chain([image]) {
        let _ = rest.reserve(r);
    }
    for r in rest.ranges() {
        let Some(lo) = align_up(r.start.as_u64(), SECTION) else {
            continue;
        };
        let hi = r.end() & !(SECTION - 1);
        if hi > lo {
            v.push(IpaRange::new(Ipa(lo), hi - lo));
        }
    }
    v
}

/// What building a domain at run time needs to know of the host.
pub struct HostFacts {
    /// The host GIC (decides the guest's vGIC version and layout).
    pub gic: Gic,
    /// RAM the machine has, in bytes.
    pub total_ram: u64,
    /// IPA width of stage 2 (`gpaddr_bits` in `getdomaininfo`).
    pub ipa_bits: u8,
}

/// Set once at boot by [`build_domains`].
pub static HOST: spin::Once<HostFacts> = spin::Once::new();

/// Stage-2 configuration of this machine.
fn stage2_config() -> Stage2Config {
    let parange = (sysreg::id_aa64mmfr0_el1() & 0xf) as u8;
    Stage2Config::from_parange(parange)
}

/// A run-time domain as `createdomain` makes it: no RAM, one vCPU per
/// entry of `pcpus` (the physical CPU it is pinned to), all offline; a vGIC of the host's version with at least 32 SPIs, Xen's
/// guest layout; paused once. Fails with -ENOMEM or -EINVAL.
pub fn new_toolstack_domain(
    id: DomId,
    vmid: u16,
    pcpus: &[usize],
    nr_spis: u32,
    handle: [u8; 16],
) -> Result<Arc<Domain>, xen_abi::Errno> {
    use xen_abi::Errno;
    let max_vcpus = pcpus.len() as u32;
    let host = HOST.get().ok_or(Errno::EINVAL)?;
    let mut s2 = Stage2::new(stage2_config(), &mut HostTables).map_err(|_| Errno::ENOMEM)?;
    let layout = guest_vgic_layout(&host.gic, max_vcpus);
    let nr_spis = nr_spis.clamp(DOMU_SPIS, 960);
    let Some(vgic) = crate::vgic::new_model(&layout, max_vcpus as usize, nr_spis) else {
        s2.destroy(&mut HostTables);
        return Err(Errno::ENOMEM);
    };
    if let Gic::V2 {
        gicv: Some(gicv), ..
    } = &host.gic
        && let Err(e) = s2.map(
            &mut HostTables,
            Ipa(GUEST_GICC),
            gicv.start,
            0x2000,
            S2Attrs::DEVICE,
        )
    {
        log::info!("{id}: mapping GICV: {e:?}");
        s2.destroy(&mut HostTables);
        return Err(Errno::ENOMEM);
    }
    let mut dom = Domain::new(
        id,
        String::new(),
        false,
        Vec::new(),
        s2,
        vmid,
        vgic,
        layout,
        pcpus,
        None,
    );
    *dom.handle.get_mut() = handle;
    dom.from_toolstack = true;
    *dom.vcpus_made.get_mut() = false;
    // No RAM until `max_mem` allows it, as in Xen.
    dom.max_pages
        .store(0, core::sync::atomic::Ordering::Relaxed);
    dom.pause();
    Ok(Arc::new(dom))
}

/// Build every boot-time domain described by the host device tree.
pub fn build_domains(info: &BootInfo, opts: &BootOptions, host_dtb: &[u8]) {
    HOST.call_once(|| HostFacts {
        gic: info.gic.clone(),
        total_ram: info.ram.iter().map(|r| r.size).sum(),
        ipa_bits: stage2_config().ipa_bits as u8,
    });
    let next_id = 1u16;
    if let Some(spec) = &info.dom0 {
        let size = opts.dom0_mem.unwrap_or(DOM0_MEM_DEFAULT);
        let vcpus = opts.dom0_max_vcpus.unwrap_or(sched::nr_cpus() as u32);
        match build(info, spec, DomId::DOM0, true, size, vcpus, host_dtb) {
            Ok(d) => register(d, spec),
            Err(
                BuildError::NoMemory { free, .. }
                | BuildError::Banks(BankError::NoMemory { free }, _),
            ) => fatal(format_args!(
                "{} is more than the {} MiB of free RAM: {} dom0_mem",
                dom0_mem_arg(&info.cmdline, size),
                free >> 20,
                if opts.dom0_mem.is_some() {
                    "lower"
                } else {
                    "give a smaller"
                }
            )),
            Err(e) => fatal(format_args!(
                "Dom0 cannot be built: {e}: {}",
                e.advice(true)
            )),
        }
    } else if info.domus.is_empty() {
        fatal(format_args!(
            "no Dom0 kernel module and no boot-time domain: add a multiboot,kernel module \
             under /chosen (QEMU: -device guest-loader,addr=...,kernel=<Image>)"
        ))
    } else {
        log::info!("no Dom0 kernel module: running boot-time domains only");
    }
    for (i, spec) in info.domus.iter().enumerate() {
        let id = DomId(next_id + i as u16);
        let size = spec.memory_kib.unwrap_or(128 * 1024) * 1024;
        let vcpus = spec.vcpus.unwrap_or(1);
        match build(info, spec, id, false, size, vcpus, host_dtb) {
            Ok(d) => register(d, spec),
            Err(e) => fatal(format_args!(
                "{id} '{}' cannot be built: {e}: {}",
                spec.name,
                e.advice(false)
            )),
        }
    }
}

/// How the user asked for Dom0's `size`: the last `dom0_mem=` option as
/// typed, else "Dom0's default of N MiB".
fn dom0_mem_arg(cmdline: &str, size: u64) -> String {
    cmdline
        .split_ascii_whitespace()
        .rfind(|t| t.starts_with("dom0_mem=") || t.starts_with("dom0-mem="))
        .map_or_else(
            || format!("Dom0's default of {} MiB", size >> 20),
            String::from,
        )
}

fn register(d: Arc<Domain>, spec: &DomainSpec) {
    log::debug!("{} '{}': runnable", d.id, d.name);
    domain::DOMAINS.lock().push(d.clone());
    let clamp = |v: Option<u32>| v.map(|v| v.min(u32::from(u16::MAX)) as u16);
    let (weight, cap) = (clamp(spec.weight), clamp(spec.cap));
    match sched::add_domain(&d, weight, cap) {
        Ok(()) if weight.is_some() || cap.is_some() || spec.hard_affinity.is_some() => {
            log::info!(
                "{} '{}': credit weight {}, cap {}, hard affinity {:#x}",
                d.id,
                d.name,
                weight.unwrap_or(oxen_sched::DEFAULT_WEIGHT),
                cap.unwrap_or(0),
                spec.hard_affinity.unwrap_or(u32::MAX)
            );
        }
        Ok(()) => {}
        Err(e) => log::error!("{} '{}': not schedulable: {e}", d.id, d.name),
    }
}

/// Text offset and size of the arm64 `Image` in `kernel` (Linux's
/// booting.rst header), or why it is not one (Xen refuses such a kernel
/// too: "Could not set up DOM0 guest OS").
fn image_layout(kernel: &PhysRange) -> Result<(u64, u64), BuildError> {
    if kernel.size < 64 {
        return Err(BuildError::NotImage(if kernel.size == 0 {
            "is empty"
        } else {
            "is too small for an arm64 Image header"
        }));
    }
    let mut hdr = [0u8; 64];
    // SAFETY: the module is reserved RAM (checked at boot) that nothing writes.
    unsafe { arch::copy_phys(hdr.as_mut_ptr() as u64, kernel.start.as_u64(), 64) };
    let rd = |o: usize| u64::from_le_bytes(hdr[o..o + 8].try_into().unwrap_or([0; 8]));
    if hdr[..2] == [0x1f, 0x8b] {
        return Err(BuildError::NotImage("is gzip-compressed"));
    }
    if &hdr[0x38..0x3c] != b"ARM\x64" {
        return Err(BuildError::NotImage(
            "is not an arm64 Image (no ARM\\x64 magic at offset 0x38)",
        ));
    }
    let image_size = rd(16);
    if image_size != 0 {
        Ok((rd(8), image_size.max(kernel.size)))
    } else {
        // Before Linux 3.17 image_size was 0 and text_offset unreliable.
        Ok((DEFAULT_TEXT_OFFSET, kernel.size))
    }
}

/// Take RAM for a domain: Dom0's 1:1 in banks (below the board's DMA
/// limit first; the first bank holds `first_min` bytes), another domain's
/// one block from the top of RAM, at Xen's guest RAM base.
fn alloc_ram(is_dom0: bool, size: u64, first_min: u64) -> Result<Vec<MemBank>, BuildError> {
    if !is_dom0 {
        let phys = crate::mem::alloc_scrubbing(|f| f.alloc_top(size, MIB2)).map_err(|_| {
            BuildError::NoMemory {
                size,
                free: crate::mem::free_bytes(),
            }
        })?;
        return Ok(vec![MemBank {
            ipa: Ipa(GUEST_RAM0_BASE),
            phys: PhysRange::new(phys, size),
        }]);
    }
    let mut f = FRAMES.lock();
    let req = BankRequest {
        size,
        align: MIB2,
        first_min,
        low_limit: crate::board::dma_limit(),
        max_banks: NR_MEM_BANKS,
    };
    let mut out = vec![PhysRange::default(); NR_MEM_BANKS];
    let n = f
        .alloc_banks(&req, &mut out)
        .map_err(|e| BuildError::Banks(e, size))?;
    Ok(out[..n]
        .iter()
        .map(|r| MemBank {
            ipa: Ipa(r.start.as_u64()),
            phys: *r,
        })
        .collect())
}

fn build(
    info: &BootInfo,
    spec: &DomainSpec,
    id: DomId,
    is_dom0: bool,
    size: u64,
    vcpus: u32,
    host_dtb: &[u8],
) -> Result<Arc<Domain>, BuildError> {
    let size = align_up(size.max(MIB2 * 4), MIB2).ok_or(BuildError::NoMemory {
        size,
        free: crate::mem::free_bytes(),
    })?;
    let vcpus = vcpus.clamp(1, 64);
    // The kernel, then the initrd 2 MiB aligned, then the DTB slot, all in
    // the first bank (Xen's placement: kernel, initrd and DTB in bank 0).
    let (text_offset, img_size) = image_layout(&spec.kernel)?;
    let kernel_end_off = text_offset
        .checked_add(img_size)
        .ok_or(BuildError::TooBig("kernel"))?;
    let initrd_len = spec.initrd.map_or(0, |r| r.size);
    let first_min = align_up(kernel_end_off, MIB2)
        .and_then(|k| k.checked_add(align_up(initrd_len, MIB2)?))
        .and_then(|k| k.checked_add(DTB_SLOT))
        .ok_or(BuildError::TooBig("kernel"))?;
    if first_min > size {
        return Err(BuildError::TooBig(
            if kernel_end_off.saturating_add(DTB_SLOT) > size {
                "kernel"
            } else {
                "initrd"
            },
        ));
    }
    let banks = alloc_ram(is_dom0, size, first_min)?;
    let bank0 = banks[0];
    let (phys, ram_ipa) = (bank0.phys.start, bank0.ipa);
    // Dom0's 1:1 RAM comes below the board's DMA limit first (the Pi 4's
    // /soc masters reach only 1 GiB); say so when some is above it.
    if let Some(limit) =
        crate::board::dma_limit().filter(|&l| is_dom0 && banks.iter().any(|b| b.phys.end() > l))
    {
        log::warn!(
            "d0: RAM ends above the board's DMA limit {limit:#x}: devices may not reach all of it"
        );
    }
    let give_back = |e: BuildError| {
        let mut f = FRAMES.lock();
        for b in &banks {
            let _ = f.free(b.phys);
        }
        e
    };

    // Stage 2: the domain's RAM, nothing else yet.
    let mut s2 = Stage2::new(stage2_config(), &mut HostTables)
        .map_err(|e| give_back(BuildError::Stage2(e)))?;
    for b in &banks {
        if let Err(e) = s2.map(
            &mut HostTables,
            b.ipa,
            b.phys.start,
            b.phys.size,
            S2Attrs::RAM,
        ) {
            s2.destroy(&mut HostTables);
            return Err(give_back(BuildError::Stage2(e)));
        }
    }
    let fail = |s2: Stage2, e: BuildError| {
        s2.destroy(&mut HostTables);
        give_back(e)
    };

    // Kernel at its text offset in the first bank.
    let kernel_off = text_offset;
    let ram_end_off = bank0.phys.size - DTB_SLOT;
    // SAFETY: destination is the new domain's RAM (not yet running), source
    // the reserved boot module; they do not overlap.
    unsafe {
        arch::copy_phys(
            phys.as_u64() + kernel_off,
            spec.kernel.start.as_u64(),
            spec.kernel.size as usize,
        )
    };

    // Initrd just below the DTB slot, 2 MiB aligned (first_min made room).
    let mut initrd = None;
    if let Some(rd) = &spec.initrd {
        let start = (ram_end_off - rd.size) & !(MIB2 - 1);
        // SAFETY: as for the kernel.
        unsafe { arch::copy_phys(phys.as_u64() + start, rd.start.as_u64(), rd.size as usize) };
        initrd = Some(IpaRange::new(ram_ipa.add(start), rd.size));
    }

    // Virtual GIC.
    let layout = vgic_layout(info, is_dom0, vcpus);
    let nr_spis = if is_dom0 {
        (gic::nr_lines().saturating_sub(32)).clamp(32, 960)
    } else {
        DOMU_SPIS
    };
    let Some(mut vgic) = crate::vgic::new_model(&layout, vcpus as usize, nr_spis) else {
        return Err(fail(s2, BuildError::Vgic));
    };
    if let Gic::V2 {
        gicc,
        gicv: Some(gicv),
        ..
    } = &info.gic
    {
        // The guest's GICC is the hardware's virtual CPU interface (GICV).
        let at = if is_dom0 {
            Ipa(gicc.start.as_u64())
        } else {
            Ipa(GUEST_GICC)
        };
        if let Err(e) = s2.map(&mut HostTables, at, gicv.start, 0x2000, S2Attrs::DEVICE) {
            return Err(fail(s2, BuildError::Stage2(e)));
        }
    }

    // Device tree, and for Dom0 the host's devices.
    let hv_regions = if is_dom0 {
        dom0_hypervisor_regions(info, &banks)
    } else {
        vec![IpaRange::new(Ipa(GUEST_GNTTAB_BASE), GUEST_GNTTAB_SIZE)]
    };
    let hypervisor = HypervisorNode {
        version: (xen_abi::XEN_VERSION_MAJOR, xen_abi::XEN_VERSION_MINOR),
        regions: hv_regions,
        evtchn_ppi: EVTCHN_PPI,
    };
    let bootargs = spec.bootargs.clone().unwrap_or_default();
    let dtb = if is_dom0 {
        let hidden: Vec<String> = info
            .stdout
            .iter()
            .map(|u| u.path.clone())
            .chain(crate::board::hidden_paths().iter().cloned())
            .collect();
        let hidden_refs: Vec<&str> = hidden.iter().map(|s| s.as_str()).collect();
        match oxen_dt::dom0_mmio_regions(host_dtb, &hidden_refs) {
            Ok(regions) => {
                for (base, len) in regions {
                    if let Err(e) =
                        s2.map(&mut HostTables, Ipa(base), PhysAddr(base), len, DOM0_MMIO)
                    {
                        log::warn!("d0: MMIO [{base:#x}+{len:#x}] not passed through: {e:?}");
                    }
                }
            }
            Err(e) => log::warn!("d0: no device passed through: host DT: {e:?}"),
        }
        let cfg = Dom0DtConfig {
            ram: banks
                .iter()
                .map(|b| IpaRange::new(b.ipa, b.phys.size))
                .collect(),
            vcpus,
            bootargs,
            initrd,
            hypervisor,
            hidden_paths: hidden,
            timer: None,
        };
        oxen_dt::build_dom0_dt(host_dtb, &cfg)
    } else {
        let gic = match layout.gicr {
            Some(gicr) => GuestGic::V3 {
                gicd: layout.gicd,
                gicr,
            },
            None => GuestGic::V2 {
                gicd: layout.gicd,
                gicc: IpaRange::new(Ipa(GUEST_GICC), 0x2000),
            },
        };
        oxen_dt::build_guest_dt(&GuestDtConfig {
            ram: vec![IpaRange::new(ram_ipa, size)],
            vcpus,
            bootargs,
            initrd,
            gic,
            timer: info.timer,
            // Like Xen's dom0less domains without `xen,enhanced`: no
            // `/hypervisor` node (no xenstore for them), so Linux runs
            // without PV drivers; the console is the vUART if asked for.
            hypervisor: None,
            vpl011: spec
                .vpl011
                .then_some((Ipa(crate::vuart::BASE), crate::vuart::SPI)),
        })
    };
    let dtb = match dtb {
        Ok(d) if (d.len() as u64) <= DTB_SLOT => d,
        Ok(_) => return Err(fail(s2, BuildError::TooBig("device tree"))),
        Err(e) => {
            log::error!("{id}: device tree: {e:?}");
            return Err(fail(s2, BuildError::Dt));
        }
    };
    let pcpus: Vec<usize> = (0..vcpus).map(|_| sched::next_pcpu()).collect();
    if is_dom0 {
        // Every SPI but the console's belongs to Dom0: hardware-mapped, and
        // routed to the physical CPU of Dom0's vCPU 0.
        let cpu = pcpus[0];
        for spi in 32..32 + nr_spis {
            if Some(spi) == irq::uart_irq() || spi >= gic::nr_lines() {
                continue;
            }
            if vgic.set_hw_mapping(spi, 0, Some(spi)).is_ok() {
                gic::route_and_enable_spi(spi, cpu, sched::mpidr_of(cpu));
            }
        }
    }
    let dtb_off = ram_end_off;
    // SAFETY: the DTB slot at the top of the new domain's RAM.
    unsafe { arch::copy_phys(phys.as_u64() + dtb_off, dtb.as_ptr() as u64, dtb.len()) };

    if is_dom0 {
        // Xen's "BANK[i]" lines.
        for (i, b) in banks.iter().enumerate() {
            log::info!(
                "d0: RAM bank {i}: {:#x}-{:#x} ({} MiB)",
                b.phys.start.as_u64(),
                b.phys.end(),
                b.phys.size / MIB
            );
        }
    }
    let name = if spec.name.is_empty() {
        String::from("Domain-0")
    } else {
        spec.name.clone()
    };
    log::info!(
        "{id}: {} MiB RAM at PA {phys} -> IPA {ram_ipa}, {vcpus} vCPU(s), kernel at IPA {:#x}{} ('{name}')",
        size / MIB,
        ram_ipa.as_u64() + kernel_off,
        initrd
            .map(|r| format!(", initrd {} KiB", r.size >> 10))
            .unwrap_or_default()
    );
    let vmid = id.0 + 1;
    let mut dom = Domain::new(
        id,
        name,
        is_dom0,
        banks,
        s2,
        vmid,
        vgic,
        layout,
        &pcpus,
        Some((ram_ipa.add(kernel_off), ram_ipa.add(dtb_off))),
    );
    if spec.vpl011 && !is_dom0 {
        dom.vuart = Some(crate::sync::Mutex::new(oxen_vuart::VUart::new()));
    }
    if let Some(mask) = spec.hard_affinity {
        for v in dom.vcpus.iter_mut() {
            v.get_mut().affinity[0] = u64::from(mask);
        }
    }
    Ok(Arc::new(dom))
}
