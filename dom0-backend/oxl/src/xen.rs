//! [`Hv`] over `xenctrl` (privcmd hypercalls, foreign maps) — the real hypervisor in Dom0.
//!
//! Invariants: domids from callers are checked to fit Xen's 16-bit ids before use; foreign
//! maps are dropped (unmapped) before `write_pages` returns, so a builder never leaves a
//! mapping that would keep a destroyed domain alive; every error names the operation.

use std::time::{Duration, Instant};

use xenctrl::Xc;
use xenctrl::xen_abi::domctl as dc;

use crate::sys::{
    CreateDomain, Created, DomInfo, Hv, PhysInfo, SysError, SysResult, VcpuContext, VcpuInfo,
    VersionInfo,
};

pub struct XenHv {
    xc: Xc,
    /// `OXL_TIMING`: time spent in foreign maps by [`Hv::fill_pages`]: (pages, map (mmap +
    /// MMAPBATCH_V2), fill, unmap), and in cacheflush (pages, time); printed to stderr when
    /// dropped.
    timing: Option<std::cell::Cell<(u64, Duration, Duration, Duration)>>,
    flush_timing: std::cell::Cell<(u64, Duration)>,
}

impl Drop for XenHv {
    fn drop(&mut self) {
        if let Some(t) = &self.timing {
            let (n, map, fill, unmap) = t.get();
            if n > 0 {
                eprintln!(
                    "xl: foreign writes: {n} pages: map {:.6} s, fill {:.6} s, unmap {:.6} s",
                    map.as_secs_f64(),
                    fill.as_secs_f64(),
                    unmap.as_secs_f64()
                );
            }
            let (n, t) = self.flush_timing.get();
            if n > 0 {
                eprintln!("xl: cacheflush: {n} pages: {:.6} s", t.as_secs_f64());
            }
        }
    }
}

fn e(err: xenctrl::Error) -> SysError {
    SysError {
        errno: err.errno(),
        msg: err.to_string(),
    }
}

fn id(domid: u32) -> SysResult<u16> {
    u16::try_from(domid)
        .ok()
        .filter(|&d| d < dc::DOMID_FIRST_RESERVED)
        .ok_or_else(|| SysError::msg(format!("domain id {domid} out of range")))
}

fn info(d: &xenctrl::DomainInfo) -> DomInfo {
    DomInfo {
        domid: u32::from(d.domid),
        flags: d.flags,
        tot_pages: d.tot_pages,
        max_pages: d.max_pages,
        outstanding_pages: d.outstanding_pages,
        cpu_time_ns: d.cpu_time,
        nr_online_vcpus: d.nr_online_vcpus,
        max_vcpu_id: d.max_vcpu_id,
        handle: d.handle,
        gpaddr_bits: d.gpaddr_bits,
    }
}

impl XenHv {
    /// Opens `/dev/xen/privcmd` (and the hypercall buffer device).
    pub fn open() -> SysResult<XenHv> {
        let timing = std::env::var_os("OXL_TIMING")
            .is_some_and(|v| v != "0")
            .then(std::cell::Cell::default);
        Xc::open()
            .map(|xc| XenHv {
                xc,
                timing,
                flush_timing: Default::default(),
            })
            .map_err(|err| {
                let mut s = e(err);
                s.msg.push_str(
                    " (is this Dom0 of a Xen-ABI hypervisor, with xenfs/privcmd available?)",
                );
                s
            })
    }
}

impl Hv for XenHv {
    fn physinfo(&self) -> SysResult<PhysInfo> {
        let p = self.xc.physinfo().map_err(e)?;
        Ok(PhysInfo {
            threads_per_core: p.threads_per_core,
            cores_per_socket: p.cores_per_socket,
            nr_cpus: p.nr_cpus,
            max_cpu_id: p.max_cpu_id,
            nr_nodes: p.nr_nodes,
            cpu_khz: p.cpu_khz,
            capabilities: p.capabilities,
            total_pages: p.total_pages,
            free_pages: p.free_pages,
            scrub_pages: p.scrub_pages,
            outstanding_pages: p.outstanding_pages,
            hw_cap: p.hw_cap,
        })
    }

    fn version(&self) -> SysResult<VersionInfo> {
        let (major, minor) = self.xc.xen_version().map_err(e)?;
        let ci = self.xc.xen_compile_info().map_err(e)?;
        let build_id = self
            .xc
            .xen_build_id()
            .map_err(e)?
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(VersionInfo {
            major,
            minor,
            extra: self.xc.xen_extraversion().map_err(e)?,
            capabilities: self.xc.xen_capabilities().map_err(e)?,
            changeset: self.xc.xen_changeset().map_err(e)?,
            commandline: self.xc.xen_commandline().map_err(e)?,
            compiler: ci.compiler,
            compile_by: ci.compile_by,
            compile_domain: ci.compile_domain,
            compile_date: ci.compile_date,
            pagesize: self.xc.xen_pagesize().map_err(e)? as u32,
            virt_start: self.xc.xen_platform_virt_start().map_err(e)?,
            build_id,
        })
    }

