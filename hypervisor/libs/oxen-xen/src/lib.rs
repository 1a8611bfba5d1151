//! Event channels and grant tables: Xen's per-domain state machines
#![cfg_attr(not(test), no_std)]
