//! Access to a shared xenstore ring page (`xenstore_domain_interface`), for
//! the daemon (consumes `req`, produces `rsp`) and, for tests and guests,
//! the client side.
//!
//! The page is shared with another domain that may change it at any time,
//! so it is only ever touched through atomics (viewed safely with
//! zerocopy: bytes as `AtomicU8`, indexes as `AtomicU32`). Indexes are read
//! once per operation and checked (`prod - cons <= 1024`); a violation is
//! an error, never an out-of-bounds access. Data is copied before the
//! consumer index moves (acquire/release fences as Xen's `xen_mb`).

use core::sync::atomic::{AtomicU8, AtomicU32, Ordering, fence};

use xen_abi::xenstore::{
    OFF_CONNECTION, OFF_ERROR, OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD,
    OFF_SERVER_FEATURES, XENSTORE_RING_SIZE, mask_xenstore_idx,
};
use zerocopy::FromBytes;

/// The peer left the ring indexes inconsistent (`XENSTORE_ERROR_RINGIDX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIndexes {
    /// Consumer index read.
    pub cons: u32,
    /// Producer index read.
    pub prod: u32,
}

impl core::fmt::Display for BadIndexes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "bad ring indexes cons={:#x} prod={:#x}",
            self.cons, self.prod
        )
    }
}

const RING: usize = XENSTORE_RING_SIZE as usize;
const IDX_BASE: usize = OFF_REQ_CONS;
const IDX_WORDS: usize = 7;

/// A view of a ring page (at least 2076 bytes).
pub struct RingPage<'a> {
    req: &'a [AtomicU8],
    rsp: &'a [AtomicU8],
    idx: &'a [AtomicU32],
}

fn word(off: usize) -> usize {
    (off - IDX_BASE) / 4
}

