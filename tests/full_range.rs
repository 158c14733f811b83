//! Property tests over the whole documented ranges: counts from 1 to 10^12,
//! windows from 1 ms to 366 days, bursts up to the refill bound (183000d),
//! boundaries included, with time jumps of up to years and start times up to
//! the end of the clock. Every algorithm admits no more than its definition
//! allows and `retry_after` stays exact; CL.THROTTLE likewise.

use proptest::prelude::*;
use tollgate::limiter::{
    Algorithm, MAX_COUNT, MAX_FILL_NS, MAX_WINDOW_NS, Params, Request, Retry, State, cell,
};
use tollgate::snapshot;
use tollgate::store::Store;

const MS: u64 = 1_000_000;
const YEAR: u64 = 366 * 86_400_000 * MS;
/// 2026-01-01, ten years and one year before the clock's end.
const STARTS: [u64; 3] = [
    1_767_225_600_000_000_000,
    u64::MAX - 10 * YEAR,
    u64::MAX - YEAR,
];

/// A count: the boundaries, or anything in between on a log scale.
fn count() -> BoxedStrategy<u64> {
    prop_oneof![
        Just(1),
        Just(2),
        Just(MAX_COUNT),
        Just(MAX_COUNT - 1),
        (0u32..=12, 1u64..10).prop_map(|(e, m)| (m * 10u64.pow(e)).min(MAX_COUNT)),
        1..=MAX_COUNT,
    ]
    .boxed()
}

/// A window in whole ms: the boundaries, or anything between.
fn window() -> BoxedStrategy<u64> {
    let max_ms = MAX_WINDOW_NS / MS;
    prop_oneof![
        Just(1),
        Just(max_ms),
        Just(max_ms - 1),
        Just(1_000),
        (0u32..=10, 1u64..10).prop_map(move |(e, m)| (m * 10u64.pow(e)).min(max_ms)),
        1..=max_ms,
    ]
    .prop_map(|ms| ms * MS)
    .boxed()
}

/// Any rule the protocol accepts. A burst whose refill would pass the bound
/// is cut to the largest one that does not (the bound itself included).
fn rule(algorithm: Algorithm) -> impl Strategy<Value = Params> {
    (count(), window(), count(), 1u32..=1000).prop_map(move |(limit, window, burst, buckets)| {
        let mut p = Params::new(algorithm, limit, window);
        if algorithm.uses_burst() {
            let most = u128::from(MAX_FILL_NS) * u128::from(limit) / u128::from(window);
            p.burst = burst.min(u64::try_from(most).unwrap_or(u64::MAX)).max(1);
        }
        if algorithm.uses_buckets() {
            p.buckets = buckets;
        }
        assert!(p.fill_in_range(), "{p:?}");
        p
    })
}

fn any_rule() -> BoxedStrategy<Params> {
    prop_oneof![
        rule(Algorithm::TokenBucket),
        rule(Algorithm::LeakyBucket),
        rule(Algorithm::FixedWindow),
        rule(Algorithm::SlidingLog),
        rule(Algorithm::SlidingWindow),
        rule(Algorithm::Gcra),
    ]
    .boxed()
}

/// Gaps between requests: none, a little, about a window, or up to years.
fn gap(window: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        0..1_000 * MS,
        0..=window.saturating_mul(2),
        0..=3 * YEAR,
    ]
}

/// Costs as a share of the capacity: one unit, all of it, one more, or any.
fn cost(capacity: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(1),
        Just(capacity),
        Just(capacity + 1),
        0..=capacity,
        0u64..4,
    ]
}

/// A rule, a start time, and a sequence of (gap, cost).
type Scenario = (Params, u64, Vec<(u64, u64)>);

fn scenario() -> BoxedStrategy<Scenario> {
    (any_rule(), prop::sample::select(STARTS.to_vec()))
        .prop_flat_map(|(p, start)| {
            let steps = prop::collection::vec((gap(p.window), cost(p.capacity())), 1..60);
            (Just(p), Just(start), steps)
        })
        .boxed()
}

/// Runs the sequence; answers (time, cost, allowed) for every request, up to
/// the clock's end.
fn replay(p: &Params, start: u64, steps: &[(u64, u64)]) -> (State, u64, Vec<(u64, u64, bool)>) {
    let mut state = State::fresh(p);
    let mut now = start;
    let mut out = Vec::new();
    for &(gap, cost) in steps {
        let Some(t) = now.checked_add(gap) else { break };
        now = t;
        let d = state.check(p, now, Request::take(cost));
        out.push((now, cost, d.allowed));
    }
    (state, now, out)
}

