//! Snapshots: every limiter state and the run-time policies in one file.
//!
//! # Format (version 3, all integers little-endian)
//!
//! ```text
//! magic    8 bytes  "TOLLGATE"
//! version  u32      3 (1 and 2 are read too: 2 has no reservations, 1 also
//!                   every time before 2554)
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
//!            | 2 + u32 count + reservations (a key's open reservations)
//! reservation: id u64, 0 + rule | 1 + policy name, taken_at u64, units u64, deadline u64
//! state:     algorithm u8 + its fields (see `body::put_state`)
//! time:      two u64 words: the low 64 bits of the ns, then (high 24 bits
//!            of the ns << 40 | fraction in 1/limit ns); up to 2^64 ns + 183000d
//! ```
//!
//! Times are wall-clock (epoch) nanoseconds, so time that passes while the
//! server is down counts: a window that ended meanwhile is over after the
//! restart, a bucket that refilled meanwhile is full.
//!
//! Writing streams: the store is walked a slice of states at a time (each
//! slice copied under its shard's lock, written with no lock held; see
//! `Store::walk`), so a save needs a few hundred kilobytes beyond the
//! keyspace and holds no lock long. The length and the entry count are
//! filled in at the end. Each state is saved as it was at one moment of
//! the save; a state changed after its slice was copied is saved as it
//! was before.
//!
//! Writing is atomic: a temporary file in the same directory, fsync, rename
//! over the old snapshot, fsync of the directory. A crash at any moment
//! leaves the old or the new snapshot whole. Loading streams too, checks
//! everything and never panics: a bad file is an error that names what is
//! wrong.

use std::path::{Path, PathBuf};

use crate::policy::Policy;
use crate::store::{Entry, Store};

mod body;
mod file;
mod framing;

pub use file::{
    Fault, load, load_with, move_aside, remove_orphans, save, save_keeping, save_with_fault,
};
pub use framing::Written;

/// The snapshot's file name inside the data directory.
pub const FILE_NAME: &str = "dump.tgs";
const MAGIC: &[u8; 8] = b"TOLLGATE";
/// The format version this build writes. It reads versions 1 and 2 as
/// well: 2 differs only in holding no reservations (slot kind 2), 1 also in
/// that its times all lie before 2554 (a time's second word is then just
/// its fraction).
pub const VERSION: u32 = 3;
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

/// Encodes the store and the run-time policies into a whole file in memory
/// (tests and fuzzing; a save streams to disk with [`save`]).
pub fn encode(store: &Store, policies: &[std::sync::Arc<Policy>], now: u64) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    framing::write(&mut out, store, policies, now, &|_| true)
        .expect("writing to memory cannot fail");
    out.into_inner()
}

/// [`encode`] of the states whose map key `keep` takes (a cluster node
/// sends the states of the slots it moves this way).
pub fn encode_keeping(
    store: &Store,
    policies: &[std::sync::Arc<Policy>],
    now: u64,
    keep: &dyn Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    framing::write(&mut out, store, policies, now, keep).expect("writing to memory cannot fail");
    out.into_inner()
}

/// Decodes a snapshot held in memory; `path` only names it in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<Contents, SnapshotError> {
    let mut entries = Vec::new();
    let (written_at, policies) = framing::read(bytes, bytes.len() as u64, path, |key, entry| {
        entries.push((key, entry))
    })?;
    Ok(Contents {
        written_at,
        policies,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::body::{algorithm_tag, put_bytes, put_params, put_u32, put_u64};
    use super::framing::frame;
    use super::*;
    use crate::limiter::Request;
    use crate::limiter::{Algorithm, MAX_WINDOW_NS, Params, ScaledTime};
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
        store
            .check_policy(&policy, b"user", T0, Request::take(2))
            .unwrap();
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
        future[8..12].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(
            msg(&future),
            "snapshot /data/dump.tgs: format version 4 is not supported (this build reads versions 1 to 3)"
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
        save(&path, &Store::new(), &[], T0).unwrap();
        let whole = encode(&store, &policies, T0 + S).len();
        for fault in [
            Fault::CrashAfter(0),
            Fault::CrashAfter(whole / 2),
            Fault::CrashAfter(whole - 1),
            Fault::CrashBeforeRename,
        ] {
            assert!(save_with_fault(&path, &store, &policies, T0 + S, Some(fault)).is_err());
            let loaded = load(&path).unwrap().unwrap();
            assert_eq!(loaded.written_at, T0, "{fault:?}");
            assert!(loaded.entries.is_empty());
        }
        let written = save(&path, &store, &policies, T0 + S).unwrap();
        assert_eq!(written.entries, 7);
        assert_eq!(written.bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(fs::read(&path).unwrap(), encode(&store, &policies, T0 + S));
        assert_eq!(load(&path).unwrap().unwrap().entries.len(), 7);
        assert!(load(&dir.join("missing")).unwrap().is_none());
        let aside = move_aside(&path, 42).unwrap();
        assert!(aside.ends_with("dump.tgs.bad-42") && !path.exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
