//! The store's public types: what a check addresses, what it answers,
//! why it was refused, and a state as snapshots exchange it.

use crate::limiter::{Decision, Params, ScaledTime, State};

/// Which limiter a check addresses: a key checked inline, or a key under a
/// policy. The two never share state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Inline,
    Policy(&'a str),
    /// A key's open reservations (`LIMIT.RESERVE`), under any rule.
    Reservations,
}

/// Units taken by `LIMIT.RESERVE` and not yet settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub id: u64,
    /// The rule the units were taken under.
    pub under: Under,
    /// When they were taken (ns since the epoch).
    pub taken_at: u64,
    pub units: u64,
    /// When an unsettled reservation counts as settled at its estimate.
    pub deadline: u64,
}

/// A key's open reservations by id.
pub type OpenMap = std::collections::HashMap<u64, Reservation, foldhash::fast::RandomState>;

/// What a reservation was taken under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Under {
    Inline(Params),
    Policy(Box<str>),
}

impl Under {
    /// Heap bytes of the policy's name (0 inline).
    pub fn name_len(&self) -> usize {
        match self {
            Under::Inline(_) => 0,
            Under::Policy(name) => name.len(),
        }
    }
}

/// A key's state as snapshots exchange it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When the state is back to fresh (ns since the epoch).
    pub fresh_at: u64,
    pub slot: Saved,
}

/// The state of an inline key (with the numbers it was last changed under)
/// or of a key under a policy (one state per rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Saved {
    Inline { params: Params, state: State },
    Policy(Vec<State>),
    Reservations(Vec<Reservation>),
}

/// A borrowed view of a stored state (see [`Store::for_each`]).
#[derive(Debug, Clone, Copy)]
pub enum SavedRef<'a> {
    Inline { params: Params, state: &'a State },
    Policy(&'a [State]),
    Reservations(&'a OpenMap),
}

impl SavedRef<'_> {
    pub fn to_owned(self) -> Saved {
        match self {
            SavedRef::Inline { params, state } => Saved::Inline {
                params,
                state: state.clone(),
            },
            SavedRef::Policy(states) => Saved::Policy(states.to_vec()),
            SavedRef::Reservations(open) => Saved::Reservations(open.values().cloned().collect()),
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

/// Why the store did not run a check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    WrongType(#[from] WrongType),
    /// The check would create a key, and it does not fit under `maxmemory`.
    #[error("the key does not fit under maxmemory")]
    OutOfMemory,
    /// A refund of a state that cannot give units back (the leaky bucket).
    #[error(transparent)]
    NoRefund(#[from] crate::limiter::refund::NoRefund),
    /// A reserve on a key that holds the most open reservations a key may.
    #[error(
        "the key holds {} open reservations, the most a key may hold",
        super::reserve::MAX_OPEN
    )]
    TooManyReservations,
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
pub struct KeyView {
    pub rules: Vec<(Params, State)>,
}
