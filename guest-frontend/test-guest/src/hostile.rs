//! The `hostile` scenario's plan: a table of bad hypercalls with the answer
//! Xen 4.17 gives each (read from Xen's sources, cited per group), and a
//! seeded generator of random hypercalls that cannot legitimately kill the
//! calling guest. Pure data and arithmetic, tested on the host; the
//! bare-metal runner (`hostile_run`) executes it.
//!
//! Addresses: the runner owns a [`SCRATCH_SIZE`]-byte scratch buffer in its
//! `.bss`; table arguments name it ([`A::S`]), an unmapped IPA ([`A::U`]: 16
//! MiB past the end of the guest's RAM) or a literal value. Structures a
//! call reads are written into the scratch buffer first ([`Field`]).
//!
//! Random phase rules (why the guest survives them):
//! * never `sched_op` yield/block (a lone vCPU with interrupts masked would
//!   never wake) and shutdown/poll/remote_shutdown only with bad pointers;
//!   no PSCI at all (CPU_OFF, SYSTEM_OFF/RESET would end the guest);
//! * calls that take guest frame numbers or write where the guest says
//!   (`memory_op`, `grant_table_op`, `vcpu_op`, `multicall`) and
//!   `console_io` (which would print raw scratch bytes) only ever get bad
//!   pointers, because a valid structure with random GFNs could legitimately
//!   unmap or overwrite the guest's own code;
//! * every other call may get a pointer into the scratch buffer (random
//!   contents, random offset < 4 KiB so the largest Xen output, 1 KiB,
//!   stays inside it) or any bad pointer; bad pointers never fall inside
//!   the guest's RAM except two that straddle its ends (see
//!   `bad_pointer`).

use xen_abi::hypercall as hc;

/// Size of the runner's scratch buffer (page aligned).
pub const SCRATCH_SIZE: u64 = 16 * 1024;
/// Random calls made by default.
pub const DEFAULT_CALLS: u64 = 2000;
/// Seed used when `oxen.seed=` is not given.
pub const DEFAULT_SEED: u64 = 0x0e0e_4242_0f0f_1337;
/// Distance of the "unmapped" address past the end of RAM.
const UNMAPPED_GAP: u64 = 16 << 20;

/// What the guest knows about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Env {
    /// First IPA of RAM.
    pub ram_start: u64,
    /// First IPA past RAM.
    pub ram_end: u64,
    /// Address of the scratch buffer (inside RAM).
    pub scratch: u64,
    /// Whether the guest is the hardware domain (`XENFEAT_dom0`).
    pub dom0: bool,
}

impl Env {
    /// An IPA with nothing mapped: 16 MiB past the end of RAM.
    pub const fn unmapped(&self) -> u64 {
        self.ram_end + UNMAPPED_GAP
    }

    /// Whether `[addr, addr+len)` touches the guest's RAM.
    pub const fn in_ram(&self, addr: u64, len: u64) -> bool {
        addr < self.ram_end && addr.saturating_add(len) > self.ram_start
    }

    /// Whether `p` is one of the two pointers that straddle an end of RAM.
    pub const fn straddles(&self, p: u64) -> bool {
        p == self.ram_start.wrapping_sub(8) || p == self.ram_end - 2
    }

    /// `p`, unless it names the guest's RAM (straddling pointers aside):
    /// then the unmapped address.
    pub const fn sanitize(&self, p: u64) -> u64 {
        if self.straddles(p) || !self.in_ram(p, 4096) {
            p
        } else {
            self.unmapped()
        }
    }

    /// The value of an argument.
    pub const fn arg(&self, a: A) -> u64 {
        match a {
            A::V(v) => v,
            A::S(off) => self.scratch + off,
            A::U => self.unmapped(),
        }
    }
}

/// A hypercall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum A {
    /// This value.
    V(u64),
    /// The scratch buffer plus this offset.
    S(u64),
    /// The unmapped IPA.
    U,
}

/// A field written into the scratch buffer before a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A 16-bit value at this offset.
    U16(u64, u16),
    /// A 32-bit value at this offset.
    U32(u64, u32),
    /// A 64-bit value (an [`A`], so pointers can be stored) at this offset.
    U64(u64, A),
}

/// How a case is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// A Xen hypercall (`hvc #0xEA1`).
    Xen(u64, [A; 5]),
    /// An SMCCC call (`hvc #0`) with x1..x3.
    Smccc(u32, [A; 3]),
    /// `hvc #0x1234`: neither Xen nor SMCCC.
    HvcBadImm,
}

/// What Xen 4.17 answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This x0 (for SMCCC: this value in w0).
    Ret(i64),
    /// x0 depends on the caller: a DomU gets `domu`, Dom0 gets `dom0`.
    Role {
        /// Answer to a DomU.
        domu: i64,
        /// Answer to Dom0.
        dom0: i64,
    },
    /// x0 = 0 and the 16-bit status at this scratch offset is this value
    /// (batched grant operations report per element).
    Status(u64, i16),
    /// Status at this offset depends on the caller.
    RoleStatus {
        /// Scratch offset of the status.
        off: u64,
        /// Status for a DomU.
        domu: i16,
        /// Status for Dom0.
        dom0: i16,
    },
    /// A DomU gets `domu`; Dom0 gets any positive value (a count that
    /// depends on the machine).
    RolePositive {
        /// Answer to a DomU.
        domu: i64,
    },
    /// The guest takes an UNDEFINED-instruction exception (EC 0).
    Undef,
}

