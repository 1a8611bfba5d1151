//! Reading the hypervisor's console ring whole (`xl dmesg`; libxl's console reader over
//! `xc_readconsolering`): `sysctl readconsole` calls with `incremental` set, the first from
//! index 0 (the oldest byte the ring holds), each next one from the index the last returned,
//! until one returns nothing. [`read_ring`] is that loop, apart from the hypercall
//! ([`crate::Xc::read_console_ring`]), so it runs on the host against a model of the ring.
//!
//! Clearing: `readconsole` with `clear` forgets the ring up to where its copy stopped (oxen
//! and Xen; an oxen before 2026-12-07 emptied the whole ring), so a read with `clear` is made
//! only once the reads without it have found the end; it returns what was logged in between,
//! and nothing is cleared that was not read, whatever the ring's size.
//!
//! Invariant: at most [`MAX_TOTAL`] bytes plus one last clearing read are collected, so a ring
//! that fills as fast as it is read (or a hypervisor whose index does not advance) ends the
//! loop.

/// Bytes one `readconsole` call asks for: Xen's default ring size, libxl's reader buffer.
pub const READ_CHUNK: u32 = 16 * 1024;

/// Bytes after which [`read_ring`] stops reading without `clear` (64 rings of Xen's default
/// size).
pub const MAX_TOTAL: usize = 64 * READ_CHUNK as usize;

