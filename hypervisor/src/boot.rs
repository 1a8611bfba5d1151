//! Boot: from QEMU/U-Boot's jump into the Image to every CPU running guests.

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use log::LevelFilter;
use oxen_dt::{BootInfo, EnableMethod, Gic, LogLevel};
use oxen_mm::Stage2Config;
use oxen_types::{PhysAddr, PhysRange};

use crate::arch::{self, gic, head, mmu, smc, spintable, sysreg, timer};
use crate::shutdown::{self, fatal};
use crate::{console, domain_build, irq, mem, sched};

/// oxen's version, from Cargo.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// VTCR_EL2 every CPU loads (one stage-2 format for all domains).
static VTCR: AtomicU64 = AtomicU64::new(0);
static CPUS_UP: AtomicUsize = AtomicUsize::new(1);
/// Counter value when the boot CPU started (for the boot-time figure).
static BOOT_COUNT: AtomicU64 = AtomicU64::new(0);

/// Read the DTB's total size from its header with byte loads (MMU off).
fn dtb_len(dtb: u64) -> usize {
    // SAFETY: the boot protocol hands us a DTB at `dtb`; its 40-byte header
    // is readable.
    let hdr = unsafe { core::slice::from_raw_parts(dtb as *const u8, 40) };
    oxen_dt::dtb_size(hdr).unwrap_or(0)
}

/// RAM ranges from the DTB's memory nodes, without a heap (MMU off).
fn early_ram(dtb: &[u8], out: &mut [(u64, u64); 16]) -> usize {
    let Ok(fdt) = fdt::Fdt::new(dtb) else {
        return 0;
    };
    let mut n = 0;
    for node in fdt.all_nodes() {
        let is_mem = node
            .property("device_type")
            .and_then(|p| p.as_str())
            .is_some_and(|s| s == "memory");
        if !is_mem {
            continue;
        }
        if let Some(regs) = node.reg() {
            for r in regs {
                if n < out.len() {
                    out[n] = (r.starting_address as u64, r.size.unwrap_or(0) as u64);
                    n += 1;
                }
            }
        }
    }
    n
}

fn level_filter(l: Option<LogLevel>) -> LevelFilter {
    match l {
        None => LevelFilter::Info,
        Some(LogLevel::None) => LevelFilter::Off,
        Some(LogLevel::Error) => LevelFilter::Error,
        Some(LogLevel::Warning) => LevelFilter::Warn,
        Some(LogLevel::Info) => LevelFilter::Info,
        Some(LogLevel::Debug) => LevelFilter::Debug,
        Some(LogLevel::All) => LevelFilter::Trace,
    }
}

