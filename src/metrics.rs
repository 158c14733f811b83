//! Counters behind `INFO`: checks, allowed and denied per algorithm, and
//! connection and command totals. Relaxed atomics: cheap on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::limiter::Algorithm;

#[derive(Debug, Default)]
pub struct Metrics {
    pub commands: AtomicU64,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// Per algorithm, in [`Algorithm::ALL`] order; index 6 counts policy checks.
    pub allowed: [AtomicU64; 7],
    pub denied: [AtomicU64; 7],
}

/// Index of the policy counters in `allowed` and `denied`.
pub const POLICY: usize = 6;

impl Metrics {
    /// Index of `algorithm` in the per-algorithm counters.
    pub fn slot(algorithm: Algorithm) -> usize {
        Algorithm::ALL
            .iter()
            .position(|a| *a == algorithm)
            .unwrap_or(0)
    }

    pub fn record(&self, slot: usize, allowed: bool) {
        let counters = if allowed { &self.allowed } else { &self.denied };
        counters[slot].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
