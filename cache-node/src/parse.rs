//! Decoding requests from a client's input buffer.
//!
//! A request is either a RESP array of bulk strings (what every client
//! library sends) or an inline command (what people type into telnet).
//! Decoding runs over the buffered bytes without copying arguments: each one
//! becomes a slice of the frozen buffer. "Incomplete" is a normal outcome —
//! the caller reads more and tries again — while malformed or oversized input
//! is an error that ends the connection after the error reply, as in Redis.

use bytes::{Bytes, BytesMut};

/// Limits that keep a single client from exhausting the node.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk string accepted (Redis's `proto-max-bulk-len`).
    pub max_bulk_len: usize,
    /// Most arguments in one request (Redis allows 1024*1024).
    pub max_args: usize,
    /// Longest inline request (Redis: 64 KiB).
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// Most buffer space reserved ahead of the data for an incomplete bulk,
/// beyond the size of what is already buffered.
pub const RESERVE_AHEAD: usize = 64 * 1024;

/// A protocol violation, with the exact message Redis sends before it closes
/// the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("ERR Protocol error: invalid multibulk length")]
    MultibulkLength,
    #[error("ERR Protocol error: invalid bulk length")]
    BulkLength,
    #[error("ERR Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("ERR Protocol error: too big inline request")]
    InlineTooBig,
    #[error("ERR Protocol error: too big mbulk count string")]
    CountTooLong,
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
}

/// The outcome of one decoding attempt.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// A whole request; its bytes have been removed from the buffer. An empty
    /// argument list (a blank inline line) is skipped by the caller.
    Request(Vec<Bytes>),
    /// More bytes are needed; nothing was consumed.
    Incomplete,
}

/// Tries to take one request off the front of `buf`.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Decoded, ProtocolError> {
    if buf.is_empty() {
        return Ok(Decoded::Incomplete);
    }
    if buf[0] == b'*' {
        decode_multibulk(buf, limits)
    } else {
        decode_inline(buf, limits)
    }
}

/// Finds `\r\n` at or after `from`; returns the index of `\r`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < buf.len() {
        match buf[i..].iter().position(|&b| b == b'\r') {
            Some(p) if i + p + 1 < buf.len() => {
                if buf[i + p + 1] == b'\n' {
                    return Some(i + p);
                }
                i += p + 1;
            }
            _ => return None,
        }
    }
    None
}

/// Parses a length line's digits (after the type byte). Redis accepts a
/// leading minus only to express "null", which is invalid in requests.
fn parse_len(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let (neg, digits) = match digits[0] {
        b'-' => (true, &digits[1..]),
        _ => (false, digits),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i64::from(d - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

fn decode_multibulk(buf: &mut BytesMut, limits: &Limits) -> Result<Decoded, ProtocolError> {
    // Phase one: walk the buffer to check that the whole request is there,
    // validating lengths on the way, without allocating.
    let Some(end) = find_crlf(buf, 1) else {
        return if buf.len() > 64 * 1024 {
            Err(ProtocolError::CountTooLong)
        } else {
            Ok(Decoded::Incomplete)
        };
    };
    let count = parse_len(&buf[1..end]).ok_or(ProtocolError::MultibulkLength)?;
    if count > limits.max_args as i64 {
        return Err(ProtocolError::MultibulkLength);
    }
    if count <= 0 {
        // `*0` and `*-1` are empty requests that Redis silently skips.
        let _ = buf.split_to(end + 2);
        return Ok(Decoded::Request(Vec::new()));
    }
    let count = count as usize;
    let mut pos = end + 2;
    let mut spans = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        if pos >= buf.len() {
            return Ok(Decoded::Incomplete);
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError::ExpectedBulk(buf[pos] as char));
        }
        let Some(end) = find_crlf(buf, pos + 1) else {
            return if buf.len() - pos > 64 * 1024 {
                Err(ProtocolError::BulkLength)
            } else {
                Ok(Decoded::Incomplete)
            };
        };
        let len = parse_len(&buf[pos + 1..end]).ok_or(ProtocolError::BulkLength)?;
        if len < 0 || len as usize > limits.max_bulk_len {
            return Err(ProtocolError::BulkLength);
        }
        let start = end + 2;
        let stop = start + len as usize;
        if stop + 2 > buf.len() {
            // Make room for the rest of the bulk, but never more than the
            // client has already sent (or `RESERVE_AHEAD`): a claimed length
            // is not a promise, and reserving it up front would let a few
            // connections announcing 512 MB bulks exhaust the node. The
            // buffer still grows geometrically while a big value streams in.
            let missing = stop + 2 - buf.len();
            buf.reserve(missing.min(buf.len().max(RESERVE_AHEAD)));
            return Ok(Decoded::Incomplete);
        }
        spans.push((start, stop));
        pos = stop + 2;
    }
    // Phase two: the request is complete; slice the arguments out of it.
    let frame = buf.split_to(pos).freeze();
    Ok(Decoded::Request(
        spans.into_iter().map(|(a, b)| frame.slice(a..b)).collect(),
    ))
}

fn decode_inline(buf: &mut BytesMut, limits: &Limits) -> Result<Decoded, ProtocolError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > limits.max_inline_len {
            Err(ProtocolError::InlineTooBig)
        } else {
            Ok(Decoded::Incomplete)
        };
    };
    let line = buf.split_to(nl + 1);
    let mut text = &line[..nl];
    if text.last() == Some(&b'\r') {
        text = &text[..text.len() - 1];
    }
    let args = split_inline(text)?;
    if args.len() > limits.max_args {
        return Err(ProtocolError::MultibulkLength);
    }
    Ok(Decoded::Request(args))
}

