//! Stage-2 table builder tests over fake table memory.

use crate::{MemType, MmError, S2Attrs, Stage2, Stage2Config, TableMemory};
use oxen_types::{Ipa, PhysAddr};
use std::collections::{BTreeMap, HashMap};

const K4: u64 = 0x1000;
const M2: u64 = 0x20_0000;
const G1: u64 = 0x4000_0000;

/// Table pages in a HashMap. New pages are filled with garbage so that code
/// relying on unzeroed pages shows up; freeing an unknown page or touching
/// a freed one panics.
struct FakeMem {
    pages: HashMap<u64, Box<[u64; 512]>>,
    next: u64,
    /// Maximum number of live pages (out of memory beyond it).
    limit: usize,
    allocs: usize,
    frees: usize,
    bbm: Vec<(Ipa, u64)>,
}

impl FakeMem {
    fn new() -> Self {
        Self::with_limit(usize::MAX)
    }
    fn with_limit(limit: usize) -> Self {
        Self {
            pages: HashMap::new(),
            next: 0x8_0000_0000,
            limit,
            allocs: 0,
            frees: 0,
            bbm: Vec::new(),
        }
    }
    fn live(&self) -> usize {
        self.pages.len()
    }
    fn page(&mut self, pa: u64) {
        assert!(
            self.pages
                .insert(pa, Box::new([0xdead_beef; 512]))
                .is_none()
        );
        self.allocs += 1;
    }
}

impl TableMemory for FakeMem {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        if self.live() >= self.limit {
            return None;
        }
        let pa = self.next;
        self.next += K4;
        self.page(pa);
        Some(PhysAddr(pa))
    }
    fn free_table(&mut self, pa: PhysAddr) {
        assert!(self.pages.remove(&pa.0).is_some(), "bad free {pa:?}");
        self.frees += 1;
    }
    fn table(&mut self, pa: PhysAddr) -> &mut [u64; 512] {
        self.pages
            .get_mut(&pa.0)
            .unwrap_or_else(|| panic!("access to non-table page {pa:?}"))
    }
    fn alloc_root(&mut self, pages: usize) -> Option<PhysAddr> {
        if self.live() + pages > self.limit {
            return None;
        }
        let size = pages as u64 * K4;
        let pa = self.next.div_ceil(size) * size;
        for i in 0..pages as u64 {
            self.page(pa + i * K4);
        }
        self.next = pa + size;
        Some(PhysAddr(pa))
    }
    fn flush_for_bbm(&mut self, ipa: Ipa, size: u64) {
        self.bbm.push((ipa, size));
    }
}

/// Only the required methods: default `alloc_root`/`free_root`.
struct PlainMem(FakeMem);

impl TableMemory for PlainMem {
    fn alloc_table(&mut self) -> Option<PhysAddr> {
        self.0.alloc_table()
    }
    fn free_table(&mut self, pa: PhysAddr) {
        self.0.free_table(pa)
    }
    fn table(&mut self, pa: PhysAddr) -> &mut [u64; 512] {
        self.0.table(pa)
    }
}

/// 44-bit IPA, level-0 root (QEMU virt with cortex-a72).
fn cfg44() -> Stage2Config {
    Stage2Config::from_parange(4)
}

fn setup(cfg: Stage2Config) -> (Stage2, FakeMem) {
    let mut mem = FakeMem::new();
    let s2 = Stage2::new(cfg, &mut mem).unwrap();
    (s2, mem)
}

/// (ipa, level) of each leaf in `[start, end)`, walking leaf by leaf.
fn leaves(s2: &Stage2, mem: &mut FakeMem, start: u64, end: u64) -> Vec<(u64, u32)> {
    let mut out = Vec::new();
    let mut a = start;
    while a < end {
        match s2.leaf(mem, Ipa(a)) {
            Some((level, _)) => {
                out.push((a, level));
                a += 1 << (12 + 9 * (3 - level));
            }
            None => a += K4,
        }
    }
    out
}

fn tr(s2: &Stage2, mem: &mut FakeMem, ipa: u64) -> Option<u64> {
    s2.translate(mem, Ipa(ipa)).map(|(pa, _)| pa.0)
}

// ---------------------------------------------------------------- config

