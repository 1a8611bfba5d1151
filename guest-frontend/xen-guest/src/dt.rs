//! What a guest reads from the device tree it is booted with: the command
//! line (`/chosen/bootargs`) and its RAM banks (`/memory*` `reg`).
//!
//! The DTB comes from the hypervisor, which the guest trusts; still, a
//! missing node or property is an error value here, never a panic, and the
//! `fdt` crate's panicking helpers (`chosen()`, `memory()`) are not used.

use core::fmt;

use fdt::Fdt;
use oxen_types::{Ipa, IpaRange};

/// `FDT_MAGIC`, big-endian at offset 0 of a DTB.
pub const FDT_MAGIC: u32 = 0xd00d_feed;

/// Largest DTB accepted (Linux's limit for arm64 is 2 MiB).
pub const MAX_DTB_SIZE: usize = 2 << 20;

/// Why the device tree could not be used.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DtError {
    /// The header magic is not `FDT_MAGIC`.
    BadMagic,
    /// `totalsize` is smaller than a header or larger than [`MAX_DTB_SIZE`].
    BadSize,
    /// The `fdt` crate rejected the blob.
    Invalid,
    /// No `/memory` node with a usable `reg`.
    NoMemory,
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadMagic => "bad DTB magic",
            Self::BadSize => "bad DTB size",
            Self::Invalid => "malformed DTB",
            Self::NoMemory => "no /memory in DTB",
        })
    }
}

/// The blob size announced by a DTB header, from its first 8 bytes
/// (`magic`, `totalsize`, both big-endian). Lets code that only has a
/// pointer bound the slice it hands to [`GuestDt::new`].
pub fn dtb_size(head: [u8; 8]) -> Result<usize, DtError> {
    let [m0, m1, m2, m3, s0, s1, s2, s3] = head;
    if u32::from_be_bytes([m0, m1, m2, m3]) != FDT_MAGIC {
        return Err(DtError::BadMagic);
    }
    let size = u32::from_be_bytes([s0, s1, s2, s3]) as usize;
    if !(40..=MAX_DTB_SIZE).contains(&size) {
        return Err(DtError::BadSize);
    }
    Ok(size)
}

/// A parsed guest device tree.
pub struct GuestDt<'a> {
    fdt: Fdt<'a>,
}

impl<'a> GuestDt<'a> {
    /// Parse `blob` (which may extend past the DTB's `totalsize`).
    pub fn new(blob: &'a [u8]) -> Result<Self, DtError> {
        let head: [u8; 8] = blob
            .get(..8)
            .and_then(|h| h.try_into().ok())
            .ok_or(DtError::BadSize)?;
        dtb_size(head)?;
        let fdt = Fdt::new(blob).map_err(|_| DtError::Invalid)?;
        Ok(Self { fdt })
    }

