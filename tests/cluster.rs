//! Cluster mode driven by an unmodified cluster client (the redis crate's
//! async cluster client): one `emulated` node, and three `managed` nodes
//! given a slot map with `TOLLGATE.CLUSTER CONFIG`; MOVED and CLUSTERDOWN
//! for requests sent to the wrong node; the map kept across a restart.

mod common;

use common::{TestServer, error, raw};
use tollgate::cluster::{ClusterMode, keyslot};
use tollgate::config::Config;

fn config(mode: ClusterMode) -> Config {
    Config {
        cluster_mode: mode,
        ..Config::default()
    }
}

async fn cmd<T: redis::FromRedisValue>(server: &TestServer, words: &[&str]) -> T {
    let mut c = common::connect(&server.client()).await;
    common::run(&mut c, words)
        .await
        .and_then(|v| redis::from_redis_value(v).map_err(Into::into))
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

#[tokio::test]
async fn cluster_commands_are_refused_when_the_mode_is_off() {
    let server = TestServer::manual().await;
    let mut c = common::connect(&server.client()).await;
    for words in [
        &["CLUSTER", "INFO"][..],
        &["CLUSTER", "SLOTS"],
        &["READONLY"],
        &["CLUSTER", "MYID"],
    ] {
        assert_eq!(
            error(&mut c, words).await,
            "ERR This instance has cluster support disabled"
        );
    }
    let info: String = cmd(&server, &["INFO", "cluster"]).await;
    assert!(info.contains("cluster_enabled:0"), "{info}");
    server.stop().await;
}

#[tokio::test]
async fn one_emulated_node_serves_a_cluster_client() {
    let server = TestServer::manual_with(config(ClusterMode::Emulated)).await;
    let port = server.addr.port();
    let slot: i64 = cmd(&server, &["CLUSTER", "KEYSLOT", "123456789"]).await;
    assert_eq!(slot, 12739);
    let id: String = cmd(&server, &["CLUSTER", "MYID"]).await;
    let slots: redis::Value = cmd(&server, &["CLUSTER", "SLOTS"]).await;
    let expected = redis::Value::Array(vec![redis::Value::Array(vec![
        redis::Value::Int(0),
        redis::Value::Int(16383),
        redis::Value::Array(vec![
            redis::Value::BulkString(b"127.0.0.1".to_vec()),
            redis::Value::Int(i64::from(port)),
            redis::Value::BulkString(id.clone().into_bytes()),
        ]),
    ])]);
    assert_eq!(slots, expected);
    let nodes: String = cmd(&server, &["CLUSTER", "NODES"]).await;
    assert_eq!(
        nodes,
        format!(
            "{id} 127.0.0.1:{port}@{} myself,master - 0 0 1 connected 0-16383\n",
            u32::from(port) + 10000
        )
    );
    let info: String = cmd(&server, &["CLUSTER", "INFO"]).await;
    assert!(
        info.starts_with("cluster_state:ok\r\ncluster_slots_assigned:16384\r\n"),
        "{info}"
    );
    let ok: String = cmd(&server, &["READONLY"]).await;
    assert_eq!(ok, "OK");

    let client =
        redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{port}")]).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    for i in 0..200 {
        let reply: Vec<i64> = redis::cmd("LIMIT.CHECK")
            .arg(format!("user:{i}"))
            .arg("fixed_window")
            .arg(2)
            .arg("1h")
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(reply[..3], [1, 2, 1]);
    }
    let size: usize = cmd(&server, &["DBSIZE"]).await;
    assert_eq!(size, 200);
    let in_slot: i64 = cmd(
        &server,
        &[
            "CLUSTER",
            "COUNTKEYSINSLOT",
            &keyslot(b"user:7").to_string(),
        ],
    )
    .await;
    assert!(in_slot >= 1);
    let mut plain = common::connect(&server.client()).await;
    assert_eq!(
        error(&mut plain, &["CLUSTER", "COUNTKEYSINSLOT", "16384"]).await,
        "ERR Invalid slot"
    );
    assert_eq!(
        error(&mut plain, &["CLUSTER", "COUNTKEYSINSLOT", "-1"]).await,
        "ERR Invalid slot"
    );
    assert_eq!(
        error(&mut plain, &["CLUSTER", "COUNTKEYSINSLOT", "ten"]).await,
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        error(&mut plain, &["TOLLGATE.CLUSTER", "CONFIG", "[]"]).await,
        "ERR cluster_mode is not managed"
    );
    server.stop().await;
}