#[test]
fn configs_for_each_parange() {
    // (parange, ipa_bits, start_level, root_pages, sl0, ps)
    let expect = [
        (0u8, 32, 1, 1, 1, 0),
        (1, 36, 1, 1, 1, 1),
        (2, 40, 1, 2, 1, 2),
        (3, 42, 1, 8, 1, 3),
        (4, 44, 0, 1, 2, 4),
        (5, 48, 0, 1, 2, 5),
        (6, 48, 0, 1, 2, 5), // 52-bit PA capped
        (7, 40, 1, 2, 1, 2), // reserved: conservative
        (15, 40, 1, 2, 1, 2),
    ];
    for (pr, bits, sl, pages, sl0, ps) in expect {
        let c = Stage2Config::from_parange(pr);
        assert_eq!(
            (c.ipa_bits, c.start_level, c.root_pages, c.sl0, c.ps, c.t0sz),
            (bits, sl, pages, sl0, ps, 64 - bits),
            "parange {pr}"
        );
        assert!(c.is_valid(), "parange {pr}");
        let v = c.vtcr();
        assert_eq!(v & 0x3f, u64::from(64 - bits), "T0SZ");
        assert_eq!((v >> 6) & 3, u64::from(sl0), "SL0");
        assert_eq!((v >> 8) & 3, 0b01, "IRGN0 WBWA");
        assert_eq!((v >> 10) & 3, 0b01, "ORGN0 WBWA");
        assert_eq!((v >> 12) & 3, 0b11, "SH0 inner");
        assert_eq!((v >> 14) & 3, 0b00, "TG0 4K");
        assert_eq!((v >> 16) & 7, u64::from(ps), "PS");
        assert_eq!(v >> 31, 1, "RES1 bit 31 and nothing above");
        assert_eq!(v & (0xfff8 << 16) & !(1 << 31), 0, "other fields zero");
    }
    // Values Xen 4.17 prints ("P2M: ... VTCR 0x...") under QEMU: 44-bit
    // (cortex-a72, /work/shared/reference logs) and the common 40-bit one.
    assert_eq!(Stage2Config::from_parange(4).vtcr(), 0x8004_3594);
    assert_eq!(Stage2Config::from_parange(2).vtcr(), 0x8002_3558);
}

#[test]
fn invalid_configs_rejected() {
    let mut mem = FakeMem::new();
    let good = Stage2Config::from_parange(2);
    let bad = [
        Stage2Config {
            root_pages: 1,
            ..good
        },
        Stage2Config { t0sz: 25, ..good },
        Stage2Config { sl0: 2, ..good },
        Stage2Config {
            start_level: 3,
            ..good
        },
        Stage2Config {
            ipa_bits: 48,
            t0sz: 16,
            ..good
        },
        Stage2Config {
            ipa_bits: 52,
            t0sz: 12,
            start_level: 0,
            sl0: 2,
            root_pages: 8,
            ps: 6,
        },
    ];
    for c in bad {
        assert!(!c.is_valid(), "{c:?}");
        assert_eq!(Stage2::new(c, &mut mem).err(), Some(MmError::OutOfRange));
    }
    assert_eq!(mem.allocs, 0);
    // A hand-made level-2 root config is valid and usable (30-bit IPA).
    let small = Stage2Config {
        ipa_bits: 30,
        start_level: 2,
        root_pages: 1,
        t0sz: 34,
        sl0: 0,
        ps: 0,
    };
    assert!(small.is_valid());
    let mut s2 = Stage2::new(small, &mut mem).unwrap();
    s2.map(
        &mut mem,
        Ipa(0),
        PhysAddr(0x4000_0000),
        4 * M2,
        S2Attrs::RAM,
    )
    .unwrap();
    assert_eq!(s2.leaf(&mut mem, Ipa(M2)).unwrap().0, 2);
    assert_eq!(
        s2.map(&mut mem, Ipa(G1 - K4), PhysAddr(0), 2 * K4, S2Attrs::RAM),
        Err(MmError::OutOfRange)
    );
    s2.destroy(&mut mem);
    assert_eq!(mem.live(), 0);
}

