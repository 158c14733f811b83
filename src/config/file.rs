//! The config file's grammar: TOML read with the span of every value, so
//! that each error names its line, column and key.

use super::{ClusterMode, EvictionPolicy};
use std::ops::Range;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{Config, valid_log_level};
use crate::limiter::rule::{
    RuleError, build_params, count_in, parse_algorithm, parse_duration, valid_policy_name,
};
use crate::limiter::{MAX_BUCKETS, MAX_COUNT};
use crate::policy::{MAX_POLICIES, MAX_RULES, Policy, PolicyError, too_many_rules};
use crate::rls::options::{Consume, Headers};
use crate::rls::tree::{DomainFile, Domains};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    data_dir: Option<Spanned<PathBuf>>,
    log_level: Option<Spanned<String>>,
    max_clients: Option<Spanned<usize>>,
    max_arg_bytes: Option<Spanned<usize>>,
    max_query_buffer_bytes: Option<Spanned<usize>>,
    sweep_interval: Option<Spanned<String>>,
    snapshot_interval: Option<Spanned<String>>,
    save: Option<Spanned<String>>,
    snapshots: Option<Spanned<bool>>,
    metrics_addr: Option<Spanned<String>>,
    threads: Option<Spanned<usize>>,
    requirepass: Option<Spanned<String>>,
    timeout: Option<Spanned<u64>>,
    tcp_keepalive: Option<Spanned<u64>>,
    maxmemory_clients: Option<Spanned<String>>,
    maxmemory: Option<Spanned<String>>,
    maxmemory_policy: Option<Spanned<String>>,
    cluster_mode: Option<Spanned<String>>,
    cluster_announce_ip: Option<Spanned<String>>,
    protected_mode: Option<Spanned<bool>>,
    aclfile: Option<Spanned<PathBuf>>,
    shutdown_timeout: Option<Spanned<String>>,
    tls_port: Option<Spanned<u16>>,
    tls_cert_file: Option<Spanned<PathBuf>>,
    tls_key_file: Option<Spanned<PathBuf>>,
    tls_ca_cert_file: Option<Spanned<PathBuf>>,
    tls_auth_clients: Option<Spanned<String>>,
    grpc_addr: Option<Spanned<String>>,
    rls_consume: Option<Spanned<String>>,
    rls_headers: Option<Spanned<String>>,
    rls_config: Option<Spanned<Vec<PathBuf>>>,
    #[serde(default)]
    policy: Vec<Spanned<FilePolicy>>,
    #[serde(default)]
    domain: Vec<Spanned<DomainFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePolicy {
    name: Spanned<String>,
    rules: Spanned<Vec<Spanned<FileRule>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRule {
    algorithm: Spanned<String>,
    limit: Spanned<u64>,
    window: Spanned<String>,
    burst: Option<Spanned<u64>>,
    buckets: Option<Spanned<u32>>,
}

/// Places in the file's text, for error lines.
struct Text<'a>(&'a str);

impl Text<'_> {
    /// `line L, column C, key K: why` for the value at `span`.
    fn error(&self, span: Range<usize>, why: impl std::fmt::Display) -> String {
        let start = span.start.min(self.0.len());
        let before = &self.0[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        match self.key_at(span) {
            Some(key) => format!("line {line}, column {column}, key {key}: {why}"),
            None => format!("line {line}, column {column}: {why}"),
        }
    }

    /// The key a span belongs to: the span itself when it is a key (an
    /// unknown field), else the key before the nearest `=` on its left on
    /// the same line (none for a whole table, such as a missing field's).
    fn key_at(&self, span: Range<usize>) -> Option<String> {
        let is_key = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        let own = self.0.get(span.clone()).unwrap_or("");
        let after = self.0.get(span.end..).unwrap_or("").trim_start();
        if !own.is_empty() && own.chars().all(is_key) && after.starts_with('=') {
            return Some(own.to_string());
        }
        let before = self.0.get(..span.start)?;
        let eq = before
            .rfind('=')
            .filter(|&eq| !before[eq..].contains('\n'))?;
        let head = before[..eq].trim_end();
        let key: String = head.chars().rev().take_while(|&c| is_key(c)).collect();
        (!key.is_empty()).then(|| key.chars().rev().collect())
    }
}

