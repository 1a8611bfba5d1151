//! Device trees for boot-time (dom0less) domains.
//!
//! QEMU cannot describe `xen,domain` nodes itself, so [`dom0less_dtb`] asks QEMU for the tree
//! it would generate (`-machine ...,dumpdtb=`, with every guest-loader device of the base
//! machine so their `/chosen/module@` nodes are in it), decompiles it with `dtc`, adds one
//! `xen,domain` node per [`DomainNode`] under `/chosen` (Xen's dom0less binding, as design.md
//! describes) and compiles it again. [`Qemu::with_domains`] then boots with `-dtb <that>` and
//! loads each domain kernel with QEMU's generic loader, which adds no DT node.
//!
//! The text editing ([`insert_under_chosen`], [`domain_nodes_dts`]) is pure and unit-tested;
//! it understands just enough DTS syntax (strings, comments, braces) to find `/chosen`.

use crate::error::{Error, ErrorKind};
use crate::qemu::Qemu;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One boot-time domain: a `xen,domain` node under `/chosen` with one kernel module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainNode {
    /// The kernel image loaded at `addr`.
    pub kernel: PathBuf,
    /// Where QEMU loads the kernel (the module's `reg` base).
    pub addr: u64,
    /// The module's `bootargs`.
    pub bootargs: String,
    /// RAM of the domain in MiB (the node's `memory` is in KiB).
    pub memory_mib: u64,
    /// Number of vCPUs (`cpus`).
    pub cpus: u32,
    /// Whether to add the empty `vpl011` property.
    pub vpl011: bool,
    /// An initrd (`multiboot,ramdisk` module): file, load address and size in bytes.
    pub ramdisk: Option<(PathBuf, u64, u64)>,
    /// Extra one-cell properties of the node (`oxen,weight = <512>` ...).
    pub props: Vec<(String, u32)>,
}

impl DomainNode {
    /// A domain with 64 MiB and 1 vCPU running `kernel` (loaded at `addr`) with `bootargs`.
    pub fn new(kernel: impl Into<PathBuf>, addr: u64, bootargs: &str) -> Self {
        Self {
            kernel: kernel.into(),
            addr,
            bootargs: bootargs.into(),
            memory_mib: 64,
            cpus: 1,
            vpl011: false,
            ramdisk: None,
            props: Vec::new(),
        }
    }

    /// Add a one-cell property `name = <value>` to the node (`oxen,weight`, ...).
    pub fn prop_u32(mut self, name: &str, value: u32) -> Self {
        self.props.push((name.into(), value));
        self
    }

    /// Give the domain an initrd loaded at `addr` (a `multiboot,ramdisk` module).
    pub fn ramdisk(mut self, file: impl Into<PathBuf>, addr: u64) -> Result<Self, Error> {
        let file = file.into();
        let size = file_size(&file)?;
        self.ramdisk = Some((file, addr, size));
        Ok(self)
    }

    /// Set the RAM size in MiB.
    pub fn memory_mib(mut self, mib: u64) -> Self {
        self.memory_mib = mib;
        self
    }

    /// Set the number of vCPUs.
    pub fn cpus(mut self, n: u32) -> Self {
        self.cpus = n;
        self
    }

    /// Give the domain a virtual PL011 (`vpl011` property).
    pub fn vpl011(mut self) -> Self {
        self.vpl011 = true;
        self
    }
}

fn dts_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn cells64(v: u64) -> String {
    format!("{:#x} {:#x}", v >> 32, v & 0xffff_ffff)
}

