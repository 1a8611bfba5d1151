//! `front-hostile`'s host-testable half: the blkif shared-ring layout (Xen's
//! `io/blkif.h` and `io/ring.h` for a 4 KiB ring page, native arm64 ABI,
//! `protocol = "arm-abi"`), request encoding, response decoding, the list
//! of attack cases and the one-line outcome each case reports; the same for
//! netif in [`netif`].
//!
//! Owns nothing at run time: `main.rs` (Linux only) does the xenstore
//! handshake, grants and event channels, and uses these layouts to fill
//! the ring pages it granted. Invariant: every encoder writes exactly one
//! ring slot ([`REQ_SIZE`] bytes, or netif's slot sizes) and never reads
//! guest memory.

use std::fmt;

pub mod netif;

/// `BLKIF_OP_READ`: disk to the granted pages (the backend writes them).
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`: the granted pages to disk (the backend reads them).
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_INDIRECT`: segments listed in granted indirect pages.
pub const OP_INDIRECT: u8 = 6;
/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const RSP_EOPNOTSUPP: i16 = -2;
/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const MAX_SEGMENTS: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const MAX_INDIRECT_PAGES: usize = 8;
/// Bytes of one ring slot: the request union (`blkif_request`, packed).
pub const REQ_SIZE: usize = 112;
/// The shared ring header: `req_prod`, `req_event`, `rsp_prod`,
/// `rsp_event`, then padding to 64 bytes.
pub const RING_HEADER: usize = 64;
/// Slots in a one-page ring: `(4096 - 64) / 112` rounded down to a power of 2.
pub const RING_SIZE: u32 = 32;
/// Offsets of the ring header's indices.
pub const REQ_PROD: usize = 0;
/// See [`REQ_PROD`].
pub const REQ_EVENT: usize = 4;
/// See [`REQ_PROD`].
pub const RSP_PROD: usize = 8;
/// See [`REQ_PROD`].
pub const RSP_EVENT: usize = 12;
/// Sectors are 512 bytes; one 4 KiB page holds 8.
pub const SECTORS_PER_PAGE: u8 = 8;
/// The frontend protocol name of the native arm64 ABI (`XEN_IO_PROTO_ABI_NATIVE`).
pub const PROTOCOL_NATIVE: &str = "arm-abi";

/// Byte offset of ring slot `idx` (taken modulo the ring size).
pub fn slot_offset(idx: u32) -> usize {
    RING_HEADER + (idx % RING_SIZE) as usize * REQ_SIZE
}

/// One `blkif_request_segment`: a granted page and the sectors used in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Grant reference of the data page.
    pub gref: u32,
    /// First 512-byte sector used in the page.
    pub first_sect: u8,
    /// Last sector used in the page (inclusive).
    pub last_sect: u8,
}

impl Segment {
    /// The whole page.
    pub fn page(gref: u32) -> Self {
        Self {
            gref,
            first_sect: 0,
            last_sect: SECTORS_PER_PAGE - 1,
        }
    }
}

/// A read/write-shaped request (`blkif_request_rw`); `nr_segments` is
/// written as given, whatever `segs` holds (the hostile cases lie).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RwRequest {
    /// `operation`.
    pub op: u8,
    /// `nr_segments` as claimed.
    pub nr_segments: u8,
    /// `handle` (the vdev).
    pub handle: u16,
    /// `id`, echoed in the response.
    pub id: u64,
    /// `sector_number`.
    pub sector: u64,
    /// The segments written (at most [`MAX_SEGMENTS`]; extra ones are dropped).
    pub segs: Vec<Segment>,
}

impl RwRequest {
    /// The slot's bytes: operation, nr_segments, handle, pad, id, sector,
    /// then 8 bytes per segment (gref, first_sect, last_sect, pad).
    pub fn encode(&self) -> [u8; REQ_SIZE] {
        let mut b = [0u8; REQ_SIZE];
        b[0] = self.op;
        b[1] = self.nr_segments;
        b[2..4].copy_from_slice(&self.handle.to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.sector.to_le_bytes());
        for (i, s) in self.segs.iter().take(MAX_SEGMENTS).enumerate() {
            let o = 24 + i * 8;
            b[o..o + 4].copy_from_slice(&s.gref.to_le_bytes());
            b[o + 4] = s.first_sect;
            b[o + 5] = s.last_sect;
        }
        b
    }
}

/// A `BLKIF_OP_INDIRECT` request (`blkif_request_indirect`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndirectRequest {
    /// The real operation (read or write).
    pub indirect_op: u8,
    /// `nr_segments` as claimed (up to 65535).
    pub nr_segments: u16,
    /// `id`.
    pub id: u64,
    /// `sector_number`.
    pub sector: u64,
    /// `handle`.
    pub handle: u16,
    /// Grant references of the pages holding the segment lists (at most 8).
    pub indirect_grefs: Vec<u32>,
}

