//! A running QEMU: console capture, expectations, forbidden lines, cleanup.
//!
//! Two reader threads turn QEMU's stdout (the serial console) and stderr into timestamped
//! [`Line`]s kept in shared state; the test thread waits on a condition variable.
//!
//! Invariants:
//! * `cursor` is the index of the next console line an expectation looks at; lines before it
//!   are consumed. `vetted` is the number of leading lines already checked against the
//!   forbidden list (or exempted because an expectation matched them); a line is checked at
//!   most once.
//! * QEMU is the leader of its own process group; dropping [`Running`] kills the whole group
//!   with `SIGKILL` and reaps QEMU, so no process or zombie outlives the handle. The slot of
//!   the global concurrency limit is released once QEMU has been reaped.

use crate::error::{Error, ErrorKind, REPORT_TAIL_LINES, Report};
use crate::pattern::Pattern;
use crate::qemu::Qemu;
use std::cell::Cell;
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One line of output, with the time since QEMU was started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Time since spawn when the line was complete.
    pub at: Duration,
    /// The text, without the line terminator (`\n` after any number of `\r`).
    pub text: String,
}

/// The prompt at the end of `lines` that hypervisor lines completed: the last line that is
/// not an `(oxen)` line matches `p` and at least one `(oxen)` line follows it (see
/// [`Running::expect_prompt`]).
fn cut_prompt(lines: &[Line], p: &Pattern) -> Option<String> {
    let hyp = lines
        .iter()
        .rev()
        .take_while(|l| l.text.starts_with("(oxen) "))
        .count();
    let prompt = lines.len().checked_sub(hyp + 1).map(|i| &lines[i])?;
    (hyp > 0 && p.matches(&prompt.text)).then(|| prompt.text.clone())
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{:9.3}] {}", self.at.as_secs_f64(), self.text)
    }
}

