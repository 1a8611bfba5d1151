//! `parse_boot_info` against QEMU virt dumps and synthetic trees.

use oxen_dt::tree::DeviceTree;
use oxen_dt::*;
use oxen_types::{PhysAddr, PhysRange};
use vm_fdt::FdtWriter;

const GICV2: &[u8] = include_bytes!("data/virt-gicv2.dtb");
const GICV3: &[u8] = include_bytes!("data/virt-gicv3.dtb");
const DOM0LESS: &[u8] = include_bytes!("data/virt-dom0less.dtb");

fn r(start: u64, size: u64) -> PhysRange {
    PhysRange::new(PhysAddr(start), size)
}

const QEMU_HYP_ARGS: &str =
    "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all";

/// What both QEMU dumps share.
fn check_common(bi: &BootInfo) {
    assert_eq!(bi.ram, [r(0x4000_0000, 2 << 30)]);
    assert!(bi.reserved.is_empty());
    assert_eq!(bi.cmdline, QEMU_HYP_ARGS);
    let dom0 = bi.dom0.as_ref().expect("dom0");
    assert_eq!(dom0.name, "dom0");
    assert_eq!(dom0.kernel, r(0x5000_0000, 0x1000));
    assert_eq!(dom0.initrd, Some(r(0x5220_0000, 0x1000)));
    assert_eq!(
        dom0.bootargs.as_deref(),
        Some("console=hvc0 earlycon=xen rdinit=/init")
    );
    assert_eq!(
        (dom0.memory_kib, dom0.vcpus, dom0.vpl011),
        (None, None, false)
    );
    assert!(bi.domus.is_empty());
    // DT order: QEMU adds the later guest-loader's node first.
    assert_eq!(bi.modules, [r(0x5220_0000, 0x1000), r(0x5000_0000, 0x1000)]);
    assert_eq!(
        bi.stdout,
        Some(Uart {
            base: PhysAddr(0x900_0000),
            size: 0x1000,
            compatible: "arm,pl011".into(),
            path: "/pl011@9000000".into(),
        })
    );
    assert_eq!(
        bi.timer,
        Timer {
            sec_phys: 29,
            phys: 30,
            virt: 27,
            hyp: 26
        }
    );
    assert_eq!(
        bi.cpus,
        [
            Cpu {
                mpidr: 0,
                enable: EnableMethod::Psci
            },
            Cpu {
                mpidr: 1,
                enable: EnableMethod::Psci
            }
        ]
    );
    assert_eq!(bi.psci, Some(Conduit::Smc));
    assert_eq!(bi.model, "linux,dummy-virt");
}

#[test]
fn qemu_virt_gicv2() {
    let bi = parse_boot_info(GICV2).unwrap();
    check_common(&bi);
    assert_eq!(
        bi.gic,
        Gic::V2 {
            gicd: r(0x800_0000, 0x1_0000),
            gicc: r(0x801_0000, 0x1_0000),
            gich: Some(r(0x803_0000, 0x1_0000)),
            gicv: Some(r(0x804_0000, 0x1_0000)),
            maintenance_irq: Some(25),
        }
    );
}

#[test]
fn qemu_virt_gicv3() {
    let bi = parse_boot_info(GICV3).unwrap();
    check_common(&bi);
    assert_eq!(
        bi.gic,
        Gic::V3 {
            gicd: r(0x800_0000, 0x1_0000),
            gicr: vec![r(0x80a_0000, 0xf6_0000)],
            maintenance_irq: Some(25),
        }
    );
}

