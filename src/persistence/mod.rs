//! When snapshots are taken and what the server remembers about them: at
//! the save points (`save`: after N seconds if at least M changes), on
//! `SAVE`, `BGSAVE`, and at shutdown. A save streams the keyspace to disk a
//! slice of states at a time (see [`crate::snapshot`]) on a blocking
//! thread, so the server keeps answering.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::snapshot;
use crate::state::Shared;

use crate::config::SavePoint;

pub mod status;

pub use status::{Persistence, Status};

/// Writes a snapshot now (blocking: call from a blocking thread).
pub fn save_blocking(shared: &Shared) -> Result<(), String> {
    let p = &shared.persistence;
    let _writer = p.writer.lock();
    p.in_progress.store(true, Ordering::Relaxed);
    let started = Instant::now();
    // Clear the flags first: a change made while we copy marks them again.
    let store_changed = shared.engine.store.take_changed();
    let changes = shared.engine.store.changes();
    let pending = p.pending.swap(false, Ordering::AcqRel);
    let now = shared.engine.clock.now();
    // A cluster node saves the states of its own slots.
    let kept = shared.cluster.kept_slots();
    let keep = |map_key: &[u8]| {
        let slot = |key: &[u8]| usize::from(crate::cluster::keyslot(key));
        kept.as_ref().is_none_or(|kept| {
            crate::store::decode_key(map_key).is_none_or(|(_, key)| kept[slot(key)])
        })
    };
    let policies = shared.engine.policies.all();
    let result = snapshot::save_keeping(&p.path, &shared.engine.store, &policies, now, &keep)
        .map_err(|e| e.to_string());
    p.last_duration_ms
        .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    match &result {
        Ok(written) => {
            p.changes_at_save.store(changes, Ordering::Relaxed);
            p.last_save.store(now / 1_000_000_000, Ordering::Relaxed);
            p.last_ok.store(true, Ordering::Relaxed);
            *p.last_error.lock() = None;
            p.saves.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                bytes = written.bytes,
                entries = written.entries,
                ms = started.elapsed().as_millis() as u64,
                "snapshot written to {}",
                p.path.display()
            );
        }
        Err(e) => {
            // The store's changes stay counted (the count did not move
            // on); a policy change not saved is marked again.
            if pending {
                p.pending.store(true, Ordering::Relaxed);
            }
            if store_changed {
                shared.engine.store.mark_changed();
            }
            p.last_ok.store(false, Ordering::Relaxed);
            *p.last_error.lock() = Some(e.clone());
            p.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!("cannot write the snapshot: {e}");
        }
    }
    p.in_progress.store(false, Ordering::Relaxed);
    result.map(|_| ())
}

/// [`save_blocking`] on a blocking thread.
pub async fn save(shared: Arc<Shared>) -> Result<(), String> {
    tokio::task::spawn_blocking(move || save_blocking(&shared))
        .await
        .unwrap_or_else(|e| Err(format!("snapshot task failed: {e}")))
}

/// Loads the snapshot's run-time policies into the server (a config-file
/// policy of the same name wins).
fn restore_policies(shared: &Shared, policies: Vec<crate::policy::Policy>) {
    for policy in policies {
        let name = policy.name.clone();
        if let Err(e) = shared.engine.policies.set(policy) {
            tracing::warn!("snapshot policy '{name}' ignored: {e}");
        }
    }
}

/// Marks what was just restored as saved: it is what the snapshot holds.
fn restored_is_saved(shared: &Shared) {
    shared.engine.store.take_changed();
    let restored_changes = shared.engine.store.changes();
    shared
        .persistence
        .changes_at_save
        .store(restored_changes, Ordering::Relaxed);
}

/// How start-up treats the snapshot file.
/// Checks at start that `dir` takes a snapshot: creates it if need be, then
/// writes and removes a temporary file there.
pub fn check_writable(dir: &std::path::Path) -> Result<(), String> {
    let probe = dir.join(format!(".tollgate-write-test-{}", std::process::id()));
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&probe, b"tollgate"))
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| {
            format!(
                "data directory {} cannot be written: {e} (fix its permissions, choose another with --data-dir, or set snapshots = false in the config file to run without snapshots)",
                absolute(dir).display()
            )
        })
}