/// Output collected by the reader threads.
#[derive(Default)]
struct State {
    console: Vec<Line>,
    /// The console's unterminated last line (e.g. a shell prompt), lossily decoded.
    partial: String,
    stderr: Vec<Line>,
    console_eof: bool,
    stderr_eof: bool,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread cannot panic while holding the lock, but stay usable if one did.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

// ------------------------------------------------------------------ concurrency limit

/// Environment variable overriding [`max_concurrent`].
pub const MAX_QEMU_ENV: &str = "OXEN_TEST_MAX_QEMU";

static SLOTS: Mutex<usize> = Mutex::new(0);
static SLOT_FREED: Condvar = Condvar::new();

/// How many QEMUs one test binary runs at once: env `OXEN_TEST_MAX_QEMU`, default 2.
pub fn max_concurrent() -> usize {
    std::env::var(MAX_QEMU_ENV)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

thread_local! {
    /// Slots held by QEMUs spawned from this thread.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

/// One of the [`max_concurrent`] slots, released on drop (or once QEMU has exited).
struct Slot;

impl Slot {
    /// Wait for a free slot, unless this thread already holds one: a test that runs two
    /// QEMUs at once must not wait for itself (or for another test waiting the same way), so
    /// such a test may briefly exceed the limit instead of deadlocking.
    fn acquire() -> Slot {
        let max = max_concurrent();
        let mut used = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        if HELD.with(Cell::get) == 0 {
            while *used >= max {
                used = SLOT_FREED.wait(used).unwrap_or_else(|p| p.into_inner());
            }
        }
        *used += 1;
        HELD.with(|h| h.set(h.get() + 1));
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
        let mut used = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(1);
        SLOT_FREED.notify_one();
    }
}

// ------------------------------------------------------------------ reader threads

fn reader<R: Read + Send + 'static>(
    mut src: R,
    shared: Arc<Shared>,
    start: Instant,
    stderr: bool,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut partial: Vec<u8> = Vec::new();
        let push = |bytes: &[u8]| {
            // `\r\r\n` too: Xen turns a guest's `\r\n` into `\r\r\n`.
            let end = bytes.iter().rposition(|&b| b != b'\r').map_or(0, |i| i + 1);
            let bytes = &bytes[..end];
            let line = Line {
                at: start.elapsed(),
                text: String::from_utf8_lossy(bytes).into_owned(),
            };
            let mut st = shared.lock();
            if stderr {
                st.stderr.push(line);
            } else {
                st.console.push(line);
            }
            drop(st);
            shared.cond.notify_all();
        };
        loop {
            match src.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    partial.extend_from_slice(&buf[..n]);
                    while let Some(pos) = partial.iter().position(|&b| b == b'\n') {
                        push(&partial[..pos]);
                        partial.drain(..=pos);
                    }
                    if !stderr {
                        // Publish the unterminated rest for `expect_prompt`.
                        let text = String::from_utf8_lossy(&partial).into_owned();
                        shared.lock().partial = text;
                        shared.cond.notify_all();
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        if !partial.is_empty() {
            push(&partial);
        }
        let mut st = shared.lock();
        if !stderr {
            st.partial.clear();
        }
        if stderr {
            st.stderr_eof = true;
        } else {
            st.console_eof = true;
        }
        drop(st);
        shared.cond.notify_all();
    })
}

// ------------------------------------------------------------------ Running

/// A spawned QEMU; see the module docs. Dropping it kills QEMU.
pub struct Running {
    name: String,
    command_line: String,
    child: Child,
    stdin: Option<ChildStdin>,
    shared: Arc<Shared>,
    cursor: usize,
    vetted: usize,
    forbidden: Vec<Pattern>,
    allowed: Vec<Pattern>,
    status: Option<ExitStatus>,
    readers: Vec<JoinHandle<()>>,
    /// Released as soon as QEMU is reaped.
    slot: Option<Slot>,
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Running")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .field("command_line", &self.command_line)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// What an expectation made of one line.
enum Visit<T> {
    /// Not what we wait for: check it against the forbidden list.
    Other,
    /// Part of what we wait for (exempt from the forbidden list); keep going.
    Expected,
    /// Part of what we wait for, and the wait is over.
    Done(T),
}

#[allow(unsafe_code)]
fn set_parent_death_kill(cmd: &mut std::process::Command) {
    // SAFETY: the hook runs in the forked child before exec and only makes one raw
    // `prctl(PR_SET_PDEATHSIG)` system call: no allocation, no locks, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

impl Running {
    pub(crate) fn spawn(q: &Qemu) -> Result<Running, Error> {
        let name = q.name.clone().unwrap_or_else(default_name);
        let slot = Slot::acquire();
        let mut cmd = q.command(None);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // Also end QEMU if the test thread dies without dropping us (e.g. the test binary is
        // killed): a forgotten `count` guest would otherwise run forever.
        set_parent_death_kill(&mut cmd);
        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| q.spawn_error(e))?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        });
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(reader(out, shared.clone(), start, false));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(reader(err, shared.clone(), start, true));
        }
        Ok(Running {
            name,
            command_line: q.command_line(),
            stdin: child.stdin.take(),
            child,
            shared,
            cursor: 0,
            vetted: 0,
            forbidden: q.forbidden.clone(),
            allowed: q.allowed.clone(),
            status: None,
            readers,
            slot: Some(slot),
        })
    }

    /// The command line (shell-quoted).
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// QEMU's process id (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// All console lines so far.
    pub fn lines(&self) -> Vec<Line> {
        self.shared.lock().console.clone()
    }

    /// All lines QEMU wrote to its standard error so far.
    pub fn stderr_lines(&self) -> Vec<Line> {
        self.shared.lock().stderr.clone()
    }

    /// Where the transcript is saved: `target/qemu-logs/<name>.log`.
    pub fn log_path(&self) -> PathBuf {
        crate::target_dir()
            .join("qemu-logs")
            .join(format!("{}.log", crate::sanitize(&self.name)))
    }

