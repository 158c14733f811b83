use super::*;

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

#[test]
fn keys_hash_to_slots_as_redis_cluster_does() {
    // Redis's own examples (cluster spec, CLUSTER KEYSLOT docs).
    assert_eq!(keyslot(b"123456789"), 12739);
    assert_eq!(keyslot(b"somekey"), 11058);
    assert_eq!(keyslot(b"foo{hash_tag}"), 2515);
    assert_eq!(keyslot(b"{user1000}.following"), keyslot(b"user1000"));
    assert_ne!(
        keyslot(b"foo{}{bar}"),
        keyslot(b"bar"),
        "an empty tag hashes the whole key"
    );
    assert_eq!(keyslot(b"foo{{bar}}zap"), keyslot(b"{bar"));
    assert_eq!(keyslot(b"foo{bar}{zap}"), keyslot(b"bar"));
    assert_eq!(keyslot(b""), 0);
}

fn two_shards(split: u16) -> String {
    format!(
        r#"[{{"slot_ranges":[{{"start":0,"end":{}}}],"master":{{"id":"{A}","ip":"10.0.0.1","port":7001}},"replicas":[],"migrations":[]}},
            {{"slot_ranges":[{{"start":{split},"end":16383}}],"master":{{"id":"{B}","ip":"10.0.0.2","port":7002}}}}]"#,
        split - 1
    )
}

