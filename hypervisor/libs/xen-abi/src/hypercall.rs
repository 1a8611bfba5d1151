//! Hypercall numbers (`xen/include/public/xen.h`) and the sub-op numbers of
//! the calls oxen implements. On arm64 the number is in x16, the arguments
//! in x0..x4 and the result in x0.

/// `__HYPERVISOR_platform_op`.
pub const PLATFORM_OP: u64 = 7;
/// `__HYPERVISOR_memory_op`.
pub const MEMORY_OP: u64 = 12;
/// `__HYPERVISOR_multicall`.
pub const MULTICALL: u64 = 13;
/// `__HYPERVISOR_xen_version`.
pub const XEN_VERSION: u64 = 17;
/// `__HYPERVISOR_console_io`.
pub const CONSOLE_IO: u64 = 18;
/// `__HYPERVISOR_grant_table_op`.
pub const GRANT_TABLE_OP: u64 = 20;
/// `__HYPERVISOR_vm_assist`.
pub const VM_ASSIST: u64 = 21;
/// `__HYPERVISOR_vcpu_op`.
pub const VCPU_OP: u64 = 24;
/// `__HYPERVISOR_sched_op`.
pub const SCHED_OP: u64 = 29;
/// `__HYPERVISOR_event_channel_op`.
pub const EVENT_CHANNEL_OP: u64 = 32;
/// `__HYPERVISOR_physdev_op`.
pub const PHYSDEV_OP: u64 = 33;
/// `__HYPERVISOR_hvm_op`.
pub const HVM_OP: u64 = 34;
/// `__HYPERVISOR_sysctl`.
pub const SYSCTL: u64 = 35;
/// `__HYPERVISOR_domctl`.
pub const DOMCTL: u64 = 36;
/// `__HYPERVISOR_dm_op`.
pub const DM_OP: u64 = 41;

/// `console_io` sub-ops.
pub mod consoleio {
    /// Write `count` bytes from a guest buffer to the console.
    pub const WRITE: u64 = 0;
    /// Read up to `count` bytes of console input into a guest buffer.
    pub const READ: u64 = 1;
}

/// `xen_version` sub-ops (`XENVER_*`).
pub mod xenver {
    /// Returns `(major << 16) | minor`.
    pub const VERSION: u64 = 0;
    /// Fills a 16-byte extraversion string.
    pub const EXTRAVERSION: u64 = 1;
    /// Fills `xen_compile_info_t`.
    pub const COMPILE_INFO: u64 = 2;
    /// Fills a 1024-byte capabilities string.
    pub const CAPABILITIES: u64 = 3;
    /// Fills a 64-byte changeset string.
    pub const CHANGESET: u64 = 4;
    /// Fills `xen_platform_parameters_t`.
    pub const PLATFORM_PARAMETERS: u64 = 5;
    /// Fills `xen_feature_info_t` (submap index in, bitmap out).
    pub const GET_FEATURES: u64 = 6;
    /// Returns the page size.
    pub const PAGESIZE: u64 = 7;
    /// Returns the guest handle (domain UUID).
    pub const GUEST_HANDLE: u64 = 8;
    /// Fills a 1024-byte command line.
    pub const COMMANDLINE: u64 = 9;
    /// Build id.
    pub const BUILD_ID: u64 = 10;
}

/// `sched_op` sub-ops (`SCHEDOP_*`) and shutdown reasons (`SHUTDOWN_*`).
pub mod schedop {
    /// Give up the CPU voluntarily.
    pub const YIELD: u64 = 0;
    /// Block until an event is pending.
    pub const BLOCK: u64 = 1;
    /// Shut the domain down; arg points to `sched_shutdown { reason: u32 }`.
    pub const SHUTDOWN: u64 = 2;
    /// Poll a set of event channels.
    pub const POLL: u64 = 3;

    /// Shutdown reason: power off.
    pub const SHUTDOWN_POWEROFF: u32 = 0;
    /// Shutdown reason: reboot.
    pub const SHUTDOWN_REBOOT: u32 = 1;
    /// Shutdown reason: suspend.
    pub const SHUTDOWN_SUSPEND: u32 = 2;
    /// Shutdown reason: crash.
    pub const SHUTDOWN_CRASH: u32 = 3;
    /// Shutdown reason: watchdog.
    pub const SHUTDOWN_WATCHDOG: u32 = 4;
    /// Shutdown reason: soft reset.
    pub const SHUTDOWN_SOFT_RESET: u32 = 5;
}

/// A shutdown reason (`SHUTDOWN_*`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ShutdownReason {
    /// The domain powered itself off.
    Poweroff,
    /// The domain asked to be rebooted.
    Reboot,
    /// The domain suspended.
    Suspend,
    /// The domain crashed (or was crashed by the hypervisor).
    Crash,
    /// The domain's watchdog fired.
    Watchdog,
    /// Soft reset.
    SoftReset,
}

impl ShutdownReason {
    /// Decode a guest-supplied reason; `None` for unknown values.
    pub const fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            schedop::SHUTDOWN_POWEROFF => Self::Poweroff,
            schedop::SHUTDOWN_REBOOT => Self::Reboot,
            schedop::SHUTDOWN_SUSPEND => Self::Suspend,
            schedop::SHUTDOWN_CRASH => Self::Crash,
            schedop::SHUTDOWN_WATCHDOG => Self::Watchdog,
            schedop::SHUTDOWN_SOFT_RESET => Self::SoftReset,
            _ => return None,
        })
    }

    /// The name xl uses for it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Crash => "crash",
            Self::Watchdog => "watchdog",
            Self::SoftReset => "soft_reset",
        }
    }
}

/// Name of a hypercall number, for log lines; `None` if unknown.
pub const fn name(nr: u64) -> Option<&'static str> {
    Some(match nr {
        PLATFORM_OP => "platform_op",
        MEMORY_OP => "memory_op",
        MULTICALL => "multicall",
        XEN_VERSION => "xen_version",
        CONSOLE_IO => "console_io",
        GRANT_TABLE_OP => "grant_table_op",
        VM_ASSIST => "vm_assist",
        VCPU_OP => "vcpu_op",
        SCHED_OP => "sched_op",
        EVENT_CHANNEL_OP => "event_channel_op",
        PHYSDEV_OP => "physdev_op",
        HVM_OP => "hvm_op",
        SYSCTL => "sysctl",
        DOMCTL => "domctl",
        DM_OP => "dm_op",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_reasons() {
        assert_eq!(ShutdownReason::from_raw(0), Some(ShutdownReason::Poweroff));
        assert_eq!(ShutdownReason::from_raw(3), Some(ShutdownReason::Crash));
        assert_eq!(ShutdownReason::from_raw(99), None);
        assert_eq!(name(CONSOLE_IO), Some("console_io"));
        assert_eq!(name(99), None);
    }
}
