//! Minimal PL011 UART driver for the hypervisor's own console.
//!
//! The UART is left configured by firmware/QEMU; oxen only polls the flag
//! register and moves bytes. Register offsets from the PL011 TRM (DDI 0183).

use core::ptr::{read_volatile, write_volatile};

const DR: usize = 0x00;
const FR: usize = 0x18;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
/// IMSC/ICR: receive and receive-timeout interrupts.
const RX_INTS: u32 = (1 << 4) | (1 << 6);
/// FR.RXFE: receive FIFO empty.
const FR_RXFE: u32 = 1 << 4;
/// FR.TXFF: transmit FIFO full.
const FR_TXFF: u32 = 1 << 5;

/// A PL011 at a fixed, identity-mapped physical address.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// # Safety
    /// `base` is the identity-mapped address of a PL011 that nothing else drives.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn read_reg(&self, off: usize) -> u32 {
        // SAFETY: `base` is a PL011 (constructor contract) and `off` one of its registers.
        unsafe { read_volatile((self.base + off) as *const u32) }
    }

    fn write_reg(&self, off: usize, v: u32) {
        // SAFETY: as in read_reg.
        unsafe { write_volatile((self.base + off) as *mut u32, v) }
    }

    /// Send one byte, waiting for FIFO space.
    pub fn putc(&self, c: u8) {
        while self.read_reg(FR) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        self.write_reg(DR, u32::from(c));
    }

    /// Raise an interrupt when input arrives.
    pub fn enable_rx_interrupt(&self) {
        self.write_reg(ICR, RX_INTS);
        self.write_reg(IMSC, self.read_reg(IMSC) | RX_INTS);
    }

    /// One received byte, if any.
    pub fn getc(&self) -> Option<u8> {
        if self.read_reg(FR) & FR_RXFE != 0 {
            None
        } else {
            Some((self.read_reg(DR) & 0xff) as u8)
        }
    }
}
