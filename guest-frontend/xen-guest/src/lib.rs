//! no_std Xen guest library: hypercalls, console, event channels
#![cfg_attr(not(test), no_std)]
