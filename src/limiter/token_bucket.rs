//! Token bucket: a bucket of BURST tokens, refilled continuously at `limit`
//! per `window`; a request takes `cost` tokens or is denied. A new key
//! starts full.
//!
//! Tokens are kept exactly: `progress` counts the partial token in units of
//! `1/window` token, each nanosecond adding `limit` of them, so a rate such as
//! 3 per second never drifts.

use super::{Decision, Params, Request, Retry, ceil_div, sat_u64};

/// Whole tokens, the partial token, and when they were last brought up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    pub tokens: u64,
    /// Partial token, `0 <= progress < window` (in units of `1/window` token).
    pub progress: u64,
    /// When `tokens` and `progress` were computed (ns since the epoch).
    pub last: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(p: &Params, now: u64) -> TokenBucket {
        TokenBucket {
            tokens: p.burst,
            progress: 0,
            last: now,
        }
    }

    /// The bucket as it stands at `now` under `p`.
    fn refilled(&self, p: &Params, now: u64) -> TokenBucket {
        let mut next = *self;
        // Numbers may have changed since the last check: re-read under `p`.
        next.tokens = next.tokens.min(p.burst);
        next.progress = next.progress.min(p.window - 1);
        if now > next.last {
            let units =
                u128::from(next.progress) + u128::from(now - next.last) * u128::from(p.limit);
            let gained = units / u128::from(p.window);
            next.progress = (units % u128::from(p.window)) as u64;
            next.tokens = sat_u64(u128::from(next.tokens) + gained).min(p.burst);
            next.last = now;
        }
        if next.tokens == p.burst {
            next.progress = 0;
        }
        next
    }

    /// Nanoseconds until the bucket holds `wanted` tokens (0 if it does).
    fn time_to(&self, p: &Params, wanted: u64) -> u64 {
        if self.tokens >= wanted {
            return 0;
        }
        let units =
            u128::from(wanted - self.tokens) * u128::from(p.window) - u128::from(self.progress);
        sat_u64(ceil_div(units, u128::from(p.limit)))
    }

    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        let mut bucket = self.refilled(p, now);
        let cost = request.cost;
        if cost <= bucket.tokens {
            bucket.tokens -= cost;
            if request.commit {
                *self = bucket;
            }
            return Decision {
                allowed: true,
                limit: p.burst,
                remaining: bucket.tokens,
                retry: Retry::After(0),
                reset_after: bucket.time_to(p, p.burst),
                delay: 0,
            };
        }
        let reset_after = bucket.time_to(p, p.burst);
        if cost > p.burst {
            return Decision::never(p.burst, bucket.tokens, reset_after);
        }
        Decision {
            allowed: false,
            limit: p.burst,
            remaining: bucket.tokens,
            retry: Retry::After(bucket.time_to(p, cost)),
            reset_after,
            delay: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Retry, State};

    #[test]
    fn starts_full_and_refills_continuously() {
        let p = params(Algorithm::TokenBucket, 10, SECOND);
        let mut s = State::fresh(&p, T0);
        for i in 0..10 {
            let d = take(&mut s, &p, T0, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, 9 - i);
        }
        let d = take(&mut s, &p, T0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::After(100_000_000));
        assert_eq!(d.reset_after, SECOND);
        // 100 ms brings one token back, 99.999999 ms does not.
        assert!(!take(&mut s, &p, T0 + 99_999_999, 1).allowed);
        assert!(take(&mut s, &p, T0 + 100_000_000, 1).allowed);
    }

    #[test]
    fn burst_above_limit_and_uneven_rates_stay_exact() {
        let mut p = params(Algorithm::TokenBucket, 3, SECOND);
        p.burst = 5;
        let mut s = State::fresh(&p, T0);
        assert!(take(&mut s, &p, T0, 5).allowed);
        let d = take(&mut s, &p, T0, 1);
        // One token every 333_333_333.33 ns: the first is there after ...334 ns.
        assert_eq!(d.retry, Retry::After(333_333_334));
        // After exactly one second three tokens are back, not two.
        let d = take(&mut s, &p, T0 + SECOND, 3);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn cost_above_burst_never_passes_and_changes_nothing() {
        let p = params(Algorithm::TokenBucket, 10, SECOND);
        let mut s = State::fresh(&p, T0);
        let before = s.clone();
        let d = take(&mut s, &p, T0, 11);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::Never);
        assert_eq!(s, before);
    }
}