fn positive(text: &Text, value: Option<Spanned<usize>>, default: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(v) if *v.get_ref() == 0 => Err(text.error(v.span(), "must be at least 1")),
        Some(v) => Ok(v.into_inner()),
    }
}

fn duration_ms(text: &Text, name: &'static str, value: &Spanned<String>) -> Result<u64, String> {
    parse_duration(name, value.get_ref().as_bytes())
        .map(|ns| ns / crate::clock::NANOS_PER_MS)
        .map_err(|e| text.error(value.span(), e))
}

/// Parses and validates TOML text on top of the defaults.
pub(super) fn parse(text: &str) -> Result<Config, String> {
    let t = Text(text);
    let file: FileConfig = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => t.error(span, e.message()),
        None => e.message().to_string(),
    })?;
    let mut c = Config::default();
    let take = |v: Option<Spanned<String>>| v.map(Spanned::into_inner);
    c.bind = take(file.bind).unwrap_or(c.bind);
    c.port = file.port.map_or(c.port, Spanned::into_inner);
    c.data_dir = file.data_dir.map_or(c.data_dir, Spanned::into_inner);
    if let Some(level) = &file.log_level {
        c.log_level = valid_log_level(level.get_ref()).map_err(|e| t.error(level.span(), e))?;
    }
    c.max_clients = positive(&t, file.max_clients, c.max_clients)?;
    c.max_arg_bytes = positive(&t, file.max_arg_bytes, c.max_arg_bytes)?;
    c.max_query_buffer_bytes = positive(&t, file.max_query_buffer_bytes, c.max_query_buffer_bytes)?;
    if let Some(s) = &file.sweep_interval {
        c.sweep_interval_ms = duration_ms(&t, "sweep_interval", s)?;
    }
    match (&file.snapshot_interval, &file.save) {
        (Some(_), Some(s)) => {
            return Err(t.error(s.span(), "use save or snapshot_interval, not both"));
        }
        // The older form: every interval if anything changed.
        (Some(s), None) => {
            c.save_points = vec![super::SavePoint {
                after_ms: duration_ms(&t, "snapshot_interval", s)?,
                changes: 1,
            }];
        }
        (None, Some(s)) => {
            c.save_points =
                super::SavePoint::parse(s.get_ref()).map_err(|e| t.error(s.span(), e))?;
        }
        (None, None) => {}
    }
    c.snapshots = file.snapshots.map_or(c.snapshots, Spanned::into_inner);
    c.metrics_addr = take(file.metrics_addr).filter(|a| !a.is_empty());
    c.threads = match file.threads {
        Some(n) if *n.get_ref() > 1024 => {
            return Err(t.error(n.span(), "threads must be at most 1024 (0: one per core)"));
        }
        Some(n) => Some(n.into_inner()).filter(|&n| n > 0),
        None => None,
    };
    c.requirepass = take(file.requirepass).filter(|p| !p.is_empty());
    c.timeout_secs = file.timeout.map_or(c.timeout_secs, Spanned::into_inner);
    c.tcp_keepalive_secs = file
        .tcp_keepalive
        .map_or(c.tcp_keepalive_secs, Spanned::into_inner);
    if let Some(size) = &file.maxmemory_clients {
        c.maxmemory_clients =
            super::parse_bytes(size.get_ref()).map_err(|e| t.error(size.span(), e))?;
    }
    if let Some(size) = &file.maxmemory {
        c.maxmemory = super::parse_bytes(size.get_ref()).map_err(|e| t.error(size.span(), e))?;
    }
    if let Some(mode) = &file.cluster_mode {
        c.cluster_mode = ClusterMode::parse(mode.get_ref()).map_err(|e| t.error(mode.span(), e))?;
    }
    if let Some(ip) = file.cluster_announce_ip {
        c.cluster_announce_ip = Some(ip.into_inner()).filter(|ip| !ip.is_empty());
    }
    if let Some(policy) = &file.maxmemory_policy {
        c.maxmemory_policy =
            EvictionPolicy::parse(policy.get_ref()).map_err(|e| t.error(policy.span(), e))?;
    }
    c.protected_mode = file
        .protected_mode
        .map_or(c.protected_mode, Spanned::into_inner);
    if let Some(s) = &file.shutdown_timeout {
        c.shutdown_timeout_ms = duration_ms(&t, "shutdown_timeout", s)?;
    }
    c.tls_port = file.tls_port.map_or(c.tls_port, Spanned::into_inner);
    let path = |p: Option<Spanned<PathBuf>>| {
        p.map(Spanned::into_inner)
            .filter(|p| !p.as_os_str().is_empty())
    };
    c.aclfile = path(file.aclfile);
    c.tls_cert_file = path(file.tls_cert_file);
    c.tls_key_file = path(file.tls_key_file);
    c.tls_ca_cert_file = path(file.tls_ca_cert_file);
    if let Some(auth) = &file.tls_auth_clients {
        c.tls_auth_clients =
            super::AuthClients::parse(auth.get_ref()).map_err(|e| t.error(auth.span(), e))?;
    }
    let mut policies: Vec<Policy> = Vec::new();
    for p in file.policy {
        let span = p.span();
        let policy = file_policy(&t, p.into_inner())?;
        if policies.iter().any(|q| q.name == policy.name) {
            return Err(t.error(span, format!("policy '{}' is defined twice", policy.name)));
        }
        if policies.len() == MAX_POLICIES {
            return Err(t.error(span, PolicyError::TooMany.to_string()));
        }
        policies.push(policy);
    }
    c.policies = policies;
    c.grpc_addr = take(file.grpc_addr).filter(|a| !a.is_empty());
    if let Some(mode) = &file.rls_consume {
        c.rls.consume = Consume::parse(mode.get_ref()).map_err(|e| t.error(mode.span(), e))?;
    }
    if let Some(form) = &file.rls_headers {
        c.rls.headers = Headers::parse(form.get_ref()).map_err(|e| t.error(form.span(), e))?;
    }
    let span = file.domain.first().map(|d| d.span());
    let mut domains: Vec<DomainFile> = file.domain.into_iter().map(Spanned::into_inner).collect();
    if let Some(paths) = file.rls_config {
        for path in paths.get_ref() {
            let yaml = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|text| crate::rls::tree::from_yaml(&text))
                .map_err(|e| {
                    t.error(paths.span(), format!("rls_config {}: {e}", path.display()))
                })?;
            domains.extend(yaml);
        }
        c.rls_config = paths.into_inner();
    }
    c.domains =
        Domains::build(&domains, &c.policies).map_err(|e| t.error(span.unwrap_or(0..0), e))?;
    Ok(c)
}

