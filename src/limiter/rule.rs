//! The rule grammar that PROTOCOL.md defines: counts, durations, algorithm
//! and policy names, and a rule ([`Params`]) built from them. Shared by the
//! commands and the config file, with its own error type; the command layer
//! turns a [`RuleError`] into Redis's words, the config file into a line.

use super::{Algorithm, MAX_BUCKETS, MAX_COUNT, MAX_FILL_TEXT, MAX_WINDOW_NS, Params};
use crate::clock::NANOS_PER_MS;
use crate::text::{ascii_i64, printable};

/// Why a rule's words were refused. `Display` is the text after `ERR `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid {name} '{value}': expected an integer from {min} to {max}")]
    Count {
        name: &'static str,
        value: String,
        min: u64,
        max: u64,
    },
    #[error("invalid {name} '{value}': expected an integer with optional ms|s|m|h|d suffix")]
    DurationForm { name: &'static str, value: String },
    #[error("invalid {name} '{value}': expected a duration from 1ms to 366d")]
    DurationRange { name: &'static str, value: String },
    #[error(
        "unknown algorithm '{0}': expected one of token_bucket, leaky_bucket, fixed_window, sliding_log, sliding_window, gcra"
    )]
    UnknownAlgorithm(String),
    #[error("invalid policy name '{0}': expected 1 to 128 printable characters without spaces")]
    PolicyName(String),
    /// `BURST` for a window algorithm, or `BUCKETS` for any but the sliding
    /// window (Redis's `syntax error` on the wire).
    #[error("burst applies to token_bucket, leaky_bucket and gcra; buckets to sliding_window")]
    NotApplicable,
    #[error(
        "invalid rule: refilling from empty (BURST * window / limit) would take more than {MAX_FILL_TEXT}"
    )]
    RefillTooLong,
}

/// An integer from `min` to `max` given as text, named `name` in the error.
pub fn parse_count_in(
    name: &'static str,
    arg: &[u8],
    min: u64,
    max: u64,
) -> Result<u64, RuleError> {
    // The error quotes the argument as sent, not as read.
    let refused = || RuleError::Count {
        name,
        value: printable(arg),
        min,
        max,
    };
    let n = ascii_i64(arg).and_then(|n| u64::try_from(n).ok());
    n.ok_or_else(refused)
        .and_then(|n| count_in(name, n, min, max).map_err(|_| refused()))
}

/// `n` if it is from `min` to `max` (the one range check, for numbers read
/// from the wire and from the config file alike).
pub fn count_in(name: &'static str, n: u64, min: u64, max: u64) -> Result<u64, RuleError> {
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(RuleError::Count {
            name,
            value: n.to_string(),
            min,
            max,
        })
    }
}

/// A count (`limit`, `BURST`, `COST`): an integer from `min` to 10^12.
pub fn parse_count(name: &'static str, arg: &[u8], min: u64) -> Result<u64, RuleError> {
    parse_count_in(name, arg, min, MAX_COUNT)
}

/// `BUCKETS n`'s value: 1 to 1000.
pub fn parse_buckets(arg: &[u8]) -> Result<u32, RuleError> {
    parse_count_in("buckets", arg, 1, u64::from(MAX_BUCKETS)).map(|n| n as u32)
}

/// A duration: an integer with an optional `ms`, `s`, `m`, `h` or `d`
/// suffix (bare means seconds), from 1 ms to 366 days. Answers nanoseconds.
pub fn parse_duration(name: &'static str, arg: &[u8]) -> Result<u64, RuleError> {
    let digits = arg.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, suffix) = arg.split_at(digits);
    let unit_ms: u64 = match suffix {
        _ if number.is_empty() => 0,
        b"ms" => 1,
        b"" | b"s" => 1_000,
        b"m" => 60_000,
        b"h" => 3_600_000,
        b"d" => 86_400_000,
        _ => 0,
    };
    if unit_ms == 0 {
        return Err(RuleError::DurationForm {
            name,
            value: printable(arg),
        });
    }
    // At most 366 days: anything longer than 20 digits is out of range anyway.
    let value: Option<u64> = std::str::from_utf8(number)
        .ok()
        .and_then(|s| s.parse().ok());
    value
        .and_then(|v| v.checked_mul(unit_ms))
        .and_then(|ms| ms.checked_mul(NANOS_PER_MS))
        .filter(|ns| (1..=MAX_WINDOW_NS).contains(ns))
        .ok_or_else(|| RuleError::DurationRange {
            name,
            value: printable(arg),
        })
}