    fn sched_id(&self) -> SysResult<u32> {
        self.xc.sched_id().map_err(e)
    }

    fn free_cpus(&self) -> SysResult<u32> {
        Ok(self
            .xc
            .cpupool_freeinfo()
            .map_err(e)?
            .iter()
            .map(|b| b.count_ones())
            .sum())
    }

    fn create_domain(&self, req: &CreateDomain) -> SysResult<Created> {
        let mut c = dc::CreateDomain {
            handle: req.handle,
            flags: dc::XEN_DOMCTL_CDF_HVM | dc::XEN_DOMCTL_CDF_HAP,
            max_vcpus: req.max_vcpus,
            max_evtchn_port: req.max_evtchn_port,
            max_grant_frames: req.max_grant_frames,
            max_maptrack_frames: req.max_maptrack_frames,
            grant_opts: req.grant_opts,
            arch: dc::ArchDomainConfig {
                gic_version: dc::XEN_DOMCTL_CONFIG_GIC_NATIVE,
                tee_type: dc::XEN_DOMCTL_CONFIG_TEE_NONE,
                nr_spis: 0,
                ..Default::default()
            },
            ..Default::default()
        };
        let domid = self
            .xc
            .domain_create_with(dc::DOMID_INVALID, &mut c)
            .map_err(e)?;
        Ok(Created {
            domid: u32::from(domid),
            gic_version: c.arch.gic_version,
            clock_frequency: c.arch.clock_frequency,
        })
    }

    fn domain_info(&self, domid: u32) -> SysResult<Option<DomInfo>> {
        let Ok(d) = id(domid) else { return Ok(None) };
        Ok(self.xc.domain_info(d).map_err(e)?.as_ref().map(info))
    }

    fn list_domains(&self) -> SysResult<Vec<DomInfo>> {
        Ok(self
            .xc
            .domain_getinfolist(0, 1024)
            .map_err(e)?
            .iter()
            .map(info)
            .collect())
    }

    fn max_vcpus(&self, domid: u32, n: u32) -> SysResult<()> {
        self.xc.max_vcpus(id(domid)?, n).map_err(e)
    }

    fn max_mem(&self, domid: u32, kb: u64) -> SysResult<()> {
        self.xc.max_mem(id(domid)?, kb).map_err(e)
    }

    fn alloc_unbound(&self, domid: u32, remote: u32) -> SysResult<u32> {
        let remote = u16::try_from(remote)
            .map_err(|_| SysError::msg(format!("domain id {remote} out of range")))?;
        self.xc.evtchn_alloc_unbound(id(domid)?, remote).map_err(e)
    }

    fn set_paging_mempool_size(&self, domid: u32, bytes: u64) -> SysResult<()> {
        self.xc
            .set_paging_mempool_size(id(domid)?, bytes)
            .map_err(e)
    }

    fn set_address_size(&self, domid: u32, bits: u32) -> SysResult<()> {
        self.xc.set_address_size(id(domid)?, bits).map_err(e)
    }

    fn populate(&self, domid: u32, order: u32, gfns: &[u64]) -> SysResult<usize> {
        self.xc.populate_physmap(id(domid)?, order, gfns).map_err(e)
    }

    fn write_pages(&self, domid: u32, gfn: u64, data: &[u8]) -> SysResult<()> {
        self.fill_pages(domid, gfn, data.len(), &mut |dst: &mut [u8]| {
            dst.copy_from_slice(data);
            Ok(())
        })
    }

    fn fill_pages(
        &self,
        domid: u32,
        gfn: u64,
        len: usize,
        fill: &mut dyn FnMut(&mut [u8]) -> SysResult<()>,
    ) -> SysResult<()> {
        let pages = len.div_ceil(4096).max(1) as u64;
        let gfns: Vec<u64> = (gfn..gfn + pages).collect();
        let t0 = Instant::now();
        let mut map = xenctrl::ForeignMap::map(&self.xc, id(domid)?, &gfns).map_err(e)?;
        let t1 = Instant::now();
        let dst: &mut [u8] = &mut map;
        fill(&mut dst[..len])?;
        dst[len..].fill(0);
        let t2 = Instant::now();
        drop(map);
        if let Some(t) = &self.timing {
            let (n, m, f, u) = t.get();
            t.set((n + pages, m + (t1 - t0), f + (t2 - t1), u + t2.elapsed()));
        }
        Ok(())
    }

    fn cacheflush(&self, domid: u32, gfn: u64, nr: u64) -> SysResult<()> {
        let t0 = Instant::now();
        let r = self.xc.cacheflush(id(domid)?, gfn, nr).map_err(e);
        let (n, t) = self.flush_timing.get();
        self.flush_timing.set((n + nr, t + t0.elapsed()));
        r
    }

    fn set_param(&self, domid: u32, index: u32, value: u64) -> SysResult<()> {
        self.xc.hvm_set_param(id(domid)?, index, value).map_err(e)
    }