impl Expect {
    /// Whether x0 = `got` is Xen's answer to this caller.
    pub const fn accepts(self, dom0: bool, got: i64) -> bool {
        match (self, dom0) {
            (Expect::RolePositive { .. }, true) => got > 0,
            _ => match self.ret(dom0) {
                Some(v) => v == got,
                None => false,
            },
        }
    }

    /// The expected x0 for the caller (`None` for [`Expect::Undef`] and a
    /// positive count for Dom0).
    pub const fn ret(self, dom0: bool) -> Option<i64> {
        match self {
            Expect::RolePositive { domu } => {
                if dom0 {
                    None
                } else {
                    Some(domu)
                }
            }
            Expect::Ret(v) => Some(v),
            Expect::Role { domu, dom0: d0 } => Some(if dom0 { d0 } else { domu }),
            Expect::Status(..) | Expect::RoleStatus { .. } => Some(0),
            Expect::Undef => None,
        }
    }

    /// The expected status and its offset, if the case checks one.
    pub const fn status(self, dom0: bool) -> Option<(u64, i16)> {
        match self {
            Expect::Status(off, v) => Some((off, v)),
            Expect::RoleStatus {
                off,
                domu,
                dom0: d0,
            } => Some((off, if dom0 { d0 } else { domu })),
            _ => None,
        }
    }
}

/// One bad call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// Printed as `hostile: <name> -> <ret>`.
    pub name: &'static str,
    /// The call.
    pub call: Call,
    /// Scratch contents (everything else is zero).
    pub setup: &'static [Field],
    /// Xen's answer.
    pub expect: Expect,
}

// Errno values as hypercalls return them.
const EPERM: i64 = -1;
const ENOENT: i64 = -2;
const ESRCH: i64 = -3;
const ENXIO: i64 = -6;
const EACCES: i64 = -13;
const EFAULT: i64 = -14;
const EINVAL: i64 = -22;
const ENOSYS: i64 = -38;
// PSCI / SMCCC return codes (DEN0022, DEN0028).
const PSCI_NOT_SUPPORTED: i64 = -1;
const PSCI_INVALID_PARAMETERS: i64 = -2;
const PSCI_ALREADY_ON: i64 = -4;
const PSCI_INVALID_ADDRESS: i64 = -9;
// GNTST_* (grant_table.h).
const GNTST_BAD_DOMAIN: i16 = -2;
const GNTST_BAD_HANDLE: i16 = -4;
const GNTST_PERMISSION_DENIED: i16 = -8;
const GNTST_OKAY: i16 = 0;

const DOMID_SELF: u16 = 0x7ff0;
/// A domain id that exists in none of the tests.
const NO_DOMAIN: u16 = 1234;
const BAD_PORT: u32 = 99_999;

const CONSOLE_IO: u64 = hc::CONSOLE_IO;
const XEN_VERSION: u64 = hc::XEN_VERSION;
const SCHED_OP: u64 = hc::SCHED_OP;
const MEMORY_OP: u64 = hc::MEMORY_OP;
const GNTTAB: u64 = hc::GRANT_TABLE_OP;
const EVTCHN: u64 = hc::EVENT_CHANNEL_OP;
const VCPU_OP: u64 = hc::VCPU_OP;
const HVM_OP: u64 = hc::HVM_OP;
const VM_ASSIST: u64 = hc::VM_ASSIST;
const PLATFORM_OP: u64 = hc::PLATFORM_OP;
const PHYSDEV_OP: u64 = hc::PHYSDEV_OP;
const DOMCTL: u64 = hc::DOMCTL;
const MULTICALL: u64 = hc::MULTICALL;
const SYSCTL: u64 = hc::SYSCTL;
/// `XEN_DOMCTL_INTERFACE_VERSION` = `XEN_SYSCTL_INTERFACE_VERSION` in 4.17.
const TOOLS_VERSION: u32 = 0x15;

const PSCI_CPU_ON: u32 = 0xc400_0003;
const PSCI_AFFINITY_INFO: u32 = 0xc400_0004;
const PSCI_FEATURES: u32 = 0x8400_000a;

const Z: A = A::V(0);
const S: A = A::S(0);

const fn x(nr: u64, a0: u64, a1: A, a2: A) -> Call {
    Call::Xen(nr, [A::V(a0), a1, a2, Z, Z])
}

const fn case(name: &'static str, call: Call, setup: &'static [Field], expect: Expect) -> Case {
    Case {
        name,
        call,
        setup,
        expect,
    }
}

const fn ret(v: i64) -> Expect {
    Expect::Ret(v)
}

