//! LIMIT.TOP over a socket: the heaviest keys by checks and by denials,
//! within the documented bound; the top ten in /metrics; ACL key
//! patterns; errors.

mod common;

use common::{TestServer, error, run};
use redis::Value;

/// LIMIT.TOP's rows as (key, count, error).
async fn top(c: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> Vec<(String, i64, i64)> {
    let mut all = vec!["LIMIT.TOP"];
    all.extend_from_slice(words);
    let value = run(c, &all)
        .await
        .unwrap_or_else(|e| panic!("{words:?}: {e}"));
    redis::from_redis_value(value).unwrap()
}

/// Sends `n` checks of `key` under a fixed window of `limit` a minute.
async fn checks(c: &mut redis::aio::MultiplexedConnection, key: &str, limit: u64, n: usize) {
    let mut pipe = redis::pipe();
    for _ in 0..n {
        pipe.cmd("LIMIT.CHECK")
            .arg(key)
            .arg("fixed_window")
            .arg(limit)
            .arg("1m")
            .ignore();
    }
    let () = pipe.query_async(c).await.unwrap();
}

/// Whether an estimate fits the documented bound for `exact` checks.
fn within(estimate: i64, error: i64, exact: i64) -> bool {
    // Five standard deviations of sampling: a flake about once in a million.
    let noise = 5.0 * (16.0 * exact as f64).sqrt() + 16.0;
    (estimate - exact).abs() as f64 <= error as f64 + noise
}

#[tokio::test]
async fn the_heaviest_keys_by_checks_and_by_denials() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    assert_eq!(top(&mut c, &[]).await, [], "nothing checked yet");
    checks(&mut c, "hot", 100, 6400).await;
    checks(&mut c, "warm", 10_000, 1600).await;
    for i in 0..50 {
        checks(&mut c, &format!("cold:{i}"), 100, 4).await;
    }
    let rows = top(&mut c, &["COUNT", "2"]).await;
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].0.as_str(), rows[1].0.as_str()), ("hot", "warm"));
    assert!(within(rows[0].1, rows[0].2, 6400), "{rows:?}");
    assert!(within(rows[1].1, rows[1].2, 1600), "{rows:?}");
    // Only hot was denied: 6300 times.
    let denied = top(&mut c, &["DENIALS"]).await;
    assert_eq!(denied[0].0, "hot", "{denied:?}");
    assert!(within(denied[0].1, denied[0].2, 6300), "{denied:?}");
    assert!(denied.iter().all(|r| r.0 != "warm"), "{denied:?}");
    // The same in /metrics, by rank.
    let text = tollgate::metrics::endpoint::render(&server.shared);
    assert!(
        text.contains("tollgate_top_checks{rank=\"1\",key=\"hot\"}"),
        "{text}"
    );
    assert!(
        text.contains("tollgate_top_denials{rank=\"1\",key=\"hot\"}"),
        "{text}"
    );
    let ranks = text
        .lines()
        .filter(|l| l.starts_with("tollgate_top_checks{"))
        .count();
    assert!(ranks <= 10, "a fixed top ten: {ranks}");
    // Two minutes on, the counts have left.
    server.advance_ms(120_000);
    assert_eq!(top(&mut c, &[]).await, []);
    server.stop().await;
}

#[tokio::test]
async fn a_user_sees_only_the_keys_it_may_access() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    checks(&mut c, "limits:a", 1000, 800).await;
    checks(&mut c, "secret:b", 1000, 1600).await;
    let setuser = [
        "ACL",
        "SETUSER",
        "observer",
        "on",
        ">pw",
        "+limit.top",
        "~limits:*",
    ];
    assert_eq!(run(&mut c, &setuser).await.unwrap(), Value::Okay);
    let mut o = server.conn().await;
    run(&mut o, &["AUTH", "observer", "pw"]).await.unwrap();
    let rows = top(&mut o, &[]).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "limits:a");
    assert_eq!(
        top(&mut c, &[]).await[0].0,
        "secret:b",
        "the default user sees all"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_words_are_errors() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["LIMIT.TOP", "COUNT", "0"],
            "ERR invalid count '0': expected an integer from 1 to 100",
        ),
        (
            &["LIMIT.TOP", "COUNT", "101"],
            "ERR invalid count '101': expected an integer from 1 to 100",
        ),
        (&["LIMIT.TOP", "COUNT"], "ERR syntax error"),
        (&["LIMIT.TOP", "CHECKS", "DENIALS"], "ERR syntax error"),
        (&["LIMIT.TOP", "HOT"], "ERR syntax error"),
        (
            &["LIMIT.TOP", "CHECKS", "COUNT", "1", "x"],
            "ERR wrong number of arguments for 'limit.top' command",
        ),
    ];
    for (words, expected) in cases {
        assert_eq!(&error(&mut c, words).await, expected, "{words:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn every_kind_of_check_is_counted() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let mut pipe = redis::pipe();
    for _ in 0..640 {
        pipe.cmd("CL.THROTTLE")
            .arg("cell")
            .arg(15)
            .arg(30)
            .arg(60)
            .ignore();
        pipe.cmd("LIMIT.CHECKALL")
            .arg(1)
            .arg("multi")
            .arg("gcra")
            .arg(10)
            .arg("1m")
            .ignore();
        pipe.cmd("LIMIT.RESERVE")
            .arg("budget")
            .arg("gcra")
            .arg(10)
            .arg("1m")
            .ignore();
        pipe.cmd("LIMIT.CHECK")
            .arg("dry")
            .arg("gcra")
            .arg(10)
            .arg("1m")
            .arg("DRYRUN")
            .ignore();
    }
    let () = pipe.query_async(&mut c).await.unwrap();
    let mut keys: Vec<String> = top(&mut c, &[]).await.into_iter().map(|r| r.0).collect();
    keys.sort();
    assert_eq!(keys, ["budget", "cell", "dry", "multi"]);
    // Each was denied past its limit too.
    let mut denied: Vec<String> = top(&mut c, &["DENIALS"])
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    denied.sort();
    assert_eq!(
        denied,
        ["budget", "cell", "multi"],
        "a dry run of cost 1 under 10 is never denied"
    );
    server.stop().await;
}
