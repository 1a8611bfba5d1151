//! xenstore wire codec and client. Being written; see docs/toolstack.md.