/// The fixed table. Xen sources (RELEASE-4.17.7) per group in comments.
#[rustfmt::skip]
pub const CASES: &[Case] = &[
    // drivers/char/console.c do_console_io: copy_from_guest -> -EFAULT,
    // unknown cmd -> -ENOSYS, read needs privilege (XSM_PRIV) -> -EPERM.
    case("console_io write unmapped", x(CONSOLE_IO, 0, A::V(16), A::U), &[], ret(EFAULT)),
    case("console_io write high", x(CONSOLE_IO, 0, A::V(16), A::V(0xffff_ffff_ffff_fff8)), &[], ret(EFAULT)),
    case("console_io cmd 7", x(CONSOLE_IO, 7, Z, Z), &[], ret(ENOSYS)),
    case("console_io read unmapped", x(CONSOLE_IO, 1, A::V(16), A::U), &[], Expect::Role { domu: EPERM, dom0: 0 }),
    // common/kernel.c do_xen_version.
    case("xen_version extraversion unmapped", x(XEN_VERSION, 1, A::U, Z), &[], ret(EFAULT)),
    case("xen_version capabilities gicd", x(XEN_VERSION, 3, A::V(0x0800_0000), Z), &[], ret(EFAULT)),
    case("xen_version get_features unmapped", x(XEN_VERSION, 6, A::U, Z), &[], ret(EFAULT)),
    case("xen_version get_features submap 5", x(XEN_VERSION, 6, S, Z), &[Field::U32(0, 5)], ret(EINVAL)),
    case("xen_version pagesize non-null", x(XEN_VERSION, 7, S, Z), &[], ret(EINVAL)),
    case("xen_version pagesize", x(XEN_VERSION, 7, Z, Z), &[], ret(4096)),
    case("xen_version cmd 99", x(XEN_VERSION, 99, S, Z), &[], ret(ENOSYS)),
    // common/sched/core.c do_sched_op.
    case("sched_op cmd 99", x(SCHED_OP, 99, S, Z), &[], ret(ENOSYS)),
    case("sched_op shutdown unmapped", x(SCHED_OP, 2, A::U, Z), &[], ret(EFAULT)),
    case("sched_op shutdown wraps", x(SCHED_OP, 2, A::V(u64::MAX - 1), Z), &[], ret(EFAULT)),
    case("sched_op poll unmapped", x(SCHED_OP, 3, A::U, Z), &[], ret(EFAULT)),
    case("sched_op poll ports unmapped", x(SCHED_OP, 3, S, Z), &[Field::U64(0, A::U), Field::U32(8, 1)], ret(EFAULT)),
    case("sched_op poll 200 ports", x(SCHED_OP, 3, S, Z), &[Field::U64(0, A::S(64)), Field::U32(8, 200)], ret(EINVAL)),
    case("sched_op poll port 99999", x(SCHED_OP, 3, S, Z), &[Field::U64(0, A::S(64)), Field::U32(8, 1), Field::U32(64, BAD_PORT)], ret(EINVAL)),
    case("sched_op remote_shutdown unmapped", x(SCHED_OP, 4, A::U, Z), &[], ret(EFAULT)),
    case("sched_op remote_shutdown no domain", x(SCHED_OP, 4, S, Z), &[Field::U16(0, NO_DOMAIN)], ret(ESRCH)),
    // common/memory.c do_memory_op, arch/arm/mm.c xenmem_add_to_physmap_one.
    case("memory_op cmd 63", x(MEMORY_OP, 63, S, Z), &[], ret(ENOSYS)),
    case("add_to_physmap unmapped", x(MEMORY_OP, 7, A::U, Z), &[], ret(EFAULT)),
    case("add_to_physmap space 77", x(MEMORY_OP, 7, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 77), Field::U64(16, A::V(0x4_5000))], ret(ENOSYS)),
    case("add_to_physmap gmfn_foreign", x(MEMORY_OP, 7, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 4), Field::U64(16, A::V(0x4_5000))], ret(ENOSYS)),
    case("add_to_physmap shared_info idx 1", x(MEMORY_OP, 7, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 0), Field::U64(8, A::V(1)), Field::U64(16, A::V(0x4_5000))], ret(EINVAL)),
    case("add_to_physmap grant idx 9999", x(MEMORY_OP, 7, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 1), Field::U64(8, A::V(9999)), Field::U64(16, A::V(0x4_5000))], ret(EINVAL)),
    case("add_to_physmap no domain", x(MEMORY_OP, 7, S, Z), &[Field::U16(0, NO_DOMAIN), Field::U32(4, 0), Field::U64(16, A::V(0x4_5000))], ret(ESRCH)),
    case("add_to_physmap dev_mmio", x(MEMORY_OP, 7, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 5), Field::U64(8, A::V(0x9000)), Field::U64(16, A::V(0x4_5000))], Expect::Role { domu: EACCES, dom0: ENOSYS }),
    case("current_reservation unmapped", x(MEMORY_OP, 3, A::U, Z), &[], ret(EFAULT)),
    case("current_reservation no domain", x(MEMORY_OP, 3, S, Z), &[Field::U16(0, NO_DOMAIN)], ret(ESRCH)),
    // Reservation ops answer every argument error with the extents done (0).
    case("decrease_reservation unmapped", x(MEMORY_OP, 1, A::U, Z), &[], ret(0)),
    case("decrease_reservation list unmapped", x(MEMORY_OP, 1, S, Z), &[Field::U64(0, A::U), Field::U64(8, A::V(1)), Field::U16(24, DOMID_SELF)], ret(0)),
    case("decrease_reservation gfn unmapped", x(MEMORY_OP, 1, S, Z), &[Field::U64(0, A::S(64)), Field::U64(8, A::V(1)), Field::U16(24, DOMID_SELF), Field::U64(64, A::V(0xf_ffff_f000))], ret(0)),
    case("decrease_reservation no domain", x(MEMORY_OP, 1, S, Z), &[Field::U64(0, A::S(64)), Field::U64(8, A::V(1)), Field::U16(24, NO_DOMAIN)], ret(0)),
    // common/grant_table.c do_grant_table_op.
    case("grant query_size unmapped", x(GNTTAB, 6, A::U, A::V(1)), &[], ret(EFAULT)),
    case("grant query_size count 2", x(GNTTAB, 6, S, A::V(2)), &[], ret(EINVAL)),
    case("grant query_size no domain", x(GNTTAB, 6, S, A::V(1)), &[Field::U16(0, NO_DOMAIN)], Expect::Status(12, GNTST_BAD_DOMAIN)),
    case("grant query_size opaque bits", x(GNTTAB, 0x1006, S, A::V(1)), &[], ret(EINVAL)),
    case("grant cmd 99", x(GNTTAB, 99, S, A::V(1)), &[], ret(ENOSYS)),
    case("grant map unmapped", x(GNTTAB, 0, A::U, A::V(1)), &[], ret(EFAULT)),
    case("grant map count 2^31", x(GNTTAB, 0, S, A::V(0x8000_0000)), &[], ret(EINVAL)),
    case("grant map no domain", x(GNTTAB, 0, S, A::V(1)), &[Field::U64(0, A::U), Field::U32(8, 2), Field::U16(16, NO_DOMAIN)], Expect::Status(18, GNTST_BAD_DOMAIN)),
    case("grant unmap bad handle", x(GNTTAB, 1, S, A::V(1)), &[Field::U64(0, A::U), Field::U32(16, 0xdead)], Expect::Status(20, GNTST_BAD_HANDLE)),
    case("grant set_version 2", x(GNTTAB, 8, S, A::V(1)), &[Field::U32(0, 2)], ret(ENOSYS)),
    case("grant set_version 3", x(GNTTAB, 8, S, A::V(1)), &[Field::U32(0, 3)], ret(EINVAL)),
    case("grant get_version no domain", x(GNTTAB, 10, S, A::V(1)), &[Field::U16(0, NO_DOMAIN)], ret(ESRCH)),
    // common/event_channel.c.
    case("evtchn send port 0", x(EVTCHN, 4, S, Z), &[Field::U32(0, 0)], ret(EINVAL)),
    case("evtchn send port 99999", x(EVTCHN, 4, S, Z), &[Field::U32(0, BAD_PORT)], ret(EINVAL)),
    case("evtchn send unmapped", x(EVTCHN, 4, A::U, Z), &[], ret(EFAULT)),
    case("evtchn alloc_unbound no domain", x(EVTCHN, 6, S, Z), &[Field::U16(0, NO_DOMAIN), Field::U16(2, 0)], ret(ESRCH)),
    case("evtchn bind_interdomain no domain", x(EVTCHN, 0, S, Z), &[Field::U16(0, NO_DOMAIN), Field::U32(4, 1)], ret(ESRCH)),
    case("evtchn bind_virq 999", x(EVTCHN, 1, S, Z), &[Field::U32(0, 999)], ret(EINVAL)),
    case("evtchn bind_virq timer vcpu 7", x(EVTCHN, 1, S, Z), &[Field::U32(0, 0), Field::U32(4, 7)], ret(ENOENT)),
    case("evtchn bind_virq dom_exc vcpu 1", x(EVTCHN, 1, S, Z), &[Field::U32(0, 3), Field::U32(4, 1)], ret(EINVAL)),
    case("evtchn bind_ipi vcpu 7", x(EVTCHN, 7, S, Z), &[Field::U32(0, 7)], ret(ENOENT)),
    case("evtchn unmask port 99999", x(EVTCHN, 9, S, Z), &[Field::U32(0, BAD_PORT)], ret(EINVAL)),
    case("evtchn close port 0", x(EVTCHN, 3, S, Z), &[Field::U32(0, 0)], ret(EINVAL)),
    case("evtchn close port 99999", x(EVTCHN, 3, S, Z), &[Field::U32(0, BAD_PORT)], ret(EINVAL)),
    case("evtchn status port 99999", x(EVTCHN, 5, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, BAD_PORT)], ret(EINVAL)),
    case("evtchn status no domain", x(EVTCHN, 5, S, Z), &[Field::U16(0, NO_DOMAIN), Field::U32(4, 1)], ret(ESRCH)),
    case("evtchn bind_vcpu port 99999", x(EVTCHN, 8, S, Z), &[Field::U32(0, BAD_PORT), Field::U32(4, 0)], ret(EINVAL)),
    case("evtchn reset no domain", x(EVTCHN, 10, S, Z), &[Field::U16(0, NO_DOMAIN)], ret(ESRCH)),
    case("evtchn cmd 99", x(EVTCHN, 99, S, Z), &[], ret(ENOSYS)),
    // arch/arm/domain.c do_vcpu_op, common/domain.c map_vcpu_info.
    case("vcpu_op register_vcpu_info vcpu 7", x(VCPU_OP, 10, A::V(7), S), &[], ret(ENOENT)),
    case("vcpu_op cmd 99 vcpu 7", x(VCPU_OP, 99, A::V(7), S), &[], ret(ENOENT)),
    case("vcpu_op cmd 99", x(VCPU_OP, 99, Z, S), &[], ret(EINVAL)),
    case("vcpu_op register_vcpu_info unmapped", x(VCPU_OP, 10, Z, A::U), &[], ret(EFAULT)),
    case("vcpu_op register_vcpu_info mfn outside RAM", x(VCPU_OP, 10, Z, S), &[Field::U64(0, A::V(0xf_ffff_f000 >> 12))], ret(EINVAL)),
    case("vcpu_op register_vcpu_info offset 4090", x(VCPU_OP, 10, Z, S), &[Field::U64(0, A::V(0x4_5000)), Field::U32(8, 4090)], ret(ENXIO)),
    case("vcpu_op register_runstate unmapped", x(VCPU_OP, 5, Z, A::U), &[], ret(EFAULT)),
    // arch/arm/hvm.c do_hvm_op.
    case("hvm_op get_param 9999", x(HVM_OP, 1, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 9999)], ret(EINVAL)),
    case("hvm_op get_param unmapped", x(HVM_OP, 1, A::U, Z), &[], ret(EFAULT)),
    case("hvm_op get_param no domain", x(HVM_OP, 1, S, Z), &[Field::U16(0, NO_DOMAIN), Field::U32(4, 1)], ret(ESRCH)),
    case("hvm_op get_param pae", x(HVM_OP, 1, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 4)], ret(EINVAL)),
    case("hvm_op set_param store_pfn self", x(HVM_OP, 0, S, Z), &[Field::U16(0, DOMID_SELF), Field::U32(4, 1), Field::U64(8, A::V(0x4_5000))], ret(EPERM)),
    case("hvm_op cmd 99", x(HVM_OP, 99, S, Z), &[], ret(ENOSYS)),
    // common/domain.c vm_assist, arch/arm/platform_hypercall.c, physdev.
    case("vm_assist type 0", x(VM_ASSIST, 0, Z, Z), &[], ret(EINVAL)),
    case("vm_assist cmd 7", x(VM_ASSIST, 7, A::V(5), Z), &[], ret(ENOSYS)),
    case("platform_op unmapped", Call::Xen(PLATFORM_OP, [A::U, Z, Z, Z, Z]), &[], ret(EFAULT)),
    case("platform_op bad version", Call::Xen(PLATFORM_OP, [S, Z, Z, Z, Z]), &[Field::U32(0, 62), Field::U32(4, 7)], ret(EACCES)),
    case("platform_op cmd 9999", Call::Xen(PLATFORM_OP, [S, Z, Z, Z, Z]), &[Field::U32(0, 9999), Field::U32(4, 0x0300_0001)], Expect::Role { domu: EPERM, dom0: ENOSYS }),
    case("physdev_op", x(PHYSDEV_OP, 25, A::U, Z), &[], ret(ENOSYS)),
    case("hypercall 63", x(63, 0, Z, Z), &[], ret(ENOSYS)),
    case("hypercall 2^40", x(1 << 40, 0, Z, Z), &[], ret(ENOSYS)),
    // common/domctl.c do_domctl: copy (-EFAULT), interface version
    // (-EACCES), the target domain (-ESRCH), then XSM privilege (-EPERM);
    // common/sysctl.c do_sysctl likewise without a target.
    case("domctl unmapped", Call::Xen(DOMCTL, [A::U, Z, Z, Z, Z]), &[], ret(EFAULT)),
    case("domctl version 0x14", Call::Xen(DOMCTL, [S, Z, Z, Z, Z]), &[Field::U32(0, 5), Field::U32(4, 0x14)], ret(EACCES)),
    case("domctl getdomaininfo d0", Call::Xen(DOMCTL, [S, Z, Z, Z, Z]), &[Field::U32(0, 5), Field::U32(4, TOOLS_VERSION)], Expect::Role { domu: EPERM, dom0: 0 }),
    case("domctl pausedomain no domain", Call::Xen(DOMCTL, [S, Z, Z, Z, Z]), &[Field::U32(0, 3), Field::U32(4, TOOLS_VERSION), Field::U16(8, NO_DOMAIN)], ret(ESRCH)),
    case("domctl createdomain", Call::Xen(DOMCTL, [S, Z, Z, Z, Z]), &[Field::U32(0, 1), Field::U32(4, TOOLS_VERSION), Field::U32(16 + 20, 8)], Expect::Role { domu: EPERM, dom0: EINVAL }),
    case("sysctl unmapped", Call::Xen(SYSCTL, [A::U, Z, Z, Z, Z]), &[], ret(EFAULT)),
    case("sysctl version 0", Call::Xen(SYSCTL, [S, Z, Z, Z, Z]), &[Field::U32(0, 3)], ret(EACCES)),
    case("sysctl physinfo", Call::Xen(SYSCTL, [S, Z, Z, Z, Z]), &[Field::U32(0, 3), Field::U32(4, TOOLS_VERSION)], Expect::Role { domu: EPERM, dom0: 0 }),
    // common/multicall.c do_multicall: the list is copied per entry
    // (-EFAULT); a nested multicall and an unknown op answer in `result`.
    case("multicall unmapped", Call::Xen(MULTICALL, [A::U, A::V(1), Z, Z, Z]), &[], ret(EFAULT)),
    case("multicall nested", Call::Xen(MULTICALL, [S, A::V(1), Z, Z, Z]), &[Field::U64(0, A::V(13))], Expect::Status(8, EINVAL as i16)),
    case("multicall op 63", Call::Xen(MULTICALL, [S, A::V(1), Z, Z, Z]), &[Field::U64(0, A::V(63))], Expect::Status(8, ENOSYS as i16)),
    // arch/arm/vpsci.c, vsmc.c.
    case("psci cpu_on mpidr 7", Call::Smccc(PSCI_CPU_ON, [A::V(7), A::V(0x4008_0000), Z]), &[], ret(PSCI_INVALID_PARAMETERS)),
    case("psci cpu_on mpidr 0xff00", Call::Smccc(PSCI_CPU_ON, [A::V(0xff00), A::V(0x4008_0000), Z]), &[], ret(PSCI_INVALID_PARAMETERS)),
    case("psci cpu_on self thumb", Call::Smccc(PSCI_CPU_ON, [Z, A::V(0x4008_0001), Z]), &[], ret(PSCI_INVALID_ADDRESS)),
    case("psci cpu_on self", Call::Smccc(PSCI_CPU_ON, [Z, A::V(0x4008_0000), Z]), &[], ret(PSCI_ALREADY_ON)),
    case("psci affinity_info mpidr 7", Call::Smccc(PSCI_AFFINITY_INFO, [A::V(7), Z, Z]), &[], ret(PSCI_INVALID_PARAMETERS)),
    case("psci features 0x1234", Call::Smccc(PSCI_FEATURES, [A::V(0x1234), Z, Z]), &[], ret(PSCI_NOT_SUPPORTED)),
    case("smccc fid 0x86001234", Call::Smccc(0x8600_1234, [Z, Z, Z]), &[], ret(PSCI_NOT_SUPPORTED)),
    // arch/arm/traps.c do_trap_hypercall: other immediates are UNDEFINED.
    case("hvc #0x1234", Call::HvcBadImm, &[], Expect::Undef),
];

