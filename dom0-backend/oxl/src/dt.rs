//! The guest device tree, built as libxl 4.17 builds it for an Arm PVH guest
//! (`libxl__prepare_dtb` + `libxl__arch_domain_finalise_hw_description`): root properties,
//! `/chosen`, `/cpus`, `/psci`, `/memory@...`, the GIC (v2 or v3, as createdomain chose),
//! `/timer` and `/hypervisor` (grant-table region, extended regions, event-channel PPI).
//!
//! Invariants: the node and property order is libxl's, so the blob matches a real Xen guest's
//! byte for byte apart from `rng-seed`; `/chosen` initrd properties have a fixed size whatever
//! their values, so the blob's size does not depend on where the modules go (the builder sizes
//! the DTB before placing it). Guest-physical constants are Xen's `arch-arm.h`.

use vm_fdt::{FdtWriter, FdtWriterResult};

/// Guest-physical layout constants (`xen/include/public/arch-arm.h`).
pub mod layout {
    pub const GUEST_GICD_BASE: u64 = 0x0300_1000;
    pub const GUEST_GICD_SIZE: u64 = 0x1000;
    pub const GUEST_GICC_BASE: u64 = 0x0300_2000;
    pub const GUEST_GICC_SIZE: u64 = 0x2000;
    pub const GUEST_GICV3_GICD_BASE: u64 = 0x0300_1000;
    pub const GUEST_GICV3_GICD_SIZE: u64 = 0x1_0000;
    pub const GUEST_GICV3_GICR0_BASE: u64 = 0x0302_0000;
    pub const GUEST_GICV3_GICR0_SIZE: u64 = 0x100_0000;
    pub const GUEST_GNTTAB_BASE: u64 = 0x3800_0000;
    pub const GUEST_GNTTAB_SIZE: u64 = 0x100_0000;
    pub const GUEST_MAGIC_BASE: u64 = 0x3900_0000;
    pub const GUEST_RAM0_BASE: u64 = 0x4000_0000;
    pub const GUEST_RAM0_SIZE: u64 = 0xc000_0000;
    pub const GUEST_RAM1_BASE: u64 = 0x2_0000_0000;
    pub const GUEST_RAM1_SIZE: u64 = 0xfe_0000_0000;
    pub const GUEST_TIMER_VIRT_PPI: u32 = 27;
    pub const GUEST_TIMER_PHYS_S_PPI: u32 = 29;
    pub const GUEST_TIMER_PHYS_NS_PPI: u32 = 30;
    pub const GUEST_EVTCHN_PPI: u32 = 31;
    pub const GUEST_PHANDLE_GIC: u32 = 65000;
    /// Smallest extended region libxl advertises.
    pub const EXT_REGION_MIN_SIZE: u64 = 0x400_0000;
}

use layout::*;

/// The vGIC the domain got (createdomain's `gic_version` out value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    V2,
    V3,
}

/// Everything the guest DT depends on.
#[derive(Clone, Debug)]
pub struct GuestDt {
    pub xen_major: u32,
    pub xen_minor: u32,
    pub gic: Gic,
    /// vCPUs (max_vcpus): one `/cpus/cpu@N` each.
    pub vcpus: u32,
    /// RAM in bank 0 / bank 1, bytes.
    pub ram: [u64; 2],
    pub bootargs: Option<String>,
    /// Initrd guest-physical [start, end).
    pub initrd: Option<(u64, u64)>,
    /// Timer frequency when createdomain returned one.
    pub clock_frequency: Option<u32>,
    /// The domain's guest physical address width (getdomaininfo `gpaddr_bits`).
    pub gpaddr_bits: u8,
    /// `/chosen/rng-seed` (128 bytes from the host's RNG).
    pub rng_seed: Option<[u8; 128]>,
}

/// `libxl__compute_mpdir`: the MPIDR affinity value of vCPU `n`, used as `/cpus/cpu@N` reg.
pub fn mpidr(n: u32) -> u32 {
    (n & 0xf) | (((n >> 4) & 0xff) << 8)
}

