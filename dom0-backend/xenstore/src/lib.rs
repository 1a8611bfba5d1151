//! xenstore for oxen's Dom0: the wire codec ([`wire`]), permissions
//! ([`perms`]), path rules ([`path`]), the database ([`store`]), the
//! client library ([`Client`]), and the daemon core ([`server`]) behind
//! the `xenstored` binary. Everything here but the client's I/O is pure and
//! host-tested; the daemon's hypervisor access goes through
//! [`server::Hypervisor`].
//!
//! Wire facts (types, header, errors, ring layout) come from
//! `xen_abi::xenstore`.

pub mod client;
pub mod path;
pub mod perms;
pub mod ring;
pub mod server;
pub mod store;
pub mod tool;
pub mod wire;

pub use client::{Client, Error};
pub use perms::{Perm, PermKind};
pub use xen_abi::xenstore::XsError;
