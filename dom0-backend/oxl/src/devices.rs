//! PV disks (vbd) and network interfaces (vif) of a domain: the xenstore nodes libxl 4.17
//! writes for them (frontend, backend and the `/libxl/<domid>/device` mirror, with libxl's
//! permissions), the hotplug work Xen's `block` and `vif-bridge` scripts do (done here, over
//! the [`Host`] trait: a loop device for a file, `physical-device`; the `vif<domid>.<n>`
//! interface joined to its bridge, `hotplug-status connected`), their removal, and the rows of
//! `xl block-list` / `xl network-list`.
//!
//! Invariants: [`precheck`] refuses (one line) what would fail before anything exists;
//! [`add_all`] either sets up every device or returns an error after which [`remove_all`]
//! releases what was made (every loop device it attached is named in its backend's `node`
//! before anything else can fail); every wait is bounded.

use std::time::{Duration, Instant};

use crate::cfg::DomainConfig;
use crate::devspec::{DiskSpec, VifSpec, format_mac};
use crate::sys::{Perm, Store, SysError, SysResult, n, r, with_transaction};

/// What a disk target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A regular file: served through a loop device.
    File,
    /// A block device (major, minor).
    Block(u32, u32),
}

/// The Dom0 facilities the hotplug work needs (the kernel's loop driver, network interfaces).
pub trait Host {
    /// What `path` is (following symlinks); an error (ENOENT...) names it.
    fn target(&self, path: &str) -> SysResult<Target>;
    /// Attaches the regular file `path` to a free loop device; returns its path and numbers.
    fn loop_attach(&self, path: &str, writable: bool) -> SysResult<(String, u32, u32)>;
    /// Detaches loop device `dev` (deferred by the kernel until its last user closes it).
    fn loop_detach(&self, dev: &str) -> SysResult<()>;
    /// Whether `name` is a bridge.
    fn is_bridge(&self, name: &str) -> bool;
    /// Whether network interface `name` exists.
    fn netif_exists(&self, name: &str) -> bool;
    /// The MTU of interface `name`.
    fn mtu(&self, name: &str) -> SysResult<u32>;
    /// Sets `ifname`'s MTU, makes it a port of `bridge` and brings it up.
    fn join_bridge(&self, ifname: &str, bridge: &str, mtu: u32) -> SysResult<()>;
}

