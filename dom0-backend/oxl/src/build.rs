//! The domain builder: what `libxl__domain_make` + libxenguest's Arm builder + `libxl__build_post`
//! do for a PVH Arm guest (TSA §1), over the [`Hv`] and [`Store`] traits.
//!
//! Owns: the kernel Image probe (gunzip, header), RAM banks and their population in 2 MiB
//! extents (4 KiB fallback), module placement (initrd then DTB, libxc's `meminit` rule),
//! chunked foreign writes + cacheflush, magic pages, HVM params, the boot vCPU, the xenstore
//! nodes of a new domain, `XS_INTRODUCE`, and undoing all of it when a step fails.
//!
//! Invariants: nothing is created before every check that can be made up front has passed
//! (files, memory, vCPUs, name); after createdomain every failure destroys the domain and
//! removes every xenstore node this builder made ([`Made`]); foreign writes map at most
//! [`CHUNK_PAGES`] pages at a time.

use crate::cfg::DomainConfig;
use crate::dt::{Gic, GuestDt, layout::*};
use crate::sys::{
    CreateDomain, Hv, Perm, Store, SysError, SysResult, VcpuContext, n, param, r, with_transaction,
};

pub const PAGE_SIZE: u64 = 4096;
pub const PAGE_SHIFT: u32 = 12;
/// Pages mapped at once when writing guest memory (2 MiB of Dom0 address space).
pub const CHUNK_PAGES: u64 = 512;
/// Extents asked for per populate_physmap call.
pub const POPULATE_BATCH: usize = 256;
/// GFN of the first magic page (console ring); xenstore ring +1, memaccess +2, vuart +3.
pub const MAGIC_GFN: u64 = GUEST_MAGIC_BASE >> PAGE_SHIFT;
pub const CONSOLE_GFN: u64 = MAGIC_GFN;
pub const STORE_GFN: u64 = MAGIC_GFN + 1;
pub const NR_MAGIC_PAGES: u64 = 4;
/// `PSR_GUEST64_INIT`: EL1h, D/A/I/F masked.
pub const CPSR_GUEST64_INIT: u64 = 0x1c5;
/// `SCTLR_GUEST_INIT`.
pub const SCTLR_GUEST_INIT: u64 = 0x00c5_0078;
/// CALLBACK_IRQ value libxl sets: type PPI (2) << 56, active-low level (2) << 8, PPI 31.
pub const CALLBACK_VIA_PPI31: u64 = (2 << 56) | (2 << 8) | GUEST_EVTCHN_PPI as u64;
/// Largest gunzipped kernel accepted (a gzip bomb must not exhaust Dom0).
pub const MAX_KERNEL: usize = 256 << 20;

/// Why a build failed: the one line to print (`<step>: <cause>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn step<T>(what: &str, r: SysResult<T>) -> Result<T, BuildError> {
    r.map_err(|e| BuildError(format!("{what}: {e}")))
}

/// A kernel Image ready to load: its bytes (gunzipped), or the open file of an uncompressed
/// Image, read straight into the guest's pages when it is loaded (no copy in between).
#[derive(Debug)]
pub struct Kernel {
    pub text_offset: u64,
    /// Bytes of the Image.
    pub len: u64,
    pub payload: Payload,
}

/// Where a kernel's bytes are.
#[derive(Debug)]
pub enum Payload {
    Bytes(Vec<u8>),
    /// The whole file, from offset 0 (`len` bytes).
    File(std::fs::File),
}

#[cfg(test)]
impl Kernel {
    /// The bytes of an in-memory kernel.
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.payload {
            Payload::Bytes(b) => Some(b),
            Payload::File(_) => None,
        }
    }
}

/// Opens the kernel at `path`: an uncompressed Image is probed from its header and kept as
/// the open file; a gzip one is read and gunzipped ([`parse_kernel`]).
pub fn open_kernel(path: &str) -> Result<Kernel, String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| crate::cmd::io_text(&e))?;
    let len = file.metadata().map_err(|e| crate::cmd::io_text(&e))?.len();
    let mut head = [0u8; 64];
    let n = (len as usize).min(64);
    file.read_exact_at(&mut head[..n], 0)
        .map_err(|e| crate::cmd::io_text(&e))?;
    if n < 64 || head.starts_with(&[0x1f, 0x8b]) {
        let raw = std::fs::read(path).map_err(|e| crate::cmd::io_text(&e))?;
        return parse_kernel(raw);
    }
    let text_offset = check_header(&head)?;
    Ok(Kernel {
        text_offset,
        len,
        payload: Payload::File(file),
    })
}

/// The `text_offset` of an arm64 Image header (its first 64 bytes).
fn check_header(data: &[u8]) -> Result<u64, String> {
    if data.len() < 64 {
        return Err("not an arm64 Image: file too short for the Image header".into());
    }
    let magic0 = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    if &data[56..60] != b"ARM\x64" && magic0 != 0x1400_0008 {
        return Err("not an arm64 Image: no \"ARM\\x64\" magic at byte 56".into());
    }
    let text_offset = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    if text_offset % PAGE_SIZE != 0 || text_offset >= GUEST_RAM0_SIZE {
        return Err(format!(
            "arm64 Image has an unusable text_offset {text_offset:#x}"
        ));
    }
    Ok(text_offset)
}

/// Probes an arm64 `Image` (gunzipping it first when it is gzip), as libxc's zImage64 loader.
/// Takes the file's bytes (an uncompressed Image is kept as it is, not copied).
pub fn parse_kernel(raw: impl Into<Vec<u8>>) -> Result<Kernel, String> {
    let raw: Vec<u8> = raw.into();
    let data = if raw.starts_with(&[0x1f, 0x8b]) {
        use std::io::Read;
        let mut out = Vec::new();
        let mut dec = flate2::read::GzDecoder::new(&raw[..]).take(MAX_KERNEL as u64 + 1);
        dec.read_to_end(&mut out)
            .map_err(|e| format!("cannot gunzip the kernel: {e}"))?;
        if out.len() > MAX_KERNEL {
            return Err(format!(
                "the gunzipped kernel is larger than {} MiB",
                MAX_KERNEL >> 20
            ));
        }
        out
    } else {
        raw
    };
    let text_offset = check_header(&data)?;
    Ok(Kernel {
        text_offset,
        len: data.len() as u64,
        payload: Payload::Bytes(data),
    })
}

