//! The six rate-limiting algorithms, as pure functions.
//!
//! Each algorithm is a state type with a `check` method that takes the
//! parameters, the current time and the request, and answers a [`Decision`].
//! Nothing here reads a clock, takes a lock or knows about the network: the
//! store calls `check` under the key's lock with `now` read once.
//!
//! All times are nanoseconds since the Unix epoch; rates that do not divide
//! evenly are kept exact by working in scaled units (`ns * limit`) in `u128`.
//! Every quantity that a client controls goes through checked or saturating
//! arithmetic.

pub mod cell;
pub mod fixed_window;
pub mod gcra;
pub mod leaky_bucket;
pub mod rule;
pub mod sliding_log;
pub mod sliding_window;
pub mod token_bucket;

use crate::clock::NANOS_PER_MS;

/// Largest count a client may give for `limit`, `BURST` and `COST`.
pub const MAX_COUNT: u64 = 1_000_000_000_000;
/// Longest window: 366 days, in nanoseconds.
pub const MAX_WINDOW_NS: u64 = 366 * 24 * 3600 * 1_000 * NANOS_PER_MS;
/// Longest time a rule may take to refill from empty (`BURST × window ÷
/// limit`): 500 × 366 days, written `183000d` in errors. No real rule comes
/// near it; within it every time a check reports fits in `u64` nanoseconds
/// and in the reply's milliseconds, so decisions are exact over every rule
/// accepted.
pub const MAX_FILL_NS: u64 = 500 * MAX_WINDOW_NS;
/// [`MAX_FILL_NS`] as the errors name it.
pub const MAX_FILL_TEXT: &str = "183000d";
/// Most buckets a sliding window may have.
pub const MAX_BUCKETS: u32 = 1000;
/// Buckets of a sliding window when `BUCKETS` is not given.
pub const DEFAULT_BUCKETS: u32 = 10;

/// The algorithms, named as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    TokenBucket,
    LeakyBucket,
    FixedWindow,
    SlidingLog,
    SlidingWindow,
    Gcra,
}

impl Algorithm {
    /// Every algorithm, in the order of PROTOCOL.md.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::TokenBucket,
        Algorithm::LeakyBucket,
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
        Algorithm::SlidingWindow,
        Algorithm::Gcra,
    ];

    /// The wire name, e.g. `token_bucket`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::TokenBucket => "token_bucket",
            Algorithm::LeakyBucket => "leaky_bucket",
            Algorithm::FixedWindow => "fixed_window",
            Algorithm::SlidingLog => "sliding_log",
            Algorithm::SlidingWindow => "sliding_window",
            Algorithm::Gcra => "gcra",
        }
    }

    /// Parses a wire name, ignoring ASCII case.
    pub fn parse(name: &[u8]) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Whether `BURST` applies (the buckets and GCRA).
    pub fn uses_burst(self) -> bool {
        matches!(
            self,
            Algorithm::TokenBucket | Algorithm::LeakyBucket | Algorithm::Gcra
        )
    }

    /// Whether `BUCKETS` applies (the sliding window counter only).
    pub fn uses_buckets(self) -> bool {
        self == Algorithm::SlidingWindow
    }
}

/// The numbers a key is checked under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Params {
    pub algorithm: Algorithm,
    /// Units per window: 1 to [`MAX_COUNT`].
    pub limit: u64,
    /// Window length in nanoseconds: 1 ms to [`MAX_WINDOW_NS`].
    pub window: u64,
    /// Capacity of the buckets and GCRA; equals `limit` for the windows.
    pub burst: u64,
    /// Buckets of the sliding window counter; 0 for the others.
    pub buckets: u32,
}

impl Params {
    /// Parameters with the defaults: BURST = limit, BUCKETS = 10 where they apply.
    pub fn new(algorithm: Algorithm, limit: u64, window: u64) -> Params {
        Params {
            algorithm,
            limit,
            window,
            burst: limit,
            buckets: if algorithm.uses_buckets() {
                DEFAULT_BUCKETS
            } else {
                0
            },
        }
    }

