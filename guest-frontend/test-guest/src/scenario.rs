//! Which scenario to run, decoded from the guest's command line
//! (`oxen.test=<name>`, `oxen.count=<n>`, `oxen.addr=<hex>`; see
//! docs/design.md "Test guest scenarios"). Pure parsing, tested on the host.

use core::fmt;

use xen_guest::bootargs::{self, NumError};

/// Default `oxen.addr` of the `gicd` scenario: `GICD_TYPER` of QEMU virt's
/// GIC distributor (0x0800_0000 + 4).
pub const DEFAULT_GICD_TYPER: u64 = 0x0800_0004;

/// Default `oxen.gicd` of the `vgic` scenario: QEMU virt's distributor
/// (what a Dom0 sees; a DomU's is at 0x0300_1000).
pub const DEFAULT_GICD: u64 = 0x0800_0000;
/// Default `oxen.gicr` of the `vgic` scenario: QEMU virt's first
/// redistributor (a DomU's is at 0x0302_0000).
pub const DEFAULT_GICR: u64 = 0x080a_0000;
/// Default `oxen.gicc` of the `vgic` scenario: QEMU virt's GICv2 CPU
/// interface (a DomU's is at 0x0300_2000).
pub const DEFAULT_GICC: u64 = 0x0801_0000;

/// Where the `vgic` scenario finds its GIC, from `oxen.gic=2|3` (default
/// 3), `oxen.gicd=`, `oxen.gicr=` (v3) and `oxen.gicc=` (v2), hex.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct GicSetup {
    /// GIC architecture version, 2 or 3.
    pub version: u8,
    /// Distributor base.
    pub gicd: u64,
    /// First redistributor (GICv3).
    pub gicr: u64,
    /// CPU interface (GICv2).
    pub gicc: u64,
}

/// A scenario and its parameters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    /// Print a greeting, power off.
    Hello,
    /// Print `tick <i>` `count` times (forever if `None`), then power off.
    Count(Option<u64>),
    /// Read the first byte past the end of RAM.
    Oob,
    /// Write to this IPA.
    Touch(u64),
    /// Read `GICD_TYPER` at this IPA.
    Gicd(u64),
    /// Load a pair of words from this IPA with `ldp` (an access the
    /// hardware reports without a syndrome when it traps).
    Ldp(u64),
    /// Spin forever without hypercalls.
    Spin,
    /// Count work (loop iterations) and print `work <ms> <n>` every
    /// `report_ms` of the counter (`<ms>`: counter time since boot, `<n>`:
    /// iterations so far); power off at `stop_ms` (counter time) if given.
    /// With `busy_us`/`idle_us` both set, work only `busy_us` at a time and
    /// then sleep `idle_us` in WFI on the virtual timer (the "tick dodger").
    Work {
        /// Reporting period, ms (`oxen.period=`, default 100).
        report_ms: u64,
        /// Power off at this counter time, ms (`oxen.stop=`).
        stop_ms: Option<u64>,
        /// Busy phase, µs (`oxen.busy=`).
        busy_us: Option<u64>,
        /// Sleep phase, µs (`oxen.idle=`).
        idle_us: Option<u64>,
    },
    /// Call hypercall 63 and print what it returned.
    Enosys,
    /// Shut down with reason crash.
    Crash,
    /// Bring up the GIC the way the Xen Test Framework does (GICv3: find
    /// the redistributor, poll `GICR_WAKER` until ChildrenAsleep clears
    /// without writing it first, bounded) and take one SGI sent to self.
    Vgic(GicSetup),
    /// Print the ID registers that advertise SVE, SME, MTE and pointer
    /// authentication, then try SVE and SME anyway (enabled at EL1) and
    /// print that each was UNDEFINED.
    CpuFeatures,
    /// Bad hypercalls, then `calls` random ones from `seed`
    /// (`oxen.seed=`, `oxen.count=`), plus the cases against domain `peer`
    /// (`oxen.peer=`) if given.
    Hostile {
        /// Seed of the random phase.
        seed: u64,
        /// Number of random calls.
        calls: u64,
        /// Another domain's id, for the permission cases.
        peer: Option<u16>,
    },
}