/// RAM bytes per bank for `ram` bytes (bank 0 first, up to 3 GiB).
pub fn banks(ram: u64) -> Result<[u64; 2], String> {
    if ram == 0 {
        return Err("no memory".into());
    }
    if ram > GUEST_RAM0_SIZE + GUEST_RAM1_SIZE {
        return Err(format!(
            "{} MiB is more than the guest address space holds",
            ram >> 20
        ));
    }
    let b0 = ram.min(GUEST_RAM0_SIZE);
    Ok([b0, ram - b0])
}

/// Where the boot pieces go in guest-physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub kernel: u64,
    pub kernel_end: u64,
    /// [start, end) of the initrd, page-rounded (what `/chosen` advertises).
    pub initrd: Option<(u64, u64)>,
    pub dtb: u64,
}

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// libxc `meminit`: modules (initrd, then DTB) at RAM+128 MiB if they fit above the kernel,
/// else at the top of bank 0, else just below the kernel.
pub fn place(
    kernel: &Kernel,
    initrd_len: Option<u64>,
    dtb_len: u64,
    bank0: u64,
) -> Result<Layout, String> {
    let kbase = GUEST_RAM0_BASE + kernel.text_offset;
    let kend_exact = kbase + kernel.len;
    let kend = round_up(kend_exact, 2 << 20);
    let bank0_end = GUEST_RAM0_BASE + bank0;
    let dtb_size = round_up(dtb_len, PAGE_SIZE);
    let rd_size = initrd_len.map_or(0, |l| round_up(l, PAGE_SIZE));
    let modsize = dtb_size + rd_size;
    if kend_exact > bank0_end {
        return Err(format!(
            "the kernel ({} MiB) does not fit in the guest's memory",
            kernel.len >> 20
        ));
    }
    let ram128 = GUEST_RAM0_BASE + (128 << 20);
    let mut base = if bank0_end >= ram128 + modsize && kend < ram128 {
        ram128
    } else if bank0_end.checked_sub(modsize).is_some_and(|b| b > kend) {
        bank0_end - modsize
    } else if kbase - GUEST_RAM0_BASE > modsize {
        kbase - modsize
    } else {
        return Err("not enough guest memory for the kernel, initrd and device tree".into());
    };
    let initrd = initrd_len.map(|_| {
        let s = base;
        base += rd_size;
        (s, s + rd_size)
    });
    Ok(Layout {
        kernel: kbase,
        kernel_end: kend_exact,
        initrd,
        dtb: base,
    })
}

/// Populates `nr` pages from `gfn`: 2 MiB extents while aligned, falling back to 4 KiB extents
/// for a batch whose 2 MiB request returned 0 done. Returns the calls made (for `-v`).
pub fn populate_ram<H: Hv + ?Sized>(
    hv: &H,
    domid: u32,
    gfn: u64,
    nr: u64,
) -> SysResult<Vec<(u32, usize)>> {
    let mut calls = Vec::new();
    let (mut at, end) = (gfn, gfn + nr);
    let mut superpages = true;
    while at < end {
        let order = if superpages && at % 512 == 0 && end - at >= 512 {
            9
        } else {
            0
        };
        let count = (((end - at) >> order) as usize).min(POPULATE_BATCH);
        let gfns: Vec<u64> = (0..count as u64).map(|i| at + (i << order)).collect();
        let done = hv.populate(domid, order, &gfns)?;
        calls.push((order, done));
        if done > count {
            return Err(SysError::msg(format!(
                "populate_physmap claimed {done} of {count} extents"
            )));
        }
        if done == 0 {
            if order == 0 {
                return Err(SysError::errno(crate::sys::ENOMEM));
            }
            superpages = false;
            continue;
        }
        at += (done as u64) << order;
    }
    Ok(calls)
}

/// Writes `data` at guest-physical `addr` (page-aligned) through foreign maps of at most
/// [`CHUNK_PAGES`] pages, then cache-flushes the whole range.
pub fn write_segment<H: Hv + ?Sized>(hv: &H, domid: u32, addr: u64, data: &[u8]) -> SysResult<()> {
    debug_assert_eq!(addr % PAGE_SIZE, 0);
    let chunk = (CHUNK_PAGES * PAGE_SIZE) as usize;
    for (i, part) in data.chunks(chunk).enumerate() {
        hv.write_pages(domid, (addr >> PAGE_SHIFT) + i as u64 * CHUNK_PAGES, part)?;
    }
    flush_segment(hv, domid, addr, data.len() as u64)
}

/// Writes `len` bytes of `file` (from offset 0) at guest-physical `addr` (page-aligned):
/// each chunk is read straight into its foreign map; then cache-flushes the whole range.
pub fn write_segment_file<H: Hv + ?Sized>(
    hv: &H,
    domid: u32,
    addr: u64,
    file: &std::fs::File,
    len: u64,
) -> SysResult<()> {
    use std::os::unix::fs::FileExt;
    debug_assert_eq!(addr % PAGE_SIZE, 0);
    let chunk = CHUNK_PAGES * PAGE_SIZE;
    let mut off = 0;
    while off < len {
        let n = (len - off).min(chunk);
        hv.fill_pages(
            domid,
            (addr + off) >> PAGE_SHIFT,
            n as usize,
            &mut |dst: &mut [u8]| {
                file.read_exact_at(dst, off)
                    .map_err(|e| SysError::msg(format!("reading the file at offset {off}: {e}")))
            },
        )?;
        off += n;
    }
    flush_segment(hv, domid, addr, len)
}

fn flush_segment<H: Hv + ?Sized>(hv: &H, domid: u32, addr: u64, len: u64) -> SysResult<()> {
    let pages = len.div_ceil(PAGE_SIZE).max(1);
    for start in (0..pages).step_by(1 << 20) {
        hv.cacheflush(
            domid,
            (addr >> PAGE_SHIFT) + start,
            (pages - start).min(1 << 20),
        )?;
    }
    Ok(())
}

/// What the builder needs besides the configuration.
pub struct BuildInput<'a> {
    pub cfg: &'a DomainConfig,
    pub kernel: Kernel,
    pub ramdisk: Option<Vec<u8>>,
    pub uuid: [u8; 16],
    pub rng_seed: [u8; 128],
    /// `/vm/<uuid>/start_time` (`secs.centisecs`).
    pub start_time: String,
    /// Leave the domain paused (`xl create -p`).
    pub paused: bool,
    /// Wait for xenconsoled to publish `console/tty` (it is running).
    pub wait_console: bool,
    /// How long to wait for `console/tty`.
    pub console_timeout: std::time::Duration,
}

/// What the builder created so far, so a failure can undo it.
#[derive(Debug, Default)]
pub struct Made {
    pub domid: Option<u32>,
    pub nodes: Vec<String>,
}

