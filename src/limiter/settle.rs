//! Settling a reservation: units taken at `taken_at` (the reserve) are
//! adjusted at `now`, once the true cost is known. Less than reserved gives
//! the difference back; more takes the extra, even into debt.
//!
//! - Token bucket and GCRA: the "full again" time (the TAT) moves back by
//!   the units given back (not before `now`: never past full), or on by the
//!   units taken, past the capacity if need be. A key in debt denies every
//!   request, a look (cost 0) included, until refill has paid it back.
//! - Fixed window: the count of the reservation's window, while it is
//!   current. It may go past the limit; the window's end clears it.
//! - Sliding log: the entry the reservation was recorded in, while it is
//!   still in the window (the units keep their time of admission).
//! - Sliding window: the bucket the reservation was counted in, while it
//!   still weighs in the window.
//! - Leaky bucket: refused (see [`super::refund::NoRefund`]).
//!
//! A window that has passed is not touched: the units it held have left
//! anyway, and a settle after it changes nothing (and says so).

use super::fixed_window::FixedWindow;
use super::refund::NoRefund;
use super::time::ScaledTime;
use super::{Algorithm, MAX_FILL_NS, MAX_FILL_TEXT, Params, State};

/// What a settle does to the units reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjust {
    /// The true cost was lower: give this many back.
    GiveBack(u64),
    /// The true cost was higher: take this many more.
    Charge(u64),
}

impl Adjust {
    /// The adjustment from `reserved` units to `actual` ones.
    pub fn between(reserved: u64, actual: u64) -> Adjust {
        if actual >= reserved {
            Adjust::Charge(actual - reserved)
        } else {
            Adjust::GiveBack(reserved - actual)
        }
    }
}

/// Why a settle changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsettled {
    #[error(transparent)]
    NoRefund(#[from] NoRefund),
    /// The extra would put the key further in debt than any time the
    /// server can state exactly.
    #[error("the extra units would leave the key in debt for more than {MAX_FILL_TEXT}")]
    TooDeep,
}

impl State {
    /// Applies `adjust` to units reserved at `taken_at` under `params`, at
    /// `now`. Answers whether the reservation's window was still current
    /// (`false`: the state is unchanged). On an error nothing changes.
    pub fn settle(
        &mut self,
        params: &Params,
        now: u64,
        taken_at: u64,
        adjust: Adjust,
    ) -> Result<bool, Unsettled> {
        match self {
            State::TokenBucket(s) => tat_settle(&mut s.full_at, params, now, adjust).map(|()| true),
            State::Gcra(s) => tat_settle(&mut s.tat, params, now, adjust).map(|()| true),
            State::FixedWindow(s) => window_settle(s, params, now, taken_at, adjust),
            State::SlidingLog(s) => s.settle_at(params, now, taken_at, adjust),
            State::SlidingWindow(s) => s.settle_at(params, now, taken_at, adjust),
            State::LeakyBucket(_) => Err(NoRefund(Algorithm::LeakyBucket).into()),
        }
    }
}

/// Moves a TAT back (not before `now`) or on (into debt, at most
/// [`MAX_FILL_NS`] ahead of `now`).
fn tat_settle(tat: &mut ScaledTime, p: &Params, now: u64, adjust: Adjust) -> Result<(), Unsettled> {
    let interval = u128::from(p.window);
    let now_s = u128::from(now) * u128::from(p.limit);
    let stored = tat.scaled(p.limit);
    match adjust {
        Adjust::GiveBack(units) => {
            let ahead = stored.saturating_sub(now_s);
            let back = (u128::from(units) * interval).min(ahead);
            if back > 0 {
                *tat = ScaledTime::from_scaled(now_s + ahead - back, p.limit);
            }
        }
        Adjust::Charge(units) => {
            let new = stored.max(now_s) + u128::from(units) * interval;
            if new - now_s > u128::from(MAX_FILL_NS) * u128::from(p.limit) {
                return Err(Unsettled::TooDeep);
            }
            if units > 0 {
                *tat = ScaledTime::from_scaled(new, p.limit);
            }
        }
    }
    Ok(())
}

/// Adjusts the count of the reservation's window while it is current.
fn window_settle(
    s: &mut FixedWindow,
    p: &Params,
    now: u64,
    taken_at: u64,
    adjust: Adjust,
) -> Result<bool, Unsettled> {
    let start = now - now % p.window;
    if taken_at < start {
        return Ok(false);
    }
    match adjust {
        Adjust::GiveBack(units) if s.start == start => s.count -= s.count.min(units),
        Adjust::GiveBack(_) => {} // the count was dropped (a reset): nothing to give
        Adjust::Charge(units) => {
            let count = if s.start == start { s.count } else { 0 };
            let count = count.checked_add(units).ok_or(Unsettled::TooDeep)?;
            *s = FixedWindow { start, count };
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod props;
