//! Sliding window counter (approximate): the window is cut into BUCKETS
//! buckets of width `w = window / BUCKETS`, aligned to the epoch. The count
//! for the last `window` is the full buckets it covers plus the oldest,
//! partial bucket weighted by its overlap:
//!
//! ```text
//! estimate = (full buckets) + oldest * (overlap / w)
//! ```
//!
//! Only non-empty buckets are stored, oldest first, with a running total, so
//! an allowed check is O(1) whatever BUCKETS is: it touches the newest bucket
//! and drops the buckets that slid out, each once. A denial walks the stored
//! buckets once to find the exact retry time.

use thin_vec::ThinVec;

use super::settle::{Adjust, Unsettled};
use super::{Decision, Params, Request, Retry, sat_u64};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SlidingWindow {
    /// (bucket start in ns since the epoch, units), oldest first, non-empty.
    /// One allocation, held by a single pointer: a key with one busy bucket
    /// costs 48 bytes of heap.
    pub buckets: ThinVec<(u64, u64)>,
    /// Sum of the units in `buckets`.
    pub total: u64,
}

/// Bucket geometry under some parameters.
struct Grid {
    width: u64,
    count: u64,
}

impl Grid {
    fn new(p: &Params) -> Grid {
        let count = u64::from(p.buckets.max(1));
        Grid {
            width: (p.window / count).max(1),
            count,
        }
    }

    fn index(&self, t: u64) -> u64 {
        t / self.width
    }
}

impl SlidingWindow {
    /// When the newest bucket has slid out of the window (0 when empty).
    pub fn fresh_at(&self, p: &Params) -> u64 {
        let grid = Grid::new(p);
        self.buckets.last().map_or(0, |&(start, _)| {
            let end = u128::from(grid.index(start) + grid.count + 1) * u128::from(grid.width);
            sat_u64(end)
        })
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<(u64, u64)>()
    }

    /// Drops buckets wholly outside the window of bucket `current`.
    fn prune(&mut self, grid: &Grid, current: u64) {
        let mut gone = 0;
        for &(start, n) in &self.buckets {
            if grid.index(start) + grid.count >= current {
                break;
            }
            self.total -= n;
            gone += 1;
        }
        if gone > 0 {
            self.buckets.drain(..gone);
        }
    }

    pub fn check(&mut self, p: &Params, now: u64, request: Request) -> Decision {
        let grid = Grid::new(p);
        let current = grid.index(now);
        self.prune(&grid, current);
        let w = u128::from(grid.width);
        let oldest = match self.buckets.first() {
            Some(&(start, n)) if grid.index(start) + grid.count == current => n,
            _ => 0,
        };
        let overlap = (u128::from(current) + 1) * w - u128::from(now);
        // The estimate, scaled by w to stay in integers.
        let estimate = u128::from(self.total - oldest) * w + u128::from(oldest) * overlap;
        let capacity = u128::from(p.limit) * w;
        let cost = request.cost;
        let after = estimate + u128::from(cost) * w;
        let reset_after = |sw: &SlidingWindow, now_has_units: bool| {
            let newest = sw.buckets.last().map(|&(s, _)| grid.index(s));
            let newest = match (newest, now_has_units) {
                (Some(n), true) => Some(n.max(current)),
                (None, true) => Some(current),
                (n, false) => n,
            };
            newest.map_or(0, |n| {
                let end = u128::from(n + grid.count + 1) * w;
                sat_u64(end.saturating_sub(u128::from(now)))
            })
        };
        if after <= capacity {
            let reset = reset_after(self, cost > 0);
            if request.commit && cost > 0 {
                self.record(&grid, current, cost);
            }
            return Decision {
                allowed: true,
                limit: p.limit,
                remaining: sat_u64((capacity - after) / w),
                retry: Retry::After(0),
                reset_after: reset,
                delay: 0,
            };
        }
        let remaining = sat_u64(capacity.saturating_sub(estimate) / w);
        let reset = reset_after(self, false);
        if cost > p.limit {
            return Decision::never(p.limit, remaining, reset);
        }
        Decision {
            allowed: false,
            limit: p.limit,
            remaining,
            retry: Retry::After(
                self.retry_after(&grid, now, p.limit - cost)
                    .unwrap_or(reset),
            ),
            reset_after: reset,
            delay: 0,
        }
    }

    /// Takes up to `units` out of the buckets still in the window, newest
    /// first (a refund). Answers the units taken out.
    pub fn give_units_back(&mut self, p: &Params, now: u64, units: u64) -> u64 {
        let grid = Grid::new(p);
        self.prune(&grid, grid.index(now));
        let mut left = units;
        while left > 0 {
            let Some((_, n)) = self.buckets.last_mut() else {
                break;
            };
            let taken = (*n).min(left);
            *n -= taken;
            left -= taken;
            self.total -= taken;
            if *n == 0 {
                self.buckets.pop();
            }
        }
        if self.buckets.is_empty() {
            self.buckets = ThinVec::new();
        }
        units - left
    }

