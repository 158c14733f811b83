//! Memory per key: fills N keys of ~16 bytes into a store with one
//! algorithm and reports the growth of the process's resident memory
//! divided by N.
//!
//!   cargo run --release --example memprobe              # every algorithm, 1,000,000 keys
//!   cargo run --release --example memprobe -- gcra 500000
//!
//! Each algorithm runs in a fresh process, so one's memory does not hide
//! another's.

use std::process::Command;

use tollgate::limiter::{Algorithm, Params, Request};
use tollgate::store::Store;

const T0: u64 = 1_767_225_600_000_000_000;

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn probe(algorithm: Algorithm, keys: u64) {
    let store = Store::new();
    let p = Params::new(algorithm, 100, 60_000_000_000);
    let before = rss_bytes();
    for i in 0..keys {
        let key = format!("key:{i:012}");
        store
            .check(key.as_bytes(), &p, T0, Request::take(1))
            .expect("check");
    }
    let after = rss_bytes();
    assert_eq!(store.len() as u64, keys);
    let per_key = (after - before) as f64 / keys as f64;
    let extra = if algorithm.uses_buckets() {
        " (BUCKETS 10)"
    } else {
        ""
    };
    println!(
        "{:<15} {keys:>9} keys  {per_key:6.1} bytes/key{extra}",
        algorithm.name()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let keys: u64 = args
        .get(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    match args.first().map(String::as_str) {
        None | Some("all") => {
            let me = std::env::current_exe().expect("own path");
            for a in Algorithm::ALL {
                let status = Command::new(&me)
                    .args([a.name(), &keys.to_string()])
                    .status();
                assert!(
                    status.is_ok_and(|s| s.success()),
                    "probe of {} failed",
                    a.name()
                );
            }
        }
        Some(name) => {
            let algorithm = Algorithm::parse(name.as_bytes()).expect("an algorithm name");
            probe(algorithm, keys);
        }
    }
}