/// Cases against another domain `peer` (`oxen.peer=`, one of 0..=3): a
/// DomU may not touch it (XSM_TARGET: -EPERM, `GNTST_permission_denied`),
/// Dom0 may. They run in this order: Dom0's alloc_unbound makes port 1 of
/// the peer unbound, which its status query then finds.
#[rustfmt::skip]
pub fn peer_cases(peer: u16) -> [Case; 5] {
    let i = usize::from(peer.min(3));
    [
        case("peer evtchn alloc_unbound", x(EVTCHN, 6, S, Z), &PEER_DOM[i], Expect::Role { domu: EPERM, dom0: 0 }),
        case("peer evtchn status port 1", x(EVTCHN, 5, S, Z), &PEER_PORT1[i], Expect::Role { domu: EPERM, dom0: 0 }),
        case("peer grant query_size", x(GNTTAB, 6, S, A::V(1)), &PEER_DOM[i], Expect::RoleStatus { off: 12, domu: GNTST_PERMISSION_DENIED, dom0: GNTST_OKAY }),
        case("peer hvm_op get_param store_evtchn", x(HVM_OP, 1, S, Z), &PEER_HVM[i], Expect::Role { domu: EPERM, dom0: 0 }),
        case("peer current_reservation", x(MEMORY_OP, 3, S, Z), &PEER_DOM[i], Expect::RolePositive { domu: EPERM }),
    ]
}

