//! Sliding window log: the time of every admitted request, so that at most
//! `limit` units fall in any span of length `window`. A unit admitted at `t`
//! counts until `t + window`.
//!
//! Exact, at a memory cost of one entry per admitted request in the window.
//! To bound that cost a key keeps at most [`MAX_ENTRIES`] entries; past that
//! a new request is merged into the newest entry, moved to `now`, which only
//! ever makes the log stricter (units expire later), never looser.

use std::collections::VecDeque;

use super::{Decision, Params, Request, Retry};

/// Most log entries one key keeps before merging.
pub const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlidingLog {
    /// (time admitted, units), oldest first.
    pub entries: VecDeque<(u64, u64)>,
    /// Sum of the units in `entries`.
    pub total: u64,
}

impl SlidingLog {
    /// Drops the entries that have left the window at `now`.
    fn prune(&mut self, p: &Params, now: u64) {
        while let Some(&(t, n)) = self.entries.front() {
            if t.saturating_add(p.window) > now {
                break;
            }
            self.entries.pop_front();
            self.total -= n;
        }
    }

    /// When the newest entry leaves the window (0 when empty).
    pub fn fresh_at(&self, p: &Params) -> u64 {
        self.entries
            .back()
            .map_or(0, |&(t, _)| t.saturating_add(p.window))
    }

    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(u64, u64)>()
    }

    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        self.prune(p, now);
        let cost = request.cost;
        let reset_after = |log: &SlidingLog| {
            log.entries
                .back()
                .map_or(0, |&(t, _)| t.saturating_add(p.window).saturating_sub(now))
        };
        let after = self.total.saturating_add(cost);
        if after <= p.limit {
            let fresh_units = if cost > 0 { p.window } else { 0 };
            let reset = reset_after(self).max(fresh_units);
            if request.commit && cost > 0 {
                self.record(now, cost);
            }
            return Decision {
                allowed: true,
                limit: p.limit,
                remaining: p.limit - after,
                retry: Retry::After(0),
                reset_after: reset,
                delay: 0,
            };
        }
        let remaining = p.limit.saturating_sub(self.total);
        if cost > p.limit {
            return Decision::never(p.limit, remaining, reset_after(self));
        }
        // Walk from the oldest entry until enough units have left.
        let room = p.limit - cost;
        let mut left = self.total;
        let mut retry = 0;
        for &(t, n) in &self.entries {
            left -= n;
            if left <= room {
                retry = t.saturating_add(p.window).saturating_sub(now);
                break;
            }
        }
        Decision {
            allowed: false,
            limit: p.limit,
            remaining,
            retry: Retry::After(retry),
            reset_after: reset_after(self),
            delay: 0,
        }
    }

    fn record(&mut self, now: u64, cost: u64) {
        let full = self.entries.len() >= MAX_ENTRIES;
        match self.entries.back_mut() {
            // Same instant (or a clock that stepped back): one entry.
            Some((t, n)) if *t >= now => *n += cost,
            Some((t, n)) if full => {
                *t = now;
                *n += cost;
            }
            _ => self.entries.push_back((now, cost)),
        }
        self.total += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Request, Retry, State};

    #[test]
    fn counts_every_span_exactly() {
        let p = params(Algorithm::SlidingLog, 3, 10 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 1).allowed);
        assert!(take(&mut s, &p, T0 + 4 * SECOND, 2).allowed);
        let d = take(&mut s, &p, T0 + 5 * SECOND, 1);
        assert!(!d.allowed);
        // The first unit leaves at T0 + 10 s.
        assert_eq!(d.retry, Retry::After(5 * SECOND));
        assert_eq!(d.reset_after, 9 * SECOND);
        assert!(!take(&mut s, &p, T0 + 10 * SECOND - 1, 1).allowed);
        assert!(take(&mut s, &p, T0 + 10 * SECOND, 1).allowed);
        // Two units need the entry of T0 + 4 s gone too.
        let d = take(&mut s, &p, T0 + 10 * SECOND, 2);
        assert_eq!(d.retry, Retry::After(4 * SECOND));
    }

    #[test]
    fn dry_run_reports_without_recording() {
        let p = params(Algorithm::SlidingLog, 3, SECOND);
        let mut s = State::fresh(&p);
        let dry = Request::dry(2);
        let d = s.check(&p, T0, dry);
        assert_eq!((d.allowed, d.remaining), (true, 1));
        assert_eq!(s, State::fresh(&p));
    }
}
