//! The frame scanner against the reference decoder (header checks plus the
//! redis-protocol crate): on every input they take the same requests off
//! the buffer, leave the same bytes, and fail with the same error.

mod common;

use bytes::BytesMut;
use proptest::prelude::*;
use tollgate::frame::{Frame, Limits, Reader, next_request, reference_request};

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

/// What one [`Reader`] takes off `input` arriving in pieces of `piece`
/// bytes (a connection's reads), what it leaves, and how it ends.
fn decode_in_pieces(
    input: &[u8],
    piece: usize,
    limits: &Limits,
) -> (Vec<Frame>, Vec<u8>, Option<String>) {
    let mut reader = Reader::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        buf.extend_from_slice(chunk);
        loop {
            match reader.next(&mut buf, limits) {
                Ok(Some(frame)) => out.push(frame),
                Ok(None) => break,
                Err(e) => return (out, buf.to_vec(), Some(e.to_string())),
            }
        }
    }
    (out, buf.to_vec(), None)
}

fn agree(input: &[u8], max_arg: usize) -> Result<(), TestCaseError> {
    let after_auth = Limits::new(max_arg, 1 << 20);
    for limits in [after_auth, after_auth.before_auth()] {
        let reference = decode_all(reference_request, input, &limits);
        let fast = decode_all(next_request, input, &limits);
        let shown = String::from_utf8_lossy(input);
        prop_assert_eq!(&fast, &reference, "input {:?}", shown);
        // Arriving in pieces, resumed where each read stopped: the same
        // requests and the same error (an error may come before the rest
        // has arrived, so what is left then is not compared).
        for piece in [1, 3, 7] {
            let (frames, rest, error) = decode_in_pieces(input, piece, &limits);
            prop_assert_eq!(
                &frames,
                &reference.0,
                "input {:?} in pieces of {}",
                shown,
                piece
            );
            prop_assert_eq!(
                &error,
                &reference.2,
                "input {:?} in pieces of {}",
                shown,
                piece
            );
            if error.is_none() {
                prop_assert_eq!(&rest, &reference.1);
            }
        }
    }
    Ok(())
}

/// A well-formed request of these arguments.
fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    common::request(&args)
}

/// Pipelines of well-formed requests, then damaged: bytes overwritten with
/// the protocol's own characters, bytes inserted, the end cut off.
fn pipelines() -> impl Strategy<Value = Vec<u8>> {
    let arg = prop::collection::vec(any::<u8>(), 0..12);
    let request = prop::collection::vec(arg, 0..5).prop_map(|args| encode(&args));
    let pipeline = prop::collection::vec(request, 1..4).prop_map(|r| r.concat());
    // Some with more arguments than a client may send before AUTH.
    let many = prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3), 9..13)
        .prop_map(|args| encode(&args));
    let pipeline = prop_oneof![4 => pipeline, 1 => many];
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
        b"*-2\r\n*1\r\n$1\r\na\r\n",
        b"*0\r\n*-1\r\n",
    ];
    for input in cases {
        agree(input, 16).unwrap();
        for cut in 0..input.len() {
            agree(&input[..cut], 16).unwrap();
        }
    }
}

/// Redis ignores an array of zero or fewer arguments; so does tollgate (the
/// crate's decoder used to answer `*-2` with its own internal words).
#[test]
fn empty_and_negative_arrays_are_empty_requests() {
    let limits = Limits::new(16, 1 << 20);
    let (frames, rest, error) = decode_all(
        next_request,
        b"*-2\r\n*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
        &limits,
    );
    assert_eq!(error, None);
    assert!(rest.is_empty());
    assert_eq!(frames.len(), 4);
    assert!(frames[..3].iter().all(Frame::is_empty));
    assert_eq!(frames[3].args().to_vec(), vec![&b"PING"[..]]);
}

/// Before AUTH, Redis's limits and words: 10 arguments of 16 KiB at most.
#[test]
fn requests_before_auth_are_small() {
    let limits = Limits::new(1 << 20, 1 << 26).before_auth();
    let ten = encode(&vec![b"a".to_vec(); 10]);
    assert_eq!(decode_all(next_request, &ten, &limits).0.len(), 1);
    let eleven = encode(&vec![b"a".to_vec(); 11]);
    assert_eq!(
        decode_all(next_request, &eleven[..5], &limits).2.as_deref(),
        Some("ERR Protocol error: unauthenticated multibulk length")
    );
    let big = format!("*1\r\n${}\r\n", 16 * 1024 + 1);
    assert_eq!(
        decode_all(next_request, big.as_bytes(), &limits)
            .2
            .as_deref(),
        Some("ERR Protocol error: unauthenticated bulk length")
    );
    let fits = encode(&[vec![b'x'; 16 * 1024]]);
    assert_eq!(decode_all(next_request, &fits, &limits).0.len(), 1);
}
