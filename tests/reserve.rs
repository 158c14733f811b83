//! LIMIT.RESERVE, LIMIT.SETTLE and LIMIT.REFUND over a socket: the replies,
//! debt, timeouts, windows that have passed, every error, and open
//! reservations across a restart.

mod common;

use common::{TestServer, check, error, run, scratch_dir};
use redis::Value;
use tollgate::config::Config;

/// A reserve's five integers and its id (None when denied).
async fn reserve(
    c: &mut redis::aio::MultiplexedConnection,
    line: &str,
) -> (Vec<i64>, Option<String>) {
    let mut words = vec!["LIMIT.RESERVE"];
    words.extend(line.split_whitespace());
    let value = run(c, &words)
        .await
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    let Value::Array(mut fields) = value else {
        panic!("an array: {value:?}")
    };
    assert_eq!(fields.len(), 6, "{line}");
    let id: Option<String> = redis::from_redis_value(fields.pop().unwrap()).unwrap();
    let ints: Vec<i64> = redis::from_redis_value(Value::Array(fields)).unwrap();
    (ints, id)
}

/// A settle's or refund's six integers.
async fn close(c: &mut redis::aio::MultiplexedConnection, words: &[&str]) -> Vec<i64> {
    let value = run(c, words)
        .await
        .unwrap_or_else(|e| panic!("{words:?}: {e}"));
    redis::from_redis_value(value).unwrap()
}

const POLICY: &str = r#"
[[policy]]
name = "llm"
rules = [
  { algorithm = "token_bucket", limit = 10000, window = "1m" },
  { algorithm = "fixed_window", limit = 100000, window = "1d" },
]
"#;

