//! Host tests of the database rules: tree, permissions, transactions,
//! quotas, change lists.

use super::*;

fn d0() -> Caller {
    Caller::dom0()
}

fn acl(s: &[&str]) -> Vec<Perm> {
    s.iter().map(|p| Perm::parse(p).unwrap()).collect()
}

/// The tree libxl builds for domain 1 (subset).
fn with_domain(s: &mut Store, d: u16) {
    let home = format!("/local/domain/{d}");
    s.write(&d0(), None, &home, b"").unwrap();
    s.set_perms(&d0(), None, &home, acl(&["n0", &format!("r{d}")]))
        .unwrap();
    s.write(&d0(), None, &format!("{home}/name"), b"domu")
        .unwrap();
    s.write(&d0(), None, &format!("{home}/device"), b"")
        .unwrap();
    s.set_perms(
        &d0(),
        None,
        &format!("{home}/device"),
        acl(&[&format!("n{d}")]),
    )
    .unwrap();
}

#[test]
fn initial_nodes() {
    let s = Store::new();
    assert_eq!(s.walk("/"), vec!["/", "/tool", "/tool/xenstored"]);
    assert_eq!(s.node("/").unwrap().perms, acl(&["n0"]));
}

#[test]
fn write_creates_parents_inheriting_acl() {
    let mut s = Store::new();
    let ch = s.write(&d0(), None, "/a/b/c", b"v").unwrap();
    assert_eq!(ch.len(), 1);
    assert_eq!(ch[0].path, "/a/b/c");
    assert!(!ch[0].exact);
    assert_eq!(s.read(&d0(), None, "/a/b/c").unwrap(), b"v");
    assert_eq!(s.read(&d0(), None, "/a/b").unwrap(), b"");
    assert_eq!(s.directory(&d0(), None, "/a").unwrap(), b"b\0");
    assert_eq!(s.directory(&d0(), None, "/").unwrap(), b"a\0tool\0");
    assert_eq!(s.get_perms(&d0(), None, "/a/b").unwrap(), acl(&["n0"]));
    // Overwrite keeps perms, changes value.
    s.write(&d0(), None, "/a/b/c", b"w").unwrap();
    assert_eq!(s.read(&d0(), None, "/a/b/c").unwrap(), b"w");
    // Binary values are fine.
    s.write(&d0(), None, "/bin", &[0, 1, 255]).unwrap();
    assert_eq!(s.read(&d0(), None, "/bin").unwrap(), vec![0, 1, 255]);
}

#[test]
fn invalid_paths_are_einval() {
    let mut s = Store::new();
    for p in ["/a/", "/a//b", "/a b", "rel", "", "/a\u{e9}"] {
        assert_eq!(s.read(&d0(), None, p), Err(XsError::EINVAL), "{p:?}");
        assert_eq!(s.write(&d0(), None, p, b"x"), Err(XsError::EINVAL), "{p:?}");
    }
    assert_eq!(s.rm(&d0(), None, "/"), Err(XsError::EINVAL));
}

#[test]
fn missing_nodes_enoent_or_eacces() {
    let mut s = Store::new();
    with_domain(&mut s, 1);
    let u = Caller::domu(1);
    let other = Caller::domu(2);
    assert_eq!(s.read(&d0(), None, "/nope"), Err(XsError::ENOENT));
    // Domain 1 can read its home: missing children are ENOENT.
    assert_eq!(
        s.read(&u, None, "/local/domain/1/missing"),
        Err(XsError::ENOENT)
    );
    // Domain 2 cannot read domain 1's home: EACCES, for existing and missing.
    assert_eq!(
        s.read(&other, None, "/local/domain/1/name"),
        Err(XsError::EACCES)
    );
    assert_eq!(
        s.read(&other, None, "/local/domain/1/missing"),
        Err(XsError::EACCES)
    );
    assert_eq!(s.read(&u, None, "/local/domain/1/name").unwrap(), b"domu");
}

