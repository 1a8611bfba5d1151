//! Host-test doubles of [`Hv`] and [`Store`]: an in-memory hypervisor (domains, guest pages,
//! params, vCPU contexts, a call log, injectable failures) and an in-memory xenstore (values,
//! permissions, watches). They model the rules the builder depends on (set_address_size before
//! any page, max_vcpus equal to createdomain's, populate of an already-present GFN fails, 2 MiB
//! extents can be refused) so tests check behaviour, not just call order.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::sys::*;

const EINVAL: i32 = 22;
const HVM: u32 = 1 << 1;

#[derive(Clone, Debug, Default)]
pub struct FakeDomain {
    pub info: DomInfo,
    pub max_vcpus: u32,
    pub max_mem_kb: u64,
    pub address_size: u32,
    /// Populated GFNs; `Some` once written (untouched pages read as 0xAA, like stale RAM).
    pub pages: BTreeMap<u64, Option<Vec<u8>>>,
    pub params: HashMap<u32, u64>,
    pub ctx: Option<VcpuContext>,
    pub ports: Vec<u32>,
    pub pause_count: u32,
    pub flushed: Vec<(u64, u64)>,
    /// Hard affinity per vCPU, when set.
    pub affinity: BTreeMap<u32, Vec<u8>>,
    /// Soft affinity per vCPU, when set.
    pub soft_affinity: BTreeMap<u32, Vec<u8>>,
    /// (weight, cap).
    pub sched: (u16, u16),
    /// Seeded grant entries (ref -> (backend, frame)).
    pub grants: Vec<(u32, u64)>,
}

#[derive(Default)]
pub struct HvState {
    pub next_domid: u32,
    pub domains: BTreeMap<u32, FakeDomain>,
    pub calls: Vec<String>,
    /// Fail the named operation (e.g. "populate") with this errno.
    pub fail: Option<(&'static str, i32)>,
    /// populate_physmap of order 9 returns 0 done (no superpages).
    pub no_superpages: bool,
    pub phys: PhysInfo,
    /// Largest number of pages one write_pages mapped.
    pub max_mapped: u64,
    /// Pool-0's credit parameters (tslice ms, ratelimit µs, migration delay µs).
    pub sched_params: (u32, u32, u32),
    /// Debug keys sent, in order.
    pub debug_keys: Vec<u8>,
    /// The hypervisor's console ring (what `read_console` returns).
    pub console: Vec<u8>,
}

pub struct FakeHv(pub RefCell<HvState>);

impl FakeHv {
    pub fn new() -> FakeHv {
        let mut s = HvState {
            next_domid: 1,
            phys: PhysInfo {
                threads_per_core: 1,
                cores_per_socket: 1,
                nr_cpus: 2,
                max_cpu_id: 1,
                nr_nodes: 1,
                cpu_khz: 62500,
                capabilities: physcap::HVM | physcap::HAP | physcap::VPMU | physcap::GNTTAB_V1,
                total_pages: 2048 * 256,
                free_pages: 1504 * 256,
                ..Default::default()
            },
            sched_params: (30, 1000, 0),
            ..Default::default()
        };
        let d0 = FakeDomain {
            info: DomInfo {
                domid: 0,
                flags: 0xffff_0000 | dominf::RUNNING | HVM | (1 << 8),
                tot_pages: 131072,
                max_pages: u64::MAX,
                cpu_time_ns: 28_000_000_000,
                nr_online_vcpus: 2,
                max_vcpu_id: 1,
                gpaddr_bits: 40,
                ..Default::default()
            },
            ..Default::default()
        };
        s.domains.insert(0, d0);
        FakeHv(RefCell::new(s))
    }

    fn enter(&self, op: &'static str, domid: Option<u32>) -> SysResult<()> {
        let mut s = self.0.borrow_mut();
        s.calls.push(match domid {
            Some(d) => format!("{op}({d})"),
            None => op.to_string(),
        });
        if let Some((f, e)) = s.fail
            && f == op
        {
            return Err(SysError::errno(e));
        }
        if let Some(d) = domid
            && !s.domains.contains_key(&d)
        {
            return Err(SysError::errno(ESRCH));
        }
        Ok(())
    }

