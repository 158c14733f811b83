//! `maxmemory` over RESP: Redis's OOM answer under `noeviction` while stored
//! keys keep working, eviction under `volatile-ttl` with the bound kept,
//! and the figures INFO, CONFIG GET and /metrics show.

mod common;

use common::{TestServer, error, info};
use tollgate::config::Config;
use tollgate::store::EvictionPolicy;

/// 4 KiB a shard.
const BOUND: u64 = 64 * 4096;

fn config(policy: EvictionPolicy) -> Config {
    Config {
        maxmemory: BOUND,
        maxmemory_policy: policy,
        ..Config::default()
    }
}

fn field(info: &str, name: &str) -> String {
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .to_string()
}

/// Checks new keys `prefix0..` (pipelines of 500) until a pipeline meets
/// an error; answers how many were admitted, and the first refused key
/// with its error.
async fn fill(
    c: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    n: usize,
) -> (usize, Option<(String, String)>) {
    let mut admitted = 0;
    let mut refused = None;
    for start in (0..n).step_by(500) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for i in start..(start + 500).min(n) {
            pipe.cmd("LIMIT.CHECK")
                .arg(format!("{prefix}{i}"))
                .arg("token_bucket")
                .arg(10)
                .arg("1h");
        }
        let replies: Vec<redis::Value> = pipe.query_async(c).await.unwrap();
        for (i, r) in replies.into_iter().enumerate() {
            match r {
                redis::Value::Array(_) => admitted += 1,
                redis::Value::ServerError(e) => {
                    let line = format!("{} {}", e.code(), e.details().unwrap_or(""));
                    refused.get_or_insert((format!("{prefix}{}", start + i), line));
                }
                other => panic!("{other:?}"),
            }
        }
        if refused.is_some() {
            break;
        }
    }
    (admitted, refused)
}

#[tokio::test]
async fn noeviction_answers_oom_for_new_keys_and_serves_stored_ones() {
    let server = TestServer::manual_with(config(EvictionPolicy::NoEviction)).await;
    let mut c = common::connect(&server.client()).await;
    let (admitted, refused) = fill(&mut c, "k", 100_000).await;
    let (refused_key, line) = refused.expect("some key is refused");
    assert_eq!(
        line,
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    assert!(admitted > 1000, "{admitted}");
    let memory = info(&mut c, "memory").await;
    let used: u64 = field(&memory, "used_memory_dataset").parse().unwrap();
    assert!(used <= BOUND, "{used} > {BOUND}");
    assert_eq!(field(&memory, "maxmemory"), BOUND.to_string());
    assert_eq!(field(&memory, "maxmemory_policy"), "noeviction");
    // The refused key: refused again (its shard is full), and a peek at it
    // still answers; a stored key is checked as before.
    let oom = error(
        &mut c,
        &["LIMIT.CHECK", &refused_key, "token_bucket", "10", "1h"],
    )
    .await;
    assert_eq!(
        oom,
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    let peek = common::check(
        &mut c,
        &format!("LIMIT.CHECK {refused_key} token_bucket 10 1h DRYRUN"),
    )
    .await;
    assert_eq!(peek[..2], [1, 10]);
    let stored = common::check(&mut c, "LIMIT.CHECK k0 token_bucket 10 1h").await;
    assert_eq!(stored[..3], [1, 10, 8]);
    let size: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size, admitted, "refusals stored nothing");
    let stats = info(&mut c, "stats").await;
    assert_eq!(field(&stats, "evicted_keys"), "0");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        got.windows(2)
            .any(|w| w[0] == "maxmemory" && w[1] == BOUND.to_string())
            && got
                .windows(2)
                .any(|w| w[0] == "maxmemory-policy" && w[1] == "noeviction"),
        "{got:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn volatile_ttl_keeps_a_stream_of_new_keys_under_the_bound() {
    let server = TestServer::manual_with(config(EvictionPolicy::VolatileTtl)).await;
    let mut c = common::connect(&server.client()).await;
    let (admitted, refused) = fill(&mut c, "k", 30_000).await;
    assert_eq!(refused, None);
    assert_eq!(admitted, 30_000);
    let memory = info(&mut c, "memory").await;
    let used: u64 = field(&memory, "used_memory_dataset").parse().unwrap();
    assert!(used <= BOUND, "{used} > {BOUND}");
    let stats = common::info(&mut c, "stats").await;
    let evicted: usize = field(&stats, "evicted_keys").parse().unwrap();
    let size: usize = redis::cmd("DBSIZE").query_async(&mut c).await.unwrap();
    assert_eq!(size + evicted, 30_000);
    assert!(evicted > 20_000, "{evicted}");
    server.stop().await;
}