#[test]
fn unprivileged_write_rules() {
    let mut s = Store::new();
    with_domain(&mut s, 1);
    let u = Caller::domu(1);
    // Read-only home: no write, no create.
    assert_eq!(
        s.write(&u, None, "/local/domain/1/name", b"x"),
        Err(XsError::EACCES)
    );
    assert_eq!(
        s.write(&u, None, "/local/domain/1/new", b"x"),
        Err(XsError::EACCES)
    );
    assert_eq!(s.write(&u, None, "/elsewhere", b"x"), Err(XsError::EACCES));
    // Owned subtree: creator becomes owner, ACL tail inherited.
    s.write(&u, None, "/local/domain/1/device/vbd/51712/state", b"1")
        .unwrap();
    assert_eq!(
        s.get_perms(&u, None, "/local/domain/1/device/vbd").unwrap(),
        acl(&["n1"])
    );
    // A node Dom0 creates under it keeps the inherited owner.
    s.write(&d0(), None, "/local/domain/1/device/x", b"")
        .unwrap();
    assert_eq!(
        s.get_perms(&d0(), None, "/local/domain/1/device/x")
            .unwrap(),
        acl(&["n1"])
    );
    // Domain 2 creating where domain 1 granted write: 2 becomes owner.
    s.set_perms(&u, None, "/local/domain/1/device", acl(&["n1", "w2"]))
        .unwrap();
    let two = Caller::domu(2);
    s.write(&two, None, "/local/domain/1/device/from2", b"hi")
        .unwrap();
    assert_eq!(
        s.get_perms(&d0(), None, "/local/domain/1/device/from2")
            .unwrap(),
        acl(&["n2", "w2"])
    );
    // Write-only: cannot read.
    assert_eq!(
        s.read(&two, None, "/local/domain/1/device/vbd"),
        Err(XsError::EACCES)
    );
}

#[test]
fn set_perms_rules() {
    let mut s = Store::new();
    with_domain(&mut s, 1);
    let u = Caller::domu(1);
    // Not owner of home: EACCES (write+owner needed).
    assert_eq!(
        s.set_perms(&u, None, "/local/domain/1", acl(&["b1"])),
        Err(XsError::EACCES)
    );
    // Owner of device cannot give it away.
    assert_eq!(
        s.set_perms(&u, None, "/local/domain/1/device", acl(&["n2"])),
        Err(XsError::EPERM)
    );
    // Quota on entries.
    let six = acl(&["n1", "r2", "r3", "r4", "r5", "r6"]);
    assert_eq!(
        s.set_perms(&u, None, "/local/domain/1/device", six.clone()),
        Err(XsError::ENOSPC)
    );
    s.set_perms(&d0(), None, "/local/domain/1/device", six)
        .unwrap();
    let ch = s
        .set_perms(&u, None, "/local/domain/1/device", acl(&["n1", "r0"]))
        .unwrap();
    assert_eq!(
        ch[0].old_perms.as_deref(),
        Some(&acl(&["n1", "r2", "r3", "r4", "r5", "r6"])[..])
    );
    // Dom0 may change owners; node counts follow.
    let before = s.owned_by(1);
    s.set_perms(&d0(), None, "/local/domain/1/device", acl(&["n0"]))
        .unwrap();
    assert_eq!(s.owned_by(1), before - 1);
    assert_eq!(
        s.set_perms(&d0(), None, "/missing", acl(&["n0"])),
        Err(XsError::ENOENT)
    );
}