    /// Nanoseconds to refill from empty, rounded up: `BURST × window ÷
    /// limit` for the buckets and GCRA, the window for the others.
    pub fn fill_ns(&self) -> u128 {
        if self.algorithm.uses_burst() {
            let units = u128::from(self.burst) * u128::from(self.window);
            ceil_div(units, u128::from(self.limit.max(1)))
        } else {
            u128::from(self.window)
        }
    }

    /// Whether the rule refills within [`MAX_FILL_NS`]: `BURST × window ≤
    /// MAX_FILL_NS × limit`, which is `fill_ns() ≤ MAX_FILL_NS` without the
    /// division (every check's rule is tested).
    pub fn fill_in_range(&self) -> bool {
        if !self.algorithm.uses_burst() {
            return true; // the window, at most 366 days
        }
        let units = u128::from(self.burst) * u128::from(self.window);
        units <= u128::from(MAX_FILL_NS) * u128::from(self.limit)
    }

    /// The capacity reported as `limit` in replies.
    pub fn capacity(&self) -> u64 {
        if self.algorithm.uses_burst() {
            self.burst
        } else {
            self.limit
        }
    }
}

/// What the caller asks of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// Units to take; 0 only looks.
    pub cost: u64,
    /// False for DRYRUN: answer as if, change nothing.
    pub commit: bool,
    /// The longest the caller will wait for its reply (leaky bucket queueing).
    pub max_wait: Option<u64>,
}

impl Request {
    /// A DRYRUN request: answers as if taking `cost` units, changes nothing.
    pub fn dry(cost: u64) -> Request {
        Request {
            cost,
            commit: false,
            max_wait: None,
        }
    }

    /// A committing request of `cost` units that will not wait.
    pub fn take(cost: u64) -> Request {
        Request {
            cost,
            commit: true,
            max_wait: None,
        }
    }
}

/// When a denied request could be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Retry {
    /// After this many nanoseconds.
    After(u64),
    /// Never: the cost is above the capacity.
    Never,
}

/// The answer to one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The capacity (see [`Params::capacity`]).
    pub limit: u64,
    /// Units that could still be taken now, after this request.
    pub remaining: u64,
    /// For a denial: when the same request would be allowed.
    pub retry: Retry,
    /// Nanoseconds until the limiter is back to fresh; 0 when fresh.
    pub reset_after: u64,
    /// Nanoseconds the reply is held before it is sent (leaky bucket turn).
    pub delay: u64,
}

impl Decision {
    /// The five integers of the decision reply (times in ms, rounded up).
    pub fn fields(&self) -> [i64; 5] {
        let retry = if self.allowed {
            -1
        } else {
            match self.retry {
                Retry::After(ns) => ns_to_ms_ceil(ns),
                Retry::Never => -1,
            }
        };
        [
            i64::from(self.allowed),
            saturating_i64(self.limit),
            saturating_i64(self.remaining),
            retry,
            ns_to_ms_ceil(self.reset_after),
        ]
    }

    /// A denial that can never be allowed (cost above capacity).
    pub(crate) fn never(limit: u64, remaining: u64, reset_after: u64) -> Decision {
        Decision {
            allowed: false,
            limit,
            remaining,
            retry: Retry::Never,
            reset_after,
            delay: 0,
        }
    }
}

/// Per-key state: one variant per algorithm, kept small (times as integers,
/// the variable-size logs behind one pointer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    TokenBucket(token_bucket::TokenBucket),
    LeakyBucket(leaky_bucket::LeakyBucket),
    FixedWindow(fixed_window::FixedWindow),
    SlidingLog(sliding_log::SlidingLog),
    SlidingWindow(sliding_window::SlidingWindow),
    Gcra(gcra::Gcra),
}

