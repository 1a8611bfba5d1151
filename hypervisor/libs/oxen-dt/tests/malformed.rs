//! Malformed DTBs must give errors, never panics: truncations, header
//! patches and byte flips over the real fixtures, fed to every entry point.

use oxen_dt::tree::DeviceTree;
use oxen_dt::*;
use oxen_types::{Ipa, IpaRange};

const FIXTURES: [&[u8]; 3] = [
    include_bytes!("data/virt-gicv2.dtb"),
    include_bytes!("data/virt-gicv3.dtb"),
    include_bytes!("data/virt-dom0less.dtb"),
];

fn dom0_cfg() -> Dom0DtConfig {
    Dom0DtConfig {
        ram: vec![IpaRange::new(Ipa(0x6000_0000), 0x2000_0000)],
        vcpus: 2,
        bootargs: "console=hvc0".into(),
        initrd: None,
        hypervisor: HypervisorNode {
            version: (4, 17),
            regions: vec![IpaRange::new(Ipa(0x4020_0000), 0x4_0000)],
            evtchn_ppi: 16,
        },
        hidden_paths: vec!["/pl011@9000000".into()],
        timer: None,
    }
}

/// Run every DTB consumer; return whether the boot-info parser accepted it.
fn exercise(blob: &[u8], dom0: bool) -> bool {
    let _ = dtb_size(blob);
    if dom0 {
        let _ = build_dom0_dt(blob, &dom0_cfg());
    }
    parse_boot_info(blob).is_ok()
}

fn set_be32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn fixtures_are_valid() {
    for f in FIXTURES {
        assert!(exercise(f, true));
        assert!(build_dom0_dt(f, &dom0_cfg()).is_ok());
    }
}

#[test]
fn truncation_is_an_error() {
    for f in FIXTURES {
        for len in 0..f.len() {
            let t = &f[..len];
            assert!(
                DeviceTree::parse(t).is_err(),
                "accepted truncation at {len}"
            );
            assert!(parse_boot_info(t).is_err());
            assert!(build_dom0_dt(t, &dom0_cfg()).is_err());
        }
    }
}

#[test]
fn truncation_with_consistent_header() {
    // Patch totalsize/size_dt_struct/size_dt_strings so the header agrees
    // with the shortened buffer and the parser must walk damaged blocks.
    for f in FIXTURES {
        for len in (40..f.len()).step_by(3) {
            let mut t = f[..len].to_vec();
            set_be32(&mut t, 4, len as u32);
            let off_struct = u32::from_be_bytes(t[8..12].try_into().unwrap()) as usize;
            let off_strings = u32::from_be_bytes(t[12..16].try_into().unwrap()) as usize;
            set_be32(&mut t, 36, len.saturating_sub(off_struct) as u32);
            if off_strings < len {
                let ss = u32::from_be_bytes(t[32..36].try_into().unwrap()) as usize;
                set_be32(&mut t, 32, ss.min(len - off_strings) as u32);
            }
            exercise(&t, len % 5 == 0);
        }
    }
}

#[test]
fn byte_flips() {
    // Every other byte of each fixture (alternating parity between
    // fixtures, which share most of their layout), one corruption each
    // (cycling through zero, all-ones and single-bit flips), to keep the
    // debug build fast.
    for (n, f) in FIXTURES.iter().enumerate() {
        let mut t = f.to_vec();
        for i in (n % 2..f.len()).step_by(2) {
            let v = match i % 4 {
                0 => 0x00,
                1 => 0xff,
                2 => f[i] ^ 0x01,
                _ => f[i] ^ 0x80,
            };
            t[i] = v;
            exercise(&t, i % 16 == 0);
            t[i] = f[i];
        }
    }
}

#[test]
fn random_multi_byte_corruption() {
    // xorshift64: deterministic, so failures reproduce.
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    for f in FIXTURES {
        for _ in 0..2000 {
            let mut t = f.to_vec();
            for _ in 0..1 + next() % 8 {
                let i = (next() as usize) % t.len();
                t[i] = next() as u8;
            }
            exercise(&t, true);
        }
    }
}

#[test]
fn header_corruptions() {
    let f = FIXTURES[1];
    let hdr = |field: usize, v: u32| {
        let mut t = f.to_vec();
        set_be32(&mut t, field * 4, v);
        t
    };
    assert_eq!(
        DeviceTree::parse(&hdr(0, 0xfeedd00d)).err(),
        Some(DtError::Header)
    );
    assert_eq!(
        DeviceTree::parse(&hdr(1, u32::MAX)).err(),
        Some(DtError::TooBig)
    );
    assert_eq!(
        DeviceTree::parse(&hdr(2, u32::MAX)).err(),
        Some(DtError::Header)
    );
    assert_eq!(
        DeviceTree::parse(&hdr(3, u32::MAX)).err(),
        Some(DtError::Header)
    );
    assert_eq!(DeviceTree::parse(&hdr(4, 7)).err(), Some(DtError::Header));
    assert_eq!(DeviceTree::parse(&hdr(5, 15)).err(), Some(DtError::Header));
    assert_eq!(
        DeviceTree::parse(&hdr(8, u32::MAX)).err(),
        Some(DtError::Header)
    );
    assert_eq!(
        DeviceTree::parse(&hdr(9, u32::MAX)).err(),
        Some(DtError::Header)
    );
    // A struct block that ends before FDT_END.
    let mut t = f.to_vec();
    let ss = u32::from_be_bytes(t[36..40].try_into().unwrap());
    set_be32(&mut t, 36, ss - 4);
    assert_eq!(DeviceTree::parse(&t).err(), Some(DtError::Structure));
    // A property name offset past the strings block.
    let mut t = f.to_vec();
    let off_struct = u32::from_be_bytes(t[8..12].try_into().unwrap()) as usize;
    // Root node: BEGIN_NODE, "" padded to 4, then the first PROP token.
    assert_eq!(&t[off_struct + 8..off_struct + 12], &3u32.to_be_bytes());
    set_be32(&mut t, off_struct + 16, 0x00ff_ffff);
    assert_eq!(DeviceTree::parse(&t).err(), Some(DtError::Structure));
    // Trailing bytes after totalsize are ignored.
    let mut t = f.to_vec();
    t.extend_from_slice(&[0xaa; 64]);
    assert!(DeviceTree::parse(&t).is_ok());
}

#[test]
fn deep_nesting_is_rejected() {
    let mut w = vm_fdt::FdtWriter::new().unwrap();
    let mut nodes = vec![w.begin_node("").unwrap()];
    for i in 0..40 {
        nodes.push(w.begin_node(&format!("n{i}")).unwrap());
    }
    while let Some(n) = nodes.pop() {
        w.end_node(n).unwrap();
    }
    let dtb = w.finish().unwrap();
    assert_eq!(DeviceTree::parse(&dtb).err(), Some(DtError::Structure));
}
