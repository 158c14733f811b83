use super::slots::{INLINE_KEY, MS, inline_eq};
use super::*;
use crate::limiter::{Algorithm, Retry};

mod memory;
mod multi;
mod walk;

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
