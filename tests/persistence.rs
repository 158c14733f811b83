//! Snapshots through the server: SAVE, BGSAVE, LASTSAVE, periodic and final
//! snapshots, restore, downtime, a failing disk, policies from the config
//! file reloaded, and the Prometheus endpoint. Manual clock where time matters.

mod common;

use std::time::Duration;

use common::{START_NS, TestServer, check, error, run, scratch_dir};
use redis::Value;
use tollgate::config::Config;

/// Every algorithm's wire name.
fn all() -> impl Iterator<Item = &'static str> {
    tollgate::limiter::Algorithm::ALL
        .into_iter()
        .map(|a| a.name())
}

fn config_in(dir: &std::path::Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        ..Default::default()
    }
}

/// Touches every algorithm, inline and under a run-time policy.
async fn fill(c: &mut redis::aio::MultiplexedConnection) {
    for a in all() {
        // Inside MULTI so the leaky bucket does not hold the reply.
        for cost in [3, 2] {
            let cmd = format!("LIMIT.CHECK k-{a} {a} 10 1m COST {cost}");
            common::checks_in_multi(c, &cmd, 1).await;
        }
    }
    run(
        c,
        &[
            "LIMIT.POLICY",
            "SET",
            "api",
            "gcra",
            "5",
            "1s",
            "sliding_log",
            "100",
            "1h",
        ],
    )
    .await
    .unwrap();
    check(c, "LIMIT.CHECK user POLICY api COST 2").await;
}

async fn infos(c: &mut redis::aio::MultiplexedConnection) -> Vec<Value> {
    let mut out = Vec::new();
    for a in all() {
        out.push(run(c, &["LIMIT.INFO", &format!("k-{a}")]).await.unwrap());
    }
    out.push(
        run(c, &["LIMIT.INFO", "user", "POLICY", "api"])
            .await
            .unwrap(),
    );
    out
}

#[tokio::test]
async fn restart_keeps_every_kind_of_state_and_runtime_policies() {
    let dir = scratch_dir();
    let server = TestServer::manual_with(config_in(&dir)).await;
    let mut c = server.conn().await;
    fill(&mut c).await;
    let before = infos(&mut c).await;
    assert_eq!(run(&mut c, &["SAVE"]).await.unwrap(), Value::Okay);
    assert_eq!(
        run(&mut c, &["LASTSAVE"]).await.unwrap(),
        Value::Int((START_NS / 1_000_000_000) as i64)
    );
    server.stop().await;

    let server = TestServer::restoring(config_in(&dir), START_NS).await;
    let mut c = server.conn().await;
    assert_eq!(infos(&mut c).await, before);
    assert_eq!(run(&mut c, &["DBSIZE"]).await.unwrap(), Value::Int(7));
    assert_eq!(
        run(&mut c, &["LIMIT.POLICY", "LIST"]).await.unwrap(),
        Value::Array(vec![Value::BulkString(b"api".to_vec())])
    );
    // The restored state answers as before: 5 of 10 used.
    assert_eq!(
        check(
            &mut c,
            "LIMIT.CHECK k-fixed_window fixed_window 10 1m COST 5"
        )
        .await[..3],
        [1, 10, 0]
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k-fixed_window fixed_window 10 1m").await[0],
        0
    );
    server.stop().await;
}

#[tokio::test]
async fn time_passing_while_down_counts() {
    let dir = scratch_dir();
    let server = TestServer::manual_with(config_in(&dir)).await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK day fixed_window 10 1d COST 10").await;
    check(&mut c, "LIMIT.CHECK minute fixed_window 10 1m COST 10").await;
    check(&mut c, "LIMIT.CHECK bucket token_bucket 10 1m COST 10").await;
    server.stop_saving().await.unwrap();

    // Down for 90 s: the minute window and the bucket are fresh again; the day is not.
    let server = TestServer::restoring(config_in(&dir), START_NS + 90_000_000_000).await;
    let mut c = server.conn().await;
    assert_eq!(run(&mut c, &["DBSIZE"]).await.unwrap(), Value::Int(1));
    assert_eq!(
        check(&mut c, "LIMIT.CHECK minute fixed_window 10 1m COST 10").await[0],
        1
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK bucket token_bucket 10 1m COST 10").await[0],
        1
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK day fixed_window 10 1d").await[0],
        0
    );
    server.stop().await;

    // Down 30 s after half a bucket was used: half of it refilled meanwhile.
    let dir = scratch_dir();
    let server = TestServer::manual_with(config_in(&dir)).await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK b token_bucket 10 1m COST 10").await;
    server.stop_saving().await.unwrap();
    let server = TestServer::restoring(config_in(&dir), START_NS + 30_000_000_000).await;
    let mut c = server.conn().await;
    assert_eq!(
        check(&mut c, "LIMIT.CHECK b token_bucket 10 1m DRYRUN").await[..3],
        [1, 10, 4]
    );
    server.stop().await;
}

