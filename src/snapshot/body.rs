//! A snapshot's body: the run-time policies and every limiter state, as
//! little-endian records (the layout is in the parent module's docs).
//! Decoding checks every field and count, so a corrupt body is an error
//! that names what is wrong, never a panic or a huge allocation.

use crate::limiter::fixed_window::FixedWindow;
use crate::limiter::gcra::Gcra;
use crate::limiter::leaky_bucket::LeakyBucket;
use crate::limiter::sliding_log::SlidingLog;
use crate::limiter::sliding_window::SlidingWindow;
use crate::limiter::token_bucket::TokenBucket;
use crate::limiter::{Algorithm, MAX_BUCKETS, MAX_COUNT, MAX_WINDOW_NS, Params, ScaledTime, State};
use crate::policy::Policy;
use crate::store::{Entry, Saved, SavedRef, Store};

use super::Contents;

/// The body for the store and the run-time policies, shard by shard.
pub(super) fn encode_body(store: &Store, policies: &[std::sync::Arc<Policy>], now: u64) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + store.len() * 48);
    put_u64(&mut body, now);
    let run_time: Vec<&Policy> = policies
        .iter()
        .map(|p| &**p)
        .filter(|p| !p.from_config)
        .collect();
    put_u32(&mut body, run_time.len() as u32);
    for p in run_time {
        put_bytes(&mut body, p.name.as_bytes());
        put_u32(&mut body, p.rules.len() as u32);
        for r in &p.rules {
            put_params(&mut body, r);
        }
    }
    let count_at = body.len();
    put_u64(&mut body, 0);
    let mut count = 0u64;
    store.for_each(|key, fresh_at, slot| {
        count += 1;
        put_bytes(&mut body, key);
        put_u64(&mut body, fresh_at);
        match slot {
            SavedRef::Inline { params, state } => {
                body.push(0);
                put_params(&mut body, &params);
                put_state(&mut body, state);
            }
            SavedRef::Policy(states) => {
                body.push(1);
                put_u32(&mut body, states.len() as u32);
                for s in states {
                    put_state(&mut body, s);
                }
            }
        }
    });
    body[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
    body
}

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

pub(super) fn algorithm_tag(a: Algorithm) -> u8 {
    Algorithm::ALL.iter().position(|x| *x == a).unwrap_or(0) as u8
}

pub(super) fn put_params(out: &mut Vec<u8>, p: &Params) {
    out.push(algorithm_tag(p.algorithm));
    put_u64(out, p.limit);
    put_u64(out, p.window);
    put_u64(out, p.burst);
    put_u32(out, p.buckets);
}

pub(super) fn put_pairs<'a>(
    out: &mut Vec<u8>,
    pairs: impl ExactSizeIterator<Item = &'a (u64, u64)>,
) {
    put_u32(out, pairs.len() as u32);
    for &(a, b) in pairs {
        put_u64(out, a);
        put_u64(out, b);
    }
}

pub(super) fn put_time(out: &mut Vec<u8>, t: ScaledTime) {
    let (lo, hi) = t.words();
    put_u64(out, lo);
    put_u64(out, hi);
}

pub(super) fn put_state(out: &mut Vec<u8>, state: &State) {
    out.push(algorithm_tag(state.algorithm()));
    match state {
        State::TokenBucket(s) => {
            put_time(out, s.full_at);
        }
        State::LeakyBucket(s) => {
            put_time(out, s.next);
        }
        State::FixedWindow(s) => {
            put_u64(out, s.start);
            put_u64(out, s.count);
        }
        State::SlidingLog(s) => put_pairs(out, s.entries().iter()),
        State::SlidingWindow(s) => put_pairs(out, s.buckets.iter()),
        State::Gcra(s) => {
            put_time(out, s.tat);
        }
    }
}

/// A cursor over the body that fails instead of reading past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

