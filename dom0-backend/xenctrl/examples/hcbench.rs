//! `hcbench [N]`: the cost of a trivial hypercall as Dom0's userspace sees it.
//!
//! Times N `xen_version(XENVER_version)` calls through `IOCTL_PRIVCMD_HYPERCALL`
//! and N ioctls on the same `/dev/xen/privcmd` that privcmd rejects without
//! leaving the kernel (an unknown command: `ENOTTY`), and prints both means and
//! their difference, the part the hypervisor and the hypercall path add:
//!
//! `hcbench: 100000 calls, xen_version 1234 ns, null ioctl 700 ns, hypercall 534 ns`
//!
//! Under QEMU `-icount shift=0,sleep=off` one guest nanosecond is one
//! instruction, so the figures are deterministic (qemu/bench.sh runs this in
//! Dom0 on oxen and on Xen 4.17). Exits non-zero with one line on failure.

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod raw {
    use std::os::fd::AsRawFd;
    use xenctrl::abi::{IOCTL_PRIVCMD_HYPERCALL, PrivcmdHypercall};

    /// An ioctl number in privcmd's range ('P') that it does not implement.
    const IOCTL_PRIVCMD_UNKNOWN: u32 = (b'P' as u32) << 8 | 0x7f;

    nix::ioctl_readwrite_bad!(privcmd_hypercall, IOCTL_PRIVCMD_HYPERCALL, PrivcmdHypercall);
    nix::ioctl_none_bad!(privcmd_unknown, IOCTL_PRIVCMD_UNKNOWN);

    /// `xen_version(XENVER_version)`: the version word, or the errno.
    pub fn xen_version(privcmd: &std::fs::File) -> Result<i32, nix::errno::Errno> {
        let mut h = PrivcmdHypercall {
            op: xenctrl::xen_abi::hypercall::XEN_VERSION,
            arg: [0; 5],
        };
        // SAFETY: `h` is a live privcmd_hypercall; XENVER_version takes no buffer,
        // so the hypervisor touches no user memory.
        unsafe { privcmd_hypercall(privcmd.as_raw_fd(), &mut h) }
    }

    /// The unknown privcmd ioctl: `ENOTTY` from the kernel, no hypercall.
    pub fn null_ioctl(privcmd: &std::fs::File) -> Result<i32, nix::errno::Errno> {
        // SAFETY: a command without argument that privcmd answers with ENOTTY.
        unsafe { privcmd_unknown(privcmd.as_raw_fd()) }
    }
}

#[cfg(target_os = "linux")]
fn run() -> Result<(), String> {
    use std::time::Instant;
    let n: u32 = match std::env::args().nth(1) {
        None => 100_000,
        Some(a) => a.parse().ok().filter(|&n| n > 0).ok_or(format!(
            "'{a}' is not a positive count: give N calls (default 100000)"
        ))?,
    };
    let privcmd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/xen/privcmd")
        .map_err(|e| {
            format!("/dev/xen/privcmd: {e} (modprobe xen-privcmd; run as root in Dom0)")
        })?;
    raw::xen_version(&privcmd).map_err(|e| format!("xen_version: {e}"))?;
    match raw::null_ioctl(&privcmd) {
        Err(nix::errno::Errno::ENOTTY) => {}
        other => return Err(format!("the null ioctl returned {other:?}, not ENOTTY")),
    }
    let t = Instant::now();
    for _ in 0..n {
        let _ = raw::xen_version(&privcmd);
    }
    let hc = t.elapsed().as_nanos() / u128::from(n);
    let t = Instant::now();
    for _ in 0..n {
        let _ = raw::null_ioctl(&privcmd);
    }
    let null = t.elapsed().as_nanos() / u128::from(n);
    println!(
        "hcbench: {n} calls, xen_version {hc} ns, null ioctl {null} ns, hypercall {} ns",
        hc.saturating_sub(null)
    );
    Ok(())
}

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = run() {
        eprintln!("hcbench: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("hcbench: needs Linux (Dom0's /dev/xen/privcmd)");
    std::process::exit(1);
}