/// `domid` = peer at offset 0, per peer 0..=3.
const PEER_DOM: [[Field; 1]; 4] = [
    [Field::U16(0, 0)],
    [Field::U16(0, 1)],
    [Field::U16(0, 2)],
    [Field::U16(0, 3)],
];
/// `evtchn_status { dom = peer, port = 1 }`.
const PEER_PORT1: [[Field; 2]; 4] = [
    [Field::U16(0, 0), Field::U32(4, 1)],
    [Field::U16(0, 1), Field::U32(4, 1)],
    [Field::U16(0, 2), Field::U32(4, 1)],
    [Field::U16(0, 3), Field::U32(4, 1)],
];
/// `xen_hvm_param { domid = peer, index = HVM_PARAM_STORE_EVTCHN }`.
const PEER_HVM: [[Field; 2]; 4] = [
    [Field::U16(0, 0), Field::U32(4, 2)],
    [Field::U16(0, 1), Field::U32(4, 2)],
    [Field::U16(0, 2), Field::U32(4, 2)],
    [Field::U16(0, 3), Field::U32(4, 2)],
];

/// Whether `oxen.peer=` names a peer the table supports.
pub fn peer_supported(peer: u64) -> bool {
    peer <= 3
}

// ---------------------------------------------------------------- random

