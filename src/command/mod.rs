//! Commands: one static table that dispatches, checks arity and answers
//! `COMMAND`; one file per command family, each parsing its arguments into
//! typed values before it touches any state.

pub mod args;
pub mod cell;
pub mod dispatch;
pub mod introspect;
pub mod limit;
pub mod limit_admin;
pub mod server;
pub mod session;
pub mod table;

pub use dispatch::{dispatch, prefetch_key};
use table::command;
pub use table::{CommandSpec, Flags};

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;

use crate::clients::ClientMeta;
use crate::reply::Reply;
use crate::state::Shared;

/// Per-connection state that commands read and change.
#[derive(Debug)]
pub struct Session {
    pub client: Arc<ClientMeta>,
    /// 2 or 3, switched by `HELLO`.
    pub protocol: u8,
    pub authenticated: bool,
    /// Commands queued since `MULTI`.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A command failed to queue: `EXEC` must abort.
    pub multi_dirty: bool,
}

impl Session {
    pub fn new(client: Arc<ClientMeta>, authenticated: bool) -> Session {
        Session {
            client,
            protocol: 2,
            authenticated,
            multi: None,
            multi_dirty: false,
        }
    }
}

/// What a command runs with.
pub struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub session: &'a mut Session,
    /// False inside `EXEC`: commands answer at once instead of waiting.
    pub blocking: bool,
    /// The instant the requests read together are decided at: read from
    /// the clock by the first of them that needs it, shared by the rest
    /// (one clock read per pipelined batch, not per request).
    pub batch_time: &'a Cell<Option<u64>>,
}

impl Ctx<'_> {
    /// The time this request is decided at (see `batch_time`).
    pub fn now(&self) -> u64 {
        if let Some(t) = self.batch_time.get() {
            return t;
        }
        let t = self.shared.clock.now();
        self.batch_time.set(Some(t));
        t
    }
}

/// A reply that comes later (WAIT, the leaky bucket's turn). Dropping it
/// before it finishes gives back whatever it holds.
pub type Pending = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// What running a command leads to.
pub enum Outcome {
    Reply(Reply),
    /// Hold the connection until the reply is ready.
    Later(Pending),
    /// Reply, then close the connection (`QUIT`).
    Close(Reply),
    /// Stop the server (`SHUTDOWN`); the connection closes without a reply.
    Shutdown,
}

impl From<Reply> for Outcome {
    fn from(r: Reply) -> Outcome {
        Outcome::Reply(r)
    }
}

