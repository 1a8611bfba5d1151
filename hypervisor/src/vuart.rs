//! The emulated console UART of boot-time domains (Xen's "vpl011": an SBSA
//! generic UART at `GUEST_PL011_BASE`, interrupt `GUEST_VPL011_SPI`), so a
//! guest without PV drivers (or before them) has a console. Output is
//! printed like other guest output, `(d<N>) <line>`.

extern crate alloc;

use alloc::sync::Arc;

use oxen_trap::DataAbort;
use oxen_types::Ipa;

use crate::arch::head::TrapFrame;
use crate::domain::Domain;
use crate::vgic;

/// Xen's `GUEST_PL011_BASE`.
pub const BASE: u64 = 0x2200_0000;
/// Size of the UART's MMIO frame.
pub const SIZE: u64 = 0x1000;
/// Xen's `GUEST_VPL011_SPI` (INTID).
pub const SPI: u32 = 32;

/// Console input for `dom`'s vUART (the console focus is on it).
pub fn input(dom: &Arc<Domain>, bytes: &[u8]) {
    let Some(uart) = &dom.vuart else { return };
    let level = {
        let mut u = uart.lock();
        u.push_input(bytes);
        u.irq_level()
    };
    vgic::set_level(dom, SPI, 0, level);
}

/// Emulate a guest access to its vUART at `ipa`. Returns false when the
/// domain has no vUART or the address is not its frame.
pub fn mmio(
    dom: &Arc<Domain>,
    vcpu: usize,
    ipa: Ipa,
    da: &DataAbort,
    frame: &mut TrapFrame,
) -> bool {
    let Some(uart) = &dom.vuart else { return false };
    let off = ipa.as_u64().wrapping_sub(BASE);
    if off >= SIZE {
        return false;
    }
    let mut out = [0u8; 256];
    let mut drained = None;
    crate::trap::emulate_mmio(dom, vcpu, "vUART", ipa, da, frame, |store| {
        let mut u = uart.lock();
        let loaded = match store {
            Some(v) => {
                if let Err(e) = u.write(off, da.access_size, v as u32) {
                    log::debug!("{}v{vcpu}: vUART write: {e:?}", dom.id);
                }
                None
            }
            None => Some(u64::from(u.read(off, da.access_size).unwrap_or_else(|e| {
                log::debug!("{}v{vcpu}: vUART read: {e:?}", dom.id);
                0
            }))),
        };
        drained = Some((u.drain_output(&mut out), u.irq_level()));
        loaded
    });
    // Nothing to do after an access that could not be decoded.
    if let Some((n, level)) = drained {
        if n > 0 {
            dom.console.lock().push(dom.id.0, &out[..n]);
        }
        vgic::set_level(dom, SPI, 0, level);
    }
    true
}
