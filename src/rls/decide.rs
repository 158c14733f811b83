//! One `ShouldRateLimit` call decided against the store: each descriptor
//! finds its leaf and its key, refunds are given back, the enforced
//! descriptors are checked (all or nothing, or each on its own), then the
//! shadow ones; the answer is one status per descriptor, in order.

use std::sync::Arc;

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::{
    Code, DescriptorStatus, RateLimit,
};
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use super::options::{Consume, Options};
use super::report::{headers, sat_u32, unit_name, unit_of};
use super::tree::{Domains, Leaf, Limit, MAX_DEPTH, MAX_DESCRIPTORS, store_key, unit_ns};
use crate::engine::Engine;
use crate::limiter::{Algorithm, Decision, MAX_COUNT, Params, Request, Retry};
use crate::policy::Policy;
use crate::store::{Part, Refused, Rule};

/// Why a call was not decided (each becomes a gRPC status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The request is malformed (INVALID_ARGUMENT).
    #[error("{0}")]
    Invalid(String),
    /// The server cannot decide it as configured (FAILED_PRECONDITION):
    /// a key holds another algorithm's state, a refund of a leaky bucket.
    #[error("{0}")]
    Precondition(String),
    /// A new key does not fit under `maxmemory` (RESOURCE_EXHAUSTED).
    #[error("{0}")]
    OutOfMemory(String),
    /// Shutting down, or (cluster mode) the node that serves a descriptor
    /// cannot decide it now (UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
}

impl Failure {
    /// The error line a node answers `TOLLGATE.CLUSTER RLS` with.
    pub fn line(&self) -> String {
        match self {
            Failure::Invalid(m) | Failure::Precondition(m) => format!("ERR {m}"),
            Failure::OutOfMemory(m) | Failure::Unavailable(m) => m.clone(),
        }
    }

    /// The failure a node's error line stands for (the inverse of
    /// [`Failure::line`]; the request was validated before it was sent).
    pub fn from_line(line: &str) -> Failure {
        let word = line.split(' ').next().unwrap_or("");
        match word {
            "OOM" => Failure::OutOfMemory(line.to_string()),
            "ERR" => Failure::Precondition(line.trim_start_matches("ERR ").to_string()),
            _ => Failure::Unavailable(line.to_string()),
        }
    }
}

impl From<Refused> for Failure {
    fn from(e: Refused) -> Failure {
        match e {
            Refused::OutOfMemory => Failure::OutOfMemory(
                "OOM command not allowed when used memory > 'maxmemory'.".into(),
            ),
            e => Failure::Precondition(e.to_string()),
        }
    }
}

/// A decided call: the response, and what the metrics count.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub response: RateLimitResponse,
    /// Whether the domain is configured.
    pub known_domain: bool,
    /// Shadow-mode descriptors that were over their limit (answered OK).
    pub shadow_over: u64,
}

/// What one descriptor is checked under.
#[derive(Clone)]
enum Under {
    Nothing,
    Rule(Params),
    Policy(Arc<Policy>),
}

/// One descriptor, resolved.
#[derive(Clone)]
struct Item<'a> {
    key: Vec<u8>,
    under: Under,
    cost: u64,
    refund: bool,
    shadow: bool,
    /// `current_limit.name`.
    name: &'a str,
}

impl Item<'_> {
    fn part(&self) -> Option<Part<'_>> {
        let rule = match &self.under {
            Under::Nothing => return None,
            Under::Rule(p) => Rule::Inline(p),
            Under::Policy(p) => Rule::Policy(p),
        };
        Some(Part {
            key: &self.key,
            rule,
            cost: self.cost,
        })
    }
}

