//! The Rate Limit Service's configuration: domains, each a tree of
//! descriptors in the shape envoyproxy/ratelimit's YAML has (key, optional
//! value, nested descriptors), whose leaves name a rule or a policy; and
//! how a request's descriptor finds its leaf and its store key.
//!
//! The same shape is read from the config file (`[[domain]]` tables) and
//! from envoyproxy/ratelimit YAML files (`rls_config`).

use std::collections::HashMap;

use serde::Deserialize;

use crate::limiter::rule::{
    RuleError, build_params, count_in, parse_algorithm, parse_duration, valid_policy_name,
};
use crate::limiter::{Algorithm, MAX_BUCKETS, MAX_COUNT, Params};
use crate::policy::Policy;

/// Most descriptor entries a tree may nest (and a request may send).
pub const MAX_DEPTH: usize = 16;
/// Most descriptors one call may send.
pub const MAX_DESCRIPTORS: usize = 64;

/// One domain as written (TOML or envoyproxy/ratelimit YAML).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainFile {
    pub domain: String,
    #[serde(default)]
    pub descriptors: Vec<DescriptorFile>,
}

/// A descriptor as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorFile {
    pub key: String,
    pub value: Option<String>,
    pub rate_limit: Option<RateLimitFile>,
    #[serde(default)]
    pub descriptors: Vec<DescriptorFile>,
    #[serde(default)]
    pub shadow_mode: bool,
    /// envoyproxy/ratelimit's per-value statistics: accepted, not used.
    #[serde(default)]
    pub detailed_metric: bool,
}

/// A leaf's limit as written: envoyproxy's `unit` and `requests_per_unit`,
/// or tollgate's rule (`algorithm`, `limit`, `window`, `burst`, `buckets`),
/// or `policy`, or `unlimited`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitFile {
    pub name: Option<String>,
    pub unit: Option<String>,
    pub requests_per_unit: Option<u64>,
    #[serde(default)]
    pub unlimited: bool,
    pub algorithm: Option<String>,
    pub limit: Option<u64>,
    pub window: Option<String>,
    pub burst: Option<u64>,
    pub buckets: Option<u32>,
    pub policy: Option<String>,
}

/// What a leaf limits with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    Rule(Params),
    /// A policy of the config file, by name.
    Policy(String),
    /// Matched, and never limited.
    Unlimited,
}

/// A descriptor that carries a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub limit: Limit,
    /// Counted, but always answered OK.
    pub shadow: bool,
    /// `rate_limit.name`, reported in `current_limit`.
    pub name: String,
}

/// The descriptors under one node, by entry key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Level {
    by_key: HashMap<String, Choices>,
}

/// The nodes one entry key leads to, by how they match its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Choices {
    exact: HashMap<String, Node>,
    /// `value: "prefix*"`, in file order.
    prefix: Vec<(String, Node)>,
    /// No value: any value.
    any: Option<Box<Node>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Node {
    leaf: Option<Leaf>,
    children: Level,
}

/// A domain, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    root: Level,
}

/// Every configured domain, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Domains {
    by_name: HashMap<String, Domain>,
}

impl Level {
    /// The node `key` = `value` leads to: an exact value first, then the
    /// first matching prefix, then a value-less entry (envoyproxy/ratelimit's
    /// order).
    fn find(&self, key: &str, value: &str) -> Option<&Node> {
        let choices = self.by_key.get(key)?;
        choices
            .exact
            .get(value)
            .or_else(|| {
                choices
                    .prefix
                    .iter()
                    .find(|(p, _)| value.starts_with(p.as_str()))
                    .map(|(_, n)| n)
            })
            .or(choices.any.as_deref())
    }
}

impl Domain {
    /// The leaf a request descriptor's entries reach: every entry must
    /// match, one level each, and the last one must carry a limit (as in
    /// envoyproxy/ratelimit, a limit higher in the tree does not apply to a
    /// longer descriptor).
    pub fn find<'a, I>(&self, entries: I) -> Option<&Leaf>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut level = &self.root;
        let mut node = None;
        for (key, value) in entries {
            let next = level.find(key, value)?;
            level = &next.children;
            node = Some(next);
        }
        node?.leaf.as_ref()
    }
}

impl Domains {
    /// Validates the domains as written; `policies` are those a leaf may
    /// name. Errors name the domain and the descriptor path.
    pub fn build(files: &[DomainFile], policies: &[Policy]) -> Result<Domains, String> {
        let mut by_name = HashMap::new();
        for file in files {
            if file.domain.is_empty() {
                return Err("a domain needs a non-empty name".into());
            }
            if by_name.contains_key(&file.domain) {
                return Err(format!("domain '{}' is defined twice", file.domain));
            }
            let root = level(&file.descriptors, policies, &file.domain, 1)
                .map_err(|e| format!("domain '{}': {e}", file.domain))?;
            let name = file.domain.clone();
            by_name.insert(name.clone(), Domain { name, root });
        }
        Ok(Domains { by_name })
    }

    pub fn get(&self, name: &str) -> Option<&Domain> {
        self.by_name.get(name)
    }

    /// Domain names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// Reads envoyproxy/ratelimit YAML: one domain per document.
pub fn from_yaml(text: &str) -> Result<Vec<DomainFile>, String> {
    let mut out = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let file = DomainFile::deserialize(document).map_err(|e| e.to_string())?;
        out.push(file);
    }
    Ok(out)
}

