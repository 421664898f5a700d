//! Fuzzes the request decoder the way a connection drives it: bytes arrive
//! in chunks on one buffer, and after each chunk every complete request is
//! taken off the front until the decoder answers `Incomplete` or fails (a
//! failure closes the connection, so decoding stops there).
//!
//! Beyond "never panics", each step checks what the connection loop relies
//! on: a request consumes input (so the loop cannot spin), `Incomplete`
//! consumes nothing, arguments respect the limits, and the buffer never
//! grows far beyond the bytes actually received — a claimed length is not a
//! licence to allocate it.
#![no_main]

use bytes::{Bytes, BytesMut};
use cache_node::parse::{Decoded, Limits, RESERVE_AHEAD, decode};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: cache_node_fuzz::Limited = cache_node_fuzz::Limited;

/// Small limits, so the fuzzer reaches every limit check with short inputs.
const SMALL: Limits = Limits {
    max_bulk_len: 64,
    max_args: 8,
    max_inline_len: 128,
};

/// Read sizes (the first byte picks one): from a byte at a time, which
/// stops at every possible cut, to the whole input at once.
const CHUNKS: [usize; 8] = [1, 2, 3, 7, 16, 64, 1024, usize::MAX];

/// How far the decoder may reserve ahead of the data received; the bound
/// below allows for amortised doubling on top.
const SLACK: usize = RESERVE_AHEAD;

fuzz_target!(|data: &[u8]| {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let limits = if head & 1 == 0 {
        SMALL
    } else {
        Limits::default()
    };
    let chunk = CHUNKS[usize::from(head >> 1) & 7].min(body.len().max(1));
    // The capacity a connection's buffer starts with.
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut fed = 0usize;
    for piece in body.chunks(chunk) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        if !drain(&mut buf, &limits, fed) {
            return;
        }
    }
});

/// Decodes requests off `buf` until it is incomplete (true) or the decoder
/// fails (false: the connection would close).
fn drain(buf: &mut BytesMut, limits: &Limits, fed: usize) -> bool {
    loop {
        let before = buf.to_vec();
        let result = decode(buf, limits);
        assert!(
            buf.capacity() <= 4 * (fed + SLACK),
            "buffer grew to {} bytes after receiving {fed}",
            buf.capacity()
        );
        match result {
            Err(_) => return false,
            Ok(Decoded::Incomplete) => {
                assert_eq!(&buf[..], &before[..], "Incomplete consumed input");
                return true;
            }
            Ok(Decoded::Request(args)) => {
                let consumed = before.len() - buf.len();
                assert!(consumed > 0, "a request consumed nothing");
                assert_eq!(&buf[..], &before[consumed..], "the rest was altered");
                check_request(&before[..consumed], &args, limits);
            }
        }
    }
}

fn check_request(frame: &[u8], args: &[Bytes], limits: &Limits) {
    assert!(args.len() <= limits.max_args, "{} arguments", args.len());
    let total: usize = args.iter().map(Bytes::len).sum();
    assert!(total <= frame.len(), "arguments longer than their frame");
    if frame[0] != b'*' {
        // Inline: bounded by its line; escapes only shorten.
        return;
    }
    for a in args {
        assert!(a.len() <= limits.max_bulk_len, "bulk of {} bytes", a.len());
    }
    // A multibulk request round-trips through its canonical encoding.
    let mut wire = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        wire.extend_from_slice(a);
        wire.extend_from_slice(b"\r\n");
    }
    let mut again = BytesMut::from(&wire[..]);
    match decode(&mut again, limits) {
        Ok(Decoded::Request(same)) => {
            assert_eq!(same, args, "re-encoded request decodes differently");
            assert!(again.is_empty(), "re-encoded request left bytes behind");
        }
        other => panic!("re-encoded request does not decode: {other:?}"),
    }
}
