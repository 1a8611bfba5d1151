//! Stage-2 translation tables and physical memory ranges
#![cfg_attr(not(test), no_std)]
