//! The console ring protocol, backend side (Xen's `buffer_append` and `handle_tty_read`),
//! over any [`RingMem`]: the guest's mapped page in the daemon, a plain byte array in tests.
//!
//! The page is shared with the guest, which may change it at any moment: every index is
//! read exactly once per operation, checked with [`xen_abi::console::ring_used`] (an
//! impossible `prod - cons` means the ring is ignored: [`BadRing`]), and bytes are read
//! only after a fence following the producer index read, indexes written only after a
//! fence following the byte copies. The peer's numbers never index anything unmasked.

use core::sync::atomic::{Ordering, fence};
use xen_abi::console::{
    OFF_IN, OFF_IN_CONS, OFF_IN_PROD, OFF_OUT, OFF_OUT_CONS, OFF_OUT_PROD, XENCONS_IN_SIZE,
    XENCONS_OUT_SIZE, mask_in, mask_out, ring_used,
};

/// Byte-level access to a console ring page (at least 3088 bytes). Implementations read
/// and write the memory itself every time (no caching): the guest changes it concurrently.
pub trait RingMem {
    /// The little-endian `u32` at byte `off`.
    fn load_u32(&self, off: usize) -> u32;
    /// Store `v` little-endian at byte `off`.
    fn store_u32(&mut self, off: usize, v: u32);
    /// Copy `buf.len()` bytes from byte `off` into `buf`.
    fn read(&self, off: usize, buf: &mut [u8]);
    /// Copy `data` to byte `off`.
    fn write(&mut self, off: usize, data: &[u8]);
}

/// The guest's indexes of one ring are impossible (`prod - cons` larger than the ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRing {
    /// `"out"` (guest output) or `"in"` (guest input).
    pub ring: &'static str,
    /// The consumer index read.
    pub cons: u32,
    /// The producer index read.
    pub prod: u32,
}

impl core::fmt::Display for BadRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "console {} ring indexes are impossible (cons {:#x}, prod {:#x}): ring ignored",
            self.ring, self.cons, self.prod
        )
    }
}

/// Move everything the guest wrote to its `out` ring to the end of `sink` and advance
/// `out_cons`. Returns the number of bytes moved (0: nothing new, no index written).
pub fn take_output(mem: &mut impl RingMem, sink: &mut Vec<u8>) -> Result<usize, BadRing> {
    let cons = mem.load_u32(OFF_OUT_CONS);
    let prod = mem.load_u32(OFF_OUT_PROD);
    fence(Ordering::Acquire); // the bytes before prod are written before prod
    let used = ring_used(cons, prod, XENCONS_OUT_SIZE).ok_or(BadRing {
        ring: "out",
        cons,
        prod,
    })? as usize;
    if used == 0 {
        return Ok(0);
    }
    let start = sink.len();
    sink.resize(start + used, 0);
    // At most two pieces: up to the end of the ring, then from its start.
    let first = used.min(XENCONS_OUT_SIZE as usize - mask_out(cons));
    mem.read(OFF_OUT + mask_out(cons), &mut sink[start..start + first]);
    mem.read(OFF_OUT, &mut sink[start + first..]);
    fence(Ordering::SeqCst); // the bytes are read before the guest may reuse them
    mem.store_u32(OFF_OUT_CONS, prod);
    Ok(used)
}

/// Room in the guest's `in` ring (Xen's `ring_free_bytes`).
pub fn input_room(mem: &impl RingMem) -> Result<usize, BadRing> {
    let cons = mem.load_u32(OFF_IN_CONS);
    let prod = mem.load_u32(OFF_IN_PROD);
    let used = ring_used(cons, prod, XENCONS_IN_SIZE).ok_or(BadRing {
        ring: "in",
        cons,
        prod,
    })?;
    Ok((XENCONS_IN_SIZE - used) as usize)
}

/// Put as much of `data` as fits into the guest's `in` ring and advance `in_prod`.
/// Returns the number of bytes written (the rest did not fit).
pub fn put_input(mem: &mut impl RingMem, data: &[u8]) -> Result<usize, BadRing> {
    let cons = mem.load_u32(OFF_IN_CONS);
    let prod = mem.load_u32(OFF_IN_PROD);
    fence(Ordering::SeqCst); // the guest has finished reading what lies before cons
    let used = ring_used(cons, prod, XENCONS_IN_SIZE).ok_or(BadRing {
        ring: "in",
        cons,
        prod,
    })?;
    let n = data.len().min((XENCONS_IN_SIZE - used) as usize);
    if n == 0 {
        return Ok(0);
    }
    let first = n.min(XENCONS_IN_SIZE as usize - mask_in(prod));
    mem.write(OFF_IN + mask_in(prod), &data[..first]);
    mem.write(OFF_IN, &data[first..n]);
    fence(Ordering::Release); // the bytes are visible before the index that publishes them
    mem.store_u32(OFF_IN_PROD, prod.wrapping_add(n as u32));
    Ok(n)
}

/// A ring page in plain memory (tests, and anything that is not shared).
impl RingMem for [u8] {
    fn load_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self[off..off + 4]);
        u32::from_le_bytes(b)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        self[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self[off..off + buf.len()]);
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self[off..off + data.len()].copy_from_slice(data);
    }
}

