//! Pipelines, concurrency on one key, and bad input: garbage, oversized
//! arguments, the client cap. Bad input closes only its own connection.

mod common;

use std::time::Duration;

use common::{TestServer, check, raw, run};
use redis::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_pipeline_of_10000_commands_is_answered_in_order() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        if i % 2 == 0 {
            pipe.cmd("LIMIT.CHECK")
                .arg("p")
                .arg("fixed_window")
                .arg(3000)
                .arg("1h");
        } else {
            pipe.cmd("ECHO").arg(i);
        }
    }
    let replies: Vec<Value> = pipe.query_async(&mut c).await.unwrap();
    assert_eq!(replies.len(), 10_000);
    for (i, reply) in replies.iter().enumerate() {
        if i % 2 == 0 {
            let n = (i / 2) as i64;
            let allowed = i64::from(n < 3000);
            let Value::Array(fields) = reply else {
                panic!("{reply:?}")
            };
            assert_eq!(fields[0], Value::Int(allowed), "check {n}");
            assert_eq!(fields[2], Value::Int((2999 - n).max(0)), "check {n}");
        } else {
            assert_eq!(reply, &Value::BulkString(i.to_string().into_bytes()));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn raw_pipelines_get_one_reply_per_command() {
    let server = TestServer::manual().await;
    let input = b"PING\r\n*1\r\n$4\r\nPING\r\nECHO hi\r\n\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n";
    let out = raw(server.addr, input).await;
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "+PONG\r\n+PONG\r\n$2\r\nhi\r\n$0\r\n\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn requests_before_a_protocol_error_in_one_read_are_answered_first() {
    let server = TestServer::manual().await;
    let input = b"*1\r\n$4\r\nPING\r\n*3\r\n$11\r\nCL.THROTTLE\r\n$1\r\nk\r\n$1\r\n0\r\n\
                  *2\r\n$4\r\nECHO\r\n$2\r\nok\r\n*-5x\r\n*1\r\n$4\r\nPING\r\n";
    let out = String::from_utf8(raw(server.addr, input).await).unwrap();
    assert_eq!(
        out,
        "+PONG\r\n-ERR wrong number of arguments for 'cl.throttle' command\r\n\
         $2\r\nok\r\n-ERR Protocol error: invalid multibulk length\r\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_pipeline_over_many_keys_checks_each_key_on_its_own() {
    // One write of 3 x 500 checks over 500 keys (each key three times, far
    // apart): the batch path fetches keys ahead and must not mix them up.
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let mut pipe = redis::pipe();
    for _round in 0..3 {
        for k in 0..500 {
            let key = if k % 2 == 0 {
                format!("key:{k}")
            } else {
                format!("a-key-long-enough-to-live-on-the-heap:{k}")
            };
            pipe.cmd("CL.THROTTLE").arg(&key).arg(1).arg(2).arg(3600);
        }
    }
    let replies: Vec<Vec<i64>> = pipe.query_async(&mut c).await.unwrap();
    assert_eq!(replies.len(), 1500);
    for (i, reply) in replies.iter().enumerate() {
        let (round, k) = (i / 500, i % 500);
        // max_burst 1: two allowed per key, the third limited.
        let limited = i64::from(round == 2);
        assert_eq!(reply[0], limited, "round {round} key {k}: {reply:?}");
        assert_eq!(reply[2], i64::from(round == 0), "round {round} key {k}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_clients_on_one_key_get_exactly_the_limit() {
    let server = TestServer::real().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = server.client();
        tasks.push(tokio::spawn(async move {
            let mut c = common::connect(&client).await;
            let mut allowed = 0;
            for _ in 0..50 {
                let mut pipe = redis::pipe();
                for _ in 0..10 {
                    pipe.cmd("LIMIT.CHECK")
                        .arg("hot")
                        .arg("fixed_window")
                        .arg(1000)
                        .arg("1h");
                }
                let replies: Vec<Vec<i64>> = pipe.query_async(&mut c).await.unwrap();
                allowed += replies.iter().filter(|r| r[0] == 1).count();
            }
            allowed
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    // 4000 requests, a limit of 1000 per hour: exactly 1000 pass (unless the
    // test straddles an hour boundary, which a second window would show).
    let mut c = server.conn().await;
    let info = run(&mut c, &["LIMIT.INFO", "hot"]).await.unwrap();
    let Value::Array(rules) = info else { panic!() };
    let Value::Array(fields) = &rules[0] else {
        panic!()
    };
    let remaining = &fields[9];
    if remaining == &Value::Int(0) {
        assert_eq!(total, 1000);
    } else {
        assert!(total > 1000 && total <= 2000, "{total}");
    }
    server.stop().await;
}

#[tokio::test]
async fn garbage_on_one_connection_leaves_others_working() {
    let server = TestServer::manual().await;
    let mut good = server.conn().await;
    check(&mut good, "LIMIT.CHECK k gcra 10 1s").await;
    let garbage: &[&[u8]] = &[
        b"*2\r\n$4\r\nPING\r\n:12\r\n",
        b"*-5x\r\n",
        b"$5\r\nhello\r\n",
        b"*1\r\n$99999999999999999999\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n*1\r\n",
        b"ECHO \"unterminated\r\n",
        &[0xff; 70_000],
        &b"*1\r\n".repeat(100_000),
    ];
    for bytes in garbage {
        let out = raw(server.addr, bytes).await;
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("-ERR Protocol error") || text.starts_with("-ERR unknown command"),
            "{bytes:?}: {text}"
        );
        assert_eq!(
            check(&mut good, "LIMIT.CHECK k gcra 10 1s DRYRUN").await[0],
            1
        );
    }
    assert_eq!(run(&mut good, &["DBSIZE"]).await.unwrap(), Value::Int(1));
    let info = common::info(&mut good, "stats").await;
    assert!(info.contains("protocol_errors:"), "{info}");
    server.stop().await;
}

#[tokio::test]
async fn oversized_arguments_and_buffers_close_only_that_client() {
    let config = tollgate::config::Config {
        max_arg_bytes: 1024,
        max_query_buffer_bytes: 64 * 1024,
        ..Default::default()
    };
    let server = TestServer::manual_with(config).await;
    let mut good = server.conn().await;
    // An argument over the limit is refused from its header alone.
    let out = raw(server.addr, b"*2\r\n$4\r\nECHO\r\n$2000\r\n").await;
    assert_eq!(out, b"-ERR Protocol error: invalid bulk length\r\n");
    // Many small arguments that never end exceed the query buffer.
    let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut flood = b"*100000\r\n".to_vec();
    for _ in 0..10_000 {
        flood.extend_from_slice(b"$3\r\nabc\r\n");
    }
    let _ = s.write_all(&flood).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    assert_eq!(out, b"-ERR Protocol error: query buffer limit exceeded\r\n");
    // Up to the limit is fine.
    let echo: Vec<u8> = redis::cmd("ECHO")
        .arg(vec![b'x'; 1024])
        .query_async(&mut good)
        .await
        .unwrap();
    assert_eq!(echo.len(), 1024);
    server.stop().await;
}

#[tokio::test]
async fn absurd_numbers_never_overflow() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    let max = "1000000000000";
    for algorithm in tollgate::limiter::Algorithm::ALL.map(|a| a.name()) {
        let cmd = format!("LIMIT.CHECK {algorithm}-big {algorithm} 1 366d COST 1");
        let slow = ["token_bucket", "leaky_bucket", "gcra"].contains(&algorithm);
        // The largest burst that refills within 183000d at 1 per 366d.
        let burst = if slow { " BURST 500" } else { "" };
        let d = check(&mut c, &format!("{cmd}{burst}")).await;
        assert_eq!(d[0], 1, "{algorithm}");
        let huge = format!("LIMIT.CHECK {algorithm}-big {algorithm} 1 366d COST {max}{burst}");
        let d = check(&mut c, &huge).await;
        assert!(d.iter().skip(3).all(|&t| t >= -1), "{algorithm}: {d:?}");
        let burst = if slow {
            format!(" BURST {max}")
        } else {
            String::new()
        };
        let many = format!("LIMIT.CHECK {algorithm}-many {algorithm} {max} 1ms COST {max}{burst}");
        assert_eq!(check(&mut c, &many).await[0], 1, "{algorithm}");
        if slow {
            // A huge burst with a tiny rate: 10^12 ms to refill, in range.
            let slow_many =
                format!("LIMIT.CHECK {algorithm}-slow {algorithm} 1 1ms COST {max}{burst}");
            assert_eq!(check(&mut c, &slow_many).await[0], 1, "{algorithm}");
        }
    }
    let d = check(&mut c, &format!("CL.THROTTLE cell 499 1 31622400 {max}")).await;
    assert_eq!(d[1], 500);
    assert_eq!(
        run(&mut c, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    server.stop().await;
}

#[tokio::test]
async fn the_client_cap_refuses_extra_connections() {
    let config = tollgate::config::Config {
        max_clients: 2,
        ..Default::default()
    };
    let server = TestServer::manual_with(config).await;
    let mut a = server.conn().await;
    let _b = server.conn().await;
    let out = raw(server.addr, b"PING\r\n").await;
    assert_eq!(out, b"-ERR max number of clients reached\r\n");
    assert_eq!(
        run(&mut a, &["PING"]).await.unwrap(),
        Value::SimpleString("PONG".into())
    );
    server.stop().await;
}
