//! The reference framing of multibulk requests: every header checked
//! against the size limits before the body has arrived, then the
//! redis-protocol crate decodes (see [`super::reference_request`]).

use super::{Limits, ProtocolError, protocol_error};

/// Longest integer header line (`*N\r\n`, `$N\r\n`).
const MAX_HEADER: usize = 32;

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
pub fn multibulk_extent(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ProtocolError> {
    Ok(multibulk_header(buf, limits)?.map(|(_, extent)| extent))
}

/// The argument count the request at the front of `buf` declares (zero or
/// less: an empty request, as Redis ignores it) and its length.
pub(super) fn multibulk_header(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let Some((count, mut pos)) = header_int(buf, 1, "multibulk")? else {
        return Ok(None);
    };
    if usize::try_from(count).is_ok_and(|n| n > limits.max_args) {
        return Err(protocol_error(if limits.unauthenticated {
            "unauthenticated multibulk length"
        } else {
            "invalid multibulk length"
        }));
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
        let len = match usize::try_from(len) {
            Ok(l) if l <= limits.max_arg_bytes => l,
            Ok(_) if limits.unauthenticated => {
                return Err(protocol_error("unauthenticated bulk length"));
            }
            _ => return Err(protocol_error("invalid bulk length")),
        };
        pos = body + len + 2;
        if pos > buf.len() {
            return Ok(None);
        }
        if &buf[pos - 2..pos] != b"\r\n" {
            return Err(protocol_error("expected CRLF after bulk string"));
        }
    }
    Ok(Some((count, pos)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