/// The map of three nodes (ids and ports in order), slots split evenly.
fn three_way_map(nodes: &[(String, u16)]) -> String {
    let bounds = [(0, 5460), (5461, 10922), (10923, 16383)];
    let shards: Vec<String> = nodes
        .iter()
        .zip(bounds)
        .map(|((id, port), (start, end))| {
            format!(
                r#"{{"slot_ranges":[{{"start":{start},"end":{end}}}],"master":{{"id":"{id}","ip":"127.0.0.1","port":{port}}},"replicas":[],"migrations":[]}}"#
            )
        })
        .collect();
    format!("[{}]", shards.join(","))
}

/// A key whose slot is in `start..=end`.
fn key_in(start: u16, end: u16) -> String {
    (0u32..)
        .map(|i| format!("key:{i}"))
        .find(|k| (start..=end).contains(&keyslot(k.as_bytes())))
        .unwrap()
}

#[tokio::test]
async fn three_managed_nodes_serve_a_cluster_client_and_redirect_the_rest() {
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(TestServer::manual_with(config(ClusterMode::Managed)).await);
    }
    // Before a map: no key is served, other commands are.
    let mut a = common::connect(&servers[0].client()).await;
    assert_eq!(
        error(&mut a, &["LIMIT.CHECK", "k", "gcra", "1", "1s"]).await,
        "CLUSTERDOWN Hash slot not served"
    );
    let mut nodes = Vec::new();
    for s in &servers {
        let id: String = cmd(s, &["TOLLGATE.CLUSTER", "MYID"]).await;
        assert_eq!(id.len(), 40);
        nodes.push((id, s.addr.port()));
    }
    let map = three_way_map(&nodes);
    assert!(
        error(
            &mut a,
            &["TOLLGATE.CLUSTER", "CONFIG", &map.replace("10922", "10921")]
        )
        .await
        .starts_with("ERR invalid cluster config: slot 10922 is in no range")
    );
    for s in &servers {
        let ok: String = cmd(s, &["TOLLGATE.CLUSTER", "CONFIG", &map]).await;
        assert_eq!(ok, "OK");
    }
    // A key another node owns: MOVED to it, nothing stored here.
    let theirs = key_in(5461, 10922);
    let slot = keyslot(theirs.as_bytes());
    let said = raw(
        servers[0].addr,
        &common::request(&[b"LIMIT.CHECK", theirs.as_bytes(), b"gcra", b"1", b"1s"]),
    )
    .await;
    assert_eq!(
        String::from_utf8(said).unwrap(),
        format!("-MOVED {slot} 127.0.0.1:{}\r\n", nodes[1].1)
    );
    // The cluster client routes every key to its owner.
    let seed = vec![format!("redis://127.0.0.1:{}", nodes[0].1)];
    let client = redis::cluster::ClusterClient::new(seed).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    let keys = 1500;
    for i in 0..keys {
        let reply: Vec<i64> = redis::cmd("LIMIT.CHECK")
            .arg(format!("user:{{{}}}:{}", i % 50, i))
            .arg("fixed_window")
            .arg(3)
            .arg("1h")
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(reply[..3], [1, 3, 2], "user {i}");
    }
    let mut total = 0;
    for s in &servers {
        let size: usize = cmd(s, &["DBSIZE"]).await;
        assert!(size > 200, "every node holds its share: {size}");
        total += size;
    }
    assert_eq!(total, keys, "each key on exactly one node");
    // {tag} keys live together: the 30 keys tagged {7} share a node and slot.
    let tag_slot = keyslot(b"7");
    let owner = [5460, 10922, 16383]
        .iter()
        .position(|&end| tag_slot <= end)
        .unwrap();
    let together: i64 = cmd(
        &servers[owner],
        &["CLUSTER", "COUNTKEYSINSLOT", &tag_slot.to_string()],
    )
    .await;
    assert_eq!(together, 30);
    let shards: redis::Value = cmd(&servers[2], &["CLUSTER", "SHARDS"]).await;
    let redis::Value::Array(shards) = shards else {
        panic!()
    };
    assert_eq!(shards.len(), 3);
    let info: String = cmd(&servers[1], &["CLUSTER", "INFO"]).await;
    assert!(
        info.contains("cluster_known_nodes:3\r\ncluster_size:3\r\n"),
        "{info}"
    );
    let info: String = cmd(&servers[1], &["INFO", "cluster"]).await;
    assert!(info.contains("cluster_slots_served:5462\r\n"), "{info}");
    let info: String = cmd(&servers[0], &["INFO", "cluster"]).await;
    assert!(info.contains("cluster_moved_replies:1\r\n"), "{info}");

    // A restarted node has its id, its map and its states again.
    let restarted = servers.remove(1);
    let dir = restarted.shared.config.data_dir.clone();
    restarted.stop_saving().await.unwrap();
    let again = TestServer::restoring(
        Config {
            data_dir: dir,
            ..config(ClusterMode::Managed)
        },
        common::START_NS,
    )
    .await;
    let kept = (0..keys)
        .map(|i| format!("user:{{{}}}:{}", i % 50, i))
        .find(|k| (5461..=10922).contains(&keyslot(k.as_bytes())))
        .unwrap();
    let reply: Vec<i64> = cmd(&again, &["LIMIT.CHECK", &kept, "fixed_window", "3", "1h"]).await;
    assert_eq!(reply[..3], [1, 3, 1], "{kept}: its first check was kept");
    let id: String = cmd(&again, &["CLUSTER", "MYID"]).await;
    assert_eq!(id, nodes[1].0);
    let mine = key_in(5461, 10922);
    let ok: Vec<i64> = cmd(&again, &["LIMIT.CHECK", &mine, "gcra", "1", "1s"]).await;
    assert_eq!(ok[0], 1);
    let elsewhere = key_in(0, 5460);
    let mut c2 = common::connect(&again.client()).await;
    assert!(
        error(&mut c2, &["LIMIT.CHECK", &elsewhere, "gcra", "1", "1s"])
            .await
            .starts_with(&format!(
                "MOVED {} 127.0.0.1:{}",
                keyslot(elsewhere.as_bytes()),
                nodes[0].1
            ))
    );
    again.stop().await;
    for s in servers {
        s.stop().await;
    }
}

