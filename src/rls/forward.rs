//! Cluster mode for the rate limit service: Envoy cannot follow `MOVED`,
//! so a node that does not serve a descriptor's slot forwards that
//! descriptor to the node that does (`TOLLGATE.CLUSTER RLS`, the
//! descriptors of one node in one request), and puts the answers back
//! together in order.
//!
//! All or nothing holds within each node at once. Across nodes, when one
//! node's descriptors are over their limit, the descriptors the other nodes
//! took are given back (refunded), so the call ends having consumed
//! nothing; in between, a concurrent call may have been denied by those
//! units (never admitted by them). A leaky bucket's units cannot be given
//! back and stay taken, as do shadow-mode descriptors' (never enforced).

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::UInt64Value;
use prost::Message;

use super::decide::{Failure, decide, validate};
use super::tree::{Domain, Limit, store_key};
use super::{Consume, Counts};
use crate::cluster::peer::{Failed, Peer};
use crate::limiter::Algorithm;
use crate::state::Shared;

/// Decides `request` on this node. In managed cluster mode every
/// descriptor's key must be served here (a moving slot's checks are
/// counted while deciding, as a RESP check's are). Counts the shadow-mode
/// descriptors over their limit.
pub fn decide_here(
    shared: &Shared,
    request: &RateLimitRequest,
) -> Result<RateLimitResponse, Failure> {
    let domains = shared.rls.domains();
    let mut running = Vec::new();
    if shared.cluster.routes() && domains.get(&request.domain).is_some() {
        for d in &request.descriptors {
            let key = store_key(&request.domain, entries(d));
            match shared.cluster.route(&key) {
                Ok(guard) => running.push(guard),
                Err(r) => return Err(Failure::Unavailable(r.line())),
            }
        }
    }
    let now = shared.engine.now();
    let outcome = decide(&shared.engine, &domains, shared.rls.options, request, now)?;
    if outcome.shadow_over > 0 {
        shared
            .rls
            .counts
            .count_shadow(&request.domain, outcome.shadow_over);
    }
    drop(running);
    Ok(outcome.response)
}

/// Decides `request` across the cluster (managed mode): this node's
/// descriptors here, the others' on their nodes.
pub async fn answer(
    shared: &Arc<Shared>,
    request: RateLimitRequest,
) -> Result<RateLimitResponse, Failure> {
    validate(&request)?;
    let domains = shared.rls.domains();
    let Some(domain) = domains.get(&request.domain) else {
        return decide_here(shared, &request);
    };
    // Descriptors by the node that serves them (None: this one).
    let mut groups: Vec<(Option<String>, Vec<usize>)> = Vec::new();
    for (i, d) in request.descriptors.iter().enumerate() {
        let key = store_key(&request.domain, entries(d));
        let owner = match shared.cluster.route(&key) {
            Ok(_) => None,
            Err(r) => match r.address() {
                Some(addr) => Some(addr.to_string()),
                None => return Err(Failure::Unavailable(r.line())),
            },
        };
        match groups.iter_mut().find(|(o, _)| *o == owner) {
            Some((_, members)) => members.push(i),
            None => groups.push((owner, vec![i])),
        }
    }
    if let [(None, _)] = groups.as_slice() {
        return decide_here(shared, &request);
    }
    let part = |members: &[usize], descriptors: Vec<RateLimitDescriptor>| RateLimitRequest {
        domain: request.domain.clone(),
        descriptors: members.iter().map(|&i| descriptors[i].clone()).collect(),
        hits_addend: request.hits_addend,
    };
    let mut answers = Vec::with_capacity(groups.len());
    for (owner, members) in &groups {
        let sub = part(members, request.descriptors.clone());
        answers.push(on(shared, owner.as_deref(), sub).await?);
    }
    let over = answers
        .iter()
        .any(|a| a.overall_code == Code::OverLimit as i32);
    if over && shared.rls.options.consume == Consume::AllOrNothing {
        for ((owner, members), answer) in groups.iter().zip(&answers) {
            if answer.overall_code == Code::OverLimit as i32 {
                continue;
            }
            let Some(back) = refunds(shared, domain, &request, members, answer) else {
                continue;
            };
            if let Err(e) = on(shared, owner.as_deref(), back).await {
                tracing::warn!("rate limit service: units not given back on {owner:?}: {e}");
            }
        }
    }
    Ok(merge(&request, &groups, answers, over))
}

