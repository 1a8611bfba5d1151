//! xenconsoled's command line (Xen's option names: `--log`, `--log-dir`, `--pid-file`,
//! `-i/--interactive`, `-o/--overflow-data`, `-v/--verbose`).

use crate::buffer::Overflow;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;

/// What to log (Xen's `--log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogWhat {
    /// Nothing.
    None,
    /// Each guest's console output to `<log-dir>/guest-<name>.log`.
    Guest,
    /// The hypervisor's console (`hypervisor.log`).
    Hv,
    /// Both.
    All,
}

/// Overflow policy (Xen's `--overflow-data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OverflowArg {
    /// Drop the middle of unread output past 5/4 of `console/limit` (default).
    Discard,
    /// Keep the oldest unread output, drop newer.
    Keep,
}

impl From<OverflowArg> for Overflow {
    fn from(o: OverflowArg) -> Overflow {
        match o {
            OverflowArg::Discard => Overflow::Discard,
            OverflowArg::Keep => Overflow::Keep,
        }
    }
}

/// Copies each DomU's PV console between its ring and a pty (console/tty), with logs.
#[derive(Debug, Parser)]
#[command(name = "xenconsoled", version, about)]
pub struct Cli {
    /// Stay in the foreground (do not daemonize); messages go to stderr.
    #[arg(short, long)]
    pub interactive: bool,
    /// What to log.
    #[arg(long, value_enum, default_value = "none")]
    pub log: LogWhat,
    /// Where the logs go.
    #[arg(long, default_value = "/var/log/xen/console")]
    pub log_dir: PathBuf,
    /// Where the daemon's pid is written.
    #[arg(long, default_value = "/var/run/xen/xenconsoled.pid")]
    pub pid_file: PathBuf,
    /// What to do with unread output past the console's limit.
    #[arg(short, long, value_enum, default_value = "discard")]
    pub overflow_data: OverflowArg,
    /// More messages.
    #[arg(short, long)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xencommons_command_line_parses() {
        let c = Cli::try_parse_from([
            "xenconsoled",
            "--pid-file=/var/run/xen/xenconsoled.pid",
            "--log=guest",
            "--log-dir=/var/log/xen/console",
        ])
        .unwrap();
        assert_eq!(c.log, LogWhat::Guest);
        assert_eq!(c.log_dir, PathBuf::from("/var/log/xen/console"));
        assert!(!c.interactive);
        assert_eq!(c.overflow_data, OverflowArg::Discard);
    }

    #[test]
    fn defaults_and_errors() {
        let c = Cli::try_parse_from(["xenconsoled", "-i"]).unwrap();
        assert!(c.interactive);
        assert_eq!(c.log, LogWhat::None);
        assert_eq!(c.pid_file, PathBuf::from("/var/run/xen/xenconsoled.pid"));
        assert!(Cli::try_parse_from(["xenconsoled", "--log=everything"]).is_err());
        assert!(Cli::try_parse_from(["xenconsoled", "--bogus"]).is_err());
    }
}
