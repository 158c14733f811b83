//! Requests from bytes: pure, no socket, fuzzable on its own.
//!
//! [`next_request`] takes one request off the front of a buffer. Multibulk
//! requests are checked against the size limits by a small scan of their
//! headers, then decoded by the redis-protocol crate (zero-copy ranges into
//! the buffer); inline requests (what `telnet` sends) are split on white
//! space with Redis's quoting rules.

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::types::RangeFrame;
use smallvec::SmallVec;

/// Most arguments in one request (as Redis).
const MAX_MULTIBULK: i64 = 1024 * 1024;
/// Longest inline request (as Redis).
const MAX_INLINE: usize = 64 * 1024;
/// Longest integer header line (`*N\r\n`, `$N\r\n`).
const MAX_HEADER: usize = 32;
/// Input that cannot be a request; the connection answers it and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ERR Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn protocol_error(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// Size limits of one connection's input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_arg_bytes: usize,
    pub max_query_buffer_bytes: usize,
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
/// there yet; an empty request for an empty line or array.
pub fn next_request(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Frame>, ProtocolError> {
    if buf.is_empty() {
        return Ok(None);
    }
    if buf[0] != b'*' {
        return inline_request(buf);
    }
    let Some(extent) = multibulk_extent(buf, limits.max_arg_bytes)? else {
        return Ok(None);
    };
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

/// Reads `N` from a `<type>N\r\n` header at `start`; the position after it.
fn header_int(buf: &[u8], start: usize, what: &str) -> Result<Option<(i64, usize)>, ProtocolError> {
    let rest = &buf[start.min(buf.len())..];
    // The usual header, up to 18 plain digits (no sign, no leading zero)
    // then CR, in one pass (18 digits cannot overflow an i64); anything
    // else takes the general path below.
    let digits = rest
        .iter()
        .take(18)
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits > 0 && rest.get(digits) == Some(&b'\r') && (rest[0] != b'0' || digits == 1) {
        let n = rest[..digits]
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        return match rest.get(digits + 1) {
            Some(b'\n') => Ok(Some((n, start + digits + 2))),
            Some(_) => Err(protocol_error(format!("invalid {what} length"))),
            None => Ok(None),
        };
    }
    let Some(cr) = rest.iter().take(MAX_HEADER).position(|&b| b == b'\r') else {
        if rest.len() >= MAX_HEADER {
            return Err(protocol_error(format!("invalid {what} length")));
        }
        return Ok(None);
    };
    if rest.len() < cr + 2 {
        return Ok(None);
    }
    let n = crate::text::ascii_i64(&rest[..cr])
        .filter(|_| rest[cr + 1] == b'\n')
        .ok_or_else(|| protocol_error(format!("invalid {what} length")))?;
    Ok(Some((n, start + cr + 2)))
}

/// The length of the multibulk request at the front of `buf`, checking
/// every header against the limits before the body has arrived. Keeps the
/// decoder to flat arrays of bulk strings.
pub fn multibulk_extent(buf: &[u8], max_arg: usize) -> Result<Option<usize>, ProtocolError> {
    let Some((count, mut pos)) = header_int(buf, 1, "multibulk")? else {
        return Ok(None);
    };
    if count > MAX_MULTIBULK {
        return Err(protocol_error("invalid multibulk length"));
    }
    for _ in 0..count.max(0) {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        if kind != b'$' {
            return Err(protocol_error(format!(
                "expected '$', got '{}'",
                char::from(kind).escape_default()
            )));
        }
        let Some((len, body)) = header_int(buf, pos + 1, "bulk")? else {
            return Ok(None);
        };
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= max_arg)
            .ok_or_else(|| protocol_error("invalid bulk length"))?;
        pos = body + len + 2;
        if pos > buf.len() {
            return Ok(None);
        }
        if &buf[pos - 2..pos] != b"\r\n" {
            return Err(protocol_error("expected CRLF after bulk string"));
        }
    }
    Ok(Some(pos))
}

/// An inline request: one line, split like Redis's `sdssplitargs`.
fn inline_request(buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_INLINE {
            return Err(protocol_error("too big inline request"));
        }
        return Ok(None);
    };
    let line = buf.split_to(nl + 1);
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    split_args(line)
        .map(|args| Some(Frame::from_owned(args)))
        .ok_or_else(|| protocol_error("unbalanced quotes in request"))
}