/// Why the command line does not name a runnable scenario.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConfigError<'a> {
    /// No (or an empty) `oxen.test=`.
    NoTest,
    /// `oxen.test=` names no known scenario.
    Unknown(&'a str),
    /// A numeric parameter does not parse.
    BadNumber(&'static str, &'a str, NumError),
    /// A parameter the scenario needs is missing.
    Missing(&'static str),
    /// A parameter is out of the range the scenario supports.
    OutOfRange(&'static str, u64),
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoTest => f.write_str("no oxen.test= in bootargs"),
            Self::Unknown(name) => write!(f, "unknown scenario '{name}'"),
            Self::BadNumber(key, v, e) => write!(f, "bad {key}={v}: {e}"),
            Self::Missing(key) => write!(f, "missing {key}="),
            Self::OutOfRange(key, v) => write!(f, "{key}={v} is out of range"),
        }
    }
}

/// The scenario name from the command line.
pub fn name(cmdline: &str) -> Result<&str, ConfigError<'_>> {
    match bootargs::arg(cmdline, "oxen.test") {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(ConfigError::NoTest),
    }
}

fn number<'a>(
    cmdline: &'a str,
    key: &'static str,
    parse: fn(&str) -> Result<u64, NumError>,
) -> Result<Option<u64>, ConfigError<'a>> {
    match bootargs::arg(cmdline, key) {
        None => Ok(None),
        Some(v) => parse(v)
            .map(Some)
            .map_err(|e| ConfigError::BadNumber(key, v, e)),
    }
}

