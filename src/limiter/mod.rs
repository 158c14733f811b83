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
pub mod refund;
pub mod rule;
pub mod settle;
pub mod sliding_log;
pub mod sliding_window;
pub mod time;
pub mod token_bucket;

pub use time::{MAX_TIME_NS, ScaledTime};

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

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
