//! Boards as data: the `boards/*.board` files (embedded at build time),
//! parsed, chosen by the host device tree's root `compatible`, and resolved
//! against that tree into what the hypervisor acts on (its console UART,
//! the nodes hidden from Dom0, the reset/power-off method and its registers,
//! Dom0's DMA limit, how secondary CPUs start).
//!
//! The file format (see `boards/README.md`): one `key = value` per line,
//! `#` starts a comment, a value is a quoted string, a comma-separated list of
//! quoted strings, or a number (decimal or `0x` hex). Nothing here panics on
//! data: a bad built-in file is a [`BoardError`] the hypervisor reports (and
//! host tests reject before that).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use oxen_dt::Uart;
use oxen_dt::tree::{DeviceTree, NodeId, str_list};
use oxen_dt::{DtError, EnableMethod};
use oxen_types::PhysAddr;

include!(concat!(env!("OUT_DIR"), "/boards.rs"));

/// The board used when no other matches the root `compatible`.
pub const GENERIC: &str = "generic";

/// How the machine is reset or powered off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerMethod {
    /// PSCI `SYSTEM_RESET` / `SYSTEM_OFF` over SMC.
    Psci,
    /// The BCM2835/BCM2711 PM block's watchdog (`PM_RSTC`, `PM_WDOG`,
    /// `PM_RSTS`), as Linux's `bcm2835_wdt` and Xen's Pi platform do.
    Bcm2835Pm,
}

/// How secondary CPUs are started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuStart {
    /// Each CPU's DT `enable-method`.
    Dt,
    /// PSCI `CPU_ON` for every CPU.
    Psci,
    /// The DT's spin table for every CPU.
    SpinTable,
}

/// One board description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Board {
    /// File stem (`"rpi4"`).
    pub id: String,
    /// Human name for the banner.
    pub name: String,
    /// Root `compatible` strings this board matches.
    pub compatible: Vec<String>,
    /// UART `compatible`s oxen can drive, by preference.
    pub console: Vec<String>,
    /// Reset method.
    pub reset: PowerMethod,
    /// Power-off method.
    pub power_off: PowerMethod,
    /// `compatible`s of the power block node (for [`PowerMethod::Bcm2835Pm`]).
    pub power_device: Vec<String>,
    /// `compatible`s of devices hidden from Dom0.
    pub hide: Vec<String>,
    /// DMA masters reach only physical addresses below this.
    pub dma_limit: Option<u64>,
    /// Secondary CPU start.
    pub cpu_start: CpuStart,
}

/// Why a board file was rejected (1-based line numbers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardError {
    /// Not `key = value`.
    Syntax { line: usize },
    /// A key this version does not know.
    UnknownKey { line: usize, key: String },
    /// A value of the wrong shape, or an unknown method name.
    BadValue { line: usize, key: String },
    /// A key given twice.
    Duplicate { line: usize, key: String },
    /// A board other than `generic` without `compatible`, or with a power
    /// method that needs `power-device` and none given.
    Incomplete(&'static str),
    /// No `generic` board among the built-in files.
    NoGeneric,
}

enum Value {
    Strings(Vec<String>),
    Number(u64),
}

fn parse_number(s: &str) -> Option<u64> {
    let s = s.replace('_', "");
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// A value: `"a"`, `"a", "b"`, or a number. `None` if malformed.
fn parse_value(v: &str) -> Option<Value> {
    let v = v.trim();
    if !v.starts_with('"') {
        return parse_number(v).map(Value::Number);
    }
    let mut out = Vec::new();
    let mut rest = v;
    loop {
        let body = rest.strip_prefix('"')?;
        let end = body.find('"')?;
        out.push(body[..end].to_string());
        rest = body[end + 1..].trim_start();
        if rest.is_empty() {
            return Some(Value::Strings(out));
        }
        rest = rest.strip_prefix(',')?.trim_start();
    }
}

/// Strip a `#` comment that is not inside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn power_method(s: &str) -> Option<PowerMethod> {
    match s {
        "psci" => Some(PowerMethod::Psci),
        "bcm2835-pm" => Some(PowerMethod::Bcm2835Pm),
        _ => None,
    }
}

