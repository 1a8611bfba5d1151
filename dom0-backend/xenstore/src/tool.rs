//! The multi-call `xenstore` tool (Xen 4.17's `xenstore_client.c`):
//! `xenstore-read`, `-write`, `-rm`, `-exists`, `-list`, `-ls`, `-chmod`,
//! `-watch`, selected by `argv[0]` (`xenstore-<mode>`) or by the first
//! argument (`xenstore <mode>`).
//!
//! Output, messages and exit codes follow Xen's tool: values are printed
//! escaped (`sanitise_value`), `ls` indents one space per level and
//! truncates to the terminal width, failures print one `prog: message`
//! line and exit 1. Modes that touch several keys run in one transaction,
//! retried on `EAGAIN`, with output printed only after the commit.

use std::io::Write;

use clap::Parser;

use crate::client::{Client, Error};
use crate::perms::{Perm, PermKind};

/// Tool modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `chmod`
    Chmod,
    /// `exists`
    Exists,
    /// `list`
    List,
    /// `ls`
    Ls,
    /// `read`
    Read,
    /// `rm`
    Rm,
    /// `write`
    Write,
    /// `watch`
    Watch,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        Some(match s {
            "chmod" => Mode::Chmod,
            "exists" => Mode::Exists,
            "list" => Mode::List,
            "ls" => Mode::Ls,
            "read" => Mode::Read,
            "rm" => Mode::Rm,
            "write" => Mode::Write,
            "watch" => Mode::Watch,
            _ => return None,
        })
    }

    fn usage(self) -> &'static str {
        match self {
            Mode::Read => "[-h] [-p] [-s] [-R] key [...]",
            Mode::Write => "[-h] [-s] [-R] key value [...]",
            Mode::Rm => "[-h] [-s] [-t] key [...]",
            Mode::Exists | Mode::List => "[-h] [-p] [-s] key [...]",
            Mode::Ls => "[-h] [-f] [-p] [-s] [path]",
            Mode::Chmod => "[-h] [-u] [-r] [-s] key <mode [modes...]>",
            Mode::Watch => "[-h] [-n NR] key",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Chmod => "chmod",
            Mode::Exists => "exists",
            Mode::List => "list",
            Mode::Ls => "ls",
            Mode::Read => "read",
            Mode::Rm => "rm",
            Mode::Write => "write",
            Mode::Watch => "watch",
        }
    }
}

/// Options (getopt `hfspturn:R` of Xen's tool); which apply depends on the
/// mode.
#[derive(Parser, Debug)]
#[command(
    disable_help_flag = true,
    disable_version_flag = true,
    no_binary_name = true
)]
struct Opts {
    #[arg(short = 'h', long = "help")]
    help: bool,
    #[arg(short = 'f', long = "flat")]
    flat: bool,
    #[arg(short = 'p', long = "prefix")]
    prefix: bool,
    #[arg(short = 's')]
    socket: bool,
    #[arg(short = 't', long = "tidy")]
    tidy: bool,
    #[arg(short = 'u', long = "upto")]
    upto: bool,
    #[arg(short = 'r', long = "recurse")]
    recurse: bool,
    #[arg(short = 'n', long = "number")]
    number: Option<String>,
    #[arg(short = 'R', long = "raw")]
    raw: bool,
    args: Vec<String>,
}

/// A failure: the line to print (without the program name) and the code.
#[derive(Debug, PartialEq, Eq)]
pub struct Fail {
    /// Message.
    pub msg: String,
    /// Exit code.
    pub code: i32,
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail {
        msg: msg.into(),
        code: 1,
    }
}

/// Xen's `sanitise_value`: printable ASCII as is, `\t \n \r \\`, `\ooo`
/// for bytes below 8, `\xNN` for other non-printables.
pub fn sanitise(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len());
    for &c in v {
        match c {
            b'\\' => s.push_str("\\\\"),
            b' '..=b'~' => s.push(c as char),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0..=7 => s.push_str(&format!("\\{c:03o}")),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

/// Xen's `unsanitise_value`: the inverse escapes (`\xN`/`\xNN`, `\o`..`\ooo`,
/// other `\c` give `c`, a trailing `\` gives a NUL byte).
pub fn unsanitise(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let Some(&e) = b.get(i) else {
            out.push(0);
            break;
        };
        i += 1;
        match e {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let n = b[i..]
                    .iter()
                    .take(2)
                    .take_while(|c| c.is_ascii_hexdigit())
                    .count();
                if n == 0 {
                    out.push(b'x');
                } else {
                    let v = u8::from_str_radix(&s[i..i + n], 16).unwrap_or(0);
                    out.push(v);
                    i += n;
                }
            }
            b'0'..=b'7' => {
                let start = i - 1;
                let n = b[start..]
                    .iter()
                    .take(3)
                    .take_while(|c| (b'0'..=b'7').contains(c))
                    .count();
                let v = u32::from_str_radix(&s[start..start + n], 8).unwrap_or(0);
                out.push(v as u8);
                i = start + n;
            }
            other => out.push(other),
        }
    }
    out
}

