//! The file around a snapshot's body: magic, version, length, and a CRC-32
//! of the body.

use std::path::Path;

use super::body::{put_u32, put_u64};
use super::{HEADER, MAGIC, OLDEST_VERSION, SnapshotError, VERSION};

/// A file around `body`: magic, version, length, the body, its CRC32.
pub(super) fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + 4);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, VERSION);
    put_u64(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    put_u32(&mut out, crc32fast::hash(body));
    out
}

/// The body of a framed file, after checking its magic, version, length and
/// checksum; `path` only names it in errors.
pub(super) fn unframe<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a [u8], SnapshotError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        if bytes.len() < 8 && MAGIC.starts_with(bytes) {
            return Err(SnapshotError::Truncated {
                path: path_buf(),
                found: bytes.len() as u64,
                expected: HEADER as u64 + 4,
            });
        }
        return Err(SnapshotError::BadMagic { path: path_buf() });
    }
    if bytes.len() < HEADER {
        return Err(SnapshotError::Truncated {
            path: path_buf(),
            found: bytes.len() as u64,
            expected: HEADER as u64 + 4,
        });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(SnapshotError::Version {
            path: path_buf(),
            found: version,
        });
    }
    let body_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    let expected = body_len.saturating_add(HEADER as u64 + 4);
    if (bytes.len() as u64) < expected {
        return Err(SnapshotError::Truncated {
            path: path_buf(),
            found: bytes.len() as u64,
            expected,
        });
    }
    if (bytes.len() as u64) > expected {
        return Err(SnapshotError::Corrupt {
            path: path_buf(),
            reason: format!("{} bytes after the end", bytes.len() as u64 - expected),
        });
    }
    let body = &bytes[HEADER..HEADER + body_len as usize];
    let crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap_or_default());
    if crc32fast::hash(body) != crc {
        return Err(SnapshotError::Checksum { path: path_buf() });
    }
    Ok(body)
}
