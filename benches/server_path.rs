//! Criterion benchmarks of the path a request takes inside the server,
//! without sockets: RESP parse, dispatch and encode.
//!
//!   cargo bench --bench server_path

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use tollgate::clients::Clients;
use tollgate::clock::SystemClock;
use tollgate::command::{Ctx, Outcome, Session, dispatch};
use tollgate::config::Config;
use tollgate::frame::{Limits, multibulk_extent, next_request, reference_request};
use tollgate::reply::Reply;
use tollgate::resp::encode;
use tollgate::server::Shared;

const LIMITS: Limits = Limits::new(1 << 20, 1 << 26);

fn frame(words: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

fn resp(c: &mut Criterion) {
    let check = frame(&[
        "LIMIT.CHECK",
        "key:000000012345",
        "token_bucket",
        "100",
        "1m",
    ]);
    c.bench_function("resp/parse_limit_check", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&check[..]);
            black_box(next_request(&mut buf, &LIMITS).unwrap())
        })
    });
    // The reference path the scanner above replaces for common requests
    // (its reason to exist: keep it measurably faster than this), and that
    // path's two halves: the header scan that enforces the limits, and the
    // redis-protocol crate's decoder.
    c.bench_function("resp/reference_limit_check", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&check[..]);
            black_box(reference_request(&mut buf, &LIMITS).unwrap())
        })
    });
    c.bench_function("resp/scan_limit_check", |b| {
        b.iter(|| black_box(multibulk_extent(black_box(&check), &LIMITS).unwrap()))
    });
    c.bench_function("resp/crate_decode_limit_check", |b| {
        b.iter(|| {
            black_box(redis_protocol::resp2::decode::decode_range(black_box(&check)).unwrap())
        })
    });
    let mut out = BytesMut::with_capacity(1 << 16);
    c.bench_function("resp/encode_decision", |b| {
        b.iter(|| {
            out.clear();
            encode(
                Reply::decision(black_box([1, 100, 99, -1, 600])),
                2,
                &mut out,
            );
        })
    });
}

/// Parse + dispatch + encode of LIMIT.CHECK on 100,000 keys: the CPU cost of
/// one check as the server pays it, without the socket.
fn full_check(c: &mut Criterion) {
    let shared = Shared::new(Config::default(), Arc::new(SystemClock));
    let clients = Arc::new(Clients::default());
    let guard = clients.register("bench".into(), "bench".into());
    let mut session = Session::new(guard.meta.clone(), shared.users.default_user());
    let frames: Vec<Vec<u8>> = (0..100_000)
        .map(|i| {
            frame(&[
                "LIMIT.CHECK",
                &format!("key:{i:012}"),
                "token_bucket",
                "100",
                "1m",
            ])
        })
        .collect();
    let mut out = BytesMut::with_capacity(1 << 16);
    let mut i = 0;
    for (name, words) in [
        ("server/ping", frame(&["PING"])),
        (
            "server/cl_throttle",
            frame(&["CL.THROTTLE", "key:000000012345", "99", "100", "60"]),
        ),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| serve_one(&shared, &mut session, &words, &mut out))
        });
    }
    c.bench_function("server/limit_check_100k_keys", |b| {
        b.iter(|| {
            i = (i + 7_919) % frames.len();
            serve_one(&shared, &mut session, &frames[i], &mut out);
        })
    });
}

/// What the server does with one request: parse, dispatch, encode.
fn serve_one(shared: &Arc<Shared>, session: &mut Session, request: &[u8], out: &mut BytesMut) {
    let mut buf = BytesMut::from(request);
    let request = next_request(&mut buf, &LIMITS).unwrap().unwrap();
    let argv = request.args();
    // A batch of one: the clock is read for every request.
    let batch_time = std::cell::Cell::new(None);
    let mut ctx = Ctx {
        shared,
        session,
        blocking: true,
        batch_time: &batch_time,
    };
    if let Outcome::Reply(r) = dispatch(&mut ctx, &argv) {
        out.clear();
        encode(r, 2, out);
    }
}

criterion_group!(benches, resp, full_check);
criterion_main!(benches);
