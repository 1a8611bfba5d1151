//! Host device tree → Dom0's device tree (copy, filter, add), like Xen's
//! `domain_build.c` (`handle_node`, `write_properties`, `make_*_node`).
//!
//! Dom0 sees the real machine minus what the hypervisor owns or emulates:
//! * **dropped** (with their subtrees): `/cpus`, `device_type = "memory"`
//!   nodes, PSCI, PMUs, `arm,armv7-timer-mem`, `arm,cortex-a53-edac`, Xen
//!   boot nodes (`multiboot,module`, `xen,domain`, `xen,xen`, ...), the
//!   paths in [`Dom0DtConfig::hidden_paths`] (the hypervisor's UART), GICv3
//!   ITS nodes (the vGIC has no ITS), and any other device wired to a PPI
//!   (the vGIC cannot route hardware PPIs);
//! * **rewritten**: the GIC (same name and phandle; GICv2 `reg` cut to GICD
//!   and GICC, GICv3 to GICD and the redistributors; no maintenance
//!   interrupt), the timer (`arm,armv8-timer`, S-phys/NS-phys/virt PPIs,
//!   `0xf08`), `/chosen` (Dom0 `bootargs` and initrd; `xen,*`,
//!   `stdout-path`, `linux,uefi-*` dropped), `/aliases` (entries pointing at
//!   dropped nodes removed) and `msi-parent`/`msi-map` properties that
//!   reference a dropped node (Xen leaves those two dangling; Linux copes
//!   either way, we prefer a consistent tree);
//! * **added** at the end of the root: `/hypervisor`, `/psci` (hvc), `/cpus`
//!   (Dom0's vCPUs, host CPU compatible), one `/memory` node with Dom0's
//!   banks.
//!
//! Everything else — properties, order, phandles — is copied verbatim, so
//! every phandle reference into a kept node stays valid. `/memreserve/`
//! entries are not copied (Xen doesn't either).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use oxen_types::IpaRange;
use vm_fdt::FdtWriter;

use crate::boot::{find_gic, find_timer, interrupts_of, is_psci};
use crate::guest::{
    HypervisorNode, finish, strlist, write_chosen_args, write_cpus, write_hypervisor, write_memory,
    write_psci, write_timer,
};
use crate::tree::{DeviceTree, MAX_DEPTH, NodeId, read_u32_list, str_list};
use crate::{DtError, Timer};

/// What Dom0's device tree should say about Dom0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dom0DtConfig {
    /// Dom0's RAM banks (1:1, so IPA values equal host physical addresses).
    pub ram: Vec<IpaRange>,
    /// Number of Dom0 vCPUs (≥ 1).
    pub vcpus: u32,
    /// Dom0's kernel command line.
    pub bootargs: String,
    /// Dom0's initrd, where the hypervisor placed it.
    pub initrd: Option<IpaRange>,
    /// The `/hypervisor` node (grant window, extended regions, evtchn PPI).
    pub hypervisor: HypervisorNode,
    /// Absolute paths of host nodes to hide (e.g. the hypervisor's UART,
    /// `BootInfo::stdout.path`).
    pub hidden_paths: Vec<String>,
    /// Timer INTIDs to advertise; `None` uses the host timer node's.
    pub timer: Option<Timer>,
}

const DROP_COMPAT: &[&str] = &[
    "xen,domain",
    "xen,domain-shared-memory-v1",
    "xen,evtchn-v1",
    "xen,xen",
    "multiboot,module",
    "xen,multiboot-module",
    "arm,cortex-a53-edac",
    "arm,armv7-timer-mem",
    "arm,gic-v3-its",
];

fn is_pmu(dt: &DeviceTree<'_>, id: NodeId) -> bool {
    dt.prop(id, "compatible")
        .is_some_and(|v| str_list(v).any(|s| s.ends_with("-pmu") || s.contains("pmuv3")))
}

struct Ctx<'a, 'b> {
    dt: &'b DeviceTree<'a>,
    cfg: &'b Dom0DtConfig,
    dropped: Vec<bool>,
    dropped_phandles: Vec<u32>,
    gic: NodeId,
    gic_phandle: u32,
    timer_node: Option<NodeId>,
    timer: Timer,
    chosen: Option<NodeId>,
    aliases: Option<NodeId>,
}

