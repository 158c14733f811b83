//! The `tollgate` binary as an operator runs it: signals, kill -9, bad
//! snapshot files, SIGHUP, and the container's start-up path (`/data`-style
//! arguments, `--healthcheck`) outside Docker.

mod common;

use std::path::Path;

use common::proc::{Proc, run_to_end};
use common::scratch_dir;

fn cmd<T: redis::FromRedisValue>(c: &mut redis::Connection, words: &str) -> T {
    let words: Vec<&str> = words.split_whitespace().collect();
    let mut cmd = redis::cmd(words[0]);
    for w in &words[1..] {
        cmd.arg(*w);
    }
    cmd.query(c).unwrap()
}

fn dir_arg(dir: &Path) -> String {
    dir.display().to_string()
}

#[test]
fn sigterm_writes_the_final_snapshot_and_exits_zero() {
    let dir = scratch_dir();
    let data = dir_arg(&dir);
    let p = Proc::start(&["--data-dir", &data]);
    let mut c = p.conn();
    let _: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k fixed_window 5 1h COST 3");
    let _: String = cmd(&mut c, "LIMIT.POLICY SET p gcra 2 1s");
    p.signal("TERM");
    assert!(p.wait(), "exit 0 after SIGTERM");
    assert!(dir.join("dump.tgs").exists());

    let p = Proc::start(&["--data-dir", &data]);
    let mut c = p.conn();
    let reply: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k fixed_window 5 1h");
    assert_eq!(reply[..3], [1, 5, 1], "the restart kept the count");
    let names: Vec<String> = cmd(&mut c, "LIMIT.POLICY LIST");
    assert_eq!(names, ["p"]);
    p.signal("INT");
    assert!(p.wait(), "exit 0 after SIGINT");
}

#[test]
fn kill_9_after_save_keeps_the_saved_state() {
    let dir = scratch_dir();
    let data = dir_arg(&dir);
    let mut p = Proc::start(&["--data-dir", &data]);
    let mut c = p.conn();
    let _: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k fixed_window 5 1h COST 2");
    let saved: String = cmd(&mut c, "SAVE");
    assert_eq!(saved, "OK");
    let _: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k fixed_window 5 1h COST 2");
    p.child.kill().unwrap();
    p.child.wait().unwrap();

    let p = Proc::start(&["--data-dir", &data]);
    let mut c = p.conn();
    let reply: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k fixed_window 5 1h DRYRUN");
    assert_eq!(
        reply[..3],
        [1, 5, 2],
        "what SAVE wrote, not what came after"
    );
    p.signal("TERM");
    assert!(p.wait());
}

#[test]
fn bad_snapshots_are_refused_clearly_and_kept() {
    // A good snapshot to damage.
    let dir = scratch_dir();
    let data = dir_arg(&dir);
    let p = Proc::start(&["--data-dir", &data]);
    let mut c = p.conn();
    for i in 0..20 {
        let _: Vec<i64> = cmd(&mut c, &format!("LIMIT.CHECK k{i} gcra 5 1h"));
    }
    let _: String = cmd(&mut c, "SAVE");
    p.signal("TERM");
    assert!(p.wait());
    let good = std::fs::read(dir.join("dump.tgs")).unwrap();

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    // In the last entry: the states before it are read (and stored) before
    // the damage shows, and must go again.
    let mut flipped_late = good.clone();
    flipped_late[good.len() - 6] ^= 0x01;
    let mut future = good.clone();
    future[8..12].copy_from_slice(&9u32.to_le_bytes());
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("truncated", good[..good.len() - 5].to_vec(), "truncated"),
        ("flipped byte", flipped, "checksum mismatch"),
        ("flipped late", flipped_late, "checksum mismatch"),
        (
            "future version",
            future,
            "format version 9 is not supported",
        ),
    ];
    for (what, bytes, reason) in cases {
        let dir = scratch_dir();
        let file = dir.join("dump.tgs");
        std::fs::write(&file, &bytes).unwrap();
        let (ok, stderr) = run_to_end(&["--port", "0", "--data-dir", &dir_arg(&dir)]);
        assert!(!ok, "{what}: must not start");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{what}: one line: {stderr}");
        assert!(
            lines[0].contains(&file.display().to_string()) && lines[0].contains(reason),
            "{what}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&file).unwrap(),
            bytes,
            "{what}: the file is kept"
        );

        // The documented way out: move it aside and start empty.
        let p = Proc::start(&["--data-dir", &dir_arg(&dir), "--discard-bad-snapshot"]);
        let mut c = p.conn();
        let size: i64 = cmd(&mut c, "DBSIZE");
        assert_eq!(size, 0);
        let moved: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("dump.tgs.bad-"))
            .collect();
        assert_eq!(moved.len(), 1, "{what}: moved aside");
        p.signal("TERM");
        assert!(p.wait());
    }
}

