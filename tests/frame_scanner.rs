//! The frame scanner against the reference decoder (header checks plus the
//! redis-protocol crate): on every input they take the same requests off
//! the buffer, leave the same bytes, and fail with the same error.

use bytes::BytesMut;
use proptest::prelude::*;
use tollgate::frame::{Frame, Limits, next_request, reference_request};

type Decoder = fn(&mut BytesMut, &Limits) -> Result<Option<Frame>, tollgate::frame::ProtocolError>;

/// Everything a decoder takes off `input`, what it leaves, and how it ends.
fn decode_all(
    decode: Decoder,
    input: &[u8],
    limits: &Limits,
) -> (Vec<Frame>, Vec<u8>, Option<String>) {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match decode(&mut buf, limits) {
            Ok(Some(frame)) => out.push(frame),
            Ok(None) => return (out, buf.to_vec(), None),
            Err(e) => return (out, buf.to_vec(), Some(e.to_string())),
        }
    }
}

fn agree(input: &[u8], max_arg: usize) -> Result<(), TestCaseError> {
    let limits = Limits {
        max_arg_bytes: max_arg,
        max_query_buffer_bytes: 1 << 20,
    };
    let fast = decode_all(next_request, input, &limits);
    let reference = decode_all(reference_request, input, &limits);
    prop_assert_eq!(
        fast,
        reference,
        "input {:?}",
        String::from_utf8_lossy(input)
    );
    Ok(())
}

/// A well-formed request of these arguments.
fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Pipelines of well-formed requests, then damaged: bytes overwritten with
/// the protocol's own characters, bytes inserted, the end cut off.
fn pipelines() -> impl Strategy<Value = Vec<u8>> {
    let arg = prop::collection::vec(any::<u8>(), 0..12);
    let request = prop::collection::vec(arg, 0..5).prop_map(|args| encode(&args));
    let pipeline = prop::collection::vec(request, 1..4).prop_map(|r| r.concat());
    let special = prop::sample::select(&b"*$\r\n-+:0123456789 x"[..]);
    let edits = prop::collection::vec((any::<prop::sample::Index>(), special, 0..3u8), 0..4);
    (pipeline, edits, any::<prop::sample::Index>()).prop_map(|(mut bytes, edits, cut)| {
        for (at, byte, how) in edits {
            let i = at.index(bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => {}
            }
        }
        let keep = cut.index(bytes.len() + 1).max(bytes.len() / 2);
        bytes.truncate(keep);
        bytes
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn scanner_agrees_with_the_crate_on_requests(input in pipelines(), max_arg in 0usize..16) {
        agree(&input, max_arg)?;
    }

    #[test]
    fn scanner_agrees_with_the_crate_on_any_bytes(
        body in prop::collection::vec(any::<u8>(), 0..40),
        max_arg in 0usize..16,
    ) {
        let mut input = b"*".to_vec();
        input.extend_from_slice(&body);
        agree(&input, max_arg)?;
    }
}

#[test]
fn scanner_agrees_on_the_edges() {
    let cases: &[&[u8]] = &[
        b"*0\r\n",
        b"*-1\r\n",
        b"*-5\r\n",
        b"*1\r\n$-1\r\n",
        b"*01\r\n$1\r\na\r\n",
        b"*1\r\n$01\r\na\r\n",
        b"*+1\r\n$1\r\na\r\n",
        b"*1\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n",
        b"*1\r\n$1048577\r\n",
        b"*1048577\r\n",
        b"*1048576\r\n",
        b"*1\r\n$999999999999999999\r\n",
        b"*1\r\n$9999999999999999999\r\n",
        b"*2\r\n$1\r\na\r\n*1\r\n",
        b"*1\r\n$16\r\n0123456789abcdef\r\n",
        b"*1\r\n$17\r\n0123456789abcdefg\r\n",
    ];
    for input in cases {
        agree(input, 16).unwrap();
        for cut in 0..input.len() {
            agree(&input[..cut], 16).unwrap();
        }
    }
}