/// The extended regions (base, size) libxl advertises: per bank, from the 2 MiB-aligned end of
/// the guest's RAM to the end of the bank or of the address space, if at least 64 MiB.
pub fn extended_regions(ram: [u64; 2], gpaddr_bits: u8) -> Vec<(u64, u64)> {
    let bases = [GUEST_RAM0_BASE, GUEST_RAM1_BASE];
    let sizes = [GUEST_RAM0_SIZE, GUEST_RAM1_SIZE];
    let bits = u32::from(gpaddr_bits.clamp(1, 64));
    let top = u64::MAX >> (64 - bits);
    let mut out = Vec::new();
    for i in 0..2 {
        let base = bases[i] + ram[i].div_ceil(0x20_0000) * 0x20_0000;
        let end = top.min(bases[i] + sizes[i] - 1);
        if end > base && end - base + 1 >= EXT_REGION_MIN_SIZE {
            out.push((base, end - base + 1));
        }
    }
    out
}

fn regs(pairs: &[(u64, u64)]) -> Vec<u64> {
    pairs.iter().flat_map(|&(a, s)| [a, s]).collect()
}

fn irq(ppi: u32) -> [u32; 3] {
    // <type PPI (1), number - 16, cpu mask 0xf | level-low (8)>
    [1, ppi - 16, 0xf08]
}

