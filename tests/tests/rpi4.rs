//! oxen on QEMU's Raspberry Pi 4 model (`-machine raspi4b`): the same `oxen.bin` as on
//! `virt`, loaded at 0x20_0000 instead of 0x4020_0000, with `boards/rpi4.board`.
//!
//! Machine: 4 Cortex-A72 entered at EL2, GIC-400 (GICv2 with virtualization extensions),
//! secondaries in QEMU's spin table (no PSCI), 960 MiB of RAM described from 0, the PL011 as
//! the first serial port and the mini UART (BCM2835 AUX UART1) as the second, reset and
//! power-off through the PM block's watchdog, which ends QEMU with status 0 under
//! `-no-reboot`. The DT's `stdout-path` names the mini UART, as on the real board; the tests
//! that read the first serial port (QEMU's stdio under `-nographic`) give oxen Xen's
//! `dtuart=serial0` (the PL011), the mini-UART tests wire the second port to stdio.
//!
//! Device tree: Debian's own `bcm2711-rpi-4-b.dtb` from the Dom0 kernel package that
//! `make dom0` unpacks (`.cache/dom0-root`), with the edits `shared/research/rpi4.md` lists:
//! six nodes QEMU does not model disabled, `/chosen` given 2/2 cells and the Xen
//! boot-module nodes (`multiboot,kernel`/`multiboot,ramdisk` with their `reg`,
//! `xen,xen-bootargs`, `xen,dom0-bootargs`), because `-device guest-loader` silently does
//! not reach the DTB on raspi4b. The modules are loaded with `-device loader`.
//!
//! * The bare-metal test guest as Dom0: banner (4 CPUs, GICv2), board line, all three
//!   secondaries up, the guest runs and its power-off ends QEMU with 0.
//! * Debian's Linux as Dom0 (`oxen.dom0=check`): 4 vCPUs, Xen found, event channels ping,
//!   Dom0's `poweroff` ends QEMU with 0.
//! * Debian's Linux as Dom0 to its shell prompt, with Debian's Linux as a boot-time
//!   (dom0less) DomU beside it on its emulated UART: the DomU reaches its `/init`, typed
//!   input reaches Dom0's shell, and `poweroff` there ends QEMU with 0.
//! * The mini UART as the console, chosen by `stdout-path`: oxen's and the guest's lines on
//!   the second serial port, nothing on the PL011.
//! * The real board's path, with the SD-card image `make sdcard` ships (the same script,
//!   `qemu/build-rpi4-sd.sh`): Debian's U-Boot reads `boot.scr` from its FAT partition,
//!   loads oxen (at 0x20_0000 by `booti`) and Dom0 from it and boots; with the test guest on
//!   the PL011 (`RPI4_CONSOLE=pl011`), and with Linux on the mini UART (the image's default)
//!   to its shell, typed input reaching it (minutes: QEMU's SD card reads about 1 MB/s).

