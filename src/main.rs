//! The `tollgate` binary: parse the command line, load the config, restore
//! the snapshot, serve.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tollgate::clock::SystemClock;
use tollgate::config::{Cli, Config};
use tollgate::config::{ClusterAction, Command};
use tollgate::persistence;
use tollgate::server::{self, Shared};

/// jemalloc, as Redis uses: it gives memory back to the system as states
/// come and go, where the system allocator kept what sliding logs and
/// snapshot buffers once used (`--no-default-features` builds without it).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// mimalloc, built only to compare allocators (see the README's soak).
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.healthcheck {
        return healthcheck(&config);
    }
    if let Some(Command::Cluster {
        action: ClusterAction::Assign { nodes },
    }) = &cli.command
    {
        return match tollgate::cluster::assign::assign(nodes, config.requirepass.as_deref()) {
            Ok(lines) => {
                lines.iter().for_each(|l| println!("{l}"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate: cluster assign: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();
    #[cfg(feature = "jemalloc")]
    tollgate::memory::using_jemalloc();
    #[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
    tollgate::memory::using("mimalloc");

    let mut config = config;
    config.max_clients = fit_to_open_files(config.max_clients);
    log_start(&config);
    if config.snapshots
        && let Err(e) = persistence::check_writable(&config.data_dir)
    {
        eprintln!("tollgate: {e}");
        return ExitCode::FAILURE;
    }
    if config.snapshots {
        for (path, bytes) in tollgate::snapshot::remove_orphans(&config.data_dir) {
            tracing::warn!(
                "removed {} ({bytes} bytes), left by a save that a crash cut short",
                path.display()
            );
        }
    }
    if let Err(e) = tollgate::cluster::Cluster::open(config.cluster_mode, &config.data_dir) {
        eprintln!("tollgate: cluster state {e}");
        return ExitCode::FAILURE;
    }
    let shared = Shared::new(config, Arc::new(SystemClock));
    if shared.config.snapshots
        && let Err(e) = restore(&shared, cli.discard_bad_snapshot)
    {
        eprintln!("tollgate: {e}");
        return ExitCode::FAILURE;
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tollgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(path) = &shared.config.aclfile {
        let requirepass = shared.config.requirepass.as_deref();
        match shared
            .users
            .load(path, requirepass, &tollgate::command::ACL_CATALOG)
        {
            Ok(n) => tracing::info!("{n} ACL users loaded from {}", path.display()),
            Err(e) => {
                eprintln!("tollgate: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = shared.tls.load(&shared.config) {
        eprintln!("tollgate: {e}");
        return ExitCode::FAILURE;
    }
    runtime.block_on(async {
        let config = &shared.config;
        let bind = |port: u16| {
            let addr = format!("{}:{}", config.bind, port);
            async move {
                tokio::net::TcpListener::bind(&addr)
                    .await
                    .map_err(|e| format!("cannot listen on {addr}: {e}"))
            }
        };
        // With TLS on, port 0 means TLS only (as Redis); without, any free port.
        let tls_on = config.tls_port != 0;
        let plain = match (config.port, tls_on) {
            (0, true) => Ok(None),
            (port, _) => bind(port).await.map(Some),
        };
        let tls = match tls_on {
            true => bind(config.tls_port).await.map(Some),
            false => Ok(None),
        };
        let (plain, tls) = match (plain, tls) {
            (Ok(plain), Ok(tls)) => (plain, tls),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("tollgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listeners = server::Listeners { plain, tls };
        match server::serve(listeners, shared.clone(), stop_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tollgate: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Restores the snapshot in the data directory, logging what was found.
fn restore(shared: &Shared, discard_bad: bool) -> Result<(), String> {
    match persistence::load_into(shared, discard_bad) {
        Ok(persistence::Loaded::Nothing) => {
            tracing::info!(
                "no snapshot at {}: starting empty",
                shared.persistence.path.display()
            )
        }
        Ok(persistence::Loaded::Restored(n)) => {
            tracing::info!(
                "restored {n} limiter states from {}",
                shared.persistence.path.display()
            )
        }
        Ok(persistence::Loaded::MovedAside(aside, why)) => {
            tracing::warn!("{why}; moved to {} and starting empty", aside.display())
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// The start-up line: what this server is and what it runs with.
fn log_start(config: &Config) {
    let file = config.config_file.as_ref().map_or_else(
        || "none (built-in defaults)".to_string(),
        |p| persistence::absolute(p).display().to_string(),
    );
    let snapshots = if config.snapshots {
        persistence::absolute(&tollgate::snapshot::path_in(&config.data_dir))
            .display()
            .to_string()
    } else {
        "off".to_string()
    };
    tracing::info!(
        "tollgate {} starting: config file {file}, {} config policies, {} connection threads, password {}, snapshot {snapshots}",
        env!("CARGO_PKG_VERSION"),
        config.policies.len(),
        server::worker_count(config),
        match (&config.aclfile, &config.requirepass) {
            (Some(_), _) => "as the aclfile says",
            (None, Some(_)) => "required",
            (None, None) => "not required",
        },
    );
}

/// `--healthcheck`: PING the server at the configured address (after AUTH
/// with the configured password), and exit 0 on PONG. Anything else prints
/// the server's own reply (e.g. `NOAUTH Authentication required.`) or the
/// connection error, and exits 1.
fn healthcheck(config: &Config) -> ExitCode {
    let host = match config.bind.as_str() {
        "0.0.0.0" => "127.0.0.1",
        "::" | "[::]" => "::1",
        other => other,
    };
    let addr = if host.contains(':') {
        format!("[{host}]:{}", config.port)
    } else {
        format!("{host}:{}", config.port)
    };
    match probe(&addr, config.requirepass.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tollgate: healthcheck of {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends `[AUTH password] PING` as RESP arrays (any password bytes are safe)
/// and reads one reply line for each.
fn probe(addr: &str, password: Option<&str>) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Write};
    use std::time::Duration;
    let target = std::net::ToSocketAddrs::to_socket_addrs(addr)
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let stream = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let mut request = Vec::new();
    if let Some(pass) = password {
        request.extend(tollgate::resp::encode_request(&[b"AUTH", pass.as_bytes()]));
    }
    request.extend(tollgate::resp::encode_request(&[b"PING"]));
    (&stream).write_all(&request).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(&stream);
    for _ in 0..1 + usize::from(password.is_some()) {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => return Err("connection closed without a reply".into()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err("no reply within 2 s".into());
            }
            Err(e) => return Err(e.to_string()),
        }
        let line = line.trim_end();
        if let Some(error) = line.strip_prefix('-') {
            return Err(error.to_string());
        }
        if line == "+PONG" {
            return Ok(());
        }
    }
    Err("no PONG".into())
}

/// Completes on SIGINT or SIGTERM.
/// File descriptors kept for the listener, the snapshot, the metrics
/// endpoint and the runtime, beyond one per client (Redis keeps 32).
const RESERVED_FDS: u64 = 32;

/// Raises the open-file limit to what `max_clients` needs, if the system
/// allows; if not, answers the most clients that fit, with a WARN line (as
/// Redis lowers `maxclients`). Connections past the limit would otherwise
/// sit accepted by the kernel and never served.
fn fit_to_open_files(max_clients: usize) -> usize {
    let wanted = max_clients as u64 + RESERVED_FDS;
    let got = match rlimit::increase_nofile_limit(wanted) {
        Ok(got) => got,
        Err(e) => {
            tracing::warn!(
                "cannot read the open-file limit ({e}); max_clients stays {max_clients}"
            );
            return max_clients;
        }
    };
    if got >= wanted {
        return max_clients;
    }
    let fits = usize::try_from(got.saturating_sub(RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(1);
    tracing::warn!(
        "max_clients {max_clients} needs {wanted} open files, but the limit is {got} and could not be raised: max_clients lowered to {fits} (raise it with ulimit -n, or LimitNOFILE in systemd)"
    );
    fits
}

/// Completes on SIGTERM or SIGINT. The handlers are installed when this is
/// called, before the server listens: a signal that comes right after the
/// start-up line still gets the final snapshot.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).ok();
        let int = signal(SignalKind::interrupt()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(term) => {}
                _ = wait(int) => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
