//! Fuzzes the request decoder the way a connection drives it: one
//! [`Decoder`] per connection, bytes arriving in chunks on one buffer, and
//! after each chunk every complete request taken off the front until the
//! decoder answers `Incomplete` or fails (a failure closes the connection,
//! so decoding stops there). The decoder keeps its progress between calls,
//! so the chunk sizes exercise every point it may have to resume from.
//!
//! Beyond "never panics", each step checks what the connection loop relies
//! on: a request consumes input (so the loop cannot spin), `Incomplete`
//! consumes nothing, arguments respect the limits, and the buffer never
//! grows far beyond the bytes actually received — a claimed length is not a
//! licence to allocate it.
//!
//! And a differential check: the same input decoded at once, by a fresh
//! `Decoder` on one buffer holding all of it, must give the same requests,
//! each ending at the same offset, and end the same way (`Incomplete` with
//! the same bytes left, or the same error at the same offset), up to where
//! the chunked run stopped. The one legitimate difference is a line too
//! long to wait for (`InlineTooBig`, `CountTooLong`): whether its end
//! arrived before the limit was crossed depends on the read sizes, in Redis
//! as here; there the check is that the chunked run really had no end of
//! line buffered, and that the whole run found one further on.
#![no_main]

use bytes::{Bytes, BytesMut};
use cache_node::parse::{Decoded, Decoder, Limits, ProtocolError, RESERVE_AHEAD, decode};
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

/// What a run over the whole input gave.
#[derive(Debug, PartialEq)]
struct Run {
    /// Each request, with the input offset its frame ends at.
    requests: Vec<(usize, Vec<Bytes>)>,
    end: End,
}

#[derive(Debug, PartialEq)]
enum End {
    /// Every byte was read; the request starting at `at` is incomplete
    /// (`at` is the input's length when nothing is left over).
    Incomplete { at: usize },
    /// The request starting at `at` failed, with `buffered` bytes of it
    /// (and of what follows) received.
    Error {
        at: usize,
        buffered: usize,
        error: ProtocolError,
    },
}

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
    let chunked = run(body, chunk, &limits);
    if chunk < body.len() {
        // (Otherwise the chunked run was the whole run.)
        compare(body, &chunked, &run(body, body.len(), &limits));
    }
});

/// Feeds `body` in reads of `chunk` bytes to one decoder, as a connection.
fn run(body: &[u8], chunk: usize, limits: &Limits) -> Run {
    // The capacity a connection's buffer starts with.
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut decoder = Decoder::default();
    let mut out = Run {
        requests: Vec::new(),
        end: End::Incomplete { at: 0 },
    };
    let mut fed = 0usize;
    for piece in body.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        fed += piece.len();
        if let Some(end) = drain(&mut decoder, &mut buf, limits, fed, &mut out.requests) {
            out.end = end;
            return out;
        }
    }
    out.end = End::Incomplete {
        at: fed - buf.len(),
    };
    out
}

/// Decodes requests off `buf` until it is incomplete (`None`) or the
/// decoder fails (the error: the connection would close).
fn drain(
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    limits: &Limits,
    fed: usize,
    requests: &mut Vec<(usize, Vec<Bytes>)>,
) -> Option<End> {
    loop {
        let before = buf.to_vec();
        let result = decoder.decode(buf, limits);
        assert!(
            buf.capacity() <= 4 * (fed + SLACK),
            "buffer grew to {} bytes after receiving {fed}",
            buf.capacity()
        );
        match result {
            Err(error) => {
                return Some(End::Error {
                    at: fed - before.len(),
                    buffered: before.len(),
                    error,
                });
            }
            Ok(Decoded::Incomplete) => {
                assert_eq!(&buf[..], &before[..], "Incomplete consumed input");
                return None;
            }
            Ok(Decoded::Request(args)) => {
                let consumed = before.len() - buf.len();
                assert!(consumed > 0, "a request consumed nothing");
                assert_eq!(&buf[..], &before[consumed..], "the rest was altered");
                check_request(&before[..consumed], &args, limits);
                requests.push((fed - buf.len(), args));
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

/// The chunked run against the whole one, up to where the chunked run
/// stopped.
fn compare(body: &[u8], chunked: &Run, whole: &Run) {
    let End::Error {
        at,
        buffered,
        ref error,
    } = chunked.end
    else {
        // Both read everything: they must agree on everything.
        assert_eq!(chunked, whole, "chunked and whole runs differ");
        return;
    };
    let n = chunked.requests.len();
    assert!(
        whole.requests.len() >= n && whole.requests[..n] == chunked.requests[..],
        "requests differ before the chunked run's error {error:?} at {at}:\n\
         chunked {:?}\nwhole   {whole:?}",
        chunked.requests
    );
    // What the whole run gave for the bytes the chunked run failed on.
    let next = match whole.requests.get(n) {
        Some((end, _)) => Ok(*end),
        None => match &whole.end {
            End::Error {
                at: wat, error: w, ..
            } if *wat == at => Err(w.clone()),
            other => panic!(
                "the chunked run failed with {error:?} at {at}, the whole run ended {other:?}"
            ),
        },
    };
    if next.as_ref() == Err(error) {
        return;
    }
    // Only a line that was still unterminated when it crossed its limit
    // may end differently when more of it arrives at once.
    let seen = &body[at..at + buffered];
    match error {
        ProtocolError::InlineTooBig => {
            assert!(
                !seen.contains(&b'\n'),
                "InlineTooBig at {at} with a line end among the {buffered} bytes received"
            );
            let nl = body[at..].iter().position(|&b| b == b'\n');
            let nl = nl.unwrap_or_else(|| panic!("whole run: {next:?} for a line without end"));
            match next {
                Ok(end) => assert_eq!(end, at + nl + 1, "whole run: line end"),
                Err(ProtocolError::UnbalancedQuotes | ProtocolError::MultibulkLength) => {}
                Err(e) => panic!("whole run: {e:?} for a line of {} bytes", nl + 1),
            }
        }
        ProtocolError::CountTooLong => {
            assert!(
                !seen.windows(2).any(|w| w == b"\r\n"),
                "CountTooLong at {at} with a CRLF among the {buffered} bytes received"
            );
            assert_eq!(
                next,
                Err(ProtocolError::MultibulkLength),
                "whole run, for a count line longer than the chunked run waited for"
            );
        }
        _ => panic!(
            "the chunked run failed with {error:?} at {at}, the whole run gave {next:?} there"
        ),
    }
}
