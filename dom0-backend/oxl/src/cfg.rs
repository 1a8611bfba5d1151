//! xl.cfg parsing: the grammar of Xen's libxlu (`key = value` settings separated by newlines or
//! `;`, quoted strings with C escapes, numbers, `[ ... ]` lists spanning lines, `#` comments,
//! `key += value`) and the keys oxl understands, turned into a [`DomainConfig`].
//!
//! Invariants: parsing never panics on any input; every error names the source (file name or
//! `command line`), the line and, when about a setting, its key. A later setting of a key
//! replaces an earlier one (so `xl create cfg key=value` overrides the file). Unknown keys are
//! errors. Atoms are kept as text, as libxlu does, and converted when a key is looked up.

use std::fmt;

/// A value as written: a string or number atom (kept as text), or a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A quoted string (escapes resolved) or a number token.
    Atom(String),
    /// `[ v, v, ... ]`.
    List(Vec<Value>),
}

/// One `key = value` (or `key += value`) setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: Value,
    /// 1-based line of the value.
    pub line: u32,
    /// `+=` (append to a list / string).
    pub append: bool,
}

/// A parse or validation error: `source:line: message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CfgError {
    pub source: String,
    pub line: u32,
    pub msg: String,
}

impl fmt::Display for CfgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.source, self.msg)
        } else {
            write!(f, "{}:{}: {}", self.source, self.line, self.msg)
        }
    }
}

impl std::error::Error for CfgError {}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Number(String),
    Str(String),
    Comma,
    Open,
    Close,
    Assign,
    AddAssign,
    Semi,
    Newline,
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: u32,
    source: &'a str,
}

impl<'a> Lexer<'a> {
    fn err(&self, line: u32, msg: String) -> CfgError {
        CfgError {
            source: self.source.to_string(),
            line,
            msg,
        }
    }