#[test]
fn root_allocation() {
    // Concatenated roots come aligned to their size and are zeroed.
    for pr in 0..=5 {
        let cfg = Stage2Config::from_parange(pr);
        let (s2, mut mem) = setup(cfg);
        assert_eq!(s2.config(), cfg);
        assert_eq!(mem.live(), cfg.root_pages);
        assert!(s2.root().is_aligned(cfg.root_pages as u64 * K4));
        for i in 0..cfg.root_pages as u64 {
            assert!(mem.table(s2.root().add(i * K4)).iter().all(|&d| d == 0));
        }
        s2.destroy(&mut mem);
        assert_eq!(mem.live(), 0);
    }
    // The default alloc_root serves single-page roots only.
    let mut plain = PlainMem(FakeMem::new());
    let s2 = Stage2::new(cfg44(), &mut plain).unwrap();
    s2.destroy(&mut plain);
    assert_eq!(
        Stage2::new(Stage2Config::from_parange(2), &mut plain).err(),
        Some(MmError::OutOfMemory)
    );
    // Out of memory for the root.
    let mut none = FakeMem::with_limit(0);
    assert_eq!(
        Stage2::new(cfg44(), &mut none).err(),
        Some(MmError::OutOfMemory)
    );
    // A misaligned concatenated root is refused and given back.
    struct Skewed(FakeMem);
    impl TableMemory for Skewed {
        fn alloc_table(&mut self) -> Option<PhysAddr> {
            self.0.alloc_table()
        }
        fn free_table(&mut self, pa: PhysAddr) {
            self.0.free_table(pa)
        }
        fn table(&mut self, pa: PhysAddr) -> &mut [u64; 512] {
            self.0.table(pa)
        }
        fn alloc_root(&mut self, pages: usize) -> Option<PhysAddr> {
            self.0.alloc_table();
            let first = self.0.alloc_table()?;
            for _ in 1..pages {
                self.0.alloc_table();
            }
            Some(first)
        }
    }
    let mut sk = Skewed(FakeMem::new());
    assert_eq!(
        Stage2::new(Stage2Config::from_parange(2), &mut sk).err(),
        Some(MmError::Misaligned)
    );
    assert_eq!(sk.0.live(), 1, "only the skew page remains");
}

// ---------------------------------------------------------------- map

#[test]
fn one_gib_block_at_level_1() {
    for pr in [2, 4] {
        let (mut s2, mut mem) = setup(Stage2Config::from_parange(pr));
        let before = mem.live();
        s2.map(&mut mem, Ipa(G1), PhysAddr(2 * G1), G1, S2Attrs::RAM)
            .unwrap();
        // One more table only when the root is at level 0.
        let extra = if pr == 4 { 1 } else { 0 };
        assert_eq!(mem.live(), before + extra);
        assert_eq!(leaves(&s2, &mut mem, 0, 4 * G1), vec![(G1, 1)]);
        let (_, d) = s2.leaf(&mut mem, Ipa(G1 + 0x1234_5000)).unwrap();
        assert_eq!(d & 0b11, 0b01, "block");
        assert_eq!(d & 0x0000_ffff_ffff_f000, 2 * G1);
        assert_eq!(
            tr(&s2, &mut mem, G1 + 0x1234_5678),
            Some(2 * G1 + 0x1234_5678)
        );
        assert_eq!(tr(&s2, &mut mem, G1 - 1), None);
        assert_eq!(tr(&s2, &mut mem, 2 * G1), None);
        s2.destroy(&mut mem);
        assert_eq!(mem.live(), 0);
    }
}

#[test]
fn two_mib_blocks_at_level_2() {
    let (mut s2, mut mem) = setup(cfg44());
    // 2 MiB-aligned but not 1 GiB-aligned.
    s2.map(
        &mut mem,
        Ipa(G1 + M2),
        PhysAddr(0x8020_0000),
        3 * M2,
        S2Attrs::RAM,
    )
    .unwrap();
    assert_eq!(
        leaves(&s2, &mut mem, G1, 2 * G1),
        vec![(G1 + M2, 2), (G1 + 2 * M2, 2), (G1 + 3 * M2, 2)]
    );
    assert_eq!(mem.live(), 3, "root, L1, L2");
    // A 1 GiB-sized range whose PA is only 2 MiB-aligned uses 512 L2 blocks.
    s2.map(
        &mut mem,
        Ipa(4 * G1),
        PhysAddr(0x1_0020_0000),
        G1,
        S2Attrs::RAM,
    )
    .unwrap();
    let l = leaves(&s2, &mut mem, 4 * G1, 5 * G1);
    assert_eq!(l.len(), 512);
    assert!(l.iter().all(|&(_, level)| level == 2));
    assert_eq!(tr(&s2, &mut mem, 5 * G1 - 1), Some(0x1_4020_0000 - 1));
}

#[test]
fn unaligned_gives_pages() {
    let (mut s2, mut mem) = setup(cfg44());
    // IPA 2 MiB-aligned but PA only 4 KiB-aligned: pages only.
    s2.map(
        &mut mem,
        Ipa(G1),
        PhysAddr(0x8000_1000),
        2 * M2,
        S2Attrs::RAM,
    )
    .unwrap();
    let l = leaves(&s2, &mut mem, G1, G1 + 2 * M2);
    assert_eq!(l.len(), 1024);
    assert!(l.iter().all(|&(_, level)| level == 3));
    let (_, d) = s2.leaf(&mut mem, Ipa(G1)).unwrap();
    assert_eq!(d & 0b11, 0b11, "page descriptor has bit 1 set");
    for i in 0..1024 {
        assert_eq!(
            tr(&s2, &mut mem, G1 + i * K4 + 8),
            Some(0x8000_1000 + i * K4 + 8)
        );
    }
    assert_eq!(mem.live(), 5, "root, L1, L2, 2 x L3");
}

