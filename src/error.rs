//! Command errors and the one place that turns them into Redis's words.

use crate::limiter::rule::RuleError;
use crate::store::{Refused, WrongType};
pub use crate::text::printable;

/// Every way a command can fail. `Display` is the exact error line sent to
/// the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdError {
    #[error("ERR unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand { name: String, args: String },
    #[error("ERR unknown subcommand '{sub}'. Try {command} HELP.")]
    UnknownSubcommand { command: String, sub: String },
    #[error("ERR wrong number of arguments for '{0}' command")]
    WrongArity(String),
    #[error("ERR syntax error")]
    Syntax,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("NOAUTH Authentication required.")]
    NoAuth,
    #[error("WRONGPASS invalid username-password pair or user is disabled.")]
    WrongPass,
    #[error("WRONGTYPE {0}")]
    WrongType(#[from] WrongType),
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// A check that would create a key past `maxmemory` (Redis's words).
    #[error("OOM command not allowed when used memory > 'maxmemory'.")]
    OutOfMemory,
    /// An error of our own: the text after `ERR `, naming the bad argument.
    #[error("ERR {0}")]
    Invalid(String),
    /// A complete error line with its own code word (EXECABORT, ...).
    #[error("{0}")]
    Line(String),
}

impl From<RuleError> for CmdError {
    /// A rule's words refused: Redis's `syntax error` for an option that does
    /// not apply, else our own line naming the bad argument.
    fn from(e: RuleError) -> CmdError {
        match e {
            RuleError::NotApplicable => CmdError::Syntax,
            e => CmdError::Invalid(e.to_string()),
        }
    }
}

impl From<Refused> for CmdError {
    fn from(e: Refused) -> CmdError {
        match e {
            Refused::WrongType(e) => CmdError::WrongType(e),
            Refused::OutOfMemory => CmdError::OutOfMemory,
            Refused::NoRefund(e) => CmdError::Invalid(e.to_string()),
            e @ Refused::TooManyReservations => CmdError::Invalid(e.to_string()),
        }
    }
}

impl CmdError {
    /// Redis's `unknown command` error, quoting up to the first arguments.
    pub fn unknown_command(name: &[u8], args: &[&[u8]]) -> CmdError {
        let mut listed = String::new();
        for arg in args {
            if listed.len() >= 128 {
                break;
            }
            listed.push('\'');
            listed.push_str(&printable(arg));
            listed.push_str("' ");
        }
        CmdError::UnknownCommand {
            name: printable(name),
            args: listed,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> CmdError {
        CmdError::Invalid(msg.into())
    }
}