    /// Next token with the line it starts on; `None` at the end of input.
    fn next(&mut self) -> Result<Option<(Tok, u32)>, CfgError> {
        loop {
            let Some(&c) = self.src.get(self.pos) else {
                return Ok(None);
            };
            let line = self.line;
            match c {
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'\n' => {
                    self.pos += 1;
                    self.line += 1;
                    return Ok(Some((Tok::Newline, line)));
                }
                b'#' => {
                    while self.src.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                b',' => return Ok(Some((self.single(Tok::Comma), line))),
                b'[' => return Ok(Some((self.single(Tok::Open), line))),
                b']' => return Ok(Some((self.single(Tok::Close), line))),
                b'=' => return Ok(Some((self.single(Tok::Assign), line))),
                b';' => return Ok(Some((self.single(Tok::Semi), line))),
                b'+' if self.src.get(self.pos + 1) == Some(&b'=') => {
                    self.pos += 2;
                    return Ok(Some((Tok::AddAssign, line)));
                }
                b'\'' | b'"' => return self.string(c).map(|s| Some((Tok::Str(s), line))),
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let w = self.word(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.');
                    return Ok(Some((Tok::Ident(w), line)));
                }
                c if c.is_ascii_digit() => {
                    let w = self.word(|c| c.is_ascii_alphanumeric() || c == b'_');
                    return Ok(Some((Tok::Number(w), line)));
                }
                _ => {
                    let end = self.src[self.pos..]
                        .iter()
                        .position(|c| c.is_ascii_whitespace())
                        .map_or(self.src.len(), |n| self.pos + n);
                    let near = String::from_utf8_lossy(&self.src[self.pos..end]).into_owned();
                    return Err(self.err(
                        line,
                        format!("config parsing error near `{near}': lexical error"),
                    ));
                }
            }
        }
    }

    fn single(&mut self, t: Tok) -> Tok {
        self.pos += 1;
        t
    }

    fn word(&mut self, ok: impl Fn(u8) -> bool) -> String {
        let start = self.pos;
        while self.src.get(self.pos).is_some_and(|&c| ok(c)) {
            self.pos += 1;
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    /// A quoted string: no raw newline inside; backslash escapes as in C.
    fn string(&mut self, quote: u8) -> Result<String, CfgError> {
        let line = self.line;
        let unterminated = |l: &Self| {
            l.err(
                line,
                "config parsing error: unterminated quoted string".into(),
            )
        };
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.src.get(self.pos) else {
                return Err(unterminated(self));
            };
            self.pos += 1;
            match c {
                b'\n' => return Err(unterminated(self)),
                c if c == quote => break,
                b'\\' => {
                    let Some(&e) = self.src.get(self.pos) else {
                        return Err(unterminated(self));
                    };
                    self.pos += 1;
                    let byte = match e {
                        b'"' | b'\'' | b'\\' => e,
                        b'a' => 0x07,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'v' => 0x0b,
                        b'x' => self.numeric_escape(16, 1, 2, line)?,
                        b'0'..=b'7' => {
                            self.pos -= 1;
                            self.numeric_escape(8, 1, 3, line)?
                        }
                        _ => {
                            return Err(self.err(
                                line,
                                "config parsing error: invalid character after backslash in quoted string".into(),
                            ));
                        }
                    };
                    out.push(byte);
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| {
            self.err(
                line,
                "config parsing error: quoted string is not UTF-8".into(),
            )
        })
    }

    fn numeric_escape(
        &mut self,
        radix: u32,
        min: usize,
        max: usize,
        line: u32,
    ) -> Result<u8, CfgError> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            let Some(d) = self
                .src
                .get(self.pos)
                .and_then(|&c| (c as char).to_digit(radix))
            else {
                break;
            };
            v = v * radix + d;
            self.pos += 1;
            n += 1;
        }
        if n < min || v > 0xff {
            return Err(self.err(
                line,
                "config parsing error: invalid numerical character escape in quoted string".into(),
            ));
        }
        Ok(v as u8)
    }
}

/// Parses a whole configuration text into its settings, in order.
pub fn parse(source: &str, text: &str) -> Result<Vec<Setting>, CfgError> {
    let mut lx = Lexer {
        src: text.as_bytes(),
        pos: 0,
        line: 1,
        source,
    };
    let mut toks = Vec::new();
    while let Some(t) = lx.next()? {
        toks.push(t);
    }
    let mut p = Parser {
        toks,
        pos: 0,
        source,
        last_line: lx.line,
    };
    p.file()
}

struct Parser<'a> {
    toks: Vec<(Tok, u32)>,
    pos: usize,
    source: &'a str,
    last_line: u32,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn line(&self) -> u32 {
        self.toks.get(self.pos).map_or(self.last_line, |(_, l)| *l)
    }

    fn syntax(&self) -> CfgError {
        let near = match self.peek() {
            None => "end of file".to_string(),
            Some(Tok::Newline) => "<newline>".to_string(),
            Some(t) => format!("`{}'", tok_text(t)),
        };
        CfgError {
            source: self.source.to_string(),
            line: self.line(),
            msg: format!("config parsing error near {near}: syntax error"),
        }
    }

    fn file(&mut self) -> Result<Vec<Setting>, CfgError> {
        let mut out = Vec::new();
        while let Some(t) = self.peek().cloned() {
            match t {
                Tok::Newline | Tok::Semi => self.pos += 1,
                Tok::Ident(key) => {
                    self.pos += 1;
                    let append = match self.peek() {
                        Some(Tok::Assign) => false,
                        Some(Tok::AddAssign) => true,
                        _ => return Err(self.syntax()),
                    };
                    self.pos += 1;
                    let line = self.line();
                    let value = self.value()?;
                    match self.peek() {
                        None | Some(Tok::Newline) | Some(Tok::Semi) => {}
                        _ => return Err(self.syntax()),
                    }
                    out.push(Setting {
                        key,
                        value,
                        line,
                        append,
                    });
                }
                _ => return Err(self.syntax()),
            }
        }
        Ok(out)
    }

    fn skip_newlines(&mut self) {
        while self.peek() == Some(&Tok::Newline) {
            self.pos += 1;
        }
    }

    fn value(&mut self) -> Result<Value, CfgError> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) | Some(Tok::Number(s)) => {
                self.pos += 1;
                Ok(Value::Atom(s))
            }
            Some(Tok::Open) => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_newlines();
                loop {
                    if self.peek() == Some(&Tok::Close) {
                        self.pos += 1;
                        return Ok(Value::List(items));
                    }
                    items.push(self.value()?);
                    self.skip_newlines();
                    match self.peek() {
                        Some(Tok::Comma) => {
                            self.pos += 1;
                            self.skip_newlines();
                        }
                        Some(Tok::Close) => {}
                        _ => return Err(self.syntax()),
                    }
                }
            }
            _ => Err(self.syntax()),
        }
    }
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Number(s) => s.clone(),
        Tok::Str(s) => format!("\"{s}\""),
        Tok::Comma => ",".into(),
        Tok::Open => "[".into(),
        Tok::Close => "]".into(),
        Tok::Assign => "=".into(),
        Tok::AddAssign => "+=".into(),
        Tok::Semi => ";".into(),
        Tok::Newline => "<newline>".into(),
    }
}

