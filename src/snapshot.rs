//! Snapshots: every limiter state and the run-time policies in one file.
//!
//! # Format (version 2, all integers little-endian)
//!
//! ```text
//! magic    8 bytes  "TOLLGATE"
//! version  u32      2 (1 is read too: the same layout, every time before 2554)
//! length   u64      bytes of body
//! body     ...      see below
//! crc32    u32      CRC-32 (IEEE) of body
//!
//! body:
//!   written_at u64                       ns since the Unix epoch
//!   policies   u32, then each: name, rules
//!   entries    u64, then each: key, fresh_at u64, slot
//! name, key: u32 length + bytes
//! rules:     u32 count + each: algorithm u8, limit u64, window u64, burst u64, buckets u32
//! slot:      0 + rule + state (an inline key) | 1 + u32 count + states (a key under a policy)
//! state:     algorithm u8 + its fields (see `put_state`)
//! time:      two u64 words: the low 64 bits of the ns, then (high 24 bits
//!            of the ns << 40 | fraction in 1/limit ns); up to 2^64 ns + 183000d
//! ```
//!
//! Times are wall-clock (epoch) nanoseconds, so time that passes while the
//! server is down counts: a window that ended meanwhile is over after the
//! restart, a bucket that refilled meanwhile is full.
//!
//! Writing is atomic: a temporary file in the same directory, fsync, rename
//! over the old snapshot, fsync of the directory. A crash at any moment
//! leaves the old or the new snapshot whole. Loading checks everything and
//! never panics: a bad file is an error that names what is wrong.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::limiter::fixed_window::FixedWindow;
use crate::limiter::gcra::Gcra;
use crate::limiter::leaky_bucket::LeakyBucket;
use crate::limiter::sliding_log::SlidingLog;
use crate::limiter::sliding_window::SlidingWindow;
use crate::limiter::token_bucket::TokenBucket;
use crate::limiter::{Algorithm, MAX_BUCKETS, MAX_COUNT, MAX_WINDOW_NS, Params, ScaledTime, State};
use crate::policy::Policy;
use crate::store::{Entry, Slot, SlotRef, Store};

/// The snapshot's file name inside the data directory.
pub const FILE_NAME: &str = "dump.tgs";
const MAGIC: &[u8; 8] = b"TOLLGATE";
/// The format version this build writes. It reads version 1 as well, which
/// differs only in that its times all lie before 2554 (a time's second word
/// is then just its fraction).
pub const VERSION: u32 = 2;
const OLDEST_VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8;

/// What is wrong with a snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {path}: not a tollgate snapshot (bad magic)")]
    BadMagic { path: PathBuf },
    #[error(
        "snapshot {path}: format version {found} is not supported (this build reads versions {OLDEST_VERSION} to {VERSION})"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("snapshot {path}: truncated ({found} bytes, expected {expected})")]
    Truncated {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("snapshot {path}: checksum mismatch (file corrupted)")]
    Checksum { path: PathBuf },
    #[error("snapshot {path}: corrupted: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// What a snapshot holds.
#[derive(Debug, Default)]
pub struct Contents {
    pub written_at: u64,
    pub policies: Vec<Policy>,
    pub entries: Vec<(Box<[u8]>, Entry)>,
}

/// The snapshot path in `data_dir`.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

// ---------------------------------------------------------------- encoding

/// Encodes the store and the run-time policies, shard by shard.
pub fn encode(store: &Store, policies: &[std::sync::Arc<Policy>], now: u64) -> Vec<u8> {
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
            SlotRef::Inline { params, state } => {
                body.push(0);
                put_params(&mut body, &params);
                put_state(&mut body, state);
            }
            SlotRef::Policy(states) => {
                body.push(1);
                put_u32(&mut body, states.len() as u32);
                for s in states {
                    put_state(&mut body, s);
                }
            }
        }
    });
    body[count_at..count_at + 8].copy_from_slice(&count.to_le_bytes());
    frame(&body)
}