/// Checks the definition's bound on what was admitted.
fn assert_within_definition(p: &Params, admitted: &[(u64, u64)]) -> Result<(), TestCaseError> {
    match p.algorithm {
        Algorithm::TokenBucket | Algorithm::LeakyBucket | Algorithm::Gcra => {
            // Over any span from one admitted request to a later one: at most
            // BURST + span * limit / window units, in exact integers.
            for (i, &(a, _)) in admitted.iter().enumerate() {
                let mut units = 0u128;
                for &(b, c) in &admitted[i..] {
                    units += u128::from(c);
                    let lhs = units * u128::from(p.window);
                    let rhs = u128::from(b - a) * u128::from(p.limit)
                        + u128::from(p.burst) * u128::from(p.window);
                    prop_assert!(lhs <= rhs, "{units} units in {} ns under {p:?}", b - a);
                }
            }
        }
        Algorithm::FixedWindow => {
            let mut per = std::collections::HashMap::new();
            for &(t, c) in admitted {
                *per.entry(t / p.window).or_insert(0u128) += u128::from(c);
            }
            prop_assert!(per.values().all(|&u| u <= u128::from(p.limit)));
        }
        Algorithm::SlidingLog => {
            for &(start, _) in admitted {
                let units: u128 = admitted
                    .iter()
                    .filter(|&&(t, _)| t >= start && t - start < p.window)
                    .map(|&(_, c)| u128::from(c))
                    .sum();
                prop_assert!(units <= u128::from(p.limit), "{units} from {start}");
            }
        }
        Algorithm::SlidingWindow => {
            let width = p.window / u64::from(p.buckets);
            let mut per = std::collections::BTreeMap::new();
            for &(t, c) in admitted {
                *per.entry(t / width).or_insert(0u128) += u128::from(c);
            }
            for &first in per.keys() {
                let units: u128 = per
                    .range(first..first.saturating_add(u64::from(p.buckets)))
                    .map(|(_, u)| u)
                    .sum();
                prop_assert!(units <= u128::from(p.limit), "{units} from bucket {first}");
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// No algorithm admits more than its definition allows, for any accepted rule.
    #[test]
    fn never_more_than_the_definition((p, start, steps) in scenario()) {
        let (_, _, seen) = replay(&p, start, &steps);
        let admitted: Vec<(u64, u64)> =
            seen.into_iter().filter(|s| s.2).map(|(t, c, _)| (t, c)).collect();
        assert_within_definition(&p, &admitted)?;
    }

    /// retry_after is exact over the whole range: the same request passes
    /// after exactly that long and not one nanosecond earlier.
    #[test]
    fn retry_after_stays_exact((p, start, steps) in scenario(), share in 0u64..=1000) {
        let (state, now, _) = replay(&p, start, &steps);
        let cost = (u128::from(p.capacity()) * u128::from(share) / 1000) as u64;
        let look = Request::dry(cost.max(1));
        let d = state.clone().check(&p, now, look);
        match (d.allowed, d.retry) {
            (false, Retry::After(r)) => {
                prop_assert!(r > 0);
                prop_assert!(r <= MAX_FILL_NS, "retry {r} past the refill bound");
                if let Some(later) = now.checked_add(r) {
                    prop_assert!(state.clone().check(&p, later, look).allowed, "not allowed after {r} ns");
                    prop_assert!(!state.clone().check(&p, later - 1, look).allowed, "allowed 1 ns early");
                }
            }
            (false, Retry::Never) => prop_assert!(look.cost > p.capacity()),
            (true, _) => prop_assert!(d.reset_after <= MAX_FILL_NS),
        }
    }

    /// A store saved and restored at any point decides every later request
    /// as the original does, for any accepted rule and time.
    #[test]
    fn snapshots_decide_identically_over_the_whole_range(
        (p, start, steps) in scenario(),
        later in prop::collection::vec((gap(YEAR), 0u64..=3), 1..20),
    ) {
        let store = Store::new();
        let mut now = start;
        for &(gap, cost) in &steps {
            let Some(t) = now.checked_add(gap) else { break };
            now = t;
            store.check(b"k", &p, now, Request::take(cost)).unwrap();
        }
        let bytes = snapshot::encode(&store, &[], now);
        let contents = snapshot::decode(&bytes, std::path::Path::new("s")).unwrap();
        let restored = Store::new();
        for (k, e) in contents.entries {
            restored.insert_raw(k, e);
        }
        for (gap, cost) in later {
            let Some(t) = now.checked_add(gap) else { break };
            now = t;
            let a = store.check(b"k", &p, now, Request::take(cost)).unwrap().decision;
            let b = restored.check(b"k", &p, now, Request::take(cost)).unwrap().decision;
            prop_assert_eq!(a, b);
        }
    }

    /// CL.THROTTLE over its whole range: never more than max_burst + 1 plus
    /// one unit per emission interval, and combinations past the refill
    /// bound are the ones the command refuses.
    #[test]
    fn cell_never_more_than_its_tolerance(
        max_burst in prop_oneof![Just(0u64), Just(MAX_COUNT - 1), 0..MAX_COUNT],
        count in count(),
        period_s in prop_oneof![Just(1u64), Just(MAX_WINDOW_NS / 1_000_000_000), 1..=MAX_WINDOW_NS / 1_000_000_000],
        start in prop::sample::select(STARTS.to_vec()),
        steps in prop::collection::vec((gap(YEAR), prop_oneof![Just(1u64), 0..=1_000u64, 0..=MAX_COUNT]), 1..60),
    ) {
        let interval = cell::emission_interval(count, period_s);
        prop_assume!(interval > 0 && cell::tolerance(max_burst, interval) <= i128::from(MAX_FILL_NS));
        let mut tat = None;
        let mut now = start;
        let mut admitted = Vec::new();
        for (gap, quantity) in steps {
            let Some(t) = now.checked_add(gap) else { break };
            now = t;
            let stored = tat.filter(|&t| t > u128::from(now));
            let (reply, new_tat) = cell::throttle(stored, now, max_burst, interval, quantity);
            if !reply.limited {
                admitted.push((now, quantity));
                tat = new_tat;
            }
        }
        let tolerance = cell::tolerance(max_burst, interval);
        for (i, &(a, _)) in admitted.iter().enumerate() {
            let mut units = 0i128;
            for &(b, q) in &admitted[i..] {
                units += i128::from(q);
                prop_assert!(units * interval <= i128::from(b - a) + tolerance, "{units} units in {} ns", b - a);
            }
        }
    }
}