/// Every command the server answers. `COMMAND` reads this same table.
pub static COMMANDS: &[CommandSpec] = &[
    command!(
        "limit.check",
        -4,
        [WRITE, FAST, CHECK],
        (1, 1, 1),
        "tollgate",
        "0.1.0",
        "Checks and, when allowed, consumes units of a key's rate limit.",
        limit::check,
        series = limit::series
    ),
    command!(
        "limit.info",
        -2,
        [READONLY, FAST],
        (1, 1, 1),
        "tollgate",
        "0.1.0",
        "Shows the state of a key's rate limit, one map per rule.",
        limit_admin::info
    ),
    command!(
        "limit.reset",
        -2,
        [WRITE, FAST],
        (1, 1, 1),
        "tollgate",
        "0.1.0",
        "Drops the state of a key's rate limit.",
        limit_admin::reset
    ),
    command!(
        "limit.policy",
        -2,
        [ADMIN],
        (0, 0, 0),
        "tollgate",
        "0.1.0",
        "Sets, gets, deletes and lists named policies.",
        limit_admin::policy
    ),
    command!(
        "cl.throttle",
        -5,
        [WRITE, FAST, CHECK],
        (1, 1, 1),
        "tollgate",
        "0.1.0",
        "GCRA rate limiting, answering exactly as redis-cell's CL.THROTTLE.",
        cell::throttle,
        series = cell::series
    ),
    command!(
        "ping",
        -1,
        [FAST, STALE],
        (0, 0, 0),
        "connection",
        "1.0.0",
        "Returns the server's liveliness response.",
        server::ping
    ),
    command!(
        "echo",
        2,
        [FAST],
        (0, 0, 0),
        "connection",
        "1.0.0",
        "Returns the given string.",
        server::echo
    ),
    command!(
        "hello",
        -1,
        [NO_AUTH, FAST],
        (0, 0, 0),
        "connection",
        "6.0.0",
        "Handshakes with the server: protocol version, authentication, name.",
        session::hello
    ),
    command!(
        "auth",
        -2,
        [NO_AUTH, FAST],
        (0, 0, 0),
        "connection",
        "1.0.0",
        "Authenticates the connection.",
        session::auth
    ),
    command!(
        "quit",
        -1,
        [NO_AUTH, FAST, TX_CONTROL],
        (0, 0, 0),
        "connection",
        "1.0.0",
        "Closes the connection.",
        session::quit
    ),
    command!(
        "reset",
        1,
        [NO_AUTH, FAST, TX_CONTROL],
        (0, 0, 0),
        "connection",
        "6.2.0",
        "Resets the connection.",
        session::reset
    ),
    command!(
        "select",
        2,
        [FAST],
        (0, 0, 0),
        "connection",
        "1.0.0",
        "Changes the selected database (only 0 exists).",
        session::select
    ),
    command!(
        "client",
        -2,
        [ADMIN],
        (0, 0, 0),
        "connection",
        "2.4.0",
        "A container for client connection commands.",
        session::client
    ),
    command!(
        "multi",
        1,
        [FAST, TX_CONTROL],
        (0, 0, 0),
        "transactions",
        "1.2.0",
        "Starts a transaction.",
        session::multi
    ),
    command!(
        "exec",
        1,
        [TX_CONTROL],
        (0, 0, 0),
        "transactions",
        "1.2.0",
        "Runs all commands in a transaction.",
        session::exec
    ),
    command!(
        "discard",
        1,
        [FAST, TX_CONTROL],
        (0, 0, 0),
        "transactions",
        "2.0.0",
        "Discards a transaction.",
        session::discard
    ),
    command!(
        "command",
        -1,
        [STALE],
        (0, 0, 0),
        "server",
        "2.8.13",
        "Returns detailed information about all commands.",
        introspect::command
    ),
    command!(
        "info",
        -1,
        [STALE],
        (0, 0, 0),
        "server",
        "1.0.0",
        "Returns information and statistics about the server.",
        server::info
    ),
    command!(
        "config",
        -2,
        [ADMIN],
        (0, 0, 0),
        "server",
        "2.0.0",
        "A container for server configuration commands.",
        server::config
    ),
    command!(
        "dbsize",
        1,
        [READONLY, FAST],
        (0, 0, 0),
        "server",
        "1.0.0",
        "Returns the number of live limiter states.",
        server::dbsize
    ),
    command!(
        "flushall",
        -1,
        [WRITE],
        (0, 0, 0),
        "server",
        "1.0.0",
        "Drops all limiter states; keeps policies.",
        server::flushall
    ),
    command!(
        "time",
        1,
        [FAST],
        (0, 0, 0),
        "server",
        "2.6.0",
        "Returns the server time.",
        server::time
    ),
    command!(
        "save",
        1,
        [ADMIN],
        (0, 0, 0),
        "server",
        "1.0.0",
        "Writes a snapshot to disk synchronously.",
        server::save
    ),
    command!(
        "bgsave",
        -1,
        [ADMIN],
        (0, 0, 0),
        "server",
        "1.0.0",
        "Writes a snapshot to disk in the background.",
        server::bgsave
    ),
    command!(
        "lastsave",
        1,
        [FAST],
        (0, 0, 0),
        "server",
        "1.0.0",
        "Returns the Unix time of the last good snapshot.",
        server::lastsave
    ),
    command!(
        "shutdown",
        -1,
        [ADMIN],
        (0, 0, 0),
        "server",
        "1.0.0",
        "Stops the server.",
        server::shutdown
    ),
];

/// The table by name.
static BY_NAME: LazyLock<HashMap<&'static str, &'static CommandSpec, foldhash::fast::FixedState>> =
    LazyLock::new(|| COMMANDS.iter().map(|c| (c.name, c)).collect());

