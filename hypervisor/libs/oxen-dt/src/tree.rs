//! A validating flattened-device-tree reader.
//!
//! Why not the `fdt` crate: `fdt` 0.1.5 parses lazily and trusts the blob —
//! it slices with unchecked header offsets and `unwrap`s structure tokens, so
//! a truncated or corrupted DTB panics inside it. Oxen must turn every
//! malformed DTB into a [`DtError`], so this module walks the whole structure
//! block **once, up front**, checks every offset, length, token, alignment and
//! string, and builds a small owned index of nodes whose property values are
//! sub-slices of the input. After [`DeviceTree::parse`] succeeds, every lookup
//! is infallible with respect to the blob's framing; only property *contents*
//! still need checking (see the `read_*` helpers, which return `Option`).
//!
//! Invariants of a parsed [`DeviceTree`]:
//! * node 0 is the root; every other node's `parent` has a smaller index
//!   (nodes are stored in document order) and lists it in `children`;
//! * node and property names are valid UTF-8 without NUL;
//! * nesting depth is at most [`MAX_DEPTH`].

use alloc::string::String;
use alloc::vec::Vec;

use crate::DtError;

/// `FDT_MAGIC`.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the v17 header in bytes.
pub const HEADER_SIZE: usize = 40;
/// Largest DTB oxen accepts or produces (Xen's limit too: 2 MiB).
pub const MAX_DTB_SIZE: usize = 2 << 20;
/// Deepest node nesting accepted (the root is depth 0).
pub const MAX_DEPTH: usize = 32;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Index of a node inside a [`DeviceTree`].
pub type NodeId = usize;

/// One property: a name and its raw big-endian value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prop<'a> {
    /// Property name.
    pub name: &'a str,
    /// Raw value bytes.
    pub value: &'a [u8],
}

/// One node of the tree.
#[derive(Clone, Debug)]
pub struct Node<'a> {
    /// Full node name including the unit address (`""` for the root).
    pub name: &'a str,
    /// Parent node (`None` only for the root).
    pub parent: Option<NodeId>,
    /// Depth (root = 0).
    pub depth: usize,
    /// Properties in document order.
    pub props: Vec<Prop<'a>>,
    /// Child nodes in document order.
    pub children: Vec<NodeId>,
}

impl<'a> Node<'a> {
    /// The name without the unit address (`"pl011"` for `"pl011@9000000"`).
    pub fn base_name(&self) -> &'a str {
        match self.name.split_once('@') {
            Some((b, _)) => b,
            None => self.name,
        }
    }
}