#[test]
fn rm_subtree_and_changes() {
    let mut s = Store::new();
    s.write(&d0(), None, "/a/b/c", b"").unwrap();
    s.write(&d0(), None, "/a/b/d", b"").unwrap();
    let ch = s.rm(&d0(), None, "/a/b").unwrap();
    let got: Vec<(&str, bool)> = ch.iter().map(|c| (c.path.as_str(), c.exact)).collect();
    assert_eq!(
        got,
        vec![("/a/b/c", true), ("/a/b/d", true), ("/a/b", false)]
    );
    assert_eq!(s.read(&d0(), None, "/a/b/c"), Err(XsError::ENOENT));
    assert_eq!(s.directory(&d0(), None, "/a").unwrap(), b"");
    // Missing node with existing parent: fine, no change.
    assert_eq!(s.rm(&d0(), None, "/a/zz").unwrap(), vec![]);
    // Missing parent too: ENOENT.
    assert_eq!(s.rm(&d0(), None, "/q/zz"), Err(XsError::ENOENT));
    assert_eq!(s.walk("/a"), vec!["/a"]);
}

#[test]
fn mkdir_existing_is_silent() {
    let mut s = Store::new();
    assert_eq!(s.mkdir(&d0(), None, "/m").unwrap().len(), 1);
    s.write(&d0(), None, "/m", b"keep").unwrap();
    assert_eq!(s.mkdir(&d0(), None, "/m").unwrap(), vec![]);
    assert_eq!(s.read(&d0(), None, "/m").unwrap(), b"keep");
}

#[test]
fn transaction_isolation_and_commit() {
    let mut s = Store::new();
    s.write(&d0(), None, "/a", b"1").unwrap();
    let mut tx = s.tx_start(1);
    s.write(&d0(), Some(&mut tx), "/a", b"2").unwrap();
    s.write(&d0(), Some(&mut tx), "/n/m", b"new").unwrap();
    s.rm(&d0(), Some(&mut tx), "/tool").unwrap();
    assert_eq!(s.read(&d0(), Some(&mut tx), "/a").unwrap(), b"2");
    assert_eq!(s.read(&d0(), None, "/a").unwrap(), b"1");
    assert_eq!(s.read(&d0(), None, "/n/m"), Err(XsError::ENOENT));
    assert_eq!(
        s.read(&d0(), Some(&mut tx), "/tool/xenstored"),
        Err(XsError::ENOENT)
    );
    let ch = s.tx_commit(&d0(), tx).unwrap();
    let paths: Vec<&str> = ch.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["/a", "/n/m", "/tool/xenstored", "/tool"]);
    assert_eq!(s.read(&d0(), None, "/a").unwrap(), b"2");
    assert_eq!(s.read(&d0(), None, "/n/m").unwrap(), b"new");
    assert_eq!(s.walk("/"), vec!["/", "/a", "/n", "/n/m"]);
}

#[test]
fn transaction_conflicts() {
    let mut s = Store::new();
    s.write(&d0(), None, "/a", b"1").unwrap();
    s.write(&d0(), None, "/b", b"1").unwrap();
    // Read node changed outside: EAGAIN, nothing applied.
    let mut tx = s.tx_start(1);
    s.read(&d0(), Some(&mut tx), "/a").unwrap();
    s.write(&d0(), Some(&mut tx), "/b", b"tx").unwrap();
    s.write(&d0(), None, "/a", b"outside").unwrap();
    assert_eq!(s.tx_commit(&d0(), tx), Err(XsError::EAGAIN));
    assert_eq!(s.read(&d0(), None, "/b").unwrap(), b"1");
    // Written node changed outside: EAGAIN too.
    let mut tx = s.tx_start(2);
    s.write(&d0(), Some(&mut tx), "/b", b"tx").unwrap();
    s.write(&d0(), None, "/b", b"outside").unwrap();
    assert_eq!(s.tx_commit(&d0(), tx), Err(XsError::EAGAIN));
    // Node created outside that the tx saw missing: EAGAIN.
    let mut tx = s.tx_start(3);
    assert_eq!(s.read(&d0(), Some(&mut tx), "/c"), Err(XsError::ENOENT));
    s.write(&d0(), None, "/c", b"x").unwrap();
    assert_eq!(s.tx_commit(&d0(), tx), Err(XsError::EAGAIN));
    // Unrelated change: commit fine.
    let mut tx = s.tx_start(4);
    s.read(&d0(), Some(&mut tx), "/a").unwrap();
    s.write(&d0(), None, "/zzz", b"x").unwrap();
    s.tx_commit(&d0(), tx).unwrap();
    // Two transactions writing siblings conflict on the parent's child list.
    let mut t1 = s.tx_start(5);
    let mut t2 = s.tx_start(6);
    s.write(&d0(), Some(&mut t1), "/p/x", b"").unwrap();
    s.write(&d0(), Some(&mut t2), "/p/y", b"").unwrap();
    s.tx_commit(&d0(), t1).unwrap();
    assert_eq!(s.tx_commit(&d0(), t2), Err(XsError::EAGAIN));
}

