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
