//! The rate limit service in managed cluster mode: Envoy calls one node,
//! and the descriptors of slots served elsewhere are decided by their node.

mod common;

use common::TestServer;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::RateLimitRequest;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use tollgate::cluster::{ClusterMode, keyslot};
use tollgate::config::Config;

const TOML: &str = r#"
grpc_addr = "127.0.0.1:0"
[[domain]]
domain = "d"
descriptors = [
  { key = "user", rate_limit = { algorithm = "gcra", limit = 1, window = "1h" } },
  { key = "org", rate_limit = { algorithm = "token_bucket", limit = 5, window = "1h" } },
]
"#;

/// A value whose descriptor key (`d|<key>=<value>`) is in `start..=end`.
fn value_in(key: &str, start: u16, end: u16) -> String {
    (0u32..)
        .map(|i| format!("v{i}"))
        .find(|v| (start..=end).contains(&keyslot(format!("d|{key}={v}").as_bytes())))
        .unwrap()
}

fn descriptor(key: &str, value: &str) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: vec![Entry {
            key: key.into(),
            value: value.into(),
        }],
        ..Default::default()
    }
}

async fn cmd(server: &TestServer, words: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut c = common::connect(&server.client()).await;
    common::run(&mut c, words).await
}

#[tokio::test]
async fn descriptors_of_other_slots_are_decided_by_their_node() {
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let mut config = Config::from_toml(TOML).unwrap();
        config.cluster_mode = ClusterMode::Managed;
        nodes.push(TestServer::manual_with(config).await);
    }
    let mut ids = Vec::new();
    for n in &nodes {
        let id: String =
            redis::from_redis_value(cmd(n, &["TOLLGATE.CLUSTER", "MYID"]).await.unwrap()).unwrap();
        ids.push((id, n.addr.port()));
    }
    let map = format!(
        r#"[{{"slot_ranges":[{{"start":0,"end":8191}}],"master":{{"id":"{}","ip":"127.0.0.1","port":{}}},"replicas":[],"migrations":[]}},{{"slot_ranges":[{{"start":8192,"end":16383}}],"master":{{"id":"{}","ip":"127.0.0.1","port":{}}},"replicas":[],"migrations":[]}}]"#,
        ids[0].0, ids[0].1, ids[1].0, ids[1].1
    );
    common::until("gRPC listens", || nodes[0].shared.rls.addr().is_some()).await;
    let url = format!("http://{}", nodes[0].shared.rls.addr().unwrap());
    let mut client = RateLimitServiceClient::connect(url).await.unwrap();
    let here = value_in("user", 0, 8191);
    let there = value_in("user", 8192, 16383);
    let org_there = value_in("org", 8192, 16383);
    let call = |descriptors: Vec<RateLimitDescriptor>| RateLimitRequest {
        domain: "d".into(),
        descriptors,
        hits_addend: 0,
    };
    // Before a map no slot is served: UNAVAILABLE, in the node's words.
    let e = client
        .should_rate_limit(call(vec![descriptor("user", &here)]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert_eq!(e.message(), "CLUSTERDOWN Hash slot not served");
    for n in &nodes {
        cmd(n, &["TOLLGATE.CLUSTER", "CONFIG", &map]).await.unwrap();
    }

    // A descriptor of the other node's slot: decided there, stored there.
    let r = client
        .should_rate_limit(call(vec![descriptor("user", &there)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, 1);
    let r = client
        .should_rate_limit(call(vec![descriptor("user", &there)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.overall_code, 2, "the second call over the limit of 1");
    let key = format!("d|user={there}");
    let info = cmd(&nodes[1], &["LIMIT.INFO", &key]).await.unwrap();
    assert!(format!("{info:?}").contains("gcra"), "{info:?}");
    let moved = cmd(&nodes[0], &["LIMIT.INFO", &key]).await.unwrap_err();
    assert!(
        common::error_line(&moved).starts_with("MOVED"),
        "not stored on the first node"
    );

    // Across nodes, all or nothing: `here` is spent, so `org` (on the other
    // node) takes nothing: the dry run of every node said no first.
    let both = || {
        call(vec![
            descriptor("user", &here),
            descriptor("org", &org_there),
        ])
    };
    let r = client.should_rate_limit(both()).await.unwrap().into_inner();
    assert_eq!((r.overall_code, r.statuses[1].limit_remaining), (1, 4));
    let r = client.should_rate_limit(both()).await.unwrap().into_inner();
    assert_eq!(r.overall_code, 2);
    assert_eq!(
        (r.statuses[0].code, r.statuses[1].code),
        (2, 1),
        "in the request's order"
    );
    let org_key = format!("d|org={org_there}");
    let checked: Vec<i64> = redis::from_redis_value(
        cmd(
            &nodes[1],
            &[
                "LIMIT.CHECK",
                &org_key,
                "token_bucket",
                "5",
                "1h",
                "DRYRUN",
                "COST",
                "0",
            ],
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(checked[2], 4, "the denied call took nothing from org");

    // The command between nodes refuses what is not a request.
    let e = cmd(&nodes[1], &["TOLLGATE.CLUSTER", "RLS", "\u{1}not protobuf"])
        .await
        .unwrap_err();
    assert!(
        common::error_line(&e).starts_with("ERR invalid rate limit request: "),
        "{e}"
    );
    let e = cmd(&nodes[1], &["TOLLGATE.CLUSTER", "RLS", "", "NOW"])
        .await
        .unwrap_err();
    assert_eq!(common::error_line(&e), "ERR syntax error");
    // An empty request holds no descriptor: the node's own error.
    let e = cmd(&nodes[1], &["TOLLGATE.CLUSTER", "RLS", "", "DRYRUN"])
        .await
        .unwrap_err();
    assert_eq!(common::error_line(&e), "ERR the domain must not be empty");
    for n in nodes {
        n.stop().await;
    }
}
