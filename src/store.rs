//! The keyspace: a sharded map from key to limiter state, built for a small
//! footprint per key.
//!
//! Each shard is a dense vector of 64-byte slots (key inline up to 22 bytes,
//! the numbers packed into 16 bytes, the state in 24) and an open-addressed
//! index of 4-byte slot numbers ([`SlotIndex`]), behind one mutex. A check
//! locks one shard only around the pure limiter step, so checks of one key
//! are atomic and checks of other keys run in parallel.
//!
//! A lookup costs two cache misses (the index line, then the slot). The
//! connection layer hides the first for a pipelined batch: it calls
//! [`Store::prefetch`] for every key of the batch before checking any.
//!
//! A state that is back to fresh holds no memory: it is dropped when next
//! touched and by [`Store::sweep`]. When it is fresh follows from the state
//! and the numbers it was last changed under, so no time is stored for it.

use parking_lot::{Mutex, MutexGuard};
use std::cell::RefCell;
use std::hash::BuildHasher;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use crate::limiter::{Algorithm, Decision, MAX_BUCKETS, Params, Request, ScaledTime, State};
use crate::policy::{self, Policy};
use crate::slot_index::SlotIndex;

/// Which limiter a check addresses: a key checked inline, or a key under a
/// policy. The two never share state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Inline,
    Policy(&'a str),
}

/// A key's state as snapshots exchange it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the state is back to fresh (ns since the epoch).
    pub fresh_at: u64,
    pub slot: Slot,
}

/// The state of an inline key (with the numbers it was last changed under)
/// or of a key under a policy (one state per rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    Inline { params: Params, state: State },
    Policy(Vec<State>),
}

/// A borrowed view of a stored state (see [`Store::for_each`]).
#[derive(Debug, Clone, Copy)]
pub enum SlotRef<'a> {
    Inline { params: Params, state: &'a State },
    Policy(&'a [State]),
}

impl SlotRef<'_> {
    pub fn to_owned(self) -> Slot {
        match self {
            SlotRef::Inline { params, state } => Slot::Inline {
                params,
                state: state.clone(),
            },
            SlotRef::Policy(states) => Slot::Policy(states.to_vec()),
        }
    }
}

/// A check against a key that holds another algorithm's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key '{key}' holds {held} state, not {wanted}")]
pub struct WrongType {
    pub key: String,
    pub held: &'static str,
    pub wanted: &'static str,
}

/// The result of a check, and what a waiter needs to give its place back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub decision: Decision,
    /// For an admitted inline leaky bucket request: where its units end.
    pub leaky_end: Option<ScaledTime>,
}

/// What `LIMIT.INFO` shows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub rules: Vec<(Params, State)>,
}

thread_local! {
    static KEY_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

const TAG_INLINE: u8 = 0;
const TAG_POLICY: u8 = 1;

/// Builds the map key for (`scope`, `key`) and passes it to `f`: on the
/// stack for the usual short inline key, else in a reused buffer.
fn with_map_key<R>(scope: Scope<'_>, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
    const SHORT: usize = 64;
    if scope == Scope::Inline && key.len() < SHORT {
        let mut buf = [0u8; SHORT];
        buf[0] = TAG_INLINE;
        buf[1..=key.len()].copy_from_slice(key);
        return f(&buf[..=key.len()]);
    }
    KEY_BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        encode_key(&mut buf, scope, key);
        f(&buf)
    })
}