#[test]
fn dom0less_domains_and_xen_bootargs() {
    let bi = parse_boot_info(DOM0LESS).unwrap();
    // xen,xen-bootargs wins over /chosen/bootargs.
    assert_eq!(bi.cmdline, "dom0_mem=1G dom0_max_vcpus=2 loglvl=info");
    // xen,dom0-bootargs overrides the module's bootargs.
    let dom0 = bi.dom0.as_ref().unwrap();
    assert_eq!(dom0.bootargs.as_deref(), Some("console=hvc0 root=/dev/vda"));
    assert_eq!(dom0.kernel, r(0x5000_0000, 0x1000));
    assert_eq!(
        bi.domus,
        [
            DomainSpec {
                name: "domU1".into(),
                memory_kib: Some(0x20000),
                vcpus: Some(1),
                kernel: r(0x5400_0000, 0x20_0000),
                initrd: Some(r(0x5600_0000, 0x10_0000)),
                bootargs: Some("console=ttyAMA0 oxen.test=hello".into()),
                vpl011: true,
                weight: None,
                cap: None,
                hard_affinity: None,
            },
            DomainSpec {
                name: "domU2".into(),
                memory_kib: Some(0x10000),
                vcpus: Some(2),
                // Unspecific module = kernel; 2/2 cells inherited from root.
                kernel: r(0x5800_0000, 0x8_0000),
                initrd: None,
                bootargs: Some("oxen.test=count oxen.count=3".into()),
                vpl011: false,
                weight: None,
                cap: None,
                hard_affinity: None,
            },
        ]
    );
    assert_eq!(
        bi.modules,
        [
            r(0x5220_0000, 0x1000),
            r(0x5000_0000, 0x1000),
            r(0x5400_0000, 0x20_0000),
            r(0x5600_0000, 0x10_0000),
            r(0x5800_0000, 0x8_0000),
        ]
    );
    // /memreserve/ plus the enabled /reserved-memory child only.
    assert_eq!(
        bi.reserved,
        [r(0x4800_0000, 0x1_0000), r(0x7f00_0000, 0x20_0000)]
    );
    let opts = parse_cmdline(&bi.cmdline);
    assert_eq!(opts.dom0_mem, Some(1 << 30));
    assert_eq!(opts.dom0_max_vcpus, Some(2));
    assert_eq!(opts.loglvl, Some(LogLevel::Info));
}

#[test]
fn dtb_size_reads_header() {
    assert_eq!(dtb_size(&GICV3[..40]), Ok(GICV3.len()));
    assert_eq!(dtb_size(&GICV3[..39]), Err(DtError::Header));
    let mut bad = GICV3[..40].to_vec();
    bad[0] = 0;
    assert_eq!(dtb_size(&bad), Err(DtError::Header));
    let mut big = GICV3[..40].to_vec();
    big[4..8].copy_from_slice(&(4u32 << 20).to_be_bytes());
    assert_eq!(dtb_size(&big), Err(DtError::TooBig));
    let mut tiny = GICV3[..40].to_vec();
    tiny[4..8].copy_from_slice(&8u32.to_be_bytes());
    assert_eq!(dtb_size(&tiny), Err(DtError::Header));
}

#[test]
fn tree_lookup_helpers() {
    let dt = DeviceTree::parse(GICV3).unwrap();
    let uart = dt.find_path_or_alias("serial0").unwrap();
    assert_eq!(dt.path(uart), "/pl011@9000000");
    assert_eq!(dt.find("/pl011"), Some(uart), "base-name match");
    assert_eq!(dt.find("/pl011@9000001"), None);
    let its = dt.find("/intc@8000000/its@8080000").unwrap();
    assert_eq!(dt.phandle_of(its), Some(0x8004));
    assert_eq!(dt.by_phandle(0x8004), Some(its));
    assert_eq!(dt.reg_translated(its).unwrap(), [(0x808_0000, 0x2_0000)]);
    assert_eq!(dt.path(dt.root()), "/");
    assert!(dt.mem_reserve.is_empty());
}

// ---- Synthetic trees for the command-line rules and edge cases ----

struct Chosen<'a> {
    bootargs: Option<&'a str>,
    xen_bootargs: Option<&'a str>,
    dom0_bootargs: Option<&'a str>,
    module_bootargs: Option<&'a str>,
    /// (compatible list, reg cells)
    modules: Vec<(Vec<&'a str>, Vec<u32>)>,
    chosen_cells: Option<(u32, u32)>,
    stdout: Option<&'a str>,
}

impl Default for Chosen<'_> {
    fn default() -> Self {
        Self {
            bootargs: None,
            xen_bootargs: None,
            dom0_bootargs: None,
            module_bootargs: None,
            modules: vec![(
                vec!["multiboot,kernel", "multiboot,module"],
                vec![0, 0x5000_0000, 0, 0x1000],
            )],
            chosen_cells: None,
            stdout: None,
        }
    }
}

fn strlist(v: &[&str]) -> Vec<u8> {
    v.iter().flat_map(|s| s.bytes().chain([0])).collect()
}

