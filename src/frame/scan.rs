//! The common request framed in one pass: `*N\r\n` then N `$len\r\n`
//! bulk strings, every header plain decimal (no sign, no leading zero, at
//! most 18 digits). It records each argument's span as it checks the
//! limits, where the reference path scans the headers and then has the
//! crate decode them again.
//!
//! The scan decides only what it is sure of: a whole request, or a request
//! whose every byte so far is common and which has not all arrived. Any
//! other byte answers [`Scan::Unusual`] and the caller takes the reference
//! path, so every error, and every rare form, is the reference's own.

use smallvec::SmallVec;

use super::Limits;

/// What the scan made of the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Scan<T> {
    Ready(T),
    /// Common so far, not all there yet.
    Short,
    /// Not the common form: ask the reference path.
    Unusual,
}

/// Argument spans, as [`super::Frame`] keeps them.
pub(super) type Spans = SmallVec<[(u32, u32); 8]>;

/// Digits a plain header may have (18 cannot overflow).
const MAX_DIGITS: usize = 18;

/// The plain decimal `N\r\n` at `pos`, and the position after it.
#[inline]
fn header(buf: &[u8], pos: usize) -> Scan<(usize, usize)> {
    let mut n = 0usize;
    let mut i = pos;
    loop {
        match buf.get(i) {
            None => return Scan::Short,
            Some(&d @ b'0'..=b'9') => n = n * 10 + usize::from(d - b'0'),
            Some(b'\r') => break,
            Some(_) => return Scan::Unusual,
        }
        i += 1;
        if i - pos > MAX_DIGITS {
            return Scan::Unusual;
        }
    }
    let digits = i - pos;
    if digits == 0 || (digits > 1 && buf[pos] == b'0') {
        return Scan::Unusual;
    }
    match buf.get(i + 1) {
        Some(b'\n') => Scan::Ready((n, i + 2)),
        Some(_) => Scan::Unusual,
        None => Scan::Short,
    }
}

/// How far a request that has not all arrived was scanned: every argument
/// before `pos` is framed and within the limits.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Progress {
    /// Arguments the request declares.
    count: usize,
    /// Where the next argument's header starts.
    pos: usize,
    /// The arguments framed so far.
    spans: Spans,
}

/// Frames the multibulk request at the front of `buf` (which starts with
/// `*`): its length and its arguments' spans. `partial` carries what an
/// earlier call scanned of the same request (the buffer has only grown
/// since), and what this one scanned if the request is still short.
pub(super) fn multibulk(
    buf: &[u8],
    limits: &Limits,
    partial: &mut Option<Progress>,
) -> Scan<(usize, Spans)> {
    let mut at = match partial.take() {
        Some(progress) => progress,
        None => {
            let (count, pos) = match header(buf, 1) {
                Scan::Ready(h) => h,
                Scan::Short => return Scan::Short,
                Scan::Unusual => return Scan::Unusual,
            };
            // An empty array, and lengths past the limit, are the reference's.
            if count == 0 || count > limits.max_args {
                return Scan::Unusual;
            }
            Progress {
                count,
                pos,
                spans: Spans::new(),
            }
        }
    };
    while at.spans.len() < at.count {
        match next_argument(buf, at.pos, limits.max_arg_bytes) {
            Scan::Ready((span, next)) => {
                at.spans.push(span);
                at.pos = next;
            }
            Scan::Short => {
                *partial = Some(at);
                return Scan::Short;
            }
            Scan::Unusual => return Scan::Unusual,
        }
    }
    Scan::Ready((at.pos, at.spans))
}

