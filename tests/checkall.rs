//! LIMIT.CHECKALL over a socket: several keys all or nothing, its errors,
//! CROSSSLOT in cluster mode, ACL key patterns, and two clients naming the
//! same keys in opposite orders at once.

mod common;

use common::{TestServer, error, run};
use redis::Value;
use tollgate::cluster::ClusterMode;
use tollgate::config::Config;

/// The reply as (admitted, denying key, each key's five fields).
async fn check_all(
    conn: &mut redis::aio::MultiplexedConnection,
    words: &[&str],
) -> (i64, Option<String>, Vec<Vec<i64>>) {
    let mut all = vec!["LIMIT.CHECKALL"];
    all.extend_from_slice(words);
    let value = run(conn, &all)
        .await
        .unwrap_or_else(|e| panic!("{words:?}: {e}"));
    let Value::Array(parts) = value else {
        panic!("an array: {value:?}")
    };
    let admitted: i64 = redis::from_redis_value(parts[0].clone()).unwrap();
    let denied: Option<String> = redis::from_redis_value(parts[1].clone()).unwrap();
    let decisions: Vec<Vec<i64>> = redis::from_redis_value(parts[2].clone()).unwrap();
    (admitted, denied, decisions)
}

/// A request's words from one line.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

const CONFIG: &str = r#"
[[policy]]
name = "global"
rules = [{ algorithm = "gcra", limit = 100, window = "1m" }]
"#;

#[tokio::test]
async fn several_keys_take_all_or_nothing() {
    let server = TestServer::manual_with(Config::from_toml(CONFIG).unwrap()).await;
    let mut c = server.conn().await;
    let words = [
        "3",
        "user:42",
        "org:7",
        "all",
        "fixed_window",
        "2",
        "1m",
        "token_bucket",
        "5",
        "1m",
        "BURST",
        "5",
        "POLICY",
        "global",
    ];
    for n in 1..=2 {
        let (admitted, denied, d) = check_all(&mut c, &words).await;
        assert_eq!((admitted, denied), (1, None), "round {n}");
        let remaining: Vec<i64> = d.iter().map(|f| f[2]).collect();
        assert_eq!(remaining, [2 - n, 5 - n, 100 - n]);
    }
    // The user's limit is spent: the org and the policy keep their units.
    let (admitted, denied, d) = check_all(&mut c, &words).await;
    assert_eq!((admitted, denied.as_deref()), (0, Some("user:42")));
    assert_eq!(d[0][0], 0);
    assert_eq!((d[1][0], d[1][2]), (1, 3), "org: 3 left, nothing taken");
    let org = common::check(&mut c, "LIMIT.CHECK org:7 token_bucket 5 1m COST 0").await;
    assert_eq!(org[2], 3);
    // DRYRUN answers as if, and changes nothing; COST applies to every key.
    let (admitted, _, d) = check_all(
        &mut c,
        &[
            "3", "a", "b", "c", "gcra", "10", "1m", "gcra", "10", "1m", "gcra", "10", "1m", "COST",
            "4", "DRYRUN",
        ],
    )
    .await;
    assert_eq!((admitted, d[2][2]), (1, 6));
    assert_eq!(
        server.shared.engine.store.len(),
        3,
        "no new key from a dry run"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["LIMIT.CHECKALL", "0", "k", "gcra", "1", "1s"],
            "ERR invalid numkeys '0': expected an integer from 1 to 64",
        ),
        (
            &["LIMIT.CHECKALL", "x", "k", "gcra", "1", "1s"],
            "ERR invalid numkeys 'x': expected an integer from 1 to 64",
        ),
        (
            &["LIMIT.CHECKALL", "65", "k", "gcra", "1", "1s"],
            "ERR invalid numkeys '65': expected an integer from 1 to 64",
        ),
        (
            &["LIMIT.CHECKALL", "9", "a", "b", "c"],
            "ERR wrong number of arguments for 'limit.checkall' command",
        ),
        (
            &["LIMIT.CHECKALL", "2", "a", "b", "gcra", "1", "1s"],
            "ERR syntax error",
        ),
        (
            &[
                "LIMIT.CHECKALL",
                "2",
                "a",
                "b",
                "gcra",
                "1",
                "1s",
                "COST",
                "2",
            ],
            "ERR syntax error",
        ),
        (
            &["LIMIT.CHECKALL", "1", "a", "gcra", "1", "1s", "NOW"],
            "ERR syntax error",
        ),
        (
            &[
                "LIMIT.CHECKALL",
                "1",
                "a",
                "fixed_window",
                "1",
                "1s",
                "BURST",
                "2",
            ],
            "ERR syntax error",
        ),
        (
            &["LIMIT.CHECKALL", "1", "a", "POLICY", "none"],
            "ERR unknown policy 'none'",
        ),
        (
            &["LIMIT.CHECKALL", "1", "a", "quick", "1", "1s"],
            "ERR unknown algorithm 'quick': expected one of token_bucket, leaky_bucket, fixed_window, sliding_log, sliding_window, gcra",
        ),
    ];
    for (words, want) in cases {
        assert_eq!(error(&mut c, words).await, *want, "{words:?}");
    }
    common::check(&mut c, "LIMIT.CHECK b gcra 1 1s").await;
    assert_eq!(
        error(
            &mut c,
            &[
                "LIMIT.CHECKALL",
                "2",
                "a",
                "b",
                "gcra",
                "1",
                "1s",
                "token_bucket",
                "1",
                "1s"
            ]
        )
        .await,
        "WRONGTYPE key 'b' holds gcra state, not token_bucket"
    );
    // The largest cost accepted never fits: denied, nothing stored.
    let huge = words("2 x y gcra 5 1s token_bucket 5 1s COST 1000000000000");
    let (admitted, denied, _) = check_all(&mut c, &huge).await;
    assert_eq!((admitted, denied.as_deref()), (0, Some("x")));
    let over = words("LIMIT.CHECKALL 1 x gcra 5 1s COST 1000000000001");
    assert_eq!(
        error(&mut c, &over).await,
        "ERR invalid cost '1000000000001': expected an integer from 0 to 1000000000000"
    );
    assert_eq!(
        server.shared.engine.store.len(),
        1,
        "only b, from LIMIT.CHECK"
    );
    server.stop().await;
}

