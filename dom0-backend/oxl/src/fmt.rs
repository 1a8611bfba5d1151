//! Text output of `xl list`, `xl info` and `xl vcpu-list`, formatted exactly as xl 4.17's
//! `xl_info.c` / `xl_vcpu.c` / `xl_utils.c` print them (column widths, tabs, the `%8.1f` of a
//! float-converted nanosecond count, CPU bitmaps as ranges).
//!
//! Pure functions of plain data: no I/O here.

use crate::sys::{DomInfo, PhysInfo, VcpuInfo, VersionInfo, physcap};

/// `(float)ns / 1e9` as xl computes CPU seconds.
fn secs(ns: u64) -> f64 {
    f64::from(ns as f32) / 1e9
}

/// The `xl list` header (without `-v`).
pub const LIST_HEADER: &str =
    "Name                                        ID   Mem VCPUs\tState\tTime(s)";

/// `xl list [-v]`: the header and one line per domain (`name` as in `/local/domain/N/name`).
pub fn list(domains: &[(DomInfo, String)], verbose: bool) -> String {
    const REASONS: &[u8] = b"-rscwS";
    let mut out = String::from(LIST_HEADER);
    if verbose {
        out.push_str("   UUID                            Reason-Code\tSecurity Label");
    }
    out.push('\n');
    for (d, name) in domains {
        let reason = if d.shutdown() { d.shutdown_reason() } else { 0 };
        let letter = REASONS.get(reason as usize).map_or('?', |&c| c as char);
        let mem = (d.tot_pages + d.outstanding_pages) * 4 / 1024;
        let flag = |b: bool, c: char| if b { c } else { '-' };
        out.push_str(&format!(
            "{:<40} {:>5} {:>5} {:>5}     {}{}{}{}{}{}  {:>8.1}",
            name,
            d.domid,
            mem,
            d.nr_online_vcpus,
            flag(d.running(), 'r'),
            flag(d.blocked(), 'b'),
            flag(d.paused(), 'p'),
            flag(d.shutdown(), 's'),
            letter,
            flag(d.dying(), 'd'),
            secs(d.cpu_time_ns),
        ));
        if verbose {
            out.push(' ');
            out.push_str(&crate::cfg::format_uuid(&d.handle));
            if d.shutdown() {
                out.push_str(&format!(" {reason:>8x}"));
            } else {
                out.push_str(&format!(" {:>8}", "-"));
            }
            out.push_str(&format!(" {:>16}", "-"));
        }
        out.push('\n');
    }
    out
}

/// xl's `print_bitmap`: `all`, `none`, or ranges like `0-3,8`.
pub fn bitmap(map: &[u8], nr_bits: usize) -> String {
    let bit = |i: usize| map.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0);
    let set: Vec<usize> = (0..nr_bits).filter(|&i| bit(i)).collect();
    if set.is_empty() {
        return "none".into();
    }
    if set.len() == nr_bits {
        return "all".into();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < set.len() {
        let start = set[i];
        let mut end = start;
        while i + 1 < set.len() && set[i + 1] == end + 1 {
            i += 1;
            end = set[i];
        }
        parts.push(if end > start {
            format!("{start}-{end}")
        } else {
            start.to_string()
        });
        i += 1;
    }
    parts.join(",")
}

/// The `xl vcpu-list` header.
pub fn vcpu_header() -> String {
    format!(
        "{:<32} {:>5} {:>5} {:>5} {:>5} {:>9} {}\n",
        "Name", "ID", "VCPU", "CPU", "State", "Time(s)", "Affinity (Hard / Soft)"
    )
}

/// One `xl vcpu-list` line; `nr_cpus` = max_cpu_id + 1.
pub fn vcpu_line(name: &str, domid: u32, vcpu: u32, v: &VcpuInfo, nr_cpus: usize) -> String {
    let mut s = format!("{name:<32} {domid:>5} {vcpu:>5}");
    if v.online {
        s.push_str(&format!(
            "{:>5} {:>3}{}- ",
            v.cpu,
            if v.running { 'r' } else { '-' },
            if v.blocked { 'b' } else { '-' }
        ));
    } else {
        s.push_str(&format!("{:>5} {:>3}{}p ", '-', '-', '-'));
    }
    s.push_str(&format!("{:>9.1}  ", secs(v.cpu_time_ns)));
    s.push_str(&bitmap(&v.hard, nr_cpus));
    s.push_str(" / ");
    s.push_str(&bitmap(&v.soft, nr_cpus));
    s.push('\n');
    s
}

/// sched_id → libxl's scheduler name.
pub fn scheduler_name(id: u32) -> &'static str {
    match id {
        5 => "credit",
        6 => "credit2",
        7 => "arinc653",
        8 => "rtds",
        9 => "null",
        _ => "unknown",
    }
}

