//! `xl list -l` output: the domain configuration as libxl's JSON (`libxl_domain_config_gen_json`)
//! and yajl's beautified layout (4-space indent; an empty object or array prints as
//! `{` newline newline indent `}`), which serde_json's pretty printer does not do by itself.
//!
//! Invariants: fields libxl leaves at their default are omitted, as libxl omits them (so the
//! sample's `on_poweroff = destroy` does not appear); key order is libxl's.

use std::io;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::cfg::{Action, DomainConfig, format_uuid};

/// serde_json formatter reproducing yajl_gen's beautify mode.
struct YajlFormatter {
    depth: usize,
}

impl YajlFormatter {
    fn indent<W: ?Sized + io::Write>(&self, w: &mut W) -> io::Result<()> {
        for _ in 0..self.depth {
            w.write_all(b"    ")?;
        }
        Ok(())
    }
}

impl serde_json::ser::Formatter for YajlFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        w.write_all(b"[\n")
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        w.write_all(b"\n")?;
        self.indent(w)?;
        w.write_all(b"]")
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            w.write_all(b",\n")?;
        }
        self.indent(w)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        w.write_all(b"{\n")
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        w.write_all(b"\n")?;
        self.indent(w)?;
        w.write_all(b"}")
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            w.write_all(b",\n")?;
        }
        self.indent(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }
}

