//! The `/dev/xen/evtchn` ABI of Linux (`include/uapi/xen/evtchn.h`).
//!
//! Every ioctl is `_IOC(_IOC_NONE, 'E', nr, sizeof(arg))`: direction "none" but with the
//! size of the argument struct encoded, and a pointer to that struct as the argument. The
//! bind ioctls return the new local port as the ioctl's return value. `read()` yields the
//! fired ports as native-endian `u32`s (the port stays masked until it is written back);
//! `write()` of ports unmasks them.

/// Xen's `DOMID_SELF`: "the calling domain" in hypercall arguments.
pub const DOMID_SELF: u32 = 0x7FF0;

/// The domain id of Dom0 (the default remote domain for a loopback channel in Dom0).
pub const DOMID_DOM0: u32 = 0;

/// Bits of the generic Linux `_IOC` encoding (arm64 and x86 share it).
const IOC_NRSHIFT: u32 = 0;
const IOC_TYPESHIFT: u32 = 8;
const IOC_SIZESHIFT: u32 = 16;
const IOC_DIRSHIFT: u32 = 30;
const IOC_NONE: u32 = 0;
const IOC_SIZEMASK: u32 = (1 << 14) - 1;

/// `_IOC(_IOC_NONE, ty, nr, size)` as the kernel computes it.
pub const fn ioc_none(ty: u8, nr: u8, size: usize) -> u32 {
    (IOC_NONE << IOC_DIRSHIFT)
        | (((size as u32) & IOC_SIZEMASK) << IOC_SIZESHIFT)
        | ((ty as u32) << IOC_TYPESHIFT)
        | ((nr as u32) << IOC_NRSHIFT)
}

/// `struct ioctl_evtchn_bind_interdomain`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindInterdomain {
    /// Domain owning the unbound port to connect to.
    pub remote_domain: u32,
    /// The unbound port in `remote_domain`.
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindUnboundPort {
    /// Domain allowed to bind to the new port.
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify` (one port each).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortArg {
    /// A local port bound to this handle.
    pub port: u32,
}

/// `IOCTL_EVTCHN_BIND_INTERDOMAIN`.
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u32 =
    ioc_none(b'E', 1, core::mem::size_of::<BindInterdomain>());
/// `IOCTL_EVTCHN_BIND_UNBOUND_PORT`.
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u32 =
    ioc_none(b'E', 2, core::mem::size_of::<BindUnboundPort>());
/// `IOCTL_EVTCHN_UNBIND`.
pub const IOCTL_EVTCHN_UNBIND: u32 = ioc_none(b'E', 3, core::mem::size_of::<PortArg>());
/// `IOCTL_EVTCHN_NOTIFY`.
pub const IOCTL_EVTCHN_NOTIFY: u32 = ioc_none(b'E', 4, core::mem::size_of::<PortArg>());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_linux_uapi() {
        // _IOC(_IOC_NONE, 'E', nr, size) = size << 16 | 0x45 << 8 | nr
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_BIND_UNBOUND_PORT, 0x0004_4502);
        assert_eq!(IOCTL_EVTCHN_UNBIND, 0x0004_4503);
        assert_eq!(IOCTL_EVTCHN_NOTIFY, 0x0004_4504);
    }

    #[test]
    fn struct_layouts_match_linux_uapi() {
        assert_eq!(core::mem::size_of::<BindInterdomain>(), 8);
        assert_eq!(core::mem::offset_of!(BindInterdomain, remote_port), 4);
        assert_eq!(core::mem::size_of::<BindUnboundPort>(), 4);
        assert_eq!(core::mem::size_of::<PortArg>(), 4);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn ioc_none_agrees_with_nix() {
        let n = nix::request_code_none!(b'E', 5);
        assert_eq!(i128::from(ioc_none(b'E', 5, 0)), i128::from(n));
    }
}
