//! Reloading on SIGHUP: the config file's policies and rate limit service
//! domains, with `rls_config`'s YAML files (everything else needs
//! a restart, and the log says which) and the TLS certificates.

use std::sync::Arc;

use tokio::sync::watch;

use crate::config::Config;
use crate::policy::PolicyChanges;
use crate::state::Shared;

/// What a reload of the config file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Policies the file defines now.
    pub policies: usize,
    /// Rate limit service domains (the file's and `rls_config`'s) now.
    pub domains: usize,
    pub changes: PolicyChanges,
    /// Settings changed in the file that take effect only on restart.
    pub restart_needed: Vec<&'static str>,
}

/// Re-reads the config file (with the same flags on top) and applies its
/// policies; the old ones stay if it is bad.
pub fn reload_config(shared: &Shared) -> Result<Reload, String> {
    let Some(path) = &shared.config.config_file else {
        return Err("no config file to reload (started without --config)".into());
    };
    let config = Config::from_file(path)
        .and_then(|c| c.with_flags(&shared.config.flags))
        .map_err(|e| e.to_string())?;
    let restart_needed = shared.config.restart_needed(&config);
    let policies = config.policies.len();
    let changes = shared.engine.policies.replace_config(config.policies);
    let domains = config.domains.len();
    shared.rls.set_domains(config.domains);
    Ok(Reload {
        policies,
        domains,
        changes,
        restart_needed,
    })
}

/// Logs a reload as an operator wants to read it.
fn log_reload(result: Result<Reload, String>) {
    let r = match result {
        Ok(r) => r,
        Err(e) => return tracing::error!("SIGHUP: config not reloaded, old policies kept: {e}"),
    };
    tracing::info!(
        "SIGHUP: reloaded {} policies and {} rate limit service domains from the config file: {}",
        r.policies,
        r.domains,
        r.changes
    );
    for name in &r.changes.replaced_run_time {
        tracing::warn!("SIGHUP: run-time policy '{name}' replaced: the config file defines it");
    }
    if !r.restart_needed.is_empty() {
        tracing::warn!(
            "SIGHUP: {} changed in the config file but take effect only on restart",
            r.restart_needed.join(", ")
        );
    }
}

/// Reads the TLS certificate, key and CA files again (same paths), for new
/// connections; a failure keeps the old ones. Logs what happened.
pub fn reload_tls(shared: &Shared) {
    if shared.config.tls_files().is_none() {
        return;
    }
    match shared.tls.load(&shared.config) {
        Ok(()) => tracing::info!("SIGHUP: TLS certificates reloaded for new connections"),
        Err(e) => tracing::error!("SIGHUP: TLS certificates not reloaded, old ones kept: {e}"),
    }
}

/// Reloads the config file's policies and the TLS certificates on SIGHUP,
/// until shutdown.
#[cfg(unix)]
pub(crate) async fn reload_on_hangup(
    shared: Arc<Shared>,
    mut hangup: tokio::signal::unix::Signal,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                if shared.config.config_file.is_some() {
                    log_reload(reload_config(&shared));
                }
                reload_tls(&shared);
            }
            _ = stop.changed() => return,
        }
    }
}
