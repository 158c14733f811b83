//! redis-cell's `CL.THROTTLE` arithmetic, reproduced so that its callers see
//! the same numbers: GCRA with an emission interval truncated to whole
//! nanoseconds, a tolerance of `interval * (max_burst + 1)`, `remaining`
//! computed in microseconds, and times reported in whole seconds rounded up
//! when they have a millisecond part.
//!
//! All arithmetic is in `i128`, so no client number can overflow it.

/// The five fields of a `CL.THROTTLE` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellReply {
    pub limited: bool,
    pub limit: i64,
    pub remaining: i64,
    /// Whole seconds, or -1.
    pub retry_after: i64,
    /// Whole seconds.
    pub reset_after: i64,
}

impl CellReply {
    pub fn fields(&self) -> [i64; 5] {
        [
            i64::from(self.limited),
            self.limit,
            self.remaining,
            self.retry_after,
            self.reset_after,
        ]
    }
}

const NS_PER_S: i128 = 1_000_000_000;

/// `a / b` truncated toward zero, as `i128` does, in 64-bit arithmetic when
/// both fit (several times faster); `b` must not be 0.
fn div(a: i128, b: i128) -> i128 {
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(a), Ok(b)) if b != -1 => i128::from(a / b),
        _ => a / b,
    }
}

/// `a % b` with the sign of `a`, as `i128` does, fast when both fit in 64 bits.
fn rem(a: i128, b: i128) -> i128 {
    match (i64::try_from(a), i64::try_from(b)) {
        (Ok(a), Ok(b)) if b != -1 => i128::from(a % b),
        _ => a % b,
    }
}

/// The emission interval in ns as redis-cell computes it (float division,
/// truncated); 0 means the rate is too high to represent.
pub fn emission_interval(count: u64, period_s: u64) -> i128 {
    let period_ns = i128::from(period_s) * NS_PER_S;
    ((period_ns as f64) / (count as f64)) as i64 as i128
}

/// The tolerance, `interval × (max_burst + 1)`: the time to refill from
/// empty, which the command bounds by [`super::MAX_FILL_NS`].
pub fn tolerance(max_burst: u64, interval: i128) -> i128 {
    interval * (i128::from(max_burst) + 1)
}

/// One `CL.THROTTLE` step. `tat` is the stored theoretical arrival time in
/// ns (`None` for a fresh key); it may lie past the end of `u64` time. Answers
/// the reply and, when allowed, the new TAT, exactly.
pub fn throttle(
    tat: Option<u128>,
    now: u64,
    max_burst: u64,
    interval: i128,
    quantity: u64,
) -> (CellReply, Option<u128>) {
    let now_i = i128::from(now);
    let tolerance = tolerance(max_burst, interval);
    let increment = interval * i128::from(quantity);
    let tat = tat.map_or(now_i, |t| i128::try_from(t).unwrap_or(i128::MAX / 4));
    let new_tat = if now_i > tat {
        now_i + increment
    } else {
        tat + increment
    };
    let diff = now_i - (new_tat - tolerance);

    let (limited, retry_after, ttl, stored) = if diff < 0 {
        let retry = (increment <= tolerance).then_some(-diff);
        (true, retry, tat - now_i, None)
    } else {
        (false, None, new_tat - now_i, u128::try_from(new_tat).ok())
    };

    let next = tolerance - ttl;
    let remaining = if next > -interval {
        let next_us = div(next, 1_000);
        let interval_us = div(interval, 1_000);
        (next_us as f64 / interval_us as f64) as i64
    } else {
        0
    };
    let reply = CellReply {
        limited,
        limit: i64::try_from(i128::from(max_burst) + 1).unwrap_or(i64::MAX),
        remaining,
        retry_after: retry_after.map_or(-1, whole_seconds_up),
        reset_after: whole_seconds_up(ttl),
    };
    (reply, stored)
}

/// Whole seconds, plus one if there is a (positive) millisecond part.
fn whole_seconds_up(ns: i128) -> i64 {
    let secs = div(ns, NS_PER_S);
    let millis = div(rem(ns, NS_PER_S), 1_000_000);
    let secs = if millis > 0 { secs + 1 } else { secs };
    i64::try_from(secs).unwrap_or(if secs < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn fresh_key_matches_redis_cell_readme() {
        // CL.THROTTLE user123 15 30 60 1 -> 0 16 15 -1 2
        let interval = emission_interval(30, 60);
        let (reply, tat) = throttle(None, 1_000 * S, 15, interval, 1);
        assert_eq!(reply.fields(), [0, 16, 15, -1, 2]);
        assert_eq!(tat, Some(u128::from(1_002 * S)));
    }

    #[test]
    fn follows_redis_cell_sequence() {
        // The case table of redis-cell's own tests: burst 4, 1 per second.
        let interval = emission_interval(1, 1);
        let start = 1_000 * S;
        let (r, _) = throttle(None, start, 4, interval, 6);
        assert_eq!(
            (r.limited, r.remaining, r.retry_after, r.reset_after),
            (true, 5, -1, 0)
        );
        let mut tat = None;
        for left in [4, 3, 2, 1, 0] {
            let (r, t) = throttle(tat, start, 4, interval, 1);
            assert!(!r.limited);
            assert_eq!(r.remaining, left);
            tat = t;
        }
        let (r, _) = throttle(tat, start, 4, interval, 1);
        assert_eq!(
            (r.limited, r.remaining, r.retry_after, r.reset_after),
            (true, 0, 1, 5)
        );
        let (r, tat) = throttle(tat, start + 3_000_000_000, 4, interval, 1);
        assert_eq!((r.limited, r.remaining, r.reset_after), (false, 2, 3));
        let (r, _) = throttle(tat, start + 3_100_000_000, 4, interval, 1);
        // reset 3.9 s rounds up to 4.
        assert_eq!((r.limited, r.remaining, r.reset_after), (false, 1, 4));
    }

    #[test]
    fn fast_division_matches_i128() {
        for (a, b) in [
            (7i128, 2i128),
            (-7, 2),
            (-7, -2),
            (i128::from(i64::MIN), -1),
            (i128::MAX, 3),
            (-1_500_000_000, NS_PER_S),
        ] {
            assert_eq!((div(a, b), rem(a, b)), (a / b, a % b), "{a} / {b}");
        }
        assert_eq!(whole_seconds_up(-1_500_000_000), -1);
        assert_eq!(whole_seconds_up(1_000_000_001), 1);
        assert_eq!(whole_seconds_up(1_001_000_000), 2);
    }

    #[test]
    fn absurd_numbers_do_not_overflow() {
        let interval = emission_interval(1, 366 * 86_400);
        let (r, _) = throttle(
            Some(u128::from(u64::MAX)),
            u64::MAX,
            1_000_000_000_000,
            interval,
            1_000_000_000_000,
        );
        assert_eq!(r.limit, 1_000_000_000_001);
        assert!(emission_interval(1_000_000_000_000, 1) == 0);
    }
}