/// The boot CPU's Rust entry, MMU off, x0 = DTB.
pub extern "C" fn primary_main(dtb: u64) -> ! {
    BOOT_COUNT.store(sysreg::cntpct_el0(), Ordering::Relaxed);
    let len = dtb_len(dtb);
    if len == 0 {
        head::park();
    }
    // SAFETY: the DTB is `len` bytes at `dtb` and nothing writes to it.
    let dtb_bytes = unsafe { core::slice::from_raw_parts(dtb as *const u8, len) };
    let mut ram = [(0u64, 0u64); 16];
    let n = early_ram(dtb_bytes, &mut ram);
    // SAFETY: boot CPU, MMU off, nothing else running; then turn it on.
    unsafe {
        mmu::build_tables(&ram[..n]);
        head::discard_image_lines();
        mmu::enable();
        sysreg::set_tpidr_el2(0);
    }
    mmu::publish_for_secondaries();
    mem::init_heap();
    let wx = mmu::check_wx();

    let mut info = match oxen_dt::parse_boot_info(dtb_bytes) {
        Ok(i) => i,
        Err(_) => head::park(),
    };
    let board = crate::board::init(&mut info, dtb_bytes);
    if let Some(u) = &info.stdout {
        console::init(u.base.as_u64() as usize);
    }
    let opts = oxen_dt::parse_cmdline(&info.cmdline);
    crate::xen::version::COMMAND_LINE.call_once(|| info.cmdline.clone());
    console::init_logger(
        level_filter(opts.loglvl),
        opts.console_timestamps.unwrap_or(oxen_dt::Timestamps::None),
    );
    for u in &opts.unknown {
        log::warn!("unknown option '{u}' ignored");
    }
    shutdown::set_noreboot(opts.noreboot);
    if let Err(e) = &board {
        log::warn!("board description not used ({e}): generic board");
    }

    let total_ram: u64 = info.ram.iter().map(|r| r.size).sum();
    let gic_version = match info.gic {
        Gic::V2 { .. } => 2,
        Gic::V3 { .. } => 3,
    };
    log::info!(
        "oxen {VERSION} (Xen ABI 4.17) on {}: {} CPUs, {} MiB RAM, GICv{gic_version}",
        info.model,
        info.cpus.len().min(head::MAX_CPUS),
        total_ram >> 20
    );
    if !info.cmdline.is_empty() {
        log::info!("command line: {}", info.cmdline);
    }
    log::info!("board: {}", crate::board::name());
    match wx {
        (false, true) => log::info!("EL2 map: code read-only, data never executable (W^X)"),
        (code_w, data_w) => {
            log::warn!("EL2 map is not W^X: code writable {code_w}, data writable {data_w}")
        }
    }

    setup_frames(&info, dtb, len as u64);
    let parange = (sysreg::id_aa64mmfr0_el1() & 0xf) as u8;
    let s2 = Stage2Config::from_parange(parange);
    VTCR.store(s2.vtcr(), Ordering::Relaxed);
    log::info!(
        "stage 2: {}-bit IPA, {} level root",
        s2.ipa_bits,
        s2.start_level
    );

    // SAFETY: the GIC described by the host DT, initialised once here.
    unsafe {
        match &info.gic {
            Gic::V2 { gicd, gicc, .. } => gic::init_distributor(
                gic::Version::V2,
                gicd.start.as_u64() as usize,
                gicc.start.as_u64() as usize,
                0,
            ),
            Gic::V3 { gicd, gicr, .. } => {
                let r = gicr.first().copied().unwrap_or_default();
                gic::init_distributor(
                    gic::Version::V3,
                    gicd.start.as_u64() as usize,
                    r.start.as_u64() as usize,
                    r.size as usize,
                )
            }
        }
    }
    if let Gic::V2 {
        gich: Some(gich), ..
    } = &info.gic
    {
        arch::gich::set_gich_base(gich.start.as_u64() as usize);
    }
    let maintenance = match &info.gic {
        Gic::V2 {
            maintenance_irq, ..
        }
        | Gic::V3 {
            maintenance_irq, ..
        } => *maintenance_irq,
    };
    let uart_irq = info
        .stdout
        .as_ref()
        .and_then(|u| oxen_dt::spi_of(dtb_bytes, &u.path));
    irq::configure(&irq::IrqConfig {
        hyp_timer: info.timer.hyp,
        virt_timer: info.timer.virt,
        maintenance,
        uart: uart_irq,
    });
    if let Some(spi) = uart_irq {
        gic::route_and_enable_spi(spi, 0, arch::mpidr());
        console::enable_input_interrupt();
    }
    let mpidrs: Vec<u64> = info
        .cpus
        .iter()
        .map(|c| c.mpidr)
        .take(head::MAX_CPUS)
        .collect();
    sched::set_cpus(if mpidrs.is_empty() { &[0] } else { &mpidrs });
    sched::configure(&opts);
    crate::idregs::init();
    cpu_init(0);
    shutdown::timer_irq_ready();

    domain_build::build_domains(&info, &opts, dtb_bytes);
    release_boot_modules(&info);
    start_secondaries(&info);
    let us = timer::ticks_to_ns(timer::now() - BOOT_COUNT.load(Ordering::Relaxed)) / 1_000;
    let (heap_used, heap_size) = mem::heap_usage();
    log::info!(
        "boot done in {us} us ({} KiB of {} KiB heap used): scheduling guests",
        heap_used >> 10,
        heap_size >> 10
    );
    sched::run(0)
}

/// Per-CPU setup common to all CPUs (MMU already on).
fn cpu_init(cpu: usize) {
    // SAFETY: once per CPU, before it runs any guest.
    unsafe {
        gic::init_cpu(cpu, arch::mpidr());
        arch::init_cpu_for_guests(VTCR.load(Ordering::Relaxed));
    }
    arch::gich::set_guest_sre();
    irq::init_cpu(cpu);
}

