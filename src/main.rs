//! The `tollgate` binary: parse the command line, load the config, restore
//! the snapshot, serve.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tollgate::clock::SystemClock;
use tollgate::config::{Cli, Config};
use tollgate::persistence;
use tollgate::server::{self, Shared};

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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();

    let shared = Shared::new(config, Arc::new(SystemClock));
    match persistence::load_into(&shared, cli.discard_bad_snapshot) {
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
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::FAILURE;
        }
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
    runtime.block_on(async {
        let addr = format!("{}:{}", shared.config.bind, shared.config.port);
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("tollgate: cannot listen on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        match server::run(listener, shared, stop_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("tollgate: final snapshot failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `--healthcheck`: PING the server at the configured address.
fn healthcheck(config: &Config) -> ExitCode {
    use std::io::{Read, Write};
    use std::time::Duration;
    let host = if config.bind == "0.0.0.0" {
        "127.0.0.1"
    } else {
        &config.bind
    };
    let addr = format!("{host}:{}", config.port);
    let probe = || -> std::io::Result<bool> {
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let ping: &[u8] = match &config.requirepass {
            Some(pass) => &format!("AUTH {pass}\r\nPING\r\n").into_bytes(),
            None => b"PING\r\n",
        };
        s.write_all(ping)?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 64];
        while !reply.ends_with(b"+PONG\r\n") && reply.len() < 256 {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        Ok(reply.ends_with(b"+PONG\r\n"))
    };
    match probe() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("tollgate: {addr} did not answer PONG");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("tollgate: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
