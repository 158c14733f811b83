//! Counters and latency histograms behind `INFO` and the Prometheus
//! endpoint ([`endpoint`]: `--metrics-addr`, `/metrics` and `/healthz`).
//! Relaxed atomics in per-thread stripes: cheap on the hot path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::limiter::Algorithm;

pub mod endpoint;
pub mod top;

/// Index of the policy counters in `allowed` and `denied`.
pub const POLICY: usize = 6;

/// Upper bounds of the latency histogram buckets, in seconds.
const BOUNDS: [f64; 16] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// A histogram as read: sum in seconds, count, (upper bound, count) per bucket.
pub(crate) type HistogramData = (f64, u64, Vec<(f64, u64)>);

/// A lock-free latency histogram (cumulative on encoding).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let i = BOUNDS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BOUNDS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// (sum in seconds, count, per-bucket counts by upper bound); the
    /// encoder makes the buckets cumulative.
    fn snapshot(&self) -> HistogramData {
        let out: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    BOUNDS.get(i).copied().unwrap_or(f64::INFINITY),
                    b.load(Ordering::Relaxed),
                )
            })
            .collect();
        let count = out.iter().map(|b| b.1).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, out)
    }
}

/// Counters one thread writes: padded to its own cache lines, so that
/// threads counting at once never share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    commands: AtomicU64,
    allowed: [AtomicU64; 7],
    denied: [AtomicU64; 7],
    check_latency: [Histogram; 7],
}

/// How many stripes the hot counters are split into.
const STRIPES: usize = 16;

/// One check in this many (per thread) is timed for the latency histogram,
/// which therefore holds a sample: its count is the checks timed, not the
/// checks answered (`tollgate_checks` counts those exactly). Timing every
/// check (two clock reads) cost about 4% of a check.
pub const SAMPLE_EVERY: u64 = 8;

/// True for every `SAMPLE_EVERY`-th check on this thread.
pub fn sample_this_one() -> bool {
    thread_local! {
        static SEEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    SEEN.with(|seen| {
        let n = seen.get().wrapping_add(1);
        seen.set(n);
        n % SAMPLE_EVERY == 0
    })
}

/// This thread's stripe index.
fn stripe_index() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static INDEX: usize = (NEXT.fetch_add(1, Ordering::Relaxed) as usize) % STRIPES;
    }
    INDEX.with(|i| *i)
}

/// The server's counters. The per-check ones are striped per thread and
/// summed when read; the rare ones are plain atomics.
#[derive(Debug)]
pub struct Metrics {
    stripes: Box<[Stripe]>,
    pub connections_received: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// `AUTH` (or `HELLO ... AUTH`) with a wrong user or password.
    pub auth_failures: AtomicU64,
    /// How often the failed `AUTH`s are logged.
    pub auth_failure_log: crate::throttle_log::Throttled,
    /// Keyed commands sent elsewhere (`MOVED`) or asked to retry
    /// (`TRYAGAIN`) in cluster mode.
    pub cluster_moved: AtomicU64,
    pub cluster_tryagain: AtomicU64,
    /// Reservations opened (`LIMIT.RESERVE` admitted), settled
    /// (`LIMIT.SETTLE`) and refunded (`LIMIT.REFUND`).
    pub reservations_opened: AtomicU64,
    pub reservations_settled: AtomicU64,
    pub reservations_refunded: AtomicU64,
    /// The heaviest keys by checks and by denials (`LIMIT.TOP`).
    pub top: top::Top,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            connections_received: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            protocol_errors: AtomicU64::new(0),
            auth_failures: AtomicU64::new(0),
            auth_failure_log: Default::default(),
            cluster_moved: AtomicU64::new(0),
            cluster_tryagain: AtomicU64::new(0),
            reservations_opened: AtomicU64::new(0),
            reservations_settled: AtomicU64::new(0),
            reservations_refunded: AtomicU64::new(0),
            top: Default::default(),
        }
    }
}

/// Adds one to a counter only this thread's stripe writes.
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Index of `algorithm` in the per-algorithm counters.
    pub fn series(algorithm: Algorithm) -> usize {
        Algorithm::ALL
            .iter()
            .position(|a| *a == algorithm)
            .unwrap_or(0)
    }

    fn mine(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    /// Counts one command.
    pub fn command(&self) {
        bump(&self.mine().commands);
    }

    /// Counts one final check decision of `series`.
    pub fn record(&self, series: usize, allowed: bool) {
        let stripe = self.mine();
        bump(if allowed {
            &stripe.allowed[series]
        } else {
            &stripe.denied[series]
        });
    }

    /// Counts one final decision on `key`: by `series`, and (sampled) for
    /// `LIMIT.TOP`.
    #[inline]
    pub fn decided(
        &self,
        series: usize,
        key: &[u8],
        allowed: bool,
        clock: &dyn crate::clock::Clock,
    ) {
        self.record(series, allowed);
        self.top.record(key, allowed, clock);
    }

    /// Records how long a sampled, answered check of `series` took.
    pub fn observe_check(&self, series: usize, took: Duration) {
        self.mine().check_latency[series].observe(took);
    }

    pub fn commands(&self) -> u64 {
        self.stripes.iter().map(|s| Metrics::get(&s.commands)).sum()
    }

    pub fn allowed(&self, series: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| Metrics::get(&s.allowed[series]))
            .sum()
    }

    pub fn denied(&self, series: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| Metrics::get(&s.denied[series]))
            .sum()
    }

    /// The latency histogram of `series`, summed over the stripes.
    pub(crate) fn latency(&self, series: usize) -> HistogramData {
        let mut total: Option<HistogramData> = None;
        for s in self.stripes.iter() {
            let (sum, count, buckets) = s.check_latency[series].snapshot();
            total = Some(match total {
                None => (sum, count, buckets),
                Some((ts, tc, mut tb)) => {
                    for (t, b) in tb.iter_mut().zip(&buckets) {
                        t.1 += b.1;
                    }
                    (ts + sum, tc + count, tb)
                }
            });
        }
        total.unwrap_or_default()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// The label value of series `i`.
pub(crate) fn series_name(i: usize) -> &'static str {
    Algorithm::ALL.get(i).map_or("policy", |a| a.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counters_sum_over_threads() {
        let m = std::sync::Arc::new(Metrics::default());
        std::thread::scope(|s| {
            for _ in 0..4 {
                let m = m.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        m.command();
                        m.record(2, true);
                        m.observe_check(2, Duration::from_micros(1));
                    }
                    m.record(POLICY, false);
                });
            }
        });
        assert_eq!(
            (m.commands(), m.allowed(2), m.denied(POLICY)),
            (4000, 4000, 4)
        );
        assert_eq!(m.latency(2).1, 4000, "one observation per timed check");
    }

    #[test]
    fn histogram_counts_each_bucket() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(3));
        h.observe(Duration::from_micros(30));
        h.observe(Duration::from_secs(5));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 5.000_033).abs() < 1e-9);
        assert_eq!(buckets[0], (0.000_005, 1));
        assert_eq!(buckets[3], (0.000_05, 1));
        assert_eq!(buckets[4], (0.000_1, 0));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
    }
}
