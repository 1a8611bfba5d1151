//! What Dom0 gets of the host's devices: the MMIO ranges to map 1:1 into its
//! stage 2, and the console UART's interrupt the hypervisor keeps.
//!
//! Every enabled device node's `reg` (translated through the buses'
//! `ranges`) is Dom0's, except nodes the hypervisor owns (the GIC and its
//! frames, the hidden paths — its console UART) and nodes that are not
//! devices (`/chosen`, `/cpus`, memory). PCI host bridges also contribute
//! the CPU side of their `ranges` (their BAR windows), which no `reg`
//! names. The result is page-aligned, sorted and merged.

use alloc::vec::Vec;

use crate::DtError;
use crate::boot::find_gic;
use crate::tree::{DeviceTree, NodeId, read_cells};

const PAGE: u64 = 4096;

fn skipped(dt: &DeviceTree<'_>, id: NodeId, gic: Option<NodeId>, hidden: &[NodeId]) -> bool {
    let mut cur = Some(id);
    while let Some(c) = cur {
        if Some(c) == gic {
            // The GIC is the hypervisor's, but a GICv2m MSI frame below it
            // only turns device writes into SPIs, which are Dom0's anyway.
            return !(c != id && dt.is_compatible(id, "arm,gic-v2m-frame"));
        }
        if hidden.contains(&c) || !dt.is_enabled(c) {
            return true;
        }
        let name = dt.node(c).base_name();
        if dt.node(c).parent == Some(dt.root()) && (name == "chosen" || name == "cpus") {
            return true;
        }
        if dt.prop_str(c, "device_type") == Some("memory") {
            return true;
        }
        cur = dt.node(c).parent;
    }
    false
}

/// PCI `ranges` entries: 3 child cells (space code + 64-bit address), the
/// parent's address cells, 2 size cells. Returns the CPU-side windows.
fn pci_windows(dt: &DeviceTree<'_>, id: NodeId) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let Some(r) = dt.prop(id, "ranges") else {
        return out;
    };
    let parent = dt.node(id).parent.unwrap_or(dt.root());
    let (pac, _) = dt.cells_of(parent);
    let stride = (3 + pac + 2) as usize * 4;
    if stride == 0 || !r.len().is_multiple_of(stride) {
        return out;
    }
    for e in r.chunks_exact(stride) {
        if let (Some(pa), Some(sz)) = (
            read_cells(e, 12, pac),
            read_cells(e, (3 + pac) as usize * 4, 2),
        ) {
            out.push((pa, sz));
        }
    }
    out
}

/// Host MMIO ranges `(base, size)` to map 1:1 into Dom0 (a GICv2m MSI frame
/// included), page-aligned,
/// sorted and merged. `hidden_paths` are nodes the hypervisor keeps.
pub fn dom0_mmio_regions(
    host_dtb: &[u8],
    hidden_paths: &[&str],
) -> Result<Vec<(u64, u64)>, DtError> {
    let dt = DeviceTree::parse(host_dtb)?;
    let gic = find_gic(&dt);
    let hidden: Vec<NodeId> = hidden_paths.iter().filter_map(|p| dt.find(p)).collect();
    let mut regions: Vec<(u64, u64)> = Vec::new();
    for id in dt.ids() {
        if id == dt.root() || skipped(&dt, id, gic, &hidden) {
            continue;
        }
        if dt.prop_str(id, "device_type") == Some("pci") {
            regions.extend(pci_windows(&dt, id));
        }
        if dt.has_prop(id, "reg") {
            // A reg that cannot be decoded (odd cells) is skipped, not fatal.
            if let Ok(r) = dt.reg_translated(id) {
                regions.extend(r.into_iter().filter(|&(_, s)| s > 0));
            }
        }
    }
    let mut aligned: Vec<(u64, u64)> = regions
        .into_iter()
        .filter_map(|(b, s)| {
            let start = b & !(PAGE - 1);
            let end = b.checked_add(s)?.checked_add(PAGE - 1)? & !(PAGE - 1);
            Some((start, end))
        })
        .collect();
    aligned.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in aligned {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Ok(merged.into_iter().map(|(s, e)| (s, e - s)).collect())
}

/// The first interrupt of node `path` if it is an SPI of the GIC (INTID).
pub fn spi_of(host_dtb: &[u8], path: &str) -> Option<u32> {
    let dt = DeviceTree::parse(host_dtb).ok()?;
    let id = dt.find(path)?;
    let v = dt.prop(id, "interrupts")?;
    let ty = read_cells(v, 0, 1)?;
    let num = read_cells(v, 4, 1)?;
    (ty == 0).then_some(num as u32 + 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn qemu_virt_devices_without_hypervisor_ones() {
        let dtb = fixture("virt-gicv3.dtb");
        let r = dom0_mmio_regions(&dtb, &["/pl011@9000000"]).unwrap();
        let has = |a: u64| r.iter().any(|&(b, s)| a >= b && a < b + s);
        // PL031 RTC, fw-cfg, a virtio-mmio transport, flash, PCIe ECAM and BAR windows.
        assert!(has(0x0901_0000), "rtc: {r:x?}");
        assert!(has(0x0902_0000), "fw-cfg");
        assert!(has(0x0a00_0000), "virtio-mmio");
        assert!(has(0x0000_0000), "flash");
        assert!(has(0x40_1000_0000), "high ECAM");
        assert!(has(0x1000_0000), "PCI MMIO window");
        assert!(has(0x80_0000_0000), "high PCI MMIO window");
        // Not the hypervisor's UART, not the GIC, not RAM.
        assert!(!has(0x0900_0000), "uart must stay hidden");
        assert!(!has(0x0800_0000), "GICD must not be passed through");
        assert!(!has(0x080a_0000), "GICR must not be passed through");
        assert!(!has(0x4000_0000), "RAM is not MMIO");
        // Sorted, merged, page aligned.
        for w in r.windows(2) {
            assert!(w[0].0 + w[0].1 < w[1].0);
        }
        assert!(
            r.iter()
                .all(|&(b, s)| b % PAGE == 0 && s % PAGE == 0 && s > 0)
        );
    }

    #[test]
    fn gicv2_frames_stay_hidden() {
        let dtb = fixture("virt-gicv2.dtb");
        let r = dom0_mmio_regions(&dtb, &["/pl011@9000000"]).unwrap();
        let has = |a: u64| r.iter().any(|&(b, s)| a >= b && a < b + s);
        for a in [0x0800_0000u64, 0x0801_0000, 0x0803_0000, 0x0804_0000] {
            assert!(!has(a), "GIC frame {a:#x} passed through");
        }
        assert!(has(0x0802_0000), "the GICv2m MSI frame is Dom0's");
        assert!(has(0x0901_0000));
    }

    #[test]
    fn uart_spi() {
        let dtb = fixture("virt-gicv3.dtb");
        assert_eq!(spi_of(&dtb, "/pl011@9000000"), Some(33));
        assert_eq!(spi_of(&dtb, "/nonexistent"), None);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(dom0_mmio_regions(&[0u8; 16], &[]).is_err());
    }
}
