//! Every command and error of PROTOCOL.md, over a real socket with the
//! `redis` crate as the client.

mod common;

use common::{TestServer, check, error, raw, run};
use redis::Value;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// A RESP2 map: a flat field-value array.
fn fields(pairs: &[(&str, Value)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .flat_map(|(k, v)| [bulk(k), v.clone()])
            .collect(),
    )
}

#[tokio::test]
async fn limit_check_answers_the_five_fields() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    assert_eq!(
        check(&mut c, "LIMIT.CHECK user1 token_bucket 3 10s").await,
        [1, 3, 2, -1, 3334]
    );
    assert_eq!(
        check(&mut c, "limit.check user1 TOKEN_BUCKET 3 10s COST 2").await,
        [1, 3, 0, -1, 10000]
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK user1 token_bucket 3 10s").await,
        [0, 3, 0, 3334, 10000]
    );
    // COST above capacity can never pass.
    assert_eq!(
        check(&mut c, "LIMIT.CHECK user1 token_bucket 3 10s COST 4").await,
        [0, 3, 0, -1, 10000]
    );
    server.advance_ms(3334);
    assert_eq!(
        check(&mut c, "LIMIT.CHECK user1 token_bucket 3 10s").await[..3],
        [1, 3, 0]
    );
    server.stop().await;
}

#[tokio::test]
async fn options_come_in_any_order_and_apply_only_where_they_mean_something() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    assert_eq!(
        check(&mut c, "LIMIT.CHECK a gcra 1 1s COST 2 BURST 5 DRYRUN").await,
        [1, 5, 3, -1, 2000]
    );
    assert_eq!(
        run(&mut c, &["DBSIZE"]).await.unwrap(),
        Value::Int(0),
        "DRYRUN stores nothing"
    );
    assert_eq!(
        check(
            &mut c,
            "LIMIT.CHECK b sliding_window 10 10s BUCKETS 5 COST 3"
        )
        .await,
        [1, 10, 7, -1, 12000]
    );
    for bad in [
        "LIMIT.CHECK c fixed_window 1 1s BURST 2",
        "LIMIT.CHECK c token_bucket 1 1s BUCKETS 2",
        "LIMIT.CHECK c token_bucket 1 1s COST 1 COST 1",
        "LIMIT.CHECK c token_bucket 1 1s DRYRUN DRYRUN",
        "LIMIT.CHECK c token_bucket 1 1s COST",
        "LIMIT.CHECK c token_bucket 1 1s FOO 1",
        "LIMIT.CHECK c token_bucket 1 1s 5",
    ] {
        let words: Vec<&str> = bad.split_whitespace().collect();
        assert_eq!(error(&mut c, &words).await, "ERR syntax error", "{bad}");
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_arguments_name_themselves_and_change_nothing() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let cases: &[(&[&str], &str)] = &[
        (
            &["LIMIT.CHECK", "k", "token_bucket", "3", "10x"],
            "ERR invalid window '10x': expected an integer with optional ms|s|m|h|d suffix",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "3", "1.5s"],
            "ERR invalid window '1.5s': expected an integer with optional ms|s|m|h|d suffix",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "3", "0"],
            "ERR invalid window '0': expected a duration from 1ms to 366d",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "3", "367d"],
            "ERR invalid window '367d': expected a duration from 1ms to 366d",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "0", "1s"],
            "ERR invalid limit '0': expected an integer from 1 to 1000000000000",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "1000000000001", "1s"],
            "ERR invalid limit '1000000000001': expected an integer from 1 to 1000000000000",
        ),
        (
            &[
                "LIMIT.CHECK",
                "k",
                "token_bucket",
                "99999999999999999999999",
                "1s",
            ],
            "ERR invalid limit '99999999999999999999999': expected an integer from 1 to 1000000000000",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "1", "1s", "COST", "-1"],
            "ERR invalid cost '-1': expected an integer from 0 to 1000000000000",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "1", "1s", "BURST", "0"],
            "ERR invalid burst '0': expected an integer from 1 to 1000000000000",
        ),
        (
            &[
                "LIMIT.CHECK",
                "k",
                "sliding_window",
                "1",
                "1s",
                "BUCKETS",
                "1001",
            ],
            "ERR invalid buckets '1001': expected an integer from 1 to 1000",
        ),
        (
            &[
                "LIMIT.CHECK",
                "k",
                "sliding_window",
                "1",
                "1s",
                "BUCKETS",
                "0",
            ],
            "ERR invalid buckets '0': expected an integer from 1 to 1000",
        ),
        (
            &[
                "LIMIT.CHECK",
                "k",
                "sliding_window",
                "1",
                "1s",
                "BUCKETS",
                "x",
            ],
            "ERR invalid buckets 'x': expected an integer from 1 to 1000",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "1", "1s", "WAIT", "-1s"],
            "ERR invalid wait '-1s': expected an integer with optional ms|s|m|h|d suffix",
        ),
        (
            &["LIMIT.CHECK", "k", "bucket", "1", "1s"],
            "ERR unknown algorithm 'bucket': expected one of token_bucket, leaky_bucket, fixed_window, sliding_log, sliding_window, gcra",
        ),
        (
            &["LIMIT.CHECK", "k", "POLICY", "nope"],
            "ERR unknown policy 'nope'",
        ),
        (
            &["LIMIT.CHECK", "k", "POLICY", "nope", "BURST", "1"],
            "ERR syntax error",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket", "1"],
            "ERR wrong number of arguments for 'limit.check' command",
        ),
        (
            &["LIMIT.CHECK", "k", "token_bucket"],
            "ERR wrong number of arguments for 'limit.check' command",
        ),
    ];
    for (words, expected) in cases {
        assert_eq!(&error(&mut c, words).await, expected, "{words:?}");
    }
    assert_eq!(run(&mut c, &["DBSIZE"]).await.unwrap(), Value::Int(0));
    assert_eq!(
        run(&mut c, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn another_algorithm_on_a_key_is_wrongtype() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k token_bucket 2 1s").await;
    assert_eq!(
        error(&mut c, &["LIMIT.CHECK", "k", "gcra", "2", "1s"]).await,
        "WRONGTYPE key 'k' holds token_bucket state, not gcra"
    );
    // The state is untouched: one token left.
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k token_bucket 2 1s").await[..3],
        [1, 2, 0]
    );
    server.stop().await;
}

