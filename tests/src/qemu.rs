//! The [`Qemu`] builder: one QEMU `virt` machine with virtualization, as design.md's boot
//! section describes, turned into an argument vector.
//!
//! Every machine gets `-machine virt,virtualization=on,gic-version=N -nographic -no-reboot
//! -nic none`, so the serial console is QEMU's stdio (muxed with the monitor), a guest reset
//! ends QEMU and no network device is created. Values placed inside QEMU `-device`/`-machine`
//! option strings have their commas doubled (QEMU's escape).

use crate::error::{Error, ErrorKind};
use crate::pattern::{Pattern, re};
use crate::running::Running;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The QEMU program run by default (overridden by env `OXEN_QEMU` or [`Qemu::program`]).
pub const DEFAULT_QEMU: &str = "qemu-system-aarch64";

/// The lowest address for guest-loader modules (design.md: modules go at ≥ 0x5000_0000).
pub const GUEST_LOADER_BASE: u64 = 0x5000_0000;

/// A `-device guest-loader` module (adds a `/chosen/module@` node and loads the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GuestLoader {
    pub(crate) addr: u64,
    pub(crate) file: PathBuf,
    pub(crate) initrd: bool,
    pub(crate) bootargs: Option<String>,
}

/// Builder for one QEMU run; see the crate docs. Cheap to clone, so a test can derive
/// several boots from one base.
#[derive(Clone, Debug)]
pub struct Qemu {
    pub(crate) machine_type: Option<String>,
    pub(crate) program: PathBuf,
    pub(crate) program_args: Vec<String>,
    pub(crate) gic_version: u8,
    pub(crate) smp: u32,
    pub(crate) memory_mib: u32,
    pub(crate) cpu: String,
    pub(crate) kernel: Option<PathBuf>,
    pub(crate) append: Option<String>,
    pub(crate) guest_loaders: Vec<GuestLoader>,
    pub(crate) raw_loaders: Vec<(PathBuf, u64)>,
    pub(crate) dtb: Option<PathBuf>,
    pub(crate) icount: bool,
    pub(crate) extra: Vec<String>,
    pub(crate) forbidden: Vec<Pattern>,
    pub(crate) allowed: Vec<Pattern>,
    pub(crate) name: Option<String>,
}

impl Default for Qemu {
    fn default() -> Self {
        Self::new()
    }
}

/// The default forbidden console lines.
pub fn default_forbidden() -> Vec<Pattern> {
    vec![
        Pattern::from("(oxen) ERROR"),
        Pattern::from("WARNING"),
        re("(?i)panic"),
        re(r"domain d\d+ crashed"),
    ]
}

