//! The netif side of `front-hostile` (`--netif`), host-testable: the tx and
//! rx shared-ring layouts (Xen's `io/netif.h` and `io/ring.h`, one 4 KiB page
//! each, native arm64 ABI), request encoding, response decoding, the ARP
//! frames the good cases exchange with Dom0, the attack cases and the text
//! of their outcomes.
//!
//! The ring header is the blkif one ([`crate::REQ_PROD`] and friends). A tx
//! slot is 12 bytes (the request; responses and extra-info slots are
//! smaller and share it), an rx slot 8 bytes; both rings hold 256 slots.

/// Bytes of one tx ring slot (`netif_tx_request`).
pub const TX_SLOT: usize = 12;
/// Bytes of one rx ring slot (`netif_rx_request` and `netif_rx_response`).
pub const RX_SLOT: usize = 8;
/// Slots of the tx ring: `(4096 - 64) / 12` rounded down to a power of 2.
pub const TX_RING_SIZE: u32 = 256;
/// Slots of the rx ring: `(4096 - 64) / 8` rounded down to a power of 2.
pub const RX_RING_SIZE: u32 = 256;

/// `NETTXF_more_data`: the packet continues in the next slot.
pub const TXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`: an extra-info slot follows.
pub const TXF_EXTRA_INFO: u16 = 1 << 3;
/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const EXTRA_FLAG_MORE: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const GSO_TYPE_TCPV4: u8 = 1;

/// `XEN_NETIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `XEN_NETIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `XEN_NETIF_RSP_DROPPED`.
pub const RSP_DROPPED: i16 = -2;
/// `XEN_NETIF_RSP_NULL`: the response of an extra-info slot.
pub const RSP_NULL: i16 = 1;

/// Bytes of the ARP frames exchanged (an Ethernet frame's minimum, without FCS).
pub const ARP_FRAME: usize = 60;

/// Byte offset of tx ring slot `idx` (taken modulo the ring size).
pub fn tx_slot_offset(idx: u32) -> usize {
    crate::RING_HEADER + (idx % TX_RING_SIZE) as usize * TX_SLOT
}

/// Byte offset of rx ring slot `idx` (taken modulo the ring size).
pub fn rx_slot_offset(idx: u32) -> usize {
    crate::RING_HEADER + (idx % RX_RING_SIZE) as usize * RX_SLOT
}

/// One `netif_tx_request`: a granted page and the bytes used in it. On a
/// packet's first slot `size` is the whole packet's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// Grant reference of the data page.
    pub gref: u32,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// `id`, echoed in the response.
    pub id: u16,
    /// Bytes (see above).
    pub size: u16,
}

impl TxRequest {
    /// The slot's bytes: gref, offset, flags, id, size.
    pub fn encode(&self) -> [u8; TX_SLOT] {
        let mut b = [0u8; TX_SLOT];
        b[0..4].copy_from_slice(&self.gref.to_le_bytes());
        b[4..6].copy_from_slice(&self.offset.to_le_bytes());
        b[6..8].copy_from_slice(&self.flags.to_le_bytes());
        b[8..10].copy_from_slice(&self.id.to_le_bytes());
        b[10..12].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

/// A GSO `netif_extra_info` in a tx slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GsoExtra {
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The MSS.
    pub size: u16,
    /// `XEN_NETIF_GSO_TYPE_*`.
    pub gso_type: u8,
}

impl GsoExtra {
    /// The slot's bytes: type, flags, size, gso type, pad, features (0),
    /// then zeros to the end of the slot.
    pub fn encode(&self) -> [u8; TX_SLOT] {
        let mut b = [0u8; TX_SLOT];
        b[0] = EXTRA_TYPE_GSO;
        b[1] = self.flags;
        b[2..4].copy_from_slice(&self.size.to_le_bytes());
        b[4] = self.gso_type;
        b
    }
}

/// A `netif_tx_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxResponse {
    /// The request's `id`.
    pub id: u16,
    /// `XEN_NETIF_RSP_*`.
    pub status: i16,
}

impl TxResponse {
    /// Decode the first 4 bytes of a slot (id, status).
    pub fn decode(b: &[u8]) -> Option<Self> {
        let id = u16::from_le_bytes(b.get(0..2)?.try_into().ok()?);
        let status = i16::from_le_bytes(b.get(2..4)?.try_into().ok()?);
        Some(Self { id, status })
    }
}

