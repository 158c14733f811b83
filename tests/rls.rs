//! The Envoy rate limit service over gRPC, driven by a tonic client: every
//! algorithm, the same keys seen over RESP, health, reflection, errors,
//! metrics and reload.

mod common;

use common::TestServer;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use tollgate::config::Config;
use tonic::transport::Channel;

const OK: i32 = 1;
const OVER: i32 = 2;

/// A domain per algorithm leaf, a wildcard, a nested pair, from TOML.
const TOML: &str = r#"
grpc_addr = "127.0.0.1:0"
rls_headers = "draft"

[[domain]]
domain = "d"
descriptors = [
  { key = "token_bucket", rate_limit = { algorithm = "token_bucket", limit = 3, window = "1m" } },
  { key = "leaky_bucket", rate_limit = { algorithm = "leaky_bucket", limit = 3, window = "1m" } },
  { key = "fixed_window", rate_limit = { unit = "minute", requests_per_unit = 3 } },
  { key = "sliding_log", rate_limit = { algorithm = "sliding_log", limit = 3, window = "1m" } },
  { key = "sliding_window", rate_limit = { algorithm = "sliding_window", limit = 3, window = "1m" } },
  { key = "gcra", rate_limit = { algorithm = "gcra", limit = 3, window = "1m" } },
  { key = "path", value = "/api/*", rate_limit = { algorithm = "token_bucket", limit = 10, window = "1h" } },
  { key = "canary", shadow_mode = true, rate_limit = { unit = "hour", requests_per_unit = 1 } },
  { key = "tenant", descriptors = [
      { key = "path", value = "/login", rate_limit = { unit = "second", requests_per_unit = 1 } },
  ] },
]
"#;

async fn server(toml: &str) -> (TestServer, RateLimitServiceClient<Channel>) {
    let config = Config::from_toml(toml).expect("the test's config");
    let server = TestServer::manual_with(config).await;
    common::until("the gRPC server listens", || {
        server.shared.rls.addr().is_some()
    })
    .await;
    let addr = server.shared.rls.addr().unwrap();
    let client = RateLimitServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("a gRPC connection");
    (server, client)
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
        ..Default::default()
    }
}

async fn call(
    client: &mut RateLimitServiceClient<Channel>,
    domain: &str,
    descriptors: &[&[(&str, &str)]],
) -> Result<RateLimitResponse, tonic::Status> {
    let request = RateLimitRequest {
        domain: domain.into(),
        descriptors: descriptors.iter().map(|d| descriptor(d)).collect(),
        hits_addend: 0,
    };
    client
        .should_rate_limit(request)
        .await
        .map(tonic::Response::into_inner)
}

/// The overall code of a call that must succeed.
async fn code(
    client: &mut RateLimitServiceClient<Channel>,
    domain: &str,
    descriptors: &[&[(&str, &str)]],
) -> i32 {
    call(client, domain, descriptors)
        .await
        .unwrap()
        .overall_code
}