/// What `ls` needs from the store (a [`Client`] in the tool, fakes in tests).
pub trait LsSource {
    /// Children of `path`.
    fn directory(&mut self, path: &str) -> Result<Vec<String>, Error>;
    /// Value of `path`.
    fn read(&mut self, path: &str) -> Result<Vec<u8>, Error>;
    /// ACL of `path`.
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, Error>;
}

impl LsSource for Client {
    fn directory(&mut self, path: &str) -> Result<Vec<String>, Error> {
        Client::directory(self, 0, path)
    }
    fn read(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        Client::read(self, 0, path)
    }
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, Error> {
        Client::get_perms(self, 0, path)
    }
}

/// Layout of `ls` output.
#[derive(Clone, Copy, Debug)]
pub struct LsFormat {
    /// Line width (`ws_col - 2` on a terminal, else 80; huge with `-f`).
    pub max_width: i64,
    /// Column the perms are padded to with `-p` (60; 0 with `-f`).
    pub desired_width: i64,
    /// `-f`: full paths, no indentation.
    pub whole_path: bool,
    /// `-p`: append perms.
    pub show_perms: bool,
}

const TAG_LEN: i64 = 8; // strlen(" = \"...\"")
const STRING_MAX: usize = 3072 + 1024;

/// `printf("%.*s", prec, s)`: a negative precision means no limit.
fn prec(s: &str, p: i64) -> &str {
    if p < 0 {
        return s;
    }
    let n = (p as usize).min(s.len());
    // Sanitised strings and node names are ASCII.
    s.get(..n).unwrap_or(s)
}

/// Xen's `do_ls`: appends the listing of `path`'s subtree to `out`, and
/// warnings to `warn`. An unreadable top directory is an error.
pub fn do_ls(
    src: &mut dyn LsSource,
    path: &str,
    depth: i64,
    f: &LsFormat,
    out: &mut Vec<u8>,
    warn: &mut Vec<String>,
) -> Result<(), Fail> {
    let children = match src.directory(path) {
        Ok(c) => c,
        Err(e) if depth > 0 && e.errno() == 2 => return Ok(()),
        Err(e) => return Err(fail(format!("xs_directory ({path}): {e}"))),
    };
    for name in children {
        let newpath = format!("{path}{}{name}", if path.ends_with('/') { "" } else { "/" });
        let mut linewid: i64 = 0;
        if f.whole_path {
            out.extend_from_slice(newpath.as_bytes());
        } else {
            for _ in 0..depth {
                out.push(b' ');
            }
            linewid = depth;
            let shown = prec(&name, f.max_width - TAG_LEN - linewid);
            out.extend_from_slice(shown.as_bytes());
            linewid += shown.len() as i64;
        }
        let val = if newpath.len() < STRING_MAX {
            src.read(&newpath).ok()
        } else {
            None
        };
        match val {
            None => out.extend_from_slice(b":\n"),
            Some(v) => {
                let san = sanitise(&v);
                if f.max_width < linewid + v.len() as i64 + TAG_LEN {
                    let shown = prec(&san, f.max_width - TAG_LEN - linewid);
                    out.extend_from_slice(format!(" = \"{shown}\\...\"").as_bytes());
                } else {
                    let s = format!(" = \"{san}\"");
                    linewid += s.len() as i64;
                    out.extend_from_slice(s.as_bytes());
                    if f.show_perms {
                        out.push(b' ');
                        linewid += 1;
                        while linewid < f.desired_width.min(f.max_width) {
                            out.push(if linewid & 1 == 1 { b'.' } else { b' ' });
                            linewid += 1;
                        }
                    }
                }
            }
        }
        if f.show_perms {
            match src.get_perms(&newpath) {
                Err(e) => warn.push(format!("\ncould not access permissions for {name}: {e}")),
                Ok(p) => {
                    let list: Vec<String> = p.iter().map(Perm::to_string).collect();
                    out.extend_from_slice(format!("  ({})", list.join(",")).as_bytes());
                }
            }
        }
        out.push(b'\n');
        do_ls(src, &newpath, depth + 1, f, out, warn)?;
    }
    Ok(())
}

