//! The verbs, over [`Hv`] and [`Store`]: domain lookup, `create` (config → builder → saved
//! config), `list`, `destroy`, `shutdown`/`reboot`, `pause`/`unpause`, `domid`, `domname`,
//! `vcpu-list`, `vcpu-pin`, `sched-credit`, `info`, `debug-keys`, `dmesg`. Output goes to the
//! given writers, so tests read it back.
//!
//! Invariants: a failing verb returns one line (xl's wording where xl has one) and has changed
//! nothing it could avoid changing; domain 0 is never destroyed or shut down; names and ids
//! from the command line are validated before any hypervisor call uses them.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::build::{self, BuildInput};
use crate::cfg::{DomainConfig, Settings, format_uuid};
use crate::devices::Host;
use crate::fmt;
use crate::sys::{DomInfo, ESRCH, Hv, Store, SysError, domain_name, reason, with_transaction};

/// A failed verb: the line to print on stderr.
#[derive(Debug, PartialEq, Eq)]
pub struct Fail(pub String);

impl From<SysError> for Fail {
    fn from(e: SysError) -> Fail {
        Fail(e.msg)
    }
}

pub type CmdResult = Result<(), Fail>;

/// Where oxl keeps what it must remember about its domains.
#[derive(Clone, Debug)]
pub struct Paths {
    /// `/var/lib/xen`: saved configurations (`userdata-d.<domid>.<uuid>.{xl,libxl-json}`).
    pub lib: PathBuf,
    /// `/var/run/xen`: pid files (`xenconsoled.pid`).
    pub run: PathBuf,
    /// `/var/log/xen`: the monitor's log (`xl-<name>.log`).
    pub log: PathBuf,
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            lib: "/var/lib/xen".into(),
            run: "/var/run/xen".into(),
            log: "/var/log/xen".into(),
        }
    }
}

impl Paths {
    fn saved(&self, domid: u32, uuid: &str, ext: &str) -> PathBuf {
        self.lib.join(format!("userdata-d.{domid}.{uuid}.{ext}"))
    }