#[test]
fn mixed_range_minimal_descriptors() {
    let (mut s2, mut mem) = setup(cfg44());
    // 1 GiB + 3 MiB + 8 KiB from a 1 GiB-aligned IPA/PA: one L1 block, one
    // L2 block, then 258 pages.
    let size = G1 + 3 * 0x10_0000 + 2 * K4;
    s2.map(&mut mem, Ipa(G1), PhysAddr(3 * G1), size, S2Attrs::RAM)
        .unwrap();
    let l = leaves(&s2, &mut mem, 0, 4 * G1);
    assert_eq!(l[0], (G1, 1));
    assert_eq!(l[1], (2 * G1, 2));
    assert_eq!(l.len(), 2 + 258);
    assert!(l[2..].iter().all(|&(_, level)| level == 3));
    assert_eq!(l.last().unwrap().0, G1 + size - K4);
    assert_eq!(tr(&s2, &mut mem, G1 + size - 1), Some(3 * G1 + size - 1));
    assert_eq!(tr(&s2, &mut mem, G1 + size), None);

    // Starting two pages below a 2 MiB boundary: 2 pages, 2 blocks, 4 pages.
    let base = 8 * G1 + 5 * M2 - 2 * K4;
    let size = 2 * K4 + 2 * M2 + 4 * K4;
    s2.map(&mut mem, Ipa(base), PhysAddr(base), size, S2Attrs::RAM)
        .unwrap();
    let levels: Vec<u32> = leaves(&s2, &mut mem, base - M2, base + size + M2)
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    assert_eq!(levels, vec![3, 3, 2, 2, 3, 3, 3, 3]);
    // Translate at every page (with an offset) of the whole range.
    for off in (0..size).step_by(K4 as usize) {
        assert_eq!(
            tr(&s2, &mut mem, base + off + 0xabc),
            Some(base + off + 0xabc)
        );
    }
}

#[test]
fn permission_and_memtype_bits() {
    let (mut s2, mut mem) = setup(cfg44());
    let wo_dev = S2Attrs {
        read: false,
        write: true,
        exec: false,
        mem: MemType::Device,
    };
    let none_x = S2Attrs {
        read: false,
        write: false,
        exec: true,
        mem: MemType::Normal,
    };
    let cases = [
        // (attrs, expected low bits of a level-2 block, XN bits)
        (S2Attrs::RAM, 0x7fd, 0),
        (S2Attrs::RO_RAM, 0x77d, 0),
        (S2Attrs::DEVICE, 0x6c5, 0b10),
        (wo_dev, 0x685, 0b10),
        (none_x, 0x73d, 0),
    ];
    for (i, (attrs, low, xn)) in cases.into_iter().enumerate() {
        let ipa = G1 + i as u64 * M2;
        s2.map(&mut mem, Ipa(ipa), PhysAddr(0x1_0000_0000 + ipa), M2, attrs)
            .unwrap();
        let (level, d) = s2.leaf(&mut mem, Ipa(ipa)).unwrap();
        assert_eq!(level, 2);
        assert_eq!(d & 0xfff, low, "{attrs:?}");
        assert_eq!((d >> 53) & 0b11, xn, "{attrs:?}");
        assert_eq!(d & 0x0000_ffff_ffff_f000, 0x1_0000_0000 + ipa);
        assert_eq!(d >> 55, 0, "upper attributes clear");
        assert_eq!(d & (0b111 << 50), 0);
        let (pa, back) = s2.translate(&mut mem, Ipa(ipa + 0x1_2345)).unwrap();
        assert_eq!(pa.0, 0x1_0000_0000 + ipa + 0x1_2345);
        assert_eq!(back, attrs);
        // Same attributes as a page: only bit 1 differs.
        let pipa = 2 * G1 + i as u64 * K4;
        s2.map(&mut mem, Ipa(pipa), PhysAddr(pipa), K4, attrs)
            .unwrap();
        let (level, pd) = s2.leaf(&mut mem, Ipa(pipa)).unwrap();
        assert_eq!(level, 3);
        assert_eq!(pd & 0xfff, low | 0b10);
        assert_eq!(s2.translate(&mut mem, Ipa(pipa)).unwrap().1, attrs);
    }
    // Spot check of the documented encodings.
    let (_, ram) = s2.leaf(&mut mem, Ipa(G1)).unwrap();
    assert_eq!((ram >> 2) & 0xf, 0b1111, "MemAttr Normal WB");
    assert_eq!((ram >> 6) & 0b11, 0b11, "S2AP RW");
    assert_eq!((ram >> 8) & 0b11, 0b11, "SH inner");
    assert_eq!((ram >> 10) & 1, 1, "AF");
    let (_, dev) = s2.leaf(&mut mem, Ipa(G1 + 2 * M2)).unwrap();
    assert_eq!((dev >> 2) & 0xf, 0b0001, "MemAttr Device-nGnRE");
    assert_eq!((dev >> 8) & 0b11, 0b10, "SH outer for Device");
}

