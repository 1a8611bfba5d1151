//! The BCM2835/BCM2711 "mini UART" (AUX UART1, DT `brcm,bcm2835-aux-uart`):
//! the serial console on a Raspberry Pi 4's GPIO 14/15 when `config.txt` has
//! `enable_uart=1` and no overlay moves the PL011 there.
//!
//! Owns: nothing but the register layout. The DT node's `reg` (0xfe21_5040 on
//! the BCM2711 6.1 DTB) starts at `AUX_MU_IO_REG`, so offsets here are from
//! there (BCM2835 ARM Peripherals §2.2, Linux `8250_bcm2835aux.c`: an 8250
//! with 32-bit registers, `reg-shift = 2`; U-Boot `serial_bcm283x_mu.c`).
//! The firmware (`enable_uart=1`) or U-Boot leaves the UART enabled, 8N1 at
//! 115200 (the baud divisor counts the VPU core clock, which `enable_uart=1`
//! pins); oxen only polls the line status and moves bytes, as with the PL011.
//! The receive interrupt is the AUX block's one SPI (shared with the two AUX
//! SPI masters, which the board hides from Dom0 with the UART).

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::register_bitfields;
use tock_registers::register_structs;
use tock_registers::registers::{ReadOnly, ReadWrite};

register_bitfields![u32,
    /// `AUX_MU_IO_REG`: one byte in or out (DLAB clear).
    IO [
        DATA OFFSET(0) NUMBITS(8) []
    ],
    /// `AUX_MU_IER_REG`: the 16550 layout on the chip (Linux's 8250 driver
    /// sets bit 0 for input; the peripherals manual's description has the
    /// two bits swapped, see its errata). QEMU's model follows the manual:
    /// there bit 1 is input and bit 0 an ever-pending transmit interrupt.
    IER [
        /// Interrupt while the receive FIFO holds a byte (QEMU: transmit).
        RX_AVAILABLE OFFSET(0) NUMBITS(1) [],
        /// Interrupt while the transmit FIFO is empty (QEMU: receive).
        TX_EMPTY OFFSET(1) NUMBITS(1) []
    ],
    /// `AUX_MU_IIR_REG` on read (writes clear the FIFOs: never written).
    IIR [
        /// Clear while an interrupt is pending.
        NONE_PENDING OFFSET(0) NUMBITS(1) [],
        /// Why, while one is pending.
        ID OFFSET(1) NUMBITS(2) [
            TxEmpty = 0b01,
            RxAvailable = 0b10
        ]
    ],
    /// `AUX_MU_LSR_REG`: line status.
    LSR [
        /// The receive FIFO holds at least one byte.
        DATA_READY OFFSET(0) NUMBITS(1) [],
        /// The receive FIFO overflowed (cleared by reading).
        RX_OVERRUN OFFSET(1) NUMBITS(1) [],
        /// The transmit FIFO can take at least one byte.
        TX_EMPTY OFFSET(5) NUMBITS(1) [],
        /// The transmit FIFO is empty and the transmitter idle.
        TX_IDLE OFFSET(6) NUMBITS(1) []
    ]
];

register_structs! {
    /// The mini UART's registers from `AUX_MU_IO_REG` (AUX base + 0x40).
    pub Regs {
        (0x00 => io: ReadWrite<u32, IO::Register>),
        (0x04 => ier: ReadWrite<u32, IER::Register>),
        (0x08 => iir: ReadOnly<u32, IIR::Register>),
        (0x0c => _lcr: ReadWrite<u32>),
        (0x10 => _mcr: ReadWrite<u32>),
        (0x14 => lsr: ReadOnly<u32, LSR::Register>),
        (0x18 => _msr: ReadOnly<u32>),
        (0x1c => _scratch: ReadWrite<u32>),
        (0x20 => _cntl: ReadWrite<u32>),
        (0x24 => _stat: ReadOnly<u32>),
        (0x28 => _baud: ReadWrite<u32>),
        (0x2c => @END),
    }
}

/// A mini UART at a fixed, identity-mapped physical address.
pub struct MiniUart {
    base: usize,
}

impl MiniUart {
    /// # Safety
    /// `base` is the identity-mapped `AUX_MU_IO_REG` of a mini UART (the DT
    /// node's `reg`) that nothing else drives.
    pub const unsafe fn new(base: usize) -> Self {
        Self { base }
    }

    fn regs(&self) -> &Regs {
        // SAFETY: `base` is the mini UART's register block (constructor
        // contract), mapped as Device memory for the hypervisor's lifetime;
        // every field is a volatile-access register type.
        unsafe { &*(self.base as *const Regs) }
    }

    /// Send one byte, waiting for FIFO space.
    pub fn putc(&self, c: u8) {
        let r = self.regs();
        while !r.lsr.is_set(LSR::TX_EMPTY) {
            core::hint::spin_loop();
        }
        r.io.write(IO::DATA.val(u32::from(c)));
    }

    /// Raise an interrupt when input arrives (and only then).
    pub fn enable_rx_interrupt(&self) {
        let r = self.regs();
        r.ier.write(IER::RX_AVAILABLE::SET);
        // With nothing sent, a pending transmit interrupt now means the
        // manual's bit order (QEMU's model): input is the other bit there.
        if r.iir
            .matches_all(IIR::NONE_PENDING::CLEAR + IIR::ID::TxEmpty)
        {
            r.ier.write(IER::TX_EMPTY::SET);
        }
    }

    /// One received byte, if any.
    pub fn getc(&self) -> Option<u8> {
        let r = self.regs();
        if r.lsr.is_set(LSR::DATA_READY) {
            Some(r.io.read(IO::DATA) as u8)
        } else {
            None
        }
    }
}
