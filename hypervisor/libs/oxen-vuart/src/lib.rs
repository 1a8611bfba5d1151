//! Emulated console UART for guests: the SBSA generic UART ("vpl011").
//!
//! Xen gives dom0less guests a virtual UART at `GUEST_PL011_BASE` described in
//! the device tree as `compatible = "arm,sbsa-uart"`. The SBSA generic UART is
//! the subset of the Arm PL011 that Linux's `amba-pl011.c` drives through its
//! `sbsa_uart_*` functions: data (DR), receive status (RSR/ECR), flags (FR),
//! and the interrupt mask / raw / masked / clear registers. Baud rate, line
//! control, control, FIFO level and DMA registers do not exist on it; like Xen
//! we complete accesses to them as read-as-zero / write-ignored.
//!
//! This crate is only the register model; it owns no MMIO and no interrupt.
//! The hypervisor's data-abort handler calls [`VUart::read`] / [`VUart::write`]
//! with the offset inside the 4 KiB window, prints what [`VUart::drain_output`]
//! returns, feeds console input with [`VUart::push_input`], and drives the
//! guest's (level-sensitive) SPI with [`VUart::irq_level`] after every call.
//!
//! # Behaviour (following Xen's `xen/arch/arm/vpl011.c`, Xen-backend mode)
//!
//! * Accesses may be 8, 16 or 32 bits wide at the register's (4-byte aligned)
//!   offset; sub-word reads return the low bytes, sub-word writes update the
//!   low bytes. 64-bit (and any other) sizes are [`VUartError::BadWidth`].
//!   Offsets that are not one of the registers below are
//!   [`VUartError::BadOffset`]. The hypervisor completes both as RAZ/WI.
//!   Xen has no PeriphID/CellID registers either, so those are `BadOffset`.
//! * TX is instant: the hypervisor prints synchronously, so FR.TXFE is always
//!   set and FR.TXFF / FR.BUSY are always clear. Every DR write sets RIS.TX
//!   (as Xen does); only an ICR write clears it. Linux writes half a FIFO,
//!   unmasks TXIM, and keeps writing from the interrupt until its buffer is
//!   empty, then masks TXIM again — so output never stalls.
//! * The output buffer is a [`OUT_CAPACITY`]-byte ring. If the hypervisor does
//!   not drain it in time the *oldest* bytes are overwritten (a console
//!   prefers recent output; TXFF never blocks the guest).
//! * RX is a [`RX_FIFO_SIZE`]-byte FIFO (the SBSA FIFO size Xen uses); extra
//!   input is dropped. The RX status is derived from the FIFO level, as in Xen:
//!   RIS.RT is set while any byte is pending (no timing is emulated), RIS.RX
//!   while the FIFO is at least half full. Since these are levels, an ICR write
//!   cannot clear them while the condition still holds (the zero-length
//!   receive timeout fires again at once). Reading an empty DR returns 0.
//! * ICR is write-only: reading it returns 0 (Xen injects an abort instead).
//!
//! Invariants: `out_len <= OUT_CAPACITY`, `rx_len <= RX_FIFO_SIZE`, the ring
//! heads are always in range. No guest-controlled input can panic.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

use core::fmt;

/// Register offsets inside the UART's 4 KiB MMIO window (PL011 TRM).
pub mod reg {
    /// Data register: write transmits a byte, read pops a received byte.
    pub const DR: u64 = 0x000;
    /// Receive status / error clear register.
    pub const RSR_ECR: u64 = 0x004;
    /// Flag register.
    pub const FR: u64 = 0x018;
    /// Integer baud rate divisor (not in SBSA; RAZ/WI).
    pub const IBRD: u64 = 0x024;
    /// Fractional baud rate divisor (not in SBSA; RAZ/WI).
    pub const FBRD: u64 = 0x028;
    /// Line control (not in SBSA; RAZ/WI).
    pub const LCR_H: u64 = 0x02C;
    /// Control register (not in SBSA; RAZ/WI).
    pub const CR: u64 = 0x030;
    /// Interrupt FIFO level select (not in SBSA; RAZ/WI).
    pub const IFLS: u64 = 0x034;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x03C;
    /// Masked interrupt status (RIS & IMSC).
    pub const MIS: u64 = 0x040;
    /// Interrupt clear (write 1 to clear a RIS bit; write-only).
    pub const ICR: u64 = 0x044;
    /// DMA control (not in SBSA; RAZ/WI).
    pub const DMACR: u64 = 0x048;
}