use oxen_tests::dom0shell::{self, Budget, SHELL_ARGS};
use oxen_tests::{Error, LinuxDom0, Qemu, Running, re};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where the Dom0 kernel goes (clear of the spin table page, the image at 0x20_0000 and
/// QEMU's DTB at 0x0800_0000).
const KERNEL_ADDR: u64 = 0x1000_0000;
/// Nodes of Debian's DTB that QEMU 10.0 does not model (accesses abort).
const UNMODELLED: &[&str] = &[
    "clock@7ef00000",
    "interrupt-controller@7ef00100",
    "hdmi@7ef00700",
    "i2c@7ef04500",
    "hdmi@7ef05700",
    "i2c@7ef09500",
];
/// Time allowed for one whole test, before scaling.
const BUDGET: Duration = Duration::from_secs(600);

/// The cache directory `make dom0` fills (`$OXEN_CACHE` or `.cache`).
fn cache_dir() -> PathBuf {
    std::env::var_os("OXEN_CACHE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| oxen_tests::workspace_root().join(".cache"))
}

/// Debian's Raspberry Pi 4 DTB from the unpacked Dom0 kernel package.
fn debian_rpi4_dtb() -> PathBuf {
    let cache = cache_dir();
    let kver = std::fs::read_to_string(cache.join("dom0/kver"))
        .expect(".cache/dom0/kver missing: run `make dom0`");
    let p = cache.join(format!(
        "dom0-root/usr/lib/linux-image-{}/broadcom/bcm2711-rpi-4-b.dtb",
        kver.trim()
    ));
    assert!(p.is_file(), "{} missing: run `make dom0`", p.display());
    p
}

fn fdtput(dtb: &Path, args: &[&str]) {
    let st = Command::new("fdtput")
        .arg(dtb)
        .args(args)
        .status()
        .expect("fdtput (device-tree-compiler) not found: run `make setup`");
    assert!(st.success(), "fdtput {args:?} failed");
}

/// A module to describe under `/chosen` (or under `/chosen/<domain>`): its file, load
/// address and `compatible`.
struct Module<'a> {
    file: &'a Path,
    addr: u64,
    kind: &'a str,
    /// The boot-time domain node it belongs to (`None`: Dom0's).
    domain: Option<&'a BootDomain<'a>>,
}

/// A dom0less domain node `/chosen/<name>` (Xen's binding): RAM, vCPUs, emulated UART,
/// its kernel's command line.
struct BootDomain<'a> {
    name: &'a str,
    memory_mib: u64,
    cpus: u32,
    bootargs: &'a str,
}

fn add_domain_node(dtb: &Path, d: &BootDomain<'_>) {
    let node = format!("/chosen/{}", d.name);
    fdtput(dtb, &["-c", &node]);
    fdtput(dtb, &["-t", "s", &node, "compatible", "xen,domain"]);
    fdtput(dtb, &["-t", "x", &node, "#address-cells", "2"]);
    fdtput(dtb, &["-t", "x", &node, "#size-cells", "2"]);
    let kib = d.memory_mib * 1024;
    fdtput(
        dtb,
        &[
            "-t",
            "x",
            &node,
            "memory",
            &format!("{:x}", kib >> 32),
            &format!("{:x}", kib & 0xffff_ffff),
        ],
    );
    fdtput(dtb, &["-t", "x", &node, "cpus", &format!("{:x}", d.cpus)]);
    fdtput(dtb, &[&node, "vpl011"]);
}

