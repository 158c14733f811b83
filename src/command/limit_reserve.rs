//! Budgets whose cost is known only afterwards (an LLM call's tokens):
//! `LIMIT.RESERVE` takes an estimate now, `LIMIT.SETTLE` puts the true cost
//! in its place, `LIMIT.REFUND` gives it all back.
//!
//! # Format
//! ```text
//! LIMIT.RESERVE key algorithm limit window [BURST n] [BUCKETS n] [COST n] [TIMEOUT duration]
//! LIMIT.RESERVE key POLICY name [COST n] [TIMEOUT duration]
//! LIMIT.SETTLE key id actual
//! LIMIT.REFUND key id
//! LIMIT.PENDING key [COUNT n]
//! ```
//! RESERVE answers the five decision integers and the reservation's id
//! (nil when denied); SETTLE and REFUND answer the key's five integers for
//! a look afterwards and whether the reservation's window was still current.

use super::args::{Args, is};
use super::limit::set_once;
use super::limit_all::{Target, parse_rule};
use super::table::{CommandSpec, Flags, command};
use super::{Ctx, Outcome};
use crate::clock::NANOS_PER_MS;
use crate::error::{CmdError, printable};
use crate::limiter::refund::NoRefund;
use crate::limiter::rule::{parse_count, parse_count_in, parse_duration};
use crate::limiter::{Algorithm, DEFAULT_BUCKETS, Decision, ns_to_ms_ceil};
use crate::metrics::{self, Metrics};
use crate::reply::Reply;
use crate::store::{MAX_OPEN, Part, Rule, SettleError, Settled, Under};

/// How long a reservation stays open when `TIMEOUT` is not given.
pub const DEFAULT_TIMEOUT_NS: u64 = 10 * 60 * 1_000_000_000;
/// The longest `TIMEOUT`: one day.
pub const MAX_TIMEOUT_NS: u64 = 24 * 3600 * 1_000_000_000;
/// Reservations LIMIT.PENDING lists when `COUNT` is not given.
pub const DEFAULT_LISTED: usize = 100;

