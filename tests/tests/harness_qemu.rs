//! Harness tests that need the real `qemu-system-aarch64` and `dtc` (installed by
//! `make setup`) but not the hypervisor: they check that the console plumbing and the
//! dom0less device-tree path work with the QEMU we actually run.

use oxen_tests::{DEFAULT_TIMEOUT, DomainNode, Error, Qemu, re, temp_path};
use std::path::PathBuf;
use std::process::Command;

/// A file of `len` bytes standing in for an image (QEMU only loads it; nothing runs).
fn dummy_image(stem: &str, len: usize) -> PathBuf {
    let dir = oxen_tests::target_dir().join("qemu-tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{stem}-{}.bin", std::process::id()));
    let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Removes the dummy images when a test ends.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn decompile(dtb: &std::path::Path) -> String {
    let out = Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(dtb)
        .output()
        .expect("dtc not found: run `make setup`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The serial console is QEMU's stdio, muxed with the monitor: typing Ctrl-A c reaches the
/// monitor, whose answers come back as console lines, and `quit` ends QEMU with status 0.
#[test]
fn real_qemu_console_round_trip_through_monitor() -> Result<(), Error> {
    let kernel = dummy_image("monitor-kernel", 4096);
    let _cleanup = Cleanup(vec![kernel.clone()]);
    let mut q = Qemu::new().kernel(kernel).arg("-S").spawn()?;
    q.send("\x01c")?;
    q.expect(re(r"^QEMU \d+\.\d+\.\d+.* monitor"), DEFAULT_TIMEOUT)?;
    q.send("info version\n")?;
    q.expect(re(r"^\d+\.\d+\.\d+"), DEFAULT_TIMEOUT)?;
    q.send("quit\n")?;
    q.expect_exit_code(0, DEFAULT_TIMEOUT)
}

/// `with_domains` produces a `-dtb` that QEMU accepts and passes on unchanged apart from its
/// own fix-ups: QEMU is asked to dump the tree of the final command line.
#[test]
fn dom0less_nodes_survive_qemu_dtb_loading() -> Result<(), Error> {
    let hv = dummy_image("dom0less-hv", 4096);
    let dom0 = dummy_image("dom0less-dom0", 3000);
    let g1 = dummy_image("dom0less-g1", 5000);
    let g2 = dummy_image("dom0less-g2", 0x2345);
    let dumped = temp_path("dom0less-final", "dtb")?;
    let _cleanup = Cleanup(vec![
        hv.clone(),
        dom0.clone(),
        g1.clone(),
        g2.clone(),
        dumped.clone(),
    ]);
    let base = Qemu::new()
        .gic_version(2)
        .kernel(&hv)
        .append("loglvl=all")
        .guest_kernel(&dom0, 0x5200_0000, "dom0 args")
        .name("dom0less-selftest");
    let domains = [
        DomainNode::new(&g1, 0x5000_0000, "oxen.test=count oxen.count=20"),
        DomainNode::new(&g2, 0x5100_0000, "oxen.test=oob")
            .memory_mib(128)
            .cpus(2),
    ];
    let q = base.with_domains(&domains)?;
    let cmd = q.command_line();
    assert!(cmd.contains(" -dtb "), "{cmd}");
    assert!(
        cmd.contains(&format!(
            "-device loader,file={},addr=0x50000000,force-raw=on",
            g1.display()
        )),
        "{cmd}"
    );

    q.dump_dtb(&dumped)?;
    let dts = decompile(&dumped);
    let chosen = &dts[dts.find("\tchosen {").expect("no /chosen")..];
    for want in [
        "bootargs = \"loglvl=all\";",
        "domU1 {",
        "compatible = \"xen,domain\";",
        "memory = <0x00 0x10000>;",
        "cpus = <0x01>;",
        "module@50000000 {",
        "compatible = \"multiboot,kernel\\0multiboot,module\";",
        "reg = <0x00 0x50000000 0x00 0x1388>;",
        "bootargs = \"oxen.test=count oxen.count=20\";",
        "domU2 {",
        "memory = <0x00 0x20000>;",
        "cpus = <0x02>;",
        "reg = <0x00 0x51000000 0x00 0x2345>;",
        "bootargs = \"oxen.test=oob\";",
        "bootargs = \"dom0 args\";",
    ] {
        assert!(chosen.contains(want), "missing {want:?} in\n{chosen}");
    }
    // The guest-loader (Dom0) module appears once, directly under /chosen.
    assert_eq!(dts.matches("module@0x52000000 {").count(), 1, "{chosen}");
    // The machine options reached the tree too.
    assert!(dts.contains("arm,cortex-a15-gic"), "GICv2 expected");
    Ok(())
}
