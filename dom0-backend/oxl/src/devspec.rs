//! xl.cfg device specifications: `disk = [ ... ]` entries (xl-disk-configuration(5): keyword
//! `key=value` settings, the positional `target, format, vdev, access` form and the deprecated
//! `phy:`/`file:`/`raw:` prefixes) and `vif = [ ... ]` entries (xl-network-configuration(5):
//! `mac=`, `bridge=`, ...), the virtual device numbers libxl derives from a vdev name, and MAC
//! addresses.
//!
//! Invariants: parsing never panics; an error is one line naming the offending part of the
//! specification; a parsed [`DiskSpec`] has a non-empty target and vdev and a device number;
//! a [`VifSpec`] has a valid unicast MAC (when given) and a bridge name that is a valid Linux
//! interface name.

use std::fmt;

/// A parsed `disk = [ ... ]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSpec {
    /// The file or block device (`target=`, or the first positional parameter).
    pub target: String,
    /// The guest's name for it (`xvda`).
    pub vdev: String,
    /// The virtual device number (`51712` for `xvda`): the frontend's directory name.
    pub devid: u32,
    /// Writable (`access=rw`, the default) or read-only (`access=ro`).
    pub writable: bool,
    /// `devtype=cdrom` (or a `:cdrom` vdev suffix).
    pub cdrom: bool,
}

/// A parsed `vif = [ ... ]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VifSpec {
    /// `mac=`; `None`: libxl's default (00:16:3e plus three random bytes).
    pub mac: Option<[u8; 6]>,
    /// `bridge=` (default `xenbr0`).
    pub bridge: String,
}

/// A device specification error (one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError(pub String);

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(spec: &str, msg: impl fmt::Display) -> Result<T, SpecError> {
    Err(SpecError(format!("disk spec \"{spec}\": {msg}")))
}

/// Parses one `disk` entry as libxlu does.
pub fn parse_disk(spec: &str) -> Result<DiskSpec, SpecError> {
    let mut target: Option<String> = None;
    let mut format: Option<String> = None;
    let mut vdev: Option<String> = None;
    let mut access: Option<String> = None;
    let mut devtype: Option<String> = None;
    let mut depr_prefix = false;
    let mut positional = 0usize;

    let mut rest = spec;
    while !rest.is_empty() {
        rest = rest.trim_start_matches([' ', '\t', '\n']);
        if rest.is_empty() {
            break;
        }
        // `target=` eats the rest of the string, commas included.
        if let Some(t) = rest.strip_prefix("target=") {
            target = Some(t.to_string());
            break;
        }
        let (item, next) = match rest.split_once(',') {
            Some((a, b)) => (a, b),
            None => (rest, ""),
        };
        rest = next;
        let item = item.trim_end_matches([' ', '\t', '\n']);
        if let Some((k, v)) = item.split_once('=')
            && !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            let slot = match k {
                "format" => &mut format,
                "vdev" => &mut vdev,
                "access" => &mut access,
                "devtype" => &mut devtype,
                "backend" => {
                    if !(v == "0" || v == "Domain-0") {
                        return err(spec, "only Dom0 (backend=0) can serve disks");
                    }
                    continue;
                }
                "backendtype" => {
                    if v != "phy" {
                        return err(spec, format!("backendtype={v} is not supported (phy only)"));
                    }
                    continue;
                }
                "script" | "specification" => continue,
                _ => return err(spec, format!("unknown parameter \"{k}\"")),
            };
            *slot = Some(v.to_string());
            continue;
        }
        match item {
            "discard" | "no-discard" | "direct-io-safe" | "trusted" | "untrusted" => continue,
            _ => {}
        }
        // Deprecated `prefix:target` forms (they make the format slot implicit).
        if target.is_none() && positional == 0 {
            let mut prefixed = None;
            for (p, fmt) in [
                ("phy:", None),
                ("file:", None),
                ("aio:", None),
                ("raw:", Some("raw")),
                ("qcow:", Some("qcow")),
                ("qcow2:", Some("qcow2")),
                ("vhd:", Some("vhd")),
            ] {
                if let Some(t) = item.strip_prefix(p) {
                    prefixed = Some((t, fmt));
                    break;
                }
            }
            if let Some((t, fmt)) = prefixed {
                depr_prefix = true;
                target = Some(t.to_string());
                if let Some(f) = fmt {
                    format = Some(f.to_string());
                }
                positional = 1;
                continue;
            }
        }
        // Positional: target, format (not after a deprecated prefix), vdev, access.
        let order: &[&str] = if depr_prefix {
            &["target", "vdev", "access"]
        } else {
            &["target", "format", "vdev", "access"]
        };
        let Some(&slot) = order.get(positional) else {
            return err(
                spec,
                format!("too many positional parameters at \"{item}\""),
            );
        };
        positional += 1;
        let v = Some(item.to_string());
        match slot {
            "target" => target = v,
            "format" => {
                if !item.is_empty() {
                    format = v
                }
            }
            "vdev" => vdev = v,
            _ => access = v,
        }
    }

    match format.as_deref() {
        None | Some("") | Some("raw") => {}
        Some(f @ ("qcow" | "qcow2" | "vhd" | "qed")) => {
            return err(
                spec,
                format!("format {f} needs QEMU's qdisk backend: use format=raw"),
            );
        }
        Some("empty") => return err(spec, "empty (removable) drives are not supported"),
        Some(f) => return err(spec, format!("unknown value for format: {f}")),
    }
    let writable = match access.as_deref() {
        None | Some("") | Some("rw") | Some("w") => true,
        Some("ro") | Some("r") => false,
        Some(a) => return err(spec, format!("unknown value for access: {a}")),
    };
    let target = match target {
        Some(t) if !t.is_empty() => t,
        _ => return err(spec, "no target specified"),
    };
    let mut vdev = match vdev {
        Some(v) if !v.is_empty() => v,
        _ => return err(spec, "no vdev specified"),
    };
    let mut cdrom = false;
    if let Some(v) = vdev.strip_suffix(":cdrom") {
        cdrom = true;
        vdev = v.to_string();
    } else if let Some(v) = vdev.strip_suffix(":disk") {
        vdev = v.to_string();
    }
    match devtype.as_deref() {
        None | Some("disk") => {}
        Some("cdrom") => cdrom = true,
        Some(d) => return err(spec, format!("unknown value for devtype: {d}")),
    }
    let devid = vdev_number(&vdev)
        .ok_or_else(|| SpecError(format!("disk spec \"{spec}\": invalid vdev {vdev}")))?;
    Ok(DiskSpec {
        target,
        vdev,
        devid,
        writable: writable && !cdrom,
        cdrom,
    })
}

