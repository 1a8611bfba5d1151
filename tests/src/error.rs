//! The harness's one error type.
//!
//! Errors that happen while a QEMU runs carry a [`Report`]: the command line, the last
//! console lines and where the whole transcript was saved, so a failing test prints all a
//! developer needs. `Debug` prints the same text as `Display`, because a test returning
//! `Result<(), Error>` shows its error with `Debug`.

use crate::running::Line;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// How many console lines a [`Report`] keeps.
pub const REPORT_TAIL_LINES: usize = 60;

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The QEMU program could not be found.
    QemuMissing {
        /// The program that was looked for.
        program: String,
    },
    /// A host tool (e.g. `dtc`) could not be found.
    ToolMissing {
        /// The tool's name.
        tool: String,
    },
    /// A built image is missing.
    ImageMissing {
        /// Its path relative to the workspace root.
        path: String,
    },
    /// A file of the Linux Dom0 payload (`make dom0`) is missing.
    Dom0Missing {
        /// Its path (relative to the workspace root when inside it).
        path: String,
    },
    /// The hypervisor image named by env `OXEN_TEST_HYPERVISOR` does not exist.
    HypervisorMissing {
        /// The path given.
        path: String,
    },
    /// An I/O operation failed.
    Io {
        /// What the harness was doing.
        what: String,
        /// The underlying error.
        err: std::io::Error,
    },
    /// A helper command (dtc, QEMU's `dumpdtb` run) failed.
    Tool {
        /// The command.
        what: String,
        /// Its exit status.
        status: ExitStatus,
        /// Its standard error.
        stderr: String,
    },
    /// The device tree source could not be edited.
    Dts(String),
    /// No matching line arrived in time.
    Timeout {
        /// What was expected.
        waiting_for: String,
        /// The (scaled) time waited.
        after: Duration,
    },
    /// A forbidden line was seen.
    Forbidden {
        /// The offending line.
        line: Line,
        /// The forbidden pattern it matched.
        pattern: String,
    },
    /// QEMU closed its console before the expectation was met.
    Exited {
        /// What was expected.
        waiting_for: String,
        /// QEMU's exit status, if it could be collected.
        status: Option<ExitStatus>,
    },
    /// QEMU exited with another status than expected.
    ExitCode {
        /// The expected exit code.
        expected: i32,
        /// The actual status.
        status: ExitStatus,
    },
}

/// Context of a failure in a running QEMU.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// The QEMU command line, shell-quoted.
    pub command_line: String,
    /// The last [`REPORT_TAIL_LINES`] console lines.
    pub tail: Vec<Line>,
    /// Number of console lines not shown in `tail`.
    pub omitted: usize,
    /// The console's unterminated last line (e.g. a prompt), empty if none.
    pub partial: String,
    /// QEMU's standard error lines.
    pub stderr: Vec<Line>,
    /// Where the whole transcript was saved, if it could be.
    pub log: Option<PathBuf>,
}

/// A harness failure: its [`ErrorKind`] and, for a running QEMU, a [`Report`].
pub struct Error {
    kind: ErrorKind,
    report: Option<Box<Report>>,
}

impl Error {
    /// An error without a report.
    pub fn new(kind: ErrorKind) -> Self {
        Self { kind, report: None }
    }

    /// An error with a report.
    pub fn with_report(kind: ErrorKind, report: Report) -> Self {
        Self {
            kind,
            report: Some(Box::new(report)),
        }
    }

    pub(crate) fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        Self::new(ErrorKind::Io {
            what: what.into(),
            err,
        })
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The report, for errors of a running QEMU.
    pub fn report(&self) -> Option<&Report> {
        self.report.as_deref()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::QemuMissing { program } => {
                write!(f, "{program} not found: run `make setup`")
            }
            ErrorKind::ToolMissing { tool } => write!(f, "{tool} not found: run `make setup`"),
            ErrorKind::ImageMissing { path } => write!(f, "{path} missing: run `make build`"),
            ErrorKind::Dom0Missing { path } => write!(f, "{path} missing: run `make dom0`"),
            ErrorKind::HypervisorMissing { path } => write!(
                f,
                "{}={path} does not exist (unset it to test build/oxen.bin)",
                crate::HYPERVISOR_ENV
            ),
            ErrorKind::Io { what, err } => write!(f, "{what}: {err}"),
            ErrorKind::Tool {
                what,
                status,
                stderr,
            } => write!(f, "`{what}` failed ({status}): {}", stderr.trim_end()),
            ErrorKind::Dts(msg) => write!(f, "cannot edit the device tree source: {msg}"),
            ErrorKind::Timeout { waiting_for, after } => write!(
                f,
                "timed out after {:.1} s waiting for {waiting_for}",
                after.as_secs_f64()
            ),
            ErrorKind::Forbidden { line, pattern } => write!(
                f,
                "forbidden console line (matches {pattern}) at {:.3} s: {}",
                line.at.as_secs_f64(),
                line.text
            ),
            ErrorKind::Exited {
                waiting_for,
                status,
            } => match status {
                Some(s) => write!(f, "QEMU exited ({s}) while waiting for {waiting_for}"),
                None => write!(f, "QEMU closed its console while waiting for {waiting_for}"),
            },
            ErrorKind::ExitCode { expected, status } => {
                write!(
                    f,
                    "QEMU exited with {status}, expected exit code {expected}"
                )
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(r) = &self.report {
            write!(f, "\n--- QEMU command line:\n{}", r.command_line)?;
            if r.omitted > 0 {
                write!(
                    f,
                    "\n--- last {} console lines ({} earlier lines omitted):",
                    r.tail.len(),
                    r.omitted
                )?;
            } else {
                write!(f, "\n--- console ({} lines):", r.tail.len())?;
            }
            for l in &r.tail {
                write!(f, "\n{l}")?;
            }
            if !r.partial.is_empty() {
                write!(f, "\n--- unterminated last line: {:?}", r.partial)?;
            }
            if !r.stderr.is_empty() {
                write!(f, "\n--- QEMU stderr:")?;
                for l in &r.stderr {
                    write!(f, "\n{l}")?;
                }
            }
            match &r.log {
                Some(p) => write!(f, "\n--- full transcript: {}", p.display())?,
                None => write!(f, "\n--- (transcript could not be saved)")?,
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io { err, .. } => Some(err),
            _ => None,
        }
    }
}
