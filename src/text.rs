//! Client bytes as text for error lines and logs. A leaf: it imports nothing
//! of the crate, so every layer may use it.

/// Client bytes made safe to quote in an error line: at most 128 bytes,
/// no control characters.
pub fn printable(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(128)];
    String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}
