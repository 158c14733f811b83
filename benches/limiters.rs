//! Criterion benchmarks of each algorithm's step and of the store.
//!
//!   cargo bench --bench limiters

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use tollgate::limiter::{Algorithm, Params, Request, State};
use tollgate::store::Store;

const MS: u64 = 1_000_000;
const T0: u64 = 1_767_225_600_000_000_000;

/// One allowed check per iteration on a state that never runs out.
fn algorithm_steps(c: &mut Criterion) {
    let mut group = c.benchmark_group("step");
    for algorithm in Algorithm::ALL {
        let mut p = Params::new(algorithm, 1_000_000_000, 60_000 * MS);
        p.burst = p.limit;
        let mut state = State::fresh(&p);
        let mut now = T0;
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| {
                now += 1_000;
                black_box(state.check(&p, black_box(now), Request::take(1)))
            })
        });
    }
    group.finish();
}

/// The sliding window counter's cost does not depend on BUCKETS.
fn sliding_window_buckets(c: &mut Criterion) {
    let mut group = c.benchmark_group("sliding_window_buckets");
    for buckets in [10u32, 100, 1000] {
        let mut p = Params::new(Algorithm::SlidingWindow, 1_000_000_000, 60_000 * MS);
        p.buckets = buckets;
        let mut state = State::fresh(&p);
        let mut now = T0;
        // Fill every bucket first so the window is full of history.
        for _ in 0..(buckets * 2) {
            now += 60_000 * MS / u64::from(buckets) / 2;
            state.check(&p, now, Request::take(1));
        }
        group.bench_with_input(BenchmarkId::from_parameter(buckets), &buckets, |b, _| {
            b.iter(|| {
                now += 7_919; // a prime step: crosses bucket edges now and then
                black_box(state.check(&p, black_box(now), Request::take(1)))
            })
        });
    }
    group.finish();
}

/// Store checks on 100,000 keys, one thread and several threads on one key set.
fn store(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    let p = Params::new(Algorithm::TokenBucket, 100, 60_000 * MS);
    let store = Arc::new(Store::new());
    let mut i = 0usize;
    c.bench_function("store/check_100k_keys", |b| {
        b.iter(|| {
            i = (i + 7_919) % keys.len();
            black_box(store.check(&keys[i], &p, T0, Request::take(1)).unwrap())
        })
    });
    // A pipelined batch of 16 checks, as a connection runs it: with and
    // without asking the store to fetch the batch's keys first.
    let mut group = c.benchmark_group("store/batch16_100k_keys");
    for prefetch in [false, true] {
        let name = if prefetch { "prefetched" } else { "one_by_one" };
        let mut i = 0usize;
        group.bench_function(name, |b| {
            b.iter(|| {
                let batch: [&[u8]; 16] = std::array::from_fn(|_| {
                    i = (i + 7_919) % keys.len();
                    &keys[i][..]
                });
                if prefetch {
                    store.prefetch(&batch);
                }
                for key in batch {
                    black_box(store.check(key, &p, T0, Request::take(1)).unwrap());
                }
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("store/contended_one_key");
    for threads in [1usize, 2, 4] {
        group.bench_with_input(
            BenchmarkId::from_parameter(threads),
            &threads,
            |b, &threads| {
                b.iter_custom(|iters| {
                    let store = Arc::new(Store::new());
                    let p = Params::new(Algorithm::Gcra, 1_000_000_000, 1_000 * MS);
                    let start = std::time::Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            let store = store.clone();
                            s.spawn(move || {
                                for _ in 0..iters {
                                    black_box(
                                        store.check(b"hot", &p, T0, Request::take(1)).unwrap(),
                                    );
                                }
                            });
                        }
                    });
                    start.elapsed() / threads as u32
                })
            },
        );
    }
    group.finish();
}

/// The store against a `DashMap` doing the same checks on the same keys:
/// the figure that keeps our own map justified (64-byte slots, batch
/// prefetch, 4-byte index entries).
fn store_vs_dashmap(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect();
    let p = Params::new(Algorithm::TokenBucket, 100, 60_000 * MS);
    let mut group = c.benchmark_group("store_vs_dashmap/check_100k_keys");
    let store = Store::new();
    let mut i = 0usize;
    group.bench_function("store", |b| {
        b.iter(|| {
            i = (i + 7_919) % keys.len();
            black_box(store.check(&keys[i], &p, T0, Request::take(1)).unwrap())
        })
    });
    let map: dashmap::DashMap<Box<[u8]>, State> = dashmap::DashMap::new();
    let mut i = 0usize;
    group.bench_function("dashmap", |b| {
        b.iter(|| {
            i = (i + 7_919) % keys.len();
            let key = &keys[i][..];
            let decision = match map.get_mut(key) {
                Some(mut state) => state.check(&p, T0, Request::take(1)),
                None => {
                    let mut state = State::fresh(&p);
                    let d = state.check(&p, T0, Request::take(1));
                    map.insert(key.into(), state);
                    d
                }
            };
            black_box(decision)
        })
    });
    group.finish();

    // A pipelined batch of 16, as a connection runs it: the store fetches the
    // batch's index lines and slots first; DashMap has no such call.
    let mut group = c.benchmark_group("store_vs_dashmap/batch16_100k_keys");
    let mut i = 0usize;
    let batch = |i: &mut usize| -> [&[u8]; 16] {
        std::array::from_fn(|_| {
            *i = (*i + 7_919) % keys.len();
            &keys[*i][..]
        })
    };
    group.bench_function("store_prefetched", |b| {
        b.iter(|| {
            let keys = batch(&mut i);
            store.prefetch(&keys);
            for key in keys {
                black_box(store.check(key, &p, T0, Request::take(1)).unwrap());
            }
        })
    });
    group.bench_function("dashmap", |b| {
        b.iter(|| {
            for key in batch(&mut i) {
                if let Some(mut state) = map.get_mut(key) {
                    black_box(state.check(&p, T0, Request::take(1)));
                }
            }
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    algorithm_steps,
    sliding_window_buckets,
    store,
    store_vs_dashmap
);
criterion_main!(benches);