/// In managed mode policies come from the config file, and a snapshot
/// holds only the slots the node owns.
#[tokio::test]
async fn a_managed_node_keeps_policies_from_its_file_and_saves_its_own_slots() {
    let server = TestServer::manual_with(config(ClusterMode::Managed)).await;
    let mut c = common::connect(&server.client()).await;
    assert_eq!(
        error(&mut c, &["LIMIT.POLICY", "SET", "p", "gcra", "1", "1s"]).await,
        "ERR policies come from the config file in cluster_mode managed (the same file on every node, reloaded with SIGHUP)"
    );
    let id: String = cmd(&server, &["CLUSTER", "MYID"]).await;
    let port = server.addr.port();
    let other = "b".repeat(40);
    let all_mine = format!(
        r#"[{{"slot_ranges":[{{"start":0,"end":16383}}],"master":{{"id":"{id}","ip":"127.0.0.1","port":{port}}},"replicas":[]}},
            {{"slot_ranges":[],"master":{{"id":"{other}","ip":"127.0.0.1","port":1}},"replicas":[]}}]"#
    );
    let ok: String = cmd(&server, &["TOLLGATE.CLUSTER", "CONFIG", &all_mine]).await;
    assert_eq!(ok, "OK");
    for i in 0..200 {
        let _: Vec<i64> = cmd(
            &server,
            &["LIMIT.CHECK", &format!("k{i}"), "gcra", "1", "1h"],
        )
        .await;
    }
    let half = all_mine
        .replacen(r#""end":16383"#, r#""end":8191"#, 1)
        .replacen(
            r#""slot_ranges":[],"#,
            r#""slot_ranges":[{"start":8192,"end":16383}],"#,
            1,
        );
    let ok: String = cmd(&server, &["TOLLGATE.CLUSTER", "CONFIG", &half]).await;
    assert_eq!(ok, "OK");
    let ok: String = cmd(&server, &["SAVE"]).await;
    assert_eq!(ok, "OK");
    let saved = tollgate::snapshot::load(&server.shared.persistence.path)
        .unwrap()
        .unwrap();
    let kept: Vec<u16> = saved
        .entries
        .iter()
        .map(|(k, _)| keyslot(tollgate::store::decode_key(k).unwrap().1))
        .collect();
    let mine = (0..200)
        .filter(|i| keyslot(format!("k{i}").as_bytes()) < 8192)
        .count();
    assert_eq!(kept.len(), mine);
    assert!(kept.iter().all(|&s| s < 8192));
    server.stop().await;
}