#[tokio::test]
async fn new_numbers_reread_the_same_state() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k fixed_window 10 1m COST 6").await;
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k fixed_window 8 1m").await[..3],
        [1, 8, 1]
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k fixed_window 5 1m").await[..3],
        [0, 5, 0]
    );
    server.stop().await;
}

#[tokio::test]
async fn limit_info_and_reset() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    assert_eq!(
        run(&mut c, &["LIMIT.INFO", "k"]).await.unwrap(),
        Value::Array(vec![])
    );
    check(&mut c, "LIMIT.CHECK k leaky_bucket 4 1s COST 2 DRYRUN").await;
    assert_eq!(
        run(&mut c, &["LIMIT.INFO", "k"]).await.unwrap(),
        Value::Array(vec![])
    );
    check(
        &mut c,
        "LIMIT.CHECK s sliding_window 10 10s BUCKETS 5 COST 3",
    )
    .await;
    let info = run(&mut c, &["LIMIT.INFO", "s"]).await.unwrap();
    let expected = Value::Array(vec![fields(&[
        ("algorithm", bulk("sliding_window")),
        ("limit", Value::Int(10)),
        ("window_ms", Value::Int(10_000)),
        ("burst", Value::Int(10)),
        ("buckets", Value::Int(5)),
        ("remaining", Value::Int(7)),
        ("reset_after_ms", Value::Int(12_000)),
    ])]);
    assert_eq!(info, expected);
    assert_eq!(
        run(&mut c, &["LIMIT.RESET", "s"]).await.unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        run(&mut c, &["LIMIT.RESET", "s"]).await.unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        check(
            &mut c,
            "LIMIT.CHECK s sliding_window 10 10s BUCKETS 5 COST 10"
        )
        .await[0],
        1
    );
    assert_eq!(
        error(&mut c, &["LIMIT.INFO", "s", "POLICY"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        error(&mut c, &["LIMIT.INFO", "s", "junk"]).await,
        "ERR syntax error"
    );
    assert_eq!(
        error(&mut c, &["LIMIT.RESET", "s", "POLICY", "none"]).await,
        "ERR unknown policy 'none'"
    );
    server.stop().await;
}

#[tokio::test]
async fn leaky_bucket_info_shows_the_queue() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    // Inside MULTI the reply is not held, so a manual clock can be used.
    let replies = common::checks_in_multi(&mut c, "LIMIT.CHECK q leaky_bucket 4 1s", 3).await;
    assert_eq!(replies.iter().map(|r| r[2]).collect::<Vec<_>>(), [3, 2, 1]);
    let info = run(&mut c, &["LIMIT.INFO", "q"]).await.unwrap();
    let Value::Array(rules) = info else { panic!() };
    let Value::Array(fields) = &rules[0] else {
        panic!()
    };
    assert_eq!(fields[fields.len() - 2..], [bulk("queued"), Value::Int(3)]);
    server.stop().await;
}

