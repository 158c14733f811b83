//! The state every connection shares: the [`Engine`] a check needs (store,
//! policies, clock) and the services around it (persistence status, metrics,
//! clients, waits, shutdown). It sits below the server, the connections and
//! the commands, and imports none of them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Instant;

use tokio::sync::watch;

use crate::clients::Clients;
use crate::clock::Clock;
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::persistence::status::Persistence;
use crate::wait::WaitQueues;

/// The Redis version whose commands and replies tollgate follows.
pub const REDIS_VERSION: &str = "7.2.0";

/// Everything the connections share: the engine, then the services.
pub struct Shared {
    pub engine: Engine,
    pub config: Config,
    pub clients: Arc<Clients>,
    pub metrics: Metrics,
    pub waits: Arc<WaitQueues>,
    pub persistence: Persistence,
    /// Who may connect and what they may run (ACL).
    pub users: crate::acl::Users,
    /// The certificates TLS connections are accepted with (none: TLS off).
    pub tls: crate::tls::Tls,
    /// Cluster mode: this node's id and slot map.
    pub cluster: crate::cluster::Cluster,
    /// The Envoy rate limit service's domains, options and counters.
    pub rls: crate::rls::Rls,
    pub started: Instant,
    port: AtomicU16,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Server state with the config file's policies loaded.
    pub fn new(config: Config, clock: Arc<dyn Clock>) -> Arc<Shared> {
        let (shutdown, _) = watch::channel(false);
        let snapshot_path = crate::snapshot::path_in(&config.data_dir);
        let started_secs = clock.now() / 1_000_000_000;
        // The binary opens the cluster state first and stops on an error
        // (`nodes.json` unreadable); here it is known to open.
        let cluster = crate::cluster::Cluster::open(config.cluster_mode, &config.data_dir)
            .unwrap_or_else(|e| {
                tracing::error!("cluster state not loaded, cluster mode off: {e}");
                crate::cluster::Cluster::off()
            });
        let engine = Engine::new(config.policies.clone(), clock);
        engine
            .store
            .set_maxmemory(config.maxmemory, config.maxmemory_policy);
        Arc::new(Shared {
            persistence: Persistence::new(snapshot_path, started_secs),
            tls: crate::tls::Tls::default(),
            cluster,
            rls: crate::rls::Rls::new(config.domains.clone(), config.rls),
            users: crate::acl::Users::new(config.requirepass.as_deref()),
            port: AtomicU16::new(config.port),
            engine,
            config,
            clients: Arc::new(Clients::default()),
            metrics: Metrics::default(),
            waits: Arc::new(WaitQueues::default()),
            started: Instant::now(),
            shutdown,
        })
    }

    /// The port actually listened on.
    pub fn port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }

    /// Records the port listened on (0 in the config picks a free one).
    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::Relaxed);
    }

    /// Asks the server to stop (as `SHUTDOWN` does).
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A receiver that changes when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
