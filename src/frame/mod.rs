//! Requests from bytes: pure, no socket, fuzzable on its own.
//!
//! [`next_request`] takes one request off the front of a buffer.
//! - `scan`: the common request (an array of bulk strings) framed in one
//!   pass, measured faster than the crate (`benches/server_path.rs`).
//! - `reference`: everything else, and the reference the scan is tested
//!   against: header checks against the size limits, then the
//!   redis-protocol crate's zero-copy decoder.
//! - `inline`: inline requests (what `telnet` sends), split on white space
//!   with Redis's quoting rules.

mod inline;
mod reference;
mod scan;

pub use inline::split_args;
pub use reference::multibulk_extent;
use scan::Scan;

use bytes::{Buf, Bytes, BytesMut};
use redis_protocol::resp2::types::RangeFrame;
use smallvec::SmallVec;

/// Most arguments in one request (as Redis).
const MAX_MULTIBULK: usize = 1024 * 1024;
/// Most arguments in one request before `AUTH` (as Redis).
const MAX_ARGS_BEFORE_AUTH: usize = 10;
/// Longest argument before `AUTH` (as Redis: 16 KiB).
const MAX_ARG_BYTES_BEFORE_AUTH: usize = 16 * 1024;
/// Input that cannot be a request; the connection answers it and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ERR Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn protocol_error(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// Size limits of one connection's input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most arguments in one request.
    pub max_args: usize,
    pub max_arg_bytes: usize,
    pub max_query_buffer_bytes: usize,
    /// Before `AUTH`: the errors say so (`unauthenticated bulk length`).
    pub unauthenticated: bool,
}

impl Limits {
    /// An authenticated client's limits: Redis's 1,048,576 arguments, and
    /// these sizes.
    pub const fn new(max_arg_bytes: usize, max_query_buffer_bytes: usize) -> Limits {
        Limits {
            max_args: MAX_MULTIBULK,
            max_arg_bytes,
            max_query_buffer_bytes,
            unauthenticated: false,
        }
    }

    /// The limits before `AUTH`, as Redis's: at most 10 arguments of at
    /// most 16 KiB each; anything larger closes the connection at once.
    pub fn before_auth(self) -> Limits {
        Limits {
            max_args: MAX_ARGS_BEFORE_AUTH,
            max_arg_bytes: self.max_arg_bytes.min(MAX_ARG_BYTES_BEFORE_AUTH),
            unauthenticated: true,
            ..self
        }
    }
}

/// One request: its bytes and where each argument lies in them. Arguments
/// are borrowed from the buffer, so parsing copies nothing and touches no
/// reference counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    data: Bytes,
    /// (start, end) of each argument in `data`: 32-bit, so that a request
    /// moves as 100 bytes, not 170 (a request is at most 4 GiB).
    spans: SmallVec<[(u32, u32); 8]>,
}

impl Frame {
    /// The arguments, the command name first.
    pub fn args(&self) -> SmallVec<[&[u8]; 8]> {
        self.spans
            .iter()
            .map(|&(s, e)| &self.data[s as usize..e as usize])
            .collect()
    }

    /// Argument `i` (0: the command name), if present.
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        self.spans
            .get(i)
            .map(|&(s, e)| &self.data[s as usize..e as usize])
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// A request of these arguments (an inline request: at most 64 KiB).
    fn from_owned(args: Vec<Vec<u8>>) -> Frame {
        let mut data = Vec::with_capacity(args.iter().map(Vec::len).sum());
        let mut spans = SmallVec::new();
        for a in args {
            let start = data.len();
            data.extend_from_slice(&a);
            spans.push((offset(start), offset(data.len())));
        }
        Frame {
            data: Bytes::from(data),
            spans,
        }
    }
}

/// An offset into an inline request, which is far below 4 GiB.
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Takes one request off the front of `buf`: `Ok(None)` if it is not all
/// there yet; an empty request for an empty line or array. (A connection
/// uses a [`Reader`], which resumes a partial request where it stopped.)
pub fn next_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, ProtocolError> {
    Reader::default().next(buf, limits)
}

/// Takes requests off one connection's buffer, remembering how far a
/// request that has not all arrived was scanned, so that a long request
/// sent in small pieces is scanned once (linear), not from its start on
/// every read.
///
/// The common request, an array of bulk strings with plain length headers,
/// is framed by [`scan`] in one pass; anything else (signed, zero-padded or
/// long headers, empty or null arrays, and every malformed frame) goes to
/// [`reference_request`], whose decoding the scan must equal on every input
/// (a property test and a fuzz target hold it to that).
#[derive(Debug, Default)]
pub struct Reader {
    partial: Option<scan::Progress>,
}

