//! Host device tree → [`BootInfo`]: what the hypervisor needs at boot.
//!
//! Rules follow Xen on Arm (`docs/misc/arm/device-tree/booting.txt` and
//! `bootinfo-fdt.c`):
//! * modules are nodes under `/chosen` (at most two levels down) compatible
//!   with `multiboot,module` (or legacy `xen,multiboot-module`); their kind
//!   comes from `multiboot,kernel`/`multiboot,ramdisk` (legacy
//!   `xen,linux-zimage`/`xen,linux-initrd`), and unspecific ones are guessed:
//!   first kernel, then ramdisk, per containing node;
//! * a module's `reg` uses the *inherited* `#address-cells/#size-cells`
//!   (nearest ancestor that has them, 2/2 if none) — and, since QEMU's
//!   guest-loader always writes 2+2 cells, a 16-byte `reg` that does not fit
//!   the inherited cells is read as 2+2;
//! * command lines: `xen,xen-bootargs` is the hypervisor's; otherwise
//!   `/chosen/bootargs` is the hypervisor's when the Dom0 kernel module has
//!   its own `bootargs` or `xen,dom0-bootargs` exists, else it is Dom0's.
//!   Dom0's: `xen,dom0-bootargs`, else the module's `bootargs`, else
//!   `/chosen/bootargs` when it is not the hypervisor's.
//!
//! Optional hardware descriptions (stdout UART, PSCI) degrade to `None` when
//! absent or unusable; a missing GIC or `/cpus`, or a malformed `reg` on the
//! nodes we need, is an error.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use oxen_types::{PhysAddr, PhysRange};

use crate::DtError;
use crate::tree::{DeviceTree, NodeId, decode_pairs, read_str, read_u32_list, str_list};

/// Everything oxen learns from the host device tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// RAM banks: `reg` of every enabled `device_type = "memory"` node.
    pub ram: Vec<PhysRange>,
    /// `/memreserve/` entries and `/reserved-memory` children with `reg`.
    pub reserved: Vec<PhysRange>,
    /// The hypervisor's command line (empty if it has none).
    pub cmdline: String,
    /// Dom0: the first kernel module directly under `/chosen`.
    pub dom0: Option<DomainSpec>,
    /// Boot-time domains: `/chosen` children compatible `xen,domain`.
    pub domus: Vec<DomainSpec>,
    /// `reg` of every module (kernels, ramdisks, policies...), to keep them
    /// out of the allocator.
    pub modules: Vec<PhysRange>,
    /// The console UART: the one `dtuart=` names on the hypervisor command
    /// line (Xen's option), else `/chosen/stdout-path`'s, if any.
    pub stdout: Option<Uart>,
    /// The interrupt controller.
    pub gic: Gic,
    /// Architected timer interrupts.
    pub timer: Timer,
    /// Physical CPUs (enabled `/cpus/cpu@*` nodes), in DT order.
    pub cpus: Vec<Cpu>,
    /// PSCI conduit from `/psci` (`arm,psci*`), if present.
    pub psci: Option<Conduit>,
    /// Root `model`, else first root `compatible`, else empty.
    pub model: String,
}

/// A domain to build at boot (Dom0 or a dom0less DomU).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSpec {
    /// Node name (`"dom0"` for Dom0).
    pub name: String,
    /// `memory` property in KiB (DomUs only; Dom0's comes from `dom0_mem=`).
    pub memory_kib: Option<u64>,
    /// `cpus` property (DomUs only).
    pub vcpus: Option<u32>,
    /// The kernel module.
    pub kernel: PhysRange,
    /// The ramdisk module, if any.
    pub initrd: Option<PhysRange>,
    /// The kernel command line.
    pub bootargs: Option<String>,
    /// Whether the domain asked for an emulated PL011 (`vpl011`).
    pub vpl011: bool,
    /// Credit scheduler weight (`oxen,weight`; Xen 4.17's dom0less binding
    /// has none).
    pub weight: Option<u32>,
    /// Credit scheduler cap in percent of one CPU (`oxen,cap`).
    pub cap: Option<u32>,
    /// Hard affinity of every vCPU, bit n = physical CPU n
    /// (`oxen,cpus-hard`, a u32 mask).
    pub hard_affinity: Option<u32>,
}