#[test]
fn double_map_is_refused_and_undone() {
    let (mut s2, mut mem) = setup(cfg44());
    s2.map(&mut mem, Ipa(G1), PhysAddr(G1), 4 * M2, S2Attrs::RAM)
        .unwrap();
    s2.map(
        &mut mem,
        Ipa(G1 + 6 * M2 + K4),
        PhysAddr(0),
        K4,
        S2Attrs::RAM,
    )
    .unwrap();
    let live = mem.live();
    let snapshot = leaves(&s2, &mut mem, G1, 2 * G1);
    let again = |s2: &mut Stage2, mem: &mut FakeMem, ipa: u64, size: u64| {
        s2.map(
            mem,
            Ipa(ipa),
            PhysAddr(0x2_0000_0000),
            size,
            S2Attrs::DEVICE,
        )
    };
    // Same range; a page inside a block; a block over a table holding a page;
    // a 1 GiB block over a table; a range whose head is free.
    for (ipa, size) in [
        (G1, 4 * M2),
        (G1 + M2 + 5 * K4, K4),
        (G1 + 6 * M2, M2),
        (G1, G1),
        (G1 - 2 * M2, 3 * M2),
        (G1 + 4 * M2, 4 * M2),
    ] {
        assert_eq!(
            again(&mut s2, &mut mem, ipa, size),
            Err(MmError::AlreadyMapped),
            "{ipa:#x}+{size:#x}"
        );
        assert_eq!(mem.live(), live, "no tables left behind");
        assert_eq!(leaves(&s2, &mut mem, G1, 2 * G1), snapshot);
        assert_eq!(tr(&s2, &mut mem, G1 - M2), None, "head undone");
        assert_eq!(tr(&s2, &mut mem, G1 + 4 * M2), None, "head undone");
    }
    assert_eq!(tr(&s2, &mut mem, G1 + M2 + 5 * K4), Some(G1 + M2 + 5 * K4));
}

#[test]
fn range_and_alignment_errors() {
    let cfg = Stage2Config::from_parange(2); // 40-bit
    let (mut s2, mut mem) = setup(cfg);
    let top = 1u64 << 40;
    let ram = S2Attrs::RAM;
    assert_eq!(
        s2.map(&mut mem, Ipa(top - K4), PhysAddr(0), 2 * K4, ram),
        Err(MmError::OutOfRange)
    );
    assert_eq!(
        s2.map(&mut mem, Ipa(top), PhysAddr(0), K4, ram),
        Err(MmError::OutOfRange)
    );
    assert_eq!(
        s2.map(&mut mem, Ipa(!0xfff), PhysAddr(0), 2 * K4, ram),
        Err(MmError::OutOfRange)
    );
    assert_eq!(
        s2.map(&mut mem, Ipa(0), PhysAddr((1 << 48) - K4), 2 * K4, ram),
        Err(MmError::OutOfRange)
    );
    assert_eq!(
        s2.map(&mut mem, Ipa(0x800), PhysAddr(0), K4, ram),
        Err(MmError::Misaligned)
    );
    assert_eq!(
        s2.map(&mut mem, Ipa(0), PhysAddr(0x800), K4, ram),
        Err(MmError::Misaligned)
    );
    assert_eq!(
        s2.map(&mut mem, Ipa(0), PhysAddr(0), 0x800, ram),
        Err(MmError::Misaligned)
    );
    assert_eq!(s2.unmap(&mut mem, Ipa(0x800), K4), Err(MmError::Misaligned));
    assert_eq!(s2.unmap(&mut mem, Ipa(top), K4), Err(MmError::OutOfRange));
    assert_eq!(mem.live(), 2, "nothing allocated");
    // The last page and the last 1 GiB block of the IPA space are fine; the
    // last root entry lives in the second concatenated page.
    s2.map(&mut mem, Ipa(top - G1), PhysAddr(G1), G1 - M2, ram)
        .unwrap();
    s2.map(&mut mem, Ipa(top - M2), PhysAddr(0x1000_0000), M2, ram)
        .unwrap();
    assert_eq!(tr(&s2, &mut mem, top - 1), Some(0x1000_0000 + M2 - 1));
    s2.map(&mut mem, Ipa(top - 2 * G1), PhysAddr(0), G1, ram)
        .unwrap();
    assert_eq!(s2.leaf(&mut mem, Ipa(top - 2 * G1)).unwrap().0, 1);
    let root1 = *mem.table(s2.root().add(K4));
    assert_ne!(root1[510], 0);
    assert_ne!(root1[511], 0);
    assert!(mem.table(s2.root()).iter().all(|&d| d == 0));
    assert_eq!(tr(&s2, &mut mem, top), None);
    assert_eq!(tr(&s2, &mut mem, u64::MAX), None);
    // Size 0 is a no-op.
    s2.map(&mut mem, Ipa(0), PhysAddr(0), 0, ram).unwrap();
    s2.unmap(&mut mem, Ipa(0), 0).unwrap();
}

