//! What one 64-byte slot holds: the key (inline up to 22 bytes), the numbers
//! packed into 16 bytes, and the state.

use crate::limiter::{Algorithm, MAX_BUCKETS, Params, State};

/// Longest key kept inline in a slot.
pub(super) const INLINE_KEY: usize = 22;

/// A map key in 24 bytes: inline up to 22 bytes, else on the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Key {
    /// `[len, bytes...]`.
    Inline([u8; INLINE_KEY + 1]),
    Heap(Box<[u8]>),
}

impl Key {
    pub(super) fn new(bytes: &[u8]) -> Key {
        match Key::new_inline(bytes) {
            Some(inline) => Key::Inline(inline),
            None => Key::Heap(bytes.into()),
        }
    }

    /// The inline form of `bytes`, if short enough.
    pub(super) fn new_inline(bytes: &[u8]) -> Option<[u8; INLINE_KEY + 1]> {
        if bytes.len() > INLINE_KEY {
            return None;
        }
        let mut inline = [0u8; INLINE_KEY + 1];
        inline[0] = bytes.len() as u8;
        inline[1..=bytes.len()].copy_from_slice(bytes);
        Some(inline)
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            Key::Inline(b) => &b[1..=usize::from(b[0])],
            Key::Heap(b) => b,
        }
    }
}

/// Two inline keys compared as two overlapping words each (bytes 0..16 and
/// 15..23) rather than by a `memcmp` call.
pub(super) fn inline_eq(a: &[u8; INLINE_KEY + 1], b: &[u8; INLINE_KEY + 1]) -> bool {
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
pub(super) struct Packed(pub(super) [u64; 2]);

pub(super) const MS: u64 = 1_000_000;

impl Packed {
    pub(super) fn new(p: &Params) -> Packed {
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

    pub(super) fn params(self) -> Params {
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

pub(super) const MASK40: u64 = (1 << 40) - 1;
pub(super) const MASK35: u64 = (1 << 35) - 1;

/// The states of a key under a policy, and when they are all fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PolicyStates {
    pub(super) fresh_at: u64,
    pub(super) states: Vec<State>,
}

/// A key's open reservations, when the last one times out, and how many
/// there were after the last time those past their deadline were dropped
/// (they are dropped once the map has doubled since: O(1) amortised).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Reservations {
    pub(super) fresh_at: u64,
    pub(super) open: super::OpenMap,
    pub(super) pruned_len: usize,
    /// Bytes of the policy names the reservations hold.
    pub(super) names: usize,
}

impl Reservations {
    pub(super) fn new(open: super::OpenMap) -> Reservations {
        let mut r = Reservations {
            fresh_at: open.values().map(|r| r.deadline).max().unwrap_or(0),
            pruned_len: open.len(),
            names: 0,
            open,
        };
        r.count_names();
        r
    }

    pub(super) fn count_names(&mut self) {
        self.names = self.open.values().map(|r| r.under.name_len()).sum();
    }
}

/// What a slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Held {
    Inline(State),
    Policy(Box<PolicyStates>),
    Reservations(Box<Reservations>),
}

/// One key's slot: one cache line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(align(64))]
pub(super) struct Entry64 {
    pub(super) key: Key,
    /// The numbers of the last change (inline keys).
    pub(super) params: Packed,
    pub(super) held: Held,
}

impl Entry64 {
    /// The state as snapshots see it.
    pub(super) fn view(&self) -> super::SavedRef<'_> {
        match &self.held {
            Held::Inline(state) => super::SavedRef::Inline {
                params: self.params.params(),
                state,
            },
            Held::Policy(p) => super::SavedRef::Policy(&p.states),
            Held::Reservations(r) => super::SavedRef::Reservations(&r.open),
        }
    }

    pub(super) fn fresh_at(&self) -> u64 {
        match &self.held {
            Held::Inline(state) => state.fresh_at(&self.params.params()),
            Held::Policy(p) => p.fresh_at,
            Held::Reservations(r) => r.fresh_at,
        }
    }
}
