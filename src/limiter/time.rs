//! Exact times for the algorithms that run ahead of the clock: GCRA's
//! theoretical arrival time, the token bucket's "full again" time and the
//! leaky bucket's next turn, kept in units of `1/limit` ns.

use super::{MAX_FILL_NS, floor_div};

/// A time kept exactly in units of `1/limit` ns: `ns + frac / limit`.
///
/// Used by GCRA, the token bucket and the leaky bucket, whose emission
/// interval `window / limit` need not be a whole number of nanoseconds.
/// These times run ahead of the clock by up to a rule's refill time
/// ([`MAX_FILL_NS`]), so they can lie past the end of `u64` nanoseconds (the
/// year 2554): the whole nanoseconds are kept in 88 bits and the fraction
/// (below `limit`, so below 2^40) in the other 40 of two words. Every time a
/// rule can set fits, so no arithmetic here saturates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScaledTime {
    /// The low 64 bits of the whole nanoseconds.
    lo: u64,
    /// The high 24 bits of the whole nanoseconds, then the 40-bit fraction.
    hi: u64,
}

const FRAC_BITS: u32 = 40;
const FRAC_MASK: u64 = (1 << FRAC_BITS) - 1;

/// The latest time a state may hold: the end of the clock plus the longest
/// refill. Snapshots holding a later one are refused.
pub const MAX_TIME_NS: u128 = u64::MAX as u128 + MAX_FILL_NS as u128;

impl ScaledTime {
    /// A whole number of nanoseconds.
    pub fn at(ns: u64) -> ScaledTime {
        ScaledTime { lo: ns, hi: 0 }
    }

    /// `ns + frac / limit`; `ns` below 2^88 and `frac` below 2^40 (callers
    /// keep them there: times up to [`MAX_TIME_NS`], limits up to 10^12).
    pub fn new(ns: u128, frac: u64) -> ScaledTime {
        debug_assert!(ns >> 88 == 0 && frac <= FRAC_MASK);
        ScaledTime {
            lo: ns as u64,
            hi: (((ns >> 64) as u64) << FRAC_BITS) | (frac & FRAC_MASK),
        }
    }

    /// The whole nanoseconds.
    pub fn ns(self) -> u128 {
        u128::from(self.lo) | (u128::from(self.hi >> FRAC_BITS) << 64)
    }

    /// The fraction, in units of `1/limit` ns.
    pub fn frac(self) -> u64 {
        self.hi & FRAC_MASK
    }

    /// The two stored words (for snapshots): for times before 2554 they are
    /// the nanoseconds and the fraction.
    pub fn words(self) -> (u64, u64) {
        (self.lo, self.hi)
    }

    /// Back from [`ScaledTime::words`]; `None` past [`MAX_TIME_NS`].
    pub fn from_words(lo: u64, hi: u64) -> Option<ScaledTime> {
        let t = ScaledTime { lo, hi };
        (t.ns() <= MAX_TIME_NS).then_some(t)
    }

    /// The high 24 bits of the whole nanoseconds (0 before 2554).
    fn ns_high(self) -> u64 {
        self.hi >> FRAC_BITS
    }

    /// The first whole nanosecond at or after this time, as the clock counts
    /// them (`u64::MAX` for a time past the clock's end).
    pub fn ceil_ns(self) -> u64 {
        if self.ns_high() == 0 {
            self.lo.saturating_add(u64::from(self.frac() > 0))
        } else {
            u64::MAX
        }
    }

    /// The time in units of `1/limit` ns. One 64 x 64-bit multiplication
    /// before 2554, a second one after.
    pub(crate) fn scaled(self, limit: u64) -> u128 {
        let frac = self.frac().min(limit.saturating_sub(1));
        let low = u128::from(self.lo) * u128::from(limit) + u128::from(frac);
        match self.ns_high() {
            0 => low,
            high => low + ((u128::from(high) * u128::from(limit)) << 64),
        }
    }

    /// This time moved on by `delta` units of `1/limit` ns. In 64-bit
    /// arithmetic when the fraction and `delta` fit (the common case).
    pub(crate) fn plus(self, delta: u128, limit: u64) -> ScaledTime {
        let limit = limit.max(1);
        let frac = u128::from(self.frac().min(limit - 1)) + delta;
        match u64::try_from(frac) {
            Ok(frac) => {
                let (lo, carry) = self.lo.overflowing_add(frac / limit);
                let high = self.ns_high() + u64::from(carry);
                ScaledTime {
                    lo,
                    hi: (high << FRAC_BITS) | (frac % limit),
                }
            }
            Err(_) => ScaledTime::from_scaled(self.scaled(limit) + delta, limit),
        }
    }

    /// Back from units of `1/limit` ns.
    pub(crate) fn from_scaled(scaled: u128, limit: u64) -> ScaledTime {
        let limit = limit.max(1);
        let ns = floor_div(scaled, u128::from(limit));
        ScaledTime::new(ns, (scaled - ns * u128::from(limit)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::ceil_div;

    #[test]
    fn scaled_time_plus_matches_full_arithmetic() {
        let cases = [
            (7u128, 0u64, 3u128, 5u64),
            (1_767_225_600_000_000_000, 2, 999, 3),
            (5, 4, u128::from(u64::MAX) * 4, 7),
            (u128::from(u64::MAX) + 3, 6, 1 << 70, 1_000_000_000_000),
            // Crossing 2^64 ns on the 64-bit path: the carry reaches the high bits.
            (u128::from(u64::MAX) - 1, 3, 5 * 7, 7),
            ((1u128 << 70) + 9, 1, 12, 4),
        ];
        for (ns, frac, delta, limit) in cases {
            let t = ScaledTime::new(ns, frac);
            assert_eq!(
                t.plus(delta, limit),
                ScaledTime::from_scaled(t.scaled(limit) + delta, limit)
            );
        }
        assert_eq!(ceil_div(7, 2), 4);
        assert_eq!(ceil_div(u128::MAX, 1), u128::MAX);
        assert_eq!(floor_div(7, 2), 3);
        assert_eq!(floor_div(u128::MAX, 2), u128::MAX / 2);
    }

    #[test]
    fn scaled_time_holds_times_past_the_end_of_u64_exactly() {
        let t = ScaledTime::new(10, 2);
        assert_eq!(ScaledTime::from_scaled(t.scaled(3), 3), t);
        assert_eq!(t.words(), (10, 2), "times before 2554 keep the v1 layout");
        let late = ScaledTime::new(MAX_TIME_NS, 999_999_999_999);
        assert_eq!(late.ns(), MAX_TIME_NS);
        assert_eq!(late.frac(), 999_999_999_999);
        let (lo, hi) = late.words();
        assert_eq!(ScaledTime::from_words(lo, hi), Some(late));
        assert_eq!(ScaledTime::from_words(0, u64::MAX), None);
        assert_eq!(late.ceil_ns(), u64::MAX);
        let scaled = late.scaled(1_000_000_000_000);
        assert_eq!(ScaledTime::from_scaled(scaled, 1_000_000_000_000), late);
    }
}