/// The whole console ring, oldest byte first. `read(index, clear)` is one `readconsole`
/// call with `incremental` set from `index`, returning the bytes copied (empty: nothing
/// more) and the index to continue from. With `clear`, a last read with `clear` set clears
/// the ring up to where it stopped, and its bytes are appended (see the module docs). The
/// first error ends the reading and is returned (nothing cleared unless the clearing read
/// itself failed after).
pub fn read_ring<E>(
    mut read: impl FnMut(u32, bool) -> Result<(Vec<u8>, u32), E>,
    clear: bool,
) -> Result<Vec<u8>, E> {
    let mut out = Vec::new();
    let mut index = 0u32;
    while out.len() < MAX_TOTAL {
        let (bytes, next) = read(index, false)?;
        if bytes.is_empty() {
            break;
        }
        out.extend_from_slice(&bytes);
        index = next;
    }
    if clear {
        let (bytes, _) = read(index, true)?;
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// oxen's ring (`hypervisor/src/console.rs` + `sysctl.rs`): `size` bytes kept, `prod`
    /// counts every byte written, `cons` is where a clear left off; a read copies up to
    /// `count` bytes from `max(index, oldest)`, and `clear` forgets up to where it stopped.
    struct Ring {
        size: usize,
        buf: Vec<u8>,
        prod: u64,
        cons: u64,
        /// Bytes asked per read.
        count: usize,
        /// (index, clear) of every read.
        calls: Vec<(u32, bool)>,
        /// Written after each read (a hypervisor logging while it is read).
        log_per_read: Vec<u8>,
    }

    impl Ring {
        fn new(size: usize, count: usize) -> Ring {
            Ring {
                size,
                buf: vec![0; size],
                prod: 0,
                cons: 0,
                count,
                calls: Vec::new(),
                log_per_read: Vec::new(),
            }
        }

        fn write(&mut self, s: &[u8]) {
            for &b in s {
                self.buf[(self.prod % self.size as u64) as usize] = b;
                self.prod += 1;
            }
        }

        fn read(&mut self, index: u32, clear: bool) -> Result<(Vec<u8>, u32), String> {
            self.calls.push((index, clear));
            let oldest = self.cons.max(self.prod.saturating_sub(self.size as u64));
            let mut pos = u64::from(index).max(oldest);
            let mut out = Vec::new();
            while pos < self.prod && out.len() < self.count {
                out.push(self.buf[(pos % self.size as u64) as usize]);
                pos += 1;
            }
            if clear {
                self.cons = self.cons.max(pos);
            }
            let more = self.log_per_read.clone();
            self.write(&more);
            Ok((out, pos as u32))
        }
    }

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("(oxen) line {i}\n").into_bytes())
            .collect()
    }

    #[test]
    fn reads_in_chunks_until_a_read_returns_nothing() {
        let text = lines(100); // 1,490 bytes
        let mut r = Ring::new(16 * 1024, 500);
        r.write(&text);
        let got = read_ring(|i, c| r.read(i, c), false).unwrap();
        assert_eq!(got, text);
        assert_eq!(
            r.calls,
            [(0, false), (500, false), (1000, false), (1490, false)]
        );
        // Nothing cleared: a second reading gets the same.
        assert_eq!(read_ring(|i, c| r.read(i, c), false).unwrap(), text);
    }

    #[test]
    fn an_empty_ring_is_one_read() {
        let mut r = Ring::new(1024, 512);
        assert_eq!(read_ring(|i, c| r.read(i, c), false).unwrap(), b"");
        assert_eq!(r.calls, [(0, false)]);
    }

    #[test]
    fn a_wrapped_ring_gives_its_newest_bytes_oldest_first() {
        let text = lines(200);
        let mut r = Ring::new(1024, 300);
        r.write(&text);
        let got = read_ring(|i, c| r.read(i, c), false).unwrap();
        assert_eq!(got, text[text.len() - 1024..]);
    }

    #[test]
    fn clear_reads_everything_first_then_clears_once() {
        let text = lines(100);
        // Smaller chunks than the ring: the ring is read to its end before the one clear.
        let mut r = Ring::new(4096, 256);
        r.write(&text);
        let got = read_ring(|i, c| r.read(i, c), true).unwrap();
        assert_eq!(got, text);
        let (last, rest) = r.calls.split_last().unwrap();
        assert_eq!(*last, (text.len() as u32, true));
        assert!(rest.iter().all(|&(_, c)| !c), "{:?}", r.calls);
        // Cleared: nothing left, and what is logged afterwards is read.
        assert_eq!(read_ring(|i, c| r.read(i, c), false).unwrap(), b"");
        r.write(b"(oxen) after\n");
        assert_eq!(
            read_ring(|i, c| r.read(i, c), false).unwrap(),
            b"(oxen) after\n"
        );
    }

    #[test]
    fn what_is_logged_before_the_clearing_read_is_returned_not_lost() {
        let mut r = Ring::new(4096, 4096);
        r.write(b"(oxen) one\n");
        let mut n = 0;
        let got = read_ring(
            |i, c| {
                n += 1;
                let v = r.read(i, c);
                // Between the read that found the end and the clearing read.
                if n == 2 {
                    r.write(b"(oxen) two\n");
                }
                v
            },
            true,
        )
        .unwrap();
        assert_eq!(got, b"(oxen) one\n(oxen) two\n");
        assert_eq!(read_ring(|i, c| r.read(i, c), false).unwrap(), b"");
    }

    #[test]
    fn a_ring_that_never_runs_dry_stops_at_the_cap() {
        let mut r = Ring::new(16 * 1024, 4096);
        r.log_per_read = vec![b'x'; 4096];
        r.write(&[b'x'; 4096]);
        let got = read_ring(|i, c| r.read(i, c), false).unwrap();
        assert_eq!(got.len(), MAX_TOTAL);
        // An index that never advances (every read from the start again).
        let mut calls = 0;
        let got = read_ring(
            |_, _| {
                calls += 1;
                Ok::<_, String>((vec![b'y'; 1000], 0))
            },
            false,
        )
        .unwrap();
        assert!(got.len() >= MAX_TOTAL && got.len() < MAX_TOTAL + 1000);
        assert_eq!(calls, MAX_TOTAL.div_ceil(1000));
    }

    #[test]
    fn an_error_ends_the_reading() {
        let mut n = 0;
        let e = read_ring(
            |_, clear| {
                n += 1;
                assert!(!clear, "no clearing read after an error");
                if n == 2 {
                    Err("sysctl readconsole: EFAULT (bad address)")
                } else {
                    Ok((b"abc".to_vec(), 3 * n))
                }
            },
            true,
        )
        .unwrap_err();
        assert_eq!(e, "sysctl readconsole: EFAULT (bad address)");
        assert_eq!(n, 2);
    }
}
