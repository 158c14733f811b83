//! `LIMIT.INFO`, `LIMIT.RESET` and `LIMIT.POLICY`: inspecting and dropping a
//! key's state, and defining the named policies.
//!
//! # Format
//! ```text
//! LIMIT.INFO key [POLICY name]
//! LIMIT.RESET key [POLICY name]
//! LIMIT.POLICY SET name algorithm limit window [BURST n] [BUCKETS n] [algorithm ...]
//! LIMIT.POLICY GET name | DEL name | LIST | HELP
//! ```

use std::sync::Arc;

use super::args::{Args, is};
use super::limit::{find_policy, set_once};
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::engine::Engine;
use crate::error::{CmdError, printable};
use crate::limiter::rule::{
    build_params, parse_algorithm, parse_buckets, parse_count, parse_duration, valid_policy_name,
};
use crate::limiter::{Algorithm, Params, Request, State};
use crate::policy::{MAX_RULES, Policy, too_many_rules};
use crate::reply::Reply;
use crate::store::Scope;

/// The optional `POLICY name` of `LIMIT.INFO` and `LIMIT.RESET`.
fn optional_policy(engine: &Engine, args: &mut Args<'_>) -> Result<Option<Arc<Policy>>, CmdError> {
    match args.next_arg() {
        None => Ok(None),
        Some(word) if is(word, "POLICY") => {
            let name = args.text()?;
            args.finish()?;
            find_policy(engine, name).map(Some)
        }
        Some(_) => Err(CmdError::Syntax),
    }
}

/// A rule's numbers as a reply map.
fn rule_fields(p: &Params) -> Vec<(&'static str, Reply)> {
    let mut fields = vec![
        ("algorithm", Reply::text(p.algorithm.name())),
        ("limit", Reply::Int(to_i64(p.limit))),
        (
            "window_ms",
            Reply::Int(to_i64(p.window / crate::clock::NANOS_PER_MS)),
        ),
        ("burst", Reply::Int(to_i64(p.capacity()))),
    ];
    if p.algorithm.uses_buckets() {
        fields.push(("buckets", Reply::Int(i64::from(p.buckets))));
    }
    fields
}