/// The answers of every node, each status back at its descriptor's place;
/// the headers of the most limited node's answer.
fn merge(
    request: &RateLimitRequest,
    groups: &[(Option<String>, Vec<usize>)],
    answers: Vec<RateLimitResponse>,
    over: bool,
) -> RateLimitResponse {
    let mut statuses = vec![Default::default(); request.descriptors.len()];
    let least = |a: &RateLimitResponse| {
        let limited = a.statuses.iter().filter(|s| s.current_limit.is_some());
        limited.map(|s| s.limit_remaining).min().unwrap_or(u32::MAX)
    };
    let headers = answers
        .iter()
        .min_by_key(|a| (a.overall_code != Code::OverLimit as i32, least(a)))
        .map(|a| a.response_headers_to_add.clone())
        .unwrap_or_default();
    for ((_, members), answer) in groups.iter().zip(answers) {
        for (&i, status) in members.iter().zip(answer.statuses) {
            statuses[i] = status;
        }
    }
    RateLimitResponse {
        overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
        statuses,
        response_headers_to_add: headers,
        ..Default::default()
    }
}

/// The refund of what a node's descriptors took: each limited, taking
/// descriptor given its cost back. Left out: leaky buckets (their units
/// cannot be given back) and shadow-mode descriptors (answered OK whether
/// or not they took, and never enforced). `None` when nothing was taken.
fn refunds(
    shared: &Shared,
    domain: &Domain,
    request: &RateLimitRequest,
    members: &[usize],
    answer: &RateLimitResponse,
) -> Option<RateLimitRequest> {
    let base = u64::from(request.hits_addend.max(1));
    let mut back = Vec::new();
    for (&i, status) in members.iter().zip(&answer.statuses) {
        let d = &request.descriptors[i];
        let cost = d.hits_addend.map_or(base, |v| v.value);
        let skip = d.is_negative_hits || cost == 0 || status.current_limit.is_none();
        if skip || leaky_or_shadow(shared, domain, d) {
            continue;
        }
        back.push(RateLimitDescriptor {
            hits_addend: Some(UInt64Value { value: cost }),
            is_negative_hits: true,
            ..d.clone()
        });
    }
    (!back.is_empty()).then(|| RateLimitRequest {
        domain: request.domain.clone(),
        descriptors: back,
        hits_addend: 0,
    })
}

/// Whether a descriptor is in shadow mode or checked under a leaky bucket
/// (its own rule or a rule of its policy).
fn leaky_or_shadow(shared: &Shared, domain: &Domain, d: &RateLimitDescriptor) -> bool {
    let Some(leaf) = domain.find(entries(d)) else {
        return false;
    };
    let leaky = |a: Algorithm| a == Algorithm::LeakyBucket;
    leaf.shadow
        || match &leaf.limit {
            Limit::Rule(p) => leaky(p.algorithm),
            Limit::Policy(name) => shared
                .engine
                .policies
                .get(name)
                .is_some_and(|p| p.rules.iter().any(|r| leaky(r.algorithm))),
            Limit::Unlimited => false,
        }
}

/// Decides `request` on `owner` (None: here).
async fn on(
    shared: &Arc<Shared>,
    owner: Option<&str>,
    request: RateLimitRequest,
) -> Result<RateLimitResponse, Failure> {
    let Some(addr) = owner else {
        return decide_here(shared, &request);
    };
    let (shared, addr) = (shared.clone(), addr.to_string());
    tokio::task::spawn_blocking(move || remote(&shared, &addr, &request))
        .await
        .map_err(|e| Failure::Unavailable(format!("forwarding failed: {e}")))?
}

/// `TOLLGATE.CLUSTER RLS` on the node at `addr`, over a pooled connection.
fn remote(
    shared: &Shared,
    addr: &str,
    request: &RateLimitRequest,
) -> Result<RateLimitResponse, Failure> {
    let pool = &shared.rls.peers;
    let taken = pool.lock().get_mut(addr).and_then(Vec::pop);
    let password = shared.config.requirepass.as_deref();
    let unavailable = |e: Failed| Failure::Unavailable(format!("node {addr}: {e}"));
    let mut peer = match taken {
        Some(p) => p,
        None => Peer::connect(addr, password).map_err(unavailable)?,
    };
    let payload = request.encode_to_vec();
    match peer.ask_bytes(&[b"TOLLGATE.CLUSTER", b"RLS", &payload]) {
        Ok(bytes) => {
            pool.lock().entry(addr.to_string()).or_default().push(peer);
            RateLimitResponse::decode(bytes.as_slice())
                .map_err(|e| Failure::Unavailable(format!("node {addr}: bad answer: {e}")))
        }
        Err(Failed::Refused(line)) => {
            pool.lock().entry(addr.to_string()).or_default().push(peer);
            Err(Failure::from_line(&line))
        }
        Err(lost) => Err(unavailable(lost)),
    }
}

fn entries(d: &RateLimitDescriptor) -> impl Iterator<Item = (&str, &str)> {
    d.entries.iter().map(|e| (e.key.as_str(), e.value.as_str()))
}

impl Counts {
    /// Counts shadow-mode descriptors over their limit for `domain`.
    pub fn count_shadow(&self, domain: &str, over: u64) {
        self.add(domain, None, over);
    }
}
