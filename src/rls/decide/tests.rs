use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::{
    Entry, RateLimitOverride,
};
use envoy_types::pb::google::protobuf::UInt64Value;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::rls::options::Headers;
use crate::rls::tree::from_yaml;
use crate::store::Scope;

const T0: u64 = 1_767_225_600_000_000_000;
const SECOND: u64 = 1_000_000_000;

const YAML: &str = r#"
domain: d
descriptors:
  - key: token_bucket
    rate_limit: { algorithm: token_bucket, limit: 3, window: 1m }
  - key: leaky_bucket
    rate_limit: { algorithm: leaky_bucket, limit: 3, window: 1m }
  - key: fixed_window
    rate_limit: { unit: minute, requests_per_unit: 3 }
  - key: sliding_log
    rate_limit: { algorithm: sliding_log, limit: 3, window: 1m }
  - key: sliding_window
    rate_limit: { algorithm: sliding_window, limit: 3, window: 1m }
  - key: gcra
    rate_limit: { algorithm: gcra, limit: 3, window: 1m }
  - key: user
    rate_limit: { unit: minute, requests_per_unit: 2 }
  - key: org
    rate_limit: { unit: minute, requests_per_unit: 5 }
  - key: shadow
    shadow_mode: true
    rate_limit: { unit: minute, requests_per_unit: 1 }
  - key: free
    rate_limit: { unlimited: true }
  - key: api
    rate_limit: { policy: api, name: api-rules }
"#;

struct Fixture {
    engine: Engine,
    domains: Domains,
    clock: ManualClock,
    options: Options,
}

fn fixture() -> Fixture {
    let clock = ManualClock::new(T0);
    let policy = Policy {
        name: "api".into(),
        rules: vec![
            Params::new(Algorithm::FixedWindow, 4, 60 * SECOND),
            Params::new(Algorithm::TokenBucket, 2, SECOND),
        ],
        from_config: true,
    };
    let domains = Domains::build(&from_yaml(YAML).unwrap(), std::slice::from_ref(&policy)).unwrap();
    Fixture {
        engine: Engine::new(vec![policy], Arc::new(clock.clone())),
        domains,
        clock,
        options: Options::default(),
    }
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

fn request(descriptors: Vec<RateLimitDescriptor>) -> RateLimitRequest {
    RateLimitRequest {
        domain: "d".into(),
        descriptors,
        hits_addend: 0,
    }
}

impl Fixture {
    fn call(&self, r: &RateLimitRequest) -> Result<Outcome, Failure> {
        decide(
            &self.engine,
            &self.domains,
            self.options,
            r,
            self.clock.now(),
            true,
        )
    }

    fn ok(&self, r: &RateLimitRequest) -> RateLimitResponse {
        self.call(r).expect("decided").response
    }

    /// Codes and remaining of a one-descriptor call of `key`=`value`.
    fn one(&self, key: &str, value: &str) -> (i32, u32) {
        let r = self.ok(&request(vec![descriptor(&[(key, value)])]));
        (r.statuses[0].code, r.statuses[0].limit_remaining)
    }
}

const OK: i32 = Code::Ok as i32;
const OVER: i32 = Code::OverLimit as i32;

#[test]
fn every_algorithm_limits_through_a_descriptor() {
    let f = fixture();
    for algorithm in Algorithm::ALL {
        let name = algorithm.name();
        let got: Vec<(i32, u32)> = (0..4).map(|_| f.one(name, "v")).collect();
        assert_eq!(got, [(OK, 2), (OK, 1), (OK, 0), (OVER, 0)], "{name}");
        let r = f.ok(&request(vec![descriptor(&[(name, "v")])]));
        assert_eq!(r.overall_code, OVER, "{name}");
        let limit = r.statuses[0].current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.requests_per_unit, limit.unit),
            (3, Unit::Minute as i32),
            "{name}"
        );
        // Another value is another key.
        assert_eq!(f.one(name, "w"), (OK, 2), "{name}");
    }
}

