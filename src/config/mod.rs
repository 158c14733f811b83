//! Configuration: built-in defaults, then the config file (`--config`), then
//! environment variables and command-line flags. Validated once at start-up.

use std::path::{Path, PathBuf};

pub use crate::cluster::ClusterMode;
use crate::policy::Policy;
pub use crate::store::EvictionPolicy;

mod cli;
mod file;
mod show;
mod values;

pub use cli::{Cli, ClusterAction, Command};
pub use values::{AuthClients, SavePoint, TlsFiles, parse_bytes};

/// What `CONFIG GET` shows for a secret that is set.
pub const HIDDEN: &str = "(hidden)";

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
    /// When a snapshot is written on its own (Redis's `save`): after this
    /// many milliseconds if at least this many changes. Empty: never.
    pub save_points: Vec<SavePoint>,
    /// Whether snapshots are restored at start and written periodically and
    /// on shutdown (`SAVE` and `BGSAVE` work either way).
    pub snapshots: bool,
    /// Where the Prometheus endpoint listens; `None`: off.
    pub metrics_addr: Option<String>,
    /// Connection threads; `None`: one per core.
    pub threads: Option<usize>,
    pub requirepass: Option<String>,
    /// Seconds a client may stay idle before it is closed; 0: never.
    pub timeout_secs: u64,
    /// Seconds between TCP keepalive probes; 0: off.
    pub tcp_keepalive_secs: u64,
    /// Bytes of unanswered input all clients may hold together; 0: no limit.
    pub maxmemory_clients: u64,
    /// Bytes the store may hold (its own count); 0: no limit.
    pub maxmemory: u64,
    /// What happens to a new key past `maxmemory`.
    pub maxmemory_policy: EvictionPolicy,
    /// Whether and how this node takes part in a cluster.
    pub cluster_mode: ClusterMode,
    /// The address `emulated` mode gives for this node (None: the address
    /// the client connected to).
    pub cluster_announce_ip: Option<String>,
    /// With no password, serve only loopback clients.
    pub protected_mode: bool,
    /// How long a shutdown may take in all (drain and final snapshot), in
    /// milliseconds.
    pub shutdown_timeout_ms: u64,
    /// The ACL users file, if any.
    pub aclfile: Option<PathBuf>,
    /// TLS port; 0: no TLS.
    pub tls_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_ca_cert_file: Option<PathBuf>,
    pub tls_auth_clients: AuthClients,
    /// Policies from the config file.
    pub policies: Vec<Policy>,
    /// Where the Envoy rate limit service (gRPC) listens; `None`: off.
    pub grpc_addr: Option<String>,
    /// How its calls consume and which headers they add.
    pub rls: crate::rls::options::Options,
    /// envoyproxy/ratelimit YAML files of domains, read with the config.
    pub rls_config: Vec<PathBuf>,
    /// Its domains: the config file's `[[domain]]` tables and `rls_config`'s.
    pub domains: crate::rls::tree::Domains,
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
            save_points: SavePoint::redis_default(),
            snapshots: true,
            metrics_addr: None,
            threads: None,
            requirepass: None,
            timeout_secs: 0,
            tcp_keepalive_secs: 300,
            maxmemory_clients: 1024 * 1024 * 1024,
            maxmemory: 0,
            maxmemory_policy: EvictionPolicy::NoEviction,
            cluster_mode: ClusterMode::Off,
            cluster_announce_ip: None,
            protected_mode: true,
            shutdown_timeout_ms: 9_000,
            aclfile: None,
            tls_port: 0,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_cert_file: None,
            tls_auth_clients: AuthClients::Yes,
            policies: Vec::new(),
            grpc_addr: None,
            rls: crate::rls::options::Options::default(),
            rls_config: Vec::new(),
            domains: crate::rls::tree::Domains::default(),
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
        if let Some(addr) = &cli.grpc_addr {
            config.grpc_addr = Some(addr.clone()).filter(|a| !a.is_empty());
        }
        if let Some(on) = cli.protected_mode {
            config.protected_mode = on;
        }
        if let Some(size) = &cli.maxmemory {
            config.maxmemory =
                parse_bytes(size).map_err(|message| ConfigError::Flag { message })?;
        }
        if let Some(mode) = &cli.cluster_mode {
            config.cluster_mode =
                ClusterMode::parse(mode).map_err(|message| ConfigError::Flag { message })?;
        }
        if let Some(ip) = &cli.cluster_announce_ip {
            config.cluster_announce_ip = Some(ip.clone()).filter(|ip| !ip.is_empty());
        }
        if let Some(policy) = &cli.maxmemory_policy {
            config.maxmemory_policy =
                EvictionPolicy::parse(policy).map_err(|message| ConfigError::Flag { message })?;
        }
        if let Some(path) = path_flag(&cli.aclfile) {
            config.aclfile = Some(path);
        }
        if let Some(port) = cli.tls_port {
            config.tls_port = port;
        }
        config.tls_cert_file = path_flag(&cli.tls_cert_file).or(config.tls_cert_file);
        config.tls_key_file = path_flag(&cli.tls_key_file).or(config.tls_key_file);
        config.tls_ca_cert_file = path_flag(&cli.tls_ca_cert_file).or(config.tls_ca_cert_file);
        if let Some(auth) = &cli.tls_auth_clients {
            config.tls_auth_clients =
                AuthClients::parse(auth).map_err(|message| ConfigError::Flag { message })?;
        }
        config
            .check_tls()
            .map_err(|message| ConfigError::Flag { message })?;
        Ok(config)
    }

    /// The TLS files, if TLS is on.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        if self.tls_port == 0 {
            return None;
        }
        Some(TlsFiles {
            cert: self.tls_cert_file.clone()?,
            key: self.tls_key_file.clone()?,
            ca: self.tls_ca_cert_file.clone(),
            auth_clients: self.tls_auth_clients,
        })
    }

    /// TLS settings that cannot work together.
    fn check_tls(&self) -> Result<(), String> {
        if self.tls_port == 0 {
            return Ok(());
        }
        if self.tls_cert_file.is_none() || self.tls_key_file.is_none() {
            return Err("tls_port needs tls_cert_file and tls_key_file".into());
        }
        if self.tls_auth_clients != AuthClients::No && self.tls_ca_cert_file.is_none() {
            return Err(format!(
                "tls_auth_clients {} needs tls_ca_cert_file (or tls_auth_clients no)",
                self.tls_auth_clients.name()
            ));
        }
        if self.tls_port == self.port {
            return Err(format!("tls_port and port are both {}", self.port));
        }
        Ok(())
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
}

/// A path flag, empty meaning none.
fn path_flag(p: &Option<PathBuf>) -> Option<PathBuf> {
    p.clone().filter(|p| !p.as_os_str().is_empty())
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
mod tests;
