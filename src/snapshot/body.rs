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
use crate::store::{Entry, Saved, SavedRef, Scope};

mod reservations;

/// The start of the body: when it was written and the run-time policies
/// (config-file policies come from the config file).
pub(super) fn encode_head(policies: &[std::sync::Arc<Policy>], now: u64) -> Vec<u8> {
    let mut head = Vec::new();
    put_u64(&mut head, now);
    let run_time: Vec<&Policy> = policies
        .iter()
        .map(|p| &**p)
        .filter(|p| !p.from_config)
        .collect();
    put_u32(&mut head, run_time.len() as u32);
    for p in run_time {
        put_bytes(&mut head, p.name.as_bytes());
        put_u32(&mut head, p.rules.len() as u32);
        for r in &p.rules {
            put_params(&mut head, r);
        }
    }
    head
}

/// One entry: map key, fresh time, slot.
pub(super) fn put_entry(out: &mut Vec<u8>, key: &[u8], fresh_at: u64, slot: SavedRef<'_>) {
    put_bytes(out, key);
    put_u64(out, fresh_at);
    match slot {
        SavedRef::Inline { params, state } => {
            out.push(0);
            put_params(out, &params);
            put_state(out, state);
        }
        SavedRef::Policy(states) => {
            out.push(1);
            put_u32(out, states.len() as u32);
            for s in states {
                put_state(out, s);
            }
        }
        SavedRef::Reservations(open) => {
            out.push(2);
            reservations::put(out, open);
        }
    }
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

/// A reader of the body from any byte source, which fails instead of
/// reading past the body's end and checksums what it reads.
pub(super) struct Reader<R> {
    src: R,
    /// Bytes of body.
    len: u64,
    pos: u64,
    pub(super) crc: crc32fast::Hasher,
    scratch: Vec<u8>,
    /// The source's own error, if reading failed (not a fault of the body).
    pub(super) io_error: Option<std::io::Error>,
}

pub(super) type Read<T> = Result<T, String>;

impl<R: std::io::Read> Reader<R> {
    pub(super) fn new(src: R, len: u64) -> Reader<R> {
        Reader {
            src,
            len,
            pos: 0,
            crc: crc32fast::Hasher::new(),
            scratch: Vec::new(),
            io_error: None,
        }
    }

    fn check_room(&self, n: u64) -> Read<()> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(format!("record runs past the end at byte {}", self.pos)),
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Read<()> {
        if let Err(e) = self.src.read_exact(buf) {
            let reason = format!("cannot read at byte {}: {e}", self.pos);
            self.io_error = Some(e);
            return Err(reason);
        }
        self.crc.update(buf);
        self.pos += buf.len() as u64;
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        self.check_room(N as u64)?;
        let mut out = [0u8; N];
        self.fill(&mut out)?;
        Ok(out)
    }

    fn take(&mut self, n: usize) -> Read<&[u8]> {
        self.check_room(n as u64)?;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(n, 0);
        let filled = self.fill(&mut scratch);
        self.scratch = scratch;
        filled?;
        Ok(&self.scratch)
    }

    /// Reads (and checksums) whatever is left of the body.
    pub(super) fn skip_rest(&mut self) -> Read<()> {
        let mut chunk = vec![0u8; 64 * 1024];
        while self.pos < self.len {
            let n = (self.len - self.pos).min(chunk.len() as u64) as usize;
            self.fill(&mut chunk[..n])?;
        }
        Ok(())
    }

    /// Bytes of body not read yet.
    pub(super) fn left(&self) -> u64 {
        self.len - self.pos
    }

    fn u8(&mut self) -> Read<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Read<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Read<u64> {
        Ok(u64::from_le_bytes(self.array()?))
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
        let left = self.left() / min_size.max(1) as u64;
        usize::try_from(n)
            .ok()
            .filter(|_| n <= left)
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

/// Decodes a body: answers when it was written and its policies, and hands
/// each entry to `on_entry` as it is read (entries are never all held).
pub(super) fn decode_body<R: std::io::Read>(
    r: &mut Reader<R>,
    mut on_entry: impl FnMut(Box<[u8]>, Entry),
) -> Read<(u64, Vec<Policy>)> {
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
    for _ in 0..n {
        let key: Box<[u8]> = r.bytes()?.into();
        let Some((scope, _)) = crate::store::decode_key(&key) else {
            return Err("malformed key".into());
        };
        let kind = match scope {
            Scope::Inline => 0,
            Scope::Policy(_) => 1,
            Scope::Reservations => 2,
        };
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
            2 => {
                let n = u64::from(r.u32()?);
                let n = r.count(n, 37)?;
                Saved::Reservations((0..n).map(|_| r.reservation()).collect::<Read<Vec<_>>>()?)
            }
            tag => return Err(format!("unknown slot tag {tag}")),
        };
        // The store relies on this pairing; a file that breaks it is refused
        // here rather than trusted later.
        let slot_kind = match slot {
            Saved::Inline { .. } => 0,
            Saved::Policy(_) => 1,
            Saved::Reservations(_) => 2,
        };
        if kind != slot_kind {
            return Err("a key's kind does not match its state".into());
        }
        on_entry(key, Entry { fresh_at, slot });
    }
    if r.left() != 0 {
        return Err(format!("{} stray bytes at the end", r.left()));
    }
    Ok((written_at, policies))
}