    /// Saved files of `domid` (any uuid) with extension `ext`.
    fn saved_of(&self, domid: u32, ext: &str) -> Vec<PathBuf> {
        let prefix = format!("userdata-d.{domid}.");
        let suffix = format!(".{ext}");
        let Ok(rd) = std::fs::read_dir(&self.lib) else {
            return Vec::new();
        };
        rd.filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(&suffix))
            })
            .collect()
    }

    fn remove_saved(&self, domid: u32) {
        for ext in ["xl", "libxl-json"] {
            for p in self.saved_of(domid, ext) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Domain ids are below DOMID_FIRST_RESERVED.
const DOMID_FIRST_RESERVED: u32 = 0x7ff0;

/// Finds a domain by id or name, as `find_domain` (the message is xl's).
pub fn find_domain(hv: &dyn Hv, xs: &dyn Store, q: &str) -> Result<u32, Fail> {
    let invalid = || Fail(format!("{q} is an invalid domain identifier (rc=-6)"));
    if !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()) {
        let id: u32 = q.parse().map_err(|_| invalid())?;
        if id >= DOMID_FIRST_RESERVED || hv.domain_info(id)?.is_none() {
            return Err(invalid());
        }
        return Ok(id);
    }
    for d in hv.list_domains()? {
        if domain_name(xs, d.domid)?.as_deref() == Some(q) {
            return Ok(d.domid);
        }
    }
    Err(invalid())
}

fn named(hv: &dyn Hv, xs: &dyn Store) -> Result<Vec<(DomInfo, String)>, Fail> {
    hv.list_domains()?
        .into_iter()
        .map(|d| {
            let name = domain_name(xs, d.domid)?.unwrap_or_default();
            Ok((d, name))
        })
        .collect()
}

/// `xl list [-l] [-v] [dom]`.
pub fn list(
    hv: &dyn Hv,
    xs: &dyn Store,
    paths: &Paths,
    long: bool,
    verbose: bool,
    dom: Option<&str>,
    out: &mut dyn Write,
) -> CmdResult {
    let mut doms = named(hv, xs)?;
    if let Some(q) = dom {
        let id = find_domain(hv, xs, q)
            .map_err(|_| Fail(format!("Error: Domain '{q}' does not exist.")))?;
        doms.retain(|(d, _)| d.domid == id);
    }
    let text = if long {
        let mut entries = Vec::new();
        for (d, _) in &doms {
            let uuid = format_uuid(&d.handle);
            let Ok(s) = std::fs::read_to_string(paths.saved(d.domid, &uuid, "libxl-json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&s) else {
                continue;
            };
            entries.push((d.domid, v));
        }
        crate::json::list_long(&entries) + "\n"
    } else {
        fmt::list(&doms, verbose)
    };
    out.write_all(text.as_bytes())
        .map_err(|e| Fail(format!("writing the list: {e}")))
}

/// `xl domid <name>`.
pub fn domid(hv: &dyn Hv, xs: &dyn Store, name: &str, out: &mut dyn Write) -> CmdResult {
    for d in hv.list_domains()? {
        if domain_name(xs, d.domid)?.as_deref() == Some(name) {
            return writeln!(out, "{}", d.domid).map_err(|e| Fail(e.to_string()));
        }
    }
    Err(Fail(format!(
        "Can't get domid of domain name '{name}', maybe this domain does not exist."
    )))
}

/// `xl domname <id>`.
pub fn domname(hv: &dyn Hv, xs: &dyn Store, id: &str, out: &mut dyn Write) -> CmdResult {
    let digits: String = id.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return Err(Fail("Invalid domain id.".into()));
    }
    let domid: u32 = digits
        .parse()
        .map_err(|_| Fail("Invalid domain id.".into()))?;
    let name = match hv.domain_info(domid)? {
        Some(_) => domain_name(xs, domid)?,
        None => None,
    };
    match name {
        Some(n) => writeln!(out, "{n}").map_err(|e| Fail(e.to_string())),
        None => Err(Fail(format!(
            "Can't get domain name of domain id '{domid}', maybe this domain does not exist."
        ))),
    }
}

/// `xl pause` / `xl unpause`.
pub fn pause(hv: &dyn Hv, xs: &dyn Store, q: &str, unpause: bool) -> CmdResult {
    let d = find_domain(hv, xs, q)?;
    let r = if unpause { hv.unpause(d) } else { hv.pause(d) };
    r.map_err(|e| {
        Fail(format!(
            "{} domain {d} failed: {e}",
            if unpause { "unpausing" } else { "pausing" }
        ))
    })
}

/// The destroy path (libxl__destroy_domid): pause, remove the xenstore nodes and saved config,
/// destroydomain. Also used by the builder's caller and the monitor.
pub fn destroy_domid(
    hv: &dyn Hv,
    xs: &dyn Store,
    host: &dyn Host,
    paths: &Paths,
    domid: u32,
) -> Result<(), SysError> {
    if hv.domain_info(domid)?.is_none() {
        return Err(SysError {
            errno: Some(ESRCH),
            msg: format!("Domain {domid}:Non-existant domain"),
        });
    }
    let _ = hv.pause(domid);
    // Disks and vifs first (libxl's forced removal): their backends close, loop devices go.
    let _ = crate::devices::remove_all(xs, host, domid, crate::devices::DESTROY_TIMEOUT);
    let vm = xs.read(0, &format!("/local/domain/{domid}/vm"))?;
    let uuid = vm
        .as_deref()
        .and_then(|v| v.strip_prefix("/vm/"))
        .unwrap_or("");
    for p in build::domain_roots(domid, uuid) {
        if p == "/vm/" {
            continue;
        }
        xs.rm(0, &p)?;
    }
    paths.remove_saved(domid);
    hv.destroy(domid)
}

/// `xl destroy <dom>`.
pub fn destroy(hv: &dyn Hv, xs: &dyn Store, host: &dyn Host, paths: &Paths, q: &str) -> CmdResult {
    let d = find_domain(hv, xs, q)?;
    if d == 0 {
        return Err(Fail("Not destroying domain 0; use -f to force.".into()));
    }
    destroy_domid(hv, xs, host, paths, d).map_err(|e| Fail(format!("destroy failed (rc=-3): {e}")))
}

/// How long `block-detach`/`network-detach` wait for the frontend to let go (libxl's
/// LIBXL_DESTROY_TIMEOUT) before forcing the device off.
const DETACH_TIMEOUT: Duration = crate::devices::DESTROY_TIMEOUT;

/// A domain for a device verb: it exists and is not Dom0.
fn device_domain(hv: &dyn Hv, xs: &dyn Store, q: &str) -> Result<u32, Fail> {
    let d = find_domain(hv, xs, q)?;
    if d == 0 {
        return Err(Fail("Dom0's devices are not managed by xl".into()));
    }
    Ok(d)
}

/// `xl block-attach <dom> <spec>`.
pub fn block_attach(
    hv: &dyn Hv,
    xs: &dyn Store,
    host: &dyn Host,
    q: &str,
    spec: &str,
) -> CmdResult {
    let d = device_domain(hv, xs, q)?;
    let disk = crate::devspec::parse_disk(spec).map_err(|e| Fail(e.0))?;
    crate::devices::attach_disk(xs, host, d, &disk, crate::devices::DEVICE_TIMEOUT)
        .map_err(|e| Fail(format!("libxl_device_disk_add failed: {e}")))
}

/// `xl network-attach <dom> [key=value...]`.
pub fn network_attach(
    hv: &dyn Hv,
    xs: &dyn Store,
    host: &dyn Host,
    q: &str,
    spec: &str,
    random: &mut dyn FnMut(&mut [u8]) -> Result<(), String>,
) -> CmdResult {
    let d = device_domain(hv, xs, q)?;
    let vif = crate::devspec::parse_vif(spec).map_err(|e| Fail(e.0))?;
    crate::devices::attach_vif(xs, host, d, &vif, random, crate::devices::DEVICE_TIMEOUT)
        .map(drop)
        .map_err(|e| Fail(format!("libxl_device_nic_add failed: {e}")))
}

/// `xl block-detach <dom> <vdev|devid>` / `xl network-detach <dom> <index|mac>`.
pub fn detach(
    hv: &dyn Hv,
    xs: &dyn Store,
    host: &dyn Host,
    q: &str,
    kind: &str,
    dev: &str,
) -> CmdResult {
    let d = device_domain(hv, xs, q)?;
    let id = if kind == "vbd" {
        crate::devspec::vdev_number(dev)
            .ok_or_else(|| Fail(format!("Error: Device {dev} not connected.")))?
    } else {
        crate::devices::vif_handle(xs, d, dev).map_err(|e| Fail(format!("Error: {e}")))?
    };
    match crate::devices::detach(xs, host, d, kind, id, DETACH_TIMEOUT) {
        Ok(false) => Ok(()),
        Ok(true) => {
            eprintln!(
                "libxl: the guest did not release {kind} {id} within {} s: it was forced off",
                DETACH_TIMEOUT.as_secs()
            );
            Ok(())
        }
        Err(e) => Err(Fail(format!("Error: {e}"))),
    }
}

/// `xl block-list <dom>` / `xl network-list <dom>` (`net`).
pub fn device_list(
    hv: &dyn Hv,
    xs: &dyn Store,
    doms: &[String],
    net: bool,
    out: &mut dyn Write,
) -> CmdResult {
    let mut text = String::new();
    for (i, q) in doms.iter().enumerate() {
        let d = find_domain(hv, xs, q)?;
        let t = if net {
            crate::devices::network_list(xs, d)?
        } else {
            crate::devices::block_list(xs, d)?
        };
        // xl prints the header once per domain, as here.
        let _ = i;
        text.push_str(&t);
    }
    out.write_all(text.as_bytes())
        .map_err(|e| Fail(e.to_string()))
}

/// Writes `poweroff`/`reboot` to `control/shutdown` (libxl__domain_pvcontrol).
pub fn pvcontrol(xs: &dyn Store, domid: u32, cmd: &str) -> Result<(), SysError> {
    let path = format!("/local/domain/{domid}/control/shutdown");
    with_transaction(xs, |tx| {
        if xs.read(tx, &format!("/local/domain/{domid}"))?.is_none() {
            return Err(SysError::msg(format!(
                "domain {domid} has no xenstore directory"
            )));
        }
        xs.write(tx, &path, cmd)
    })
}

/// Waits until `domid` has shut down or is gone, logging as xl does. Once it has shut down,
/// waits up to `grace` more for it to be gone (its monitor destroys it on `destroy`
/// actions), so that `xl shutdown -w` returns with the domain gone when it is going away.
pub fn wait_shutdown(
    hv: &dyn Hv,
    xs: &dyn Store,
    domid: u32,
    grace: Duration,
    log: &mut dyn Write,
) -> CmdResult {
    let token = format!("oxl-wait-{domid}");
    xs.watch("@releaseDomain", &token)?;
    let _ = writeln!(log, "Waiting for 1 domains");
    let mut shut_at: Option<std::time::Instant> = None;
    let res = loop {
        match hv.domain_info(domid)? {
            None => {
                if shut_at.is_none() {
                    let _ = writeln!(log, "Domain {domid} has been destroyed");
                }
                break Ok(());
            }
            Some(i) if i.dying() && shut_at.is_none() => {
                let _ = writeln!(log, "Domain {domid} has been destroyed");
                break Ok(());
            }
            Some(i) if i.shutdown() && shut_at.is_none() => {
                let _ = writeln!(
                    log,
                    "Domain {domid} has been shut down, reason code {}",
                    i.shutdown_reason()
                );
                shut_at = Some(std::time::Instant::now());
            }
            _ => {}
        }
        if shut_at.is_some_and(|t| t.elapsed() >= grace) {
            break Ok(());
        }
        xs.wait_watch(Some(Duration::from_millis(500)))?;
    };
    let _ = xs.unwatch("@releaseDomain", &token);
    res
}

/// `xl shutdown` / `xl reboot` `[-w] [-a] [dom]`; `wait` = `-w` with the grace time of
/// [`wait_shutdown`].
pub fn shutdown(
    hv: &dyn Hv,
    xs: &dyn Store,
    q: Option<&str>,
    all: bool,
    wait: Option<Duration>,
    reboot: bool,
    err: &mut dyn Write,
) -> CmdResult {
    let targets: Vec<u32> = if all {
        hv.list_domains()?
            .into_iter()
            .map(|d| d.domid)
            .filter(|&d| d != 0)
            .collect()
    } else {
        let q = q.ok_or_else(|| Fail("You must specify -a or a domain id.".into()))?;
        vec![find_domain(hv, xs, q)?]
    };
    let (verb, cmd) = if reboot {
        ("Rebooting", "reboot")
    } else {
        ("Shutting down", "poweroff")
    };
    for &d in &targets {
        let _ = writeln!(err, "{verb} domain {d}");
        if d == 0 {
            return Err(Fail(format!(
                "{} failed: domain 0 is the control domain",
                if reboot { "reboot" } else { "shutdown" }
            )));
        }
        pvcontrol(xs, d, cmd).map_err(|e| {
            Fail(format!(
                "{} failed (rc=-3): {e}",
                if reboot { "reboot" } else { "shutdown" }
            ))
        })?;
    }
    if let Some(grace) = wait {
        for &d in &targets {
            wait_shutdown(hv, xs, d, grace, err)?;
        }
    }
    Ok(())
}

/// `xl vcpu-list [dom...]`.
pub fn vcpu_list(hv: &dyn Hv, xs: &dyn Store, doms: &[String], out: &mut dyn Write) -> CmdResult {
    let phys = hv.physinfo()?;
    let nr = phys.max_cpu_id as usize + 1;
    let ids: Vec<u32> = if doms.is_empty() {
        hv.list_domains()?.into_iter().map(|d| d.domid).collect()
    } else {
        doms.iter()
            .map(|q| find_domain(hv, xs, q))
            .collect::<Result<_, _>>()?
    };
    let mut text = fmt::vcpu_header();
    for d in ids {
        let Some(info) = hv.domain_info(d)? else {
            continue;
        };
        if info.max_vcpu_id == u32::MAX {
            continue;
        }
        let name = domain_name(xs, d)?.unwrap_or_default();
        for v in 0..=info.max_vcpu_id.min(4095) {
            let vi = hv.vcpu_info(d, v)?;
            text.push_str(&fmt::vcpu_line(&name, d, v, &vi, nr));
        }
    }
    out.write_all(text.as_bytes())
        .map_err(|e| Fail(e.to_string()))
}

/// `xl info [name]`.
pub fn info(hv: &dyn Hv, uname: &fmt::Uname, name: Option<&str>, out: &mut dyn Write) -> CmdResult {
    let p = hv
        .physinfo()
        .map_err(|e| Fail(format!("libxl_physinfo failed: {e}")))?;
    let v = hv
        .version()
        .map_err(|e| Fail(format!("libxl_get_version_info failed: {e}")))?;
    let s = hv
        .sched_id()
        .map_err(|e| Fail(format!("get_scheduler sysctl failed: {e}")))?;
    let free = hv.free_cpus().unwrap_or(0);
    let all = fmt::info(uname, &p, &v, fmt::scheduler_name(s), free);
    let text = match name {
        Some(n) => fmt::info_filter(&all, n),
        None => all,
    };
    out.write_all(text.as_bytes())
        .map_err(|e| Fail(e.to_string()))
}

/// Everything `create` needs from outside the hypervisor/xenstore.
pub struct CreateEnv<'a> {
    pub paths: &'a Paths,
    /// 16 + 128 random bytes (uuid, rng-seed).
    pub random: &'a mut dyn FnMut(&mut [u8]) -> Result<(), String>,
    /// `/vm/<uuid>/start_time` (`secs.centisecs`) at the moment of a (re)create.
    pub now: &'a dyn Fn() -> String,
    pub console_timeout: Duration,
    /// Loop devices and interfaces for the domain's disks and vifs.
    pub host: &'a dyn Host,
    /// Bound of each wait for a device backend.
    pub device_timeout: Duration,
}

