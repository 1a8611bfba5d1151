//! The hypervisor console: the `log` backend, guest console output and
//! console input.
//!
//! Hypervisor lines are prefixed `(oxen) `, with `WARNING: ` / `ERROR: ` for
//! those levels. Dom0's `console_io` output goes out raw (as on Xen); other
//! domains' output is collected per domain and printed a line at a time as
//! `(d<N>) <line>`, so two guests never interleave inside one line.
//!
//! Everything printed through [`print`] (hypervisor lines and other
//! domains' lines, not Dom0's raw output, as in Xen) is also kept in a
//! 16 KiB ring, the *console ring*, that Dom0 reads with
//! `sysctl(readconsole)` (`xl dmesg`).
//!
//! The UART is the one the board resolved from `dtuart=` or
//! `/chosen/stdout-path` (`crate::board::console`): a PL011 or a BCM2835
//! mini UART ([`Uart`]), hidden from Dom0. Lock order: `UART` before
//! `CONRING`; `INPUT` is taken alone.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};

extern crate alloc;

use crate::sync::Mutex;
use log::{Level, LevelFilter, Log, Metadata, Record};
use oxen_dt::Timestamps;

use oxen_dt::UartKind;

use crate::arch::bcm2835_aux_uart::MiniUart;
use crate::arch::pl011::Pl011;

/// The console UART, of either kind the console drives.
enum Uart {
    Pl011(Pl011),
    Mini(MiniUart),
}

impl Uart {
    /// # Safety
    /// `base` is the identity-mapped register block of a UART of `kind`
    /// that nothing else drives.
    unsafe fn new(kind: UartKind, base: usize) -> Self {
        // SAFETY: per this function's contract.
        unsafe {
            match kind {
                UartKind::Pl011 => Self::Pl011(Pl011::new(base)),
                UartKind::Bcm2835Aux => Self::Mini(MiniUart::new(base)),
            }
        }
    }

    fn putc(&self, c: u8) {
        match self {
            Self::Pl011(u) => u.putc(c),
            Self::Mini(u) => u.putc(c),
        }
    }

    fn getc(&self) -> Option<u8> {
        match self {
            Self::Pl011(u) => u.getc(),
            Self::Mini(u) => u.getc(),
        }
    }

    fn enable_rx_interrupt(&self) {
        match self {
            Self::Pl011(u) => u.enable_rx_interrupt(),
            Self::Mini(u) => u.enable_rx_interrupt(),
        }
    }
}

static UART: Mutex<Option<Uart>> = Mutex::new(None);
/// UART base for the lock-free panic path (0 = none).
static UART_BASE: AtomicUsize = AtomicUsize::new(0);
/// Its kind (0: PL011, 1: mini UART).
static UART_MINI: AtomicBool = AtomicBool::new(false);
static LOGGER_SET: AtomicBool = AtomicBool::new(false);

struct Out<'a>(&'a Uart);

impl Write for Out<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.0.putc(b'\r');
            }
            self.0.putc(b);
        }
        Ok(())
    }
}

/// Start the console on the UART at `base` (identity-mapped): the board's
/// console ([`crate::board::console`]), a PL011 unless the board says it
/// is another kind the console drives.
pub fn init(base: usize) {
    let kind = crate::board::console()
        .filter(|u| u.base.as_u64() as usize == base)
        .and_then(|u| u.kind())
        .unwrap_or(UartKind::Pl011);
    // SAFETY: `base` is the console UART the board resolved from dtuart= or
    // /chosen/stdout-path, of `kind`, which oxen keeps for itself (it is
    // removed from Dom0's device tree and not mapped to Dom0).
    let uart = unsafe { Uart::new(kind, base) };
    *UART.lock() = Some(uart);
    UART_MINI.store(kind == UartKind::Bcm2835Aux, Ordering::Release);
    UART_BASE.store(base, Ordering::Release);
}

/// Dom0's raw console output left the UART in the middle of a line (its
/// shell prompt, say). Set and cleared with the UART lock held.
static MID_LINE: AtomicBool = AtomicBool::new(false);