/// How long to wait for a backend driver's state change and for netback's interface.
pub const DEVICE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long removal waits for the backends to close (libxl's `LIBXL_DESTROY_TIMEOUT`).
pub const DESTROY_TIMEOUT: Duration = Duration::from_secs(10);

const STATE_INITWAIT: u32 = 2;
const STATE_CLOSED: u32 = 6;

fn be_path(kind: &str, domid: u32, devid: u32) -> String {
    format!("/local/domain/0/backend/{kind}/{domid}/{devid}")
}
fn fe_path(kind: &str, domid: u32, devid: u32) -> String {
    format!("/local/domain/{domid}/device/{kind}/{devid}")
}
fn lx_path(kind: &str, domid: u32, devid: u32) -> String {
    format!("/libxl/{domid}/device/{kind}/{devid}")
}

/// Netback's interface name for `domid`'s vif `handle`.
pub fn vif_name(domid: u32, handle: u32) -> String {
    format!("vif{domid}.{handle}")
}

/// Checks, before the domain exists, that every disk target exists and is not in use
/// read-write by another domain, every bridge exists and no MAC is already in use.
pub fn precheck(xs: &dyn Store, host: &dyn Host, cfg: &DomainConfig) -> Result<(), String> {
    for d in &cfg.disk_devs {
        check_disk(xs, host, d)?;
    }
    for (i, v) in cfg.vif_devs.iter().enumerate() {
        check_vif(xs, host, i as u32, v)?;
    }
    Ok(())
}

/// The disk's target exists and no domain has it attached when either side writes.
fn check_disk(xs: &dyn Store, host: &dyn Host, d: &DiskSpec) -> Result<(), String> {
    host.target(&d.target)
        .map_err(|e| format!("disk {}: target {}: {}", d.vdev, d.target, e.msg))?;
    for (dom, dev) in backends(xs, "vbd").map_err(|e| e.msg)? {
        let be = be_path("vbd", dom, dev);
        let params = xs.read(0, &format!("{be}/params")).ok().flatten();
        if params.as_deref() != Some(&d.target) {
            continue;
        }
        let mode = xs.read(0, &format!("{be}/mode")).ok().flatten();
        if d.writable || mode.as_deref() == Some("w") {
            return Err(format!(
                "disk {}: {} is already attached to domain {dom} ({}): a disk can be shared read-only only",
                d.vdev,
                d.target,
                if mode.as_deref() == Some("w") {
                    "read-write"
                } else {
                    "read-only"
                }
            ));
        }
    }
    Ok(())
}

/// The vif's bridge exists and its MAC (if given) is nobody's yet.
fn check_vif(xs: &dyn Store, host: &dyn Host, i: u32, v: &VifSpec) -> Result<(), String> {
    if !host.is_bridge(&v.bridge) {
        return Err(format!(
            "vif {i}: bridge {} does not exist (create it first, e.g. brctl addbr {})",
            v.bridge, v.bridge
        ));
    }
    if let Some(m) = v.mac {
        let mac = format_mac(&m);
        for (dom, dev) in backends(xs, "vif").map_err(|e| e.msg)? {
            let other = xs.read(0, &format!("{}/mac", be_path("vif", dom, dev)));
            if other
                .ok()
                .flatten()
                .is_some_and(|o| o.eq_ignore_ascii_case(&mac))
            {
                return Err(format!(
                    "vif {i}: mac {mac} is already used by domain {dom} (vif {dev})"
                ));
            }
        }
    }
    Ok(())
}

/// `xl block-attach`: adds disk `d` to running (or paused) domain `domid`; on failure
/// nothing of it is left.
pub fn attach_disk(
    xs: &dyn Store,
    host: &dyn Host,
    domid: u32,
    d: &DiskSpec,
    timeout: Duration,
) -> Result<(), String> {
    if devids(xs, domid, "vbd")
        .map_err(|e| e.msg)?
        .contains(&d.devid)
    {
        return Err(format!(
            "disk {}: domain {domid} already has virtual device {}",
            d.vdev, d.devid
        ));
    }
    check_disk(xs, host, d)?;
    let r = (|| {
        write_vbd(xs, domid, d).map_err(|e| e.msg)?;
        let st = format!("{}/state", be_path("vbd", domid, d.devid));
        wait_states(
            xs,
            &[st],
            &|s| s.is_some_and(|s| s >= STATE_INITWAIT),
            timeout,
            "waiting for the disk backend",
        )
        .map_err(|e| e.msg)?;
        hotplug_disk(xs, host, domid, d)
            .map_err(|e| format!("disk {} ({}): {}", d.vdev, d.target, e.msg))
    })();
    if r.is_err() {
        let _ = remove(xs, host, domid, &[("vbd", d.devid)], false, timeout);
    }
    r
}

/// `xl network-attach`: adds a vif (the next free handle) to domain `domid`; returns its
/// handle. On failure nothing of it is left.
pub fn attach_vif(
    xs: &dyn Store,
    host: &dyn Host,
    domid: u32,
    v: &VifSpec,
    random: &mut dyn FnMut(&mut [u8]) -> Result<(), String>,
    timeout: Duration,
) -> Result<u32, String> {
    let handle = devids(xs, domid, "vif")
        .map_err(|e| e.msg)?
        .last()
        .map_or(0, |h| h + 1);
    check_vif(xs, host, handle, v)?;
    let mac = match v.mac {
        Some(m) => m,
        None => {
            let mut b = [0u8; 3];
            random(&mut b).map_err(|e| format!("random MAC: {e}"))?;
            crate::devspec::default_mac(b)
        }
    };
    let r = (|| {
        write_vif(xs, domid, handle, &format_mac(&mac), v).map_err(|e| e.msg)?;
        let st = format!("{}/state", be_path("vif", domid, handle));
        wait_states(
            xs,
            &[st],
            &|s| s.is_some_and(|s| s >= STATE_INITWAIT),
            timeout,
            "waiting for the network backend",
        )
        .map_err(|e| e.msg)?;
        hotplug_vif(xs, host, domid, handle, v, timeout)
            .map_err(|e| format!("vif {handle}: {}", e.msg))
    })();
    if r.is_err() {
        let _ = remove(xs, host, domid, &[("vif", handle)], false, timeout);
    }
    r.map(|()| handle)
}

/// `xl block-detach` / `network-detach`: the device `kind`/`devid` of `domid` is closed
/// gracefully (backend `online=0`, `state=5`; the frontend lets go, the backend reaches
/// Closed), then released; a frontend that does not let go within `timeout` is forced off
/// (its nodes removed), as libxl's forced removal. Returns whether it had to force.
pub fn detach(
    xs: &dyn Store,
    host: &dyn Host,
    domid: u32,
    kind: &str,
    devid: u32,
    timeout: Duration,
) -> Result<bool, String> {
    if !devids(xs, domid, kind).map_err(|e| e.msg)?.contains(&devid) {
        return Err(format!("domain {domid} has no {kind} device {devid}"));
    }
    let be = be_path(kind, domid, devid);
    with_transaction(xs, |tx| {
        if xs.read(tx, &format!("{be}/state"))?.is_some() {
            xs.write(tx, &format!("{be}/online"), "0")?;
            xs.write(tx, &format!("{be}/state"), "5")?;
        }
        Ok(())
    })
    .map_err(|e| e.msg)?;
    let graceful = wait_states(
        xs,
        &[format!("{be}/state")],
        &|s| s.is_none_or(|s| s >= STATE_CLOSED),
        timeout,
        "detaching",
    )
    .is_ok();
    remove(xs, host, domid, &[(kind, devid)], false, timeout).map_err(|e| e.msg)?;
    Ok(!graceful)
}

/// A vif's handle from `xl network-detach`'s argument: a handle or a MAC.
pub fn vif_handle(xs: &dyn Store, domid: u32, arg: &str) -> Result<u32, String> {
    if let Ok(h) = arg.parse::<u32>() {
        return Ok(h);
    }
    let mac = crate::devspec::parse_mac(arg).ok_or_else(|| format!("invalid device {arg}"))?;
    let mac = format_mac(&mac);
    for h in devids(xs, domid, "vif").map_err(|e| e.msg)? {
        let m = xs.read(0, &format!("{}/mac", lx_path("vif", domid, h)));
        if m.ok()
            .flatten()
            .is_some_and(|m| m.eq_ignore_ascii_case(&mac))
        {
            return Ok(h);
        }
    }
    Err(format!("domain {domid} has no vif with mac {mac}"))
}

/// Every (frontend domid, devid) with a backend of `kind` in Dom0.
fn backends(xs: &dyn Store, kind: &str) -> SysResult<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    let base = format!("/local/domain/0/backend/{kind}");
    for d in xs.directory(0, &base)? {
        let Ok(dom) = d.parse::<u32>() else { continue };
        for v in xs.directory(0, &format!("{base}/{d}"))? {
            if let Ok(dev) = v.parse::<u32>() {
                out.push((dom, dev));
            }
        }
    }
    Ok(out)
}

