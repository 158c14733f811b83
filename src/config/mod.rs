//! Configuration: built-in defaults, then the config file (`--config`), then
//! environment variables and command-line flags. Validated once at start-up.

use std::path::{Path, PathBuf};

use clap::Parser;

use crate::policy::Policy;

mod file;

/// The command line. Every flag can also come from the environment
/// (`TOLLGATE_PORT`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A rate-limiter server that speaks the Redis protocol"
)]
pub struct Cli {
    /// Config file (TOML); see config/tollgate.toml for every key.
    #[arg(long, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, env = "TOLLGATE_BIND")]
    pub bind: Option<String>,
    /// Port to listen on [default: 6379]; 0 picks a free one.
    #[arg(long, env = "TOLLGATE_PORT")]
    pub port: Option<u16>,
    /// Directory for the snapshot [default: ./data].
    #[arg(long, env = "TOLLGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace [default: info]; RUST_LOG overrides.
    #[arg(long, env = "TOLLGATE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Password clients must give with AUTH [default: none].
    #[arg(long, env = "TOLLGATE_REQUIREPASS", hide_env_values = true)]
    pub requirepass: Option<String>,
    /// Connection threads [default: one per core].
    #[arg(long, env = "TOLLGATE_THREADS")]
    pub threads: Option<usize>,
    /// Serve Prometheus metrics and /healthz on this address (e.g. 127.0.0.1:9121) [default: off].
    #[arg(long, env = "TOLLGATE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// If the snapshot cannot be loaded, move it aside (dump.tgs.bad-TIME) and start empty
    /// instead of refusing to start.
    #[arg(long)]
    pub discard_bad_snapshot: bool,
    /// Check that a server answers PING on --bind/--port, then exit 0 (healthy) or 1.
    #[arg(long)]
    pub healthcheck: bool,
}

/// The server's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub bind: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub log_level: String,
    pub max_clients: usize,
    /// Largest single argument a client may send, in bytes.
    pub max_arg_bytes: usize,
    /// Largest unanswered input a client may have buffered, in bytes.
    pub max_query_buffer_bytes: usize,
    /// How often fresh states are swept from memory, in milliseconds.
    pub sweep_interval_ms: u64,
    /// How often a snapshot is written if anything changed, in milliseconds.
    pub snapshot_interval_ms: u64,
    /// Whether snapshots are restored at start and written periodically and
    /// on shutdown (`SAVE` and `BGSAVE` work either way).
    pub snapshots: bool,
    /// Where the Prometheus endpoint listens; `None`: off.
    pub metrics_addr: Option<String>,
    /// Connection threads; `None`: one per core.
    pub threads: Option<usize>,
    pub requirepass: Option<String>,
    /// Policies from the config file.
    pub policies: Vec<Policy>,
    pub config_file: Option<PathBuf>,
    /// The command line it was loaded with, re-applied on reload.
    pub flags: Cli,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            bind: "127.0.0.1".into(),
            port: 6379,
            data_dir: PathBuf::from("./data"),
            log_level: "info".into(),
            max_clients: 10_000,
            max_arg_bytes: 1024 * 1024,
            max_query_buffer_bytes: 64 * 1024 * 1024,
            sweep_interval_ms: 1000,
            snapshot_interval_ms: 10_000,
            snapshots: true,
            metrics_addr: None,
            threads: None,
            requirepass: None,
            policies: Vec::new(),
            config_file: None,
            flags: Cli::default(),
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{message}")]
    Flag { message: String },
}

