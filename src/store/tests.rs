use super::slots::{INLINE_KEY, MS, inline_eq};
use super::*;
use crate::limiter::{Algorithm, Retry};
use crate::store::memory::EvictionPolicy;

const SECOND: u64 = 1_000_000_000;

#[test]
fn map_keys_round_trip_and_never_collide() {
    let mut a = Vec::new();
    encode_key(&mut a, Scope::Inline, b"k");
    let mut b = Vec::new();
    encode_key(&mut b, Scope::Policy("api"), b"k");
    assert_ne!(a, b);
    assert_eq!(decode_key(&a), Some((Scope::Inline, &b"k"[..])));
    assert_eq!(decode_key(&b), Some((Scope::Policy("api"), &b"k"[..])));
    assert_eq!(decode_key(&[9]), None);
    assert_eq!(decode_key(&[1, 200, 0, 0, 0]), None);
}

#[test]
fn fresh_states_are_not_stored() {
    let store = Store::new();
    let p = Params::new(Algorithm::TokenBucket, 10, SECOND);
    let dry = Request::dry(1);
    store.check(b"k", &p, 0, dry).unwrap();
    store.check(b"k", &p, 0, Request::take(0)).unwrap();
    assert_eq!(store.len(), 0);
    store.check(b"k", &p, 0, Request::take(1)).unwrap();
    assert_eq!(store.len(), 1);
    // Full again after 100 ms: swept.
    assert_eq!(store.sweep(100_000_000 - 1), 0);
    assert_eq!(store.sweep(100_000_000), 1);
    assert!(store.is_empty());
}