/// DTS text of the `xen,domain` nodes `domU1`, `domU2`, … (indented for `/chosen`), with
/// `sizes[i]` the size in bytes of `domains[i].kernel`.
///
/// # Panics
/// If `sizes` and `domains` differ in length.
pub fn domain_nodes_dts(domains: &[DomainNode], sizes: &[u64]) -> String {
    assert_eq!(domains.len(), sizes.len(), "one size per domain");
    let mut out = String::new();
    for (i, (d, size)) in domains.iter().zip(sizes).enumerate() {
        out.push_str(&format!("\t\tdomU{} {{\n", i + 1));
        out.push_str("\t\t\tcompatible = \"xen,domain\";\n");
        out.push_str("\t\t\t#address-cells = <0x02>;\n");
        out.push_str("\t\t\t#size-cells = <0x02>;\n");
        out.push_str(&format!(
            "\t\t\tmemory = <{}>;\n",
            cells64(d.memory_mib * 1024)
        ));
        out.push_str(&format!("\t\t\tcpus = <{:#x}>;\n", d.cpus));
        if d.vpl011 {
            out.push_str("\t\t\tvpl011;\n");
        }
        for (name, value) in &d.props {
            out.push_str(&format!("\t\t\t{name} = <{value:#x}>;\n"));
        }
        out.push_str(&format!("\t\t\tmodule@{:x} {{\n", d.addr));
        out.push_str("\t\t\t\tcompatible = \"multiboot,kernel\", \"multiboot,module\";\n");
        out.push_str(&format!(
            "\t\t\t\treg = <{} {}>;\n",
            cells64(d.addr),
            cells64(*size)
        ));
        out.push_str(&format!(
            "\t\t\t\tbootargs = {};\n",
            dts_string(&d.bootargs)
        ));
        out.push_str("\t\t\t};\n");
        if let Some((_, addr, size)) = &d.ramdisk {
            out.push_str(&format!("\t\t\tmodule@{addr:x} {{\n"));
            out.push_str("\t\t\t\tcompatible = \"multiboot,ramdisk\", \"multiboot,module\";\n");
            out.push_str(&format!(
                "\t\t\t\treg = <{} {}>;\n",
                cells64(*addr),
                cells64(*size)
            ));
            out.push_str("\t\t\t};\n");
        }
        out.push_str("\t\t};\n");
    }
    out
}

/// Byte offsets found by [`scan`]: the closing braces of the first root node and of its
/// `chosen` child.
#[derive(Debug, Default, PartialEq, Eq)]
struct Braces {
    root_close: Option<usize>,
    chosen_close: Option<usize>,
}

fn scan(dts: &str) -> Result<Braces, Error> {
    let b = dts.as_bytes();
    let mut found = Braces::default();
    let mut stack: Vec<String> = Vec::new();
    let mut stmt_start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                if i >= b.len() {
                    return Err(Error::new(ErrorKind::Dts("unterminated string".into())));
                }
            }
            b'/' if matches!(b.get(i + 1), Some(b'*' | b'/')) => {
                let end = if b[i + 1] == b'*' {
                    match dts[i + 2..].find("*/") {
                        Some(n) => i + 2 + n + 1,
                        None => {
                            return Err(Error::new(ErrorKind::Dts("unterminated comment".into())));
                        }
                    }
                } else {
                    dts[i..].find('\n').map_or(b.len() - 1, |n| i + n)
                };
                // A comment before a statement is not part of its head.
                if dts[stmt_start..i].trim().is_empty() {
                    stmt_start = end + 1;
                }
                i = end;
            }
            b'{' => {
                // The node name is the last word ("lbl: name {" has a label).
                let head = dts[stmt_start..i].trim();
                let name = head.split_whitespace().last().unwrap_or(head);
                stack.push(name.to_owned());
                stmt_start = i + 1;
            }
            b'}' => {
                let Some(name) = stack.pop() else {
                    return Err(Error::new(ErrorKind::Dts("unbalanced '}'".into())));
                };
                let parent_is_root = stack.len() == 1 && stack[0] == "/";
                if name == "chosen" && parent_is_root && found.chosen_close.is_none() {
                    found.chosen_close = Some(i);
                }
                if name == "/" && stack.is_empty() && found.root_close.is_none() {
                    found.root_close = Some(i);
                }
                stmt_start = i + 1;
            }
            b';' => stmt_start = i + 1,
            _ => {}
        }
        i += 1;
    }
    if !stack.is_empty() {
        return Err(Error::new(ErrorKind::Dts("unbalanced '{'".into())));
    }
    Ok(found)
}

