//! The board oxen runs on (`boards/*.board`, chosen by the host DT's root
//! `compatible` in `oxen-board`), resolved once at boot: the rest of the
//! hypervisor asks this module instead of knowing any board.

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

use oxen_board::{PowerMethod, Setup};
use oxen_dt::{BootInfo, EnableMethod};
use spin::Once;

use crate::arch::{bcm2835_pm, smc};

struct Chosen {
    name: String,
    setup: Setup,
    dma_limit: Option<u64>,
}

static BOARD: Once<Chosen> = Once::new();

/// Choose and resolve the board for `dtb`; rewrites `info.stdout` to the
/// console the board says oxen drives. Returns the board's name, or why
/// the built-in descriptions or the DT could not be used (the generic
/// behaviour then applies: stdout-path, PSCI, nothing hidden).
pub fn init(info: &mut BootInfo, dtb: &[u8]) -> Result<String, String> {
    let boards =
        oxen_board::builtin().map_err(|(f, e)| alloc::format!("boards/{f}.board: {e:?}"))?;
    let compat = oxen_board::root_compatible(dtb).map_err(|e| alloc::format!("{e:?}"))?;
    let refs: Vec<&str> = compat.iter().map(|s| s.as_str()).collect();
    let board = oxen_board::select(&boards, &refs).ok_or("no generic board")?;
    let methods: Vec<EnableMethod> = info.cpus.iter().map(|c| c.enable).collect();
    let setup = oxen_board::resolve(board, dtb, info.stdout.as_ref(), &methods)
        .map_err(|e| alloc::format!("{e:?}"))?;
    info.stdout = setup.console.clone();
    let name = board.name.clone();
    BOARD.call_once(|| Chosen {
        name: name.clone(),
        setup,
        dma_limit: board.dma_limit,
    });
    Ok(name)
}

/// The board's name ("generic" before [`init`]).
pub fn name() -> &'static str {
    BOARD.get().map_or("generic", |b| b.name.as_str())
}

/// The console UART the board resolved (`None` before [`init`], or when
/// the board description could not be used).
pub fn console() -> Option<&'static oxen_dt::Uart> {
    BOARD.get().and_then(|b| b.setup.console.as_ref())
}

/// Host DT nodes the hypervisor keeps (besides its console).
pub fn hidden_paths() -> &'static [String] {
    BOARD.get().map_or(&[], |b| b.setup.hidden_paths.as_slice())
}

/// DMA masters reach only physical addresses below this.
pub fn dma_limit() -> Option<u64> {
    BOARD.get().and_then(|b| b.dma_limit)
}

/// How CPU `i` (DT order) is started: the board's rule applied to its DT
/// enable-method.
pub fn cpu_start(i: usize, dt: EnableMethod) -> EnableMethod {
    BOARD
        .get()
        .and_then(|b| b.setup.cpu_start.get(i).copied())
        .unwrap_or(dt)
}

fn method(reset: bool) -> (PowerMethod, Option<u64>) {
    match BOARD.get() {
        Some(b) if reset => (b.setup.reset, b.setup.power_base),
        Some(b) => (b.setup.power_off, b.setup.power_base),
        None => (PowerMethod::Psci, None),
    }
}

/// Reset the machine. Returns only if that did not work.
pub fn reset() {
    match method(true) {
        // SAFETY: the board's power device, resolved from the host DT and
        // hidden from Dom0.
        (PowerMethod::Bcm2835Pm, Some(base)) => unsafe { bcm2835_pm::reset(base) },
        _ => smc::system_reset(),
    }
}

/// Power the machine off. Returns only if that did not work.
pub fn power_off() {
    match method(false) {
        // SAFETY: as in reset.
        (PowerMethod::Bcm2835Pm, Some(base)) => unsafe { bcm2835_pm::power_off(base) },
        _ => smc::system_off(),
    }
}