// ---------------------------------------------------------------- unmap

#[test]
fn unmap_page_inside_2mib_block_splits() {
    let (mut s2, mut mem) = setup(cfg44());
    s2.map(
        &mut mem,
        Ipa(G1 + M2),
        PhysAddr(0x9000_0000),
        M2,
        S2Attrs::RO_RAM,
    )
    .unwrap();
    let hole = G1 + M2 + 7 * K4;
    s2.unmap(&mut mem, Ipa(hole), K4).unwrap();
    assert_eq!(mem.bbm, vec![(Ipa(G1 + M2), M2)]);
    assert_eq!(tr(&s2, &mut mem, hole), None);
    assert_eq!(tr(&s2, &mut mem, hole + K4 - 1), None);
    for i in (0..512).filter(|&i| i != 7) {
        let (pa, attrs) = s2.translate(&mut mem, Ipa(G1 + M2 + i * K4 + 3)).unwrap();
        assert_eq!(pa.0, 0x9000_0000 + i * K4 + 3);
        assert_eq!(attrs, S2Attrs::RO_RAM);
        assert_eq!(s2.leaf(&mut mem, Ipa(G1 + M2 + i * K4)).unwrap().0, 3);
    }
    // Unmapping the rest frees the L3, L2 and L1 tables again.
    s2.unmap(&mut mem, Ipa(G1 + M2), M2).unwrap();
    assert_eq!(leaves(&s2, &mut mem, 0, 2 * G1), vec![]);
    assert_eq!(mem.live(), 1);
}

#[test]
fn unmap_page_inside_1gib_block_splits_twice() {
    let (mut s2, mut mem) = setup(cfg44());
    s2.map(&mut mem, Ipa(G1), PhysAddr(4 * G1), G1, S2Attrs::DEVICE)
        .unwrap();
    let hole = G1 + 300 * M2 + 9 * K4;
    s2.unmap(&mut mem, Ipa(hole), 2 * K4).unwrap();
    assert_eq!(mem.bbm, vec![(Ipa(G1), G1), (Ipa(G1 + 300 * M2), M2)]);
    let l = leaves(&s2, &mut mem, G1, 2 * G1);
    assert_eq!(l.iter().filter(|x| x.1 == 2).count(), 511);
    assert_eq!(l.iter().filter(|x| x.1 == 3).count(), 510);
    for ipa in [G1, G1 + 299 * M2 + 5, hole - 1, hole + 2 * K4, 2 * G1 - 1] {
        let (pa, attrs) = s2.translate(&mut mem, Ipa(ipa)).unwrap();
        assert_eq!(pa.0, ipa + 3 * G1);
        assert_eq!(attrs, S2Attrs::DEVICE);
    }
    assert_eq!(tr(&s2, &mut mem, hole + K4), None);
}

