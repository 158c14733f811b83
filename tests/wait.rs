//! WAIT and the leaky bucket's spacing, on the real clock. Margins are wide
//! (hundreds of ms) so a loaded machine cannot make these flaky: a timer
//! never fires early, so lower bounds are strict; upper bounds are loose.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, check, error_line};
use tokio::io::AsyncWriteExt;

async fn timed(c: &mut redis::aio::MultiplexedConnection, cmd: &str) -> (Vec<i64>, Duration) {
    let start = Instant::now();
    let reply = check(c, cmd).await;
    (reply, start.elapsed())
}

#[tokio::test]
async fn wait_holds_the_reply_until_allowed() {
    let server = TestServer::real().await;
    let mut c = server.conn().await;
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k token_bucket 2 1s BURST 1").await[0],
        1
    );
    let (reply, took) = timed(&mut c, "LIMIT.CHECK k token_bucket 2 1s BURST 1 WAIT 5s").await;
    assert_eq!(reply[..4], [1, 1, 0, -1]);
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // A check that waited counts once, by its final decision.
    let stats = common::info(&mut c, "stats").await;
    assert!(
        stats.contains("checks_token_bucket:2\r\nallowed_token_bucket:2\r\ndenied_token_bucket:0"),
        "{stats}"
    );
    server.stop().await;
}

