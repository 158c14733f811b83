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

    // A restarted node has its id and map again.
    let restarted = servers.remove(1);
    let dir = restarted.shared.config.data_dir.clone();
    restarted.stop().await;
    let again = TestServer::manual_with(Config {
        data_dir: dir,
        ..config(ClusterMode::Managed)
    })
    .await;
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