#[test]
fn a_map_is_checked_whole() {
    let map = SlotMap::parse(&two_shards(8192), A).unwrap();
    assert_eq!(map.owner(0), Owner::Me);
    assert_eq!(map.owner(8191), Owner::Me);
    assert!(matches!(map.owner(8192), Owner::Other(n) if n.id == B && n.port == 7002));
    assert_eq!(map.ranges(), vec![(0, 8191, 0), (8192, 16383, 1)]);
    let bad = |json: &str, my: &str| SlotMap::parse(json, my).unwrap_err();
    assert!(bad("[", A).contains("EOF"), "{}", bad("[", A));
    assert_eq!(
        bad(&two_shards(8192), "c".repeat(40).as_str()),
        format!("this node ({}) is not in the map", "c".repeat(40))
    );
    let gap = two_shards(8192).replace(r#""start":8192"#, r#""start":8193"#);
    assert_eq!(bad(&gap, A), "slot 8192 is in no range");
    let overlap = two_shards(8192).replace(r#""start":8192"#, r#""start":8000"#);
    assert_eq!(bad(&overlap, A), "slot 8000 is in two ranges");
    let beyond = two_shards(8192).replace("16383", "16384");
    assert_eq!(
        bad(&beyond, A),
        "slot range 8192-16384 is not within 0-16383 in order"
    );
    let twice = two_shards(8192).replace(B, A);
    assert_eq!(bad(&twice, A), format!("node id {A} appears twice"));
    let short = two_shards(8192).replace(B, "abc");
    assert_eq!(bad(&short, A), "node id 'abc' is not 40 hex digits");
    let migration = |ranges: &str, to: &str| {
        two_shards(8192).replace(
            r#""migrations":[]"#,
            &format!(r#""migrations":[{{"slot_ranges":[{ranges}],"node_id":"{to}","ip":"10.0.0.2","port":7002}}]"#),
        )
    };
    let moving = SlotMap::parse(&migration(r#"{"start":0,"end":99}"#, B), A).unwrap();
    assert_eq!(moving.outgoing().len(), 1);
    assert!(moving.outgoing()[0].covers(99) && !moving.outgoing()[0].covers(100));
    let theirs = SlotMap::parse(&migration(r#"{"start":0,"end":99}"#, B), B).unwrap();
    assert_eq!(theirs.incoming(B).count(), 1);
    assert_eq!(theirs.outgoing().len(), 0);
    assert_eq!(
        bad(&migration(r#"{"start":8000,"end":8200}"#, B), A),
        "migration of slots 8000-8200 from a shard that does not own them"
    );
    assert_eq!(
        bad(&migration(r#"{"start":0,"end":9}"#, A), A),
        format!("migration target {A} is not another shard's master")
    );
    let typo = two_shards(8192).replace("replicas", "replica");
    assert!(bad(&typo, A).contains("unknown field `replica`"));
}

#[test]
fn the_id_and_the_map_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("tollgate-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = Cluster::open(ClusterMode::Managed, &dir).unwrap();
    assert!(map::valid_id(first.id()));
    assert_eq!(routed(&first, b"k"), Err(Redirect::Down));
    let json = two_shards(8192).replace(A, first.id());
    first.configure(&json).unwrap();
    let mine = (0u32..)
        .map(|i| format!("k{i}"))
        .find(|k| keyslot(k.as_bytes()) < 8192)
        .unwrap();
    let theirs = (0u32..)
        .map(|i| format!("k{i}"))
        .find(|k| keyslot(k.as_bytes()) >= 8192)
        .unwrap();
    assert_eq!(routed(&first, mine.as_bytes()), Ok(false));
    let slot = keyslot(theirs.as_bytes());
    assert_eq!(
        routed(&first, theirs.as_bytes()),
        Err(Redirect::Moved(format!("{slot} 10.0.0.2:7002")))
    );
    // A bad map changes nothing.
    assert!(first.configure("[]").is_err());
    assert_eq!(routed(&first, mine.as_bytes()), Ok(false));
    let again = Cluster::open(ClusterMode::Managed, &dir).unwrap();
    assert_eq!(again.id(), first.id());
    assert_eq!(
        routed(&again, theirs.as_bytes()),
        routed(&first, theirs.as_bytes())
    );
    // Off reads nothing and has no id.
    assert_eq!(Cluster::open(ClusterMode::Off, &dir).unwrap().id(), "");
    std::fs::write(dir.join(FILE_NAME), "{").unwrap();
    let e = Cluster::open(ClusterMode::Managed, &dir).unwrap_err();
    assert!(e.contains("nodes.json"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Where `cluster` routes `key`, and whether a check there would be counted.
fn routed(cluster: &Cluster, key: &[u8]) -> Result<bool, Redirect> {
    cluster.route(key).map(|running| running.is_some())
}

/// A key checked on a moving slot before the copy starts is noted too: its
/// change may land after the copy passed it, so it is sent again.
#[test]
fn keys_checked_on_moving_slots_are_noted_from_the_map_on() {
    let dir = std::env::temp_dir().join(format!("tollgate-noted-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let source = Cluster::open(ClusterMode::Managed, &dir).unwrap();
    let json = two_shards(8192).replace(A, source.id()).replace(
        r#""migrations":[]"#,
        &format!(r#""migrations":[{{"slot_ranges":[{{"start":0,"end":99}}],"node_id":"{B}","ip":"10.0.0.2","port":7002}}]"#),
    );
    let moves = source.configure(&json).unwrap();
    assert_eq!(moves.len(), 1);
    let moving = (0u32..)
        .map(|i| format!("k{i}"))
        .find(|k| keyslot(k.as_bytes()) < 100)
        .unwrap();
    let staying = (0u32..)
        .map(|i| format!("k{i}"))
        .find(|k| (100..8192).contains(&keyslot(k.as_bytes())))
        .unwrap();
    assert_eq!(
        routed(&source, moving.as_bytes()),
        Ok(true),
        "counted while waiting"
    );
    assert_eq!(routed(&source, staying.as_bytes()), Ok(false));
    assert_eq!(source.take_changed(), vec![moving.clone().into_bytes()]);
    source.set_stage(Side::Out, B, Stage::Finished, 0);
    assert_eq!(
        routed(&source, moving.as_bytes()),
        Err(Redirect::Moved(format!(
            "{} 10.0.0.2:7002",
            keyslot(moving.as_bytes())
        )))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
