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

use oxen_dt::{BootInfo, BootOptions, DomainSpec, Gic, GuestDtConfig, GuestGic, HypervisorNode};
use oxen_mm::{S2Attrs, Stage2, Stage2Config};
use oxen_types::{DomId, Ipa, IpaRange, PhysRange, align_up};

use crate::arch::{self, sysreg};
use crate::domain::{self, Domain, MemBank};
use crate::mem::{FRAMES, HostTables};
use crate::sched;

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

/// Why a domain could not be built (logged; the domain is skipped).
#[derive(Debug)]
pub enum BuildError {
    /// Not enough free host RAM.
    NoMemory(u64),
    /// Stage-2 tables could not be built.
    Stage2(oxen_mm::MmError),
    /// The kernel, initrd and DTB do not fit in the domain's RAM.
    TooBig(&'static str),
    /// The device tree could not be written.
    Dt,
}

/// Build every boot-time domain described by the host device tree.
pub fn build_domains(info: &BootInfo, opts: &BootOptions) {
    let mut next_id = 1u16;
    if let Some(spec) = &info.dom0 {
        let size = opts.dom0_mem.unwrap_or(DOM0_MEM_DEFAULT);
        let vcpus = opts.dom0_max_vcpus.unwrap_or(sched::nr_cpus() as u32);
        match build(info, spec, DomId::DOM0, true, size, vcpus) {
            Ok(d) => register(d),
            Err(e) => log::error!("Dom0 not built: {e:?}"),
        }
    } else {
        log::info!("no Dom0 kernel module: running boot-time domains only");
    }
    for spec in &info.domus {
        let id = DomId(next_id);
        next_id += 1;
        let size = spec.memory_kib.unwrap_or(128 * 1024) * 1024;
        let vcpus = spec.vcpus.unwrap_or(1);
        match build(info, spec, id, false, size, vcpus) {
            Ok(d) => register(d),
            Err(e) => log::error!("{id} '{}' not built: {e:?}", spec.name),
        }
    }
}

fn register(d: Arc<Domain>) {
    domain::DOMAINS.lock().push(d.clone());
    sched::enqueue(&d, 0);
}

/// Text offset and size of an arm64 `Image` at `pa` (Linux booting.rst).
fn image_layout(kernel: &PhysRange) -> (u64, u64) {
    let mut hdr = [0u8; 64];
    if kernel.size >= 64 {
        // SAFETY: the module is reserved RAM that nothing writes.
        unsafe { arch::copy_phys(hdr.as_mut_ptr() as u64, kernel.start.as_u64(), 64) };
    }
    let rd = |o: usize| u64::from_le_bytes(hdr[o..o + 8].try_into().unwrap_or([0; 8]));
    let magic = &hdr[0x38..0x3c];
    let image_size = rd(16);
    if magic == b"ARM\x64" && image_size != 0 {
        (rd(8), image_size.max(kernel.size))
    } else {
        (DEFAULT_TEXT_OFFSET, kernel.size)
    }
}

fn build(
    info: &BootInfo,
    spec: &DomainSpec,
    id: DomId,
    is_dom0: bool,
    size: u64,
    vcpus: u32,
) -> Result<Arc<Domain>, BuildError> {
    let size = align_up(size.max(MIB2 * 4), MIB2).ok_or(BuildError::NoMemory(size))?;
    let vcpus = vcpus.clamp(1, 64);
    let phys = {
        let mut f = FRAMES.lock();
        if is_dom0 { f.alloc(size, MIB2) } else { f.alloc_top(size, MIB2) }
            .map_err(|_| BuildError::NoMemory(size))?
    };
    let ram_ipa = if is_dom0 { Ipa(phys.as_u64()) } else { Ipa(GUEST_RAM0_BASE) };
    let bank = MemBank { ipa: ram_ipa, phys: PhysRange::new(phys, size) };
    let give_back = |e: BuildError| {
        let _ = FRAMES.lock().free(bank.phys);
        e
    };

    // Stage 2: the domain's RAM, nothing else yet.
    let parange = (sysreg::id_aa64mmfr0_el1() & 0xf) as u8;
    let cfg = Stage2Config::from_parange(parange);
    let mut s2 = Stage2::new(cfg, &mut HostTables).map_err(|e| give_back(BuildError::Stage2(e)))?;
    if let Err(e) = s2.map(&mut HostTables, ram_ipa, phys, size, S2Attrs::RAM) {
        s2.destroy(&mut HostTables);
        return Err(give_back(BuildError::Stage2(e)));
    }
    let fail = |s2: Stage2, e: BuildError| {
        s2.destroy(&mut HostTables);
        give_back(e)
    };

    // Kernel.
    let (text_offset, img_size) = image_layout(&spec.kernel);
    let kernel_off = text_offset;
    let ram_end_off = size - DTB_SLOT;
    if kernel_off + img_size > ram_end_off {
        return Err(fail(s2, BuildError::TooBig("kernel")));
    }
    // SAFETY: destination is the new domain's RAM (not yet running), source
    // the reserved boot module; they do not overlap.
    unsafe {
        arch::copy_phys(phys.as_u64() + kernel_off, spec.kernel.start.as_u64(), spec.kernel.size as usize)
    };
    let kernel_end_off = kernel_off + img_size;

    // Initrd just below the DTB slot, 2 MiB aligned.
    let mut initrd = None;
    if let Some(rd) = &spec.initrd {
        let Some(start) = ram_end_off.checked_sub(rd.size).map(|s| s & !(MIB2 - 1)) else {
            return Err(fail(s2, BuildError::TooBig("initrd")));
        };
        if start < align_up(kernel_end_off, MIB2).unwrap_or(u64::MAX) {
            return Err(fail(s2, BuildError::TooBig("initrd")));
        }
        // SAFETY: as for the kernel.
        unsafe { arch::copy_phys(phys.as_u64() + start, rd.start.as_u64(), rd.size as usize) };
        initrd = Some(IpaRange::new(ram_ipa.add(start), rd.size));
    }

    // Device tree.
    let gic = match (&info.gic, is_dom0) {
        (Gic::V2 { gicd, gicc, .. }, true) => GuestGic::V2 {
            gicd: IpaRange::new(Ipa(gicd.start.as_u64()), gicd.size),
            gicc: IpaRange::new(Ipa(gicc.start.as_u64()), gicc.size),
        },
        (Gic::V3 { gicd, gicr, .. }, true) => {
            let r = gicr.first().copied().unwrap_or_default();
            GuestGic::V3 {
                gicd: IpaRange::new(Ipa(gicd.start.as_u64()), gicd.size),
                gicr: IpaRange::new(Ipa(r.start.as_u64()), r.size),
            }
        }
        (Gic::V2 { .. }, false) => GuestGic::V2 {
            gicd: IpaRange::new(Ipa(GUEST_GICD), 0x1000),
            gicc: IpaRange::new(Ipa(GUEST_GICC), 0x2000),
        },
        (Gic::V3 { .. }, false) => GuestGic::V3 {
            gicd: IpaRange::new(Ipa(GUEST_GICD), 0x10000),
            gicr: IpaRange::new(Ipa(GUEST_GICR), 0x20000 * u64::from(vcpus)),
        },
    };
    let dt_cfg = GuestDtConfig {
        ram: vec![IpaRange::new(ram_ipa, size)],
        vcpus,
        bootargs: spec.bootargs.clone().unwrap_or_default(),
        initrd,
        gic,
        timer: info.timer,
        hypervisor: Some(HypervisorNode {
            version: (xen_abi::XEN_VERSION_MAJOR, xen_abi::XEN_VERSION_MINOR),
            regions: vec![IpaRange::new(Ipa(GUEST_GNTTAB_BASE), GUEST_GNTTAB_SIZE)],
            evtchn_ppi: EVTCHN_PPI,
        }),
        vpl011: None,
    };
    let dtb = match oxen_dt::build_guest_dt(&dt_cfg) {
        Ok(d) if (d.len() as u64) <= DTB_SLOT => d,
        Ok(_) => return Err(fail(s2, BuildError::TooBig("device tree"))),
        Err(_) => return Err(fail(s2, BuildError::Dt)),
    };
    let dtb_off = ram_end_off;
    // SAFETY: the DTB slot at the top of the new domain's RAM.
    unsafe { arch::copy_phys(phys.as_u64() + dtb_off, dtb.as_ptr() as u64, dtb.len()) };

    let pcpus: Vec<usize> = (0..vcpus).map(|_| sched::next_pcpu()).collect();
    let name = if spec.name.is_empty() { String::from("Domain-0") } else { spec.name.clone() };
    log::info!(
        "{id}: {} MiB RAM at PA {phys} -> IPA {ram_ipa}, {vcpus} vCPU(s), kernel at IPA {:#x}{}",
        size / MIB,
        ram_ipa.as_u64() + kernel_off,
        initrd.map(|r| format!(", initrd {} KiB", r.size >> 10)).unwrap_or_default()
    );
    let vmid = id.0 + 1;
    Ok(Arc::new(Domain::new(
        id,
        name,
        is_dom0,
        vec![bank],
        s2,
        vmid,
        &pcpus,
        ram_ipa.add(kernel_off),
        ram_ipa.add(dtb_off),
    )))
}