#[tokio::test]
async fn keys_of_different_slots_are_crossslot_in_cluster_mode() {
    let config = Config {
        cluster_mode: ClusterMode::Emulated,
        ..Config::default()
    };
    let server = TestServer::manual_with(config).await;
    let mut c = server.conn().await;
    let spread = words("LIMIT.CHECKALL 2 user:1 org:1 gcra 1 1s gcra 1 1s");
    assert_eq!(
        error(&mut c, &spread).await,
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let tagged = words("2 {t1}user {t1}org gcra 1 1s gcra 1 1s");
    let (admitted, _, _) = check_all(&mut c, &tagged).await;
    assert_eq!(admitted, 1, "hash tags put both keys in one slot");
    server.stop().await;
}

#[tokio::test]
async fn every_key_is_checked_against_the_users_key_patterns() {
    let server = TestServer::manual().await;
    let mut admin = server.conn().await;
    run(
        &mut admin,
        &["ACL", "SETUSER", "app", "on", ">pw", "+@all", "~limits:*"],
    )
    .await
    .unwrap();
    let client = redis::Client::open(format!("redis://app:pw@{}/", server.addr)).unwrap();
    let mut app = common::connect(&client).await;
    let outside = words("LIMIT.CHECKALL 2 limits:a other gcra 1 1s gcra 1 1s");
    assert_eq!(
        error(&mut app, &outside).await,
        "NOPERM No permissions to access a key"
    );
    let inside = words("2 limits:a limits:b gcra 1 1s gcra 1 1s");
    let (admitted, _, _) = check_all(&mut app, &inside).await;
    assert_eq!(admitted, 1);
    server.stop().await;
}

/// Two clients naming the same two keys in opposite orders, at once:
/// neither deadlocks, and every admitted request took from both keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_orders_at_once_neither_deadlock_nor_split() {
    let server = TestServer::manual().await;
    let rule = ["fixed_window", "500", "1h"];
    let mut tasks = Vec::new();
    for (first, second) in [("k1", "k2"), ("k2", "k1")] {
        let mut c = server.conn().await;
        tasks.push(tokio::spawn(async move {
            let mut words = vec!["2", first, second];
            words.extend(rule);
            words.extend(rule);
            let mut admitted = 0;
            for _ in 0..400 {
                admitted += check_all(&mut c, &words).await.0;
            }
            admitted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 500, "800 asked of a limit of 500");
    let mut c = server.conn().await;
    for key in ["k1", "k2"] {
        let left = common::check(
            &mut c,
            &format!("LIMIT.CHECK {key} fixed_window 500 1h COST 0"),
        )
        .await;
        assert_eq!(left[2], 0, "{key}");
    }
    server.stop().await;
}

#[tokio::test]
async fn verbose_names_the_rule_that_decided() {
    let config = r#"
[[policy]]
name = "api"
rules = [
  { algorithm = "fixed_window", limit = 100, window = "1h" },
  { algorithm = "token_bucket", limit = 2, window = "1s" },
]
"#;
    let server = TestServer::manual_with(Config::from_toml(config).unwrap()).await;
    let mut c = server.conn().await;
    let got = common::check(&mut c, "LIMIT.CHECK k POLICY api VERBOSE").await;
    assert_eq!(
        (got.len(), got[2], got[5]),
        (6, 1, 2),
        "the bucket has the least left"
    );
    common::check(&mut c, "LIMIT.CHECK k POLICY api").await;
    let got = common::check(&mut c, "LIMIT.CHECK k POLICY api VERBOSE").await;
    assert_eq!((got[0], got[5]), (0, 2), "the bucket denied");
    server.advance_ms(1000);
    let got = common::check(&mut c, "LIMIT.CHECK k POLICY api COST 2 DRYRUN VERBOSE").await;
    assert_eq!((got[0], got[2], got[5]), (1, 0, 2));
    // After 98 more units the window is the tighter rule.
    for _ in 0..49 {
        common::check(&mut c, "LIMIT.CHECK k POLICY api COST 2").await;
        server.advance_ms(1000);
    }
    let got = common::check(&mut c, "LIMIT.CHECK k POLICY api COST 0 VERBOSE").await;
    assert_eq!((got[2], got[5]), (0, 1), "the window is spent");
    for words in [
        &["LIMIT.CHECK", "k", "gcra", "1", "1s", "VERBOSE"][..],
        &["LIMIT.CHECK", "k", "POLICY", "api", "VERBOSE", "VERBOSE"],
    ] {
        assert_eq!(error(&mut c, words).await, "ERR syntax error", "{words:?}");
    }
    server.stop().await;
}
