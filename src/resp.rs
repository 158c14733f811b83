//! Replies to bytes: each [`Reply`] encoded as a RESP2 or RESP3 frame by the
//! redis-protocol crate, the five-integer decision by a fast path of our own
//! (a test holds it to the crate's bytes).

use bytes::{Bytes, BytesMut};
use redis_protocol::bytes_utils::Str;
use redis_protocol::resp2::types::BytesFrame as Resp2;
use redis_protocol::resp3::types::{BytesFrame as Resp3, FrameMap, FrameSet, VerbatimStringFormat};

use crate::reply::Reply;

/// Appends `reply` to `out` in the session's protocol.
pub fn encode(reply: Reply, protocol: u8, out: &mut BytesMut) {
    if let Reply::Decision(fields) = reply {
        return encode_decision(&fields, out);
    }
    let result = if protocol == 3 {
        redis_protocol::resp3::encode::complete::extend_encode(out, &to_resp3(reply), false)
    } else {
        redis_protocol::resp2::encode::extend_encode(out, &to_resp2(reply), false)
    };
    if let Err(e) = result {
        tracing::error!("cannot encode a reply: {e}");
        out.extend_from_slice(b"-ERR internal error encoding the reply\r\n");
    }
}

/// The hot reply, five integers, written directly: an array of integers is
/// the same bytes in RESP2 and RESP3 (`*5`, then `:n` each). The crate's
/// general encoder counts digits with floating point and costs ~10x more;
/// a test checks these bytes against it.
fn encode_decision(fields: &[i64; 5], out: &mut BytesMut) {
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"*5\r\n");
    for &n in fields {
        out.extend_from_slice(b":");
        out.extend_from_slice(digits.format(n).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

fn to_resp2(reply: Reply) -> Resp2 {
    match reply {
        Reply::Simple(s) => Resp2::SimpleString(Bytes::from_static(s.as_bytes())),
        Reply::Error(e) => Resp2::Error(Str::from(one_line(e))),
        Reply::Int(i) => Resp2::Integer(i),
        Reply::Bulk(b) => Resp2::BulkString(b),
        Reply::Null => Resp2::Null,
        Reply::Array(items) | Reply::Set(items) => {
            Resp2::Array(items.into_iter().map(to_resp2).collect())
        }
        Reply::Map(pairs) => Resp2::Array(
            pairs
                .into_iter()
                .flat_map(|(k, v)| [to_resp2(k), to_resp2(v)])
                .collect(),
        ),
        Reply::Verbatim(s) => Resp2::BulkString(Bytes::from(s)),
        Reply::Double(d) => Resp2::BulkString(Bytes::from(d.to_string())),
        Reply::Decision(f) => Resp2::Array(f.into_iter().map(Resp2::Integer).collect()),
    }
}

fn to_resp3(reply: Reply) -> Resp3 {
    match reply {
        Reply::Simple(s) => Resp3::SimpleString {
            data: Bytes::from_static(s.as_bytes()),
            attributes: None,
        },
        Reply::Error(e) => Resp3::SimpleError {
            data: Str::from(one_line(e)),
            attributes: None,
        },
        Reply::Int(i) => Resp3::Number {
            data: i,
            attributes: None,
        },
        Reply::Bulk(b) => Resp3::BlobString {
            data: b,
            attributes: None,
        },
        Reply::Null => Resp3::Null,
        Reply::Array(items) => Resp3::Array {
            data: items.into_iter().map(to_resp3).collect(),
            attributes: None,
        },
        Reply::Set(items) => Resp3::Set {
            data: items.into_iter().map(to_resp3).collect::<FrameSet<_>>(),
            attributes: None,
        },
        Reply::Map(pairs) => Resp3::Map {
            data: pairs
                .into_iter()
                .map(|(k, v)| (to_resp3(k), to_resp3(v)))
                .collect::<FrameMap<_, _>>(),
            attributes: None,
        },
        Reply::Verbatim(s) => Resp3::VerbatimString {
            data: Bytes::from(s),
            format: VerbatimStringFormat::Text,
            attributes: None,
        },
        Reply::Double(d) => Resp3::Double {
            data: d,
            attributes: None,
        },
        Reply::Decision(f) => Resp3::Array {
            data: f
                .into_iter()
                .map(|data| Resp3::Number {
                    data,
                    attributes: None,
                })
                .collect(),
            attributes: None,
        },
    }
}

/// Error lines may not hold line breaks.
fn one_line(s: String) -> String {
    if s.contains(['\r', '\n']) {
        s.replace(['\r', '\n'], " ")
    } else {
        s
    }
}

/// A request as clients send it: an array of bulk strings (any bytes are
/// safe in them). For the binary's own small clients (healthcheck, cluster
/// assign).
pub fn encode_request(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_decision_fast_path_matches_the_crate() {
        let cases = [
            [1, 2, 3, -1, 5],
            [0, i64::MAX, 0, i64::MIN, 1_000_000_000_000],
            [0, 0, 0, 0, 0],
        ];
        for fields in cases {
            for protocol in [2, 3] {
                let mut fast = BytesMut::new();
                encode(Reply::decision(fields), protocol, &mut fast);
                let mut general = BytesMut::new();
                let array = Reply::Array(fields.iter().map(|&n| Reply::Int(n)).collect());
                encode(array, protocol, &mut general);
                assert_eq!(fast, general, "{fields:?} in RESP{protocol}");
            }
        }
    }

    #[test]
    fn replies_encode_in_both_protocols() {
        let reply = Reply::map([("a", Reply::Int(1)), ("b", Reply::Null)]);
        let mut out = BytesMut::new();
        encode(reply.clone(), 2, &mut out);
        assert_eq!(&out[..], b"*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$-1\r\n");
        out.clear();
        encode(reply, 3, &mut out);
        assert_eq!(&out[..], b"%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n_\r\n");
        out.clear();
        encode(Reply::decision([1, 2, 3, -1, 5]), 2, &mut out);
        assert_eq!(&out[..], b"*5\r\n:1\r\n:2\r\n:3\r\n:-1\r\n:5\r\n");
        out.clear();
        encode(Reply::decision([1, 2, 3, -1, 5]), 3, &mut out);
        assert_eq!(&out[..], b"*5\r\n:1\r\n:2\r\n:3\r\n:-1\r\n:5\r\n");
        out.clear();
        encode(Reply::Error("ERR a\r\nb".into()), 2, &mut out);
        assert_eq!(&out[..], b"-ERR a  b\r\n");
    }

    #[test]
    fn a_request_is_an_array_of_bulk_strings() {
        assert_eq!(
            encode_request(&[b"AUTH", b"p w\r\n"]),
            b"*2\r\n$4\r\nAUTH\r\n$5\r\np w\r\n\r\n".to_vec()
        );
    }
}
