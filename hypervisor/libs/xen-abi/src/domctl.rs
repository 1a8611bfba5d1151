//! Toolstack domain control (`domctl.h`, Xen 4.17, interface version 0x15):
//! `XEN_DOMCTL_*` numbers and the arm64 layouts of `struct xen_domctl` and its
//! payloads. Filled in with the toolstack work (see `docs/toolstack.md`).