/// A minimal but complete host tree.
fn synth(c: &Chosen<'_>, extra: impl FnOnce(&mut FdtWriter)) -> Vec<u8> {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 2).unwrap();
    w.property("compatible", &strlist(&["vendor,board", "vendor,soc"]))
        .unwrap();
    w.property_u32("interrupt-parent", 1).unwrap();
    let ch = w.begin_node("chosen").unwrap();
    if let Some((a, s)) = c.chosen_cells {
        w.property_u32("#address-cells", a).unwrap();
        w.property_u32("#size-cells", s).unwrap();
    }
    for (name, v) in [
        ("bootargs", c.bootargs),
        ("xen,xen-bootargs", c.xen_bootargs),
        ("xen,dom0-bootargs", c.dom0_bootargs),
        ("stdout-path", c.stdout),
    ] {
        if let Some(v) = v {
            w.property_string(name, v).unwrap();
        }
    }
    for (i, (compat, reg)) in c.modules.iter().enumerate() {
        let m = w.begin_node(&format!("module@{i}")).unwrap();
        w.property("compatible", &strlist(compat)).unwrap();
        w.property_array_u32("reg", reg).unwrap();
        if i == 0
            && let Some(b) = c.module_bootargs
        {
            w.property_string("bootargs", b).unwrap();
        }
        w.end_node(m).unwrap();
    }
    w.end_node(ch).unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.property_u32("#address-cells", 2).unwrap();
    w.property_u32("#size-cells", 0).unwrap();
    for (i, mpidr) in [0u64, 0x100].iter().enumerate() {
        let cpu = w.begin_node(&format!("cpu@{mpidr:x}")).unwrap();
        w.property_string("device_type", "cpu").unwrap();
        w.property_u64("reg", *mpidr).unwrap();
        w.property_string("enable-method", "spin-table").unwrap();
        w.property_u64("cpu-release-addr", 0xd8 + 8 * i as u64)
            .unwrap();
        w.end_node(cpu).unwrap();
    }
    w.end_node(cpus).unwrap();
    let gic = w.begin_node("interrupt-controller@ff841000").unwrap();
    w.property_string("compatible", "arm,gic-400").unwrap();
    w.property_null("interrupt-controller").unwrap();
    w.property_u32("#interrupt-cells", 3).unwrap();
    w.property_array_u64("reg", &[0xff84_1000, 0x1000, 0xff84_2000, 0x2000])
        .unwrap();
    w.property_phandle(1).unwrap();
    w.end_node(gic).unwrap();
    extra(&mut w);
    w.end_node(root).unwrap();
    w.finish().unwrap()
}

#[test]
fn cmdline_rules() {
    // Plain bootargs, no module bootargs, no xen props: bootargs is Dom0's.
    let bi = parse_boot_info(&synth(
        &Chosen {
            bootargs: Some("root=/dev/vda"),
            ..Default::default()
        },
        |_| {},
    ))
    .unwrap();
    assert_eq!(bi.cmdline, "");
    assert_eq!(bi.dom0.unwrap().bootargs.as_deref(), Some("root=/dev/vda"));

    // Module bootargs present: /chosen/bootargs is the hypervisor's.
    let bi = parse_boot_info(&synth(
        &Chosen {
            bootargs: Some("loglvl=all"),
            module_bootargs: Some("console=hvc0"),
            ..Default::default()
        },
        |_| {},
    ))
    .unwrap();
    assert_eq!(bi.cmdline, "loglvl=all");
    assert_eq!(bi.dom0.unwrap().bootargs.as_deref(), Some("console=hvc0"));

    // Only xen,xen-bootargs: bootargs stays Dom0's.
    let bi = parse_boot_info(&synth(
        &Chosen {
            bootargs: Some("root=/dev/vda"),
            xen_bootargs: Some("dom0_mem=256M"),
            ..Default::default()
        },
        |_| {},
    ))
    .unwrap();
    assert_eq!(bi.cmdline, "dom0_mem=256M");
    assert_eq!(bi.dom0.unwrap().bootargs.as_deref(), Some("root=/dev/vda"));

    // xen,dom0-bootargs alone makes /chosen/bootargs the hypervisor's.
    let bi = parse_boot_info(&synth(
        &Chosen {
            bootargs: Some("loglvl=debug"),
            dom0_bootargs: Some("console=hvc0 quiet"),
            module_bootargs: Some("ignored"),
            ..Default::default()
        },
        |_| {},
    ))
    .unwrap();
    assert_eq!(bi.cmdline, "loglvl=debug");
    assert_eq!(
        bi.dom0.unwrap().bootargs.as_deref(),
        Some("console=hvc0 quiet")
    );

    // Nothing at all.
    let bi = parse_boot_info(&synth(&Chosen::default(), |_| {})).unwrap();
    assert_eq!(bi.cmdline, "");
    assert_eq!(bi.dom0.unwrap().bootargs, None);
}

