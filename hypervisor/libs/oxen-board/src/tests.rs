use super::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn boards() -> Vec<Board> {
    builtin().expect("every boards/*.board parses")
}

#[test]
fn builtin_boards_parse_and_include_virt_rpi4_and_generic() {
    let b = boards();
    let ids: Vec<&str> = b.iter().map(|b| b.id.as_str()).collect();
    assert!(ids.contains(&"generic") && ids.contains(&"qemu-virt") && ids.contains(&"rpi4"));
    let rpi = b.iter().find(|b| b.id == "rpi4").unwrap();
    assert_eq!(rpi.reset, PowerMethod::Bcm2835Pm);
    assert_eq!(rpi.power_off, PowerMethod::Bcm2835Pm);
    assert_eq!(rpi.dma_limit, Some(0x4000_0000));
    assert_eq!(rpi.console, ["brcm,bcm2835-aux-uart", "arm,pl011"]);
    let virt = b.iter().find(|b| b.id == "qemu-virt").unwrap();
    assert_eq!(virt.reset, PowerMethod::Psci);
    assert_eq!(virt.cpu_start, CpuStart::Psci);
}

#[test]
fn selection_follows_the_root_compatible_in_preference_order() {
    let b = boards();
    assert_eq!(select(&b, &["linux,dummy-virt"]).unwrap().id, "qemu-virt");
    assert_eq!(
        select(&b, &["raspberrypi,4-model-b", "brcm,bcm2711"])
            .unwrap()
            .id,
        "rpi4"
    );
    // An unknown Pi 4 variant still matches the SoC.
    assert_eq!(
        select(&b, &["raspberrypi,4-foo", "brcm,bcm2711"])
            .unwrap()
            .id,
        "rpi4"
    );
    assert_eq!(select(&b, &["vendor,unknown"]).unwrap().id, "generic");
    assert_eq!(select(&b, &[]).unwrap().id, "generic");
}

#[test]
fn root_compatible_is_read_from_the_dtb() {
    assert_eq!(
        root_compatible(&fixture("bcm2711-rpi-4-b.dtb")).unwrap(),
        ["raspberrypi,4-model-b", "brcm,bcm2711"]
    );
    assert_eq!(
        root_compatible(&fixture("virt-gicv3.dtb")).unwrap(),
        ["linux,dummy-virt"]
    );
    assert!(root_compatible(b"not a dtb").is_err());
}

#[test]
fn pi4_resolves_mini_uart_console_pm_watchdog_and_hidden_pm_and_aux_blocks() {
    let dtb = fixture("bcm2711-rpi-4-b.dtb");
    let info = oxen_dt::parse_boot_info(&dtb).unwrap();
    // stdout-path names the mini UART (serial1), which the board drives.
    assert_eq!(info.stdout.as_ref().unwrap().path, "/soc/serial@7e215040");
    let b = boards();
    let board = select(&b, &["raspberrypi,4-model-b", "brcm,bcm2711"]).unwrap();
    let methods: Vec<EnableMethod> = info.cpus.iter().map(|c| c.enable).collect();
    let s = resolve(board, &dtb, info.stdout.as_ref(), &methods).unwrap();
    let c = s.console.unwrap();
    assert_eq!(c.path, "/soc/serial@7e215040");
    assert_eq!(c.base.as_u64(), 0xfe21_5040);
    assert_eq!(c.kind(), Some(oxen_dt::UartKind::Bcm2835Aux));
    assert_eq!(s.power_base, Some(0xfe10_0000));
    assert_eq!(s.reset, PowerMethod::Bcm2835Pm);
    // The AUX clock gate and SPI masters share the mini UART's 4 KiB page.
    assert_eq!(
        s.hidden_paths,
        [
            "/soc/aux@7e215000",
            "/soc/spi@7e215080",
            "/soc/spi@7e2150c0",
            "/soc/watchdog@7e100000"
        ]
    );
    assert_eq!(s.cpu_start.len(), 4);
    assert!(
        s.cpu_start
            .iter()
            .all(|m| matches!(m, EnableMethod::SpinTable { .. }))
    );
    assert_eq!(
        s.cpu_start[1],
        EnableMethod::SpinTable {
            release_addr: PhysAddr(0xe0)
        }
    );
}

