//! The frame scanner (the fast path of `next_request`) against the
//! reference decoder (header checks plus the redis-protocol crate): on any
//! input, with any argument limit, they take the same requests, leave the
//! same bytes and fail with the same error.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tollgate::frame::{Frame, Limits, ProtocolError, next_request, reference_request};

type Decoder = fn(&mut BytesMut, &Limits) -> Result<Option<Frame>, ProtocolError>;

fn decode_all(
    decode: Decoder,
    input: &[u8],
    limits: &Limits,
) -> (Vec<Frame>, BytesMut, Option<String>) {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match decode(&mut buf, limits) {
            Ok(Some(frame)) => out.push(frame),
            Ok(None) => return (out, buf, None),
            Err(e) => return (out, buf, Some(e.to_string())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the argument limit (0 to 255 bytes).
    let Some((&max_arg, input)) = data.split_first() else {
        return;
    };
    let limits = Limits::new(usize::from(max_arg), 1 << 20);
    assert_eq!(
        decode_all(next_request, input, &limits),
        decode_all(reference_request, input, &limits),
        "the scanner and the reference disagree"
    );
});
