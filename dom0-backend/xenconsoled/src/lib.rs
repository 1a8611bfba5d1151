//! xenconsoled: Dom0's console daemon (Xen's `tools/console/daemon`). For each DomU whose
//! `console/` nodes xl wrote, it maps the PV console ring page, binds the console event
//! channel and copies the guest's output to a pty (path in `console/tty`, where `xl
//! console` connects) and to `<log-dir>/guest-<name>.log`, and pty input back to the guest.
//!
//! Layout: [`ring`], [`buffer`], [`ratelimit`] are the pure protocol parts; [`daemon`] is
//! the event loop over the [`sys`] traits; [`xen`] implements those traits with `xenctrl`
//! and `xenstore` in Dom0; [`cli`] parses the command line.
#![deny(unsafe_code)]

pub mod buffer;
pub mod cli;
pub mod daemon;
#[cfg(test)]
mod fake;
pub mod pty;
pub mod ratelimit;
pub mod ring;
pub mod sys;
pub mod xen;