#[test]
fn over_the_limit_says_when_to_come_back() {
    let f = fixture();
    f.clock.advance(15 * SECOND);
    for _ in 0..3 {
        f.one("fixed_window", "v");
    }
    let r = f.ok(&request(vec![descriptor(&[("fixed_window", "v")])]));
    let until = r.statuses[0].duration_until_reset.unwrap();
    assert_eq!(
        (until.seconds, until.nanos),
        (45, 0),
        "the window ends at T0 + 60 s"
    );
}

#[test]
fn all_or_nothing_takes_nothing_when_one_descriptor_is_over() {
    let f = fixture();
    let both = request(vec![
        descriptor(&[("user", "42")]),
        descriptor(&[("org", "7")]),
    ]);
    for _ in 0..2 {
        assert_eq!(f.ok(&both).overall_code, OK);
    }
    let r = f.ok(&both);
    assert_eq!(r.overall_code, OVER);
    assert_eq!((r.statuses[0].code, r.statuses[1].code), (OVER, OK));
    assert_eq!(r.statuses[1].limit_remaining, 3, "org: nothing was taken");
    assert_eq!(f.one("org", "7"), (OK, 2), "org had 3 left");
}

#[test]
fn each_mode_consumes_what_is_under_its_limit_as_envoy_does() {
    let mut f = fixture();
    f.options.consume = Consume::Each;
    let both = request(vec![
        descriptor(&[("user", "42")]),
        descriptor(&[("org", "7")]),
    ]);
    for _ in 0..3 {
        f.ok(&both);
    }
    assert_eq!(f.one("org", "7"), (OK, 1), "org took 3 and this one");
}

#[test]
fn hits_addend_is_the_cost_and_a_descriptor_zero_only_looks() {
    let f = fixture();
    let mut r = request(vec![descriptor(&[("org", "1")])]);
    r.hits_addend = 3;
    assert_eq!(f.ok(&r).statuses[0].limit_remaining, 2);
    r.hits_addend = 0; // means 1
    assert_eq!(f.ok(&r).statuses[0].limit_remaining, 1);
    let mut peek = descriptor(&[("org", "1")]);
    peek.hits_addend = Some(UInt64Value { value: 0 });
    r.descriptors = vec![peek.clone()];
    r.hits_addend = 5;
    for _ in 0..3 {
        let s = &f.ok(&r).statuses[0];
        assert_eq!((s.code, s.limit_remaining), (OK, 1), "a peek takes nothing");
    }
    peek.hits_addend = Some(UInt64Value { value: 2 });
    r.descriptors = vec![peek];
    assert_eq!(f.ok(&r).statuses[0].code, OVER, "2 asked, 1 left");
}

#[test]
fn negative_hits_give_units_back_but_never_past_the_capacity() {
    let f = fixture();
    for _ in 0..3 {
        f.one("gcra", "v");
    }
    let mut back = descriptor(&[("gcra", "v")]);
    back.is_negative_hits = true;
    back.hits_addend = Some(UInt64Value { value: 2 });
    let s = f.ok(&request(vec![back.clone()])).statuses[0].clone();
    assert_eq!((s.code, s.limit_remaining), (OK, 2));
    back.hits_addend = Some(UInt64Value { value: 100 });
    assert_eq!(f.ok(&request(vec![back])).statuses[0].limit_remaining, 3);
    let got: Vec<(i32, u32)> = (0..4).map(|_| f.one("gcra", "v")).collect();
    assert_eq!(got, [(OK, 2), (OK, 1), (OK, 0), (OVER, 0)]);
    // The leaky bucket's queue cannot give back.
    let mut leaky = descriptor(&[("leaky_bucket", "v")]);
    leaky.is_negative_hits = true;
    assert!(matches!(
        f.call(&request(vec![leaky])),
        Err(Failure::Precondition(m)) if m.contains("leaky_bucket cannot give units back")
    ));
}

