//! decide.rs's tests: the fixture and the checks themselves here;
//! costs, refunds, shadow mode, dry runs and bad calls in `costs.rs`.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;

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

pub(super) const OK: i32 = Code::Ok as i32;
pub(super) const OVER: i32 = Code::OverLimit as i32;

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

mod costs;