impl Config {
    /// Defaults, overridden by the file named in `cli`, overridden by `cli`.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.with_flags(cli)
    }

    /// This config with `cli`'s flags (and their environment variables) on top.
    pub fn with_flags(mut self, cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = {
            self.flags = cli.clone();
            self
        };
        if let Some(bind) = &cli.bind {
            config.bind = bind.clone();
        }
        if let Some(port) = cli.port {
            config.port = port;
        }
        if let Some(dir) = &cli.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(level) = &cli.log_level {
            config.log_level =
                valid_log_level(level).map_err(|message| ConfigError::Flag { message })?;
        }
        if let Some(pass) = &cli.requirepass {
            config.requirepass = Some(pass.clone()).filter(|p| !p.is_empty());
        }
        if let Some(n) = cli.threads {
            config.threads = Some(n).filter(|&n| n > 0);
        }
        if let Some(addr) = &cli.metrics_addr {
            config.metrics_addr = Some(addr.clone()).filter(|a| !a.is_empty());
        }
        Ok(config)
    }

    /// Reads and validates a config file on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml(&text)
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })
            .map(|mut c| {
                c.config_file = Some(path.to_path_buf());
                c
            })
    }

    /// Parses and validates TOML text on top of the defaults. Errors name
    /// the line, column and key.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        file::parse(text)
    }

    /// The settings that differ in `other` but take effect only on restart
    /// (everything but the policies), by their config-file names.
    pub fn restart_needed(&self, other: &Config) -> Vec<&'static str> {
        let differs = [
            ("bind", self.bind != other.bind),
            ("port", self.port != other.port),
            ("data_dir", self.data_dir != other.data_dir),
            ("log_level", self.log_level != other.log_level),
            ("max_clients", self.max_clients != other.max_clients),
            ("max_arg_bytes", self.max_arg_bytes != other.max_arg_bytes),
            (
                "max_query_buffer_bytes",
                self.max_query_buffer_bytes != other.max_query_buffer_bytes,
            ),
            (
                "sweep_interval",
                self.sweep_interval_ms != other.sweep_interval_ms,
            ),
            (
                "snapshot_interval",
                self.snapshot_interval_ms != other.snapshot_interval_ms,
            ),
            ("snapshots", self.snapshots != other.snapshots),
            ("metrics_addr", self.metrics_addr != other.metrics_addr),
            ("threads", self.threads != other.threads),
            ("requirepass", self.requirepass != other.requirepass),
        ];
        differs
            .into_iter()
            .filter_map(|(name, changed)| changed.then_some(name))
            .collect()
    }

    /// The settings `CONFIG GET` shows, with Redis's names where Redis has one.
    pub fn visible_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("bind", self.bind.clone()),
            ("port", self.port.to_string()),
            ("dir", self.data_dir.display().to_string()),
            ("maxclients", self.max_clients.to_string()),
            ("proto-max-bulk-len", self.max_arg_bytes.to_string()),
            (
                "client-query-buffer-limit",
                self.max_query_buffer_bytes.to_string(),
            ),
            ("loglevel", self.log_level.clone()),
            ("requirepass", self.requirepass.clone().unwrap_or_default()),
            ("sweep-interval", format!("{}ms", self.sweep_interval_ms)),
            (
                "snapshot-interval",
                format!("{}ms", self.snapshot_interval_ms),
            ),
            (
                "metrics-addr",
                self.metrics_addr.clone().unwrap_or_default(),
            ),
            ("dbfilename", crate::snapshot::FILE_NAME.into()),
            ("databases", "1".into()),
            (
                "save",
                // Redis's `save ""`: no snapshot is written on its own.
                if self.snapshots {
                    format!("{} 1", self.snapshot_interval_ms.div_ceil(1000))
                } else {
                    String::new()
                },
            ),
            ("appendonly", "no".into()),
            ("timeout", "0".into()),
        ]
    }
}

/// A log level name, lower-cased.
pub(crate) fn valid_log_level(level: &str) -> Result<String, String> {
    let lower = level.to_ascii_lowercase();
    match lower.as_str() {
        "off" | "error" | "warn" | "info" | "debug" | "trace" => Ok(lower),
        _ => Err(format!(
            "invalid log level '{level}': expected off, error, warn, info, debug or trace"
        )),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(save(&Config::default()), "10 1");
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
}