#[tokio::test]
async fn bgsave_and_periodic_snapshots_write_in_the_background() {
    let dir = scratch_dir();
    let config = Config {
        // Every 50 ms if anything changed (`snapshot_interval = "50ms"`).
        save_points: vec![tollgate::config::SavePoint {
            after_ms: 50,
            changes: 1,
        }],
        ..config_in(&dir)
    };
    let server = TestServer::manual_with(config).await;
    let path = server.shared.persistence.path.clone();
    let mut c = server.conn().await;
    // Nothing changed: no snapshot is written.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!path.exists());
    check(&mut c, "LIMIT.CHECK k gcra 1 1h").await;
    assert!(appears(&path).await, "the periodic snapshot appeared");
    let info = common::info(&mut c, "persistence").await;
    assert!(info.contains("rdb_last_bgsave_status:ok"), "{info}");
    server.stop().await;

    let server = TestServer::manual_with(config_in(&scratch_dir())).await;
    let path = server.shared.persistence.path.clone();
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k gcra 1 1h").await;
    assert_eq!(
        run(&mut c, &["BGSAVE"]).await.unwrap(),
        Value::SimpleString("Background saving started".into())
    );
    appears(&path).await;
    assert_eq!(
        tollgate::snapshot::load(&path)
            .unwrap()
            .unwrap()
            .entries
            .len(),
        1
    );
    assert_eq!(error(&mut c, &["BGSAVE", "NOW"]).await, "ERR syntax error");
    server.stop().await;
}

#[tokio::test]
async fn a_failing_disk_is_an_error_and_checks_go_on() {
    let dir = scratch_dir();
    // A data directory that is a regular file cannot hold a snapshot (this
    // works even as root, unlike permissions).
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let server = TestServer::manual_with(config_in(&file)).await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k gcra 5 1s").await;
    let err = error(&mut c, &["SAVE"]).await;
    assert!(
        err.starts_with("ERR snapshot ") && err.contains("not-a-dir"),
        "{err}"
    );
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k gcra 5 1s").await[..3],
        [1, 5, 3]
    );
    let info = common::info(&mut c, "persistence").await;
    assert!(
        info.contains("rdb_last_bgsave_status:err") && info.contains("snapshot_failures:1"),
        "{info}"
    );
    // Both checks are still unsaved (Redis's count; it was a 0/1 flag).
    assert!(
        info.contains("rdb_changes_since_last_save:2"),
        "still dirty: {info}"
    );
    // The final snapshot fails too, and says so.
    let result = server.stop_saving().await;
    assert!(result.unwrap_err().contains("not-a-dir"));
}

#[tokio::test]
async fn shutdown_writes_the_final_snapshot_unless_nosave() {
    let dir = scratch_dir();
    let server = TestServer::manual_with(config_in(&dir)).await;
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK k gcra 5 1h").await;
    let _ = run(&mut c, &["SHUTDOWN"]).await;
    let TestServer { handle, shared, .. } = server;
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let saved = tollgate::snapshot::load(&shared.persistence.path)
        .unwrap()
        .unwrap();
    assert_eq!(saved.entries.len(), 1);
}

#[tokio::test]
async fn sighup_style_reload_replaces_config_policies_and_refuses_bad_files() {
    let dir = scratch_dir();
    let path = dir.join("tollgate.toml");
    let policy = |limit: u32| {
        format!(
            "[[policy]]\nname = \"p\"\nrules = [{{ algorithm = \"gcra\", limit = {limit}, window = \"1s\" }}]\n"
        )
    };
    std::fs::write(&path, policy(5)).unwrap();
    let config = Config::from_file(&path).unwrap();
    let server = TestServer::manual_with(Config {
        data_dir: dir.clone(),
        ..config
    })
    .await;
    let mut c = server.conn().await;
    run(
        &mut c,
        &["LIMIT.POLICY", "SET", "runtime", "gcra", "1", "1s"],
    )
    .await
    .unwrap();
    assert_eq!(check(&mut c, "LIMIT.CHECK k POLICY p").await[1], 5);

    std::fs::write(&path, policy(7)).unwrap();
    assert_eq!(
        tollgate::server::reload_config(&server.shared).map(|r| r.policies),
        Ok(1)
    );
    assert_eq!(check(&mut c, "LIMIT.CHECK k POLICY p").await[1], 7);

    std::fs::write(&path, "[[policy]]\nname = \"p\"\nrules = []\n").unwrap();
    let err = tollgate::server::reload_config(&server.shared).unwrap_err();
    assert!(err.contains("has no rules"), "{err}");
    assert_eq!(
        check(&mut c, "LIMIT.CHECK k POLICY p").await[1],
        7,
        "old policies stay"
    );
    let names = run(&mut c, &["LIMIT.POLICY", "LIST"]).await.unwrap();
    assert_eq!(
        names,
        Value::Array(vec![
            Value::BulkString(b"p".to_vec()),
            Value::BulkString(b"runtime".to_vec())
        ])
    );
    server.stop().await;
}

