//! Cluster mode for the rate limit service: Envoy cannot follow `MOVED`,
//! so a node that does not serve a descriptor's slot forwards that
//! descriptor to the node that does (`TOLLGATE.CLUSTER RLS`, the
//! descriptors of one node in one request), and puts the answers back
//! together in order.
//!
//! All or nothing across nodes is kept without ever giving units back:
//! first every node answers a dry run of its descriptors (nothing taken);
//! if any is over its limit the call is answered from those, having taken
//! nothing anywhere. Else every node decides for real. Should a node's
//! descriptors be over by then (a call between the two steps took their
//! units), the call is over and what the other nodes took stays taken: a
//! call may consume without being let through, never be let through beyond
//! a limit.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use prost::Message;

use super::decide::{Failure, decide, validate};
use super::tree::{Domain, store_key};
use super::{Consume, Counts};
use crate::cluster::peer::{Failed, Peer};
use crate::state::Shared;

/// Decides `request` on this node. In managed cluster mode every
/// descriptor's key must be served here (a moving slot's checks are
/// counted while deciding, as a RESP check's are). Counts the shadow-mode
/// descriptors over their limit. Without `commit`, a dry run.
pub fn decide_here(
    shared: &Shared,
    request: &RateLimitRequest,
    commit: bool,
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
    let options = shared.rls.options;
    let outcome = decide(&shared.engine, &domains, options, request, now, commit)?;
    if commit && outcome.known_domain {
        // LIMIT.TOP counts each descriptor that met a limit, by its key.
        let statuses = &outcome.response.statuses;
        let clock = &*shared.engine.clock;
        for (d, status) in request.descriptors.iter().zip(statuses) {
            let over = status.code == Code::OverLimit as i32;
            if over || status.current_limit.is_some() {
                let key = || store_key(&request.domain, entries(d));
                shared.metrics.top.record_with(!over, clock, key);
            }
        }
    }
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
    request: &RateLimitRequest,
) -> Result<RateLimitResponse, Failure> {
    validate(request)?;
    let domains = shared.rls.domains();
    let Some(domain) = domains.get(&request.domain) else {
        return decide_here(shared, request, true);
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
        return decide_here(shared, request, true);
    }
    let all_or_nothing = shared.rls.options.consume == Consume::AllOrNothing;
    if all_or_nothing {
        let dry = on_every(shared, request, &groups, false).await?;
        if dry.iter().any(over) {
            let mut answer = merge(request, &groups, dry);
            untaken(domain, request, &mut answer);
            return Ok(answer);
        }
    }
    let answers = on_every(shared, request, &groups, true).await?;
    Ok(merge(request, &groups, answers))
}

/// A dry run's statuses say what is left after the call; nothing was
/// taken, so a descriptor under its limit has its cost left too (as a
/// call denied on one node answers).
fn untaken(domain: &Domain, request: &RateLimitRequest, answer: &mut RateLimitResponse) {
    let base = u64::from(request.hits_addend.max(1));
    for (d, status) in request.descriptors.iter().zip(&mut answer.statuses) {
        let shadow = domain.find(entries(d)).is_some_and(|l| l.shadow);
        let taking = !d.is_negative_hits && !shadow && status.current_limit.is_some();
        if taking && status.code == Code::Ok as i32 {
            let cost = d.hits_addend.map_or(base, |v| v.value);
            let left = u64::from(status.limit_remaining).saturating_add(cost);
            status.limit_remaining = u32::try_from(left).unwrap_or(u32::MAX);
        }
    }
}

fn over(answer: &RateLimitResponse) -> bool {
    answer.overall_code == Code::OverLimit as i32
}

/// Each group's descriptors decided by its node, in turn.
async fn on_every(
    shared: &Arc<Shared>,
    request: &RateLimitRequest,
    groups: &[(Option<String>, Vec<usize>)],
    commit: bool,
) -> Result<Vec<RateLimitResponse>, Failure> {
    let mut answers = Vec::with_capacity(groups.len());
    for (owner, members) in groups {
        let sub = RateLimitRequest {
            domain: request.domain.clone(),
            descriptors: members
                .iter()
                .map(|&i| request.descriptors[i].clone())
                .collect(),
            hits_addend: request.hits_addend,
        };
        answers.push(on(shared, owner.as_deref(), sub, commit).await?);
    }
    Ok(answers)
}

/// The answers of every node, each status back at its descriptor's place;
/// the headers of the most limited node's answer.
fn merge(
    request: &RateLimitRequest,
    groups: &[(Option<String>, Vec<usize>)],
    answers: Vec<RateLimitResponse>,
) -> RateLimitResponse {
    let is_over = answers.iter().any(over);
    let mut statuses = vec![Default::default(); request.descriptors.len()];
    let least = |a: &RateLimitResponse| {
        let limited = a.statuses.iter().filter(|s| s.current_limit.is_some());
        limited.map(|s| s.limit_remaining).min().unwrap_or(u32::MAX)
    };
    let headers = answers
        .iter()
        .min_by_key(|a| (!over(a), least(a)))
        .map(|a| a.response_headers_to_add.clone())
        .unwrap_or_default();
    for ((_, members), answer) in groups.iter().zip(answers) {
        for (&i, status) in members.iter().zip(answer.statuses) {
            statuses[i] = status;
        }
    }
    RateLimitResponse {
        overall_code: if is_over { Code::OverLimit } else { Code::Ok } as i32,
        statuses,
        response_headers_to_add: headers,
        ..Default::default()
    }
}

/// Decides `request` on `owner` (None: here); a dry run without `commit`.
async fn on(
    shared: &Arc<Shared>,
    owner: Option<&str>,
    request: RateLimitRequest,
    commit: bool,
) -> Result<RateLimitResponse, Failure> {
    let Some(addr) = owner else {
        return decide_here(shared, &request, commit);
    };
    let (shared, addr) = (shared.clone(), addr.to_string());
    tokio::task::spawn_blocking(move || remote(&shared, &addr, &request, commit))
        .await
        .map_err(|e| Failure::Unavailable(format!("forwarding failed: {e}")))?
}

/// `TOLLGATE.CLUSTER RLS` on the node at `addr`, over a pooled connection.
fn remote(
    shared: &Shared,
    addr: &str,
    request: &RateLimitRequest,
    commit: bool,
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
    let mut args: Vec<&[u8]> = vec![b"TOLLGATE.CLUSTER", b"RLS", &payload];
    if !commit {
        args.push(b"DRYRUN");
    }
    match peer.ask_bytes(&args) {
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