#[test]
fn module_guessing_and_cells() {
    // Unspecific modules: first kernel, second ramdisk; /chosen has 1/1 cells.
    let c = Chosen {
        chosen_cells: Some((1, 1)),
        modules: vec![
            (vec!["multiboot,module"], vec![0x4800_0000, 0x10_0000]),
            (vec!["multiboot,module"], vec![0x4900_0000, 0x2000]),
            // QEMU-style 2+2 cells despite the parent's 1/1.
            (
                vec!["multiboot,module", "xen,xsm-policy"],
                vec![0, 0x4a00_0000, 0, 0x1000],
            ),
        ],
        ..Default::default()
    };
    let bi = parse_boot_info(&synth(&c, |_| {})).unwrap();
    let dom0 = bi.dom0.unwrap();
    assert_eq!(dom0.kernel, r(0x4800_0000, 0x10_0000));
    assert_eq!(dom0.initrd, Some(r(0x4900_0000, 0x2000)));
    assert_eq!(bi.modules.len(), 3);
    assert_eq!(bi.modules[2], r(0x4a00_0000, 0x1000));

    // A module reg that fits neither layout is an error, not a panic.
    let c = Chosen {
        modules: vec![(vec!["multiboot,kernel", "multiboot,module"], vec![1, 2, 3])],
        ..Default::default()
    };
    assert_eq!(
        parse_boot_info(&synth(&c, |_| {})),
        Err(DtError::BadProperty("module reg"))
    );
}

#[test]
fn spin_table_cpus_gic400_and_defaults() {
    let bi = parse_boot_info(&synth(&Chosen::default(), |_| {})).unwrap();
    assert_eq!(
        bi.cpus,
        [
            Cpu {
                mpidr: 0,
                enable: EnableMethod::SpinTable {
                    release_addr: PhysAddr(0xd8)
                }
            },
            Cpu {
                mpidr: 0x100,
                enable: EnableMethod::SpinTable {
                    release_addr: PhysAddr(0xe0)
                }
            },
        ]
    );
    assert_eq!(
        bi.gic,
        Gic::V2 {
            gicd: r(0xff84_1000, 0x1000),
            gicc: r(0xff84_2000, 0x2000),
            gich: None,
            gicv: None,
            maintenance_irq: None
        }
    );
    // No timer node: SBSA defaults. No memory, psci, stdout: empty/None.
    assert_eq!(bi.timer, Timer::default());
    assert!(bi.ram.is_empty());
    assert_eq!(bi.psci, None);
    assert_eq!(bi.stdout, None);
    assert_eq!(bi.model, "vendor,board");
}

#[test]
fn stdout_alias_with_options_and_ranges() {
    let c = Chosen {
        stdout: Some("serial0:115200n8"),
        ..Default::default()
    };
    let dtb = synth(&c, |w| {
        let soc = w.begin_node("soc").unwrap();
        w.property_u32("#address-cells", 1).unwrap();
        w.property_u32("#size-cells", 1).unwrap();
        // bus 0x7e000000 -> CPU 0xfe000000 (like the Raspberry Pi 4).
        w.property_array_u32("ranges", &[0x7e00_0000, 0, 0xfe00_0000, 0x180_0000])
            .unwrap();
        let u = w.begin_node("serial@7e201000").unwrap();
        w.property("compatible", &strlist(&["arm,pl011", "arm,primecell"]))
            .unwrap();
        w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
        w.end_node(u).unwrap();
        w.end_node(soc).unwrap();
        let al = w.begin_node("aliases").unwrap();
        w.property_string("serial0", "/soc/serial@7e201000")
            .unwrap();
        w.end_node(al).unwrap();
    });
    assert_eq!(
        parse_boot_info(&dtb).unwrap().stdout,
        Some(Uart {
            base: PhysAddr(0xfe20_1000),
            size: 0x200,
            compatible: "arm,pl011".into(),
            path: "/soc/serial@7e201000".into(),
        })
    );
    let dt = DeviceTree::parse(&dtb).unwrap();
    let u = dt.find_path_or_alias("serial0").unwrap();
    assert_eq!(dt.reg_translated(u).unwrap(), [(0xfe20_1000, 0x200)]);
    assert_eq!(dt.path(u), "/soc/serial@7e201000");
}