fn terminal_width() -> Option<i64> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    Some(i64::from(ws.ws_col) - 2)
}

struct Run<'a> {
    mode: Mode,
    o: &'a Opts,
    keys: &'a [String],
    prog: &'a str,
}

/// Result of one attempt inside a transaction: the output, then the exit
/// code (0 commit, 1 abort).
type Attempt = Result<(Vec<u8>, i32), Fail>;

impl Run<'_> {
    fn warn(&self, out: &mut Vec<String>, msg: String) {
        out.push(format!("{}: {msg}", self.prog));
    }

    fn perform(&self, xs: &mut Client, tx: u32, warns: &mut Vec<String>) -> Attempt {
        let mut out = Vec::new();
        let keys = self.keys;
        match self.mode {
            Mode::Read => {
                for k in keys {
                    let Ok(v) = xs.read(tx, k) else {
                        self.warn(warns, format!("couldn't read path {k}"));
                        return Ok((out, 1));
                    };
                    if self.o.prefix {
                        out.extend_from_slice(format!("{k}: ").as_bytes());
                    }
                    if self.o.raw {
                        out.extend_from_slice(&v);
                    } else {
                        out.extend_from_slice(sanitise(&v).as_bytes());
                        out.push(b'\n');
                    }
                }
            }
            Mode::Write => {
                for pair in keys.chunks(2) {
                    let v = if self.o.raw {
                        pair[1].as_bytes().to_vec()
                    } else {
                        unsanitise(&pair[1])
                    };
                    if xs.write(tx, &pair[0], &v).is_err() {
                        self.warn(warns, format!("could not write path {}", pair[0]));
                        return Ok((out, 1));
                    }
                }
            }
            Mode::Rm => {
                for k in keys {
                    if xs.rm(tx, k).is_err() {
                        self.warn(warns, format!("could not remove path {k}"));
                        return Ok((out, 1));
                    }
                    if self.o.tidy {
                        let mut p = k.clone();
                        while let Some(i) = p.rfind('/') {
                            p.truncate(i);
                            let empty_value = xs.read(tx, &p).is_ok_and(|v| v.is_empty());
                            if !empty_value || !xs.directory(tx, &p).is_ok_and(|l| l.is_empty()) {
                                break;
                            }
                            if xs.rm(tx, &p).is_err() {
                                self.warn(warns, format!("could not remove path {p}"));
                                return Ok((out, 1));
                            }
                        }
                    }
                }
            }
            Mode::Exists => {
                for k in keys {
                    if xs.read(tx, k).is_err() {
                        return Ok((out, 1));
                    }
                }
            }
            Mode::List => {
                for k in keys {
                    let Ok(list) = xs.directory(tx, k) else {
                        self.warn(warns, format!("could not list path {k}"));
                        return Ok((out, 1));
                    };
                    for c in list {
                        if self.o.prefix {
                            out.extend_from_slice(format!("{k}/").as_bytes());
                        }
                        out.extend_from_slice(format!("{c}\n").as_bytes());
                    }
                }
            }
            Mode::Chmod => {
                let path = &keys[0];
                let mut acl = Vec::new();
                for spec in &keys[1..] {
                    let kind = spec
                        .bytes()
                        .next()
                        .and_then(PermKind::from_letter)
                        .ok_or_else(|| {
                            fail(format!(
                                "Invalid permission specification: '{}'",
                                spec.chars().next().unwrap_or(' ')
                            ))
                        })?;
                    let id = crate::wire::atoi(&spec.as_bytes()[1..]) as i32 as u16;
                    acl.push(Perm::new(id, kind));
                }
                self.chmod(xs, tx, path, &acl, self.o.upto, self.o.recurse)?;
            }
            Mode::Ls | Mode::Watch => {}
        }
        Ok((out, 0))
    }

    fn chmod(
        &self,
        xs: &mut Client,
        tx: u32,
        path: &str,
        acl: &[Perm],
        upto: bool,
        recurse: bool,
    ) -> Result<(), Fail> {
        if path.is_empty() {
            return Ok(());
        }
        xs.set_perms(tx, path, acl).map_err(|e| {
            fail(format!(
                "Error occurred setting permissions on '{path}': {e}"
            ))
        })?;
        if upto {
            let i = path
                .rfind('/')
                .ok_or_else(|| fail(format!("Unable to locate path separator '/' in '{path}'")))?;
            self.chmod(xs, tx, &path[..i], acl, true, false)?;
        }
        if recurse && let Ok(list) = xs.directory(tx, path) {
            for c in list {
                self.chmod(xs, tx, &format!("{path}/{c}"), acl, false, true)?;
            }
        }
        Ok(())
    }
}