#[tokio::test]
async fn policies_are_all_or_nothing() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let set = [
        "LIMIT.POLICY",
        "SET",
        "api",
        "token_bucket",
        "10",
        "1s",
        "BURST",
        "20",
        "fixed_window",
        "3",
        "1d",
    ];
    assert_eq!(run(&mut c, &set).await.unwrap(), Value::Okay);
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "LIST"]).await.unwrap(),
        Value::Array(vec![bulk("api")])
    );
    let rules = run(&mut c, &["LIMIT.POLICY", "GET", "api"]).await.unwrap();
    let expected = Value::Array(vec![
        fields(&[
            ("algorithm", bulk("token_bucket")),
            ("limit", Value::Int(10)),
            ("window_ms", Value::Int(1000)),
            ("burst", Value::Int(20)),
        ]),
        fields(&[
            ("algorithm", bulk("fixed_window")),
            ("limit", Value::Int(3)),
            ("window_ms", Value::Int(86_400_000)),
            ("burst", Value::Int(3)),
        ]),
    ]);
    assert_eq!(rules, expected);
    // The fixed window is the most restrictive: it answers.
    assert_eq!(
        check(&mut c, "LIMIT.CHECK u POLICY api").await,
        [1, 3, 2, -1, 86_400_000]
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK u POLICY api COST 2").await,
        [1, 3, 0, -1, 86_400_000]
    );
    // Denied by the window: the bucket does not consume either.
    assert_eq!(
        check(&mut c, "LIMIT.CHECK u POLICY api COST 1").await,
        [0, 3, 0, 86_400_000, 86_400_000]
    );
    let info = run(&mut c, &["LIMIT.INFO", "u", "POLICY", "api"])
        .await
        .unwrap();
    let Value::Array(infos) = info else { panic!() };
    let Value::Array(bucket) = &infos[0] else {
        panic!()
    };
    assert_eq!(bucket[8..10], [bulk("remaining"), Value::Int(17)]);
    // The same key inline is another limiter.
    assert_eq!(
        check(&mut c, "LIMIT.CHECK u fixed_window 3 1d").await[..3],
        [1, 3, 2]
    );
    assert_eq!(
        run(&mut c, &["LIMIT.RESET", "u", "POLICY", "api"])
            .await
            .unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK u POLICY api").await[..3],
        [1, 3, 2]
    );
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "DEL", "api"]).await.unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "DEL", "api"]).await.unwrap(),
        Value::Int(0)
    );
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "GET", "api"]).await.unwrap(),
        Value::Nil
    );
    assert_eq!(
        error(&mut c, &["LIMIT.CHECK", "u", "POLICY", "api"]).await,
        "ERR unknown policy 'api'"
    );
    server.stop().await;
}