impl State {
    /// The state of a key never seen (or back to fresh) under `params`.
    pub fn fresh(params: &Params) -> State {
        match params.algorithm {
            Algorithm::TokenBucket => State::TokenBucket(token_bucket::TokenBucket::default()),
            Algorithm::LeakyBucket => State::LeakyBucket(leaky_bucket::LeakyBucket::default()),
            Algorithm::FixedWindow => State::FixedWindow(fixed_window::FixedWindow::default()),
            Algorithm::SlidingLog => State::SlidingLog(sliding_log::SlidingLog::default()),
            Algorithm::SlidingWindow => {
                State::SlidingWindow(sliding_window::SlidingWindow::default())
            }
            Algorithm::Gcra => State::Gcra(gcra::Gcra::default()),
        }
    }

    /// Which algorithm this state belongs to.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            State::TokenBucket(_) => Algorithm::TokenBucket,
            State::LeakyBucket(_) => Algorithm::LeakyBucket,
            State::FixedWindow(_) => Algorithm::FixedWindow,
            State::SlidingLog(_) => Algorithm::SlidingLog,
            State::SlidingWindow(_) => Algorithm::SlidingWindow,
            State::Gcra(_) => Algorithm::Gcra,
        }
    }

    /// Checks `request` at `now`. The state changes only when the request is
    /// allowed and `request.commit` is set (pruning expired entries aside,
    /// which changes no answer).
    ///
    /// `params.algorithm` must match the state's; the store guarantees it.
    pub fn check(&mut self, params: &Params, now: u64, request: Request) -> Decision {
        match self {
            State::TokenBucket(s) => s.check(params, now, request),
            State::LeakyBucket(s) => s.check(params, now, request),
            State::FixedWindow(s) => s.check(params, now, request),
            State::SlidingLog(s) => s.check(params, now, request),
            State::SlidingWindow(s) => s.check(params, now, request),
            State::Gcra(s) => s.check(params, now, request),
        }
    }

    /// When this state is back to fresh under `params` (ns since the epoch);
    /// 0 or a past time when it is fresh now.
    pub fn fresh_at(&self, params: &Params) -> u64 {
        match self {
            State::TokenBucket(s) => s.fresh_at(),
            State::LeakyBucket(s) => s.next.ceil_ns(),
            State::FixedWindow(s) if s.count > 0 => s.start.saturating_add(params.window),
            State::FixedWindow(_) => 0,
            State::SlidingLog(s) => s.fresh_at(params),
            State::SlidingWindow(s) => s.fresh_at(params),
            State::Gcra(s) => s.fresh_at(),
        }
    }

    /// Units waiting in the leaky bucket's queue; 0 for the others.
    pub fn queued(&self, params: &Params, now: u64) -> u64 {
        match self {
            State::LeakyBucket(s) => s.level(params, now),
            _ => 0,
        }
    }

    /// The heap lines a check of this state reads, for the store to fetch
    /// into the cache ahead of the check: the allocation's first line (a
    /// ThinVec keeps its length and capacity, 16 bytes, before its items),
    /// and for a log also its last line, where entries are added. A bucket
    /// list is short, and finding its end would mean reading the very line
    /// being fetched, so it gets its first two lines.
    pub fn heap_lines(&self) -> Option<[*const u8; 2]> {
        const HEADER: usize = 16;
        match self {
            State::SlidingLog(s) => {
                let (start, pairs) = s.heap_span();
                let start = start.cast::<u8>();
                let end = start.wrapping_add(pairs.saturating_sub(1) * 16);
                Some([start.wrapping_sub(HEADER), end])
            }
            State::SlidingWindow(s) => {
                let start = s.buckets.as_ptr().cast::<u8>().wrapping_sub(HEADER);
                Some([start, start.wrapping_add(64)])
            }
            _ => None,
        }
    }

    /// Bytes of heap this state holds beyond its inline size.
    pub fn heap_bytes(&self) -> usize {
        match self {
            State::SlidingLog(s) => s.heap_bytes(),
            State::SlidingWindow(s) => s.heap_bytes(),
            _ => 0,
        }
    }
}