/// Finds a command by name, ignoring ASCII case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut lower = [0u8; 16];
    let lower = lower.get_mut(..name.len())?;
    for (l, b) in lower.iter_mut().zip(name) {
        *l = b.to_ascii_lowercase();
    }
    BY_NAME.get(std::str::from_utf8(lower).ok()?).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::Config;

    #[test]
    fn the_table_says_what_each_command_is() {
        let with = |flag: Flags| -> Vec<&str> {
            COMMANDS
                .iter()
                .filter(|c| c.flags.contains(flag))
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(with(Flags::CHECK), ["limit.check", "cl.throttle"]);
        // Exactly the checks name their metrics series.
        for c in COMMANDS {
            assert_eq!(
                c.series.is_some(),
                c.flags.contains(Flags::CHECK),
                "{}",
                c.name
            );
        }
        let series = |argv: &[&[u8]]| (lookup(argv[0]).unwrap().series.unwrap())(argv);
        use crate::limiter::Algorithm;
        use crate::metrics::{Metrics, POLICY};
        assert_eq!(
            series(&[b"CL.THROTTLE", b"k"]),
            Metrics::series(Algorithm::Gcra)
        );
        assert_eq!(
            series(&[b"LIMIT.CHECK", b"k", b"sliding_log"]),
            Metrics::series(Algorithm::SlidingLog)
        );
        assert_eq!(series(&[b"LIMIT.CHECK", b"k", b"POLICY", b"p"]), POLICY);
        assert_eq!(
            with(Flags::TX_CONTROL),
            ["quit", "reset", "multi", "exec", "discard"]
        );
        assert_eq!(with(Flags::NO_AUTH), ["hello", "auth", "quit", "reset"]);
        let acl = |name: &[u8]| lookup(name).unwrap().acl_categories();
        assert_eq!(acl(b"LIMIT.CHECK"), ["@write", "@fast"]);
        assert_eq!(acl(b"limit.info"), ["@read", "@fast"]);
        assert_eq!(acl(b"save"), ["@admin", "@slow", "@dangerous"]);
        assert_eq!(acl(b"exec"), ["@slow", "@transaction"]);
        assert_eq!(
            lookup(b"ping").unwrap().flags.redis_names(),
            ["fast", "stale"]
        );
        assert_eq!(
            lookup(b"hello").unwrap().flags.redis_names(),
            ["no-auth", "fast"]
        );
        // Every name is found, whatever its case; names past 16 bytes are not commands.
        for c in COMMANDS {
            assert!(std::ptr::eq(
                lookup(c.name.to_uppercase().as_bytes()).unwrap(),
                c
            ));
        }
        assert!(lookup(b"limit.check.and.more").is_none());
    }

    #[test]
    fn only_inline_checks_are_fetched_ahead() {
        let key = |args: &[&[u8]]| {
            let arg = |i: usize| args.get(i).copied();
            prefetch_key([arg(0), arg(1), arg(2)]).map(<[u8]>::to_vec)
        };
        let k = Some(b"k".to_vec());
        assert_eq!(key(&[b"LIMIT.CHECK", b"k", b"gcra", b"1", b"1s"]), k);
        assert_eq!(key(&[b"limit.check", b"k", b"gcra"]), k);
        assert_eq!(key(&[b"cl.throttle", b"k", b"1", b"2", b"3"]), k);
        assert_eq!(key(&[b"CL.THROTTLE", b"k"]), k);
        // A policy check and any other command: nothing to fetch.
        assert_eq!(key(&[b"LIMIT.CHECK", b"k", b"policy", b"p"]), None);
        assert_eq!(key(&[b"LIMIT.INFO", b"k"]), None);
        assert_eq!(key(&[b"LIMIT.CHECK"]), None);
        assert_eq!(key(&[b"PING"]), None);
    }

    #[test]
    fn requests_of_one_batch_are_decided_at_one_instant() {
        const SECOND: u64 = 1_000_000_000;
        let clock = ManualClock::new(1_000 * SECOND);
        let shared = Shared::new(Config::default(), Arc::new(clock.clone()));
        let guard = shared.clients.register("a".into(), "b".into());
        let mut session = Session::new(guard.meta.clone(), true);
        let batch_time = Cell::new(None);
        let mut allowed = || {
            let argv: [&[u8]; 5] = [b"LIMIT.CHECK", b"k", b"gcra", b"1", b"1s"];
            let mut ctx = Ctx {
                shared: &shared,
                session: &mut session,
                blocking: true,
                batch_time: &batch_time,
            };
            match dispatch(&mut ctx, &argv) {
                Outcome::Reply(Reply::Decision(fields)) => fields[0] == 1,
                _ => panic!("not a decision"),
            }
        };
        assert!(allowed());
        // The clock moves on within the batch: the batch keeps its instant.
        clock.advance(SECOND);
        assert!(!allowed());
        // The next batch reads the clock again.
        batch_time.set(None);
        assert!(allowed());
    }

    #[test]
    fn lookup_ignores_case_and_rejects_long_names() {
        assert_eq!(lookup(b"LIMIT.CHECK").map(|c| c.name), Some("limit.check"));
        assert_eq!(lookup(b"Ping").map(|c| c.name), Some("ping"));
        assert!(lookup(b"nope").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
        assert!(lookup(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn table_names_are_unique_and_lower_case() {
        assert_eq!(BY_NAME.len(), COMMANDS.len());
        for c in COMMANDS {
            assert_eq!(c.name, c.name.to_lowercase());
            assert!(c.name.len() <= 16);
        }
    }

    #[test]
    fn arity_counts_the_name() {
        let echo = lookup(b"echo").unwrap();
        assert!(echo.arity_ok(2) && !echo.arity_ok(1) && !echo.arity_ok(3));
        let check = lookup(b"limit.check").unwrap();
        assert!(!check.arity_ok(3) && check.arity_ok(4) && check.arity_ok(12));
    }
}