/// The bulk string whose header starts at `pos`: its span and where the
/// next header starts.
#[inline]
fn next_argument(buf: &[u8], pos: usize, max_arg: usize) -> Scan<((u32, u32), usize)> {
    match buf.get(pos) {
        Some(b'$') => {}
        Some(_) => return Scan::Unusual,
        None => return Scan::Short,
    }
    let (len, start) = match header(buf, pos + 1) {
        Scan::Ready(h) => h,
        Scan::Short => return Scan::Short,
        Scan::Unusual => return Scan::Unusual,
    };
    if len > max_arg {
        return Scan::Unusual;
    }
    let end = start + len;
    match buf.get(end..end + 2) {
        Some(b"\r\n") => {}
        Some(_) => return Scan::Unusual,
        None => return Scan::Short,
    }
    let (Ok(s), Ok(e)) = (u32::try_from(start), u32::try_from(end)) else {
        return Scan::Unusual;
    };
    Scan::Ready(((s, e), end + 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_headers_only() {
        assert_eq!(header(b"0\r\n", 0), Scan::Ready((0, 3)));
        assert_eq!(header(b"42\r\nx", 0), Scan::Ready((42, 4)));
        let most = b"999999999999999999\r\n";
        assert_eq!(header(most, 0), Scan::Ready((999_999_999_999_999_999, 20)));
        for unusual in [
            &b"-1\r\n"[..],
            b"+1\r\n",
            b"01\r\n",
            b"\r\n",
            b"1x\r\n",
            b"1\rx",
            b"1234567890123456789\r\n",
        ] {
            assert_eq!(header(unusual, 0), Scan::Unusual, "{unusual:?}");
        }
        for short in [&b""[..], b"12", b"12\r"] {
            assert_eq!(header(short, 0), Scan::Short, "{short:?}");
        }
    }

    fn scan(buf: &[u8], max_arg: usize) -> Scan<(usize, Spans)> {
        multibulk(buf, &Limits::new(max_arg, 1 << 20), &mut None)
    }

    #[test]
    fn frames_arrays_of_bulk_strings() {
        let req = b"*2\r\n$4\r\nPING\r\n$0\r\n\r\nrest";
        let Scan::Ready((used, spans)) = scan(req, 16) else {
            panic!("not framed");
        };
        assert_eq!(used, req.len() - 4);
        assert_eq!(spans.as_slice(), &[(8, 12), (18, 18)]);
        for cut in 0..used {
            assert_eq!(scan(&req[..cut], 16), Scan::Short, "cut at {cut}");
        }
        // Past the argument limit, or not CRLF after a body: the reference
        // path says why.
        assert_eq!(scan(req, 3), Scan::Unusual);
        assert_eq!(scan(b"*1\r\n$1\r\nab\r\n", 16), Scan::Unusual);
        assert_eq!(scan(b"*1\r\n:1\r\n", 16), Scan::Unusual);
        assert_eq!(scan(b"*0\r\n", 16), Scan::Unusual);
        assert_eq!(scan(b"*-1\r\n", 16), Scan::Unusual);
    }

    #[test]
    fn a_short_request_resumes_where_it_stopped() {
        let req = b"*3\r\n$3\r\nabc\r\n$2\r\nde\r\n$1\r\nf\r\n";
        let limits = Limits::new(16, 1 << 20);
        let mut partial = None;
        // Cut inside the second argument: the first is kept.
        assert_eq!(multibulk(&req[..20], &limits, &mut partial), Scan::Short);
        let progress = partial.as_ref().expect("progress kept");
        assert_eq!(
            (progress.pos, progress.spans.as_slice()),
            (13, &[(8u32, 11u32)][..])
        );
        // The next call starts there: a buffer whose first bytes no longer
        // parse still frames, which it could not if scanned from the start.
        let mut changed = req.to_vec();
        changed[1] = b'x';
        let Scan::Ready((used, spans)) = multibulk(&changed, &limits, &mut partial) else {
            panic!("not framed");
        };
        assert_eq!(used, req.len());
        assert_eq!(spans.as_slice(), &[(8, 11), (17, 19), (25, 26)]);
        assert!(partial.is_none());
        // Fewer arguments before AUTH: the reference path says why.
        let before_auth = limits.before_auth();
        let eleven = format!("*11\r\n{}", "$1\r\na\r\n".repeat(11));
        assert_eq!(
            multibulk(eleven.as_bytes(), &before_auth, &mut None),
            Scan::Unusual
        );
    }
}
