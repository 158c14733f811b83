//! Client bytes as text: made safe to quote in error lines and logs, and
//! read as Redis's strict integers. A leaf: it imports nothing of the crate,
//! so every layer may use it.

/// Client bytes made safe to quote in an error line: at most 128 bytes,
/// no control characters.
pub fn printable(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(128)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Parses `-?[1-9][0-9]*|0` straight from ASCII, with checked arithmetic:
/// no spaces, no `+`, no leading zeros, no `-0` (Redis's rules).
pub fn ascii_i64(arg: &[u8]) -> Option<i64> {
    let (negative, digits) = match arg.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, arg),
    };
    let (&first, _) = digits.split_first()?;
    if first == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(digit)?
        } else {
            n.checked_add(digit)?
        };
    }
    Some(n)
}

/// Redis-style glob match (`*`, `?`), ignoring ASCII case (as `CONFIG GET`).
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    glob(pattern, text, true)
}

/// Redis-style glob match (`*`, `?`), case by case (as ACL key patterns).
pub fn glob_match_exact(pattern: &[u8], text: &[u8]) -> bool {
    glob(pattern, text, false)
}

fn glob(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    let same = |a: u8, b: u8| a == b || (nocase && a.eq_ignore_ascii_case(&b));
    let (mut p, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || same(pattern[p], text[t])) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}
