//! Host-side test harness: boot oxen in QEMU and check its serial console.
//!
//! The integration tests in `tests/tests/*.rs` describe a machine with the [`Qemu`] builder,
//! [`Qemu::spawn`] it and then walk through the console output with [`Running::expect`]
//! and friends. Everything here is plain `std` code that runs on the host.
//!
//! Design rules, and why:
//!
//! * **Timeouts are generous and scaled.** QEMU's TCG runs 2–20× slower when the host is
//!   busy, so every timeout goes through [`scaled`] (env `OXEN_TEST_TIMEOUT_SCALE`) and the
//!   default per expectation is [`DEFAULT_TIMEOUT`] (120 s). Tests never assert wall-clock
//!   figures.
//! * **Nothing is skipped silently.** A missing `qemu-system-aarch64`, `dtc` or built image
//!   is an error whose one-line message says what to run (`make setup`, `make build`).
//! * **Forbidden lines fail a test.** Every console line is checked against a forbidden list
//!   (by default `(oxen) ERROR`, `WARNING`, `panic`, `domain dN crashed`) unless the test
//!   allowed it or is expecting exactly that line.
//! * **No stray QEMUs.** QEMU runs in its own process group which is killed (and reaped)
//!   when the [`Running`] handle is dropped, also on a panic; it also gets `SIGKILL` if the
//!   thread that spawned it dies. At most [`max_concurrent`] QEMUs run at once per test binary.
//! * **Failures are debuggable.** An [`Error`] from a running QEMU carries the command line
//!   and the last console lines, and the whole timestamped transcript is saved as
//!   `target/qemu-logs/<test>.log` (written on failure and again when the handle drops).
//!
//! The hypervisor is `build/oxen.bin` unless env `OXEN_TEST_HYPERVISOR` names another image
//! (real Xen 4.17, to check that a test's expectations hold on the reference). The test guest is
//! `build/test-guest.bin` unless env `OXEN_TEST_GUEST` names another. Debian's
//! Linux as Dom0 (`make dom0`) is booted with [`Qemu::linux_dom0`].
//!
//! Boot-time (dom0less) domains are described with [`DomainNode`]; [`Qemu::with_domains`]
//! dumps QEMU's own DTB, adds the `xen,domain` nodes with `dtc` and boots with `-dtb`.
#![deny(unsafe_code)]

mod dom0;
pub mod dom0shell;
mod dtb;
mod error;
mod pattern;
mod qemu;
mod running;
#[cfg(test)]
mod selftest;
mod shell;

pub use dom0::{DOM0_KERNEL_ADDR, LinuxDom0, initrd_addr_after};
pub use dtb::{DomainNode, dom0less_dtb, domain_nodes_dts, insert_under_chosen};
pub use error::{Error, ErrorKind, REPORT_TAIL_LINES, Report};
pub use pattern::{Pattern, re};
pub use qemu::{DEFAULT_QEMU, GUEST_LOADER_BASE, Qemu, default_forbidden};
pub use running::{Line, Running, max_concurrent};
pub use shell::{Output, Shell, is_console_noise};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The counter written just before `label` in one of oxen's counter lines `<line>: <n>
/// <label>, <n> <label>, ...` (`guest exits:`, `credit scheduler:`, `memory:`; debug key
/// `x`, and at power-off), if `text` is that line.
pub fn counter(text: &str, line: &str, label: &str) -> Option<u64> {
    let rest = text.split_once(line)?.1;
    let (before, _) = rest.split_once(label)?;
    before
        .rsplit([' ', ','])
        .find(|w| !w.is_empty())?
        .parse()
        .ok()
}

/// Default time allowed for one expectation (before [`scaled`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// Environment variable multiplying every timeout (a positive float, default 1).
pub const TIMEOUT_SCALE_ENV: &str = "OXEN_TEST_TIMEOUT_SCALE";

/// `timeout` multiplied by `OXEN_TEST_TIMEOUT_SCALE`.
///
/// # Panics
/// If the variable is set to something that is not a positive number: a misconfigured test
/// run should stop at once rather than run with surprising timeouts.
pub fn scaled(timeout: Duration) -> Duration {
    match std::env::var(TIMEOUT_SCALE_ENV) {
        Err(_) => timeout,
        Ok(s) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f > 0.0 => timeout.mul_f64(f),
            _ => panic!("{TIMEOUT_SCALE_ENV} must be a positive number, got {s:?}"),
        },
    }
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// `<workspace>/target`, where logs and temporary files go.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target")
}

/// A built image `build/<name>` under the workspace root.
///
/// Fails with "`build/<name> missing: run make build`" if it does not exist.
pub fn image(name: &str) -> Result<PathBuf, Error> {
    let path = workspace_root().join("build").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::new(ErrorKind::ImageMissing {
            path: format!("build/{name}"),
        }))
    }
}

/// Environment variable naming another hypervisor image to boot instead of
/// `build/oxen.bin` (e.g. Xen 4.17, to check that a test's expectations are right).
pub const HYPERVISOR_ENV: &str = "OXEN_TEST_HYPERVISOR";