impl GuestDt {
    /// The flattened device tree blob.
    pub fn build(&self) -> FdtWriterResult<Vec<u8>> {
        let mut f = FdtWriter::new()?;
        let root = f.begin_node("")?;
        f.property_string(
            "model",
            &format!("XENVM-{}.{}", self.xen_major, self.xen_minor),
        )?;
        f.property_string_list(
            "compatible",
            vec![
                format!("xen,xenvm-{}.{}", self.xen_major, self.xen_minor),
                "xen,xenvm".into(),
            ],
        )?;
        f.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
        f.property_u32("#address-cells", 2)?;
        f.property_u32("#size-cells", 2)?;

        let chosen = f.begin_node("chosen")?;
        if let Some(b) = &self.bootargs {
            f.property_string("bootargs", b)?;
        }
        if let Some((start, end)) = self.initrd {
            f.property_u64("linux,initrd-start", start)?;
            f.property_u64("linux,initrd-end", end)?;
        }
        if let Some(seed) = &self.rng_seed {
            f.property("rng-seed", seed)?;
        }
        f.end_node(chosen)?;

        let cpus = f.begin_node("cpus")?;
        f.property_u32("#address-cells", 1)?;
        f.property_u32("#size-cells", 0)?;
        for n in 0..self.vcpus {
            let id = mpidr(n);
            let cpu = f.begin_node(&format!("cpu@{id:x}"))?;
            f.property_string("device_type", "cpu")?;
            f.property_string("compatible", "arm,armv8")?;
            f.property_string("enable-method", "psci")?;
            f.property_u32("reg", id)?;
            f.end_node(cpu)?;
        }
        f.end_node(cpus)?;

        let psci = f.begin_node("psci")?;
        f.property_string_list(
            "compatible",
            vec![
                "arm,psci-1.0".into(),
                "arm,psci-0.2".into(),
                "arm,psci".into(),
            ],
        )?;
        f.property_string("method", "hvc")?;
        f.property_u32("cpu_off", 1)?;
        f.property_u32("cpu_on", 2)?;
        f.end_node(psci)?;

        for (i, base) in [GUEST_RAM0_BASE, GUEST_RAM1_BASE].into_iter().enumerate() {
            // libxl nops the placeholder of an empty bank.
            if self.ram[i] == 0 {
                continue;
            }
            let mem = f.begin_node(&format!("memory@{base:x}"))?;
            f.property_string("device_type", "memory")?;
            f.property_array_u64("reg", &[base, self.ram[i]])?;
            f.end_node(mem)?;
        }

        match self.gic {
            Gic::V3 => {
                let gic =
                    f.begin_node(&format!("interrupt-controller@{GUEST_GICV3_GICD_BASE:x}"))?;
                f.property_string("compatible", "arm,gic-v3")?;
                f.property_u32("#interrupt-cells", 3)?;
                f.property_u32("#address-cells", 0)?;
                f.property_null("interrupt-controller")?;
                f.property_array_u64(
                    "reg",
                    &regs(&[
                        (GUEST_GICV3_GICD_BASE, GUEST_GICV3_GICD_SIZE),
                        (GUEST_GICV3_GICR0_BASE, GUEST_GICV3_GICR0_SIZE),
                    ]),
                )?;
                f.property_u32("linux,phandle", GUEST_PHANDLE_GIC)?;
                f.property_u32("phandle", GUEST_PHANDLE_GIC)?;
                f.end_node(gic)?;
            }
            Gic::V2 => {
                let gic = f.begin_node(&format!("interrupt-controller@{GUEST_GICD_BASE:x}"))?;
                f.property_string_list(
                    "compatible",
                    vec!["arm,cortex-a15-gic".into(), "arm,cortex-a9-gic".into()],
                )?;
                f.property_u32("#interrupt-cells", 3)?;
                f.property_u32("#address-cells", 0)?;
                f.property_null("interrupt-controller")?;
                f.property_array_u64(
                    "reg",
                    &regs(&[
                        (GUEST_GICD_BASE, GUEST_GICD_SIZE),
                        (GUEST_GICC_BASE, GUEST_GICC_SIZE),
                    ]),
                )?;
                f.property_u32("linux,phandle", GUEST_PHANDLE_GIC)?;
                f.property_u32("phandle", GUEST_PHANDLE_GIC)?;
                f.end_node(gic)?;
            }
        }

        let timer = f.begin_node("timer")?;
        f.property_string("compatible", "arm,armv8-timer")?;
        let ints: Vec<u32> = [
            GUEST_TIMER_PHYS_S_PPI,
            GUEST_TIMER_PHYS_NS_PPI,
            GUEST_TIMER_VIRT_PPI,
        ]
        .into_iter()
        .flat_map(irq)
        .collect();
        f.property_array_u32("interrupts", &ints)?;
        f.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
        if let Some(freq) = self.clock_frequency {
            f.property_u32("clock-frequency", freq)?;
        }
        f.end_node(timer)?;

        let hyp = f.begin_node("hypervisor")?;
        f.property_string_list(
            "compatible",
            vec![
                format!("xen,xen-{}.{}", self.xen_major, self.xen_minor),
                "xen,xen".into(),
            ],
        )?;
        let mut reg = vec![(GUEST_GNTTAB_BASE, GUEST_GNTTAB_SIZE)];
        reg.extend(extended_regions(self.ram, self.gpaddr_bits));
        f.property_array_u64("reg", &regs(&reg))?;
        f.property_array_u32("interrupts", &irq(GUEST_EVTCHN_PPI))?;
        f.property_u32("interrupt-parent", GUEST_PHANDLE_GIC)?;
        f.end_node(hyp)?;

        f.end_node(root)?;
        f.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fdt::Fdt;

    fn sample() -> GuestDt {
        GuestDt {
            xen_major: 4,
            xen_minor: 17,
            gic: Gic::V3,
            vcpus: 1,
            ram: [256 << 20, 0],
            bootargs: Some(
                "console=hvc0 rdinit=/init ref_scenario=domu ref_io_mb=64 ref_net_mb=64".into(),
            ),
            initrd: Some((0x4800_0000, 0x4826_9000)),
            clock_frequency: None,
            gpaddr_bits: 40,
            rng_seed: None,
        }
    }

    fn cells(p: &[u8]) -> Vec<u32> {
        p.chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// Every node and property of the two trees, as (path, name, value) in order.
    fn flatten(blob: &[u8]) -> Vec<(String, String, Vec<u8>)> {
        let t = Fdt::new(blob).unwrap();
        let mut out = Vec::new();
        fn walk(
            n: fdt::node::FdtNode<'_, '_>,
            path: String,
            out: &mut Vec<(String, String, Vec<u8>)>,
        ) {
            for p in n.properties() {
                out.push((path.clone(), p.name.to_string(), p.value.to_vec()));
            }
            for c in n.children() {
                walk(c, format!("{path}/{}", c.name), out);
            }
        }
        walk(t.find_node("/").unwrap(), String::new(), &mut out);
        out
    }

    #[test]
    fn matches_the_xen_sample() {
        let ours = sample().build().unwrap();
        let theirs = include_bytes!("../testdata/domu.dtb");
        let a = flatten(&ours);
        let b: Vec<_> = flatten(theirs)
            .into_iter()
            .filter(|(p, n, _)| !(p == "/chosen" && n == "rng-seed"))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn sample_values() {
        let blob = sample().build().unwrap();
        let t = Fdt::new(&blob).unwrap();
        let hyp = t.find_node("/hypervisor").unwrap();
        let reg: Vec<_> = hyp
            .reg()
            .unwrap()
            .map(|r| (r.starting_address as u64, r.size.unwrap() as u64))
            .collect();
        assert_eq!(
            reg,
            vec![
                (0x3800_0000, 0x100_0000),
                (0x5000_0000, 0xb000_0000),
                (0x2_0000_0000, 0xfe_0000_0000)
            ]
        );
        assert_eq!(
            cells(hyp.property("interrupts").unwrap().value),
            vec![1, 15, 0xf08]
        );
        let timer = t.find_node("/timer").unwrap();
        assert_eq!(
            cells(timer.property("interrupts").unwrap().value),
            vec![1, 13, 0xf08, 1, 14, 0xf08, 1, 11, 0xf08]
        );
        let gic = t.find_node("/interrupt-controller@3001000").unwrap();
        assert_eq!(
            cells(gic.property("reg").unwrap().value),
            vec![0, 0x0300_1000, 0, 0x1_0000, 0, 0x0302_0000, 0, 0x100_0000]
        );
        let mem = t.find_node("/memory@40000000").unwrap();
        assert_eq!(
            cells(mem.property("reg").unwrap().value),
            vec![0, 0x4000_0000, 0, 0x1000_0000]
        );
        assert!(t.find_node("/memory@200000000").is_none());
        let chosen = t.find_node("/chosen").unwrap();
        assert_eq!(
            chosen.property("linux,initrd-start").unwrap().as_usize(),
            Some(0x4800_0000)
        );
        assert_eq!(
            chosen.property("linux,initrd-end").unwrap().as_usize(),
            Some(0x4826_9000)
        );
    }

    #[test]
    fn gicv2_smp_and_seed() {
        let mut d = sample();
        d.gic = Gic::V2;
        d.vcpus = 18;
        d.initrd = None;
        d.bootargs = None;
        d.clock_frequency = Some(62_500_000);
        d.rng_seed = Some([7; 128]);
        let blob = d.build().unwrap();
        let t = Fdt::new(&blob).unwrap();
        let gic = t.find_node("/interrupt-controller@3001000").unwrap();
        assert_eq!(
            gic.compatible().unwrap().all().collect::<Vec<_>>(),
            vec!["arm,cortex-a15-gic", "arm,cortex-a9-gic"]
        );
        assert_eq!(
            cells(gic.property("reg").unwrap().value),
            vec![0, 0x0300_1000, 0, 0x1000, 0, 0x0300_2000, 0, 0x2000]
        );
        assert_eq!(t.cpus().count(), 18);
        let c17 = t.find_node("/cpus/cpu@101").unwrap();
        assert_eq!(cells(c17.property("reg").unwrap().value), vec![0x101]);
        assert_eq!(
            t.find_node("/timer")
                .unwrap()
                .property("clock-frequency")
                .unwrap()
                .as_usize(),
            Some(62_500_000)
        );
        let chosen = t.find_node("/chosen").unwrap();
        assert!(chosen.property("bootargs").is_none());
        assert_eq!(chosen.property("rng-seed").unwrap().value, &[7; 128]);
        // The initrd properties' size is fixed: the same tree with an initrd is 2 props bigger.
        let mut e = d.clone();
        e.initrd = Some((0, 0));
        let len0 = e.build().unwrap().len();
        e.initrd = Some((u64::MAX, u64::MAX));
        assert_eq!(e.build().unwrap().len(), len0);
    }

    #[test]
    fn mpidr_formula() {
        assert_eq!(mpidr(0), 0);
        assert_eq!(mpidr(15), 15);
        assert_eq!(mpidr(16), 0x100);
        assert_eq!(mpidr(33), 0x201);
    }

    #[test]
    fn extended_region_rules() {
        // Sample: 256 MiB in bank 0, 40-bit IPA.
        assert_eq!(
            extended_regions([256 << 20, 0], 40),
            vec![(0x5000_0000, 0xb000_0000), (0x2_0000_0000, 0xfe_0000_0000)]
        );
        // Unaligned RAM end rounds up to 2 MiB.
        assert_eq!(
            extended_regions([(256 << 20) + 4096, 0], 40)[0].0,
            0x5020_0000
        );
        // 32-bit IPA: bank 1 is out of reach, bank 0 up to 4 GiB.
        assert_eq!(
            extended_regions([256 << 20, 0], 32),
            vec![(0x5000_0000, 0xb000_0000)]
        );
        // Full bank 0: no region there (less than 64 MiB left).
        assert_eq!(
            extended_regions([0xc000_0000 - (32 << 20), 0], 40),
            vec![(0x2_0000_0000, 0xfe_0000_0000)]
        );
        // Nonsense widths neither panic nor produce regions beyond the banks.
        assert_eq!(extended_regions([256 << 20, 0], 0), vec![]);
        assert_eq!(extended_regions([256 << 20, 0], 200).len(), 2);
    }
}
