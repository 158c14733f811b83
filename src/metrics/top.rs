//! Who is being limited: the heaviest keys by checks and by denials over
//! the last minute or two, in bounded memory (`LIMIT.TOP`, and a top ten
//! in `/metrics`).
//!
//! Counting every check exactly would cost a hash-map update per check;
//! instead one check in [`SAMPLE_EVERY`] on average (random gaps, per
//! thread) is fed, with that weight, to a Filtered Space-Saving sketch of
//! [`COUNTERS`] counters (the `topk` crate). The hot path pays a
//! thread-local countdown.
//!
//! What a reported count means, for a key checked `f` times in the span:
//! - the sketch sees the sampled stream `s` (each of the `f` checks with
//!   probability 1/16, weight 16) and reports `estimate >= s >= estimate -
//!   error` (Space-Saving's guarantee; `error` is in the reply);
//! - `s` is `f` plus sampling noise of standard deviation about `sqrt(16 f)`
//!   (4% at 10,000 checks, 1.3% at 100,000).
//!
//! Any key with more than `total / COUNTERS` of the sampled weight is
//! always in the sketch. The span is the current period of [`PERIOD_NS`]
//! and the one before it: between one and two minutes.
//!
//! Counts live in [`STRIPES`] sketches (a thread picks one), each with a
//! current and a previous period, merged when read.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use topk::FilteredSpaceSaving;

use crate::clock::Clock;

/// One check in this many is counted (on average), with this weight.
pub const SAMPLE_EVERY: u64 = 16;
/// Counters per sketch.
pub const COUNTERS: usize = 256;
/// The length of a period: counts cover the current one and the one before.
pub const PERIOD_NS: u64 = 60 * 1_000_000_000;
/// Sketches a thread may pick from (a sampled check locks one).
pub const STRIPES: usize = 4;
/// Longest key kept whole; longer ones are counted as their first bytes
/// followed by `...`.
pub const MAX_KEY: usize = 200;
/// Keys shown in `/metrics`, per ranking.
pub const METRICS_TOP: usize = 10;

type Sketch = FilteredSpaceSaving<Box<[u8]>>;

/// Which ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranking {
    Checks,
    Denials,
}

/// One key of a ranking: its estimated count and how far above the
/// sampled count it may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heavy {
    pub key: Box<[u8]>,
    pub count: u64,
    pub error: u64,
}

/// The counts of one period.
struct Period {
    index: u64,
    checks: Sketch,
    denials: Sketch,
}

impl Period {
    fn new(index: u64) -> Period {
        Period {
            index,
            checks: Sketch::new(COUNTERS),
            denials: Sketch::new(COUNTERS),
        }
    }

    fn sketch(&self, ranking: Ranking) -> &Sketch {
        match ranking {
            Ranking::Checks => &self.checks,
            Ranking::Denials => &self.denials,
        }
    }
}

struct Stripe {
    current: Period,
    previous: Period,
}

impl Stripe {
    /// Moves on to period `index` (keeping the one before it, if it is the
    /// current one).
    fn rotate(&mut self, index: u64) {
        if self.current.index == index {
            return;
        }
        let old = std::mem::replace(&mut self.current, Period::new(index));
        self.previous = if old.index + 1 == index {
            old
        } else {
            Period::new(index.saturating_sub(1))
        };
    }
}

/// The heavy-hitter counts.
pub struct Top {
    stripes: Box<[Mutex<Stripe>]>,
}

impl std::fmt::Debug for Top {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Top")
    }
}

impl Default for Top {
    fn default() -> Top {
        let stripe = || {
            Mutex::new(Stripe {
                current: Period::new(0),
                previous: Period::new(0),
            })
        };
        Top {
            stripes: (0..STRIPES).map(|_| stripe()).collect(),
        }
    }
}

/// A countdown to the next sampled check, with random gaps from 1 to
/// `2 * SAMPLE_EVERY - 1` (mean [`SAMPLE_EVERY`]), so that no periodic
/// pattern of keys can hide from it. Each thread has one.
pub struct Sampler {
    left: u64,
    rng: u64,
}