#[tokio::test]
async fn reserve_then_settle_gives_back_or_takes_the_difference() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let (d, id) = reserve(&mut c, "u:42 token_bucket 10000 1m COST 3000").await;
    assert_eq!(d, [1, 10000, 7000, -1, 18000]);
    let id = id.expect("an admitted reserve has an id");
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    // The model used 1200: 1800 come back.
    let s = close(&mut c, &["LIMIT.SETTLE", "u:42", &id, "1200"]).await;
    assert_eq!(s, [1, 10000, 8800, -1, 7200, 1]);
    // Settled once: again is an error that changes nothing.
    let e = error(&mut c, &["LIMIT.SETTLE", "u:42", &id, "0"]).await;
    assert_eq!(
        e,
        format!(
            "NORESERVATION no open reservation '{id}' on key 'u:42' (never made, already settled or refunded, or past its timeout)"
        )
    );
    let e = error(&mut c, &["LIMIT.REFUND", "u:42", &id]).await;
    assert!(e.starts_with("NORESERVATION "), "{e}");
    assert_eq!(
        check(&mut c, "LIMIT.CHECK u:42 token_bucket 10000 1m COST 0").await[2],
        8800
    );
    // More than reserved: the extra is taken into debt.
    let (_, id) = reserve(&mut c, "u:42 token_bucket 10000 1m COST 8000").await;
    let s = close(&mut c, &["LIMIT.SETTLE", "u:42", &id.unwrap(), "11800"]).await;
    // 3000 units of debt at 10000 a minute: 18 s until a look passes.
    assert_eq!(s, [0, 10000, 0, 18000, 78000, 1]);
    let (d, id) = reserve(&mut c, "u:42 token_bucket 10000 1m COST 1").await;
    assert_eq!((d[0], id), (0, None), "denied while in debt");
    server.advance_ms(18_000);
    let (d, id) = reserve(&mut c, "u:42 token_bucket 10000 1m COST 0").await;
    assert_eq!(
        (d[0], d[2]),
        (1, 0),
        "post-paid: a reserve of 0 passes once out of debt"
    );
    assert!(id.is_some());
    // A refund gives all of a reservation back at once.
    server.advance_ms(6_000);
    let (d, id) = reserve(&mut c, "u:42 token_bucket 10000 1m COST 600").await;
    assert_eq!(d[2], 400);
    let s = close(&mut c, &["LIMIT.REFUND", "u:42", &id.unwrap()]).await;
    assert_eq!(s[..3], [1, 10000, 1000]);
    // Counted: 4 opened (a denied reserve opens none), 2 settled, 1 refunded.
    let stats = common::info(&mut c, "stats").await;
    // Each reserve is a check too (6 with the look, one denied).
    for line in [
        "reservations_opened:4",
        "reservations_settled:2",
        "reservations_refunded:1",
        "checks_token_bucket:6",
        "denied_token_bucket:1",
    ] {
        assert!(stats.contains(line), "{line} in {stats}");
    }
    let text = tollgate::metrics::endpoint::render(&server.shared);
    assert!(
        text.contains("tollgate_reservations_total{event=\"settled\"} 2"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_policy_reservation_settles_under_every_rule() {
    let server = TestServer::manual_with(Config::from_toml(POLICY).unwrap()).await;
    let mut c = server.conn().await;
    let (d, id) = reserve(&mut c, "org:7 POLICY llm COST 4000 TIMEOUT 2m").await;
    assert_eq!(d[..3], [1, 10000, 6000]);
    let s = close(&mut c, &["LIMIT.SETTLE", "org:7", &id.unwrap(), "2500"]).await;
    assert_eq!(s[..3], [1, 10000, 7500]);
    let info = run(&mut c, &["LIMIT.INFO", "org:7", "POLICY", "llm"])
        .await
        .unwrap();
    let text = format!("{info:?}");
    assert!(text.contains("97500"), "the daily window kept 2500: {text}");
    // The policy gone, its reservation cannot settle (and stays open).
    run(&mut c, &["LIMIT.POLICY", "SET", "x", "gcra", "10", "1s"])
        .await
        .unwrap();
    let (_, id) = reserve(&mut c, "org:8 POLICY x COST 1").await;
    let id = id.unwrap();
    run(&mut c, &["LIMIT.POLICY", "DEL", "x"]).await.unwrap();
    let e = error(&mut c, &["LIMIT.SETTLE", "org:8", &id, "1"]).await;
    assert_eq!(
        e,
        "ERR unknown policy 'x' (the reservation's policy was deleted; it stays open until its timeout)"
    );
    run(&mut c, &["LIMIT.POLICY", "SET", "x", "gcra", "10", "1s"])
        .await
        .unwrap();
    assert_eq!(
        close(&mut c, &["LIMIT.REFUND", "org:8", &id]).await[..3],
        [1, 10, 10]
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unsettled_reservation_times_out_at_its_estimate() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let (_, id) = reserve(&mut c, "k gcra 10 1h COST 4 TIMEOUT 30s").await;
    let id = id.unwrap();
    server.advance_ms(29_999);
    let (_, other) = reserve(&mut c, "k gcra 10 1h COST 1 TIMEOUT 1s").await;
    server.advance_ms(1);
    let e = error(&mut c, &["LIMIT.SETTLE", "k", &id, "0"]).await;
    assert!(e.starts_with("NORESERVATION "), "{e}");
    // The 4 units stay taken: settled at the estimate.
    assert_eq!(check(&mut c, "LIMIT.CHECK k gcra 10 1h COST 0").await[2], 5);
    // The other is still open.
    let s = close(&mut c, &["LIMIT.REFUND", "k", &other.unwrap()]).await;
    assert_eq!(s[2], 6);
    server.stop().await;
}

#[tokio::test]
async fn a_window_that_has_passed_is_not_touched_and_the_reply_says_so() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let (_, id) = reserve(&mut c, "w fixed_window 10 1m COST 8").await;
    server.advance_ms(60_000);
    assert_eq!(
        check(&mut c, "LIMIT.CHECK w fixed_window 10 1m COST 3").await[2],
        7
    );
    let s = close(&mut c, &["LIMIT.SETTLE", "w", &id.unwrap(), "1"]).await;
    assert_eq!(s, [1, 10, 7, -1, 60000, 0], "the new window keeps its 3");
    server.stop().await;
}

#[tokio::test]
async fn every_error_is_clear_and_changes_nothing() {
    let server = TestServer::manual_with(
        Config::from_toml(
            r#"
[[policy]]
name = "queue"
rules = [{ algorithm = "leaky_bucket", limit = 10, window = "1s" }]
"#,
        )
        .unwrap(),
    )
    .await;
    let mut c = server.conn().await;
    let leaky = "ERR leaky_bucket cannot give units back: its queue holds turns already promised; it takes no reservations";
    assert_eq!(
        error(&mut c, &["LIMIT.RESERVE", "q", "leaky_bucket", "10", "1s"]).await,
        leaky
    );
    assert_eq!(
        error(&mut c, &["LIMIT.RESERVE", "q", "POLICY", "queue"]).await,
        leaky
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["LIMIT.RESERVE", "k", "gcra", "10", "1s", "TIMEOUT", "2d"],
            "ERR invalid timeout '2d': expected a duration from 1ms to 1d",
        ),
        (
            &["LIMIT.RESERVE", "k", "gcra", "10", "1s", "TIMEOUT", "0"],
            "ERR invalid timeout '0': expected a duration from 1ms to 1d",
        ),
        (
            &[
                "LIMIT.RESERVE",
                "k",
                "gcra",
                "10",
                "1s",
                "COST",
                "1",
                "COST",
                "2",
            ],
            "ERR syntax error",
        ),
        (
            &["LIMIT.RESERVE", "k", "gcra", "10", "1s", "DRYRUN"],
            "ERR syntax error",
        ),
        (
            &[
                "LIMIT.RESERVE",
                "k",
                "gcra",
                "10",
                "1s",
                "COST",
                "1000000000001",
            ],
            "ERR invalid cost '1000000000001': expected an integer from 0 to 1000000000000",
        ),
        (
            &["LIMIT.RESERVE", "k", "POLICY", "nope"],
            "ERR unknown policy 'nope'",
        ),
        (&["LIMIT.RESERVE", "k", "gcra", "10"], "ERR syntax error"),
        (
            &["LIMIT.RESERVE", "k", "gcra"],
            "ERR wrong number of arguments for 'limit.reserve' command",
        ),
        (
            &["LIMIT.SETTLE", "k", "zz", "1"],
            "ERR invalid reservation id 'zz': expected 16 hexadecimal digits",
        ),
        (
            &["LIMIT.SETTLE", "k", "00000000000000zz", "1"],
            "ERR invalid reservation id '00000000000000zz': expected 16 hexadecimal digits",
        ),
        (
            &["LIMIT.SETTLE", "k", "0123456789abcdef", "-1"],
            "ERR invalid actual '-1': expected an integer from 0 to 1000000000000",
        ),
        (
            &["LIMIT.SETTLE", "k", "0123456789abcdef"],
            "ERR wrong number of arguments for 'limit.settle' command",
        ),
        (
            &["LIMIT.REFUND", "k", "0123456789abcdef", "1"],
            "ERR wrong number of arguments for 'limit.refund' command",
        ),
        (
            &["LIMIT.REFUND", "k", "0123456789abcdef"],
            "NORESERVATION no open reservation '0123456789abcdef' on key 'k' (never made, already settled or refunded, or past its timeout)",
        ),
    ];
    for (words, expected) in cases {
        assert_eq!(&error(&mut c, words).await, expected, "{words:?}");
    }
    assert_eq!(
        run(&mut c, &["DBSIZE"]).await.unwrap(),
        Value::Int(0),
        "nothing was made"
    );
    // Debt past the longest refill: refused, the reservation stays open.
    let (_, id) = reserve(&mut c, "d gcra 1 366d").await;
    let id = id.unwrap();
    let e = error(&mut c, &["LIMIT.SETTLE", "d", &id, "1000"]).await;
    assert_eq!(
        e,
        "ERR the extra units would leave the key in debt for more than 183000d; nothing changed"
    );
    let s = close(&mut c, &["LIMIT.SETTLE", "d", &id, "1"]).await;
    assert_eq!(s[..3], [1, 1, 0], "at the estimate: nothing to adjust");
    // The key now holds another algorithm: WRONGTYPE, the reservation stays.
    let (_, id) = reserve(&mut c, "t token_bucket 5 1s").await;
    let id = id.unwrap();
    run(&mut c, &["LIMIT.RESET", "t"]).await.unwrap();
    check(&mut c, "LIMIT.CHECK t gcra 5 1s").await;
    let e = error(&mut c, &["LIMIT.SETTLE", "t", &id, "0"]).await;
    assert_eq!(e, "WRONGTYPE key 't' holds gcra state, not token_bucket");
    run(&mut c, &["LIMIT.RESET", "t"]).await.unwrap();
    assert_eq!(
        close(&mut c, &["LIMIT.REFUND", "t", &id]).await[..3],
        [1, 5, 5]
    );
    server.stop().await;
}

#[tokio::test]
async fn open_reservations_survive_a_restart() {
    let dir = scratch_dir();
    let config = || Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let server = TestServer::manual_with(config()).await;
    let mut c = server.conn().await;
    let (_, id) = reserve(&mut c, "r sliding_log 100 1m COST 60 TIMEOUT 5m").await;
    let id = id.unwrap();
    assert_eq!(run(&mut c, &["SAVE"]).await.unwrap(), Value::Okay);
    server.stop().await;
    let at = common::START_NS + 10_000_000_000;
    let server = TestServer::restoring(config(), at).await;
    let mut c = server.conn().await;
    let s = close(&mut c, &["LIMIT.SETTLE", "r", &id, "25"]).await;
    assert_eq!(s[..3], [1, 100, 75], "the restored reservation settles");
    assert!(
        error(&mut c, &["LIMIT.SETTLE", "r", &id, "25"])
            .await
            .starts_with("NORESERVATION ")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_key_holds_at_most_65536_open_reservations() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let mut pipe = redis::pipe();
    for _ in 0..65_536 {
        pipe.cmd("LIMIT.RESERVE")
            .arg("big")
            .arg("token_bucket")
            .arg(1_000_000)
            .arg("1h")
            .ignore();
    }
    let () = pipe.query_async(&mut c).await.unwrap();
    let e = error(
        &mut c,
        &[
            "LIMIT.RESERVE",
            "big",
            "token_bucket",
            "1000000",
            "1h",
            "COST",
            "7",
        ],
    )
    .await;
    assert_eq!(
        e,
        "ERR the key holds 65536 open reservations, the most a key may hold"
    );
    // Refused whole: the 7 units were not taken.
    let left = check(&mut c, "LIMIT.CHECK big token_bucket 1000000 1h COST 0").await;
    assert_eq!(left[2], 1_000_000 - 65_536);
    server.stop().await;
}

#[tokio::test]
async fn limit_pending_lists_the_open_ones_oldest_first() {
    let server = TestServer::manual_with(Config::from_toml(POLICY).unwrap()).await;
    let mut c = server.conn().await;
    let (_, a) = reserve(&mut c, "u token_bucket 100 1m BURST 200 COST 30 TIMEOUT 1m").await;
    server.advance_ms(1_500);
    let (_, b) = reserve(&mut c, "u POLICY llm COST 5").await;
    let (_, done) = reserve(&mut c, "u token_bucket 100 1m BURST 200 COST 1").await;
    close(&mut c, &["LIMIT.REFUND", "u", &done.unwrap()]).await;
    let value = run(&mut c, &["LIMIT.PENDING", "u"]).await.unwrap();
    let rows: Vec<(String, i64, i64, i64, String)> = redis::from_redis_value(value).unwrap();
    assert_eq!(
        rows,
        [
            (
                a.unwrap(),
                30,
                1500,
                58500,
                "token_bucket 100 60000ms BURST 200".to_string()
            ),
            (b.clone().unwrap(), 5, 0, 600_000, "POLICY llm".to_string()),
        ]
    );
    let value = run(&mut c, &["LIMIT.PENDING", "u", "COUNT", "1"])
        .await
        .unwrap();
    let rows: Vec<Value> = redis::from_redis_value(value).unwrap();
    assert_eq!(rows.len(), 1);
    // Past the first one's timeout only the second is listed.
    server.advance_ms(58_500);
    let value = run(&mut c, &["LIMIT.PENDING", "u"]).await.unwrap();
    let rows: Vec<(String, i64, i64, i64, String)> = redis::from_redis_value(value).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(Some(rows[0].0.clone()), b);
    assert_eq!(
        run(&mut c, &["LIMIT.PENDING", "none"]).await.unwrap(),
        Value::Array(vec![])
    );
    let e = error(&mut c, &["LIMIT.PENDING", "u", "COUNT", "0"]).await;
    assert_eq!(
        e,
        "ERR invalid count '0': expected an integer from 1 to 65536"
    );
    let e = error(&mut c, &["LIMIT.PENDING", "u", "LIMIT", "1"]).await;
    assert_eq!(e, "ERR syntax error");
    server.stop().await;
}

#[tokio::test]
async fn the_largest_costs_reserve_and_settle_exactly() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let rule = "token_bucket 1000000000000 366d";
    let (d, id) = reserve(&mut c, &format!("t {rule} COST 1000000000000")).await;
    assert_eq!(d[..3], [1, 1_000_000_000_000, 0]);
    let s = close(&mut c, &["LIMIT.SETTLE", "t", &id.unwrap(), "1"]).await;
    assert_eq!(s[..3], [1, 1_000_000_000_000, 999_999_999_999]);
    // One unit past the capacity: a debt of one unit (31.6224 µs).
    let (_, id) = reserve(&mut c, &format!("t {rule} COST 1")).await;
    let s = close(
        &mut c,
        &["LIMIT.SETTLE", "t", &id.unwrap(), "1000000000000"],
    )
    .await;
    assert_eq!(s[..4], [0, 1_000_000_000_000, 0, 1]);
    server.advance_ns(31_623);
    assert_eq!(
        check(&mut c, &format!("LIMIT.CHECK t {rule} COST 0")).await[0],
        1
    );
    let e = error(
        &mut c,
        &["LIMIT.SETTLE", "t", "0123456789abcdef", "1000000000001"],
    )
    .await;
    assert_eq!(
        e,
        "ERR invalid actual '1000000000001': expected an integer from 0 to 1000000000000"
    );
    // A window counts up to the largest settle, and denies past it.
    let (_, id) = reserve(&mut c, "w fixed_window 1000000000000 366d COST 5").await;
    let s = close(
        &mut c,
        &["LIMIT.SETTLE", "w", &id.unwrap(), "1000000000000"],
    )
    .await;
    assert_eq!(s[..3], [1, 1_000_000_000_000, 0]);
    assert_eq!(s[5], 1);
    let (d, id) = reserve(&mut c, "w fixed_window 1000000000000 366d COST 1").await;
    assert_eq!((d[0], id), (0, None));
    server.stop().await;
}