/// Flag register (FR) bits.
pub mod fr {
    /// UART busy transmitting.
    pub const BUSY: u32 = 1 << 3;
    /// Receive FIFO empty.
    pub const RXFE: u32 = 1 << 4;
    /// Transmit FIFO full.
    pub const TXFF: u32 = 1 << 5;
    /// Receive FIFO full.
    pub const RXFF: u32 = 1 << 6;
    /// Transmit FIFO empty.
    pub const TXFE: u32 = 1 << 7;
}

/// Interrupt bits, shared by IMSC, RIS, MIS and ICR.
pub mod int {
    /// Receive interrupt.
    pub const RX: u32 = 1 << 4;
    /// Transmit interrupt.
    pub const TX: u32 = 1 << 5;
    /// Receive timeout interrupt.
    pub const RT: u32 = 1 << 6;
    /// All PL011 interrupt bits (IMSC is 11 bits wide).
    pub const ALL: u32 = 0x7FF;
}

/// Size of the MMIO window the hypervisor maps for the UART.
pub const MMIO_SIZE: u64 = 0x1000;
/// Receive FIFO depth (Xen's `SBSA_UART_FIFO_SIZE`).
pub const RX_FIFO_SIZE: usize = 32;
/// RX interrupt trigger level: half the FIFO, the PL011 reset default.
const RX_TRIGGER: usize = RX_FIFO_SIZE / 2;
/// Capacity of the transmitted-bytes ring awaiting [`VUart::drain_output`].
pub const OUT_CAPACITY: usize = 256;

/// Why a guest access could not be emulated. The hypervisor completes such
/// accesses as read-as-zero / write-ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VUartError {
    /// No SBSA UART register at this offset (or offset not 4-byte aligned).
    BadOffset(u64),
    /// Access size not 1, 2 or 4 bytes.
    BadWidth,
}

impl fmt::Display for VUartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadOffset(off) => write!(f, "vuart: no register at offset {off:#x}"),
            Self::BadWidth => f.write_str("vuart: bad access width"),
        }
    }
}

/// One domain's emulated SBSA UART.
#[derive(Debug, Clone)]
pub struct VUart {
    /// Interrupt mask (IMSC), only bits in [`int::ALL`].
    imsc: u32,
    /// RIS.TX: set by each DR write, cleared by ICR.
    tx_raised: bool,
    /// Transmitted bytes not yet drained (ring).
    out: [u8; OUT_CAPACITY],
    out_head: usize,
    out_len: usize,
    /// Received bytes not yet read by the guest (ring).
    rx: [u8; RX_FIFO_SIZE],
    rx_head: usize,
    rx_len: usize,
}

impl Default for VUart {
    fn default() -> Self {
        Self::new()
    }
}

/// Mask selecting the low `size` bytes; `None` for unsupported widths.
fn width_mask(size: u8) -> Option<u32> {
    match size {
        1 => Some(0xFF),
        2 => Some(0xFFFF),
        4 => Some(0xFFFF_FFFF),
        _ => None,
    }
}

/// Registers the SBSA UART lacks but Linux's full PL011 driver may touch.
fn is_ignored(offset: u64) -> bool {
    matches!(
        offset,
        reg::IBRD | reg::FBRD | reg::LCR_H | reg::CR | reg::IFLS | reg::DMACR
    )
}

impl VUart {
    /// A UART just out of reset: both FIFOs empty, all interrupts masked.
    pub const fn new() -> Self {
        Self {
            imsc: 0,
            tx_raised: false,
            out: [0; OUT_CAPACITY],
            out_head: 0,
            out_len: 0,
            rx: [0; RX_FIFO_SIZE],
            rx_head: 0,
            rx_len: 0,
        }
    }