    /// `/chosen/bootargs`, if present and valid UTF-8 (trailing NULs
    /// stripped).
    pub fn bootargs(&self) -> Option<&'a str> {
        self.fdt
            .find_node("/chosen")?
            .property("bootargs")?
            .as_str()
    }

    /// Every RAM bank: the `reg` entries of all root-level `memory` nodes
    /// (by name `memory`/`memory@...` or `device_type = "memory"`). Entries
    /// without a size or of size 0 are skipped.
    pub fn ram_banks(&self) -> impl Iterator<Item = IpaRange> + '_ {
        let root = self.fdt.find_node("/");
        root.into_iter()
            .flat_map(|r| r.children())
            .filter(|n| {
                let by_name = n.name == "memory" || n.name.starts_with("memory@");
                let by_type = n
                    .property("device_type")
                    .and_then(|p| p.as_str())
                    .is_some_and(|t| t == "memory");
                by_name || by_type
            })
            .filter_map(|n| n.reg())
            .flatten()
            .filter_map(|r| {
                let size = r.size.filter(|&s| s != 0)? as u64;
                Some(IpaRange::new(
                    Ipa::new(r.starting_address as usize as u64),
                    size,
                ))
            })
    }

    /// One past the last byte of RAM: the highest bank end.
    pub fn ram_end(&self) -> Result<Ipa, DtError> {
        self.ram_banks()
            .map(|b| b.end())
            .max()
            .map(Ipa::new)
            .ok_or(DtError::NoMemory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_fdt::FdtWriter;

    /// A guest DT like oxen builds: 2 address and size cells, `/chosen`,
    /// and the given memory nodes (`name`, `reg` pairs).
    fn dtb(bootargs: Option<&str>, mems: &[(&str, &[u64])]) -> Vec<u8> {
        let mut w = FdtWriter::new().unwrap();
        let root = w.begin_node("").unwrap();
        w.property_u32("#address-cells", 2).unwrap();
        w.property_u32("#size-cells", 2).unwrap();
        let chosen = w.begin_node("chosen").unwrap();
        if let Some(b) = bootargs {
            w.property_string("bootargs", b).unwrap();
        }
        w.end_node(chosen).unwrap();
        for (name, reg) in mems {
            let m = w.begin_node(name).unwrap();
            w.property_string("device_type", "memory").unwrap();
            w.property_array_u64("reg", reg).unwrap();
            w.end_node(m).unwrap();
        }
        let cpus = w.begin_node("cpus").unwrap();
        w.end_node(cpus).unwrap();
        w.end_node(root).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_bootargs_and_memory() {
        let blob = dtb(
            Some("oxen.test=oob console=hvc0"),
            &[("memory@40000000", &[0x4000_0000, 0x800_0000])],
        );
        let dt = GuestDt::new(&blob).unwrap();
        assert_eq!(dt.bootargs(), Some("oxen.test=oob console=hvc0"));
        let banks: Vec<_> = dt.ram_banks().collect();
        assert_eq!(banks, vec![IpaRange::new(Ipa(0x4000_0000), 0x800_0000)]);
        assert_eq!(dt.ram_end(), Ok(Ipa(0x4800_0000)));
    }

    #[test]
    fn highest_end_over_several_banks_and_nodes() {
        let blob = dtb(
            None,
            &[
                ("memory@80000000", &[0x8000_0000, 0x1000_0000]),
                (
                    "memory@40000000",
                    &[0x4000_0000, 0x100_0000, 0x2_0000_0000, 0],
                ),
            ],
        );
        let dt = GuestDt::new(&blob).unwrap();
        assert_eq!(dt.bootargs(), None);
        assert_eq!(dt.ram_banks().count(), 2, "zero-sized bank skipped");
        assert_eq!(dt.ram_end(), Ok(Ipa(0x9000_0000)));
    }

    #[test]
    fn missing_memory_is_an_error() {
        let blob = dtb(Some("x"), &[]);
        let dt = GuestDt::new(&blob).unwrap();
        assert_eq!(dt.ram_end(), Err(DtError::NoMemory));
    }

    #[test]
    fn header_checks() {
        let blob = dtb(Some("x"), &[]);
        let head: [u8; 8] = blob[..8].try_into().unwrap();
        assert_eq!(dtb_size(head), Ok(blob.len()));
        let mut bad = blob.clone();
        bad[0] = 0;
        assert_eq!(GuestDt::new(&bad).err(), Some(DtError::BadMagic));
        let mut huge = blob.clone();
        huge[4..8].copy_from_slice(&(8u32 << 20).to_be_bytes());
        assert_eq!(GuestDt::new(&huge).err(), Some(DtError::BadSize));
        assert_eq!(GuestDt::new(&blob[..4]).err(), Some(DtError::BadSize));
        assert_eq!(
            GuestDt::new(&blob[..blob.len() - 8]).err(),
            Some(DtError::Invalid),
            "truncated blob"
        );
    }
}
