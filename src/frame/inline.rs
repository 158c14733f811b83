//! Inline requests: one line of text, split like Redis's `sdssplitargs`.

use bytes::BytesMut;

use super::{Frame, ProtocolError, protocol_error};

/// Longest inline request (as Redis).
pub(super) const MAX_INLINE: usize = 64 * 1024;

/// An inline request: one line, split like Redis's `sdssplitargs`.
pub(super) fn inline_request(buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
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