#[tokio::test]
async fn wait_shorter_than_retry_is_denied_at_once() {
    let server = TestServer::real().await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k fixed_window 1 1h").await;
    let (reply, took) = timed(&mut c, "LIMIT.CHECK k fixed_window 1 1h WAIT 1s").await;
    assert_eq!(reply[0], 0);
    assert!(took < Duration::from_millis(900), "{took:?}");
    // Never-possible requests do not wait either.
    let (reply, _) = timed(&mut c, "LIMIT.CHECK k fixed_window 1 1h COST 2 WAIT 1h").await;
    assert_eq!((reply[0], reply[3]), (0, -1));
    server.stop().await;
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() {
    let server = TestServer::real().await;
    let mut c = server.conn().await;
    // One unit every 300 ms, none left now.
    check(&mut c, "LIMIT.CHECK k gcra 10 3s BURST 1").await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let client = server.client();
        tasks.push(tokio::spawn(async move {
            let mut c = common::connect(&client).await;
            tokio::time::sleep(Duration::from_millis(40 * i)).await;
            let reply = check(&mut c, "LIMIT.CHECK k gcra 10 3s BURST 1 WAIT 10s").await;
            (i, reply[0], start.elapsed())
        }));
    }
    let mut done = Vec::new();
    for t in tasks {
        done.push(t.await.unwrap());
    }
    assert!(done.iter().all(|&(_, allowed, _)| allowed == 1), "{done:?}");
    done.sort_by_key(|&(_, _, at)| at);
    assert_eq!(
        done.iter().map(|d| d.0).collect::<Vec<_>>(),
        [0, 1, 2],
        "{done:?}"
    );
    // Each had to wait its own interval: at least 300, 600, 900 ms.
    for (n, &(_, _, at)) in done.iter().enumerate() {
        assert!(
            at >= Duration::from_millis(300 * (n as u64 + 1) - 50),
            "{done:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_waiter_that_leaves_gives_its_place_back() {
    let server = TestServer::real().await;
    let mut c = server.conn().await;
    // One unit every 2 s, none left now.
    check(&mut c, "LIMIT.CHECK k token_bucket 1 2s").await;
    let start = Instant::now();
    let mut first = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(b"LIMIT.CHECK k token_bucket 1 2s WAIT 10s\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = {
        let client = server.client();
        tokio::spawn(async move {
            let mut c = common::connect(&client).await;
            check(&mut c, "LIMIT.CHECK k token_bucket 1 2s WAIT 10s").await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first);
    let reply = second.await.unwrap();
    let took = start.elapsed();
    assert_eq!(reply[0], 1);
    // Served at the first token (2 s), not the second (4 s).
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "{took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn leaky_bucket_replies_are_evenly_spaced() {
    let server = TestServer::real().await;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let client = server.client();
        tasks.push(tokio::spawn(async move {
            let mut c = common::connect(&client).await;
            tokio::time::sleep(Duration::from_millis(10 * i)).await;
            let reply = check(&mut c, "LIMIT.CHECK q leaky_bucket 4 1s").await;
            (reply, start.elapsed())
        }));
    }
    let mut at = Vec::new();
    for t in tasks {
        let (reply, when) = t.await.unwrap();
        assert_eq!(reply[0], 1);
        at.push(when);
    }
    at.sort();
    // 250 ms apart: each gap at least 200 ms, all within a generous bound.
    for pair in at.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(200), "{at:?}");
    }
    assert!(at[3] < Duration::from_secs(4), "{at:?}");
    server.stop().await;
}

#[tokio::test]
async fn leaky_bucket_wait_caps_the_turn_and_full_queue_denies_at_once() {
    let server = TestServer::real().await;
    let mut c = server.conn().await;
    // Fill the queue inside a transaction (replies not held).
    let filled = common::checks_in_multi(&mut c, "LIMIT.CHECK q leaky_bucket 3 30s", 3).await;
    assert!(filled.iter().all(|r| r[0] == 1));
    let (reply, took) = timed(&mut c, "LIMIT.CHECK q leaky_bucket 3 30s").await;
    assert_eq!(reply[..3], [0, 3, 0]);
    assert!(took < Duration::from_secs(2), "{took:?}");
    let (reply, took) = timed(&mut c, "LIMIT.CHECK w leaky_bucket 1 30s").await;
    assert_eq!(reply[0], 1);
    assert!(took < Duration::from_secs(2));
    // The next turn is 30 s away: WAIT 100ms refuses it at once.
    let (reply, took) = timed(
        &mut c,
        "LIMIT.CHECK w leaky_bucket 2 60s BURST 2 WAIT 100ms",
    )
    .await;
    assert_eq!(reply[0], 0, "{reply:?}");
    assert!(took < Duration::from_secs(2));
    server.stop().await;
}

#[tokio::test]
async fn leaving_leaky_waiter_frees_its_slot() {
    let server = TestServer::real().await;
    let mut c = server.conn().await;
    // Capacity 2, one unit per 20 s: the first is answered at once, the
    // second would wait 20 s.
    assert_eq!(
        check(&mut c, "LIMIT.CHECK q leaky_bucket 1 20s BURST 2").await[0],
        1
    );
    let mut waiter = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    waiter
        .write_all(b"LIMIT.CHECK q leaky_bucket 1 20s BURST 2\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let info: Vec<Vec<redis::Value>> = redis::cmd("LIMIT.INFO")
        .arg("q")
        .query_async(&mut c)
        .await
        .unwrap();
    let queued = &info[0][info[0].len() - 2..];
    assert_eq!(
        queued,
        [
            redis::Value::BulkString(b"queued".to_vec()),
            redis::Value::Int(2)
        ]
    );
    drop(waiter);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = check(&mut c, "LIMIT.CHECK q leaky_bucket 1 20s BURST 2 DRYRUN").await;
    assert_eq!(reply[..3], [1, 2, 0], "the slot is free again");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_answers_waiters_with_an_error() {
    let server = TestServer::real().await;
    let mut c = server.conn().await;
    let client = server.client();
    check(&mut c, "LIMIT.CHECK g gcra 1 10s").await;
    let waiter = tokio::spawn(async move {
        let mut c = common::connect(&client).await;
        let r: redis::RedisResult<Vec<i64>> = redis::cmd("LIMIT.CHECK")
            .arg("g")
            .arg("gcra")
            .arg(1)
            .arg("10s")
            .arg("WAIT")
            .arg("20s")
            .query_async(&mut c)
            .await;
        r
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    server.stop().await;
    let result = waiter.await.unwrap();
    let err = result.expect_err("the waiter gets an error");
    assert_eq!(error_line(&err), "ERR server is shutting down");
    assert!(start.elapsed() < Duration::from_secs(5));
}