/// The map key: a tag byte, for policies the name's length and the name,
/// then the client's key.
pub fn encode_key(out: &mut Vec<u8>, scope: Scope<'_>, key: &[u8]) {
    match scope {
        Scope::Inline => out.push(TAG_INLINE),
        Scope::Policy(name) => {
            out.push(TAG_POLICY);
            let len = u32::try_from(name.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
    }
    out.extend_from_slice(key);
}

/// Splits a map key back into its scope and the client's key.
pub fn decode_key(map_key: &[u8]) -> Option<(Scope<'_>, &[u8])> {
    let (&tag, rest) = map_key.split_first()?;
    match tag {
        TAG_INLINE => Some((Scope::Inline, rest)),
        TAG_POLICY => {
            let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let name = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
            Some((Scope::Policy(name), &rest[4 + len..]))
        }
        _ => None,
    }
}

// ------------------------------------------------------------ compact parts

/// Longest key kept inline in a slot.
const INLINE_KEY: usize = 22;

/// A map key in 24 bytes: inline up to 22 bytes, else on the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    /// `[len, bytes...]`.
    Inline([u8; INLINE_KEY + 1]),
    Heap(Box<[u8]>),
}

impl Key {
    fn new(bytes: &[u8]) -> Key {
        match Key::new_inline(bytes) {
            Some(inline) => Key::Inline(inline),
            None => Key::Heap(bytes.into()),
        }
    }

    /// The inline form of `bytes`, if short enough.
    fn new_inline(bytes: &[u8]) -> Option<[u8; INLINE_KEY + 1]> {
        if bytes.len() > INLINE_KEY {
            return None;
        }
        let mut inline = [0u8; INLINE_KEY + 1];
        inline[0] = bytes.len() as u8;
        inline[1..=bytes.len()].copy_from_slice(bytes);
        Some(inline)
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline(b) => &b[1..=usize::from(b[0])],
            Key::Heap(b) => b,
        }
    }
}

/// Two inline keys compared as two overlapping words each (bytes 0..16 and
/// 15..23) rather than by a `memcmp` call.
fn inline_eq(a: &[u8; INLINE_KEY + 1], b: &[u8; INLINE_KEY + 1]) -> bool {
    let head =
        |k: &[u8; INLINE_KEY + 1]| u128::from_ne_bytes(k[..16].try_into().unwrap_or([0; 16]));
    let tail = |k: &[u8; INLINE_KEY + 1]| u64::from_ne_bytes(k[15..].try_into().unwrap_or([0; 8]));
    head(a) == head(b) && tail(a) == tail(b)
}

/// A rule's numbers in 16 bytes: limit and burst (40 bits each), window in
/// ms (35 bits), buckets (10 bits), algorithm (3 bits). Every valid rule
/// fits: counts are at most 10^12 < 2^40, windows are whole milliseconds up
/// to 366 days < 2^35 ms, buckets at most 1000 < 2^10.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Packed([u64; 2]);

const MS: u64 = 1_000_000;

impl Packed {
    fn new(p: &Params) -> Packed {
        let algorithm = Algorithm::ALL
            .iter()
            .position(|a| *a == p.algorithm)
            .unwrap_or(0) as u64;
        let window_ms = p.window / MS;
        // lo: limit (40 bits), the low 24 bits of burst.
        let lo = (p.limit & MASK40) | (p.burst << 40);
        // hi: the high 16 bits of burst, window_ms (35), buckets (10), algorithm (3).
        let hi = ((p.burst & MASK40) >> 24)
            | ((window_ms & MASK35) << 16)
            | (u64::from(p.buckets.min(MAX_BUCKETS)) << 51)
            | (algorithm << 61);
        Packed([lo, hi])
    }

    fn params(self) -> Params {
        let [lo, hi] = self.0;
        let limit = lo & MASK40;
        let burst = (lo >> 40) | ((hi & 0xffff) << 24);
        let window = ((hi >> 16) & MASK35) * MS;
        let buckets = ((hi >> 51) & 0x3ff) as u32;
        let algorithm = Algorithm::ALL[((hi >> 61) as usize).min(5)];
        Params {
            algorithm,
            limit,
            window,
            burst,
            buckets,
        }
    }
}

const MASK40: u64 = (1 << 40) - 1;
const MASK35: u64 = (1 << 35) - 1;

/// The states of a key under a policy, and when they are all fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PolicyStates {
    fresh_at: u64,
    states: Vec<State>,
}

/// What a slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Inline(State),
    Policy(Box<PolicyStates>),
}

/// One key's slot: one cache line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(align(64))]
struct Entry64 {
    key: Key,
    /// The numbers of the last change (inline keys).
    params: Packed,
    held: Held,
}

impl Entry64 {
    fn fresh_at(&self) -> u64 {
        match &self.held {
            Held::Inline(state) => state.fresh_at(&self.params.params()),
            Held::Policy(p) => p.fresh_at,
        }
    }
}