#[test]
fn another_algorithm_is_wrongtype_and_changes_nothing() {
    let store = Store::new();
    let tb = Params::new(Algorithm::TokenBucket, 1, SECOND);
    store.check(b"k", &tb, 0, Request::take(1)).unwrap();
    let gcra = Params::new(Algorithm::Gcra, 1, SECOND);
    let err = store.check(b"k", &gcra, 0, Request::take(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "key 'k' holds token_bucket state, not gcra"
    );
    let d = store
        .check(b"k", &tb, 0, Request::take(1))
        .unwrap()
        .decision;
    assert_eq!(d.retry, Retry::After(SECOND));
}

#[test]
fn changes_are_flagged_for_snapshots() {
    let store = Store::new();
    let p = Params::new(Algorithm::Gcra, 1, SECOND);
    let dry = Request::dry(1);
    store.check(b"k", &p, 0, dry).unwrap();
    assert!(!store.take_changed(), "a dry run changes nothing");
    store.check(b"k", &p, 0, Request::take(1)).unwrap();
    assert!(store.take_changed());
    store.check(b"k", &p, 0, Request::take(1)).unwrap();
    assert!(!store.take_changed(), "a denial changes nothing");
    assert!(store.reset(Scope::Inline, b"k", 0));
    assert!(store.take_changed());
}

#[test]
fn slots_stay_64_bytes() {
    assert_eq!(std::mem::size_of::<Key>(), 24);
    assert_eq!(std::mem::size_of::<Held>(), 24);
    assert_eq!(std::mem::size_of::<Entry64>(), 64);
}

#[test]
fn inline_keys_compare_on_every_byte() {
    let base = Key::new_inline(&[b'a'; 22]).unwrap();
    assert!(inline_eq(&base, &base));
    for i in 0..=INLINE_KEY {
        let mut other = base;
        other[i] ^= 1;
        assert!(!inline_eq(&base, &other), "byte {i}");
    }
}

#[test]
fn keys_and_numbers_pack_losslessly() {
    for k in [&b""[..], b"k", &[7u8; 22], &[9u8; 23], &[1u8; 300]] {
        assert_eq!(Key::new(k).as_bytes(), k);
    }
    let max = crate::limiter::MAX_COUNT;
    for a in Algorithm::ALL {
        for (limit, burst, window) in [
            (1, 1, MS),
            (max, max, crate::limiter::MAX_WINDOW_NS),
            (12345, 999_999_999_999, 1500 * MS),
        ] {
            let p = Params {
                algorithm: a,
                limit,
                burst,
                window,
                buckets: if a.uses_buckets() { 1000 } else { 0 },
            };
            assert_eq!(Packed::new(&p).params(), p);
        }
    }
}

#[test]
fn many_keys_survive_removals_in_any_order() {
    let store = Store::new();
    let p = Params::new(Algorithm::FixedWindow, 10, SECOND);
    let key = |i: u32| format!("key:{i:08}-with-a-long-enough-tail-{}", i % 3).into_bytes();
    for i in 0..5000 {
        store
            .check(&key(i), &p, 0, Request::take(1 + u64::from(i % 5)))
            .unwrap();
    }
    assert_eq!(store.len(), 5000);
    for i in (0..5000).step_by(2) {
        assert!(store.reset(Scope::Inline, &key(i), 0), "{i}");
    }
    assert_eq!(store.len(), 2500);
    for i in 0..5000 {
        let info = store.inspect(Scope::Inline, &key(i), None, 0);
        assert_eq!(info.is_some(), i % 2 == 1, "{i}");
    }
    let d = store
        .check(&key(7), &p, 0, Request::take(1))
        .unwrap()
        .decision;
    assert_eq!(d.remaining, 10 - 3 - 1);
    // All fresh at the next window: swept, and the memory shrinks.
    assert_eq!(store.sweep(SECOND), 2500);
    assert!(store.is_empty());
}

#[test]
fn prefetch_changes_nothing_even_while_the_index_grows() {
    let store = Store::new();
    // Half the keys hold logs (heap parts, fetched too).
    let p = |i: u32| {
        let algorithm = [Algorithm::FixedWindow, Algorithm::SlidingLog][i as usize % 2];
        Params::new(algorithm, 10, SECOND)
    };
    let long = [b'x'; 40];
    store.prefetch(&[b"cold", &long]);
    assert!(store.is_empty());
    // Enough keys that every shard's index passes PREFETCH_FROM.
    let n = (SHARDS * PREFETCH_FROM) as u32;
    for i in 0..n {
        let key = i.to_le_bytes();
        // Ask ahead for the key and for ones not there yet.
        store.prefetch(&[&key, &(i + 1).to_le_bytes(), &long]);
        store.check(&key, &p(i), 0, Request::take(1)).unwrap();
    }
    assert_eq!(store.len(), n as usize);
    let big = store
        .shards
        .iter()
        .filter(|s| s.index_mask.load(Ordering::Relaxed) >= PREFETCH_FROM - 1);
    assert_eq!(big.count(), SHARDS);
    for i in (0..n).step_by(7) {
        store.prefetch(&[&i.to_le_bytes()]);
        let d = store
            .check(&i.to_le_bytes(), &p(i), 0, Request::take(1))
            .unwrap()
            .decision;
        assert_eq!(d.remaining, 8, "key {i}");
    }
}

#[test]
fn short_and_long_keys_map_the_same_way() {
    // Map keys are built on the stack below 64 bytes, in a buffer above.
    let store = Store::new();
    let p = Params::new(Algorithm::Gcra, 5, SECOND);
    let keys: Vec<Vec<u8>> = [1, 62, 63, 64, 65, 300]
        .iter()
        .map(|&n| vec![b'k'; n])
        .collect();
    for key in &keys {
        store.check(key, &p, 0, Request::take(2)).unwrap();
    }
    for key in &keys {
        let d = store.check(key, &p, 0, Request::take(1)).unwrap().decision;
        assert_eq!(d.remaining, 2, "key of {} bytes", key.len());
    }
    let mut seen = Vec::new();
    store.for_each(|map_key, _, _| seen.push(decode_key(map_key).unwrap().1.to_vec()));
    seen.sort();
    assert_eq!(seen, keys);
}

#[test]
fn stale_entries_restart_fresh_on_access() {
    let store = Store::new();
    let p = Params::new(Algorithm::FixedWindow, 1, SECOND);
    assert!(
        store
            .check(b"k", &p, 0, Request::take(1))
            .unwrap()
            .decision
            .allowed
    );
    assert!(
        !store
            .check(b"k", &p, 1, Request::take(1))
            .unwrap()
            .decision
            .allowed
    );
    assert!(
        store
            .check(b"k", &p, SECOND, Request::take(1))
            .unwrap()
            .decision
            .allowed
    );
}

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

/// Fills `store` with new token bucket keys `prefix0..` until one is
/// refused; answers how many fitted and the refused key.
fn fill_until_refused(store: &Store, prefix: &str, most: usize) -> (usize, Vec<u8>) {
    let p = Params::new(Algorithm::TokenBucket, 10, 3600 * SECOND);
    for i in 0..most {
        let key = format!("{prefix}{i}");
        match store.check(key.as_bytes(), &p, 0, Request::take(1)) {
            Ok(_) => {}
            Err(Refused::OutOfMemory) => return (i, key.into_bytes()),
            Err(e) => panic!("{e}"),
        }
    }
    (most, Vec::new())
}

#[test]
fn under_noeviction_new_keys_are_refused_and_stored_ones_keep_working() {
    let store = Store::new();
    let bound = 64 * 4096;
    store.set_maxmemory(bound, EvictionPolicy::NoEviction);
    let (fitted, refused) = fill_until_refused(&store, "k", 1_000_000);
    assert!(fitted > 1000, "{fitted} keys in {bound} bytes");
    assert!(store.used_memory() <= bound as usize);
    assert_eq!(store.len(), fitted);
    // A stored key is checked as before; a peek at a new key needs no room.
    let p = Params::new(Algorithm::TokenBucket, 10, 3600 * SECOND);
    let d = store
        .check(b"k0", &p, 0, Request::take(1))
        .unwrap()
        .decision;
    assert!(d.allowed && d.remaining == 8);
    let peek = store
        .check(&refused, &p, 0, Request::dry(1))
        .unwrap()
        .decision;
    assert!(peek.allowed && peek.remaining == 9);
    assert_eq!(
        store.check(&refused, &p, 0, Request::take(1)),
        Err(Refused::OutOfMemory)
    );
    assert_eq!(store.len(), fitted, "the refusals stored nothing");
    assert_eq!(store.evicted_keys(), 0);
    // Raising the bound (SIGHUP) lets new keys in again.
    store.set_maxmemory(2 * bound, EvictionPolicy::NoEviction);
    assert!(store.check(&refused, &p, 0, Request::take(1)).is_ok());
}

#[test]
fn under_volatile_ttl_a_stream_of_new_keys_stays_under_the_bound() {
    let store = Store::new();
    let bound = 64 * 4096;
    store.set_maxmemory(bound, EvictionPolicy::VolatileTtl);
    // Long-lived keys, and as many short-lived ones among them.
    let long = Params::new(Algorithm::TokenBucket, 10, 3600 * SECOND);
    let short = Params::new(Algorithm::TokenBucket, 10, SECOND);
    for i in 0..50_000 {
        let (key, p) = if i % 2 == 0 {
            (format!("long{i}"), &long)
        } else {
            (format!("short{i}"), &short)
        };
        store.check(key.as_bytes(), p, 0, Request::take(1)).unwrap();
        if i % 1000 == 0 {
            assert!(store.used_memory() <= bound as usize, "after {i} keys");
        }
    }
    assert!(store.used_memory() <= bound as usize);
    let evicted = store.evicted_keys();
    assert!(evicted > 40_000, "{evicted} evicted");
    assert_eq!(store.len() as u64 + evicted, 50_000);
    // The states closest to being fresh went first.
    let mut kept = [0usize; 2];
    store.for_each(|k, _, _| kept[usize::from(decode_key(k).unwrap().1.starts_with(b"long"))] += 1);
    assert!(kept[1] > 4 * kept[0], "long {} short {}", kept[1], kept[0]);
}

#[test]
fn growing_logs_are_accounted_and_evict_others_under_volatile_ttl() {
    let store = Store::new();
    let bound = 64 * 8192;
    store.set_maxmemory(bound, EvictionPolicy::VolatileTtl);
    let log = Params::new(Algorithm::SlidingLog, 1_000_000, 3600 * SECOND);
    for i in 0..2000 {
        store
            .check(format!("log{i}").as_bytes(), &log, 0, Request::take(1))
            .unwrap();
    }
    // Each log grows by one entry per check at a new time.
    for t in 1..200 {
        for i in (0..2000).step_by(7) {
            let _ = store.check(format!("log{i}").as_bytes(), &log, t * MS, Request::take(1));
        }
        assert!(store.used_memory() <= bound as usize, "at {t} ms");
    }
    assert!(store.evicted_keys() > 0);
    // Everything swept: the heap count is back to nothing (no underflow).
    store.sweep(u64::MAX);
    assert!(store.is_empty());
    let empty = store.used_memory();
    let slots_and_index = store
        .shards
        .iter()
        .map(|s| {
            let s = s.lock();
            assert_eq!(s.heap, 0);
            s.bytes()
        })
        .sum::<usize>();
    assert_eq!(empty, slots_and_index);
}

#[test]
fn a_lowered_bound_is_reached_by_evicting_and_giving_slots_back() {
    let store = Store::new();
    fill_until_refused(&store, "old", 100_000);
    assert_eq!(store.len(), 100_000);
    let before = store.used_memory();
    let bound = (before / 4) as u64;
    store.set_maxmemory(bound, EvictionPolicy::VolatileTtl);
    let p = Params::new(Algorithm::TokenBucket, 10, 3600 * SECOND);
    let mut refused = 0;
    for i in 0..100_000 {
        if store
            .check(format!("new{i}").as_bytes(), &p, 0, Request::take(1))
            .is_err()
        {
            refused += 1;
        }
    }
    assert!(
        store.used_memory() <= bound as usize,
        "{} > {bound}",
        store.used_memory()
    );
    assert_eq!(refused, 0, "refused on the way down");
}

/// A restart hashes keys to shards with a new seed, so a shard may get
/// more than its share: it grows by a sixteenth at a time, and the whole
/// passes the bound by a few percent at most.
#[test]
fn a_keyspace_saved_under_the_bound_loads_close_to_it() {
    let bound = 64 * 65536;
    let saved = Store::new();
    saved.set_maxmemory(bound, EvictionPolicy::VolatileTtl);
    let p = Params::new(Algorithm::TokenBucket, 10, 3600 * SECOND);
    for i in 0..100_000 {
        saved
            .check(format!("k{i}").as_bytes(), &p, 0, Request::take(1))
            .unwrap();
    }
    let loaded = Store::new();
    loaded.set_maxmemory(bound, EvictionPolicy::VolatileTtl);
    saved.for_each(|k, fresh_at, slot| {
        let slot = slot.to_owned();
        loaded.insert_raw(k.into(), Entry { fresh_at, slot });
    });
    assert_eq!(loaded.len(), saved.len());
    let used = loaded.used_memory() as u64;
    assert!(used <= bound + bound / 16, "{used} > {bound} + 1/16");
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
        Part {
            key: b"user:1",
            rule: Rule::Inline(&user),
        },
        Part {
            key: b"org:7",
            rule: Rule::Inline(&org),
        },
        Part {
            key: b"all",
            rule: Rule::Policy(&policy),
        },
    ];
    for n in 1..=3u64 {
        let (admitted, d) = store.check_many(&parts, 0, Request::take(1)).unwrap();
        assert!(admitted, "round {n}");
        assert_eq!(
            d.iter().map(|d| d.remaining).collect::<Vec<_>>(),
            [3 - n, 5 - n, 10 - n]
        );
    }
    // The user's limit is spent: nothing is taken from the others.
    let (admitted, d) = store.check_many(&parts, 0, Request::take(1)).unwrap();
    assert!(!admitted && !d[0].allowed && d[1].allowed && d[2].allowed);
    assert_eq!(remaining(&store, b"org:7", &org), 2);
    let global = store
        .check_policy(&policy, b"all", 0, Request::dry(0))
        .unwrap();
    assert_eq!(global.remaining, 7);
    // A key named twice is checked twice, in order: 2 left, 2 asked twice.
    let twice = [Part {
        key: b"org:7",
        rule: Rule::Inline(&org),
    }; 2];
    let (admitted, _) = store.check_many(&twice, 0, Request::take(2)).unwrap();
    assert!(!admitted);
    assert_eq!(remaining(&store, b"org:7", &org), 2, "nothing taken");
    // A dry run changes nothing; a new key refused leaves no state.
    let fresh = [
        Part {
            key: b"new",
            rule: Rule::Inline(&org),
        },
        Part {
            key: b"user:1",
            rule: Rule::Inline(&user),
        },
    ];
    let (admitted, _) = store.check_many(&fresh, 0, Request::take(1)).unwrap();
    assert!(!admitted);
    assert!(store.inspect(Scope::Inline, b"new", None, 0).is_none());
    // Another algorithm's state is WRONGTYPE, and changes nothing.
    let wrong = [
        Part {
            key: b"org:7",
            rule: Rule::Inline(&org),
        },
        Part {
            key: b"user:1",
            rule: Rule::Inline(&org),
        },
    ];
    assert!(matches!(
        store.check_many(&wrong, 0, Request::take(1)),
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
                let parts = [
                    Part {
                        key: &first,
                        rule: Rule::Inline(&p),
                    },
                    Part {
                        key: &second,
                        rule: Rule::Inline(&p),
                    },
                ];
                (0..4_000)
                    .filter(|_| store.check_many(&parts, 0, Request::take(1)).unwrap().0)
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
