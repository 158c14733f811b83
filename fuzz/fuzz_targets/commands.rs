//! Command parsing and dispatch on a fresh server state with a manual
//! clock: random commands and arguments never panic, and a command answered
//! with an error changes nothing (every limiter state and policy as before).
//!
//! The input is a script: one command a line, arguments split on spaces; a
//! line starting with `+N ` first moves the clock on by N ms.
#![no_main]

use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use tollgate::clients::Clients;
use tollgate::clock::{Clock, ManualClock};
use tollgate::command::{Ctx, Outcome, Session, dispatch};
use tollgate::config::Config;
use tollgate::server::Shared;
use tollgate::snapshot;

/// 2026-01-01T00:00:00Z.
const START_NS: u64 = 1_767_225_600_000_000_000;
/// Commands that write files or stop the server: not for a fuzzer's loop.
const SKIPPED: [&[u8]; 4] = [b"SAVE", b"BGSAVE", b"SHUTDOWN", b"DEBUG"];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

/// Everything a failed command must leave as it was.
fn state_of(shared: &Shared) -> (Vec<u8>, Vec<String>) {
    let policies = shared.engine.policies.all();
    let mut names: Vec<String> = policies.iter().map(|p| format!("{p:?}")).collect();
    names.sort();
    (snapshot::encode(&shared.engine.store, &policies, 0), names)
}

fuzz_target!(|data: &[u8]| {
    let _rt = runtime().enter();
    let clock = ManualClock::new(START_NS);
    let config = Config {
        data_dir: std::env::temp_dir().join("tollgate-fuzz-commands"),
        ..Config::default()
    };
    let shared = Shared::new(config, Arc::new(clock.clone()));
    let clients = Arc::new(Clients::default());
    let guard = clients.register("fuzz:1".into(), "fuzz:0".into());
    let mut session = Session::new(guard.meta.clone(), shared.users.default_user());
    for line in data.split(|&b| b == b'\n').take(64) {
        let mut words: Vec<&[u8]> = line
            .split(|&b| b == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        if let Some(ms) = words
            .first()
            .and_then(|w| w.strip_prefix(b"+"))
            .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u64>().ok())
        {
            clock.advance_ms(ms.min(1 << 40));
            words.remove(0);
        }
        let Some(name) = words.first() else {
            continue;
        };
        if SKIPPED.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            continue;
        }
        let now = clock.now();
        shared.engine.store.sweep(now);
        let before = state_of(&shared);
        let batch_time = Cell::new(None);
        let mut ctx = Ctx {
            shared: &shared,
            session: &mut session,
            blocking: true,
            batch_time: &batch_time,
        };
        // A reply that would come later is dropped at once, as when its
        // caller leaves: whatever it holds is given back.
        if let Outcome::Reply(reply) = dispatch(&mut ctx, &words) {
            if reply.is_error() {
                assert_eq!(state_of(&shared), before, "{reply:?} changed state");
            }
        }
    }
});