/// Print formatted text with the console lock held (and keep it in the
/// console ring). It starts on a line of its own: after Dom0's raw output
/// left a partial line (a prompt), a line break comes first, so a
/// hypervisor line never runs on from a guest's.
pub fn print(args: fmt::Arguments<'_>) {
    if let Some(u) = UART.lock().as_ref() {
        if MID_LINE.swap(false, Ordering::Relaxed) {
            u.putc(b'\r');
            u.putc(b'\n');
        }
        let _ = Out(u).write_fmt(args);
    }
    let _ = CONRING.lock().write_fmt(args);
}

/// Size of the console ring (Xen's default `conring_size`).
const CONRING_SIZE: usize = 16 * 1024;

/// The console ring: the last [`CONRING_SIZE`] bytes printed, with a
/// running count of every byte ever written (`prod`).
pub struct ConRing {
    buf: [u8; CONRING_SIZE],
    /// Bytes written since boot (the next byte goes to `prod % size`).
    prod: u64,
    /// Oldest byte still readable after a `clear`.
    cons: u64,
}

impl Write for ConRing {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.buf[(self.prod % CONRING_SIZE as u64) as usize] = b;
            self.prod += 1;
        }
        Ok(())
    }
}

impl ConRing {
    /// Copy bytes from position `from` (clamped to what the ring still
    /// holds) into `out`; returns (bytes copied, next position).
    pub fn read(&self, from: u64, out: &mut [u8]) -> (usize, u64) {
        let oldest = self.cons.max(self.prod.saturating_sub(CONRING_SIZE as u64));
        let mut pos = from.max(oldest);
        let mut n = 0;
        while pos < self.prod && n < out.len() {
            out[n] = self.buf[(pos % CONRING_SIZE as u64) as usize];
            n += 1;
            pos += 1;
        }
        (n, pos)
    }

    /// The position a 32-bit `readconsole` index names: the last one at or
    /// before the producer with those low 32 bits (the ABI's indexes are
    /// 32-bit and wrap, positions here are 64-bit).
    pub fn position(&self, index: u32) -> u64 {
        let behind = (self.prod as u32).wrapping_sub(index);
        self.prod.saturating_sub(u64::from(behind))
    }

    /// Forget what was written before position `upto` (`readconsole` with
    /// `clear`: up to where that read stopped, as Xen, so nothing logged
    /// after it or left unread for lack of room is lost).
    pub fn clear_to(&mut self, upto: u64) {
        self.cons = self.cons.max(upto.min(self.prod));
    }
}

/// The console ring (see the module docs).
pub static CONRING: Mutex<ConRing> = Mutex::new(ConRing {
    buf: [0; CONRING_SIZE],
    prod: 0,
    cons: 0,
});

/// Write raw guest bytes (Dom0's console output), turning `\n` into `\r\n`.
pub fn write_raw(bytes: &[u8]) {
    if let Some(u) = UART.lock().as_ref() {
        if let Some(&last) = bytes.last() {
            MID_LINE.store(last != b'\n', Ordering::Relaxed);
        }
        for &b in bytes {
            if b == b'\n' {
                u.putc(b'\r');
            }
            u.putc(b);
        }
    }
}

/// Console input not yet read by Dom0 (`console_io(read)`).
struct InputRing {
    buf: [u8; 1024],
    head: usize,
    len: usize,
}

static INPUT: Mutex<InputRing> = Mutex::new(InputRing {
    buf: [0; 1024],
    head: 0,
    len: 0,
});

/// Take console input by interrupt from now on.
pub fn enable_input_interrupt() {
    if let Some(u) = UART.lock().as_ref() {
        u.enable_rx_interrupt();
    }
}

