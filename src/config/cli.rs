//! The command line: every flag, each also read from a `TOLLGATE_*`
//! environment variable.

use std::path::PathBuf;

use clap::Parser;

use super::values::parse_yes_no;

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
    /// Serve Envoy's rate limit service (gRPC) on this address (e.g. 127.0.0.1:8081) [default: off].
    #[arg(long, env = "TOLLGATE_GRPC_ADDR")]
    pub grpc_addr: Option<String>,
    /// ACL users file (Redis's aclfile format) [default: none].
    #[arg(long, env = "TOLLGATE_ACLFILE")]
    pub aclfile: Option<PathBuf>,
    /// Port to serve TLS on [default: 0, off]; with it, --port 0 means TLS only.
    #[arg(long, env = "TOLLGATE_TLS_PORT")]
    pub tls_port: Option<u16>,
    /// The server's certificate chain (PEM).
    #[arg(long, env = "TOLLGATE_TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long, env = "TOLLGATE_TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// CA certificates client certificates must chain to (PEM).
    #[arg(long, env = "TOLLGATE_TLS_CA_CERT_FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Client certificates: yes (required), optional or no [default: yes].
    #[arg(long, env = "TOLLGATE_TLS_AUTH_CLIENTS")]
    pub tls_auth_clients: Option<String>,
    /// Serve clients from other hosts without a password: yes or no [default: yes, loopback only].
    #[arg(long, env = "TOLLGATE_PROTECTED_MODE", value_parser = parse_yes_no)]
    pub protected_mode: Option<bool>,
    /// Bytes the store may hold, with k/kb/mb/gb like Redis [default: 0, no limit].
    #[arg(long, env = "TOLLGATE_MAXMEMORY")]
    pub maxmemory: Option<String>,
    /// Past maxmemory: noeviction (new keys get OOM) or volatile-ttl [default: noeviction].
    #[arg(long, env = "TOLLGATE_MAXMEMORY_POLICY")]
    pub maxmemory_policy: Option<String>,
    /// Cluster mode: off, emulated (one node owns every slot) or managed (slots from
    /// TOLLGATE.CLUSTER CONFIG) [default: off].
    #[arg(long, env = "TOLLGATE_CLUSTER_MODE")]
    pub cluster_mode: Option<String>,
    /// The address emulated cluster mode gives for this node [default: the one the client
    /// connected to].
    #[arg(long, env = "TOLLGATE_CLUSTER_ANNOUNCE_IP")]
    pub cluster_announce_ip: Option<String>,
    /// If the snapshot cannot be loaded, move it aside (dump.tgs.bad-TIME) and start empty
    /// instead of refusing to start.
    #[arg(long)]
    pub discard_bad_snapshot: bool,
    /// Check that a server answers PING on --bind/--port, then exit 0 (healthy) or 1.
    #[arg(long)]
    pub healthcheck: bool,
    /// A helper to run instead of the server.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Helpers the binary runs instead of the server.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Cluster helpers.
    Cluster {
        #[command(subcommand)]
        action: ClusterAction,
    },
}

/// `tollgate cluster ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ClusterAction {
    /// Ask each node (cluster_mode managed) its id, split the 16384 slots evenly among them
    /// in the order given, and push the same map to all (AUTH with --requirepass if set).
    Assign {
        /// Each node as clients reach it: HOST:PORT.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}
