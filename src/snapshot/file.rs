//! Snapshot files: streamed into a temporary file, then fsync, rename and
//! fsync of the directory; read as a stream; moved aside when bad.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::framing::{self, Written};
use super::{Contents, FILE_NAME, SnapshotError};
use crate::policy::Policy;
use crate::store::{Entry, Store};

/// The temporary file a save writes before it renames it into place, with
/// the writer's process id after this prefix.
const TMP_PREFIX: &str = concat!(".", "dump.tgs", ".tmp-");

/// Removes the temporary files that saves cut short by a crash left in
/// `dir`: those of this process id (a restarted container often has the
/// same one) and of process ids no longer running. Answers each file
/// removed with its size. The snapshot itself is never touched.
pub fn remove_orphans(dir: &Path) -> Vec<(PathBuf, u64)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TMP_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let running = pid != me && Path::new(&format!("/proc/{pid}")).exists();
        if running {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if fs::remove_file(entry.path()).is_ok() {
            removed.push((entry.path(), size));
        }
    }
    removed.sort();
    removed
}

/// Where a simulated crash stops the writer (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Stop after writing this many bytes of the temporary file.
    CrashAfter(usize),
    /// Stop after writing the temporary file, before the rename.
    CrashBeforeRename,
}

/// Writes a snapshot of `store` and the run-time `policies` to `path`,
/// streamed shard by shard into a temporary file beside it; then fsync,
/// rename over the old snapshot, fsync of the directory. The old snapshot
/// is untouched until the new one is whole and synced.
pub fn save(
    path: &Path,
    store: &Store,
    policies: &[Arc<Policy>],
    now: u64,
) -> Result<Written, SnapshotError> {
    write_file(path, store, policies, now, &|_| true, None)
}

/// [`save`] of the states whose map key `keep` takes (a cluster node's own
/// slots).
pub fn save_keeping(
    path: &Path,
    store: &Store,
    policies: &[Arc<Policy>],
    now: u64,
    keep: &dyn Fn(&[u8]) -> bool,
) -> Result<Written, SnapshotError> {
    write_file(path, store, policies, now, keep, None)
}

/// [`save`], stopping where `fault` says, as a crash would (the temporary
/// file is then left behind, as a crash leaves it).
pub fn save_with_fault(
    path: &Path,
    store: &Store,
    policies: &[Arc<Policy>],
    now: u64,
    fault: Option<Fault>,
) -> Result<Written, SnapshotError> {
    write_file(path, store, policies, now, &|_| true, fault)
}

fn write_file(
    path: &Path,
    store: &Store,
    policies: &[Arc<Policy>],
    now: u64,
    keep: &dyn Fn(&[u8]) -> bool,
    fault: Option<Fault>,
) -> Result<Written, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!("{TMP_PREFIX}{}", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp)?;
        let limit = match fault {
            Some(Fault::CrashAfter(n)) => n as u64,
            _ => u64::MAX,
        };
        let mut out = CrashAfter {
            inner: BufWriter::with_capacity(256 * 1024, file),
            left: limit,
        };
        let written = framing::write(&mut out, store, policies, now, keep)?;
        let file = out.inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        if fault == Some(Fault::CrashBeforeRename) {
            return Err(std::io::Error::other("simulated crash"));
        }
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()?;
        Ok(written)
    })();
    if result.is_err() && fault.is_none() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// A writer that fails once `left` bytes are written (a simulated crash;
/// `u64::MAX` never fails).
struct CrashAfter<W> {
    inner: W,
    left: u64,
}

impl<W: Write> Write for CrashAfter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // What was written reaches the file, as it would before a crash.
            self.inner.flush()?;
            return Err(std::io::Error::other("simulated crash"));
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.write(&buf[..n])?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Seek> Seek for CrashAfter<W> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// Reads the snapshot at `path` whole; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Contents>, SnapshotError> {
    let mut entries = Vec::new();
    let head = load_with(path, |key, entry| entries.push((key, entry)))?;
    Ok(head.map(|(written_at, policies)| Contents {
        written_at,
        policies,
        entries,
    }))
}

/// Reads the snapshot at `path` as a stream, handing each entry to
/// `on_entry` as it is read; answers when it was written and its policies,
/// or `Ok(None)` when there is none. If it fails, the entries handed over
/// must be dropped: the file was bad.
pub fn load_with(
    path: &Path,
    on_entry: impl FnMut(Box<[u8]>, Entry),
) -> Result<Option<(u64, Vec<Policy>)>, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let total = file.metadata().map_err(io)?.len();
    let src = BufReader::with_capacity(256 * 1024, file);
    framing::read(src, total, path, on_entry).map(Some)
}

/// Moves a bad snapshot aside (to `<name>.bad-<unix seconds>`); answers the new path.
pub fn move_aside(path: &Path, now_secs: u64) -> std::io::Result<PathBuf> {
    let aside = path.with_file_name(format!("{FILE_NAME}.bad-{now_secs}"));
    fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_of_dead_writers_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("tollgate-orphans-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, bytes: usize| {
            fs::write(dir.join(name), vec![0u8; bytes]).unwrap();
            dir.join(name)
        };
        let dead = file(&format!("{TMP_PREFIX}4000000000"), 10);
        let mine = file(&format!("{TMP_PREFIX}{}", std::process::id()), 20);
        // Process 1 is always running: its file may be a save in progress.
        let live = file(&format!("{TMP_PREFIX}1"), 30);
        let snapshot = file(FILE_NAME, 40);
        let other = file(&format!("{TMP_PREFIX}notapid"), 50);
        let mut expected = vec![(dead, 10), (mine, 20)];
        expected.sort();
        assert_eq!(remove_orphans(&dir), expected);
        assert!(live.exists() && snapshot.exists() && other.exists());
        assert!(remove_orphans(&dir).is_empty());
        assert!(TMP_PREFIX.contains(FILE_NAME));
        fs::remove_dir_all(&dir).unwrap();
    }
}