impl Qemu {
    /// A machine with design.md's defaults: GICv3, 2 CPUs, 2048 MiB, `cortex-a72`, no images.
    pub fn new() -> Self {
        let program = std::env::var_os("OXEN_QEMU")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_QEMU));
        Self {
            machine_type: None,
            program,
            program_args: Vec::new(),
            gic_version: 3,
            smp: 2,
            memory_mib: 2048,
            cpu: "cortex-a72".into(),
            kernel: None,
            append: None,
            guest_loaders: Vec::new(),
            raw_loaders: Vec::new(),
            dtb: None,
            icount: false,
            extra: Vec::new(),
            forbidden: default_forbidden(),
            allowed: Vec::new(),
            name: None,
        }
    }

    /// [`Qemu::new`] with `-kernel build/oxen.bin` (fails if it was not built).
    pub fn oxen() -> Result<Self, Error> {
        Ok(Self::new().kernel(crate::oxen_bin()?))
    }

    /// Run `program` instead of QEMU (e.g. a fake for the harness's own tests).
    pub fn program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Arguments placed before QEMU's own (for a wrapper such as `taskset -c 0`, or a
    /// script run by `/bin/sh`).
    pub fn program_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.program_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Another QEMU machine than `virt` (e.g. `raspi4b`), given as its whole `-machine`
    /// value; [`Qemu::gic_version`] then does not apply.
    pub fn machine_type(mut self, machine: &str) -> Self {
        self.machine_type = Some(machine.into());
        self
    }

    /// `gic-version=2` or `3`.
    pub fn gic_version(mut self, version: u8) -> Self {
        self.gic_version = version;
        self
    }

    /// `-smp n`.
    pub fn smp(mut self, n: u32) -> Self {
        self.smp = n;
        self
    }

    /// `-m <mib>`.
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// `-cpu <model>`.
    pub fn cpu(mut self, model: &str) -> Self {
        self.cpu = model.into();
        self
    }

    /// `-kernel <image>`.
    pub fn kernel(mut self, image: impl Into<PathBuf>) -> Self {
        self.kernel = Some(image.into());
        self
    }

    /// `-append <cmdline>` (oxen's command line, `/chosen/bootargs`).
    pub fn append(mut self, cmdline: &str) -> Self {
        self.append = Some(cmdline.into());
        self
    }

    /// `-device guest-loader,addr=<addr>,kernel=<file>,bootargs=<bootargs>`: a
    /// `multiboot,kernel` module under `/chosen` (the first one is Dom0).
    pub fn guest_kernel(mut self, file: impl Into<PathBuf>, addr: u64, bootargs: &str) -> Self {
        self.guest_loaders.push(GuestLoader {
            addr,
            file: file.into(),
            initrd: false,
            bootargs: Some(bootargs.into()),
        });
        self
    }

    /// `-device guest-loader,addr=<addr>,initrd=<file>`: a `multiboot,ramdisk` module.
    pub fn guest_initrd(mut self, file: impl Into<PathBuf>, addr: u64) -> Self {
        self.guest_loaders.push(GuestLoader {
            addr,
            file: file.into(),
            initrd: true,
            bootargs: None,
        });
        self
    }

    /// `-device loader,file=<file>,addr=<addr>,force-raw=on`: load a file, no DT node.
    pub fn loader(mut self, file: impl Into<PathBuf>, addr: u64) -> Self {
        self.raw_loaders.push((file.into(), addr));
        self
    }

    /// `-dtb <file>` instead of QEMU's generated device tree.
    pub fn dtb(mut self, file: impl Into<PathBuf>) -> Self {
        self.dtb = Some(file.into());
        self
    }

    /// `-icount shift=0,sleep=off`: deterministic instruction counting (single-threaded TCG).
    pub fn icount(mut self) -> Self {
        self.icount = true;
        self
    }

    /// One extra QEMU argument, appended last.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// Fail on console lines matching `pattern` (in addition to the defaults).
    pub fn forbid(mut self, pattern: impl Into<Pattern>) -> Self {
        self.forbidden.push(pattern.into());
        self
    }

    /// Do not fail on lines matching `pattern`, even if they match a forbidden pattern.
    pub fn allow(mut self, pattern: impl Into<Pattern>) -> Self {
        self.allowed.push(pattern.into());
        self
    }

    /// Name of the transcript `target/qemu-logs/<name>.log` (default: the test's name).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The guest-loader modules, in command-line order.
    pub(crate) fn guest_loaders(&self) -> &[GuestLoader] {
        &self.guest_loaders
    }

    /// The `-machine` value.
    fn machine(&self, dumpdtb: Option<&Path>) -> String {
        let mut m = match &self.machine_type {
            Some(t) => t.clone(),
            None => format!("virt,virtualization=on,gic-version={}", self.gic_version),
        };
        if let Some(p) = dumpdtb {
            m.push_str(",dumpdtb=");
            m.push_str(&opt_escape(&p.to_string_lossy()));
        }
        m
    }

    /// QEMU's arguments (without the program and `program_args`).
    pub fn args(&self) -> Vec<String> {
        self.args_with(None)
    }

    fn args_with(&self, dumpdtb: Option<&Path>) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "-machine".into(),
            self.machine(dumpdtb),
            "-cpu".into(),
            self.cpu.clone(),
            "-smp".into(),
            self.smp.to_string(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-nographic".into(),
            "-no-reboot".into(),
            "-nic".into(),
            "none".into(),
        ];
        if self.icount {
            a.extend(["-icount".into(), "shift=0,sleep=off".into()]);
        }
        if let Some(k) = &self.kernel {
            a.extend(["-kernel".into(), k.to_string_lossy().into_owned()]);
        }
        if let Some(s) = &self.append {
            a.extend(["-append".into(), s.clone()]);
        }
        if let Some(d) = &self.dtb {
            a.extend(["-dtb".into(), d.to_string_lossy().into_owned()]);
        }
        for g in &self.guest_loaders {
            let mut d = format!(
                "guest-loader,addr={:#x},{}={}",
                g.addr,
                if g.initrd { "initrd" } else { "kernel" },
                opt_escape(&g.file.to_string_lossy())
            );
            if let Some(b) = &g.bootargs {
                d.push_str(",bootargs=");
                d.push_str(&opt_escape(b));
            }
            a.extend(["-device".into(), d]);
        }
        for (file, addr) in &self.raw_loaders {
            a.extend([
                "-device".into(),
                format!(
                    "loader,file={},addr={addr:#x},force-raw=on",
                    opt_escape(&file.to_string_lossy())
                ),
            ]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The whole command line, shell-quoted, for reports and for reproducing a run by hand.
    pub fn command_line(&self) -> String {
        shell_line(&self.program, &self.program_args, &self.args())
    }

    pub(crate) fn command(&self, dumpdtb: Option<&Path>) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.program_args).args(self.args_with(dumpdtb));
        c
    }

    /// The error for a failure to start the program.
    pub(crate) fn spawn_error(&self, err: std::io::Error) -> Error {
        if err.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::QemuMissing {
                program: self.program.to_string_lossy().into_owned(),
            })
        } else {
            Error::io(format!("starting {}", self.program.display()), err)
        }
    }

    /// Start QEMU; see [`Running`]. Waits while [`crate::max_concurrent`] QEMUs already run.
    pub fn spawn(&self) -> Result<Running, Error> {
        Running::spawn(self)
    }

    /// Run this machine with `-machine ...,dumpdtb=<out>`: QEMU writes the device tree it
    /// would hand to the kernel (after all `-device`s and `-dtb` fix-ups) and exits.
    pub fn dump_dtb(&self, out: &Path) -> Result<(), Error> {
        let mut cmd = self.command(Some(out));
        let output = cmd.output().map_err(|e| self.spawn_error(e))?;
        if !output.status.success() || !out.is_file() {
            return Err(Error::new(ErrorKind::Tool {
                what: shell_line(
                    &self.program,
                    &self.program_args,
                    &self.args_with(Some(out)),
                ),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }));
        }
        Ok(())
    }
}

