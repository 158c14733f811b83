//! WAIT and the leaky bucket's spacing, on the manual clock. The server's
//! held replies sleep on the injected clock, so a test reads the exact
//! deadlines the server is waiting for (`ManualClock::deadlines`) and moves
//! time to them by hand: no real sleeps, no margins. The only real waiting
//! is for the server to have read a request (polled, with a generous limit).

mod common;

use std::time::Duration;

use common::{START_NS, TestServer, check, error_line, until};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

const MS: u64 = 1_000_000;

/// A check on its own connection, answered whenever the server answers.
fn spawn_check(server: &TestServer, cmd: &'static str) -> JoinHandle<Vec<i64>> {
    let client = server.client();
    tokio::spawn(async move {
        let mut c = common::connect(&client).await;
        check(&mut c, cmd).await
    })
}

/// The reply of a task the server must have answered (10 s real at most).
async fn answered(task: JoinHandle<Vec<i64>>) -> Vec<i64> {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the server answered")
        .unwrap()
}

/// A check that must be answered without the clock moving.
async fn at_once(c: &mut redis::aio::MultiplexedConnection, cmd: &str) -> Vec<i64> {
    tokio::time::timeout(Duration::from_secs(10), check(c, cmd))
        .await
        .expect("answered at once, without time passing")
}

fn clock(server: &TestServer) -> &tollgate::clock::ManualClock {
    server.clock.as_ref().unwrap()
}