/// xorshift64* (Vigna): small, deterministic, good enough to pick calls.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced: xorshift needs a set bit).
    pub const fn new(seed: u64) -> Self {
        Rng(if seed == 0 { DEFAULT_SEED } else { seed })
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One random hypercall: number, arguments, and where to put random
/// bytes first (`Some(offset)` into the scratch buffer, 8-aligned, 128
/// bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RandomCall {
    /// Hypercall number (0..=64).
    pub nr: u64,
    /// x0..x4.
    pub args: [u64; 5],
    /// Scratch offset to fill with random bytes before the call.
    pub fill: Option<u64>,
}

/// Calls whose arguments name guest frames or places the hypervisor
/// writes to, or that print: bad pointers only (module docs).
const BAD_POINTERS_ONLY: [u64; 6] = [
    hc::MEMORY_OP,
    hc::MULTICALL,
    hc::CONSOLE_IO,
    hc::GRANT_TABLE_OP,
    hc::VCPU_OP,
    hc::SCHED_OP,
];

/// The hypercalls Xen/Arm implements (the random phase favours them).
const IMPLEMENTED: [u64; 12] = [
    hc::PLATFORM_OP,
    hc::MEMORY_OP,
    hc::XEN_VERSION,
    hc::CONSOLE_IO,
    hc::GRANT_TABLE_OP,
    hc::VM_ASSIST,
    hc::VCPU_OP,
    hc::SCHED_OP,
    hc::EVENT_CHANNEL_OP,
    hc::PHYSDEV_OP,
    hc::HVM_OP,
    hc::MULTICALL,
];