/// One shard: dense slots and an index of slot numbers by key hash.
#[derive(Debug, Default)]
struct Shard {
    index: SlotIndex,
    slots: Vec<Entry64>,
    /// Set once any slot has held a state with heap parts (a log or bucket
    /// list), which [`Store::prefetch`] then fetches too.
    heap_states: bool,
}

/// A shard's lock, and where its index lives for [`Store::prefetch`]
/// (published under the lock, read without it: a stale pair only makes a
/// prefetch useless, never wrong).
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedShard {
    shard: Mutex<Shard>,
    index_base: AtomicPtr<u32>,
    index_mask: AtomicUsize,
}

/// A locked shard; republishes the index's place when unlocked.
struct Locked<'a> {
    guard: MutexGuard<'a, Shard>,
    pad: &'a PaddedShard,
}

impl Deref for Locked<'_> {
    type Target = Shard;
    fn deref(&self) -> &Shard {
        &self.guard
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Shard {
        &mut self.guard
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let (base, mask) = self.guard.index.layout();
        if self.pad.index_base.load(Ordering::Relaxed).cast_const() != base {
            self.pad
                .index_base
                .store(base.cast_mut(), Ordering::Relaxed);
        }
        if self.pad.index_mask.load(Ordering::Relaxed) != mask {
            self.pad.index_mask.store(mask, Ordering::Relaxed);
        }
    }
}

impl PaddedShard {
    fn lock(&self) -> Locked<'_> {
        Locked {
            guard: self.shard.lock(),
            pad: self,
        }
    }
}

impl Shard {
    fn find(&self, hash: u64, key: &[u8]) -> Option<usize> {
        let slots = &self.slots;
        match Key::new_inline(key) {
            // Inline keys compare as fixed-size arrays.
            Some(inline) => self.index.find(
                hash,
                |i| matches!(&slots[i].key, Key::Inline(k) if inline_eq(k, &inline)),
            ),
            None => self.index.find(hash, |i| slots[i].key.as_bytes() == key),
        }
    }

    fn insert(&mut self, hash: u64, entry: Entry64, hasher: &impl BuildHasher) -> usize {
        if let Held::Inline(state) = &entry.held {
            self.heap_states |= state.heap_lines().is_some();
        }
        let i = self.slots.len();
        self.slots.push(entry);
        let slots = &self.slots;
        self.index
            .insert(hash, i, |j| hasher.hash_one(slots[j].key.as_bytes()));
        i
    }

    /// Removes slot `i` (whose key hashes to `hash`), moving the last slot
    /// into its place.
    fn remove(&mut self, hash: u64, i: usize, hasher: &impl BuildHasher) -> Entry64 {
        let slots = &self.slots;
        self.index
            .remove(hash, i, |j| hasher.hash_one(slots[j].key.as_bytes()));
        let last = self.slots.len() - 1;
        if i != last {
            let moved = hasher.hash_one(self.slots[last].key.as_bytes());
            self.index.repoint(moved, last, i);
        }
        self.slots.swap_remove(i)
    }

    /// Gives memory back after many removals.
    fn shrink(&mut self, hasher: &impl BuildHasher) {
        if self.slots.capacity() > 64 && self.slots.len() < self.slots.capacity() / 4 {
            self.slots.shrink_to(self.slots.len() * 2);
            let slots = &self.slots;
            self.index
                .shrink(|j| hasher.hash_one(slots[j].key.as_bytes()));
        }
    }
}

/// The sharded keyspace.
#[derive(Debug)]
pub struct Store {
    shards: Box<[PaddedShard]>,
    hasher: foldhash::fast::RandomState,
    /// Set by every change that a snapshot should record.
    changed: AtomicBool,
}

impl Default for Store {
    fn default() -> Store {
        Store::new()
    }
}

/// Shards per store: enough that threads rarely meet on one.
const SHARDS: usize = 64;

/// Index size (entries) from which [`Store::prefetch`] fetches a shard's
/// lines ahead: 1024 entries index at least 384 keys, so 64 such shards hold
/// at least 1.5 MB of slots, about what a core's L2 cache keeps.
const PREFETCH_FROM: usize = 1024;