/// An I/O error as `strerror` words it (no Rust `(os error N)` suffix).
pub fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// Whether the daemon whose pid file is `pidfile` runs (the file names a live process), as
/// the init scripts check it; a stale file left by a dead daemon does not count.
pub fn daemon_alive(pidfile: &std::path::Path) -> bool {
    std::fs::read_to_string(pidfile)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|pid| pid > 0 && std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// A parsed configuration with the text it came from (saved for restarts).
pub struct Loaded {
    pub cfg: DomainConfig,
    /// The effective configuration text (file + overrides), as saved in `userdata-d.*.xl`.
    pub text: String,
}

/// Reads and parses `file` with `key=value` overrides.
pub fn load_config(file: &str, overrides: &[String]) -> Result<Loaded, Fail> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        Fail(format!(
            "Failed to read config file: {file}: {}",
            io_text(&e)
        ))
    })?;
    let settings = Settings::parse(file, &text, overrides).map_err(|e| Fail(e.to_string()))?;
    let cfg = settings.domain_config().map_err(|e| Fail(e.to_string()))?;
    let mut saved = text;
    for o in overrides {
        saved.push('\n');
        saved.push_str(o);
    }
    saved.push('\n');
    Ok(Loaded { cfg, text: saved })
}

/// `xl create`: builds the domain (paused), saves its configuration, runs `before_unpause`
/// (e.g. starting the monitor: a failure destroys the domain and is returned as it is), then
/// unpauses it unless `paused` (last, as xl: the new guest does not compete with the rest of
/// the creation for the CPUs). Returns the domid.
pub fn create(
    hv: &dyn Hv,
    xs: &dyn Store,
    loaded: &Loaded,
    paused: bool,
    env: &mut CreateEnv<'_>,
    progress: &mut dyn FnMut(&str),
    before_unpause: &mut dyn FnMut(u32) -> Result<(), Fail>,
) -> Result<u32, Fail> {
    let cfg = &loaded.cfg;
    let fail = |m: String| Fail(format!("xl: creating domain \"{}\": {m}", cfg.name));
    for (d, name) in named(hv, xs)? {
        if name == cfg.name {
            return Err(fail(format!(
                "a domain with that name already exists (domid {}): choose another name",
                d.domid
            )));
        }
    }
    progress("@name check");
    crate::devices::precheck(xs, env.host, cfg).map_err(fail)?;
    let kernel =
        build::open_kernel(&cfg.kernel).map_err(|e| fail(format!("kernel {}: {e}", cfg.kernel)))?;
    progress("@kernel read + probe");
    let ramdisk = match &cfg.ramdisk {
        Some(r) => {
            Some(std::fs::read(r).map_err(|e| fail(format!("ramdisk {r}: {}", io_text(&e))))?)
        }
        None => None,
    };
    progress("@ramdisk read");
    let mut rnd = [0u8; 16 + 128];
    (env.random)(&mut rnd).map_err(|e| fail(format!("random bytes: {e}")))?;
    let uuid = cfg.uuid.unwrap_or_else(|| {
        let mut u: [u8; 16] = rnd[..16].try_into().expect("16 bytes");
        u[6] = (u[6] & 0x0f) | 0x40;
        u[8] = (u[8] & 0x3f) | 0x80;
        u
    });
    let input = BuildInput {
        cfg,
        kernel,
        ramdisk,
        uuid,
        rng_seed: rnd[16..].try_into().expect("128 bytes"),
        start_time: (env.now)(),
        paused: true,
        wait_console: daemon_alive(&env.paths.run.join("xenconsoled.pid")),
        console_timeout: env.console_timeout,
    };
    let domid = build::build(hv, xs, &input, progress).map_err(|e| fail(e.0))?;

    // Disks and vifs (the domain is still paused): nodes, backends, hotplug.
    if !cfg.disk_devs.is_empty() || !cfg.vif_devs.is_empty() {
        let added = crate::devices::add_all(
            xs,
            env.host,
            domid,
            cfg,
            env.random,
            env.device_timeout,
            progress,
        );
        if let Err(e) = added {
            let _ = destroy_domid(hv, xs, env.host, env.paths, domid);
            return Err(fail(e));
        }
        progress("@devices");
    }

    // Save the configuration (`xl list -l`, restarts). Failure here undoes the domain too.
    let u = format_uuid(&uuid);
    let sched = hv.sched_id().map(fmt::scheduler_name).unwrap_or("credit2");
    let json = crate::json::to_yajl(&crate::json::domain_config_json(cfg, &uuid, sched)) + "\n";
    let save = || -> std::io::Result<()> {
        std::fs::create_dir_all(&env.paths.lib)?;
        std::fs::write(env.paths.saved(domid, &u, "xl"), &loaded.text)?;
        std::fs::write(env.paths.saved(domid, &u, "libxl-json"), json.as_bytes())
    };
    let saved = save();
    progress("@configuration saved");
    if let Err(e) = saved {
        let _ = destroy_domid(hv, xs, env.host, env.paths, domid);
        return Err(fail(format!(
            "saving the configuration in {}: {e}",
            env.paths.lib.display()
        )));
    }
    if let Err(e) = before_unpause(domid) {
        let _ = destroy_domid(hv, xs, env.host, env.paths, domid);
        return Err(e);
    }
    if !paused {
        if let Err(e) = hv.unpause(domid) {
            let _ = destroy_domid(hv, xs, env.host, env.paths, domid);
            return Err(fail(format!("unpause: {e}")));
        }
        progress("@unpause");
    }
    Ok(domid)
}