/// A UART (the hypervisor's console).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uart {
    /// MMIO base (translated through bus `ranges`).
    pub base: PhysAddr,
    /// MMIO size.
    pub size: u64,
    /// First `compatible` string (`"arm,pl011"`, ...).
    pub compatible: String,
    /// Full node path (`"/pl011@9000000"`), used to hide it from Dom0.
    pub path: String,
}

/// The UART kinds the hypervisor's console drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// Arm PL011 (`arm,pl011`) or the SBSA subset of it (`arm,sbsa-uart`).
    Pl011,
    /// The BCM2835/BCM2711 AUX "mini UART" (`brcm,bcm2835-aux-uart`), the
    /// Raspberry Pi's console on GPIO 14/15 by default: 8250-like, 32-bit
    /// registers.
    Bcm2835Aux,
}

impl UartKind {
    /// The kind a DT `compatible` string names, if the console drives it.
    pub fn from_compatible(c: &str) -> Option<Self> {
        match c {
            "arm,pl011" | "arm,sbsa-uart" => Some(Self::Pl011),
            "brcm,bcm2835-aux-uart" => Some(Self::Bcm2835Aux),
            _ => None,
        }
    }
}

impl Uart {
    /// What driver this UART needs (from its first `compatible`).
    pub fn kind(&self) -> Option<UartKind> {
        UartKind::from_compatible(&self.compatible)
    }
}

/// The host interrupt controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gic {
    /// GICv2 (`arm,gic-400`, `arm,cortex-a15-gic`, ...).
    V2 {
        /// Distributor.
        gicd: PhysRange,
        /// CPU interface.
        gicc: PhysRange,
        /// Virtual interface control (hypervisor) frame.
        gich: Option<PhysRange>,
        /// Virtual CPU interface frame.
        gicv: Option<PhysRange>,
        /// Maintenance interrupt as an INTID.
        maintenance_irq: Option<u32>,
    },
    /// GICv3 (`arm,gic-v3`).
    V3 {
        /// Distributor.
        gicd: PhysRange,
        /// Redistributor regions (`#redistributor-regions` of them).
        gicr: Vec<PhysRange>,
        /// Maintenance interrupt as an INTID.
        maintenance_irq: Option<u32>,
    },
}

/// Architected timer interrupts as INTIDs (PPI number + 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timer {
    /// Secure physical timer.
    pub sec_phys: u32,
    /// Non-secure physical timer.
    pub phys: u32,
    /// Virtual timer.
    pub virt: u32,
    /// Hypervisor (EL2) physical timer.
    pub hyp: u32,
}

impl Default for Timer {
    /// The SBSA-recommended INTIDs (what QEMU virt uses).
    fn default() -> Self {
        Self {
            sec_phys: 29,
            phys: 30,
            virt: 27,
            hyp: 26,
        }
    }
}

/// A physical CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// `reg`: the MPIDR affinity fields.
    pub mpidr: u64,
    /// How to start it.
    pub enable: EnableMethod,
}

/// How a secondary CPU is started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI `CPU_ON`.
    Psci,
    /// Spin table: write the entry point to `release_addr`, then `sev`.
    SpinTable {
        /// `cpu-release-addr`.
        release_addr: PhysAddr,
    },
    /// Anything else (or absent).
    Other,
}

/// SMCCC conduit for PSCI calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    /// `smc #0`.
    Smc,
    /// `hvc #0`.
    Hvc,
}

fn range(r: (u64, u64)) -> PhysRange {
    PhysRange::new(PhysAddr(r.0), r.1)
}

