//! The xenstore database: a tree of nodes, transactions over it, per-domain
//! node quotas, and the list of changes each operation makes (for watches).
//!
//! Rules follow C xenstored 4.17 (`xenstored_core.c`,
//! `xenstored_transaction.c`):
//! - every node has a value, an ACL (never empty) and children (kept sorted);
//!   its parent always exists and lists it; `/` always exists;
//! - a write creates missing parents, each inheriting its parent's ACL, the
//!   creator becoming owner when unprivileged;
//! - access is checked with [`Caller::access`]; a missing node reports
//!   `ENOENT` only if the nearest existing ancestor grants the wanted
//!   access, else `EACCES` (no information leak);
//! - each modification stamps the node with a new global generation; a
//!   transaction records the generation of every node it touches (read or
//!   written) and its commit fails with `EAGAIN` if any changed since;
//! - quotas (unprivileged callers only): nodes per owner domain, node size,
//!   ACL entries per node, nodes touched per transaction;
//! - an operation either fully applies or changes nothing.
//!
//! Paths given here are canonical (absolute or `@special`); relative paths
//! are resolved by the caller's connection.

use std::collections::{BTreeSet, HashMap};

use xen_abi::xenstore::XsError;

use crate::path::{self, is_valid_nodename};
use crate::perms::{Access, Caller, Perm, PermKind};

/// Quota limits (C xenstored 4.17 defaults), applied to unprivileged callers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Nodes owned per domain (`-E`, 1000).
    pub nodes: usize,
    /// Watches per connection (`-W`, 128).
    pub watches: usize,
    /// Node record size in bytes (`-S`, 2048).
    pub node_size: usize,
    /// Open transactions per connection (`-t`, 10).
    pub transactions: usize,
    /// ACL entries per node (`-A`, 5).
    pub perms: usize,
    /// Nodes touched per transaction (1024).
    pub tx_nodes: usize,
    /// Replies queued for a domain before its requests stop being read (20).
    pub outstanding: usize,
}

impl Default for Quotas {
    fn default() -> Quotas {
        Quotas {
            nodes: 1000,
            watches: 128,
            node_size: 2048,
            transactions: 10,
            perms: 5,
            tx_nodes: 1024,
            outstanding: 20,
        }
    }
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Value bytes.
    pub value: Vec<u8>,
    /// ACL; entry 0 is the owner.
    pub perms: Vec<Perm>,
    /// Names of the children.
    pub children: BTreeSet<String>,
    /// Generation of the last modification.
    pub generation: u64,
}

impl Node {
    fn new(perms: Vec<Perm>, value: Vec<u8>) -> Node {
        Node {
            value,
            perms,
            children: BTreeSet::new(),
            generation: 0,
        }
    }

    /// Owner domain.
    pub fn owner(&self) -> u16 {
        self.perms.first().map_or(0, |p| p.id)
    }

    /// Size of the node as C xenstored's database record (header 24 bytes,
    /// 8 per ACL entry, the value, the NUL-terminated child names): the
    /// figure the node-size quota applies to.
    pub fn record_size(&self) -> usize {
        24 + 8 * self.perms.len()
            + self.value.len()
            + self.children.iter().map(|c| c.len() + 1).sum::<usize>()
    }

    /// Children as the `XS_DIRECTORY` payload (`a\0b\0`).
    pub fn children_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }
}

/// A modification that may fire watches. `exact` changes (descendants of
/// a removed node) fire only watches on exactly that path; the others fire
/// watches on the path and its ancestors. A watcher sees the change if it
/// can read the node (old or new ACL) or its parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Canonical path of the node.
    pub path: String,
    /// Only exact-path watches fire.
    pub exact: bool,
    /// ACL of the node after (or, when removed, at) the change.
    pub perms: Option<Vec<Perm>>,
    /// ACL before a permission change.
    pub old_perms: Option<Vec<Perm>>,
    /// ACL of the parent.
    pub parent_perms: Option<Vec<Perm>>,
}

impl Change {
    /// Whether the watcher `who` may see this change.
    pub fn visible_to(&self, who: &Caller) -> bool {
        [&self.old_perms, &self.perms, &self.parent_perms]
            .into_iter()
            .flatten()
            .any(|p| who.access(p).read)
    }
}