#[test]
fn sighup_reloads_config_policies_and_keeps_them_on_a_bad_file() {
    let dir = scratch_dir();
    let config = dir.join("tollgate.toml");
    let policy = |limit: u32| {
        format!(
            "[[policy]]\nname = \"p\"\nrules = [{{ algorithm = \"gcra\", limit = {limit}, window = \"1s\" }}]\n"
        )
    };
    std::fs::write(&config, policy(5)).unwrap();
    let p = Proc::start(&["--data-dir", &dir_arg(&dir), "--config", &dir_arg(&config)]);
    let mut c = p.conn();
    let reply: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k POLICY p DRYRUN");
    assert_eq!(reply[1], 5);

    std::fs::write(&config, policy(7)).unwrap();
    p.signal("HUP");
    p.wait_log("SIGHUP: reloaded 1 policies");
    let reply: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k POLICY p DRYRUN");
    assert_eq!(reply[1], 7);

    std::fs::write(&config, "this is not toml").unwrap();
    p.signal("HUP");
    let line = p.wait_log("SIGHUP: config not reloaded");
    assert!(line.contains("tollgate.toml"), "{line}");
    let reply: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k POLICY p DRYRUN");
    assert_eq!(reply[1], 7, "the old policies stay");
    p.signal("TERM");
    assert!(p.wait());
}

#[test]
fn the_container_start_up_path_works_outside_docker() {
    // What the image runs: bind 0.0.0.0, data in a /data-like directory,
    // the example sidecar config, and the healthcheck.
    let dir = scratch_dir();
    let data = dir.join("data");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/tollgate.toml");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let p = Proc::start(&[
        "--config",
        config,
        "--bind",
        "0.0.0.0",
        "--data-dir",
        &dir_arg(&data),
        "--metrics-addr",
        &metrics,
    ]);
    let port = p.addr.rsplit(':').next().unwrap().to_string();
    let (healthy, stderr) = run_to_end(&["--healthcheck", "--port", &port]);
    assert!(healthy, "{stderr}");
    let mut c = p.conn();
    let reply: Vec<i64> = cmd(&mut c, "LIMIT.CHECK user:42 POLICY api");
    assert_eq!(reply[..3], [1, 20, 19]);
    let names: Vec<String> = cmd(&mut c, "LIMIT.POLICY LIST");
    assert_eq!(names, ["api", "login"]);
    p.signal("TERM");
    assert!(p.wait());
    assert!(
        data.join("dump.tgs").exists(),
        "the data directory was created and written"
    );
    let (healthy, stderr) = run_to_end(&["--healthcheck", "--port", &port]);
    assert!(!healthy && stderr.contains(&port), "{stderr}");
}

#[test]
fn a_bad_config_file_stops_the_start_with_one_line() {
    let dir = scratch_dir();
    let config = dir.join("bad.toml");
    std::fs::write(&config, "port = \"high\"\n").unwrap();
    let (ok, stderr) = run_to_end(&["--config", &dir_arg(&config)]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("bad.toml"), "{stderr}");
    let (ok, stderr) = run_to_end(&["--log-level", "loud"]);
    assert!(
        !ok && stderr.contains("invalid log level 'loud'"),
        "{stderr}"
    );
}

/// Finding (issue 11): SIGTERM with a client that never reads took the
/// whole 5 s drain before the final save, past a 10 s grace period once the
/// save was large. The shutdown keeps within `shutdown_timeout`: the drain
/// gets what is left after the final save's expected time.
#[test]
fn shutdown_keeps_within_its_timeout_with_a_client_that_never_reads() {
    use std::io::Write;
    let dir = scratch_dir();
    let config = dir.join("t.toml");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&config, "shutdown_timeout = \"2s\"\n").unwrap();
    let p = Proc::start(&["--data-dir", &dir_arg(&dir), "--config", &dir_arg(&config)]);
    let mut c = p.conn();
    let _: Vec<i64> = cmd(&mut c, "LIMIT.CHECK k fixed_window 5 1h COST 2");
    // 40 MB of replies that are never read: the server's writes block.
    let mut stuck = std::net::TcpStream::connect(&p.addr).unwrap();
    // The server stops reading once its replies back up: stop writing too.
    stuck
        .set_write_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let payload = "x".repeat(1 << 20);
    for _ in 0..40 {
        let echo = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{payload}\r\n", payload.len());
        if stuck.write_all(echo.as_bytes()).is_err() {
            break;
        }
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    p.signal("TERM");
    let line = p.wait_log("to keep within shutdown_timeout");
    assert!(p.wait(), "exit 0");
    let took = started.elapsed();
    // 2 s, with room for a slow machine; the old fixed drain alone took 5 s.
    assert!(
        took < std::time::Duration::from_millis(4_000),
        "took {took:?}: {line}"
    );
    assert!(
        dir.join("dump.tgs").exists(),
        "the final snapshot was written"
    );
    drop(stuck);
}
