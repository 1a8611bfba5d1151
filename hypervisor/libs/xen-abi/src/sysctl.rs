//! Toolstack system control (`sysctl.h`, Xen 4.17, interface version 0x15):
//! `XEN_SYSCTL_*` numbers and the arm64 layouts of `struct xen_sysctl` and its
//! payloads. Filled in with the toolstack work (see `docs/toolstack.md`).