/// Build Dom0's DTB from the host DTB (see the module docs).
pub fn build_dom0_dt(host_dtb: &[u8], cfg: &Dom0DtConfig) -> Result<Vec<u8>, DtError> {
    let dt = DeviceTree::parse(host_dtb)?;
    let gic = find_gic(&dt).ok_or(DtError::Missing("interrupt-controller"))?;
    let gic_phandle = dt.phandle_of(gic).ok_or(DtError::Missing("GIC phandle"))?;
    let timer_node = find_timer(&dt);
    let timer = match cfg.timer {
        Some(t) => t,
        None => crate::boot::parse_timer(&dt),
    };
    let cpus = dt.find("/cpus");
    let chosen = dt.find("/chosen");

    let hidden: Vec<NodeId> = cfg.hidden_paths.iter().filter_map(|p| dt.find(p)).collect();
    // Pre-pass in document order (parents precede children).
    let mut dropped = vec![false; dt.len()];
    for id in dt.ids() {
        let n = dt.node(id);
        let parent_dropped = n.parent.is_some_and(|p| dropped[p]);
        let ppi_user = id != gic
            && Some(id) != timer_node
            && dt.interrupt_parent(id) == Some(gic)
            && interrupts_of(&dt, id)
                .is_some_and(|v| v.iter().flatten().any(|i| (16..32).contains(i)));
        dropped[id] = id != dt.root()
            && (parent_dropped
                || Some(id) == cpus
                || dt.prop_str(id, "device_type") == Some("memory")
                || is_psci(&dt, id)
                || is_pmu(&dt, id)
                || DROP_COMPAT.iter().any(|c| dt.is_compatible(id, c))
                || hidden.contains(&id)
                || ppi_user);
    }
    let dropped_phandles = dt
        .ids()
        .filter(|&id| dropped[id])
        .filter_map(|id| dt.phandle_of(id))
        .collect();

    let ctx = Ctx {
        dt: &dt,
        cfg,
        dropped,
        dropped_phandles,
        gic,
        gic_phandle,
        timer_node,
        timer,
        chosen,
        aliases: dt.find("/aliases"),
    };

    let mut w = FdtWriter::new()?;
    ctx.write_node(&mut w, dt.root(), 0)?;
    finish(w)
}

impl Ctx<'_, '_> {
    fn write_node(&self, w: &mut FdtWriter, id: NodeId, depth: usize) -> Result<(), DtError> {
        if depth > MAX_DEPTH {
            return Err(DtError::Structure);
        }
        let dt = self.dt;
        let node = dt.node(id);
        if Some(id) == self.timer_node {
            let freq = dt.prop(id, "clock-frequency");
            return write_timer(w, node.name, &self.timer, self.gic_phandle, freq);
        }
        let handle = w.begin_node(node.name)?;
        if id == self.gic {
            self.write_gic_props(w)?;
        } else if Some(id) == self.chosen {
            self.write_chosen_props(w)?;
        } else {
            self.copy_props(w, id)?;
        }
        for &c in &node.children {
            if !self.dropped[c] {
                self.write_node(w, c, depth + 1)?;
            }
        }
        if id == dt.root() {
            if self.chosen.is_none() {
                let c = w.begin_node("chosen")?;
                self.write_chosen_props(w)?;
                w.end_node(c)?;
            }
            if self.timer_node.is_none() {
                // Xen always gives Dom0 a timer node.
                write_timer(w, "timer", &self.timer, self.gic_phandle, None)?;
            }
            self.write_added(w)?;
        }
        w.end_node(handle)?;
        Ok(())
    }

    /// Whether a `msi-parent`/`msi-map` value references a dropped node.
    fn refs_dropped(&self, name: &str, value: &[u8]) -> bool {
        let Some(cells) = read_u32_list(value) else {
            return false;
        };
        let hit = |ph: &u32| self.dropped_phandles.contains(ph);
        match name {
            "msi-parent" => cells.first().is_some_and(hit),
            // <rid-base phandle msi-base length> entries (#msi-cells = 1).
            "msi-map" => cells.chunks(4).any(|e| e.get(1).is_some_and(hit)),
            _ => false,
        }
    }

