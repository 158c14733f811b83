//! Property tests of the limiters' promises, on the pure functions with
//! generated parameters and request sequences.

use proptest::prelude::*;
use tollgate::limiter::{Algorithm, Decision, Params, Request, Retry, State};

const MS: u64 = 1_000_000;
const T0: u64 = 1_767_225_600_000_000_000;

fn params_for(algorithm: Algorithm) -> impl Strategy<Value = Params> {
    (1u64..20, 1u64..5_000, 1u64..30, 1u32..20).prop_map(
        move |(limit, window_ms, burst, buckets)| {
            let mut p = Params::new(algorithm, limit, window_ms * MS);
            if algorithm.uses_burst() {
                p.burst = burst;
            }
            if algorithm.uses_buckets() {
                p.buckets = buckets;
            }
            p
        },
    )
}

/// Requests as (ns since the previous one, cost).
fn requests(window_hint: u64) -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0..window_hint, 0u64..4), 1..80)
}

/// Runs the sequence, answering (time, cost, decision) of each request.
fn replay(p: &Params, seq: &[(u64, u64)]) -> Vec<(u64, u64, Decision)> {
    let mut state = State::fresh(p);
    let mut now = T0;
    seq.iter()
        .map(|&(gap, cost)| {
            now += gap;
            (now, cost, state.check(p, now, Request::take(cost)))
        })
        .collect()
}

