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
