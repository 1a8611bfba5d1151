//! Value plumbing for emulated MMIO accesses described by a data abort
//! with a valid instruction syndrome (`ISV = 1`).
//!
//! Rules (Arm ARM, "ISS encoding for an exception from a Data Abort", fields
//! `SAS`, `SSE`, `SF`, `SRT`): a load of `SAS` bytes is zero- or (with `SSE`)
//! sign-extended to the register width; a 32-bit destination (`SF = 0`, Wt)
//! zeroes bits \[63:32\] of Xt; register 31 is the zero register, so a store
//! from it writes 0 and a load into it is discarded.

/// Bits per byte, for turning an access size into a bit width.
const BITS_PER_BYTE: u32 = 8;
/// Mask of a W register (bits \[31:0\] of the X register).
const W_MASK: u64 = 0xffff_ffff;
/// Number of the zero register in `SRT`/`Rt` fields.
pub const ZERO_REG: u8 = 31;

/// Mask covering an access of `size` bytes; sizes of 8 or more cover all
/// 64 bits, size 0 covers nothing.
pub fn access_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (u32::from(size) * BITS_PER_BYTE)) - 1
    }
}

/// The value to write back into Rt after emulating a load that returned
/// `raw` from a `size`-byte device register.
///
/// `raw` is truncated to `size` bytes, sign-extended to 64 bits when
/// `sign_extend`, and cut to 32 bits when the destination is Wt
/// (`!sixty_four`).
pub fn load_value(raw: u64, size: u8, sign_extend: bool, sixty_four: bool) -> u64 {
    let mask = access_mask(size);
    let mut v = raw & mask;
    if sign_extend && (1..8).contains(&size) {
        let sign_bit = 1u64 << (u32::from(size) * BITS_PER_BYTE - 1);
        if v & sign_bit != 0 {
            v |= !mask;
        }
    }
    if !sixty_four {
        v &= W_MASK;
    }
    v
}

/// The data a `size`-byte store writes, given the value of its source
/// register.
pub fn store_value(reg_value: u64, size: u8) -> u64 {
    reg_value & access_mask(size)
}

/// Read general-purpose register `reg` for a store: x0..x30 from `regs`,
/// 0 for register 31 (XZR) and anything out of range.
pub fn read_gpr(regs: &[u64; 31], reg: u8) -> u64 {
    regs.get(usize::from(reg)).copied().unwrap_or(0)
}

/// Write `value` into general-purpose register `reg` after a load; writes
/// to register 31 (XZR) and anything out of range are discarded.
pub fn write_gpr(regs: &mut [u64; 31], reg: u8, value: u64) {
    if let Some(r) = regs.get_mut(usize::from(reg)) {
        *r = value;
    }
}
