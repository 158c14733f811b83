//! What the process's memory looks like: resident size from /proc, and,
//! when the binary runs on jemalloc (as Redis does), the allocator's own
//! figures. The binary says which allocator it installed at start.

use std::sync::atomic::{AtomicBool, Ordering};

static JEMALLOC: AtomicBool = AtomicBool::new(false);
/// The allocator's name when it is not jemalloc (whose figures we read).
static OTHER: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Called by the binary when another allocator than jemalloc or the
/// system's is its global allocator: INFO names it.
pub fn using(name: &'static str) {
    let _ = OTHER.set(name);
}

/// Called by the binary when jemalloc is its global allocator. Turns on
/// jemalloc's background threads, as Redis does (`jemalloc-bg-thread yes`):
/// freed memory is then given back to the system on a timer, also while
/// the server is idle (otherwise only allocations drive the purging).
pub fn using_jemalloc() {
    JEMALLOC.store(true, Ordering::Relaxed);
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(
            "jemalloc background threads not started ({e}): freed memory goes back to the system only while the server allocates"
        );
    }
}

/// Resident memory of this process in bytes, from /proc (0 where unknown).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// The figures `INFO memory` shows, in Redis's names.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    /// Bytes the program holds (jemalloc's `allocated`; RSS without it).
    pub used: u64,
    pub rss: u64,
    /// jemalloc's `active` and `resident`; 0 without it.
    pub allocator_active: u64,
    pub allocator_resident: u64,
    pub allocator: &'static str,
}

impl Memory {
    /// RSS over what the program holds, as Redis's
    /// `mem_fragmentation_ratio`.
    pub fn fragmentation(&self) -> f64 {
        if self.used == 0 {
            return 0.0;
        }
        self.rss as f64 / self.used as f64
    }
}

/// The figures now.
pub fn now() -> Memory {
    let rss = rss_bytes();
    if JEMALLOC.load(Ordering::Relaxed) {
        use tikv_jemalloc_ctl::{epoch, stats};
        // The statistics are cached until the epoch moves.
        let _ = epoch::advance();
        let read = |r: tikv_jemalloc_ctl::Result<usize>| r.map_or(0, |v| v as u64);
        return Memory {
            used: read(stats::allocated::read()),
            rss,
            allocator_active: read(stats::active::read()),
            allocator_resident: read(stats::resident::read()),
            allocator: "jemalloc",
        };
    }
    Memory {
        used: rss,
        rss,
        allocator_active: 0,
        allocator_resident: 0,
        allocator: OTHER.get().copied().unwrap_or("libc"),
    }
}