/// Debian's DTB edited for QEMU raspi4b and for booting oxen with `modules`.
fn rpi4_dtb(name: &str, hyp_args: &str, dom0_args: &str, modules: &[Module<'_>]) -> PathBuf {
    let dir = oxen_tests::target_dir().join("rpi4");
    std::fs::create_dir_all(&dir).expect("creating target/rpi4");
    let out = dir.join(format!("{name}.dtb"));
    std::fs::copy(debian_rpi4_dtb(), &out).expect("copying the DTB");
    for n in UNMODELLED {
        fdtput(
            &out,
            &["-t", "s", &format!("/soc/{n}"), "status", "disabled"],
        );
    }
    fdtput(&out, &["-t", "x", "/chosen", "#address-cells", "2"]);
    fdtput(&out, &["-t", "x", "/chosen", "#size-cells", "2"]);
    fdtput(&out, &["-t", "s", "/chosen", "xen,xen-bootargs", hyp_args]);
    fdtput(
        &out,
        &["-t", "s", "/chosen", "xen,dom0-bootargs", dom0_args],
    );
    let mut domains: Vec<&str> = Vec::new();
    for m in modules {
        let size = std::fs::metadata(m.file).expect("module file").len();
        let parent = match m.domain {
            None => "/chosen".to_string(),
            Some(d) => {
                if !domains.contains(&d.name) {
                    add_domain_node(&out, d);
                    domains.push(d.name);
                }
                format!("/chosen/{}", d.name)
            }
        };
        let node = format!("{parent}/module@{:x}", m.addr);
        fdtput(&out, &["-c", &node]);
        if let Some(d) = m.domain.filter(|_| m.kind == "multiboot,kernel") {
            fdtput(&out, &["-t", "s", &node, "bootargs", d.bootargs]);
        }
        fdtput(
            &out,
            &["-t", "s", &node, "compatible", m.kind, "multiboot,module"],
        );
        fdtput(
            &out,
            &[
                "-t",
                "x",
                &node,
                "reg",
                &format!("{:x}", m.addr >> 32),
                &format!("{:x}", m.addr & 0xffff_ffff),
                &format!("{:x}", size >> 32),
                &format!("{:x}", size & 0xffff_ffff),
            ],
        );
    }
    out
}

/// oxen on raspi4b with `dtb` and the modules loaded where it says.
fn raspi4b(dtb: &Path, modules: &[Module<'_>]) -> Result<Qemu, Error> {
    let mut q = Qemu::oxen()?
        .machine_type("raspi4b")
        .smp(4)
        .memory_mib(2048)
        .dtb(dtb)
        // QEMU's own notes on the nodes it removes from the DTB (stderr).
        .allow(re(
            r"^qemu-system-aarch64: warning: bcm2711 dtc: .* has been disabled!$",
        ));
    for m in modules {
        q = q.loader(m.file, m.addr);
    }
    Ok(q)
}

/// The boot up to "scheduling guests": banner, board, spin-table secondaries.
fn expect_oxen_boot(q: &mut Running, b: &Budget) -> Result<(), Error> {
    q.expect(
        re(r"^\(oxen\) oxen \S+ \(Xen ABI 4\.17\) on Raspberry Pi 4 Model B: 4 CPUs, 960 MiB RAM, GICv2$"),
        b.left(),
    )?;
    q.expect(
        re(r"^\(oxen\) board: Raspberry Pi 4 \(BCM2711\)$"),
        b.left(),
    )?;
    q.expect(re(r"^\(oxen\) hypervisor image at 0x200000: "), b.left())?;
    // A secondary may log that it is up just after the boot CPU saw it check in.
    q.expect_all(
        &[
            re(r"^\(oxen\) debug: CPU1 up \(MPIDR 0x1\)$"),
            re(r"^\(oxen\) debug: CPU2 up \(MPIDR 0x2\)$"),
            re(r"^\(oxen\) debug: CPU3 up \(MPIDR 0x3\)$"),
            re(r"^\(oxen\) boot done in \d+ us"),
        ],
        b.left(),
    )?;
    Ok(())
}

#[test]
fn raspi4b_test_guest_dom0_four_cpus_by_spin_table_and_pm_watchdog_poweroff() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let guest = oxen_tests::test_guest_bin()?;
    let modules = [Module {
        file: &guest,
        addr: KERNEL_ADDR,
        kind: "multiboot,kernel",
        domain: None,
    }];
    let dtb = rpi4_dtb(
        "test-guest",
        "dom0_mem=128M loglvl=all dtuart=serial0",
        "oxen.test=hello",
        &modules,
    );
    let mut q = raspi4b(&dtb, &modules)?.spawn()?;
    expect_oxen_boot(&mut q, &b)?;
    q.expect(re("^hello from test guest$"), b.left())?;
    q.expect(re(r"^\(oxen\) d0: shutdown \(poweroff\)$"), b.left())?;
    q.expect(re(r"^\(oxen\) powering off$"), b.left())?;
    q.expect_exit_code(0, b.left())
}

#[test]
fn raspi4b_linux_dom0_on_four_vcpus_pings_and_powers_off() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let dom0 = LinuxDom0::from_cache()?;
    let kernel_size = std::fs::metadata(&dom0.image).expect("Dom0 Image").len();
    let modules = [
        Module {
            file: &dom0.image,
            addr: KERNEL_ADDR,
            kind: "multiboot,kernel",
            domain: None,
        },
        Module {
            file: &dom0.initrd,
            addr: oxen_tests::initrd_addr_after(KERNEL_ADDR, kernel_size),
            kind: "multiboot,ramdisk",
            domain: None,
        },
    ];
    let dtb = rpi4_dtb(
        "linux-dom0",
        "dom0_mem=512M loglvl=all guest_loglvl=all dtuart=serial0",
        "console=hvc0 rdinit=/init oxen.dom0=check oxen.ping=1000",
        &modules,
    );
    let mut q = raspi4b(&dtb, &modules)?;
    for p in dom0shell::linux_forbidden() {
        q = q.forbid(p);
    }
    let mut q = q.spawn()?;
    expect_oxen_boot(&mut q, &b)?;
    q.expect(re(r"Booting Linux on physical CPU 0x0+ "), b.left())?;
    q.expect("Xen 4.17 support found", b.left())?;
    q.expect("smp: Brought up 1 node, 4 CPUs", b.left())?;
    q.expect(re("^OXEN-DOM0-INIT$"), b.left())?;
    q.expect(re("^dom0: hypervisor=xen$"), b.left())?;
    q.expect(re("^dom0: capabilities=control_d$"), b.left())?;
    q.expect(re("^dom0: nr_cpus=4$"), b.left())?;
    q.expect(
        re(r"^evtchn-ping: 1000 round trips, median [0-9.]+ us"),
        b.left(),
    )?;
    q.expect(re("^dom0: evtchn-ping rc=0$"), b.left())?;
    q.expect(re("^dom0: check done$"), b.left())?;
    q.expect("reboot: Power down", b.left())?;
    q.expect(re(r"^\(oxen\) powering off$"), b.left())?;
    q.expect_exit_code(0, b.left())
}

