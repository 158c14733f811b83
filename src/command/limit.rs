//! `LIMIT.CHECK`: parse, check, and hold the reply for WAIT or a leaky
//! bucket's turn. `LIMIT.INFO`, `LIMIT.RESET` and `LIMIT.POLICY` are in
//! [`super::limit_admin`].
//!
//! # Format
//! ```text
//! LIMIT.CHECK key algorithm limit window [BURST n] [BUCKETS n] [COST n] [DRYRUN] [WAIT duration]
//! LIMIT.CHECK key POLICY name [COST n] [DRYRUN] [WAIT duration] [VERBOSE]
//! ```

use std::sync::Arc;

use bytes::Bytes;
use scopeguard::ScopeGuard;

use super::args::{Args, is};
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::engine::Engine;
use crate::error::{CmdError, printable};
use crate::limiter::rule::{
    build_params, parse_algorithm, parse_buckets, parse_count, parse_duration,
};
use crate::limiter::{Algorithm, Decision, Params, Request, Retry, ScaledTime};
use crate::metrics::{self, Metrics};
use crate::policy::Policy;
use crate::reply::Reply;
use crate::state::Shared;
use crate::store::{Scope, encode_key};

/// What a check is made against.
#[derive(Debug, Clone)]
enum Target {
    Inline(Params),
    Policy(Arc<Policy>),
}

/// A parsed `LIMIT.CHECK`.
#[derive(Debug, Clone)]
struct CheckCmd<K> {
    /// The key: borrowed from the request, owned once a reply is held.
    key: K,
    target: Target,
    cost: u64,
    dry_run: bool,
    wait: Option<u64>,
    /// Policy checks: the reply also names the rule that decided.
    verbose: bool,
}

pub(super) fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), CmdError> {
    if slot.is_some() {
        return Err(CmdError::Syntax);
    }
    *slot = Some(value);
    Ok(())
}

