//! Sliding window log: the time of every admitted request, so that at most
//! `limit` units fall in any span of length `window`. A unit admitted at `t`
//! counts until `t + window`.
//!
//! Exact, at a memory cost of one entry per admitted request in the window.
//! To bound that cost a key keeps at most [`MAX_ENTRIES`] entries; past that
//! a new request is merged into the newest entry, moved to `now`, which only
//! ever makes the log stricter (units expire later), never looser.

use thin_vec::ThinVec;

use super::settle::{Adjust, Unsettled};
use super::{Decision, Params, Request, Retry};

/// Most log entries one key keeps before merging.
pub const MAX_ENTRIES: usize = 65_536;

/// The log, in one allocation (none while empty).
///
/// `log` is empty, or a header pair `(head, total)` followed by
/// `(time admitted, units)` pairs, oldest first: `head` counts the entries
/// that have left the window but are still stored (they are dropped in bulk
/// once they are half the log, so pruning is O(1) amortised), `total` sums
/// the units of the live ones after them.
#[derive(Debug, Clone, Default)]
pub struct SlidingLog {
    log: ThinVec<(u64, u64)>,
}

/// Two logs are equal when their live entries are; dead ones are storage.
impl PartialEq for SlidingLog {
    fn eq(&self, other: &SlidingLog) -> bool {
        self.entries() == other.entries()
    }
}

impl Eq for SlidingLog {}

impl SlidingLog {
    /// A log of these entries (oldest first) whose units sum to `total`.
    pub fn from_entries(entries: &[(u64, u64)], total: u64) -> SlidingLog {
        let mut log = ThinVec::with_capacity(entries.len() + 1);
        if !entries.is_empty() {
            log.push((0, total));
            log.extend_from_slice(entries);
        }
        SlidingLog { log }
    }

    /// The live entries, (time admitted, units), oldest first.
    pub fn entries(&self) -> &[(u64, u64)] {
        match self.log.first() {
            Some(&(head, _)) => &self.log[1 + head as usize..],
            None => &[],
        }
    }

    /// Units in the live entries.
    pub fn total(&self) -> u64 {
        self.log.first().map_or(0, |&(_, total)| total)
    }

    /// Drops the entries that have left the window at `now`.
    fn prune(&mut self, p: &Params, now: u64) {
        let (mut dead, mut total) = match self.log.first() {
            Some(&header) => header,
            None => return,
        };
        for &(t, n) in &self.log[1 + dead as usize..] {
            if t.saturating_add(p.window) > now {
                break;
            }
            dead += 1;
            total -= n;
        }
        let stored = self.log.len() as u64 - 1;
        if dead == stored {
            // All gone: give the memory back.
            self.log = ThinVec::new();
        } else if dead * 2 > stored {
            self.log.drain(1..1 + dead as usize);
            self.log[0] = (0, total);
        } else {
            self.log[0] = (dead, total);
        }
    }

    /// When the newest entry leaves the window (0 when empty).
    pub fn fresh_at(&self, p: &Params) -> u64 {
        self.entries()
            .last()
            .map_or(0, |&(t, _)| t.saturating_add(p.window))
    }

    /// The stored pairs (header pair included): where they start and how many.
    pub fn heap_span(&self) -> (*const (u64, u64), usize) {
        (self.log.as_ptr(), self.log.len())
    }