/// Decides `request` at `now`. Without `commit` (a dry run) nothing
/// changes: the statuses say what the call would be answered, and a refund
/// only looks.
pub fn decide(
    engine: &Engine,
    domains: &Domains,
    options: Options,
    request: &RateLimitRequest,
    now: u64,
    commit: bool,
) -> Result<Outcome, Failure> {
    validate(request)?;
    let no_limit = DescriptorStatus {
        code: Code::Ok as i32,
        ..Default::default()
    };
    let Some(domain) = domains.get(&request.domain) else {
        // Envoy's convention: a domain nobody configured is not limited.
        let response = RateLimitResponse {
            overall_code: Code::Ok as i32,
            statuses: vec![no_limit; request.descriptors.len()],
            ..Default::default()
        };
        return Ok(Outcome {
            response,
            known_domain: false,
            shadow_over: 0,
        });
    };
    let base_cost = u64::from(request.hits_addend.max(1));
    let mut items = Vec::with_capacity(request.descriptors.len());
    for d in &request.descriptors {
        let entries = || d.entries.iter().map(|e| (e.key.as_str(), e.value.as_str()));
        let leaf = domain.find(entries());
        let under = resolve(engine, leaf, d)?;
        items.push(Item {
            key: store_key(&request.domain, entries()),
            under,
            cost: d.hits_addend.map_or(base_cost, |v| v.value),
            refund: d.is_negative_hits,
            shadow: leaf.is_some_and(|l| l.shadow),
            name: leaf.map_or("", |l| l.name.as_str()),
        });
    }
    let mut statuses = vec![no_limit; items.len()];
    // Each checked descriptor's capacity (the headers' limit).
    let mut capacity: Vec<Option<u64>> = vec![None; items.len()];
    let store = &engine.store;
    // Refunds first: they are given back whatever the checks answer.
    for (i, item) in items.iter().enumerate().filter(|(_, it)| it.refund) {
        if let Some(part) = item.part() {
            let d = if commit {
                store.refund(part, now, item.cost)?
            } else {
                let look = Item {
                    cost: 0,
                    ..item.clone()
                };
                check(engine, &look, now, false)?
            };
            statuses[i] = status(item, &d, false);
            capacity[i] = Some(d.limit);
        }
    }
    let enforced: Vec<usize> = (0..items.len())
        .filter(|&i| !items[i].refund && !items[i].shadow && items[i].part().is_some())
        .collect();
    let mut over = false;
    // One descriptor is all or nothing on its own: checked as `each` does,
    // without the multi-key check's bookkeeping.
    if options.consume == Consume::Each || enforced.len() == 1 {
        for &i in &enforced {
            let d = check(engine, &items[i], now, commit)?;
            over |= !d.allowed;
            statuses[i] = status(&items[i], &d, !d.allowed);
            capacity[i] = Some(d.limit);
        }
    } else {
        let parts: Vec<Part<'_>> = enforced.iter().filter_map(|&i| items[i].part()).collect();
        let (admitted, decisions) = store.check_many(&parts, now, commit)?;
        for (&i, mut d) in enforced.iter().zip(decisions) {
            if !admitted && d.allowed {
                // Nothing was taken: what was left before this call.
                d.remaining = d.remaining.saturating_add(items[i].cost).min(d.limit);
            }
            over |= !d.allowed;
            statuses[i] = status(&items[i], &d, !d.allowed);
            capacity[i] = Some(d.limit);
        }
    }
    // Shadow descriptors take their cost only when the call is let through.
    let mut shadow_over = 0;
    for (i, item) in items.iter().enumerate() {
        if item.shadow && !item.refund && item.part().is_some() {
            let d = check(engine, item, now, commit && !over)?;
            shadow_over += u64::from(!d.allowed);
            statuses[i] = status(item, &d, false);
            capacity[i] = Some(d.limit);
        }
    }
    let response = RateLimitResponse {
        overall_code: if over { Code::OverLimit } else { Code::Ok } as i32,
        response_headers_to_add: headers(options, &statuses, &capacity),
        statuses,
        ..Default::default()
    };
    Ok(Outcome {
        response,
        known_domain: true,
        shadow_over,
    })
}