#[tokio::test]
async fn every_algorithm_over_grpc_and_the_same_keys_over_resp() {
    let (server, mut client) = server(TOML).await;
    let mut conn = server.conn().await;
    for algorithm in [
        "token_bucket",
        "leaky_bucket",
        "fixed_window",
        "sliding_log",
        "sliding_window",
        "gcra",
    ] {
        let mut got = Vec::new();
        for _ in 0..4 {
            let r = call(&mut client, "d", &[&[(algorithm, "v")]])
                .await
                .unwrap();
            got.push((r.overall_code, r.statuses[0].limit_remaining));
        }
        assert_eq!(got, [(OK, 2), (OK, 1), (OK, 0), (OVER, 0)], "{algorithm}");
        // The descriptor's state is the key `d|<algorithm>=v` over RESP.
        let key = format!("d|{algorithm}=v");
        let info: redis::Value = redis::cmd("LIMIT.INFO")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let text = format!("{info:?}");
        assert!(text.contains(algorithm), "{algorithm}: {text}");
        let reset: i64 = redis::cmd("LIMIT.RESET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(reset, 1, "{algorithm}");
        let r = call(&mut client, "d", &[&[(algorithm, "v")]])
            .await
            .unwrap();
        assert_eq!(
            r.statuses[0].limit_remaining, 2,
            "{algorithm}: reset over RESP"
        );
        // Checks over RESP take from the same state (a leaky bucket's
        // reply over RESP waits for its turn, which this clock never brings).
        if algorithm == "leaky_bucket" {
            continue;
        }
        let other = format!("d|{algorithm}=w");
        for _ in 0..3 {
            common::check(&mut conn, &format!("LIMIT.CHECK {other} {algorithm} 3 1m")).await;
        }
        let r = call(&mut client, "d", &[&[(algorithm, "w")]])
            .await
            .unwrap();
        assert_eq!(r.overall_code, OVER, "{algorithm}: spent over RESP");
    }
    server.stop().await;
}

#[tokio::test]
async fn nested_descriptors_all_or_nothing_and_headers_over_the_wire() {
    let (server, mut client) = server(TOML).await;
    let login: &[(&str, &str)] = &[("tenant", "acme"), ("path", "/login")];
    let r = call(&mut client, "d", &[login, &[("gcra", "x")]])
        .await
        .unwrap();
    assert_eq!(r.overall_code, OK);
    let headers: Vec<(String, String)> = r
        .response_headers_to_add
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    let want = [
        ("RateLimit-Limit", "1"),
        ("RateLimit-Remaining", "0"),
        ("RateLimit-Reset", "1"),
    ];
    assert_eq!(headers, want.map(|(k, v)| (k.to_string(), v.to_string())));
    // The login is spent: the gcra descriptor takes nothing.
    let r = call(&mut client, "d", &[login, &[("gcra", "x")]])
        .await
        .unwrap();
    assert_eq!(r.overall_code, OVER);
    assert_eq!((r.statuses[0].code, r.statuses[1].code), (OVER, OK));
    let r = call(&mut client, "d", &[&[("gcra", "x")]]).await.unwrap();
    assert_eq!(r.statuses[0].limit_remaining, 1, "3 - 1 - this call");
    // Another tenant is another key; a path with no leaf is not limited.
    let r = call(
        &mut client,
        "d",
        &[&[("tenant", "other"), ("path", "/login")]],
    )
    .await
    .unwrap();
    assert_eq!(r.overall_code, OK);
    let r = call(&mut client, "d", &[&[("tenant", "acme"), ("path", "/")]])
        .await
        .unwrap();
    assert!(r.statuses[0].current_limit.is_none());
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_are_invalid_argument_and_unknown_domains_ok() {
    let (server, mut client) = server(TOML).await;
    let e = call(&mut client, "", &[&[("gcra", "x")]])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.message(), "the domain must not be empty");
    let e = call(&mut client, "d", &[]).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    // The command between nodes is for managed cluster mode only.
    let mut conn = server.conn().await;
    let refused = common::error(&mut conn, &["TOLLGATE.CLUSTER", "RLS", ""]).await;
    assert_eq!(refused, "ERR cluster_mode is not managed");
    let r = call(&mut client, "nobody", &[&[("gcra", "x")]])
        .await
        .unwrap();
    assert_eq!(r.overall_code, OK);
    assert!(r.statuses[0].current_limit.is_none());
    // The metrics count each, unknown domains under one label.
    let text = tollgate::metrics::endpoint::render(&server.shared);
    for line in [
        "tollgate_rls_requests_total{domain=\"(unknown)\",code=\"invalid_argument\"} 1",
        "tollgate_rls_requests_total{domain=\"d\",code=\"invalid_argument\"} 1",
        "tollgate_rls_requests_total{domain=\"(unknown)\",code=\"ok\"} 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    call(&mut client, "d", &[&[("fixed_window", "m")]])
        .await
        .unwrap();
    let text = tollgate::metrics::endpoint::render(&server.shared);
    assert!(text.contains("tollgate_rls_requests_total{domain=\"d\",code=\"ok\"} 1"));
    let mut conn = server.conn().await;
    let info = common::info(&mut conn, "rls").await;
    let addr = server.shared.rls.addr().unwrap();
    for line in [
        "rls_enabled:1".to_string(),
        format!("rls_addr:{addr}"),
        "rls_domains:1".into(),
        "rls_consume:all_or_nothing".into(),
        "rls_headers:draft".into(),
        "rls_calls:4".into(),
        "rls_over_limit:0".into(),
    ] {
        assert!(
            info.contains(&format!("{line}\r\n")),
            "{line} not in {info}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_server_shutting_down_answers_unavailable() {
    let (server, _client) = server(TOML).await;
    let service = tollgate::rls::service::Service::new(server.shared.clone());
    let request = RateLimitRequest {
        domain: "d".into(),
        descriptors: vec![descriptor(&[("gcra", "x")])],
        hits_addend: 0,
    };
    assert!(service.answer(request.clone()).await.is_ok());
    server.shared.begin_shutdown();
    let e = service.answer(request).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unavailable);
    server.handle.await.unwrap().unwrap();
}

#[tokio::test]
async fn health_and_reflection_answer_without_protos() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (server, _client) = server(TOML).await;
    let url = format!("http://{}", server.shared.rls.addr().unwrap());
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "envoy.service.ratelimit.v3.RateLimitService"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, 1, "SERVING for '{service}'");
    }
    let mut reflection = ServerReflectionClient::new(channel);
    let ask = |m: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    };
    let requests = vec![
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "envoy.service.ratelimit.v3.RateLimitService".into(),
        )),
    ];
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("a service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"envoy.service.ratelimit.v3.RateLimitService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("the file descriptors")
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn envoyproxy_yaml_loads_and_reloads_with_the_config_file() {
    let dir = common::scratch_dir();
    let yaml = dir.join("ratelimit.yaml");
    std::fs::write(
        &yaml,
        "domain: mongo_cps\ndescriptors:\n  - key: database\n    value: users\n    rate_limit:\n      unit: second\n      requests_per_unit: 1\n",
    )
    .unwrap();
    let file = dir.join("tollgate.toml");
    let toml = format!(
        "grpc_addr = \"127.0.0.1:0\"\nrls_config = [\"{}\"]\n",
        yaml.display()
    );
    std::fs::write(&file, &toml).unwrap();
    let config = Config::from_file(&file).unwrap();
    let server = TestServer::manual_with(config).await;
    common::until("the gRPC server listens", || {
        server.shared.rls.addr().is_some()
    })
    .await;
    let url = format!("http://{}", server.shared.rls.addr().unwrap());
    let mut client = RateLimitServiceClient::connect(url).await.unwrap();
    let users: &[(&str, &str)] = &[("database", "users")];
    assert_eq!(code(&mut client, "mongo_cps", &[users]).await, OK);
    assert_eq!(code(&mut client, "mongo_cps", &[users]).await, OVER);
    // A bad file keeps the old domains; a good one replaces them.
    std::fs::write(&yaml, "domain: mongo_cps\ndescriptors: [{key: database, rate_limit: {unit: fortnight, requests_per_unit: 1}}]\n").unwrap();
    let e = tollgate::server::reload_config(&server.shared).unwrap_err();
    assert!(e.contains("unknown unit 'fortnight'"), "{e}");
    assert_eq!(code(&mut client, "mongo_cps", &[users]).await, OVER);
    std::fs::write(&yaml, "domain: other\n").unwrap();
    let r = tollgate::server::reload_config(&server.shared).unwrap();
    assert_eq!(r.domains, 1);
    let r = call(&mut client, "mongo_cps", &[users]).await.unwrap();
    assert!(r.statuses[0].current_limit.is_none(), "mongo_cps is gone");
    server.stop().await;
}

#[tokio::test]
async fn costs_refunds_prefixes_and_shadow_mode_over_the_wire() {
    use envoy_types::pb::google::protobuf::UInt64Value;
    let (server, mut client) = server(TOML).await;
    let api: &[(&str, &str)] = &[("path", "/api/users")];
    let mut request = RateLimitRequest {
        domain: "d".into(),
        descriptors: vec![descriptor(api)],
        hits_addend: 4,
    };
    let r = client
        .should_rate_limit(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        r.statuses[0].limit_remaining, 6,
        "a prefix leaf, 4 units taken"
    );
    // A descriptor's own hits_addend replaces the request's; 0 only looks.
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 0 });
    let r = client
        .should_rate_limit(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statuses[0].limit_remaining, 6);
    // A refund gives 3 back, and never more than was taken.
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 3 });
    request.descriptors[0].is_negative_hits = true;
    let r = client
        .should_rate_limit(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statuses[0].limit_remaining, 9);
    request.descriptors[0].hits_addend = Some(UInt64Value { value: 300 });
    let r = client
        .should_rate_limit(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.statuses[0].limit_remaining, 10);
    // Shadow mode: over its limit of 1, still OK, and counted.
    for _ in 0..3 {
        let r = call(&mut client, "d", &[&[("canary", "c")]]).await.unwrap();
        assert_eq!((r.overall_code, r.statuses[0].code), (OK, OK));
    }
    let text = tollgate::metrics::endpoint::render(&server.shared);
    assert!(
        text.contains("tollgate_rls_shadow_over_limit_total{domain=\"d\"} 2"),
        "{text}"
    );
    // A leaky bucket cannot give units back: FAILED_PRECONDITION.
    let mut leaky = descriptor(&[("leaky_bucket", "x")]);
    leaky.is_negative_hits = true;
    let request = RateLimitRequest {
        domain: "d".into(),
        descriptors: vec![leaky],
        hits_addend: 1,
    };
    let e = client.should_rate_limit(request).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    server.stop().await;
}