#[test]
fn shadow_descriptors_count_but_answer_ok() {
    let f = fixture();
    let r = request(vec![descriptor(&[("shadow", "s")])]);
    let first = f.call(&r).unwrap();
    assert_eq!((first.response.overall_code, first.shadow_over), (OK, 0));
    let second = f.call(&r).unwrap();
    assert_eq!(second.response.overall_code, OK);
    assert_eq!(second.response.statuses[0].code, OK);
    assert_eq!(second.shadow_over, 1, "over its limit, counted");
    // A call denied by another descriptor takes nothing from the shadow one.
    let f = fixture();
    for _ in 0..2 {
        f.one("user", "u");
    }
    let denied = request(vec![
        descriptor(&[("user", "u")]),
        descriptor(&[("shadow", "t")]),
    ]);
    assert_eq!(f.ok(&denied).overall_code, OVER);
    assert_eq!(
        f.call(&request(vec![descriptor(&[("shadow", "t")])]))
            .unwrap()
            .shadow_over,
        0
    );
}

#[test]
fn unknown_domains_and_unmatched_descriptors_are_not_limited() {
    let f = fixture();
    let mut r = request(vec![
        descriptor(&[("nothing", "here")]),
        descriptor(&[("free", "x")]),
    ]);
    for _ in 0..5 {
        let out = f.call(&r).unwrap();
        assert!(out.known_domain);
        assert_eq!(out.response.overall_code, OK);
        assert!(
            out.response
                .statuses
                .iter()
                .all(|s| s.code == OK && s.current_limit.is_none())
        );
    }
    r.domain = "other".into();
    let out = f.call(&r).unwrap();
    assert!(!out.known_domain);
    assert_eq!(out.response.statuses.len(), 2);
    assert_eq!(f.engine.store.len(), 0, "nothing was stored");
}

#[test]
fn malformed_requests_are_invalid_and_change_nothing() {
    let f = fixture();
    let huge = Some(UInt64Value {
        value: MAX_COUNT + 1,
    });
    let mut costly = descriptor(&[("org", "1")]);
    costly.hits_addend = huge;
    let mut bad_override = descriptor(&[("org", "1")]);
    bad_override.limit = Some(RateLimitOverride {
        requests_per_unit: 5,
        unit: 0,
    });
    let cases = [
        (
            RateLimitRequest {
                domain: String::new(),
                ..request(vec![descriptor(&[("org", "1")])])
            },
            "the domain must not be empty",
        ),
        (request(vec![]), "the descriptor list must not be empty"),
        (request(vec![descriptor(&[])]), "descriptor 0 has 0 entries"),
        (
            request(vec![descriptor(&[("org", "1")]); 65]),
            "65 descriptors: expected at most 64",
        ),
        (
            request(vec![descriptor(&[("org", "1")]), descriptor(&[("", "x")])]),
            "descriptor 1 has an entry with an empty key",
        ),
        (request(vec![costly]), "hits_addend 1000000000001"),
        (
            request(vec![bad_override]),
            "limit override of 5 per unit 0",
        ),
    ];
    for (r, want) in cases {
        match f.call(&r) {
            Err(Failure::Invalid(m)) => assert!(m.contains(want), "{m}"),
            other => panic!("{want}: {other:?}"),
        }
    }
    assert_eq!(f.engine.store.len(), 0);
}

#[test]
fn a_limit_override_replaces_the_configured_numbers() {
    let f = fixture();
    let mut d = descriptor(&[("token_bucket", "v")]);
    d.limit = Some(RateLimitOverride {
        requests_per_unit: 1,
        unit: Unit::Hour as i32,
    });
    let r = request(vec![d]);
    assert_eq!(f.ok(&r).overall_code, OK);
    let second = f.ok(&r);
    assert_eq!(second.overall_code, OVER);
    let limit = second.statuses[0].current_limit.as_ref().unwrap();
    assert_eq!(
        (limit.requests_per_unit, limit.unit),
        (1, Unit::Hour as i32)
    );
}

