//! [`Shell`]: run commands in a guest's busybox shell over the console and collect what
//! each printed and its exit status.
//!
//! Each command is typed as `echo "<B>"; CMD; echo "<E> rc=$?"` where the markers are
//! written as shell arithmetic (`CMD-$((N+1))`), so the echo of the typed line (which the
//! terminal may also wrap at any column) can never match the marker lines the shell prints.
//! The lines between the markers are the command's output, minus the lines that only
//! share the console (hypervisor `(oxen) ...`/`(XEN) ...` lines and kernel `[  1.23] ...`
//! messages).
//!
//! Invariant: after [`Shell::run`] returns `Ok`, the shell has printed its next prompt, so
//! the next command is typed into a waiting shell.

use crate::error::Error;
use crate::pattern::{Pattern, re};
use crate::running::Running;
use std::time::Duration;

/// What one command printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The command as typed.
    pub cmd: String,
    /// Its output lines (console noise removed).
    pub lines: Vec<String>,
    /// `$?` after it.
    pub status: i32,
}

impl Output {
    /// The output as one string, lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The value after `prefix` on the first line starting with it (`key : value` lines
    /// of `xl info`, `key=value` lines).
    pub fn value(&self, prefix: &str) -> Option<&str> {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "$ {}   (status {})", self.cmd, self.status)?;
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// Whether a console line is noise from elsewhere (hypervisor, kernel log).
pub fn is_console_noise(line: &str) -> bool {
    line.starts_with("(oxen)")
        || line.starts_with("(XEN)")
        || line.starts_with("(d")
        || (line.starts_with('[')
            && line
                .find(']')
                .is_some_and(|i| line[1..i].trim().parse::<f64>().is_ok()))
}

/// A shell on a running guest's console; see the module docs.
pub struct Shell<'a> {
    q: &'a mut Running,
    prompt: Pattern,
    next: u32,
}

impl<'a> Shell<'a> {
    /// A shell whose prompt (the unterminated last console line) matches `prompt`. Waits
    /// for that prompt first, up to `timeout`.
    pub fn attach(
        q: &'a mut Running,
        prompt: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let prompt = prompt.into();
        q.expect_prompt(prompt.clone(), timeout)?;
        Ok(Self { q, prompt, next: 1 })
    }

    /// The QEMU underneath (for raw sends and expectations).
    pub fn running(&mut self) -> &mut Running {
        self.q
    }

    /// The prompt pattern.
    pub fn prompt(&self) -> &Pattern {
        &self.prompt
    }

    /// Run `cmd` (one line, no newline) and wait up to `timeout` for it to finish.
    /// On a timeout or a forbidden line (a kernel stall, say) the hypervisor's debug keys are pressed first, so the transcript shows
    /// what every CPU and vCPU was doing ([`Running::dump_hypervisor_state`]).
    pub fn run(&mut self, cmd: &str, timeout: Duration) -> Result<Output, Error> {
        let r = self.run_inner(cmd, timeout);
        if let Err(e) = &r
            && matches!(
                e.kind(),
                crate::error::ErrorKind::Timeout { .. } | crate::error::ErrorKind::Forbidden { .. }
            )
        {
            self.q.dump_hypervisor_state();
        }
        r
    }

    fn run_inner(&mut self, cmd: &str, timeout: Duration) -> Result<Output, Error> {
        let n = self.next;
        self.next += 1;
        let begin = format!("OXEN-CMD-B{}", 1000 + n);
        let end = format!("OXEN-CMD-E{}", 1000 + n);
        self.q.send(&format!(
            "echo \"OXEN-CMD-B$((1000+{n}))\"; {cmd}; echo \"OXEN-CMD-E$((1000+{n})) rc=$?\"\r"
        ))?;
        let b = self.q.expect(re(&format!("^{begin}$")), timeout)?;
        let e = self.q.expect(re(&format!(r"^{end} rc=(\d+)$")), timeout)?;
        let status: i32 = e.text[end.len() + " rc=".len()..].parse().unwrap_or(-1);
        let all = self.q.lines();
        let from = all.iter().rposition(|l| *l == b).map_or(0, |i| i + 1);
        let to = all.iter().rposition(|l| *l == e).unwrap_or(all.len());
        let lines = all[from..to.max(from)]
            .iter()
            .map(|l| l.text.clone())
            .filter(|t| !is_console_noise(t))
            .collect();
        self.q.expect_prompt(self.prompt.clone(), timeout)?;
        Ok(Output {
            cmd: cmd.to_string(),
            lines,
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_noise_is_recognised() {
        assert!(is_console_noise("(oxen) d1: shutdown (poweroff)"));
        assert!(is_console_noise("[   20.956939] Unknown online node"));
        assert!(is_console_noise("(XEN) d1v0 ..."));
        assert!(!is_console_noise("[oops] not a timestamp"));
        assert!(!is_console_noise("Domain-0   0  512  2  r-----  1.0"));
        assert!(!is_console_noise("domu: name=domu"));
    }

    #[test]
    fn output_values() {
        let o = Output {
            cmd: "xl info".into(),
            lines: vec![
                "total_memory           : 2048".into(),
                "free_memory            : 1524".into(),
            ],
            status: 0,
        };
        assert_eq!(o.value("free_memory"), Some(": 1524"));
        assert_eq!(o.value("free_memory            :"), Some("1524"));
        assert_eq!(o.value("nope"), None);
        assert!(o.to_string().starts_with("$ xl info   (status 0)\n"));
    }
}
