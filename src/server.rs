//! The listener: accepts connections up to the client cap, owns the
//! background sweep, and shuts everything down in order.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::persistence;
pub use crate::reload::{Reload, reload_config, reload_tls};
pub use crate::state::{REDIS_VERSION, Shared};
use crate::throttle_log::Throttled;

/// How long the listener waits after a failed accept (out of file
/// descriptors, ...) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The longest connections get to finish once shutdown begins.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// What the final snapshot is expected to take beyond the last one's time.
const SAVE_MARGIN: Duration = Duration::from_millis(500);

/// How long connections may take to finish at shutdown: what is left of
/// `shutdown_timeout` once the final snapshot (timed as the last one, with
/// half again and a margin) is reserved, and at most [`DRAIN_TIMEOUT`].
/// A client that never reads its replies cannot push the shutdown past it.
pub fn drain_budget(shared: &Shared) -> Duration {
    let total = Duration::from_millis(shared.config.shutdown_timeout_ms);
    let saving = shared.persistence.save_on_shutdown.load(Ordering::Relaxed);
    let save = if saving {
        let last = Duration::from_millis(shared.persistence.last_duration_ms());
        last + last / 2 + SAVE_MARGIN
    } else {
        Duration::ZERO
    };
    total.saturating_sub(save).min(DRAIN_TIMEOUT)
}

/// Serves `listener` until `signal` completes or a client sends `SHUTDOWN`;
/// then stops accepting, lets connections finish, stops the background
/// tasks and writes the final snapshot (unless `SHUTDOWN NOSAVE`).
/// Fails at once if the metrics address cannot be listened on, and at the
/// end if that snapshot cannot be written.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    signal: impl Future<Output = ()>,
) -> Result<(), String> {
    let listeners = Listeners {
        plain: Some(listener),
        tls: None,
    };
    serve(listeners, shared, signal).await
}

/// What the server listens on: plain TCP, TLS (with `shared.tls`'s
/// certificates), or both.
#[derive(Debug, Default)]
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub tls: Option<TcpListener>,
}