fn cpu_start(s: &str) -> Option<CpuStart> {
    match s {
        "dt" => Some(CpuStart::Dt),
        "psci" => Some(CpuStart::Psci),
        "spin-table" => Some(CpuStart::SpinTable),
        _ => None,
    }
}

/// Parse one board file; `id` is its file stem.
pub fn parse(id: &str, text: &str) -> Result<Board, BoardError> {
    let mut b = Board {
        id: id.to_string(),
        name: id.to_string(),
        compatible: Vec::new(),
        console: alloc::vec!["arm,pl011".to_string()],
        reset: PowerMethod::Psci,
        power_off: PowerMethod::Psci,
        power_device: Vec::new(),
        hide: Vec::new(),
        dma_limit: None,
        cpu_start: CpuStart::Dt,
    };
    let mut seen: Vec<String> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = strip_comment(raw).trim();
        if l.is_empty() {
            continue;
        }
        let (k, v) = l.split_once('=').ok_or(BoardError::Syntax { line })?;
        let key = k.trim().to_string();
        if seen.contains(&key) {
            return Err(BoardError::Duplicate { line, key });
        }
        seen.push(key.clone());
        let bad = || BoardError::BadValue {
            line,
            key: key.clone(),
        };
        let value = parse_value(v).ok_or_else(bad)?;
        let one = |val: &Value| match val {
            Value::Strings(s) if s.len() == 1 => Some(s[0].clone()),
            _ => None,
        };
        let list = |val: Value| match val {
            Value::Strings(s) => Some(s),
            Value::Number(_) => None,
        };
        match key.as_str() {
            "name" => b.name = one(&value).ok_or_else(bad)?,
            "compatible" => b.compatible = list(value).ok_or_else(bad)?,
            "console" => b.console = list(value).ok_or_else(bad)?,
            "reset" => b.reset = one(&value).and_then(|s| power_method(&s)).ok_or_else(bad)?,
            "power-off" => {
                b.power_off = one(&value).and_then(|s| power_method(&s)).ok_or_else(bad)?
            }
            "power-device" => b.power_device = list(value).ok_or_else(bad)?,
            "hide" => b.hide = list(value).ok_or_else(bad)?,
            "dma-limit" => match value {
                Value::Number(n) if n > 0 => b.dma_limit = Some(n),
                _ => return Err(bad()),
            },
            "cpu-start" => b.cpu_start = one(&value).and_then(|s| cpu_start(&s)).ok_or_else(bad)?,
            _ => return Err(BoardError::UnknownKey { line, key }),
        }
    }
    if b.compatible.is_empty() && id != GENERIC {
        return Err(BoardError::Incomplete("compatible"));
    }
    let needs_pm = b.reset == PowerMethod::Bcm2835Pm || b.power_off == PowerMethod::Bcm2835Pm;
    if needs_pm && b.power_device.is_empty() {
        return Err(BoardError::Incomplete("power-device"));
    }
    Ok(b)
}

/// Parse a set of `(id, text)` board files; fails on the first bad one
/// (naming it) or when there is no `generic` board.
pub fn parse_all(files: &[(&str, &str)]) -> Result<Vec<Board>, (String, BoardError)> {
    let mut out = Vec::new();
    for (id, text) in files {
        out.push(parse(id, text).map_err(|e| (id.to_string(), e))?);
    }
    if !out.iter().any(|b| b.id == GENERIC) {
        return Err((GENERIC.to_string(), BoardError::NoGeneric));
    }
    Ok(out)
}

/// The built-in boards (`boards/*.board`).
pub fn builtin() -> Result<Vec<Board>, (String, BoardError)> {
    parse_all(BUILTIN)
}

/// The board for a root `compatible` list (most specific first, as in the
/// DT): the first DT string some board lists wins; else `generic`.
pub fn select<'a>(boards: &'a [Board], root_compatible: &[&str]) -> Option<&'a Board> {
    root_compatible
        .iter()
        .find_map(|c| boards.iter().find(|b| b.compatible.iter().any(|x| x == c)))
        .or_else(|| boards.iter().find(|b| b.id == GENERIC))
}

