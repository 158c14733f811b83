//! Helpers shared by the algorithms' unit tests.
use super::*;

pub const SECOND: u64 = 1_000 * NANOS_PER_MS;
/// A start time well after the epoch, aligned to a whole day.
pub const T0: u64 = 1_700_006_400 * SECOND;

pub fn params(algorithm: Algorithm, limit: u64, window: u64) -> Params {
    Params::new(algorithm, limit, window)
}

/// Runs one committing check of `cost` on `state`.
pub fn take(state: &mut State, p: &Params, now: u64, cost: u64) -> Decision {
    state.check(p, now, Request::take(cost))
}

/// Units counted at a time (negative: given back).
pub type Events = Vec<(u64, i128)>;

/// Whether the units consumed fit the rule for a request admitted at `t`.
pub fn within(p: &Params, events: &Events, t: u64) -> bool {
    let sum = |from: u64| -> i128 {
        events
            .iter()
            .filter(|(at, _)| *at >= from && *at <= t)
            .map(|(_, n)| n)
            .sum()
    };
    let (limit, window) = (i128::from(p.limit), i128::from(p.window));
    match p.algorithm {
        // Over every span [s, t]: BURST plus the refill in it.
        Algorithm::TokenBucket | Algorithm::Gcra => events.iter().all(|&(s, _)| {
            s > t || sum(s) * window <= i128::from(p.burst) * window + i128::from(t - s) * limit
        }),
        Algorithm::FixedWindow => sum(t - t % p.window) <= limit,
        Algorithm::SlidingLog => sum((t + 1).saturating_sub(p.window)) <= limit,
        Algorithm::SlidingWindow => {
            let width = p.window / u64::from(p.buckets);
            let first = (t / width + 1).saturating_sub(u64::from(p.buckets));
            sum(first * width) <= limit
        }
        Algorithm::LeakyBucket => unreachable!("the leaky bucket takes no settle"),
    }
}