/// Writes `entries` under `dir` in transaction `tx`; the first entry is the directory itself
/// with `perms`, children inherit it (as libxl relies on xenstored to do).
fn put_dir(
    xs: &dyn Store,
    tx: u32,
    dir: &str,
    perms: &[Perm],
    entries: &[(&str, String)],
) -> SysResult<()> {
    let _ = xs.rm(tx, dir);
    xs.write(tx, dir, "")?;
    xs.set_perms(tx, dir, perms)?;
    for (k, v) in entries {
        xs.write(tx, &format!("{dir}/{k}"), v)?;
    }
    Ok(())
}

/// Frontend entries written with their own (frontend-owned) ACL, as libxl does.
fn put_front(
    xs: &dyn Store,
    tx: u32,
    dir: &str,
    domid: u32,
    entries: &[(&str, String)],
    ro: &[(&str, String)],
) -> SysResult<()> {
    let _ = xs.rm(tx, dir);
    xs.write(tx, dir, "")?;
    xs.set_perms(tx, dir, &[n(domid), r(0)])?;
    for (i, (k, v)) in entries.iter().enumerate() {
        let p = format!("{dir}/{k}");
        xs.write(tx, &p, v)?;
        // `backend` (the first) inherits the directory's ACL; libxl sets the rest.
        if i > 0 {
            xs.set_perms(tx, &p, &[n(domid), r(0)])?;
        }
    }
    for (k, v) in ro {
        let p = format!("{dir}/{k}");
        xs.write(tx, &p, v)?;
        xs.set_perms(tx, &p, &[n(0), r(domid)])?;
    }
    Ok(())
}

/// The xenstore nodes of one vbd (libxl's `device_disk_add`), in one transaction.
fn write_vbd(xs: &dyn Store, domid: u32, d: &DiskSpec) -> SysResult<()> {
    let (be, fe, lx) = (
        be_path("vbd", domid, d.devid),
        fe_path("vbd", domid, d.devid),
        lx_path("vbd", domid, d.devid),
    );
    let devtype = if d.cdrom { "cdrom" } else { "disk" };
    let back: Vec<(&str, String)> = vec![
        ("frontend", fe.clone()),
        ("params", d.target.clone()),
        ("script", "/etc/xen/scripts/block".into()),
        ("frontend-id", domid.to_string()),
        ("online", "1".into()),
        ("removable", "0".into()),
        ("bootable", "1".into()),
        ("state", "1".into()),
        ("dev", d.vdev.clone()),
        ("type", "phy".into()),
        ("mode", if d.writable { "w" } else { "r" }.into()),
        ("device-type", devtype.into()),
        ("discard-enable", if d.writable { "1" } else { "0" }.into()),
        ("specification", "xen".into()),
    ];
    with_transaction(xs, |tx| {
        let _ = xs.rm(tx, &lx);
        xs.write(tx, &format!("{lx}/frontend"), &fe)?;
        xs.write(tx, &format!("{lx}/backend"), &be)?;
        put_front(
            xs,
            tx,
            &fe,
            domid,
            &[
                ("backend", be.clone()),
                ("backend-id", "0".into()),
                ("state", "1".into()),
                ("virtual-device", d.devid.to_string()),
                ("device-type", devtype.into()),
                ("trusted", "1".into()),
            ],
            &[],
        )?;
        put_dir(xs, tx, &be, &[n(0), r(domid)], &back)?;
        for (k, v) in back.iter().filter(|(k, _)| *k != "frontend") {
            xs.write(tx, &format!("{lx}/{k}"), v)?;
        }
        Ok(())
    })
    .map_err(|e| e.context(&format!("writing the nodes of disk {}", d.vdev)))
}

/// The xenstore nodes of vif `handle` (libxl's `libxl__set_xenstore_nic`).
fn write_vif(xs: &dyn Store, domid: u32, handle: u32, mac: &str, v: &VifSpec) -> SysResult<()> {
    let (be, fe, lx) = (
        be_path("vif", domid, handle),
        fe_path("vif", domid, handle),
        lx_path("vif", domid, handle),
    );
    let back: Vec<(&str, String)> = vec![
        ("frontend", fe.clone()),
        ("frontend-id", domid.to_string()),
        ("online", "1".into()),
        ("state", "1".into()),
        ("script", "/etc/xen/scripts/vif-bridge".into()),
        ("mac", mac.into()),
        ("bridge", v.bridge.clone()),
        ("handle", handle.to_string()),
        ("type", "vif".into()),
        ("hotplug-status", String::new()),
    ];
    with_transaction(xs, |tx| {
        let _ = xs.rm(tx, &lx);
        xs.write(tx, &format!("{lx}/frontend"), &fe)?;
        xs.write(tx, &format!("{lx}/backend"), &be)?;
        put_front(
            xs,
            tx,
            &fe,
            domid,
            &[
                ("backend", be.clone()),
                ("backend-id", "0".into()),
                ("state", "1".into()),
                ("handle", handle.to_string()),
                ("mac", mac.into()),
                ("trusted", "1".into()),
            ],
            &[("mtu", "1500".into())],
        )?;
        put_dir(xs, tx, &be, &[n(0), r(domid)], &back)?;
        for (k, v) in back.iter().filter(|(k, _)| *k != "frontend") {
            xs.write(tx, &format!("{lx}/{k}"), v)?;
        }
        Ok(())
    })
    .map_err(|e| e.context(&format!("writing the nodes of vif {handle}")))
}