#[tokio::test]
async fn policy_errors() {
    let mut config = tollgate::config::Config::from_toml(
        "[[policy]]\nname = \"fixed\"\nrules = [{ algorithm = \"gcra\", limit = 5, window = \"1s\" }]\n",
    )
    .unwrap();
    config.port = 0;
    let server = TestServer::manual_with(config).await;
    let mut c = server.conn().await;
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k POLICY fixed").await,
        [1, 5, 4, -1, 200]
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["LIMIT.POLICY", "SET", "fixed", "gcra", "1", "1s"],
            "ERR policy 'fixed' is defined in the config file",
        ),
        (
            &["LIMIT.POLICY", "DEL", "fixed"],
            "ERR policy 'fixed' is defined in the config file",
        ),
        (
            &["LIMIT.POLICY", "SET", "p", "gcra", "1"],
            "ERR wrong number of arguments for 'limit.policy|set' command",
        ),
        (
            &[
                "LIMIT.POLICY",
                "SET",
                "p",
                "gcra",
                "1",
                "1s",
                "fixed_window",
            ],
            "ERR syntax error",
        ),
        (
            &[
                "LIMIT.POLICY",
                "SET",
                "p",
                "fixed_window",
                "1",
                "1s",
                "BURST",
                "3",
            ],
            "ERR syntax error",
        ),
        (
            &["LIMIT.POLICY", "SET", "p", "gcra", "1", "1x"],
            "ERR invalid window '1x': expected an integer with optional ms|s|m|h|d suffix",
        ),
        (
            &["LIMIT.POLICY", "SET", "a b", "gcra", "1", "1s"],
            "ERR invalid policy name 'a b': expected 1 to 128 printable characters without spaces",
        ),
        (
            &["LIMIT.POLICY", "GET"],
            "ERR wrong number of arguments for 'limit.policy|get' command",
        ),
        (
            &["LIMIT.POLICY", "LIST", "x"],
            "ERR wrong number of arguments for 'limit.policy|list' command",
        ),
        (
            &["LIMIT.POLICY", "NOPE"],
            "ERR unknown subcommand 'NOPE'. Try LIMIT.POLICY HELP.",
        ),
    ];
    for (words, expected) in cases {
        assert_eq!(&error(&mut c, words).await, expected, "{words:?}");
    }
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "LIST"]).await.unwrap(),
        Value::Array(vec![bulk("fixed")])
    );
    server.stop().await;
}

#[tokio::test]
async fn changing_a_policy_keeps_matching_state() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    run(
        &mut c,
        &["LIMIT.POLICY", "SET", "p", "fixed_window", "5", "1m"],
    )
    .await
    .unwrap();
    check(&mut c, "LIMIT.CHECK k POLICY p COST 4").await;
    run(
        &mut c,
        &[
            "LIMIT.POLICY",
            "SET",
            "p",
            "fixed_window",
            "6",
            "1m",
            "gcra",
            "10",
            "1s",
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k POLICY p").await[..3],
        [1, 6, 1]
    );
    server.stop().await;
}