#[tokio::test]
async fn wait_holds_the_reply_until_allowed() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let rule = "LIMIT.CHECK k token_bucket 2 1s BURST 1";
    assert_eq!(check(&mut c, rule).await[0], 1);
    let waiter = spawn_check(&server, "LIMIT.CHECK k token_bucket 2 1s BURST 1 WAIT 5s");
    until("the waiter sleeps", || {
        !clock(&server).deadlines().is_empty()
    })
    .await;
    // It sleeps exactly until the next token, 500 ms on.
    assert_eq!(clock(&server).deadlines(), [START_NS + 500 * MS]);
    server.advance_ns(500 * MS - 1);
    assert_eq!(clock(&server).deadlines(), [START_NS + 500 * MS]);
    assert!(!waiter.is_finished());
    server.advance_ns(1);
    assert_eq!(answered(waiter).await[..4], [1, 1, 0, -1]);
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
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k fixed_window 1 1h").await;
    let reply = at_once(&mut c, "LIMIT.CHECK k fixed_window 1 1h WAIT 1s").await;
    assert_eq!(reply[0], 0);
    // Never-possible requests do not wait either.
    let reply = at_once(&mut c, "LIMIT.CHECK k fixed_window 1 1h COST 2 WAIT 1h").await;
    assert_eq!((reply[0], reply[3]), (0, -1));
    assert!(clock(&server).deadlines().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn waiters_are_served_first_come_first_served() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    // One unit every 300 ms, none left now.
    check(&mut c, "LIMIT.CHECK k gcra 10 3s BURST 1").await;
    let mut waiters = Vec::new();
    for n in 1..=3 {
        waiters.push(spawn_check(
            &server,
            "LIMIT.CHECK k gcra 10 3s BURST 1 WAIT 10s",
        ));
        until("the waiter is queued", || {
            server.shared.waits.waiting() == n
        })
        .await;
    }
    // The head sleeps until the next unit; the others until they are woken
    // or their WAIT runs out.
    let wait_ends = START_NS + 10_000 * MS;
    assert_eq!(
        clock(&server).deadlines(),
        [START_NS + 300 * MS, wait_ends, wait_ends]
    );
    for (n, waiter) in waiters.into_iter().enumerate() {
        let at = START_NS + 300 * MS * (n as u64 + 1);
        until("the next head sleeps until its unit", || {
            clock(&server).deadlines().first() == Some(&at)
        })
        .await;
        clock(&server).set(at);
        assert_eq!(answered(waiter).await[0], 1, "waiter {n} at its unit");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_waiter_that_leaves_gives_its_place_back() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    // One unit every 2 s, none left now.
    check(&mut c, "LIMIT.CHECK k token_bucket 1 2s").await;
    let mut first = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    first
        .write_all(b"LIMIT.CHECK k token_bucket 1 2s WAIT 10s\r\n")
        .await
        .unwrap();
    until("the first waits", || server.shared.waits.waiting() == 1).await;
    let second = spawn_check(&server, "LIMIT.CHECK k token_bucket 1 2s WAIT 10s");
    until("the second waits", || server.shared.waits.waiting() == 2).await;
    assert_eq!(
        clock(&server).deadlines(),
        [START_NS + 2_000 * MS, START_NS + 10_000 * MS]
    );
    drop(first);
    // The second is now the head, waiting for the first token (2 s), not
    // the second (4 s).
    until("the second heads the queue", || {
        clock(&server).deadlines() == [START_NS + 2_000 * MS]
    })
    .await;
    server.advance_ns(2_000 * MS);
    assert_eq!(answered(second).await[0], 1);
    server.stop().await;
}

#[tokio::test]
async fn leaky_bucket_replies_are_evenly_spaced() {
    let server = TestServer::manual().await;
    let tasks: Vec<_> = (0..4)
        .map(|_| spawn_check(&server, "LIMIT.CHECK q leaky_bucket 4 1s"))
        .collect();
    until("three replies are held", || {
        clock(&server).deadlines().len() == 3
    })
    .await;
    // One unit drains every 250 ms: the replies are held until then, exactly.
    assert_eq!(
        clock(&server).deadlines(),
        [250, 500, 750].map(|ms| START_NS + ms * MS)
    );
    let mut answered_at = Vec::new();
    for step in 0..4u64 {
        clock(&server).set(START_NS + step * 250 * MS);
        until("the reply due now is sent", || {
            tasks.iter().filter(|t| t.is_finished()).count() > answered_at.len()
        })
        .await;
        answered_at.push(step);
        assert_eq!(
            tasks.iter().filter(|t| t.is_finished()).count() as u64,
            step + 1,
            "one reply per turn"
        );
    }
    for t in tasks {
        assert_eq!(answered(t).await[0], 1);
    }
    server.stop().await;
}

#[tokio::test]
async fn leaky_bucket_wait_caps_the_turn_and_full_queue_denies_at_once() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    // Fill the queue inside a transaction (replies not held).
    let filled = common::checks_in_multi(&mut c, "LIMIT.CHECK q leaky_bucket 3 30s", 3).await;
    assert!(filled.iter().all(|r| r[0] == 1));
    let reply = at_once(&mut c, "LIMIT.CHECK q leaky_bucket 3 30s").await;
    assert_eq!(reply[..3], [0, 3, 0]);
    let reply = at_once(&mut c, "LIMIT.CHECK w leaky_bucket 1 30s").await;
    assert_eq!(reply[0], 1);
    // The next turn is 30 s away: WAIT 100ms refuses it at once.
    let reply = at_once(
        &mut c,
        "LIMIT.CHECK w leaky_bucket 2 60s BURST 2 WAIT 100ms",
    )
    .await;
    assert_eq!(reply[0], 0, "{reply:?}");
    server.stop().await;
}

#[tokio::test]
async fn leaving_leaky_waiter_frees_its_slot() {
    let server = TestServer::manual().await;
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
    until("the waiter is held", || {
        !clock(&server).deadlines().is_empty()
    })
    .await;
    assert_eq!(clock(&server).deadlines(), [START_NS + 20_000 * MS]);
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
    until("the leaver's hold is gone", || {
        clock(&server).deadlines().is_empty() && server.shared.waits.waiting() == 0
    })
    .await;
    let reply = check(&mut c, "LIMIT.CHECK q leaky_bucket 1 20s BURST 2 DRYRUN").await;
    assert_eq!(reply[..3], [1, 2, 0], "the slot is free again");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_answers_waiters_with_an_error() {
    let server = TestServer::manual().await;
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
    until("the waiter sleeps", || {
        !clock(&server).deadlines().is_empty()
    })
    .await;
    server.stop().await;
    let result = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter is answered at shutdown")
        .unwrap();
    let err = result.expect_err("the waiter gets an error");
    assert_eq!(error_line(&err), "ERR server is shutting down");
}