#[test]
fn unmap_whole_and_partial_ranges() {
    let (mut s2, mut mem) = setup(cfg44());
    let size = G1 + 3 * M2 + 5 * K4;
    s2.map(&mut mem, Ipa(G1), PhysAddr(G1), size, S2Attrs::RAM)
        .unwrap();
    // Unmapping the middle across a block boundary splits at both ends.
    s2.unmap(&mut mem, Ipa(2 * G1 - K4), 2 * K4).unwrap();
    assert_eq!(tr(&s2, &mut mem, 2 * G1 - K4), None);
    assert_eq!(tr(&s2, &mut mem, 2 * G1), None);
    assert_eq!(tr(&s2, &mut mem, 2 * G1 - 2 * K4), Some(2 * G1 - 2 * K4));
    assert_eq!(tr(&s2, &mut mem, 2 * G1 + K4), Some(2 * G1 + K4));
    // Idempotent.
    s2.unmap(&mut mem, Ipa(2 * G1 - K4), 2 * K4).unwrap();
    s2.unmap(&mut mem, Ipa(16 * G1), 4 * G1).unwrap();
    // Everything, including never-mapped surroundings.
    s2.unmap(&mut mem, Ipa(0), 4 * G1).unwrap();
    for a in (0..4 * G1).step_by(M2 as usize / 2) {
        assert_eq!(tr(&s2, &mut mem, a), None);
    }
    assert_eq!(mem.live(), 1, "only the root left");
    // The space is reusable, with blocks again.
    s2.map(&mut mem, Ipa(G1), PhysAddr(0), G1, S2Attrs::RAM)
        .unwrap();
    assert_eq!(s2.leaf(&mut mem, Ipa(G1)).unwrap().0, 1);
}

#[test]
fn destroy_returns_every_page() {
    for pr in [0, 2, 3, 4, 5] {
        let cfg = Stage2Config::from_parange(pr);
        let (mut s2, mut mem) = setup(cfg);
        let top = 1u64 << cfg.ipa_bits;
        s2.map(
            &mut mem,
            Ipa(0),
            PhysAddr(0),
            G1 + 3 * M2 + K4,
            S2Attrs::RAM,
        )
        .unwrap();
        s2.map(
            &mut mem,
            Ipa(top - 5 * K4),
            PhysAddr(0x1000),
            5 * K4,
            S2Attrs::DEVICE,
        )
        .unwrap();
        s2.unmap(&mut mem, Ipa(M2 / 2), K4).unwrap();
        assert!(mem.live() > cfg.root_pages);
        s2.destroy(&mut mem);
        assert_eq!(mem.live(), 0, "parange {pr}");
        assert_eq!(mem.allocs, mem.frees);
    }
    // Through the default free_root as well.
    let mut plain = PlainMem(FakeMem::new());
    let mut s2 = Stage2::new(cfg44(), &mut plain).unwrap();
    s2.map(&mut plain, Ipa(0), PhysAddr(0), 3 * K4, S2Attrs::RAM)
        .unwrap();
    s2.destroy(&mut plain);
    assert_eq!(plain.0.live(), 0);
}

