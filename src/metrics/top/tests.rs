//! The sketch against exact counts on a skewed (Zipf) stream of a million
//! checks, with and without sampling; periods; denials; long keys.

use std::collections::HashMap;

use super::*;

const T0: u64 = 1_767_225_600_000_000_000;

/// A Zipf(1.1) stream over `keys` keys: key `i` (from 0) drawn with weight
/// `1 / (i + 1)^1.1`. Deterministic for a seed.
struct Zipf {
    cumulative: Vec<f64>,
    rng: u64,
}

impl Zipf {
    fn new(keys: usize, seed: u64) -> Zipf {
        let mut total = 0.0;
        let cumulative = (1..=keys)
            .map(|i| {
                total += 1.0 / (i as f64).powf(1.1);
                total
            })
            .collect();
        Zipf {
            cumulative,
            rng: seed | 1,
        }
    }

    fn next(&mut self) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let u = (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        let target = u * self.cumulative.last().unwrap();
        self.cumulative.partition_point(|&c| c < target)
    }
}

fn key(i: usize) -> Vec<u8> {
    format!("user:{i}").into_bytes()
}

/// Feeds a million Zipf checks to `top` (each with probability 1 in
/// `every`, weighted `every`), answering the exact counts.
fn feed(top: &Top, every: u64) -> HashMap<Vec<u8>, u64> {
    let mut zipf = Zipf::new(10_000, 42);
    let mut sampler = Sampler::new(7);
    let mut exact = HashMap::new();
    for _ in 0..1_000_000 {
        let k = key(zipf.next());
        *exact.entry(k.clone()).or_insert(0) += 1;
        if every == 1 || sampler.take() {
            top.count(&k, true, T0, every, 0);
        }
    }
    exact
}

fn exact_top(exact: &HashMap<Vec<u8>, u64>, n: usize) -> Vec<(Vec<u8>, u64)> {
    let mut all: Vec<_> = exact.iter().map(|(k, v)| (k.clone(), *v)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

#[test]
fn every_check_counted_the_sketch_keeps_its_guarantee_on_a_zipf_stream() {
    let top = Top::default();
    let exact = feed(&top, 1);
    let heavy = top.heaviest(Ranking::Checks, 50, T0);
    assert_eq!(heavy.len(), 50);
    for h in &heavy {
        let f = exact[&h.key[..]];
        assert!(
            h.count >= f && h.count - h.error <= f,
            "{}: estimate {} error {} exact {f}",
            String::from_utf8_lossy(&h.key),
            h.count,
            h.error
        );
    }
    // The top ten are the exact top ten, in order.
    let reported: Vec<&[u8]> = heavy[..10].iter().map(|h| &h.key[..]).collect();
    let truth: Vec<Vec<u8>> = exact_top(&exact, 10).into_iter().map(|(k, _)| k).collect();
    let truth: Vec<&[u8]> = truth.iter().map(|k| &k[..]).collect();
    assert_eq!(reported, truth);
}

#[test]
fn sampled_counts_stay_within_the_documented_bound_on_a_zipf_stream() {
    let top = Top::default();
    let exact = feed(&top, SAMPLE_EVERY);
    let heavy = top.heaviest(Ranking::Checks, 10, T0);
    for h in &heavy {
        let f = exact[&h.key[..]] as f64;
        // Space-Saving's error, plus four standard deviations of sampling.
        let bound = h.error as f64 + 4.0 * (SAMPLE_EVERY as f64 * f).sqrt() + SAMPLE_EVERY as f64;
        let off = (h.count as f64 - f).abs();
        assert!(
            off <= bound,
            "{}: estimate {} exact {f} off by {off} > {bound}",
            String::from_utf8_lossy(&h.key),
            h.count
        );
    }
    // The five heaviest keys are all among the ten reported.
    for (k, f) in exact_top(&exact, 5) {
        assert!(
            heavy.iter().any(|h| h.key[..] == k[..]),
            "{} ({f} checks) missing",
            String::from_utf8_lossy(&k)
        );
    }
}

#[test]
fn the_sampler_picks_one_in_sixteen_whatever_the_pattern() {
    let mut sampler = Sampler::new(3);
    let mut per_key = [0u64; 16];
    let rounds = 160_000;
    for i in 0..rounds * 16 {
        if sampler.take() {
            per_key[i % 16] += 1;
        }
    }
    // A key checked every 16th time is sampled about 1 time in 16 too.
    for (k, n) in per_key.iter().enumerate() {
        let expected = rounds as f64 / 16.0;
        assert!(
            (*n as f64 - expected).abs() < 0.05 * expected,
            "key {k}: {n} samples, expected about {expected}"
        );
    }
}

#[test]
fn denials_are_ranked_apart_and_old_periods_leave() {
    let top = Top::default();
    for _ in 0..5 {
        top.count(b"busy", true, T0, 1, 0);
    }
    for _ in 0..3 {
        top.count(b"blocked", false, T0, 1, 1);
    }
    let checks = top.heaviest(Ranking::Checks, 10, T0);
    let names: Vec<&[u8]> = checks.iter().map(|h| &h.key[..]).collect();
    assert_eq!(names, [&b"busy"[..], b"blocked"]);
    let denials = top.heaviest(Ranking::Denials, 10, T0);
    assert_eq!(
        denials,
        [Heavy {
            key: b"blocked"[..].into(),
            count: 3,
            error: 0
        }]
    );
    // The next period still shows the last one's counts, added to its own.
    let next = T0 + PERIOD_NS;
    top.count(b"blocked", false, next, 1, 1);
    assert_eq!(top.heaviest(Ranking::Denials, 10, next)[0].count, 4);
    // Two periods on, the first has left.
    let later = T0 + 2 * PERIOD_NS;
    assert_eq!(top.heaviest(Ranking::Denials, 10, later)[0].count, 1);
    assert!(
        top.heaviest(Ranking::Checks, 10, T0 + 3 * PERIOD_NS)
            .is_empty()
    );
}

#[test]
fn long_keys_are_counted_by_their_first_bytes() {
    let top = Top::default();
    let long = vec![b'k'; 1000];
    top.count(&long, true, T0, 1, 0);
    let heavy = top.heaviest(Ranking::Checks, 1, T0);
    assert_eq!(heavy[0].key.len(), MAX_KEY + 3);
    assert!(heavy[0].key.ends_with(b"..."));
}
