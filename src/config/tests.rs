use super::*;
use crate::limiter::Algorithm;

#[test]
fn defaults_need_no_file() {
    let c = Config::load(&Cli::default()).unwrap();
    assert_eq!((c.bind.as_str(), c.port), ("127.0.0.1", 6379));
    assert_eq!(c.data_dir, PathBuf::from("./data"));
}

#[test]
fn the_shipped_config_file_is_the_defaults() {
    let shipped = Config::from_toml(include_str!("../../config/tollgate.toml")).unwrap();
    assert_eq!(shipped, Config::default());
    let example = include_str!("../../config/tollgate.toml")
        .lines()
        .skip_while(|l| !l.starts_with("# [[policy]]"))
        .map(|l| l.trim_start_matches("# "))
        .collect::<Vec<_>>()
        .join("\n");
    let with_policy = Config::from_toml(&example).unwrap();
    assert_eq!(with_policy.policies[0].name, "api");
    let domain = include_str!("../../config/tollgate.toml")
        .lines()
        .skip_while(|l| !l.starts_with("# [[domain]]"))
        .take_while(|l| !l.is_empty())
        .map(|l| l.trim_start_matches("# "))
        .collect::<Vec<_>>()
        .join("\n");
    let with_domain = Config::from_toml(&domain).unwrap();
    assert_eq!(with_domain.domains.names(), ["edge"]);
}

#[test]
fn rate_limit_service_settings_are_read_and_checked() {
    let c = Config::from_toml(
        "grpc_addr = \"127.0.0.1:8081\"\nrls_consume = \"each\"\nrls_headers = \"x-ratelimit\"\n",
    )
    .unwrap();
    assert_eq!(c.grpc_addr.as_deref(), Some("127.0.0.1:8081"));
    assert_eq!(c.rls.consume, crate::rls::Consume::Each);
    assert_eq!(c.rls.headers, crate::rls::Headers::XRateLimit);
    let bad = Config::from_toml("rls_consume = \"some\"\n").unwrap_err();
    assert_eq!(
        bad,
        "line 1, column 15, key rls_consume: invalid rls_consume 'some': expected all_or_nothing or each"
    );
    let bad = Config::from_toml("rls_headers = \"loud\"\n").unwrap_err();
    assert!(bad.contains("expected off, draft or x-ratelimit"), "{bad}");
    let bad = Config::from_toml("rls_config = [\"/nonexistent/rl.yaml\"]\n").unwrap_err();
    assert!(
        bad.contains("rls_config /nonexistent/rl.yaml: cannot read"),
        "{bad}"
    );
    let tree = "[[domain]]\ndomain = \"d\"\ndescriptors = [{ key = \"k\", rate_limit = { unit = \"second\" } }]\n";
    let bad = Config::from_toml(tree).unwrap_err();
    assert!(
        bad.contains("domain 'd': d > k: a rate_limit needs requests_per_unit"),
        "{bad}"
    );
    let flags = Cli {
        grpc_addr: Some("127.0.0.1:9".into()),
        ..Cli::default()
    };
    let c = Config::default().with_flags(&flags).unwrap();
    assert_eq!(c.grpc_addr.as_deref(), Some("127.0.0.1:9"));
    let shown = c.visible_settings();
    assert!(shown.contains(&("grpc-addr", "127.0.0.1:9".into())));
    assert!(shown.contains(&("rls-consume", "all_or_nothing".into())));
}

#[test]
fn file_policies_are_parsed_and_validated() {
    let c = Config::from_toml(
        r#"
        port = 7000
        sweep_interval = "2s"
        [[policy]]
        name = "api"
        rules = [
          { algorithm = "token_bucket", limit = 10, window = "1s", burst = 20 },
          { algorithm = "fixed_window", limit = 10000, window = "1d" },
        ]
        "#,
    )
    .unwrap();
    assert_eq!(c.port, 7000);
    assert_eq!(c.sweep_interval_ms, 2000);
    assert_eq!(Config::from_toml("threads = 3").unwrap().threads, Some(3));
    assert_eq!(
        Config::from_toml("threads = 0").unwrap().threads,
        None,
        "0: one per core"
    );
    let cli = Cli {
        threads: Some(2),
        metrics_addr: Some("127.0.0.1:9121".into()),
        ..Cli::default()
    };
    let flags = Config::load(&cli).unwrap();
    assert_eq!(
        (flags.threads, flags.metrics_addr.as_deref()),
        (Some(2), Some("127.0.0.1:9121"))
    );
    assert_eq!(c.policies[0].rules[0].burst, 20);
    assert_eq!(c.policies[0].rules[1].algorithm, Algorithm::FixedWindow);
    assert!(c.policies[0].from_config);
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let bad = [
        ("prot = 1", "unknown field"),
        ("[[policy]]\nname = \"a\"\nrules = []", "has no rules"),
        (
            "[[policy]]\nname = \"a\"\nrules = [{ algorithm = \"nope\", limit = 1, window = \"1s\" }]",
            "unknown algorithm",
        ),
        (
            "[[policy]]\nname = \"a\"\nrules = [{ algorithm = \"fixed_window\", limit = 1, window = \"1s\", burst = 2 }]",
            "burst applies",
        ),
        (
            "[[policy]]\nname = \"a\"\nrules = [{ algorithm = \"gcra\", limit = 1, window = \"10x\" }]",
            "invalid window",
        ),
        ("max_clients = 0", "at least 1"),
        ("log_level = \"loud\"", "invalid log level 'loud'"),
        ("threads = 5000", "threads must be at most 1024"),
        ("snapshot_interval = \"0\"", "invalid snapshot_interval"),
        ("maxmemory = \"lots\"", "lots"),
        (
            "cluster_mode = \"on\"",
            "cluster_mode must be off, emulated or managed, not 'on'",
        ),
        (
            "maxmemory_policy = \"allkeys-lru\"",
            "maxmemory policy must be noeviction or volatile-ttl, not 'allkeys-lru'",
        ),
    ];
    for (text, why) in bad {
        let err = Config::from_toml(text).unwrap_err();
        assert!(err.contains(why), "{text}: {err}");
    }
}