fn level(
    descriptors: &[DescriptorFile],
    policies: &[Policy],
    path: &str,
    depth: usize,
) -> Result<Level, String> {
    if depth > MAX_DEPTH && !descriptors.is_empty() {
        return Err(format!("{path}: descriptors nest deeper than {MAX_DEPTH}"));
    }
    let mut out = Level::default();
    for d in descriptors {
        let here = match &d.value {
            Some(v) => format!("{path} > {}={v}", d.key),
            None => format!("{path} > {}", d.key),
        };
        if d.key.is_empty() {
            return Err(format!("{here}: a descriptor needs a non-empty key"));
        }
        let leaf = match &d.rate_limit {
            Some(r) => Some(Leaf {
                limit: limit(r, policies).map_err(|e| format!("{here}: {e}"))?,
                shadow: d.shadow_mode,
                name: r.name.clone().unwrap_or_default(),
            }),
            None => None,
        };
        let node = Node {
            leaf,
            children: level(&d.descriptors, policies, &here, depth + 1)?,
        };
        let choices = out.by_key.entry(d.key.clone()).or_default();
        let twice = match &d.value {
            None => choices.any.replace(Box::new(node)).is_some(),
            Some(v) if v.ends_with('*') => {
                let prefix = v.trim_end_matches('*').to_string();
                let seen = choices.prefix.iter().any(|(p, _)| *p == prefix);
                choices.prefix.push((prefix, node));
                seen
            }
            Some(v) => choices.exact.insert(v.clone(), node).is_some(),
        };
        if twice {
            return Err(format!("{here}: the descriptor is defined twice"));
        }
    }
    Ok(out)
}

/// envoyproxy/ratelimit's units, as fixed windows aligned to the epoch (a
/// month is 30 days and a year 365, as there).
pub const UNITS: [(&str, u64); 7] = [
    ("second", 1),
    ("minute", 60),
    ("hour", 3600),
    ("day", 86_400),
    ("week", 604_800),
    ("month", 2_592_000),
    ("year", 31_536_000),
];

/// A unit's length in nanoseconds.
pub fn unit_ns(unit: &str) -> Option<u64> {
    let (_, secs) = UNITS.iter().find(|(n, _)| n.eq_ignore_ascii_case(unit))?;
    Some(secs * 1_000_000_000)
}

fn limit(r: &RateLimitFile, policies: &[Policy]) -> Result<Limit, String> {
    let rule_given = r.unit.is_some()
        || r.requests_per_unit.is_some()
        || r.algorithm.is_some()
        || r.limit.is_some()
        || r.window.is_some()
        || r.burst.is_some()
        || r.buckets.is_some();
    if r.unlimited {
        if rule_given || r.policy.is_some() {
            return Err("unlimited takes no rule and no policy".into());
        }
        return Ok(Limit::Unlimited);
    }
    if let Some(name) = &r.policy {
        if rule_given {
            return Err(format!("policy '{name}' takes no rule of its own"));
        }
        valid_policy_name(name).map_err(|e| e.to_string())?;
        if !policies.iter().any(|p| p.name == *name) {
            return Err(format!(
                "policy '{name}' is not defined in the config file ([[policy]])"
            ));
        }
        return Ok(Limit::Policy(name.clone()));
    }
    let algorithm = match &r.algorithm {
        Some(a) => parse_algorithm(a.as_bytes()).map_err(|e| e.to_string())?,
        None => Algorithm::FixedWindow,
    };
    let limit = match (r.requests_per_unit, r.limit) {
        (Some(n), None) | (None, Some(n)) => count_in("limit", n, 1, MAX_COUNT),
        (Some(_), Some(_)) => return Err("give requests_per_unit or limit, not both".into()),
        (None, None) => return Err("a rate_limit needs requests_per_unit (or limit)".into()),
    }
    .map_err(|e| e.to_string())?;
    let window = match (&r.unit, &r.window) {
        (Some(u), None) => unit_ns(u).ok_or_else(|| {
            format!("unknown unit '{u}': expected second, minute, hour, day, week, month or year")
        })?,
        (None, Some(w)) => parse_duration("window", w.as_bytes()).map_err(|e| e.to_string())?,
        (Some(_), Some(_)) => return Err("give unit or window, not both".into()),
        (None, None) => return Err("a rate_limit needs unit (or window)".into()),
    };
    let burst = r
        .burst
        .map(|b| count_in("burst", b, 1, MAX_COUNT))
        .transpose()
        .map_err(|e| e.to_string())?;
    let buckets = r
        .buckets
        .map(|b| count_in("buckets", u64::from(b), 1, u64::from(MAX_BUCKETS)).map(|b| b as u32))
        .transpose()
        .map_err(|e| e.to_string())?;
    build_params(algorithm, limit, window, burst, buckets)
        .map(Limit::Rule)
        .map_err(|e: RuleError| e.to_string())
}

/// The store key of a descriptor in `domain`: the domain, then `|key=value`
/// for each entry, with `\`, `|` and `=` in names and values escaped by a
/// `\` (so two descriptors never share a key). For example
/// `edge|remote_address=10.0.0.1|path=/login`.
pub fn store_key<'a, I>(domain: &str, entries: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = Vec::with_capacity(domain.len() + 32);
    escape_into(&mut out, domain);
    for (key, value) in entries {
        out.push(b'|');
        escape_into(&mut out, key);
        out.push(b'=');
        escape_into(&mut out, value);
    }
    out
}

fn escape_into(out: &mut Vec<u8>, text: &str) {
    for &b in text.as_bytes() {
        if matches!(b, b'\\' | b'|' | b'=') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests;