fn setup_frames(info: &BootInfo, dtb: u64, dtb_len: u64) {
    let mut f = mem::FRAMES.lock();
    for r in &info.ram {
        if let Err(e) = f.add(*r) {
            log::warn!("RAM {r} not usable: {e:?}");
        }
    }
    let (s, e) = head::image_range();
    let image = PhysRange::new(PhysAddr(s), e - s);
    for m in &info.modules {
        if m.overlaps(&image) {
            // The entry code zeroed .bss over it: the module is gone.
            drop(f);
            fatal(format_args!(
                "boot module {m} overlaps the hypervisor image {image} (image_size incl. .bss): \
                 load modules above {e:#x}"
            ));
        }
        if !info.ram.iter().any(|r| r.contains_range(m.start, m.size)) {
            drop(f);
            fatal(format_args!(
                "boot module {m} is not in RAM: load it inside a /memory range"
            ));
        }
    }
    let mut reserve = Vec::new();
    reserve.push(("hypervisor", image));
    reserve.push(("device tree", PhysRange::new(PhysAddr(dtb), dtb_len)));
    for m in &info.modules {
        reserve.push(("boot module", *m));
    }
    for r in &info.reserved {
        reserve.push(("reserved", *r));
    }
    for (what, r) in reserve {
        if let Err(e) = f.reserve(r) {
            log::warn!("cannot reserve {what} {r}: {e:?}");
        }
    }
    log::info!(
        "hypervisor image at {s:#x}: {} KiB ({} KiB code+data); {} MiB free for domains",
        (e - s) >> 10,
        (head::bss_start() - s) >> 10,
        f.free_bytes() >> 20
    );
}

/// The domains have their own copies of their kernels and initrds now:
/// give the boot modules' memory back, as Xen does.
fn release_boot_modules(info: &BootInfo) {
    let mut f = mem::FRAMES.lock();
    let mut released = 0;
    for m in &info.modules {
        let start = m.start.align_up(oxen_types::PAGE_SIZE);
        let end = m.end() & !(oxen_types::PAGE_SIZE - 1);
        let Some(start) = start.filter(|s| s.as_u64() < end) else {
            continue;
        };
        let r = PhysRange::new(start, end - start.as_u64());
        match f.free(r) {
            Ok(()) => released += r.size,
            Err(e) => log::debug!("boot module {r} not released: {e:?}"),
        }
    }
    log::info!(
        "boot modules released ({} KiB): {} MiB free for domains",
        released >> 10,
        f.free_bytes() >> 20
    );
}

fn start_secondaries(info: &BootInfo) {
    let entry = head::oxen_secondary_entry as *const () as u64;
    let want = info.cpus.len().min(head::MAX_CPUS);
    let mpidrs: Vec<u64> = info.cpus.iter().take(want).map(|c| c.mpidr).collect();
    head::publish_cpu_table(&mpidrs);
    for (i, c) in info.cpus.iter().enumerate().take(want).skip(1) {
        match crate::board::cpu_start(i, c.enable) {
            EnableMethod::Psci => {
                let r = smc::cpu_on(c.mpidr, entry, i as u64);
                if r != 0 {
                    log::warn!(
                        "CPU{i} (MPIDR {:#x}) did not start: PSCI error {r}",
                        c.mpidr
                    );
                }
            }
            EnableMethod::SpinTable { release_addr } => {
                // SAFETY: the DT's cpu-release-addr for this CPU, which the
                // firmware reserved; the entry is identity mapped.
                unsafe { spintable::release(release_addr.as_u64(), entry) };
            }
            _ => log::warn!("CPU{i}: no PSCI or spin-table enable method; left offline"),
        }
    }
    // Wait (bounded) for the secondaries to check in.
    let deadline = timer::now() + timer::ns_to_ticks(2_000_000_000);
    while CPUS_UP.load(Ordering::Acquire) < want && timer::now() < deadline {
        core::hint::spin_loop();
    }
    let up = CPUS_UP.load(Ordering::Acquire);
    if up < want {
        log::warn!("only {up} of {want} CPUs came up");
    }
}

/// A secondary CPU's Rust entry, MMU off, x0 = CPU index (found from its
/// MPIDR by the entry code).
pub extern "C" fn secondary_main(cpu: u64) -> ! {
    // SAFETY: the boot CPU built and published the tables before CPU_ON.
    unsafe {
        mmu::enable();
        sysreg::set_tpidr_el2(cpu);
    }
    let cpu = cpu as usize;
    cpu_init(cpu);
    // Say so before checking in: the boot CPU's "boot done" (and whatever
    // the guests print) then comes after every "CPUn up" line.
    log::debug!("CPU{cpu} up (MPIDR {:#x})", arch::mpidr());
    CPUS_UP.fetch_add(1, Ordering::AcqRel);
    sched::run(cpu)
}
