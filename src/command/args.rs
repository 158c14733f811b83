//! A cursor over a command's arguments, and Redis's strict integers. The
//! rule grammar (counts, durations, names) is the domain's:
//! [`crate::limiter::rule`].

use crate::error::CmdError;
use crate::text::ascii_i64;

/// The arguments after the command name.
#[derive(Debug, Clone)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