/// `strtol(s, 0)` as libxlu uses it: decimal, `0x` hex, leading-`0` octal, optional sign.
pub fn parse_number(s: &str) -> Option<i64> {
    let t = s.trim();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let v = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()?
    } else if t.len() > 1 && t.starts_with('0') {
        i64::from_str_radix(&t[1..], 8).ok()?
    } else {
        t.parse::<i64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// What to do when the guest shuts down for a given reason (xl.cfg `on_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Destroy,
    Restart,
    RenameRestart,
    Preserve,
    CoredumpDestroy,
    CoredumpRestart,
    SoftReset,
}

impl Action {
    /// xl's names (`action_on_shutdown_names`).
    pub fn name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::RenameRestart => "rename-restart",
            Action::Preserve => "preserve",
            Action::CoredumpDestroy => "coredump-destroy",
            Action::CoredumpRestart => "coredump-restart",
            Action::SoftReset => "soft-reset",
        }
    }

    /// libxl's JSON enum spelling (`xl list -l`).
    pub fn json_name(self) -> &'static str {
        match self {
            Action::Destroy => "destroy",
            Action::Restart => "restart",
            Action::RenameRestart => "restart_rename",
            Action::Preserve => "preserve",
            Action::CoredumpDestroy => "coredump_destroy",
            Action::CoredumpRestart => "coredump_restart",
            Action::SoftReset => "soft_reset",
        }
    }

    fn from_name(s: &str) -> Option<Action> {
        [
            Action::Destroy,
            Action::Restart,
            Action::RenameRestart,
            Action::Preserve,
            Action::CoredumpDestroy,
            Action::CoredumpRestart,
            Action::SoftReset,
        ]
        .into_iter()
        .find(|a| a.name() == s)
    }
}

/// A vCPU affinity setting as written: the same CPU list for every vCPU (`cpus = "0-3"`), or
/// one list per vCPU (`cpus = ["0", "1-2"]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuSpec {
    All(String),
    PerVcpu(Vec<String>),
}

impl CpuSpec {
    /// The CPU list of vCPU `v` (`None`: the vCPU keeps the default, all CPUs).
    pub fn for_vcpu(&self, v: usize) -> Option<&str> {
        match self {
            CpuSpec::All(s) => Some(s),
            CpuSpec::PerVcpu(l) => l.get(v).map(String::as_str),
        }
    }
}

/// Parses an xl CPU list (`all`, or comma-separated `N`, `N-M`, `^N`, `^N-M`) into a bitmap of
/// `nr_cpus` bits (bit j of byte i = CPU 8i+j).
pub fn parse_cpulist(spec: &str, nr_cpus: u32) -> Result<Vec<u8>, String> {
    let mut map = vec![0u8; (nr_cpus as usize).div_ceil(8).max(1)];
    let set = |map: &mut [u8], c: u32, on: bool| {
        if on {
            map[c as usize / 8] |= 1 << (c % 8);
        } else {
            map[c as usize / 8] &= !(1 << (c % 8));
        }
    };
    for part in spec.split(',').map(str::trim) {
        if part == "all" {
            (0..nr_cpus).for_each(|c| set(&mut map, c, true));
            continue;
        }
        let (on, range) = match part.strip_prefix('^') {
            Some(r) => (false, r),
            None => (true, part),
        };
        let num = |s: &str| {
            s.trim().parse::<u32>().map_err(|_| {
                format!("invalid CPU list \"{spec}\": \"{part}\" is not a CPU or range")
            })
        };
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(range)?, num(range)?),
        };
        if a > b {
            return Err(format!(
                "invalid CPU list \"{spec}\": range {a}-{b} is backwards"
            ));
        }
        if b >= nr_cpus {
            return Err(format!(
                "invalid CPU list \"{spec}\": CPU {b} does not exist (the host has {nr_cpus})"
            ));
        }
        (a..=b).for_each(|c| set(&mut map, c, on));
    }
    if map.iter().all(|&b| b == 0) {
        return Err(format!("invalid CPU list \"{spec}\": no CPU left"));
    }
    Ok(map)
}