pub(super) type Read<T> = Result<T, String>;

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Read<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("record runs past the end at byte {}", self.pos))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Read<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Read<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| "short u32")?,
        ))
    }

    fn u64(&mut self) -> Read<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| "short u64")?,
        ))
    }

    /// A [`ScaledTime`] (two words), refused past [`crate::limiter::MAX_TIME_NS`].
    fn time(&mut self) -> Read<ScaledTime> {
        let (lo, hi) = (self.u64()?, self.u64()?);
        ScaledTime::from_words(lo, hi).ok_or_else(|| "a time past any rule's reach".to_string())
    }

    fn bytes(&mut self) -> Read<&[u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A count of records each at least `min_size` bytes: refuses counts the
    /// rest of the body cannot hold, so a corrupt count allocates nothing.
    fn count(&mut self, n: u64, min_size: usize) -> Read<usize> {
        let left = (self.buf.len() - self.pos) / min_size.max(1);
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= left)
            .ok_or_else(|| format!("count {n} at byte {} exceeds the file", self.pos))
    }

    fn algorithm(&mut self) -> Read<Algorithm> {
        let tag = self.u8()?;
        Algorithm::ALL
            .get(usize::from(tag))
            .copied()
            .ok_or_else(|| format!("unknown algorithm tag {tag}"))
    }

    fn params(&mut self) -> Read<Params> {
        let algorithm = self.algorithm()?;
        let p = Params {
            algorithm,
            limit: self.u64()?,
            window: self.u64()?,
            burst: self.u64()?,
            buckets: self.u32()?,
        };
        let ok = (1..=MAX_COUNT).contains(&p.limit)
            && (1..=MAX_WINDOW_NS).contains(&p.window)
            && p.window.is_multiple_of(1_000_000)
            && (1..=MAX_COUNT).contains(&p.burst)
            && p.buckets <= MAX_BUCKETS
            && (p.buckets >= 1 || !algorithm.uses_buckets())
            && p.fill_in_range();
        if ok {
            Ok(p)
        } else {
            Err(format!("rule out of range: {p:?}"))
        }
    }

    fn pairs(&mut self) -> Read<(Vec<(u64, u64)>, u64)> {
        let n = u64::from(self.u32()?);
        let n = self.count(n, 16)?;
        let mut pairs = Vec::with_capacity(n);
        let mut total = 0u64;
        let mut last = 0u64;
        for _ in 0..n {
            let (t, units) = (self.u64()?, self.u64()?);
            if t < last {
                return Err("log entries out of order".into());
            }
            last = t;
            total = total.checked_add(units).ok_or("log total overflows")?;
            pairs.push((t, units));
        }
        Ok((pairs, total))
    }

    fn state(&mut self) -> Read<State> {
        Ok(match self.algorithm()? {
            Algorithm::TokenBucket => State::TokenBucket(TokenBucket {
                full_at: self.time()?,
            }),
            Algorithm::LeakyBucket => State::LeakyBucket(LeakyBucket { next: self.time()? }),
            Algorithm::FixedWindow => State::FixedWindow(FixedWindow {
                start: self.u64()?,
                count: self.u64()?,
            }),
            Algorithm::SlidingLog => {
                let (entries, total) = self.pairs()?;
                State::SlidingLog(SlidingLog::from_entries(&entries, total))
            }
            Algorithm::SlidingWindow => {
                let (buckets, total) = self.pairs()?;
                State::SlidingWindow(SlidingWindow {
                    buckets: buckets.into_iter().collect(),
                    total,
                })
            }
            Algorithm::Gcra => State::Gcra(Gcra { tat: self.time()? }),
        })
    }
}

pub(super) fn decode_body(body: &[u8]) -> Read<Contents> {
    let mut r = Reader { buf: body, pos: 0 };
    let written_at = r.u64()?;
    let n = u64::from(r.u32()?);
    let mut policies = Vec::new();
    for _ in 0..r.count(n, 8)? {
        let name = std::str::from_utf8(r.bytes()?)
            .map_err(|_| "policy name is not UTF-8")?
            .to_string();
        let n = u64::from(r.u32()?);
        let n = r.count(n, 29)?;
        if n == 0 {
            return Err(format!("policy '{name}' has no rules"));
        }
        let rules = (0..n).map(|_| r.params()).collect::<Read<Vec<_>>>()?;
        policies.push(Policy {
            name,
            rules,
            from_config: false,
        });
    }
    let n = r.u64()?;
    let n = r.count(n, 14)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let key: Box<[u8]> = r.bytes()?.into();
        let Some((scope, _)) = crate::store::decode_key(&key) else {
            return Err("malformed key".into());
        };
        let inline_key = scope == crate::store::Scope::Inline;
        let fresh_at = r.u64()?;
        let slot = match r.u8()? {
            0 => {
                let params = r.params()?;
                let state = r.state()?;
                if state.algorithm() != params.algorithm {
                    return Err("state does not match its rule".into());
                }
                Saved::Inline { params, state }
            }
            1 => {
                let n = u64::from(r.u32()?);
                let n = r.count(n, 17)?;
                Saved::Policy((0..n).map(|_| r.state()).collect::<Read<Vec<_>>>()?)
            }
            tag => return Err(format!("unknown slot tag {tag}")),
        };
        // The store relies on this pairing; a file that breaks it is refused
        // here rather than trusted later.
        if inline_key != matches!(slot, Saved::Inline { .. }) {
            return Err("a key's kind does not match its state".into());
        }
        entries.push((key, Entry { fresh_at, slot }));
    }
    if r.pos != body.len() {
        return Err(format!("{} stray bytes at the end", body.len() - r.pos));
    }
    Ok(Contents {
        written_at,
        policies,
        entries,
    })
}
