//! [`EvtchnDevice`] over a real `/dev/xen/evtchn` handle (Linux only).
//!
//! This is the only module with `unsafe`: the ioctls pass a pointer to a local
//! `#[repr(C)]` argument struct whose layout matches the kernel's (tested in `abi`).

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::abi::{
    BindInterdomain, BindUnboundPort, IOCTL_EVTCHN_BIND_INTERDOMAIN,
    IOCTL_EVTCHN_BIND_UNBOUND_PORT, IOCTL_EVTCHN_NOTIFY, IOCTL_EVTCHN_UNBIND, PortArg,
};
use crate::device::EvtchnDevice;

nix::ioctl_readwrite_bad!(
    ioctl_bind_interdomain,
    IOCTL_EVTCHN_BIND_INTERDOMAIN,
    BindInterdomain
);
nix::ioctl_readwrite_bad!(
    ioctl_bind_unbound_port,
    IOCTL_EVTCHN_BIND_UNBOUND_PORT,
    BindUnboundPort
);
nix::ioctl_write_ptr_bad!(ioctl_unbind, IOCTL_EVTCHN_UNBIND, PortArg);
nix::ioctl_write_ptr_bad!(ioctl_notify, IOCTL_EVTCHN_NOTIFY, PortArg);

/// One open handle of `/dev/xen/evtchn` (every handle has its own set of bound ports).
#[derive(Debug)]
pub struct LinuxEvtchn {
    file: File,
}

fn port_from_ret(ret: i32) -> io::Result<u32> {
    u32::try_from(ret).map_err(|_| io::Error::other(format!("ioctl returned port {ret}")))
}

impl LinuxEvtchn {
    /// Opens the device read-write (close-on-exec).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self { file })
    }
}

impl EvtchnDevice for LinuxEvtchn {
    fn bind_unbound_port(&mut self, remote_domain: u32) -> io::Result<u32> {
        let mut arg = BindUnboundPort { remote_domain };
        // SAFETY: the fd is open for the lifetime of `self.file`; `arg` is a live, properly
        // laid out `ioctl_evtchn_bind_unbound_port` that the kernel only reads.
        let ret = unsafe { ioctl_bind_unbound_port(self.file.as_raw_fd(), &mut arg) }?;
        port_from_ret(ret)
    }

    fn bind_interdomain(&mut self, remote_domain: u32, remote_port: u32) -> io::Result<u32> {
        let mut arg = BindInterdomain {
            remote_domain,
            remote_port,
        };
        // SAFETY: as above, `arg` is a live `ioctl_evtchn_bind_interdomain`.
        let ret = unsafe { ioctl_bind_interdomain(self.file.as_raw_fd(), &mut arg) }?;
        port_from_ret(ret)
    }

    fn notify(&mut self, port: u32) -> io::Result<()> {
        let arg = PortArg { port };
        // SAFETY: `arg` is a live `ioctl_evtchn_notify` the kernel only reads.
        unsafe { ioctl_notify(self.file.as_raw_fd(), &arg) }?;
        Ok(())
    }

    fn unbind(&mut self, port: u32) -> io::Result<()> {
        let arg = PortArg { port };
        // SAFETY: `arg` is a live `ioctl_evtchn_unbind` the kernel only reads.
        unsafe { ioctl_unbind(self.file.as_raw_fd(), &arg) }?;
        Ok(())
    }

    fn read_ports(&mut self, buf: &mut [u32], timeout: Duration) -> io::Result<usize> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(ms))?;
        if ready == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no event within {} ms", timeout.as_millis()),
            ));
        }
        let mut bytes = vec![0u8; buf.len() * 4];
        let n = self.file.read(&mut bytes)?;
        let ports = n / 4;
        for (dst, chunk) in buf.iter_mut().zip(bytes[..ports * 4].chunks_exact(4)) {
            *dst = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Ok(ports)
    }

    fn unmask(&mut self, ports: &[u32]) -> io::Result<()> {
        let bytes: Vec<u8> = ports.iter().flat_map(|p| p.to_ne_bytes()).collect();
        self.file.write_all(&bytes)
    }
}

/// Where Linux puts the interrupts it allocates from now on.
const DEFAULT_AFFINITY: &str = "/proc/irq/default_smp_affinity";

/// Run this process on `cpu` only, and make `event_cpu` the CPU of the
/// interrupts Linux allocates from now on: an event channel bound through
/// the device is delivered to the next CPU of its interrupt's affinity
/// (Linux's `evtchn_bind_interdom_next_vcpu`), which is then `event_cpu`.
/// Returns the previous default affinity, for [`unpin_events`].
pub fn pin(cpu: usize, event_cpu: usize) -> io::Result<String> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu).map_err(io::Error::from)?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(io::Error::from)?;
    let old = std::fs::read_to_string(DEFAULT_AFFINITY)?;
    std::fs::write(DEFAULT_AFFINITY, crate::cli::cpu_mask(event_cpu))?;
    Ok(old.trim().to_string())
}

/// Put back the default interrupt affinity [`pin`] replaced.
pub fn unpin_events(old: &str) -> io::Result<()> {
    std::fs::write(DEFAULT_AFFINITY, old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_device_is_not_found() {
        let e = LinuxEvtchn::open(Path::new("/nonexistent/xen/evtchn")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn ioctls_on_a_non_evtchn_file_fail_cleanly() {
        // /dev/null accepts open(O_RDWR) but no evtchn ioctl: every call must be an error.
        let mut d = LinuxEvtchn::open(Path::new("/dev/null")).unwrap();
        assert_eq!(
            d.bind_unbound_port(0).unwrap_err().raw_os_error(),
            Some(nix::libc::ENOTTY)
        );
        assert!(d.bind_interdomain(0, 1).is_err());
        assert!(d.notify(1).is_err());
        assert!(d.unbind(1).is_err());
    }
}