/// The UART has input: move it to the ring (oldest bytes are dropped when
/// Dom0 does not keep up) and tell Dom0 (VIRQ_CONSOLE).
pub fn input_interrupt() {
    let mut bytes = [0u8; 64];
    let mut n = 0;
    {
        let uart = UART.lock();
        let Some(u) = uart.as_ref() else { return };
        while n < bytes.len() {
            let Some(c) = u.getc() else { break };
            bytes[n] = c;
            n += 1;
        }
    }
    let mut to_dom0 = false;
    for &c in &bytes[..n] {
        // Three Ctrl-a in a row switch the input between Dom0 and the
        // domains with a console UART, as on Xen.
        if c == CTRL_A {
            if CTRL_A_RUN.fetch_add(1, Ordering::Relaxed) + 1 == 3 {
                CTRL_A_RUN.store(0, Ordering::Relaxed);
                switch_focus();
            }
            continue;
        }
        for _ in 0..CTRL_A_RUN.swap(0, Ordering::Relaxed) {
            to_dom0 |= deliver(CTRL_A);
        }
        to_dom0 |= deliver(c);
    }
    if to_dom0 {
        crate::virq::console_input();
    }
}

const CTRL_A: u8 = 0x01;
static CTRL_A_RUN: AtomicUsize = AtomicUsize::new(0);
/// The domain console input goes to (`u16::MAX`: Dom0, the default;
/// [`FOCUS_OXEN`]: the hypervisor's debug keys).
static FOCUS: AtomicU16 = AtomicU16::new(u16::MAX);
/// Focus value for the hypervisor itself (no domain id is this large).
const FOCUS_OXEN: u16 = u16::MAX - 1;

/// Give one input byte to the focused domain; true if it went to Dom0's ring.
fn deliver(c: u8) -> bool {
    let mut focus = FOCUS.load(Ordering::Relaxed);
    if focus == FOCUS_OXEN {
        crate::debugkeys::handle(c);
        return false;
    }
    if focus == u16::MAX && crate::domain::get(oxen_types::DomId::DOM0).is_none() {
        // No Dom0: input goes to the first domain with a console UART.
        let first = crate::domain::DOMAINS
            .lock()
            .iter()
            .find(|d| d.vuart.is_some())
            .map(|d| d.id.0);
        if let Some(f) = first {
            focus = f;
            FOCUS.store(f, Ordering::Relaxed);
        }
    }
    if focus != u16::MAX
        && let Some(d) = crate::domain::get(oxen_types::DomId(focus))
        && d.is_alive()
        && d.vuart.is_some()
    {
        crate::vuart::input(&d, &[c]);
        return false;
    }
    let mut r = INPUT.lock();
    let cap = r.buf.len();
    let tail = (r.head + r.len) % cap;
    r.buf[tail] = c;
    if r.len == cap {
        r.head = (r.head + 1) % cap;
    } else {
        r.len += 1;
    }
    true
}

/// Move the input focus to the next domain that can take input.
fn switch_focus() {
    let mut ids: alloc::vec::Vec<u16> = crate::domain::DOMAINS
        .lock()
        .iter()
        .filter(|d| d.is_alive() && (d.is_dom0 || d.vuart.is_some()))
        .map(|d| if d.is_dom0 { u16::MAX } else { d.id.0 })
        .collect();
    ids.dedup();
    // The cycle, as on Xen: Dom0, the domains with a console UART in id
    // order, the hypervisor, Dom0 again (Dom0 is u16::MAX and sorts last,
    // right after the hypervisor's FOCUS_OXEN).
    ids.push(FOCUS_OXEN);
    ids.sort_unstable();
    let cur = FOCUS.load(Ordering::Relaxed);
    let next = if cur == u16::MAX {
        ids[0]
    } else {
        ids.iter().copied().find(|&i| i > cur).unwrap_or(ids[0])
    };
    FOCUS.store(next, Ordering::Relaxed);
    if next == FOCUS_OXEN {
        print(format_args!(
            "(oxen) *** console input: oxen debug keys, 'h' for help (Ctrl-a three times to switch)\n"
        ));
    } else if next == u16::MAX {
        print(format_args!(
            "(oxen) *** console input: Dom0 (Ctrl-a three times to switch)\n"
        ));
    } else {
        print(format_args!(
            "(oxen) *** console input: d{next} (Ctrl-a three times to switch)\n"
        ));
    }
}