#[tokio::test]
async fn cl_throttle_answers_as_redis_cell() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    assert_eq!(
        check(&mut c, "CL.THROTTLE user123 15 30 60 1").await,
        [0, 16, 15, -1, 2]
    );
    assert_eq!(
        check(&mut c, "CL.THROTTLE user123 15 30 60").await,
        [0, 16, 14, -1, 4]
    );
    for _ in 0..14 {
        check(&mut c, "CL.THROTTLE user123 15 30 60").await;
    }
    assert_eq!(
        check(&mut c, "CL.THROTTLE user123 15 30 60").await,
        [1, 16, 0, 2, 32]
    );
    assert_eq!(
        check(&mut c, "CL.THROTTLE user123 15 30 60 20").await,
        [1, 16, 0, -1, 32]
    );
    // CL.THROTTLE keys hold GCRA state.
    assert_eq!(
        error(
            &mut c,
            &["LIMIT.CHECK", "user123", "token_bucket", "1", "1s"]
        )
        .await,
        "WRONGTYPE key 'user123' holds gcra state, not token_bucket"
    );
    let cases: &[(&[&str], &str)] = &[
        (
            &["CL.THROTTLE", "k", "15", "30"],
            "ERR wrong number of arguments for 'cl.throttle' command",
        ),
        (
            &["CL.THROTTLE", "k", "1", "2", "3", "4", "5"],
            "ERR wrong number of arguments for 'cl.throttle' command",
        ),
        (
            &["CL.THROTTLE", "k", "x", "30", "60"],
            "ERR value is not an integer or out of range",
        ),
        (
            &["CL.THROTTLE", "k", "-1", "30", "60"],
            "ERR invalid max_burst '-1': expected an integer from 0 to 999999999999",
        ),
        (
            &["CL.THROTTLE", "k", "1", "0", "60"],
            "ERR invalid count_per_period '0': expected an integer from 1 to 1000000000000",
        ),
        (
            &["CL.THROTTLE", "k", "1", "1", "0"],
            "ERR invalid period '0': expected an integer from 1 to 31622400",
        ),
        (
            &["CL.THROTTLE", "k", "1", "1", "1", "-1"],
            "ERR invalid quantity '-1': expected an integer from 0 to 1000000000000",
        ),
    ];
    for (words, expected) in cases {
        assert_eq!(&error(&mut c, words).await, expected, "{words:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn connection_commands() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    assert_eq!(
        run(&mut c, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(run(&mut c, &["PING", "hi"]).await.unwrap(), bulk("hi"));
    assert_eq!(run(&mut c, &["ECHO", "x y"]).await.unwrap(), bulk("x y"));
    assert_eq!(run(&mut c, &["SELECT", "0"]).await.unwrap(), Value::Okay);
    assert_eq!(
        error(&mut c, &["SELECT", "1"]).await,
        "ERR DB index is out of range"
    );
    assert_eq!(
        error(&mut c, &["SELECT", "x"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(&mut c, &["AUTH", "pw"]).await,
        "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
    );
    assert_eq!(
        error(&mut c, &["ECHO"]).await,
        "ERR wrong number of arguments for 'echo' command"
    );
    assert_eq!(
        error(&mut c, &["FOO", "a", "b"]).await,
        "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    );
    assert_eq!(
        error(&mut c, &["HELLO", "4"]).await,
        "NOPROTO unsupported protocol version"
    );
    let id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        run(&mut c, &["CLIENT", "SETNAME", "worker-1"])
            .await
            .unwrap(),
        Value::Okay
    );
    assert_eq!(
        run(&mut c, &["CLIENT", "GETNAME"]).await.unwrap(),
        bulk("worker-1")
    );
    assert_eq!(
        error(&mut c, &["CLIENT", "SETNAME", "a b"]).await,
        "ERR Client names cannot contain spaces, newlines or special characters."
    );
    assert_eq!(
        run(&mut c, &["CLIENT", "SETINFO", "LIB-NAME", "mylib"])
            .await
            .unwrap(),
        Value::Okay
    );
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        list.contains(&format!("id={id} "))
            && list.contains("name=worker-1")
            && list.contains("lib-name=mylib"),
        "{list}"
    );
    let me: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(me.starts_with(&format!("id={id} ")), "{me}");
    assert_eq!(
        error(&mut c, &["CLIENT", "NOPE"]).await,
        "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."
    );
    let time: Vec<String> = redis::cmd("TIME").query_async(&mut c).await.unwrap();
    assert_eq!(time, ["1767225600", "0"]);
    server.stop().await;
}

#[tokio::test]
async fn hello_switches_to_resp3() {
    let server = TestServer::manual().await;
    let mut c = server.conn3().await;
    let hello = run(&mut c, &["HELLO", "3"]).await.unwrap();
    let Value::Map(fields) = hello else {
        panic!("{hello:?}")
    };
    assert!(fields.contains(&(bulk("proto"), Value::Int(3))));
    assert!(fields.contains(&(bulk("server"), bulk("tollgate"))));
    // Maps are maps in RESP3.
    run(&mut c, &["LIMIT.POLICY", "SET", "p", "gcra", "1", "1s"])
        .await
        .unwrap();
    let rules = run(&mut c, &["LIMIT.POLICY", "GET", "p"]).await.unwrap();
    let Value::Array(rules) = rules else { panic!() };
    assert!(matches!(&rules[0], Value::Map(m) if m[0] == (bulk("algorithm"), bulk("gcra"))));
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k gcra 1 1s").await,
        [1, 1, 0, -1, 1000]
    );
    assert_eq!(
        run(&mut c, &["GET", "x"]).await.unwrap_err().code(),
        Some("ERR")
    );
    let info = run(&mut c, &["INFO", "server"]).await.unwrap();
    assert!(
        matches!(info, Value::VerbatimString { ref text, .. } if text.contains("redis_version:")),
        "{info:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn server_commands() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK a gcra 1 1s").await;
    check(&mut c, "LIMIT.CHECK b fixed_window 1 1s").await;
    assert_eq!(run(&mut c, &["DBSIZE"]).await.unwrap(), Value::Int(2));
    let info: String = redis::cmd("INFO").query_async(&mut c).await.unwrap();
    for line in [
        "# Server",
        "# Clients",
        "# Stats",
        "# Keyspace",
        "db0:keys=2",
        "allowed_gcra:1",
        "checks_fixed_window:1",
    ] {
        assert!(info.contains(line), "{line} missing from INFO");
    }
    let stats = common::info(&mut c, "stats").await;
    assert!(stats.starts_with("# Stats") && !stats.contains("# Server"));
    let cfg = run(&mut c, &["CONFIG", "GET", "max*"]).await.unwrap();
    assert_eq!(
        cfg,
        Value::Array(vec![
            bulk("maxclients"),
            bulk("10000"),
            bulk("maxmemory-clients"),
            bulk("1073741824"),
            bulk("maxmemory"),
            bulk("0"),
            bulk("maxmemory-policy"),
            bulk("noeviction"),
        ])
    );
    assert_eq!(
        error(&mut c, &["CONFIG", "SET", "port", "1"]).await,
        "ERR unknown subcommand 'SET'. Try CONFIG HELP."
    );
    run(&mut c, &["LIMIT.POLICY", "SET", "p", "gcra", "1", "1s"])
        .await
        .unwrap();
    assert_eq!(run(&mut c, &["FLUSHALL"]).await.unwrap(), Value::Okay);
    assert_eq!(run(&mut c, &["DBSIZE"]).await.unwrap(), Value::Int(0));
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "LIST"]).await.unwrap(),
        Value::Array(vec![bulk("p")])
    );
    assert_eq!(
        error(&mut c, &["SHUTDOWN", "MAYBE"]).await,
        "ERR syntax error"
    );
    server.stop().await;
}

