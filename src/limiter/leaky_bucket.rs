//! Leaky bucket as a queue: up to BURST units wait in the bucket, which
//! drains `limit` per `window` at a steady pace (one unit every
//! `T = window / limit`). An admitted request is answered when its turn to
//! drain comes, so replies reach the caller evenly spaced; a full queue
//! denies at once.
//!
//! The only state is `next`, the time the next unit may drain. A unit that
//! drains at `s` occupies the bucket during `[s, s + T)`, so the level at
//! `now` is `ceil((next - now) / T)`.

use super::{Decision, Params, Request, Retry, ScaledTime, ceil_div, sat_u64};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeakyBucket {
    /// When the next admitted unit may drain (exact, in units of 1/limit ns).
    pub next: ScaledTime,
}

impl LeakyBucket {
    /// Units in the bucket at `now`.
    pub fn level(&self, p: &Params, now: u64) -> u64 {
        let backlog = self.backlog(p, now);
        sat_u64(ceil_div(backlog, u128::from(p.window)))
    }

    /// How far `next` is ahead of `now`, in units of 1/limit ns.
    fn backlog(&self, p: &Params, now: u64) -> u128 {
        let now_s = u128::from(now) * u128::from(p.limit);
        self.next.scaled(p.limit).saturating_sub(now_s)
    }

    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        let limit = u128::from(p.limit);
        let interval = u128::from(p.window);
        let to_ns = |scaled: u128| sat_u64(ceil_div(scaled, limit));
        let backlog = self.backlog(p, now);
        let level = sat_u64(ceil_div(backlog, interval));
        let cost = request.cost;
        let wait_cap = request.max_wait.map(|w| u128::from(w) * limit);

        let fits = level.checked_add(cost).is_some_and(|l| l <= p.burst);
        let in_time = wait_cap.is_none_or(|cap| backlog <= cap);
        if fits && in_time {
            let after = backlog + u128::from(cost) * interval;
            if request.commit && cost > 0 {
                let now_s = u128::from(now) * limit;
                self.next = ScaledTime::from_scaled(now_s + after, p.limit);
            }
            return Decision {
                allowed: true,
                limit: p.burst,
                remaining: p.burst - level - cost,
                retry: Retry::After(0),
                reset_after: to_ns(after),
                delay: if cost > 0 && request.commit {
                    to_ns(backlog)
                } else {
                    0
                },
            };
        }
        let remaining = p.burst.saturating_sub(level);
        let reset_after = to_ns(backlog);
        if cost > p.burst {
            return Decision::never(p.burst, remaining, reset_after);
        }
        // Allowed once the backlog has drained to both (BURST - cost) units
        // and the caller's wait cap.
        let mut target = u128::from(p.burst - cost) * interval;
        if let Some(cap) = wait_cap {
            target = target.min(cap);
        }
        Decision {
            allowed: false,
            limit: p.burst,
            remaining,
            retry: Retry::After(to_ns(backlog.saturating_sub(target))),
            reset_after,
            delay: 0,
        }
    }

    /// Gives back the slot of an admitted request whose caller left before
    /// its turn: only when it is the last in the queue (its units end at
    /// `end`), so that nobody behind it is moved.
    pub fn give_back(&mut self, p: &Params, end: ScaledTime, cost: u64) -> bool {
        if self.next != end {
            return false;
        }
        let scaled = end.scaled(p.limit);
        let back = scaled.saturating_sub(u128::from(cost) * u128::from(p.window));
        self.next = ScaledTime::from_scaled(back, p.limit);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Request, Retry, State};

    #[test]
    fn admitted_requests_are_spaced_one_interval_apart() {
        let p = params(Algorithm::LeakyBucket, 4, SECOND); // T = 250 ms
        let mut s = State::fresh(&p);
        let delays: Vec<u64> = (0..4).map(|_| take(&mut s, &p, T0, 1).delay).collect();
        assert_eq!(delays, [0, 250_000_000, 500_000_000, 750_000_000]);
        let d = take(&mut s, &p, T0, 1);
        assert!(!d.allowed, "a full queue denies at once");
        assert_eq!(d.retry, Retry::After(250_000_000));
        assert_eq!(d.reset_after, SECOND);
        assert!(!take(&mut s, &p, T0 + 249_999_999, 1).allowed);
        let d = take(&mut s, &p, T0 + 250_000_000, 1);
        assert!(d.allowed);
        assert_eq!(d.delay, 750_000_000);
    }

    #[test]
    fn wait_cap_denies_when_turn_is_too_far() {
        let p = params(Algorithm::LeakyBucket, 4, SECOND);
        let mut s = State::fresh(&p);
        take(&mut s, &p, T0, 1);
        take(&mut s, &p, T0, 1);
        let capped = Request {
            cost: 1,
            commit: true,
            max_wait: Some(100_000_000),
        };
        let d = s.check(&p, T0, capped);
        assert!(!d.allowed);
        // The turn is 500 ms away; it comes within 100 ms after 400 ms.
        assert_eq!(d.retry, Retry::After(400_000_000));
        assert!(s.check(&p, T0 + 400_000_000, capped).allowed);
    }

    #[test]
    fn leaving_last_waiter_gives_its_slot_back() {
        let p = params(Algorithm::LeakyBucket, 4, SECOND);
        let mut lb = super::LeakyBucket::default();
        lb.check(&p, T0, Request::take(1));
        lb.check(&p, T0, Request::take(1));
        let end = lb.next;
        assert_eq!(lb.level(&p, T0), 2);
        assert!(lb.give_back(&p, end, 1));
        assert_eq!(lb.level(&p, T0), 1);
        assert!(!lb.give_back(&p, end, 1), "only the tail may leave");
    }
}