fn parse_check<'a>(engine: &Engine, argv: &[&'a [u8]]) -> Result<CheckCmd<&'a [u8]>, CmdError> {
    let key = argv[1];
    let mut args = Args::new(&argv[2..]);
    let kind = args.required()?;
    let inline = if is(kind, "POLICY") {
        None
    } else {
        let algorithm = parse_algorithm(kind)?;
        if args.remaining() < 2 {
            return Err(CmdError::WrongArity("limit.check".into()));
        }
        let limit = parse_count("limit", args.required()?, 1)?;
        let window = parse_duration("window", args.required()?)?;
        Some((algorithm, limit, window))
    };
    let policy_name = match inline {
        None => Some(args.text().map_err(|_| CmdError::Syntax)?),
        Some(_) => None,
    };
    let (mut burst, mut buckets, mut cost, mut dry_run, mut wait) = (None, None, None, false, None);
    let mut verbose = false;
    while let Some(word) = args.next_arg() {
        if is(word, "DRYRUN") {
            if dry_run {
                return Err(CmdError::Syntax);
            }
            dry_run = true;
            continue;
        }
        if is(word, "VERBOSE") {
            if verbose || inline.is_some() {
                return Err(CmdError::Syntax);
            }
            verbose = true;
            continue;
        }
        let value = args.required()?;
        if is(word, "COST") {
            set_once(&mut cost, parse_count("cost", value, 0)?)?;
        } else if is(word, "WAIT") {
            set_once(&mut wait, parse_duration("wait", value)?)?;
        } else if is(word, "BURST") && inline.is_some() {
            set_once(&mut burst, parse_count("burst", value, 1)?)?;
        } else if is(word, "BUCKETS") && inline.is_some() {
            set_once(&mut buckets, parse_buckets(value)?)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let target = match (inline, policy_name) {
        (Some((algorithm, limit, window)), _) => {
            Target::Inline(build_params(algorithm, limit, window, burst, buckets)?)
        }
        (None, Some(name)) => Target::Policy(find_policy(engine, name)?),
        (None, None) => return Err(CmdError::Syntax),
    };
    Ok(CheckCmd {
        key,
        target,
        cost: cost.unwrap_or(1),
        dry_run,
        wait,
        verbose,
    })
}

impl CheckCmd<&[u8]> {
    /// A copy that owns its key, for a reply that outlives the request.
    fn owned(&self) -> CheckCmd<Bytes> {
        CheckCmd {
            key: Bytes::copy_from_slice(self.key),
            target: self.target.clone(),
            cost: self.cost,
            dry_run: self.dry_run,
            wait: self.wait,
            verbose: self.verbose,
        }
    }
}

pub(super) fn find_policy(engine: &Engine, name: &str) -> Result<Arc<Policy>, CmdError> {
    engine.policies.get(name).ok_or_else(|| {
        CmdError::invalid(format!("unknown policy '{}'", printable(name.as_bytes())))
    })
}

/// One check against the store: the decision, an admitted inline leaky
/// bucket request's end, and for a policy the position of the rule that
/// decided.
fn run_check(
    engine: &Engine,
    target: &Target,
    key: &[u8],
    request: Request,
    now: u64,
) -> Result<(Decision, Option<ScaledTime>, usize), CmdError> {
    match target {
        Target::Inline(params) => {
            let checked = engine.store.check(key, params, now, request)?;
            Ok((checked.decision, checked.leaky_end, 0))
        }
        Target::Policy(policy) => {
            let (decision, rule) = engine
                .store
                .check_policy_ranked(policy, key, now, request)?;
            Ok((decision, None, rule))
        }
    }
}

/// The metrics series `LIMIT.CHECK key algorithm|POLICY ...` counts under
/// (arity is checked before, so the algorithm's place exists).
pub fn series(argv: &[&[u8]]) -> usize {
    argv.get(2)
        .and_then(|a| Algorithm::parse(a))
        .map_or(metrics::POLICY, Metrics::series)
}

/// The reply for a final decision, counted in the metrics; with VERBOSE,
/// a sixth integer: the deciding rule's place in the policy (from 1, as
/// LIMIT.POLICY GET lists them).
fn answer(
    shared: &Shared,
    cmd: &CheckCmd<impl AsRef<[u8]>>,
    decision: &Decision,
    rule: usize,
) -> Reply {
    let series = match &cmd.target {
        Target::Inline(params) => Metrics::series(params.algorithm),
        Target::Policy(_) => metrics::POLICY,
    };
    let clock = &*shared.engine.clock;
    let key = cmd.key.as_ref();
    shared.metrics.decided(series, key, decision.allowed, clock);
    if !cmd.verbose {
        return Reply::decision(decision.fields());
    }
    let mut fields: Vec<Reply> = decision.fields().into_iter().map(Reply::Int).collect();
    fields.push(Reply::Int(rule as i64 + 1));
    Reply::Array(fields)
}

/// `LIMIT.CHECK`.
pub fn check(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let cmd = parse_check(ctx.engine(), argv)?;
    let leaky_inline =
        matches!(&cmd.target, Target::Inline(p) if p.algorithm == Algorithm::LeakyBucket);
    let request = Request {
        cost: cmd.cost,
        commit: !cmd.dry_run,
        max_wait: cmd.wait,
    };
    let shared = ctx.shared;
    let queue_key = || {
        let mut k = Vec::new();
        let scope = match &cmd.target {
            Target::Inline(_) => Scope::Inline,
            Target::Policy(p) => Scope::Policy(&p.name),
        };
        encode_key(&mut k, scope, cmd.key);
        k
    };
    let waits = ctx.blocking && !cmd.dry_run && !leaky_inline;
    if let (Some(wait), true) = (cmd.wait, waits)
        && shared.waits.has_waiters(&queue_key())
    {
        // Others are already waiting on this key: take a place behind them.
        let shared = shared.clone();
        return Ok(Outcome::Later(Box::pin(wait_in_queue(
            shared,
            cmd.owned(),
            request,
            wait,
        ))));
    }
    let now = ctx.now();
    let (decision, leaky_end, rule) =
        run_check(&shared.engine, &cmd.target, cmd.key, request, now)?;
    if decision.allowed {
        let reply = answer(shared, &cmd, &decision, rule);
        if decision.delay == 0 || !ctx.blocking {
            return Ok(reply.into());
        }
        // The slot is given back if the caller leaves before its turn (the
        // guard is dropped with the reply future), and kept once it is sent.
        let slot = match (&cmd.target, leaky_end) {
            (Target::Inline(params), Some(end)) => Some(scopeguard::guard(
                HeldSlot {
                    shared: shared.clone(),
                    key: Bytes::copy_from_slice(cmd.key),
                    params: *params,
                    end,
                    cost: cmd.cost,
                },
                HeldSlot::give_back,
            )),
            _ => None,
        };
        let hold = shared.waits.hold();
        let turn = shared
            .engine
            .clock
            .sleep_until(now.saturating_add(decision.delay));
        return Ok(Outcome::Later(Box::pin(async move {
            turn.await;
            if let Some(slot) = slot {
                ScopeGuard::into_inner(slot);
            }
            drop(hold);
            reply
        })));
    }
    match (cmd.wait, decision.retry) {
        (Some(wait), Retry::After(ns)) if waits && ns <= wait => Ok(Outcome::Later(Box::pin(
            wait_in_queue(shared.clone(), cmd.owned(), request, wait),
        ))),
        _ => Ok(answer(shared, &cmd, &decision, rule).into()),
    }
}

/// An admitted leaky bucket request's place in the queue, while its reply
/// is held for its turn.
struct HeldSlot {
    shared: Arc<Shared>,
    key: Bytes,
    params: Params,
    end: ScaledTime,
    cost: u64,
}

impl HeldSlot {
    /// Gives the place back (only if it is still the queue's tail).
    fn give_back(self) {
        self.shared
            .engine
            .store
            .give_back_leaky(&self.key, &self.params, self.end, self.cost);
    }
}

/// Waits in the key's queue until the request is allowed or `wait` runs out.
async fn wait_in_queue(
    shared: Arc<Shared>,
    cmd: CheckCmd<Bytes>,
    request: Request,
    wait: u64,
) -> Reply {
    let clock = &shared.engine.clock;
    let deadline = clock.now().saturating_add(wait);
    let mut map_key = Vec::new();
    let scope = match &cmd.target {
        Target::Inline(_) => Scope::Inline,
        Target::Policy(p) => Scope::Policy(&p.name),
    };
    encode_key(&mut map_key, scope, &cmd.key);
    let ticket = shared.waits.join(&map_key);
    let notify = ticket.notify.clone();
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !ticket.is_head() {
            tokio::select! {
                _ = &mut notified => continue,
                _ = clock.sleep_until(deadline) => {
                    // Out of time behind others: one last try of its own.
                    drop(ticket);
                    return match run_check(&shared.engine, &cmd.target, &cmd.key, request, shared.engine.clock.now()) {
                        Ok((d, _, rule)) => answer(&shared, &cmd, &d, rule),
                        Err(e) => e.into(),
                    };
                }
            }
        }
        let now = clock.now();
        let (decision, rule) = match run_check(&shared.engine, &cmd.target, &cmd.key, request, now)
        {
            Ok((d, _, rule)) => (d, rule),
            Err(e) => return e.into(),
        };
        if decision.allowed {
            drop(ticket);
            if decision.delay > 0 {
                clock.sleep_until(now.saturating_add(decision.delay)).await;
            }
            return answer(&shared, &cmd, &decision, rule);
        }
        let Retry::After(ns) = decision.retry else {
            return answer(&shared, &cmd, &decision, rule);
        };
        let wake = now.saturating_add(ns);
        if wake > deadline {
            return answer(&shared, &cmd, &decision, rule);
        }
        clock.sleep_until(wake).await;
    }
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "limit.check", -4, [WRITE, FAST, CHECK], (1, 1, 1), "tollgate", "0.1.0",
    "Checks and, when allowed, consumes units of a key's rate limit.",
    check, series = series },
];
