//! tollgate: a rate-limiter server that speaks the Redis protocol (RESP2 and
//! RESP3), so `redis-cli` and every Redis client library are its clients.
//!
//! # Layout
//!
//! Data flows one way: socket -> frame -> command -> store -> limiter ->
//! decision -> reply frame -> socket.
//!
//! - [`connection`]: the only code that touches sockets; [`tls`]: the
//!   certificates TLS connections are accepted with.
//! - [`frame`]: bytes to requests or a protocol error (pure, fuzzed);
//!   [`resp`]: replies to RESP2/RESP3 bytes.
//! - [`command`]: the command table and one file per command family.
//! - [`store`]: the sharded keyspace; atomic per-key checks; the sweep; the
//!   batch prefetch (the crate's one `unsafe`, a cache hint); each shard's
//!   open-addressed index ([`store::index`]).
//! - [`limiter`]: the six algorithms as pure functions of (state, params, now).
//! - [`policy`]: named multi-rule policies, all or nothing.
//! - [`cluster`]: cluster mode: key slots, the node id and the pushed slot
//!   map, and where a key is served.
//! - [`wait`]: first-come-first-served queues for `WAIT`; held replies counted.
//! - [`clock`]: the injected time source.
//! - [`acl`]: users, their passwords (SHA-256) and what they may run.
//! - [`snapshot`]: the snapshot file format; [`persistence`]: when it is
//!   written and restored, and the data directory check at start
//!   ([`persistence::status`]: the bookkeeping the state holds).
//! - [`reply`], [`error`]: replies and errors before they become RESP;
//!   [`text`]: client bytes made safe to quote; [`striped`]: counters
//!   many threads add to without sharing a cache line; [`throttle_log`]: warnings
//!   a client can cause, logged at a bounded rate.
//! - [`rls`]: Envoy's Rate Limit Service (gRPC) on the same store: domains
//!   of descriptors, each leaf a rule or a policy.
//! - [`engine`]: what a check needs (store, policies, clock), the handle
//!   every front end decides through.
//! - [`state`]: what every connection shares (the engine and the services
//!   around it); it imports none of the layers above it.
//! - [`server`], [`config`], [`clients`], [`metrics`]: the process around them
//!   ([`reload`]: what SIGHUP re-reads);
//!   [`memory`]: RSS and the allocator's figures.

pub mod acl;
pub mod clients;
pub mod clock;
pub mod cluster;
pub mod command;
pub mod config;
pub mod connection;
pub mod engine;
pub mod error;
pub mod frame;
pub mod limiter;
pub mod memory;
pub mod metrics;
pub mod persistence;
pub mod policy;
pub mod reload;
pub mod reply;
pub mod resp;
pub mod rls;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod striped;
pub mod text;
pub mod throttle_log;
pub mod tls;
pub mod wait;