/// The map of three nodes with `bounds`, node 0 moving `moving` to node 1.
fn map_with(nodes: &[(String, u16)], bounds: [&str; 3], moving: Option<(u16, u16)>) -> String {
    let shards: Vec<String> = nodes
        .iter()
        .zip(bounds)
        .enumerate()
        .map(|(i, ((id, port), ranges))| {
            let migrations = match moving {
                Some((start, end)) if i == 0 => format!(
                    r#"[{{"slot_ranges":[{{"start":{start},"end":{end}}}],"node_id":"{}","ip":"127.0.0.1","port":{}}}]"#,
                    nodes[1].0, nodes[1].1
                ),
                _ => "[]".into(),
            };
            format!(
                r#"{{"slot_ranges":[{ranges}],"master":{{"id":"{id}","ip":"127.0.0.1","port":{port}}},"replicas":[],"migrations":{migrations}}}"#
            )
        })
        .collect();
    format!("[{}]", shards.join(","))
}

/// Slots 0-1000 move from node 0 to node 1 with their states while a client
/// keeps checking keys in them: every key admits exactly its limit in all,
/// before, during and after the move, and ends up on node 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_move_with_their_states_under_load_and_no_check_is_lost() {
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(TestServer::manual_with(config(ClusterMode::Managed)).await);
    }
    let mut nodes = Vec::new();
    for s in &servers {
        let id: String = cmd(s, &["CLUSTER", "MYID"]).await;
        nodes.push((id, s.addr.port()));
    }
    let range = |s: u16, e: u16| format!(r#"{{"start":{s},"end":{e}}}"#);
    let before = [range(0, 5460), range(5461, 10922), range(10923, 16383)];
    let before = [before[0].as_str(), before[1].as_str(), before[2].as_str()];
    for s in &servers {
        let ok: String = cmd(
            s,
            &[
                "TOLLGATE.CLUSTER",
                "CONFIG",
                &map_with(&nodes, before, None),
            ],
        )
        .await;
        assert_eq!(ok, "OK");
    }
    let moving: Vec<String> = (0u32..)
        .map(|i| format!("m:{i}"))
        .filter(|k| keyslot(k.as_bytes()) <= 1000)
        .take(40)
        .collect();
    let seed = vec![format!("redis://127.0.0.1:{}", nodes[0].1)];
    let client = redis::cluster::ClusterClient::new(seed).unwrap();
    let mut c = client.get_async_connection().await.unwrap();
    let check = |c: &mut redis::cluster_async::ClusterConnection, key: String| {
        let mut c = c.clone();
        async move {
            let reply: Vec<i64> = redis::cmd("LIMIT.CHECK")
                .arg(key)
                .arg("fixed_window")
                .arg(5)
                .arg("1h")
                .query_async(&mut c)
                .await
                .unwrap();
            reply[0] == 1
        }
    };
    // Two of each key's five taken before the move.
    for key in &moving {
        for _ in 0..2 {
            assert!(check(&mut c, key.clone()).await);
        }
    }
    // Open reservations on some of the keys: they move with them.
    let mut reserved = Vec::new();
    let budgets = (0u32..)
        .map(|i| format!("r:{i}"))
        .filter(|k| keyslot(k.as_bytes()) <= 1000);
    for key in budgets.take(5) {
        let reply: (i64, i64, i64, i64, i64, String) = redis::cmd("LIMIT.RESERVE")
            .arg(&key)
            .arg("token_bucket")
            .arg(100)
            .arg("1h")
            .arg("COST")
            .arg(60)
            .query_async(&mut c)
            .await
            .unwrap();
        reserved.push((key.clone(), reply.5));
    }
    // The load: every key checked again and again, admissions counted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, keys, mut c) = (stop.clone(), moving.clone(), c.clone());
        tokio::spawn(async move {
            let mut admitted = std::collections::HashMap::<String, u32>::new();
            let mut rounds = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || rounds < 8 {
                for key in &keys {
                    if check(&mut c, key.clone()).await {
                        *admitted.entry(key.clone()).or_default() += 1;
                    }
                }
                rounds += 1;
            }
            admitted
        })
    };
    // The move: the map with the migration to every node (targets first).
    let moving_map = map_with(&nodes, before, Some((0, 1000)));
    for s in [&servers[1], &servers[2], &servers[0]] {
        let ok: String = cmd(s, &["TOLLGATE.CLUSTER", "CONFIG", &moving_map]).await;
        assert_eq!(ok, "OK");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status: Vec<String> = cmd(&servers[0], &["TOLLGATE.CLUSTER", "MIGRATION-STATUS"]).await;
        assert_eq!(status.len(), 1);
        if status[0].contains("FINISHED") {
            assert!(
                status[0].starts_with(&format!("out {} 0-1000 FINISHED ", nodes[1].0)),
                "{}",
                status[0]
            );
            break;
        }
        assert!(!status[0].contains("FAILED"), "{}", status[0]);
        assert!(std::time::Instant::now() < deadline, "{}", status[0]);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let incoming: Vec<String> = cmd(&servers[1], &["TOLLGATE.CLUSTER", "MIGRATION-STATUS"]).await;
    assert!(
        incoming[0].starts_with(&format!("in {} 0-1000 FINISHED ", nodes[0].0)),
        "{incoming:?}"
    );
    // The final map: node 1 owns the slots.
    let after = [
        range(1001, 5460),
        format!("{},{}", range(0, 1000), range(5461, 10922)),
        range(10923, 16383),
    ];
    let after = [after[0].as_str(), after[1].as_str(), after[2].as_str()];
    for s in &servers {
        let ok: String = cmd(
            s,
            &["TOLLGATE.CLUSTER", "CONFIG", &map_with(&nodes, after, None)],
        )
        .await;
        assert_eq!(ok, "OK");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let admitted = load.await.unwrap();
    for key in &moving {
        assert_eq!(
            admitted.get(key).copied().unwrap_or(0),
            3,
            "{key}: 2 before + 3 under load, never more"
        );
        assert!(!check(&mut c, key.clone()).await, "{key} stays spent");
    }
    for (key, id) in &reserved {
        let settled: Vec<i64> = redis::cmd("LIMIT.SETTLE")
            .arg(key)
            .arg(id)
            .arg(10)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(settled[..3], [1, 100, 90], "{key}: settled on its new node");
    }
    let served = |info: String| {
        info.lines()
            .find_map(|l| l.strip_prefix("cluster_slots_served:"))
            .map(|v| v.trim().to_string())
    };
    let source_info: String = cmd(&servers[0], &["INFO", "cluster"]).await;
    assert_eq!(served(source_info).as_deref(), Some("4460"));
    let on_source: i64 = cmd(
        &servers[0],
        &[
            "CLUSTER",
            "COUNTKEYSINSLOT",
            &keyslot(moving[0].as_bytes()).to_string(),
        ],
    )
    .await;
    assert_eq!(on_source, 0, "the source dropped its copies");
    let on_target: i64 = cmd(
        &servers[1],
        &[
            "CLUSTER",
            "COUNTKEYSINSLOT",
            &keyslot(moving[0].as_bytes()).to_string(),
        ],
    )
    .await;
    assert!(on_target >= 1);
    for s in servers {
        s.stop().await;
    }
}

/// A move the target does not know of: the source keeps serving while it
/// waits; a handed-over slot is refused with TRYAGAIN; IMPORTs that do not
/// fit the target's map are refused and change nothing.
#[tokio::test]
async fn a_move_the_target_does_not_know_is_refused_and_changes_nothing() {
    let source = TestServer::manual_with(config(ClusterMode::Managed)).await;
    let target = TestServer::manual_with(config(ClusterMode::Managed)).await;
    let mut nodes = Vec::new();
    for s in [&source, &target] {
        let id: String = cmd(s, &["CLUSTER", "MYID"]).await;
        nodes.push((id, s.addr.port()));
    }
    nodes.push(("c".repeat(40), 1));
    let range = |s: u16, e: u16| format!(r#"{{"start":{s},"end":{e}}}"#);
    let (a, b, c) = (range(0, 5460), range(5461, 10922), range(10923, 16383));
    let bounds = [a.as_str(), b.as_str(), c.as_str()];
    let plain = map_with(&nodes, bounds, None);
    let ok: String = cmd(&target, &["TOLLGATE.CLUSTER", "CONFIG", &plain]).await;
    assert_eq!(ok, "OK");
    let ok: String = cmd(
        &source,
        &[
            "TOLLGATE.CLUSTER",
            "CONFIG",
            &map_with(&nodes, bounds, Some((0, 100))),
        ],
    )
    .await;
    assert_eq!(ok, "OK");
    // The target's map has no such move: the source waits, serving.
    let key = (0u32..)
        .map(|i| format!("k{i}"))
        .find(|k| keyslot(k.as_bytes()) <= 100)
        .unwrap();
    let served: Vec<i64> = cmd(&source, &["LIMIT.CHECK", &key, "gcra", "1", "1h"]).await;
    assert_eq!(served[0], 1);
    let status: Vec<String> = cmd(&source, &["TOLLGATE.CLUSTER", "MIGRATION-STATUS"]).await;
    assert_eq!(
        status,
        [format!("out {} 0-100 WAITING 0 states", nodes[1].0)]
    );
    let mut t = common::connect(&target.client()).await;
    assert_eq!(
        error(
            &mut t,
            &["TOLLGATE.CLUSTER", "IMPORT", &nodes[0].0, "BEGIN"]
        )
        .await,
        format!(
            "ERR no migration from {} into this node in its map",
            nodes[0].0
        )
    );
    // While the slots are handed over, checks on them are refused.
    source.shared.cluster.set_stage(
        tollgate::cluster::Side::Out,
        &nodes[1].0,
        tollgate::cluster::Stage::Finishing,
        0,
    );
    let mut s = common::connect(&source.client()).await;
    assert_eq!(
        error(&mut s, &["LIMIT.CHECK", &key, "gcra", "1", "1h"]).await,
        "TRYAGAIN Slot is being moved, try again"
    );
    // With a move from a third node in its map, the target still takes
    // only the moving slots' states, all or none. (The source's own move
    // stays unknown to the target, so its thread never gets in the way.)
    let third = [nodes[2].clone(), nodes[1].clone(), nodes[0].clone()];
    let ok: String = cmd(
        &target,
        &[
            "TOLLGATE.CLUSTER",
            "CONFIG",
            &map_with(&third, bounds, Some((0, 100))),
        ],
    )
    .await;
    assert_eq!(ok, "OK");
    assert_eq!(
        error(
            &mut t,
            &["TOLLGATE.CLUSTER", "IMPORT", &nodes[2].0, "PART", "x"]
        )
        .await,
        "ERR IMPORT PART before BEGIN"
    );
    let outside = tollgate::store::Store::new();
    let p =
        tollgate::limiter::Params::new(tollgate::limiter::Algorithm::Gcra, 1, 3_600_000_000_000);
    let far = (0u32..)
        .map(|i| format!("f{i}"))
        .find(|k| keyslot(k.as_bytes()) > 100)
        .unwrap();
    outside
        .check(
            far.as_bytes(),
            &p,
            common::START_NS,
            tollgate::limiter::Request::take(1),
        )
        .unwrap();
    let bytes = tollgate::snapshot::encode(&outside, &[], common::START_NS);
    let import = |step: &[u8]| {
        let mut words: Vec<&[u8]> =
            vec![b"TOLLGATE.CLUSTER", b"IMPORT", nodes[2].0.as_bytes(), step];
        if step == b"PART" {
            words.push(&bytes);
        }
        common::request(&words)
    };
    let said = raw(
        target.addr,
        &[import(b"BEGIN"), import(b"PART"), import(b"END")].concat(),
    )
    .await;
    assert_eq!(
        String::from_utf8(said).unwrap(),
        "+OK\r\n+OK\r\n-ERR IMPORT holds a state outside the migration's slots\r\n"
    );
    let size: usize = cmd(&target, &["DBSIZE"]).await;
    assert_eq!(size, 0, "nothing taken");

    // A copy taken while the source serves (SYNC), then a key checked
    // meanwhile and reset on the source: END forgets it before the last
    // states, so the target holds only what the source holds.
    let moving = tollgate::store::Store::new();
    let keys: Vec<String> = (0u32..)
        .map(|i| format!("m{i}"))
        .filter(|k| keyslot(k.as_bytes()) <= 100)
        .take(3)
        .collect();
    for k in &keys {
        moving
            .check(
                k.as_bytes(),
                &p,
                common::START_NS,
                tollgate::limiter::Request::take(1),
            )
            .unwrap();
    }
    let copy = tollgate::snapshot::encode(&moving, &[], common::START_NS);
    moving.reset(
        tollgate::store::Scope::Inline,
        keys[0].as_bytes(),
        common::START_NS,
    );
    let last = tollgate::snapshot::encode(&tollgate::store::Store::new(), &[], common::START_NS);
    let mut forget = (keys[0].len() as u32).to_le_bytes().to_vec();
    forget.extend_from_slice(keys[0].as_bytes());
    let source_id = nodes[2].0.as_bytes();
    let step = |words: &[&[u8]]| {
        let mut all: Vec<&[u8]> = vec![b"TOLLGATE.CLUSTER", b"IMPORT", source_id];
        all.extend_from_slice(words);
        common::request(&all)
    };
    let said = raw(
        target.addr,
        &[
            step(&[b"BEGIN"]),
            step(&[b"PART", &copy]),
            step(&[b"SYNC"]),
            step(&[b"BEGIN"]),
            step(&[b"PART", &last]),
            step(&[b"FORGET", &forget]),
            step(&[b"END"]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(
        String::from_utf8(said).unwrap(),
        "+OK\r\n+OK\r\n:3\r\n+OK\r\n+OK\r\n+OK\r\n:0\r\n"
    );
    let size: usize = cmd(&target, &["DBSIZE"]).await;
    assert_eq!(size, 2, "the reset key forgotten, the other two taken");
    let status: Vec<String> = cmd(&target, &["TOLLGATE.CLUSTER", "MIGRATION-STATUS"]).await;
    assert_eq!(
        status,
        [format!("in {} 0-100 FINISHED 0 states", nodes[2].0)]
    );
    // The target serves the moved slots now: the forgotten key is fresh.
    let fresh: Vec<i64> = cmd(&target, &["LIMIT.CHECK", &keys[0], "gcra", "1", "1h"]).await;
    assert_eq!(fresh[0], 1);
    let spent: Vec<i64> = cmd(&target, &["LIMIT.CHECK", &keys[1], "gcra", "1", "1h"]).await;
    assert_eq!(spent[0], 0, "its state came with the copy");
    // A FORGET list cut short, and an unknown step, are syntax errors.
    let said = raw(
        target.addr,
        &[
            step(&[b"BEGIN"]),
            step(&[b"FORGET", b"\x05\x00\x00\x00ab"]),
            step(&[b"MAYBE"]),
        ]
        .concat(),
    )
    .await;
    assert_eq!(
        String::from_utf8(said).unwrap(),
        "+OK\r\n-ERR syntax error\r\n-ERR syntax error\r\n"
    );
    source.stop().await;
    target.stop().await;
}