    fn copy_props(&self, w: &mut FdtWriter, id: NodeId) -> Result<(), DtError> {
        let dt = self.dt;
        let passthrough = dt.has_prop(id, "xen,passthrough");
        for p in &dt.node(id).props {
            let skip = p.name == "xen,passthrough"
                || (passthrough && p.name == "status")
                || self.refs_dropped(p.name, p.value)
                || (Some(id) == self.aliases && self.alias_dropped(p.value));
            if !skip {
                w.property(p.name, p.value)?;
            }
        }
        if passthrough {
            w.property_string("status", "disabled")?;
        }
        Ok(())
    }

    fn alias_dropped(&self, value: &[u8]) -> bool {
        crate::tree::read_str(value)
            .and_then(|path| self.dt.find(path))
            .is_some_and(|target| self.dropped[target])
    }

    fn write_gic_props(&self, w: &mut FdtWriter) -> Result<(), DtError> {
        let dt = self.dt;
        let g = self.gic;
        let parent = dt.node(g).parent.unwrap_or(0);
        let (ac, sc) = dt.cells_of(parent);
        let entry = (ac + sc) as usize * 4;
        let reg = dt.prop(g, "reg").ok_or(DtError::Missing("GIC reg"))?;
        let v3 = dt.is_compatible(g, "arm,gic-v3");
        let keep = if v3 {
            1 + dt.prop_u32(g, "#redistributor-regions").unwrap_or(1) as usize
        } else {
            2
        };
        let reg = keep
            .checked_mul(entry)
            .and_then(|len| reg.get(..len))
            .ok_or(DtError::BadProperty("GIC reg"))?;
        // `ranges` only matters for kept children (GICv2m frames).
        let kept_children = dt.node(g).children.iter().any(|&c| !self.dropped[c]);
        for p in &dt.node(g).props {
            let copy = matches!(
                p.name,
                "compatible"
                    | "#address-cells"
                    | "#size-cells"
                    | "phandle"
                    | "linux,phandle"
                    | "#redistributor-regions"
                    | "redistributor-stride"
            );
            if copy || (p.name == "ranges" && kept_children) {
                w.property(p.name, p.value)?;
            }
        }
        w.property_u32("#interrupt-cells", 3)?;
        w.property_null("interrupt-controller")?;
        w.property("reg", reg)?;
        Ok(())
    }

    fn write_chosen_props(&self, w: &mut FdtWriter) -> Result<(), DtError> {
        if let Some(c) = self.chosen {
            for p in &self.dt.node(c).props {
                let drop = matches!(
                    p.name,
                    "bootargs"
                        | "linux,initrd-start"
                        | "linux,initrd-end"
                        | "stdout-path"
                        | "linux,stdout-path"
                ) || p.name.starts_with("xen,")
                    || p.name.starts_with("linux,uefi-");
                if !drop {
                    w.property(p.name, p.value)?;
                }
            }
        }
        write_chosen_args(
            w,
            &self.cfg.bootargs,
            self.cfg.initrd.map(|r| (r.start.0, r.size)),
        )
    }

    fn write_added(&self, w: &mut FdtWriter) -> Result<(), DtError> {
        let dt = self.dt;
        // Dom0's new root children use the host root's cells (2/1 on the Pi).
        let cells = dt.cells_of(dt.root());
        write_hypervisor(w, &self.cfg.hypervisor, self.gic_phandle, cells)?;
        write_psci(w)?;
        // Host CPU compatible (first cpu node that has one), else generic.
        let compat = dt
            .find("/cpus")
            .and_then(|c| {
                dt.node(c).children.iter().find_map(|&k| {
                    dt.prop(k, "compatible")
                        .filter(|_| dt.prop_str(k, "device_type") == Some("cpu"))
                })
            })
            .map_or_else(|| strlist(&["arm,armv8"]), <[u8]>::to_vec);
        write_cpus(w, self.cfg.vcpus, &compat)?;
        let ram: Vec<(u64, u64)> = self.cfg.ram.iter().map(|r| (r.start.0, r.size)).collect();
        write_memory(w, &ram, false, cells)
    }
}