fn any_params() -> impl Strategy<Value = Params> {
    prop_oneof![
        params_for(Algorithm::TokenBucket),
        params_for(Algorithm::LeakyBucket),
        params_for(Algorithm::FixedWindow),
        params_for(Algorithm::SlidingLog),
        params_for(Algorithm::SlidingWindow),
        params_for(Algorithm::Gcra),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Sliding log: at most `limit` units in any span of length `window`.
    #[test]
    fn sliding_log_never_exceeds_limit_in_any_window(p in params_for(Algorithm::SlidingLog), seq in requests(3_000 * MS)) {
        let admitted: Vec<(u64, u64)> = replay(&p, &seq).into_iter()
            .filter(|(_, _, d)| d.allowed).map(|(t, c, _)| (t, c)).collect();
        for &(start, _) in &admitted {
            let units: u64 = admitted.iter().filter(|&&(t, _)| t >= start && t < start + p.window).map(|&(_, c)| c).sum();
            prop_assert!(units <= p.limit, "{units} units in the window from {start}");
        }
    }

    /// Fixed window: at most `limit` units per aligned window.
    #[test]
    fn fixed_window_never_exceeds_limit_per_window(p in params_for(Algorithm::FixedWindow), seq in requests(3_000 * MS)) {
        let mut per_window = std::collections::HashMap::new();
        for (t, c, d) in replay(&p, &seq) {
            if d.allowed {
                *per_window.entry(t / p.window).or_insert(0) += c;
            }
        }
        prop_assert!(per_window.values().all(|&u| u <= p.limit));
    }

    /// Sliding window counter: any BUCKETS consecutive buckets hold at most
    /// `limit` units.
    #[test]
    fn sliding_window_never_exceeds_limit_over_its_buckets(p in params_for(Algorithm::SlidingWindow), seq in requests(2_000 * MS)) {
        let width = p.window / u64::from(p.buckets);
        let mut per_bucket = std::collections::BTreeMap::new();
        for (t, c, d) in replay(&p, &seq) {
            if d.allowed {
                *per_bucket.entry(t / width).or_insert(0u64) += c;
            }
        }
        for &first in per_bucket.keys() {
            let units: u64 = per_bucket.range(first..first + u64::from(p.buckets)).map(|(_, u)| u).sum();
            prop_assert!(units <= p.limit, "{units} in buckets from {first}");
        }
    }

    /// Token bucket and GCRA: over any span t, at most BURST + rate * t units.
    #[test]
    fn buckets_never_exceed_burst_plus_rate(
        p in prop_oneof![params_for(Algorithm::TokenBucket), params_for(Algorithm::Gcra), params_for(Algorithm::LeakyBucket)],
        seq in requests(1_000 * MS),
    ) {
        let admitted: Vec<(u64, u64)> = replay(&p, &seq).into_iter()
            .filter(|(_, _, d)| d.allowed).map(|(t, c, _)| (t, c)).collect();
        for (i, &(a, _)) in admitted.iter().enumerate() {
            let mut units = 0u128;
            for &(b, c) in &admitted[i..] {
                units += u128::from(c);
                let refill = u128::from(b - a) * u128::from(p.limit) / u128::from(p.window);
                prop_assert!(units <= u128::from(p.burst) + refill, "{units} units in {} ns", b - a);
            }
        }
    }

    /// retry_after is exact: the same request is allowed after exactly that
    /// long, and denied 1 ns earlier.
    #[test]
    fn retry_after_is_exact(p in any_params(), seq in requests(2_000 * MS), cost in 1u64..4) {
        let mut state = State::fresh(&p);
        let mut now = T0;
        for (gap, c) in seq {
            now += gap;
            state.check(&p, now, Request::take(c));
        }
        let look = Request::dry(cost);
        let d = state.clone().check(&p, now, look);
        if let (false, Retry::After(r)) = (d.allowed, d.retry) {
            prop_assert!(r > 0);
            prop_assert!(state.clone().check(&p, now + r, look).allowed, "not allowed after {r} ns");
            prop_assert!(!state.clone().check(&p, now + r - 1, look).allowed, "allowed 1 ns before {r} ns");
        }
        if let (false, Retry::Never) = (d.allowed, d.retry) {
            prop_assert!(cost > p.capacity());
        }
    }

    /// DRYRUN and denials leave the state as it was (up to pruning).
    #[test]
    fn dryrun_and_denials_change_nothing(p in any_params(), seq in requests(2_000 * MS), cost in 0u64..40) {
        let mut state = State::fresh(&p);
        let mut now = T0;
        for (gap, c) in seq {
            now += gap;
            state.check(&p, now, Request::take(c));
        }
        let before = state.clone();
        let dry = state.check(&p, now, Request::dry(cost));
        let mut probe = before.clone();
        let real = probe.check(&p, now, Request::take(cost));
        prop_assert_eq!(dry.allowed, real.allowed);
        prop_assert_eq!(dry.remaining, real.remaining);
        // The dry run's state answers every later question as before.
        let look = Request::dry(1);
        prop_assert_eq!(state.clone().check(&p, now, look), before.clone().check(&p, now, look));
        if !real.allowed {
            prop_assert_eq!(probe.check(&p, now, look), before.clone().check(&p, now, look));
        }
    }

    /// GCRA and the token bucket are the same limiter stored differently.
    #[test]
    fn token_bucket_and_gcra_agree(p in params_for(Algorithm::TokenBucket), seq in requests(1_000 * MS)) {
        let g = Params { algorithm: Algorithm::Gcra, ..p };
        let tb = replay(&p, &seq);
        let gc = replay(&g, &seq);
        for ((_, _, a), (_, _, b)) in tb.iter().zip(&gc) {
            prop_assert_eq!((a.allowed, a.remaining, a.retry), (b.allowed, b.remaining, b.retry));
            prop_assert_eq!(a.reset_after, b.reset_after);
        }
    }

    /// Changing the numbers of a key never panics and stays within the new capacity.
    #[test]
    fn new_numbers_reread_state_safely(p in any_params(), q_limit in 1u64..50, q_window in 1u64..5000, seq in requests(2_000 * MS)) {
        let mut state = State::fresh(&p);
        let mut now = T0;
        for (gap, c) in &seq {
            now += gap;
            state.check(&p, now, Request::take(*c));
        }
        let mut q = Params::new(p.algorithm, q_limit, q_window * MS);
        q.buckets = p.buckets;
        let d = state.check(&q, now, Request::take(1));
        prop_assert!(d.remaining <= q.capacity());
    }
}