    fn with<T>(&self, domid: u32, f: impl FnOnce(&mut FakeDomain) -> SysResult<T>) -> SysResult<T> {
        let mut s = self.0.borrow_mut();
        let d = s.domains.get_mut(&domid).ok_or(SysError::errno(ESRCH))?;
        f(d)
    }

    pub fn domain(&self, domid: u32) -> Option<FakeDomain> {
        self.0.borrow().domains.get(&domid).cloned()
    }

    /// Bytes of guest memory at `gfn`.. (absent pages read as `None`).
    pub fn read(&self, domid: u32, addr: u64, len: usize) -> Option<Vec<u8>> {
        let s = self.0.borrow();
        let d = s.domains.get(&domid)?;
        let mut out = Vec::with_capacity(len);
        let mut a = addr;
        while out.len() < len {
            let page = match d.pages.get(&(a >> 12))? {
                Some(p) => p.clone(),
                None => vec![0xAA; 4096],
            };
            let off = (a & 0xfff) as usize;
            let take = (4096 - off).min(len - out.len());
            out.extend_from_slice(&page[off..off + take]);
            a += take as u64;
        }
        Some(out)
    }

    pub fn calls(&self) -> Vec<String> {
        self.0.borrow().calls.clone()
    }
}

impl Hv for FakeHv {
    fn physinfo(&self) -> SysResult<PhysInfo> {
        self.enter("physinfo", None)?;
        Ok(self.0.borrow().phys.clone())
    }
    fn version(&self) -> SysResult<VersionInfo> {
        self.enter("version", None)?;
        Ok(VersionInfo {
            major: 4,
            minor: 17,
            extra: ".7".into(),
            capabilities: "xen-3.0-aarch64 xen-3.0-armv7l ".into(),
            pagesize: 4096,
            virt_start: 0x200000,
            ..Default::default()
        })
    }
    fn sched_id(&self) -> SysResult<u32> {
        self.enter("sched_id", None)?;
        Ok(6)
    }
    fn free_cpus(&self) -> SysResult<u32> {
        self.enter("free_cpus", None)?;
        Ok(0)
    }
    fn create_domain(&self, req: &CreateDomain) -> SysResult<Created> {
        self.enter("create_domain", None)?;
        let mut s = self.0.borrow_mut();
        let domid = s.next_domid;
        s.next_domid += 1;
        let d = FakeDomain {
            info: DomInfo {
                domid,
                flags: 0xffff_0000 | dominf::PAUSED | HVM | (1 << 8),
                handle: req.handle,
                max_vcpu_id: u32::MAX,
                gpaddr_bits: 40,
                ..Default::default()
            },
            max_vcpus: req.max_vcpus,
            pause_count: 1,
            ..Default::default()
        };
        s.domains.insert(domid, d);
        Ok(Created {
            domid,
            gic_version: 2,
            clock_frequency: 0,
        })
    }
    fn domain_info(&self, domid: u32) -> SysResult<Option<DomInfo>> {
        self.enter("domain_info", None)?;
        Ok(self.0.borrow().domains.get(&domid).map(|d| d.info.clone()))
    }
    fn list_domains(&self) -> SysResult<Vec<DomInfo>> {
        self.enter("list_domains", None)?;
        Ok(self
            .0
            .borrow()
            .domains
            .values()
            .map(|d| d.info.clone())
            .collect())
    }
    fn max_vcpus(&self, domid: u32, n: u32) -> SysResult<()> {
        self.enter("max_vcpus", Some(domid))?;
        self.with(domid, |d| {
            if n != d.max_vcpus {
                return Err(SysError::errno(EINVAL));
            }
            d.info.max_vcpu_id = n - 1;
            Ok(())
        })
    }
    fn max_mem(&self, domid: u32, kb: u64) -> SysResult<()> {
        self.enter("max_mem", Some(domid))?;
        self.with(domid, |d| {
            d.max_mem_kb = kb;
            d.info.max_pages = kb / 4;
            Ok(())
        })
    }
    fn alloc_unbound(&self, domid: u32, _remote: u32) -> SysResult<u32> {
        self.enter("alloc_unbound", Some(domid))?;
        self.with(domid, |d| {
            let p = d.ports.len() as u32 + 1;
            d.ports.push(p);
            Ok(p)
        })
    }
    fn set_paging_mempool_size(&self, domid: u32, _bytes: u64) -> SysResult<()> {
        self.enter("set_paging_mempool_size", Some(domid))
    }
    fn set_address_size(&self, domid: u32, bits: u32) -> SysResult<()> {
        self.enter("set_address_size", Some(domid))?;
        self.with(domid, |d| {
            if !d.pages.is_empty() {
                return Err(SysError::errno(16));
            }
            d.address_size = bits;
            Ok(())
        })
    }
    fn populate(&self, domid: u32, order: u32, gfns: &[u64]) -> SysResult<usize> {
        self.enter("populate", Some(domid))?;
        let no_super = self.0.borrow().no_superpages;
        if order == 9 && no_super {
            return Ok(0);
        }
        self.with(domid, |d| {
            if d.address_size != 64 {
                return Err(SysError::errno(EINVAL));
            }
            for (i, g) in gfns.iter().enumerate() {
                let n = 1u64 << order;
                if (d.info.tot_pages + n) * 4 > d.max_mem_kb {
                    return Ok(i);
                }
                for p in *g..*g + n {
                    if d.pages.insert(p, None).is_some() {
                        return Err(SysError::errno(EINVAL));
                    }
                }
                d.info.tot_pages += n;
            }
            Ok(gfns.len())
        })
    }
    fn write_pages(&self, domid: u32, gfn: u64, data: &[u8]) -> SysResult<()> {
        self.enter("write_pages", Some(domid))?;
        let pages = (data.len() as u64).div_ceil(4096);
        {
            let mut s = self.0.borrow_mut();
            s.max_mapped = s.max_mapped.max(pages);
        }
        self.with(domid, |d| {
            for i in 0..pages {
                if !d.pages.contains_key(&(gfn + i)) {
                    return Err(SysError::msg(format!("mapping GFN {:#x}: ENOENT", gfn + i)));
                }
            }
            for i in 0..pages {
                let mut page = vec![0u8; 4096];
                let from = (i * 4096) as usize;
                let to = (from + 4096).min(data.len());
                page[..to - from].copy_from_slice(&data[from..to]);
                d.pages.insert(gfn + i, Some(page));
            }
            Ok(())
        })
    }
    fn cacheflush(&self, domid: u32, gfn: u64, nr: u64) -> SysResult<()> {
        self.enter("cacheflush", Some(domid))?;
        self.with(domid, |d| {
            d.flushed.push((gfn, nr));
            Ok(())
        })
    }
    fn set_param(&self, domid: u32, index: u32, value: u64) -> SysResult<()> {
        self.enter("set_param", Some(domid))?;
        self.with(domid, |d| {
            d.params.insert(index, value);
            Ok(())
        })
    }
    fn set_vcpu_context(&self, domid: u32, vcpu: u32, ctx: &VcpuContext) -> SysResult<()> {
        self.enter("set_vcpu_context", Some(domid))?;
        self.with(domid, |d| {
            if vcpu >= d.max_vcpus || d.info.max_vcpu_id == u32::MAX {
                return Err(SysError::errno(EINVAL));
            }
            d.ctx = Some(*ctx);
            d.info.nr_online_vcpus = 1;
            Ok(())
        })
    }
    fn seed_grants(&self, domid: u32, backend: u32, frames: &[u64]) -> SysResult<()> {
        self.enter("seed_grants", Some(domid))?;
        self.with(domid, |d| {
            d.grants = frames.iter().map(|&f| (backend, f)).collect();
            Ok(())
        })
    }
    fn set_vcpu_affinity(
        &self,
        domid: u32,
        vcpu: u32,
        hard: Option<&[u8]>,
        soft: Option<&[u8]>,
    ) -> SysResult<()> {
        self.enter("set_vcpu_affinity", Some(domid))?;
        self.with(domid, |d| {
            if vcpu >= d.max_vcpus || (hard.is_none() && soft.is_none()) {
                return Err(SysError::errno(EINVAL));
            }
            // Xen: a hard map without an online CPU (the fake host has 8) is -EINVAL.
            if hard.is_some_and(|h| h.first().copied().unwrap_or(0) == 0) {
                return Err(SysError::errno(EINVAL));
            }
            if let Some(h) = hard {
                d.affinity.insert(vcpu, h.to_vec());
            }
            if let Some(s) = soft {
                d.soft_affinity.insert(vcpu, s.to_vec());
            }
            Ok(())
        })
    }
    fn sched_credit(&self, domid: u32) -> SysResult<(u16, u16)> {
        self.enter("sched_credit", Some(domid))?;
        self.with(domid, |d| {
            Ok(if d.sched == (0, 0) { (256, 0) } else { d.sched })
        })
    }
    fn sched_credit_params(&self) -> SysResult<(u32, u32, u32)> {
        self.enter("sched_credit_params", None)?;
        Ok(self.0.borrow().sched_params)
    }
    fn set_sched_credit_params(&self, p: (u32, u32, u32)) -> SysResult<()> {
        self.enter("set_sched_credit_params", None)?;
        if !(1..=1000).contains(&p.0)
            || (p.1 != 0 && !(100..=500_000).contains(&p.1))
            || u64::from(p.1) > u64::from(p.0) * 1000
        {
            return Err(SysError::errno(EINVAL));
        }
        self.0.borrow_mut().sched_params = p;
        Ok(())
    }
    fn set_sched_credit(&self, domid: u32, weight: Option<u16>, cap: Option<u16>) -> SysResult<()> {
        self.enter("set_sched_credit", Some(domid))?;
        self.with(domid, |d| {
            if d.sched == (0, 0) {
                d.sched = (256, 0);
            }
            d.sched = (weight.unwrap_or(d.sched.0), cap.unwrap_or(d.sched.1));
            Ok(())
        })
    }
    fn vcpu_info(&self, domid: u32, vcpu: u32) -> SysResult<VcpuInfo> {
        self.enter("vcpu_info", Some(domid))?;
        self.with(domid, |d| {
            if vcpu > d.info.max_vcpu_id {
                return Err(SysError::errno(EINVAL));
            }
            Ok(VcpuInfo {
                online: vcpu < d.info.nr_online_vcpus,
                blocked: true,
                running: false,
                cpu_time_ns: 5_300_000_000,
                cpu: vcpu,
                hard: d.affinity.get(&vcpu).cloned().unwrap_or(vec![0xff]),
                soft: d.soft_affinity.get(&vcpu).cloned().unwrap_or(vec![0xff]),
            })
        })
    }
    fn pause(&self, domid: u32) -> SysResult<()> {
        self.enter("pause", Some(domid))?;
        self.with(domid, |d| {
            d.pause_count += 1;
            d.info.flags |= dominf::PAUSED;
            Ok(())
        })
    }
    fn send_debug_keys(&self, keys: &[u8]) -> SysResult<()> {
        self.enter("send_debug_keys", None)?;
        // oxen's limit per call.
        if keys.len() > 256 {
            return Err(SysError::errno(EINVAL));
        }
        self.0.borrow_mut().debug_keys.extend_from_slice(keys);
        Ok(())
    }
    fn read_console(&self, clear: bool) -> SysResult<Vec<u8>> {
        self.enter("read_console", None)?;
        let mut s = self.0.borrow_mut();
        let text = s.console.clone();
        if clear {
            s.console.clear();
        }
        Ok(text)
    }
    fn unpause(&self, domid: u32) -> SysResult<()> {
        self.enter("unpause", Some(domid))?;
        self.with(domid, |d| {
            if d.pause_count == 0 {
                return Err(SysError::errno(EINVAL));
            }
            d.pause_count -= 1;
            if d.pause_count == 0 {
                d.info.flags &= !dominf::PAUSED;
            }
            Ok(())
        })
    }
    fn destroy(&self, domid: u32) -> SysResult<()> {
        self.enter("destroy", Some(domid))?;
        self.0.borrow_mut().domains.remove(&domid);
        Ok(())
    }
}

#[derive(Default)]
pub struct StoreState {
    pub nodes: BTreeMap<String, (String, Vec<Perm>)>,
    pub watches: Vec<(String, String)>,
    pub events: VecDeque<(String, String)>,
    pub introduced: Vec<(u32, u64, u32)>,
    /// Plays xenconsoled: answers a `console/tty` watch by writing this tty.
    pub console_tty: Option<String>,
    /// Plays blkback/netback: a backend `state` written as 1 becomes 2 (InitWait), 5 becomes
    /// 6 (Closed).
    pub play_backends: bool,
    /// Conflict the next N transaction commits.
    pub conflicts: u32,
    pub next_tx: u32,
    /// Writes staged per open transaction.
    pub tx_log: HashMap<u32, Vec<Op>>,
}

#[derive(Clone, Debug)]
pub enum Op {
    Write(String, String),
    Perms(String, Vec<Perm>),
    Rm(String),
}

pub struct FakeStore(pub RefCell<StoreState>);

impl FakeStore {
    pub fn new() -> FakeStore {
        let s = FakeStore(RefCell::new(StoreState::default()));
        s.apply(Op::Write("/local/domain/0/name".into(), "Domain-0".into()));
        s.apply(Op::Write("/local/domain/0/domid".into(), "0".into()));
        s
    }