    pub fn heap_bytes(&self) -> usize {
        if self.log.capacity() == 0 {
            0
        } else {
            // ThinVec's own header (length and capacity) comes first.
            16 + self.log.capacity() * std::mem::size_of::<(u64, u64)>()
        }
    }

    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        self.prune(p, now);
        let cost = request.cost;
        let total = self.total();
        let reset_after = |log: &SlidingLog| {
            log.entries()
                .last()
                .map_or(0, |&(t, _)| t.saturating_add(p.window).saturating_sub(now))
        };
        let after = total.saturating_add(cost);
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
        let remaining = p.limit.saturating_sub(total);
        if cost > p.limit {
            return Decision::never(p.limit, remaining, reset_after(self));
        }
        // Walk from the oldest entry until enough units have left.
        let room = p.limit - cost;
        let mut left = total;
        let mut retry = 0;
        for &(t, n) in self.entries() {
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

    /// Takes up to `units` out of the live entries, newest first (a
    /// refund): the log then holds what it would had those units never
    /// been admitted. Answers the units taken out.
    pub fn give_units_back(&mut self, p: &Params, now: u64, units: u64) -> u64 {
        self.prune(p, now);
        let mut left = units;
        while left > 0 && !self.entries().is_empty() {
            let last = self.log.len() - 1;
            let n = self.log[last].1;
            let taken = n.min(left);
            left -= taken;
            self.log[0].1 -= taken;
            if taken == n {
                self.log.pop();
            } else {
                self.log[last].1 -= taken;
            }
        }
        if self.entries().is_empty() {
            self.log = ThinVec::new();
        }
        units - left
    }

    /// Settles units reserved at `taken_at`: they are in the first live
    /// entry at or after it (an entry moves later only when merged into).
    /// Units given back come out of that entry alone; units taken go into
    /// it, or into a new entry at `taken_at`. Answers whether `taken_at` is
    /// still in the window (`false`: nothing changes).
    pub fn settle_at(
        &mut self,
        p: &Params,
        now: u64,
        taken_at: u64,
        adjust: Adjust,
    ) -> Result<bool, Unsettled> {
        if taken_at.saturating_add(p.window) <= now {
            return Ok(false);
        }
        self.prune(p, now);
        let head = 1 + self.log.first().map_or(0, |&(dead, _)| dead as usize);
        let at = head + self.entries().partition_point(|&(t, _)| t < taken_at);
        match adjust {
            Adjust::GiveBack(units) => {
                let Some(&(_, n)) = self.log.get(at) else {
                    return Ok(true); // nothing of it is left to give
                };
                let taken = n.min(units);
                self.log[0].1 -= taken;
                if taken == n {
                    self.log.remove(at);
                } else {
                    self.log[at].1 -= taken;
                }
                if self.entries().is_empty() {
                    self.log = ThinVec::new();
                }
            }
            Adjust::Charge(0) => {}
            Adjust::Charge(units) => {
                let total = self.total().checked_add(units).ok_or(Unsettled::TooDeep)?;
                if self.log.is_empty() {
                    self.log.push((0, 0));
                }
                match self.log.get_mut(at) {
                    Some((_, n)) => *n += units,
                    None => self.log.push((taken_at, units)),
                }
                self.log[0].1 = total;
            }
        }
        Ok(true)
    }

    /// Adds `cost` units admitted at `now` (the log is pruned to `now`).
    fn record(&mut self, now: u64, cost: u64) {
        if self.log.is_empty() {
            self.log.push((0, 0));
        }
        let full = self.entries().len() >= MAX_ENTRIES;
        let live = self.log.len() - 1 - self.log[0].0 as usize;
        self.log[0].1 += cost;
        match self.log.last_mut() {
            // Same instant (or a clock that stepped back): one entry.
            Some((t, n)) if live > 0 && *t >= now => *n += cost,
            Some((t, n)) if live > 0 && full => {
                *t = now;
                *n += cost;
            }
            _ => self.log.push((now, cost)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Request, Retry, State};
    use super::SlidingLog;

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
    fn expired_entries_are_dropped_in_bulk_and_memory_comes_back() {
        let p = params(Algorithm::SlidingLog, 100, 10 * SECOND);
        let mut log = SlidingLog::default();
        let mut admitted = Vec::new();
        for i in 0..3000u64 {
            // Five a second: 50 live in any window.
            let now = T0 + i * SECOND / 5;
            assert!(log.check(&p, now, Request::take(1)).allowed);
            admitted.push(now);
            let live = admitted
                .iter()
                .rev()
                .take(200)
                .filter(|&&t| t + p.window > now)
                .count();
            assert_eq!(log.entries().len(), live, "at {i}");
            assert_eq!(log.total(), live as u64, "at {i}");
            assert!(log.heap_bytes() <= 16 + 16 * 256, "{}", log.heap_bytes());
        }
        // Once every entry has left the window, no memory is held.
        log.check(&p, T0 + 3000 * SECOND, Request::dry(1));
        assert_eq!(log.heap_bytes(), 0);
        assert_eq!(log, SlidingLog::default());
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