#[test]
fn raspi4b_linux_dom0_shell_with_a_boot_time_linux_domu_beside_it() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let linux = LinuxDom0::from_cache()?;
    let domu_initrd = linux.initrd.with_file_name("domu-initrd.gz");
    let kernel_size = std::fs::metadata(&linux.image).expect("Dom0 Image").len();
    let dom0_initrd = oxen_tests::initrd_addr_after(KERNEL_ADDR, kernel_size);
    let initrd_size = std::fs::metadata(&linux.initrd).expect("Dom0 initrd").len();
    let domu_kernel = oxen_tests::initrd_addr_after(dom0_initrd, initrd_size);
    let domu = BootDomain {
        name: "domU1",
        memory_mib: 128,
        cpus: 1,
        bootargs: "console=ttyAMA0 rdinit=/init",
    };
    let modules = [
        Module {
            file: &linux.image,
            addr: KERNEL_ADDR,
            kind: "multiboot,kernel",
            domain: None,
        },
        Module {
            file: &linux.initrd,
            addr: dom0_initrd,
            kind: "multiboot,ramdisk",
            domain: None,
        },
        Module {
            file: &linux.image,
            addr: domu_kernel,
            kind: "multiboot,kernel",
            domain: Some(&domu),
        },
        Module {
            file: &domu_initrd,
            addr: oxen_tests::initrd_addr_after(domu_kernel, kernel_size),
            kind: "multiboot,ramdisk",
            domain: Some(&domu),
        },
    ];
    let dtb = rpi4_dtb(
        "linux-dom0-domu",
        // 960 MiB minus 83 MiB of modules leave no contiguous 128 MiB beside a 512 MiB
        // Dom0 (oxen gives each domain one bank, Xen several).
        "dom0_mem=384M loglvl=all guest_loglvl=all dtuart=serial0",
        SHELL_ARGS,
        &modules,
    );
    let mut q = raspi4b(&dtb, &modules)?;
    for p in dom0shell::linux_forbidden() {
        q = q.forbid(p);
    }
    let mut q = q.spawn()?;
    expect_oxen_boot(&mut q, &b)?;
    let built = q.lines().iter().any(|l| {
        l.text.starts_with("(oxen) d1: 128 MiB RAM at PA ")
            && l.text.contains("-> IPA 0x40000000, 1 vCPU")
    });
    assert!(
        built,
        "no '(oxen) d1: 128 MiB RAM ...' line before 'boot done'"
    );
    q.expect_all(
        &[
            // Dom0's console output is passed on raw, so a DomU line may start in the
            // middle of one of Dom0's: no `^` anchor.
            re(r"\(d1\) .*Booting Linux on physical CPU"),
            re(r"\(d1\) DOMU-INIT uptime="),
            re("^dom0: starting shell"),
        ],
        b.left(),
    )?;
    // Dom0's console lines are passed on whole while another domain prints too, so its
    // prompt (no newline) shows only later: wait for the shell's banner instead.
    q.expect(
        re(r"^Enter 'help' for a list of built-in commands\.$"),
        b.left(),
    )?;
    q.send("echo oxen-$((40+2))\r")?;
    q.expect(re(r"oxen-42$"), b.left())?;
    q.send("poweroff\r")?;
    q.expect("reboot: Power down", b.left())?;
    q.expect(re(r"^\(oxen\) powering off$"), b.left())?;
    q.expect_exit_code(0, b.left())
}