    /// Current flag register value.
    fn fr(&self) -> u32 {
        let mut v = fr::TXFE;
        if self.rx_len == 0 {
            v |= fr::RXFE;
        }
        if self.rx_len == RX_FIFO_SIZE {
            v |= fr::RXFF;
        }
        v
    }

    /// Current raw interrupt status.
    fn ris(&self) -> u32 {
        let mut v = 0;
        if self.tx_raised {
            v |= int::TX;
        }
        if self.rx_len > 0 {
            v |= int::RT;
        }
        if self.rx_len >= RX_TRIGGER {
            v |= int::RX;
        }
        v
    }

    /// Guest read of `size` bytes (1, 2 or 4) at `offset` in the window.
    ///
    /// Reading DR pops one received byte (0 if none). Sub-word reads return
    /// the register's low bytes.
    pub fn read(&mut self, offset: u64, size: u8) -> Result<u32, VUartError> {
        let mask = width_mask(size).ok_or(VUartError::BadWidth)?;
        let value = match offset {
            reg::DR => u32::from(self.pop_rx()),
            reg::RSR_ECR => 0,
            reg::FR => self.fr(),
            reg::IMSC => self.imsc,
            reg::RIS => self.ris(),
            reg::MIS => self.ris() & self.imsc,
            reg::ICR => 0,
            o if is_ignored(o) => 0,
            o => return Err(VUartError::BadOffset(o)),
        };
        Ok(value & mask)
    }

    /// Guest write of the low `size` bytes (1, 2 or 4) of `value` at `offset`.
    ///
    /// A DR write appends its low byte to the output buffer and raises
    /// RIS.TX; IMSC is updated in its low `size` bytes; ICR clears the RIS
    /// bits written as 1. Read-only registers ignore writes.
    pub fn write(&mut self, offset: u64, size: u8, value: u32) -> Result<(), VUartError> {
        let mask = width_mask(size).ok_or(VUartError::BadWidth)?;
        let value = value & mask;
        match offset {
            reg::DR => {
                self.push_out(value.to_le_bytes()[0]);
                self.tx_raised = true;
            }
            reg::IMSC => self.imsc = ((self.imsc & !mask) | value) & int::ALL,
            reg::ICR => {
                if value & int::TX != 0 {
                    self.tx_raised = false;
                }
            }
            reg::RSR_ECR | reg::FR | reg::RIS | reg::MIS => {}
            o if is_ignored(o) => {}
            o => return Err(VUartError::BadOffset(o)),
        }
        Ok(())
    }

    /// Moves the bytes the guest transmitted since the last call into `out`,
    /// oldest first, and returns how many were written. Bytes that do not fit
    /// stay buffered for the next call.
    pub fn drain_output(&mut self, out: &mut [u8]) -> usize {
        let n = self.out_len.min(out.len());
        for slot in out.iter_mut().take(n) {
            *slot = self.out[self.out_head];
            self.out_head = (self.out_head + 1) % OUT_CAPACITY;
        }
        self.out_len -= n;
        n
    }

    /// Number of transmitted bytes waiting for [`VUart::drain_output`].
    pub fn pending_output(&self) -> usize {
        self.out_len
    }

    /// Queues console input for the guest. Takes as many bytes as fit in the
    /// RX FIFO and returns that count; the rest are the caller's to drop or
    /// retry later.
    pub fn push_input(&mut self, bytes: &[u8]) -> usize {
        let n = (RX_FIFO_SIZE - self.rx_len).min(bytes.len());
        for &b in bytes.iter().take(n) {
            let tail = (self.rx_head + self.rx_len) % RX_FIFO_SIZE;
            self.rx[tail] = b;
            self.rx_len += 1;
        }
        n
    }

    /// Level of the UART interrupt line: any bit set in RIS & IMSC. The
    /// hypervisor drives the guest's SPI with it after every access.
    pub fn irq_level(&self) -> bool {
        self.ris() & self.imsc != 0
    }

