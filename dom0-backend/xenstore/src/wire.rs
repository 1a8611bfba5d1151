//! xenstore wire codec: messages (16-byte header + payload), a stream
//! decoder for byte streams (Unix socket, `/dev/xen/xenbus`, a ring), and
//! the payload helpers (NUL-separated strings) both ends use.
//!
//! Invariants: a decoded message never has a payload longer than
//! [`XENSTORE_PAYLOAD_MAX`]; a header announcing more is a
//! [`WireError::TooLong`] (the peer is out of sync and must be dropped).
//! Nothing here panics on peer input.

use xen_abi::xenstore::{XENSTORE_PAYLOAD_MAX, XS_ERROR, XSD_SOCKMSG_SIZE, XsError};

/// One xenstore message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// `XS_*` type.
    pub ty: u32,
    /// Request id (echoed in replies).
    pub req_id: u32,
    /// Transaction id (0 = none).
    pub tx_id: u32,
    /// Payload bytes.
    pub payload: Vec<u8>,
}

/// A framing error: the stream cannot be resynchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The header announced a payload longer than `XENSTORE_PAYLOAD_MAX`.
    TooLong(u32),
}

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WireError::TooLong(n) => write!(
                f,
                "message payload of {n} bytes exceeds {XENSTORE_PAYLOAD_MAX}"
            ),
        }
    }
}

impl Msg {
    /// A message with this type, ids and payload.
    pub fn new(ty: u32, req_id: u32, tx_id: u32, payload: Vec<u8>) -> Msg {
        Msg {
            ty,
            req_id,
            tx_id,
            payload,
        }
    }

    /// An `XS_ERROR` reply to `req` carrying `err`.
    pub fn error_reply(req: &Msg, err: XsError) -> Msg {
        let mut payload = err.name().as_bytes().to_vec();
        payload.push(0);
        Msg::new(XS_ERROR, req.req_id, req.tx_id, payload)
    }

    /// A reply to `req` with the same type and ids.
    pub fn reply(req: &Msg, payload: Vec<u8>) -> Msg {
        Msg::new(req.ty, req.req_id, req.tx_id, payload)
    }

    /// Header + payload as sent on the wire (little endian).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(XSD_SOCKMSG_SIZE + self.payload.len());
        out.extend_from_slice(&self.ty.to_le_bytes());
        out.extend_from_slice(&self.req_id.to_le_bytes());
        out.extend_from_slice(&self.tx_id.to_le_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.payload);
        out
    }

    /// If this is an `XS_ERROR` message, the error it names (unknown names
    /// are `EINVAL`, as libxenstore does).
    pub fn as_error(&self) -> Option<XsError> {
        if self.ty != XS_ERROR {
            return None;
        }
        let name = self.payload.split(|&b| b == 0).next().unwrap_or(&[]);
        Some(XsError::from_name(name).unwrap_or(XsError::EINVAL))
    }
}

/// Reassembles messages from a byte stream. Feed bytes with [`push`],
/// take complete messages with [`next_msg`]. [`wanted`] says how many more
/// bytes the message being assembled needs (ring readers take no more than
/// that, so a connection can stop between messages).
///
/// [`push`]: Decoder::push
/// [`next_msg`]: Decoder::next_msg
/// [`wanted`]: Decoder::wanted
#[derive(Default, Debug)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Appends stream bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes still needed to complete the message being assembled (a
    /// header first, then its payload). 0 if a full message is buffered.
    pub fn wanted(&self) -> usize {
        if self.buf.len() < XSD_SOCKMSG_SIZE {
            return XSD_SOCKMSG_SIZE - self.buf.len();
        }
        let len = header_len(&self.buf).min(XENSTORE_PAYLOAD_MAX as u32) as usize;
        (XSD_SOCKMSG_SIZE + len).saturating_sub(self.buf.len())
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or
    /// an error if the stream is unusable.
    pub fn next_msg(&mut self) -> Result<Option<Msg>, WireError> {
        if self.buf.len() < XSD_SOCKMSG_SIZE {
            return Ok(None);
        }
        let len = header_len(&self.buf);
        if len as usize > XENSTORE_PAYLOAD_MAX {
            return Err(WireError::TooLong(len));
        }
        let total = XSD_SOCKMSG_SIZE + len as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        let word = |i: usize| {
            u32::from_le_bytes([
                self.buf[i],
                self.buf[i + 1],
                self.buf[i + 2],
                self.buf[i + 3],
            ])
        };
        let msg = Msg::new(
            word(0),
            word(4),
            word(8),
            self.buf[XSD_SOCKMSG_SIZE..total].to_vec(),
        );
        self.buf.drain(..total);
        Ok(Some(msg))
    }
}

fn header_len(buf: &[u8]) -> u32 {
    u32::from_le_bytes([buf[12], buf[13], buf[14], buf[15]])
}

/// The NUL-terminated strings of a payload, as C xenstored's
/// `get_strings`: bytes after the last NUL are not a string.
pub fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = payload;
    while let Some(pos) = rest.iter().position(|&b| b == 0) {
        out.push(&rest[..pos]);
        rest = &rest[pos + 1..];
    }
    out
}

