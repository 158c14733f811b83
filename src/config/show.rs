//! What `CONFIG GET` shows of the settings, and which of them a reload
//! (SIGHUP) cannot change.

use std::path::PathBuf;

use super::{Config, HIDDEN, SavePoint};

impl Config {
    /// The settings that differ in `other` but take effect only on restart
    /// (everything but the policies and the domains), by their config-file
    /// names.
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
            ("save", self.save_points != other.save_points),
            ("snapshots", self.snapshots != other.snapshots),
            ("metrics_addr", self.metrics_addr != other.metrics_addr),
            ("grpc_addr", self.grpc_addr != other.grpc_addr),
            ("rls_consume", self.rls.consume != other.rls.consume),
            ("rls_headers", self.rls.headers != other.rls.headers),
            ("threads", self.threads != other.threads),
            ("requirepass", self.requirepass != other.requirepass),
            ("timeout", self.timeout_secs != other.timeout_secs),
            (
                "tcp_keepalive",
                self.tcp_keepalive_secs != other.tcp_keepalive_secs,
            ),
            (
                "maxmemory_clients",
                self.maxmemory_clients != other.maxmemory_clients,
            ),
            ("maxmemory", self.maxmemory != other.maxmemory),
            (
                "maxmemory_policy",
                self.maxmemory_policy != other.maxmemory_policy,
            ),
            ("cluster_mode", self.cluster_mode != other.cluster_mode),
            (
                "cluster_announce_ip",
                self.cluster_announce_ip != other.cluster_announce_ip,
            ),
            (
                "protected_mode",
                self.protected_mode != other.protected_mode,
            ),
            (
                "shutdown_timeout",
                self.shutdown_timeout_ms != other.shutdown_timeout_ms,
            ),
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
            // Never the password itself: whether one is set.
            (
                "requirepass",
                self.requirepass.as_ref().map_or("", |_| HIDDEN).to_string(),
            ),
            ("sweep-interval", format!("{}ms", self.sweep_interval_ms)),
            (
                "metrics-addr",
                self.metrics_addr.clone().unwrap_or_default(),
            ),
            ("grpc-addr", self.grpc_addr.clone().unwrap_or_default()),
            ("rls-consume", self.rls.consume.name().into()),
            ("rls-headers", self.rls.headers.name().into()),
            (
                "rls-config",
                self.rls_config
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("dbfilename", crate::snapshot::FILE_NAME.into()),
            ("databases", "1".into()),
            (
                "save",
                // Redis's `save ""`: no snapshot is written on its own.
                if self.snapshots {
                    SavePoint::show(&self.save_points)
                } else {
                    String::new()
                },
            ),
            ("appendonly", "no".into()),
            ("timeout", self.timeout_secs.to_string()),
            ("tcp-keepalive", self.tcp_keepalive_secs.to_string()),
            ("maxmemory-clients", self.maxmemory_clients.to_string()),
            ("maxmemory", self.maxmemory.to_string()),
            ("maxmemory-policy", self.maxmemory_policy.name().into()),
            ("cluster-mode", self.cluster_mode.name().into()),
            (
                "cluster-announce-ip",
                self.cluster_announce_ip.clone().unwrap_or_default(),
            ),
            (
                "protected-mode",
                if self.protected_mode { "yes" } else { "no" }.into(),
            ),
            ("aclfile", shown(&self.aclfile)),
            (
                "shutdown-timeout",
                self.shutdown_timeout_ms.div_ceil(1000).to_string(),
            ),
            ("tls-port", self.tls_port.to_string()),
            ("tls-cert-file", shown(&self.tls_cert_file)),
            ("tls-key-file", shown(&self.tls_key_file)),
            ("tls-ca-cert-file", shown(&self.tls_ca_cert_file)),
            ("tls-auth-clients", self.tls_auth_clients.name().into()),
        ]
    }
}

/// A path as `CONFIG GET` shows it ("" for none).
fn shown(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}
