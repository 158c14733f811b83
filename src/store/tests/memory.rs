//! maxmemory: the store's own count, refusals and evictions.

use super::super::*;
use super::SECOND;
use crate::limiter::Algorithm;
use crate::store::memory::EvictionPolicy;
use crate::store::slots::MS;

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

/// The smallest bound: no shard has room for a slot, so every new key is
/// refused under either policy (eviction finds nothing to drop), and a
/// peek still answers.
#[test]
fn a_one_byte_bound_refuses_every_new_key() {
    for policy in EvictionPolicy::ALL {
        let store = Store::new();
        store.set_maxmemory(1, policy);
        let p = Params::new(Algorithm::TokenBucket, 10, 3600 * SECOND);
        assert_eq!(
            store.check(b"k", &p, 0, Request::take(1)),
            Err(Refused::OutOfMemory),
            "{}",
            policy.name()
        );
        assert!(
            store
                .check(b"k", &p, 0, Request::dry(1))
                .unwrap()
                .decision
                .allowed
        );
        assert!(store.is_empty());
        assert_eq!(store.used_memory(), 0);
    }
}