/// One `netif_rx_request`: a page the backend may copy a packet into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxRequest {
    /// `id`, echoed in the response.
    pub id: u16,
    /// Grant reference of the page.
    pub gref: u32,
}

impl RxRequest {
    /// The slot's bytes: id, pad, gref.
    pub fn encode(&self) -> [u8; RX_SLOT] {
        let mut b = [0u8; RX_SLOT];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[4..8].copy_from_slice(&self.gref.to_le_bytes());
        b
    }
}

/// A `netif_rx_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxResponse {
    /// The request's `id`.
    pub id: u16,
    /// Where the data starts in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes in the page when positive; a `GNTST_*` or `XEN_NETIF_RSP_*` error when negative.
    pub status: i16,
}

impl RxResponse {
    /// Decode a slot (id, offset, flags, status).
    pub fn decode(b: &[u8]) -> Option<Self> {
        let h = |o: usize| -> Option<[u8; 2]> { b.get(o..o + 2)?.try_into().ok() };
        Some(Self {
            id: u16::from_le_bytes(h(0)?),
            offset: u16::from_le_bytes(h(2)?),
            flags: u16::from_le_bytes(h(4)?),
            status: i16::from_le_bytes(h(6)?),
        })
    }
}

/// `XEN_NETIF_RSP_*` as text.
pub fn tx_status_name(status: i16) -> &'static str {
    match status {
        RSP_OKAY => "XEN_NETIF_RSP_OKAY",
        RSP_ERROR => "XEN_NETIF_RSP_ERROR",
        RSP_DROPPED => "XEN_NETIF_RSP_DROPPED",
        RSP_NULL => "XEN_NETIF_RSP_NULL",
        _ => "unknown status",
    }
}

/// `GNTST_*` as text (netback puts a failed grant copy's status in the rx response).
pub fn gntst_name(status: i16) -> &'static str {
    const NAMES: [&str; 13] = [
        "GNTST_okay",
        "GNTST_general_error",
        "GNTST_bad_domain",
        "GNTST_bad_gntref",
        "GNTST_bad_handle",
        "GNTST_bad_virt_addr",
        "GNTST_bad_dev_addr",
        "GNTST_no_device_space",
        "GNTST_permission_denied",
        "GNTST_bad_page",
        "GNTST_bad_copy_arg",
        "GNTST_address_too_big",
        "GNTST_eagain",
    ];
    usize::try_from(-i32::from(status))
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("unknown status")
}

/// What a tx response says, for a report line.
pub fn tx_outcome(status: i16) -> String {
    match status {
        RSP_OKAY => "backend answered tx OKAY".into(),
        s => format!("backend answered tx status {s} ({})", tx_status_name(s)),
    }
}

/// What an rx response says that carries no packet, for a report line.
pub fn rx_error_outcome(status: i16) -> String {
    format!("rx response status {status} ({})", gntst_name(status))
}

/// An IPv4 address as text.
pub fn ip_text(ip: [u8; 4]) -> String {
    format!("{}.{}.{}.{}", ip[0], ip[1], ip[2], ip[3])
}

