//! Snapshot files: written atomically (temporary file, fsync, rename, fsync
//! of the directory), read whole, moved aside when bad.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Contents, FILE_NAME, SnapshotError, decode};

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
    let tmp = dir.join(format!("{TMP_PREFIX}{}", std::process::id()));
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
