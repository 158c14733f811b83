//! Token bucket: a bucket of BURST tokens, refilled continuously at `limit`
//! per `window`; a request takes `cost` tokens or is denied. A new key
//! starts full.
//!
//! The state is the pair (tokens, last refill) folded into one exact value:
//! the time the bucket will be full again, `full_at`. At `now` the bucket
//! holds `BURST - (full_at - now) * limit / window` tokens (whole tokens are
//! `remaining`); taking `c` tokens moves `full_at` on by `c * window / limit`.
//! Kept in units of `1/limit` ns, so a rate such as 3 per second never
//! drifts, and in 16 bytes. The arithmetic is GCRA's (`full_at` is its
//! theoretical arrival time): the two admit exactly the same requests.

use super::gcra::tat_check;
use super::{Decision, Params, Request, ScaledTime};

/// When the bucket is full again; in the past (or zero) when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenBucket {
    pub full_at: ScaledTime,
}

impl TokenBucket {
    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        tat_check(&mut self.full_at, p, now, request)
    }

    /// When the bucket is full again.
    pub fn fresh_at(&self) -> u64 {
        self.full_at.ceil_ns()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Retry, State};

    #[test]
    fn starts_full_and_refills_continuously() {
        let p = params(Algorithm::TokenBucket, 10, SECOND);
        let mut s = State::fresh(&p);
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
        let mut s = State::fresh(&p);
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
        let mut s = State::fresh(&p);
        let before = s.clone();
        let d = take(&mut s, &p, T0, 11);
        assert!(!d.allowed);
        assert_eq!(d.retry, Retry::Never);
        assert_eq!(s, before);
    }
}
