//! Device-tree reading (boot information) and writing (guest device trees)
#![cfg_attr(not(test), no_std)]
