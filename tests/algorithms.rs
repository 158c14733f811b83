//! One scenario run against every algorithm over a socket, with a manual
//! clock: capacity, exact retry_after, DRYRUN, COST above capacity, reset
//! to fresh and the sweep.

mod common;

use std::time::Duration;

use common::{TestServer, run};
use redis::Value;

/// Runs a check; inside MULTI/EXEC when `atomic`, where no reply is held
/// (the leaky bucket otherwise answers each request at its real-time turn).
async fn ask(c: &mut redis::aio::MultiplexedConnection, words: &str, atomic: bool) -> Vec<i64> {
    if atomic {
        common::checks_in_multi(c, words, 1).await.remove(0)
    } else {
        common::check(c, words).await
    }
}

/// `retry_after_ms` is exact: 1 ms less is denied, that long is allowed.
async fn retry_is_exact(
    server: &TestServer,
    c: &mut redis::aio::MultiplexedConnection,
    cmd: &str,
    atomic: bool,
) {
    let denied = ask(c, cmd, atomic).await;
    assert_eq!(denied[0], 0, "{cmd}: {denied:?}");
    let retry = u64::try_from(denied[3]).expect("a finite retry");
    assert!(retry > 0);
    server.advance_ms(retry - 1);
    let early = ask(c, cmd, atomic).await;
    assert_eq!(
        early[0], 0,
        "{cmd}: 1 ms before retry_after ({retry}) must be denied"
    );
    assert_eq!(early[3], 1, "{cmd}: one ms left");
    server.advance_ms(1);
    let on_time = ask(c, cmd, atomic).await;
    assert_eq!(
        on_time[0], 1,
        "{cmd}: allowed after exactly retry_after ({retry})"
    );
}

macro_rules! scenario {
    ($name:ident, $algorithm:literal, $extra:literal, $atomic:literal) => {
        mod $name {
            use super::*;

            async fn check(c: &mut redis::aio::MultiplexedConnection, words: &str) -> Vec<i64> {
                ask(c, words, $atomic).await
            }

            fn cmd(key: &str, more: &str) -> String {
                format!("LIMIT.CHECK {key} {} 5 10s {} {more}", $algorithm, $extra)
            }

            #[tokio::test]
            async fn admits_capacity_then_denies() {
                let server = TestServer::manual().await;
                let mut c = server.conn().await;
                for left in (0..5).rev() {
                    let d = check(&mut c, &cmd("k", "")).await;
                    assert_eq!(d[..4], [1, 5, left, -1], "{}", $algorithm);
                    assert!(d[4] > 0);
                }
                let d = check(&mut c, &cmd("k", "")).await;
                assert_eq!(d[..3], [0, 5, 0]);
                assert!(d[3] > 0 && d[4] >= d[3]);
                server.stop().await;
            }

            #[tokio::test]
            async fn retry_after_is_exact() {
                let server = TestServer::manual().await;
                let mut c = server.conn().await;
                check(&mut c, &cmd("k", "COST 5")).await;
                retry_is_exact(&server, &mut c, &cmd("k", ""), $atomic).await;
                // And for a larger cost.
                check(&mut c, &cmd("j", "COST 4")).await;
                server.advance_ms(1234);
                retry_is_exact(&server, &mut c, &cmd("j", "COST 3"), $atomic).await;
                server.stop().await;
            }

            #[tokio::test]
            async fn dryrun_and_denials_change_nothing() {
                let server = TestServer::manual().await;
                let mut c = server.conn().await;
                check(&mut c, &cmd("k", "COST 3")).await;
                let before = run(&mut c, &["LIMIT.INFO", "k"]).await.unwrap();
                let dry = check(&mut c, &cmd("k", "COST 2 DRYRUN")).await;
                assert_eq!(dry[..3], [1, 5, 0]);
                let denied = check(&mut c, &cmd("k", "COST 3")).await;
                assert_eq!(denied[0], 0);
                let never = check(&mut c, &cmd("k", "COST 6")).await;
                assert_eq!((never[0], never[3]), (0, -1), "above capacity: never");
                assert_eq!(run(&mut c, &["LIMIT.INFO", "k"]).await.unwrap(), before);
                assert_eq!(check(&mut c, &cmd("k", "COST 2")).await[..3], [1, 5, 0]);
                server.stop().await;
            }

            #[tokio::test]
            async fn fresh_state_is_forgotten() {
                let config = tollgate::config::Config {
                    sweep_interval_ms: 10,
                    ..Default::default()
                };
                let server = TestServer::manual_with(config).await;
                let mut c = server.conn().await;
                let d = check(&mut c, &cmd("k", "COST 2")).await;
                assert_eq!(run(&mut c, &["DBSIZE"]).await.unwrap(), Value::Int(1));
                let reset_ms = u64::try_from(d[4]).unwrap();
                server.advance_ms(reset_ms - 1);
                assert_eq!(run(&mut c, &["DBSIZE"]).await.unwrap(), Value::Int(1));
                let info = run(&mut c, &["LIMIT.INFO", "k"]).await.unwrap();
                assert_ne!(info, Value::Array(vec![]));
                server.advance_ms(1);
                assert_eq!(
                    run(&mut c, &["LIMIT.INFO", "k"]).await.unwrap(),
                    Value::Array(vec![])
                );
                // The sweep drops it from DBSIZE in real time soon after.
                let mut size = Value::Int(1);
                for _ in 0..500 {
                    size = run(&mut c, &["DBSIZE"]).await.unwrap();
                    if size == Value::Int(0) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                assert_eq!(size, Value::Int(0));
                // Back to a full, fresh limiter.
                assert_eq!(check(&mut c, &cmd("k", "COST 5")).await[..3], [1, 5, 0]);
                server.stop().await;
            }
        }
    };
}

scenario!(token_bucket, "token_bucket", "", false);
scenario!(token_bucket_burst, "token_bucket", "BURST 5", false);
scenario!(leaky_bucket, "leaky_bucket", "", true);
scenario!(fixed_window, "fixed_window", "", false);
scenario!(sliding_log, "sliding_log", "", false);
scenario!(sliding_window, "sliding_window", "BUCKETS 7", false);
scenario!(gcra, "gcra", "", false);
