//! The file around a snapshot's body: magic, version, length, and a CRC-32
//! of the body; written and read as a stream.
//!
//! A save writes the header with a length of 0 and the entry count as 0,
//! streams the entries as a walk of the store hands them over, then seeks
//! back to fill both in. The checksum of the body is put together from the
//! checksums of its parts (`crc32fast::Hasher::combine`), so no part is
//! read back.

use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use super::body::{Reader, decode_body, encode_head, put_entry};
use super::{HEADER, MAGIC, OLDEST_VERSION, SnapshotError, VERSION};
use crate::policy::Policy;
use crate::store::{Entry, Store, Walked};

/// States copied per slice under a shard's lock: a few microseconds of
/// copying, so a check waits for a save at most that long.
pub(super) const SLICE: usize = 256;

/// What a save wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the whole file.
    pub bytes: u64,
    /// Entries written.
    pub entries: u64,
}

/// Streams a snapshot of `store` (the states whose map key `keep` takes)
/// and the run-time `policies` into `out` (from its start), copying at most [`SLICE`] states at a time under a
/// shard's lock and writing with no lock held.
pub(super) fn write<W: Write + Seek>(
    out: &mut W,
    store: &Store,
    policies: &[std::sync::Arc<Policy>],
    now: u64,
    keep: &dyn Fn(&[u8]) -> bool,
) -> io::Result<Written> {
    out.write_all(MAGIC)?;
    out.write_all(&VERSION.to_le_bytes())?;
    out.write_all(&0u64.to_le_bytes())?;
    let head = encode_head(policies, now);
    out.write_all(&head)?;
    out.write_all(&0u64.to_le_bytes())?;
    let mut entries_crc = crc32fast::Hasher::new();
    let mut entries_len = 0u64;
    let mut count = 0u64;
    let mut slice = Vec::with_capacity(SLICE * 80);
    store.walk(SLICE, |step| {
        match step {
            Walked::State(key, fresh_at, slot) => {
                if keep(key) {
                    put_entry(&mut slice, key, fresh_at, slot);
                    count += 1;
                }
            }
            Walked::Unlocked => {
                entries_crc.update(&slice);
                out.write_all(&slice)?;
                entries_len += slice.len() as u64;
                slice.clear();
            }
        }
        io::Result::Ok(())
    })?;
    debug_assert!(slice.is_empty(), "every slice ends unlocked");
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.update(&count.to_le_bytes());
    crc.combine(&entries_crc);
    out.write_all(&crc.finalize().to_le_bytes())?;
    let body_len = head.len() as u64 + 8 + entries_len;
    out.seek(SeekFrom::Start(12))?;
    out.write_all(&body_len.to_le_bytes())?;
    out.seek(SeekFrom::Start(HEADER as u64 + head.len() as u64))?;
    out.write_all(&count.to_le_bytes())?;
    out.seek(SeekFrom::End(0))?;
    Ok(Written {
        bytes: HEADER as u64 + body_len + 4,
        entries: count,
    })
}

/// Reads a snapshot of `total` bytes from `src`, checking its magic,
/// version, length and checksum; hands each entry to `on_entry` as it is
/// read and answers when it was written and its policies. `path` only
/// names the file in errors.
///
/// The entries are handed over before the checksum is known: a caller
/// that keeps them must drop them if this fails.
pub(super) fn read<R: io::Read>(
    mut src: R,
    total: u64,
    path: &Path,
    on_entry: impl FnMut(Box<[u8]>, Entry),
) -> Result<(u64, Vec<Policy>), SnapshotError> {
    let path_buf = || path.to_path_buf();
    let io = |source| SnapshotError::Io {
        path: path_buf(),
        source,
    };
    let mut header = [0u8; HEADER];
    let got = (total as usize).min(HEADER);
    src.read_exact(&mut header[..got]).map_err(io)?;
    let truncated = |found| SnapshotError::Truncated {
        path: path_buf(),
        found,
        expected: HEADER as u64 + 4,
    };
    if got < 8 || &header[..8] != MAGIC {
        if got < 8 && MAGIC.starts_with(&header[..got]) {
            return Err(truncated(total));
        }
        return Err(SnapshotError::BadMagic { path: path_buf() });
    }
    if got < HEADER {
        return Err(truncated(total));
    }
    let version = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(SnapshotError::Version {
            path: path_buf(),
            found: version,
        });
    }
    let body_len = u64::from_le_bytes(header[12..20].try_into().unwrap_or_default());
    let expected = body_len.saturating_add(HEADER as u64 + 4);
    if total < expected {
        return Err(SnapshotError::Truncated {
            path: path_buf(),
            found: total,
            expected,
        });
    }
    if total > expected {
        return Err(SnapshotError::Corrupt {
            path: path_buf(),
            reason: format!("{} bytes after the end", total - expected),
        });
    }
    let mut body = Reader::new(&mut src, body_len);
    let decoded = decode_body(&mut body, on_entry);
    if decoded.is_err() {
        // A damaged body is reported as the checksum mismatch it is,
        // whatever record the damage happened to break first.
        let _ = body.skip_rest();
    }
    if let Some(e) = body.io_error.take() {
        return Err(io(e));
    }
    let computed = body.crc.clone().finalize();
    drop(body);
    let mut crc = [0u8; 4];
    src.read_exact(&mut crc).map_err(io)?;
    if u32::from_le_bytes(crc) != computed {
        return Err(SnapshotError::Checksum { path: path_buf() });
    }
    decoded.map_err(|reason| SnapshotError::Corrupt {
        path: path_buf(),
        reason,
    })
}

/// A file around `body` (tests build damaged bodies with it).
#[cfg(test)]
pub(super) fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}