#[test]
fn errors_name_the_line_column_and_key() {
    let cases = [
        (
            "bind = \"0.0.0.0\"\nport = 99999\n",
            "line 2, column 8, key port: invalid value",
        ),
        (
            "prot = 1",
            "line 1, column 1, key prot: unknown field `prot`",
        ),
        (
            "\n\nmax_clients = 0",
            "line 3, column 15, key max_clients: must be at least 1",
        ),
        (
            "sweep_interval = \"5x\"",
            "line 1, column 18, key sweep_interval: invalid sweep_interval '5x'",
        ),
        (
            "port = 1\n[[policy]]\nname = \"a\"\n",
            "line 2, column 1: missing field `rules`",
        ),
        (
            "[[policy]]\nname = \"a\"\nrules = [{ algorithm = \"gcra\", limit = 1, window = \"1s\", burst = 0 }]",
            "line 3, column 66, key burst: policy 'a': invalid burst '0': expected an integer from 1 to 1000000000000",
        ),
        (
            "[[policy]]\nname = \"a\"\nrules = [{ algorithm = \"sliding_window\", limit = 1, window = \"1s\", buckets = 1001 }]",
            "line 3, column 78, key buckets: policy 'a': invalid buckets '1001': expected an integer from 1 to 1000",
        ),
        (
            "[[policy]]\nname = \"a\"\nrules = [{ algorithm = \"gcra\", limit = 1, window = \"366d\", burst = 501 }]",
            "line 3, column 10, key rules: policy 'a': invalid rule: refilling from empty",
        ),
    ];
    for (text, want) in cases {
        let err = Config::from_toml(text).unwrap_err();
        assert!(err.starts_with(want), "{text:?}:\n  {err}\n  wanted {want}");
    }
}

#[test]
fn snapshots_can_be_turned_off() {
    let save = |c: &Config| {
        c.visible_settings()
            .into_iter()
            .find(|(k, _)| *k == "save")
            .unwrap()
            .1
    };
    assert!(Config::default().snapshots);
    assert_eq!(save(&Config::default()), "3600 1 300 100 60 10000");
    let every_10s = Config::from_toml("snapshot_interval = \"10s\"").unwrap();
    assert_eq!(save(&every_10s), "10 1");
    let custom = Config::from_toml("save = \"900 1 60 5\"").unwrap();
    assert_eq!(save(&custom), "900 1 60 5");
    let none = Config::from_toml("save = \"\"").unwrap();
    assert!(none.save_points.is_empty() && none.snapshots);
    for bad in [
        "save = \"60\"",
        "save = \"60 x\"",
        "save = \"0 1\"",
        "save = \"60 1\"\nsnapshot_interval = \"1s\"",
    ] {
        assert!(Config::from_toml(bad).is_err(), "{bad}");
    }
    let off = Config::from_toml("snapshots = false").unwrap();
    assert!(!off.snapshots);
    assert_eq!(save(&off), "", "as Redis shows save \"\"");
}

#[test]
fn flags_override_the_file() {
    let dir = std::env::temp_dir().join(format!("tollgate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("t.toml");
    std::fs::write(&path, "port = 7000\nbind = \"0.0.0.0\"\n").unwrap();
    let cli = Cli {
        config: Some(path.clone()),
        port: Some(7001),
        ..Cli::default()
    };
    let c = Config::load(&cli).unwrap();
    assert_eq!((c.bind.as_str(), c.port), ("0.0.0.0", 7001));
    let missing = Cli {
        config: Some(dir.join("missing.toml")),
        ..Cli::default()
    };
    assert!(
        Config::load(&missing)
            .unwrap_err()
            .to_string()
            .contains("missing.toml")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn maxmemory_comes_from_the_file_or_the_flags() {
    let c =
        Config::from_toml("maxmemory = \"256mb\"\nmaxmemory_policy = \"volatile-ttl\"").unwrap();
    assert_eq!(c.maxmemory, 256 * 1024 * 1024);
    assert_eq!(c.maxmemory_policy, EvictionPolicy::VolatileTtl);
    let flags = Cli {
        maxmemory: Some("1gb".into()),
        maxmemory_policy: Some("NOEVICTION".into()),
        ..Cli::default()
    };
    let c = c.with_flags(&flags).unwrap();
    assert_eq!(c.maxmemory, 1 << 30);
    assert_eq!(c.maxmemory_policy, EvictionPolicy::NoEviction);
    let bad = Cli {
        maxmemory_policy: Some("lru".into()),
        ..Cli::default()
    };
    assert!(Config::default().with_flags(&bad).is_err());
    assert_eq!(Config::default().maxmemory, 0, "no bound unless asked");
}

/// PROTOCOL.md's CONFIG entry names every setting CONFIG GET shows.
#[test]
fn the_protocol_names_every_visible_setting() {
    let doc: String = include_str!("../../docs/PROTOCOL.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let entry = doc.split("### `CONFIG`").nth(1).unwrap();
    let entry = entry.split("###").next().unwrap();
    for (name, _) in Config::default().visible_settings() {
        assert!(
            entry.contains(&format!("`{name}`")),
            "{name} is not in PROTOCOL.md's CONFIG entry"
        );
    }
}