#[test]
fn a_policy_leaf_checks_every_rule() {
    let f = fixture();
    let got: Vec<(i32, u32)> = (0..3).map(|_| f.one("api", "k")).collect();
    // The token bucket (2 per second) is the tighter rule.
    assert_eq!(got, [(OK, 1), (OK, 0), (OVER, 0)]);
    let r = f.ok(&request(vec![descriptor(&[("api", "k")])]));
    assert_eq!(
        r.statuses[0].current_limit.as_ref().unwrap().name,
        "api-rules"
    );
    f.clock.advance(SECOND);
    assert_eq!(
        f.one("api", "k"),
        (OK, 1),
        "the fixed window has 1 left, the bucket 2"
    );
}

#[test]
fn headers_describe_the_most_limited_descriptor() {
    let mut f = fixture();
    f.options.headers = Headers::Draft;
    let both = request(vec![
        descriptor(&[("org", "h")]),
        descriptor(&[("user", "h")]),
    ]);
    let r = f.ok(&both);
    let shown: Vec<(&str, &str)> = r
        .response_headers_to_add
        .iter()
        .map(|h| (h.key.as_str(), h.value.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            ("RateLimit-Limit", "2"),
            ("RateLimit-Remaining", "1"),
            ("RateLimit-Reset", "60")
        ]
    );
    f.options.headers = Headers::XRateLimit;
    f.clock.advance(SECOND / 2);
    f.ok(&both);
    let r = f.ok(&both);
    let names: Vec<&str> = r
        .response_headers_to_add
        .iter()
        .map(|h| h.key.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "X-RateLimit-Limit",
            "X-RateLimit-Remaining",
            "X-RateLimit-Reset"
        ]
    );
    assert_eq!(r.response_headers_to_add[1].value, "0");
    assert_eq!(
        r.response_headers_to_add[2].value, "60",
        "59.5 s, rounded up"
    );
    f.options.headers = Headers::Off;
    assert!(f.ok(&both).response_headers_to_add.is_empty());
}

#[test]
fn a_descriptor_state_is_an_ordinary_key() {
    let f = fixture();
    f.one("gcra", "a|b");
    let key = store_key("d", [("gcra", "a|b")]);
    assert_eq!(key, b"d|gcra=a\\|b".to_vec());
    let view = f
        .engine
        .store
        .inspect(Scope::Inline, &key, None, f.clock.now());
    assert!(view.is_some(), "LIMIT.INFO sees the descriptor's state");
    assert!(f.engine.store.reset(Scope::Inline, &key, f.clock.now()));
    assert_eq!(f.one("gcra", "a|b"), (OK, 2), "LIMIT.RESET started it over");
}

#[test]
fn a_dry_run_answers_as_if_and_changes_nothing() {
    let f = fixture();
    f.one("org", "dry");
    let mut back = descriptor(&[("org", "dry")]);
    back.is_negative_hits = true;
    let r = request(vec![
        descriptor(&[("org", "dry")]),
        descriptor(&[("shadow", "s")]),
        back,
    ]);
    for _ in 0..3 {
        let out = decide(&f.engine, &f.domains, f.options, &r, f.clock.now(), false).unwrap();
        let s = &out.response.statuses;
        assert_eq!(
            (s[0].code, s[0].limit_remaining),
            (OK, 3),
            "as if one more were taken"
        );
        assert_eq!(s[2].limit_remaining, 4, "a refund only looks");
    }
    assert_eq!(
        f.one("org", "dry"),
        (OK, 3),
        "nothing was taken or given back"
    );
    assert_eq!(f.one("shadow", "s"), (OK, 0));
}