/// Parse the host DTB into [`BootInfo`].
pub fn parse_boot_info(dtb: &[u8]) -> Result<BootInfo, DtError> {
    let dt = DeviceTree::parse(dtb)?;
    let root = dt.root();

    let ram = parse_memory(&dt)?;
    let reserved = parse_reserved(&dt)?;
    let chosen = dt.find("/chosen");
    let mods = match chosen {
        Some(c) => parse_modules(&dt, c)?,
        None => Modules::default(),
    };
    let stdout = chosen.and_then(|c| parse_stdout(&dt, c, &mods.cmdline));
    let gic_node = find_gic(&dt).ok_or(DtError::Missing("interrupt-controller"))?;
    let gic = parse_gic(&dt, gic_node)?;
    let timer = parse_timer(&dt);
    let cpus = parse_cpus(&dt)?;
    let psci = parse_psci(&dt);
    let model = dt
        .prop_str(root, "model")
        .or_else(|| dt.prop_str(root, "compatible"))
        .unwrap_or("")
        .to_string();

    Ok(BootInfo {
        ram,
        reserved,
        cmdline: mods.cmdline,
        dom0: mods.dom0,
        domus: mods.domus,
        modules: mods.all,
        stdout,
        gic,
        timer,
        cpus,
        psci,
        model,
    })
}

fn parse_memory(dt: &DeviceTree<'_>) -> Result<Vec<PhysRange>, DtError> {
    let root = dt.root();
    let (ac, sc) = dt.cells_of(root);
    let mut ram = Vec::new();
    for &id in &dt.node(root).children {
        if dt.prop_str(id, "device_type") != Some("memory") || !dt.is_enabled(id) {
            continue;
        }
        for r in dt.reg_with(id, ac, sc)? {
            if r.1 != 0 {
                ram.push(range(r));
            }
        }
    }
    Ok(ram)
}