#[derive(Clone, Debug)]
struct Touched {
    /// Generation in the global tree at first access (`None`: absent).
    generation: Option<u64>,
    /// ACL at first access.
    perms: Option<Vec<Perm>>,
}

/// An open transaction: a private overlay over the tree.
#[derive(Debug)]
pub struct Tx {
    /// Connection-local id.
    pub id: u32,
    overlay: HashMap<String, Option<Node>>,
    touched: HashMap<String, Touched>,
    /// Queued watch firings: path → exact (non-exact wins), in first order.
    queued: Vec<(String, bool)>,
    entry_delta: HashMap<u16, i64>,
    node_created: bool,
    failed: bool,
}

impl Tx {
    fn new(id: u32) -> Tx {
        Tx {
            id,
            overlay: HashMap::new(),
            touched: HashMap::new(),
            queued: Vec::new(),
            entry_delta: HashMap::new(),
            node_created: false,
            failed: false,
        }
    }
}

/// The database.
#[derive(Debug)]
pub struct Store {
    nodes: HashMap<String, Node>,
    generation: u64,
    entries: HashMap<u16, i64>,
    /// Limits for unprivileged callers.
    pub quota: Quotas,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

/// View of the tree for one operation: global, or through a transaction.
struct View<'a> {
    base: &'a mut Store,
    tx: Option<&'a mut Tx>,
    caller: &'a Caller,
    changes: Vec<Change>,
}

