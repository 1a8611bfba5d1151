//! Xen-style hypervisor command line.
//!
//! Users bring Xen command lines (`dom0_mem=512M console=dtuart
//! dtuart=/pl011@9000000 loglvl=all`), so oxen accepts Xen's option names and
//! value syntax for what it implements, silently accepts (in
//! [`BootOptions::ignored`]) the Xen options that make no difference to oxen,
//! and reports the rest in [`BootOptions::unknown`] (bad values in
//! [`BootOptions::invalid`]) so the hypervisor can warn.
//!
//! As in Xen: options are separated by spaces, `-` and `_` are
//! interchangeable in option names, a boolean may be negated with a `no-`
//! prefix, and a size without a unit is in KiB.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// Parsed hypervisor options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootOptions {
    /// `dom0_mem=<size>` (or its `max:` value) in bytes.
    pub dom0_mem: Option<u64>,
    /// `dom0_max_vcpus=<n>` or `<min>-<max>` (the max).
    pub dom0_max_vcpus: Option<u32>,
    /// `console=<name>[,<name>...]`, verbatim.
    pub console: Option<String>,
    /// `dtuart=<path or alias>[:<options>]`: the console UART, instead of
    /// `/chosen/stdout-path` (the path part; options are the firmware's).
    pub dtuart: Option<String>,
    /// `loglvl=<level>[/<rate-limited level>]` (the first level).
    pub loglvl: Option<LogLevel>,
    /// `console_timestamps=<none|date|datems|boot|raw>`.
    pub console_timestamps: Option<Timestamps>,
    /// `noreboot[=<bool>]`: after a fatal error, halt instead of rebooting.
    pub noreboot: bool,
    /// `sched=<name>`: the scheduler (oxen has `credit`, the default).
    pub sched: Option<String>,
    /// `sched_credit_tslice_ms=<ms>`: credit time slice.
    pub sched_credit_tslice_ms: Option<u32>,
    /// `sched_ratelimit_us=<us>`: scheduler rate limit.
    pub sched_ratelimit_us: Option<u32>,
    /// `oxen.noboost` (not Xen's; for tests): the credit scheduler never
    /// boosts a waking vCPU.
    pub noboost: bool,
    /// `vwfi=trap|native`: whether a guest's WFI always traps (Xen's
    /// default) or never does. Without it oxen traps WFI only while some
    /// vCPU waits for a CPU (see `sched`).
    pub vwfi: Option<Vwfi>,
    /// Known Xen options oxen does not act on (whole tokens).
    pub ignored: Vec<String>,
    /// Unrecognised options (whole tokens), worth a warning.
    pub unknown: Vec<String>,
    /// Recognised options with an unparsable value (whole tokens).
    pub invalid: Vec<String>,
}

/// Hypervisor log threshold (Xen `loglvl=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Nothing.
    None,
    /// Errors only.
    Error,
    /// Errors and warnings.
    Warning,
    /// Informational and above.
    Info,
    /// Debug and above.
    Debug,
    /// Everything.
    All,
}

/// Xen's `vwfi=` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vwfi {
    /// Every WFI traps: the vCPU blocks and its CPU may run another.
    Trap,
    /// WFI never traps: the vCPU waits on its CPU, which stays its.
    Native,
}

/// What precedes each hypervisor console line (Xen `console_timestamps=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timestamps {
    /// Nothing (the default).
    None,
    /// Seconds and microseconds of the system counter, `[    1.234567]`
    /// (`boot`; also `date` and `datems`, as there is no wall clock).
    Boot,
    /// The raw system counter in hex, `[1d4c0]`.
    Raw,
}

impl Timestamps {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" | "no" => Self::None,
            "boot" | "date" | "datems" | "" => Self::Boot,
            "raw" => Self::Raw,
            _ => return None,
        })
    }
}

impl LogLevel {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "error" => Self::Error,
            "warning" => Self::Warning,
            "info" => Self::Info,
            "debug" => Self::Debug,
            "all" => Self::All,
            _ => return None,
        })
    }
}

