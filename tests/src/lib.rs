//! Host-side integration tests: boot oxen in QEMU and check the serial console
#![cfg_attr(not(test), no_std)]