/// A file around `body`: magic, version, length, the body, its CRC32.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + 4);
    out.extend_from_slice(MAGIC);
    put_u32(&mut out, VERSION);
    put_u64(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    put_u32(&mut out, crc32fast::hash(body));
    out
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u32(out, b.len() as u32);
    out.extend_from_slice(b);
}

fn algorithm_tag(a: Algorithm) -> u8 {
    Algorithm::ALL.iter().position(|x| *x == a).unwrap_or(0) as u8
}

fn put_params(out: &mut Vec<u8>, p: &Params) {
    out.push(algorithm_tag(p.algorithm));
    put_u64(out, p.limit);
    put_u64(out, p.window);
    put_u64(out, p.burst);
    put_u32(out, p.buckets);
}

fn put_pairs<'a>(out: &mut Vec<u8>, pairs: impl ExactSizeIterator<Item = &'a (u64, u64)>) {
    put_u32(out, pairs.len() as u32);
    for &(a, b) in pairs {
        put_u64(out, a);
        put_u64(out, b);
    }
}

fn put_time(out: &mut Vec<u8>, t: ScaledTime) {
    let (lo, hi) = t.words();
    put_u64(out, lo);
    put_u64(out, hi);
}

fn put_state(out: &mut Vec<u8>, state: &State) {
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

// ---------------------------------------------------------------- decoding

/// A cursor over the body that fails instead of reading past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Read<T> = Result<T, String>;

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

/// Decodes a snapshot held in memory; `path` only names it in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Contents, SnapshotError> {
    let path_buf = || path.to_path_buf();
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        if bytes.len() < 8 && MAGIC.starts_with(bytes) {
            return Err(SnapshotError::Truncated {
                path: path_buf(),
                found: bytes.len() as u64,
                expected: HEADER as u64 + 4,
            });
        }
        return Err(SnapshotError::BadMagic { path: path_buf() });
    }
    if bytes.len() < HEADER {
        return Err(SnapshotError::Truncated {
            path: path_buf(),
            found: bytes.len() as u64,
            expected: HEADER as u64 + 4,
        });
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    if !(OLDEST_VERSION..=VERSION).contains(&version) {
        return Err(SnapshotError::Version {
            path: path_buf(),
            found: version,
        });
    }
    let body_len = u64::from_le_bytes(bytes[12..20].try_into().unwrap_or_default());
    let expected = body_len.saturating_add(HEADER as u64 + 4);
    if (bytes.len() as u64) < expected {
        return Err(SnapshotError::Truncated {
            path: path_buf(),
            found: bytes.len() as u64,
            expected,
        });
    }
    if (bytes.len() as u64) > expected {
        return Err(SnapshotError::Corrupt {
            path: path_buf(),
            reason: format!("{} bytes after the end", bytes.len() as u64 - expected),
        });
    }
    let body = &bytes[HEADER..HEADER + body_len as usize];
    let crc = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap_or_default());
    if crc32fast::hash(body) != crc {
        return Err(SnapshotError::Checksum { path: path_buf() });
    }
    decode_body(body).map_err(|reason| SnapshotError::Corrupt {
        path: path_buf(),
        reason,
    })
}

fn decode_body(body: &[u8]) -> Read<Contents> {
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
                Slot::Inline { params, state }
            }
            1 => {
                let n = u64::from(r.u32()?);
                let n = r.count(n, 17)?;
                Slot::Policy((0..n).map(|_| r.state()).collect::<Read<Vec<_>>>()?)
            }
            tag => return Err(format!("unknown slot tag {tag}")),
        };
        // The store relies on this pairing; a file that breaks it is refused
        // here rather than trusted later.
        if inline_key != matches!(slot, Slot::Inline { .. }) {
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

// ---------------------------------------------------------------- files

/// Where a simulated crash stops the writer (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Stop after writing this many bytes of the temporary file.
    CrashAfter(usize),
    /// Stop after writing the temporary file, before the rename.
    CrashBeforeRename,
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    write_with_fault(path, bytes, None)
}