/// The saved configuration text of `domid` (for restarts).
pub fn saved_config(paths: &Paths, domid: u32) -> Option<String> {
    paths
        .saved_of(domid, "xl")
        .first()
        .and_then(|p| std::fs::read_to_string(p).ok())
}

/// What the monitor should do after looking at the domain.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Keep waiting.
    Wait,
    /// The domain is gone; the monitor ends.
    Gone,
    /// Shut down with this reason: apply the matching `on_*` action.
    Shutdown(u32),
}

/// Classifies a domain's state for the monitor.
pub fn monitor_step(info: Option<&DomInfo>) -> Next {
    match info {
        None => Next::Gone,
        Some(i) if i.dying() => Next::Gone,
        Some(i) if i.shutdown() => Next::Shutdown(i.shutdown_reason()),
        Some(_) => Next::Wait,
    }
}

/// The action configured for a shutdown reason (xl's `handle_domain_death`).
pub fn action_for(cfg: &DomainConfig, why: u32) -> Option<crate::cfg::Action> {
    use crate::cfg::Action;
    match why {
        reason::POWEROFF => Some(cfg.on_poweroff),
        reason::REBOOT => Some(cfg.on_reboot),
        reason::SUSPEND => None,
        reason::CRASH => Some(cfg.on_crash),
        reason::WATCHDOG => Some(cfg.on_watchdog),
        reason::SOFT_RESET => Some(Action::Restart),
        _ => Some(Action::Destroy),
    }
}