/// Tally of the random phase's results: successes and the commonest
/// errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Zero or positive returns.
    pub ok: u64,
    /// -EFAULT.
    pub efault: u64,
    /// -EINVAL.
    pub einval: u64,
    /// -ENOSYS.
    pub enosys: u64,
    /// -EPERM, -ESRCH, -ENOENT (permission and existence).
    pub denied: u64,
    /// Any other value.
    pub other: u64,
}

impl Tally {
    /// Count one return value.
    pub fn add(&mut self, ret: i64) {
        let slot = match ret {
            r if r >= 0 => &mut self.ok,
            EFAULT => &mut self.efault,
            EINVAL => &mut self.einval,
            ENOSYS => &mut self.enosys,
            EPERM | ESRCH | ENOENT => &mut self.denied,
            _ => &mut self.other,
        };
        *slot += 1;
    }
}

/// Bytes of random data written for a call with a scratch pointer.
pub const FILL_LEN: u64 = 128;

/// Pointers that never name the guest's RAM except the two straddling
/// ones (`ram_start - 8`: the first page faults before anything is
/// accessed; `ram_end - 2`: at most two bytes of the unused top of RAM are
/// read or written before the fault), which `console_io` does not get (it
/// would print them).
fn bad_pointer(rng: &mut Rng, env: &Env, nr: u64) -> u64 {
    let cands = [
        0,
        8,
        env.ram_start.wrapping_sub(8),
        env.ram_end - 2,
        env.ram_end,
        env.unmapped() + rng.below(1 << 20),
        0x0800_0000 + rng.below(0x1_0000),
        0x0900_0000,
        0x3800_0000 + rng.below(0x100_0000),
        0x3900_0000,
        0x4020_0000,
        1 << 48,
        0xffff_0000_0000_0000 | rng.next(),
        0xffff_ffff_ffff_f000,
        u64::MAX - 3,
        rng.next() | 1,
    ];
    let p = cands[rng.below(cands.len() as u64) as usize];
    if env.straddles(p) && nr == hc::CONSOLE_IO {
        env.unmapped()
    } else {
        env.sanitize(p)
    }
}

/// A plausible-looking argument value.
fn value(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => rng.below(16),
        1 => rng.next(),
        2 => rng.next() & 0xffff_ffff,
        3 => [0x7ff0, 0x7ff1, 0x7ff2, 0, 1, 2, 1234][rng.below(7) as usize],
        4 => 1 << rng.below(64),
        _ => u64::MAX - rng.below(4),
    }
}