/// Splits a line into arguments: white space separates, `"..."` takes
/// backslash escapes (`\n`, `\t`, `\xHH`, ...), `'...'` takes `\'`.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut arg = Vec::new();
        let quote = match line[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                Some(q)
            }
            _ => None,
        };
        loop {
            let Some(&c) = line.get(i) else {
                // End of line inside quotes is unbalanced.
                if quote.is_some() {
                    return None;
                }
                args.push(arg);
                return Some(args);
            };
            match quote {
                None if c.is_ascii_whitespace() => break,
                None => arg.push(c),
                Some(q) if c == q => {
                    // A closing quote must end the argument.
                    if line.get(i + 1).is_some_and(|n| !n.is_ascii_whitespace()) {
                        return None;
                    }
                    i += 1;
                    break;
                }
                Some(b'"') if c == b'\\' && i + 1 < line.len() => {
                    i += 1;
                    let e = line[i];
                    let hex = |b: u8| char::from(b).to_digit(16);
                    match e {
                        b'x' if i + 2 < line.len()
                            && hex(line[i + 1]).is_some()
                            && hex(line[i + 2]).is_some() =>
                        {
                            let v =
                                hex(line[i + 1]).unwrap_or(0) * 16 + hex(line[i + 2]).unwrap_or(0);
                            arg.push(v as u8);
                            i += 2;
                        }
                        b'n' => arg.push(b'\n'),
                        b'r' => arg.push(b'\r'),
                        b't' => arg.push(b'\t'),
                        b'b' => arg.push(8),
                        b'a' => arg.push(7),
                        other => arg.push(other),
                    }
                }
                Some(b'\'') if c == b'\\' && line.get(i + 1) == Some(&b'\'') => {
                    i += 1;
                    arg.push(b'\'');
                }
                Some(_) => arg.push(c),
            }
            i += 1;
        }
        args.push(arg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_arg_bytes: 16,
        max_query_buffer_bytes: 1024,
    };

    fn take(input: &[u8]) -> Result<Option<Vec<Vec<u8>>>, ProtocolError> {
        next_request(&mut BytesMut::from(input), &LIMITS)
            .map(|r| r.map(|r| r.args().iter().map(|a| a.to_vec()).collect()))
    }

    #[test]
    fn header_numbers_parse_the_same_on_both_paths() {
        let ok = |n: i64, len: usize| Ok(Some((n, len)));
        let bad = || Err(protocol_error("invalid bulk length"));
        type Parsed = Result<Option<(i64, usize)>, ProtocolError>;
        let cases: &[(&[u8], Parsed)] = &[
            (b"0\r\n", ok(0, 3)),
            (b"7\r\nx", ok(7, 3)),
            (b"123456789012345678\r\n", ok(123_456_789_012_345_678, 20)),
            (
                b"1234567890123456789\r\n",
                ok(1_234_567_890_123_456_789, 21),
            ),
            (b"-1\r\n", ok(-1, 4)),
            (b"99999999999999999999\r\n", bad()),
            (b"01\r\n", bad()),
            (b"1a\r\n", bad()),
            (b"12\rx", bad()),
            (b"\r\n", bad()),
            (b"12\r", Ok(None)),
            (b"12", Ok(None)),
        ];
        for (input, expected) in cases {
            let got = header_int(input, 0, "bulk");
            assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(input));
        }
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
        assert!(take(&vec![b'a'; MAX_INLINE + 1]).is_err());
    }
}
