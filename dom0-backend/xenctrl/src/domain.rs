//! [`DomainInfo`]: a domain's state decoded from `xen_domctl_getdomaininfo`
//! (TSA §2.3), as `xl list` and the daemons need it.
//!
//! Invariant: the decoding is total — any 120-byte record decodes, unknown
//! flag bits are kept in `flags`, and the shutdown code is only reported when
//! the shutdown flag is set (Xen leaves it at all-ones for a live domain).

use xen_abi::domctl::{
    GetDomainInfo, XEN_DOMINF_BLOCKED, XEN_DOMINF_DEBUGGED, XEN_DOMINF_DYING, XEN_DOMINF_HAP,
    XEN_DOMINF_HVM_GUEST, XEN_DOMINF_PAUSED, XEN_DOMINF_RUNNING, XEN_DOMINF_SHUTDOWN,
    XEN_DOMINF_SHUTDOWNMASK, XEN_DOMINF_SHUTDOWNSHIFT, XEN_DOMINF_XS_DOMAIN,
};
use xen_abi::hypercall::ShutdownReason;

/// One domain as `getdomaininfo` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// Domain id.
    pub domid: u16,
    /// Raw `XEN_DOMINF_*` flags word (shutdown code included).
    pub flags: u32,
    /// Destroyed and dead, only a zombie kept by references (`d`).
    pub dying: bool,
    /// Shut down (all vCPUs stopped for shutdown) (`s`).
    pub shutdown: bool,
    /// The shutdown code (`SHUTDOWN_*`), only when `shutdown` is set.
    pub shutdown_code: Option<u8>,
    /// Paused by the toolstack (`p`).
    pub paused: bool,
    /// Every online vCPU blocked (`b`).
    pub blocked: bool,
    /// Some vCPU on a pCPU (`r`).
    pub running: bool,
    /// HVM/PVH container (always on Arm).
    pub hvm: bool,
    /// Hardware-assisted paging (always on Arm).
    pub hap: bool,
    /// Being debugged.
    pub debugged: bool,
    /// Runs xenstored.
    pub xs_domain: bool,
    /// Pages allocated.
    pub tot_pages: u64,
    /// Page limit.
    pub max_pages: u64,
    /// Claimed, not yet allocated pages.
    pub outstanding_pages: u64,
    /// Shared pages.
    pub shr_pages: u64,
    /// Paged-out pages.
    pub paged_pages: u64,
    /// GFN of the shared info page.
    pub shared_info_frame: u64,
    /// CPU time of all vCPUs, ns.
    pub cpu_time: u64,
    /// Online vCPUs.
    pub nr_online_vcpus: u32,
    /// Highest vCPU id (`u32::MAX` when none).
    pub max_vcpu_id: u32,
    /// XSM label.
    pub ssidref: u32,
    /// UUID (`xen_domain_handle_t`).
    pub handle: [u8; 16],
    /// CPU pool.
    pub cpupool: u32,
    /// Guest physical address width.
    pub gpaddr_bits: u8,
}

impl From<&GetDomainInfo> for DomainInfo {
    fn from(g: &GetDomainInfo) -> Self {
        let f = g.flags;
        let shutdown = f & XEN_DOMINF_SHUTDOWN != 0;
        let code = ((f >> XEN_DOMINF_SHUTDOWNSHIFT) & XEN_DOMINF_SHUTDOWNMASK) as u8;
        DomainInfo {
            domid: g.domain,
            flags: f,
            dying: f & XEN_DOMINF_DYING != 0,
            shutdown,
            shutdown_code: shutdown.then_some(code),
            paused: f & XEN_DOMINF_PAUSED != 0,
            blocked: f & XEN_DOMINF_BLOCKED != 0,
            running: f & XEN_DOMINF_RUNNING != 0,
            hvm: f & XEN_DOMINF_HVM_GUEST != 0,
            hap: f & XEN_DOMINF_HAP != 0,
            debugged: f & XEN_DOMINF_DEBUGGED != 0,
            xs_domain: f & XEN_DOMINF_XS_DOMAIN != 0,
            tot_pages: g.tot_pages,
            max_pages: g.max_pages,
            outstanding_pages: g.outstanding_pages,
            shr_pages: g.shr_pages,
            paged_pages: g.paged_pages,
            shared_info_frame: g.shared_info_frame,
            cpu_time: g.cpu_time,
            nr_online_vcpus: g.nr_online_vcpus,
            max_vcpu_id: g.max_vcpu_id,
            ssidref: g.ssidref,
            handle: g.handle,
            cpupool: g.cpupool,
            gpaddr_bits: g.gpaddr_bits,
        }
    }
}