impl Store {
    pub fn new() -> Store {
        Store {
            shards: (0..SHARDS).map(|_| PaddedShard::default()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            changed: AtomicBool::new(false),
        }
    }

    fn shard_of(&self, hash: u64) -> &PaddedShard {
        &self.shards[(hash >> 32) as usize % SHARDS]
    }

    fn shard(&self, hash: u64) -> Locked<'_> {
        self.shard_of(hash).lock()
    }

    /// Starts fetching what checks of these inline keys will read: first
    /// every key's index line (no lock), then, with those arriving, every
    /// key's slot (each shard locked briefly, skipped if busy). Checks run
    /// soon after then find both in the cache: the misses of a pipelined
    /// batch overlap instead of coming one after another. Changes nothing.
    pub fn prefetch(&self, keys: &[&[u8]]) {
        let mut hashes = smallvec::SmallVec::<[u64; 64]>::with_capacity(keys.len());
        for key in keys {
            let hash = with_map_key(Scope::Inline, key, |map_key| self.hasher.hash_one(map_key));
            let pad = self.shard_of(hash);
            let mask = pad.index_mask.load(Ordering::Relaxed);
            // A small shard stays in the cache by itself: fetching ahead
            // would only cost (3% with 100 keys).
            if mask < PREFETCH_FROM - 1 {
                continue;
            }
            let base = pad.index_base.load(Ordering::Relaxed);
            prefetch(base.wrapping_add(SlotIndex::home(hash, mask)));
            hashes.push(hash);
        }
        let mut heap = false;
        for &hash in &hashes {
            let Some(shard) = self.shard_of(hash).shard.try_lock() else {
                continue;
            };
            if let Some(i) = shard.index.candidate(hash) {
                prefetch(shard.slots.as_ptr().wrapping_add(i).cast());
                heap |= shard.heap_states;
            }
        }
        if !heap {
            return;
        }
        // Logs and bucket lists live behind a pointer in the slot: with the
        // slots arriving, fetch the lines of each that a check reads.
        for &hash in &hashes {
            let Some(shard) = self.shard_of(hash).shard.try_lock() else {
                continue;
            };
            let Some(slot) = shard.index.candidate(hash).and_then(|i| shard.slots.get(i)) else {
                continue;
            };
            if let Held::Inline(state) = &slot.held
                && let Some(lines) = state.heap_lines()
            {
                lines.into_iter().for_each(|line| prefetch(line.cast()));
            }
        }
    }

    /// Notes a change for the next snapshot (a read first: cheap when set).
    fn touch(&self) {
        if !self.changed.load(Ordering::Relaxed) {
            self.changed.store(true, Ordering::Relaxed);
        }
    }

    /// True if anything changed since the last call; clears the flag.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// True if anything changed since the last [`Store::take_changed`].
    pub fn has_changes(&self) -> bool {
        self.changed.load(Ordering::Relaxed)
    }

    /// Runs `step` on the slot of `map_key` under its shard's lock; `fresh()`
    /// builds the slot of a key not present, stored only if the step leaves it
    /// not fresh; a slot the step leaves fresh is dropped.
    fn apply<T>(
        &self,
        map_key: &[u8],
        now: u64,
        step: impl FnOnce(&mut Entry64) -> Result<T, WrongType>,
        fresh: impl FnOnce() -> Entry64,
    ) -> Result<T, WrongType> {
        let hash = self.hasher.hash_one(map_key);
        let mut shard = self.shard(hash);
        match shard.find(hash, map_key) {
            Some(i) => {
                let out = step(&mut shard.slots[i])?;
                if shard.slots[i].fresh_at() <= now {
                    shard.remove(hash, i, &self.hasher);
                }
                Ok(out)
            }
            None => {
                let mut entry = fresh();
                let out = step(&mut entry)?;
                if entry.fresh_at() > now {
                    shard.insert(hash, entry, &self.hasher);
                }
                Ok(out)
            }
        }
    }