/// Insert `text` at the start of the line holding the brace at `close` (or right before the
/// brace if other text precedes it on that line).
fn insert_before(dts: &str, close: usize, text: &str) -> String {
    let line_start = dts[..close].rfind('\n').map_or(0, |n| n + 1);
    let (at, text) = if dts[line_start..close].trim().is_empty() {
        (line_start, text.to_owned())
    } else {
        (close, format!("\n{text}"))
    };
    let mut out = String::with_capacity(dts.len() + text.len());
    out.push_str(&dts[..at]);
    out.push_str(&text);
    out.push_str(&dts[at..]);
    out
}

/// Insert the DTS `nodes` at the end of the root's `chosen` node (created if missing).
pub fn insert_under_chosen(dts: &str, nodes: &str) -> Result<String, Error> {
    let found = scan(dts)?;
    if let Some(close) = found.chosen_close {
        return Ok(insert_before(dts, close, nodes));
    }
    match found.root_close {
        Some(close) => Ok(insert_before(
            dts,
            close,
            &format!("\tchosen {{\n{nodes}\t}};\n"),
        )),
        None => Err(Error::new(ErrorKind::Dts("no root node".into()))),
    }
}

/// Run `dtc` with `args`.
fn dtc(args: &[&Path]) -> Result<(), Error> {
    let mut cmd = Command::new("dtc");
    cmd.arg("-q").args(args);
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::new(ErrorKind::ToolMissing { tool: "dtc".into() })
        } else {
            Error::io("running dtc", e)
        }
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::Tool {
            what: format!(
                "dtc -q {}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }))
    }
}

fn file_size(p: &Path) -> Result<u64, Error> {
    std::fs::metadata(p)
        .map(|m| m.len())
        .map_err(|e| Error::io(format!("reading {}", p.display()), e))
}

/// Check that no two of the loaded files overlap in guest memory.
fn check_overlaps(mut ranges: Vec<(u64, u64, PathBuf)>) -> Result<(), Error> {
    ranges.sort_by_key(|r| r.0);
    for w in ranges.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.0.saturating_add(a.1) > b.0 {
            return Err(Error::new(ErrorKind::Dts(format!(
                "{} at {:#x} (+{:#x}) overlaps {} at {:#x}",
                a.2.display(),
                a.0,
                a.1,
                b.2.display(),
                b.0
            ))));
        }
    }
    Ok(())
}

/// Build a DTB for `base`'s machine with `domains` as `xen,domain` nodes under `/chosen`;
/// see the module docs. Files go to `target/qemu-tmp/`.
pub fn dom0less_dtb(base: &Qemu, domains: &[DomainNode]) -> Result<PathBuf, Error> {
    dom0less_dtb_with(base, domains, None)
}