impl IndirectRequest {
    /// The slot's bytes: operation, indirect_op, nr_segments, pad, id,
    /// sector, handle, pad, the indirect grant refs.
    pub fn encode(&self) -> [u8; REQ_SIZE] {
        let mut b = [0u8; REQ_SIZE];
        b[0] = OP_INDIRECT;
        b[1] = self.indirect_op;
        b[2..4].copy_from_slice(&self.nr_segments.to_le_bytes());
        b[8..16].copy_from_slice(&self.id.to_le_bytes());
        b[16..24].copy_from_slice(&self.sector.to_le_bytes());
        b[24..26].copy_from_slice(&self.handle.to_le_bytes());
        for (i, g) in self
            .indirect_grefs
            .iter()
            .take(MAX_INDIRECT_PAGES)
            .enumerate()
        {
            let o = 28 + i * 4;
            b[o..o + 4].copy_from_slice(&g.to_le_bytes());
        }
        b
    }
}

/// A `blkif_response` read from a ring slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// The request's `id`.
    pub id: u64,
    /// The request's operation.
    pub op: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}

impl Response {
    /// Decode the first 16 bytes of a slot (id, operation, pad, status).
    pub fn decode(b: &[u8]) -> Option<Self> {
        let id = u64::from_le_bytes(b.get(0..8)?.try_into().ok()?);
        let op = *b.get(8)?;
        let status = i16::from_le_bytes(b.get(10..12)?.try_into().ok()?);
        Some(Self { id, op, status })
    }
}

/// `BLKIF_RSP_*` as text.
pub fn status_name(status: i16) -> &'static str {
    match status {
        RSP_OKAY => "BLKIF_RSP_OKAY",
        RSP_ERROR => "BLKIF_RSP_ERROR",
        RSP_EOPNOTSUPP => "BLKIF_RSP_EOPNOTSUPP",
        _ => "unknown status",
    }
}

/// What a case observed: the part of its report line after `<case>: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered the request.
    Answered(i16),
    /// The backend answered, but not with the request's id or operation.
    AnsweredWrong(Response),
    /// The backend went to Closing/Closed (`state`) instead of serving.
    Closed(u32),
    /// The backend connected (state 4) to the ring it was given.
    Connected,
    /// No answer or state change within the time allowed.
    Nothing(u64),
    /// The frontend side failed before the attack (not a backend result).
    LocalError(String),
    /// Free text (flood counts and the like).
    Text(String),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Answered(RSP_OKAY) => f.write_str("backend answered OKAY"),
            Outcome::Answered(s) => {
                write!(f, "backend answered error status {s} ({})", status_name(*s))
            }
            Outcome::AnsweredWrong(r) => write!(
                f,
                "backend answered a response for id {} op {} status {}",
                r.id, r.op, r.status
            ),
            Outcome::Closed(s) => write!(f, "backend closed the device (state {s})"),
            Outcome::Connected => f.write_str("backend connected"),
            Outcome::Nothing(secs) => write!(f, "nothing (no answer in {secs} s)"),
            Outcome::LocalError(e) => write!(f, "local error: {e}"),
            Outcome::Text(t) => f.write_str(t),
        }
    }
}