/// Nanoseconds to milliseconds, rounded up, saturating.
pub fn ns_to_ms_ceil(ns: u64) -> i64 {
    saturating_i64(ns.div_ceil(NANOS_PER_MS))
}

/// `a / b` rounded up; `b` must not be 0. In 64-bit arithmetic when both
/// fit (the common case), which is several times faster than 128-bit.
pub(crate) fn ceil_div(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) => u128::from(a.div_ceil(b)),
        _ => a.div_ceil(b),
    }
}

/// `a / b` rounded down, in 64-bit arithmetic when both fit.
pub(crate) fn floor_div(a: u128, b: u128) -> u128 {
    match (u64::try_from(a), u64::try_from(b)) {
        (Ok(a), Ok(b)) => u128::from(a / b),
        _ => a / b,
    }
}

/// A `u128` clamped into `u64`.
pub(crate) fn sat_u64(x: u128) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

fn saturating_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

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
pub(crate) mod testing {
    //! Helpers shared by the algorithms' unit tests.
    use super::*;

    pub const SECOND: u64 = 1_000 * NANOS_PER_MS;
    /// A start time well after the epoch, aligned to a whole day.
    pub const T0: u64 = 1_700_006_400 * SECOND;

    pub fn params(algorithm: Algorithm, limit: u64, window: u64) -> Params {
        Params::new(algorithm, limit, window)
    }

    /// Runs one committing check of `cost` on `state`.
    pub fn take(state: &mut State, p: &Params, now: u64, cost: u64) -> Decision {
        state.check(p, now, Request::take(cost))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_names_round_trip_case_insensitively() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.name().as_bytes()), Some(a));
            assert_eq!(
                Algorithm::parse(a.name().to_uppercase().as_bytes()),
                Some(a)
            );
        }
        assert_eq!(Algorithm::parse(b"token"), None);
    }

    #[test]
    fn fields_round_times_up_to_ms() {
        let d = Decision {
            allowed: false,
            limit: 5,
            remaining: 0,
            retry: Retry::After(1_000_001),
            reset_after: 1,
            delay: 0,
        };
        assert_eq!(d.fields(), [0, 5, 0, 2, 1]);
        let never = Decision::never(5, 3, 0);
        assert_eq!(never.fields(), [0, 5, 3, -1, 0]);
    }

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

    #[test]
    fn the_refill_bound_is_exact_at_its_edge() {
        let mut p = Params::new(Algorithm::Gcra, 1, MAX_WINDOW_NS);
        p.burst = 500;
        assert!(p.fill_in_range());
        assert_eq!(p.fill_ns(), u128::from(MAX_FILL_NS));
        p.burst = 501;
        assert!(!p.fill_in_range());
        // One ns over the bound after rounding up: 3 per 1 ms, a burst whose
        // refill is MAX_FILL_NS + 1/3 ns.
        let mut q = Params::new(Algorithm::TokenBucket, 3, NANOS_PER_MS);
        q.burst = 3 * (MAX_FILL_NS / NANOS_PER_MS);
        assert!(q.fill_in_range());
        q.burst += 1;
        assert!(!q.fill_in_range());
        assert!(q.fill_ns() > u128::from(MAX_FILL_NS));
        for a in [
            Algorithm::FixedWindow,
            Algorithm::SlidingLog,
            Algorithm::SlidingWindow,
        ] {
            assert!(Params::new(a, 1, MAX_WINDOW_NS).fill_in_range());
        }
    }

    #[test]
    fn state_stays_small() {
        assert!(
            std::mem::size_of::<State>() <= 32,
            "{}",
            std::mem::size_of::<State>()
        );
    }
}