/// `value` in yajl's beautified layout (no trailing newline).
pub fn to_yajl(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, YajlFormatter { depth: 0 });
    value
        .serialize(&mut ser)
        .expect("serialising a Value into a Vec cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// `key=value, key=value` specs (xl's disk and vif syntax) as pairs.
fn spec_pairs(spec: &str) -> Vec<(String, String)> {
    spec.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

/// A disk as libxl's JSON has it (from the parsed spec: every xl.cfg form gives the same).
fn disk_json(d: &crate::devspec::DiskSpec) -> Value {
    let mut m = Map::new();
    m.insert("pdev_path".into(), json!(d.target));
    m.insert("vdev".into(), json!(d.vdev));
    m.insert("format".into(), json!("raw"));
    if d.writable {
        m.insert("readwrite".into(), json!(1));
    }
    if d.cdrom {
        m.insert("is_cdrom".into(), json!(1));
    }
    m.insert("colo_restore_enable".into(), json!("False"));
    Value::Object(m)
}

fn nic_json(devid: usize, spec: &str) -> Value {
    let mut m = Map::new();
    m.insert("devid".into(), json!(devid));
    for (k, v) in spec_pairs(spec) {
        if matches!(k.as_str(), "mac" | "bridge" | "ip" | "model" | "script") {
            m.insert(k, json!(v));
        }
    }
    m.insert("nictype".into(), json!("vif"));
    Value::Object(m)
}

/// The libxl `domain_config` JSON of a created domain.
pub fn domain_config_json(cfg: &DomainConfig, uuid: &[u8; 16], sched: &str) -> Value {
    let mut c_info = Map::new();
    c_info.insert("type".into(), json!("pvh"));
    c_info.insert("name".into(), json!(cfg.name));
    c_info.insert("domid".into(), json!(u32::MAX));
    c_info.insert("uuid".into(), json!(format_uuid(uuid)));
    c_info.insert("run_hotplug_scripts".into(), json!("True"));

    let mut b = Map::new();
    b.insert("max_vcpus".into(), json!(cfg.max_vcpus));
    b.insert(
        "avail_vcpus".into(),
        json!((0..cfg.vcpus).collect::<Vec<_>>()),
    );
    b.insert("max_memkb".into(), json!(cfg.max_memkb));
    b.insert("target_memkb".into(), json!(cfg.target_memkb));
    b.insert("video_memkb".into(), json!(0));
    b.insert(
        "sched_params".into(),
        json!({"sched": sched, "weight": cfg.weight.unwrap_or(256), "cap": cfg.cap.unwrap_or(0)}),
    );
    b.insert("claim_mode".into(), json!("True"));
    b.insert("kernel".into(), json!(cfg.kernel));
    if let Some(c) = &cfg.cmdline {
        b.insert("cmdline".into(), json!(c));
    }
    if let Some(r) = &cfg.ramdisk {
        b.insert("ramdisk".into(), json!(r));
    }
    b.insert("type.pvh".into(), json!({}));
    b.insert("arch_arm".into(), json!({}));
    b.insert("arch_x86".into(), json!({}));

    let mut c = Map::new();
    c.insert("c_info".into(), Value::Object(c_info));
    c.insert("b_info".into(), Value::Object(b));
    if !cfg.disk_devs.is_empty() {
        c.insert(
            "disks".into(),
            Value::Array(cfg.disk_devs.iter().map(disk_json).collect()),
        );
    }
    if !cfg.vifs.is_empty() {
        c.insert(
            "nics".into(),
            Value::Array(
                cfg.vifs
                    .iter()
                    .enumerate()
                    .map(|(i, v)| nic_json(i, v))
                    .collect(),
            ),
        );
    }
    for (key, a) in [
        ("on_poweroff", cfg.on_poweroff),
        ("on_reboot", cfg.on_reboot),
        ("on_watchdog", cfg.on_watchdog),
        ("on_crash", cfg.on_crash),
    ] {
        if a != Action::Destroy {
            c.insert(key.into(), json!(a.json_name()));
        }
    }
    c.insert("on_soft_reset".into(), json!("soft_reset"));
    Value::Object(c)
}

/// `xl list -l`'s array of `{domid, config}`, ending as yajl's buffer does (one newline; xl's
/// `puts` adds another).
pub fn list_long(entries: &[(u32, Value)]) -> String {
    let arr: Vec<Value> = entries
        .iter()
        .map(|(d, c)| json!({"domid": d, "config": c}))
        .collect();
    to_yajl(&Value::Array(arr)) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfg::{Settings, parse_uuid};

    #[test]
    fn matches_the_sample_byte_for_byte() {
        let cfg = Settings::parse("f", include_str!("../testdata/domu.cfg"), &[])
            .unwrap()
            .domain_config()
            .unwrap();
        let uuid = parse_uuid("e68679a4-9132-4e75-b8c9-195ce327113f").unwrap();
        let out = list_long(&[(1, domain_config_json(&cfg, &uuid, "credit2"))]) + "\n";
        assert_eq!(out, include_str!("../testdata/xl-list-l.json"));
    }

    #[test]
    fn every_disk_form_gives_the_same_json() {
        let json_of = |disk: &str| {
            let cfg = Settings::parse("f", &format!("name='a'\nkernel='/k'\ndisk=['{disk}']"), &[])
                .unwrap()
                .domain_config()
                .unwrap();
            domain_config_json(&cfg, &[0; 16], "credit2")["disks"].clone()
        };
        let a = json_of("format=raw, vdev=xvda, access=rw, target=/d.img");
        assert_eq!(a, json_of("/d.img,raw,xvda,rw"));
        assert_eq!(a, json_of("file:/d.img,xvda,w"));
        assert_eq!(a[0]["pdev_path"], "/d.img");
        assert!(json_of("phy:/dev/vdb,xvdb,r")[0].get("readwrite").is_none());
    }

    #[test]
    fn empty_list_and_actions() {
        assert_eq!(list_long(&[]), "[\n\n]\n");
        let cfg = Settings::parse(
            "f",
            "name='a'\nkernel='/k'\non_poweroff='restart'\non_reboot='destroy'",
            &[],
        )
        .unwrap()
        .domain_config()
        .unwrap();
        let v = domain_config_json(&cfg, &[0; 16], "credit2");
        assert_eq!(v["on_poweroff"], "restart");
        assert!(v.get("on_reboot").is_none());
        assert!(v["b_info"].get("ramdisk").is_none());
    }
}