async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn prometheus_endpoint_serves_counters_histograms_and_health() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = Config {
        metrics_addr: Some(addr.clone()),
        ..Default::default()
    };
    let server = TestServer::manual_with(config).await;
    let mut c = server.conn().await;
    // 16 checks on one connection (one thread): 2 are timed; the counters
    // count all 16.
    for _ in 0..16 {
        check(&mut c, "LIMIT.CHECK k gcra 1 1s").await;
    }
    let mut body = String::new();
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(&addr).await {
            drop(s);
            body = http_get(&addr, "/metrics").await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for line in [
        "tollgate_checks_total{algorithm=\"gcra\",result=\"allowed\"} 1",
        "tollgate_checks_total{algorithm=\"gcra\",result=\"denied\"} 15",
        "tollgate_check_duration_seconds_count{algorithm=\"gcra\"} 2",
        "tollgate_check_duration_seconds_bucket{le=\"+Inf\",algorithm=\"gcra\"} 2",
        "tollgate_check_duration_seconds_bucket{le=\"1.0\",algorithm=\"gcra\"} 2",
        "Sampled: one check in 8 per thread is timed",
        "tollgate_keys 1",
        "tollgate_evicted_keys_total 0",
        "tollgate_maxmemory_bytes 0",
        "tollgate_memory_dataset_bytes ",
        "tollgate_cluster_slots_served 0",
        "tollgate_cluster_moved_total 0",
        "tollgate_cluster_tryagain_total 0",
        "# EOF",
    ] {
        assert!(body.contains(line), "{line} missing:\n{body}");
    }
    let health = http_get(&addr, "/healthz").await;
    assert!(
        health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"),
        "{health}"
    );
    assert!(http_get(&addr, "/nope").await.starts_with("HTTP/1.1 404"));
    server.stop().await;
}

/// Finding (issue 11): the whole keyspace was rewritten every 10 s if
/// anything at all changed. Save points as Redis's `save`: a snapshot after
/// N seconds only if at least M changes were made; INFO counts the changes
/// since the last one.
#[tokio::test]
async fn save_points_wait_for_enough_changes() {
    let dir = scratch_dir();
    let config = Config {
        // After 50 ms, but only once 3 changes are in.
        save_points: vec![tollgate::config::SavePoint {
            after_ms: 50,
            changes: 3,
        }],
        ..config_in(&dir)
    };
    let server = TestServer::manual_with(config).await;
    let path = server.shared.persistence.path.clone();
    let mut c = server.conn().await;
    check(&mut c, "LIMIT.CHECK a gcra 5 1h").await;
    check(&mut c, "LIMIT.CHECK b gcra 5 1h").await;
    // A dry run and a denial change nothing: still 2.
    check(&mut c, "LIMIT.CHECK a gcra 5 1h DRYRUN").await;
    let info = common::info(&mut c, "persistence").await;
    assert!(info.contains("rdb_changes_since_last_save:2\r\n"), "{info}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!path.exists(), "2 changes are not enough");
    check(&mut c, "LIMIT.CHECK c gcra 5 1h").await;
    assert!(
        appears(&path).await,
        "the third change reached the save point"
    );
    // The file is renamed into place just before the save is recorded:
    // wait for the record (the file alone does not say it is done).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let info = common::info(&mut c, "persistence").await;
        let recorded = info.contains("rdb_changes_since_last_save:0\r\n")
            && info.contains("rdb_bgsave_in_progress:0\r\n")
            && info.contains("rdb_saves:1\r\n");
        if recorded {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.stop().await;
}

/// Whether the file at `path` appears within 5 seconds.
async fn appears(path: &std::path::Path) -> bool {
    for _ in 0..500 {
        if path.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}