impl Made {
    /// Destroys the domain and removes the nodes; best effort (errors are ignored: the first
    /// failure is the one reported).
    pub fn undo<H: Hv + ?Sized, S: Store + ?Sized>(&self, hv: &H, xs: &S) {
        if let Some(d) = self.domid {
            let _ = hv.pause(d);
        }
        for p in self.nodes.iter().rev() {
            let _ = xs.rm(0, p);
        }
        if let Some(d) = self.domid {
            let _ = hv.destroy(d);
        }
    }
}

/// The xenstore roots of domain `domid` (removed on destroy).
pub fn domain_roots(domid: u32, uuid: &str) -> Vec<String> {
    vec![
        format!("/local/domain/{domid}"),
        format!("/vm/{uuid}"),
        format!("/libxl/{domid}"),
        format!("/local/domain/0/backend/console/{domid}"),
    ]
}

/// Writes of one transaction attempt. A node whose parent this writer gave the same ACL
/// in the same transaction gets it by inheritance (xenstored gives a node Dom0 creates its
/// parent's ACL): no SET_PERMS round trip for it.
struct Writer<'a, S: ?Sized> {
    xs: &'a S,
    tx: u32,
    acls: std::collections::HashMap<String, Vec<Perm>>,
}

impl<'a, S: Store + ?Sized> Writer<'a, S> {
    fn new(xs: &'a S, tx: u32) -> Self {
        Writer {
            xs,
            tx,
            acls: std::collections::HashMap::new(),
        }
    }

    fn put(&mut self, path: &str, value: &str, perms: &[Perm]) -> SysResult<()> {
        self.xs
            .write(self.tx, path, value)
            .map_err(|e| e.context(&format!("write {path}")))?;
        let inherited = path
            .rsplit_once('/')
            .and_then(|(parent, _)| self.acls.get(parent))
            .is_some_and(|p| p == perms);
        if !inherited {
            self.xs
                .set_perms(self.tx, path, perms)
                .map_err(|e| e.context(&format!("set permissions of {path}")))?;
        }
        self.acls.insert(path.to_string(), perms.to_vec());
        Ok(())
    }
}