impl RingMem for Vec<u8> {
    fn load_u32(&self, off: usize) -> u32 {
        self.as_slice().load_u32(off)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        self.as_mut_slice().store_u32(off, v)
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        self.as_slice().read(off, buf)
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self.as_mut_slice().write(off, data)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The guest side of a ring page, for tests: what Linux's hvc_xen does.
    pub(crate) fn guest_write(page: &mut [u8], data: &[u8]) -> usize {
        let cons = page.load_u32(OFF_OUT_CONS);
        let prod = page.load_u32(OFF_OUT_PROD);
        let room = XENCONS_OUT_SIZE as usize - prod.wrapping_sub(cons) as usize;
        let n = data.len().min(room);
        for (i, &b) in data[..n].iter().enumerate() {
            page[OFF_OUT + mask_out(prod.wrapping_add(i as u32))] = b;
        }
        page.store_u32(OFF_OUT_PROD, prod.wrapping_add(n as u32));
        n
    }

    pub(crate) fn guest_read(page: &mut [u8]) -> Vec<u8> {
        let cons = page.load_u32(OFF_IN_CONS);
        let prod = page.load_u32(OFF_IN_PROD);
        let out: Vec<u8> = (0..prod.wrapping_sub(cons))
            .map(|i| page[OFF_IN + mask_in(cons.wrapping_add(i))])
            .collect();
        page.store_u32(OFF_IN_CONS, prod);
        out
    }

    fn page() -> Vec<u8> {
        vec![0u8; 4096]
    }

    #[test]
    fn output_moves_to_the_sink_and_advances_cons() {
        let mut p = page();
        assert_eq!(guest_write(&mut p, b"hello\n"), 6);
        let mut sink = b"old".to_vec();
        assert_eq!(take_output(&mut p, &mut sink), Ok(6));
        assert_eq!(sink, b"oldhello\n");
        assert_eq!(p.load_u32(OFF_OUT_CONS), 6);
        assert_eq!(take_output(&mut p, &mut sink), Ok(0));
        assert_eq!(sink, b"oldhello\n");
    }

    #[test]
    fn output_wraps_around_the_ring_and_the_index_space() {
        let mut p = page();
        let start = u32::MAX - 100; // free-running indexes wrap at 2^32 too
        p.store_u32(OFF_OUT_CONS, start);
        p.store_u32(OFF_OUT_PROD, start);
        let data: Vec<u8> = (0..2048u32).map(|i| (i % 251) as u8).collect();
        assert_eq!(guest_write(&mut p, &data), 2048);
        assert_eq!(guest_write(&mut p, b"x"), 0, "ring full");
        let mut sink = Vec::new();
        assert_eq!(take_output(&mut p, &mut sink), Ok(2048));
        assert_eq!(sink, data);
        assert_eq!(p.load_u32(OFF_OUT_CONS), start.wrapping_add(2048));
    }

    #[test]
    fn hostile_output_indexes_are_refused_and_nothing_moves() {
        let mut p = page();
        p.store_u32(OFF_OUT_CONS, 10);
        p.store_u32(OFF_OUT_PROD, 10 + 2049);
        let mut sink = Vec::new();
        let e = take_output(&mut p, &mut sink).unwrap_err();
        assert_eq!(
            e,
            BadRing {
                ring: "out",
                cons: 10,
                prod: 2059
            }
        );
        assert!(sink.is_empty());
        assert_eq!(p.load_u32(OFF_OUT_CONS), 10, "cons untouched");
        // prod behind cons
        p.store_u32(OFF_OUT_PROD, 9);
        assert!(take_output(&mut p, &mut sink).is_err());
        assert!(e.to_string().contains("ring ignored"), "{e}");
    }

    #[test]
    fn input_fills_up_to_the_room_left() {
        let mut p = page();
        assert_eq!(input_room(&p), Ok(1024));
        let data = vec![b'a'; 1000];
        assert_eq!(put_input(&mut p, &data), Ok(1000));
        assert_eq!(input_room(&p), Ok(24));
        assert_eq!(
            put_input(&mut p, b"0123456789012345678901234567890"),
            Ok(24)
        );
        assert_eq!(put_input(&mut p, b"more"), Ok(0));
        let got = guest_read(&mut p);
        assert_eq!(got.len(), 1024);
        assert_eq!(&got[1000..], b"012345678901234567890123");
        // wraps: prod is now at 1024, ring position 0 again
        assert_eq!(put_input(&mut p, b"wrap"), Ok(4));
        assert_eq!(guest_read(&mut p), b"wrap");
    }

    #[test]
    fn hostile_input_indexes_are_refused() {
        let mut p = page();
        p.store_u32(OFF_IN_CONS, 5000);
        p.store_u32(OFF_IN_PROD, 0); // prod - cons wraps to a huge count
        assert!(input_room(&p).is_err());
        assert!(put_input(&mut p, b"x").is_err());
        assert_eq!(p.load_u32(OFF_IN_PROD), 0);
        assert_eq!(&p[OFF_IN..OFF_IN + 1024], &[0u8; 1024][..]);
    }
}
