//! Envoy's Rate Limit Service (v3, gRPC) on the same store as RESP:
//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, with the
//! standard health service and server reflection, on `grpc_addr`.
//!
//! - [`tree`]: domains and their descriptor trees (config file and
//!   envoyproxy/ratelimit YAML), matching, and the store key of a descriptor.
//! - [`options`]: `rls_consume` and `rls_headers`.
//! - [`decide`]: one call decided against the store (pure but for the
//!   store); `report.rs`: the units and headers of its answer.
//! - [`forward`]: cluster mode: descriptors forwarded to the node that
//!   serves their slot.
//! - [`service`]: the tonic service and the gRPC server.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

pub mod decide;
pub mod forward;
pub mod options;
mod report;
pub mod service;
pub mod tree;

pub use options::{Consume, Headers, Options};
pub use tree::{DomainFile, Domains};

/// The protobuf descriptors reflection serves: `rls.proto` and what it
/// imports (written by `examples/rls_descriptors.rs`).
pub const DESCRIPTORS: &[u8] = include_bytes!("descriptors.bin");

/// What a call was answered, as the metrics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Ok,
    OverLimit,
    InvalidArgument,
    FailedPrecondition,
    ResourceExhausted,
    Unavailable,
}

impl Answer {
    pub const ALL: [Answer; 6] = [
        Answer::Ok,
        Answer::OverLimit,
        Answer::InvalidArgument,
        Answer::FailedPrecondition,
        Answer::ResourceExhausted,
        Answer::Unavailable,
    ];

    /// The `code` label.
    pub fn name(self) -> &'static str {
        match self {
            Answer::Ok => "ok",
            Answer::OverLimit => "over_limit",
            Answer::InvalidArgument => "invalid_argument",
            Answer::FailedPrecondition => "failed_precondition",
            Answer::ResourceExhausted => "resource_exhausted",
            Answer::Unavailable => "unavailable",
        }
    }
}

/// The label of calls for a domain nobody configured (one series for all,
/// so a client cannot grow the label set).
pub const UNKNOWN_DOMAIN: &str = "(unknown)";

/// Calls by domain and answer, and shadow-mode descriptors over their
/// limit by domain. Only configured domains get series of their own.
#[derive(Debug, Default)]
pub struct Counts {
    by_domain: RwLock<HashMap<String, DomainCounts>>,
}

#[derive(Debug, Default)]
pub struct DomainCounts {
    answers: [AtomicU64; 6],
    shadow_over: AtomicU64,
}

impl Counts {
    /// Counts a call for `domain` (a configured one, or [`UNKNOWN_DOMAIN`]).
    pub fn count(&self, domain: &str, answer: Answer) {
        self.add(domain, Some(answer), 0);
    }

    fn add(&self, domain: &str, answer: Option<Answer>, shadow_over: u64) {
        let bump = |counts: &DomainCounts| {
            if let Some(answer) = answer {
                let i = Answer::ALL.iter().position(|&a| a == answer).unwrap_or(0);
                counts.answers[i].fetch_add(1, Ordering::Relaxed);
            }
            if shadow_over > 0 {
                counts.shadow_over.fetch_add(shadow_over, Ordering::Relaxed);
            }
        };
        // Counted under the read lock; the write lock only for a new domain.
        if let Some(counts) = self.by_domain.read().get(domain) {
            return bump(counts);
        }
        bump(
            self.by_domain
                .write()
                .entry(domain.to_string())
                .or_default(),
        );
    }

    /// (domain, [calls by answer in [`Answer::ALL`] order], shadow over),
    /// sorted by domain.
    pub fn read(&self) -> Vec<(String, [u64; 6], u64)> {
        let map = self.by_domain.read();
        let mut out: Vec<_> = map
            .iter()
            .map(|(d, c)| {
                let answers = std::array::from_fn(|i| c.answers[i].load(Ordering::Relaxed));
                (d.clone(), answers, c.shadow_over.load(Ordering::Relaxed))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Idle connections to other nodes, by address (cluster mode).
pub type Peers = parking_lot::Mutex<HashMap<String, Vec<crate::cluster::peer::Peer>>>;

/// The service's state: the domains (replaced whole on reload), the
/// options, the counters.
#[derive(Debug, Default)]
pub struct Rls {
    domains: RwLock<Arc<Domains>>,
    pub options: Options,
    pub counts: Counts,
    /// The address the gRPC server listens on, once it does.
    addr: std::sync::OnceLock<std::net::SocketAddr>,
    /// Idle connections to the other nodes (cluster mode).
    peers: Peers,
}

impl Rls {
    pub fn new(domains: Domains, options: Options) -> Rls {
        Rls {
            domains: RwLock::new(Arc::new(domains)),
            options,
            counts: Counts::default(),
            addr: std::sync::OnceLock::new(),
            peers: Peers::default(),
        }
    }

    /// Where the gRPC server listens (`None`: off, or not yet).
    pub fn addr(&self) -> Option<std::net::SocketAddr> {
        self.addr.get().copied()
    }

    /// The domains now.
    pub fn domains(&self) -> Arc<Domains> {
        self.domains.read().clone()
    }

    /// Replaces the domains (SIGHUP).
    pub fn set_domains(&self, domains: Domains) {
        *self.domains.write() = Arc::new(domains);
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorSet;

    /// Reflection can answer for the service: its file and every file it
    /// imports are in the set, each after its dependencies.
    #[test]
    fn the_descriptor_set_is_complete() {
        let set = FileDescriptorSet::decode(super::DESCRIPTORS).expect("a FileDescriptorSet");
        let mut seen = std::collections::HashSet::new();
        for file in &set.file {
            for dep in &file.dependency {
                assert!(seen.contains(dep.as_str()), "{} needs {dep}", file.name());
            }
            seen.insert(file.name());
        }
        let rls = set
            .file
            .iter()
            .find(|f| f.name() == "envoy/service/ratelimit/v3/rls.proto")
            .expect("rls.proto");
        let service = &rls.service[0];
        assert_eq!(service.name(), "RateLimitService");
        assert_eq!(service.method[0].name(), "ShouldRateLimit");
    }
}