/// `a`=0 ... `z`=25, `aa`=26 ...: the disk index of xvd/sd/hd names, and the rest.
fn disk_letters(s: &str) -> Option<(u32, &str)> {
    let n = s.bytes().take_while(u8::is_ascii_lowercase).count();
    if n == 0 || n > 4 {
        return None;
    }
    let mut disk: u32 = 0;
    for b in s[..n].bytes() {
        disk = disk * 26 + u32::from(b - b'a') + 1;
    }
    Some((disk - 1, &s[n..]))
}

fn partition(s: &str) -> Option<u32> {
    if s.is_empty() {
        return Some(0);
    }
    if s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 6 {
        return None;
    }
    s.parse().ok()
}

/// The virtual device number libxl gives a vdev name (`libxl__device_disk_dev_number`):
/// `xvdX[N]` = 202:(X*16+N) (or the extended form 1<<28 | X<<8 | N), `sdX[N]` = 8:(X*16+N),
/// `hdX[N]` = 3 or 22:(X%2*64+N), `dXpN` as xvd, or a plain number.
pub fn vdev_number(vdev: &str) -> Option<u32> {
    if !vdev.is_empty() && vdev.bytes().all(|b| b.is_ascii_digit()) {
        return vdev.parse().ok();
    }
    if let Some(r) = vdev.strip_prefix("xvd") {
        let (disk, r) = disk_letters(r)?;
        let part = partition(r)?;
        if disk <= 15 && part <= 15 {
            return Some((202 << 8) | (disk << 4) | part);
        }
        if disk < (1 << 20) && part <= 255 {
            return Some((1 << 28) | (disk << 8) | part);
        }
        return None;
    }
    if let Some(r) = vdev.strip_prefix("sd") {
        let (disk, r) = disk_letters(r)?;
        let part = partition(r)?;
        return (disk <= 15 && part <= 15).then_some((8 << 8) | (disk << 4) | part);
    }
    if let Some(r) = vdev.strip_prefix("hd") {
        let (disk, r) = disk_letters(r)?;
        let part = partition(r)?;
        if disk > 3 || part > 63 {
            return None;
        }
        let major = if disk < 2 { 3 } else { 22 };
        return Some((major << 8) | ((disk & 1) << 6) | part);
    }
    if let Some(r) = vdev.strip_prefix('d') {
        let (d, p) = r.split_once('p').unwrap_or((r, ""));
        let disk = if d == "0" {
            Some(0)
        } else {
            partition(d).filter(|_| !d.is_empty())
        }?;
        let part = partition(p)?;
        if disk <= 15 && part <= 15 {
            return Some((202 << 8) | (disk << 4) | part);
        }
        if disk < (1 << 20) && part <= 255 {
            return Some((1 << 28) | (disk << 8) | part);
        }
    }
    None
}