/// Parse `a.b.c.d`.
pub fn parse_ip(s: &str) -> Option<[u8; 4]> {
    let mut ip = [0u8; 4];
    let mut parts = s.split('.');
    for b in &mut ip {
        *b = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(ip)
}

/// Parse `xx:xx:xx:xx:xx:xx`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// A broadcast ARP request from `mac`/`ip` asking who has `target`,
/// padded to [`ARP_FRAME`] bytes.
pub fn arp_request(mac: [u8; 6], ip: [u8; 4], target: [u8; 4]) -> [u8; ARP_FRAME] {
    let mut f = [0u8; ARP_FRAME];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // IPv4
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    // Target hardware address unknown (zero).
    f[38..42].copy_from_slice(&target);
    f
}

/// If `frame` is an ARP reply, its sender's IPv4 address.
pub fn arp_reply_sender(frame: &[u8]) -> Option<[u8; 4]> {
    let is_reply = frame.len() >= 42
        && frame[12..14] == 0x0806u16.to_be_bytes()
        && frame[16..18] == 0x0800u16.to_be_bytes()
        && frame[20..22] == 2u16.to_be_bytes();
    is_reply.then(|| frame[28..32].try_into().ok()).flatten()
}

/// One netif attack case: name, what it does, and whether netback is
/// expected to disable the vif for it (a malformed ring: such a case runs
/// on a vif of its own, since netback never serves a disabled vif again).
pub struct NetCase {
    /// Name on the command line and in the report.
    pub name: &'static str,
    /// One line of help.
    pub what: &'static str,
    /// Run on a fresh vif of its own.
    pub own_vif: bool,
}

const fn case(name: &'static str, what: &'static str, own_vif: bool) -> NetCase {
    NetCase {
        name,
        what,
        own_vif,
    }
}

/// The netif attack cases, in the order they run.
pub const NET_CASES: &[NetCase] = &[
    case(
        "good-arp",
        "baseline: an ARP request for the peer on tx, its reply on rx (must work)",
        false,
    ),
    case(
        "tx-ring-ref-beyond-table",
        "connect with tx-ring-ref 0xfffff0, then a good tx",
        false,
    ),
    case(
        "rx-ring-ref-not-granted",
        "connect with an rx-ring-ref that was granted and revoked, then a good tx",
        false,
    ),
    case(
        "tx-ring-ref-other-domain",
        "connect with a tx ring page granted to another domain, then a good tx",
        false,
    ),
    case(
        "rx-ring-ref-read-only",
        "connect with an rx ring page granted read-only, then a good tx",
        false,
    ),
    case(
        "event-channel-unbound",
        "connect with an event channel port that was closed, then a good tx",
        false,
    ),
    case(
        "tx-gref-beyond-table",
        "send a packet from grant ref 0xfffff0",
        false,
    ),
    case(
        "tx-gref-not-granted",
        "send a packet from a revoked grant ref",
        false,
    ),
    case(
        "tx-gref-other-domain",
        "send a packet from a page granted to another domain",
        false,
    ),
    case(
        "tx-big-gref-other-domain",
        "send 1000 bytes (copied and mapped) from a page granted to another domain",
        false,
    ),
    case("tx-size-zero", "send a packet of size 0", false),
    case(
        "tx-frag-larger-than-packet",
        "a 100-byte packet whose second slot claims 2000 bytes",
        false,
    ),
    case(
        "rx-gref-beyond-table",
        "rx requests for grant ref 0xfffff0, then an ARP request (its reply goes there)",
        false,
    ),
    case(
        "rx-gref-not-granted",
        "rx requests for a revoked grant ref, then an ARP request",
        false,
    ),
    case(
        "rx-gref-other-domain",
        "rx requests for a page granted to another domain, then an ARP request",
        false,
    ),
    case(
        "rx-gref-read-only",
        "rx requests for a page granted read-only, then an ARP request",
        false,
    ),
    case(
        "notify-flood",
        "20000 notifications with nothing queued, then the ARP exchange",
        false,
    ),
    case(
        "tx-req-prod-past-ring",
        "tx req_prod 1000 past rsp_prod (the ring holds 256), on a vif of its own",
        true,
    ),
    case(
        "tx-offset-past-page",
        "a packet at offset 4000 of 200 bytes (crosses the page), on a vif of its own",
        true,
    ),
    case(
        "tx-size-64k",
        "a one-slot packet of 65535 bytes, on a vif of its own",
        true,
    ),
    case(
        "tx-extra-info-endless",
        "a packet followed by GSO extra-info slots that all say more follow, on a vif of its own",
        true,
    ),
    case(
        "tx-more-data-endless",
        "a packet whose slots all say more data follows (255 slots), on a vif of its own",
        true,
    ),
    case(
        "good-arp-after",
        "reconnect the first vif and do the ARP exchange again (must work)",
        false,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_geometry() {
        assert_eq!(tx_slot_offset(0), 64);
        assert_eq!(tx_slot_offset(1), 76);
        assert_eq!(tx_slot_offset(TX_RING_SIZE), 64);
        assert!(tx_slot_offset(TX_RING_SIZE - 1) + TX_SLOT <= 4096);
        assert!(64 + 2 * TX_RING_SIZE as usize * TX_SLOT > 4096);
        assert_eq!(rx_slot_offset(2), 80);
        assert!(rx_slot_offset(RX_RING_SIZE - 1) + RX_SLOT <= 4096);
        assert!(64 + 2 * RX_RING_SIZE as usize * RX_SLOT > 4096);
    }

    #[test]
    fn tx_layouts() {
        let b = TxRequest {
            gref: 0x1234_5678,
            offset: 0x0102,
            flags: TXF_MORE_DATA | TXF_EXTRA_INFO,
            id: 0xabcd,
            size: 0xffff,
        }
        .encode();
        assert_eq!(
            b,
            [
                0x78, 0x56, 0x34, 0x12, 0x02, 0x01, 12, 0, 0xcd, 0xab, 0xff, 0xff
            ]
        );
        let e = GsoExtra {
            flags: EXTRA_FLAG_MORE,
            size: 1400,
            gso_type: GSO_TYPE_TCPV4,
        }
        .encode();
        assert_eq!(e, [1, 1, 0x78, 0x05, 1, 0, 0, 0, 0, 0, 0, 0]);
        let r = TxResponse::decode(&[7, 0, 0xff, 0xff]).unwrap();
        assert_eq!(r, TxResponse { id: 7, status: -1 });
        assert!(TxResponse::decode(&[7, 0, 0]).is_none());
    }

    #[test]
    fn rx_layouts() {
        let b = RxRequest {
            id: 3,
            gref: 0xfffff0,
        }
        .encode();
        assert_eq!(b, [3, 0, 0, 0, 0xf0, 0xff, 0xff, 0]);
        let r = RxResponse::decode(&[3, 0, 16, 0, 1, 0, 0xfd, 0xff]).unwrap();
        assert_eq!(
            r,
            RxResponse {
                id: 3,
                offset: 16,
                flags: 1,
                status: -3
            }
        );
        assert!(RxResponse::decode(&[0; 7]).is_none());
    }

    #[test]
    fn status_texts() {
        assert_eq!(tx_outcome(0), "backend answered tx OKAY");
        assert_eq!(
            tx_outcome(-1),
            "backend answered tx status -1 (XEN_NETIF_RSP_ERROR)"
        );
        assert_eq!(
            rx_error_outcome(-3),
            "rx response status -3 (GNTST_bad_gntref)"
        );
        assert_eq!(gntst_name(-8), "GNTST_permission_denied");
        assert_eq!(gntst_name(-12), "GNTST_eagain");
        assert_eq!(gntst_name(-13), "unknown status");
        assert_eq!(gntst_name(5), "unknown status");
        assert_eq!(gntst_name(i16::MIN), "unknown status");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_ip("192.0.2.1"), Some([192, 0, 2, 1]));
        assert_eq!(parse_ip("192.0.2"), None);
        assert_eq!(parse_ip("192.0.2.1.5"), None);
        assert_eq!(parse_ip("192.0.2.256"), None);
        assert_eq!(ip_text([192, 0, 2, 99]), "192.0.2.99");
        assert_eq!(
            parse_mac("00:16:3e:00:0e:01\n"),
            Some([0, 0x16, 0x3e, 0, 0x0e, 1])
        );
        assert_eq!(parse_mac("00:16:3e:00:0e"), None);
        assert_eq!(parse_mac("00:16:3e:00:0e:1"), None);
    }

    #[test]
    fn arp_frames() {
        let mac = [0, 0x16, 0x3e, 0, 0x0e, 0];
        let f = arp_request(mac, [192, 0, 2, 99], [192, 0, 2, 1]);
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..22], &[8, 6, 0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&f[28..32], &[192, 0, 2, 99]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[192, 0, 2, 1]);
        assert!(f[42..].iter().all(|&b| b == 0));
        // A request is not a reply; the same frame answered is.
        assert_eq!(arp_reply_sender(&f), None);
        let mut r = f;
        r[21] = 2;
        r[28..32].copy_from_slice(&[192, 0, 2, 1]);
        assert_eq!(arp_reply_sender(&r), Some([192, 0, 2, 1]));
        assert_eq!(arp_reply_sender(&r[..41]), None);
        let mut ip = r;
        ip[12..14].copy_from_slice(&[8, 0]);
        assert_eq!(arp_reply_sender(&ip), None);
    }

    #[test]
    fn case_names_are_unique_and_plain() {
        let mut names: Vec<&str> = NET_CASES.iter().map(|c| c.name).collect();
        assert!(names.iter().all(|n| {
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), NET_CASES.len());
        // The first and last cases share the first vif and must not need one of their own.
        assert!(!NET_CASES[0].own_vif && !NET_CASES[NET_CASES.len() - 1].own_vif);
    }
}
