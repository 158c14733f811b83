//! Fixed window counter: at most `limit` units per window, windows aligned
//! to multiples of `window` since the Unix epoch.

use super::{Decision, Params, Request, Retry};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FixedWindow {
    /// Start of the window `count` belongs to.
    pub start: u64,
    pub count: u64,
}

impl FixedWindow {
    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        let start = now - now % p.window;
        let end_in = p.window - now % p.window;
        // Past the limit only in debt (a settle took more than reserved).
        let count = if self.start == start { self.count } else { 0 };
        let reset = |count: u64| if count > 0 { end_in } else { 0 };
        let after = count.saturating_add(request.cost);
        if after <= p.limit {
            if request.commit && request.cost > 0 {
                *self = FixedWindow {
                    start,
                    count: after,
                };
            }
            return Decision {
                allowed: true,
                limit: p.limit,
                remaining: p.limit - after,
                retry: Retry::After(0),
                reset_after: reset(after),
                delay: 0,
            };
        }
        if request.cost > p.limit {
            return Decision::never(p.limit, p.limit.saturating_sub(count), reset(count));
        }
        Decision {
            allowed: false,
            limit: p.limit,
            remaining: p.limit.saturating_sub(count),
            retry: Retry::After(end_in),
            reset_after: reset(count),
            delay: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Retry, State};

    #[test]
    fn windows_align_to_the_epoch() {
        let p = params(Algorithm::FixedWindow, 2, 60 * SECOND);
        let now = T0 + 45 * SECOND; // 15 s before the minute ends
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, now, 1).allowed);
        let d = take(&mut s, &p, now, 1);
        assert_eq!(
            (d.allowed, d.remaining, d.reset_after),
            (true, 0, 15 * SECOND)
        );
        let d = take(&mut s, &p, now, 1);
        assert_eq!(d.retry, Retry::After(15 * SECOND));
        assert!(!take(&mut s, &p, T0 + 60 * SECOND - 1, 1).allowed);
        assert!(take(&mut s, &p, T0 + 60 * SECOND, 1).allowed);
    }

    #[test]
    fn lowering_the_limit_keeps_the_count() {
        let p = params(Algorithm::FixedWindow, 10, SECOND);
        let mut s = State::fresh(&p);
        take(&mut s, &p, T0, 5);
        let lower = params(Algorithm::FixedWindow, 5, SECOND);
        let d = take(&mut s, &lower, T0, 1);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
    }
}