#[tokio::test]
async fn command_table_answers_command() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let count: i64 = redis::cmd("COMMAND")
        .arg("COUNT")
        .query_async(&mut c)
        .await
        .unwrap();
    let names: Vec<String> = redis::cmd("COMMAND")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(names.len() as i64, count);
    for name in [
        "limit.check",
        "limit.info",
        "limit.reset",
        "limit.policy",
        "cl.throttle",
        "ping",
        "echo",
        "hello",
        "auth",
        "quit",
        "reset",
        "select",
        "client",
        "command",
        "info",
        "config",
        "dbsize",
        "flushall",
        "time",
        "save",
        "bgsave",
        "lastsave",
        "shutdown",
        "multi",
        "exec",
        "discard",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing");
    }
    let info = run(&mut c, &["COMMAND", "INFO", "LIMIT.CHECK", "nope"])
        .await
        .unwrap();
    let Value::Array(infos) = info else { panic!() };
    let Value::Array(check) = &infos[0] else {
        panic!()
    };
    assert_eq!(check[..2], [bulk("limit.check"), Value::Int(-4)]);
    assert_eq!(check[3..6], [Value::Int(1), Value::Int(1), Value::Int(1)]);
    assert_eq!(infos[1], Value::Nil);
    let all = run(&mut c, &["COMMAND"]).await.unwrap();
    assert!(matches!(all, Value::Array(ref v) if v.len() as i64 == count));
    let docs = run(&mut c, &["COMMAND", "DOCS", "cl.throttle"])
        .await
        .unwrap();
    let Value::Array(docs) = docs else { panic!() };
    assert_eq!(docs[0], bulk("cl.throttle"));
    server.stop().await;
}