fn to_i64(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// `LIMIT.INFO key [POLICY name]`.
pub fn info(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let engine = ctx.engine();
    let key = &argv[1];
    let mut args = Args::new(&argv[2..]);
    let policy = optional_policy(engine, &mut args)?;
    let now = ctx.now();
    let scope = match &policy {
        Some(p) => Scope::Policy(&p.name),
        None => Scope::Inline,
    };
    let Some(snapshot) = engine.store.inspect(scope, key, policy.as_deref(), now) else {
        return Ok(Reply::Array(Vec::new()).into());
    };
    let look = Request::dry(0);
    let rules = snapshot
        .rules
        .into_iter()
        .map(|(params, mut state): (Params, State)| {
            let d = state.check(&params, now, look);
            let mut fields = rule_fields(&params);
            fields.push(("remaining", Reply::Int(to_i64(d.remaining))));
            fields.push((
                "reset_after_ms",
                Reply::Int(crate::limiter::ns_to_ms_ceil(d.reset_after)),
            ));
            if params.algorithm == Algorithm::LeakyBucket {
                fields.push(("queued", Reply::Int(to_i64(state.queued(&params, now)))));
            }
            Reply::map(fields)
        })
        .collect();
    Ok(Reply::Array(rules).into())
}

/// `LIMIT.RESET key [POLICY name]`.
pub fn reset(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let engine = ctx.engine();
    let mut args = Args::new(&argv[2..]);
    let policy = optional_policy(engine, &mut args)?;
    let scope = match &policy {
        Some(p) => Scope::Policy(&p.name),
        None => Scope::Inline,
    };
    let dropped = engine.store.reset(scope, argv[1], ctx.now());
    Ok(Reply::Int(i64::from(dropped)).into())
}

/// Parses rules (`algorithm limit window [BURST n] [BUCKETS n]`, repeated)
/// until the arguments run out.
fn parse_rules(name: &str, args: &mut Args<'_>) -> Result<Vec<Params>, CmdError> {
    let mut rules = Vec::new();
    let mut pending: Option<&[u8]> = args.next_arg();
    while let Some(word) = pending.take() {
        if rules.len() == MAX_RULES {
            return Err(CmdError::invalid(too_many_rules(&printable(
                name.as_bytes(),
            ))));
        }
        let algorithm = parse_algorithm(word)?;
        let limit = parse_count("limit", args.required()?, 1)?;
        let window = parse_duration("window", args.required()?)?;
        let (mut burst, mut buckets) = (None, None);
        while let Some(next) = args.next_arg() {
            if is(next, "BURST") {
                set_once(&mut burst, parse_count("burst", args.required()?, 1)?)?;
            } else if is(next, "BUCKETS") {
                set_once(&mut buckets, parse_buckets(args.required()?)?)?;
            } else {
                pending = Some(next);
                break;
            }
        }
        rules.push(build_params(algorithm, limit, window, burst, buckets)?);
    }
    Ok(rules)
}

const POLICY_HELP: &[&str] = &[
    "LIMIT.POLICY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "SET <name> <algorithm> <limit> <window> [BURST <n>] [BUCKETS <n>] [<algorithm> ...]",
    "    Define or replace a run-time policy of one or more rules, checked all or nothing.",
    "GET <name>",
    "    Return the rules of policy <name>.",
    "DEL <name>",
    "    Delete run-time policy <name>.",
    "LIST",
    "    Return the names of all policies.",
    "HELP",
    "    Print this help.",
];

/// In `managed` cluster mode policies come from the config file (the same
/// on every node): one node's run-time change would make it decide
/// differently from the others.
fn policies_are_set_here(ctx: &Ctx<'_>) -> Result<(), CmdError> {
    if ctx.shared.config.cluster_mode == crate::cluster::ClusterMode::Managed {
        return Err(CmdError::invalid(
            "policies come from the config file in cluster_mode managed (the same file on every node, reloaded with SIGHUP)",
        ));
    }
    Ok(())
}

/// `LIMIT.POLICY SET name algorithm limit window [BURST n] [BUCKETS n] ...`.
pub fn policy_set(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    policies_are_set_here(ctx)?;
    let mut args = Args::new(&argv[2..]);
    let name = args.text()?;
    valid_policy_name(name)?;
    let rules = parse_rules(name, &mut args)?;
    let policy = Policy {
        name: name.to_string(),
        rules,
        from_config: false,
    };
    ctx.engine()
        .policies
        .set(policy)
        .map_err(|e| CmdError::invalid(e.to_string()))?;
    ctx.shared.persistence.policies_changed();
    Ok(Reply::OK.into())
}

/// `LIMIT.POLICY GET name`: the policy's rules, or nil.
pub fn policy_get(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let name = Args::new(&argv[2..]).text()?;
    Ok(match ctx.engine().policies.get(name) {
        None => Reply::Null,
        Some(p) => Reply::Array(p.rules.iter().map(|r| Reply::map(rule_fields(r))).collect()),
    }
    .into())
}

/// `LIMIT.POLICY DEL name`: 1 if it existed.
pub fn policy_del(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    policies_are_set_here(ctx)?;
    let name = Args::new(&argv[2..]).text()?;
    let deleted = ctx
        .engine()
        .policies
        .delete(name)
        .map_err(|e| CmdError::invalid(e.to_string()))?;
    if deleted {
        ctx.shared.persistence.policies_changed();
    }
    Ok(Reply::Int(i64::from(deleted)).into())
}

/// `LIMIT.POLICY LIST`: every policy's name.
pub fn policy_list(ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let names = ctx.engine().policies.names();
    Ok(Reply::Array(names.iter().map(|n| Reply::text(n)).collect()).into())
}

/// `LIMIT.POLICY HELP`.
pub fn policy_help(_ctx: &mut Ctx<'_>, _argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    Ok(Reply::help(POLICY_HELP).into())
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "limit.info", -2, [READONLY, FAST], (1, 1, 1), "tollgate", "0.1.0",
    "Shows the state of a key's rate limit, one map per rule.",
    info },
    command! { "limit.reset", -2, [WRITE, FAST], (1, 1, 1), "tollgate", "0.1.0",
    "Drops the state of a key's rate limit.",
    reset },
    command! { "limit.policy", -2, [ADMIN], (0, 0, 0), "tollgate", "0.1.0",
    "Sets, gets, deletes and lists named policies.",
    container, subcommands = POLICY_SUBCOMMANDS },
];

/// `LIMIT.POLICY`'s subcommands.
static POLICY_SUBCOMMANDS: &[CommandSpec] = &[
    command! { "limit.policy|set", -6, [ADMIN], (0, 0, 0), "tollgate", "0.1.0",
    "Creates or replaces a run-time policy.",
    policy_set },
    command! { "limit.policy|get", 3, [], (0, 0, 0), "tollgate", "0.1.0",
    "Returns the rules of a policy.",
    policy_get },
    command! { "limit.policy|del", 3, [ADMIN], (0, 0, 0), "tollgate", "0.1.0",
    "Deletes a run-time policy.",
    policy_del },
    command! { "limit.policy|list", 2, [], (0, 0, 0), "tollgate", "0.1.0",
    "Returns the names of all policies.",
    policy_list },
    command! { "limit.policy|help", 2, [], (0, 0, 0), "tollgate", "0.1.0",
    "Returns helpful text about the different subcommands.",
    policy_help },
];
