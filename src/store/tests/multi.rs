//! Several keys checked all or nothing.

use super::super::*;
use super::SECOND;
use crate::limiter::Algorithm;

/// A part checked inline under `p`.
fn inline<'a>(key: &'a [u8], p: &'a Params) -> Part<'a> {
    Part {
        key,
        rule: Rule::Inline(p),
        cost: 1,
    }
}

fn remaining(store: &Store, key: &[u8], p: &Params) -> u64 {
    store
        .check(key, p, 0, Request::dry(0))
        .unwrap()
        .decision
        .remaining
}

#[test]
fn several_keys_are_checked_all_or_nothing() {
    let store = Store::new();
    let user = Params::new(Algorithm::FixedWindow, 3, SECOND);
    let org = Params::new(Algorithm::TokenBucket, 5, SECOND);
    let policy = Policy {
        name: "global".into(),
        rules: vec![Params::new(Algorithm::Gcra, 10, SECOND)],
        from_config: false,
    };
    let parts = [
        inline(b"user:1", &user),
        inline(b"org:7", &org),
        Part {
            key: b"all",
            rule: Rule::Policy(&policy),
            cost: 1,
        },
    ];
    for n in 1..=3u64 {
        let (admitted, d) = store.check_many(&parts, 0, true).unwrap();
        assert!(admitted, "round {n}");
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [3 - n, 5 - n, 10 - n]
        );
    }
    // The user's limit is spent: nothing is taken from the others.
    let (admitted, d) = store.check_many(&parts, 0, true).unwrap();
    assert!(!admitted && !d[0].allowed && d[1].allowed && d[2].allowed);
    assert_eq!(remaining(&store, b"org:7", &org), 2);
    let global = store
        .check_policy(&policy, b"all", 0, Request::dry(0))
        .unwrap();
    assert_eq!(global.remaining, 7);
    // A key named twice is checked twice, in order: 2 left, 2 asked twice.
    let twice = [Part {
        cost: 2,
        ..inline(b"org:7", &org)
    }; 2];
    let (admitted, _) = store.check_many(&twice, 0, true).unwrap();
    assert!(!admitted);
    assert_eq!(remaining(&store, b"org:7", &org), 2, "nothing taken");
    // A dry run answers as if, and changes nothing.
    let (admitted, d) = store.check_many(&parts[1..], 0, false).unwrap();
    assert!(admitted && d[0].remaining == 1);
    assert_eq!(remaining(&store, b"org:7", &org), 2);
    // A new key refused leaves no state.
    let fresh = [inline(b"new", &org), inline(b"user:1", &user)];
    let (admitted, _) = store.check_many(&fresh, 0, true).unwrap();
    assert!(!admitted);
    assert!(store.inspect(Scope::Inline, b"new", None, 0).is_none());
    // Another algorithm's state is WRONGTYPE, and changes nothing.
    let wrong = [inline(b"org:7", &org), inline(b"user:1", &org)];
    assert!(matches!(
        store.check_many(&wrong, 0, true),
        Err(Refused::WrongType(_))
    ));
    assert_eq!(remaining(&store, b"org:7", &org), 2);
}

/// Two threads naming the same keys in opposite orders never deadlock,
/// and every admitted check took from both keys.
#[test]
fn multi_key_checks_in_any_order_neither_deadlock_nor_split() {
    let store = std::sync::Arc::new(Store::new());
    let p = Params::new(Algorithm::FixedWindow, 5_000, 3600 * SECOND);
    // Keys in different shards (so two locks are taken).
    let keys: Vec<Vec<u8>> = (0..100u32).map(|i| format!("k{i}").into_bytes()).collect();
    let a = keys[0].clone();
    let b = keys
        .iter()
        .find(|k| store.hasher.hash_one(&k[..]) >> 32 != store.hasher.hash_one(&a[..]) >> 32)
        .unwrap()
        .clone();
    let admitted: usize = std::thread::scope(|s| {
        let run = |first: Vec<u8>, second: Vec<u8>| {
            let store = store.clone();
            s.spawn(move || {
                let parts = [inline(&first, &p), inline(&second, &p)];
                (0..4_000)
                    .filter(|_| store.check_many(&parts, 0, true).unwrap().0)
                    .count()
            })
        };
        let one = run(a.clone(), b.clone());
        let two = run(b.clone(), a.clone());
        one.join().unwrap() + two.join().unwrap()
    });
    assert_eq!(admitted, 5_000, "8,000 asked of a limit of 5,000");
    assert_eq!(remaining(&store, &a, &p), 0);
    assert_eq!(remaining(&store, &b, &p), 0);
}