/// `LIMIT.RESERVE`.
pub fn reserve(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let key = argv[1];
    let mut args = Args::new(&argv[2..]);
    let target = parse_rule(ctx, &mut args)?;
    let (mut cost, mut timeout) = (None, None);
    while let Some(word) = args.next_arg() {
        let value = args.required()?;
        if is(word, "COST") {
            set_once(&mut cost, parse_count("cost", value, 0)?)?;
        } else if is(word, "TIMEOUT") {
            let ns = parse_duration("timeout", value)
                .ok()
                .filter(|ns| *ns <= MAX_TIMEOUT_NS)
                .ok_or_else(|| {
                    CmdError::invalid(format!(
                        "invalid timeout '{}': expected a duration from 1ms to 1d",
                        printable(value)
                    ))
                })?;
            set_once(&mut timeout, ns)?;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let rule = match &target {
        Target::Inline(p) => Rule::Inline(p),
        Target::Policy(p) => Rule::Policy(p),
    };
    let leaky = match &target {
        Target::Inline(p) => p.algorithm == Algorithm::LeakyBucket,
        Target::Policy(p) => p
            .rules
            .iter()
            .any(|r| r.algorithm == Algorithm::LeakyBucket),
    };
    if leaky {
        return Err(CmdError::invalid(format!(
            "{}; it takes no reservations",
            NoRefund(Algorithm::LeakyBucket)
        )));
    }
    let part = Part {
        key,
        rule,
        cost: cost.unwrap_or(1),
    };
    let now = ctx.now();
    let deadline = now.saturating_add(timeout.unwrap_or(DEFAULT_TIMEOUT_NS));
    let reserved = ctx.engine().store.reserve(part, now, deadline)?;
    // A reserve is a check: counted as one, by its algorithm (or policy).
    let clock = &*ctx.shared.engine.clock;
    let series = match &target {
        Target::Inline(p) => Metrics::series(p.algorithm),
        Target::Policy(_) => metrics::POLICY,
    };
    let allowed = reserved.decision.allowed;
    ctx.shared.metrics.decided(series, key, allowed, clock);
    if reserved.id.is_some() {
        count(&ctx.shared.metrics.reservations_opened);
    }
    let mut fields = ints(&reserved.decision);
    fields.push(match reserved.id {
        Some(id) => Reply::bulk(format!("{id:016x}")),
        None => Reply::Null,
    });
    Ok(Reply::Array(fields).into())
}

/// `LIMIT.SETTLE key id actual`.
pub fn settle(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let actual = parse_count("actual", argv[3], 0)?;
    let reply = close(ctx, argv[1], argv[2], actual)?;
    count(&ctx.shared.metrics.reservations_settled);
    Ok(reply)
}

/// `LIMIT.REFUND key id`: a settle at 0.
pub fn refund(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let reply = close(ctx, argv[1], argv[2], 0)?;
    count(&ctx.shared.metrics.reservations_refunded);
    Ok(reply)
}

fn count(counter: &std::sync::atomic::AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Settles reservation `id` of `key` at `actual` units.
fn close(ctx: &mut Ctx<'_>, key: &[u8], id: &[u8], actual: u64) -> Result<Outcome, CmdError> {
    let parsed = (id.len() == 16)
        .then(|| std::str::from_utf8(id).ok())
        .flatten()
        .and_then(|s| u64::from_str_radix(s, 16).ok());
    let Some(id_number) = parsed else {
        return Err(CmdError::invalid(format!(
            "invalid reservation id '{}': expected 16 hexadecimal digits",
            printable(id)
        )));
    };
    let now = ctx.now();
    let engine = ctx.engine();
    let policy_of = |name: &str| engine.policies.get(name);
    let settled = engine
        .store
        .settle(key, id_number, actual, now, policy_of)
        .map_err(|e| settle_error(e, key, id))?;
    Ok(answer(&settled).into())
}

/// `LIMIT.PENDING key [COUNT n]`: the key's open reservations,
/// oldest first, each `[id, units, age_ms, ttl_ms, rule]`.
pub fn list(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<Outcome, CmdError> {
    let mut args = Args::new(&argv[2..]);
    let mut count = None;
    while let Some(word) = args.next_arg() {
        if !is(word, "COUNT") {
            return Err(CmdError::Syntax);
        }
        let n = parse_count_in("count", args.required()?, 1, MAX_OPEN as u64)?;
        set_once(&mut count, n as usize)?;
    }
    let now = ctx.now();
    let open = ctx.engine().store.reservations(argv[1], now);
    let ms = |ns: u64| Reply::Int(ns_to_ms_ceil(ns));
    let rows = open
        .iter()
        .take(count.unwrap_or(DEFAULT_LISTED))
        .map(|r| {
            Reply::Array(vec![
                Reply::bulk(format!("{:016x}", r.id)),
                Reply::Int(i64::try_from(r.units).unwrap_or(i64::MAX)),
                Reply::Int(
                    i64::try_from(now.saturating_sub(r.taken_at) / NANOS_PER_MS)
                        .unwrap_or(i64::MAX),
                ),
                ms(r.deadline.saturating_sub(now)),
                Reply::bulk(rule_text(&r.under)),
            ])
        })
        .collect();
    Ok(Reply::Array(rows).into())
}

/// A reservation's rule in LIMIT.CHECK's words.
fn rule_text(under: &Under) -> String {
    match under {
        Under::Policy(name) => format!("POLICY {name}"),
        Under::Inline(p) => {
            let mut text = format!(
                "{} {} {}ms",
                p.algorithm.name(),
                p.limit,
                p.window / NANOS_PER_MS
            );
            if p.algorithm.uses_burst() && p.burst != p.limit {
                text.push_str(&format!(" BURST {}", p.burst));
            }
            if p.algorithm.uses_buckets() && p.buckets != DEFAULT_BUCKETS {
                text.push_str(&format!(" BUCKETS {}", p.buckets));
            }
            text
        }
    }
}

/// The five integers of a look at the key, and 1 if the reservation's
/// window was still current (0: it had passed, nothing changed).
fn answer(settled: &Settled) -> Reply {
    let mut fields = ints(&settled.decision);
    fields.push(Reply::Int(i64::from(settled.in_window)));
    Reply::Array(fields)
}

fn ints(d: &Decision) -> Vec<Reply> {
    d.fields().into_iter().map(Reply::Int).collect()
}

fn settle_error(e: SettleError, key: &[u8], id: &[u8]) -> CmdError {
    match e {
        SettleError::NoReservation => CmdError::Line(format!(
            "NORESERVATION no open reservation '{}' on key '{}' (never made, already settled or refunded, or past its timeout)",
            printable(id),
            printable(key)
        )),
        SettleError::NoPolicy(name) => CmdError::invalid(format!(
            "unknown policy '{}' (the reservation's policy was deleted; it stays open until its timeout)",
            printable(name.as_bytes())
        )),
        SettleError::Refused(e) => e.into(),
        SettleError::Unsettled(e) => CmdError::invalid(format!("{e}; nothing changed")),
    }
}

/// The family's rows of the command table.
pub(super) static ROWS: &[CommandSpec] = &[
    command! { "limit.reserve", -4, [WRITE, FAST], (1, 1, 1), "tollgate", "0.1.0",
    "Takes an estimated cost now under a rule or policy, to be settled later.",
    reserve },
    command! { "limit.settle", 4, [WRITE, FAST], (1, 1, 1), "tollgate", "0.1.0",
    "Settles a reservation at its true cost: gives back the difference or takes the extra.",
    settle },
    command! { "limit.refund", 3, [WRITE, FAST], (1, 1, 1), "tollgate", "0.1.0",
    "Gives back all of a reservation's units at once.",
    refund },
    command! { "limit.pending", -2, [READONLY], (1, 1, 1), "tollgate", "0.1.0",
    "Lists a key's open reservations, oldest first.",
    list, max = 4 },
];