/// Read buffered console input into `out`; returns the byte count.
pub fn read_input(out: &mut [u8]) -> usize {
    let mut r = INPUT.lock();
    let n = out.len().min(r.len);
    for b in out.iter_mut().take(n) {
        *b = r.buf[r.head];
        r.head = (r.head + 1) % r.buf.len();
        r.len -= 1;
    }
    n
}

/// Print without taking the lock: for the panic handler only, when the
/// lock may be held by the CPU that panicked.
pub fn emergency_print(args: fmt::Arguments<'_>) {
    let base = UART_BASE.load(Ordering::Acquire);
    if base != 0 {
        let kind = if UART_MINI.load(Ordering::Acquire) {
            UartKind::Bcm2835Aux
        } else {
            UartKind::Pl011
        };
        // SAFETY: the console UART, already initialised; concurrent use can
        // only garble output, which is acceptable while dying.
        let u = unsafe { Uart::new(kind, base) };
        let _ = Out(&u).write_fmt(args);
    }
}

/// Per-domain line buffer for guest console output.
pub struct LineBuf {
    buf: [u8; 256],
    len: usize,
}

impl LineBuf {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self {
            buf: [0; 256],
            len: 0,
        }
    }

    /// Append guest bytes, printing every completed line as `(d<id>) line`.
    /// Over-long lines are split; non-printable bytes become '.'.
    pub fn push(&mut self, domid: u16, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => self.flush(domid),
                b'\r' => {}
                _ => {
                    let c = if b == b'\t' || (0x20..0x7f).contains(&b) {
                        b
                    } else {
                        b'.'
                    };
                    self.buf[self.len] = c;
                    self.len += 1;
                    if self.len == self.buf.len() {
                        self.flush(domid);
                    }
                }
            }
        }
    }

    /// Print a partial line, if any (the domain is going away).
    pub fn flush_if_pending(&mut self, domid: u16) {
        if self.len > 0 {
            self.flush(domid);
        }
    }

    /// Print what is buffered as one line.
    pub fn flush(&mut self, domid: u16) {
        let line = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?");
        print(format_args!("(d{domid}) {line}\n"));
        self.len = 0;
    }
}

struct Logger;
static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let tag = match r.level() {
            Level::Error => "ERROR: ",
            Level::Warn => "WARNING: ",
            Level::Info => "",
            Level::Debug => "debug: ",
            Level::Trace => "trace: ",
        };
        match stamps() {
            Timestamps::None => print(format_args!("(oxen) {tag}{}\n", r.args())),
            Timestamps::Boot => {
                let us = crate::arch::timer::ticks_to_ns(crate::arch::timer::now()) / 1000;
                print(format_args!(
                    "(oxen) [{:5}.{:06}] {tag}{}\n",
                    us / 1_000_000,
                    us % 1_000_000,
                    r.args()
                ))
            }
            Timestamps::Raw => print(format_args!(
                "(oxen) [{:x}] {tag}{}\n",
                crate::arch::timer::now(),
                r.args()
            )),
        }
    }

    fn flush(&self) {}
}

/// `console_timestamps=` as a [`Timestamps`] discriminant.
static STAMPS: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);

fn stamps() -> Timestamps {
    match STAMPS.load(Ordering::Relaxed) {
        1 => Timestamps::Boot,
        2 => Timestamps::Raw,
        _ => Timestamps::None,
    }
}

/// Install the `log` backend (MMU on: it uses atomics) at `level`, its
/// lines stamped as `console_timestamps=` says (system counter time: guest
/// time under QEMU's `-icount`).
pub fn init_logger(level: LevelFilter, stamps: Timestamps) {
    STAMPS.store(
        match stamps {
            Timestamps::None => 0,
            Timestamps::Boot => 1,
            Timestamps::Raw => 2,
        },
        Ordering::Relaxed,
    );
    if !LOGGER_SET.swap(true, Ordering::AcqRel) {
        let _ = log::set_logger(&LOGGER);
    }
    log::set_max_level(level);
}
