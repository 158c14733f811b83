//! Reservations through the store: reserve, settle, refund, timeouts,
//! snapshots of open reservations, and their bounds.

use std::sync::Arc;

use super::super::*;
use crate::limiter::Algorithm;
use crate::limiter::refund::NoRefund;
use crate::limiter::settle::Unsettled;
use crate::store::memory::EvictionPolicy;

const SECOND: u64 = 1_000_000_000;
const T0: u64 = 1_700_006_400 * SECOND;

fn part<'a>(key: &'a [u8], rule: Rule<'a>, cost: u64) -> Part<'a> {
    Part { key, rule, cost }
}

fn no_policy(_: &str) -> Option<Arc<Policy>> {
    None
}

fn remaining(store: &Store, key: &[u8], p: &Params, now: u64) -> u64 {
    store
        .check(key, p, now, Request::dry(0))
        .unwrap()
        .decision
        .remaining
}

#[test]
fn reserve_takes_the_estimate_and_settle_gives_the_difference_back() {
    let store = Store::new();
    let p = Params::new(Algorithm::TokenBucket, 1000, 60 * SECOND);
    let r = store
        .reserve(part(b"k", Rule::Inline(&p), 700), T0, T0 + 60 * SECOND)
        .unwrap();
    assert!(r.decision.allowed);
    assert_eq!(r.decision.remaining, 300);
    let id = r.id.expect("an admitted reserve has an id");
    assert_eq!(store.reservations(b"k", T0).len(), 1);
    let s = store.settle(b"k", id, 250, T0, no_policy).unwrap();
    assert!(s.in_window);
    assert_eq!(s.reserved, 700);
    assert_eq!(s.decision.remaining, 750);
    assert_eq!(remaining(&store, b"k", &p, T0), 750);
    assert!(store.reservations(b"k", T0).is_empty());
    // Settling twice is refused and changes nothing.
    assert_eq!(
        store.settle(b"k", id, 0, T0, no_policy),
        Err(SettleError::NoReservation)
    );
    assert_eq!(remaining(&store, b"k", &p, T0), 750);
}

#[test]
fn a_denied_reserve_takes_nothing_and_has_no_id() {
    let store = Store::new();
    let p = Params::new(Algorithm::FixedWindow, 10, 60 * SECOND);
    let r = store
        .reserve(part(b"k", Rule::Inline(&p), 11), T0, T0 + SECOND)
        .unwrap();
    assert_eq!((r.decision.allowed, r.id), (false, None));
    assert!(store.is_empty(), "no state and no reservation");
}

#[test]
fn settling_more_leaves_the_key_in_debt() {
    let store = Store::new();
    let p = Params::new(Algorithm::Gcra, 100, 60 * SECOND);
    let id = store
        .reserve(part(b"k", Rule::Inline(&p), 100), T0, T0 + SECOND)
        .unwrap()
        .id
        .unwrap();
    let s = store.settle(b"k", id, 130, T0, no_policy).unwrap();
    assert!(!s.decision.allowed, "in debt: a look is denied");
    // 30 units of debt at 100 a minute: 18 s.
    assert_eq!(s.decision.retry, crate::limiter::Retry::After(18 * SECOND));
    let later = store.check(b"k", &p, T0 + 18 * SECOND, Request::take(0));
    assert!(later.unwrap().decision.allowed);
}

#[test]
fn an_unsettled_reservation_times_out_at_its_estimate() {
    let store = Store::new();
    let p = Params::new(Algorithm::TokenBucket, 10, 60 * SECOND);
    let id = store
        .reserve(part(b"k", Rule::Inline(&p), 6), T0, T0 + 5 * SECOND)
        .unwrap()
        .id
        .unwrap();
    let at = T0 + 5 * SECOND;
    assert_eq!(
        store.settle(b"k", id, 0, at, no_policy),
        Err(SettleError::NoReservation),
        "past its deadline"
    );
    // The 6 units stay taken (one came back in 5 s of refill... none: 6 s a unit).
    assert_eq!(remaining(&store, b"k", &p, at), 4);
    assert!(store.reservations(b"k", at).is_empty());
    // The sweep drops the reservation's slot; the state stays until fresh.
    store.sweep(at);
    assert_eq!(store.len(), 1);
    assert_eq!(
        store.settle(b"k", id, 0, T0 + SECOND, no_policy),
        Err(SettleError::NoReservation),
        "gone for good once swept"
    );
}

