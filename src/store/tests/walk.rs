//! The snapshot's walk: every lasting state once, whatever changes between
//! slices.

use super::super::*;
use super::SECOND;
use crate::limiter::Algorithm;

/// Keys dropped and created between a walk's slices never hide a state
/// that was there throughout: each such state is visited exactly once.
#[test]
fn a_walk_sees_every_lasting_state_once_whatever_changes_between_slices() {
    let store = Store::new();
    let p = Params::new(Algorithm::TokenBucket, 10, SECOND);
    let take = |key: &[u8]| store.check(key, &p, 0, Request::take(1)).unwrap();
    // Even keys last; odd ones are reset and created again during the walk.
    for i in 0..4000 {
        take(format!("k{i}").as_bytes());
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut seen = std::collections::HashMap::<Vec<u8>, usize>::new();
    let mut slice = Vec::new();
    let mut created = 0;
    store
        .walk(7, |step| {
            match step {
                Walked::State(map_key, _, _) => {
                    let key = decode_key(map_key).unwrap().1.to_vec();
                    *seen.entry(key.clone()).or_default() += 1;
                    slice.push(key);
                }
                Walked::Unlocked => {
                    // Drop odd keys just written (below the walk's mark, in
                    // the shard being walked) and some anywhere; create some.
                    let odd = |k: &Vec<u8>| k.starts_with(b"k") && k.last().unwrap() % 2 == 1;
                    for key in slice.drain(..).filter(odd) {
                        store.reset(Scope::Inline, &key, 0);
                        if next() % 2 == 0 {
                            take(&key);
                        }
                    }
                    let any = format!("k{}", next() % 2000 * 2 + 1);
                    store.reset(Scope::Inline, any.as_bytes(), 0);
                    take(format!("new{created}").as_bytes());
                    created += 1;
                }
            }
            Ok::<(), ()>(())
        })
        .unwrap();
    for i in (0..4000).step_by(2) {
        let key = format!("k{i}").into_bytes();
        assert_eq!(seen.get(&key), Some(&1), "k{i}");
    }
    // The walk is over: removals move slots freely again, and a second walk
    // sees exactly what is stored.
    for i in 0..100 {
        store.reset(Scope::Inline, format!("k{}", i * 2).as_bytes(), 0);
    }
    let mut again = 0;
    store
        .walk(1000, |step| {
            again += usize::from(matches!(step, Walked::State(..)));
            Ok::<(), ()>(())
        })
        .unwrap();
    assert_eq!(again, store.len());
}

#[test]
fn a_walk_ended_by_its_visitor_leaves_the_store_as_it_was() {
    let store = Store::new();
    let p = Params::new(Algorithm::TokenBucket, 10, SECOND);
    for i in 0..1000 {
        store
            .check(format!("k{i}").as_bytes(), &p, 0, Request::take(1))
            .unwrap();
    }
    let mut slices = 0;
    let ended = store.walk(3, |step| {
        if matches!(step, Walked::Unlocked) {
            slices += 1;
        }
        if slices == 10 {
            Err("disk full")
        } else {
            Ok(())
        }
    });
    assert_eq!(ended, Err("disk full"));
    for i in 0..500 {
        store.reset(Scope::Inline, format!("k{i}").as_bytes(), 0);
    }
    let mut left = Vec::new();
    store
        .walk(1000, |step| {
            if let Walked::State(k, _, _) = step {
                left.push(decode_key(k).unwrap().1.to_vec());
            }
            Ok::<(), ()>(())
        })
        .unwrap();
    left.sort();
    let mut expected: Vec<Vec<u8>> = (500..1000).map(|i| format!("k{i}").into_bytes()).collect();
    expected.sort();
    assert_eq!(left, expected);
}