/// The next connection on `listener`; never, if there is none.
async fn accept(
    listener: &Option<TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// [`run`] on every listener of `listeners`.
pub async fn serve(
    listeners: Listeners,
    shared: Arc<Shared>,
    signal: impl Future<Output = ()>,
) -> Result<(), String> {
    let metrics = match &shared.config.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot serve metrics on '{addr}': {e}"))?,
        ),
        None => None,
    };
    let grpc = match &shared.config.grpc_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot serve gRPC on '{addr}': {e}"))?,
        ),
        None => None,
    };
    // Installed before the server says it listens: SIGHUP's default action
    // would end the process.
    #[cfg(unix)]
    let hangup = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::hangup())
            .map_err(|e| tracing::warn!("cannot listen for SIGHUP ({e}): policies will not reload"))
            .ok()
    };
    if let Some(Ok(addr)) = listeners.plain.as_ref().map(TcpListener::local_addr) {
        shared.set_port(addr.port());
        tracing::info!("tollgate listening on {addr}");
    }
    if let Some(Ok(addr)) = listeners.tls.as_ref().map(TcpListener::local_addr) {
        tracing::info!("tollgate listening for TLS on {addr}");
    }
    let mut stop = shared.shutdown_signal();
    let workers = Workers::start(worker_count(&shared.config));
    let mut background = JoinSet::new();
    background.spawn(sweeper(shared.clone(), shared.shutdown_signal()));
    if shared.config.snapshots {
        background.spawn(persistence::saver(
            shared.clone(),
            shared.config.save_points.clone(),
            shared.shutdown_signal(),
        ));
    } else {
        shared
            .persistence
            .save_on_shutdown
            .store(false, Ordering::Relaxed);
    }
    if let Some(l) = metrics {
        background.spawn(crate::metrics::endpoint::serve_http(
            l,
            shared.clone(),
            shared.shutdown_signal(),
        ));
    }
    if let Some(l) = grpc {
        background.spawn(crate::rls::service::serve(
            l,
            shared.clone(),
            shared.shutdown_signal(),
            workers.handles.clone(),
        ));
    }
    #[cfg(unix)]
    if let Some(hangup) = hangup {
        background.spawn(crate::reload::reload_on_hangup(
            shared.clone(),
            hangup,
            shared.shutdown_signal(),
        ));
    }
    let mut next_worker = 0usize;
    let (accept_log, denied_log) = (Throttled::default(), Throttled::default());
    let mut connections = JoinSet::new();
    tokio::pin!(signal);
    loop {
        let (accepted, over_tls) = tokio::select! {
            accepted = accept(&listeners.plain) => (accepted, false),
            accepted = accept(&listeners.tls) => (accepted, true),
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = &mut signal => break,
            _ = stop.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off, and say
                // so at most once a second.
                if let Some(left_out) = accept_log.admit(std::time::Instant::now()) {
                    tracing::warn!(more_since_last_line = left_out, "accept failed: {e}");
                }
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        shared
            .metrics
            .connections_received
            .fetch_add(1, Ordering::Relaxed);
        // A TLS client cannot read a plain line: it is only closed.
        let plain_line = |line: &'static [u8]| (!over_tls).then_some(line);
        if denied(&shared, peer) {
            if let Some(left_out) = denied_log.admit(std::time::Instant::now()) {
                tracing::warn!(%peer, more_since_last_line = left_out, "protected mode: refused a client from another host (no password is set)");
            }
            connections.spawn(reject(stream, plain_line(DENIED)));
            continue;
        }
        if shared.clients.count() >= shared.config.max_clients {
            shared
                .metrics
                .rejected_connections
                .fetch_add(1, Ordering::Relaxed);
            let full = b"-ERR max number of clients reached\r\n";
            connections.spawn(reject(stream, plain_line(full)));
            continue;
        }
        let tls = match over_tls {
            false => None,
            true => match shared.tls.acceptor() {
                Some(acceptor) => Some(acceptor),
                None => continue,
            },
        };
        let local = stream
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let guard = shared.clients.register(peer.to_string(), local);
        // Hand the socket to the next worker's own runtime.
        let Ok(std_stream) = stream.into_std() else {
            continue;
        };
        let (shared2, stop) = (shared.clone(), shared.shutdown_signal());
        let worker = workers.handle(next_worker);
        next_worker = next_worker.wrapping_add(1);
        connections.spawn_on(
            async move {
                if let Ok(stream) = tokio::net::TcpStream::from_std(std_stream) {
                    crate::connection::serve(stream, tls, shared2, guard, stop).await;
                }
            },
            worker,
        );
    }
    tracing::info!("shutting down");
    shared.begin_shutdown();
    drop(listeners);
    let budget = drain_budget(&shared);
    let drained = tokio::time::timeout(budget, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "shutdown: connections still open after {} ms closed, to keep within shutdown_timeout",
            budget.as_millis()
        );
        connections.shutdown().await;
    }
    workers.stop().await;
    while background.join_next().await.is_some() {}
    if shared.persistence.save_on_shutdown.load(Ordering::Relaxed) {
        persistence::save(shared.clone())
            .await
            .map_err(|e| format!("final snapshot failed: {e}"))?;
        tracing::info!(
            "final snapshot written to {}",
            shared.persistence.path.display()
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// Connection threads: from `threads` in the config, else
/// `TOKIO_WORKER_THREADS`, else one per core.
pub fn worker_count(config: &Config) -> usize {
    config
        .threads
        .or_else(|| std::env::var("TOKIO_WORKER_THREADS").ok()?.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}

/// Connection threads, each running its own single-threaded runtime, so a
/// connection's work never wakes another thread (thread-per-core; the
/// acceptor spreads connections round-robin).
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stop: watch::Sender<bool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(count: usize) -> Workers {
        let (stop, _) = watch::channel(false);
        let mut handles = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a connection runtime");
            handles.push(runtime.handle().clone());
            let mut stopped = stop.subscribe();
            let thread = std::thread::Builder::new()
                .name(format!("tollgate-conn-{i}"))
                .spawn(move || {
                    runtime.block_on(async {
                        let _ = stopped.wait_for(|&s| s).await;
                    });
                })
                .expect("a connection thread");
            threads.push(thread);
        }
        Workers {
            handles,
            stop,
            threads,
        }
    }

    fn handle(&self, n: usize) -> &tokio::runtime::Handle {
        &self.handles[n % self.handles.len()]
    }

    /// Stops the threads once their connections are done.
    async fn stop(self) {
        self.stop.send_replace(true);
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// Closes a connection that is not served, with one line if given.
async fn reject(mut stream: tokio::net::TcpStream, line: Option<&'static [u8]>) {
    use tokio::io::AsyncWriteExt;
    if let Some(line) = line {
        let _ = stream.write_all(line).await;
    }
    let _ = stream.shutdown().await;
}

/// What a client from another host is told in protected mode.
pub const DENIED: &[u8] = b"-DENIED tollgate is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. To accept clients from other hosts, either set a password (requirepass in the config file, --requirepass, or TOLLGATE_REQUIREPASS) and have clients AUTH, or, only on a network you trust, set protected_mode = false in the config file (or --protected-mode no) and restart.\r\n";

/// Whether protected mode turns this peer away: no password is set and it
/// is not on the loopback interface (as Redis: 127.0.0.1 and ::1 only).
fn denied(shared: &Shared, peer: std::net::SocketAddr) -> bool {
    let loopback = match peer.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => {
            ip == std::net::Ipv6Addr::LOCALHOST
                || ip.to_ipv4_mapped() == Some(std::net::Ipv4Addr::LOCALHOST)
        }
    };
    shared.config.protected_mode && shared.users.default_user().nopass && !loopback
}

/// Drops fresh states every `sweep_interval`, until shutdown.
/// Every shard is visited once per `sweep_interval`, one shard per tick, so
/// the work is spread evenly instead of arriving in one burst.
async fn sweeper(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let shards = shared.engine.store.shard_count() as u64;
    let period_us = shared.config.sweep_interval_ms.max(1) * 1_000 / shards;
    let mut tick = tokio::time::interval(Duration::from_micros(period_us.max(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next = 0usize;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let dropped = shared.engine.store.sweep_shard(next, shared.engine.clock.now());
                next = next.wrapping_add(1);
                if dropped > 0 {
                    tracing::trace!(dropped, "swept fresh states");
                }
            }
            _ = stop.changed() => return,
        }
    }
}
