//! Property tests of the store's promises: a snapshot of any store restores
//! to one that decides identically; no bytes make the decoder panic; a
//! policy is all or nothing; sweeping fresh states never changes a decision.

use std::path::Path;

use proptest::prelude::*;
use tollgate::limiter::{Algorithm, Decision, Params, Request, State};
use tollgate::policy::Policy;
use tollgate::snapshot;
use tollgate::store::Store;

const MS: u64 = 1_000_000;
const T0: u64 = 1_767_225_600_000_000_000;

fn rule() -> impl Strategy<Value = Params> {
    (
        prop::sample::select(Algorithm::ALL.to_vec()),
        1u64..12,
        1u64..4_000,
        1u64..20,
        1u32..12,
    )
        .prop_map(|(algorithm, limit, window_ms, burst, buckets)| {
            let mut p = Params::new(algorithm, limit, window_ms * MS);
            if algorithm.uses_burst() {
                p.burst = burst;
            }
            if algorithm.uses_buckets() {
                p.buckets = buckets;
            }
            p
        })
}

/// One operation: (key index, ms since the last one, cost, dry run).
type Op = (usize, u64, u64, bool);

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec((0usize..6, 0u64..1_500, 0u64..5, any::<bool>()), 1..120)
}

/// Applies `op` at `now` (keys hold one rule each: the key's index picks it).
fn apply(store: &Store, rules: &[Params], op: &Op, now: u64) -> Option<Decision> {
    let &(key, _, cost, dry) = op;
    let p = &rules[key % rules.len()];
    let request = if dry {
        Request::dry(cost)
    } else {
        Request::take(cost)
    };
    let name = format!("k{key}");
    store
        .check(name.as_bytes(), p, now, request)
        .ok()
        .map(|c| c.decision)
}

fn restore(bytes: &[u8]) -> Store {
    let contents = snapshot::decode(bytes, Path::new("p")).expect("a snapshot we wrote");
    let store = Store::new();
    for (k, e) in contents.entries {
        store.insert_raw(k, e);
    }
    store
}

/// A file around `body` as the snapshot module frames it (version 2).
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = b"TOLLGATE".to_vec();
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any store, saved and restored, answers every later request the same.
    #[test]
    fn snapshots_restore_stores_that_decide_identically(
        rules in prop::collection::vec(rule(), 1..4),
        before in ops(),
        after in ops(),
    ) {
        let store = Store::new();
        let mut now = T0;
        for op in &before {
            now += op.1 * MS;
            apply(&store, &rules, op, now);
        }
        let policy = Policy { name: "p".into(), rules: rules.clone(), from_config: false };
        store.check_policy(&policy, b"u", now, Request::take(1)).unwrap();
        let bytes = snapshot::encode(&store, &[std::sync::Arc::new(policy.clone())], now);
        let restored = restore(&bytes);
        prop_assert_eq!(restored.len(), store.len());
        for op in &after {
            now += op.1 * MS;
            prop_assert_eq!(apply(&store, &rules, op, now), apply(&restored, &rules, op, now));
            let request = Request::take(op.2);
            prop_assert_eq!(
                store.check_policy(&policy, b"u", now, request),
                restored.check_policy(&policy, b"u", now, request)
            );
        }
    }

    /// Arbitrary bytes, and valid files with damaged bodies (their checksum
    /// made right, so the body parser sees them), never panic the decoder.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(
        noise in prop::collection::vec(any::<u8>(), 0..512),
        rules in prop::collection::vec(rule(), 1..3),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let _ = snapshot::decode(&noise, Path::new("noise"));
        let _ = snapshot::decode(&framed(&noise), Path::new("noise"));
        let store = Store::new();
        for (i, p) in rules.iter().enumerate() {
            let _ = store.check(format!("k{i}").as_bytes(), p, T0, Request::take(1));
        }
        let good = snapshot::encode(&store, &[], T0);
        let mut body = good[20..good.len() - 4].to_vec();
        for (at, byte) in &edits {
            let i = at.index(body.len());
            body[i] = *byte;
        }
        let _ = snapshot::decode(&framed(&body), Path::new("edited"));
        let short = &body[..cut.index(body.len())];
        let _ = snapshot::decode(&framed(short), Path::new("cut"));
    }

    /// A policy check is all or nothing: it is allowed exactly when every
    /// rule on its own would allow it, and then every rule consumes.
    #[test]
    fn policies_are_all_or_nothing(rules in prop::collection::vec(rule(), 1..4), seq in ops()) {
        let store = Store::new();
        let policy = Policy { name: "p".into(), rules: rules.clone(), from_config: false };
        let mut model: Vec<State> = rules.iter().map(State::fresh).collect();
        let mut now = T0;
        for &(_, gap, cost, _) in &seq {
            now += gap * MS;
            let each: Vec<bool> = model
                .iter()
                .zip(&rules)
                .map(|(s, p)| s.clone().check(p, now, Request::dry(cost)).allowed)
                .collect();
            let all = each.iter().all(|&a| a);
            if all {
                for (s, p) in model.iter_mut().zip(&rules) {
                    s.check(p, now, Request::take(cost));
                }
            }
            let d = store.check_policy(&policy, b"u", now, Request::take(cost)).unwrap();
            prop_assert_eq!(d.allowed, all, "rules alone: {:?}", each);
        }
    }

    /// Sweeping drops only fresh states: a store swept at any moments answers
    /// every request exactly as one never swept.
    #[test]
    fn sweeping_never_changes_a_decision(
        rules in prop::collection::vec(rule(), 1..4),
        seq in ops(),
        sweeps in prop::collection::vec(any::<bool>(), 120),
    ) {
        let swept = Store::new();
        let kept = Store::new();
        let mut now = T0;
        for (i, op) in seq.iter().enumerate() {
            now += op.1 * MS;
            if sweeps[i] {
                swept.sweep(now);
            }
            prop_assert_eq!(apply(&swept, &rules, op, now), apply(&kept, &rules, op, now));
        }
        swept.sweep(now);
        prop_assert!(swept.len() <= kept.len());
    }
}