/// QEMU's second serial port (the mini UART) on stdio, the first (the PL011) into `pl011`.
fn mini_uart_on_stdio(q: Qemu, pl011: &Path) -> Qemu {
    q.arg("-serial")
        .arg(&format!("file:{}", pl011.display()))
        .arg("-serial")
        .arg("mon:stdio")
}

#[test]
fn raspi4b_mini_uart_console_from_stdout_path() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let guest = oxen_tests::test_guest_bin()?;
    let modules = [Module {
        file: &guest,
        addr: KERNEL_ADDR,
        kind: "multiboot,kernel",
        domain: None,
    }];
    // No dtuart=: Debian's DT's stdout-path ("serial1:115200n8") names the mini UART.
    let dtb = rpi4_dtb(
        "mini-uart",
        "dom0_mem=128M loglvl=all",
        "oxen.test=hello",
        &modules,
    );
    let pl011 = dtb.with_extension("pl011.log");
    let _ = std::fs::remove_file(&pl011);
    let mut q = mini_uart_on_stdio(raspi4b(&dtb, &modules)?, &pl011).spawn()?;
    expect_oxen_boot(&mut q, &b)?;
    q.expect(re("^hello from test guest$"), b.left())?;
    q.expect(re(r"^\(oxen\) powering off$"), b.left())?;
    q.expect_exit_code(0, b.left())?;
    let on_pl011 = std::fs::read_to_string(&pl011).unwrap_or_default();
    assert!(
        on_pl011.is_empty(),
        "the PL011 got output while the mini UART was the console: {on_pl011:?}"
    );
    Ok(())
}

/// The real board's path, in QEMU: Debian's U-Boot (`u-boot-rpi`, `rpi_arm64`) as the
/// `-kernel` (QEMU cannot run the VideoCore firmware that loads it from the card), given the
/// DT the Pi firmware would give it, finds `boot.scr` on the SD-card image `make sdcard`
/// builds (`qemu/build-rpi4-sd.sh`, `RPI4_CONSOLE` as given), which loads oxen, Dom0's
/// kernel and initrd from the card's FAT partition, adds the `/chosen` module nodes with
/// U-Boot's `fdt` commands and `booti`s oxen.
fn uboot_sd(
    name: &str,
    console: &str,
    hyp_args: &str,
    dom0_args: &str,
    initrd: bool,
) -> Result<Qemu, Error> {
    let dir = oxen_tests::target_dir().join("rpi4").join(name);
    let dom0 = LinuxDom0::from_cache()?;
    let guest = oxen_tests::test_guest_bin()?;
    let oxen = oxen_tests::oxen_bin()?;
    let mut cmd = Command::new("bash");
    cmd.arg(oxen_tests::workspace_root().join("qemu/build-rpi4-sd.sh"))
        .arg(&dir)
        .arg(&oxen)
        .env("OXEN_ARGS", hyp_args)
        .env("DOM0_ARGS", dom0_args)
        .env("RPI4_CONSOLE", console);
    if initrd {
        cmd.arg(&dom0.image).arg(&dom0.initrd);
    } else {
        cmd.arg(&guest);
    }
    let st = cmd.status().expect("running qemu/build-rpi4-sd.sh");
    assert!(st.success(), "qemu/build-rpi4-sd.sh failed");
    Ok(Qemu::new()
        .machine_type("raspi4b")
        .smp(4)
        .memory_mib(2048)
        .kernel(dir.join("rpi4-qemu/u-boot.bin"))
        .dtb(dir.join("rpi4-qemu/qemu.dtb"))
        .arg("-drive")
        .arg(&format!(
            "if=sd,format=raw,file={}",
            dir.join("oxen-rpi4-sd.img").display()
        ))
        .allow(re(
            r"^qemu-system-aarch64: warning: bcm2711 dtc: .* has been disabled!$",
        )))
}