#[tokio::test]
async fn connections_and_request_sizes_are_bounded() {
    let toml = format!("max_clients = 1\n{TOML}");
    let (server, mut client) = server(&toml).await;
    assert_eq!(
        call(&mut client, "d", &[&[("gcra", "a")]])
            .await
            .unwrap()
            .overall_code,
        OK
    );
    // A second connection is closed at once: max_clients are open.
    let url = format!("http://{}", server.shared.rls.addr().unwrap());
    let second = async {
        let mut c = RateLimitServiceClient::connect(url).await.ok()?;
        call(&mut c, "d", &[&[("gcra", "b")]]).await.ok()
    };
    assert!(second.await.is_none(), "the second connection was served");
    // A request over 64 KiB is refused unread; the first connection works on.
    let long = "x".repeat(70_000);
    let e = call(&mut client, "d", &[&[("gcra", long.as_str())]])
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e}");
    let too_many: Vec<&[(&str, &str)]> = vec![&[("gcra", "c")]; 65];
    let e = call(&mut client, "d", &too_many).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(
        call(&mut client, "d", &[&[("gcra", "a")]])
            .await
            .unwrap()
            .overall_code,
        OK
    );
    server.stop().await;
}

#[tokio::test]
async fn limit_top_counts_the_descriptors_envoy_sends() {
    let (server, mut client) = server(TOML).await;
    for _ in 0..640 {
        code(&mut client, "d", &[&[("token_bucket", "u1")]]).await;
    }
    // A descriptor that meets no limit is not counted.
    for _ in 0..640 {
        code(&mut client, "d", &[&[("nothing", "here")]]).await;
    }
    let mut c = server.conn().await;
    let rows: Vec<(String, i64, i64)> = redis::from_redis_value(
        common::run(&mut c, &["LIMIT.TOP", "DENIALS"])
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0, "d|token_bucket=u1");
    // 637 denials, within the documented bound (five deviations).
    let noise = 5.0 * (16.0f64 * 637.0).sqrt() + 16.0;
    assert!(
        ((rows[0].1 - 637).abs() as f64) <= rows[0].2 as f64 + noise,
        "{rows:?}"
    );
    server.stop().await;
}