    /// Type `text` into the console (QEMU's stdin). Note that Ctrl-A is QEMU's mux escape.
    pub fn send(&mut self, text: &str) -> Result<(), Error> {
        let res = match self.stdin.as_mut() {
            Some(s) => s.write_all(text.as_bytes()).and_then(|()| s.flush()),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        res.map_err(|e| Error::io("writing to QEMU's console", e))
    }

    /// Wait up to `timeout` ([scaled](crate::scaled)) for the next console line matching
    /// `pattern` and return it. Lines passed over on the way are checked against the
    /// forbidden list; the matching line itself is exempt (the test asked for it).
    pub fn expect(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<Line, Error> {
        let p = pattern.into();
        self.wait_for(p.to_string(), timeout, |l| {
            if p.matches(&l.text) {
                Visit::Done(l.clone())
            } else {
                Visit::Other
            }
        })
    }

    /// Like [`Running::expect`] for several patterns matched in any order, each by a
    /// different line; returns the matching lines in the order of `patterns`.
    pub fn expect_all(
        &mut self,
        patterns: &[Pattern],
        timeout: Duration,
    ) -> Result<Vec<Line>, Error> {
        let mut found: Vec<Option<Line>> = vec![None; patterns.len()];
        let what = patterns
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" and ");
        if patterns.is_empty() {
            return Ok(Vec::new());
        }
        self.wait_for(format!("all of {what}"), timeout, |l| {
            let hit = patterns
                .iter()
                .enumerate()
                .find(|(i, p)| found[*i].is_none() && p.matches(&l.text));
            match hit {
                None => Visit::Other,
                Some((i, _)) => {
                    found[i] = Some(l.clone());
                    if found.iter().all(Option::is_some) {
                        Visit::Done(found.iter().flatten().cloned().collect())
                    } else {
                        Visit::Expected
                    }
                }
            }
        })
    }

    /// Wait up to `timeout` ([scaled](crate::scaled)) until the console's unterminated last
    /// line (the text after the last newline, such as a shell prompt waiting for input)
    /// matches `pattern`, and return that text.
    ///
    /// A prompt that hypervisor lines cut short counts too: oxen starts each of its lines on
    /// a new line, which completes a guest's unterminated line (`console.rs`). When the
    /// lines not consumed yet end with a line matching `pattern` followed only by
    /// `(oxen)` lines, and nothing is left unterminated, that line is the prompt.
    ///
    /// [`Running::expect`] only sees complete lines, so it cannot wait for a prompt. Complete
    /// lines that arrive in the meantime are consumed and checked against the forbidden list.
    /// Once the prompt line is completed (e.g. by the echo of typed input) it is an ordinary
    /// console line again.
    pub fn expect_prompt(
        &mut self,
        pattern: impl Into<Pattern>,
        timeout: Duration,
    ) -> Result<String, Error> {
        let p = pattern.into();
        let what = format!("a prompt matching {p}");
        let timeout = crate::scaled(timeout);
        let deadline = Instant::now() + timeout;
        let shared = self.shared.clone();
        let mut st = shared.lock();
        let start = self.cursor;
        loop {
            self.vet_rest(&st)?;
            self.cursor = st.console.len();
            if !st.partial.is_empty() && p.matches(&st.partial) {
                return Ok(st.partial.clone());
            }
            if st.partial.is_empty()
                && let Some(prompt) = cut_prompt(&st.console[start.min(st.console.len())..], &p)
            {
                return Ok(prompt);
            }
            if st.console_eof {
                let status = self.reap(Instant::now() + Duration::from_secs(2));
                return Err(self.failure(
                    &st,
                    ErrorKind::Exited {
                        waiting_for: what,
                        status,
                    },
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure(
                    &st,
                    ErrorKind::Timeout {
                        waiting_for: what,
                        after: timeout,
                    },
                ));
            }
            st = shared
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Check every line received so far that no expectation consumed against the forbidden
    /// list (without consuming them).
    pub fn check(&mut self) -> Result<(), Error> {
        let shared = self.shared.clone();
        let st = shared.lock();
        self.vet_rest(&st)
    }

    /// Wait up to `timeout` ([scaled](crate::scaled)) for QEMU to exit, then check all
    /// remaining lines against the forbidden list and return the exit status.
    pub fn expect_exit(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let timeout = crate::scaled(timeout);
        let deadline = Instant::now() + timeout;
        let shared = self.shared.clone();
        let mut st = shared.lock();
        while !(st.console_eof && st.stderr_eof) {
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure(
                    &st,
                    ErrorKind::Timeout {
                        waiting_for: "QEMU to exit".into(),
                        after: timeout,
                    },
                ));
            }
            st = shared
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let status = match self.reap(deadline) {
            Some(s) => s,
            None => {
                return Err(self.failure(
                    &st,
                    ErrorKind::Timeout {
                        waiting_for: "QEMU to exit (console closed)".into(),
                        after: timeout,
                    },
                ));
            }
        };
        self.vet_rest(&st)?;
        Ok(status)
    }

    /// [`Running::expect_exit`] and check that the exit code is `code`.
    pub fn expect_exit_code(&mut self, code: i32, timeout: Duration) -> Result<(), Error> {
        let status = self.expect_exit(timeout)?;
        if status.code() == Some(code) {
            Ok(())
        } else {
            let shared = self.shared.clone();
            let st = shared.lock();
            Err(self.failure(
                &st,
                ErrorKind::ExitCode {
                    expected: code,
                    status,
                },
            ))
        }
    }

    /// Best effort, for a test that is about to fail on a timeout: switch oxen's console
    /// input to its debug keys (Ctrl-a three times, each doubled for QEMU's mux) and ask for
    /// the run queues, domains and event channels (`r`, `q`, `e`), so the transcript shows
    /// where things stood. Then give the input back to Dom0. Errors are ignored.
    pub fn dump_hypervisor_state(&mut self) {
        const SWITCH: &str = "\x01\x01\x01\x01\x01\x01";
        let seen = |q: &Self, from: usize, what: &str| {
            q.shared.lock().console[from..]
                .iter()
                .any(|l| l.text.contains(what))
        };
        let start = self.shared.lock().console.len();
        for _ in 0..4 {
            let from = self.shared.lock().console.len();
            if self.send(SWITCH).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
            if seen(self, from, "console input: oxen debug keys") {
                let _ = self.send("rqe");
                std::thread::sleep(Duration::from_secs(3));
                break;
            }
        }
        for _ in 0..4 {
            if seen(self, start, "console input: Dom0")
                && self
                    .shared
                    .lock()
                    .console
                    .last()
                    .is_some_and(|l| l.text.contains("console input: Dom0"))
            {
                break;
            }
            let _ = self.send(SWITCH);
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Kill QEMU now (its whole process group) and reap it. Idempotent.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
                // The group exists as long as QEMU is unreaped; ignore "no such process" from
                // members that already left.
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        self.slot = None;
        // With the whole group gone the pipes close; give the readers a moment to drain.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut st = self.shared.lock();
        while !(st.console_eof && st.stderr_eof) && Instant::now() < deadline {
            st = self
                .shared
                .cond
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let done = st.console_eof && st.stderr_eof;
        drop(st);
        if done {
            for r in self.readers.drain(..) {
                let _ = r.join();
            }
        }
    }

    /// Kill QEMU, check every line not yet checked against the forbidden list and return
    /// all console lines. Call this at the end of a test that does not wait for QEMU to exit,
    /// so that lines after the last expectation are vetted too.
    pub fn finish(mut self) -> Result<Vec<Line>, Error> {
        self.kill();
        let shared = self.shared.clone();
        let st = shared.lock();
        self.vet_rest(&st)?;
        Ok(st.console.clone())
    }

    /// Exit status if QEMU was reaped; `None` while it runs.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        if self.status.is_some() {
            self.slot = None;
        }
        self.status
    }

    /// Poll for QEMU's exit status until `deadline`.
    fn reap(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn forbidden_match(&self, text: &str) -> Option<&Pattern> {
        if self.allowed.iter().any(|a| a.matches(text)) {
            return None;
        }
        self.forbidden.iter().find(|f| f.matches(text))
    }

    /// Check lines `vetted..` of `st` (not consuming them).
    fn vet_rest(&mut self, st: &State) -> Result<(), Error> {
        while self.vetted < st.console.len() {
            let line = &st.console[self.vetted];
            self.vetted += 1;
            if let Some(p) = self.forbidden_match(&line.text) {
                let kind = ErrorKind::Forbidden {
                    line: line.clone(),
                    pattern: p.to_string(),
                };
                return Err(self.failure(st, kind));
            }
        }
        Ok(())
    }

    /// Walk new console lines through `visit` until it is done, the console closes or the
    /// (scaled) timeout passes.
    fn wait_for<T>(
        &mut self,
        what: String,
        timeout: Duration,
        mut visit: impl FnMut(&Line) -> Visit<T>,
    ) -> Result<T, Error> {
        let timeout = crate::scaled(timeout);
        let deadline = Instant::now() + timeout;
        let shared = self.shared.clone();
        let mut st = shared.lock();
        loop {
            while self.cursor < st.console.len() {
                let idx = self.cursor;
                self.cursor += 1;
                let line = &st.console[idx];
                let fresh = idx >= self.vetted;
                match visit(line) {
                    Visit::Done(v) => {
                        self.vetted = self.vetted.max(self.cursor);
                        return Ok(v);
                    }
                    Visit::Expected => self.vetted = self.vetted.max(self.cursor),
                    Visit::Other if fresh => {
                        self.vetted = self.cursor;
                        if let Some(p) = self.forbidden_match(&line.text) {
                            let kind = ErrorKind::Forbidden {
                                line: line.clone(),
                                pattern: p.to_string(),
                            };
                            return Err(self.failure(&st, kind));
                        }
                    }
                    Visit::Other => {}
                }
            }
            if st.console_eof {
                // Give QEMU a moment to finish its stderr (its own error messages) and to be
                // reaped, so the report shows both.
                let grace = Instant::now() + Duration::from_secs(2);
                while !st.stderr_eof && Instant::now() < grace {
                    st = shared
                        .cond
                        .wait_timeout(st, Duration::from_millis(50))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
                let status = self.reap(grace);
                return Err(self.failure(
                    &st,
                    ErrorKind::Exited {
                        waiting_for: what,
                        status,
                    },
                ));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.failure(
                    &st,
                    ErrorKind::Timeout {
                        waiting_for: what,
                        after: timeout,
                    },
                ));
            }
            st = shared
                .cond
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Build the error for `kind` with a report, saving the transcript.
    fn failure(&self, st: &State, kind: ErrorKind) -> Error {
        let log = self.save_log(st).ok();
        let n = st.console.len();
        let from = n.saturating_sub(REPORT_TAIL_LINES);
        Error::with_report(
            kind,
            Report {
                command_line: self.command_line.clone(),
                tail: st.console[from..].to_vec(),
                omitted: from,
                partial: st.partial.clone(),
                stderr: st.stderr.clone(),
                log,
            },
        )
    }

    /// Write the whole transcript (console and stderr, by time) to [`Running::log_path`].
    fn save_log(&self, st: &State) -> std::io::Result<PathBuf> {
        let path = self.log_path();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, transcript(&self.command_line, st, self.status))?;
        Ok(path)
    }
}

fn transcript(command_line: &str, st: &State, status: Option<ExitStatus>) -> String {
    let mut all: Vec<(Duration, String)> = st
        .console
        .iter()
        .map(|l| (l.at, l.to_string()))
        .chain(st.stderr.iter().map(|l| {
            let text = format!("[{:9.3}] [qemu stderr] {}", l.at.as_secs_f64(), l.text);
            (l.at, text)
        }))
        .collect();
    // Stable: console lines keep their order, stderr lines slot in by time.
    all.sort_by_key(|(at, _)| *at);
    let mut out = format!("# {command_line}\n");
    for (_, text) in all {
        out.push_str(&text);
        out.push('\n');
    }
    match status {
        Some(s) => out.push_str(&format!("# QEMU {s}\n")),
        None => out.push_str("# QEMU still running when the transcript was written\n"),
    }
    out
}

/// The default transcript name: the test's name (cargo's test threads are named after it).
pub(crate) fn default_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .map(|n| n.replace("::", "-"))
        .unwrap_or_else(|| format!("qemu-{}", std::process::id()))
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
        let shared = self.shared.clone();
        let st = shared.lock();
        let _ = self.save_log(&st);
    }
}
