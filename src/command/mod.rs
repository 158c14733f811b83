//! Commands: one static table that dispatches, checks arity and answers
//! `COMMAND`; one file per command family, each parsing its arguments into
//! typed values before it touches any state.

pub mod acl;
pub mod args;
pub mod cell;
pub mod cluster;
pub mod dispatch;
pub mod introspect;
pub mod limit;
pub mod limit_admin;
pub mod limit_all;
pub mod limit_reserve;
pub mod limit_top;
pub mod migrate;
pub mod server;
pub mod session;
pub mod table;
pub mod transaction;

pub use dispatch::{dispatch, dispatch_to, prefetch_key};
pub use table::{CommandSpec, Flags};

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use bytes::Bytes;

use crate::acl::{Catalog, Entry, User};
use crate::clients::ClientMeta;
use crate::engine::Engine;
use crate::reply::Reply;
use crate::state::Shared;

/// Per-connection state that commands read and change.
#[derive(Debug)]
pub struct Session {
    pub client: Arc<ClientMeta>,
    /// 2 or 3, switched by `HELLO`.
    pub protocol: u8,
    pub authenticated: bool,
    /// Who the connection runs as (`default` until `AUTH`).
    pub user: Arc<User>,
    /// The users' generation `user` was read at: a change is noticed at
    /// the next command.
    pub acl_generation: u64,
    /// `user.unrestricted()`, kept with `user` (checked on every command).
    pub unrestricted: bool,
    /// Commands queued since `MULTI`.
    pub multi: Option<Vec<Vec<Bytes>>>,
    /// A command failed to queue: `EXEC` must abort.
    pub multi_dirty: bool,
    /// What the queued commands hold: they count against the client's
    /// query buffer limit, as the input they came from did.
    pub multi_bytes: usize,
}

impl Session {
    /// Runs as `user` from now on.
    pub fn set_user(&mut self, user: Arc<User>, generation: u64) {
        self.unrestricted = user.unrestricted();
        self.user = user;
        self.acl_generation = generation;
    }

    /// A new connection's session, as `user` (the `default` user):
    /// authenticated if that user needs no password.
    pub fn new(client: Arc<ClientMeta>, user: Arc<User>) -> Session {
        Session {
            client,
            protocol: 2,
            authenticated: user.enabled && user.nopass,
            unrestricted: user.unrestricted(),
            user,
            acl_generation: 0,
            multi: None,
            multi_dirty: false,
            multi_bytes: 0,
        }
    }

    /// Ends a transaction (`EXEC`, `DISCARD`, `RESET`): its queue, which is
    /// no longer counted.
    pub fn end_multi(&mut self) -> Option<Vec<Vec<Bytes>>> {
        self.multi_bytes = 0;
        self.multi_dirty = false;
        self.multi.take()
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
    /// What a check needs (store, policies, clock), without the services.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// The time this request is decided at (see `batch_time`).
    pub fn now(&self) -> u64 {
        if let Some(t) = self.batch_time.get() {
            return t;
        }
        let t = self.engine().now();
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

/// Every command the server answers, family by family: each family's file
/// holds its own rows. `COMMAND` and docs/PROTOCOL.md list them in this
/// order.
pub static COMMANDS: LazyLock<Vec<&'static CommandSpec>> = LazyLock::new(|| {
    [
        limit::ROWS,
        limit_admin::ROWS,
        cell::ROWS,
        session::ROWS,
        transaction::ROWS,
        acl::ROWS,
        introspect::ROWS,
        server::ROWS,
        cluster::ROWS,
        limit_all::ROWS,
        limit_reserve::ROWS,
        limit_top::ROWS,
    ]
    .into_iter()
    .flatten()
    .collect()
});

/// Every command and subcommand with its ACL categories, as the ACL rules
/// name them.
pub static ACL_CATALOG: LazyLock<Catalog> = LazyLock::new(|| Catalog {
    entries: COMMANDS
        .iter()
        .flat_map(|&c| std::iter::once(c).chain(c.subcommands))
        .map(|c| Entry {
            name: c.name,
            categories: c.acl_categories(),
        })
        .collect(),
});

/// Longest command name (bytes).
const MAX_NAME: usize = 16;

/// A name folded to lower case and packed into one integer: names compare
/// in one instruction, and the table is searched by halving.
fn name_key(name: &[u8]) -> Option<u128> {
    let mut bytes = [0u8; MAX_NAME];
    bytes.get_mut(..name.len())?.copy_from_slice(name);
    bytes.make_ascii_lowercase();
    Some(u128::from_le_bytes(bytes))
}

/// The table by name key, sorted.
static BY_NAME: LazyLock<Vec<(u128, &'static CommandSpec)>> = LazyLock::new(|| {
    let mut by_name: Vec<_> = COMMANDS
        .iter()
        .filter_map(|&c| Some((name_key(c.name.as_bytes())?, c)))
        .collect();
    by_name.sort_unstable_by_key(|&(k, _)| k);
    by_name
});

/// Finds a command by name, ignoring ASCII case.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let key = name_key(name)?;
    let by_name = &*BY_NAME;
    by_name
        .binary_search_by_key(&key, |&(k, _)| k)
        .ok()
        .map(|i| by_name[i].1)
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
        for &c in COMMANDS.iter() {
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
        for &c in COMMANDS.iter() {
            assert!(std::ptr::eq(
                lookup(c.name.to_uppercase().as_bytes()).unwrap(),
                c
            ));
        }
        assert!(lookup(b"limit.check.and.more").is_none());
    }

    #[test]
    fn checks_fetch_their_key_ahead() {
        let key = |args: &[&[u8]]| {
            let spec = args.first().and_then(|name| lookup(name));
            prefetch_key(spec, |i| args.get(i).copied()).map(<[u8]>::to_vec)
        };
        let k = Some(b"k".to_vec());
        assert_eq!(key(&[b"LIMIT.CHECK", b"k", b"gcra", b"1", b"1s"]), k);
        assert_eq!(key(&[b"limit.check", b"k", b"gcra"]), k);
        assert_eq!(key(&[b"cl.throttle", b"k", b"1", b"2", b"3"]), k);
        assert_eq!(key(&[b"CL.THROTTLE", b"k"]), k);
        // Other commands, keyed or not, and a check without its key.
        assert_eq!(key(&[b"LIMIT.INFO", b"k"]), None);
        assert_eq!(key(&[b"LIMIT.RESET", b"k"]), None);
        assert_eq!(key(&[b"LIMIT.CHECK"]), None);
        assert_eq!(key(&[b"PING"]), None);
        assert_eq!(key(&[b"nope", b"k"]), None);
    }

    #[test]
    fn requests_of_one_batch_are_decided_at_one_instant() {
        const SECOND: u64 = 1_000_000_000;
        let clock = ManualClock::new(1_000 * SECOND);
        let shared = Shared::new(Config::default(), Arc::new(clock.clone()));
        let guard = shared.clients.register("a".into(), "b".into());
        let mut session = Session::new(guard.meta.clone(), shared.users.default_user());
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
        assert!(BY_NAME.windows(2).all(|w| w[0].0 < w[1].0), "a name twice");
        for &c in COMMANDS.iter() {
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
