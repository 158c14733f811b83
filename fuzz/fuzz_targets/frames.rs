//! The request decoder on whole pipelined buffers, fed in pieces split at
//! points the input chooses to one reader (which resumes a cut request):
//! it never panics, and splitting changes nothing (the same requests, then
//! the same error or the same leftover).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tollgate::frame::{Frame, Limits, Reader};

const LIMITS: Limits = Limits::new(1 << 16, 1 << 20);

/// Decodes everything `chunks` deliver, as a connection reads them.
fn decode(chunks: &[&[u8]]) -> (Vec<Frame>, Option<String>) {
    // One reader across the reads, as a connection keeps one: a request
    // cut between reads resumes where it stopped.
    let mut reader = Reader::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            match reader.next(&mut buf, &LIMITS) {
                Ok(Some(r)) => out.push(r),
                Ok(None) => break,
                Err(e) => return (out, Some(e.to_string())),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks how many split points the next bytes name.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let cuts = usize::from(n % 8).min(rest.len());
    let (points, input) = rest.split_at(cuts);
    let mut at: Vec<usize> = points
        .iter()
        .map(|&p| usize::from(p) * input.len() / 256)
        .collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for a in at {
        chunks.push(&input[from..a]);
        from = a;
    }
    chunks.push(&input[from..]);
    let whole = decode(&[input]);
    let pieces = decode(&chunks);
    assert_eq!(
        whole, pieces,
        "splitting at {chunks:?} changed the decoding"
    );
    for r in &whole.0 {
        assert!(r.args().iter().all(|a| a.len() <= LIMITS.max_arg_bytes));
    }
});