    fn pop_rx(&mut self) -> u8 {
        if self.rx_len == 0 {
            return 0;
        }
        let b = self.rx[self.rx_head];
        self.rx_head = (self.rx_head + 1) % RX_FIFO_SIZE;
        self.rx_len -= 1;
        b
    }

    fn push_out(&mut self, b: u8) {
        let tail = (self.out_head + self.out_len) % OUT_CAPACITY;
        self.out[tail] = b;
        if self.out_len == OUT_CAPACITY {
            // Full: the byte just written replaced the oldest one.
            self.out_head = (self.out_head + 1) % OUT_CAPACITY;
        } else {
            self.out_len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(u: &mut VUart, off: u64) -> u32 {
        u.read(off, 4).unwrap()
    }

    fn wr(u: &mut VUart, off: u64, v: u32) {
        u.write(off, 4, v).unwrap();
    }

    fn drain(u: &mut VUart) -> Vec<u8> {
        let mut buf = [0u8; OUT_CAPACITY + 8];
        let n = u.drain_output(&mut buf);
        buf[..n].to_vec()
    }

    #[test]
    fn reset_state() {
        let mut u = VUart::new();
        assert_eq!(rd(&mut u, reg::FR), fr::TXFE | fr::RXFE);
        assert_eq!(rd(&mut u, reg::RIS), 0);
        assert_eq!(rd(&mut u, reg::MIS), 0);
        assert_eq!(rd(&mut u, reg::IMSC), 0);
        assert!(!u.irq_level());
    }

    #[test]
    fn linux_sbsa_startup_sequence() {
        let mut u = VUart::new();
        // Input typed before the driver probes.
        assert_eq!(u.push_input(b"xy"), 2);
        // pl011_hwinit: clear error + RX interrupts, save IMSC, enable RX.
        wr(&mut u, reg::ICR, 0x780 | int::RT | int::RX);
        let saved = rd(&mut u, reg::IMSC);
        wr(&mut u, reg::IMSC, int::RT | int::RX);
        // pl011_allocate_irq restores the saved mask.
        wr(&mut u, reg::IMSC, saved);
        // pl011_enable_interrupts: clear RX, drain the RX FIFO, unmask RX.
        wr(&mut u, reg::ICR, int::RT | int::RX);
        let mut drained = Vec::new();
        for _ in 0..64 {
            if rd(&mut u, reg::FR) & fr::RXFE != 0 {
                break;
            }
            drained.push(rd(&mut u, reg::DR) as u8);
        }
        assert_eq!(drained, b"xy");
        wr(&mut u, reg::IMSC, int::RT | int::RX);
        assert_eq!(rd(&mut u, reg::IMSC), int::RT | int::RX);
        assert!(!u.irq_level(), "nothing pending after startup");
        // The tx_empty check: neither BUSY nor TXFF.
        assert_eq!(rd(&mut u, reg::FR) & (fr::BUSY | fr::TXFF), 0);
    }

    #[test]
    fn hello_through_dr() {
        let mut u = VUart::new();
        for &b in b"hello\n" {
            assert_eq!(rd(&mut u, reg::FR) & fr::TXFF, 0);
            wr(&mut u, reg::DR, u32::from(b) | 0xABCD_0000);
        }
        assert_eq!(u.pending_output(), 6);
        assert_eq!(drain(&mut u), b"hello\n");
        assert_eq!(drain(&mut u), b"");
        // Byte-wide DR writes work too.
        u.write(reg::DR, 1, u32::from(b'!')).unwrap();
        assert_eq!(drain(&mut u), b"!");
    }

    #[test]
    fn drain_into_small_buffer_keeps_rest() {
        let mut u = VUart::new();
        for &b in b"abcdef" {
            wr(&mut u, reg::DR, u32::from(b));
        }
        let mut buf = [0u8; 4];
        assert_eq!(u.drain_output(&mut buf), 4);
        assert_eq!(&buf, b"abcd");
        assert_eq!(drain(&mut u), b"ef");
    }

    #[test]
    fn output_overflow_drops_oldest() {
        let mut u = VUart::new();
        for i in 0..(OUT_CAPACITY + 10) {
            wr(&mut u, reg::DR, i as u32);
        }
        let got = drain(&mut u);
        assert_eq!(got.len(), OUT_CAPACITY);
        assert_eq!(got[0], 10);
        assert_eq!(*got.last().unwrap(), (OUT_CAPACITY + 9) as u8);
    }

    #[test]
    fn tx_interrupt_mask_and_clear() {
        let mut u = VUart::new();
        wr(&mut u, reg::IMSC, int::RT | int::RX);
        // start_tx: write a chunk, then unmask TXIM.
        for &b in b"0123456789abcdef" {
            wr(&mut u, reg::DR, u32::from(b));
        }
        assert_eq!(rd(&mut u, reg::RIS), int::TX);
        assert_eq!(rd(&mut u, reg::MIS), 0);
        assert!(!u.irq_level(), "TX masked");
        wr(&mut u, reg::IMSC, int::RT | int::RX | int::TX);
        assert!(u.irq_level(), "unmasking a raised TX fires");
        assert_eq!(rd(&mut u, reg::MIS), int::TX);
        // The IRQ handler writes more; the line stays up while TXIM is set.
        wr(&mut u, reg::DR, u32::from(b'g'));
        assert!(u.irq_level());
        // stop_tx masks TXIM: line drops, RIS keeps TX.
        wr(&mut u, reg::IMSC, int::RT | int::RX);
        assert!(!u.irq_level());
        assert_eq!(rd(&mut u, reg::RIS), int::TX);
        // ICR clears it; re-unmasking then does not fire.
        wr(&mut u, reg::ICR, int::TX);
        assert_eq!(rd(&mut u, reg::RIS), 0);
        wr(&mut u, reg::IMSC, int::TX);
        assert!(!u.irq_level());
        // The next DR write raises it again.
        wr(&mut u, reg::DR, u32::from(b'h'));
        assert!(u.irq_level());
        // ICR with other bits only leaves TX alone.
        wr(&mut u, reg::ICR, int::RX | int::RT);
        assert!(u.irq_level());
        assert_eq!(drain(&mut u), b"0123456789abcdefgh");
    }

    #[test]
    fn rx_push_read_and_irq() {
        let mut u = VUart::new();
        wr(&mut u, reg::IMSC, int::RT | int::RX);
        assert_eq!(u.push_input(b"ab"), 2);
        assert_eq!(rd(&mut u, reg::FR) & fr::RXFE, 0);
        assert_eq!(rd(&mut u, reg::RIS), int::RT, "below trigger: only RT");
        assert!(u.irq_level());
        // RT is a level: ICR cannot clear it while data is pending.
        wr(&mut u, reg::ICR, int::RT);
        assert!(u.irq_level());
        assert_eq!(rd(&mut u, reg::DR), u32::from(b'a'));
        assert!(u.irq_level());
        assert_eq!(rd(&mut u, reg::DR), u32::from(b'b'));
        assert_ne!(rd(&mut u, reg::FR) & fr::RXFE, 0);
        assert_eq!(rd(&mut u, reg::RIS), 0);
        assert!(!u.irq_level());
        // Empty DR reads as 0.
        assert_eq!(rd(&mut u, reg::DR), 0);
        // Masked RX does not raise the line.
        wr(&mut u, reg::IMSC, 0);
        u.push_input(b"z");
        assert!(!u.irq_level());
        assert_eq!(rd(&mut u, reg::RIS), int::RT);
        assert_eq!(rd(&mut u, reg::MIS), 0);
    }

    #[test]
    fn rx_fifo_bounds_and_trigger() {
        let mut u = VUart::new();
        let input: Vec<u8> = (0..40u8).collect();
        assert_eq!(u.push_input(&input), RX_FIFO_SIZE);
        assert_eq!(u.push_input(b"more"), 0);
        let f = rd(&mut u, reg::FR);
        assert_ne!(f & fr::RXFF, 0);
        assert_eq!(f & fr::RXFE, 0);
        assert_eq!(rd(&mut u, reg::RIS), int::RX | int::RT);
        for i in 0..RX_FIFO_SIZE {
            assert_eq!(rd(&mut u, reg::DR), i as u32);
            let left = RX_FIFO_SIZE - 1 - i;
            assert_eq!(rd(&mut u, reg::FR) & fr::RXFF, 0);
            assert_eq!(rd(&mut u, reg::RIS) & int::RX != 0, left >= RX_TRIGGER);
        }
        // FIFO wraps correctly after being emptied.
        assert_eq!(u.push_input(b"ok"), 2);
        assert_eq!(rd(&mut u, reg::DR), u32::from(b'o'));
        assert_eq!(rd(&mut u, reg::DR), u32::from(b'k'));
    }

    #[test]
    fn sub_word_accesses() {
        let mut u = VUart::new();
        wr(&mut u, reg::IMSC, 0x7F0);
        u.write(reg::IMSC, 1, 0x10).unwrap();
        assert_eq!(rd(&mut u, reg::IMSC), 0x710, "byte write keeps upper bits");
        assert_eq!(u.read(reg::IMSC, 1).unwrap(), 0x10);
        assert_eq!(u.read(reg::IMSC, 2).unwrap(), 0x710);
        assert_eq!(u.read(reg::FR, 1).unwrap(), fr::TXFE | fr::RXFE);
        wr(&mut u, reg::IMSC, 0xFFFF_FFFF);
        assert_eq!(rd(&mut u, reg::IMSC), int::ALL);
    }

    #[test]
    fn ignored_and_read_only_registers() {
        let mut u = VUart::new();
        for off in [
            reg::IBRD,
            reg::FBRD,
            reg::LCR_H,
            reg::CR,
            reg::IFLS,
            reg::DMACR,
            reg::RSR_ECR,
        ] {
            wr(&mut u, off, 0x1234);
            assert_eq!(rd(&mut u, off), 0, "offset {off:#x}");
        }
        wr(&mut u, reg::FR, 0);
        assert_eq!(rd(&mut u, reg::FR), fr::TXFE | fr::RXFE);
        wr(&mut u, reg::DR, 0x41);
        wr(&mut u, reg::RIS, 0);
        wr(&mut u, reg::MIS, 0);
        assert_eq!(rd(&mut u, reg::RIS), int::TX);
        assert_eq!(rd(&mut u, reg::ICR), 0);
        assert_eq!(drain(&mut u), b"A");
    }

    #[test]
    fn bad_offsets_and_widths() {
        let mut u = VUart::new();
        assert_eq!(u.read(0x1, 1), Err(VUartError::BadOffset(1)));
        assert_eq!(u.read(0xFE0, 4), Err(VUartError::BadOffset(0xFE0)));
        assert_eq!(u.write(0x20, 4, 0), Err(VUartError::BadOffset(0x20)));
        assert_eq!(u.read(0x1000, 4), Err(VUartError::BadOffset(0x1000)));
        assert_eq!(u.read(u64::MAX, 4), Err(VUartError::BadOffset(u64::MAX)));
        assert_eq!(u.read(reg::FR, 8), Err(VUartError::BadWidth));
        assert_eq!(u.write(reg::DR, 8, 0x41), Err(VUartError::BadWidth));
        assert_eq!(u.write(reg::DR, 3, 0x41), Err(VUartError::BadWidth));
        assert_eq!(u.read(reg::DR, 0), Err(VUartError::BadWidth));
        assert_eq!(u.pending_output(), 0, "rejected DR write transmits nothing");
    }

    #[test]
    fn never_panics_anywhere() {
        let mut u = VUart::new();
        u.push_input(&[7; 64]);
        for off in 0..0x1010u64 {
            for size in 0..=16u8 {
                for v in [0, 0xFF, u32::MAX] {
                    let _ = u.write(off, size, v);
                    let _ = u.read(off, size);
                }
            }
        }
        let _ = u.irq_level();
        assert!(u.pending_output() <= OUT_CAPACITY);
        assert!(drain(&mut u).len() <= OUT_CAPACITY);
    }
}
