//! The `hostile` scenario on the hardware: run [`hostile::CASES`] (and the
//! peer cases), print one line per case, then the seeded random phase, then
//! power off. See `hostile` for the plan and the rules that keep the guest
//! alive.
//!
//! Lines: `hostile: <name> -> <ret>` per case (plus ` status <s>` for
//! batched grant cases), `hostile: FAIL <name>: ...` when the answer is
//! not Xen's, `hostile: seed <hex> calls <n>` before the random phase and
//! `hostile: survived <n> calls` after it, then `hostile: done, <k>
//! failures`.

use core::fmt::{self, Write};

use oxen_types::Ipa;
use xen_abi::features::XENFEAT_DOM0;
use xen_guest::dt::GuestDt;
use xen_guest::{Console, Hvc, Hypercall, Smccc};

use crate::hostile::{
    self, Call, Case, Env, Expect, FILL_LEN, Field, Rng, SCRATCH_SIZE, Tally, random_call,
};
use crate::rt;

/// The scratch buffer hypercall arguments point into.
#[repr(C, align(4096))]
struct Scratch([u8; SCRATCH_SIZE as usize]);

static mut SCRATCH: Scratch = Scratch([0; SCRATCH_SIZE as usize]);

fn scratch_base() -> u64 {
    (&raw mut SCRATCH) as u64
}

/// Store `v` at scratch offset `off` (aligned by the callers: the MMU is
/// off, memory is Device, unaligned accesses fault).
fn put<T: Copy>(off: u64, v: T) {
    debug_assert!(off.is_multiple_of(core::mem::size_of::<T>() as u64));
    debug_assert!(off + core::mem::size_of::<T>() as u64 <= SCRATCH_SIZE);
    // SAFETY: `off` + size lies inside SCRATCH (checked by the table's
    // unit tests and FILL_LEN's bound), aligned for T; nothing borrows
    // SCRATCH (it is only ever accessed through raw pointers).
    unsafe { core::ptr::write_volatile((scratch_base() + off) as *mut T, v) }
}

fn get_i16(off: u64) -> i16 {
    // SAFETY: as in `put`; a 2-aligned offset inside SCRATCH.
    unsafe { core::ptr::read_volatile((scratch_base() + off) as *const i16) }
}

fn clear_scratch() {
    for off in (0..SCRATCH_SIZE).step_by(8) {
        put(off, 0u64);
    }
}

fn line(args: fmt::Arguments<'_>) {
    let mut h = Hvc;
    let mut c = Console::new(&mut h);
    let _ = c.write_fmt(args);
    let _ = c.write_str("\n");
}

macro_rules! say {
    ($($t:tt)*) => { line(format_args!($($t)*)) };
}

/// Whether this guest is the hardware domain: `XENFEAT_dom0` in submap 0.
fn is_dom0() -> bool {
    clear_scratch();
    // SAFETY: XENVER_get_features reads and writes 8 bytes at the scratch
    // buffer, which is ours.
    let r = unsafe { Hvc.hypercall(17, [6, scratch_base(), 0, 0, 0]) };
    // SAFETY: offset 4 (submap) of the scratch buffer, 4-aligned.
    let submap = unsafe { core::ptr::read_volatile((scratch_base() + 4) as *const u32) };
    r == 0 && submap & (1 << XENFEAT_DOM0) != 0
}