    /// Checks an inline key under `params`.
    pub fn check(
        &self,
        key: &[u8],
        params: &Params,
        now: u64,
        request: Request,
    ) -> Result<Checked, WrongType> {
        self.update(key, params, now, |state| {
            let decision = state.check(params, now, request);
            if !(decision.allowed && request.commit && request.cost > 0) {
                return (
                    Checked {
                        decision,
                        leaky_end: None,
                    },
                    false,
                );
            }
            let leaky_end = match state {
                State::LeakyBucket(lb) => Some(lb.next),
                _ => None,
            };
            (
                Checked {
                    decision,
                    leaky_end,
                },
                true,
            )
        })
    }

    /// Runs `step` on the state of inline `key` (fresh if it has none) under
    /// the key's lock. `step` answers its result and whether it changed the
    /// state; the key then remembers `params`.
    pub fn update<T>(
        &self,
        key: &[u8],
        params: &Params,
        now: u64,
        step: impl FnOnce(&mut State) -> (T, bool),
    ) -> Result<T, WrongType> {
        with_map_key(Scope::Inline, key, |map_key| {
            let apply = |entry: &mut Entry64| {
                let Held::Inline(state) = &mut entry.held else {
                    unreachable!("inline map keys hold inline states");
                };
                if state.algorithm() != params.algorithm {
                    return Err(WrongType {
                        key: crate::text::printable(key),
                        held: state.algorithm().name(),
                        wanted: params.algorithm.name(),
                    });
                }
                let held_params = entry.params.params();
                if state.fresh_at(&held_params) <= now {
                    *state = State::fresh(params);
                }
                let (out, changed) = step(state);
                if changed {
                    entry.params = Packed::new(params);
                    self.touch();
                }
                Ok(out)
            };
            self.apply(map_key, now, apply, || Entry64 {
                key: Key::new(map_key),
                params: Packed::new(params),
                held: Held::Inline(State::fresh(params)),
            })
        })
    }

    /// Checks `key` under every rule of `policy`, all or nothing.
    pub fn check_policy(
        &self,
        policy: &Policy,
        key: &[u8],
        now: u64,
        request: Request,
    ) -> Decision {
        let rules = &policy.rules;
        with_map_key(Scope::Policy(&policy.name), key, |map_key| {
            let step = |entry: &mut Entry64| {
                let Held::Policy(held) = &mut entry.held else {
                    unreachable!("policy map keys hold policy states");
                };
                if held.fresh_at <= now {
                    held.states.clear();
                }
                policy::align_states(&mut held.states, rules);
                let (decision, reset) = policy::check_all(&mut held.states, rules, now, request);
                if let Some(reset) = reset
                    && request.cost > 0
                {
                    held.fresh_at = now.saturating_add(reset);
                    self.touch();
                }
                Ok(decision)
            };
            let fresh = || Entry64 {
                key: Key::new(map_key),
                params: Packed::default(),
                held: Held::Policy(Box::new(PolicyStates {
                    fresh_at: 0,
                    states: Vec::with_capacity(rules.len()),
                })),
            };
            match self.apply(map_key, now, step, fresh) {
                Ok(d) => d,
                Err(_) => unreachable!("policy checks never see another type"),
            }
        })
    }

    /// Gives back the queue slot of an inline leaky bucket request whose
    /// caller left before its turn (only if no one queued behind it).
    pub fn give_back_leaky(&self, key: &[u8], params: &Params, end: ScaledTime, cost: u64) -> bool {
        with_map_key(Scope::Inline, key, |map_key| {
            let hash = self.hasher.hash_one(map_key);
            let mut shard = self.shard(hash);
            let Some(i) = shard.find(hash, map_key) else {
                return false;
            };
            let Held::Inline(State::LeakyBucket(lb)) = &mut shard.slots[i].held else {
                return false;
            };
            let given = lb.give_back(params, end, cost);
            if given {
                self.touch();
            }
            given
        })
    }