#[test]
fn out_of_memory_during_map_is_undone() {
    // Root + L1 + L2 + one L3 fit; the second L3 table does not.
    let mut mem = FakeMem::with_limit(4);
    let mut s2 = Stage2::new(cfg44(), &mut mem).unwrap();
    let r = s2.map(&mut mem, Ipa(G1), PhysAddr(0x5000), 2 * M2, S2Attrs::RAM);
    assert_eq!(r, Err(MmError::OutOfMemory));
    assert_eq!(mem.live(), 1, "tables of the failed map freed");
    assert_eq!(tr(&s2, &mut mem, G1), None);
    assert_eq!(tr(&s2, &mut mem, G1 + M2 - K4), None);
    // Without a preexisting path: fails already at the L1 table.
    let mut mem1 = FakeMem::with_limit(1);
    let mut s2b = Stage2::new(cfg44(), &mut mem1).unwrap();
    assert_eq!(
        s2b.map(&mut mem1, Ipa(0), PhysAddr(0), K4, S2Attrs::RAM),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(mem1.live(), 1);
    // Other mappings sharing the tables survive the undo.
    mem.limit = 3;
    s2.map(&mut mem, Ipa(G1), PhysAddr(0), M2, S2Attrs::RAM)
        .unwrap();
    assert_eq!(mem.live(), 3);
    assert_eq!(
        s2.map(&mut mem, Ipa(G1 + M2), PhysAddr(K4), K4, S2Attrs::RAM),
        Err(MmError::OutOfMemory)
    );
    assert_eq!(mem.live(), 3);
    assert_eq!(tr(&s2, &mut mem, G1 + 5), Some(5));
    assert_eq!(leaves(&s2, &mut mem, 0, 2 * G1), vec![(G1, 2)]);
}

#[test]
fn out_of_memory_during_split_keeps_translations() {
    let mut mem = FakeMem::with_limit(3);
    let mut s2 = Stage2::new(cfg44(), &mut mem).unwrap();
    s2.map(&mut mem, Ipa(G1), PhysAddr(G1), 2 * M2, S2Attrs::RAM)
        .unwrap();
    assert_eq!(
        s2.unmap(&mut mem, Ipa(G1 + K4), K4),
        Err(MmError::OutOfMemory)
    );
    assert!(mem.bbm.is_empty(), "nothing broken");
    for a in [G1, G1 + K4, G1 + 2 * K4 - 1, G1 + M2 + K4, G1 + 2 * M2 - 1] {
        assert_eq!(tr(&s2, &mut mem, a), Some(a));
    }
    // The second block's unmap needs no split and still works afterwards.
    s2.unmap(&mut mem, Ipa(G1 + M2), M2).unwrap();
    assert_eq!(tr(&s2, &mut mem, G1 + M2), None);
    assert_eq!(tr(&s2, &mut mem, G1), Some(G1));
}

// ---------------------------------------------------------------- model

/// xorshift64*: deterministic, no dependencies.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random map/unmap sequences against a page-granular model.
#[test]
fn random_ops_match_model() {
    const BASE: u64 = 0x8000_0000;
    const PAGES: u64 = 64 * 512; // 64 MiB window
    let attrs = [S2Attrs::RAM, S2Attrs::RO_RAM, S2Attrs::DEVICE];
    for seed in [1u64, 0x5eed, 0xdead_beef] {
        let mut rng = Rng(seed);
        let (mut s2, mut mem) = setup(Stage2Config::from_parange(2));
        let mut model: BTreeMap<u64, (u64, S2Attrs)> = BTreeMap::new();
        for step in 0..300 {
            // Sizes biased towards block-sized runs, positions towards
            // block boundaries, so both blocks and splits happen.
            let unit = if rng.below(2) == 0 { 512 } else { 1 };
            let jitter = |rng: &mut Rng| if rng.below(4) == 0 { rng.below(3) } else { 0 };
            let first = rng.below(PAGES / unit) * unit + jitter(&mut rng);
            let max_units = if unit == 1 { 1024 } else { 4 };
            let len = (1 + rng.below(max_units)) * unit + jitter(&mut rng);
            let len = len.min(PAGES.saturating_sub(first));
            if len == 0 {
                continue;
            }
            let ipa = BASE + first * K4;
            let size = len * K4;
            if rng.below(3) != 0 {
                let pa_base = if rng.below(2) == 0 {
                    ipa
                } else {
                    0x10_0000_0000 + rng.below(8) * K4 + ipa
                };
                let a = attrs[rng.below(3) as usize];
                let overlaps = model.range(first..first + len).next().is_some();
                let r = s2.map(&mut mem, Ipa(ipa), PhysAddr(pa_base), size, a);
                if overlaps {
                    assert_eq!(r, Err(MmError::AlreadyMapped), "step {step}");
                } else {
                    assert_eq!(r, Ok(()), "step {step}");
                    for p in 0..len {
                        model.insert(first + p, (pa_base + p * K4, a));
                    }
                }
            } else {
                s2.unmap(&mut mem, Ipa(ipa), size).unwrap();
                let gone: Vec<u64> = model.range(first..first + len).map(|(&k, _)| k).collect();
                for k in gone {
                    model.remove(&k);
                }
            }
            // Spot checks every step, full check now and then.
            let check = |s2: &Stage2, mem: &mut FakeMem, p: u64| {
                let got = s2.translate(mem, Ipa(BASE + p * K4 + 0x10));
                let want = model.get(&p).map(|&(pa, a)| (PhysAddr(pa + 0x10), a));
                assert_eq!(got, want, "seed {seed} step {step} page {p}");
            };
            for _ in 0..64 {
                check(&s2, &mut mem, rng.below(PAGES));
            }
            for p in first.saturating_sub(1)..(first + len + 1).min(PAGES) {
                check(&s2, &mut mem, p);
            }
            if step % 50 == 49 {
                for p in 0..PAGES {
                    check(&s2, &mut mem, p);
                }
            }
        }
        // Everything below the window and above it stayed unmapped.
        assert_eq!(tr(&s2, &mut mem, BASE - K4), None);
        assert_eq!(tr(&s2, &mut mem, BASE + PAGES * K4), None);
        s2.unmap(&mut mem, Ipa(BASE), PAGES * K4).unwrap();
        assert_eq!(mem.live(), 2, "emptied tables were all freed");
        s2.destroy(&mut mem);
        assert_eq!(mem.live(), 0);
    }
}