    fn parent_perms(nodes: &BTreeMap<String, (String, Vec<Perm>)>, path: &str) -> Vec<Perm> {
        let mut p = path;
        while let Some(i) = p.rfind('/') {
            p = &p[..i];
            if let Some((_, perms)) = nodes.get(p) {
                return perms.clone();
            }
        }
        vec![n(0)]
    }

    fn apply(&self, op: Op) {
        let mut s = self.0.borrow_mut();
        let changed = match op {
            Op::Write(p, v) => {
                // Create missing ancestors with inherited permissions.
                let mut anc = Vec::new();
                let mut q = p.as_str();
                while let Some(i) = q.rfind('/') {
                    q = &q[..i];
                    if q.is_empty() || s.nodes.contains_key(q) {
                        break;
                    }
                    anc.push(q.to_string());
                }
                for a in anc.into_iter().rev() {
                    let perms = Self::parent_perms(&s.nodes, &a);
                    s.nodes.insert(a, (String::new(), perms));
                }
                let perms = s
                    .nodes
                    .get(&p)
                    .map(|n| n.1.clone())
                    .unwrap_or_else(|| Self::parent_perms(&s.nodes, &p));
                let v = if s.play_backends
                    && p.starts_with("/local/domain/0/backend/")
                    && p.ends_with("/state")
                {
                    match v.as_str() {
                        "1" => "2".to_string(),
                        "5" => "6".to_string(),
                        _ => v,
                    }
                } else {
                    v
                };
                s.nodes.insert(p.clone(), (v, perms));
                p
            }
            Op::Perms(p, perms) => {
                if let Some(node) = s.nodes.get_mut(&p) {
                    node.1 = perms;
                }
                p
            }
            Op::Rm(p) => {
                let prefix = format!("{p}/");
                s.nodes.retain(|k, _| k != &p && !k.starts_with(&prefix));
                p
            }
        };
        let fire: Vec<(String, String)> = s
            .watches
            .iter()
            .filter(|(w, _)| {
                changed == *w
                    || changed.starts_with(&format!("{w}/"))
                    || w.starts_with(&format!("{changed}/"))
            })
            .map(|(_, t)| (changed.clone(), t.clone()))
            .collect();
        s.events.extend(fire);
    }