/// `path` made absolute against the working directory (for log lines).
pub fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No snapshot: an empty start.
    Nothing,
    /// This many states restored.
    Restored(usize),
    /// The file was bad and moved aside to this path (`--discard-bad-snapshot`).
    MovedAside(PathBuf, String),
}

/// Loads the snapshot into a server that has not started serving. A bad
/// file is an error (and stays where it is) unless `discard_bad` moves it
/// aside for an empty start.
pub fn load_into(shared: &Shared, discard_bad: bool) -> Result<Loaded, String> {
    let path = &shared.persistence.path;
    // States go into the store as they are read, so a load needs no more
    // memory than the keyspace; if the file turns out bad, they go again.
    let store = &shared.engine.store;
    let now = shared.engine.clock.now();
    let mut restored = 0;
    let kept = shared.cluster.kept_slots();
    let loaded = snapshot::load_with(path, |key, entry| {
        let ours = kept.as_ref().is_none_or(|kept| {
            crate::store::decode_key(&key)
                .is_none_or(|(_, k)| kept[usize::from(crate::cluster::keyslot(k))])
        });
        if entry.fresh_at > now && ours {
            store.insert_raw(key, entry);
            restored += 1;
        }
    });
    if loaded.is_err() {
        store.clear();
    }
    match loaded {
        Ok(None) => Ok(Loaded::Nothing),
        Ok(Some((written_at, policies))) => {
            restore_policies(shared, policies);
            restored_is_saved(shared);
            shared
                .persistence
                .last_save
                .store(written_at / 1_000_000_000, Ordering::Relaxed);
            Ok(Loaded::Restored(restored))
        }
        Err(e) if discard_bad => {
            let now = shared.engine.clock.now() / 1_000_000_000;
            let aside = snapshot::move_aside(path, now)
                .map_err(|io| format!("{e}; cannot move it aside: {io}"))?;
            Ok(Loaded::MovedAside(aside, e.to_string()))
        }
        Err(e) => Err(format!(
            "{e} (the file is kept; start with --discard-bad-snapshot to move it aside and start empty)"
        )),
    }
}

/// After a failed save, the soonest the save points try again (Redis: 5 s).
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Whether a save point is reached: `elapsed` since the last snapshot and
/// `changes` made since.
pub fn save_point_reached(points: &[SavePoint], elapsed: Duration, changes: u64) -> bool {
    changes > 0
        && points
            .iter()
            .any(|p| elapsed >= Duration::from_millis(p.after_ms) && changes >= p.changes)
}

/// Writes a snapshot when a save point is reached (after N seconds if at
/// least M changes, as Redis's `save`) and on `BGSAVE`, until shutdown. A
/// failed save is tried again after [`RETRY_AFTER`] at the soonest.
pub async fn saver(shared: Arc<Shared>, points: Vec<SavePoint>, mut stop: watch::Receiver<bool>) {
    let shortest = points.iter().map(|p| p.after_ms).min().unwrap_or(1000);
    let mut tick = tokio::time::interval(Duration::from_millis((shortest / 2).clamp(10, 1000)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut last_save = Instant::now();
    let mut not_before = Instant::now();
    loop {
        let wanted = tokio::select! {
            _ = tick.tick() => {
                let changes = shared.persistence.status(&shared.engine.store).changes;
                Instant::now() >= not_before
                    && save_point_reached(&points, last_save.elapsed(), changes)
            }
            _ = shared.persistence.background_request.notified() => true,
            _ = stop.changed() => return,
        };
        if wanted {
            // Errors are logged and shown in INFO.
            match save(shared.clone()).await {
                Ok(()) => last_save = Instant::now(),
                Err(_) => not_before = Instant::now() + RETRY_AFTER,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_save_point_needs_both_its_time_and_its_changes() {
        let points = crate::config::SavePoint::redis_default();
        let secs = Duration::from_secs;
        assert!(!save_point_reached(&points, secs(59), 1_000_000));
        assert!(save_point_reached(&points, secs(60), 10_000));
        assert!(!save_point_reached(&points, secs(299), 9_999));
        assert!(save_point_reached(&points, secs(300), 100));
        assert!(!save_point_reached(&points, secs(3599), 99));
        assert!(save_point_reached(&points, secs(3600), 1));
        assert!(!save_point_reached(&points, secs(100_000), 0));
        assert!(!save_point_reached(&[], secs(100_000), 1_000_000));
    }
}