/// Run one case; returns whether Xen's answer came back.
fn run_case(env: &Env, c: &Case) -> bool {
    clear_scratch();
    for f in c.setup {
        match *f {
            Field::U16(o, v) => put(o, v),
            Field::U32(o, v) => put(o, v),
            Field::U64(o, a) => put(o, env.arg(a)),
        }
    }
    match c.call {
        Call::Xen(nr, args) => {
            let a = args.map(|a| env.arg(a));
            // SAFETY: every pointer in the table names the scratch buffer
            // (ours, 16 KiB, larger than anything Xen writes for these
            // calls) or memory outside this guest's RAM.
            let got = unsafe { Hvc.hypercall(nr, a) };
            let status = c
                .expect
                .status(env.dom0)
                .map(|(off, want)| (get_i16(off), want));
            match status {
                Some((st, _)) => say!("hostile: {} -> {got} status {st}", c.name),
                None => say!("hostile: {} -> {got}", c.name),
            }
            let ok = c.expect.accepts(env.dom0, got) && status.is_none_or(|(s, w)| s == w);
            if !ok {
                say!(
                    "hostile: FAIL {}: got {got}{}, Xen gives {}",
                    c.name,
                    StatusText(status.map(|(s, _)| s)),
                    Want(c.expect, env.dom0)
                );
            }
            ok
        }
        Call::Smccc(fid, args) => {
            let r = Hvc.smccc_call(fid, args.map(|a| env.arg(a)))[0];
            // SMCCC results are 32-bit in w0 for these (SMC32 or PSCI codes).
            let got = i64::from(r as u32 as i32);
            say!("hostile: {} -> {got}", c.name);
            let ok = c.expect.accepts(env.dom0, got);
            if !ok {
                say!(
                    "hostile: FAIL {}: got {got}, Xen gives {}",
                    c.name,
                    Want(c.expect, env.dom0)
                );
            }
            ok
        }
        Call::HvcBadImm => {
            let o = rt::hvc_bad_imm();
            match o.undef_esr {
                Some(esr) => {
                    let at = if o.elr_at_hvc { "at" } else { "after" };
                    say!(
                        "hostile: {} -> undef (ESR {esr:#x}, ELR {at} the hvc)",
                        c.name
                    );
                    let ok = c.expect == Expect::Undef && esr >> 26 == 0;
                    if !ok {
                        say!("hostile: FAIL {}: ESR {esr:#x} is not an UNDEF", c.name);
                    }
                    ok
                }
                None => {
                    say!("hostile: {} -> returned", c.name);
                    say!("hostile: FAIL {}: no UNDEF exception", c.name);
                    false
                }
            }
        }
    }
}

struct StatusText(Option<i16>);

impl fmt::Display for StatusText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, " status {s}"),
            None => Ok(()),
        }
    }
}

/// Xen's answer, for FAIL lines.
struct Want(Expect, bool);

impl fmt::Display for Want {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Expect::Undef, _) => f.write_str("an UNDEF"),
            (Expect::RolePositive { .. }, true) => f.write_str("a positive count"),
            (e, dom0) => {
                write!(f, "{}", e.ret(dom0).unwrap_or(0))?;
                match e.status(dom0) {
                    Some((_, s)) => write!(f, " status {s}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// The whole scenario; returns the number of failed cases.
pub fn run(dt: &GuestDt<'_>, seed: u64, calls: u64, peer: Option<u16>) -> u64 {
    let start = dt.ram_banks().next().map(|b| b.start.as_u64());
    let end = dt.ram_end().ok().map(Ipa::as_u64);
    let (Some(ram_start), Some(ram_end)) = (start, end) else {
        say!("TEST-GUEST error: no RAM in the device tree");
        return 1;
    };
    let env = Env {
        ram_start,
        ram_end,
        scratch: scratch_base(),
        dom0: is_dom0(),
    };
    say!(
        "hostile: {} RAM {ram_start:#x}..{ram_end:#x} scratch {:#x}",
        if env.dom0 { "dom0" } else { "domU" },
        env.scratch
    );
    let mut failures = 0u64;
    let peers = peer.map(hostile::peer_cases);
    for c in hostile::CASES.iter().chain(peers.iter().flatten()) {
        if !run_case(&env, c) {
            failures += 1;
        }
    }

    say!("hostile: seed {seed:#x} calls {calls}");
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for _ in 0..calls {
        let rc = random_call(&mut rng, &env);
        if let Some(off) = rc.fill {
            for o in (off..off + FILL_LEN).step_by(8) {
                put(o, rng.next());
            }
        }
        // SAFETY: `random_call` only passes pointers into the scratch
        // buffer (with room for anything written there) or outside this
        // guest's RAM (two straddling ones touch at most 2 unused bytes at
        // the top of RAM), and never to calls that could unmap or
        // overwrite the guest's own memory (see `hostile`).
        tally.add(unsafe { Hvc.hypercall(rc.nr, rc.args) });
    }
    say!("hostile: survived {calls} calls");
    say!(
        "hostile: random results: ok {} EFAULT {} EINVAL {} ENOSYS {} EPERM/ESRCH/ENOENT {} other {}",
        tally.ok,
        tally.efault,
        tally.einval,
        tally.enosys,
        tally.denied,
        tally.other
    );

    // The hypervisor still answers sanely afterwards.
    // SAFETY: XENVER_version takes no pointer.
    let v = unsafe { Hvc.hypercall(17, [0, 0, 0, 0, 0]) };
    if v != (4 << 16) | 17 {
        say!("hostile: FAIL xen_version after the random phase: {v:#x}");
        failures += 1;
    }
    say!("hostile: done, {failures} failures");
    failures
}