    /// Settles units reserved at `taken_at`, in the bucket they were
    /// counted in, while it still weighs in the window. Answers whether it
    /// does (`false`: nothing changes).
    pub fn settle_at(
        &mut self,
        p: &Params,
        now: u64,
        taken_at: u64,
        adjust: Adjust,
    ) -> Result<bool, Unsettled> {
        let grid = Grid::new(p);
        let (bucket, current) = (grid.index(taken_at), grid.index(now));
        if bucket + grid.count < current {
            return Ok(false);
        }
        self.prune(&grid, current);
        let at = self
            .buckets
            .partition_point(|&(start, _)| grid.index(start) < bucket);
        let found = self
            .buckets
            .get(at)
            .is_some_and(|&(start, _)| grid.index(start) == bucket);
        match adjust {
            Adjust::GiveBack(units) if found => {
                let taken = self.buckets[at].1.min(units);
                self.buckets[at].1 -= taken;
                self.total -= taken;
                if self.buckets[at].1 == 0 {
                    self.buckets.remove(at);
                }
                if self.buckets.is_empty() {
                    self.buckets = ThinVec::new();
                }
            }
            Adjust::GiveBack(_) | Adjust::Charge(0) => {}
            Adjust::Charge(units) => {
                self.total = self.total.checked_add(units).ok_or(Unsettled::TooDeep)?;
                if found {
                    self.buckets[at].1 += units;
                } else {
                    self.buckets.insert(at, (bucket * grid.width, units));
                }
            }
        }
        Ok(true)
    }

    fn record(&mut self, grid: &Grid, current: u64, cost: u64) {
        match self.buckets.last_mut() {
            Some((start, n)) if grid.index(*start) >= current => *n += cost,
            _ => {
                if self.buckets.is_empty() {
                    // Most keys only ever touch one bucket: no spare room.
                    self.buckets.reserve_exact(1);
                }
                self.buckets.push((current * grid.width, cost));
            }
        }
        self.total += cost;
    }

    /// Nanoseconds from `now` until the estimate is at most `room` units.
    ///
    /// With no new requests the estimate only falls, and it changes slope
    /// only when a stored bucket becomes the oldest one; so it is enough to
    /// look at the current bucket and at each of those.
    fn retry_after(&self, grid: &Grid, now: u64, room: u64) -> Option<u64> {
        let w = u128::from(grid.width);
        let room = u128::from(room);
        let current = grid.index(now);
        let candidates = std::iter::once(current).chain(
            self.buckets
                .iter()
                .map(|&(s, _)| grid.index(s) + grid.count)
                .filter(|&j| j > current),
        );
        let mut next = 0; // first bucket still (partly) in the window of j
        let mut gone = 0u64; // units of buckets before `next`
        for j in candidates {
            let mut oldest = 0u64;
            while let Some(&(start, n)) = self.buckets.get(next) {
                let idx = grid.index(start);
                if idx + grid.count > j {
                    break;
                }
                if idx + grid.count == j {
                    oldest += n;
                }
                gone += n;
                next += 1;
            }
            let full = u128::from(self.total - gone);
            if full > room {
                continue;
            }
            let start = u128::from(j) * w;
            let t = if oldest == 0 {
                start
            } else {
                // full + oldest * ((j + 1) w - t) / w <= room
                let slack = (room - full) * w / u128::from(oldest);
                (start + w - slack.min(w)).max(start)
            };
            return Some(sat_u64(t.saturating_sub(u128::from(now))));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::super::{Algorithm, Retry, State};

    #[test]
    fn weights_the_oldest_bucket_by_its_overlap() {
        // 10 per 10 s in 10 buckets of 1 s.
        let p = params(Algorithm::SlidingWindow, 10, 10 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 10).allowed);
        assert!(!take(&mut s, &p, T0 + 5 * SECOND, 1).allowed);
        // At T0 + 10.5 s the bucket of T0 overlaps the window by half: 5 left.
        let d = take(&mut s, &p, T0 + 10_500_000_000, 5);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn retry_after_is_exact() {
        let p = params(Algorithm::SlidingWindow, 10, 10 * SECOND);
        let mut s = State::fresh(&p);
        assert!(take(&mut s, &p, T0, 10).allowed);
        let d = take(&mut s, &p, T0 + SECOND, 1);
        // One unit frees when a tenth of the T0 bucket has slid out: T0 + 10.1 s.
        assert_eq!(d.retry, Retry::After(9_100_000_000));
        let at = T0 + SECOND + 9_100_000_000;
        assert!(!take(&mut s, &p, at - 1, 1).allowed);
        assert!(take(&mut s, &p, at, 1).allowed);
    }

    #[test]
    fn forgets_after_window_and_one_bucket() {
        let p = params(Algorithm::SlidingWindow, 10, 10 * SECOND);
        let mut s = State::fresh(&p);
        let d = take(&mut s, &p, T0, 3);
        assert_eq!(d.reset_after, 11 * SECOND);
        let d = take(&mut s, &p, T0 + 11 * SECOND, 10);
        assert!(d.allowed);
    }
}