impl Reader {
    /// The next request at the front of `buf`, which holds what this
    /// reader left there plus whatever has been appended since.
    pub fn next(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Frame>, ProtocolError> {
        if buf.first() != Some(&b'*') {
            self.partial = None;
            return reference_request(buf, limits);
        }
        match scan::multibulk(buf, limits, &mut self.partial) {
            Scan::Ready((used, spans)) => Ok(Some(Frame {
                data: buf.split_to(used).freeze(),
                spans,
            })),
            Scan::Short => Ok(None),
            Scan::Unusual => reference_request(buf, limits),
        }
    }
}

/// The reference decoding of one request: multibulk frames by the
/// redis-protocol crate after [`multibulk_extent`] has checked their headers
/// against the limits, inline requests split as Redis splits them.
pub fn reference_request(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Frame>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return inline::inline_request(buf);
    }
    let Some((count, extent)) = reference::multibulk_header(buf, limits)? else {
        return Ok(None);
    };
    if count <= 0 {
        // Redis ignores an empty or negative count: an empty request.
        buf.advance(extent);
        return Ok(Some(Frame::from_owned(Vec::new())));
    }
    // The crate's zero-copy decoder: ranges into the buffer, no copies.
    let (frame, used) = redis_protocol::resp2::decode::decode_range(&buf[..extent])
        .map_err(|e| protocol_error(e.details().to_string()))?
        .ok_or_else(|| protocol_error("incomplete request"))?;
    let data = buf.split_to(used).freeze();
    let mut spans = SmallVec::new();
    if let RangeFrame::Array(items) = frame {
        for item in items {
            match item {
                RangeFrame::BulkString((s, e)) => {
                    let (Ok(s), Ok(e)) = (u32::try_from(s), u32::try_from(e)) else {
                        return Err(protocol_error("request larger than 4 GiB"));
                    };
                    spans.push((s, e));
                }
                _ => return Err(protocol_error("expected a bulk string")),
            }
        }
    }
    Ok(Some(Frame { data, spans }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits::new(16, 1024);

    fn take(input: &[u8]) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        next_request(&mut BytesMut::from(input), &LIMITS)
            .map(|r| r.map(|r| r.args().iter().map(|a| a.to_vec()).collect()))
    }

    #[test]
    fn multibulk_requests_wait_for_the_whole_frame() {
        let full = b"*2\r\n$4\r\nPING\r\n$2\r\nhi\r\n";
        for cut in 0..full.len() {
            assert_eq!(take(&full[..cut]), Ok(None), "cut at {cut}");
        }
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI"[..]);
        let request = next_request(&mut buf, &LIMITS).unwrap().unwrap();
        assert_eq!(request.args().to_vec(), vec![&b"PING"[..]]);
        assert_eq!(&buf[..], b"*1\r\n$4\r\nPI");
    }

    #[test]
    fn bad_frames_are_protocol_errors() {
        let cases: [(&[u8], &str); 6] = [
            (b"*1\r\n*1\r\n$1\r\na\r\n", "expected '$', got '*'"),
            (b"*1\r\n$17\r\n", "invalid bulk length"),
            (b"*1\r\n$-5\r\n", "invalid bulk length"),
            (b"*x\r\n", "invalid multibulk length"),
            (b"*99999999\r\n", "invalid multibulk length"),
            (b"*1\r\n$1\r\nab\r\n", "expected CRLF"),
        ];
        for (input, msg) in cases {
            let err = take(input).unwrap_err();
            assert!(err.to_string().contains(msg), "{input:?}: {err}");
        }
        // Deep nesting is refused at the first level, not recursed into.
        let deep = b"*1\r\n".repeat(100_000);
        assert!(take(&deep).is_err());
    }

    #[test]
    fn inline_requests_split_like_redis() {
        assert_eq!(
            take(b"PING\r\n").unwrap().unwrap(),
            vec![Bytes::from("PING")]
        );
        assert_eq!(take(b"PING").unwrap(), None);
        let args = split_args(br#"set "a b" 'c\'d' "\x41\n""#).unwrap();
        assert_eq!(
            args,
            vec![
                b"set".to_vec(),
                b"a b".to_vec(),
                b"c'd".to_vec(),
                b"A\n".to_vec()
            ]
        );
        assert!(split_args(br#"echo "open"#).is_none());
        assert!(split_args(br#"echo "a"b"#).is_none());
        assert_eq!(take(b"\r\n").unwrap().unwrap(), Vec::<Vec<u8>>::new());
        assert!(take(&vec![b'a'; inline::MAX_INLINE + 1]).is_err());
    }
}