#[tokio::test]
async fn transactions_run_queued_commands_in_order() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let (a, b, ping): (Vec<i64>, Vec<i64>, String) = redis::pipe()
        .atomic()
        .cmd("LIMIT.CHECK")
        .arg("k")
        .arg("fixed_window")
        .arg(1)
        .arg("1m")
        .cmd("LIMIT.CHECK")
        .arg("k")
        .arg("fixed_window")
        .arg(1)
        .arg("1m")
        .cmd("PING")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((a[0], b[0], ping.as_str()), (1, 0, "PONG"));
    // Raw, to see QUEUED, EXECABORT and the nesting errors.
    let out = raw(
        server.addr,
        b"MULTI\r\nPING\r\nNOPE\r\nEXEC\r\nEXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nDISCARD\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "+OK\r\n+QUEUED\r\n-ERR unknown command 'NOPE', with args beginning with: \r\n\
         -EXECABORT Transaction discarded because of previous errors.\r\n-ERR EXEC without MULTI\r\n\
         -ERR DISCARD without MULTI\r\n+OK\r\n-ERR MULTI calls can not be nested\r\n+OK\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn authentication_when_a_password_is_set() {
    let config = tollgate::config::Config {
        requirepass: Some("s3cret".into()),
        ..Default::default()
    };
    let server = TestServer::manual_with(config).await;
    let out = raw(
        server.addr,
        b"PING\r\nAUTH wrong\r\nAUTH s3cret\r\nPING\r\nRESET\r\nPING\r\nAUTH default s3cret\r\nQUIT\r\nPING\r\n",
    )
    .await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "-NOAUTH Authentication required.\r\n\
         -WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n+PONG\r\n+RESET\r\n\
         -NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n"
    );
    let url = format!("redis://:s3cret@{}/", server.addr);
    let mut c = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(
        run(&mut c, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    let out = raw(
        server.addr,
        b"HELLO 3 AUTH default nope\r\nHELLO 3 AUTH default s3cret\r\n",
    )
    .await;
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.starts_with("-WRONGPASS") && out.contains("%7\r\n"),
        "{out}"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_command_stops_the_server() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let _ = run(&mut c, &["SHUTDOWN", "NOSAVE"]).await;
    let TestServer {
        handle,
        addr,
        shared,
        ..
    } = server;
    tokio::time::timeout(std::time::Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        !shared.persistence.path.exists(),
        "NOSAVE writes no snapshot: {:?} {:?}",
        shared.persistence.path,
        shared.persistence.status(&shared.engine.store)
    );
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