#[test]
fn pi4_console_follows_dtuart_and_skips_a_disabled_stdout_uart() {
    let dtb = fixture("bcm2711-rpi-4-b.dtb");
    let b = boards();
    let board = select(&b, &["brcm,bcm2711"]).unwrap();
    let uart = |path: &str, compatible: &str| Uart {
        base: PhysAddr(0),
        size: 0,
        compatible: compatible.into(),
        path: path.into(),
    };
    // dtuart=serial0: the PL011 is kept.
    let pl011 = uart("/soc/serial@7e201000", "arm,pl011");
    let s = resolve(board, &dtb, Some(&pl011), &[]).unwrap();
    assert_eq!(s.console.as_ref(), Some(&pl011));
    // A disabled PL011 (one of the four extra BCM2711 UARTs): the first
    // enabled UART of the board's list, the mini UART.
    let off = uart("/soc/serial@7e201400", "arm,pl011");
    let s = resolve(board, &dtb, Some(&off), &[]).unwrap();
    assert_eq!(s.console.unwrap().path, "/soc/serial@7e215040");
}

#[test]
fn virt_keeps_stdout_and_psci() {
    let dtb = fixture("virt-gicv3.dtb");
    let info = oxen_dt::parse_boot_info(&dtb).unwrap();
    let b = boards();
    let board = select(&b, &["linux,dummy-virt"]).unwrap();
    let methods: Vec<EnableMethod> = info.cpus.iter().map(|c| c.enable).collect();
    let s = resolve(board, &dtb, info.stdout.as_ref(), &methods).unwrap();
    assert_eq!(s.console.as_ref(), info.stdout.as_ref());
    assert!(s.hidden_paths.is_empty());
    assert_eq!(s.power_base, None);
    assert_eq!(
        (s.reset, s.power_off),
        (PowerMethod::Psci, PowerMethod::Psci)
    );
    assert!(s.cpu_start.iter().all(|m| *m == EnableMethod::Psci));
}

#[test]
fn a_pm_board_without_its_device_falls_back_to_psci() {
    let dtb = fixture("virt-gicv3.dtb");
    let b = parse(
        "x",
        "compatible = \"linux,dummy-virt\"\nreset = \"bcm2835-pm\"\npower-device = \"brcm,bcm2711-pm\"",
    )
    .unwrap();
    let s = resolve(&b, &dtb, None, &[]).unwrap();
    assert_eq!(s.reset, PowerMethod::Psci);
}

#[test]
fn parser_accepts_comments_lists_numbers_and_rejects_bad_files() {
    let b = parse(
        "b",
        "# c\nname = \"B # not a comment\" # comment\ncompatible = \"a,b\" , \"c,d\"\n\
         dma-limit = 0x4000_0000\nhide = \"x\"\n",
    )
    .unwrap();
    assert_eq!(b.name, "B # not a comment");
    assert_eq!(b.compatible, ["a,b", "c,d"]);
    assert_eq!(b.dma_limit, Some(0x4000_0000));
    assert_eq!(
        parse("b", "compatible = \"a\"\ndma-limit = 1024")
            .unwrap()
            .dma_limit,
        Some(1024)
    );

    let err = |t: &str| parse("b", t).unwrap_err();
    assert_eq!(
        err("compatible = \"a\"\nfoo"),
        BoardError::Syntax { line: 2 }
    );
    assert_eq!(
        err("compatible = \"a\"\ncolour = \"red\""),
        BoardError::UnknownKey {
            line: 2,
            key: "colour".into()
        }
    );
    assert!(matches!(
        err("compatible = \"a"),
        BoardError::BadValue { line: 1, .. }
    ));
    assert!(matches!(
        err("compatible = \"a\" \"b\""),
        BoardError::BadValue { .. }
    ));
    assert!(matches!(err("compatible = 3"), BoardError::BadValue { .. }));
    assert!(matches!(
        err("compatible = \"a\"\nreset = \"magic\""),
        BoardError::BadValue { .. }
    ));
    assert!(matches!(
        err("compatible = \"a\"\nreset = \"psci\", \"psci\""),
        BoardError::BadValue { .. }
    ));
    assert!(matches!(
        err("compatible = \"a\"\ndma-limit = 0"),
        BoardError::BadValue { .. }
    ));
    assert!(matches!(
        err("compatible = \"a\"\ncompatible = \"b\""),
        BoardError::Duplicate { line: 2, .. }
    ));
    assert_eq!(err("name = \"x\""), BoardError::Incomplete("compatible"));
    assert_eq!(
        err("compatible = \"a\"\nreset = \"bcm2835-pm\""),
        BoardError::Incomplete("power-device")
    );
    assert_eq!(
        parse_all(&[("x", "compatible = \"a\"")]).unwrap_err().1,
        BoardError::NoGeneric
    );
    assert_eq!(
        parse_all(&[("generic", "compatible = 1")]).unwrap_err().0,
        "generic"
    );
}
