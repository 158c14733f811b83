//! Rules at the edges of the accepted ranges, over a real socket: what no
//! rule may refill within (183000d) is refused up front and changes nothing;
//! everything accepted decides exactly, even for times past the end of `u64`
//! nanoseconds (the year 2554), and across a snapshot.

mod common;

use common::{TestServer, check, error, run};
use redis::Value;
use tollgate::config::Config;

const REFILL_ERR: &str =
    "ERR invalid rule: refilling from empty (BURST * window / limit) would take more than 183000d";
const CELL_REFILL_ERR: &str = "ERR invalid rule: refilling from empty ((max_burst + 1) * period / count_per_period) would take more than 183000d";
const DAY_MS: i64 = 86_400_000;

async fn dbsize(c: &mut redis::aio::MultiplexedConnection) -> Value {
    run(c, &["DBSIZE"]).await.unwrap()
}

/// The six repros of issue 8: each combination used to saturate the stored
/// time and admit what it must deny. Now each is refused and stores nothing.
#[tokio::test]
async fn saturating_combinations_are_refused_and_store_nothing() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    for cmd in [
        "LIMIT.CHECK sat1 gcra 1 366d BURST 1000 COST 1000",
        "LIMIT.CHECK sat1 gcra 1 366d BURST 1000",
        "LIMIT.CHECK sat1 gcra 1 366d BURST 1000 COST 400",
        "LIMIT.CHECK t1 token_bucket 1 1d BURST 300000 COST 300000",
        "LIMIT.CHECK t1 token_bucket 1 1d BURST 300000 COST 100000",
        "LIMIT.CHECK l1 leaky_bucket 1 1d BURST 300000",
        "LIMIT.POLICY SET p gcra 1 366d BURST 1000",
    ] {
        let words: Vec<&str> = cmd.split(' ').collect();
        assert_eq!(error(&mut c, &words).await, REFILL_ERR, "{cmd}");
    }
    for cmd in [
        "CL.THROTTLE sat5 999 1 31622400 1000",
        "CL.THROTTLE sat5 999 1 31622400 400",
    ] {
        let words: Vec<&str> = cmd.split(' ').collect();
        assert_eq!(error(&mut c, &words).await, CELL_REFILL_ERR, "{cmd}");
    }
    assert_eq!(dbsize(&mut c).await, Value::Int(0));
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "LIST"]).await.unwrap(),
        Value::Array(vec![])
    );
    server.stop().await;
}

/// The largest accepted burst at the slowest rate (500 per 366d refills in
/// exactly 183000d) is exact: once used up, not one more unit passes until
/// its interval is over, and the retry time is the whole interval.
#[tokio::test]
async fn the_longest_accepted_refill_is_exact() {
    let server = TestServer::manual().await;
    let mut c = server.conn().await;
    for algorithm in ["gcra", "token_bucket"] {
        let rule = format!("LIMIT.CHECK {algorithm} {algorithm} 1 366d BURST 500");
        let d = check(&mut c, &format!("{rule} COST 500")).await;
        assert_eq!(d, [1, 500, 0, -1, 500 * 366 * DAY_MS], "{algorithm}");
        for cost in [1, 400] {
            let d = check(&mut c, &format!("{rule} COST {cost}")).await;
            assert_eq!(d[0], 0, "{algorithm} COST {cost} must be denied");
            assert_eq!(d[3], cost * 366 * DAY_MS, "{algorithm} COST {cost}");
        }
        let too_long = format!("LIMIT.CHECK {algorithm}2 {algorithm} 1 366d BURST 501");
        let words: Vec<&str> = too_long.split(' ').collect();
        assert_eq!(error(&mut c, &words).await, REFILL_ERR);
    }
    let d = check(&mut c, "CL.THROTTLE cell 499 1 31622400 500").await;
    assert_eq!(d[0], 0, "500 fit a fresh cell");
    let d = check(&mut c, "CL.THROTTLE cell 499 1 31622400 1").await;
    assert_eq!(d[0], 1, "and the next unit is limited");
    assert_eq!(d[3], 31_622_400);
    server.stop().await;
}

/// Near the end of the clock (2553) a bucket's "full again" time lies past
/// 2^64 ns. It is kept exactly, decides exactly, and survives a snapshot.
#[tokio::test]
async fn times_past_2554_are_exact_and_survive_a_restart() {
    let late = u64::MAX - 10 * 366 * 86_400_000_000_000; // ten years before the end
    let config = Config {
        data_dir: common::scratch_dir(),
        ..Config::default()
    };
    let server = TestServer::restoring(config.clone(), late).await;
    let mut c = server.conn().await;
    let rule = "LIMIT.CHECK k gcra 1 366d BURST 100";
    assert_eq!(check(&mut c, &format!("{rule} COST 100")).await[0], 1);
    let d = check(&mut c, &format!("{rule} COST 1")).await;
    assert_eq!((d[0], d[3]), (0, 366 * DAY_MS));
    let cell = "CL.THROTTLE cell 99 1 31622400";
    assert_eq!(check(&mut c, &format!("{cell} 100")).await[0], 0);
    assert_eq!(check(&mut c, &format!("{cell} 1")).await[0], 1);
    assert_eq!(run(&mut c, &["SAVE"]).await.unwrap(), Value::Okay);
    server.stop().await;

    let server = TestServer::restoring(config, late + 366 * 86_400_000_000_000 - 1).await;
    let mut c = server.conn().await;
    let d = check(&mut c, &format!("{rule} COST 1")).await;
    assert_eq!((d[0], d[3]), (0, 1), "one ns short of a unit, restored");
    server.advance_ns(1);
    assert_eq!(check(&mut c, &format!("{rule} COST 1")).await[0], 1);
    assert_eq!(check(&mut c, &format!("{rule} COST 1")).await[0], 0);
    assert_eq!(check(&mut c, &format!("{cell} 1")).await[0], 0);
    assert_eq!(check(&mut c, &format!("{cell} 1")).await[0], 1);
    server.stop().await;
}