fn read_state(xs: &dyn Store, path: &str) -> SysResult<Option<u32>> {
    Ok(xs.read(0, path)?.and_then(|s| s.trim().parse().ok()))
}

/// Waits (bounded) until every path's state satisfies `ok` (`None`: the node is gone).
fn wait_states(
    xs: &dyn Store,
    paths: &[String],
    ok: &dyn Fn(Option<u32>) -> bool,
    timeout: Duration,
    what: &str,
) -> SysResult<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let token = "oxl-devstate";
    for p in paths {
        xs.watch(p, token)?;
    }
    let deadline = Instant::now() + timeout;
    let res = loop {
        let mut pending = None;
        let mut failed = None;
        for p in paths {
            match read_state(xs, p) {
                Ok(s) if ok(s) => {}
                Ok(s) => {
                    pending = Some((p, s));
                    break;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        let Some((p, s)) = pending else { break Ok(()) };
        let now = Instant::now();
        if now >= deadline {
            break Err(SysError::msg(format!(
                "{what}: {p} is {} after {} s (is the backend driver loaded?)",
                s.map_or("gone".to_string(), |s| s.to_string()),
                timeout.as_secs()
            )));
        }
        if let Err(e) = xs.wait_watch(Some((deadline - now).min(Duration::from_millis(200)))) {
            break Err(e);
        }
    };
    for p in paths {
        let _ = xs.unwatch(p, token);
    }
    res
}

/// Adds every disk and vif of `cfg` to paused domain `domid`: nodes, backend InitWait,
/// hotplug. `random` gives the bytes of default MACs. On error the caller removes the
/// devices with [`remove_all`].
pub fn add_all(
    xs: &dyn Store,
    host: &dyn Host,
    domid: u32,
    cfg: &DomainConfig,
    random: &mut dyn FnMut(&mut [u8]) -> Result<(), String>,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let mut states = Vec::new();
    for d in &cfg.disk_devs {
        write_vbd(xs, domid, d).map_err(|e| e.msg)?;
        states.push(format!("{}/state", be_path("vbd", domid, d.devid)));
    }
    let mut macs = Vec::new();
    for (i, v) in cfg.vif_devs.iter().enumerate() {
        let mac = match v.mac {
            Some(m) => m,
            None => {
                let mut b = [0u8; 3];
                random(&mut b).map_err(|e| format!("random MAC: {e}"))?;
                crate::devspec::default_mac(b)
            }
        };
        let mac = format_mac(&mac);
        write_vif(xs, domid, i as u32, &mac, v).map_err(|e| e.msg)?;
        states.push(format!("{}/state", be_path("vif", domid, i as u32)));
        macs.push(mac);
    }
    // libxl waits for InitWait before running the hotplug scripts.
    wait_states(
        xs,
        &states,
        &|s| s.is_some_and(|s| s >= STATE_INITWAIT),
        timeout,
        "waiting for the device backends",
    )
    .map_err(|e| e.msg)?;
    progress("@device backends in InitWait");

    for d in &cfg.disk_devs {
        hotplug_disk(xs, host, domid, d)
            .map_err(|e| format!("disk {} ({}): {}", d.vdev, d.target, e.msg))?;
        progress(&format!("disk {} ({}) connected", d.vdev, d.target));
    }
    for (i, v) in cfg.vif_devs.iter().enumerate() {
        hotplug_vif(xs, host, domid, i as u32, v, timeout)
            .map_err(|e| format!("vif {i}: {}", e.msg))?;
        progress(&format!(
            "vif {} (mac {}) on bridge {}",
            vif_name(domid, i as u32),
            macs[i],
            v.bridge
        ));
    }
    Ok(())
}

/// `block add`: the device blkback opens, `physical-device` (hex `major:minor`).
fn hotplug_disk(xs: &dyn Store, host: &dyn Host, domid: u32, d: &DiskSpec) -> SysResult<()> {
    let be = be_path("vbd", domid, d.devid);
    let (path, major, minor) = match host.target(&d.target)? {
        Target::Block(ma, mi) => (d.target.clone(), ma, mi),
        Target::File => {
            let (dev, ma, mi) = host.loop_attach(&d.target, d.writable)?;
            // Recorded first, so that removal finds it whatever fails next.
            if let Err(e) = xs.write(0, &format!("{be}/node"), &dev) {
                let _ = host.loop_detach(&dev);
                return Err(e);
            }
            (dev, ma, mi)
        }
    };
    xs.write(
        0,
        &format!("{be}/physical-device"),
        &format!("{major:x}:{minor:x}"),
    )?;
    xs.write(0, &format!("{be}/physical-device-path"), &path)?;
    xs.write(0, &format!("{be}/hotplug-status"), "connected")
}

/// `vif-bridge online`: netback's interface joined to the bridge, up; `hotplug-status`.
fn hotplug_vif(
    xs: &dyn Store,
    host: &dyn Host,
    domid: u32,
    handle: u32,
    v: &VifSpec,
    timeout: Duration,
) -> SysResult<()> {
    let be = be_path("vif", domid, handle);
    let ifname = vif_name(domid, handle);
    let deadline = Instant::now() + timeout;
    while !host.netif_exists(&ifname) {
        if Instant::now() >= deadline {
            return Err(SysError::msg(format!(
                "netback did not create {ifname} within {} s",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = (|| {
        let mtu = host.mtu(&v.bridge)?;
        host.join_bridge(&ifname, &v.bridge, mtu)?;
        xs.write(
            0,
            &format!("{}/mtu", fe_path("vif", domid, handle)),
            &mtu.to_string(),
        )
    })();
    if let Err(e) = r {
        let _ = xs.write(0, &format!("{be}/hotplug-error"), &e.msg);
        let _ = xs.write(0, &format!("{be}/hotplug-status"), "error");
        return Err(e);
    }
    xs.write(0, &format!("{be}/hotplug-status"), "connected")
}

/// The devids of `domid`'s devices of `kind` (libxl's mirror and Dom0's backends).
fn devids(xs: &dyn Store, domid: u32, kind: &str) -> SysResult<Vec<u32>> {
    let mut ids: Vec<u32> = xs
        .directory(0, &format!("/libxl/{domid}/device/{kind}"))?
        .into_iter()
        .chain(xs.directory(0, &format!("/local/domain/0/backend/{kind}/{domid}"))?)
        .filter_map(|s| s.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

/// Removes every vbd and vif of `domid` as libxl's forced removal does: frontend removed and
/// backend `online=0`, `state=5`; wait (bounded) for the backends to close; loop devices
/// released; backend and mirror nodes removed. Best effort: goes on after errors, returns
/// the first.
pub fn remove_all(xs: &dyn Store, host: &dyn Host, domid: u32, timeout: Duration) -> SysResult<()> {
    let mut devs = Vec::new();
    let mut first = None;
    for kind in ["vbd", "vif"] {
        match devids(xs, domid, kind) {
            Ok(ids) => devs.extend(ids.into_iter().map(|i| (kind, i))),
            Err(e) => first = first.or(Some(e)),
        }
    }
    let r = remove(xs, host, domid, &devs, true, timeout);
    match first {
        Some(e) => Err(e),
        None => r,
    }
}

/// Forced removal of `devs` of `domid` (see [`remove_all`]); `whole` also removes the
/// per-domain parent directories.
fn remove(
    xs: &dyn Store,
    host: &dyn Host,
    domid: u32,
    devs: &[(&str, u32)],
    whole: bool,
    timeout: Duration,
) -> SysResult<()> {
    let mut first: Option<SysError> = None;
    let mut keep = |r: SysResult<()>| {
        if let Err(e) = r
            && first.is_none()
        {
            first = Some(e);
        }
    };
    let mut states = Vec::new();
    for &(kind, id) in devs {
        let be = be_path(kind, domid, id);
        let fe = fe_path(kind, domid, id);
        keep(with_transaction(xs, |tx| {
            xs.rm(tx, &fe)?;
            // A backend already closing or closed (a graceful detach) is left to finish.
            let st = xs.read(tx, &format!("{be}/state"))?;
            if st.is_some_and(|s| s.trim().parse::<u32>().is_ok_and(|s| s < 5)) {
                xs.write(tx, &format!("{be}/online"), "0")?;
                xs.write(tx, &format!("{be}/state"), "5")?;
            }
            Ok(())
        }));
        states.push(format!("{be}/state"));
    }
    keep(wait_states(
        xs,
        &states,
        &|s| s.is_none_or(|s| s >= STATE_CLOSED),
        timeout,
        "waiting for the device backends to close",
    ));
    for &(kind, id) in devs {
        let be = be_path(kind, domid, id);
        if kind == "vbd"
            && let Ok(Some(node)) = xs.read(0, &format!("{be}/node"))
            && node.starts_with("/dev/loop")
        {
            keep(host.loop_detach(&node).map_err(|e| e.context(&node)));
        }
        keep(xs.rm(0, &be));
        keep(xs.rm(0, &lx_path(kind, domid, id)));
    }
    for kind in ["vbd", "vif"] {
        let mine = format!("/local/domain/0/backend/{kind}/{domid}");
        if whole {
            keep(xs.rm(0, &mine));
            keep(xs.rm(0, &format!("/local/domain/{domid}/device/{kind}")));
            keep(xs.rm(0, &format!("/libxl/{domid}/device/{kind}")));
        }
        // Empty parents go, as libxl prunes them.
        for parent in [mine, format!("/local/domain/0/backend/{kind}")] {
            keep(with_transaction(xs, |tx| {
                if xs.read(tx, &parent)?.is_some() && xs.directory(tx, &parent)?.is_empty() {
                    xs.rm(tx, &parent)?;
                }
                Ok(())
            }));
        }
    }
    first.map_or(Ok(()), Err)
}

fn num(xs: &dyn Store, path: &str) -> i64 {
    xs.read(0, path)
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1)
}

/// `xl block-list <dom>`: xl's header and one row per vbd.
pub fn block_list(xs: &dyn Store, domid: u32) -> SysResult<String> {
    let mut out = format!(
        "{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}\n",
        "Vdev", "BE", "handle", "state", "evt-ch", "ring-ref", "BE-path"
    );
    for id in xs
        .directory(0, &format!("/libxl/{domid}/device/vbd"))?
        .iter()
        .filter_map(|s| s.parse::<u32>().ok())
    {
        let fe = fe_path("vbd", domid, id);
        let be = xs
            .read(0, &format!("{fe}/backend"))?
            .unwrap_or_else(|| be_path("vbd", domid, id));
        out.push_str(&format!(
            "{:<5} {:<3} {:<6} {:<5} {:<6} {:<8} {:<30}\n",
            id,
            num(xs, &format!("{fe}/backend-id")),
            domid,
            num(xs, &format!("{fe}/state")),
            num(xs, &format!("{fe}/event-channel")),
            num(xs, &format!("{fe}/ring-ref")),
            be
        ));
    }
    Ok(out)
}

/// `xl network-list <dom>`: xl's header and one row per vif.
pub fn network_list(xs: &dyn Store, domid: u32) -> SysResult<String> {
    let mut out = format!(
        "{:<3} {:<2} {:<17} {:<6} {:<5} {:<6} {:>5}/{:<5} {:<30}\n",
        "Idx", "BE", "Mac Addr.", "handle", "state", "evt-ch", "tx-", "rx-ring-ref", "BE-path"
    );
    for id in xs
        .directory(0, &format!("/libxl/{domid}/device/vif"))?
        .iter()
        .filter_map(|s| s.parse::<u32>().ok())
    {
        let fe = fe_path("vif", domid, id);
        let lx = lx_path("vif", domid, id);
        let be = xs
            .read(0, &format!("{fe}/backend"))?
            .unwrap_or_else(|| be_path("vif", domid, id));
        let mac = xs.read(0, &format!("{lx}/mac"))?.unwrap_or_default();
        out.push_str(&format!(
            "{:<3} {:<2} {:<17}{:6} {:5} {:6} {:5}/{:<11} {:<30}\n",
            id,
            num(xs, &format!("{fe}/backend-id")),
            mac,
            id,
            num(xs, &format!("{fe}/state")),
            num(xs, &format!("{fe}/event-channel")),
            num(xs, &format!("{fe}/tx-ring-ref")),
            num(xs, &format!("{fe}/rx-ring-ref")),
            be
        ));
    }
    Ok(out)
}

#[cfg(test)]
pub mod fake {
    //! A [`Host`] double: files and block devices by path, bridges, interfaces that
    //! appear on demand, a log of loop attach/detach.
    use super::*;
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Default)]
    pub struct FakeHostState {
        pub targets: BTreeMap<String, Target>,
        pub bridges: BTreeSet<String>,
        /// Interfaces that exist (netback's appear when asked for, if `netback`).
        pub netifs: BTreeSet<String>,
        pub netback: bool,
        /// Loop devices bound: dev -> file.
        pub loops: BTreeMap<String, String>,
        /// (interface, bridge, mtu) joins.
        pub joined: Vec<(String, String, u32)>,
    }

    pub struct FakeHost(pub RefCell<FakeHostState>);

    impl FakeHost {
        pub fn new() -> FakeHost {
            let mut s = FakeHostState {
                netback: true,
                ..Default::default()
            };
            s.bridges.insert("xenbr0".into());
            FakeHost(RefCell::new(s))
        }
        pub fn file(&self, p: &str) {
            self.0.borrow_mut().targets.insert(p.into(), Target::File);
        }
    }

    impl Host for FakeHost {
        fn target(&self, path: &str) -> SysResult<Target> {
            self.0
                .borrow()
                .targets
                .get(path)
                .copied()
                .ok_or_else(|| SysError::errno(crate::sys::ENOENT))
        }
        fn loop_attach(&self, path: &str, _w: bool) -> SysResult<(String, u32, u32)> {
            let mut s = self.0.borrow_mut();
            let n = (0..)
                .find(|i| !s.loops.contains_key(&format!("/dev/loop{i}")))
                .unwrap();
            s.loops.insert(format!("/dev/loop{n}"), path.into());
            Ok((format!("/dev/loop{n}"), 7, n))
        }
        fn loop_detach(&self, dev: &str) -> SysResult<()> {
            self.0.borrow_mut().loops.remove(dev);
            Ok(())
        }
        fn is_bridge(&self, name: &str) -> bool {
            self.0.borrow().bridges.contains(name)
        }
        fn netif_exists(&self, name: &str) -> bool {
            let mut s = self.0.borrow_mut();
            if s.netback && name.starts_with("vif") {
                s.netifs.insert(name.into());
            }
            s.netifs.contains(name) || s.bridges.contains(name)
        }
        fn mtu(&self, _name: &str) -> SysResult<u32> {
            Ok(1500)
        }
        fn join_bridge(&self, ifname: &str, bridge: &str, mtu: u32) -> SysResult<()> {
            self.0
                .borrow_mut()
                .joined
                .push((ifname.into(), bridge.into(), mtu));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeHost;
    use super::*;
    use crate::cfg::Settings;
    use crate::fake::FakeStore;
    use crate::sys::PermKind;

    fn cfg(extra: &str) -> DomainConfig {
        Settings::parse("f", &format!("name='d'\nkernel='/k'\n{extra}"), &[])
            .unwrap()
            .domain_config()
            .unwrap()
    }

    fn perm_text(p: &[Perm]) -> String {
        p.iter()
            .map(|p| {
                let k = match p.kind {
                    PermKind::None => 'n',
                    PermKind::Read => 'r',
                };
                format!("{k}{}", p.id)
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    const SAMPLE: &str = "disk = [ 'format=raw, vdev=xvda, access=rw, target=/opt/domu/domu-disk.img' ]\nvif = [ 'mac=00:16:3e:00:00:02, bridge=xenbr0' ]\n";

    fn store() -> FakeStore {
        let xs = FakeStore::new();
        xs.0.borrow_mut().play_backends = true;
        xs
    }

    #[test]
    fn nodes_and_perms_match_the_sample_tree() {
        let xs = store();
        let host = FakeHost::new();
        host.file("/opt/domu/domu-disk.img");
        let c = cfg(SAMPLE);
        // The domain's skeleton (build.rs) holds the frontends' parent.
        for p in ["/local/domain/1", "/local/domain/1/device"] {
            xs.write(0, p, "").unwrap();
            xs.set_perms(0, p, &[n(0), r(1)]).unwrap();
        }
        precheck(&xs, &host, &c).unwrap();
        let mut rnd = |_: &mut [u8]| Ok(());
        add_all(
            &xs,
            &host,
            1,
            &c,
            &mut rnd,
            Duration::from_secs(1),
            &mut |_| {},
        )
        .unwrap();
        // Every vbd/vif node of the reference `xenstore-ls -fp` (minus what the kernel
        // drivers write) with its value and ACL.
        let sample = include_str!("../testdata/xenstore-ls-fp.txt");
        let driver_keys = [
            "feature-",
            "discard-",
            "info",
            "sectors",
            "sector-size",
            "physical-sector-size",
            "max-ring-page-order",
            "multi-queue-",
            "event-channel",
            "ring-ref",
            "protocol",
            "tx-ring-ref",
            "rx-ring-ref",
            "request-rx-copy",
            "xdp-headroom",
        ];
        let mut checked = 0;
        for line in sample.lines() {
            let Some((path, rest)) = line.split_once(" = \"") else {
                continue;
            };
            if !(path.contains("/vbd") || path.contains("/vif")) {
                continue;
            }
            let leaf = path.rsplit('/').next().unwrap();
            if driver_keys.iter().any(|k| leaf.starts_with(k)) {
                continue;
            }
            let (val, perms) = rest.rsplit_once("\"   (").unwrap();
            let perms = perms.trim_end_matches(')');
            let mut want = val.to_string();
            // Driver-written states, after the drivers connected.
            if leaf == "state" && !path.starts_with("/libxl") {
                want = if path.starts_with("/local/domain/0") {
                    "2"
                } else {
                    "1"
                }
                .into();
            }
            assert_eq!(xs.value(path).as_deref(), Some(want.as_str()), "{path}");
            assert_eq!(perm_text(&xs.perms(path).unwrap()), perms, "{path}");
            checked += 1;
        }
        assert!(checked > 60, "{checked}");
        assert_eq!(
            host.0.borrow().joined,
            [("vif1.0".into(), "xenbr0".into(), 1500)]
        );
        assert_eq!(host.0.borrow().loops.len(), 1);

        let bl = block_list(&xs, 1).unwrap();
        assert_eq!(
            bl,
            "Vdev  BE  handle state evt-ch ring-ref BE-path                       \n\
             51712 0   1      1     -1     -1       /local/domain/0/backend/vbd/1/51712\n"
        );
        // Once the frontend connected (values of the reference run).
        for (k, v) in [("state", "4"), ("event-channel", "3"), ("ring-ref", "8")] {
            xs.write(0, &format!("/local/domain/1/device/vbd/51712/{k}"), v)
                .unwrap();
        }
        for (k, v) in [
            ("state", "4"),
            ("tx-ring-ref", "524"),
            ("rx-ring-ref", "525"),
        ] {
            xs.write(0, &format!("/local/domain/1/device/vif/0/{k}"), v)
                .unwrap();
        }
        let bl = block_list(&xs, 1).unwrap();
        assert_eq!(
            bl.lines().nth(1).unwrap(),
            "51712 0   1      4     3      8        /local/domain/0/backend/vbd/1/51712"
        );
        let nl = network_list(&xs, 1).unwrap();
        assert_eq!(
            nl,
            "Idx BE Mac Addr.         handle state evt-ch   tx-/rx-ring-ref BE-path                       \n\
             0   0  00:16:3e:00:00:02     0     4     -1   524/525         /local/domain/0/backend/vif/1/0\n"
        );

        // A second domain may not take the same MAC nor the disk read-write.
        assert!(
            precheck(&xs, &host, &c)
                .unwrap_err()
                .contains("already attached to domain 1")
        );
        let c2 = cfg("vif = [ 'mac=00:16:3e:00:00:02' ]");
        assert!(
            precheck(&xs, &host, &c2)
                .unwrap_err()
                .contains("already used by domain 1")
        );

        remove_all(&xs, &host, 1, Duration::from_secs(1)).unwrap();
        assert!(host.0.borrow().loops.is_empty());
        assert!(
            xs.paths()
                .iter()
                .all(|p| !p.contains("/vbd") && !p.contains("/vif")),
            "{:?}",
            xs.paths()
        );
    }

    #[test]
    fn prechecks_and_defaults() {
        let xs = store();
        let host = FakeHost::new();
        let e = precheck(&xs, &host, &cfg("disk=['/nope,raw,xvda,rw']")).unwrap_err();
        assert!(e.starts_with("disk xvda: target /nope: ENOENT"), "{e}");
        let e = precheck(&xs, &host, &cfg("vif=['bridge=br9']")).unwrap_err();
        assert!(e.starts_with("vif 0: bridge br9 does not exist"), "{e}");
        // A block device needs no loop; a default MAC has Xen's OUI.
        host.0
            .borrow_mut()
            .targets
            .insert("/dev/vdb".into(), Target::Block(254, 16));
        let c = cfg("disk=['phy:/dev/vdb,xvdb,r']\nvif=['']");
        precheck(&xs, &host, &c).unwrap();
        let mut rnd = |b: &mut [u8]| {
            b.fill(0xff);
            Ok(())
        };
        add_all(
            &xs,
            &host,
            3,
            &c,
            &mut rnd,
            Duration::from_secs(1),
            &mut |_| {},
        )
        .unwrap();
        let be = "/local/domain/0/backend/vbd/3/51728";
        assert_eq!(
            xs.value(&format!("{be}/physical-device")).as_deref(),
            Some("fe:10")
        );
        assert_eq!(xs.value(&format!("{be}/mode")).as_deref(), Some("r"));
        assert!(xs.value(&format!("{be}/node")).is_none());
        assert_eq!(
            xs.value("/local/domain/3/device/vif/0/mac").as_deref(),
            Some("00:16:3e:7f:ff:ff")
        );
        assert!(host.0.borrow().loops.is_empty());
        // Read-only sharing is allowed.
        let c3 = cfg("disk=['phy:/dev/vdb,xvda,r']");
        precheck(&xs, &host, &c3).unwrap();
        remove_all(&xs, &host, 3, Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn hot_plug_attach_and_detach() {
        let xs = store();
        let host = FakeHost::new();
        host.file("/a.img");
        host.file("/b.img");
        let c = cfg("disk=['/a.img,raw,xvda,rw']\nvif=['mac=00:16:3e:00:00:05']");
        let t = Duration::from_secs(1);
        add_all(&xs, &host, 2, &c, &mut |_| Ok(()), t, &mut |_| {}).unwrap();
        let b =
            crate::devspec::parse_disk("format=raw, vdev=xvdb, access=ro, target=/b.img").unwrap();
        attach_disk(&xs, &host, 2, &b, t).unwrap();
        assert_eq!(block_list(&xs, 2).unwrap().lines().count(), 3);
        assert_eq!(host.0.borrow().loops.len(), 2);
        // The same vdev again, a missing file: refused, nothing added.
        let e = attach_disk(&xs, &host, 2, &b, t).unwrap_err();
        assert!(e.contains("already has virtual device 51728"), "{e}");
        let x = crate::devspec::parse_disk("/x.img,raw,xvdc").unwrap();
        assert!(
            attach_disk(&xs, &host, 2, &x, t)
                .unwrap_err()
                .contains("/x.img")
        );
        assert!(
            xs.value("/local/domain/0/backend/vbd/2/51744/state")
                .is_none()
        );
        // A second vif gets handle 1; detach by MAC.
        let v = crate::devspec::parse_vif("mac=00:16:3e:00:00:06").unwrap();
        assert_eq!(
            attach_vif(&xs, &host, 2, &v, &mut |_| Ok(()), t).unwrap(),
            1
        );
        assert_eq!(network_list(&xs, 2).unwrap().lines().count(), 3);
        assert_eq!(vif_handle(&xs, 2, "00:16:3E:00:00:06").unwrap(), 1);
        assert_eq!(detach(&xs, &host, 2, "vif", 1, t), Ok(false));
        assert!(xs.value("/local/domain/0/backend/vif/2/1/mac").is_none());
        assert!(xs.value("/local/domain/0/backend/vif/2/0/mac").is_some());
        // Disk detach releases its loop device only.
        assert_eq!(detach(&xs, &host, 2, "vbd", 51728, t), Ok(false));
        assert_eq!(
            host.0.borrow().loops.values().collect::<Vec<_>>(),
            ["/a.img"]
        );
        assert!(
            detach(&xs, &host, 2, "vbd", 51728, t)
                .unwrap_err()
                .contains("no vbd device 51728")
        );
        assert!(xs.value("/local/domain/2/device/vbd/51728/state").is_none());
        remove_all(&xs, &host, 2, t).unwrap();
        assert!(host.0.borrow().loops.is_empty());
    }

    #[test]
    fn backend_that_never_answers_times_out_and_removal_cleans_up() {
        let xs = FakeStore::new(); // no backend drivers
        let host = FakeHost::new();
        host.file("/d.img");
        let c = cfg("disk=['/d.img,raw,xvda,rw']");
        let e = add_all(
            &xs,
            &host,
            1,
            &c,
            &mut |_| Ok(()),
            Duration::from_millis(50),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.starts_with("waiting for the device backends: "), "{e}");
        assert!(!e.contains('\n'));
        let _ = remove_all(&xs, &host, 1, Duration::from_millis(50));
        assert!(
            xs.paths().iter().all(|p| !p.contains("/vbd")),
            "{:?}",
            xs.paths()
        );
        // netback that never makes its interface.
        let xs = store();
        host.0.borrow_mut().netback = false;
        let c = cfg("vif=['']");
        let e = add_all(
            &xs,
            &host,
            1,
            &c,
            &mut |_| Ok(()),
            Duration::from_millis(50),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.contains("netback did not create vif1.0"), "{e}");
        remove_all(&xs, &host, 1, Duration::from_millis(50)).unwrap();
        assert!(
            xs.paths().iter().all(|p| !p.contains("/vif")),
            "{:?}",
            xs.paths()
        );
    }
}