/// A parsed, validated device tree.
#[derive(Clone, Debug)]
pub struct DeviceTree<'a> {
    nodes: Vec<Node<'a>>,
    /// `(phandle, node)` sorted by phandle (first node wins on duplicates).
    phandles: Vec<(u32, NodeId)>,
    /// `/memreserve/` entries as `(address, size)`.
    pub mem_reserve: Vec<(u64, u64)>,
    /// `boot_cpuid_phys` from the header.
    pub boot_cpuid_phys: u32,
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], off: usize) -> Option<u64> {
    let hi = be32(b, off)?;
    let lo = be32(b, off.checked_add(4)?)?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// The NUL-terminated UTF-8 string starting at `off` in `b` (without the NUL).
fn cstr_at(b: &[u8], off: usize) -> Option<&str> {
    let rest = b.get(off..)?;
    let nul = rest.iter().position(|&c| c == 0)?;
    core::str::from_utf8(&rest[..nul]).ok()
}

/// Validated header fields.
struct Header {
    totalsize: usize,
    off_struct: usize,
    size_struct: usize,
    off_strings: usize,
    size_strings: usize,
    off_rsvmap: usize,
    boot_cpuid_phys: u32,
}

fn parse_header(blob: &[u8]) -> Result<Header, DtError> {
    let f = |i: usize| be32(blob, i * 4).ok_or(DtError::Header);
    if f(0)? != FDT_MAGIC {
        return Err(DtError::Header);
    }
    let totalsize = f(1)? as usize;
    if totalsize < HEADER_SIZE {
        return Err(DtError::Header);
    }
    if totalsize > MAX_DTB_SIZE {
        return Err(DtError::TooBig);
    }
    if totalsize > blob.len() {
        return Err(DtError::Header);
    }
    let version = f(5)?;
    let last_comp = f(6)?;
    // Version 16 lacks size_dt_struct; everything we read is v16-compatible.
    if version < 16 || last_comp > 17 {
        return Err(DtError::Header);
    }
    let off_struct = f(2)? as usize;
    let off_strings = f(3)? as usize;
    let off_rsvmap = f(4)? as usize;
    let size_strings = f(8)? as usize;
    let size_struct = if version >= 17 {
        f(9)? as usize
    } else {
        totalsize.saturating_sub(off_struct)
    };
    let within = |off: usize, size: usize| off.checked_add(size).is_some_and(|e| e <= totalsize);
    if !within(off_struct, size_struct)
        || !within(off_strings, size_strings)
        || off_rsvmap >= totalsize
        || !off_struct.is_multiple_of(4)
        || !off_rsvmap.is_multiple_of(8)
        || off_struct < HEADER_SIZE - 4
        || off_rsvmap < HEADER_SIZE - 4
    {
        return Err(DtError::Header);
    }
    Ok(Header {
        totalsize,
        off_struct,
        size_struct,
        off_strings,
        size_strings,
        off_rsvmap,
        boot_cpuid_phys: f(7)?,
    })
}

/// Read `totalsize` from a DTB header and validate the header fields that can
/// be checked without the rest of the blob. `header` needs at least 40 bytes.
pub fn dtb_size(header: &[u8]) -> Result<usize, DtError> {
    let f = |i: usize| be32(header, i * 4).ok_or(DtError::Header);
    if header.len() < HEADER_SIZE || f(0)? != FDT_MAGIC {
        return Err(DtError::Header);
    }
    let total = f(1)? as usize;
    if total < HEADER_SIZE {
        return Err(DtError::Header);
    }
    if total > MAX_DTB_SIZE {
        return Err(DtError::TooBig);
    }
    if f(5)? < 16 || f(6)? > 17 {
        return Err(DtError::Header);
    }
    Ok(total)
}

impl<'a> DeviceTree<'a> {
    /// Parse and fully validate a DTB. Bytes after `totalsize` are ignored.
    pub fn parse(blob: &'a [u8]) -> Result<Self, DtError> {
        let h = parse_header(blob)?;
        let blob = &blob[..h.totalsize];
        let strings = &blob[h.off_strings..h.off_strings + h.size_strings];
        let st = &blob[h.off_struct..h.off_struct + h.size_struct];

        // Memory reservation block: (u64 addr, u64 size) pairs until (0, 0).
        let mut mem_reserve = Vec::new();
        let mut off = h.off_rsvmap;
        loop {
            let a = be64(blob, off).ok_or(DtError::Header)?;
            let s = be64(blob, off + 8).ok_or(DtError::Header)?;
            if a == 0 && s == 0 {
                break;
            }
            mem_reserve.push((a, s));
            off += 16;
        }

        let mut nodes: Vec<Node<'a>> = Vec::new();
        let mut stack: Vec<NodeId> = Vec::new();
        let mut pos = 0usize;
        let mut done_root = false;
        loop {
            let tok = be32(st, pos).ok_or(DtError::Structure)?;
            pos += 4;
            match tok {
                FDT_BEGIN_NODE => {
                    if done_root || stack.len() > MAX_DEPTH {
                        return Err(DtError::Structure);
                    }
                    let name = cstr_at(st, pos).ok_or(DtError::Structure)?;
                    if nodes.is_empty() != name.is_empty() && !(nodes.is_empty() && name == "/") {
                        // Root must be unnamed ("/" tolerated); others named.
                        return Err(DtError::Structure);
                    }
                    pos = align4(pos + name.len() + 1).ok_or(DtError::Structure)?;
                    let id = nodes.len();
                    let parent = stack.last().copied();
                    if let Some(p) = parent {
                        nodes[p].children.push(id);
                    }
                    nodes.push(Node {
                        name: if parent.is_none() { "" } else { name },
                        parent,
                        depth: stack.len(),
                        props: Vec::new(),
                        children: Vec::new(),
                    });
                    stack.push(id);
                }
                FDT_END_NODE => {
                    stack.pop().ok_or(DtError::Structure)?;
                    if stack.is_empty() {
                        done_root = true;
                    }
                }
                FDT_PROP => {
                    let cur = *stack.last().ok_or(DtError::Structure)?;
                    // Properties must precede subnodes.
                    if !nodes[cur].children.is_empty() {
                        return Err(DtError::Structure);
                    }
                    let len = be32(st, pos).ok_or(DtError::Structure)? as usize;
                    let nameoff = be32(st, pos + 4).ok_or(DtError::Structure)? as usize;
                    pos += 8;
                    let end = pos.checked_add(len).ok_or(DtError::Structure)?;
                    let value = st.get(pos..end).ok_or(DtError::Structure)?;
                    let name = cstr_at(strings, nameoff).ok_or(DtError::Structure)?;
                    if name.is_empty() {
                        return Err(DtError::Structure);
                    }
                    nodes[cur].props.push(Prop { name, value });
                    pos = align4(end).ok_or(DtError::Structure)?;
                }
                FDT_NOP => {}
                FDT_END => {
                    if !done_root || !stack.is_empty() {
                        return Err(DtError::Structure);
                    }
                    break;
                }
                _ => return Err(DtError::Structure),
            }
        }
        let mut tree = Self {
            nodes,
            phandles: Vec::new(),
            mem_reserve,
            boot_cpuid_phys: h.boot_cpuid_phys,
        };
        let mut ph: Vec<(u32, NodeId)> = tree
            .ids()
            .filter_map(|id| tree.phandle_of(id).map(|p| (p, id)))
            .filter(|&(p, _)| p != 0 && p != u32::MAX)
            .collect();
        ph.sort_by_key(|&(p, id)| (p, id));
        ph.dedup_by_key(|e| e.0);
        tree.phandles = ph;
        Ok(tree)
    }

    /// The root node's id.
    pub const fn root(&self) -> NodeId {
        0
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the tree has no nodes (never true for a parsed tree).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node `id` (ids come from this tree, so this indexes safely; an
    /// out-of-range id yields the root to stay panic-free).
    pub fn node(&self, id: NodeId) -> &Node<'a> {
        self.nodes.get(id).unwrap_or(&self.nodes[0])
    }

    /// All node ids in document order.
    pub fn ids(&self) -> core::ops::Range<NodeId> {
        0..self.nodes.len()
    }

    /// Raw value of property `name` of node `id`.
    pub fn prop(&self, id: NodeId, name: &str) -> Option<&'a [u8]> {
        self.node(id)
            .props
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value)
    }

    /// Whether node `id` has property `name`.
    pub fn has_prop(&self, id: NodeId, name: &str) -> bool {
        self.prop(id, name).is_some()
    }

    /// Property `name` as a string (first string of a string list).
    pub fn prop_str(&self, id: NodeId, name: &str) -> Option<&'a str> {
        self.prop(id, name).and_then(read_str)
    }

    /// Property `name` as a single `u32` cell.
    pub fn prop_u32(&self, id: NodeId, name: &str) -> Option<u32> {
        let v = self.prop(id, name)?;
        if v.len() != 4 {
            return None;
        }
        be32(v, 0)
    }

    /// Property `name` as one or two cells (`u32` or `u64`).
    pub fn prop_u64(&self, id: NodeId, name: &str) -> Option<u64> {
        let v = self.prop(id, name)?;
        match v.len() {
            4 => be32(v, 0).map(u64::from),
            8 => be64(v, 0),
            _ => None,
        }
    }

    /// Whether `compatible` of `id` contains `compat`.
    pub fn is_compatible(&self, id: NodeId, compat: &str) -> bool {
        self.prop(id, "compatible")
            .is_some_and(|v| str_list(v).any(|s| s == compat))
    }

    /// Whether the node is enabled (`status` absent, `"okay"` or `"ok"`).
    pub fn is_enabled(&self, id: NodeId) -> bool {
        match self.prop_str(id, "status") {
            None => true,
            Some(s) => s == "okay" || s == "ok",
        }
    }

    /// Find a node by absolute path. A component without `@` matches the
    /// first child whose base name matches (like Linux and Xen).
    pub fn find(&self, path: &str) -> Option<NodeId> {
        let rest = path.strip_prefix('/')?;
        let mut cur = self.root();
        for comp in rest.split('/').filter(|c| !c.is_empty()) {
            let n = self.node(cur);
            cur = *n
                .children
                .iter()
                .find(|&&c| self.node(c).name == comp)
                .or_else(|| {
                    if comp.contains('@') {
                        None
                    } else {
                        n.children
                            .iter()
                            .find(|&&c| self.node(c).base_name() == comp)
                    }
                })?;
        }
        Some(cur)
    }

    /// Resolve a path that may start with an alias name (`serial0`, or
    /// `serial0/child`), as used by `stdout-path`.
    pub fn find_path_or_alias(&self, path: &str) -> Option<NodeId> {
        if path.starts_with('/') {
            return self.find(path);
        }
        let (alias, tail) = match path.split_once('/') {
            Some((a, t)) => (a, Some(t)),
            None => (path, None),
        };
        let aliases = self.find("/aliases")?;
        let target = self.prop_str(aliases, alias)?;
        if !target.starts_with('/') {
            return None;
        }
        match tail {
            None => self.find(target),
            Some(t) => {
                let mut full = String::from(target);
                full.push('/');
                full.push_str(t);
                self.find(&full)
            }
        }
    }

    /// Full path of node `id` (`"/"` for the root).
    pub fn path(&self, id: NodeId) -> String {
        let mut parts: Vec<&str> = Vec::new();
        let mut cur = Some(id);
        let mut guard = 0;
        while let Some(c) = cur {
            let n = self.node(c);
            if n.parent.is_none() || guard > MAX_DEPTH + 1 {
                break;
            }
            parts.push(n.name);
            cur = n.parent;
            guard += 1;
        }
        if parts.is_empty() {
            return String::from("/");
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(p);
        }
        s
    }

    /// Node whose `phandle` (or legacy `linux,phandle`) is `ph`.
    pub fn by_phandle(&self, ph: u32) -> Option<NodeId> {
        let i = self.phandles.binary_search_by_key(&ph, |e| e.0).ok()?;
        Some(self.phandles[i].1)
    }

    /// The phandle of node `id`, if it has one.
    pub fn phandle_of(&self, id: NodeId) -> Option<u32> {
        self.prop_u32(id, "phandle")
            .or_else(|| self.prop_u32(id, "linux,phandle"))
    }

    /// `#address-cells`/`#size-cells` of node `id` itself as the standard
    /// defaults dictate (2 and 1 when absent).
    pub fn cells_of(&self, id: NodeId) -> (u32, u32) {
        (
            self.prop_u32(id, "#address-cells").unwrap_or(2),
            self.prop_u32(id, "#size-cells").unwrap_or(1),
        )
    }

    /// Cells a child of `id` uses, Xen style: a node without its own
    /// `#address-cells`/`#size-cells` inherits the nearest ancestor's value,
    /// and `fallback` applies when no ancestor has one.
    pub fn inherited_cells(&self, id: NodeId, fallback: (u32, u32)) -> (u32, u32) {
        let mut a = None;
        let mut s = None;
        let mut cur = Some(id);
        let mut guard = 0;
        while let Some(c) = cur {
            if a.is_none() {
                a = self.prop_u32(c, "#address-cells");
            }
            if s.is_none() {
                s = self.prop_u32(c, "#size-cells");
            }
            if (a.is_some() && s.is_some()) || guard > MAX_DEPTH + 1 {
                break;
            }
            cur = self.node(c).parent;
            guard += 1;
        }
        (a.unwrap_or(fallback.0), s.unwrap_or(fallback.1))
    }

    /// Decode `reg` of node `id` with explicit cell counts.
    pub fn reg_with(&self, id: NodeId, ac: u32, sc: u32) -> Result<Vec<(u64, u64)>, DtError> {
        let v = self.prop(id, "reg").ok_or(DtError::Missing("reg"))?;
        decode_pairs(v, ac, sc).ok_or(DtError::BadProperty("reg"))
    }

    /// Decode `reg` of node `id` with its parent's cells (standard rule).
    pub fn reg(&self, id: NodeId) -> Result<Vec<(u64, u64)>, DtError> {
        let parent = self.node(id).parent.unwrap_or(0);
        let (ac, sc) = self.cells_of(parent);
        self.reg_with(id, ac, sc)
    }

    /// Decode `reg` of node `id` and translate each address to the root
    /// (CPU physical) address space through the ancestors' `ranges`.
    /// A missing or empty `ranges` is treated as an identity mapping.
    pub fn reg_translated(&self, id: NodeId) -> Result<Vec<(u64, u64)>, DtError> {
        let mut regs = self.reg(id)?;
        for r in &mut regs {
            r.0 = self.translate(id, r.0)?;
        }
        Ok(regs)
    }

    /// Translate `addr`, in the address space of `id`'s parent bus, to a root
    /// address.
    fn translate(&self, id: NodeId, mut addr: u64) -> Result<u64, DtError> {
        let mut bus = self.node(id).parent;
        let mut guard = 0;
        while let Some(b) = bus {
            let Some(up) = self.node(b).parent else { break };
            guard += 1;
            if guard > MAX_DEPTH + 1 {
                return Err(DtError::Structure);
            }
            let ranges = match self.prop(b, "ranges") {
                Some(r) if !r.is_empty() => r,
                _ => {
                    bus = Some(up);
                    continue;
                }
            };
            let (cac, csc) = self.cells_of(b);
            let (pac, _) = self.cells_of(up);
            let stride = (cac + pac + csc) as usize * 4;
            if stride == 0 || !ranges.len().is_multiple_of(stride) {
                return Err(DtError::BadProperty("ranges"));
            }
            let mut found = None;
            for e in ranges.chunks_exact(stride) {
                let cb = read_cells(e, 0, cac).ok_or(DtError::BadProperty("ranges"))?;
                let pb =
                    read_cells(e, cac as usize * 4, pac).ok_or(DtError::BadProperty("ranges"))?;
                let sz = read_cells(e, (cac + pac) as usize * 4, csc)
                    .ok_or(DtError::BadProperty("ranges"))?;
                if addr >= cb && addr - cb < sz {
                    found = Some(pb.wrapping_add(addr - cb));
                    break;
                }
            }
            addr = found.ok_or(DtError::BadProperty("ranges"))?;
            bus = Some(up);
        }
        Ok(addr)
    }

    /// The `#interrupt-cells` and phandle-resolved interrupt parent of `id`
    /// (own or inherited `interrupt-parent`).
    pub fn interrupt_parent(&self, id: NodeId) -> Option<NodeId> {
        let mut cur = Some(id);
        let mut guard = 0;
        while let Some(c) = cur {
            if let Some(ph) = self.prop_u32(c, "interrupt-parent") {
                return self.by_phandle(ph);
            }
            guard += 1;
            if guard > MAX_DEPTH + 1 {
                return None;
            }
            cur = self.node(c).parent;
        }
        None
    }
}