/// A domain configuration, as xl's `parse_config_data` leaves it for the keys oxl supports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    pub name: String,
    /// Always "pvh" on Arm (`pv` is converted as libxl does).
    pub kernel: String,
    pub ramdisk: Option<String>,
    /// Kernel command line (`cmdline`, else `root=` + `extra`).
    pub cmdline: Option<String>,
    /// Initial memory (`memory`), KiB.
    pub target_memkb: u64,
    /// Maximum memory (`maxmem`, default = memory), KiB.
    pub max_memkb: u64,
    /// vCPUs online at boot.
    pub vcpus: u32,
    /// vCPUs allocated (`maxvcpus`, default = vcpus).
    pub max_vcpus: u32,
    pub on_poweroff: Action,
    pub on_reboot: Action,
    pub on_watchdog: Action,
    pub on_crash: Action,
    pub uuid: Option<[u8; 16]>,
    /// Disk specifications as written (`disk = [...]`).
    pub disks: Vec<String>,
    /// Network interface specifications as written (`vif = [...]`).
    pub vifs: Vec<String>,
    /// `disks`, parsed (one per entry, devids distinct).
    pub disk_devs: Vec<crate::devspec::DiskSpec>,
    /// `vifs`, parsed (one per entry, handle = index; given MACs distinct).
    pub vif_devs: Vec<crate::devspec::VifSpec>,
    /// Hard vCPU affinity (`cpus`).
    pub cpus: Option<CpuSpec>,
    /// Soft vCPU affinity (`cpus_soft`).
    pub cpus_soft: Option<CpuSpec>,
    pub weight: Option<i64>,
    pub cap: Option<i64>,
}

/// Keys oxl accepts.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "type",
    "builder",
    "kernel",
    "ramdisk",
    "extra",
    "cmdline",
    "root",
    "memory",
    "maxmem",
    "vcpus",
    "maxvcpus",
    "on_poweroff",
    "on_reboot",
    "on_crash",
    "on_watchdog",
    "uuid",
    "disk",
    "vif",
    "cpus",
    "cpus_soft",
    "weight",
    "cpu_weight",
    "cap",
];

/// The settings of a configuration and its overrides, looked up as libxlu does (last wins).
pub struct Settings {
    /// (source name, setting); later entries override earlier ones.
    items: Vec<(String, Setting)>,
}

impl Settings {
    /// Parses `text` (from `source`) then each `key=value` override (source `command line`).
    pub fn parse(source: &str, text: &str, overrides: &[String]) -> Result<Settings, CfgError> {
        let mut items: Vec<(String, Setting)> = parse(source, text)?
            .into_iter()
            .map(|s| (source.to_string(), s))
            .collect();
        if !overrides.is_empty() {
            let joined = overrides.join("\n");
            items.extend(
                parse("command line", &joined)?
                    .into_iter()
                    .map(|s| ("command line".to_string(), s)),
            );
        }
        Ok(Settings { items })
    }

    fn err(src: &str, s: &Setting, msg: String) -> CfgError {
        CfgError {
            source: src.to_string(),
            line: s.line,
            msg,
        }
    }

    /// The effective setting for `key`, with `+=` applied to what came before.
    fn find(&self, key: &str) -> Result<Option<(String, Setting)>, CfgError> {
        let mut cur: Option<(String, Setting)> = None;
        for (src, s) in self.items.iter().filter(|(_, s)| s.key == key) {
            if s.append {
                let base = cur.take();
                let merged = match (base.map(|(_, b)| b.value), &s.value) {
                    (None, v) => v.clone(),
                    (Some(Value::List(mut a)), Value::List(b)) => {
                        a.extend(b.iter().cloned());
                        Value::List(a)
                    }
                    (Some(Value::Atom(a)), Value::Atom(b)) => Value::Atom(a + b),
                    _ => {
                        return Err(Self::err(
                            src,
                            s,
                            format!("`+=' for parameter `{key}' mixes a list and a single value"),
                        ));
                    }
                };
                cur = Some((
                    src.clone(),
                    Setting {
                        value: merged,
                        ..s.clone()
                    },
                ));
            } else {
                cur = Some((src.clone(), s.clone()));
            }
        }
        Ok(cur)
    }

    fn string(&self, key: &str) -> Result<Option<String>, CfgError> {
        match self.find(key)? {
            None => Ok(None),
            Some((
                _,
                Setting {
                    value: Value::Atom(s),
                    ..
                },
            )) => Ok(Some(s)),
            Some((src, s)) => Err(Self::err(
                &src,
                &s,
                format!("parameter `{key}' is a list but should be a single value"),
            )),
        }
    }

