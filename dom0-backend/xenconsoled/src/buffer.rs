//! Guest output waiting for the pty (Xen's `struct buffer`): bytes are appended as they
//! leave the ring and consumed as the pty master accepts them.
//!
//! Invariants: `consumed <= data.len()`; with a limit `max` (`console/limit`, libxl writes
//! 1 MiB) and overflow set to discard, `data.len()` never stays above `5 * max / 4`: once it
//! does, the middle is dropped (the oldest `max - over` and the newest `over` bytes are
//! kept, `over = len - max`), as Xen's `--overflow-data=discard` (the default) does. With
//! overflow set to keep, the newest bytes beyond `5 * max / 4` are dropped instead.

/// What to do when the unconsumed output outgrows the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    /// Drop the middle of the data (Xen's default).
    Discard,
    /// Keep the oldest data, drop what comes after `5/4` of the limit.
    Keep,
}

/// Output for the pty; see the module docs.
#[derive(Debug)]
pub struct OutBuffer {
    data: Vec<u8>,
    consumed: usize,
    max: usize,
    overflow: Overflow,
}

impl OutBuffer {
    /// An empty buffer with limit `max` bytes (0: no limit).
    pub fn new(max: usize, overflow: Overflow) -> Self {
        Self {
            data: Vec::new(),
            consumed: 0,
            max,
            overflow,
        }
    }

    /// Change the limit (applied at the next [`OutBuffer::trim`]).
    pub fn set_limit(&mut self, max: usize) {
        self.max = max;
    }

    /// The backing vector, for appending (then call [`OutBuffer::trim`]).
    pub fn data_mut(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Apply the limit after an append.
    pub fn trim(&mut self) {
        let len = self.data.len();
        if self.max == 0 || len <= 5 * self.max / 4 {
            return;
        }
        match self.overflow {
            Overflow::Discard => {
                let over = len - self.max;
                // keep [0, max - over) and the newest `over` bytes
                self.data.drain(self.max - over..self.max);
                self.consumed = self.consumed.min(self.max - over);
            }
            Overflow::Keep => {
                self.data.truncate(5 * self.max / 4);
                self.consumed = self.consumed.min(self.data.len());
            }
        }
    }

    /// The bytes not yet written to the pty.
    pub fn pending(&self) -> &[u8] {
        &self.data[self.consumed..]
    }

    /// `n` more bytes were written to the pty; forget consumed data once all is.
    pub fn advance(&mut self, n: usize) {
        self.consumed = (self.consumed + n).min(self.data.len());
        if self.consumed == self.data.len() {
            self.consumed = 0;
            self.data.clear();
            if self.data.capacity() > 64 * 1024 {
                self.data.shrink_to(64 * 1024);
            }
        }
    }

    /// Nothing waits for the pty.
    pub fn is_empty(&self) -> bool {
        self.pending().is_empty()
    }

    /// Bytes held (consumed ones included until everything is consumed).
    pub fn len(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(b: &mut OutBuffer, bytes: &[u8]) {
        b.data_mut().extend_from_slice(bytes);
        b.trim();
    }

    #[test]
    fn consumed_bytes_are_forgotten_when_all_are_written() {
        let mut b = OutBuffer::new(0, Overflow::Discard);
        push(&mut b, b"hello");
        assert_eq!(b.pending(), b"hello");
        b.advance(2);
        assert_eq!(b.pending(), b"llo");
        push(&mut b, b"!");
        assert_eq!(b.pending(), b"llo!");
        b.advance(4);
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
        b.advance(10); // more than there is: harmless
        assert!(b.is_empty());
    }

    #[test]
    fn discard_drops_the_middle_past_five_quarters_of_the_limit() {
        let mut b = OutBuffer::new(8, Overflow::Discard);
        push(&mut b, b"0123456789"); // 10 == 5*8/4: still kept
        assert_eq!(b.pending(), b"0123456789");
        push(&mut b, b"A"); // 11 > 10: over = 3, keep [0,5) and the newest 3
        assert_eq!(b.pending(), b"0123489A");
        assert_eq!(b.len(), 8);
    }

    #[test]
    fn discard_keeps_the_consumed_mark_inside_the_data() {
        let mut b = OutBuffer::new(8, Overflow::Discard);
        push(&mut b, b"0123456789");
        b.advance(7);
        push(&mut b, b"A");
        assert_eq!(b.pending(), b"89A");
    }

    #[test]
    fn keep_drops_the_newest() {
        let mut b = OutBuffer::new(8, Overflow::Keep);
        push(&mut b, b"0123456789AB");
        assert_eq!(b.pending(), b"0123456789");
    }

    #[test]
    fn no_limit_keeps_everything() {
        let mut b = OutBuffer::new(0, Overflow::Discard);
        push(&mut b, &[7u8; 100_000]);
        assert_eq!(b.len(), 100_000);
    }
}