/// The root node's `compatible` strings.
pub fn root_compatible(dtb: &[u8]) -> Result<Vec<String>, DtError> {
    let dt = DeviceTree::parse(dtb)?;
    Ok(dt
        .prop(dt.root(), "compatible")
        .map(|v| str_list(v).map(|s| s.to_string()).collect())
        .unwrap_or_default())
}

/// What a board means on this machine, resolved against the host DT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The console UART: the one `dtuart=` or `/chosen/stdout-path` names
    /// if it is enabled and oxen drives its kind, else the first enabled
    /// node of a `console` compatible.
    pub console: Option<Uart>,
    /// Nodes hidden from Dom0 (besides the console).
    pub hidden_paths: Vec<String>,
    /// Base of the power block, for [`PowerMethod::Bcm2835Pm`].
    pub power_base: Option<u64>,
    /// Reset method (`Psci` if the board's needs a device the DT lacks).
    pub reset: PowerMethod,
    /// Power-off method (likewise).
    pub power_off: PowerMethod,
    /// Secondary CPUs' start method, per DT CPU (in DT order).
    pub cpu_start: Vec<EnableMethod>,
}

fn first_compatible<'a>(dt: &DeviceTree<'a>, id: NodeId) -> Option<&'a str> {
    dt.prop(id, "compatible").and_then(|v| str_list(v).next())
}

fn uart_of(dt: &DeviceTree<'_>, id: NodeId) -> Option<Uart> {
    let r = *dt.reg_translated(id).ok()?.first()?;
    Some(Uart {
        base: PhysAddr(r.0),
        size: r.1,
        compatible: first_compatible(dt, id).unwrap_or("").to_string(),
        path: dt.path(id),
    })
}

/// Resolve `board` against the host DT `dtb`; `stdout` and `cpus` are what
/// [`oxen_dt::parse_boot_info`] found (`/chosen/stdout-path`, the CPUs'
/// enable methods).
pub fn resolve(
    board: &Board,
    dtb: &[u8],
    stdout: Option<&Uart>,
    cpus: &[EnableMethod],
) -> Result<Setup, DtError> {
    let dt = DeviceTree::parse(dtb)?;
    let drives = |u: &Uart| {
        dt.find(&u.path).is_some_and(|id| {
            dt.is_enabled(id) && board.console.iter().any(|c| dt.is_compatible(id, c))
        })
    };
    let console = match stdout {
        Some(u) if drives(u) => Some(u.clone()),
        _ => board.console.iter().find_map(|c| {
            dt.ids()
                .filter(|&id| dt.is_enabled(id) && dt.is_compatible(id, c))
                .find_map(|id| uart_of(&dt, id))
        }),
    };
    let mut hidden_paths = Vec::new();
    for id in dt.ids() {
        if board.hide.iter().any(|c| dt.is_compatible(id, c)) {
            hidden_paths.push(dt.path(id));
        }
    }
    let power_base = board.power_device.iter().find_map(|c| {
        dt.ids()
            .filter(|&id| dt.is_enabled(id) && dt.is_compatible(id, c))
            .find_map(|id| dt.reg_translated(id).ok()?.first().map(|r| r.0))
    });
    let usable = |m: PowerMethod| match (m, power_base) {
        (PowerMethod::Bcm2835Pm, None) => PowerMethod::Psci,
        (m, _) => m,
    };
    let cpu_start = cpus
        .iter()
        .map(|m| match (board.cpu_start, m) {
            (CpuStart::Psci, _) => EnableMethod::Psci,
            (CpuStart::SpinTable, EnableMethod::SpinTable { .. }) | (CpuStart::Dt, _) => *m,
            (CpuStart::SpinTable, _) => EnableMethod::Other,
        })
        .collect();
    Ok(Setup {
        console,
        hidden_paths,
        power_base,
        reset: usable(board.reset),
        power_off: usable(board.power_off),
        cpu_start,
    })
}

#[cfg(test)]
mod tests;