    pub fn value(&self, path: &str) -> Option<String> {
        self.0.borrow().nodes.get(path).map(|n| n.0.clone())
    }

    pub fn perms(&self, path: &str) -> Option<Vec<Perm>> {
        self.0.borrow().nodes.get(path).map(|n| n.1.clone())
    }

    pub fn paths(&self) -> Vec<String> {
        self.0.borrow().nodes.keys().cloned().collect()
    }

    fn stage(&self, tx: u32, op: Op) -> SysResult<()> {
        if tx == 0 {
            self.apply(op);
            return Ok(());
        }
        let mut s = self.0.borrow_mut();
        s.tx_log
            .get_mut(&tx)
            .ok_or(SysError::errno(ENOENT))?
            .push(op);
        Ok(())
    }
}

impl Store for FakeStore {
    fn read(&self, tx: u32, path: &str) -> SysResult<Option<String>> {
        // Reads see the transaction's own writes.
        if tx != 0 {
            let s = self.0.borrow();
            if let Some(ops) = s.tx_log.get(&tx) {
                for op in ops.iter().rev() {
                    match op {
                        Op::Write(p, v) if p == path => return Ok(Some(v.clone())),
                        Op::Rm(p) if path == p || path.starts_with(&format!("{p}/")) => {
                            return Ok(None);
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(self.value(path))
    }
    fn write(&self, tx: u32, path: &str, value: &str) -> SysResult<()> {
        self.stage(tx, Op::Write(path.into(), value.into()))
    }
    fn rm(&self, tx: u32, path: &str) -> SysResult<()> {
        self.stage(tx, Op::Rm(path.into()))
    }
    fn directory(&self, _tx: u32, path: &str) -> SysResult<Vec<String>> {
        let prefix = format!("{path}/");
        let s = self.0.borrow();
        let mut out: Vec<String> = s
            .nodes
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_string)
            .collect();
        out.dedup();
        Ok(out)
    }
    fn set_perms(&self, tx: u32, path: &str, perms: &[Perm]) -> SysResult<()> {
        self.stage(tx, Op::Perms(path.into(), perms.to_vec()))
    }
    fn transaction_start(&self) -> SysResult<u32> {
        let mut s = self.0.borrow_mut();
        s.next_tx += 1;
        let tx = s.next_tx;
        s.tx_log.insert(tx, Vec::new());
        Ok(tx)
    }
    fn transaction_end(&self, tx: u32, commit: bool) -> SysResult<bool> {
        let ops = {
            let mut s = self.0.borrow_mut();
            let ops = s.tx_log.remove(&tx).ok_or(SysError::errno(ENOENT))?;
            if commit && s.conflicts > 0 {
                s.conflicts -= 1;
                return Ok(false);
            }
            ops
        };
        if commit {
            for op in ops {
                self.apply(op);
            }
        }
        Ok(true)
    }
    fn introduce(&self, domid: u32, gfn: u64, port: u32) -> SysResult<()> {
        self.0.borrow_mut().introduced.push((domid, gfn, port));
        self.apply(Op::Write("@introduceDomain".into(), String::new()));
        Ok(())
    }
    fn watch(&self, path: &str, token: &str) -> SysResult<()> {
        let mut s = self.0.borrow_mut();
        s.watches.push((path.into(), token.into()));
        s.events.push_back((path.into(), token.into()));
        Ok(())
    }
    fn unwatch(&self, path: &str, token: &str) -> SysResult<()> {
        self.0
            .borrow_mut()
            .watches
            .retain(|(p, t)| !(p == path && t == token));
        Ok(())
    }
    fn wait_watch(&self, _timeout: Option<Duration>) -> SysResult<Option<(String, String)>> {
        let ev = self.0.borrow_mut().events.pop_front();
        if let Some((p, _)) = &ev
            && p.ends_with("/console/tty")
        {
            let tty = self.0.borrow().console_tty.clone();
            if let Some(t) = tty
                && self.value(p).as_deref() == Some("")
            {
                self.apply(Op::Write(p.clone(), t));
            }
        }
        Ok(ev)
    }
}