/// Escape a value placed in a QEMU option string (`,` separates options; `,,` is a comma).
pub(crate) fn opt_escape(s: &str) -> String {
    s.replace(',', ",,")
}

/// Quote `s` for a POSIX shell if needed.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./=,:@+%".contains(c));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn shell_line(program: &Path, pre: &[String], args: &[String]) -> String {
    std::iter::once(program.to_string_lossy().into_owned())
        .chain(pre.iter().cloned())
        .chain(args.iter().cloned())
        .map(|a| shell_quote(&a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_design_boot_line() {
        let q = Qemu::new()
            .program("qemu-system-aarch64")
            .gic_version(2)
            .smp(1)
            .memory_mib(1024)
            .kernel("/b/oxen.bin")
            .append("dom0_mem=128M loglvl=all")
            .guest_kernel("/b/g,1.bin", 0x5000_0000, "oxen.test=hello, x")
            .guest_initrd("/b/initrd", 0x5220_0000)
            .loader("/b/k2", 0x5100_0000)
            .dtb("/t/x.dtb")
            .icount()
            .arg("-S");
        assert_eq!(
            q.args(),
            [
                "-machine",
                "virt,virtualization=on,gic-version=2",
                "-cpu",
                "cortex-a72",
                "-smp",
                "1",
                "-m",
                "1024",
                "-nographic",
                "-no-reboot",
                "-nic",
                "none",
                "-icount",
                "shift=0,sleep=off",
                "-kernel",
                "/b/oxen.bin",
                "-append",
                "dom0_mem=128M loglvl=all",
                "-dtb",
                "/t/x.dtb",
                "-device",
                "guest-loader,addr=0x50000000,kernel=/b/g,,1.bin,bootargs=oxen.test=hello,, x",
                "-device",
                "guest-loader,addr=0x52200000,initrd=/b/initrd",
                "-device",
                "loader,file=/b/k2,addr=0x51000000,force-raw=on",
                "-S",
            ]
        );
        assert_eq!(
            q.command_line(),
            "qemu-system-aarch64 -machine virt,virtualization=on,gic-version=2 -cpu cortex-a72 \
             -smp 1 -m 1024 -nographic -no-reboot -nic none -icount shift=0,sleep=off \
             -kernel /b/oxen.bin -append 'dom0_mem=128M loglvl=all' -dtb /t/x.dtb \
             -device 'guest-loader,addr=0x50000000,kernel=/b/g,,1.bin,bootargs=oxen.test=hello,, x' \
             -device guest-loader,addr=0x52200000,initrd=/b/initrd \
             -device loader,file=/b/k2,addr=0x51000000,force-raw=on -S"
        );
    }

    #[test]
    fn defaults_match_design() {
        let a = Qemu::new().args();
        assert_eq!(a[..2], ["-machine", "virt,virtualization=on,gic-version=3"]);
        assert!(a.windows(2).any(|w| w == ["-smp", "2"]));
        assert!(a.windows(2).any(|w| w == ["-m", "2048"]));
        assert!(a.windows(2).any(|w| w == ["-cpu", "cortex-a72"]));
        assert!(!a.contains(&"-icount".to_string()));
    }

    #[test]
    fn dumpdtb_goes_into_machine_option() {
        let q = Qemu::new();
        let a = q.args_with(Some(Path::new("/t/a,b.dtb")));
        assert_eq!(
            a[1],
            "virt,virtualization=on,gic-version=3,dumpdtb=/t/a,,b.dtb"
        );
    }

    #[test]
    fn shell_quote_quotes_only_when_needed() {
        assert_eq!(shell_quote("-m"), "-m");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn missing_program_says_make_setup() {
        let q = Qemu::new().program("/nonexistent/qemu-system-aarch64");
        let e = q.spawn().unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::QemuMissing { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "/nonexistent/qemu-system-aarch64 not found: run `make setup`"
        );
    }
}