impl View<'_> {
    fn touch(&mut self, p: &str) -> Result<(), XsError> {
        let Some(tx) = self.tx.as_deref_mut() else {
            return Ok(());
        };
        if tx.touched.contains_key(p) {
            return Ok(());
        }
        if !self.caller.privileged && tx.touched.len() >= self.base.quota.tx_nodes {
            tx.failed = true;
            return Err(XsError::ENOSPC);
        }
        let cur = self.base.nodes.get(p);
        tx.touched.insert(
            p.to_string(),
            Touched {
                generation: cur.map(|n| n.generation),
                perms: cur.map(|n| n.perms.clone()),
            },
        );
        Ok(())
    }

    fn get(&mut self, p: &str) -> Result<Option<Node>, XsError> {
        self.touch(p)?;
        if let Some(n) = self.tx.as_deref().and_then(|tx| tx.overlay.get(p)) {
            return Ok(n.clone());
        }
        Ok(self.base.nodes.get(p).cloned())
    }

    fn next_generation(&mut self) -> u64 {
        self.base.generation += 1;
        self.base.generation
    }

    /// Stores `node` at `p` with a new generation.
    fn put(&mut self, p: &str, mut node: Node) -> Result<(), XsError> {
        self.touch(p)?;
        node.generation = self.next_generation();
        match self.tx.as_deref_mut() {
            Some(tx) => {
                tx.overlay.insert(p.to_string(), Some(node));
            }
            None => {
                self.base.nodes.insert(p.to_string(), node);
            }
        }
        Ok(())
    }

    fn del(&mut self, p: &str) -> Result<(), XsError> {
        self.touch(p)?;
        self.next_generation();
        match self.tx.as_deref_mut() {
            Some(tx) => {
                tx.overlay.insert(p.to_string(), None);
            }
            None => {
                self.base.nodes.remove(p);
            }
        }
        Ok(())
    }

    fn count(&mut self, domid: u16, delta: i64) {
        match self.tx.as_deref_mut() {
            Some(tx) => {
                *tx.entry_delta.entry(domid).or_default() += delta;
                if delta > 0 {
                    tx.node_created = true;
                }
            }
            None => *self.base.entries.entry(domid).or_default() += delta,
        }
    }

    fn change(&mut self, c: Change) {
        match self.tx.as_deref_mut() {
            Some(tx) => {
                if let Some(q) = tx.queued.iter_mut().find(|(p, _)| *p == c.path) {
                    q.1 &= c.exact;
                } else {
                    tx.queued.push((c.path, c.exact));
                }
            }
            None => self.changes.push(c),
        }
    }

    fn size_ok(&self, node: &Node) -> Result<(), XsError> {
        if !self.caller.privileged && node.record_size() >= self.base.quota.node_size {
            return Err(XsError::ENOSPC);
        }
        Ok(())
    }

    /// C `errno_from_parents`: `err` if the nearest existing ancestor grants
    /// any of `want`, else `EACCES`.
    fn errno_from_parents(&mut self, name: &str, err: XsError, want: Access) -> XsError {
        let mut p = name;
        loop {
            p = path::parent(p);
            match self.get(p) {
                Err(e) => return e,
                Ok(Some(n)) => {
                    return if self.caller.access(&n.perms).any_of(want) {
                        err
                    } else {
                        XsError::EACCES
                    };
                }
                Ok(None) if p == "/" => return XsError::EACCES,
                Ok(None) => {}
            }
        }
    }

    /// C `get_node`.
    fn get_node(&mut self, name: &str, want: Access) -> Result<Node, XsError> {
        if !is_valid_nodename(name) {
            return Err(XsError::EINVAL);
        }
        match self.get(name)? {
            Some(n) if self.caller.access(&n.perms).covers(want) => Ok(n),
            Some(_) => Err(self.errno_from_parents(name, XsError::EACCES, want)),
            None => Err(self.errno_from_parents(name, XsError::ENOENT, want)),
        }
    }

    fn perms_of(&mut self, p: &str) -> Result<Option<Vec<Perm>>, XsError> {
        Ok(self.get(p)?.map(|n| n.perms))
    }

    /// Creates `name` (and missing parents) with `value`; all checks happen
    /// before anything is stored.
    fn create(&mut self, name: &str, value: Vec<u8>) -> Result<Node, XsError> {
        // Walk up to the nearest existing ancestor.
        let mut missing = vec![name.to_string()];
        let mut parent_name = path::parent(name).to_string();
        let mut parent = loop {
            match self.get(&parent_name)? {
                Some(n) => break n,
                None if parent_name == "/" => return Err(XsError::EIO),
                None => {
                    missing.push(parent_name.clone());
                    parent_name = path::parent(&parent_name).to_string();
                }
            }
        };
        let existing_parent = parent_name.clone();
        // Build the new nodes top down.
        let mut built: Vec<(String, Node)> = Vec::new();
        let mut inherit = parent.perms.clone();
        parent
            .children
            .insert(path::basename(&missing[missing.len() - 1]).to_string());
        for (i, p) in missing.iter().rev().enumerate() {
            let mut perms = inherit.clone();
            if let Some(o) = perms.first_mut().filter(|_| !self.caller.privileged) {
                o.id = self.caller.domid;
            }
            let is_leaf = i + 1 == missing.len();
            let mut n = Node::new(perms, if is_leaf { value.clone() } else { Vec::new() });
            if !is_leaf {
                n.children
                    .insert(path::basename(&missing[missing.len() - 2 - i]).to_string());
            }
            inherit = n.perms.clone();
            built.push((p.clone(), n));
        }
        // Quotas, as C checks them per new node and on the parent.
        if !self.caller.privileged {
            let have = self
                .base
                .entries
                .get(&self.caller.domid)
                .copied()
                .unwrap_or(0);
            if have + built.len() as i64 > self.base.quota.nodes as i64 {
                return Err(XsError::ENOSPC);
            }
        }
        for (_, n) in &built {
            self.size_ok(n)?;
        }
        self.size_ok(&parent)?;
        // Apply bottom up.
        let mut leaf = None;
        for (p, n) in built.into_iter().rev() {
            self.count(n.owner(), 1);
            if leaf.is_none() {
                leaf = Some(n.clone());
            }
            self.put(&p, n)?;
        }
        self.put(&existing_parent, parent)?;
        leaf.ok_or(XsError::EIO)
    }

    /// Removes `name` and its subtree (the node exists); fires as C's
    /// `delnode_sub` (descendants exact, the root non-exact, post-order).
    fn remove_tree(&mut self, name: &str) -> Result<(), XsError> {
        let parent_name = path::parent(name).to_string();
        let Some(mut parent) = self.get(&parent_name)? else {
            return Err(XsError::EINVAL);
        };
        // Collect the subtree post-order.
        let mut order: Vec<(String, Node)> = Vec::new();
        let mut stack: Vec<(String, bool)> = vec![(name.to_string(), false)];
        let mut pending: HashMap<String, Node> = HashMap::new();
        while let Some((p, expanded)) = stack.pop() {
            if expanded {
                if let Some(n) = pending.remove(&p) {
                    order.push((p, n));
                }
                continue;
            }
            let Some(n) = self.get(&p)? else { continue };
            stack.push((p.clone(), true));
            for c in n.children.iter().rev() {
                stack.push((path::join(&p, c), false));
            }
            pending.insert(p, n);
        }
        let mut perms_by_path: HashMap<String, Vec<Perm>> = order
            .iter()
            .map(|(p, n)| (p.clone(), n.perms.clone()))
            .collect();
        perms_by_path.insert(parent_name.clone(), parent.perms.clone());
        for (p, n) in order {
            self.del(&p)?;
            self.count(n.owner(), -1);
            let pp = perms_by_path.get(path::parent(&p)).cloned();
            self.change(Change {
                exact: p != name,
                path: p,
                perms: Some(n.perms),
                old_perms: None,
                parent_perms: pp,
            });
        }
        parent.children.remove(path::basename(name));
        self.put(&parent_name, parent)
    }
}

