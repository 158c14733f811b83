//! GCRA, the generic cell rate algorithm: one theoretical arrival time (TAT)
//! per key. Each unit moves the TAT on by the emission interval
//! `T = window / limit`; a request is allowed while the TAT it would set is at
//! most `BURST * T` ahead of now.
//!
//! The TAT is kept exactly in units of `1/limit` ns (see [`ScaledTime`]).
//! GCRA and the token bucket admit the same requests; they differ in what
//! they store.

use super::{Decision, Params, Request, Retry, ScaledTime, ceil_div, floor_div, sat_u64};

/// The theoretical arrival time; in the past (or zero) when fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Gcra {
    pub tat: ScaledTime,
}

impl Gcra {
    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        tat_check(&mut self.tat, p, now, request)
    }

    /// When the limiter is fresh again: the TAT.
    pub fn fresh_at(&self) -> u64 {
        self.tat.ceil_ns()
    }
}

/// The GCRA step on a theoretical arrival time `tat` (exact, in units of
/// `1/limit` ns); also the token bucket's, whose "full again at" time is the
/// same quantity.
pub(crate) fn tat_check(
    tat_ref: &mut ScaledTime,
    p: &Params,
    now: u64,
    request: Request,
) -> Decision {
    let limit = u128::from(p.limit);
    let interval = u128::from(p.window); // T in units of 1/limit ns
    let tolerance = u128::from(p.burst) * interval;
    let now_s = u128::from(now) * limit;
    let stored = tat_ref.scaled(p.limit);
    let (base, tat) = if stored > now_s {
        (*tat_ref, stored)
    } else {
        (ScaledTime::at(now), now_s)
    };
    let step = u128::from(request.cost) * interval;
    let new_tat = tat + step;

    let to_ns = |scaled: u128| sat_u64(ceil_div(scaled, limit));
    let remaining_at =
        |tat: u128| sat_u64(floor_div(tolerance.saturating_sub(tat - now_s), interval));

    if new_tat - now_s <= tolerance {
        if request.commit && request.cost > 0 {
            *tat_ref = base.plus(step, p.limit);
        }
        return Decision {
            allowed: true,
            limit: p.burst,
            remaining: remaining_at(new_tat),
            retry: Retry::After(0),
            reset_after: to_ns(new_tat - now_s),
            delay: 0,
        };
    }
    let remaining = remaining_at(tat);
    let reset_after = to_ns(tat - now_s);
    if request.cost > p.burst {
        return Decision::never(p.burst, remaining, reset_after);
    }
    Decision {
        allowed: false,
        limit: p.burst,
        remaining,
        retry: Retry::After(to_ns(new_tat - now_s - tolerance)),
        reset_after,
        delay: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Retry, State};

    #[test]
    fn allows_burst_then_one_per_interval() {
        let mut p = params(Algorithm::Gcra, 2, SECOND);
        p.burst = 4;
        let mut s = State::fresh(&p);
        for left in (0..4).rev() {
            let d = take(&mut s, &p, T0, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let d = take(&mut s, &p, T0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::After(500_000_000));
        assert_eq!(d.reset_after, 2 * SECOND);
        assert!(!take(&mut s, &p, T0 + 499_999_999, 1).allowed);
        assert!(take(&mut s, &p, T0 + 500_000_000, 1).allowed);
    }

    #[test]
    fn fresh_key_reports_full_capacity() {
        let p = params(Algorithm::Gcra, 10, SECOND);
        let mut s = State::fresh(&p);
        let d = s.check(
            &p,
            T0,
            super::Request {
                cost: 0,
                commit: true,
                max_wait: None,
            },
        );
        assert!(d.allowed);
        assert_eq!(d.remaining, 10);
        assert_eq!(d.reset_after, 0);
    }
}