/// Runs the monitor of `domid` until the domain is gone or an action ends it; restarts
/// re-create the domain from `loaded` (the monitor then follows the new domain).
pub fn monitor(
    hv: &dyn Hv,
    xs: &dyn Store,
    mut domid: u32,
    loaded: &Loaded,
    env: &mut CreateEnv<'_>,
    log: &mut dyn Write,
) -> CmdResult {
    use crate::cfg::Action;
    let token = "oxl-monitor";
    xs.watch("@releaseDomain", token)?;
    let _ = writeln!(
        log,
        "Waiting for domain {} (domid {domid}) to die [pid {}]",
        loaded.cfg.name,
        std::process::id()
    );
    loop {
        match monitor_step(hv.domain_info(domid)?.as_ref()) {
            Next::Wait => {
                xs.wait_watch(Some(Duration::from_secs(5)))?;
            }
            Next::Gone => {
                let _ = writeln!(log, "Domain {domid} has been destroyed.");
                return Ok(());
            }
            Next::Shutdown(why) => {
                let _ = writeln!(
                    log,
                    "Domain {domid} has shut down, reason code {why} {why:#x}"
                );
                let Some(action) = action_for(&loaded.cfg, why) else {
                    let _ = writeln!(log, "Domain has suspended.");
                    return Ok(());
                };
                let _ = writeln!(
                    log,
                    "Action for shutdown reason code {why} is {}",
                    action.name()
                );
                let restart = match action {
                    Action::Preserve => {
                        let _ = writeln!(log, "Done. Exiting now");
                        return Ok(());
                    }
                    Action::Destroy | Action::CoredumpDestroy => false,
                    Action::Restart
                    | Action::RenameRestart
                    | Action::CoredumpRestart
                    | Action::SoftReset => true,
                };
                let _ = writeln!(
                    log,
                    "Domain {domid} needs to be cleaned up: destroying the domain"
                );
                if let Err(e) = destroy_domid(hv, xs, env.host, env.paths, domid) {
                    let _ = writeln!(log, "destroy failed: {e}");
                }
                if !restart {
                    let _ = writeln!(log, "Done. Exiting now");
                    return Ok(());
                }
                // Wait for the old domain to be gone before reusing its name.
                for _ in 0..100 {
                    if hv.domain_info(domid)?.is_none() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = writeln!(log, "Done. Rebooting now");
                domid = create(
                    hv,
                    xs,
                    loaded,
                    false,
                    env,
                    &mut |l| {
                        if !l.starts_with('@') {
                            let _ = writeln!(log, "{l}");
                        }
                    },
                    &mut |_| Ok(()),
                )?;
                let _ = writeln!(
                    log,
                    "Waiting for domain {} (domid {domid}) to die [pid {}]",
                    loaded.cfg.name,
                    std::process::id()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakeHv, FakeStore};
    use crate::sys::dominf;
    use std::path::Path;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("oxl-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A directory with a kernel, ramdisk and config; returns (dir, config path).
    fn setup(name: &str, extra: &str) -> (PathBuf, String) {
        let d = tmp(name);
        let mut k = vec![0u8; 1 << 20];
        k[56..60].copy_from_slice(b"ARM\x64");
        std::fs::write(d.join("Image"), &k).unwrap();
        std::fs::write(d.join("initrd"), vec![1u8; 5000]).unwrap();
        let cfg = format!(
            "name = \"domu\"\nkernel = \"{}\"\nramdisk = \"{}\"\nmemory = 64\nextra = \"console=hvc0\"\n{extra}",
            d.join("Image").display(),
            d.join("initrd").display()
        );
        let p = d.join("domu.cfg");
        std::fs::write(&p, cfg).unwrap();
        (d, p.to_string_lossy().into_owned())
    }

    /// A create environment with deterministic "random" bytes (the small allocations are leaked:
    /// tests only).
    fn env_for(paths: &Paths) -> CreateEnv<'static> {
        let paths: &'static Paths = Box::leak(Box::new(paths.clone()));
        let mut seed = 0u8;
        let random: &'static mut dyn FnMut(&mut [u8]) -> Result<(), String> =
            Box::leak(Box::new(move |b: &mut [u8]| {
                for x in b.iter_mut() {
                    seed = seed.wrapping_add(37);
                    *x = seed;
                }
                Ok(())
            }));
        CreateEnv {
            paths,
            random,
            now: &|| "1.00".to_string(),
            console_timeout: Duration::from_millis(20),
            host: Box::leak(Box::new(crate::devices::fake::FakeHost::new())),
            device_timeout: Duration::from_millis(200),
        }
    }

    /// Removes a test's directory (the parent of its `lib`).
    fn cleanup(paths: &Paths) {
        if let Some(d) = paths.lib.parent() {
            let _ = std::fs::remove_dir_all(d);
        }
    }

    fn paths_in(d: &Path) -> Paths {
        Paths {
            lib: d.join("lib"),
            run: d.join("run"),
            log: d.join("log"),
        }
    }

    fn created(name: &str, extra: &str) -> (FakeHv, FakeStore, Paths, Loaded, u32) {
        let (d, cfgp) = setup(name, extra);
        let paths = paths_in(&d);
        let hv = FakeHv::new();
        let xs = FakeStore::new();
        let loaded = load_config(&cfgp, &["vcpus=1".into()]).unwrap();
        let mut env = env_for(&paths);
        let domid = create(&hv, &xs, &loaded, false, &mut env, &mut |_| {}, &mut |_| {
            Ok(())
        })
        .unwrap();
        (hv, xs, paths, loaded, domid)
    }

    /// Marks `d` shut down for `why`, as Xen reports it (code in bits 16-23).
    fn shut(hv: &FakeHv, d: u32, why: u32) {
        let mut s = hv.0.borrow_mut();
        let f = &mut s.domains.get_mut(&d).unwrap().info.flags;
        *f = (*f & 0xffff) | dominf::SHUTDOWN | (why << 16);
    }

    #[test]
    fn create_list_destroy() {
        let (hv, xs, paths, loaded, id) = created("cld", "");
        assert_eq!(id, 1);
        assert!(loaded.text.ends_with("\nvcpus=1\n"));
        // The saved config is there and `list -l` shows it.
        let mut out = Vec::new();
        list(&hv, &xs, &paths, true, false, None, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("[\n    {\n        \"domid\": 1,\n        \"config\": {"),
            "{s}"
        );
        assert!(s.ends_with("}\n]\n\n"));
        // Plain list: Domain-0 and domu.
        let mut out = Vec::new();
        list(&hv, &xs, &paths, false, false, None, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.lines().count(), 3);
        assert!(
            s.lines()
                .nth(2)
                .unwrap()
                .starts_with("domu                                         1    64     1     "),
            "{s}"
        );
        let mut out = Vec::new();
        list(&hv, &xs, &paths, false, false, Some("domu"), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
        let mut out = Vec::new();
        assert_eq!(
            list(&hv, &xs, &paths, false, false, Some("nope"), &mut out),
            Err(Fail("Error: Domain 'nope' does not exist.".into()))
        );
        // Same name again: refused before anything is created.
        let mut env = env_for(&paths);
        let e = create(&hv, &xs, &loaded, false, &mut env, &mut |_| {}, &mut |_| {
            Ok(())
        })
        .unwrap_err();
        assert!(
            e.0.starts_with(
                "xl: creating domain \"domu\": a domain with that name already exists (domid 1)"
            ),
            "{}",
            e.0
        );
        // domid / domname.
        let mut out = Vec::new();
        domid(&hv, &xs, "domu", &mut out).unwrap();
        assert_eq!(out, b"1\n");
        let mut out = Vec::new();
        domname(&hv, &xs, "1", &mut out).unwrap();
        assert_eq!(out, b"domu\n");
        assert!(
            domname(&hv, &xs, "x", &mut Vec::new())
                .unwrap_err()
                .0
                .starts_with("Invalid domain id.")
        );
        assert!(
            domname(&hv, &xs, "9", &mut Vec::new())
                .unwrap_err()
                .0
                .starts_with("Can't get domain name of domain id '9'")
        );
        assert!(
            domid(&hv, &xs, "zz", &mut Vec::new())
                .unwrap_err()
                .0
                .starts_with("Can't get domid of domain name 'zz'")
        );
        // Destroy: gone from the hypervisor, xenstore and /var/lib/xen.
        assert_eq!(
            destroy(
                &hv,
                &xs,
                &crate::devices::fake::FakeHost::new(),
                &paths,
                "0"
            ),
            Err(Fail("Not destroying domain 0; use -f to force.".into()))
        );
        assert_eq!(
            destroy(
                &hv,
                &xs,
                &crate::devices::fake::FakeHost::new(),
                &paths,
                "7"
            ),
            Err(Fail("7 is an invalid domain identifier (rc=-6)".into()))
        );
        destroy(
            &hv,
            &xs,
            &crate::devices::fake::FakeHost::new(),
            &paths,
            "domu",
        )
        .unwrap();
        assert!(hv.domain(1).is_none());
        assert!(xs.paths().iter().all(|p| !p.starts_with("/local/domain/1")
            && !p.starts_with("/vm/")
            && !p.starts_with("/libxl/1")));
        assert!(
            xs.paths()
                .iter()
                .all(|p| !p.starts_with("/local/domain/0/backend/console/1"))
        );
        assert!(saved_config(&paths, 1).is_none());
        cleanup(&paths);
    }

    #[test]
    fn create_errors_are_one_line_and_leave_nothing() {
        let (d, cfgp) = setup("errs", "");
        let paths = paths_in(&d);
        let hv = FakeHv::new();
        let xs = FakeStore::new();
        std::fs::remove_file(d.join("initrd")).unwrap();
        let loaded = load_config(&cfgp, &[]).unwrap();
        let mut env = env_for(&paths);
        let e = create(&hv, &xs, &loaded, false, &mut env, &mut |_| {}, &mut |_| {
            Ok(())
        })
        .unwrap_err();
        assert!(
            e.0.starts_with("xl: creating domain \"domu\": ramdisk "),
            "{}",
            e.0
        );
        assert!(!e.0.contains('\n'));
        assert!(hv.domain(1).is_none());
        // Memory failure in the middle: no domain, no nodes, no saved file.
        std::fs::write(d.join("initrd"), b"x").unwrap();
        hv.0.borrow_mut().fail = Some(("populate", crate::sys::ENOMEM));
        let e = create(&hv, &xs, &loaded, false, &mut env, &mut |_| {}, &mut |_| {
            Ok(())
        })
        .unwrap_err();
        assert_eq!(
            e.0,
            "xl: creating domain \"domu\": populate RAM: ENOMEM (Out of memory)"
        );
        assert!(hv.domain(1).is_none());
        assert!(saved_config(&paths, 1).is_none());
        assert!(!xs.paths().iter().any(|p| p.starts_with("/local/domain/1")));
        // Config errors carry file:line.
        std::fs::write(&cfgp, "name='x'\nmemroy=3\n").unwrap();
        let e = load_config(&cfgp, &[]).err().unwrap();
        assert_eq!(e.0, format!("{cfgp}:2: unknown key \"memroy\""));
        let e = load_config("/nonexistent/x.cfg", &[]).err().unwrap();
        assert!(
            e.0.starts_with("Failed to read config file: /nonexistent/x.cfg: "),
            "{}",
            e.0
        );
        cleanup(&paths);
    }

    #[test]
    fn daemon_pid_files() {
        let d = tmp("pid");
        let p = d.join("x.pid");
        assert!(!daemon_alive(&p));
        std::fs::write(&p, format!("{}\n", std::process::id())).unwrap();
        assert!(daemon_alive(&p));
        std::fs::write(&p, "999999999\n").unwrap();
        assert!(!daemon_alive(&p));
        std::fs::write(&p, "garbage").unwrap();
        assert!(!daemon_alive(&p));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn shutdown_pause_vcpus() {
        let (hv, xs, paths, _loaded, d) = created("spv", "");
        let mut err = Vec::new();
        shutdown(&hv, &xs, Some("domu"), false, None, false, &mut err).unwrap();
        assert_eq!(
            xs.value("/local/domain/1/control/shutdown").as_deref(),
            Some("poweroff")
        );
        assert_eq!(String::from_utf8(err).unwrap(), "Shutting down domain 1\n");
        shutdown(&hv, &xs, Some("1"), false, None, true, &mut Vec::new()).unwrap();
        assert_eq!(
            xs.value("/local/domain/1/control/shutdown").as_deref(),
            Some("reboot")
        );
        assert_eq!(
            shutdown(&hv, &xs, None, false, None, false, &mut Vec::new()),
            Err(Fail("You must specify -a or a domain id.".into()))
        );
        // -w: returns once the domain reports shutdown.
        shut(&hv, d, reason::POWEROFF);
        let mut log = Vec::new();
        shutdown(&hv, &xs, None, true, Some(Duration::ZERO), false, &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.ends_with("Waiting for 1 domains\nDomain 1 has been shut down, reason code 0\n"),
            "{log}"
        );
        // A domain that stays shut down (preserve): -w gives up after the grace time.
        let t = std::time::Instant::now();
        wait_shutdown(&hv, &xs, d, Duration::from_millis(300), &mut Vec::new()).unwrap();
        assert!(t.elapsed() >= Duration::from_millis(300) && t.elapsed() < Duration::from_secs(5));
        pause(&hv, &xs, "domu", false).unwrap();
        assert!(hv.domain(1).unwrap().info.paused());
        pause(&hv, &xs, "domu", true).unwrap();
        assert!(!hv.domain(1).unwrap().info.paused());
        let mut out = Vec::new();
        vcpu_list(&hv, &xs, &["domu".into()], &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s.lines().nth(1).unwrap(),
            "domu                                 1     0    0   -b-       5.3  all / all"
        );
        cleanup(&paths);
    }

    #[test]
    fn sched_credit_and_vcpu_pin() {
        let (hv, xs, paths, _loaded, d) = created("domu", "");
        let run = |o: SchedCreditOpts| {
            let mut out = Vec::new();
            sched_credit(&hv, &xs, &o, &mut out).map(|()| String::from_utf8(out).unwrap())
        };
        let dom = |w: Option<i64>, c: Option<i64>| SchedCreditOpts {
            domain: Some("domu".into()),
            weight: w,
            cap: c,
            ..Default::default()
        };
        // Set, then read back in xl's format.
        assert_eq!(run(dom(Some(512), Some(25))).unwrap(), "");
        assert_eq!(
            run(dom(None, None)).unwrap(),
            "Name                                ID Weight  Cap\n\
             domu                                 1    512   25\n"
        );
        // libxl's range checks: nothing changed.
        for (w, c, msg) in [
            (Some(0), None, "Cpu weight out of range"),
            (Some(70000), None, "Cpu weight out of range"),
            (
                None,
                Some(101),
                "Cpu cap out of range, valid range is from 0 to 100",
            ),
            (None, Some(-1), "Cpu cap out of range"),
        ] {
            let e = run(dom(w, c)).unwrap_err();
            assert!(e.0.contains(msg), "{w:?}/{c:?}: {}", e.0);
            assert!(
                e.0.ends_with("libxl_domain_sched_params_set failed."),
                "{}",
                e.0
            );
        }
        assert_eq!(hv.domain(d).unwrap().sched, (512, 25));
        // The whole pool.
        let all = run(SchedCreditOpts::default()).unwrap();
        assert_eq!(
            all.lines().collect::<Vec<_>>(),
            [
                "Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us",
                "Name                                ID Weight  Cap",
                "Domain-0                             0    256    0",
                "domu                                 1    512   25",
            ]
        );
        // Pool parameters.
        let s = |t: Option<i64>, r: Option<i64>| SchedCreditOpts {
            schedparam: true,
            tslice: t,
            ratelimit: r,
            ..Default::default()
        };
        assert_eq!(run(s(Some(10), Some(500))).unwrap(), "");
        assert_eq!(
            run(s(None, None)).unwrap(),
            "Cpupool Pool-0: tslice=10ms ratelimit=500us migration-delay=0us\n"
        );
        assert!(run(s(Some(0), None)).is_err());
        assert!(
            run(s(Some(1), Some(5000))).is_err(),
            "ratelimit above tslice"
        );
        // xl's misuse messages.
        let e = run(SchedCreditOpts {
            weight: Some(5),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.0, "Must specify a domain.");
        let e = run(SchedCreditOpts {
            domain: Some("domu".into()),
            schedparam: true,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.0,
            "Specifying a cpupool or schedparam is not allowed with domain options."
        );
        let e = run(SchedCreditOpts {
            tslice: Some(5),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(
            e.0,
            "Must specify schedparam to set schedule parameter values."
        );

        // vcpu-pin: hard, soft, `-` keeps; shown by vcpu-list.
        vcpu_pin(&hv, &xs, false, "domu", "0", "1", Some("0-1")).unwrap();
        vcpu_pin(&hv, &xs, false, "domu", "0", "-", Some("0")).unwrap();
        let mut out = Vec::new();
        vcpu_list(&hv, &xs, &["domu".into()], &mut out).unwrap();
        let l = String::from_utf8(out).unwrap();
        assert!(l.lines().nth(1).unwrap().ends_with("1 / 0"), "{l}");
        let e = vcpu_pin(&hv, &xs, true, "domu", "all", "1", None).unwrap_err();
        assert_eq!(e.0, "Error: --force and 'all' as VCPU not allowed.");
        let e = vcpu_pin(&hv, &xs, false, "domu", "7", "1", None).unwrap_err();
        assert_eq!(e.0, "Could not set affinity for vcpu `7'.");
        assert!(vcpu_pin(&hv, &xs, false, "domu", "0", "5", None).is_err());
        vcpu_pin(&hv, &xs, false, "domu", "all", "all", Some("all")).unwrap();
        cleanup(&paths);
    }

    #[test]
    fn monitor_actions() {
        // on_poweroff=destroy: the monitor destroys the domain and ends.
        let (hv, xs, paths, loaded, d) = created("mon1", "");
        shut(&hv, d, reason::POWEROFF);
        let mut env = env_for(&paths);
        let mut log = Vec::new();
        monitor(&hv, &xs, d, &loaded, &mut env, &mut log).unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(
            log.contains("Action for shutdown reason code 0 is destroy"),
            "{log}"
        );
        assert!(hv.domain(d).is_none());
        cleanup(&paths);
        // on_reboot=restart: destroyed and created again (new domid 5), then followed until gone.
        let (hv, xs, paths, loaded, d) = created("mon2", "on_crash='preserve'");
        shut(&hv, d, reason::REBOOT);
        hv.0.borrow_mut().next_domid = 5;
        assert_eq!(
            monitor_step(hv.domain_info(d).unwrap().as_ref()),
            Next::Shutdown(1)
        );
        assert_eq!(
            action_for(&loaded.cfg, 1),
            Some(crate::cfg::Action::Restart)
        );
        assert_eq!(
            action_for(&loaded.cfg, 3),
            Some(crate::cfg::Action::Preserve)
        );
        let mut env = env_for(&paths);
        let mut log = Vec::new();
        monitor_until_restart(&hv, &xs, d, &loaded, &mut env, &mut log).unwrap();
        assert!(hv.domain(d).is_none());
        let log = String::from_utf8(log).unwrap();
        assert!(log.contains("Done. Rebooting now"), "{log}");
        assert!(
            log.contains("Waiting for domain domu (domid 5) to die"),
            "{log}"
        );
        assert!(log.ends_with("Domain 5 has been destroyed.\n"), "{log}");
        assert_eq!(monitor_step(None), Next::Gone);
        cleanup(&paths);
    }

    #[test]
    fn debug_keys_sends_the_keys_or_says_why_not() {
        let hv = FakeHv::new();
        debug_keys(&hv, "xh").unwrap();
        debug_keys(&hv, "").unwrap();
        assert_eq!(hv.0.borrow().debug_keys, b"xh");
        assert_eq!(hv.calls(), ["send_debug_keys", "send_debug_keys"]);
        // One line: xl's, and why.
        let e = debug_keys(&hv, &"q".repeat(300)).unwrap_err();
        assert!(
            e.0.starts_with("cannot send debug keys: qqq")
                && e.0.ends_with(": EINVAL (Invalid argument)"),
            "{e:?}"
        );
        hv.0.borrow_mut().fail = Some(("send_debug_keys", 1));
        let e = debug_keys(&hv, "x").unwrap_err();
        assert_eq!(
            e.0,
            "cannot send debug keys: x: EPERM (Operation not permitted)"
        );
        assert!(!e.0.contains('\n'));
        assert_eq!(hv.0.borrow().debug_keys, b"xh");
    }

    #[test]
    fn dmesg_prints_the_ring_and_clears_it_when_asked() {
        let hv = FakeHv::new();
        let ring = b"(oxen) oxen 0.1.0 (Xen ABI 4.17) on linux,dummy-virt\n(d1) hello\n";
        hv.0.borrow_mut().console = ring.to_vec();
        let mut out = Vec::new();
        dmesg(&hv, false, &mut out).unwrap();
        assert_eq!(out, ring, "printed as the ring holds it");
        assert_eq!(hv.0.borrow().console, ring, "not cleared without -c");
        // -c prints what was there, then the ring is empty.
        let mut out = Vec::new();
        dmesg(&hv, true, &mut out).unwrap();
        assert_eq!(out, ring);
        let mut out = Vec::new();
        dmesg(&hv, false, &mut out).unwrap();
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(hv.calls(), ["read_console", "read_console", "read_console"]);
        // Bytes that are not UTF-8 are passed through.
        hv.0.borrow_mut().console = vec![b'(', 0xff, b')', b'\n'];
        let mut out = Vec::new();
        dmesg(&hv, false, &mut out).unwrap();
        assert_eq!(out, [b'(', 0xff, b')', b'\n']);
    }

    #[test]
    fn dmesg_failure_is_one_line_saying_what_to_do() {
        let hv = FakeHv::new();
        hv.0.borrow_mut().console = b"(oxen) kept\n".to_vec();
        for (errno, name, todo) in [
            (1, "EPERM", "run xl dmesg in Dom0"),
            (13, "EACCES", "use its own xl"),
            (38, "ENOSYS", "read its serial console instead"),
            (14, "EFAULT", "read them there"),
        ] {
            hv.0.borrow_mut().fail = Some(("read_console", errno));
            let mut out = Vec::new();
            let e = dmesg(&hv, true, &mut out).unwrap_err();
            assert!(
                e.0.starts_with(&format!(
                    "cannot read the hypervisor's console ring: {name} ("
                )) && e.0.ends_with(&format!("{todo})")),
                "{e:?}"
            );
            assert!(!e.0.contains('\n'), "{e:?}");
            assert!(out.is_empty(), "nothing printed: {out:?}");
        }
        assert_eq!(hv.0.borrow().console, b"(oxen) kept\n", "not cleared");
    }

    /// Runs the monitor; when the restarted domain 5 appears, kills it so the monitor ends.
    fn monitor_until_restart(
        hv: &FakeHv,
        xs: &FakeStore,
        d: u32,
        loaded: &Loaded,
        env: &mut CreateEnv<'_>,
        log: &mut Vec<u8>,
    ) -> CmdResult {
        // Removes domain 5 when the monitor starts waiting for it.
        struct Hook<'a> {
            hv: &'a FakeHv,
            log: &'a mut Vec<u8>,
        }
        impl Write for Hook<'_> {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let n = self.log.write(b)?;
                if String::from_utf8_lossy(self.log).contains("(domid 5) to die") {
                    self.hv.0.borrow_mut().domains.remove(&5);
                }
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut hook = Hook { hv, log };
        monitor(hv, xs, d, loaded, env, &mut hook)
    }
}

/// `xl sched-credit` options (xl 4.17's `main_sched_credit`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedCreditOpts {
    /// `-d`: the domain.
    pub domain: Option<String>,
    /// `-w`: weight (xl passes any number on; libxl checks 1..65535).
    pub weight: Option<i64>,
    /// `-c`: cap (libxl checks 0..100 × vCPUs).
    pub cap: Option<i64>,
    /// `-p`: the cpupool (only Pool-0 exists).
    pub cpupool: Option<String>,
    /// `-s`: the scheduler's own parameters.
    pub schedparam: bool,
    /// `-t`: time slice, ms.
    pub tslice: Option<i64>,
    /// `-r`: rate limit, µs.
    pub ratelimit: Option<i64>,
    /// `-m`: migration delay, µs.
    pub migr_delay: Option<i64>,
}

/// The only cpupool.
const POOL0: &str = "Pool-0";

/// `Cpupool Pool-0: tslice=30ms ratelimit=1000us migration-delay=0us`.
fn credit_pool_line(hv: &dyn Hv) -> String {
    match hv.sched_credit_params() {
        Ok((t, r, m)) => {
            format!("Cpupool {POOL0}: tslice={t}ms ratelimit={r}us migration-delay={m}us\n")
        }
        Err(_) => format!("Cpupool {POOL0}: [sched params unavailable]\n"),
    }
}

/// The `xl sched-credit` table header.
pub fn credit_header() -> String {
    format!("{:<33} {:>4} {:>6} {:>4}\n", "Name", "ID", "Weight", "Cap")
}

/// One `xl sched-credit` row.
pub fn credit_row(name: &str, domid: u32, weight: u16, cap: u16) -> String {
    format!("{name:<33} {domid:>4} {weight:>6} {cap:>4}\n")
}

/// `xl sched-credit [-d dom [-w weight] [-c cap]] | [-p pool] | -s [-t ms] [-r us] [-m us]`:
/// xl's checks and messages, then libxl's range checks (weight 1..65535, cap 0..100 ×
/// vCPUs) before the hypercall.
pub fn sched_credit(
    hv: &dyn Hv,
    xs: &dyn Store,
    o: &SchedCreditOpts,
    out: &mut dyn Write,
) -> CmdResult {
    let dom_opts = o.domain.is_some() || o.weight.is_some() || o.cap.is_some();
    if (o.cpupool.is_some() || o.schedparam) && dom_opts {
        return Err(Fail(
            "Specifying a cpupool or schedparam is not allowed with domain options.".into(),
        ));
    }
    if o.domain.is_none() && (o.weight.is_some() || o.cap.is_some()) {
        return Err(Fail("Must specify a domain.".into()));
    }
    let sets = o.tslice.is_some() || o.ratelimit.is_some() || o.migr_delay.is_some();
    if !o.schedparam && sets {
        return Err(Fail(
            "Must specify schedparam to set schedule parameter values.".into(),
        ));
    }
    if let Some(p) = &o.cpupool
        && p != POOL0
        && p != "0"
    {
        return Err(Fail(format!("unknown cpupool '{p}'")));
    }
    let write =
        |out: &mut dyn Write, s: &str| out.write_all(s.as_bytes()).map_err(|e| Fail(e.to_string()));
    if o.schedparam {
        if !sets {
            return write(out, &credit_pool_line(hv));
        }
        let (mut t, mut r, mut m) = hv
            .sched_credit_params()
            .map_err(|e| Fail(format!("libxl_sched_credit_params_get failed: {e}")))?;
        let u32_of = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        if let Some(v) = o.tslice {
            t = u32_of(v);
        }
        if let Some(v) = o.ratelimit {
            r = u32_of(v);
        }
        if let Some(v) = o.migr_delay {
            m = u32_of(v);
        }
        return hv.set_sched_credit_params((t, r, m)).map_err(|e| {
            Fail(format!(
                "libxl: error: libxl_sched.c: setting sched credit param: {e}\nlibxl_sched_credit_params_set failed."
            ))
        });
    }
    let Some(q) = &o.domain else {
        let mut text = credit_pool_line(hv);
        text.push_str(&credit_header());
        for d in hv.list_domains()? {
            let (w, c) = hv.sched_credit(d.domid)?;
            let name = domain_name(xs, d.domid)?.unwrap_or_default();
            text.push_str(&credit_row(&name, d.domid, w, c));
        }
        return write(out, &text);
    };
    let domid = find_domain(hv, xs, q)?;
    if o.weight.is_none() && o.cap.is_none() {
        let (w, c) = hv.sched_credit(domid)?;
        let name = domain_name(xs, domid)?.unwrap_or_default();
        return write(out, &(credit_header() + &credit_row(&name, domid, w, c)));
    }
    let info = hv
        .domain_info(domid)?
        .ok_or_else(|| Fail(format!("Domain {domid} does not exist")))?;
    let fail = |what: String| {
        Fail(format!(
            "libxl: error: libxl_sched.c:sched_credit_domain_set: Domain {domid}:{what}\nlibxl_domain_sched_params_set failed."
        ))
    };
    let weight = match o.weight {
        Some(w) if !(1..=65535).contains(&w) => {
            return Err(fail(
                "Cpu weight out of range, valid values are within range from 1 to 65535".into(),
            ));
        }
        w => w.map(|w| w as u16),
    };
    let max_cap = (i64::from(info.max_vcpu_id) + 1) * 100;
    let cap = match o.cap {
        Some(c) if !(0..=max_cap).contains(&c) => {
            return Err(fail(format!(
                "Cpu cap out of range, valid range is from 0 to {max_cap} for specified number of vcpus"
            )));
        }
        c => c.map(|c| c as u16),
    };
    hv.set_sched_credit(domid, weight, cap)
        .map_err(|e| fail(format!("setting domain sched credit: {e}")))
}

/// `xl vcpu-pin [-f] dom vcpu|all hard [soft]`: `-` keeps a map; silent on success.
pub fn vcpu_pin(
    hv: &dyn Hv,
    xs: &dyn Store,
    force: bool,
    dom: &str,
    vcpu: &str,
    hard: &str,
    soft: Option<&str>,
) -> CmdResult {
    let domid = find_domain(hv, xs, dom)?;
    let vcpu: Option<u32> = if vcpu == "all" {
        None
    } else {
        Some(
            vcpu.parse()
                .map_err(|_| Fail(format!("Error: Invalid argument {vcpu} as VCPU.")))?,
        )
    };
    if force && vcpu.is_none() {
        return Err(Fail("Error: --force and 'all' as VCPU not allowed.".into()));
    }
    let phys = hv.physinfo()?;
    let nr = phys.max_cpu_id + 1;
    let map = |s: &str| -> Result<Option<Vec<u8>>, Fail> {
        if s == "-" {
            return Ok(None);
        }
        crate::cfg::parse_cpulist(s, nr)
            .map(Some)
            .map_err(|e| Fail(format!("Error: {e}")))
    };
    let hard = map(hard)?;
    let soft = match soft {
        Some(s) => map(s)?,
        None => None,
    };
    if hard.is_none() && soft.is_none() {
        return Ok(());
    }
    match vcpu {
        Some(v) => hv
            .set_vcpu_affinity(domid, v, hard.as_deref(), soft.as_deref())
            .map_err(|_| Fail(format!("Could not set affinity for vcpu `{v}'."))),
        None => {
            let info = hv
                .domain_info(domid)?
                .ok_or_else(|| Fail("Could not get domain info".into()))?;
            for v in 0..=info.max_vcpu_id {
                hv.set_vcpu_affinity(domid, v, hard.as_deref(), soft.as_deref())
                    .map_err(|_| Fail("Could not set affinity.".into()))?;
            }
            Ok(())
        }
    }
}

/// `xl debug-keys <keys>`: the hypervisor handles the keys as if typed on its console (what
/// they print goes there: `xl dmesg`, the serial console); silent on success, as xl.
pub fn debug_keys(hv: &dyn Hv, keys: &str) -> CmdResult {
    hv.send_debug_keys(keys.as_bytes())
        .map_err(|e| Fail(format!("cannot send debug keys: {keys}: {e}")))
}

/// `xl dmesg [-c]`: the hypervisor's console ring (its `(oxen) ...` lines and other domains'
/// `(dN) ...` lines, oldest first) as the ring holds it; with `clear` what was printed is
/// cleared from the ring (Xen's "Read and clear Xen's message buffer"). On failure nothing is printed,
/// and the line says why and what to do.
pub fn dmesg(hv: &dyn Hv, clear: bool, out: &mut dyn Write) -> CmdResult {
    let text = hv.read_console(clear).map_err(|e| {
        let todo = match e.errno {
            Some(1) => "only Dom0 may read it: run xl dmesg in Dom0",
            Some(13) => "the hypervisor's sysctl interface is not Xen 4.17's: use its own xl",
            Some(38) => "this hypervisor does not keep one: read its serial console instead",
            _ => "its lines went to the hypervisor's serial console too: read them there",
        };
        Fail(format!(
            "cannot read the hypervisor's console ring: {e} ({todo})"
        ))
    })?;
    out.write_all(&text)
        .and_then(|()| out.flush())
        .map_err(|e| Fail(format!("writing the console ring: {e}")))
}