/// [`dom0less_dtb`] plus `/chosen/xen,xen-bootargs` = `xen_args` (the hypervisor's command
/// line when there is no Dom0: Xen's binding then leaves `/chosen/bootargs` to Dom0).
pub fn dom0less_dtb_with(
    base: &Qemu,
    domains: &[DomainNode],
    xen_args: Option<&str>,
) -> Result<PathBuf, Error> {
    let sizes = domains
        .iter()
        .map(|d| file_size(&d.kernel))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ranges: Vec<(u64, u64, PathBuf)> = domains
        .iter()
        .zip(&sizes)
        .map(|(d, s)| (d.addr, *s, d.kernel.clone()))
        .collect();
    for d in domains {
        if let Some((file, addr, size)) = &d.ramdisk {
            ranges.push((*addr, *size, file.clone()));
        }
    }
    for g in base.guest_loaders() {
        ranges.push((g.addr, file_size(&g.file)?, g.file.clone()));
    }
    check_overlaps(ranges)?;

    let stem = base
        .name
        .clone()
        .unwrap_or_else(crate::running::default_name);
    let dumped = crate::temp_path(&stem, "qemu.dtb")?;
    let dts_in = crate::temp_path(&stem, "qemu.dts")?;
    let dts_out = crate::temp_path(&stem, "dts")?;
    let dtb_out = crate::temp_path(&stem, "dtb")?;

    base.dump_dtb(&dumped)?;
    dtc(&[
        Path::new("-I"),
        Path::new("dtb"),
        Path::new("-O"),
        Path::new("dts"),
        Path::new("-o"),
        &dts_in,
        &dumped,
    ])?;
    let dts = std::fs::read_to_string(&dts_in)
        .map_err(|e| Error::io(format!("reading {}", dts_in.display()), e))?;
    let mut nodes = String::new();
    if let Some(a) = xen_args {
        nodes.push_str(&format!("\t\txen,xen-bootargs = {};\n", dts_string(a)));
    }
    nodes.push_str(&domain_nodes_dts(domains, &sizes));
    let edited = insert_under_chosen(&dts, &nodes)?;
    std::fs::write(&dts_out, edited)
        .map_err(|e| Error::io(format!("writing {}", dts_out.display()), e))?;
    dtc(&[
        Path::new("-I"),
        Path::new("dts"),
        Path::new("-O"),
        Path::new("dtb"),
        Path::new("-o"),
        &dtb_out,
        &dts_out,
    ])?;
    for p in [&dumped, &dts_in] {
        let _ = std::fs::remove_file(p);
    }
    Ok(dtb_out)
}

impl Qemu {
    /// This machine plus boot-time `domains`: `-dtb` from [`dom0less_dtb`] and a generic
    /// `-device loader` per domain kernel. The first domain becomes d1, the next d2, ….
    pub fn with_domains(&self, domains: &[DomainNode]) -> Result<Qemu, Error> {
        self.with_domains_and_xen_bootargs(domains, None)
    }

