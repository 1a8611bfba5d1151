//! xenstore path rules (C xenstored's `is_valid_nodename`, `canonicalize`,
//! `get_parent`, watch `is_child`).
//!
//! A valid node name starts with `/`, does not end with `/` (except the
//! root), has no `//`, uses only `[A-Za-z0-9-/_@]`, and is at most 2048
//! bytes past a `/local/domain/<id>/` prefix. Special names (`@...`) are
//! never node names; they only name watches and their permissions.

use xen_abi::xenstore::XENSTORE_REL_PATH_MAX;

/// Longest path (beyond a `/local/domain/<id>/` prefix): C's default
/// `quota_max_path_len`.
pub const MAX_PATH_LEN: usize = XENSTORE_REL_PATH_MAX;

/// The home directory of a domain: `/local/domain/<domid>`.
pub fn domain_path(domid: u32) -> String {
    format!("/local/domain/{domid}")
}

fn valid_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'/' | b'_' | b'@')
}

/// Length of a `/local/domain/<1-5 digits>/` prefix, else 0.
fn local_prefix_len(p: &str) -> usize {
    let Some(rest) = p.strip_prefix("/local/domain/") else {
        return 0;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 5 || rest.as_bytes().get(digits) != Some(&b'/') {
        return 0;
    }
    "/local/domain/".len() + digits + 1
}

/// C `is_valid_nodename`.
pub fn is_valid_nodename(p: &str) -> bool {
    if !p.starts_with('/') {
        return false;
    }
    if p.ends_with('/') && p != "/" {
        return false;
    }
    if p.contains("//") {
        return false;
    }
    if p.len() > local_prefix_len(p) + MAX_PATH_LEN {
        return false;
    }
    p.bytes().all(valid_char)
}

/// Whether `p` names a special watch (`@introduceDomain`, ...).
pub fn is_special(p: &str) -> bool {
    p.starts_with('@')
}

/// C `canonicalize`: absolute and special paths unchanged, relative ones
/// under `home`.
pub fn canonicalize(home: &str, p: &str) -> String {
    if p.starts_with('/') || p.starts_with('@') {
        p.to_string()
    } else {
        format!("{home}/{p}")
    }
}

/// Parent of a valid node name (`/` for top-level nodes and the root).
pub fn parent(p: &str) -> &str {
    match p[1.min(p.len())..].rfind('/') {
        Some(i) => &p[..i + 1],
        None => "/",
    }
}

/// Last component of a valid non-root node name.
pub fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Full name of `child` under `dir`.
pub fn join(dir: &str, child: &str) -> String {
    if dir == "/" {
        format!("/{child}")
    } else {
        format!("{dir}/{child}")
    }
}

/// Watch matching: is `child` equal to `parent` or below it (`/` covers all).
pub fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return true;
    }
    match child.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodenames() {
        assert!(is_valid_nodename("/"));
        assert!(is_valid_nodename("/local/domain/1/device/vbd/51712"));
        assert!(is_valid_nodename("/a-b_c@d"));
        assert!(!is_valid_nodename("relative"));
        assert!(!is_valid_nodename("/a/"));
        assert!(!is_valid_nodename("/a//b"));
        assert!(!is_valid_nodename("/a b"));
        assert!(!is_valid_nodename("/a.b"));
        assert!(!is_valid_nodename("/é"));
        assert!(!is_valid_nodename(""));
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert!(!is_valid_nodename(&long));
        assert!(is_valid_nodename(&long[..MAX_PATH_LEN]));
        // The domain prefix does not count.
        let dom = format!("/local/domain/12345/{}", "a".repeat(MAX_PATH_LEN));
        assert!(is_valid_nodename(&dom));
        let dom6 = format!("/local/domain/123456/{}", "a".repeat(MAX_PATH_LEN));
        assert!(!is_valid_nodename(&dom6));
    }

    #[test]
    fn canonical_and_parents() {
        assert_eq!(
            canonicalize("/local/domain/3", "device"),
            "/local/domain/3/device"
        );
        assert_eq!(canonicalize("/local/domain/3", "/abs"), "/abs");
        assert_eq!(
            canonicalize("/local/domain/3", "@releaseDomain"),
            "@releaseDomain"
        );
        assert_eq!(canonicalize("/local/domain/3", ""), "/local/domain/3/");
        assert_eq!(parent("/a/b/c"), "/a/b");
        assert_eq!(parent("/a"), "/");
        assert_eq!(parent("/"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(domain_path(7), "/local/domain/7");
    }

    #[test]
    fn watch_matching() {
        assert!(is_child("/a/b", "/a"));
        assert!(is_child("/a", "/a"));
        assert!(!is_child("/ab", "/a"));
        assert!(is_child("/anything", "/"));
        assert!(!is_child("/a", "/a/b"));
    }
}
