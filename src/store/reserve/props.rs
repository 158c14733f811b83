//! Property, through the store with real deadlines: for any sequence of
//! checks, reserves (with their own timeouts), settles, refunds and the
//! clock moving on, every admitted request fits the rule given what was
//! admitted, given back and charged; a settle after its reservation's
//! timeout is refused and changes nothing; and no id settles twice.

use proptest::prelude::*;

use super::super::*;
use crate::limiter::testing::{Events, SECOND, T0, within};
use crate::limiter::{Algorithm, Request};

#[derive(Debug, Clone)]
enum Op {
    Check(u64),
    /// Cost, and timeout in seconds.
    Reserve(u64, u64),
    Settle(usize, u64),
    Refund(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u64..=6).prop_map(Op::Check),
        (0u64..=8, 1u64..=40).prop_map(|(c, t)| Op::Reserve(c, t)),
        (any::<prop::sample::Index>(), 0u64..=16).prop_map(|(i, a)| Op::Settle(i.index(64), a)),
        any::<prop::sample::Index>().prop_map(|i| Op::Refund(i.index(64))),
        (0u64..=15).prop_map(|s| Op::Wait(s * SECOND)),
    ]
}

/// An open reservation as the test knows it.
struct Open {
    id: u64,
    at: u64,
    units: u64,
    deadline: u64,
}

fn run(algorithm: Algorithm, ops: &[Op]) -> Result<(), TestCaseError> {
    let store = Store::new();
    let p = Params::new(algorithm, 10, 60 * SECOND);
    let key: &[u8] = b"k";
    let look = |now| store.check(key, &p, now, Request::dry(0)).unwrap().decision;
    let mut now = T0;
    let mut events: Events = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut closed = Vec::new();
    for op in ops {
        match *op {
            Op::Wait(ns) => now += ns,
            Op::Check(cost) => {
                let d = store.check(key, &p, now, Request::take(cost)).unwrap();
                if d.decision.allowed && cost > 0 {
                    events.push((now, i128::from(cost)));
                    prop_assert!(within(&p, &events, now), "check over the rule: {events:?}");
                }
            }
            Op::Reserve(cost, timeout) => {
                let part = Part {
                    key,
                    rule: Rule::Inline(&p),
                    cost,
                };
                let r = store.reserve(part, now, now + timeout * SECOND).unwrap();
                prop_assert_eq!(r.decision.allowed, r.id.is_some());
                if let Some(id) = r.id {
                    if cost > 0 {
                        events.push((now, i128::from(cost)));
                        prop_assert!(
                            within(&p, &events, now),
                            "reserve over the rule: {events:?}"
                        );
                    }
                    open.push(Open {
                        id,
                        at: now,
                        units: cost,
                        deadline: now + timeout * SECOND,
                    });
                }
            }
            Op::Settle(i, _) | Op::Refund(i) if !open.is_empty() => {
                let r = open.remove(i % open.len());
                let actual = match *op {
                    Op::Settle(_, actual) => actual,
                    _ => 0,
                };
                let before = look(now);
                let settled = store.settle(key, r.id, actual, now, |_| None);
                if now >= r.deadline {
                    // Timed out: settled at its estimate; nothing changes.
                    prop_assert_eq!(settled, Err(SettleError::NoReservation));
                    prop_assert_eq!(look(now), before);
                } else {
                    let s = settled.expect("an open reservation settles");
                    if s.in_window {
                        let when = if p.algorithm.uses_burst() { now } else { r.at };
                        events.push((when, i128::from(actual) - i128::from(r.units)));
                    }
                    closed.push(r.id);
                }
            }
            _ => {}
        }
    }
    // Every closed id stays closed.
    for id in closed {
        prop_assert_eq!(
            store.settle(key, id, 0, now, |_| None),
            Err(SettleError::NoReservation)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn reservations_through_the_store_never_let_a_rule_admit_more(
        algorithm in prop::sample::select(vec![
            Algorithm::TokenBucket,
            Algorithm::Gcra,
            Algorithm::FixedWindow,
            Algorithm::SlidingLog,
            Algorithm::SlidingWindow,
        ]),
        ops in prop::collection::vec(op(), 1..80),
    ) {
        run(algorithm, &ops)?;
    }
}