/// Builds and (unless paused) starts the domain. On failure everything made is undone and the
/// error says which step failed. `progress` receives `-v` lines.
pub fn build<H: Hv + ?Sized, S: Store + ?Sized>(
    hv: &H,
    xs: &S,
    input: &BuildInput<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<u32, BuildError> {
    let mut made = Made::default();
    match build_inner(hv, xs, input, &mut made, progress) {
        Ok(d) => Ok(d),
        Err(e) => {
            made.undo(hv, xs);
            Err(e)
        }
    }
}

fn build_inner<H: Hv + ?Sized, S: Store + ?Sized>(
    hv: &H,
    xs: &S,
    input: &BuildInput<'_>,
    made: &mut Made,
    progress: &mut dyn FnMut(&str),
) -> Result<u32, BuildError> {
    let cfg = input.cfg;
    progress("@build start");
    let ram = cfg.target_memkb * 1024;
    let bank = banks(ram).map_err(|e| BuildError(format!("memory: {e}")))?;

    // Checks before anything exists.
    let phys = step("physinfo", hv.physinfo())?;
    let free_kb = phys.free_pages.saturating_sub(phys.outstanding_pages) * 4;
    if cfg.max_memkb > free_kb {
        return Err(BuildError(format!(
            "not enough free memory: the domain needs {} MiB, the host has {} MiB free",
            cfg.max_memkb / 1024,
            free_kb / 1024
        )));
    }
    // vCPU hard (`cpus`) and soft (`cpus_soft`) affinity, checked against the host's CPUs
    // before anything exists. More vCPUs than CPUs is fine: the scheduler shares them.
    let nr_cpus = phys.max_cpu_id + 1;
    let mut affinity = Vec::new();
    for v in 0..cfg.max_vcpus {
        let mut maps = [None, None];
        for (k, (key, spec)) in [("cpus", &cfg.cpus), ("cpus_soft", &cfg.cpus_soft)]
            .into_iter()
            .enumerate()
        {
            if let Some(list) = spec.as_ref().and_then(|s| s.for_vcpu(v as usize)) {
                maps[k] = Some(
                    crate::cfg::parse_cpulist(list, nr_cpus)
                        .map_err(|e| BuildError(format!("{key}: {e}")))?,
                );
            }
        }
        if maps.iter().any(Option::is_some) {
            let [h, s] = maps;
            affinity.push((v, h, s));
        }
    }
    let ver = step("xen_version", hv.version())?;
    if !ver
        .capabilities
        .split_whitespace()
        .any(|c| c == "xen-3.0-aarch64")
    {
        return Err(BuildError(format!(
            "the hypervisor cannot run arm64 guests (capabilities \"{}\")",
            ver.capabilities
        )));
    }
    // Size the DTB with placeholder values (its size does not depend on them), then place.
    let mut gdt = GuestDt {
        xen_major: ver.major,
        xen_minor: ver.minor,
        gic: Gic::V3,
        vcpus: cfg.max_vcpus,
        ram: bank,
        bootargs: cfg.cmdline.clone(),
        initrd: input.ramdisk.as_ref().map(|_| (0, 0)),
        clock_frequency: None,
        gpaddr_bits: 40,
        rng_seed: Some(input.rng_seed),
    };
    let dtb_len = gdt
        .build()
        .map_err(|e| BuildError(format!("device tree: {e}")))?
        .len() as u64
        + 64;
    let lay = place(
        &input.kernel,
        input.ramdisk.as_ref().map(|r| r.len() as u64),
        dtb_len,
        bank[0],
    )
    .map_err(|e| BuildError(format!("placing the kernel: {e}")))?;

    progress("@checks (physinfo, version, DTB sizing)");
    // createdomain (paused, no vCPUs, no RAM).
    let req = CreateDomain {
        handle: input.uuid,
        max_vcpus: cfg.max_vcpus,
        max_evtchn_port: 1023,
        max_grant_frames: -1,
        max_maptrack_frames: -1,
        grant_opts: 1,
    };
    let created = step("createdomain", hv.create_domain(&req))?;
    progress("@createdomain");
    let domid = created.domid;
    made.domid = Some(domid);
    progress(&format!(
        "created domain {domid} (vGIC v{}, paused)",
        if created.gic_version == 1 { 2 } else { 3 }
    ));
    gdt.gic = match created.gic_version {
        1 => Gic::V2,
        2 => Gic::V3,
        v => {
            return Err(BuildError(format!(
                "createdomain: unknown vGIC version {v}"
            )));
        }
    };
    gdt.clock_frequency = (created.clock_frequency != 0).then_some(created.clock_frequency);

    // Xenstore skeleton (libxl__domain_make).
    let uuid = crate::cfg::format_uuid(&input.uuid);
    let dom = format!("/local/domain/{domid}");
    let vm = format!("/vm/{uuid}");
    let lx = format!("/libxl/{domid}");
    made.nodes.extend(domain_roots(domid, &uuid));
    let ro = [n(0), r(domid)];
    let own = [n(domid)];
    step(
        "xenstore",
        with_transaction(xs, |tx| {
            let mut w = Writer::new(xs, tx);
            for p in [&dom, &vm] {
                let _ = xs.rm(tx, p);
                w.put(p, "", &ro)?;
            }
            let _ = xs.rm(tx, &lx);
            w.put(&lx, "", &[n(0)])?;
            w.put(&format!("{lx}/device"), "", &[n(0)])?;
            w.put(&format!("{dom}/vm"), &vm, &ro)?;
            w.put(&format!("{dom}/name"), &cfg.name, &ro)?;
            w.put(&format!("{vm}/uuid"), &uuid, &ro)?;
            w.put(&format!("{vm}/name"), &cfg.name, &ro)?;
            for d in ["cpu", "memory", "device", "device/suspend", "control"] {
                w.put(&format!("{dom}/{d}"), "", &ro)?;
            }
            for d in [
                "device/suspend/event-channel",
                "control/shutdown",
                "control/feature-poweroff",
                "control/feature-reboot",
                "control/feature-suspend",
                "control/sysrq",
                "data",
                "drivers",
                "feature",
                "attr",
                "error",
            ] {
                w.put(&format!("{dom}/{d}"), "", &own)?;
            }
            w.put(
                &format!("{dom}/control/platform-feature-multiprocessor-suspend"),
                "1",
                &ro,
            )?;
            w.put(
                &format!("{dom}/control/platform-feature-xs_reset_watches"),
                "1",
                &ro,
            )?;
            w.put(&format!("{lx}/type"), "pvh", &[n(0)])?;
            w.put(&format!("{lx}/dm-version"), "qemu_xen", &[n(0)])
        }),
    )?;

    progress("@xenstore skeleton transaction");
    // libxl__build_pre.
    step("max_vcpus", hv.max_vcpus(domid, cfg.max_vcpus))?;
    for (v, hard, soft) in &affinity {
        step(
            "setvcpuaffinity",
            hv.set_vcpu_affinity(domid, *v, hard.as_deref(), soft.as_deref()),
        )?;
    }
    if cfg.weight.is_some() || cfg.cap.is_some() {
        let w = cfg.weight.map(|w| w as u16);
        let c = cfg.cap.map(|c| c as u16);
        step("scheduler parameters", hv.set_sched_credit(domid, w, c))?;
    }
    step("max_mem", hv.max_mem(domid, cfg.max_memkb + 1024))?;
    let store_port = step(
        "allocating the xenstore event channel",
        hv.alloc_unbound(domid, 0),
    )?;
    let console_port = step(
        "allocating the console event channel",
        hv.alloc_unbound(domid, 0),
    )?;
    let shadow_kb = 4 * (256 * u64::from(cfg.max_vcpus) + cfg.max_memkb / 1024 + 128);
    step(
        "set_paging_mempool_size",
        hv.set_paging_mempool_size(domid, shadow_kb << 10),
    )?;
    step(
        "setting CALLBACK_IRQ",
        hv.set_param(domid, param::CALLBACK_IRQ, CALLBACK_VIA_PPI31),
    )?;

    progress("@build_pre (max_vcpus, max_mem, evtchns, mempool, params)");
    // meminit.
    step("set_address_size", hv.set_address_size(domid, 64))?;
    for (i, base) in [GUEST_RAM0_BASE, GUEST_RAM1_BASE].into_iter().enumerate() {
        if bank[i] == 0 {
            continue;
        }
        progress(&format!(
            "populating RAM {:#x}-{:#x} ({} MiB)",
            base,
            base + bank[i],
            bank[i] >> 20
        ));
        let calls = step(
            "populate RAM",
            populate_ram(hv, domid, base >> PAGE_SHIFT, bank[i] >> PAGE_SHIFT),
        )?;
        let big: usize = calls.iter().filter(|c| c.0 == 9).map(|c| c.1).sum();
        let small: usize = calls.iter().filter(|c| c.0 == 0).map(|c| c.1).sum();
        progress(&format!(
            "populated {big} 2 MiB and {small} 4 KiB extents in {} calls",
            calls.len()
        ));
    }

    progress("@populate");
    // Boot pieces: kernel, initrd, DTB (final values).
    let info = step("getdomaininfo", hv.domain_info(domid))?
        .ok_or_else(|| BuildError(format!("getdomaininfo: domain {domid} vanished")))?;
    if info.gpaddr_bits != 0 {
        gdt.gpaddr_bits = info.gpaddr_bits;
    }
    gdt.initrd = lay.initrd;
    let blob = gdt
        .build()
        .map_err(|e| BuildError(format!("device tree: {e}")))?;
    if blob.len() as u64 > dtb_len {
        return Err(BuildError("device tree: grew after placement".into()));
    }
    progress(&format!("kernel {:#x}-{:#x}", lay.kernel, lay.kernel_end));
    step(
        "loading the kernel",
        match &input.kernel.payload {
            Payload::Bytes(b) => write_segment(hv, domid, lay.kernel, b),
            Payload::File(f) => write_segment_file(hv, domid, lay.kernel, f, input.kernel.len),
        },
    )?;
    progress("@kernel written");
    if let (Some((s, e)), Some(rd)) = (lay.initrd, &input.ramdisk) {
        progress(&format!("ramdisk {s:#x}-{e:#x}"));
        step("loading the ramdisk", write_segment(hv, domid, s, rd))?;
        progress("@ramdisk written");
    }
    progress(&format!(
        "device tree {:#x} ({} bytes)",
        lay.dtb,
        blob.len()
    ));
    step(
        "loading the device tree",
        write_segment(hv, domid, lay.dtb, &blob),
    )?;
    progress("@device tree written");

    // Magic pages: console, xenstore, memaccess, vuart.
    let magic: Vec<u64> = (0..NR_MAGIC_PAGES).map(|i| MAGIC_GFN + i).collect();
    for g in &magic {
        let done = step("populating the magic pages", hv.populate(domid, 0, &[*g]))?;
        if done != 1 {
            return Err(BuildError(
                "populating the magic pages: ENOMEM (out of memory)".into(),
            ));
        }
        step(
            "zeroing the magic pages",
            hv.write_pages(domid, *g, &[0u8; PAGE_SIZE as usize]),
        )?;
        step("cacheflush", hv.cacheflush(domid, *g, 1))?;
    }
    for (idx, val) in [
        (param::CONSOLE_PFN, CONSOLE_GFN),
        (param::STORE_PFN, STORE_GFN),
        (param::MONITOR_RING_PFN, MAGIC_GFN + 2),
        (param::CONSOLE_EVTCHN, u64::from(console_port)),
        (param::STORE_EVTCHN, u64::from(store_port)),
    ] {
        step("setting HVM params", hv.set_param(domid, idx, val))?;
    }

    progress("@magic pages + HVM params");
    // Boot vCPU.
    let ctx = VcpuContext {
        pc: lay.kernel,
        x0: lay.dtb,
        cpsr: CPSR_GUEST64_INIT,
        sctlr: SCTLR_GUEST_INIT,
        online: true,
    };
    step("setvcpucontext", hv.set_vcpu_context(domid, 0, &ctx))?;
    progress(&format!("vCPU 0: pc {:#x}, x0 (DTB) {:#x}", ctx.pc, ctx.x0));
    // Grant refs 0/1 (console, xenstore) for daemons that map the rings by grant (C xenstored,
    // xenconsoled's first choice). Ours map by GFN, so a hypervisor without grant-table
    // resources still gets a working domain: the failure is reported with -v only.
    match hv.seed_grants(domid, 0, &[CONSOLE_GFN, STORE_GFN]) {
        Ok(()) => progress(&format!(
            "grant refs 0, 1 -> d0 {CONSOLE_GFN:#x}, {STORE_GFN:#x}"
        )),
        Err(e) => progress(&format!(
            "grant table not seeded ({e}): ring daemons must map by GFN"
        )),
    }

    progress("@vcpu context + grant seed");
    // libxl__build_post + console device.
    let be = format!("/local/domain/0/backend/console/{domid}/0");
    let con = format!("{dom}/console");
    step(
        "xenstore",
        with_transaction(xs, |tx| {
            let mut w = Writer::new(xs, tx);
            w.put(
                &format!("{dom}/memory/static-max"),
                &cfg.max_memkb.to_string(),
                &ro,
            )?;
            w.put(
                &format!("{dom}/memory/target"),
                &cfg.target_memkb.to_string(),
                &ro,
            )?;
            w.put(&format!("{dom}/memory/videoram"), "0", &ro)?;
            w.put(&format!("{dom}/domid"), &domid.to_string(), &ro)?;
            w.put(&format!("{dom}/store"), "", &ro)?;
            w.put(&format!("{dom}/store/port"), &store_port.to_string(), &ro)?;
            w.put(
                &format!("{dom}/store/ring-ref"),
                &STORE_GFN.to_string(),
                &ro,
            )?;
            for v in 0..cfg.max_vcpus {
                w.put(&format!("{dom}/cpu/{v}"), "", &ro)?;
                let avail = if v < cfg.vcpus { "online" } else { "offline" };
                w.put(&format!("{dom}/cpu/{v}/availability"), avail, &ro)?;
            }
            w.put(&format!("{vm}/start_time"), &input.start_time, &ro)
        }),
    )?;
    step(
        "xenstore",
        with_transaction(xs, |tx| {
            let mut w = Writer::new(xs, tx);
            w.put(&be, "", &ro)?;
            w.put(&format!("{be}/frontend"), &con, &ro)?;
            w.put(&format!("{be}/frontend-id"), &domid.to_string(), &ro)?;
            w.put(&format!("{be}/online"), "1", &ro)?;
            w.put(&format!("{be}/state"), "1", &ro)?;
            w.put(&format!("{be}/protocol"), "vt100", &ro)?;
            w.put(&con, "", &ro)?;
            w.put(&format!("{con}/backend"), &be, &ro)?;
            w.put(&format!("{con}/backend-id"), "0", &[n(domid), r(0)])?;
            w.put(&format!("{con}/limit"), "1048576", &ro)?;
            w.put(&format!("{con}/type"), "xenconsoled", &ro)?;
            w.put(&format!("{con}/output"), "pty", &ro)?;
            w.put(&format!("{con}/tty"), "", &ro)?;
            w.put(&format!("{con}/port"), &console_port.to_string(), &ro)?;
            w.put(&format!("{con}/ring-ref"), &CONSOLE_GFN.to_string(), &ro)?;
            let lc = format!("{lx}/device/console/0");
            for (k, v) in [
                ("", String::new()),
                ("/backend", be.clone()),
                ("/frontend", con.clone()),
                ("/frontend-id", domid.to_string()),
                ("/online", "1".into()),
                ("/state", "1".into()),
                ("/protocol", "vt100".into()),
            ] {
                w.put(&format!("{lc}{k}"), &v, &[n(0)])?;
            }
            Ok(())
        }),
    )?;
    progress("@xenstore build_post + console transactions");
    step(
        "introducing the domain to xenstored",
        xs.introduce(domid, STORE_GFN, store_port),
    )?;
    progress(&format!(
        "introduced to xenstored (ring {STORE_GFN:#x}, port {store_port})"
    ));

    if input.wait_console {
        step(
            "waiting for xenconsoled",
            wait_for_tty(xs, domid, input.console_timeout),
        )?;
        progress("@console/tty from xenconsoled");
    }
    if !input.paused {
        step("unpause", hv.unpause(domid))?;
    }
    Ok(domid)
}

/// Waits (bounded) until `console/tty` is non-empty; returns it.
pub fn wait_for_tty<S: Store + ?Sized>(
    xs: &S,
    domid: u32,
    timeout: std::time::Duration,
) -> SysResult<String> {
    let path = format!("/local/domain/{domid}/console/tty");
    let token = format!("oxl-tty-{domid}");
    xs.watch(&path, &token)?;
    let deadline = std::time::Instant::now() + timeout;
    let res = loop {
        match xs.read(0, &path) {
            Ok(Some(t)) if !t.is_empty() => break Ok(t),
            Ok(_) => {}
            Err(e) => break Err(e),
        }
        let now = std::time::Instant::now();
        if now >= deadline {
            break Err(SysError::msg(format!(
                "{path} not set after {} s (is xenconsoled running?)",
                timeout.as_secs()
            )));
        }
        // Any event (ours or not) is a reason to look again; bound each wait so a missed
        // event only costs a little time.
        if let Err(e) = xs.wait_watch(Some(
            (deadline - now).min(std::time::Duration::from_millis(500)),
        )) {
            break Err(e);
        }
    };
    let _ = xs.unwatch(&path, &token);
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfg::Settings;
    use crate::fake::{FakeHv, FakeStore};
    use crate::sys::PermKind;
    use std::time::Duration;

    /// `PermKind` letters as `xenstore-ls -p` prints them (for tests and messages).
    fn perm_text(p: &[Perm]) -> String {
        p.iter()
            .map(|p| {
                let k = match p.kind {
                    PermKind::None => 'n',
                    PermKind::Read => 'r',
                };
                format!("{k}{}", p.id)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    fn image(len: usize, text_offset: u64) -> Vec<u8> {
        let mut k: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        k[8..16].copy_from_slice(&text_offset.to_le_bytes());
        k[56..60].copy_from_slice(b"ARM\x64");
        k
    }

    fn config(extra: &str) -> DomainConfig {
        let text = format!(
            "name='domu'\nkernel='/k'\nramdisk='/r'\nmemory=256\nextra='console=hvc0'\n{extra}"
        );
        Settings::parse("t.cfg", &text, &[])
            .unwrap()
            .domain_config()
            .unwrap()
    }

    fn input(cfg: &DomainConfig) -> BuildInput<'_> {
        BuildInput {
            cfg,
            kernel: parse_kernel(image(3 << 20, 0)).unwrap(),
            ramdisk: Some(vec![0x5a; 10_000]),
            uuid: crate::cfg::parse_uuid("e68679a4-9132-4e75-b8c9-195ce327113f").unwrap(),
            rng_seed: [1; 128],
            start_time: "1795305720.08".into(),
            paused: false,
            wait_console: true,
            console_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn kernel_probe() {
        let k = parse_kernel(image(4096, 0x80000)).unwrap();
        assert_eq!(k.text_offset, 0x80000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &image(100_000, 0)).unwrap();
        let k = parse_kernel(gz.finish().unwrap()).unwrap();
        assert_eq!(k.bytes().unwrap(), image(100_000, 0));
        assert!(parse_kernel([0u8; 63]).unwrap_err().contains("too short"));
        assert!(parse_kernel([0u8; 4096]).unwrap_err().contains("magic"));
        assert!(
            parse_kernel([0x1f, 0x8b, 1, 2, 3])
                .unwrap_err()
                .contains("gunzip")
        );
        assert!(parse_kernel(image(4096, 0x123)).is_err());
    }

    #[test]
    fn kernel_file_is_read_into_guest_pages() {
        let d = std::env::temp_dir().join(format!("oxl-kfile-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let (plain, gz) = (d.join("Image"), d.join("Image.gz"));
        // Not a multiple of the chunk: the last chunk is partial, its page zero-padded.
        let img = image((CHUNK_PAGES * PAGE_SIZE) as usize + 5000, 0x80000);
        std::fs::write(&plain, &img).unwrap();
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &img).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let k = open_kernel(plain.to_str().unwrap()).unwrap();
        assert!(matches!(k.payload, Payload::File(_)));
        assert_eq!((k.text_offset, k.len), (0x80000, img.len() as u64));
        let kz = open_kernel(gz.to_str().unwrap()).unwrap();
        assert_eq!(kz.bytes().unwrap(), &img[..]);
        let hv = FakeHv::new();
        let domid = hv
            .create_domain(&CreateDomain {
                handle: [0; 16],
                max_vcpus: 1,
                max_evtchn_port: 1023,
                max_grant_frames: -1,
                max_maptrack_frames: -1,
                grant_opts: 1,
            })
            .unwrap()
            .domid;
        let pages = (img.len() as u64).div_ceil(PAGE_SIZE);
        let gfns: Vec<u64> = (0..pages).map(|i| 0x40000 + i).collect();
        hv.set_address_size(domid, 64).unwrap();
        hv.max_mem(domid, 64 << 10).unwrap();
        assert_eq!(hv.populate(domid, 0, &gfns).unwrap(), gfns.len());
        let Payload::File(f) = &k.payload else {
            unreachable!()
        };
        write_segment_file(&hv, domid, 0x4000_0000, f, k.len).unwrap();
        let back = hv
            .read(domid, 0x4000_0000, (pages * PAGE_SIZE) as usize)
            .unwrap();
        assert_eq!(&back[..img.len()], &img[..]);
        assert!(back[img.len()..].iter().all(|&b| b == 0));
        assert!(
            open_kernel(d.join("missing").to_str().unwrap())
                .unwrap_err()
                .contains("No such file")
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn placement_as_libxc() {
        // The sample: 256 MiB, 32956352-byte kernel, 2526666-byte initrd, 1543-byte DTB.
        let k = Kernel {
            text_offset: 0,
            len: 32_956_352,
            payload: Payload::Bytes(Vec::new()),
        };
        let l = place(&k, Some(2_526_666), 1543, 256 << 20).unwrap();
        assert_eq!(
            l,
            Layout {
                kernel: 0x4000_0000,
                kernel_end: 0x41f6_dfc0,
                initrd: Some((0x4800_0000, 0x4826_9000)),
                dtb: 0x4826_9000
            }
        );
        // 96 MiB: modules go to the top of bank 0.
        let l = place(&k, Some(2_526_666), 1543, 96 << 20).unwrap();
        assert_eq!(
            l.initrd,
            Some((0x4600_0000 - 0x26a000, 0x4600_0000 - 0x1000))
        );
        assert_eq!(l.dtb, 0x4600_0000 - 0x1000);
        // No initrd: DTB at 128 MiB.
        assert_eq!(place(&k, None, 1543, 256 << 20).unwrap().dtb, 0x4800_0000);
        // Kernel bigger than RAM, or no room for the modules.
        assert!(place(&k, None, 1543, 16 << 20).is_err());
        assert!(place(&k, Some(30 << 20), 1543, 34 << 20).is_err());
        // Modules below a kernel loaded high.
        let hi = Kernel {
            text_offset: 0x100_0000,
            len: 40 << 20,
            payload: Payload::Bytes(Vec::new()),
        };
        let l = place(&hi, Some(4096), 4096, 56 << 20).unwrap();
        assert_eq!(
            (l.initrd, l.dtb),
            (Some((0x40ff_e000, 0x40ff_f000)), 0x40ff_f000)
        );
    }

    #[test]
    fn banks_split() {
        assert_eq!(banks(256 << 20).unwrap(), [256 << 20, 0]);
        assert_eq!(banks(4 << 30).unwrap(), [3 << 30, 1 << 30]);
        assert!(banks(0).is_err());
        assert!(banks(u64::MAX).is_err());
    }

    #[test]
    fn populate_extents_and_fallback() {
        let hv = FakeHv::new();
        let d = hv
            .create_domain(&CreateDomain {
                handle: [0; 16],
                max_vcpus: 1,
                max_evtchn_port: 1023,
                max_grant_frames: -1,
                max_maptrack_frames: -1,
                grant_opts: 1,
            })
            .unwrap()
            .domid;
        hv.max_mem(d, 1 << 30).unwrap();
        hv.set_address_size(d, 64).unwrap();
        // 256 MiB + 12 KiB: 128 superpages in one batch of 128, then 3 small pages.
        let calls = populate_ram(&hv, d, 0x40000, 0x10003).unwrap();
        assert_eq!(calls, vec![(9, 128), (0, 3)]);
        assert_eq!(hv.domain(d).unwrap().info.tot_pages, 0x10003);
        // Without superpages: 2 MiB asked, 0 done, 4 KiB from then on.
        let hv = FakeHv::new();
        hv.0.borrow_mut().no_superpages = true;
        let d = hv
            .create_domain(&CreateDomain {
                handle: [0; 16],
                max_vcpus: 1,
                max_evtchn_port: 1023,
                max_grant_frames: -1,
                max_maptrack_frames: -1,
                grant_opts: 1,
            })
            .unwrap()
            .domid;
        hv.max_mem(d, 1 << 30).unwrap();
        hv.set_address_size(d, 64).unwrap();
        let calls = populate_ram(&hv, d, 0x40000, 1024).unwrap();
        assert_eq!(calls, vec![(9, 0), (0, 256), (0, 256), (0, 256), (0, 256)]);
        // Out of memory at 4 KiB: ENOMEM.
        hv.max_mem(d, 4 * 1024 + 8).unwrap();
        let e = populate_ram(&hv, d, 0x80000, 16).unwrap_err();
        assert!(e.to_string().starts_with("ENOMEM"), "{e}");
    }

    #[test]
    fn builds_the_domain_as_libxl() {
        let hv = FakeHv::new();
        let xs = FakeStore::new();
        xs.0.borrow_mut().console_tty = Some("/dev/pts/3".into());
        let cfg = config("");
        let inp = input(&cfg);
        let mut lines = Vec::new();
        let domid = build(&hv, &xs, &inp, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(domid, 1);
        let d = hv.domain(1).unwrap();
        // Memory, params, vCPU.
        assert_eq!(d.info.tot_pages, 0x10000 + 4);
        assert_eq!(d.max_mem_kb, 262144 + 1024);
        assert_eq!(d.params[&param::STORE_PFN], 0x39001);
        assert_eq!(d.params[&param::CONSOLE_PFN], 0x39000);
        assert_eq!(d.params[&param::STORE_EVTCHN], 1);
        assert_eq!(d.params[&param::CONSOLE_EVTCHN], 2);
        assert_eq!(d.params[&param::CALLBACK_IRQ], 0x0200_0000_0000_021f);
        let ctx = d.ctx.unwrap();
        assert_eq!(
            (ctx.pc, ctx.x0, ctx.cpsr, ctx.sctlr, ctx.online),
            (0x4000_0000, 0x4800_3000, 0x1c5, 0x00c5_0078, true)
        );
        assert_eq!(d.pause_count, 0, "unpaused exactly once");
        assert_eq!(d.grants, vec![(0, 0x39000), (0, 0x39001)]);
        // Guest memory: kernel, initrd (page-padded with zeros), DTB, zeroed magic pages.
        assert_eq!(
            hv.read(1, 0x4000_0000, 3 << 20).unwrap(),
            inp.kernel.bytes().unwrap()
        );
        assert_eq!(hv.read(1, 0x4800_0000, 10_000).unwrap(), vec![0x5a; 10_000]);
        assert_eq!(
            hv.read(1, 0x4800_0000 + 10_000, 12288 - 10_000).unwrap(),
            vec![0; 12288 - 10_000]
        );
        let dtb = hv.read(1, 0x4800_3000, 4096).unwrap();
        let t = fdt::Fdt::new(&dtb).unwrap();
        assert_eq!(t.chosen().bootargs(), Some("console=hvc0"));
        assert_eq!(
            t.find_node("/chosen")
                .unwrap()
                .property("linux,initrd-end")
                .unwrap()
                .as_usize(),
            Some(0x4800_3000)
        );
        for g in 0x39000..0x39004u64 {
            assert_eq!(hv.read(1, g << 12, 4096).unwrap(), vec![0; 4096]);
        }
        assert!(hv.0.borrow().max_mapped <= CHUNK_PAGES);
        assert!(
            d.flushed.contains(&(0x40000, 768)),
            "kernel range flushed: {:?}",
            d.flushed
        );
        // Xenstore, with the sample's permissions.
        let perms = |p: &str| perm_text(&xs.perms(p).unwrap_or_else(|| panic!("no {p}")));
        let v = |p: &str| xs.value(p).unwrap_or_else(|| panic!("no {p}"));
        assert_eq!(v("/local/domain/1/name"), "domu");
        assert_eq!(perms("/local/domain/1"), "n0,r1");
        assert_eq!(
            v("/local/domain/1/vm"),
            "/vm/e68679a4-9132-4e75-b8c9-195ce327113f"
        );
        assert_eq!(perms("/local/domain/1/control/shutdown"), "n1");
        assert_eq!(perms("/local/domain/1/device/suspend/event-channel"), "n1");
        assert_eq!(
            perms("/local/domain/1/control/platform-feature-xs_reset_watches"),
            "n0,r1"
        );
        assert_eq!(v("/local/domain/1/memory/static-max"), "262144");
        assert_eq!(v("/local/domain/1/store/ring-ref"), "233473");
        assert_eq!(v("/local/domain/1/store/port"), "1");
        assert_eq!(v("/local/domain/1/console/ring-ref"), "233472");
        assert_eq!(v("/local/domain/1/console/port"), "2");
        assert_eq!(v("/local/domain/1/console/tty"), "/dev/pts/3");
        assert_eq!(perms("/local/domain/1/console/backend-id"), "n1,r0");
        assert_eq!(v("/local/domain/1/cpu/0/availability"), "online");
        assert_eq!(v("/local/domain/0/backend/console/1/0/protocol"), "vt100");
        assert_eq!(perms("/local/domain/0/backend/console/1/0/state"), "n0,r1");
        assert_eq!(v("/libxl/1/type"), "pvh");
        assert_eq!(perms("/libxl/1/device/console/0/frontend"), "n0");
        assert_eq!(
            v("/vm/e68679a4-9132-4e75-b8c9-195ce327113f/start_time"),
            "1795305720.08"
        );
        assert_eq!(xs.0.borrow().introduced, vec![(1, 0x39001, 1)]);
        // Order: address size before any populate; unpause last.
        let calls = hv.calls();
        let pos = |c: &str| calls.iter().position(|x| x == c).unwrap();
        assert!(pos("set_address_size(1)") < pos("populate(1)"));
        assert_eq!(calls.last().unwrap(), "unpause(1)");
        assert!(
            lines
                .iter()
                .any(|l| l.contains("populating RAM 0x40000000-0x50000000"))
        );
    }

    #[test]
    fn paused_and_conflicting_transactions() {
        let hv = FakeHv::new();
        let xs = FakeStore::new();
        xs.0.borrow_mut().conflicts = 3;
        // A hypervisor without grant-table resources still builds the domain.
        hv.0.borrow_mut().fail = Some(("seed_grants", 95));
        let cfg = config("vcpus=1\nmaxvcpus=2");
        let mut inp = input(&cfg);
        inp.paused = true;
        inp.wait_console = false;
        let d = build(&hv, &xs, &inp, &mut |_| {}).unwrap();
        assert_eq!(hv.domain(d).unwrap().pause_count, 1);
        assert_eq!(
            xs.value("/local/domain/1/cpu/1/availability").as_deref(),
            Some("offline")
        );
        assert_eq!(xs.value("/local/domain/1/name").as_deref(), Some("domu"));
        // No cpus/weight/cap: affinity and scheduler left alone.
        assert!(hv.domain(d).unwrap().affinity.is_empty());
        assert!(!hv.calls().iter().any(|c| c.starts_with("set_sched_credit")));
    }

    #[test]
    fn failure_undoes_everything() {
        for op in [
            "populate",
            "set_vcpu_context",
            "write_pages",
            "alloc_unbound",
            "unpause",
        ] {
            let hv = FakeHv::new();
            let xs = FakeStore::new();
            xs.0.borrow_mut().console_tty = Some("/dev/pts/3".into());
            let before = xs.paths();
            hv.0.borrow_mut().fail = Some((op, crate::sys::ENOMEM));
            let cfg = config("");
            let e = build(&hv, &xs, &input(&cfg), &mut |_| {}).unwrap_err();
            assert!(e.0.contains("ENOMEM"), "{op}: {e}");
            assert!(hv.domain(1).is_none(), "{op}: domain left behind");
            // Shared parents (/vm, /libxl, Dom0's backend/console) may stay, as with libxl.
            let shared = [
                "/vm",
                "/libxl",
                "/local/domain/0/backend",
                "/local/domain/0/backend/console",
            ];
            let after: Vec<_> = xs
                .paths()
                .into_iter()
                .filter(|p| !p.starts_with('@') && !shared.contains(&p.as_str()))
                .collect();
            assert_eq!(after, before, "{op}: nodes left behind");
        }
        let hv = FakeHv::new();
        hv.0.borrow_mut().fail = Some(("populate", crate::sys::ENOMEM));
        let cfg = config("");
        let e = build(&hv, &FakeStore::new(), &input(&cfg), &mut |_| {}).unwrap_err();
        assert_eq!(e.0, "populate RAM: ENOMEM (Out of memory)");
    }

    #[test]
    fn console_timeout_fails_cleanly() {
        let hv = FakeHv::new();
        let xs = FakeStore::new();
        let cfg = config("");
        let mut inp = input(&cfg);
        inp.console_timeout = Duration::from_millis(50);
        let e = build(&hv, &xs, &inp, &mut |_| {}).unwrap_err();
        assert!(
            e.0.starts_with("waiting for xenconsoled: /local/domain/1/console/tty not set"),
            "{e}"
        );
        assert!(hv.domain(1).is_none());
    }

    #[test]
    fn affinity_and_scheduler() {
        let hv = FakeHv::new();
        let cfg = config("vcpus=2\ncpus=['1', '0-1']\nweight=512\ncap=50");
        let mut inp = input(&cfg);
        inp.wait_console = false;
        let d = build(&hv, &FakeStore::new(), &inp, &mut |_| {}).unwrap();
        let dom = hv.domain(d).unwrap();
        assert_eq!(dom.affinity.get(&0), Some(&vec![0b10]));
        assert_eq!(dom.affinity.get(&1), Some(&vec![0b11]));
        assert_eq!(dom.sched, (512, 50));
        // A CPU the host lacks is refused before the domain exists.
        let hv = FakeHv::new();
        let cfg = config("cpus='0-7'");
        let e = build(&hv, &FakeStore::new(), &input(&cfg), &mut |_| {}).unwrap_err();
        assert_eq!(
            e.0,
            "cpus: invalid CPU list \"0-7\": CPU 7 does not exist (the host has 2)"
        );
        assert!(!hv.calls().iter().any(|c| c == "create_domain"));
    }

    #[test]
    fn refuses_before_creating() {
        let hv = FakeHv::new();
        let cfg = config("memory=4096");
        let e = build(&hv, &FakeStore::new(), &input(&cfg), &mut |_| {}).unwrap_err();
        assert_eq!(
            e.0,
            "not enough free memory: the domain needs 4096 MiB, the host has 1504 MiB free"
        );
        assert!(!hv.calls().iter().any(|c| c == "create_domain"));
    }

    /// More vCPUs than host CPUs is fine (the credit scheduler shares the CPUs), as on Xen.
    #[test]
    fn more_vcpus_than_cpus_is_allowed() {
        let hv = FakeHv::new();
        let cfg = config("vcpus=4\ncpus_soft='1'");
        let mut inp = input(&cfg);
        inp.wait_console = false;
        let d = build(&hv, &FakeStore::new(), &inp, &mut |_| {}).unwrap();
        assert!(hv.calls().iter().any(|c| c == &format!("max_vcpus({d})")));
        let dom = hv.domain(d).unwrap();
        assert_eq!(dom.max_vcpus, 4);
        assert_eq!(dom.soft_affinity.get(&3), Some(&vec![0x02]));
        assert!(dom.affinity.is_empty(), "no hard affinity asked");
    }
}
