//! The emulated console UART of boot-time domains (Xen's "vpl011": an SBSA
//! generic UART at `GUEST_PL011_BASE`, interrupt `GUEST_VPL011_SPI`), so a
//! guest without PV drivers (or before them) has a console. Output is
//! printed like other guest output, `(d<N>) <line>`.

extern crate alloc;

use alloc::sync::Arc;

use oxen_trap::{DataAbort, mmio};
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
    if !da.isv {
        log::info!(
            "{}v{vcpu}: vUART access at IPA {ipa} the hardware gave no syndrome for: data abort injected",
            dom.id
        );
        crate::trap::inject_data_abort(frame, crate::arch::sysreg::far_el2());
        return true;
    }
    let mut out = [0u8; 256];
    let (n, level) = {
        let mut u = uart.lock();
        if da.write {
            let v = mmio::store_value(mmio::read_gpr(&frame.x, da.reg), da.access_size);
            if let Err(e) = u.write(off, da.access_size, v as u32) {
                log::debug!("{}v{vcpu}: vUART write: {e:?}", dom.id);
            }
        } else {
            let v = u.read(off, da.access_size).unwrap_or_else(|e| {
                log::debug!("{}v{vcpu}: vUART read: {e:?}", dom.id);
                0
            });
            let v = mmio::load_value(u64::from(v), da.access_size, da.sign_extend, da.sixty_four);
            mmio::write_gpr(&mut frame.x, da.reg, v);
        }
        (u.drain_output(&mut out), u.irq_level())
    };
    if n > 0 {
        dom.console.lock().push(dom.id.0, &out[..n]);
    }
    vgic::set_level(dom, SPI, 0, level);
    frame.elr += 4;
    true
}