impl DomainInfo {
    /// The shutdown reason, when shut down with a known code.
    pub fn shutdown_reason(&self) -> Option<ShutdownReason> {
        self.shutdown_code
            .and_then(|c| ShutdownReason::from_raw(u32::from(c)))
    }

    /// The six-letter state column of `xl list` (`r b p s <reason> d`, the
    /// reason letter from `-rscwS`, `?` for an unknown code).
    pub fn xl_state(&self) -> String {
        const LETTERS: &[u8] = b"-rscwS";
        let reason = match self.shutdown_code {
            None => '-',
            Some(c) => LETTERS.get(usize::from(c)).map_or('?', |&b| char::from(b)),
        };
        [
            if self.running { 'r' } else { '-' },
            if self.blocked { 'b' } else { '-' },
            if self.paused { 'p' } else { '-' },
            if self.shutdown { 's' } else { '-' },
            reason,
            if self.dying { 'd' } else { '-' },
        ]
        .iter()
        .collect()
    }

    /// Memory in MiB as `xl list` shows it: `(tot_pages + outstanding) × 4 KiB`.
    pub fn mem_mib(&self) -> u64 {
        self.tot_pages.saturating_add(self.outstanding_pages) * 4 / 1024
    }

    /// The UUID in the usual 8-4-4-4-12 form.
    pub fn uuid_string(&self) -> String {
        let h = &self.handle;
        format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            h[0],
            h[1],
            h[2],
            h[3],
            h[4],
            h[5],
            h[6],
            h[7],
            h[8],
            h[9],
            h[10],
            h[11],
            h[12],
            h[13],
            h[14],
            h[15]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromBytes;

    fn raw(flags: u32) -> GetDomainInfo {
        let mut b = [0u8; 120];
        b[0..2].copy_from_slice(&1u16.to_le_bytes());
        b[4..8].copy_from_slice(&flags.to_le_bytes());
        b[8..16].copy_from_slice(&65540u64.to_le_bytes());
        b[16..24].copy_from_slice(&65792u64.to_le_bytes());
        b[56..64].copy_from_slice(&1_500_000_000u64.to_le_bytes());
        b[64..68].copy_from_slice(&1u32.to_le_bytes());
        b[76] = 0xd1;
        b[91] = 0x0f;
        b[96] = 40;
        GetDomainInfo::read_from_bytes(&b).unwrap()
    }

    #[test]
    fn live_domain_sample_flags() {
        // The reference sample's running DomU: 0xffff0122 = running|hap|hvm,
        // shutdown code still ~0.
        let d = DomainInfo::from(&raw(0xffff_0122));
        assert_eq!(d.domid, 1);
        assert!(d.running && d.hap && d.hvm);
        assert!(!d.shutdown && !d.dying && !d.paused && !d.blocked);
        assert_eq!(d.shutdown_code, None);
        assert_eq!(d.shutdown_reason(), None);
        assert_eq!(d.xl_state(), "r-----");
        assert_eq!(d.tot_pages, 65540);
        assert_eq!(d.max_pages, 65792);
        assert_eq!(d.mem_mib(), 256);
        assert_eq!(d.cpu_time, 1_500_000_000);
        assert_eq!(d.nr_online_vcpus, 1);
        assert_eq!(d.gpaddr_bits, 40);
        assert_eq!(d.uuid_string(), "d1000000-0000-0000-0000-00000000000f");
    }

    #[test]
    fn shutdown_codes_decode() {
        let f = XEN_DOMINF_SHUTDOWN | XEN_DOMINF_HAP | (3 << XEN_DOMINF_SHUTDOWNSHIFT);
        let d = DomainInfo::from(&raw(f));
        assert_eq!(d.shutdown_code, Some(3));
        assert_eq!(d.shutdown_reason(), Some(ShutdownReason::Crash));
        assert_eq!(d.xl_state(), "---sc-");
        let d = DomainInfo::from(&raw(XEN_DOMINF_SHUTDOWN | XEN_DOMINF_PAUSED));
        assert_eq!(d.shutdown_reason(), Some(ShutdownReason::Poweroff));
        assert_eq!(d.xl_state(), "--ps--");
        let d = DomainInfo::from(&raw(XEN_DOMINF_SHUTDOWN | (9 << 16)));
        assert_eq!(d.shutdown_reason(), None);
        assert_eq!(d.xl_state(), "---s?-");
        let d = DomainInfo::from(&raw(XEN_DOMINF_DYING | XEN_DOMINF_BLOCKED | 0xff0000));
        assert!(d.dying && d.blocked);
        assert_eq!(d.xl_state(), "-b---d");
    }
}