impl Store {
    /// A store with C xenstored's initial nodes: `/`, `/tool`,
    /// `/tool/xenstored`, all `n0`.
    pub fn new() -> Store {
        let mut s = Store {
            nodes: HashMap::new(),
            generation: 0,
            entries: HashMap::new(),
            quota: Quotas::default(),
        };
        let n0 = vec![Perm::new(0, PermKind::None)];
        let mut root = Node::new(n0.clone(), Vec::new());
        root.children.insert("tool".into());
        let mut tool = Node::new(n0.clone(), Vec::new());
        tool.children.insert("xenstored".into());
        s.nodes.insert("/".into(), root);
        s.nodes.insert("/tool".into(), tool);
        s.nodes
            .insert("/tool/xenstored".into(), Node::new(n0, Vec::new()));
        s.entries.insert(0, 3);
        s
    }

    fn view<'a>(&'a mut self, caller: &'a Caller, tx: Option<&'a mut Tx>) -> View<'a> {
        View {
            base: self,
            tx,
            caller,
            changes: Vec::new(),
        }
    }

    /// The node at `p` outside any transaction, without access checks.
    pub fn node(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: the root always exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes owned by `domid`.
    pub fn owned_by(&self, domid: u16) -> i64 {
        self.entries.get(&domid).copied().unwrap_or(0)
    }

    /// Current global generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `XS_READ`.
    pub fn read(&mut self, who: &Caller, tx: Option<&mut Tx>, p: &str) -> Result<Vec<u8>, XsError> {
        Ok(self.view(who, tx).get_node(p, Access::READ)?.value)
    }

    /// `XS_DIRECTORY`: the children payload.
    pub fn directory(
        &mut self,
        who: &Caller,
        tx: Option<&mut Tx>,
        p: &str,
    ) -> Result<Vec<u8>, XsError> {
        Ok(self
            .view(who, tx)
            .get_node(p, Access::READ)?
            .children_wire())
    }

    /// `XS_DIRECTORY_PART`: `<generation>\0` then as many whole child names
    /// from byte `offset` of the children list as fit, and a final extra
    /// `\0` when the list ends (C `send_directory_part`).
    pub fn directory_part(
        &mut self,
        who: &Caller,
        tx: Option<&mut Tx>,
        p: &str,
        offset: usize,
    ) -> Result<Vec<u8>, XsError> {
        let node = self.view(who, tx).get_node(p, Access::READ)?;
        let children = node.children_wire();
        let mut out = node.generation.to_string().into_bytes();
        out.push(0);
        if offset >= children.len() {
            out.push(0);
            return Ok(out);
        }
        let maxlen = xen_abi::xenstore::XENSTORE_PAYLOAD_MAX - out.len() - 1;
        let mut len = 0;
        let rest = &children[offset..];
        // Stop at a string boundary: an offset inside a name starts there.
        while len < rest.len() {
            let slen = rest[len..]
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(rest.len() - len);
            if len + slen >= maxlen {
                break;
            }
            len += slen + 1;
        }
        out.extend_from_slice(&rest[..len.min(rest.len())]);
        if offset + len >= children.len() {
            out.push(0);
        }
        Ok(out)
    }

    /// `XS_GET_PERMS`.
    pub fn get_perms(
        &mut self,
        who: &Caller,
        tx: Option<&mut Tx>,
        p: &str,
    ) -> Result<Vec<Perm>, XsError> {
        Ok(self.view(who, tx).get_node(p, Access::READ)?.perms)
    }

    /// `XS_WRITE`: sets the value, creating the node and missing parents.
    pub fn write(
        &mut self,
        who: &Caller,
        tx: Option<&mut Tx>,
        p: &str,
        value: &[u8],
    ) -> Result<Vec<Change>, XsError> {
        let mut v = self.view(who, tx);
        let node = match v.get_node(p, Access::WRITE) {
            Ok(mut n) => {
                n.value = value.to_vec();
                v.size_ok(&n)?;
                v.put(p, n.clone())?;
                n
            }
            Err(XsError::ENOENT) => v.create(p, value.to_vec())?,
            Err(e) => return Err(e),
        };
        let pp = v.perms_of(path::parent(p))?;
        v.change(Change {
            path: p.to_string(),
            exact: false,
            perms: Some(node.perms),
            old_perms: None,
            parent_perms: pp,
        });
        Ok(v.changes)
    }

    /// `XS_MKDIR`: creates the node if missing (no change if it exists).
    pub fn mkdir(
        &mut self,
        who: &Caller,
        tx: Option<&mut Tx>,
        p: &str,
    ) -> Result<Vec<Change>, XsError> {
        let mut v = self.view(who, tx);
        match v.get_node(p, Access::WRITE) {
            Ok(_) => Ok(Vec::new()),
            Err(XsError::ENOENT) => {
                let node = v.create(p, Vec::new())?;
                let pp = v.perms_of(path::parent(p))?;
                v.change(Change {
                    path: p.to_string(),
                    exact: false,
                    perms: Some(node.perms),
                    old_perms: None,
                    parent_perms: pp,
                });
                Ok(v.changes)
            }
            Err(e) => Err(e),
        }
    }

    /// `XS_RM`: removes the subtree; a missing node is fine if its parent
    /// exists.
    pub fn rm(
        &mut self,
        who: &Caller,
        tx: Option<&mut Tx>,
        p: &str,
    ) -> Result<Vec<Change>, XsError> {
        let mut v = self.view(who, tx);
        match v.get_node(p, Access::WRITE) {
            Ok(_) if p == "/" => Err(XsError::EINVAL),
            Ok(_) => {
                v.remove_tree(p)?;
                Ok(v.changes)
            }
            Err(XsError::ENOENT) => match v.get(path::parent(p))? {
                Some(_) => Ok(Vec::new()),
                None => Err(XsError::ENOENT),
            },
            Err(e) => Err(e),
        }
    }

    /// `XS_SET_PERMS` on a node (special `@` names are the caller's
    /// business). Needs write access and ownership; an unprivileged caller
    /// cannot change the owner (`EPERM`) nor set more than the quota of
    /// entries (`ENOSPC`).
    pub fn set_perms(
        &mut self,
        who: &Caller,
        tx: Option<&mut Tx>,
        p: &str,
        perms: Vec<Perm>,
    ) -> Result<Vec<Change>, XsError> {
        if perms.is_empty() {
            return Err(XsError::EINVAL);
        }
        if !who.privileged && perms.len() > self.quota.perms {
            return Err(XsError::ENOSPC);
        }
        let mut v = self.view(who, tx);
        let mut node = v.get_node(p, Access::ALL)?;
        if !who.privileged && perms[0].id != node.owner() {
            return Err(XsError::EPERM);
        }
        let old = std::mem::replace(&mut node.perms, perms);
        v.size_ok(&node)?;
        let (old_owner, new_owner) = (old.first().map_or(0, |o| o.id), node.owner());
        if old_owner != new_owner {
            v.count(old_owner, -1);
            v.count(new_owner, 1);
        }
        v.put(p, node.clone())?;
        let pp = v.perms_of(path::parent(p))?;
        v.change(Change {
            path: p.to_string(),
            exact: false,
            perms: Some(node.perms),
            old_perms: Some(old),
            parent_perms: pp,
        });
        Ok(v.changes)
    }

    /// `XS_TRANSACTION_START` bookkeeping: a new transaction with `id`.
    pub fn tx_start(&mut self, id: u32) -> Tx {
        self.generation += 1;
        Tx::new(id)
    }

    /// `XS_TRANSACTION_END` with commit: checks for conflicts and quotas,
    /// applies the overlay, and returns the changes to fire. On error the
    /// global tree is untouched.
    pub fn tx_commit(&mut self, who: &Caller, tx: Tx) -> Result<Vec<Change>, XsError> {
        if tx.failed {
            return Err(XsError::ENOMEM);
        }
        if tx.node_created && !who.privileged {
            for (&d, &delta) in &tx.entry_delta {
                if d != 0 && self.owned_by(d) + delta >= self.quota.nodes as i64 {
                    return Err(XsError::ENOSPC);
                }
            }
        }
        for (p, t) in &tx.touched {
            if self.nodes.get(p).map(|n| n.generation) != t.generation {
                return Err(XsError::EAGAIN);
            }
        }
        let mut paths: Vec<&String> = tx.overlay.keys().collect();
        paths.sort();
        for p in paths {
            self.generation += 1;
            match tx.overlay[p].clone() {
                Some(mut n) => {
                    n.generation = self.generation;
                    self.nodes.insert(p.clone(), n);
                }
                None => {
                    self.nodes.remove(p);
                }
            }
        }
        for (d, delta) in tx.entry_delta {
            *self.entries.entry(d).or_default() += delta;
        }
        Ok(tx
            .queued
            .into_iter()
            .map(|(p, exact)| Change {
                perms: self.nodes.get(&p).map(|n| n.perms.clone()),
                old_perms: tx.touched.get(&p).and_then(|t| t.perms.clone()),
                parent_perms: self.nodes.get(path::parent(&p)).map(|n| n.perms.clone()),
                path: p,
                exact,
            })
            .collect())
    }

    /// A domain is gone: delete the nodes it owns (with their subtrees, as
    /// C xenstored without `--keep-orphans`) and drop it from every ACL so a
    /// later domain with the same id inherits nothing. Returns the changes.
    pub fn remove_domain(&mut self, domid: u16) -> Vec<Change> {
        let mut roots: Vec<String> = self
            .nodes
            .iter()
            .filter(|(p, n)| n.owner() == domid && p.as_str() != "/")
            .map(|(p, _)| p.clone())
            .collect();
        roots.sort();
        // Keep only topmost owned nodes (their subtrees go with them).
        let mut tops: Vec<String> = Vec::new();
        for r in roots {
            if !tops.iter().any(|t| path::is_child(&r, t)) {
                tops.push(r);
            }
        }
        let dom0 = Caller::dom0();
        let mut changes = Vec::new();
        for t in tops {
            if self.nodes.contains_key(&t) {
                let mut v = self.view(&dom0, None);
                if v.remove_tree(&t).is_ok() {
                    changes.extend(v.changes);
                }
            }
        }
        for n in self.nodes.values_mut() {
            if n.perms.len() > 1 && n.perms[1..].iter().any(|p| p.id == domid) {
                let mut kept = vec![n.perms[0]];
                kept.extend(n.perms[1..].iter().copied().filter(|p| p.id != domid));
                n.perms = kept;
            }
        }
        self.entries.remove(&domid);
        changes
    }

    /// Every node path under `root` (inclusive), depth first, children in
    /// order; for diagnostics and tests.
    pub fn walk(&self, root: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_string()];
        while let Some(p) = stack.pop() {
            if let Some(n) = self.nodes.get(&p) {
                for c in n.children.iter().rev() {
                    stack.push(path::join(&p, c));
                }
                out.push(p);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
