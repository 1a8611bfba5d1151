//! `build_guest_dt`: golden comparison with what Xen 4.17's libxl produced,
//! re-parsing with the `fdt` crate and with our own reader.

use std::process::Command;

use oxen_dt::tree::DeviceTree;
use oxen_dt::*;
use oxen_types::{Ipa, IpaRange, PhysAddr, PhysRange};

fn ipa(start: u64, size: u64) -> IpaRange {
    IpaRange::new(Ipa(start), size)
}

/// The configuration of the reference DomU (samples/domu: 256 MiB, 1 vCPU).
fn reference_cfg() -> GuestDtConfig {
    GuestDtConfig {
        ram: vec![ipa(0x4000_0000, 0x1000_0000)],
        vcpus: 1,
        bootargs: "console=hvc0 rdinit=/init ref_scenario=domu ref_io_mb=64 ref_net_mb=64".into(),
        initrd: Some(ipa(0x4800_0000, 0x26_9000)),
        gic: GuestGic::V3 {
            gicd: ipa(0x0300_1000, 0x1_0000),
            gicr: ipa(0x0302_0000, 0x100_0000),
        },
        timer: Timer::default(),
        hypervisor: Some(HypervisorNode {
            version: (4, 17),
            regions: vec![
                ipa(0x3800_0000, 0x100_0000),
                ipa(0x5000_0000, 0xb000_0000),
                ipa(0x2_0000_0000, 0xfe_0000_0000),
            ],
            evtchn_ppi: 31,
        }),
        vpl011: None,
    }
}

/// `dtc -I dtb -O dts`, or `None` when dtc is not installed.
fn dtc(dtb: &[u8]) -> Option<String> {
    let dir = std::env::temp_dir().join(format!("oxen-dt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let path = dir.join(format!("{:x}.dtb", dtb.len() ^ (dtb.as_ptr() as usize)));
    std::fs::write(&path, dtb).ok()?;
    let out = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&path)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&path);
    assert!(out.status.success(), "dtc rejected our DTB");
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn matches_xen_libxl_output() {
    let dtb = build_guest_dt(&reference_cfg()).unwrap();
    match dtc(&dtb) {
        Some(dts) => assert_eq!(dts, include_str!("data/xen-4.17-domu.dts")),
        None => eprintln!("dtc not installed: golden comparison skipped"),
    }
}

#[test]
fn reparses_with_fdt_crate() {
    let mut cfg = reference_cfg();
    cfg.vcpus = 18;
    cfg.vpl011 = Some((Ipa(0x2200_0000), 32));
    cfg.ram.push(ipa(0x2_0000_0000, 0x4000_0000));
    let dtb = build_guest_dt(&cfg).unwrap();
    let fdt = fdt::Fdt::new(&dtb).unwrap();
    let root = fdt.find_node("/").unwrap();
    let compat: Vec<&str> = root.compatible().unwrap().all().collect();
    assert_eq!(compat, ["xen,xenvm-4.17", "xen,xenvm"]);
    let chosen = fdt.find_node("/chosen").unwrap();
    assert_eq!(
        chosen.property("bootargs").unwrap().as_str(),
        Some(cfg.bootargs.as_str())
    );
    assert_eq!(
        chosen.property("linux,initrd-end").unwrap().as_usize(),
        Some(0x4826_9000)
    );
    let cpus: Vec<usize> = fdt
        .find_node("/cpus")
        .unwrap()
        .children()
        .map(|c| c.property("reg").unwrap().as_usize().unwrap())
        .collect();
    // vMPIDR: Aff0 = id & 0xf, Aff1 = id >> 4.
    assert_eq!(cpus.len(), 18);
    assert_eq!(cpus[15], 0xf);
    assert_eq!(cpus[16], 0x100);
    assert_eq!(cpus[17], 0x101);
    assert!(fdt.find_node("/cpus/cpu@101").is_some());
    let mem1: Vec<_> = fdt
        .find_node("/memory@200000000")
        .unwrap()
        .reg()
        .unwrap()
        .map(|r| (r.starting_address as u64, r.size.unwrap() as u64))
        .collect();
    assert_eq!(mem1, [(0x2_0000_0000, 0x4000_0000)]);
    let uart = fdt.find_node("/sbsa-uart@22000000").unwrap();
    assert_eq!(uart.compatible().unwrap().first(), "arm,sbsa-uart");
    let ints: Vec<u8> = uart.property("interrupts").unwrap().value.to_vec();
    assert_eq!(ints, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]);
    let hyp = fdt.find_node("/hypervisor").unwrap();
    assert_eq!(hyp.reg().unwrap().count(), 3);
    assert_eq!(
        hyp.property("interrupts").unwrap().value,
        [0, 0, 0, 1, 0, 0, 0, 15, 0, 0, 0xf, 0x08]
    );
    assert_eq!(
        fdt.find_phandle(65000).unwrap().name,
        "interrupt-controller@3001000"
    );
}