/// Runs the tool on `argv` (`argv[0]` included); returns the exit code.
/// Output goes to `stdout`, messages to `stderr`.
pub fn run(argv: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    match run_inner(argv, stdout, stderr) {
        Ok(code) => code,
        Err(f) => {
            let prog = prog_name(argv);
            let _ = writeln!(stderr, "{prog}: {}", f.msg);
            f.code
        }
    }
}

fn prog_name(argv: &[String]) -> String {
    let a0 = argv.first().map(String::as_str).unwrap_or("xenstore");
    a0.rsplit('/').next().unwrap_or(a0).to_string()
}

fn run_inner(argv: &[String], stdout: &mut dyn Write, stderr: &mut dyn Write) -> Result<i32, Fail> {
    let a0 = argv.first().cloned().unwrap_or_default();
    let prog = prog_name(argv);
    let (mode, rest, incl_mode) = if let Some(m) = prog.strip_prefix("xenstore-") {
        (
            Mode::parse(m).ok_or_else(|| fail(format!("unknown mode {m}\n")))?,
            &argv[1.min(argv.len())..],
            false,
        )
    } else if argv.len() < 2 {
        return Err(fail(format!("Usage: {a0} <mode> [-h] [...]")));
    } else {
        (
            Mode::parse(&argv[1]).ok_or_else(|| fail(format!("unknown mode {}\n", argv[1])))?,
            &argv[2..],
            true,
        )
    };
    let usage = || {
        fail(format!(
            "Usage: {a0} {}{}",
            if incl_mode {
                format!("{} ", mode.name())
            } else {
                String::new()
            },
            mode.usage()
        ))
    };
    let o = Opts::try_parse_from(rest).map_err(|_| usage())?;
    let allowed = match mode {
        Mode::Ls => !(o.tidy || o.upto || o.recurse || o.number.is_some() || o.raw),
        Mode::Read => !(o.flat || o.tidy || o.upto || o.recurse || o.number.is_some()),
        Mode::List => !(o.flat || o.tidy || o.upto || o.recurse || o.number.is_some() || o.raw),
        Mode::Write => !(o.flat || o.prefix || o.tidy || o.upto || o.recurse || o.number.is_some()),
        Mode::Rm => !(o.flat || o.prefix || o.upto || o.recurse || o.number.is_some() || o.raw),
        Mode::Exists => {
            !(o.flat || o.prefix || o.tidy || o.upto || o.recurse || o.number.is_some() || o.raw)
        }
        Mode::Chmod => !(o.flat || o.prefix || o.tidy || o.number.is_some() || o.raw),
        Mode::Watch => !(o.flat || o.prefix || o.tidy || o.upto || o.recurse || o.raw),
    };
    if o.help || !allowed {
        return Err(usage());
    }
    let keys = &o.args[..];
    match mode {
        Mode::Ls => {}
        Mode::Write if keys.len() % 2 == 1 || keys.is_empty() => return Err(usage()),
        _ if keys.is_empty() => return Err(usage()),
        _ => {}
    }
    let transaction = match mode {
        Mode::Read => keys.len() > 1,
        Mode::Write => keys.len() > 2,
        Mode::Ls | Mode::Watch => false,
        _ => true,
    };
    let mut xs = Client::open().map_err(|e| fail(format!("xs_open: {e}")))?;
    let run = Run {
        mode,
        o: &o,
        keys,
        prog: &prog,
    };

    if mode == Mode::Ls {
        let fmt = LsFormat {
            max_width: if o.flat {
                i64::from(i32::MAX / 2)
            } else {
                terminal_width().unwrap_or(80)
            },
            desired_width: if o.flat { 0 } else { 60 },
            whole_path: o.flat,
            show_perms: o.prefix,
        };
        let roots: Vec<String> = if keys.is_empty() {
            vec!["/".into()]
        } else {
            keys.to_vec()
        };
        for r in roots {
            let mut out = Vec::new();
            let mut warns = Vec::new();
            let res = do_ls(&mut xs, &r, 0, &fmt, &mut out, &mut warns);
            let _ = stdout.write_all(&out);
            for w in warns {
                let _ = writeln!(stderr, "{prog}: {w}");
            }
            res?;
        }
        let _ = stdout.flush();
        return Ok(0);
    }
    if mode == Mode::Watch {
        let max: i64 = o
            .number
            .as_deref()
            .map_or(-1, |n| crate::wire::atoi(n.as_bytes()));
        for k in keys {
            xs.watch(k, k)
                .map_err(|_| fail(format!("Unable to add watch on {k}\n")))?;
        }
        let mut count = 0;
        while max == -1 || count < max {
            match xs.read_watch() {
                Ok((p, _)) => {
                    let _ = writeln!(stdout, "{p}");
                    let _ = stdout.flush();
                }
                Err(e) => return Err(fail(format!("xs_read_watch: {e}"))),
            }
            count += 1;
        }
        return Ok(0);
    }
    loop {
        let tx = if transaction {
            xs.transaction_start()
                .map_err(|_| fail("couldn't start transaction"))?
        } else {
            0
        };
        let mut warns = Vec::new();
        let (out, code) = run.perform(&mut xs, tx, &mut warns)?;
        for w in &warns {
            let _ = writeln!(stderr, "{w}");
        }
        if transaction {
            match xs.transaction_end(tx, code == 0) {
                Ok(()) => {}
                Err(Error::Again) if code == 0 => continue,
                Err(_) => return Err(fail("couldn't end transaction")),
            }
        }
        let _ = stdout.write_all(&out);
        let _ = stdout.flush();
        return Ok(code);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use xen_abi::xenstore::XsError;

    #[test]
    fn sanitise_like_xen() {
        assert_eq!(sanitise(b"plain value"), "plain value");
        assert_eq!(sanitise(b"a\tb\nc\rd\\e"), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(
            sanitise(&[0, 7, 8, 0x7f, 0xff]),
            "\\000\\007\\x08\\x7f\\xff"
        );
    }

    #[test]
    fn unsanitise_like_xen() {
        assert_eq!(unsanitise("a\\tb\\n\\\\"), b"a\tb\n\\");
        assert_eq!(unsanitise("\\x41\\x4g"), b"A\x04g");
        assert_eq!(unsanitise("\\101\\0x"), b"A\0x");
        assert_eq!(unsanitise("\\q"), b"q");
        assert_eq!(unsanitise("end\\"), b"end\0");
        assert_eq!(unsanitise("\\xz"), b"xz");
        for v in [&b"\x00\x01\xfe\\\t"[..], b"hello"] {
            assert_eq!(unsanitise(&sanitise(v)), v);
        }
    }

    struct Fake(BTreeMap<String, (Vec<u8>, Vec<Perm>)>);

    impl LsSource for Fake {
        fn directory(&mut self, path: &str) -> Result<Vec<String>, Error> {
            if !self.0.contains_key(path) {
                return Err(Error::Xs(XsError::ENOENT));
            }
            let pre = if path == "/" {
                "/".to_string()
            } else {
                format!("{path}/")
            };
            Ok(self
                .0
                .keys()
                .filter_map(|k| {
                    k.strip_prefix(&pre)
                        .filter(|r| !r.is_empty() && !r.contains('/'))
                        .map(str::to_string)
                })
                .collect())
        }
        fn read(&mut self, path: &str) -> Result<Vec<u8>, Error> {
            self.0
                .get(path)
                .map(|v| v.0.clone())
                .ok_or(Error::Xs(XsError::ENOENT))
        }
        fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, Error> {
            self.0
                .get(path)
                .map(|v| v.1.clone())
                .ok_or(Error::Xs(XsError::ENOENT))
        }
    }

    fn fake() -> Fake {
        let n0 = vec![Perm::parse("n0").unwrap()];
        let r1 = vec![Perm::parse("n0").unwrap(), Perm::parse("r1").unwrap()];
        let mut m = BTreeMap::new();
        m.insert("/".to_string(), (vec![], n0.clone()));
        m.insert("/local".to_string(), (vec![], n0.clone()));
        m.insert("/local/domain".to_string(), (vec![], n0.clone()));
        m.insert("/local/domain/1".to_string(), (vec![], r1.clone()));
        m.insert("/local/domain/1/name".to_string(), (b"domu".to_vec(), r1));
        m.insert("/tool".to_string(), (b"tab\there".to_vec(), n0));
        Fake(m)
    }

    fn ls(f: &LsFormat, root: &str) -> String {
        let mut out = Vec::new();
        do_ls(&mut fake(), root, 0, f, &mut out, &mut Vec::new()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ls_tree_view() {
        let f = LsFormat {
            max_width: 80,
            desired_width: 60,
            whole_path: false,
            show_perms: false,
        };
        assert_eq!(
            ls(&f, "/"),
            "local = \"\"\n domain = \"\"\n  1 = \"\"\n   name = \"domu\"\ntool = \"tab\\there\"\n"
        );
        assert_eq!(ls(&f, "/local/domain"), "1 = \"\"\n name = \"domu\"\n");
    }

    #[test]
    fn ls_full_paths_with_perms_like_the_sample() {
        let f = LsFormat {
            max_width: i64::from(i32::MAX / 2),
            desired_width: 0,
            whole_path: true,
            show_perms: true,
        };
        assert_eq!(
            ls(&f, "/local"),
            "/local/domain = \"\"   (n0)\n/local/domain/1 = \"\"   (n0,r1)\n/local/domain/1/name = \"domu\"   (n0,r1)\n"
        );
    }

    #[test]
    fn ls_perms_padding_and_truncation() {
        let f = LsFormat {
            max_width: 80,
            desired_width: 60,
            whole_path: false,
            show_perms: true,
        };
        let out = ls(&f, "/local/domain/1");
        // "name" (4) + ` = "domu"` (9) = 13, space → 14, pad to 60.
        let line = out.lines().next().unwrap();
        assert!(line.starts_with("name = \"domu\"  . . "), "{line}");
        assert!(line.ends_with(".  (n0,r1)"), "{line}");
        assert_eq!(line.len(), 60 + "  (n0,r1)".len());
        // Narrow terminal: the value is cut with \...
        let f = LsFormat {
            max_width: 15,
            desired_width: 60,
            whole_path: false,
            show_perms: false,
        };
        assert_eq!(ls(&f, "/local/domain/1"), "name = \"dom\\...\"\n");
        // ws_col 0 (serial console): negative precision, everything gets \...
        let f = LsFormat {
            max_width: -2,
            desired_width: 60,
            whole_path: false,
            show_perms: false,
        };
        assert_eq!(ls(&f, "/local/domain/1"), "name = \"domu\\...\"\n");
    }

    #[test]
    fn ls_missing_root_is_an_error() {
        let f = LsFormat {
            max_width: 80,
            desired_width: 60,
            whole_path: false,
            show_perms: false,
        };
        let e = do_ls(
            &mut fake(),
            "/nope",
            0,
            &f,
            &mut Vec::new(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.msg, "xs_directory (/nope): No such file or directory");
    }

    #[test]
    fn usage_errors() {
        let run1 = |args: &[&str]| {
            let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let mut out = Vec::new();
            let mut err = Vec::new();
            let code = run(&argv, &mut out, &mut err);
            (code, String::from_utf8(err).unwrap())
        };
        assert_eq!(
            run1(&["/usr/bin/xenstore-read"]),
            (
                1,
                "xenstore-read: Usage: /usr/bin/xenstore-read [-h] [-p] [-s] [-R] key [...]\n"
                    .into()
            )
        );
        assert_eq!(run1(&["xenstore", "write", "k"]).0, 1);
        assert!(
            run1(&["xenstore", "write", "k"])
                .1
                .contains("Usage: xenstore write [-h]")
        );
        assert_eq!(
            run1(&["xenstore", "bogus"]),
            (1, "xenstore: unknown mode bogus\n\n".into())
        );
        assert_eq!(run1(&["xenstore-read", "-t", "/x"]).0, 1);
        assert_eq!(run1(&["xenstore"]).0, 1);
    }
}