#[test]
fn raspi4b_uboot_sd_image_boots_oxen_with_the_test_guest_on_the_pl011() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let mut q = uboot_sd(
        "uboot-test-guest",
        "pl011",
        "dom0_mem=128M loglvl=all",
        "oxen.test=hello",
        false,
    )?
    .spawn()?;
    q.expect(re(r"^U-Boot 20\d\d\.\d\d"), b.left())?;
    expect_oxen_boot(&mut q, &b)?;
    q.expect(re("^hello from test guest$"), b.left())?;
    q.expect(re(r"^\(oxen\) powering off$"), b.left())?;
    q.expect_exit_code(0, b.left())
}

#[test]
fn raspi4b_uboot_sd_image_boots_oxen_and_linux_dom0_shell_on_the_mini_uart() -> Result<(), Error> {
    let b = Budget::start(BUDGET);
    let dir = oxen_tests::target_dir().join("rpi4").join("uboot-linux");
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    let pl011 = dir.join("pl011.log");
    let _ = std::fs::remove_file(&pl011);
    let mut q = mini_uart_on_stdio(
        uboot_sd(
            "uboot-linux",
            "mini",
            "dom0_mem=512M loglvl=all",
            SHELL_ARGS,
            true,
        )?,
        &pl011,
    );
    for p in dom0shell::linux_forbidden() {
        q = q.forbid(p);
    }
    // oxen keeps the mini UART: Dom0's 8250 driver must not find it.
    let mut q = q.forbid(re(r"fe215040\.serial")).spawn()?;
    // U-Boot's banner goes to the PL011 before it reads the DT; the rest follows stdout-path.
    q.expect(re(r"^Found U-Boot script /boot\.scr$"), b.left())?;
    q.expect(re(r"^oxen: loading from mmc 0:1$"), b.left())?;
    expect_oxen_boot(&mut q, &b)?;
    q.expect("smp: Brought up 1 node, 4 CPUs", b.left())?;
    q.expect(re("^dom0: starting shell"), b.left())?;
    // The prompt has no newline: wait for the shell's banner, then type.
    q.expect(
        re(r"^Enter 'help' for a list of built-in commands\.$"),
        b.left(),
    )?;
    q.send("echo oxen-$((40+2))\r")?;
    q.expect(re(r"oxen-42$"), b.left())?;
    q.send("poweroff\r")?;
    q.expect("reboot: Power down", b.left())?;
    q.expect(re(r"^\(oxen\) powering off$"), b.left())?;
    q.expect_exit_code(0, b.left())?;
    let on_pl011 = std::fs::read_to_string(&pl011).unwrap_or_default();
    assert!(
        on_pl011.contains("U-Boot 20") && !on_pl011.contains("(oxen)"),
        "the PL011 should carry U-Boot's banner only: {on_pl011:?}"
    );
    Ok(())
}