#[test]
fn ids_are_distinct_and_name_one_key() {
    let store = Store::new();
    let p = Params::new(Algorithm::SlidingLog, 100, 60 * SECOND);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let r = store
            .reserve(part(b"a", Rule::Inline(&p), 1), T0, T0 + SECOND)
            .unwrap();
        assert!(ids.insert(r.id.unwrap()));
    }
    let id = *ids.iter().next().unwrap();
    assert_eq!(
        store.settle(b"b", id, 0, T0, no_policy),
        Err(SettleError::NoReservation),
        "an id settles only on its own key"
    );
    assert_eq!(store.reservations(b"a", T0).len(), 50);
}

#[test]
fn the_leaky_bucket_refuses_a_settle_and_keeps_the_reservation() {
    let store = Store::new();
    let p = Params::new(Algorithm::LeakyBucket, 10, 60 * SECOND);
    let id = store
        .reserve(part(b"k", Rule::Inline(&p), 2), T0, T0 + SECOND)
        .unwrap()
        .id
        .unwrap();
    assert_eq!(
        store.settle(b"k", id, 1, T0, no_policy),
        Err(SettleError::Unsettled(Unsettled::NoRefund(NoRefund(
            Algorithm::LeakyBucket
        ))))
    );
    assert_eq!(store.reservations(b"k", T0).len(), 1);
}

#[test]
fn a_policy_reservation_settles_every_rule() {
    let store = Store::new();
    let policy = Arc::new(Policy {
        name: "llm".into(),
        rules: vec![
            Params::new(Algorithm::TokenBucket, 1000, 60 * SECOND),
            Params::new(Algorithm::FixedWindow, 5000, 3600 * SECOND),
        ],
        from_config: false,
    });
    let r = store
        .reserve(part(b"u", Rule::Policy(&policy), 900), T0, T0 + SECOND)
        .unwrap();
    assert_eq!(r.decision.remaining, 100);
    let found = |name: &str| (name == "llm").then(|| policy.clone());
    let s = store.settle(b"u", r.id.unwrap(), 400, T0, found).unwrap();
    assert_eq!(s.decision.remaining, 600, "the tightest rule: 1000 - 400");
    let view = store
        .inspect(Scope::Policy("llm"), b"u", Some(&policy), T0)
        .unwrap();
    let State::FixedWindow(fw) = &view.rules[1].1 else {
        panic!("the second rule is a fixed window");
    };
    assert_eq!(fw.count, 400, "every rule settled");
    // A reservation whose policy is gone changes nothing.
    let r = store
        .reserve(part(b"u", Rule::Policy(&policy), 1), T0, T0 + SECOND)
        .unwrap();
    assert_eq!(
        store.settle(b"u", r.id.unwrap(), 0, T0, no_policy),
        Err(SettleError::NoPolicy("llm".into()))
    );
    assert_eq!(store.reservations(b"u", T0).len(), 1);
}

#[test]
fn a_reserve_that_cannot_be_recorded_takes_nothing() {
    let store = Store::new();
    let p = Params::new(Algorithm::TokenBucket, 1_000_000, 60 * SECOND);
    for _ in 0..MAX_OPEN {
        store
            .reserve(part(b"k", Rule::Inline(&p), 1), T0, T0 + SECOND)
            .unwrap();
    }
    let before = remaining(&store, b"k", &p, T0);
    assert_eq!(
        store.reserve(part(b"k", Rule::Inline(&p), 5), T0, T0 + SECOND),
        Err(Refused::TooManyReservations)
    );
    assert_eq!(remaining(&store, b"k", &p, T0), before);
    // Once they time out there is room again.
    let later = T0 + SECOND;
    assert!(
        store
            .reserve(part(b"k", Rule::Inline(&p), 5), later, later + SECOND)
            .is_ok()
    );
}

