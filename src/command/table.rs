//! What a row of the command table is: name, arity, typed flags, key
//! positions, docs and handler. The rows themselves are the parent module's
//! [`super::COMMANDS`]; dispatch checks arity, authentication and MULTI
//! queueing from them once, and `COMMAND` answers from them.

use super::{Ctx, Outcome};
use crate::error::CmdError;

pub type Handler = fn(&mut Ctx<'_>, &[&[u8]]) -> Result<Outcome, CmdError>;

bitflags::bitflags! {
    /// What a command is, checked at compile time: Redis's flags (shown by
    /// `COMMAND INFO`, in this order) and two of our own.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Flags: u16 {
        const WRITE = 1;
        const READONLY = 1 << 1;
        const ADMIN = 1 << 2;
        const NO_AUTH = 1 << 3;
        const FAST = 1 << 4;
        const STALE = 1 << 5;
        /// Runs at once between `MULTI` and `EXEC` instead of being queued.
        const TX_CONTROL = 1 << 6;
        /// A rate-limit check: counted by algorithm and sampled for latency.
        const CHECK = 1 << 7;
        /// In ACL category `@dangerous` without being `admin` (`FLUSHALL`).
        const DANGEROUS = 1 << 8;
    }
}

impl Flags {
    /// Redis's names of the flags `COMMAND INFO` shows.
    pub fn redis_names(self) -> Vec<&'static str> {
        [
            (Flags::WRITE, "write"),
            (Flags::READONLY, "readonly"),
            (Flags::ADMIN, "admin"),
            (Flags::NO_AUTH, "no-auth"),
            (Flags::FAST, "fast"),
            (Flags::STALE, "stale"),
        ]
        .into_iter()
        .filter(|&(f, _)| self.contains(f))
        .map(|(_, name)| name)
        .collect()
    }
}

/// One row of the command table.
pub struct CommandSpec {
    /// Lower-case name, as Redis shows it.
    pub name: &'static str,
    /// Argument count including the name; negative means at least that many.
    pub arity: i32,
    /// Most arguments including the name, where a negative arity has a
    /// ceiling (`PING [message]`: at least 1, at most 2).
    pub max_args: Option<usize>,
    pub flags: Flags,
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    /// What runs the command; `None` for a container (`CONFIG`, `CLIENT`,
    /// ...), which only ever runs through its subcommands.
    pub(super) run: Option<Handler>,
    /// A container's subcommands: rows of their own, named
    /// `container|sub`, each with its own arity and flags.
    pub subcommands: &'static [CommandSpec],
    /// For a check (flag `CHECK`): the metrics series its arguments count
    /// under (the algorithm, or policies).
    pub(super) series: Option<SeriesOf>,
}

/// Which metrics series a check's arguments count under.
pub type SeriesOf = fn(&[&[u8]]) -> usize;

impl CommandSpec {
    /// Redis's ACL categories, from the flags and the group: LIMIT.CHECK
    /// is `@write @fast`, SAVE `@admin @slow @dangerous`, ...
    pub fn acl_categories(&self) -> Vec<&'static str> {
        let f = self.flags;
        let mut out = Vec::new();
        if f.contains(Flags::WRITE) {
            out.push("@write");
        }
        if f.contains(Flags::READONLY) {
            out.push("@read");
        }
        if f.contains(Flags::ADMIN) {
            out.push("@admin");
        }
        out.push(if f.contains(Flags::FAST) {
            "@fast"
        } else {
            "@slow"
        });
        if f.intersects(Flags::ADMIN | Flags::DANGEROUS) {
            out.push("@dangerous");
        }
        match self.group {
            "connection" => out.push("@connection"),
            "transactions" => out.push("@transaction"),
            _ => {}
        }
        out
    }

    pub(super) fn arity_ok(&self, argc: usize) -> bool {
        if self.max_args.is_some_and(|max| argc > max) {
            return false;
        }
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// The subcommand `sub` names (ignoring ASCII case), if any.
    pub fn subcommand(&self, sub: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands.iter().find(|s| {
            s.name
                .split_once('|')
                .is_some_and(|(_, name)| name.as_bytes().eq_ignore_ascii_case(sub))
        })
    }
}

/// One row of [`super::COMMANDS`]: name, arity, flags, key positions,
/// group, since, summary, then the handler (`container` for a container)
/// and optional `max = N`, `series = f`, `subcommands = ROWS`.
macro_rules! command {
    (@run container) => { None };
    (@run $run:path) => { Some($run) };
    (@opt) => { None };
    (@opt $x:expr) => { Some($x) };
    (@subs) => { &[] };
    (@subs $subs:expr) => { $subs };
    ($name:literal, $arity:expr, [$($flag:ident),*], ($first:expr, $last:expr, $step:expr),
     $group:literal, $since:literal, $summary:literal, $run:ident
     $(, max = $max:expr)? $(, series = $series:path)? $(, subcommands = $subs:expr)?) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            max_args: command!(@opt $($max)?),
            flags: Flags::empty()$(.union(Flags::$flag))*,
            first_key: $first,
            last_key: $last,
            step: $step,
            group: $group,
            summary: $summary,
            since: $since,
            run: command!(@run $run),
            subcommands: command!(@subs $($subs)?),
            series: command!(@opt $($series)?),
        }
    };
}

pub(super) use command;
