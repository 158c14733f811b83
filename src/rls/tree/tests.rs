use super::*;
use crate::limiter::Algorithm;

/// envoyproxy/ratelimit's README example (the `mongo_cps` domain) and a
/// second document with nesting, a wildcard prefix and shadow mode.
const YAML: &str = r#"
domain: mongo_cps
descriptors:
  - key: database
    value: users
    rate_limit:
      unit: second
      requests_per_unit: 500
  - key: database
    value: default
    rate_limit:
      unit: second
      requests_per_unit: 500
---
domain: edge
descriptors:
  - key: remote_address
    rate_limit:
      unit: minute
      requests_per_unit: 60
    detailed_metric: true
  - key: path
    value: /api/*
    rate_limit:
      algorithm: token_bucket
      requests_per_unit: 10
      unit: second
      burst: 20
  - key: path
    value: /api/login
    shadow_mode: true
    rate_limit:
      name: login
      algorithm: gcra
      limit: 5
      window: 1m
  - key: user
    descriptors:
      - key: plan
        value: free
        rate_limit: { algorithm: sliding_window, limit: 100, window: 1h, buckets: 60 }
      - key: plan
        value: paid
        rate_limit: { unlimited: true }
"#;

fn domains() -> Domains {
    Domains::build(&from_yaml(YAML).unwrap(), &[]).unwrap()
}

fn find<'a>(d: &'a Domains, domain: &str, entries: &[(&'a str, &'a str)]) -> Option<&'a Leaf> {
    d.get(domain)?.find(entries.iter().copied())
}

#[test]
fn envoyproxy_yaml_loads_with_its_units_as_fixed_windows() {
    let d = domains();
    assert_eq!(d.names(), ["edge", "mongo_cps"]);
    let leaf = find(&d, "mongo_cps", &[("database", "users")]).unwrap();
    let second = 1_000_000_000;
    assert_eq!(
        leaf.limit,
        Limit::Rule(Params::new(Algorithm::FixedWindow, 500, second))
    );
    assert!(find(&d, "mongo_cps", &[("database", "other")]).is_none());
    let leaf = find(&d, "edge", &[("remote_address", "10.0.0.1")]).unwrap();
    assert_eq!(
        leaf.limit,
        Limit::Rule(Params::new(Algorithm::FixedWindow, 60, 60 * second))
    );
}

#[test]
fn an_exact_value_wins_over_a_prefix_which_wins_over_any_value() {
    let d = domains();
    let login = find(&d, "edge", &[("path", "/api/login")]).unwrap();
    assert!(login.shadow && login.name == "login");
    let Limit::Rule(p) = find(&d, "edge", &[("path", "/api/users")]).unwrap().limit else {
        panic!("a rule")
    };
    assert_eq!(
        (p.algorithm, p.limit, p.burst),
        (Algorithm::TokenBucket, 10, 20)
    );
    assert!(find(&d, "edge", &[("path", "/static/x")]).is_none());
}

#[test]
fn a_limit_applies_only_where_the_request_ends() {
    let d = domains();
    // `user` has no limit of its own; its children do.
    assert!(find(&d, "edge", &[("user", "u1")]).is_none());
    let free = find(&d, "edge", &[("user", "u1"), ("plan", "free")]).unwrap();
    let Limit::Rule(p) = free.limit else { panic!() };
    assert_eq!((p.algorithm, p.buckets), (Algorithm::SlidingWindow, 60));
    let paid = find(&d, "edge", &[("user", "u1"), ("plan", "paid")]).unwrap();
    assert_eq!(paid.limit, Limit::Unlimited);
    // A longer descriptor than the tree does not reach a leaf.
    assert!(find(&d, "edge", &[("remote_address", "a"), ("path", "/")]).is_none());
    assert!(find(&d, "edge", &[("user", "u1"), ("plan", "gold")]).is_none());
}

#[test]
fn store_keys_escape_their_separators() {
    let key = store_key("edge", [("path", "/a|b=c"), ("k\\", "v")]);
    assert_eq!(key, b"edge|path=/a\\|b\\=c|k\\\\=v".to_vec());
    // Different descriptors never share a key.
    assert_ne!(
        store_key("d", [("a", "b|c=d")]),
        store_key("d", [("a", "b"), ("c", "d")])
    );
}

#[test]
fn bad_trees_are_refused_with_their_path() {
    let build = |yaml: &str| from_yaml(yaml).and_then(|files| Domains::build(&files, &[]));
    let cases = [
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 1}\n",
            "domain 'd': d > k: unknown unit 'fortnight'",
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: second}\n",
            "domain 'd': d > k: a rate_limit needs requests_per_unit",
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    value: v\n  - key: k\n    value: v\n",
            "domain 'd': d > k=v: the descriptor is defined twice",
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {policy: nope}\n",
            "domain 'd': d > k: policy 'nope' is not defined in the config file",
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {algorithm: fixed_window, limit: 1, window: 1s, burst: 2}\n",
            "domain 'd': d > k: burst applies to",
        ),
        (
            "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, limit: 3}\n",
            "domain 'd': d > k: unlimited takes no rule",
        ),
        ("domain: d\n---\ndomain: d\n", "domain 'd' is defined twice"),
        (
            "domain: d\ndescriptors:\n  - key: k\n    replaces: []\n",
            "unknown field `replaces`",
        ),
    ];
    for (yaml, want) in cases {
        let got = build(yaml).unwrap_err();
        assert!(got.contains(want), "{yaml}\ngot: {got}\nwant: {want}");
    }
}

#[test]
fn a_leaf_may_name_a_config_policy() {
    let policy = Policy {
        name: "api".into(),
        rules: vec![Params::new(Algorithm::Gcra, 5, 1_000_000_000)],
        from_config: true,
    };
    let files =
        from_yaml("domain: d\ndescriptors:\n  - key: k\n    rate_limit: {policy: api}\n").unwrap();
    let d = Domains::build(&files, &[policy]).unwrap();
    assert_eq!(
        find(&d, "d", &[("k", "x")]).unwrap().limit,
        Limit::Policy("api".into())
    );
}