/// Xen options that oxen accepts and ignores (names normalised with `_`).
const IGNORED: &[&str] = &[
    "guest_loglvl",
    "sync_console",
    "console_to_ring",
    "conring_size",
    "conswitch",
    "earlyprintk",
    "bootscrub",
    "bootscrub_chunk",
    "dom0_vcpus_pin",
    "dom0_ioports_disable",
    "hardware_dom",
    "credit2_balance_over",
    "credit2_balance_under",
    "credit2_load_window_shift",
    "credit2_runqueue",
    "null_sched",
    "serrors",
    "hmp_unsafe",
    "xsm",
    "flask",
    "iommu",
    "reboot",
    "watchdog",
    "watchdog_timeout",
    "maxcpus",
    "nosmp",
    "debug_stack_lines",
    "extra_guest_irqs",
    "gnttab_max_frames",
    "gnttab_max_maptrack_frames",
    "max_gnttab_frames",
    "grant_table_version",
    "tbuf_size",
    "low_mem_virq_limit",
    "irq_ratelimit",
    "softirq_watchdog",
    "timer_slop",
    "clocksource",
    "cpufreq",
    "dom0less_boot",
    "static_heap",
    "llc_coloring",
    "vcpu_migration_delay",
    "spec_ctrl",
    "ept",
    "altp2m",
    "mem",
    "xenheap_megabytes",
    "efi",
    "ucode",
    "trace_buf_size",
];

/// A Xen boolean value (`parse_bool`): `1`/`yes`/`on`/`true`/`enable` or
/// `0`/`no`/`off`/`false`/`disable`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "yes" | "on" | "true" | "enable" => Some(true),
        "0" | "no" | "off" | "false" | "disable" => Some(false),
        _ => None,
    }
}

/// Parse a Xen size: a decimal, `0x` hex or `0` octal number followed by an
/// optional unit `T`, `G`, `M`, `K` or `B` (either case); **no unit means KiB**
/// (Xen's `parse_size_and_unit`). `None` on syntax errors or overflow.
pub fn parse_size(s: &str) -> Option<u64> {
    let end = if s.starts_with("0x") || s.starts_with("0X") {
        // Like strtoull: hex digits (including 'b') belong to the number.
        2 + s[2..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(s.len() - 2)
    } else {
        s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len())
    };
    let num = parse_uint(&s[..end])?;
    let shift = match &s[end..] {
        "" => 10,
        "T" | "t" => 40,
        "G" | "g" => 30,
        "M" | "m" => 20,
        "K" | "k" => 10,
        "B" | "b" => 0,
        _ => return None,
    };
    if shift > 0 && num.leading_zeros() < shift {
        return None;
    }
    Some(num << shift)
}

