//! tollgate: a rate-limiter server that speaks the Redis protocol.
pub mod clock;
pub mod limiter;