    /// [`Qemu::with_domains`], with `/chosen/xen,xen-bootargs` = `xen_args` if given.
    pub fn with_domains_and_xen_bootargs(
        &self,
        domains: &[DomainNode],
        xen_args: Option<&str>,
    ) -> Result<Qemu, Error> {
        let dtb = dom0less_dtb_with(self, domains, xen_args)?;
        let mut q = self.clone().dtb(dtb);
        for d in domains {
            q = q.loader(d.kernel.clone(), d.addr);
            if let Some((file, addr, _)) = &d.ramdisk {
                q = q.loader(file.clone(), *addr);
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like `dtc -I dtb -O dts` output of QEMU's virt tree, with traps: braces and
    /// the word `chosen` inside strings, a comment, and a `chosen` node that is not `/chosen`.
    const FIXTURE: &str = r#"/dts-v1/;

/ {
	#size-cells = <0x02>;
	#address-cells = <0x02>;
	compatible = "linux,dummy-virt";

	fake {
		label = "} chosen { \" }";
		chosen {
			x = <0x01>;
		};
	};

	/* chosen { */
	chosen {
		bootargs = "a}b{c";
		stdout-path = "/pl011@9000000";

		module@0x50000000 {
			bootargs = "oxen.test=hello";
			compatible = "multiboot,module\0multiboot,kernel";
			reg = <0x00 0x50000000 0x00 0x1000>;
		};
	};

	memory@40000000 {
		reg = <0x00 0x40000000 0x00 0x80000000>;
		device_type = "memory";
	};
};
"#;

    fn two_domains() -> (Vec<DomainNode>, Vec<u64>) {
        (
            vec![
                DomainNode::new("/b/g.bin", 0x5000_0000, "oxen.test=count oxen.count=20"),
                DomainNode::new("/b/g.bin", 0x1_5100_0000, r#"say "hi" \o/"#)
                    .memory_mib(128)
                    .cpus(2)
                    .vpl011(),
            ],
            vec![0x1234, 0x1_0000_0000],
        )
    }

    #[test]
    fn domain_nodes_follow_xen_dom0less_binding() {
        let (d, s) = two_domains();
        let text = domain_nodes_dts(&d, &s);
        let expected = "\t\tdomU1 {
\t\t\tcompatible = \"xen,domain\";
\t\t\t#address-cells = <0x02>;
\t\t\t#size-cells = <0x02>;
\t\t\tmemory = <0x0 0x10000>;
\t\t\tcpus = <0x1>;
\t\t\tmodule@50000000 {
\t\t\t\tcompatible = \"multiboot,kernel\", \"multiboot,module\";
\t\t\t\treg = <0x0 0x50000000 0x0 0x1234>;
\t\t\t\tbootargs = \"oxen.test=count oxen.count=20\";
\t\t\t};
\t\t};
\t\tdomU2 {
\t\t\tcompatible = \"xen,domain\";
\t\t\t#address-cells = <0x02>;
\t\t\t#size-cells = <0x02>;
\t\t\tmemory = <0x0 0x20000>;
\t\t\tcpus = <0x2>;
\t\t\tvpl011;
\t\t\tmodule@151000000 {
\t\t\t\tcompatible = \"multiboot,kernel\", \"multiboot,module\";
\t\t\t\treg = <0x1 0x51000000 0x1 0x0>;
\t\t\t\tbootargs = \"say \\\"hi\\\" \\\\o/\";
\t\t\t};
\t\t};
";
        assert_eq!(text, expected);
    }

    #[test]
    fn nodes_go_at_end_of_root_chosen() {
        let out = insert_under_chosen(FIXTURE, "\t\tNEW {\n\t\t};\n").unwrap();
        let expected = FIXTURE.replace(
            "\t\t\treg = <0x00 0x50000000 0x00 0x1000>;\n\t\t};\n\t};\n",
            "\t\t\treg = <0x00 0x50000000 0x00 0x1000>;\n\t\t};\n\t\tNEW {\n\t\t};\n\t};\n",
        );
        assert_ne!(expected, FIXTURE, "fixture replacement must apply");
        assert_eq!(out, expected);
    }

    #[test]
    fn chosen_is_created_when_missing() {
        let dts = "/dts-v1/;\n\n/ {\n\tmodel = \"x\";\n};\n";
        let out = insert_under_chosen(dts, "\t\tN {\n\t\t};\n").unwrap();
        assert_eq!(
            out,
            "/dts-v1/;\n\n/ {\n\tmodel = \"x\";\n\tchosen {\n\t\tN {\n\t\t};\n\t};\n};\n"
        );
    }

    #[test]
    fn one_line_chosen_gets_nodes_before_its_brace() {
        let dts = "/ {\n\tchosen { a = <1>; };\n};\n";
        let out = insert_under_chosen(dts, "\t\tN;\n").unwrap();
        assert_eq!(out, "/ {\n\tchosen { a = <1>; \n\t\tN;\n};\n};\n");
    }

    #[test]
    fn broken_dts_is_an_error_not_a_panic() {
        for bad in [
            "/ {\n\tchosen {\n",
            "/ { };\n};",
            "/ { s = \"unterminated; };",
            "/ { /* open ",
            "nothing here",
        ] {
            let e = insert_under_chosen(bad, "x").unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Dts(_)), "{bad:?}: {e}");
        }
    }

    #[test]
    fn overlapping_modules_are_rejected() {
        let ok = vec![(0x100, 0x100, PathBuf::from("a")), (0x200, 1, "b".into())];
        assert!(check_overlaps(ok).is_ok());
        let bad = vec![(0x200, 1, PathBuf::from("b")), (0x100, 0x101, "a".into())];
        let e = check_overlaps(bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot edit the device tree source: a at 0x100 (+0x101) overlaps b at 0x200"
        );
    }
}