    fn set_vcpu_context(&self, domid: u32, vcpu: u32, ctx: &VcpuContext) -> SysResult<()> {
        let mut c = dc::VcpuGuestContext {
            flags: if ctx.online { dc::VGCF_ONLINE } else { 0 },
            sctlr: ctx.sctlr,
            ..Default::default()
        };
        c.user_regs.x[0] = ctx.x0;
        c.user_regs.pc64 = ctx.pc;
        c.user_regs.cpsr = ctx.cpsr;
        self.xc.set_vcpu_context(id(domid)?, vcpu, &c).map_err(e)
    }

    fn seed_grants(&self, domid: u32, backend: u32, frames: &[u64]) -> SysResult<()> {
        const XENMEM_RESOURCE_GRANT_TABLE: u32 = 1;
        const GRANT_SHARED: u32 = 0;
        const GTF_PERMIT_ACCESS: u16 = 1;
        let backend = u16::try_from(backend)
            .map_err(|_| SysError::msg(format!("domain id {backend} out of range")))?;
        let mut map = xenctrl::ForeignMap::map_resource(
            &self.xc,
            id(domid)?,
            XENMEM_RESOURCE_GRANT_TABLE,
            GRANT_SHARED,
            0,
            1,
        )
        .map_err(e)?;
        let page: &mut [u8] = &mut map;
        for (r, &frame) in frames.iter().enumerate() {
            let frame = u32::try_from(frame)
                .map_err(|_| SysError::msg(format!("frame {frame:#x} too large for a v1 grant")))?;
            let entry = page.get_mut(r * 8..r * 8 + 8).ok_or_else(|| {
                SysError::msg(format!("grant ref {r} beyond the first grant frame"))
            })?;
            // grant_entry_v1 {flags u16, domid u16, frame u32}; flags last so the entry is
            // complete before it is valid.
            entry[2..4].copy_from_slice(&backend.to_le_bytes());
            entry[4..8].copy_from_slice(&frame.to_le_bytes());
            entry[0..2].copy_from_slice(&GTF_PERMIT_ACCESS.to_le_bytes());
        }
        Ok(())
    }

    fn set_vcpu_affinity(
        &self,
        domid: u32,
        vcpu: u32,
        hard: Option<&[u8]>,
        soft: Option<&[u8]>,
    ) -> SysResult<()> {
        self.xc
            .set_vcpu_affinity(id(domid)?, vcpu, hard, soft)
            .map_err(e)
    }

    fn sched_credit(&self, domid: u32) -> SysResult<(u16, u16)> {
        let d = id(domid)?;
        let p = self
            .xc
            .sched_credit_get(d, dc::XEN_SCHEDULER_CREDIT)
            .map_err(e)?;
        Ok((p.weight, p.cap))
    }

    fn sched_credit_params(&self) -> SysResult<(u32, u32, u32)> {
        let p = self.xc.sched_credit_params_get(0).map_err(e)?;
        Ok((p.tslice_ms, p.ratelimit_us, p.vcpu_migr_delay_us))
    }

    fn set_sched_credit_params(&self, p: (u32, u32, u32)) -> SysResult<()> {
        let s = xenctrl::xen_abi::sysctl::SysctlCreditSchedule {
            tslice_ms: p.0,
            ratelimit_us: p.1,
            vcpu_migr_delay_us: p.2,
        };
        self.xc.sched_credit_params_set(0, &s).map(drop).map_err(e)
    }

    fn set_sched_credit(&self, domid: u32, weight: Option<u16>, cap: Option<u16>) -> SysResult<()> {
        let d = id(domid)?;
        let sched = self.xc.sched_id().map_err(e)?;
        let mut p = self.xc.sched_credit_get(d, sched).map_err(e)?;
        if let Some(w) = weight {
            p.weight = w;
        }
        if let Some(c) = cap {
            p.cap = c;
        }
        self.xc.sched_credit_set(d, sched, &p).map_err(e)
    }

    fn vcpu_info(&self, domid: u32, vcpu: u32) -> SysResult<VcpuInfo> {
        let d = id(domid)?;
        let v = self.xc.get_vcpu_info(d, vcpu).map_err(e)?;
        let (hard, soft) = self.xc.get_vcpu_affinity(d, vcpu).map_err(e)?;
        Ok(VcpuInfo {
            online: v.online != 0,
            blocked: v.blocked != 0,
            running: v.running != 0,
            cpu_time_ns: v.cpu_time,
            cpu: v.cpu,
            hard,
            soft,
        })
    }

    fn pause(&self, domid: u32) -> SysResult<()> {
        self.xc.pause(id(domid)?).map_err(e)
    }

    fn send_debug_keys(&self, keys: &[u8]) -> SysResult<()> {
        self.xc.send_debug_keys(keys).map_err(e)
    }

    fn read_console(&self, clear: bool) -> SysResult<Vec<u8>> {
        self.xc.read_console_ring(clear).map_err(e)
    }

    fn unpause(&self, domid: u32) -> SysResult<()> {
        self.xc.unpause(id(domid)?).map_err(e)
    }

    fn destroy(&self, domid: u32) -> SysResult<()> {
        self.xc.destroy(id(domid)?).map_err(e)
    }
}