#[test]
fn open_reservations_survive_a_snapshot() {
    let store = Store::new();
    let p = Params::new(Algorithm::SlidingWindow, 100, 60 * SECOND);
    let policy = Arc::new(Policy {
        name: "p".into(),
        rules: vec![Params::new(Algorithm::Gcra, 50, SECOND)],
        from_config: false,
    });
    let a = store
        .reserve(part(b"k", Rule::Inline(&p), 40), T0, T0 + 9 * SECOND)
        .unwrap()
        .id
        .unwrap();
    let b = store
        .reserve(part(b"k", Rule::Policy(&policy), 7), T0, T0 + 9 * SECOND)
        .unwrap()
        .id
        .unwrap();
    let bytes = crate::snapshot::encode(&store, &[], T0);
    let contents = crate::snapshot::decode(&bytes, std::path::Path::new("t")).unwrap();
    let restored = Store::new();
    for (key, entry) in contents.entries {
        restored.insert_raw(key, entry);
    }
    assert_eq!(
        restored.reservations(b"k", T0),
        store.reservations(b"k", T0)
    );
    let s = restored
        .settle(b"k", a, 10, T0 + SECOND, no_policy)
        .unwrap();
    assert_eq!(s.decision.remaining, 90);
    let found = |_: &str| Some(policy.clone());
    assert!(restored.settle(b"k", b, 7, T0 + SECOND, found).is_ok());
    // A new reservation on the restored store gets an id of its own.
    let c = restored
        .reserve(
            part(b"k", Rule::Inline(&p), 1),
            T0 + SECOND,
            T0 + 9 * SECOND,
        )
        .unwrap()
        .id
        .unwrap();
    assert!(c != a && c != b);
}

#[test]
fn the_byte_count_comes_back_to_nothing_once_reservations_close() {
    let store = Store::new();
    let policy = Arc::new(Policy {
        name: "a-policy-with-a-long-name-to-count".into(),
        rules: vec![Params::new(Algorithm::TokenBucket, 1000, SECOND)],
        from_config: false,
    });
    let found = |_: &str| Some(policy.clone());
    let mut ids = Vec::new();
    for i in 0..100 {
        let key = format!("k{}", i % 7);
        let r = store
            .reserve(
                part(key.as_bytes(), Rule::Policy(&policy), 1),
                T0,
                T0 + SECOND,
            )
            .unwrap();
        ids.push((key, r.id.unwrap()));
    }
    // Half settled (some leave a slot with others still open), half left
    // to time out.
    for (key, id) in ids.iter().step_by(2) {
        store.settle(key.as_bytes(), *id, 0, T0, found).unwrap();
    }
    let counted = |store: &Store| -> (usize, usize) {
        store.shards.iter().fold((0, 0), |(h, real), s| {
            let s = s.lock();
            let sum: usize = s.slots.iter().map(|e| e.heap_bytes()).sum();
            (h + s.heap, real + sum)
        })
    };
    let (heap, real) = counted(&store);
    assert_eq!(heap, real, "the count follows every slot");
    store.sweep(u64::MAX);
    assert!(store.is_empty());
    assert_eq!(counted(&store), (0, 0));
}

#[test]
fn a_reserve_refused_for_memory_takes_nothing() {
    let store = Store::new();
    store.set_maxmemory(64 * 4096, EvictionPolicy::NoEviction);
    let p = Params::new(Algorithm::TokenBucket, 10, 3600 * SECOND);
    // Keys with a state until the shards are full.
    let mut keys = Vec::new();
    for i in 0..1_000_000 {
        let key = format!("k{i}");
        match store.check(key.as_bytes(), &p, T0, Request::take(1)) {
            Ok(_) => keys.push(key),
            Err(Refused::OutOfMemory) if keys.len() > 1000 => break,
            Err(e) => panic!("{e}"),
        }
    }
    // A reserve on a stored key needs a new slot for its reservations:
    // where that does not fit, it is refused whole.
    let mut refused = 0;
    for key in &keys {
        let before = remaining(&store, key.as_bytes(), &p, T0);
        match store.reserve(part(key.as_bytes(), Rule::Inline(&p), 3), T0, T0 + SECOND) {
            Ok(r) => assert!(r.id.is_some()),
            Err(Refused::OutOfMemory) => {
                refused += 1;
                assert_eq!(remaining(&store, key.as_bytes(), &p, T0), before, "{key}");
                assert!(store.reservations(key.as_bytes(), T0).is_empty());
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0, "some reservation slot did not fit");
}

#[test]
fn flushall_closes_every_reservation() {
    let store = Store::new();
    let p = Params::new(Algorithm::Gcra, 10, SECOND);
    let id = store
        .reserve(part(b"k", Rule::Inline(&p), 4), T0, T0 + SECOND)
        .unwrap()
        .id
        .unwrap();
    store.clear();
    assert_eq!(
        store.settle(b"k", id, 0, T0, no_policy),
        Err(SettleError::NoReservation)
    );
}