/// The next random call. `sched_op` sub-ops 0 and 1 and every valid
/// pointer for [`BAD_POINTERS_ONLY`] calls are never produced.
pub fn random_call(rng: &mut Rng, env: &Env) -> RandomCall {
    // Three in four calls go to a hypercall Xen/Arm implements, so most reach
    // a handler rather than -ENOSYS; the rest are uniform over 0..=64.
    let nr = if rng.below(4) == 0 {
        rng.below(65)
    } else {
        IMPLEMENTED[rng.below(IMPLEMENTED.len() as u64) as usize]
    };
    let restricted = BAD_POINTERS_ONLY.contains(&nr);
    let mut fill = None;
    let mut args = [0u64; 5];
    for a in args.iter_mut() {
        *a = match rng.below(4) {
            0 => env.sanitize(value(rng)),
            1 if !restricted => {
                let off = rng.below(4096) & !7;
                fill = Some(off);
                env.scratch + off + if rng.below(4) == 0 { 1 } else { 0 }
            }
            _ => bad_pointer(rng, env, nr),
        };
    }
    // The sub-op: mostly small, so the handlers are reached.
    args[0] = env.sanitize(if rng.below(4) == 0 {
        value(rng)
    } else {
        rng.below(16)
    });
    if nr == hc::SCHED_OP && args[0] <= 1 {
        // Not yield/block: a lone vCPU with interrupts masked never wakes.
        args[0] += 2;
    }
    RandomCall { nr, args, fill }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domu() -> Env {
        Env {
            ram_start: 0x4000_0000,
            ram_end: 0x4400_0000,
            scratch: 0x4010_0000,
            dom0: false,
        }
    }

    #[test]
    fn table_names_are_unique_and_setups_fit() {
        let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate case names");
        for c in CASES.iter().chain(peer_cases(2).iter()) {
            for f in c.setup {
                let (off, len) = match *f {
                    Field::U16(o, _) => (o, 2),
                    Field::U32(o, _) => (o, 4),
                    Field::U64(o, _) => (o, 8),
                };
                assert!(
                    off.is_multiple_of(len) && off + len <= 4096,
                    "{}: {f:?}",
                    c.name
                );
            }
            if let Some((off, _)) = c.expect.status(false) {
                assert!(off.is_multiple_of(2) && off < 4096, "{}", c.name);
            }
        }
    }

    #[test]
    fn expectations_by_role() {
        let e = Expect::Role { domu: -1, dom0: 0 };
        assert_eq!((e.ret(false), e.ret(true)), (Some(-1), Some(0)));
        assert_eq!(Expect::Undef.ret(false), None);
        let s = Expect::RoleStatus {
            off: 12,
            domu: -8,
            dom0: 0,
        };
        assert_eq!(s.status(false), Some((12, -8)));
        assert_eq!(s.status(true), Some((12, 0)));
        assert_eq!(s.ret(true), Some(0));
        assert_eq!(peer_cases(2)[0].setup, &[Field::U16(0, 2)]);
        let p = Expect::RolePositive { domu: -1 };
        assert!(p.accepts(true, 5) && !p.accepts(true, 0) && p.accepts(false, -1));
        assert!(!Expect::Undef.accepts(false, 0));
        assert!(peer_supported(2) && !peer_supported(9));
    }

    #[test]
    fn env_arguments() {
        let e = domu();
        assert_eq!(e.arg(A::U), 0x4500_0000);
        assert_eq!(e.arg(A::S(64)), 0x4010_0040);
        assert!(!e.in_ram(e.unmapped(), 4096));
        assert!(e.in_ram(0x3fff_fff0, 32));
        assert!(!e.in_ram(0x3fff_f000, 4096));
        assert_eq!(e.sanitize(0x4020_0000), e.unmapped());
        assert_eq!(e.sanitize(0x3fff_fff8), 0x3fff_fff8);
        assert_eq!(e.sanitize(0x4400_0000), 0x4400_0000);
    }

    #[test]
    fn rng_is_deterministic_and_spreads() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let va: Vec<u64> = (0..100).map(|_| a.next()).collect();
        let vb: Vec<u64> = (0..100).map(|_| b.next()).collect();
        assert_eq!(va, vb);
        assert_ne!(Rng::new(8).next(), va[0]);
        let mut seen = [false; 65];
        let mut r = Rng::new(DEFAULT_SEED);
        for _ in 0..5000 {
            seen[r.below(65) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(Rng::new(0).next(), Rng::new(DEFAULT_SEED).next());
    }

    #[test]
    fn tally_counts() {
        let mut t = Tally::default();
        for r in [0, 5, -14, -22, -38, -1, -3, -2, -95] {
            t.add(r);
        }
        assert_eq!(
            t,
            Tally {
                ok: 2,
                efault: 1,
                einval: 1,
                enosys: 1,
                denied: 3,
                other: 1
            }
        );
    }

    #[test]
    fn random_calls_respect_the_rules() {
        for env in [
            domu(),
            Env {
                ram_start: 0x4800_0000,
                ram_end: 0x5000_0000,
                scratch: 0x4810_0000,
                dom0: true,
            },
        ] {
            let mut r = Rng::new(DEFAULT_SEED);
            let mut with_scratch = 0;
            let mut implemented = 0;
            for _ in 0..20_000 {
                let c = random_call(&mut r, &env);
                implemented += usize::from(IMPLEMENTED.contains(&c.nr));
                assert!(c.nr <= 64);
                if c.nr == hc::SCHED_OP {
                    assert!(c.args[0] >= 2, "{c:?}");
                }
                let scratch = env.scratch..env.scratch + SCRATCH_SIZE;
                for &a in &c.args[1..] {
                    if scratch.contains(&a) {
                        with_scratch += 1;
                        assert!(!BAD_POINTERS_ONLY.contains(&c.nr), "{c:?}");
                        assert!(a + 1024 <= scratch.end);
                        let off = c.fill.expect("scratch pointer without fill");
                        assert!(off.is_multiple_of(8) && off + FILL_LEN <= SCRATCH_SIZE);
                    } else if env.in_ram(a, 1) {
                        assert_eq!(a, env.ram_end - 2, "{c:?} points into RAM");
                        assert_ne!(c.nr, hc::CONSOLE_IO);
                    }
                }
            }
            assert!(with_scratch > 1000);
            assert!(implemented > 14_000, "{implemented}");
        }
    }
}
