//! Setting types and their grammars, as Redis writes them: save points,
//! sizes with suffixes, yes/no, TLS client-certificate modes.

use std::path::PathBuf;

/// The files TLS is configured from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
    pub auth_clients: AuthClients,
}

/// Whether TLS clients must show a certificate (Redis's `tls-auth-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthClients {
    No,
    Optional,
    #[default]
    Yes,
}

impl AuthClients {
    pub fn parse(text: &str) -> Result<AuthClients, String> {
        match text.to_ascii_lowercase().as_str() {
            "yes" => Ok(AuthClients::Yes),
            "optional" => Ok(AuthClients::Optional),
            "no" => Ok(AuthClients::No),
            _ => Err(format!(
                "invalid tls_auth_clients '{text}': expected yes, optional or no"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AuthClients::No => "no",
            AuthClients::Optional => "optional",
            AuthClients::Yes => "yes",
        }
    }
}

/// A save point: a snapshot is written `after_ms` after the last one if
/// at least `changes` changes were made since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavePoint {
    pub after_ms: u64,
    pub changes: u64,
}

impl SavePoint {
    /// Redis's default, `save 3600 1 300 100 60 10000`: within an hour of
    /// any change, five minutes of 100, a minute of 10,000.
    pub fn redis_default() -> Vec<SavePoint> {
        [(3600, 1), (300, 100), (60, 10_000)]
            .map(|(secs, changes)| SavePoint {
                after_ms: secs * 1000,
                changes,
            })
            .to_vec()
    }

    /// Parses Redis's form: pairs of seconds and changes, `""` for none.
    pub fn parse(text: &str) -> Result<Vec<SavePoint>, String> {
        let bad = || {
            format!(
                "invalid save '{text}': expected pairs of seconds and changes, e.g. \"3600 1 300 100 60 10000\", or \"\" for none"
            )
        };
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(|w| {
                w.parse::<u64>()
                    .ok()
                    .filter(|&n| n > 0 && n <= 366 * 86_400 * 1000)
            })
            .collect::<Option<_>>()
            .ok_or_else(bad)?;
        if !numbers.len().is_multiple_of(2) {
            return Err(bad());
        }
        Ok(numbers
            .chunks(2)
            .map(|p| SavePoint {
                after_ms: p[0].saturating_mul(1000),
                changes: p[1],
            })
            .collect())
    }

    /// Redis's form (seconds, rounded up).
    pub fn show(points: &[SavePoint]) -> String {
        let words: Vec<String> = points
            .iter()
            .map(|p| format!("{} {}", p.after_ms.div_ceil(1000), p.changes))
            .collect();
        words.join(" ")
    }
}

/// `yes` or `no` (any case), as Redis's boolean settings.
pub(super) fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(format!("expected yes or no, not '{text}'")),
    }
}

/// A size in bytes with Redis's suffixes: `k` (1000), `kb` (1024), `m`,
/// `mb`, `g`, `gb`, any case; a bare number is bytes.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (digits, unit) = lower.split_at(split);
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "invalid size '{text}': expected bytes with an optional k, kb, m, mb, g or gb suffix"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("invalid size '{text}': expected bytes with an optional k, kb, m, mb, g or gb suffix"))
}
