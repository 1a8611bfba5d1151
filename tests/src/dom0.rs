//! The Linux Dom0 payload and where it is loaded.
//!
//! `qemu/build-dom0.sh` (`make dom0`) puts Debian's arm64 kernel and oxen's busybox
//! initramfs into `.cache/dom0/` (or `$OXEN_CACHE/dom0/`). [`Qemu::linux_dom0`] loads them
//! exactly as `make run` and `qemu/bench.sh` do, so a failing test can be replayed by hand:
//! the kernel at [`DOM0_KERNEL_ADDR`] and the initrd 2 MiB-aligned after it with a gap of
//! at least 2 MiB ([`initrd_addr_after`]), each as a `guest-loader` module.

use crate::error::{Error, ErrorKind};
use crate::qemu::{GUEST_LOADER_BASE, Qemu};
use std::path::{Path, PathBuf};

/// Where Dom0's kernel is loaded (the first guest-loader address).
pub const DOM0_KERNEL_ADDR: u64 = GUEST_LOADER_BASE;

/// Environment variable of `qemu/build-dom0.sh` naming its cache directory.
const CACHE_ENV: &str = "OXEN_CACHE";

const MIB2: u64 = 0x20_0000;

/// Address of an initrd loaded after a kernel of `kernel_size` bytes at `kernel_addr`:
/// the kernel's end plus 2 MiB, rounded up to 2 MiB (the Makefile's and bench.sh's rule).
pub fn initrd_addr_after(kernel_addr: u64, kernel_size: u64) -> u64 {
    (kernel_addr + kernel_size + MIB2 + (MIB2 - 1)) & !(MIB2 - 1)
}

/// The two files of the Linux Dom0 payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxDom0 {
    /// Debian's arm64 kernel `Image`.
    pub image: PathBuf,
    /// The gzipped initramfs (`/init` = `qemu/dom0/init.sh`).
    pub initrd: PathBuf,
}

impl LinuxDom0 {
    /// The payload built by `make dom0`: `.cache/dom0/{Image,dom0-initrd.gz}` at the
    /// workspace root, or under `$OXEN_CACHE/dom0` when that is set.
    ///
    /// Fails with "`<path>` missing: run `make dom0`" if a file is absent or empty.
    pub fn from_cache() -> Result<Self, Error> {
        let cache = std::env::var_os(CACHE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::workspace_root().join(".cache"));
        Self::in_dir(&cache.join("dom0"))
    }

    /// The payload in `dir` (`Image` and `dom0-initrd.gz`), checked to exist.
    pub fn in_dir(dir: &Path) -> Result<Self, Error> {
        let image = present(dir.join("Image"))?;
        let initrd = present(dir.join("dom0-initrd.gz"))?;
        Ok(Self { image, initrd })
    }

    /// Where the initrd goes: [`initrd_addr_after`] the kernel at [`DOM0_KERNEL_ADDR`].
    pub fn initrd_addr(&self) -> Result<u64, Error> {
        let meta = std::fs::metadata(&self.image)
            .map_err(|e| Error::io(format!("reading {}", self.image.display()), e))?;
        Ok(initrd_addr_after(DOM0_KERNEL_ADDR, meta.len()))
    }
}

/// `path` if it is a non-empty file, else [`ErrorKind::Dom0Missing`].
fn present(path: PathBuf) -> Result<PathBuf, Error> {
    if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return Ok(path);
    }
    let root = crate::workspace_root();
    let shown = path.strip_prefix(&root).unwrap_or(&path);
    Err(Error::new(ErrorKind::Dom0Missing {
        path: shown.to_string_lossy().into_owned(),
    }))
}

impl Qemu {
    /// Boot `dom0` as Dom0: its kernel with `bootargs` at [`DOM0_KERNEL_ADDR`] and its
    /// initrd at [`LinuxDom0::initrd_addr`], as `guest-loader` modules.
    pub fn linux_dom0(self, dom0: &LinuxDom0, bootargs: &str) -> Result<Self, Error> {
        let initrd_addr = dom0.initrd_addr()?;
        Ok(self
            .guest_kernel(&dom0.image, DOM0_KERNEL_ADDR, bootargs)
            .guest_initrd(&dom0.initrd, initrd_addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initrd_goes_2mib_aligned_with_a_2mib_gap() {
        // Debian 6.1.0-56's Image (32956352 bytes): bench.sh and the reference put the
        // initrd at 0x5220_0000.
        assert_eq!(initrd_addr_after(0x5000_0000, 32_956_352), 0x5220_0000);
        // An exact multiple of 2 MiB still gets the full gap.
        assert_eq!(initrd_addr_after(0x5000_0000, 0x40_0000), 0x5060_0000);
        assert_eq!(initrd_addr_after(0x5000_0000, 0x40_0001), 0x5080_0000);
    }

    #[test]
    fn missing_payload_says_make_dom0() {
        let dir = crate::workspace_root().join("no-such-dir").join("dom0");
        let e = LinuxDom0::in_dir(&dir).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Dom0Missing { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "no-such-dir/dom0/Image missing: run `make dom0`"
        );
    }

    #[test]
    fn payload_is_loaded_like_make_run() {
        let dir = crate::temp_path("dom0-payload", "d").unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Image"), vec![0u8; 0x40_0001]).unwrap();
        std::fs::write(dir.join("dom0-initrd.gz"), b"x").unwrap();
        let dom0 = LinuxDom0::in_dir(&dir).unwrap();
        let args = Qemu::new()
            .linux_dom0(&dom0, "console=hvc0 rdinit=/init")
            .unwrap()
            .args();
        let _ = std::fs::remove_dir_all(&dir);
        let devices: Vec<&String> = args
            .windows(2)
            .filter(|w| w[0] == "-device")
            .map(|w| &w[1])
            .collect();
        assert_eq!(
            devices,
            [
                &format!(
                    "guest-loader,addr=0x50000000,kernel={},bootargs=console=hvc0 rdinit=/init",
                    dom0.image.display()
                ),
                &format!(
                    "guest-loader,addr=0x50800000,initrd={}",
                    dom0.initrd.display()
                ),
            ]
        );
    }
}