impl<'a> RingPage<'a> {
    /// Views `page`; `None` if it is too small or misaligned.
    pub fn new(page: &'a mut [u8]) -> Option<RingPage<'a>> {
        if page.len() < IDX_BASE + IDX_WORDS * 4 {
            return None;
        }
        let (data, rest) = page.split_at_mut(IDX_BASE);
        let (req, rsp) = data.split_at_mut(RING);
        let req = <[AtomicU8]>::mut_from_bytes(req).ok()?;
        let rsp = <[AtomicU8]>::mut_from_bytes(rsp).ok()?;
        let idx = <[AtomicU32]>::mut_from_bytes(&mut rest[..IDX_WORDS * 4]).ok()?;
        Some(RingPage { req, rsp, idx })
    }

    fn load(&self, off: usize) -> u32 {
        self.idx[word(off)].load(Ordering::Acquire)
    }

    fn store(&self, off: usize, v: u32) {
        self.idx[word(off)].store(v, Ordering::Release)
    }

    /// Copies up to `buf.len()` bytes out of a ring; returns the count.
    fn consume(
        ring: &[AtomicU8],
        cons: u32,
        prod: u32,
        buf: &mut [u8],
    ) -> Result<usize, BadIndexes> {
        if prod.wrapping_sub(cons) > XENSTORE_RING_SIZE {
            return Err(BadIndexes { cons, prod });
        }
        let avail = prod.wrapping_sub(cons) as usize;
        let n = avail.min(buf.len());
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ring[mask_xenstore_idx(cons.wrapping_add(i as u32)) as usize]
                .load(Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Copies as much of `data` as fits into a ring; returns the count.
    fn produce(ring: &[AtomicU8], cons: u32, prod: u32, data: &[u8]) -> Result<usize, BadIndexes> {
        if prod.wrapping_sub(cons) > XENSTORE_RING_SIZE {
            return Err(BadIndexes { cons, prod });
        }
        let space = RING - prod.wrapping_sub(cons) as usize;
        let n = space.min(data.len());
        for (i, b) in data[..n].iter().enumerate() {
            ring[mask_xenstore_idx(prod.wrapping_add(i as u32)) as usize]
                .store(*b, Ordering::Relaxed);
        }
        Ok(n)
    }

    /// Daemon: reads request bytes (up to `buf.len()`), advancing `req_cons`.
    pub fn read_requests(&self, buf: &mut [u8]) -> Result<usize, BadIndexes> {
        let cons = self.load(OFF_REQ_CONS);
        let prod = self.load(OFF_REQ_PROD);
        fence(Ordering::SeqCst);
        let n = Self::consume(self.req, cons, prod, buf)?;
        fence(Ordering::SeqCst);
        self.store(OFF_REQ_CONS, cons.wrapping_add(n as u32));
        Ok(n)
    }

    /// Daemon: writes reply bytes (as many as fit), advancing `rsp_prod`.
    pub fn write_responses(&self, data: &[u8]) -> Result<usize, BadIndexes> {
        let cons = self.load(OFF_RSP_CONS);
        let prod = self.load(OFF_RSP_PROD);
        fence(Ordering::SeqCst);
        let n = Self::produce(self.rsp, cons, prod, data)?;
        fence(Ordering::SeqCst);
        self.store(OFF_RSP_PROD, prod.wrapping_add(n as u32));
        Ok(n)
    }

    /// Whether request bytes are waiting.
    pub fn requests_pending(&self) -> bool {
        self.load(OFF_REQ_CONS) != self.load(OFF_REQ_PROD)
    }

    /// Client: writes request bytes (as many as fit).
    pub fn write_requests(&self, data: &[u8]) -> Result<usize, BadIndexes> {
        let cons = self.load(OFF_REQ_CONS);
        let prod = self.load(OFF_REQ_PROD);
        fence(Ordering::SeqCst);
        let n = Self::produce(self.req, cons, prod, data)?;
        fence(Ordering::SeqCst);
        self.store(OFF_REQ_PROD, prod.wrapping_add(n as u32));
        Ok(n)
    }

    /// Client: reads reply bytes.
    pub fn read_responses(&self, buf: &mut [u8]) -> Result<usize, BadIndexes> {
        let cons = self.load(OFF_RSP_CONS);
        let prod = self.load(OFF_RSP_PROD);
        fence(Ordering::SeqCst);
        let n = Self::consume(self.rsp, cons, prod, buf)?;
        fence(Ordering::SeqCst);
        self.store(OFF_RSP_CONS, cons.wrapping_add(n as u32));
        Ok(n)
    }

    /// Sets all four indexes to 0 (C `domain_conn_reset`).
    pub fn reset(&self) {
        for off in [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD] {
            self.store(off, 0);
        }
        fence(Ordering::SeqCst);
    }

    /// `connection` field.
    pub fn connection(&self) -> u32 {
        self.load(OFF_CONNECTION)
    }

    /// Sets `connection`.
    pub fn set_connection(&self, v: u32) {
        self.store(OFF_CONNECTION, v)
    }

    /// `error` field.
    pub fn error(&self) -> u32 {
        self.load(OFF_ERROR)
    }

    /// Sets `error`.
    pub fn set_error(&self, v: u32) {
        self.store(OFF_ERROR, v)
    }

    /// `server_features` field.
    pub fn server_features(&self) -> u32 {
        self.load(OFF_SERVER_FEATURES)
    }

    /// Raw index values (req_cons, req_prod, rsp_cons, rsp_prod), for tests
    /// and diagnostics.
    pub fn indexes(&self) -> [u32; 4] {
        [
            self.load(OFF_REQ_CONS),
            self.load(OFF_REQ_PROD),
            self.load(OFF_RSP_CONS),
            self.load(OFF_RSP_PROD),
        ]
    }

    /// Overwrites an index (tests simulating a hostile peer).
    pub fn set_index(&self, which: usize, v: u32) {
        let off = [OFF_REQ_CONS, OFF_REQ_PROD, OFF_RSP_CONS, OFF_RSP_PROD][which.min(3)];
        self.store(off, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_wrap() {
        let mut page = vec![0u8; 4096];
        let r = RingPage::new(&mut page).unwrap();
        // Move indexes near the wrap point of u32.
        for i in 0..4 {
            r.set_index(i, u32::MAX - 5);
        }
        let data: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        assert_eq!(r.write_requests(&data), Ok(1000));
        assert!(r.requests_pending());
        let mut buf = vec![0u8; 1024];
        assert_eq!(r.read_requests(&mut buf[..10]), Ok(10));
        assert_eq!(r.read_requests(&mut buf[10..]), Ok(990));
        assert_eq!(&buf[..1000], &data[..]);
        assert!(!r.requests_pending());
        // Full ring: only 1024 fit.
        assert_eq!(r.write_responses(&[7u8; 2000]), Ok(1024));
        assert_eq!(r.write_responses(&[7u8; 1]), Ok(0));
        assert_eq!(r.read_responses(&mut buf), Ok(1024));
        assert!(buf.iter().all(|&b| b == 7));
    }

    #[test]
    fn bad_indexes_are_errors() {
        let mut page = vec![0u8; 4096];
        let r = RingPage::new(&mut page).unwrap();
        r.set_index(1, 5000); // req_prod far ahead of req_cons
        let mut buf = [0u8; 16];
        assert_eq!(
            r.read_requests(&mut buf),
            Err(BadIndexes {
                cons: 0,
                prod: 5000
            })
        );
        r.set_index(2, 100); // rsp_cons ahead of rsp_prod
        assert!(r.write_responses(b"x").is_err());
        assert!(RingPage::new(&mut [0u8; 100]).is_none());
    }

    #[test]
    fn layout_fields() {
        let mut page = vec![0u8; 4096];
        page[OFF_CONNECTION] = 1;
        let r = RingPage::new(&mut page).unwrap();
        assert_eq!(r.connection(), 1);
        r.set_connection(0);
        r.set_error(2);
        assert_eq!(r.error(), 2);
        assert_eq!(r.server_features(), 0);
        assert_eq!(page[OFF_ERROR], 2);
    }
}
