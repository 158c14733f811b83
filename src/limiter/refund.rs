//! Refunds: units given back to a key at once (a request that was counted
//! but did not happen), never past fresh, so a key never holds more than
//! its capacity.
//!
//! - Token bucket and GCRA: the "full again" time (the TAT) moves back by
//!   `units × window ÷ limit`, not before `now`.
//! - Fixed window: the count of the current window falls; units counted
//!   in a window that has ended are gone anyway.
//! - Sliding log and sliding window: units still counted in the window are
//!   taken out, newest first.
//! - Leaky bucket: refused. Its queue is a schedule of turns already
//!   promised to callers; taking units out of it has no meaning.

use super::{Algorithm, Params, State};
use super::{fixed_window::FixedWindow, time::ScaledTime};

/// A refund the algorithm cannot take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} cannot give units back: its queue holds turns already promised", .0.name())]
pub struct NoRefund(pub Algorithm);

impl State {
    /// Gives `units` back at `now` under `params`; answers how many the
    /// state held to give (at most `units`: a refund never goes past fresh).
    pub fn refund(&mut self, params: &Params, now: u64, units: u64) -> Result<u64, NoRefund> {
        Ok(match self {
            State::TokenBucket(s) => tat_back(&mut s.full_at, params, now, units),
            State::Gcra(s) => tat_back(&mut s.tat, params, now, units),
            State::FixedWindow(s) => window_back(s, params, now, units),
            State::SlidingLog(s) => s.give_units_back(params, now, units),
            State::SlidingWindow(s) => s.give_units_back(params, now, units),
            State::LeakyBucket(_) => return Err(NoRefund(Algorithm::LeakyBucket)),
        })
    }
}

/// Moves a TAT back by `units` emission intervals, not before `now`.
fn tat_back(tat: &mut ScaledTime, p: &Params, now: u64, units: u64) -> u64 {
    let interval = u128::from(p.window);
    let now_s = u128::from(now) * u128::from(p.limit);
    let ahead = tat.scaled(p.limit).saturating_sub(now_s);
    let back = (u128::from(units) * interval).min(ahead);
    if back > 0 {
        *tat = ScaledTime::from_scaled(now_s + ahead - back, p.limit);
    }
    // Whole units given back; a part of one counts as one.
    u64::try_from(back.div_ceil(interval)).map_or(units, |n| n.min(units))
}

/// Lowers the count of the current window.
fn window_back(s: &mut FixedWindow, p: &Params, now: u64, units: u64) -> u64 {
    if s.start != now - now % p.window {
        return 0;
    }
    let taken = s.count.min(units);
    s.count -= taken;
    taken
}

#[cfg(test)]
mod tests;
