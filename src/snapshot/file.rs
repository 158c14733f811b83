//! Snapshot files: written atomically (temporary file, fsync, rename, fsync
//! of the directory), read whole, moved aside when bad.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Contents, FILE_NAME, SnapshotError, decode};

/// Where a simulated crash stops the writer (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Stop after writing this many bytes of the temporary file.
    CrashAfter(usize),
    /// Stop after writing the temporary file, before the rename.
    CrashBeforeRename,
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    write_with_fault(path, bytes, None)
}

/// [`write_atomic`], stopping where `fault` says, as a crash would.
pub fn write_with_fault(
    path: &Path,
    bytes: &[u8],
    fault: Option<Fault>,
) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{FILE_NAME}.tmp-{}", std::process::id()));
    let crash = || std::io::Error::other("simulated crash");
    let result = (|| {
        let mut file = File::create(&tmp)?;
        if let Some(Fault::CrashAfter(n)) = fault {
            file.write_all(&bytes[..n.min(bytes.len())])?;
            return Err(crash());
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if fault == Some(Fault::CrashBeforeRename) {
            return Err(crash());
        }
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() && fault.is_none() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads the snapshot at `path`; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Contents>, SnapshotError> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Moves a bad snapshot aside (to `<name>.bad-<unix seconds>`); answers the new path.
pub fn move_aside(path: &Path, now_secs: u64) -> std::io::Result<PathBuf> {
    let aside = path.with_file_name(format!("{FILE_NAME}.bad-{now_secs}"));
    fs::rename(path, &aside)?;
    Ok(aside)
}