/// Splits an inline command line like Redis's `sdssplitargs`: whitespace
/// separates arguments; double quotes allow `\n`, `\xHH` and other escapes;
/// single quotes allow `\'`.
fn split_inline(line: &[u8]) -> Result<Vec<Bytes>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while i < line.len() && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut cur = Vec::new();
        match line[i] {
            b'"' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\')
                            if i + 3 < line.len()
                                && line[i + 1] == b'x'
                                && line[i + 2].is_ascii_hexdigit()
                                && line[i + 3].is_ascii_hexdigit() =>
                        {
                            let hex = std::str::from_utf8(&line[i + 2..i + 4]).expect("ascii hex");
                            cur.push(u8::from_str_radix(hex, 16).expect("checked hex"));
                            i += 4;
                        }
                        Some(b'\\') if i + 1 < line.len() => {
                            cur.push(match line[i + 1] {
                                b'n' => b'\n',
                                b'r' => b'\r',
                                b't' => b'\t',
                                b'b' => 8,
                                b'a' => 7,
                                other => other,
                            });
                            i += 2;
                        }
                        Some(&b) => {
                            cur.push(b);
                            i += 1;
                        }
                    }
                }
                if i < line.len() && !line[i].is_ascii_whitespace() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
            }
            b'\'' => {
                i += 1;
                loop {
                    match line.get(i) {
                        None => return Err(ProtocolError::UnbalancedQuotes),
                        Some(b'\'') => {
                            i += 1;
                            break;
                        }
                        Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                            cur.push(b'\'');
                            i += 2;
                        }
                        Some(&b) => {
                            cur.push(b);
                            i += 1;
                        }
                    }
                }
                if i < line.len() && !line[i].is_ascii_whitespace() {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
            }
            _ => {
                while i < line.len() && !line[i].is_ascii_whitespace() {
                    cur.push(line[i]);
                    i += 1;
                }
            }
        }
        args.push(Bytes::from(cur));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Decoded::Request(args) = decode(&mut buf, &Limits::default())? {
            out.push(args);
        }
        Ok(out)
    }

    #[test]
    fn multibulk_requests_decode_and_pipeline() {
        let reqs = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(
            reqs,
            vec![
                vec![Bytes::from("GET"), Bytes::from("k")],
                vec![Bytes::from("PING")]
            ]
        );
    }

    #[test]
    fn every_prefix_of_a_request_is_incomplete() {
        let req = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
        for cut in 0..req.len() {
            let mut buf = BytesMut::from(&req[..cut]);
            assert_eq!(
                decode(&mut buf, &Limits::default()),
                Ok(Decoded::Incomplete),
                "cut at {cut}"
            );
            assert_eq!(buf.len(), cut, "nothing consumed");
        }
        assert_eq!(decode_all(req).unwrap()[0][2], Bytes::from("va\r\nl"));
    }

    #[test]
    fn bad_lengths_are_protocol_errors() {
        assert_eq!(decode_all(b"*x\r\n"), Err(ProtocolError::MultibulkLength));
        assert_eq!(
            decode_all(b"*2000000\r\n"),
            Err(ProtocolError::MultibulkLength)
        );
        assert_eq!(decode_all(b"*1\r\n$-5\r\n"), Err(ProtocolError::BulkLength));
        assert_eq!(
            decode_all(b"*1\r\n$99999999999999999999999\r\n"),
            Err(ProtocolError::BulkLength)
        );
        assert_eq!(
            decode_all(b"*1\r\n:5\r\n"),
            Err(ProtocolError::ExpectedBulk(':'))
        );
        let small = Limits {
            max_bulk_len: 10,
            ..Limits::default()
        };
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(decode(&mut buf, &small), Err(ProtocolError::BulkLength));
    }

    #[test]
    fn inline_commands_split_like_redis() {
        assert_eq!(
            decode_all(b"SET a \"b c\\x41\\n\" 'd\\'e'\r\n").unwrap()[0],
            vec![
                Bytes::from("SET"),
                Bytes::from("a"),
                Bytes::from("b cA\n"),
                Bytes::from("d'e")
            ]
        );
        assert_eq!(decode_all(b"\r\n").unwrap()[0], Vec::<Bytes>::new());
        assert_eq!(
            decode_all(b"GET \"unterminated\r\n"),
            Err(ProtocolError::UnbalancedQuotes)
        );
        let mut big = BytesMut::from(&vec![b'a'; 70 * 1024][..]);
        assert_eq!(
            decode(&mut big, &Limits::default()),
            Err(ProtocolError::InlineTooBig)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_all(&input);
        }

        #[test]
        fn encoded_requests_round_trip(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8)) {
            let mut wire = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                wire.extend_from_slice(a);
                wire.extend_from_slice(b"\r\n");
            }
            let got = decode_all(&wire).unwrap();
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].iter().map(|b| b.to_vec()).collect::<Vec<_>>(), args);
        }
    }
}
