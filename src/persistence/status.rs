//! What the server remembers about its snapshots: the path, whether
//! anything is unsaved, the last save's outcome, and the flags that steer
//! saving. Plain bookkeeping that [`crate::state::Shared`] holds; the saving
//! itself is the parent module's.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::store::Store;

/// The server's snapshot bookkeeping.
#[derive(Debug)]
pub struct Persistence {
    pub path: PathBuf,
    /// Changes not yet in a snapshot beyond the store's own flag (policies,
    /// a failed write).
    pub(super) pending: AtomicBool,
    /// One writer at a time.
    pub(super) writer: Mutex<()>,
    pub(super) in_progress: AtomicBool,
    /// Unix seconds of the last good snapshot (or of start-up).
    pub(super) last_save: AtomicU64,
    pub(super) last_ok: AtomicBool,
    pub(super) last_error: Mutex<Option<String>>,
    pub(super) saves: AtomicU64,
    pub(super) failures: AtomicU64,
    pub(super) last_duration_ms: AtomicU64,
    /// The store's change count the last snapshot was taken at.
    pub(super) changes_at_save: AtomicU64,
    /// Whether shutdown writes a final snapshot (`SHUTDOWN NOSAVE` clears it).
    pub save_on_shutdown: AtomicBool,
    /// Wakes the saver for a `BGSAVE`.
    pub background_request: Notify,
}

/// What `INFO persistence` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub dirty: bool,
    /// Changes since the last snapshot (a policy change counts one).
    pub changes: u64,
    pub in_progress: bool,
    pub last_save: u64,
    pub last_ok: bool,
    pub last_error: Option<String>,
    pub saves: u64,
    pub failures: u64,
    pub last_duration_ms: u64,
}

impl Persistence {
    /// How long the last snapshot took to write, in milliseconds.
    pub fn last_duration_ms(&self) -> u64 {
        self.last_duration_ms.load(Ordering::Relaxed)
    }

    pub fn new(path: PathBuf, started_secs: u64) -> Persistence {
        Persistence {
            path,
            pending: AtomicBool::new(false),
            writer: Mutex::new(()),
            in_progress: AtomicBool::new(false),
            last_save: AtomicU64::new(started_secs),
            last_ok: AtomicBool::new(true),
            last_error: Mutex::new(None),
            saves: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_duration_ms: AtomicU64::new(0),
            changes_at_save: AtomicU64::new(0),
            save_on_shutdown: AtomicBool::new(true),
            background_request: Notify::new(),
        }
    }

    /// Notes a policy change for the next snapshot.
    pub fn policies_changed(&self) {
        self.pending.store(true, Ordering::Relaxed);
    }

    pub fn in_progress(&self) -> bool {
        self.in_progress.load(Ordering::Relaxed)
    }

    /// Unix seconds of the last good snapshot.
    pub fn last_save(&self) -> u64 {
        self.last_save.load(Ordering::Relaxed)
    }

    /// What `INFO persistence` shows; `store` tells whether limiter states
    /// changed since the last snapshot.
    pub fn status(&self, store: &Store) -> Status {
        let pending = u64::from(self.pending.load(Ordering::Relaxed));
        let since = store
            .changes()
            .saturating_sub(self.changes_at_save.load(Ordering::Relaxed));
        Status {
            dirty: since + pending > 0,
            changes: since + pending,
            in_progress: self.in_progress(),
            last_save: self.last_save(),
            last_ok: self.last_ok.load(Ordering::Relaxed),
            last_error: self.last_error.lock().clone(),
            saves: self.saves.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_duration_ms: self.last_duration_ms.load(Ordering::Relaxed),
        }
    }
}