fn file_policy(t: &Text, p: FilePolicy) -> Result<Policy, String> {
    let name = p.name.get_ref().clone();
    valid_policy_name(&name).map_err(|e| t.error(p.name.span(), e))?;
    if p.rules.get_ref().is_empty() {
        return Err(t.error(p.rules.span(), format!("policy '{name}' has no rules")));
    }
    if p.rules.get_ref().len() > MAX_RULES {
        return Err(t.error(p.rules.span(), too_many_rules(&name)));
    }
    let mut rules = Vec::new();
    for rule in p.rules.into_inner() {
        let span = rule.span();
        let r = rule.into_inner();
        let in_policy =
            |span: Range<usize>, why: String| t.error(span, format!("policy '{name}': {why}"));
        let algorithm = parse_algorithm(r.algorithm.get_ref().as_bytes())
            .map_err(|e| in_policy(r.algorithm.span(), e.to_string()))?;
        // The wire's range checks and words: `invalid limit '0': expected ...`.
        let count = |name, v: &Spanned<u64>, max| {
            count_in(name, *v.get_ref(), 1, max).map_err(|e| in_policy(v.span(), e.to_string()))
        };
        let limit = count("limit", &r.limit, MAX_COUNT)?;
        let burst = r
            .burst
            .as_ref()
            .map(|b| count("burst", b, MAX_COUNT))
            .transpose()?;
        let buckets = match &r.buckets {
            Some(b) => {
                let spanned = Spanned::new(b.span(), u64::from(*b.get_ref()));
                Some(count("buckets", &spanned, u64::from(MAX_BUCKETS))? as u32)
            }
            None => None,
        };
        let window = parse_duration("window", r.window.get_ref().as_bytes())
            .map_err(|e| in_policy(r.window.span(), e.to_string()))?;
        let params = build_params(algorithm, limit, window, burst, buckets)
            .map_err(|e: RuleError| in_policy(span.clone(), e.to_string()))?;
        rules.push(params);
    }
    Ok(Policy {
        name,
        rules,
        from_config: true,
    })
}
