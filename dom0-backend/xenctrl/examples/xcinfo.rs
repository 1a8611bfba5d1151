//! `xcinfo`: print what xenctrl reads from the hypervisor (physinfo,
//! xen_version, scheduler, domain list), to try the library in Dom0.
//! Exits non-zero with one line on the first failure.

#[cfg(target_os = "linux")]
fn run() -> xenctrl::Result<()> {
    use xenctrl::xen_abi::sysctl as sc;
    let xc = xenctrl::Xc::open()?;
    let (major, minor) = xc.xen_version()?;
    println!(
        "xen_version        : {major}.{minor}{}",
        xc.xen_extraversion()?
    );
    println!("xen_caps           : {}", xc.xen_capabilities()?);
    println!("xen_pagesize       : {}", xc.xen_pagesize()?);
    println!("xen_changeset      : {}", xc.xen_changeset()?);
    let ci = xc.xen_compile_info()?;
    println!("cc_compiler        : {}", ci.compiler);
    println!("cc_compile_date    : {}", ci.compile_date);
    let p = xc.physinfo()?;
    println!("nr_cpus            : {}", p.nr_cpus);
    println!("max_cpu_id         : {}", p.max_cpu_id);
    println!("nr_nodes           : {}", p.nr_nodes);
    println!("cores_per_socket   : {}", p.cores_per_socket);
    println!("threads_per_core   : {}", p.threads_per_core);
    println!("cpu_mhz            : {}", p.cpu_khz / 1000);
    let caps = [
        (sc::XEN_SYSCTL_PHYSCAP_HVM, "hvm"),
        (sc::XEN_SYSCTL_PHYSCAP_PV, "pv"),
        (sc::XEN_SYSCTL_PHYSCAP_DIRECTIO, "directio"),
        (sc::XEN_SYSCTL_PHYSCAP_HAP, "hap"),
        (sc::XEN_SYSCTL_PHYSCAP_GNTTAB_V1, "gnttab-v1"),
        (sc::XEN_SYSCTL_PHYSCAP_GNTTAB_V2, "gnttab-v2"),
    ];
    let virt: Vec<&str> = caps
        .iter()
        .filter(|(b, _)| p.capabilities & b != 0)
        .map(|(_, n)| *n)
        .collect();
    println!("virt_caps          : {}", virt.join(" "));
    println!("total_memory       : {}", p.total_pages * 4 / 1024);
    println!("free_memory        : {}", p.free_pages * 4 / 1024);
    println!("sched_id           : {}", xc.sched_id()?);
    println!();
    println!(
        "{:<5} {:>10} {:>10} {:>5} {:>6} {:>12}  uuid",
        "ID", "Mem(MiB)", "MaxPages", "VCPUs", "State", "Time(s)"
    );
    for d in xc.domain_getinfolist(0, 1024)? {
        println!(
            "{:<5} {:>10} {:>10} {:>5} {:>6} {:>12.1}  {}",
            d.domid,
            d.mem_mib(),
            d.max_pages,
            d.nr_online_vcpus,
            d.xl_state(),
            d.cpu_time as f64 / 1e9,
            d.uuid_string()
        );
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn run() -> xenctrl::Result<()> {
    Err(xenctrl::Error::Invalid {
        op: "xcinfo",
        what: "needs Linux (Dom0)".into(),
    })
}

fn main() {
    if let Err(e) = run() {
        eprintln!("xcinfo: {e}");
        std::process::exit(1);
    }
}