/// [`write_atomic`], stopping where `fault` says, as a crash would.
pub fn write_with_fault(
    path: &Path,
    bytes: &[u8],
    fault: Option<Fault>,
) -> Result<(), SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{FILE_NAME}.tmp-{}", std::process::id()));
    let crash = || std::io::Error::other("simulated crash");
    let result = (|| {
        let mut file = File::create(&tmp)?;
        if let Some(Fault::CrashAfter(n)) = fault {
            file.write_all(&bytes[..n.min(bytes.len())])?;
            return Err(crash());
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        if fault == Some(Fault::CrashBeforeRename) {
            return Err(crash());
        }
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() && fault.is_none() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Reads the snapshot at `path`; `Ok(None)` when there is none.
pub fn load(path: &Path) -> Result<Option<Contents>, SnapshotError> {
    match fs::read(path) {
        Ok(bytes) => decode(&bytes, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Moves a bad snapshot aside (to `<name>.bad-<unix seconds>`); answers the new path.
pub fn move_aside(path: &Path, now_secs: u64) -> std::io::Result<PathBuf> {
    let aside = path.with_file_name(format!("{FILE_NAME}.bad-{now_secs}"));
    fs::rename(path, &aside)?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::Request;
    use crate::store::Scope;

    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_767_225_600 * S;

    fn all_kinds() -> (Store, Vec<std::sync::Arc<Policy>>) {
        let store = Store::new();
        for (i, a) in Algorithm::ALL.into_iter().enumerate() {
            let p = Params::new(a, 10, 60 * S);
            let key = format!("k{i}");
            store
                .check(key.as_bytes(), &p, T0, Request::take(3))
                .unwrap();
            store
                .check(key.as_bytes(), &p, T0 + S, Request::take(2))
                .unwrap();
        }
        let policy = Policy {
            name: "api".into(),
            rules: vec![
                Params::new(Algorithm::TokenBucket, 5, S),
                Params::new(Algorithm::SlidingWindow, 100, 60 * S),
            ],
            from_config: false,
        };
        store.check_policy(&policy, b"user", T0, Request::take(2));
        let config_policy = Policy {
            name: "cfg".into(),
            from_config: true,
            ..policy.clone()
        };
        (
            store,
            vec![
                std::sync::Arc::new(policy),
                std::sync::Arc::new(config_policy),
            ],
        )
    }

    fn entries_of(store: &Store) -> Vec<(Vec<u8>, Entry)> {
        let mut out = Vec::new();
        store.for_each(|k, fresh_at, slot| {
            out.push((
                k.to_vec(),
                Entry {
                    fresh_at,
                    slot: slot.to_owned(),
                },
            ))
        });
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn round_trips_every_kind_of_state() {
        let (store, policies) = all_kinds();
        let bytes = encode(&store, &policies, T0);
        let contents = decode(&bytes, Path::new("x")).unwrap();
        assert_eq!(contents.written_at, T0);
        assert_eq!(
            contents.policies.len(),
            1,
            "only run-time policies are saved"
        );
        assert_eq!(contents.policies[0], *policies[0]);
        let restored = Store::new();
        for (k, e) in contents.entries {
            restored.insert_raw(k, e);
        }
        assert_eq!(entries_of(&restored), entries_of(&store));
        assert_eq!(restored.len(), 7);
        assert!(restored.inspect(Scope::Inline, b"k5", None, T0).is_some());
    }

    #[test]
    fn every_damage_is_refused_with_its_reason() {
        let (store, policies) = all_kinds();
        let good = encode(&store, &policies, T0);
        let p = Path::new("/data/dump.tgs");
        let msg = |b: &[u8]| decode(b, p).unwrap_err().to_string();
        for cut in [0, 3, 10, 19, 20, good.len() / 2, good.len() - 1] {
            let m = msg(&good[..cut]);
            assert!(
                m.contains("truncated") && m.contains("/data/dump.tgs"),
                "cut {cut}: {m}"
            );
        }
        for i in (HEADER..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(msg(&bad).contains("checksum mismatch"), "byte {i}");
        }
        let mut future = good.clone();
        future[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(
            msg(&future),
            "snapshot /data/dump.tgs: format version 3 is not supported (this build reads versions 1 to 2)"
        );
        assert!(msg(b"REDIS0011....................").contains("bad magic"));
        let mut long = good.clone();
        long.push(0);
        assert!(msg(&long).contains("after the end"));
    }

    #[test]
    fn a_valid_checksum_over_nonsense_is_still_refused() {
        // A body that passes the CRC but claims a huge count.
        let mut body = Vec::new();
        put_u64(&mut body, T0);
        put_u32(&mut body, 0);
        put_u64(&mut body, u64::MAX);
        let m = decode(&frame(&body), Path::new("f"))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("corrupted") && m.contains("exceeds the file"),
            "{m}"
        );
    }

    #[test]
    fn version_1_files_read_the_same() {
        let (store, policies) = all_kinds();
        let mut v1 = encode(&store, &policies, T0);
        v1[8..12].copy_from_slice(&1u32.to_le_bytes());
        let contents = decode(&v1, Path::new("f")).unwrap();
        let restored = Store::new();
        for (k, e) in contents.entries {
            restored.insert_raw(k, e);
        }
        assert_eq!(entries_of(&restored), entries_of(&store));
    }

    /// One inline gcra entry holding `tat` under `params`, with a valid checksum.
    fn gcra_file(params: &Params, tat: (u64, u64)) -> Vec<u8> {
        let mut body = Vec::new();
        put_u64(&mut body, T0);
        put_u32(&mut body, 0);
        put_u64(&mut body, 1);
        let mut key = Vec::new();
        crate::store::encode_key(&mut key, crate::store::Scope::Inline, b"k");
        put_bytes(&mut body, &key);
        put_u64(&mut body, T0 + S);
        body.push(0);
        put_params(&mut body, params);
        body.push(algorithm_tag(Algorithm::Gcra));
        put_u64(&mut body, tat.0);
        put_u64(&mut body, tat.1);
        frame(&body)
    }

    #[test]
    fn times_and_rules_out_of_reach_are_refused() {
        let ok = Params::new(Algorithm::Gcra, 1, MAX_WINDOW_NS);
        let late = ScaledTime::new(u128::from(u64::MAX) + 5, 0).words();
        assert!(decode(&gcra_file(&ok, late), Path::new("f")).is_ok());
        let beyond = ScaledTime::new(crate::limiter::MAX_TIME_NS + 1, 0).words();
        let m = decode(&gcra_file(&ok, beyond), Path::new("f"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("past any rule's reach"), "{m}");
        let too_long = Params { burst: 501, ..ok };
        let m = decode(&gcra_file(&too_long, (T0, 0)), Path::new("f"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("rule out of range"), "{m}");
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused() {
        // An inline key carrying policy states, with a valid checksum.
        let mut body = Vec::new();
        put_u64(&mut body, T0);
        put_u32(&mut body, 0);
        put_u64(&mut body, 1);
        put_bytes(&mut body, b"\0k");
        put_u64(&mut body, T0 + S);
        body.push(1);
        put_u32(&mut body, 0);
        let m = decode(&frame(&body), Path::new("f"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("does not match its state"), "{m}");
    }

    #[test]
    fn a_crash_mid_write_leaves_the_old_snapshot() {
        let dir = std::env::temp_dir().join(format!("tollgate-snap-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let path = path_in(&dir);
        let (store, policies) = all_kinds();
        let old = encode(&Store::new(), &[], T0);
        write_atomic(&path, &old).unwrap();
        let new = encode(&store, &policies, T0 + S);
        for fault in [
            Fault::CrashAfter(0),
            Fault::CrashAfter(new.len() / 2),
            Fault::CrashBeforeRename,
        ] {
            assert!(write_with_fault(&path, &new, Some(fault)).is_err());
            let loaded = load(&path).unwrap().unwrap();
            assert_eq!(loaded.written_at, T0, "{fault:?}");
            assert!(loaded.entries.is_empty());
        }
        write_atomic(&path, &new).unwrap();
        assert_eq!(load(&path).unwrap().unwrap().entries.len(), 7);
        assert!(load(&dir.join("missing")).unwrap().is_none());
        let aside = move_aside(&path, 42).unwrap();
        assert!(aside.ends_with("dump.tgs.bad-42") && !path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