    /// The state of (`scope`, `key`) as `LIMIT.INFO` shows it; `None` when fresh.
    pub fn inspect(
        &self,
        scope: Scope<'_>,
        key: &[u8],
        policy: Option<&Policy>,
        now: u64,
    ) -> Option<Snapshot> {
        with_map_key(scope, key, |map_key| {
            let hash = self.hasher.hash_one(map_key);
            let shard = self.shard(hash);
            let entry = &shard.slots[shard.find(hash, map_key)?];
            if entry.fresh_at() <= now {
                return None;
            }
            let rules = match (&entry.held, policy) {
                (Held::Inline(state), _) => vec![(entry.params.params(), state.clone())],
                (Held::Policy(held), Some(policy)) => {
                    let mut states = held.states.clone();
                    policy::align_states(&mut states, &policy.rules);
                    policy.rules.iter().copied().zip(states).collect()
                }
                (Held::Policy(_), None) => return None,
            };
            Some(Snapshot { rules })
        })
    }

    /// Drops the state of (`scope`, `key`); true if there was one.
    pub fn reset(&self, scope: Scope<'_>, key: &[u8], now: u64) -> bool {
        let dropped = with_map_key(scope, key, |map_key| {
            let hash = self.hasher.hash_one(map_key);
            let mut shard = self.shard(hash);
            let Some(i) = shard.find(hash, map_key) else {
                return false;
            };
            shard.remove(hash, i, &self.hasher).fresh_at() > now
        });
        if dropped {
            self.touch();
        }
        dropped
    }

    /// Stored states (including fresh ones not yet swept).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).slots.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every state.
    pub fn clear(&self) {
        for s in self.shards.iter() {
            *lock(s) = Shard::default();
        }
        self.touch();
    }

    /// Drops every state that is fresh at `now`, shard by shard; answers how many.
    pub fn sweep(&self, now: u64) -> usize {
        (0..SHARDS).map(|i| self.sweep_shard(i, now)).sum()
    }

    /// How many shards [`Store::sweep_shard`] takes in turn.
    pub fn shard_count(&self) -> usize {
        SHARDS
    }

    /// Drops the fresh states of shard `i` only: the sweeper visits one
    /// shard at a time, so no lock is held long and the work is spread out.
    pub fn sweep_shard(&self, i: usize, now: u64) -> usize {
        let mut shard = lock(&self.shards[i % SHARDS]);
        let mut dropped = 0;
        let mut j = 0;
        while j < shard.slots.len() {
            if shard.slots[j].fresh_at() <= now {
                let hash = self.hasher.hash_one(shard.slots[j].key.as_bytes());
                shard.remove(hash, j, &self.hasher);
                dropped += 1;
            } else {
                j += 1;
            }
        }
        shard.shrink(&self.hasher);
        dropped
    }

    /// Visits every stored state with its map key and fresh time, one shard
    /// at a time (each shard is locked only while it is visited).
    pub fn for_each(&self, mut f: impl FnMut(&[u8], u64, SlotRef<'_>)) {
        for s in self.shards.iter() {
            let shard = lock(s);
            for e in &shard.slots {
                let view = match &e.held {
                    Held::Inline(state) => SlotRef::Inline {
                        params: e.params.params(),
                        state,
                    },
                    Held::Policy(p) => SlotRef::Policy(&p.states),
                };
                f(e.key.as_bytes(), e.fresh_at(), view);
            }
        }
    }

    /// Inserts (or replaces) a state as it was saved (used when restoring).
    pub fn insert_raw(&self, map_key: Box<[u8]>, entry: Entry) {
        let (params, held) = match entry.slot {
            Slot::Inline { params, state } => (Packed::new(&params), Held::Inline(state)),
            Slot::Policy(states) => (
                Packed::default(),
                Held::Policy(Box::new(PolicyStates {
                    fresh_at: entry.fresh_at,
                    states,
                })),
            ),
        };
        let hash = self.hasher.hash_one(&*map_key);
        let mut shard = self.shard(hash);
        if let Some(i) = shard.find(hash, &map_key) {
            shard.remove(hash, i, &self.hasher);
        }
        let slot = Entry64 {
            key: Key::new(&map_key),
            params,
            held,
        };
        shard.insert(hash, slot, &self.hasher);
    }
}

fn lock(s: &PaddedShard) -> Locked<'_> {
    s.lock()
}

