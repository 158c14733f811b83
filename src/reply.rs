//! Replies, independent of the protocol version: the connection turns them
//! into RESP2 or RESP3 frames.

use bytes::Bytes;

use crate::error::CmdError;

/// One reply to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`, `+PONG`, `+QUEUED`.
    Simple(&'static str),
    /// An error line, already in Redis's words (`ERR ...`, `WRONGTYPE ...`).
    Error(String),
    Int(i64),
    Bulk(Bytes),
    /// RESP2 `$-1`, RESP3 `_`.
    Null,
    Array(Vec<Reply>),
    /// RESP3 map; a flat field-value array in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set; an array in RESP2.
    Set(Vec<Reply>),
    /// RESP3 verbatim text (INFO, CLIENT LIST); a bulk string in RESP2.
    Verbatim(String),
    /// RESP3 double; a bulk string in RESP2.
    Double(f64),
    /// The five-integer decision reply, kept off the heap.
    Decision([i64; 5]),
}

impl Reply {
    pub const OK: Reply = Reply::Simple("OK");

    pub fn bulk(s: impl Into<Bytes>) -> Reply {
        Reply::Bulk(s.into())
    }

    /// A bulk string from text.
    pub fn text(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    /// A map with text keys.
    pub fn map<I>(fields: I) -> Reply
    where
        I: IntoIterator<Item = (&'static str, Reply)>,
    {
        Reply::Map(
            fields
                .into_iter()
                .map(|(k, v)| (Reply::Bulk(Bytes::from_static(k.as_bytes())), v))
                .collect(),
        )
    }

    /// The five-integer decision reply.
    pub fn decision(fields: [i64; 5]) -> Reply {
        Reply::Decision(fields)
    }

    /// A `HELP` reply as Redis gives it: an array of status lines.
    pub fn help(lines: &'static [&'static str]) -> Reply {
        Reply::Array(lines.iter().map(|&l| Reply::Simple(l)).collect())
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }
}

impl From<CmdError> for Reply {
    fn from(e: CmdError) -> Reply {
        Reply::Error(e.to_string())
    }
}