    fn number(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, CfgError> {
        let Some((src, s)) = self.find(key)? else {
            return Ok(None);
        };
        let Value::Atom(text) = &s.value else {
            return Err(Self::err(
                &src,
                &s,
                format!("parameter `{key}' is a list but should be a single value"),
            ));
        };
        let Some(v) = parse_number(text) else {
            return Err(Self::err(
                &src,
                &s,
                format!("parameter `{key}' is not a valid number"),
            ));
        };
        if v < min {
            return Err(Self::err(
                &src,
                &s,
                format!("value `{v}' of `{key}' is smaller than minimum bound '{min}'"),
            ));
        }
        if v > max {
            return Err(Self::err(
                &src,
                &s,
                format!("value `{v}' of `{key}' is greater than maximum bound '{max}'"),
            ));
        }
        Ok(Some(v))
    }

    /// A list of string atoms (xl also accepts a single string for `cpus`; lists only here).
    fn string_list(&self, key: &str) -> Result<Vec<String>, CfgError> {
        let Some((src, s)) = self.find(key)? else {
            return Ok(Vec::new());
        };
        match &s.value {
            Value::List(items) => items
                .iter()
                .map(|v| match v {
                    Value::Atom(a) => Ok(a.clone()),
                    Value::List(_) => Err(Self::err(
                        &src,
                        &s,
                        format!("parameter `{key}' holds a nested list"),
                    )),
                })
                .collect(),
            Value::Atom(_) => Err(Self::err(
                &src,
                &s,
                format!("parameter `{key}' is a single value but should be a list"),
            )),
        }
    }

    /// `cpus`-style: one CPU list for every vCPU, or a list with one entry per vCPU.
    fn string_or_list(&self, key: &str) -> Result<Option<CpuSpec>, CfgError> {
        match self.find(key)? {
            None => Ok(None),
            Some((
                _,
                Setting {
                    value: Value::Atom(s),
                    ..
                },
            )) => Ok(Some(CpuSpec::All(s))),
            Some(_) => Ok(Some(CpuSpec::PerVcpu(self.string_list(key)?))),
        }
    }

    fn action(&self, key: &str, default: Action) -> Result<Action, CfgError> {
        let Some(name) = self.string(key)? else {
            return Ok(default);
        };
        let (src, s) = self.find(key)?.expect("found above");
        Action::from_name(&name).ok_or_else(|| {
            Self::err(
                &src,
                &s,
                format!("Unknown {key} action \"{name}\" specified"),
            )
        })
    }

    /// Validates every key and builds the domain configuration.
    pub fn domain_config(&self) -> Result<DomainConfig, CfgError> {
        for (src, s) in &self.items {
            if !KNOWN_KEYS.contains(&s.key.as_str()) {
                return Err(Self::err(src, s, format!("unknown key \"{}\"", s.key)));
            }
        }
        let whole = |msg: &str| CfgError {
            source: self
                .items
                .first()
                .map_or_else(String::new, |(s, _)| s.clone()),
            line: 0,
            msg: msg.to_string(),
        };
        let at = |key: &str, msg: String| -> CfgError {
            match self.items.iter().rev().find(|(_, s)| s.key == key) {
                Some((src, s)) => Self::err(src, s, msg),
                None => whole(&msg),
            }
        };

        for key in ["type", "builder"] {
            if let Some(t) = self.string(key)? {
                match t.as_str() {
                    "pvh" | "pv" | "generic" => {}
                    "hvm" => {
                        return Err(at(
                            key,
                            "HVM guests are not supported on Arm: use type = \"pvh\"".into(),
                        ));
                    }
                    _ => return Err(at(key, format!("Invalid domain type {t}."))),
                }
            }
        }

        let name = self
            .string("name")?
            .ok_or_else(|| whole("Domain name must be specified."))?;
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control() || c == '/') {
            return Err(at(
                "name",
                format!("invalid domain name \"{}\"", name.escape_default()),
            ));
        }
        if name.chars().all(|c| c.is_ascii_digit()) {
            return Err(at(
                "name",
                format!("domain name \"{name}\" is all digits: it would read as a domain id"),
            ));
        }
        let kernel = self
            .string("kernel")?
            .ok_or_else(|| whole("no kernel specified: set kernel = \"/path/to/Image\""))?;
        let ramdisk = self.string("ramdisk")?;

        let cmdline_key = self.string("cmdline")?;
        let root = self.string("root")?;
        let extra = self.string("extra")?;
        let cmdline = match (cmdline_key, root, extra) {
            (Some(c), _, _) => Some(c),
            (None, Some(r), Some(e)) => Some(format!("root={r} {e}")),
            (None, Some(r), None) => Some(format!("root={r}")),
            (None, None, e) => e,
        };

        // Memory in MiB; libxl's default is 32 MiB when nothing is given.
        let max_mib = i64::from(u32::MAX) / 1024;
        let memory = self.number("memory", 1, max_mib)?;
        let maxmem = self.number("maxmem", 1, max_mib)?;
        let target_mib = memory.or(maxmem).unwrap_or(32);
        let max_mib_v = maxmem.unwrap_or(target_mib);
        if max_mib_v < target_mib {
            return Err(at(
                "maxmem",
                format!("maxmem ({max_mib_v}) is smaller than memory ({target_mib})"),
            ));
        }

        let vcpus = self.number("vcpus", 1, 128)?.unwrap_or(1) as u32;
        let max_vcpus = self.number("maxvcpus", 1, 128)?.map_or(vcpus, |v| v as u32);
        if max_vcpus < vcpus {
            return Err(at("maxvcpus", "maxvcpus < vcpus".into()));
        }

        let uuid = match self.string("uuid")? {
            None => None,
            Some(u) => Some(
                parse_uuid(&u).ok_or_else(|| at("uuid", format!("Failed to parse UUID: {u}")))?,
            ),
        };

        let weight = match self.number("weight", 1, 65535)? {
            Some(w) => Some(w),
            None => self.number("cpu_weight", 1, 65535)?,
        };

        let disks = self.string_list("disk")?;
        let mut disk_devs: Vec<crate::devspec::DiskSpec> = Vec::new();
        for d in &disks {
            let spec = crate::devspec::parse_disk(d).map_err(|e| at("disk", e.0))?;
            if let Some(o) = disk_devs.iter().find(|o| o.devid == spec.devid) {
                return Err(at(
                    "disk",
                    format!(
                        "disk spec \"{d}\": vdev {} is the same device as {} (virtual device {})",
                        spec.vdev, o.vdev, spec.devid
                    ),
                ));
            }
            disk_devs.push(spec);
        }
        let vifs = self.string_list("vif")?;
        let mut vif_devs: Vec<crate::devspec::VifSpec> = Vec::new();
        for v in &vifs {
            let spec = crate::devspec::parse_vif(v).map_err(|e| at("vif", e.0))?;
            if let Some(m) = spec.mac
                && vif_devs.iter().any(|o| o.mac == Some(m))
            {
                return Err(at(
                    "vif",
                    format!(
                        "vif spec \"{v}\": mac {} is used twice",
                        crate::devspec::format_mac(&m)
                    ),
                ));
            }
            vif_devs.push(spec);
        }

        Ok(DomainConfig {
            name,
            kernel,
            ramdisk,
            cmdline,
            target_memkb: target_mib as u64 * 1024,
            max_memkb: max_mib_v as u64 * 1024,
            vcpus,
            max_vcpus,
            on_poweroff: self.action("on_poweroff", Action::Destroy)?,
            on_reboot: self.action("on_reboot", Action::Restart)?,
            on_watchdog: self.action("on_watchdog", Action::Destroy)?,
            on_crash: self.action("on_crash", Action::Destroy)?,
            uuid,
            disks,
            vifs,
            disk_devs,
            vif_devs,
            cpus: self.string_or_list("cpus")?,
            cpus_soft: self.string_or_list("cpus_soft")?,
            weight,
            cap: self.number("cap", 0, 65535)?,
        })
    }
}