/// The attack cases, in the order they run, with a line of help each.
pub const CASES: &[(&str, &str)] = &[
    (
        "good-read",
        "baseline: read 8 sectors at 0 into a granted page (must be OKAY)",
    ),
    (
        "ring-ref-beyond-table",
        "connect with ring-ref 0xfffff0, beyond any grant table",
    ),
    (
        "ring-ref-not-granted",
        "connect with a ring-ref that was granted and then revoked",
    ),
    (
        "ring-ref-other-domain",
        "connect with a ring page granted to another domain",
    ),
    (
        "ring-ref-read-only",
        "connect with a ring page granted read-only",
    ),
    (
        "event-channel-unbound",
        "connect with an event channel port that was closed",
    ),
    (
        "event-channel-other-domain",
        "connect with a port offered to another domain",
    ),
    ("protocol-unknown", "connect with protocol \"x86_99-abi\""),
    ("gref-beyond-table", "read into grant ref 0xfffff0"),
    ("gref-not-granted", "read into a revoked grant ref"),
    (
        "gref-other-domain",
        "read into a page granted to another domain",
    ),
    (
        "gref-read-only",
        "read (the backend writes) into a read-only grant",
    ),
    (
        "write-from-read-only",
        "write from a read-only grant (allowed: must be OKAY)",
    ),
    ("nr-segments-zero", "read with nr_segments 0"),
    ("nr-segments-12", "read with nr_segments 12 (limit 11)"),
    ("nr-segments-255", "read with nr_segments 255"),
    (
        "segment-sectors-reversed",
        "a segment with first_sect 7 > last_sect 0",
    ),
    (
        "segment-sectors-past-page",
        "a segment with last_sect 8 (a page has 0..7)",
    ),
    (
        "sector-past-end",
        "read 8 sectors starting at the disk's last sector + 1",
    ),
    (
        "sector-wraps",
        "read at sector 2^64 - 4 (start + length wraps)",
    ),
    ("unknown-operation", "operation 200"),
    (
        "indirect-over-limit",
        "indirect read with nr_segments 65535",
    ),
    (
        "indirect-bad-gref",
        "indirect read of 16 segments, indirect page ref 0xfffff0",
    ),
    (
        "notify-flood",
        "20000 notifications with nothing queued, then a good read",
    ),
    (
        "req-prod-past-ring",
        "req_prod 1000 past rsp_prod (the ring holds 32)",
    ),
    (
        "good-read-after",
        "reconnect and read 8 sectors at 0 again (must be OKAY)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_geometry() {
        assert_eq!(slot_offset(0), 64);
        assert_eq!(slot_offset(1), 176);
        assert_eq!(slot_offset(RING_SIZE), 64);
        // The last slot ends inside the page; one more would not fit a power of 2.
        assert!(slot_offset(RING_SIZE - 1) + REQ_SIZE <= 4096);
        assert!(RING_HEADER + 2 * RING_SIZE as usize * REQ_SIZE > 4096);
    }

    #[test]
    fn rw_request_layout() {
        let r = RwRequest {
            op: OP_WRITE,
            nr_segments: 2,
            handle: 51712,
            id: 0x1122_3344_5566_7788,
            sector: 0x0102_0304_0506_0708,
            segs: vec![
                Segment::page(0xabcd),
                Segment {
                    gref: 7,
                    first_sect: 1,
                    last_sect: 3,
                },
            ],
        };
        let b = r.encode();
        assert_eq!(&b[0..4], &[1, 2, 0x00, 0xca]);
        assert_eq!(&b[4..8], &[0; 4]);
        assert_eq!(&b[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[16..24], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&b[24..32], &[0xcd, 0xab, 0, 0, 0, 7, 0, 0]);
        assert_eq!(&b[32..40], &[7, 0, 0, 0, 1, 3, 0, 0]);
        assert!(b[40..].iter().all(|&x| x == 0));
    }

    #[test]
    fn rw_request_keeps_at_most_eleven_segments() {
        let r = RwRequest {
            op: OP_READ,
            nr_segments: 255,
            handle: 0,
            id: 0,
            sector: 0,
            segs: vec![Segment::page(0xffff_ffff); 20],
        };
        let b = r.encode();
        assert_eq!(b[1], 255);
        assert!(b[24..24 + 88].chunks(8).all(|c| c[..4] == [0xff; 4]));
    }

    #[test]
    fn indirect_request_layout() {
        let r = IndirectRequest {
            indirect_op: OP_READ,
            nr_segments: 0xffff,
            id: 9,
            sector: 10,
            handle: 3,
            indirect_grefs: vec![0x11, 0x22],
        };
        let b = r.encode();
        assert_eq!(&b[0..4], &[OP_INDIRECT, OP_READ, 0xff, 0xff]);
        assert_eq!(b[8], 9);
        assert_eq!(b[16], 10);
        assert_eq!(&b[24..28], &[3, 0, 0, 0]);
        assert_eq!(&b[28..36], &[0x11, 0, 0, 0, 0x22, 0, 0, 0]);
    }

    #[test]
    fn response_decoding_and_text() {
        let mut b = [0u8; 16];
        b[0] = 5;
        b[8] = OP_READ;
        b[10..12].copy_from_slice(&(-1i16).to_le_bytes());
        let r = Response::decode(&b).unwrap();
        assert_eq!(
            r,
            Response {
                id: 5,
                op: OP_READ,
                status: RSP_ERROR
            }
        );
        assert!(Response::decode(&b[..11]).is_none());
        assert_eq!(
            Outcome::Answered(RSP_ERROR).to_string(),
            "backend answered error status -1 (BLKIF_RSP_ERROR)"
        );
        assert_eq!(Outcome::Answered(0).to_string(), "backend answered OKAY");
        assert_eq!(
            Outcome::Closed(5).to_string(),
            "backend closed the device (state 5)"
        );
        assert_eq!(
            Outcome::Nothing(5).to_string(),
            "nothing (no answer in 5 s)"
        );
    }

    #[test]
    fn case_names_are_unique_and_plain() {
        let mut names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
        assert!(names.iter().all(|n| {
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        }));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
    }
}
