//! Property: for any sequence of checks, reserves, settles, refunds and
//! timeouts, whenever a request is admitted the units consumed (admitted,
//! minus given back, plus charged past a reservation) fit what the rule
//! allows over every span that ends then. So the units admitted are never
//! more than the rule allows plus what was given back, minus the debt.

use proptest::prelude::*;

use super::super::testing::*;

use super::super::{Algorithm, Request, State};
use super::Adjust;

#[derive(Debug, Clone)]
enum Op {
    Check(u64),
    Reserve(u64),
    Settle(usize, u64),
    Refund(usize),
    /// The reservation is settled at its estimate: nothing changes.
    Timeout(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..=6).prop_map(Op::Check),
        (0u64..=8).prop_map(Op::Reserve),
        (any::<prop::sample::Index>(), 0u64..=16).prop_map(|(i, a)| Op::Settle(i.index(64), a)),
        any::<prop::sample::Index>().prop_map(|i| Op::Refund(i.index(64))),
        any::<prop::sample::Index>().prop_map(|i| Op::Timeout(i.index(64))),
    ]
}

fn run(algorithm: Algorithm, burst: u64, ops: &[(Op, u64)]) -> Result<usize, TestCaseError> {
    let mut p = params(algorithm, 10, 60 * SECOND);
    if algorithm.uses_burst() {
        p.burst = burst;
    }
    let mut s = State::fresh(&p);
    let mut now = T0;
    let mut events: Events = Vec::new();
    let mut open: Vec<(u64, u64)> = Vec::new(); // (taken at, units)
    let mut admitted = 0;
    for (op, step) in ops {
        now += step;
        let settle = |s: &mut State, events: &mut Events, (at, units): (u64, u64), actual| {
            let adjust = Adjust::between(units, actual);
            if s.settle(&p, now, at, adjust) == Ok(true) {
                // Windows count the change at the reservation's time, the
                // buckets when it happens.
                let when = if p.algorithm.uses_burst() { now } else { at };
                events.push((when, i128::from(actual) - i128::from(units)));
            }
        };
        match *op {
            Op::Check(cost) | Op::Reserve(cost) => {
                let allowed = s.check(&p, now, Request::take(cost)).allowed;
                if allowed && cost > 0 {
                    events.push((now, i128::from(cost)));
                    prop_assert!(
                        within(&p, &events, now),
                        "over the rule at {now}: {events:?}"
                    );
                    admitted += 1;
                }
                // A reserve of 0 (post-paid) is settled at the usage later.
                if allowed && matches!(op, Op::Reserve(_)) {
                    open.push((now, cost));
                }
            }
            Op::Settle(i, actual) if !open.is_empty() => {
                let r = open.remove(i % open.len());
                settle(&mut s, &mut events, r, actual);
            }
            Op::Refund(i) if !open.is_empty() => {
                let r = open.remove(i % open.len());
                settle(&mut s, &mut events, r, 0);
            }
            Op::Timeout(i) if !open.is_empty() => {
                open.remove(i % open.len());
            }
            _ => {}
        }
    }
    Ok(admitted)
}

#[test]
fn the_bound_is_tight_enough_to_catch_one_unit_too_many() {
    for algorithm in [
        Algorithm::TokenBucket,
        Algorithm::FixedWindow,
        Algorithm::SlidingLog,
        Algorithm::SlidingWindow,
    ] {
        let p = params(algorithm, 10, 60 * SECOND);
        assert!(within(&p, &vec![(T0, 10)], T0), "{algorithm:?}");
        assert!(!within(&p, &vec![(T0, 11)], T0), "{algorithm:?}");
        assert!(!within(&p, &vec![(T0, 12), (T0, -1)], T0), "{algorithm:?}");
    }
    // A run that reserves, settles low and takes the units back admits
    // more than the limit alone, and stays within the rule.
    let ops = [
        (Op::Reserve(8), 0),
        (Op::Settle(0, 1), SECOND),
        (Op::Check(6), 0),
        (Op::Check(3), 0),
    ];
    assert_eq!(run(Algorithm::FixedWindow, 10, &ops).ok(), Some(3));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn settles_never_let_a_rule_admit_more_than_it_allows(
        algorithm in prop::sample::select(vec![
            Algorithm::TokenBucket,
            Algorithm::Gcra,
            Algorithm::FixedWindow,
            Algorithm::SlidingLog,
            Algorithm::SlidingWindow,
        ]),
        burst in 5u64..=15,
        ops in prop::collection::vec((op(), 0u64..=20 * SECOND), 1..60),
    ) {
        run(algorithm, burst, &ops)?;
    }
}