/// Parses a UUID in its 8-4-4-4-12 hex form.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    if groups.iter().map(|g| g.len()).collect::<Vec<_>>() != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Formats a UUID as libxl does (lower-case 8-4-4-4-12).
pub fn format_uuid(u: &[u8; 16]) -> String {
    let h: Vec<String> = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../testdata/domu.cfg");

    fn cfg(text: &str) -> Result<DomainConfig, CfgError> {
        Settings::parse("/etc/xen/domu.cfg", text, &[])?.domain_config()
    }

    #[test]
    fn sample_config() {
        let c = cfg(SAMPLE).unwrap();
        assert_eq!(c.name, "domu");
        assert_eq!(c.kernel, "/opt/domu/Image");
        assert_eq!(c.ramdisk.as_deref(), Some("/opt/domu/domu-initrd.gz"));
        assert_eq!(c.target_memkb, 262144);
        assert_eq!(c.max_memkb, 262144);
        assert_eq!((c.vcpus, c.max_vcpus), (1, 1));
        assert_eq!(c.on_crash, Action::Preserve);
        assert_eq!(c.on_reboot, Action::Restart);
        assert_eq!(c.on_poweroff, Action::Destroy);
        assert_eq!(
            c.cmdline.as_deref(),
            Some("console=hvc0 rdinit=/init ref_scenario=domu ref_io_mb=64 ref_net_mb=64")
        );
        assert_eq!(c.vifs, vec!["mac=00:16:3e:00:00:02, bridge=xenbr0"]);
        assert_eq!(
            c.disks,
            vec!["format=raw, vdev=xvda, access=rw, target=/opt/domu/domu-disk.img"]
        );
    }

    #[test]
    fn grammar() {
        let s = parse(
            "f",
            "a = 1; b = 'x' # c\n\nl = [ 'p',\n  \"q\\n\\x41\\101\",\n ]\nm = [ ]\nn += 0x10\n",
        )
        .unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].value, Value::Atom("1".into()));
        assert_eq!(s[1].value, Value::Atom("x".into()));
        assert_eq!(
            s[2].value,
            Value::List(vec![Value::Atom("p".into()), Value::Atom("q\nAA".into())])
        );
        assert_eq!(s[2].line, 3);
        assert_eq!(s[3].value, Value::List(vec![]));
        assert!(s[4].append);
        // No trailing newline is fine; nested lists parse.
        assert_eq!(
            parse("f", "x=[[1],2]").unwrap()[0].value.clone(),
            Value::List(vec![
                Value::List(vec![Value::Atom("1".into())]),
                Value::Atom("2".into())
            ])
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("256"), Some(256));
        assert_eq!(parse_number("0x100"), Some(256));
        assert_eq!(parse_number("0400"), Some(256));
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("12abc"), None);
        assert_eq!(parse_number("08"), None);
        let c = cfg("name='d'\nkernel='/k'\nmemory=0x100\nvcpus=\"2\"").unwrap();
        assert_eq!((c.target_memkb, c.vcpus), (256 * 1024, 2));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = cfg("name = 'd'\nkernel = '/k'\nmemroy = 256\n").unwrap_err();
        assert_eq!(e.to_string(), "/etc/xen/domu.cfg:3: unknown key \"memroy\"");
        let e = cfg("name = 'd'\nkernel = '/k'\nmemory = 25x\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/xen/domu.cfg:3: parameter `memory' is not a valid number"
        );
        let e = cfg("name = 'd'\nkernel = = 3\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/xen/domu.cfg:2: config parsing error near `=': syntax error"
        );
        let e = cfg("name = 'd\n").unwrap_err();
        assert!(e.to_string().starts_with("/etc/xen/domu.cfg:1: "), "{e}");
        let e = cfg("name = 'd'\nkernel='/k'\ntype = 'hvm'\n").unwrap_err();
        assert!(e.to_string().starts_with("/etc/xen/domu.cfg:3: HVM"), "{e}");
        let e = cfg("kernel='/k'\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/xen/domu.cfg: Domain name must be specified."
        );
        let e = cfg("name='d'\nkernel='/k'\non_crash='explode'").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/xen/domu.cfg:3: Unknown on_crash action \"explode\" specified"
        );
        let e = cfg("name='d'\nkernel='/k'\nvcpus=2\nmaxvcpus=1").unwrap_err();
        assert_eq!(e.to_string(), "/etc/xen/domu.cfg:4: maxvcpus < vcpus");
        let e = cfg("name='d'\nkernel='/k'\nmemory=[1]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/xen/domu.cfg:3: parameter `memory' is a list but should be a single value"
        );
        assert!(cfg("name='d'\nkernel='/k'\nmemory=0").is_err());
        assert!(cfg("name='d'\nkernel='/k'\n$ = 1").is_err());
        assert!(cfg("name='12'\nkernel='/k'").is_err());
    }

    #[test]
    fn overrides_and_cmdline() {
        let s = Settings::parse(
            "f",
            SAMPLE,
            &[
                "memory=512".into(),
                "name=\"other\"".into(),
                "vcpus=2".into(),
            ],
        )
        .unwrap();
        let c = s.domain_config().unwrap();
        assert_eq!(
            (c.name.as_str(), c.target_memkb, c.vcpus),
            ("other", 512 * 1024, 2)
        );
        let e = Settings::parse("f", SAMPLE, &["bogus=1".into()])
            .unwrap()
            .domain_config()
            .unwrap_err();
        assert_eq!(e.to_string(), "command line:1: unknown key \"bogus\"");
        let c = cfg("name='d'\nkernel='/k'\nroot='/dev/xvda1 ro'\nextra='quiet'").unwrap();
        assert_eq!(c.cmdline.as_deref(), Some("root=/dev/xvda1 ro quiet"));
        let c = cfg("name='d'\nkernel='/k'\nroot='/dev/xvda1'\ncmdline='x'").unwrap();
        assert_eq!(c.cmdline.as_deref(), Some("x"));
        let c =
            cfg("name='d'\nkernel='/k'\nextra='a'\nextra+=' b'\nmaxmem=512\nmemory=256\ntype='pv'")
                .unwrap();
        assert_eq!(c.cmdline.as_deref(), Some("a b"));
        assert_eq!((c.target_memkb, c.max_memkb), (256 * 1024, 512 * 1024));
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpulist("all", 4).unwrap(), vec![0x0f]);
        assert_eq!(parse_cpulist("0-3,^2", 4).unwrap(), vec![0x0b]);
        assert_eq!(parse_cpulist("1", 2).unwrap(), vec![0x02]);
        assert_eq!(parse_cpulist("8-9", 10).unwrap(), vec![0, 3]);
        assert!(
            parse_cpulist("4", 4)
                .unwrap_err()
                .contains("CPU 4 does not exist (the host has 4)")
        );
        assert!(parse_cpulist("3-1", 4).unwrap_err().contains("backwards"));
        assert!(parse_cpulist("x", 4).is_err());
        assert!(
            parse_cpulist("0,^0", 4)
                .unwrap_err()
                .contains("no CPU left")
        );
        assert!(parse_cpulist("", 4).is_err());
        let c = cfg("name='d'\nkernel='/k'\ncpus=['0', '1']\ncpus_soft='all'").unwrap();
        assert_eq!(c.cpus, Some(CpuSpec::PerVcpu(vec!["0".into(), "1".into()])));
        assert_eq!(c.cpus.as_ref().unwrap().for_vcpu(1), Some("1"));
        assert_eq!(c.cpus.as_ref().unwrap().for_vcpu(2), None);
        assert_eq!(c.cpus_soft, Some(CpuSpec::All("all".into())));
    }

    #[test]
    fn devices_are_parsed_and_checked() {
        let c = cfg(SAMPLE).unwrap();
        assert_eq!(c.disk_devs.len(), 1);
        assert_eq!(
            (c.disk_devs[0].devid, c.disk_devs[0].writable),
            (51712, true)
        );
        assert_eq!(c.vif_devs[0].mac, Some([0, 0x16, 0x3e, 0, 0, 2]));
        let e = cfg("name='d'\nkernel='/k'\ndisk=['/a,raw,xvda', '/b,raw,51712']").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/xen/domu.cfg:3: disk spec \"/b,raw,51712\": vdev 51712 is the same device as xvda (virtual device 51712)"
        );
        let e = cfg("name='d'\nkernel='/k'\n\nvif=['mac=00:16:3e:0:0:1','mac=00:16:3e:00:00:01']")
            .unwrap_err();
        assert!(
            e.to_string().starts_with("/etc/xen/domu.cfg:4: vif spec"),
            "{e}"
        );
        let e = cfg("name='d'\nkernel='/k'\ndisk=['/a,qcow2,xvda']").unwrap_err();
        assert!(e.to_string().contains("format=raw"), "{e}");
        assert!(cfg("name='d'\nkernel='/k'\ndisk='/a,raw,xvda'").is_err());
    }

    #[test]
    fn uuid_round_trip() {
        let u = parse_uuid("e68679a4-9132-4e75-b8c9-195ce327113f").unwrap();
        assert_eq!(format_uuid(&u), "e68679a4-9132-4e75-b8c9-195ce327113f");
        assert!(parse_uuid("e68679a4-9132-4e75-b8c9-195ce327113").is_none());
        assert!(parse_uuid("g68679a4-9132-4e75-b8c9-195ce327113f").is_none());
        let c = cfg("name='d'\nkernel='/k'\nuuid='e68679a4-9132-4e75-b8c9-195ce327113f'").unwrap();
        assert_eq!(c.uuid, Some(u));
    }

    #[test]
    fn hostile_input_never_panics() {
        for text in [
            "\\",
            "'\\x",
            "\"\\",
            "[",
            "a=[",
            "a=[1,",
            "a=\"\\9\"",
            "a=\"\\xzz\"",
            "a='\\777'",
            "=",
            "a",
            "a+",
            "\u{0}",
            "a=\"\u{ff}\"",
        ] {
            let _ = Settings::parse("f", text, &[]).and_then(|s| s.domain_config());
        }
    }
}
