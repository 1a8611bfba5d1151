//! [`Host`] on Dom0's Linux: loop devices through `/dev/loop-control` and the loop ioctls
//! (`LOOP_CTL_GET_FREE`, `LOOP_CONFIGURE`, `LOOP_CLR_FD`), interfaces through sysfs and
//! rtnetlink (`RTM_NEWLINK` with `IFLA_MTU`, `IFLA_MASTER`, `IFF_UP`), as Xen's `block` and
//! `vif-bridge` scripts do with `losetup`, `ip` and `brctl`.
//!
//! Invariants: a loop device this module attaches is fully configured or detached again;
//! every error names the device or interface and the failed step.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

use crate::devices::{Host, Target};
use crate::sys::{SysError, SysResult};

const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LO_FLAGS_READ_ONLY: u32 = 1;

/// `struct loop_info64` (linux/loop.h).
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` (linux/loop.h, Linux 5.8+).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

fn os(what: &str, e: std::io::Error) -> SysError {
    SysError {
        errno: e.raw_os_error(),
        msg: format!("{what}: {}", crate::cmd::io_text(&e)),
    }
}

/// Linux's `major()`/`minor()` of a `dev_t`.
pub fn dev_numbers(dev: u64) -> (u32, u32) {
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    (major as u32, minor as u32)
}

pub struct LinuxHost;

impl LinuxHost {
    fn configure(dev: &str, file: &std::fs::File, path: &str, writable: bool) -> SysResult<()> {
        let loopf = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(dev)
            .map_err(|e| os(&format!("opening {dev}"), e))?;
        let mut name = [0u8; 64];
        let n = path.len().min(63);
        name[..n].copy_from_slice(&path.as_bytes()[..n]);
        let cfg = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: if writable { 0 } else { LO_FLAGS_READ_ONLY },
                lo_file_name: name,
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads one `struct loop_config` (layout checked above) from
        // the pointer, which is valid for the call; both fds are open.
        let r = unsafe { libc::ioctl(loopf.as_raw_fd(), LOOP_CONFIGURE as _, &cfg) };
        if r < 0 {
            return Err(os(
                &format!("attaching {path} to {dev}"),
                std::io::Error::last_os_error(),
            ));
        }
        Ok(())
    }
}

impl Host for LinuxHost {
    fn target(&self, path: &str) -> SysResult<Target> {
        let m = std::fs::metadata(path).map_err(|e| os("stat", e))?;
        if m.file_type().is_block_device() {
            let (a, b) = dev_numbers(m.rdev());
            Ok(Target::Block(a, b))
        } else if m.is_file() {
            Ok(Target::File)
        } else {
            Err(SysError::msg("neither a regular file nor a block device"))
        }
    }

    fn loop_attach(&self, path: &str, writable: bool) -> SysResult<(String, u32, u32)> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| os(&format!("opening {path}"), e))?;
        let ctl = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open("/dev/loop-control")
            .map_err(|e| os("opening /dev/loop-control (is the loop module loaded?)", e))?;
        // Another program may take the free device first: try again (bounded).
        for _ in 0..8 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
            let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
            if n < 0 {
                return Err(os(
                    "finding a free loop device",
                    std::io::Error::last_os_error(),
                ));
            }
            let dev = format!("/dev/loop{n}");
            match Self::configure(&dev, &file, path, writable) {
                Ok(()) => {
                    let m = std::fs::metadata(&dev).map_err(|e| os(&dev, e))?;
                    let (a, b) = dev_numbers(m.rdev());
                    return Ok((dev, a, b));
                }
                Err(e) if e.errno == Some(libc::EBUSY) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(SysError::msg("every free loop device was taken by others"))
    }

    fn loop_detach(&self, dev: &str) -> SysResult<()> {
        let f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(dev)
            .map_err(|e| os(&format!("opening {dev}"), e))?;
        // SAFETY: LOOP_CLR_FD takes no argument. With other openers (blkback) the kernel
        // only marks the device to be cleared when the last one closes it.
        let r = unsafe { libc::ioctl(f.as_raw_fd(), LOOP_CLR_FD as _, 0) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENXIO) {
                return Err(os(&format!("detaching {dev}"), e));
            }
        }
        Ok(())
    }

    fn is_bridge(&self, name: &str) -> bool {
        crate::devspec::valid_ifname(name)
            && std::path::Path::new(&format!("/sys/class/net/{name}/bridge")).is_dir()
    }

    fn netif_exists(&self, name: &str) -> bool {
        crate::devspec::valid_ifname(name)
            && std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
    }

    fn mtu(&self, name: &str) -> SysResult<u32> {
        let p = format!("/sys/class/net/{name}/mtu");
        let s = std::fs::read_to_string(&p).map_err(|e| os(&p, e))?;
        s.trim()
            .parse()
            .map_err(|_| SysError::msg(format!("{p}: not a number")))
    }

    fn join_bridge(&self, ifname: &str, bridge: &str, mtu: u32) -> SysResult<()> {
        let idx = |n: &str| {
            nix::net::if_::if_nametoindex(n).map_err(|e| SysError {
                errno: Some(e as i32),
                msg: format!("interface {n}: {}", e.desc()),
            })
        };
        let (i, b) = (idx(ifname)?, idx(bridge)?);
        setlink(i, &[(IFLA_MTU, mtu)], false)
            .map_err(|e| e.context(&format!("MTU of {ifname}")))?;
        setlink(i, &[(IFLA_MASTER, b)], false)
            .map_err(|e| e.context(&format!("adding {ifname} to {bridge}")))?;
        setlink(i, &[], true).map_err(|e| e.context(&format!("bringing {ifname} up")))
    }
}

const RTM_NEWLINK: u16 = 16;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFF_UP: u32 = 1;

/// An `RTM_NEWLINK` request for interface `index` with u32 attributes, optionally setting
/// IFF_UP.
pub fn newlink_msg(index: u32, attrs: &[(u16, u32)], up: bool, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(&0u32.to_ne_bytes()); // length, filled in below
    m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    m.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid
    // struct ifinfomsg
    m.push(libc::AF_UNSPEC as u8);
    m.push(0);
    m.extend_from_slice(&0u16.to_ne_bytes()); // type
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&(if up { IFF_UP } else { 0 }).to_ne_bytes()); // flags
    m.extend_from_slice(&(if up { IFF_UP } else { 0 }).to_ne_bytes()); // change
    for &(ty, v) in attrs {
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&v.to_ne_bytes());
    }
    let len = m.len() as u32;
    m[..4].copy_from_slice(&len.to_ne_bytes());
    m
}

/// The errno of a netlink ack (`NLMSG_ERROR`): 0 = success.
pub fn ack_errno(reply: &[u8]) -> Option<i32> {
    let ty = u16::from_ne_bytes(reply.get(4..6)?.try_into().ok()?);
    if ty != NLMSG_ERROR {
        return None;
    }
    let e = i32::from_ne_bytes(reply.get(16..20)?.try_into().ok()?);
    Some(-e)
}

fn setlink(index: u32, attrs: &[(u16, u32)], up: bool) -> SysResult<()> {
    let nl = |e: nix::errno::Errno| SysError {
        errno: Some(e as i32),
        msg: format!("rtnetlink: {}", e.desc()),
    };
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(nl)?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(nl)?;
    let msg = newlink_msg(index, attrs, up, 1);
    send(fd.as_raw_fd(), &msg, MsgFlags::empty()).map_err(nl)?;
    let mut buf = [0u8; 4096];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(nl)?;
    match ack_errno(&buf[..n]) {
        Some(0) => Ok(()),
        Some(e) => Err(nl(nix::errno::Errno::from_raw(e))),
        None => Err(SysError::msg("rtnetlink: unexpected reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_t_decoding() {
        assert_eq!(dev_numbers(0x0700), (7, 0));
        assert_eq!(dev_numbers(0x0710), (7, 16));
        assert_eq!(dev_numbers(0xfe10), (254, 16));
        assert_eq!(
            dev_numbers((259 << 8) | 0x12 | (0x345 << 20)),
            (259, 0x34512)
        );
    }

    #[test]
    fn netlink_messages() {
        let m = newlink_msg(5, &[(IFLA_MASTER, 3)], false, 1);
        assert_eq!(m.len(), 16 + 16 + 8);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), RTM_NEWLINK);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 5);
        assert_eq!(
            u16::from_ne_bytes(m[34..36].try_into().unwrap()),
            IFLA_MASTER
        );
        assert_eq!(u32::from_ne_bytes(m[36..40].try_into().unwrap()), 3);
        let up = newlink_msg(5, &[], true, 1);
        assert_eq!(u32::from_ne_bytes(up[24..28].try_into().unwrap()), IFF_UP);
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-19i32).to_ne_bytes());
        assert_eq!(ack_errno(&ack), Some(19));
        assert_eq!(ack_errno(&[0; 8]), None);
    }

    #[test]
    fn targets_on_this_host() {
        let h = LinuxHost;
        assert_eq!(h.target("/proc/self/exe").unwrap(), Target::File);
        assert!(
            h.target("/nonexistent/x")
                .unwrap_err()
                .msg
                .contains("No such file")
        );
        assert!(h.target("/tmp").is_err());
        assert!(!h.is_bridge("no-such-bridge0"));
        assert!(!h.is_bridge("../etc"));
        assert!(h.netif_exists("lo"));
    }
}