#[test]
fn tx_change_merging_non_exact_wins() {
    let mut s = Store::new();
    s.write(&d0(), None, "/a/b", b"").unwrap();
    let mut tx = s.tx_start(1);
    s.write(&d0(), Some(&mut tx), "/a/b", b"x").unwrap();
    s.rm(&d0(), Some(&mut tx), "/a").unwrap();
    let ch = s.tx_commit(&d0(), tx).unwrap();
    let got: Vec<(&str, bool)> = ch.iter().map(|c| (c.path.as_str(), c.exact)).collect();
    assert_eq!(got, vec![("/a/b", false), ("/a", false)]);
}

#[test]
fn node_quota() {
    let mut s = Store::new();
    s.quota.nodes = 5;
    with_domain(&mut s, 1);
    let u = Caller::domu(1);
    // device is owned by 1 already: 1 node. 4 more allowed.
    s.write(&u, None, "/local/domain/1/device/a/b", b"")
        .unwrap();
    s.write(&u, None, "/local/domain/1/device/c", b"").unwrap();
    assert_eq!(s.owned_by(1), 4);
    assert_eq!(
        s.write(&u, None, "/local/domain/1/device/d/e", b""),
        Err(XsError::ENOSPC)
    );
    assert_eq!(
        s.read(&u, None, "/local/domain/1/device/d"),
        Err(XsError::ENOENT),
        "nothing half-made"
    );
    s.write(&u, None, "/local/domain/1/device/d", b"").unwrap();
    assert_eq!(
        s.write(&u, None, "/local/domain/1/device/f", b""),
        Err(XsError::ENOSPC)
    );
    s.rm(&u, None, "/local/domain/1/device/a").unwrap();
    assert_eq!(s.owned_by(1), 3);
    // Dom0 is never limited.
    for i in 0..10 {
        s.write(&d0(), None, &format!("/dom0/{i}"), b"").unwrap();
    }
    // In a transaction, the quota is checked at commit.
    let mut tx = s.tx_start(1);
    s.write(&u, Some(&mut tx), "/local/domain/1/device/t1", b"")
        .unwrap();
    s.write(&u, Some(&mut tx), "/local/domain/1/device/t2", b"")
        .unwrap();
    assert_eq!(s.tx_commit(&u, tx), Err(XsError::ENOSPC));
    assert_eq!(s.owned_by(1), 3);
}

#[test]
fn node_size_quota() {
    let mut s = Store::new();
    with_domain(&mut s, 1);
    let u = Caller::domu(1);
    // 24 + 8 + value < 2048
    let ok = vec![b'x'; 2048 - 24 - 8 - 1];
    s.write(&u, None, "/local/domain/1/device/v", &ok).unwrap();
    let big = vec![b'x'; 2048 - 24 - 8];
    assert_eq!(
        s.write(&u, None, "/local/domain/1/device/v", &big),
        Err(XsError::ENOSPC)
    );
    assert_eq!(
        s.write(&u, None, "/local/domain/1/device/w", &big),
        Err(XsError::ENOSPC)
    );
    assert_eq!(
        s.read(&u, None, "/local/domain/1/device/w"),
        Err(XsError::ENOENT)
    );
    s.write(&d0(), None, "/local/domain/1/device/v", &big)
        .unwrap();
}

