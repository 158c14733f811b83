//! Nothing a command leaves behind outlives it: after many held replies,
//! WAITs, MULTIs and closed connections, the server state's reference count,
//! the blocked-client count and the wait queues are back at their baseline
//! (in the manner of governor's `tests/memory_leaks.rs`).
//!
//! Held replies sleep on the real clock, so these tests poll with a generous
//! deadline rather than sleeping a fixed time.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestServer, check, info, run};
use futures_util::future::join_all;
use redis::Value;

/// Waits until `f` holds, up to 20 s.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn blocked(info: &str) -> usize {
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .expect("blocked_clients in INFO clients");
    line.trim().parse().unwrap()
}

/// Leaky-bucket replies held for their turn drop everything they hold once
/// answered: before the fix each one leaked an `Arc` of the server state and a
/// copy of its key.
#[tokio::test]
async fn held_leaky_replies_leak_nothing() {
    let server = TestServer::real().await;
    let mut conns = Vec::new();
    for _ in 0..40 {
        conns.push(server.conn().await);
    }
    let baseline = Arc::strong_count(&server.shared);
    let started = Instant::now();
    let mut held = 0;
    for round in 0..25 {
        // 40 callers at once on one key draining one unit a ms: all but the
        // first are held, each for its turn.
        let key = format!("leaky-{round}");
        let replies = join_all(conns.iter_mut().map(|c| {
            let key = key.clone();
            async move {
                check(
                    c,
                    &format!("LIMIT.CHECK {key} leaky_bucket 1000 1s BURST 1000"),
                )
                .await
            }
        }))
        .await;
        assert!(replies.iter().all(|d| d[0] == 1));
        held += replies.len() - 1;
    }
    assert!(held >= 975);
    assert!(
        started.elapsed() >= Duration::from_millis(25 * 30),
        "replies were held for their turn"
    );
    eventually("the state's count back at its baseline", || {
        Arc::strong_count(&server.shared) == baseline
    })
    .await;
    assert_eq!(blocked(&info(&mut conns[0], "clients").await), 0);
    server.stop().await;
}

/// A held reply counts as a blocked client while it waits, as WAIT does
/// (manual clock: the reply is held until the test moves time to its turn).
#[tokio::test]
async fn held_leaky_replies_count_as_blocked_clients() {
    let server = TestServer::manual().await;
    let mut a = server.conn().await;
    let mut b = server.conn().await;
    let mut watcher = server.conn().await;
    let rule = "LIMIT.CHECK q leaky_bucket 1 2s BURST 3";
    assert_eq!(check(&mut a, rule).await[0], 1);
    let held = tokio::spawn(async move { check(&mut b, rule).await });
    eventually("the second reply is held", || {
        !server.clock.as_ref().unwrap().deadlines().is_empty()
    })
    .await;
    assert_eq!(blocked(&info(&mut watcher, "clients").await), 1);
    server.advance_ms(2_000);
    let reply = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("answered at its turn")
        .unwrap();
    assert_eq!(reply[0], 1);
    assert_eq!(blocked(&info(&mut watcher, "clients").await), 0);
    server.stop().await;
}

/// Callers that leave mid-wait (WAIT queues, held leaky replies, open MULTI
/// blocks) leave nothing behind once their connections close. On the manual
/// clock, so nothing is answered before the callers leave.
#[tokio::test]
async fn closed_connections_leave_nothing_behind() {
    let server = TestServer::manual().await;
    let mut keep = server.conn().await;
    let baseline = Arc::strong_count(&server.shared);
    assert_eq!(
        check(&mut keep, "LIMIT.CHECK w fixed_window 1 60s").await[0],
        1
    );
    assert_eq!(
        check(&mut keep, "LIMIT.CHECK lb leaky_bucket 1 60s BURST 100").await[0],
        1
    );
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = server.client();
        tasks.push(tokio::spawn(async move {
            let mut c = common::connect(&client).await;
            match i % 3 {
                0 => drop(check(&mut c, "LIMIT.CHECK w fixed_window 1 60s WAIT 120s").await),
                1 => drop(check(&mut c, "LIMIT.CHECK lb leaky_bucket 1 60s BURST 100").await),
                _ => {
                    // A transaction left open, with a check queued in it.
                    run(&mut c, &["MULTI"]).await.unwrap();
                    run(&mut c, &["LIMIT.CHECK", "m", "gcra", "1", "1s"])
                        .await
                        .unwrap();
                    std::future::pending::<()>().await;
                }
            }
        }));
    }
    eventually("every caller is blocked or queued", || {
        server.shared.waits.waiting() >= 33
    })
    .await;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    eventually(
        "the connections are gone and their places given back",
        || Arc::strong_count(&server.shared) == baseline && server.shared.waits.waiting() == 0,
    )
    .await;
    // Leavers give their units back only from the tail (nobody behind is
    // moved), so the queue holds at most the 1 + 17 units once admitted.
    let d = check(
        &mut keep,
        "LIMIT.CHECK lb leaky_bucket 1 60s BURST 100 DRYRUN",
    )
    .await;
    assert!(d[2] >= 100 - 18, "{d:?}");
    assert_eq!(
        run(&mut keep, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    server.stop().await;
}