#[test]
fn round_trips_through_boot_info_parser() {
    let mut cfg = reference_cfg();
    cfg.gic = GuestGic::V2 {
        gicd: ipa(0x0300_1000, 0x1000),
        gicc: ipa(0x0300_2000, 0x2000),
    };
    cfg.vcpus = 3;
    cfg.timer = Timer {
        sec_phys: 20,
        phys: 21,
        virt: 22,
        hyp: 26,
    };
    let dtb = build_guest_dt(&cfg).unwrap();
    let bi = parse_boot_info(&dtb).unwrap();
    assert_eq!(bi.ram, [PhysRange::new(PhysAddr(0x4000_0000), 0x1000_0000)]);
    assert_eq!(
        bi.gic,
        Gic::V2 {
            gicd: PhysRange::new(PhysAddr(0x0300_1000), 0x1000),
            gicc: PhysRange::new(PhysAddr(0x0300_2000), 0x2000),
            gich: None,
            gicv: None,
            maintenance_irq: None,
        }
    );
    // Hyp timer is not written, so it reads back as the default.
    assert_eq!(bi.timer, cfg.timer);
    assert_eq!(bi.cpus.len(), 3);
    assert!(bi.cpus.iter().all(|c| c.enable == EnableMethod::Psci));
    assert_eq!(bi.psci, Some(Conduit::Hvc));
    assert_eq!(bi.model, "XENVM-4.17");
    assert!(bi.dom0.is_none());
    let dt = DeviceTree::parse(&dtb).unwrap();
    let chosen = dt.find("/chosen").unwrap();
    assert_eq!(dt.prop_u64(chosen, "linux,initrd-start"), Some(0x4800_0000));
    assert!(dt.find("/hypervisor").is_some());
    if let Some(dts) = dtc(&dtb) {
        assert!(dts.contains("compatible = \"arm,cortex-a15-gic\";"));
    }
}

#[test]
fn no_hypervisor_node_and_no_initrd() {
    let mut cfg = reference_cfg();
    cfg.hypervisor = None;
    cfg.initrd = None;
    let dtb = build_guest_dt(&cfg).unwrap();
    let dt = DeviceTree::parse(&dtb).unwrap();
    assert!(dt.find("/hypervisor").is_none());
    assert!(!dt.has_prop(dt.find("/chosen").unwrap(), "linux,initrd-start"));
}

#[test]
fn bad_configs_are_errors() {
    let with = |f: &dyn Fn(&mut GuestDtConfig)| {
        let mut c = reference_cfg();
        f(&mut c);
        build_guest_dt(&c)
    };
    assert_eq!(with(&|c| c.vcpus = 0), Err(DtError::Config("vcpus")));
    assert_eq!(with(&|c| c.ram.clear()), Err(DtError::Config("ram")));
    assert_eq!(
        with(&|c| c.ram = vec![ipa(0x4000_0000, 0)]),
        Err(DtError::Config("ram"))
    );
    assert_eq!(
        with(&|c| c.hypervisor.as_mut().unwrap().evtchn_ppi = 32),
        Err(DtError::Config("evtchn PPI"))
    );
    assert_eq!(
        with(&|c| c.timer.virt = 15),
        Err(DtError::Config("timer PPI"))
    );
    assert_eq!(
        with(&|c| c.vpl011 = Some((Ipa(0x2200_0000), 31))),
        Err(DtError::Config("vpl011 SPI"))
    );
    assert_eq!(
        with(&|c| c.initrd = Some(ipa(u64::MAX, 2))),
        Err(DtError::Config("initrd"))
    );
    assert_eq!(with(&|c| c.bootargs = "a\0b".into()), Err(DtError::Write));
}
