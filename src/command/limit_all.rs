//! `LIMIT.CHECKALL`: several keys, each under its own rule or policy,
//! checked all or nothing (every key takes the cost, or none does).
//!
//! # Format
//! ```text
//! LIMIT.CHECKALL numkeys key [key ...] rule [rule ...] [COST n] [DRYRUN]
//!   rule: algorithm limit window [BURST n] [BUCKETS n] | POLICY name
//! ```
//! One rule per key, in the keys' order. The reply: 1 if every key
//! admitted the request (and each took the cost), else 0; the first key
//! that denied (nil when none did); each key's decision (five integers).

use std::sync::Arc;

use super::args::{Args, is};
use super::limit::{find_policy, set_once};
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::error::CmdError;
use crate::limiter::rule::{
    build_params, parse_algorithm, parse_buckets, parse_count, parse_count_in, parse_duration,
};
use crate::limiter::{Decision, Params};
use crate::metrics::{self, Metrics};
use crate::policy::Policy;
use crate::reply::Reply;
use crate::store::{Part, Rule};

/// Most keys one LIMIT.CHECKALL may name.
pub const MAX_KEYS: u64 = 64;

/// One key's rule, parsed.
pub(super) enum Target {
    Inline(Params),
    Policy(Arc<Policy>),
}

/// Reads one rule: `algorithm limit window [BURST n] [BUCKETS n]` or
/// `POLICY name`.
pub(super) fn parse_rule(ctx: &Ctx<'_>, args: &mut Args<'_>) -> Result<Target, CmdError> {
    let kind = args.required().map_err(|_| CmdError::Syntax)?;
    // A missing rule, whatever follows: the options cannot start one.
    if is(kind, "COST") || is(kind, "DRYRUN") {
        return Err(CmdError::Syntax);
    }
    if is(kind, "POLICY") {
        let name = args.text().map_err(|_| CmdError::Syntax)?;
        return Ok(Target::Policy(find_policy(ctx.engine(), name)?));
    }
    let algorithm = parse_algorithm(kind)?;
    let limit = parse_count("limit", args.required().map_err(|_| CmdError::Syntax)?, 1)?;
    let window = parse_duration("window", args.required().map_err(|_| CmdError::Syntax)?)?;
    let (mut burst, mut buckets) = (None, None);
    loop {
        let mut ahead = args.clone();
        match ahead.next_arg() {
            Some(w) if is(w, "BURST") => {
                let value = ahead.required()?;
                set_once(&mut burst, parse_count("burst", value, 1)?)?;
            }
            Some(w) if is(w, "BUCKETS") => {
                let value = ahead.required()?;
                set_once(&mut buckets, parse_buckets(value)?)?;
            }
            _ => break,
        }
        *args = ahead;
    }
    Ok(Target::Inline(build_params(
        algorithm, limit, window, burst, buckets,
    )?))
}

/// `LIMIT.CHECKALL`.
pub fn check_all(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let numkeys = parse_count_in("numkeys", argv[1], 1, MAX_KEYS)? as usize;
    let Some(keys) = argv.get(2..2 + numkeys) else {
        return Err(CmdError::WrongArity("limit.checkall".into()));
    };
    // The table routes and authorizes the first key; the others here.
    if !ctx.session.unrestricted && keys.iter().any(|k| !ctx.session.user.may_access(k)) {
        return Err(CmdError::Line(
            "NOPERM No permissions to access a key".into(),
        ));
    }
    if ctx.shared.cluster.mode != crate::cluster::ClusterMode::Off {
        let slot = crate::cluster::keyslot(keys[0]);
        if keys.iter().any(|k| crate::cluster::keyslot(k) != slot) {
            return Err(CmdError::Line(
                "CROSSSLOT Keys in request don't hash to the same slot".into(),
            ));
        }
    }
    let mut args = Args::new(&argv[2 + numkeys..]);
    let mut targets = Vec::with_capacity(numkeys);
    for _ in 0..numkeys {
        targets.push(parse_rule(ctx, &mut args)?);
    }
    let (mut cost, mut dry_run) = (None, false);
    while let Some(word) = args.next_arg() {
        if is(word, "DRYRUN") && !dry_run {
            dry_run = true;
        } else if is(word, "COST") {
            set_once(&mut cost, parse_count("cost", args.required()?, 0)?)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let cost = cost.unwrap_or(1);
    let parts: Vec<Part<'_>> = keys
        .iter()
        .zip(&targets)
        .map(|(key, target)| Part {
            key,
            rule: match target {
                Target::Inline(p) => Rule::Inline(p),
                Target::Policy(p) => Rule::Policy(p),
            },
            cost,
        })
        .collect();
    let now = ctx.now();
    let store = &ctx.engine().store;
    let (admitted, decisions) = store.check_many(&parts, now, !dry_run)?;
    let shared = ctx.shared;
    let denied = decisions.iter().position(|d| !d.allowed);
    let mut replies = Vec::with_capacity(numkeys);
    let mut delay = 0;
    for ((target, mut d), key) in targets.iter().zip(decisions).zip(keys) {
        let clock = &*shared.engine.clock;
        shared.metrics.top.record(key, d.allowed, clock);
        let series = match target {
            Target::Inline(p) => Metrics::series(p.algorithm),
            Target::Policy(_) => metrics::POLICY,
        };
        shared.metrics.record(series, admitted);
        if !admitted && d.allowed && !dry_run {
            // Nothing was taken: what was left before this request.
            d.remaining = d.remaining.saturating_add(cost).min(d.limit);
        }
        if admitted {
            delay = delay.max(d.delay);
        }
        replies.push(Reply::decision(Decision::fields(&d)));
    }
    let reply = Reply::Array(vec![
        Reply::Int(i64::from(admitted)),
        match denied {
            Some(i) => Reply::Bulk(bytes::Bytes::copy_from_slice(keys[i])),
            None => Reply::Null,
        },
        Reply::Array(replies),
    ]);
    if delay == 0 || !ctx.blocking {
        return Ok(reply.into());
    }
    // A leaky bucket's turn: the reply is held until the latest key's.
    let hold = shared.waits.hold();
    let turn = shared.engine.clock.sleep_until(now.saturating_add(delay));
    Ok(Outcome::Later(Box::pin(async move {
        turn.await;
        drop(hold);
        reply
    })))
}

pub(super) static ROWS: &[CommandSpec] = &[command! {
"limit.checkall", -5, [WRITE], (2, 2, 1), "tollgate", "0.1.0",
"Checks several keys, each under its own rule or policy, all or nothing.",
check_all }];