/// The request's shape: a domain, 1 to [`MAX_DESCRIPTORS`] descriptors of
/// 1 to [`MAX_DEPTH`] entries with non-empty keys, costs within
/// [`MAX_COUNT`].
pub(super) fn validate(request: &RateLimitRequest) -> Result<(), Failure> {
    let invalid = |why: String| Err(Failure::Invalid(why));
    if request.domain.is_empty() {
        return invalid("the domain must not be empty".into());
    }
    if request.descriptors.is_empty() {
        return invalid("the descriptor list must not be empty".into());
    }
    if request.descriptors.len() > MAX_DESCRIPTORS {
        return invalid(format!(
            "{} descriptors: expected at most {MAX_DESCRIPTORS}",
            request.descriptors.len()
        ));
    }
    for (i, d) in request.descriptors.iter().enumerate() {
        if d.entries.is_empty() || d.entries.len() > MAX_DEPTH {
            return invalid(format!(
                "descriptor {i} has {} entries: expected 1 to {MAX_DEPTH}",
                d.entries.len()
            ));
        }
        if d.entries.iter().any(|e| e.key.is_empty()) {
            return invalid(format!("descriptor {i} has an entry with an empty key"));
        }
        if let Some(n) = d.hits_addend.map(|v| v.value).filter(|&n| n > MAX_COUNT) {
            return invalid(format!(
                "descriptor {i} has hits_addend {n}: expected at most {MAX_COUNT}"
            ));
        }
        if let Some(o) = &d.limit {
            let unit = Unit::try_from(o.unit).ok().and_then(unit_name);
            if o.requests_per_unit == 0 || unit.is_none() {
                return invalid(format!(
                    "descriptor {i} has a limit override of {} per unit {}: expected at least 1 per second, minute, hour, day, week, month or year",
                    o.requests_per_unit, o.unit
                ));
            }
        }
    }
    Ok(())
}

/// What a descriptor is checked under: its override (with the leaf's
/// algorithm, else a fixed window), else its leaf's rule or policy.
fn resolve(
    engine: &Engine,
    leaf: Option<&Leaf>,
    d: &RateLimitDescriptor,
) -> Result<Under, Failure> {
    if let Some(o) = &d.limit {
        let unit = Unit::try_from(o.unit).ok().and_then(unit_name);
        let window = unit.and_then(unit_ns).unwrap_or(1_000_000_000);
        let algorithm = match leaf.map(|l| &l.limit) {
            Some(Limit::Rule(p)) => p.algorithm,
            _ => Algorithm::FixedWindow,
        };
        return Ok(Under::Rule(Params::new(
            algorithm,
            u64::from(o.requests_per_unit),
            window,
        )));
    }
    Ok(match leaf.map(|l| &l.limit) {
        None | Some(Limit::Unlimited) => Under::Nothing,
        Some(Limit::Rule(p)) => Under::Rule(*p),
        Some(Limit::Policy(name)) => match engine.policies.get(name) {
            Some(p) => Under::Policy(p),
            None => {
                return Err(Failure::Precondition(format!(
                    "policy '{name}' is not defined"
                )));
            }
        },
    })
}

/// One descriptor checked on its own.
fn check(engine: &Engine, item: &Item<'_>, now: u64, commit: bool) -> Result<Decision, Failure> {
    let request = Request {
        cost: item.cost,
        commit,
        max_wait: None,
    };
    let store = &engine.store;
    Ok(match &item.under {
        Under::Rule(p) => store.check(&item.key, p, now, request)?.decision,
        Under::Policy(p) => store.check_policy(p, &item.key, now, request)?,
        Under::Nothing => unreachable!("only descriptors with a limit are checked"),
    })
}

/// The status of a checked descriptor. `duration_until_reset`: when over
/// the limit, until the same call would be allowed; else until the key is
/// back to fresh.
fn status(item: &Item<'_>, d: &Decision, over: bool) -> DescriptorStatus {
    let until = match (over, d.retry) {
        (true, Retry::After(ns)) => ns,
        _ => d.reset_after,
    };
    let current_limit = match &item.under {
        Under::Rule(p) => RateLimit {
            name: item.name.to_string(),
            requests_per_unit: sat_u32(p.limit),
            unit: unit_of(p.window) as i32,
        },
        Under::Policy(p) => RateLimit {
            name: if item.name.is_empty() {
                &p.name
            } else {
                item.name
            }
            .to_string(),
            requests_per_unit: sat_u32(d.limit),
            unit: Unit::Unknown as i32,
        },
        Under::Nothing => RateLimit::default(),
    };
    DescriptorStatus {
        code: if over { Code::OverLimit } else { Code::Ok } as i32,
        current_limit: Some(current_limit),
        limit_remaining: sat_u32(d.remaining),
        duration_until_reset: Some(PbDuration {
            seconds: (until / 1_000_000_000) as i64,
            nanos: (until % 1_000_000_000) as i32,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