impl Sampler {
    pub fn new(seed: u64) -> Sampler {
        let mut rng = seed | 1;
        Sampler {
            left: gap(&mut rng),
            rng,
        }
    }

    /// Whether this check is counted.
    #[inline]
    pub fn take(&mut self) -> bool {
        self.left -= 1;
        if self.left > 0 {
            return false;
        }
        self.left = gap(&mut self.rng);
        true
    }
}

/// The next gap (xorshift64*).
fn gap(rng: &mut u64) -> u64 {
    *rng ^= *rng >> 12;
    *rng ^= *rng << 25;
    *rng ^= *rng >> 27;
    1 + (rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % (2 * SAMPLE_EVERY - 1)
}

thread_local! {
    static SAMPLER: std::cell::Cell<Sampler> = const { std::cell::Cell::new(Sampler { left: 1, rng: 0 }) };
}

/// Whether this thread's sampler picks this check (the first pick seeds it).
#[inline]
fn sampled() -> bool {
    SAMPLER.with(|cell| {
        let mut s = cell.replace(Sampler { left: 0, rng: 0 });
        if s.rng == 0 {
            s = Sampler::new(thread_seed());
        }
        let picked = s.take();
        cell.set(s);
        picked
    })
}

/// A seed per thread, from the order threads first sample in.
fn thread_seed() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    NEXT.fetch_add(0x6a09_e667_f3bc_c909, Ordering::Relaxed)
}

/// The key as counted: whole up to [`MAX_KEY`] bytes.
fn stored(key: &[u8]) -> Box<[u8]> {
    if key.len() <= MAX_KEY {
        return key.into();
    }
    let mut cut = key[..MAX_KEY].to_vec();
    cut.extend_from_slice(b"...");
    cut.into()
}

impl Top {
    /// Counts a check of `key` (denied unless `allowed`), if this thread's
    /// sampler picks it.
    #[inline]
    pub fn record(&self, key: &[u8], allowed: bool, clock: &dyn Clock) {
        if sampled() {
            self.count(key, allowed, clock.now(), SAMPLE_EVERY, stripe());
        }
    }

    /// [`Top::record`] for a key that is built only if the check is
    /// sampled.
    #[inline]
    pub fn record_with(&self, allowed: bool, clock: &dyn Clock, key: impl FnOnce() -> Vec<u8>) {
        if sampled() {
            self.count(&key(), allowed, clock.now(), SAMPLE_EVERY, stripe());
        }
    }

    /// Adds `weight` checks of `key` at `now` to stripe `stripe`.
    #[cold]
    pub fn count(&self, key: &[u8], allowed: bool, now: u64, weight: u64, stripe: usize) {
        let mut s = self.stripes[stripe % STRIPES].lock();
        s.rotate(now / PERIOD_NS);
        let key = stored(key);
        if !allowed {
            s.current.denials.insert(key.clone(), weight);
        }
        s.current.checks.insert(key, weight);
    }

    /// The `n` heaviest keys of `ranking` at `now`, heaviest first (ties
    /// by key), over the current period and the one before.
    pub fn heaviest(&self, ranking: Ranking, n: usize, now: u64) -> Vec<Heavy> {
        let index = now / PERIOD_NS;
        let mut all = Sketch::new(COUNTERS);
        for stripe in self.stripes.iter() {
            let s = stripe.lock();
            for period in [&s.current, &s.previous] {
                if period.index + 1 >= index && period.index <= index {
                    // Same k everywhere: a merge cannot fail.
                    let _ = all.merge(period.sketch(ranking));
                }
            }
        }
        let mut out: Vec<Heavy> = all
            .into_iter()
            .filter(|(_, c)| c.estimated_count() > 0)
            .map(|(key, c)| Heavy {
                key,
                count: c.estimated_count(),
                error: c.associated_error(),
            })
            .collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        out.truncate(n);
        out
    }
}

/// This thread's stripe.
fn stripe() -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) as usize % STRIPES;
    }
    INDEX.with(|i| *i)
}

#[cfg(test)]
mod tests;
