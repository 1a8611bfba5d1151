//! `front-hostile`: a hostile Xen PV block or network frontend, run inside
//! an unprivileged Linux DomU by `tests/tests/pv_hostile.rs`.
//!
//! It takes a vbd over from the DomU's kernel (unbinds `xen-blkfront` from it
//! through sysfs; by default `xen-netfront` from the vifs too, so that no
//! other driver allocates grant references while it runs), then acts as the
//! frontend itself: ring and data pages granted through `/dev/xen/gntalloc`,
//! the event channel through `/dev/xen/evtchn`, and the xenbus handshake
//! (`ring-ref`, `event-channel`, `protocol`, `state`) through
//! `/dev/xen/xenbus`, as `xen-blkfront` does. Then it runs the attack cases
//! of [`front_hostile::CASES`] one after another, closing and reconnecting
//! the device between them, and prints one `front-hostile: <case>: <what
//! happened>` line per case and `front-hostile: done <n> cases` at the end.
//! It judges nothing: the test decides which outcome each case must have.
//! The last connection is left connected (the test destroys the domain
//! with Dom0 still mapping its ring).
//!
//! With `--netif` it does the same to the vifs and Dom0's netback instead
//! (`net.rs`, cases [`front_hostile::netif::NET_CASES`]): tx and rx rings,
//! the handshake `xen-netfront` does, then bad grants, sizes, offsets,
//! slot chains and ring indices; the cases that make netback disable a
//! vif each run on a vif of their own. `xenbus.rs` has what both share.
//!
//! Exit status: 0 when every case ran (whatever the backend answered), 1
//! when the device could not be taken over or set up, 2 for usage errors.

#[cfg(target_os = "linux")]
mod blk;
#[cfg(target_os = "linux")]
mod net;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod xenbus;

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("front-hostile: runs only on Linux (inside a Xen DomU)");
    std::process::exit(1);
}

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(target_os = "linux")]
mod linux {
    use std::time::Duration;

    use clap::Parser;
    use front_hostile::CASES;
    use front_hostile::netif::{NET_CASES, parse_ip};

    use crate::{blk, net};

    /// A hostile Xen PV block or network frontend, for tests.
    ///
    /// Run inside an unprivileged DomU that has a vbd served by Dom0's
    /// blkback. It unbinds xen-blkfront from the vbd (and xen-netfront from
    /// the vifs unless --keep-vif), becomes the frontend itself through
    /// /dev/xen/gntalloc, /dev/xen/evtchn and /dev/xen/xenbus (modules
    /// xen-gntalloc and xen-evtchn must be loaded), and attacks the backend
    /// one case after another: bad grant references, pages granted to other
    /// domains or read-only, rings and event channels that are not what they
    /// claim, segment counts and sector ranges out of bounds, an unknown
    /// operation, a notification flood, req_prod far past the ring. Between
    /// cases it closes and reconnects the device. Each case prints
    /// `front-hostile: <case>: <what happened>` (backend answered OKAY or an
    /// error status, backend closed the device, nothing within the timeout,
    /// or a local error); the last line is `front-hostile: done <n> cases`.
    ///
    /// With --netif it takes every vif (and vbd) over instead and attacks
    /// Dom0's netback: bad tx and rx rings, ports, grant references, packet
    /// sizes and offsets, endless slot chains, tx req_prod past the ring, a
    /// notification flood; the good cases exchange ARP with --peer. A case
    /// that makes netback disable the vif runs on a vif of its own (the
    /// second, third, ... vif), so the DomU needs one vif more than there
    /// are such cases (--list --netif marks them).
    ///
    /// Exit status 0 when all cases ran, 1 when the device could not be
    /// taken over or connected, 2 for usage errors. --list shows the cases.
    #[derive(Parser, Debug)]
    #[command(name = "front-hostile", version, verbatim_doc_comment)]
    struct Cli {
        /// Attack the vifs' netback instead of a vbd's blkback
        #[arg(long)]
        netif: bool,
        /// The vbd to take over: its id under device/vbd/ (e.g. 51712 for
        /// xvda); default: the first one
        #[arg(long, value_name = "ID", conflicts_with = "netif")]
        vbd: Option<String>,
        /// The domain pages are granted to and ports offered to in the
        /// "other domain" cases (default: this domain itself, which is not
        /// the backend either)
        #[arg(long, value_name = "DOMID")]
        other_domid: Option<u16>,
        /// Seconds to wait for an answer or a backend state change
        #[arg(long, value_name = "SECS", default_value_t = 15)]
        timeout: u64,
        /// --netif: seconds to wait for an answer that should not come (a
        /// ring that must not be served, a disabled vif)
        #[arg(long, value_name = "SECS", default_value_t = 3)]
        silence: u64,
        /// --netif: this domain's IPv4 address in the ARP requests
        #[arg(long, value_name = "ADDR", default_value = "192.0.2.99")]
        ip: String,
        /// --netif: the IPv4 address the ARP requests ask for (Dom0's on the bridge)
        #[arg(long, value_name = "ADDR", default_value = "192.0.2.1")]
        peer: String,
        /// Run only these cases, in the order given (repeat or separate
        /// with commas); default: every case
        #[arg(long = "case", value_name = "NAME", value_delimiter = ',')]
        cases: Vec<String>,
        /// Leave the vifs to xen-netfront (blkif mode)
        #[arg(long, conflicts_with = "netif")]
        keep_vif: bool,
        /// Print the cases with what each does, and exit
        #[arg(long)]
        list: bool,
    }

    fn usage(msg: &str) -> ! {
        eprintln!("front-hostile: {msg}");
        std::process::exit(2);
    }

    pub fn main() {
        let cli = Cli::parse();
        let all: Vec<(&str, String)> = if cli.netif {
            NET_CASES
                .iter()
                .map(|c| {
                    let own = if c.own_vif { " [own vif]" } else { "" };
                    (c.name, format!("{}{own}", c.what))
                })
                .collect()
        } else {
            CASES.iter().map(|(n, w)| (*n, (*w).to_string())).collect()
        };
        if cli.list {
            for (name, what) in &all {
                println!("{name:28} {what}");
            }
            return;
        }
        for c in &cli.cases {
            if !all.iter().any(|(n, _)| n == c) {
                usage(&format!("unknown case '{c}' (--list shows them)"));
            }
        }
        let cases: Vec<&str> = if cli.cases.is_empty() {
            all.iter().map(|c| c.0).collect()
        } else {
            cli.cases.iter().map(String::as_str).collect()
        };
        let timeout = Duration::from_secs(cli.timeout);
        if cli.netif {
            let ip = |s: &str| parse_ip(s).unwrap_or_else(|| usage(&format!("bad address '{s}'")));
            let opts = net::Options {
                other: cli.other_domid,
                timeout,
                silence: Duration::from_secs(cli.silence),
                ip: ip(&cli.ip),
                peer: ip(&cli.peer),
            };
            if let Err(e) = net::run(&cases, &opts) {
                println!("front-hostile: setup failed: {e}");
                std::process::exit(1);
            }
        } else {
            let mut f = match blk::Front::take_over(
                cli.vbd.as_deref(),
                cli.other_domid,
                timeout,
                !cli.keep_vif,
            ) {
                Ok(f) => f,
                Err(e) => {
                    println!("front-hostile: setup failed: {e}");
                    std::process::exit(1);
                }
            };
            for name in &cases {
                let out = f.run(name);
                println!("front-hostile: {name}: {out}");
            }
        }
        println!("front-hostile: done {} cases", cases.len());
    }
}
