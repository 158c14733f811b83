//! A load client for the Envoy rate limit service: ShouldRateLimit calls
//! with N in flight over one HTTP/2 connection (as Envoy sends them), each
//! naming a random user of `--users` in its first descriptor.
//!
//! ```text
//! cargo run --release --example rls_load -- --addr 127.0.0.1:8081 \
//!     --domain bench --descriptors 4 --in-flight 64 --seconds 10 [--connections N]
//! ```
//!
//! The calls in flight share `--connections` HTTP/2 connections (default:
//! one per 16 in flight, at least one).
//!
//! Descriptors, in order: `user=<random>`, `org=<user % 1000>`,
//! `path=/api`, `global=all` (the first `--descriptors` of them). Prints
//! calls/s, the share answered OVER_LIMIT, and p50/p99/p99.9 latency.

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;

struct Args {
    addr: String,
    domain: String,
    descriptors: usize,
    in_flight: usize,
    connections: usize,
    seconds: u64,
    users: u64,
}

fn args() -> Args {
    let mut a = Args {
        addr: "127.0.0.1:8081".into(),
        domain: "bench".into(),
        descriptors: 1,
        in_flight: 1,
        connections: 0,
        seconds: 10,
        users: 100_000,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        let number = || value.parse::<u64>().expect("a number");
        match pair[0].as_str() {
            "--addr" => a.addr = value.clone(),
            "--domain" => a.domain = value.clone(),
            "--descriptors" => a.descriptors = number().clamp(1, 4) as usize,
            "--in-flight" => a.in_flight = number().max(1) as usize,
            "--connections" => a.connections = number() as usize,
            "--seconds" => a.seconds = number().max(1),
            "--users" => a.users = number().max(1),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

fn descriptor(key: &str, value: String) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: vec![Entry {
            key: key.into(),
            value,
        }],
        ..Default::default()
    }
}

/// A small xorshift generator: the users called, spread evenly.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[tokio::main]
async fn main() {
    let a = args();
    // HTTP/2 connections, the calls in flight spread over them (Envoy
    // keeps one per worker thread): by default one per 16 in flight.
    let connections = match a.connections {
        0 => a.in_flight.div_ceil(16),
        n => n.min(a.in_flight),
    };
    let mut clients = Vec::new();
    for _ in 0..connections {
        let client = RateLimitServiceClient::connect(format!("http://{}", a.addr))
            .await
            .expect("a gRPC connection");
        clients.push(client);
    }
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for t in 0..a.in_flight {
        let mut client = clients[t % connections].clone();
        let (domain, descriptors, users) = (a.domain.clone(), a.descriptors, a.users);
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ (t as u64 + 1);
            let (mut latencies, mut over) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let user = next(&mut seed) % users;
                let all = [
                    descriptor("user", user.to_string()),
                    descriptor("org", (user % 1000).to_string()),
                    descriptor("path", "/api".into()),
                    descriptor("global", "all".into()),
                ];
                let request = RateLimitRequest {
                    domain: domain.clone(),
                    descriptors: all[..descriptors].to_vec(),
                    hits_addend: 1,
                };
                let start = Instant::now();
                let r = client.should_rate_limit(request).await.expect("a call");
                latencies.push(start.elapsed());
                over += u64::from(r.get_ref().overall_code == 2);
            }
            (latencies, over)
        }));
    }
    let (mut all, mut over) = (Vec::new(), 0);
    for t in tasks {
        let (l, o) = t.await.expect("a task");
        all.extend(l);
        over += o;
    }
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "descriptors={} in_flight={} calls/s={:.0} over_limit={:.1}% p50={:.0}us p99={:.0}us p99.9={:.0}us",
        a.descriptors,
        a.in_flight,
        all.len() as f64 / a.seconds as f64,
        100.0 * over as f64 / all.len().max(1) as f64,
        us(at(0.50)),
        us(at(0.99)),
        us(at(0.999)),
    );
}