/// Unsigned integer in C `strtoull(.., 0)` syntax; the whole string must be
/// consumed.
fn parse_uint(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

fn parse_dom0_mem(v: &str) -> Option<u64> {
    let mut plain = None;
    let mut max = None;
    for item in v.split(',') {
        if let Some(m) = item.strip_prefix("max:") {
            max = Some(parse_size(m)?);
        } else if let Some(m) = item.strip_prefix("min:") {
            parse_size(m)?;
        } else {
            plain = Some(parse_size(item)?);
        }
    }
    plain.or(max)
}

fn parse_vcpus(v: &str) -> Option<u32> {
    let n = match v.split_once('-') {
        Some((min, max)) => {
            if !min.is_empty() {
                min.parse::<u32>().ok()?;
            }
            max.parse::<u32>().ok()?
        }
        None => v.parse::<u32>().ok()?,
    };
    (n > 0).then_some(n)
}

/// Parse a hypervisor command line (see the module docs).
pub fn parse_cmdline(s: &str) -> BootOptions {
    let mut o = BootOptions::default();
    for tok in s.split_ascii_whitespace() {
        let (raw_name, value) = match tok.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (tok, None),
        };
        let name: String = raw_name
            .chars()
            .map(|c| if c == '-' { '_' } else { c })
            .collect();
        let ok = match (name.as_str(), value) {
            ("dom0_mem", Some(v)) => parse_dom0_mem(v).map(|m| o.dom0_mem = Some(m)),
            ("dom0_max_vcpus", Some(v)) => parse_vcpus(v).map(|n| o.dom0_max_vcpus = Some(n)),
            ("console", Some(v)) => {
                o.console = Some(v.to_string());
                Some(())
            }
            ("dtuart", Some(v)) => {
                let path = v.split(':').next().unwrap_or(v);
                (!path.is_empty()).then(|| o.dtuart = Some(path.to_string()))
            }
            ("loglvl", Some(v)) => {
                let first = v.split('/').next().unwrap_or(v);
                LogLevel::parse(first).map(|l| o.loglvl = Some(l))
            }
            ("console_timestamps", v) => {
                Timestamps::parse(v.unwrap_or("")).map(|t| o.console_timestamps = Some(t))
            }
            ("noreboot", v) => parse_bool(v.unwrap_or("1")).map(|b| o.noreboot = b),
            ("no_noreboot", None) => {
                o.noreboot = false;
                Some(())
            }
            ("no_console_timestamps", None) => {
                o.console_timestamps = Some(Timestamps::None);
                Some(())
            }
            ("sched", Some(v)) => {
                o.sched = Some(v.to_string());
                Some(())
            }
            ("sched_credit_tslice_ms", Some(v)) => {
                v.parse().ok().map(|n| o.sched_credit_tslice_ms = Some(n))
            }
            ("sched_ratelimit_us", Some(v)) => {
                v.parse().ok().map(|n| o.sched_ratelimit_us = Some(n))
            }
            ("vwfi", Some(v)) => match v {
                "trap" => Some(Vwfi::Trap),
                "native" => Some(Vwfi::Native),
                _ => None,
            }
            .map(|w| o.vwfi = Some(w)),
            ("oxen.noboost", None) => {
                o.noboost = true;
                Some(())
            }
            (
                "dom0_mem"
                | "dom0_max_vcpus"
                | "console"
                | "dtuart"
                | "loglvl"
                | "sched"
                | "sched_credit_tslice_ms"
                | "sched_ratelimit_us"
                | "vwfi",
                None,
            ) => None,
            (n, _) => {
                let base = n.strip_prefix("no_").unwrap_or(n);
                if IGNORED.contains(&n) || IGNORED.contains(&base) {
                    o.ignored.push(tok.to_string());
                } else {
                    o.unknown.push(tok.to_string());
                }
                Some(())
            }
        };
        if ok.is_none() {
            o.invalid.push(tok.to_string());
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_timestamps() {
        let t = |s: &str| parse_cmdline(s).console_timestamps;
        assert_eq!(t("console_timestamps=boot"), Some(Timestamps::Boot));
        assert_eq!(t("console-timestamps=datems"), Some(Timestamps::Boot));
        assert_eq!(t("console_timestamps"), Some(Timestamps::Boot));
        assert_eq!(t("console_timestamps=raw"), Some(Timestamps::Raw));
        assert_eq!(t("console_timestamps=none"), Some(Timestamps::None));
        assert_eq!(t("no-console-timestamps"), Some(Timestamps::None));
        assert_eq!(t("loglvl=all"), None);
        let o = parse_cmdline("console_timestamps=sometimes");
        assert_eq!(o.invalid, ["console_timestamps=sometimes"]);
        assert_eq!(o.console_timestamps, None);
    }

    #[test]
    fn noreboot_is_a_xen_boolean() {
        let n = |s: &str| parse_cmdline(s).noreboot;
        assert!(!n("dom0_mem=512M"));
        assert!(n("noreboot"));
        assert!(n("dom0_mem=1G noreboot loglvl=all"));
        assert!(n("noreboot=yes") && n("noreboot=1") && n("noreboot=on"));
        assert!(!n("noreboot=no") && !n("noreboot=0") && !n("noreboot=false"));
        assert!(!n("noreboot no-noreboot"), "the last one wins");
        let o = parse_cmdline("noreboot=maybe reboot=warm");
        assert!(!o.noreboot);
        assert_eq!(o.invalid, ["noreboot=maybe"]);
        assert_eq!(o.ignored, ["reboot=warm"]);
        assert!(o.unknown.is_empty());
    }

    #[test]
    fn vwfi_takes_xen_values() {
        let w = |s: &str| parse_cmdline(s).vwfi;
        assert_eq!(w(""), None);
        assert_eq!(w("vwfi=trap"), Some(Vwfi::Trap));
        assert_eq!(w("vwfi=native"), Some(Vwfi::Native));
        let o = parse_cmdline("vwfi=sometimes vwfi");
        assert_eq!(o.vwfi, None);
        assert_eq!(o.invalid, ["vwfi=sometimes", "vwfi"]);
        assert!(o.ignored.is_empty() && o.unknown.is_empty());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("2T"), Some(2 << 40));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("4096B"), Some(4096));
        assert_eq!(parse_size("1024"), Some(1 << 20), "bare number is KiB");
        assert_eq!(parse_size("0x10M"), Some(16 << 20));
        assert_eq!(
            parse_size("0x1b"),
            Some(0x1b << 10),
            "b is a hex digit after 0x"
        );
        assert_eq!(parse_size("010K"), Some(8 << 10), "leading 0 is octal");
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("12X"), None);
        assert_eq!(parse_size("12MB"), None);
        assert_eq!(parse_size("1-2M"), None);
        assert_eq!(parse_size("99999999999999999999G"), None);
        assert_eq!(parse_size("17179869184G"), None, "overflows u64 bytes");
        assert_eq!(parse_size("0x"), None);
    }

    #[test]
    fn dtuart_path_or_alias_without_options() {
        let d = |s: &str| parse_cmdline(s).dtuart;
        assert_eq!(d("dtuart=serial0"), Some("serial0".into()));
        assert_eq!(
            d("dtuart=/soc/serial@7e201000:115200n8"),
            Some("/soc/serial@7e201000".into())
        );
        assert_eq!(
            d("dtuart=serial1 dtuart=serial0"),
            Some("serial0".into()),
            "the last one wins"
        );
        let o = parse_cmdline("dtuart dtuart= dtuart=:115200");
        assert_eq!(o.dtuart, None);
        assert_eq!(o.invalid, ["dtuart", "dtuart=", "dtuart=:115200"]);
    }

    #[test]
    fn reference_cmdline() {
        let o = parse_cmdline(
            "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all ",
        );
        assert_eq!(o.dom0_mem, Some(512 << 20));
        assert_eq!(o.console.as_deref(), Some("dtuart"));
        assert_eq!(o.loglvl, Some(LogLevel::All));
        assert_eq!(o.dom0_max_vcpus, None);
        assert_eq!(o.dtuart.as_deref(), Some("/pl011@9000000"));
        assert_eq!(o.ignored, ["guest_loglvl=all"]);
        assert!(o.unknown.is_empty());
        assert!(o.invalid.is_empty());
    }

    #[test]
    fn options_and_errors() {
        let o = parse_cmdline(
            "dom0-mem=1G,max:2G dom0_max_vcpus=1-4 loglvl=warning/error sync_console \
             no-bootscrub frobnicate=3 oxen.x dom0_mem=lots loglvl=loud console",
        );
        // The later bad dom0_mem does not clobber the earlier good one.
        assert_eq!(o.dom0_mem, Some(1 << 30));
        assert_eq!(o.dom0_max_vcpus, Some(4));
        assert_eq!(o.loglvl, Some(LogLevel::Warning));
        assert_eq!(o.ignored, ["sync_console", "no-bootscrub"]);
        assert_eq!(o.unknown, ["frobnicate=3", "oxen.x"]);
        assert_eq!(o.invalid, ["dom0_mem=lots", "loglvl=loud", "console"]);
    }

    #[test]
    fn dom0_mem_forms() {
        assert_eq!(parse_cmdline("dom0_mem=max:768M").dom0_mem, Some(768 << 20));
        assert_eq!(
            parse_cmdline("dom0_mem=min:1G,256M").dom0_mem,
            Some(256 << 20)
        );
        assert_eq!(parse_cmdline("dom0_mem=min:1G").dom0_mem, None);
        assert_eq!(parse_cmdline("dom0_max_vcpus=0").dom0_max_vcpus, None);
        assert_eq!(parse_cmdline("dom0_max_vcpus=2").dom0_max_vcpus, Some(2));
        assert_eq!(parse_cmdline("dom0_max_vcpus=-3").dom0_max_vcpus, Some(3));
        let levels = ["none", "error", "warning", "info", "debug", "all"];
        let want = [
            LogLevel::None,
            LogLevel::Error,
            LogLevel::Warning,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::All,
        ];
        for (l, w) in levels.iter().zip(want) {
            assert_eq!(parse_cmdline(&format!("loglvl={l}")).loglvl, Some(w));
        }
        assert_eq!(parse_cmdline("").unknown.len(), 0);
    }
}