/// The Raspberry Pi 4's two console candidates under `/soc` (bus addresses
/// 0x7e.. at 0xfe..): the PL011 (`serial0`) and the mini UART (`serial1`).
fn pi4_uarts(w: &mut FdtWriter) {
    let soc = w.begin_node("soc").unwrap();
    w.property_u32("#address-cells", 1).unwrap();
    w.property_u32("#size-cells", 1).unwrap();
    w.property_array_u32("ranges", &[0x7e00_0000, 0, 0xfe00_0000, 0x180_0000])
        .unwrap();
    let u = w.begin_node("serial@7e201000").unwrap();
    w.property("compatible", &strlist(&["arm,pl011", "arm,primecell"]))
        .unwrap();
    w.property_array_u32("reg", &[0x7e20_1000, 0x200]).unwrap();
    w.end_node(u).unwrap();
    let u = w.begin_node("serial@7e215040").unwrap();
    w.property("compatible", &strlist(&["brcm,bcm2835-aux-uart"]))
        .unwrap();
    w.property_array_u32("reg", &[0x7e21_5040, 0x40]).unwrap();
    w.end_node(u).unwrap();
    w.end_node(soc).unwrap();
    let al = w.begin_node("aliases").unwrap();
    w.property_string("serial0", "/soc/serial@7e201000")
        .unwrap();
    w.property_string("serial1", "/soc/serial@7e215040")
        .unwrap();
    w.end_node(al).unwrap();
}

#[test]
fn stdout_path_mini_uart_and_dtuart_override() {
    let mini = Uart {
        base: PhysAddr(0xfe21_5040),
        size: 0x40,
        compatible: "brcm,bcm2835-aux-uart".into(),
        path: "/soc/serial@7e215040".into(),
    };
    let pl011 = Uart {
        base: PhysAddr(0xfe20_1000),
        size: 0x200,
        compatible: "arm,pl011".into(),
        path: "/soc/serial@7e201000".into(),
    };
    let stdout = |xen_args: Option<&str>| {
        let c = Chosen {
            stdout: Some("serial1:115200n8"),
            xen_bootargs: xen_args,
            ..Default::default()
        };
        parse_boot_info(&synth(&c, pi4_uarts)).unwrap().stdout
    };
    // The Pi firmware's default: stdout-path names the mini UART.
    let s = stdout(None).unwrap();
    assert_eq!(s, mini);
    assert_eq!(s.kind(), Some(UartKind::Bcm2835Aux));
    // Xen's dtuart= wins, by alias or by path (options dropped).
    let s = stdout(Some("dtuart=serial0 loglvl=all")).unwrap();
    assert_eq!(s, pl011);
    assert_eq!(s.kind(), Some(UartKind::Pl011));
    assert_eq!(
        stdout(Some("console=dtuart dtuart=/soc/serial@7e201000:115200n8")),
        Some(pl011)
    );
    // A dtuart= naming nothing falls back to stdout-path.
    assert_eq!(stdout(Some("dtuart=serial7")), Some(mini));
    assert_eq!(
        UartKind::from_compatible("arm,sbsa-uart"),
        Some(UartKind::Pl011)
    );
    assert_eq!(UartKind::from_compatible("ns16550a"), None);
}

#[test]
fn missing_gic_and_cpus_are_errors() {
    let mut w = FdtWriter::new().unwrap();
    let root = w.begin_node("").unwrap();
    let cpus = w.begin_node("cpus").unwrap();
    w.end_node(cpus).unwrap();
    w.end_node(root).unwrap();
    let dtb = w.finish().unwrap();
    assert_eq!(
        parse_boot_info(&dtb),
        Err(DtError::Missing("interrupt-controller"))
    );
}