#[test]
fn tx_node_quota_fails_transaction() {
    let mut s = Store::new();
    s.quota.tx_nodes = 3;
    with_domain(&mut s, 1);
    let u = Caller::domu(1);
    let mut tx = s.tx_start(1);
    s.read(&u, Some(&mut tx), "/local/domain/1/name").unwrap();
    assert_eq!(
        s.read(&u, Some(&mut tx), "/local/domain/1/device/a"),
        Err(XsError::ENOENT)
    );
    assert_eq!(
        s.read(&u, Some(&mut tx), "/local/domain/1/device/b"),
        Err(XsError::ENOSPC)
    );
    assert_eq!(s.tx_commit(&u, tx), Err(XsError::ENOMEM));
}

#[test]
fn directory_part_pages() {
    let mut s = Store::new();
    for i in 0..600 {
        s.write(&d0(), None, &format!("/many/child-number-{i:04}"), b"")
            .unwrap();
    }
    let full = s.directory(&d0(), None, "/many").unwrap();
    assert!(full.len() > 4096);
    let mut got = Vec::new();
    let mut off = 0;
    let mut generation = None;
    loop {
        let part = s.directory_part(&d0(), None, "/many", off).unwrap();
        assert!(part.len() <= 4096);
        let nul = part.iter().position(|&b| b == 0).unwrap();
        let g = part[..nul].to_vec();
        assert_eq!(*generation.get_or_insert(g.clone()), g);
        let body = &part[nul + 1..];
        if body.last() == Some(&0) && (body.len() == 1 || body[body.len() - 2] == 0) {
            got.extend_from_slice(&body[..body.len() - 1]);
            break;
        }
        got.extend_from_slice(body);
        off += body.len();
    }
    assert_eq!(got, full);
    let end = s.directory_part(&d0(), None, "/many", 1 << 30).unwrap();
    assert_eq!(end.iter().filter(|&&b| b == 0).count(), 2);
}

#[test]
fn change_visibility() {
    let c = Change {
        path: "/x".into(),
        exact: false,
        perms: Some(acl(&["n0"])),
        old_perms: Some(acl(&["n0", "r1"])),
        parent_perms: Some(acl(&["n0"])),
    };
    assert!(c.visible_to(&Caller::domu(1)));
    assert!(!c.visible_to(&Caller::domu(2)));
    assert!(c.visible_to(&d0()));
}

#[test]
fn remove_domain_deletes_owned_and_strips_acls() {
    let mut s = Store::new();
    with_domain(&mut s, 1);
    let u = Caller::domu(1);
    s.write(&u, None, "/local/domain/1/device/vbd/1/state", b"4")
        .unwrap();
    s.write(
        &d0(),
        None,
        "/local/domain/0/backend/vbd/1/51712/state",
        b"4",
    )
    .unwrap();
    s.set_perms(
        &d0(),
        None,
        "/local/domain/0/backend/vbd/1/51712",
        acl(&["n0", "r1"]),
    )
    .unwrap();
    let ch = s.remove_domain(1);
    assert!(
        ch.iter()
            .any(|c| c.path == "/local/domain/1/device" && !c.exact)
    );
    assert_eq!(
        s.read(&d0(), None, "/local/domain/1/device"),
        Err(XsError::ENOENT)
    );
    // Dom0-owned home stays (xl removes it), minus domain 1 in its ACL.
    assert_eq!(
        s.get_perms(&d0(), None, "/local/domain/1").unwrap(),
        acl(&["n0"])
    );
    assert_eq!(
        s.get_perms(&d0(), None, "/local/domain/0/backend/vbd/1/51712")
            .unwrap(),
        acl(&["n0"])
    );
    assert_eq!(s.owned_by(1), 0);
}