/// Parses `xx:xx:xx:xx:xx:xx` (hex, either case; `-` also accepted as a separator).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (m, p) in mac.iter_mut().zip(&parts) {
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *m = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

/// `00:16:3e:00:00:02` (libxl's `LIBXL_MAC_FMT`).
pub fn format_mac(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// libxl's default MAC: Xen's OUI 00:16:3e, then three random bytes, the first with its top
/// bit clear (`libxl__device_nic_setdefault`).
pub fn default_mac(random: [u8; 3]) -> [u8; 6] {
    [0x00, 0x16, 0x3e, random[0] & 0x7f, random[1], random[2]]
}

/// Whether `name` is a valid Linux interface name (1-15 bytes, no `/`, `:` or whitespace).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b < 0x20)
}

/// Parses one `vif` entry (xl's `parse_nic_config`: comma-separated `key=value`).
pub fn parse_vif(spec: &str) -> Result<VifSpec, SpecError> {
    let e = |m: String| SpecError(format!("vif spec \"{spec}\": {m}"));
    let mut out = VifSpec {
        mac: None,
        bridge: "xenbr0".into(),
    };
    for item in spec.split(',') {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(e(format!("\"{item}\" is not key=value")));
        };
        match k.trim() {
            "mac" => {
                let mac =
                    parse_mac(v.trim()).ok_or_else(|| e(format!("invalid mac address {v}")))?;
                if mac[0] & 1 != 0 {
                    return Err(e(format!("mac address {v} is a multicast address")));
                }
                out.mac = Some(mac);
            }
            "bridge" => {
                let b = v.trim();
                if !valid_ifname(b) {
                    return Err(e(format!("invalid bridge name \"{b}\"")));
                }
                out.bridge = b.to_string();
            }
            "backend" => {
                if !(v == "0" || v == "Domain-0") {
                    return Err(e(
                        "only Dom0 (backend=0) can serve network interfaces".into()
                    ));
                }
            }
            "type" => {
                if v != "vif" {
                    return Err(e(format!("type={v} is not supported (vif only)")));
                }
            }
            "script" => {
                if !v.ends_with("vif-bridge") {
                    return Err(e(format!("script={v} is not supported (bridging only)")));
                }
            }
            // Accepted, as xl does, without effect here.
            "model" | "vifname" | "ip" | "rate" | "mtu" | "devid" => {}
            other => return Err(e(format!("unknown parameter \"{other}\""))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(s: &str) -> DiskSpec {
        parse_disk(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn disk_forms_are_equivalent() {
        let want = DiskSpec {
            target: "/opt/domu/domu-disk.img".into(),
            vdev: "xvda".into(),
            devid: 51712,
            writable: true,
            cdrom: false,
        };
        for s in [
            "format=raw, vdev=xvda, access=rw, target=/opt/domu/domu-disk.img",
            "/opt/domu/domu-disk.img,raw,xvda,rw",
            "/opt/domu/domu-disk.img,,xvda",
            "/opt/domu/domu-disk.img,raw,xvda,w",
            "vdev=xvda,target=/opt/domu/domu-disk.img",
            "file:/opt/domu/domu-disk.img,xvda,w",
            "raw:/opt/domu/domu-disk.img,xvda,w",
        ] {
            assert_eq!(disk(s), want, "{s}");
        }
        let d = disk("phy:/dev/vdb,xvdb,r");
        assert_eq!(
            (d.target.as_str(), d.devid, d.writable),
            ("/dev/vdb", 51728, false)
        );
        let d = disk("format=raw, vdev=xvdc, access=ro, target=/a,b=c");
        assert_eq!((d.target.as_str(), d.writable), ("/a,b=c", false));
        let d = disk("/x.iso,,xvdd:cdrom");
        assert!(d.cdrom && !d.writable && d.vdev == "xvdd");
        assert!(disk("/x,raw,xvda,rw,  ").writable);
    }

    #[test]
    fn disk_errors() {
        for (s, want) in [
            ("vdev=xvda", "no target"),
            ("/x", "no vdev"),
            ("/x,qcow2,xvda", "qdisk"),
            ("/x,raw,xvda,rx", "unknown value for access: rx"),
            ("/x,raw,xvda,rw,extra", "too many positional"),
            ("bogus=1,/x,raw,xvda", "unknown parameter \"bogus\""),
            ("/x,raw,nonsense", "invalid vdev nonsense"),
            ("/x,raw,xvda,rw,backend=2", "only Dom0"),
            ("/x,weird,xvda", "unknown value for format"),
            ("", "no target"),
        ] {
            let e = parse_disk(s).unwrap_err().0;
            assert!(e.contains(want), "{s}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn vdev_numbers_as_libxl() {
        assert_eq!(vdev_number("xvda"), Some(51712));
        assert_eq!(vdev_number("xvdb"), Some(51728));
        assert_eq!(vdev_number("xvda1"), Some(51713));
        assert_eq!(vdev_number("xvdp15"), Some((202 << 8) | (15 << 4) | 15));
        assert_eq!(vdev_number("xvdq"), Some((1 << 28) | (16 << 8)));
        assert_eq!(vdev_number("xvdaa"), Some((1 << 28) | (26 << 8)));
        assert_eq!(vdev_number("sda"), Some(2048));
        assert_eq!(vdev_number("hda"), Some(768));
        assert_eq!(vdev_number("hdc"), Some(22 << 8));
        assert_eq!(vdev_number("hdd1"), Some((22 << 8) | 64 | 1));
        assert_eq!(vdev_number("d0p1"), Some(51713));
        assert_eq!(vdev_number("51712"), Some(51712));
        for bad in ["xvd", "xvdA", "xvda01", "hde", "vda", "", "xvda1x"] {
            assert_eq!(vdev_number(bad), None, "{bad}");
        }
    }

    #[test]
    fn vifs_and_macs() {
        let v = parse_vif("mac=00:16:3e:00:00:02, bridge=xenbr0").unwrap();
        assert_eq!(v.mac, Some([0, 0x16, 0x3e, 0, 0, 2]));
        assert_eq!(v.bridge, "xenbr0");
        let v = parse_vif("").unwrap();
        assert_eq!((v.mac, v.bridge.as_str()), (None, "xenbr0"));
        assert_eq!(parse_vif("bridge=br1").unwrap().bridge, "br1");
        assert!(
            parse_vif("mac=01:00:00:00:00:00")
                .unwrap_err()
                .0
                .contains("multicast")
        );
        assert!(
            parse_vif("mac=zz:00:00:00:00:00")
                .unwrap_err()
                .0
                .contains("invalid mac")
        );
        assert!(parse_vif("bridge=a/b").is_err());
        assert!(parse_vif("bridge=abcdefghijklmnop").is_err());
        assert!(
            parse_vif("colour=red")
                .unwrap_err()
                .0
                .contains("unknown parameter")
        );
        assert!(parse_vif("model=rtl8139,mac=00:16:3E:AA:bb:0c").is_ok());
        assert_eq!(
            format_mac(&[0, 0x16, 0x3e, 0xaa, 0xbb, 0x0c]),
            "00:16:3e:aa:bb:0c"
        );
        assert_eq!(
            parse_mac("00-16-3e-aa-bb-0c"),
            Some([0, 0x16, 0x3e, 0xaa, 0xbb, 0x0c])
        );
        assert_eq!(parse_mac("00:16:3e:aa:bb"), None);
        assert_eq!(default_mac([0xff, 1, 2]), [0, 0x16, 0x3e, 0x7f, 1, 2]);
    }

    #[test]
    fn hostile_specs_never_panic() {
        for s in [
            ",",
            ",,,,",
            "=",
            "target=",
            "a=b=c",
            "phy:",
            "\u{0}",
            "xvd\u{ff}",
            ":cdrom",
        ] {
            let _ = parse_disk(s);
            let _ = parse_vif(s);
        }
    }
}