fn align4(v: usize) -> Option<usize> {
    Some(v.checked_add(3)? & !3)
}

/// Read `n` (0..=2, or more if the leading cells are zero) big-endian cells at
/// byte offset `off`.
pub fn read_cells(b: &[u8], off: usize, n: u32) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..n as usize {
        let c = be32(b, off.checked_add(i * 4)?)?;
        if v >> 32 != 0 {
            return None; // would overflow 64 bits
        }
        v = (v << 32) | u64::from(c);
    }
    Some(v)
}

/// Decode a list of `(address, size)` pairs with `ac`/`sc` cells each.
pub fn decode_pairs(v: &[u8], ac: u32, sc: u32) -> Option<Vec<(u64, u64)>> {
    if ac == 0 || ac > 4 || sc > 4 {
        return None;
    }
    let stride = (ac + sc) as usize * 4;
    if !v.len().is_multiple_of(stride) {
        return None;
    }
    v.chunks_exact(stride)
        .map(|e| Some((read_cells(e, 0, ac)?, read_cells(e, ac as usize * 4, sc)?)))
        .collect()
}

/// Decode a property value as a list of `u32` cells.
pub fn read_u32_list(v: &[u8]) -> Option<Vec<u32>> {
    if !v.len().is_multiple_of(4) {
        return None;
    }
    Some(
        v.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// The first string of a (NUL-terminated) string or string-list value.
pub fn read_str(v: &[u8]) -> Option<&str> {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    core::str::from_utf8(&v[..end]).ok()
}

/// Iterate the strings of a string-list value (invalid UTF-8 entries skipped).
pub fn str_list(v: &[u8]) -> impl Iterator<Item = &str> {
    v.split(|&c| c == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| core::str::from_utf8(s).ok())
}