/// The hypervisor image: env `OXEN_TEST_HYPERVISOR` if set (and not empty), else
/// `build/oxen.bin`.
pub fn oxen_bin() -> Result<PathBuf, Error> {
    hypervisor_image(std::env::var_os(HYPERVISOR_ENV))
}

/// [`oxen_bin`] given the value of `OXEN_TEST_HYPERVISOR`.
fn hypervisor_image(env: Option<std::ffi::OsString>) -> Result<PathBuf, Error> {
    match env.filter(|v| !v.is_empty()) {
        None => image("oxen.bin"),
        Some(v) => {
            let path = PathBuf::from(v);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::new(ErrorKind::HypervisorMissing {
                    path: path.to_string_lossy().into_owned(),
                }))
            }
        }
    }
}

/// Environment variable naming another test guest image to boot instead of
/// `build/test-guest.bin` (one built with a private `CARGO_TARGET_DIR`, say).
pub const TEST_GUEST_ENV: &str = "OXEN_TEST_GUEST";

/// The bare-metal test guest: env `OXEN_TEST_GUEST` if set (and not empty), else
/// `build/test-guest.bin`.
pub fn test_guest_bin() -> Result<PathBuf, Error> {
    match std::env::var_os(TEST_GUEST_ENV).filter(|v| !v.is_empty()) {
        None => image("test-guest.bin"),
        Some(v) => {
            let path = PathBuf::from(v);
            if path.is_file() {
                Ok(path)
            } else {
                Err(Error::new(ErrorKind::ImageMissing {
                    path: path.to_string_lossy().into_owned(),
                }))
            }
        }
    }
}

/// A fresh, unique path `target/qemu-tmp/<stem>-<pid>-<n>.<ext>` (directory created).
///
/// Unique across threads and concurrently running test binaries of several developers
/// sharing one work tree.
pub fn temp_path(stem: &str, ext: &str) -> Result<PathBuf, Error> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = target_dir().join("qemu-tmp");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!(
        "{}-{}-{n}.{ext}",
        sanitize(stem),
        std::process::id()
    )))
}

/// `s` with every character outside `[A-Za-z0-9_.-]` replaced by `_` (for file names).
pub(crate) fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() { "qemu".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_reads_oxen_counter_lines() {
        let exits =
            "(oxen) guest exits: 12 hypercall/SMCCC, 34 WFI/WFE, 0 MMIO, 5 sysreg, 6 interrupt";
        assert_eq!(
            counter(exits, "guest exits: ", " hypercall/SMCCC"),
            Some(12)
        );
        assert_eq!(counter(exits, "guest exits: ", " WFI/WFE"), Some(34));
        let sched =
            "credit scheduler: 9 switches, 2 vCPUs moved in, 7 WFIs waited in place, 3 steals";
        assert_eq!(
            counter(sched, "credit scheduler: ", " WFIs waited in place"),
            Some(7)
        );
        assert_eq!(counter(sched, "credit scheduler: ", " steals"), Some(3));
        assert_eq!(counter(sched, "guest exits: ", " steals"), None);
        assert_eq!(counter(sched, "credit scheduler: ", " parks"), None);
        let mem = "(oxen) memory: 1561512 KiB free, 0 KiB waiting to be scrubbed, \
                   5243200 KiB scrubbed (0 KiB when an allocation needed it)";
        assert_eq!(
            counter(mem, "memory: ", " KiB waiting to be scrubbed"),
            Some(0)
        );
        assert_eq!(counter(mem, "memory: ", " KiB scrubbed"), Some(5243200));
    }

    #[test]
    fn sanitize_keeps_safe_chars_only() {
        assert_eq!(sanitize("tests::boot gic/v3"), "tests__boot_gic_v3");
        assert_eq!(sanitize(""), "qemu");
    }

    #[test]
    fn missing_image_says_make_build() {
        let e = image("no-such-image.bin").unwrap_err();
        assert_eq!(
            e.to_string(),
            "build/no-such-image.bin missing: run `make build`"
        );
    }

    #[test]
    fn hypervisor_image_can_be_overridden() {
        assert_eq!(
            hypervisor_image(Some("/bin/sh".into())).unwrap(),
            PathBuf::from("/bin/sh")
        );
        let e = hypervisor_image(Some("/nonexistent/xen".into())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "OXEN_TEST_HYPERVISOR=/nonexistent/xen does not exist (unset it to test build/oxen.bin)"
        );
        // Unset or empty: build/oxen.bin, whether or not it was built.
        for env in [None, Some("".into())] {
            match hypervisor_image(env) {
                Ok(p) => assert_eq!(p, workspace_root().join("build/oxen.bin")),
                Err(e) => assert_eq!(e.to_string(), "build/oxen.bin missing: run `make build`"),
            }
        }
    }

    #[test]
    fn temp_paths_are_unique() {
        let a = temp_path("x", "dtb").unwrap();
        let b = temp_path("x", "dtb").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(target_dir().join("qemu-tmp")));
    }
}