/// The payload as exactly one NUL-terminated UTF-8 string (C's `onearg`):
/// `None` if it is empty, has a NUL before the end, lacks the final NUL,
/// or is not UTF-8.
pub fn one_arg(payload: &[u8]) -> Option<&str> {
    let (last, body) = payload.split_last()?;
    if *last != 0 || body.contains(&0) {
        return None;
    }
    core::str::from_utf8(body).ok()
}

/// Joins strings as a NUL-separated payload, each string NUL-terminated.
pub fn join<S: AsRef<[u8]>>(parts: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p.as_ref());
        out.push(0);
    }
    out
}

/// C `atoi` on a byte string: optional spaces, sign, then digits; stops at
/// the first non-digit; garbage gives 0. Wraps like a C int would not, but
/// saturates instead (no UB, no panic).
pub fn atoi(s: &[u8]) -> i64 {
    let mut i = 0;
    while i < s.len() && (s[i] == b' ' || (b'\t'..=b'\r').contains(&s[i])) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let mut v: i64 = 0;
    while i < s.len() && s[i].is_ascii_digit() {
        v = v.saturating_mul(10).saturating_add(i64::from(s[i] - b'0'));
        i += 1;
    }
    if neg { -v } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::xenstore::{XS_READ, XS_WRITE};

    #[test]
    fn encode_decode_round_trip_in_pieces() {
        let m = Msg::new(XS_WRITE, 9, 3, b"/a\0value".to_vec());
        let bytes = m.encode();
        assert_eq!(&bytes[..4], &[11, 0, 0, 0]);
        assert_eq!(&bytes[12..16], &[8, 0, 0, 0]);
        let mut d = Decoder::new();
        for b in &bytes {
            assert_eq!(d.next_msg(), Ok(None));
            d.push(core::slice::from_ref(b));
        }
        assert_eq!(d.wanted(), 0);
        assert_eq!(d.next_msg(), Ok(Some(m)));
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.wanted(), 16);
    }

    #[test]
    fn two_messages_in_one_push() {
        let a = Msg::new(XS_READ, 1, 0, b"/a\0".to_vec());
        let b = Msg::new(XS_READ, 2, 0, vec![]);
        let mut bytes = a.encode();
        bytes.extend(b.encode());
        let mut d = Decoder::new();
        d.push(&bytes);
        assert_eq!(d.next_msg(), Ok(Some(a)));
        assert_eq!(d.next_msg(), Ok(Some(b)));
        assert_eq!(d.next_msg(), Ok(None));
    }

    #[test]
    fn oversized_header_is_an_error() {
        let mut d = Decoder::new();
        let mut h = Msg::new(XS_READ, 1, 0, vec![]).encode();
        h[12..16].copy_from_slice(&4097u32.to_le_bytes());
        d.push(&h);
        assert_eq!(d.next_msg(), Err(WireError::TooLong(4097)));
        // wanted() stays bounded even for a hostile header.
        assert!(d.wanted() <= 4096 + 16);
        let mut ok = Msg::new(XS_READ, 1, 0, vec![]).encode();
        ok[12..16].copy_from_slice(&4096u32.to_le_bytes());
        let mut d = Decoder::new();
        d.push(&ok);
        assert_eq!(d.next_msg(), Ok(None));
        assert_eq!(d.wanted(), 4096);
    }

    #[test]
    fn strings_and_one_arg() {
        assert_eq!(strings(b"a\0bc\0tail"), vec![&b"a"[..], &b"bc"[..]]);
        assert_eq!(strings(b""), Vec::<&[u8]>::new());
        assert_eq!(one_arg(b"/x\0"), Some("/x"));
        assert_eq!(one_arg(b"/x"), None);
        assert_eq!(one_arg(b"/x\0y\0"), None);
        assert_eq!(one_arg(b""), None);
        assert_eq!(one_arg(b"\xff\0"), None);
        assert_eq!(join(&["a", "b"]), b"a\0b\0");
    }

    #[test]
    fn error_reply_and_parse() {
        let req = Msg::new(XS_READ, 5, 2, b"/x\0".to_vec());
        let e = Msg::error_reply(&req, XsError::ENOENT);
        assert_eq!(e.payload, b"ENOENT\0");
        assert_eq!((e.req_id, e.tx_id), (5, 2));
        assert_eq!(e.as_error(), Some(XsError::ENOENT));
        assert_eq!(
            Msg::new(XS_ERROR, 0, 0, b"EWEIRD\0".to_vec()).as_error(),
            Some(XsError::EINVAL)
        );
        assert_eq!(req.as_error(), None);
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi(b"12"), 12);
        assert_eq!(atoi(b" 7x"), 7);
        assert_eq!(atoi(b"-3"), -3);
        assert_eq!(atoi(b"abc"), 0);
        assert_eq!(atoi(b"99999999999999999999999"), i64::MAX);
    }
}