fn parse_reserved(dt: &DeviceTree<'_>) -> Result<Vec<PhysRange>, DtError> {
    let mut out: Vec<PhysRange> = dt
        .mem_reserve
        .iter()
        .filter(|r| r.1 != 0)
        .map(|&r| range(r))
        .collect();
    if let Some(rm) = dt.find("/reserved-memory") {
        let (ac, sc) = dt.cells_of(rm);
        for &c in &dt.node(rm).children {
            if !dt.is_enabled(c) || !dt.has_prop(c, "reg") {
                continue;
            }
            for r in dt.reg_with(c, ac, sc)? {
                if r.1 != 0 {
                    out.push(range(r));
                }
            }
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ModKind {
    Kernel,
    Ramdisk,
    Other,
    Unknown,
}

fn is_module(dt: &DeviceTree<'_>, id: NodeId) -> bool {
    dt.is_compatible(id, "multiboot,module") || dt.is_compatible(id, "xen,multiboot-module")
}

fn module_kind(dt: &DeviceTree<'_>, id: NodeId) -> ModKind {
    if dt.is_compatible(id, "multiboot,kernel") || dt.is_compatible(id, "xen,linux-zimage") {
        ModKind::Kernel
    } else if dt.is_compatible(id, "multiboot,ramdisk") || dt.is_compatible(id, "xen,linux-initrd")
    {
        ModKind::Ramdisk
    } else if dt.is_compatible(id, "xen,xsm-policy")
        || dt.is_compatible(id, "multiboot,device-tree")
    {
        ModKind::Other
    } else {
        ModKind::Unknown
    }
}

/// A module's `reg` (exactly one range), see the module docs for the cells.
fn module_reg(dt: &DeviceTree<'_>, id: NodeId) -> Result<PhysRange, DtError> {
    let v = dt.prop(id, "reg").ok_or(DtError::Missing("module reg"))?;
    let parent = dt.node(id).parent.unwrap_or(0);
    let (ac, sc) = dt.inherited_cells(parent, (2, 2));
    let pairs = decode_pairs(v, ac, sc)
        .filter(|p| p.len() == 1)
        .or_else(|| decode_pairs(v, 2, 2).filter(|p| p.len() == 1))
        .ok_or(DtError::BadProperty("module reg"))?;
    Ok(range(pairs[0]))
}

/// Kernel/ramdisk of one container (`/chosen` or a `xen,domain` node),
/// recording every module's range in `all`.
struct Found {
    kernel: Option<(NodeId, PhysRange)>,
    initrd: Option<PhysRange>,
}

fn scan_container(
    dt: &DeviceTree<'_>,
    container: NodeId,
    all: &mut Vec<PhysRange>,
) -> Result<Found, DtError> {
    let mut f = Found {
        kernel: None,
        initrd: None,
    };
    let mut guess = 0u32;
    for &c in &dt.node(container).children {
        if !is_module(dt, c) {
            continue;
        }
        let r = module_reg(dt, c)?;
        all.push(r);
        let kind = match module_kind(dt, c) {
            ModKind::Unknown => {
                guess += 1;
                match guess {
                    1 => ModKind::Kernel,
                    2 => ModKind::Ramdisk,
                    _ => ModKind::Other,
                }
            }
            k => k,
        };
        match kind {
            ModKind::Kernel if f.kernel.is_none() => f.kernel = Some((c, r)),
            ModKind::Ramdisk if f.initrd.is_none() => f.initrd = Some(r),
            _ => {}
        }
    }
    Ok(f)
}

#[derive(Default)]
struct Modules {
    cmdline: String,
    dom0: Option<DomainSpec>,
    domus: Vec<DomainSpec>,
    all: Vec<PhysRange>,
}

fn parse_modules(dt: &DeviceTree<'_>, chosen: NodeId) -> Result<Modules, DtError> {
    let mut all = Vec::new();
    let d0 = scan_container(dt, chosen, &mut all)?;

    let xen_args = dt.prop(chosen, "xen,xen-bootargs").and_then(read_str);
    let dom0_args = dt.prop(chosen, "xen,dom0-bootargs").and_then(read_str);
    let chosen_args = dt.prop(chosen, "bootargs").and_then(read_str);
    let module_args = d0
        .kernel
        .and_then(|(k, _)| dt.prop(k, "bootargs").and_then(read_str))
        .filter(|s| !s.is_empty());

    let (cmdline, chosen_is_hyp) = match xen_args {
        Some(a) => (a, false),
        None if dom0_args.is_some() || module_args.is_some() => (chosen_args.unwrap_or(""), true),
        None => ("", false),
    };
    let dom0_bootargs =
        dom0_args
            .or(module_args)
            .or(if chosen_is_hyp { None } else { chosen_args });

    let dom0 = d0.kernel.map(|(_, kernel)| DomainSpec {
        name: String::from("dom0"),
        memory_kib: None,
        vcpus: None,
        kernel,
        initrd: d0.initrd,
        bootargs: dom0_bootargs.map(String::from),
        vpl011: false,
        weight: None,
        cap: None,
        hard_affinity: None,
    });

    let mut domus = Vec::new();
    for &c in &dt.node(chosen).children {
        if !dt.is_compatible(c, "xen,domain") {
            continue;
        }
        let f = scan_container(dt, c, &mut all)?;
        // Xen also accepts modules one level deeper; record them so the
        // allocator keeps away from them.
        for &gc in &dt.node(c).children {
            if !is_module(dt, gc) {
                for &ggc in &dt.node(gc).children {
                    if is_module(dt, ggc) {
                        all.push(module_reg(dt, ggc)?);
                    }
                }
            }
        }
        let (knode, kernel) = f
            .kernel
            .ok_or(DtError::Missing("xen,domain kernel module"))?;
        let memory_kib = match dt.prop(c, "memory") {
            None => None,
            Some(_) => Some(
                dt.prop_u64(c, "memory")
                    .ok_or(DtError::BadProperty("xen,domain memory"))?,
            ),
        };
        let vcpus = match dt.prop(c, "cpus") {
            None => None,
            Some(_) => Some(
                dt.prop_u32(c, "cpus")
                    .ok_or(DtError::BadProperty("xen,domain cpus"))?,
            ),
        };
        let bootargs = dt
            .prop(knode, "bootargs")
            .and_then(read_str)
            .or_else(|| dt.prop(c, "bootargs").and_then(read_str))
            .map(String::from);
        domus.push(DomainSpec {
            name: dt.node(c).name.to_string(),
            memory_kib,
            vcpus,
            kernel,
            initrd: f.initrd,
            bootargs,
            vpl011: dt.has_prop(c, "vpl011"),
            weight: dt.prop_u32(c, "oxen,weight"),
            cap: dt.prop_u32(c, "oxen,cap"),
            hard_affinity: dt.prop_u32(c, "oxen,cpus-hard"),
        });
    }

    Ok(Modules {
        cmdline: cmdline.to_string(),
        dom0,
        domus,
        all,
    })
}

/// The console UART, as Xen's `dt_uart_init` finds it: `dtuart=<path or
/// alias>` on the hypervisor command line, else `/chosen/stdout-path` (or
/// `linux,stdout-path`), `:options` dropped. A `dtuart=` that names no node
/// falls back to `stdout-path` (Xen would have no console at all).
fn parse_stdout(dt: &DeviceTree<'_>, chosen: NodeId, cmdline: &str) -> Option<Uart> {
    let named = |path: &str| {
        let id = dt.find_path_or_alias(path)?;
        let r = *dt.reg_translated(id).ok()?.first()?;
        Some(Uart {
            base: PhysAddr(r.0),
            size: r.1,
            compatible: dt.prop_str(id, "compatible").unwrap_or("").to_string(),
            path: dt.path(id),
        })
    };
    let from_cmdline = crate::cmdline::parse_cmdline(cmdline)
        .dtuart
        .and_then(|p| named(&p));
    from_cmdline.or_else(|| {
        let raw = dt
            .prop_str(chosen, "stdout-path")
            .or_else(|| dt.prop_str(chosen, "linux,stdout-path"))?;
        named(raw.split(':').next().unwrap_or(raw))
    })
}

const GICV2_COMPAT: &[&str] = &[
    "arm,gic-400",
    "arm,cortex-a15-gic",
    "arm,cortex-a9-gic",
    "arm,cortex-a7-gic",
    "arm,arm11mp-gic",
    "arm,arm1176jzf-devchip-gic",
    "arm,eb11mp-gic",
    "arm,pl390",
    "qcom,msm-qgic2",
];
const GICV3_COMPAT: &[&str] = &["arm,gic-v3"];

fn gic_version(dt: &DeviceTree<'_>, id: NodeId) -> Option<u8> {
    if !dt.has_prop(id, "interrupt-controller") || !dt.is_enabled(id) {
        return None;
    }
    if GICV3_COMPAT.iter().any(|c| dt.is_compatible(id, c)) {
        Some(3)
    } else if GICV2_COMPAT.iter().any(|c| dt.is_compatible(id, c)) {
        Some(2)
    } else {
        None
    }
}

/// The host GIC node: the root's `interrupt-parent` if that is a GIC, else
/// the first GIC node in the tree.
pub(crate) fn find_gic(dt: &DeviceTree<'_>) -> Option<NodeId> {
    if let Some(p) = dt.interrupt_parent(dt.root())
        && gic_version(dt, p).is_some()
    {
        return Some(p);
    }
    dt.ids().find(|&id| gic_version(dt, id).is_some())
}

/// Decode one `<type num flags>` GIC interrupt specifier into an INTID.
fn spec_to_intid(ty: u32, num: u32) -> Option<u32> {
    match ty {
        0 if num < 988 => Some(num + 32),
        1 if num < 16 => Some(num + 16),
        _ => None,
    }
}

/// Interrupt specifiers of `id` as INTIDs (assuming a GIC parent with
/// `#interrupt-cells` ≥ 2; `None` for an unparsable property).
pub(crate) fn interrupts_of(dt: &DeviceTree<'_>, id: NodeId) -> Option<Vec<Option<u32>>> {
    let v = dt.prop(id, "interrupts")?;
    let cells = read_u32_list(v)?;
    let n = dt
        .interrupt_parent(id)
        .and_then(|p| dt.prop_u32(p, "#interrupt-cells"))
        .unwrap_or(3) as usize;
    if n < 2 || cells.len() % n != 0 {
        return None;
    }
    Some(
        cells
            .chunks_exact(n)
            .map(|c| spec_to_intid(c[0], c[1]))
            .collect(),
    )
}

fn parse_gic(dt: &DeviceTree<'_>, id: NodeId) -> Result<Gic, DtError> {
    let regs = dt.reg_translated(id)?;
    let maintenance_irq = interrupts_of(dt, id)
        .and_then(|v| v.first().copied())
        .flatten();
    let at = |i: usize| regs.get(i).map(|&r| range(r));
    if gic_version(dt, id) == Some(3) {
        let nr = dt.prop_u32(id, "#redistributor-regions").unwrap_or(1) as usize;
        if nr == 0 || regs.len() < 1 + nr {
            return Err(DtError::BadProperty("GICv3 reg"));
        }
        Ok(Gic::V3 {
            gicd: range(regs[0]),
            gicr: regs[1..=nr].iter().map(|&r| range(r)).collect(),
            maintenance_irq,
        })
    } else {
        let (Some(gicd), Some(gicc)) = (at(0), at(1)) else {
            return Err(DtError::BadProperty("GICv2 reg"));
        };
        Ok(Gic::V2 {
            gicd,
            gicc,
            gich: at(2),
            gicv: at(3),
            maintenance_irq,
        })
    }
}

/// The architected timer node (`arm,armv8-timer` or `arm,armv7-timer`).
pub(crate) fn find_timer(dt: &DeviceTree<'_>) -> Option<NodeId> {
    dt.ids().find(|&id| {
        dt.is_enabled(id)
            && (dt.is_compatible(id, "arm,armv8-timer") || dt.is_compatible(id, "arm,armv7-timer"))
    })
}

pub(crate) fn parse_timer(dt: &DeviceTree<'_>) -> Timer {
    let mut t = Timer::default();
    let Some(id) = find_timer(dt) else { return t };
    let Some(ints) = interrupts_of(dt, id) else {
        return t;
    };
    let slots = [&mut t.sec_phys, &mut t.phys, &mut t.virt, &mut t.hyp];
    for (slot, v) in slots.into_iter().zip(ints) {
        if let Some(v) = v.filter(|v| (16..32).contains(v)) {
            *slot = v;
        }
    }
    t
}

fn parse_cpus(dt: &DeviceTree<'_>) -> Result<Vec<Cpu>, DtError> {
    let cpus = dt.find("/cpus").ok_or(DtError::Missing("/cpus"))?;
    let (ac, _) = dt.cells_of(cpus);
    let mut out = Vec::new();
    for &c in &dt.node(cpus).children {
        let is_cpu = dt.prop_str(c, "device_type") == Some("cpu")
            || (dt.node(c).base_name() == "cpu" && dt.has_prop(c, "reg"));
        if !is_cpu || !dt.is_enabled(c) {
            continue;
        }
        let reg = dt.prop(c, "reg").ok_or(DtError::Missing("cpu reg"))?;
        let mpidr = decode_pairs(reg, ac, 0)
            .and_then(|v| v.first().map(|r| r.0))
            .ok_or(DtError::BadProperty("cpu reg"))?;
        let enable = match dt.prop_str(c, "enable-method") {
            Some("psci") => EnableMethod::Psci,
            Some("spin-table") => EnableMethod::SpinTable {
                release_addr: PhysAddr(
                    dt.prop_u64(c, "cpu-release-addr")
                        .ok_or(DtError::BadProperty("cpu-release-addr"))?,
                ),
            },
            _ => EnableMethod::Other,
        };
        out.push(Cpu { mpidr, enable });
    }
    if out.is_empty() {
        return Err(DtError::Missing("cpu nodes"));
    }
    Ok(out)
}

/// Whether `id` is a PSCI node.
pub(crate) fn is_psci(dt: &DeviceTree<'_>, id: NodeId) -> bool {
    dt.prop(id, "compatible")
        .is_some_and(|v| str_list(v).any(|s| s.starts_with("arm,psci")))
}

fn parse_psci(dt: &DeviceTree<'_>) -> Option<Conduit> {
    let id = dt.ids().find(|&id| is_psci(dt, id) && dt.is_enabled(id))?;
    match dt.prop_str(id, "method")? {
        "smc" => Some(Conduit::Smc),
        "hvc" => Some(Conduit::Hvc),
        _ => None,
    }
}
