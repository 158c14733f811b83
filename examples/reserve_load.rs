//! A load client for budgets: each connection sends a pipeline of
//! `LIMIT.RESERVE`s on random keys, then a pipeline of `LIMIT.SETTLE`s with
//! the ids they answered (the pattern of an LLM gateway), and counts the
//! pairs. `--mode checks` sends two pipelines of `LIMIT.CHECK` instead,
//! the same requests in the same round trips, for comparison.
//!
//! ```text
//! cargo run --release --example reserve_load -- --port 6379 \
//!     [--mode pairs|checks] [--connections 50] [--pipeline 16] [--seconds 5] [--keys 100000]
//! ```
//!
//! Prints pairs/s (a pair: a reserve and a settle, or two checks) and
//! requests/s.

use std::time::{Duration, Instant};

struct Args {
    port: u16,
    checks: bool,
    connections: usize,
    pipeline: usize,
    seconds: u64,
    keys: u64,
}

fn args() -> Args {
    let mut a = Args {
        port: 6379,
        checks: false,
        connections: 50,
        pipeline: 16,
        seconds: 5,
        keys: 100_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        let number = || value.parse::<u64>().expect("a number");
        match pair[0].as_str() {
            "--port" => a.port = number() as u16,
            "--mode" => a.checks = value == "checks",
            "--connections" => a.connections = number().max(1) as usize,
            "--pipeline" => a.pipeline = number().max(1) as usize,
            "--seconds" => a.seconds = number().max(1),
            "--keys" => a.keys = number().max(1),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// xorshift64*: a key number per request, without a dependency.
fn next(state: &mut u64, keys: u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d) % keys
}

const RULE: [&str; 4] = ["gcra", "1000000000", "1s", "COST"];

async fn pairs(
    mut c: redis::aio::MultiplexedConnection,
    a: &Args,
    seed: u64,
    until: Instant,
) -> u64 {
    let mut state = seed | 1;
    let mut done = 0;
    while Instant::now() < until {
        let keys: Vec<String> = (0..a.pipeline)
            .map(|_| format!("b:{}", next(&mut state, a.keys)))
            .collect();
        if a.checks {
            for _ in 0..2 {
                let mut pipe = redis::pipe();
                for key in &keys {
                    pipe.cmd("LIMIT.CHECK")
                        .arg(key)
                        .arg(&RULE[..3])
                        .arg("COST")
                        .arg(10);
                }
                let _: Vec<Vec<i64>> = pipe.query_async(&mut c).await.expect("checks");
            }
        } else {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("LIMIT.RESERVE").arg(key).arg(&RULE[..]).arg(10);
            }
            let reserved: Vec<redis::Value> = pipe.query_async(&mut c).await.expect("reserves");
            let mut pipe = redis::pipe();
            for (key, reply) in keys.iter().zip(reserved) {
                let (_, _, _, _, _, id): (i64, i64, i64, i64, i64, String) =
                    redis::from_redis_value(reply).expect("an admitted reserve");
                pipe.cmd("LIMIT.SETTLE").arg(key).arg(id).arg(7);
            }
            let _: Vec<Vec<i64>> = pipe.query_async(&mut c).await.expect("settles");
        }
        done += a.pipeline as u64;
    }
    done
}

#[tokio::main]
async fn main() {
    let a = args();
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", a.port)).unwrap();
    let mut conns = Vec::new();
    for _ in 0..a.connections {
        conns.push(client.get_multiplexed_async_connection().await.unwrap());
    }
    let a = std::sync::Arc::new(a);
    let start = Instant::now();
    let until = start + Duration::from_secs(a.seconds);
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let a = a.clone();
            tokio::spawn(async move { pairs(c, &a, 0x9e37_79b9 * (i as u64 + 1), until).await })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let mode = if a.checks {
        "two checks"
    } else {
        "reserve + settle"
    };
    println!(
        "{mode}: {:.0} pairs/s, {:.0} requests/s ({} connections, pipeline {})",
        total as f64 / secs,
        2.0 * total as f64 / secs,
        a.connections,
        a.pipeline
    );
}