/// Decode the scenario and its parameters. `oxen.count` is decimal (or
/// `0x` hex); `oxen.addr` is hex with or without `0x`.
pub fn parse(cmdline: &str) -> Result<Scenario, ConfigError<'_>> {
    let addr = || number(cmdline, "oxen.addr", bootargs::parse_hex);
    Ok(match name(cmdline)? {
        "hello" => Scenario::Hello,
        "count" => Scenario::Count(number(cmdline, "oxen.count", bootargs::parse_u64)?),
        "oob" => Scenario::Oob,
        "touch" => Scenario::Touch(addr()?.ok_or(ConfigError::Missing("oxen.addr"))?),
        "gicd" => Scenario::Gicd(addr()?.unwrap_or(DEFAULT_GICD_TYPER)),
        "ldp" => Scenario::Ldp(addr()?.ok_or(ConfigError::Missing("oxen.addr"))?),
        "spin" => Scenario::Spin,
        "work" => {
            let n = |k| number(cmdline, k, bootargs::parse_u64);
            let report_ms = n("oxen.period")?.unwrap_or(100);
            if report_ms == 0 {
                return Err(ConfigError::OutOfRange("oxen.period", 0));
            }
            Scenario::Work {
                report_ms,
                stop_ms: n("oxen.stop")?,
                busy_us: n("oxen.busy")?,
                idle_us: n("oxen.idle")?,
            }
        }
        "enosys" => Scenario::Enosys,
        "crash" => Scenario::Crash,
        "cpufeatures" => Scenario::CpuFeatures,
        "vgic" => {
            let hex = |key| number(cmdline, key, bootargs::parse_hex);
            let version = number(cmdline, "oxen.gic", bootargs::parse_u64)?.unwrap_or(3);
            if version != 2 && version != 3 {
                return Err(ConfigError::OutOfRange("oxen.gic", version));
            }
            let aligned = |key, v: u64| {
                if v.is_multiple_of(0x1000) {
                    Ok(v)
                } else {
                    Err(ConfigError::OutOfRange(key, v))
                }
            };
            Scenario::Vgic(GicSetup {
                version: version as u8,
                gicd: aligned("oxen.gicd", hex("oxen.gicd")?.unwrap_or(DEFAULT_GICD))?,
                gicr: aligned("oxen.gicr", hex("oxen.gicr")?.unwrap_or(DEFAULT_GICR))?,
                gicc: aligned("oxen.gicc", hex("oxen.gicc")?.unwrap_or(DEFAULT_GICC))?,
            })
        }
        "hostile" => {
            let peer = match number(cmdline, "oxen.peer", bootargs::parse_u64)? {
                None => None,
                Some(p) if crate::hostile::peer_supported(p) => Some(p as u16),
                Some(p) => return Err(ConfigError::OutOfRange("oxen.peer", p)),
            };
            Scenario::Hostile {
                seed: number(cmdline, "oxen.seed", bootargs::parse_u64)?
                    .unwrap_or(crate::hostile::DEFAULT_SEED),
                calls: number(cmdline, "oxen.count", bootargs::parse_u64)?
                    .unwrap_or(crate::hostile::DEFAULT_CALLS),
                peer,
            }
        }
        other => return Err(ConfigError::Unknown(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_scenarios() {
        for (n, s) in [
            ("hello", Scenario::Hello),
            ("oob", Scenario::Oob),
            ("spin", Scenario::Spin),
            ("enosys", Scenario::Enosys),
            ("crash", Scenario::Crash),
            ("cpufeatures", Scenario::CpuFeatures),
            ("count", Scenario::Count(None)),
            ("gicd", Scenario::Gicd(0x0800_0004)),
        ] {
            let cmd = format!("console=hvc0 oxen.test={n} quiet");
            assert_eq!(parse(&cmd), Ok(s), "{cmd}");
            assert_eq!(name(&cmd), Ok(n));
        }
    }

    #[test]
    fn work_parameters() {
        assert_eq!(
            parse("oxen.test=work"),
            Ok(Scenario::Work {
                report_ms: 100,
                stop_ms: None,
                busy_us: None,
                idle_us: None
            })
        );
        assert_eq!(
            parse("oxen.test=work oxen.period=250 oxen.stop=5000 oxen.busy=9500 oxen.idle=500"),
            Ok(Scenario::Work {
                report_ms: 250,
                stop_ms: Some(5000),
                busy_us: Some(9500),
                idle_us: Some(500)
            })
        );
        assert_eq!(
            parse("oxen.test=work oxen.period=0"),
            Err(ConfigError::OutOfRange("oxen.period", 0))
        );
    }

    #[test]
    fn parameters() {
        assert_eq!(
            parse("oxen.test=count oxen.count=5"),
            Ok(Scenario::Count(Some(5)))
        );
        assert_eq!(
            parse("oxen.test=touch oxen.addr=0x48000000"),
            Ok(Scenario::Touch(0x4800_0000))
        );
        assert_eq!(
            parse("oxen.addr=3fff000 oxen.test=touch"),
            Ok(Scenario::Touch(0x03ff_f000))
        );
        assert_eq!(
            parse("oxen.test=gicd oxen.addr=0x3001004"),
            Ok(Scenario::Gicd(0x300_1004))
        );
        assert_eq!(
            parse("oxen.test=hostile"),
            Ok(Scenario::Hostile {
                seed: crate::hostile::DEFAULT_SEED,
                calls: 2000,
                peer: None
            })
        );
        assert_eq!(
            parse("oxen.test=hostile oxen.seed=0x1234 oxen.count=10 oxen.peer=2"),
            Ok(Scenario::Hostile {
                seed: 0x1234,
                calls: 10,
                peer: Some(2)
            })
        );
        assert_eq!(
            parse("oxen.test=hostile oxen.peer=9"),
            Err(ConfigError::OutOfRange("oxen.peer", 9))
        );
        assert_eq!(
            parse("oxen.test=vgic"),
            Ok(Scenario::Vgic(GicSetup {
                version: 3,
                gicd: DEFAULT_GICD,
                gicr: DEFAULT_GICR,
                gicc: DEFAULT_GICC,
            }))
        );
        assert_eq!(
            parse("oxen.test=vgic oxen.gic=2 oxen.gicd=0x3001000 oxen.gicc=3002000"),
            Ok(Scenario::Vgic(GicSetup {
                version: 2,
                gicd: 0x300_1000,
                gicr: DEFAULT_GICR,
                gicc: 0x300_2000,
            }))
        );
        assert_eq!(
            parse("oxen.test=vgic oxen.gic=4"),
            Err(ConfigError::OutOfRange("oxen.gic", 4))
        );
        assert_eq!(
            parse("oxen.test=vgic oxen.gicr=0x3020004"),
            Err(ConfigError::OutOfRange("oxen.gicr", 0x302_0004))
        );
    }

    #[test]
    fn errors() {
        assert_eq!(parse("console=hvc0"), Err(ConfigError::NoTest));
        assert_eq!(parse("oxen.test="), Err(ConfigError::NoTest));
        assert_eq!(parse("oxen.test=bogus"), Err(ConfigError::Unknown("bogus")));
        assert_eq!(
            parse("oxen.test=touch"),
            Err(ConfigError::Missing("oxen.addr"))
        );
        let e = parse("oxen.test=count oxen.count=ten").unwrap_err();
        assert_eq!(
            e,
            ConfigError::BadNumber("oxen.count", "ten", NumError::InvalidDigit)
        );
        assert_eq!(e.to_string(), "bad oxen.count=ten: invalid digit");
        assert_eq!(
            ConfigError::Unknown("x").to_string(),
            "unknown scenario 'x'"
        );
    }
}