/// A hint to the CPU to load the cache line at `p`. It reads nothing in
/// the program's sense, so any address (even a stale one) is fine.
#[inline(always)]
fn prefetch(p: *const u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and has no effect but on the cache.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::{Algorithm, Retry};

    const SECOND: u64 = 1_000_000_000;

    #[test]
    fn map_keys_round_trip_and_never_collide() {
        let mut a = Vec::new();
        encode_key(&mut a, Scope::Inline, b"k");
        let mut b = Vec::new();
        encode_key(&mut b, Scope::Policy("api"), b"k");
        assert_ne!(a, b);
        assert_eq!(decode_key(&a), Some((Scope::Inline, &b"k"[..])));
        assert_eq!(decode_key(&b), Some((Scope::Policy("api"), &b"k"[..])));
        assert_eq!(decode_key(&[9]), None);
        assert_eq!(decode_key(&[1, 200, 0, 0, 0]), None);
    }

    #[test]
    fn fresh_states_are_not_stored() {
        let store = Store::new();
        let p = Params::new(Algorithm::TokenBucket, 10, SECOND);
        let dry = Request::dry(1);
        store.check(b"k", &p, 0, dry).unwrap();
        store.check(b"k", &p, 0, Request::take(0)).unwrap();
        assert_eq!(store.len(), 0);
        store.check(b"k", &p, 0, Request::take(1)).unwrap();
        assert_eq!(store.len(), 1);
        // Full again after 100 ms: swept.
        assert_eq!(store.sweep(100_000_000 - 1), 0);
        assert_eq!(store.sweep(100_000_000), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn another_algorithm_is_wrongtype_and_changes_nothing() {
        let store = Store::new();
        let tb = Params::new(Algorithm::TokenBucket, 1, SECOND);
        store.check(b"k", &tb, 0, Request::take(1)).unwrap();
        let gcra = Params::new(Algorithm::Gcra, 1, SECOND);
        let err = store.check(b"k", &gcra, 0, Request::take(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "key 'k' holds token_bucket state, not gcra"
        );
        let d = store
            .check(b"k", &tb, 0, Request::take(1))
            .unwrap()
            .decision;
        assert_eq!(d.retry, Retry::After(SECOND));
    }

    #[test]
    fn changes_are_flagged_for_snapshots() {
        let store = Store::new();
        let p = Params::new(Algorithm::Gcra, 1, SECOND);
        let dry = Request::dry(1);
        store.check(b"k", &p, 0, dry).unwrap();
        assert!(!store.take_changed(), "a dry run changes nothing");
        store.check(b"k", &p, 0, Request::take(1)).unwrap();
        assert!(store.take_changed());
        store.check(b"k", &p, 0, Request::take(1)).unwrap();
        assert!(!store.take_changed(), "a denial changes nothing");
        assert!(store.reset(Scope::Inline, b"k", 0));
        assert!(store.take_changed());
    }

    #[test]
    fn slots_stay_64_bytes() {
        assert_eq!(std::mem::size_of::<Key>(), 24);
        assert_eq!(std::mem::size_of::<Held>(), 24);
        assert_eq!(std::mem::size_of::<Entry64>(), 64);
    }

    #[test]
    fn inline_keys_compare_on_every_byte() {
        let base = Key::new_inline(&[b'a'; 22]).unwrap();
        assert!(inline_eq(&base, &base));
        for i in 0..=INLINE_KEY {
            let mut other = base;
            other[i] ^= 1;
            assert!(!inline_eq(&base, &other), "byte {i}");
        }
    }

    #[test]
    fn keys_and_numbers_pack_losslessly() {
        for k in [&b""[..], b"k", &[7u8; 22], &[9u8; 23], &[1u8; 300]] {
            assert_eq!(Key::new(k).as_bytes(), k);
        }
        let max = crate::limiter::MAX_COUNT;
        for a in Algorithm::ALL {
            for (limit, burst, window) in [
                (1, 1, MS),
                (max, max, crate::limiter::MAX_WINDOW_NS),
                (12345, 999_999_999_999, 1500 * MS),
            ] {
                let p = Params {
                    algorithm: a,
                    limit,
                    burst,
                    window,
                    buckets: if a.uses_buckets() { 1000 } else { 0 },
                };
                assert_eq!(Packed::new(&p).params(), p);
            }
        }
    }

    #[test]
    fn many_keys_survive_removals_in_any_order() {
        let store = Store::new();
        let p = Params::new(Algorithm::FixedWindow, 10, SECOND);
        let key = |i: u32| format!("key:{i:08}-with-a-long-enough-tail-{}", i % 3).into_bytes();
        for i in 0..5000 {
            store
                .check(&key(i), &p, 0, Request::take(1 + u64::from(i % 5)))
                .unwrap();
        }
        assert_eq!(store.len(), 5000);
        for i in (0..5000).step_by(2) {
            assert!(store.reset(Scope::Inline, &key(i), 0), "{i}");
        }
        assert_eq!(store.len(), 2500);
        for i in 0..5000 {
            let info = store.inspect(Scope::Inline, &key(i), None, 0);
            assert_eq!(info.is_some(), i % 2 == 1, "{i}");
        }
        let d = store
            .check(&key(7), &p, 0, Request::take(1))
            .unwrap()
            .decision;
        assert_eq!(d.remaining, 10 - 3 - 1);
        // All fresh at the next window: swept, and the memory shrinks.
        assert_eq!(store.sweep(SECOND), 2500);
        assert!(store.is_empty());
    }

    #[test]
    fn prefetch_changes_nothing_even_while_the_index_grows() {
        let store = Store::new();
        // Half the keys hold logs (heap parts, fetched too).
        let p = |i: u32| {
            let algorithm = [Algorithm::FixedWindow, Algorithm::SlidingLog][i as usize % 2];
            Params::new(algorithm, 10, SECOND)
        };
        let long = [b'x'; 40];
        store.prefetch(&[b"cold", &long]);
        assert!(store.is_empty());
        // Enough keys that every shard's index passes PREFETCH_FROM.
        let n = (SHARDS * PREFETCH_FROM) as u32;
        for i in 0..n {
            let key = i.to_le_bytes();
            // Ask ahead for the key and for ones not there yet.
            store.prefetch(&[&key, &(i + 1).to_le_bytes(), &long]);
            store.check(&key, &p(i), 0, Request::take(1)).unwrap();
        }
        assert_eq!(store.len(), n as usize);
        let big = store
            .shards
            .iter()
            .filter(|s| s.index_mask.load(Ordering::Relaxed) >= PREFETCH_FROM - 1);
        assert_eq!(big.count(), SHARDS);
        for i in (0..n).step_by(7) {
            store.prefetch(&[&i.to_le_bytes()]);
            let d = store
                .check(&i.to_le_bytes(), &p(i), 0, Request::take(1))
                .unwrap()
                .decision;
            assert_eq!(d.remaining, 8, "key {i}");
        }
    }

    #[test]
    fn short_and_long_keys_map_the_same_way() {
        // Map keys are built on the stack below 64 bytes, in a buffer above.
        let store = Store::new();
        let p = Params::new(Algorithm::Gcra, 5, SECOND);
        let keys: Vec<Vec<u8>> = [1, 62, 63, 64, 65, 300]
            .iter()
            .map(|&n| vec![b'k'; n])
            .collect();
        for key in &keys {
            store.check(key, &p, 0, Request::take(2)).unwrap();
        }
        for key in &keys {
            let d = store.check(key, &p, 0, Request::take(1)).unwrap().decision;
            assert_eq!(d.remaining, 2, "key of {} bytes", key.len());
        }
        let mut seen = Vec::new();
        store.for_each(|map_key, _, _| seen.push(decode_key(map_key).unwrap().1.to_vec()));
        seen.sort();
        assert_eq!(seen, keys);
    }

    #[test]
    fn stale_entries_restart_fresh_on_access() {
        let store = Store::new();
        let p = Params::new(Algorithm::FixedWindow, 1, SECOND);
        assert!(
            store
                .check(b"k", &p, 0, Request::take(1))
                .unwrap()
                .decision
                .allowed
        );
        assert!(
            !store
                .check(b"k", &p, 1, Request::take(1))
                .unwrap()
                .decision
                .allowed
        );
        assert!(
            store
                .check(b"k", &p, SECOND, Request::take(1))
                .unwrap()
                .decision
                .allowed
        );
    }
}