/// uname fields for `xl info`.
pub struct Uname {
    pub nodename: String,
    pub release: String,
    pub version: String,
    pub machine: String,
}

/// `xl info`: every line, in xl's order.
pub fn info(u: &Uname, p: &PhysInfo, v: &VersionInfo, sched: &str, free_cpus: u32) -> String {
    let mut l: Vec<(&str, String)> = vec![
        ("host", u.nodename.clone()),
        ("release", u.release.clone()),
        ("version", u.version.clone()),
        ("machine", u.machine.clone()),
        ("nr_cpus", p.nr_cpus.to_string()),
        ("max_cpu_id", p.max_cpu_id.to_string()),
        ("nr_nodes", p.nr_nodes.to_string()),
        ("cores_per_socket", p.cores_per_socket.to_string()),
        ("threads_per_core", p.threads_per_core.to_string()),
        (
            "cpu_mhz",
            format!("{}.{:03}", p.cpu_khz / 1000, p.cpu_khz % 1000),
        ),
        (
            "hw_caps",
            p.hw_cap
                .iter()
                .map(|c| format!("{c:08x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
    ];
    let c = p.capabilities;
    let has = |b: u32| c & b != 0;
    let caps: String = [
        (has(physcap::PV), " pv"),
        (has(physcap::HVM), " hvm"),
        (has(physcap::HVM) && has(physcap::DIRECTIO), " hvm_directio"),
        (has(physcap::PV) && has(physcap::DIRECTIO), " pv_directio"),
        (has(physcap::HAP), " hap"),
        (has(physcap::SHADOW), " shadow"),
        (has(physcap::IOMMU_HAP_PT_SHARE), " iommu_hap_pt_share"),
        (has(physcap::VMTRACE), " vmtrace"),
        (has(physcap::VPMU), " vpmu"),
        (has(physcap::GNTTAB_V1), " gnttab-v1"),
        (has(physcap::GNTTAB_V2), " gnttab-v2"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, s)| *s)
    .collect();
    let per_mib = u64::from((1u32 << 20) / v.pagesize.max(1)).max(1);
    l.push(("virt_caps", caps));
    l.push(("total_memory", (p.total_pages / per_mib).to_string()));
    l.push((
        "free_memory",
        (p.free_pages.saturating_sub(p.outstanding_pages) / per_mib).to_string(),
    ));
    l.push(("sharing_freed_memory", "0".into()));
    l.push(("sharing_used_memory", "0".into()));
    l.push((
        "outstanding_claims",
        (p.outstanding_pages / per_mib).to_string(),
    ));
    l.push(("free_cpus", free_cpus.to_string()));
    l.push(("xen_major", v.major.to_string()));
    l.push(("xen_minor", v.minor.to_string()));
    l.push(("xen_extra", v.extra.clone()));
    l.push(("xen_version", format!("{}.{}{}", v.major, v.minor, v.extra)));
    l.push(("xen_caps", v.capabilities.clone()));
    l.push(("xen_scheduler", sched.to_string()));
    l.push(("xen_pagesize", v.pagesize.to_string()));
    l.push(("platform_params", format!("virt_start={:#x}", v.virt_start)));
    l.push(("xen_changeset", v.changeset.clone()));
    l.push(("xen_commandline", v.commandline.clone()));
    l.push(("cc_compiler", v.compiler.clone()));
    l.push(("cc_compile_by", v.compile_by.clone()));
    l.push(("cc_compile_domain", v.compile_domain.clone()));
    l.push(("cc_compile_date", v.compile_date.clone()));
    l.push(("build_id", v.build_id.clone()));
    l.push(("xend_config_format", "4".into()));
    l.iter()
        .map(|(k, val)| {
            // virt_caps is printed as ":%s%s..." (each cap brings its own leading space).
            if *k == "virt_caps" {
                format!("{k:<23}:{val}\n")
            } else {
                format!("{k:<23}: {val}\n")
            }
        })
        .collect()
}

/// `xl info <name>`: the value of the lines starting with `name` (xl's `maybe_printf` filter).
pub fn info_filter(all: &str, name: &str) -> String {
    all.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| {
            let i = l.find(':')?;
            l[i + 1..].strip_prefix(' ').map(|v| format!("{v}\n"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::dominf;

    fn dom(domid: u32, flags: u32, pages: u64, vcpus: u32, ns: u64) -> DomInfo {
        DomInfo {
            domid,
            flags,
            tot_pages: pages,
            nr_online_vcpus: vcpus,
            cpu_time_ns: ns,
            ..Default::default()
        }
    }

    #[test]
    fn list_matches_xl() {
        let out = list(
            &[
                (
                    dom(0, 0xffff_0122, 131072, 2, 28_000_000_000),
                    "Domain-0".into(),
                ),
                (dom(1, 0xffff_0112, 65540, 1, 5_300_000_000), "domu".into()),
            ],
            false,
        );
        assert_eq!(
            out,
            "Name                                        ID   Mem VCPUs\tState\tTime(s)\n\
             Domain-0                                     0   512     2     r-----      28.0\n\
             domu                                         1   256     1     -b----       5.3\n"
        );
        // Shut down for crash, paused, dying.
        let crashed = dom(
            2,
            (3 << 16) | dominf::SHUTDOWN | dominf::PAUSED | dominf::DYING,
            0,
            0,
            0,
        );
        let l = list(&[(crashed, "x".into())], false);
        assert!(l.lines().nth(1).unwrap().contains("     --pscd  "), "{l}");
        let v = list(&[(dom(1, 0xffff_0112, 65540, 1, 0), "domu".into())], true);
        assert!(v.starts_with(&format!(
            "{LIST_HEADER}   UUID                            Reason-Code\tSecurity Label\n"
        )));
        assert!(
            v.ends_with(" 00000000-0000-0000-0000-000000000000        -                -\n"),
            "{v}"
        );
    }

    #[test]
    fn bitmaps() {
        assert_eq!(bitmap(&[0xff], 2), "all");
        assert_eq!(bitmap(&[0], 4), "none");
        assert_eq!(bitmap(&[0b1011_0111, 0x01], 12), "0-2,4-5,7-8");
        assert_eq!(bitmap(&[0b10], 4), "1");
        assert_eq!(bitmap(&[], 4), "none");
    }

    #[test]
    fn vcpu_lines() {
        assert_eq!(
            vcpu_header(),
            "Name                                ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)\n"
        );
        let v = VcpuInfo {
            online: true,
            blocked: true,
            running: false,
            cpu_time_ns: 5_300_000_000,
            cpu: 1,
            hard: vec![3],
            soft: vec![3],
        };
        assert_eq!(
            vcpu_line("domu", 1, 0, &v, 2),
            "domu                                 1     0    1   -b-       5.3  all / all\n"
        );
        let off = VcpuInfo {
            online: false,
            hard: vec![1],
            soft: vec![3],
            ..Default::default()
        };
        assert_eq!(
            vcpu_line("domu", 1, 1, &off, 2),
            "domu                                 1     1    -   --p       0.0  0 / all\n"
        );
    }

    #[test]
    fn info_matches_the_sample() {
        let u = Uname {
            nodename: "dom0".into(),
            release: "6.1.0-56-arm64".into(),
            version: "#1 SMP Debian 6.1.192-2 (2026-11-16)".into(),
            machine: "aarch64".into(),
        };
        let p = PhysInfo {
            threads_per_core: 1,
            cores_per_socket: 1,
            nr_cpus: 2,
            max_cpu_id: 1,
            nr_nodes: 1,
            cpu_khz: 62500,
            capabilities: physcap::HVM | physcap::HAP | physcap::VPMU | physcap::GNTTAB_V1,
            total_pages: 2048 * 256,
            free_pages: 1504 * 256,
            ..Default::default()
        };
        let v = VersionInfo {
            major: 4,
            minor: 17,
            extra: ".7".into(),
            capabilities: "xen-3.0-aarch64 xen-3.0-armv7l ".into(),
            changeset: String::new(),
            commandline:
                "dom0_mem=512M console=dtuart dtuart=/pl011@9000000 loglvl=all guest_loglvl=all "
                    .into(),
            compiler: "aarch64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0".into(),
            compile_by: "pkg-xen-devel".into(),
            compile_domain: "lists.alioth.debian.org".into(),
            compile_date: "Wed Nov  4 16:52:28 UTC 2026".into(),
            pagesize: 4096,
            virt_start: 0x200000,
            build_id: "7a23ea1ef3374f2c4453d67a7962e1d695e9f270".into(),
        };
        let out = info(&u, &p, &v, "credit2", 0);
        assert_eq!(out, include_str!("../testdata/xl-info.txt"));
        assert_eq!(info_filter(&out, "free_memory"), "1504\n");
        assert_eq!(info_filter(&out, "virt_caps"), "hvm hap vpmu gnttab-v1\n");
        // A nonsense page size from the hypervisor does not crash xl info.
        for pagesize in [0, 3, u32::MAX] {
            let odd = VersionInfo {
                pagesize,
                ..v.clone()
            };
            assert!(info(&u, &p, &odd, "credit2", 0).contains("total_memory"));
        }
    }
}