/// An algorithm's wire name, ignoring ASCII case.
pub fn parse_algorithm(arg: &[u8]) -> Result<Algorithm, RuleError> {
    Algorithm::parse(arg).ok_or_else(|| RuleError::UnknownAlgorithm(printable(arg)))
}

/// A policy name: 1 to 128 printable ASCII characters, no spaces.
pub fn valid_policy_name(name: &str) -> Result<(), RuleError> {
    let ok = !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(RuleError::PolicyName(printable(name.as_bytes())))
    }
}

/// A rule from its words, validated: `BURST` and `BUCKETS` only where they
/// apply, and within the refill bound.
pub fn build_params(
    algorithm: Algorithm,
    limit: u64,
    window: u64,
    burst: Option<u64>,
    buckets: Option<u32>,
) -> Result<Params, RuleError> {
    let mut params = Params::new(algorithm, limit, window);
    if let Some(burst) = burst {
        if !algorithm.uses_burst() {
            return Err(RuleError::NotApplicable);
        }
        params.burst = burst;
    }
    if let Some(buckets) = buckets {
        if !algorithm.uses_buckets() {
            return Err(RuleError::NotApplicable);
        }
        params.buckets = buckets;
    }
    if !params.fill_in_range() {
        return Err(RuleError::RefillTooLong);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_the_protocol() {
        let ms = |s: &str| parse_duration("window", s.as_bytes()).map(|ns| ns / NANOS_PER_MS);
        assert_eq!(ms("1500ms"), Ok(1500));
        assert_eq!(ms("10s"), Ok(10_000));
        assert_eq!(ms("1m"), Ok(60_000));
        assert_eq!(ms("24h"), Ok(86_400_000));
        assert_eq!(ms("60"), Ok(60_000));
        assert_eq!(ms("366d"), Ok(366 * 86_400_000));
        for bad in ["1.5s", "-1s", "10x", "", "s", " 1s", "1S"] {
            assert_eq!(
                ms(bad).unwrap_err().to_string(),
                format!(
                    "invalid window '{bad}': expected an integer with optional ms|s|m|h|d suffix"
                )
            );
        }
        for out in ["0", "0ms", "367d", "99999999999999999999999"] {
            assert_eq!(
                ms(out).unwrap_err().to_string(),
                format!("invalid window '{out}': expected a duration from 1ms to 366d")
            );
        }
    }

    #[test]
    fn counts_are_bounded() {
        assert_eq!(parse_count("limit", b"1", 1), Ok(1));
        assert_eq!(parse_count("limit", b"1000000000000", 1), Ok(MAX_COUNT));
        assert_eq!(parse_count("cost", b"0", 0), Ok(0));
        for bad in [
            "0",
            "-1",
            "1000000000001",
            "abc",
            "1e3",
            "+5",
            "18446744073709551616",
        ] {
            assert!(parse_count("limit", bad.as_bytes(), 1).is_err(), "{bad}");
        }
        assert_eq!(
            parse_count("limit", b"x", 1).unwrap_err().to_string(),
            "invalid limit 'x': expected an integer from 1 to 1000000000000"
        );
        assert_eq!(parse_buckets(b"1000"), Ok(1000));
        assert_eq!(
            parse_buckets(b"1001").unwrap_err().to_string(),
            "invalid buckets '1001': expected an integer from 1 to 1000"
        );
    }

    #[test]
    fn names_and_rules() {
        assert_eq!(parse_algorithm(b"GCRA"), Ok(Algorithm::Gcra));
        assert!(
            parse_algorithm(b"token")
                .unwrap_err()
                .to_string()
                .starts_with("unknown algorithm 'token'")
        );
        assert!(valid_policy_name("api:v1").is_ok());
        assert!(valid_policy_name("a b").is_err());
        assert!(valid_policy_name("").is_err());
        let day = 86_400_000 * NANOS_PER_MS;
        assert_eq!(
            build_params(Algorithm::FixedWindow, 1, day, Some(2), None),
            Err(RuleError::NotApplicable)
        );
        assert_eq!(
            build_params(Algorithm::Gcra, 1, day, None, Some(2)),
            Err(RuleError::NotApplicable)
        );
        assert_eq!(
            build_params(Algorithm::Gcra, 1, day, Some(183_001), None),
            Err(RuleError::RefillTooLong)
        );
        assert_eq!(
            build_params(Algorithm::Gcra, 1, day, Some(183_000), None).map(|p| p.burst),
            Ok(183_000)
        );
    }
}
