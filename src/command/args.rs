//! A cursor over a command's arguments, and the parsers for the values that
//! PROTOCOL.md defines (counts, durations).

use crate::clock::NANOS_PER_MS;
use crate::error::{CmdError, printable};
use crate::limiter::{MAX_COUNT, MAX_WINDOW_NS};

/// The arguments after the command name.
#[derive(Debug)]
pub struct Args<'a> {
    items: &'a [&'a [u8]],
    pos: usize,
}

impl<'a> Args<'a> {
    pub fn new(items: &'a [&'a [u8]]) -> Args<'a> {
        Args { items, pos: 0 }
    }

    /// The next argument, if any.
    #[inline]
    pub fn next_arg(&mut self) -> Option<&'a [u8]> {
        let item = *self.items.get(self.pos)?;
        self.pos += 1;
        Some(item)
    }

    /// The next argument, or a syntax error.
    #[inline]
    pub fn required(&mut self) -> Result<&'a [u8], CmdError> {
        self.next_arg().ok_or(CmdError::Syntax)
    }

    /// The next argument as UTF-8 text.
    pub fn text(&mut self) -> Result<&'a str, CmdError> {
        std::str::from_utf8(self.required()?).map_err(|_| CmdError::Syntax)
    }

    /// Arguments not yet taken.
    pub fn remaining(&self) -> usize {
        self.items.len() - self.pos
    }

    /// Fails with a syntax error if arguments are left over.
    pub fn finish(&self) -> Result<(), CmdError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(CmdError::Syntax)
        }
    }
}

/// True if `arg` is `word`, ignoring ASCII case.
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// A signed integer in Redis's strict form (no spaces, no `+`).
pub fn parse_i64(arg: &[u8]) -> Result<i64, CmdError> {
    ascii_i64(arg).ok_or(CmdError::NotInteger)
}

/// Parses `-?[1-9][0-9]*|0` straight from ASCII, with checked arithmetic:
/// no spaces, no `+`, no leading zeros, no `-0` (Redis's rules).
pub fn ascii_i64(arg: &[u8]) -> Option<i64> {
    let (negative, digits) = match arg.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, arg),
    };
    let (&first, _) = digits.split_first()?;
    if first == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative {
            n.checked_sub(digit)?
        } else {
            n.checked_add(digit)?
        };
    }
    Some(n)
}

/// An integer from `min` to 10^12, named `name` in the error.
pub fn parse_count(name: &str, arg: &[u8], min: u64) -> Result<u64, CmdError> {
    parse_i64(arg)
        .ok()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| (min..=MAX_COUNT).contains(n))
        .ok_or_else(|| {
            CmdError::invalid(format!(
                "invalid {name} '{}': expected an integer from {min} to {MAX_COUNT}",
                printable(arg)
            ))
        })
}

/// A duration: an integer with an optional `ms`, `s`, `m`, `h` or `d`
/// suffix (bare means seconds), from 1 ms to 366 days. Answers nanoseconds.
pub fn parse_duration(name: &str, arg: &[u8]) -> Result<u64, CmdError> {
    let bad_form = || {
        CmdError::invalid(format!(
            "invalid {name} '{}': expected an integer with optional ms|s|m|h|d suffix",
            printable(arg)
        ))
    };
    let digits = arg.iter().take_while(|b| b.is_ascii_digit()).count();
    let (number, suffix) = arg.split_at(digits);
    if number.is_empty() {
        return Err(bad_form());
    }
    let unit_ms: u64 = match suffix {
        b"ms" => 1,
        b"" | b"s" => 1_000,
        b"m" => 60_000,
        b"h" => 3_600_000,
        b"d" => 86_400_000,
        _ => return Err(bad_form()),
    };
    // At most 366 days: anything longer than 20 digits is out of range anyway.
    let value: Option<u64> = std::str::from_utf8(number)
        .ok()
        .and_then(|s| s.parse().ok());
    let ns = value
        .and_then(|v| v.checked_mul(unit_ms))
        .and_then(|ms| ms.checked_mul(NANOS_PER_MS))
        .filter(|ns| (1..=MAX_WINDOW_NS).contains(ns));
    ns.ok_or_else(|| {
        CmdError::invalid(format!(
            "invalid {name} '{}': expected a duration from 1ms to 366d",
            printable(arg)
        ))
    })
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
                    "ERR invalid window '{bad}': expected an integer with optional ms|s|m|h|d suffix"
                )
            );
        }
        for out in ["0", "0ms", "367d", "99999999999999999999999"] {
            assert_eq!(
                ms(out).unwrap_err().to_string(),
                format!("ERR invalid window '{out}': expected a duration from 1ms to 366d")
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
            "ERR invalid limit 'x': expected an integer from 1 to 1000000000000"
        );
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"-12"), Ok(-12));
        assert_eq!(parse_i64(b"0"), Ok(0));
        assert_eq!(parse_i64(b"-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Ok(i64::MAX));
        for bad in [
            "",
            "-",
            " 1",
            "1 ",
            "+1",
            "01",
            "9223372036854775808",
            "-0",
            "1x",
            "--1",
        ] {
            assert_eq!(
                parse_i64(bad.as_bytes()),
                Err(CmdError::NotInteger),
                "{bad}"
            );
        }
    }
}
