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

/// Longest length line (`*<count>` or `$<len>`) awaited before giving up on
/// it, as Redis's `PROTO_INLINE_MAX_SIZE`.
const MAX_LENGTH_LINE: usize = 64 * 1024;

/// Tries to take one request off the front of `buf`, with no state kept
/// from earlier calls: an incomplete request is walked again from its start
/// on every call. A connection uses a [`Decoder`] instead.
pub fn decode(buf: &mut BytesMut, limits: &Limits) -> Result<Decoded, ProtocolError> {
    Decoder::default().decode(buf, limits)
}

/// A connection's decoder. It remembers how far an incomplete request was
/// decoded, so that a request arriving in many small reads costs time
/// linear in its size: walking it again from its start on every read made
/// a request of a million arguments quadratic, under the keyspace lock.
///
/// It keeps offsets into the caller's buffer rather than slices, so the
/// buffer may grow (and move) between calls, but must not lose bytes at
/// its front until a request comes out. Any outcome other than
/// `Incomplete` leaves the decoder ready for the next request.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Arguments of the multibulk request under way; 0 while none is.
    count: usize,
    /// Where the next argument's `$` starts or, once its length line has
    /// been read (`bulk` is set), its data.
    pos: usize,
    /// Where the data of the argument at `pos` ends.
    bulk: Option<usize>,
    /// Where the search for the end of the current line resumes; 0 until
    /// one attempt at the line came up short.
    scan: usize,
    /// The arguments complete so far, as `start..end` in the buffer.
    spans: Vec<(usize, usize)>,
}

/// What reading a length line gave.
enum Line {
    /// Its value, and where the next line starts.
    Len(i64, usize),
    /// The line is complete but not a valid length.
    Invalid,
    Incomplete,
}

impl Decoder {
    /// Tries to take one request off the front of `buf`, resuming where
    /// the previous call on the same buffer stopped.
    pub fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Decoded, ProtocolError> {
        if buf.len() < self.pos.max(self.scan) {
            // The buffer lost bytes behind our back, so the offsets mean
            // nothing; starting over beats slicing out of bounds.
            self.reset();
        }
        let result = self.step(buf, limits);
        if result.is_err() {
            self.reset();
        }
        result
    }

    fn step(&mut self, buf: &mut BytesMut, limits: &Limits) -> Result<Decoded, ProtocolError> {
        if self.count == 0 {
            match buf.first() {
                None => return Ok(Decoded::Incomplete),
                Some(b'*') => {}
                Some(_) => return self.decode_inline(buf, limits),
            }
            let (count, next) = match self.length_line(buf, 0) {
                Line::Len(n, next) => (n, next),
                Line::Invalid => return Err(ProtocolError::MultibulkLength),
                Line::Incomplete if buf.len() > MAX_LENGTH_LINE => {
                    return Err(ProtocolError::CountTooLong);
                }
                Line::Incomplete => return Ok(Decoded::Incomplete),
            };
            if count > limits.max_args as i64 {
                return Err(ProtocolError::MultibulkLength);
            }
            if count <= 0 {
                // `*0` and `*-1` are empty requests that Redis silently skips.
                let _ = buf.split_to(next);
                return Ok(Decoded::Request(Vec::new()));
            }
            self.count = count as usize;
            self.pos = next;
            // A claimed count is not a promise: grow with what arrives.
            self.spans.reserve(self.count.min(1024));
        }
        while self.spans.len() < self.count {
            let stop = match self.bulk {
                Some(stop) => stop,
                None => {
                    let at = self.pos;
                    match buf.get(at) {
                        None => return Ok(Decoded::Incomplete),
                        Some(b'$') => {}
                        Some(&other) => return Err(ProtocolError::ExpectedBulk(other as char)),
                    }
                    let (len, start) = match self.length_line(buf, at) {
                        Line::Len(n, next) => (n, next),
                        Line::Invalid => return Err(ProtocolError::BulkLength),
                        Line::Incomplete if buf.len() - at > MAX_LENGTH_LINE => {
                            return Err(ProtocolError::BulkLength);
                        }
                        Line::Incomplete => return Ok(Decoded::Incomplete),
                    };
                    if len < 0 || len as usize > limits.max_bulk_len {
                        return Err(ProtocolError::BulkLength);
                    }
                    self.pos = start;
                    let stop = start + len as usize;
                    self.bulk = Some(stop);
                    stop
                }
            };
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
            // Like Redis, the two bytes after the data are skipped unchecked.
            self.spans.push((self.pos, stop));
            self.bulk = None;
            self.pos = stop + 2;
        }
        let frame = buf.split_to(self.pos).freeze();
        let args = self.spans.iter().map(|&(a, b)| frame.slice(a..b)).collect();
        self.reset();
        Ok(Decoded::Request(args))
    }

    fn reset(&mut self) {
        self.count = 0;
        self.pos = 0;
        self.bulk = None;
        self.scan = 0;
        self.spans.clear();
        if self.spans.capacity() > 4096 {
            // Do not keep a huge request's argument list for the connection's life.
            self.spans = Vec::new();
        }
    }

    /// Reads the length line whose type byte (`*` or `$`) is at `at`.
    fn length_line(&mut self, buf: &[u8], at: usize) -> Line {
        let digits = at + 1;
        if self.scan == 0
            && let Some((n, cr)) = quick_len(buf, digits)
        {
            return Line::Len(n, cr + 2);
        }
        match find_crlf(buf, self.scan.max(digits)) {
            Ok(cr) => {
                self.scan = 0;
                parse_len(&buf[digits..cr]).map_or(Line::Invalid, |n| Line::Len(n, cr + 2))
            }
            Err(resume) => {
                self.scan = resume;
                Line::Incomplete
            }
        }
    }

    fn decode_inline(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Decoded, ProtocolError> {
        let from = self.scan;
        let found = buf[from..].iter().position(|&b| b == b'\n');
        examined(found.map_or(buf.len() - from, |p| p + 1));
        let Some(p) = found else {
            self.scan = buf.len();
            return if buf.len() > limits.max_inline_len {
                Err(ProtocolError::InlineTooBig)
            } else {
                Ok(Decoded::Incomplete)
            };
        };
        self.scan = 0;
        let nl = from + p;
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
}

/// The usual length line, read in one pass: up to 18 digits (so no
/// overflow and no sign) right before CRLF. Anything else is left to
/// `find_crlf` and `parse_len`, which decide as they always did.
fn quick_len(buf: &[u8], from: usize) -> Option<(i64, usize)> {
    let mut n: i64 = 0;
    for (i, &b) in buf.get(from..)?.iter().take(19).enumerate() {
        examined(1);
        match b {
            b'0'..=b'9' if i < 18 => n = n * 10 + i64::from(b - b'0'),
            b'\r' if i > 0 && buf.get(from + i + 1) == Some(&b'\n') => return Some((n, from + i)),
            _ => return None,
        }
    }
    None
}

/// Finds the first `\r\n` at or after `from` and returns the index of its
/// `\r`; when there is none yet, the error is where to resume the search
/// once more bytes arrived (a trailing `\r` may yet get its `\n`).
fn find_crlf(buf: &[u8], from: usize) -> Result<usize, usize> {
    let mut i = from;
    while let Some(rest) = buf.get(i..) {
        let Some(p) = rest.iter().position(|&b| b == b'\r') else {
            examined(rest.len());
            break;
        };
        examined(p + 1);
        let cr = i + p;
        match buf.get(cr + 1) {
            Some(b'\n') => return Ok(cr),
            Some(_) => i = cr + 1,
            None => return Err(cr),
        }
    }
    Err(buf.len())
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

#[cfg(test)]
thread_local! {
    /// Bytes the line scanners looked at, for tests of the decoder's cost.
    static EXAMINED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[inline(always)]
fn examined(_n: usize) {
    #[cfg(test)]
    EXAMINED.with(|c| c.set(c.get() + _n));
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

    fn examined_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
        EXAMINED.with(|c| c.set(0));
        let out = f();
        (out, EXAMINED.with(std::cell::Cell::get))
    }

    fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut wire = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            wire.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            wire.extend_from_slice(a);
            wire.extend_from_slice(b"\r\n");
        }
        wire
    }

    /// Feeds `wire` in the pieces that `cuts` make, taking every complete
    /// request off the buffer after each piece, as a connection does.
    /// Returns the requests and the error that ended decoding, if any.
    fn decode_in_pieces(
        wire: &[u8],
        cuts: &[usize],
        mut decode: impl FnMut(&mut BytesMut) -> Result<Decoded, ProtocolError>,
    ) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        for &cut in cuts.iter().chain([&wire.len()]) {
            buf.extend_from_slice(&wire[fed..cut]);
            fed = cut;
            loop {
                match decode(&mut buf) {
                    Ok(Decoded::Request(args)) => out.push(args),
                    Ok(Decoded::Incomplete) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    #[test]
    fn a_huge_request_fed_byte_by_byte_decodes_in_linear_time() {
        let args: Vec<Vec<u8>> = (0..100_000).map(|i| format!("a{i}").into_bytes()).collect();
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let wire = encode(&refs);
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let (got, work) = examined_during(|| {
            for (i, &b) in wire.iter().enumerate() {
                buf.extend_from_slice(&[b]);
                match d.decode(&mut buf, &Limits::default()).unwrap() {
                    Decoded::Incomplete => assert!(i + 1 < wire.len(), "complete at the end"),
                    Decoded::Request(got) => {
                        assert_eq!(i + 1, wire.len(), "complete only at the end");
                        return got;
                    }
                }
            }
            unreachable!("never completed")
        });
        assert!(buf.is_empty());
        assert_eq!(got, args);
        // Each byte of a length line is looked at by the quick path and at
        // most once more by the search that resumes; data bytes not at all.
        // Re-walking the request on every call would cost over 10^11 here.
        assert!(
            work <= 2 * wire.len(),
            "{work} bytes examined for {}",
            wire.len()
        );
        // Zero-copy: the arguments sit in one buffer, laid out as on the wire.
        for (i, pair) in got.windows(2).enumerate() {
            let gap = format!("\r\n${}\r\n", args[i + 1].len()).len();
            assert_eq!(
                pair[1].as_ptr() as usize,
                pair[0].as_ptr() as usize + pair[0].len() + gap
            );
        }
    }

    #[test]
    fn the_decoder_resumes_where_it_stopped() {
        let wire = encode(&[b"SET", b"key", &[b'v'; 300]]);
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut last = 0;
        for piece in wire.chunks(3) {
            buf.extend_from_slice(piece);
            let ((), work) = examined_during(|| {
                if let Decoded::Request(got) = d.decode(&mut buf, &Limits::default()).unwrap() {
                    assert_eq!(got[2].len(), 300);
                }
            });
            // A call costs what arrived since the last one, plus the few
            // bytes of a length line the quick path tries again.
            assert!(
                work <= piece.len() + 8,
                "{work} bytes examined for {}",
                piece.len()
            );
            assert!(d.pos >= last || d.count == 0, "position went back");
            last = d.pos;
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_pipeline_is_scanned_once_and_its_data_not_at_all() {
        let mut wire = Vec::new();
        for i in 0..1000 {
            let key = format!("key:{i}");
            wire.extend(encode(&[b"SET", key.as_bytes(), &[b'x'; 100]]));
            wire.extend(encode(&[b"GET", key.as_bytes()]));
        }
        let (reqs, work) = examined_during(|| decode_all(&wire).unwrap());
        assert_eq!(reqs.len(), 2000);
        assert_eq!(reqs[1998][2].len(), 100);
        assert_eq!(reqs[1999][1], Bytes::from("key:999"));
        // Per request: the digits and `\r` of `*3` and of each `$n`.
        let headers: usize = reqs
            .iter()
            .map(|r| {
                2 + r
                    .iter()
                    .map(|a| a.len().to_string().len() + 1)
                    .sum::<usize>()
            })
            .sum();
        assert!(
            work <= headers,
            "{work} bytes examined, {headers} in length lines"
        );
    }

    #[test]
    fn a_long_inline_line_fed_byte_by_byte_is_scanned_once() {
        let mut line = vec![b'a'; 60 * 1024];
        line.extend_from_slice(b"\r\n");
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let (got, work) = examined_during(|| {
            let mut got = None;
            for &b in &line {
                buf.extend_from_slice(&[b]);
                if let Decoded::Request(args) = d.decode(&mut buf, &Limits::default()).unwrap() {
                    got = Some(args);
                }
            }
            got
        });
        assert_eq!(got.unwrap()[0].len(), 60 * 1024);
        assert_eq!(work, line.len());

        let mut buf = BytesMut::new();
        let mut d = Decoder::default();
        let too_big = (0..).find_map(|_| {
            buf.extend_from_slice(b"a");
            d.decode(&mut buf, &Limits::default()).err()
        });
        assert_eq!(too_big, Some(ProtocolError::InlineTooBig));
        assert_eq!(buf.len(), 64 * 1024 + 1);
    }

    #[test]
    fn length_lines_wait_for_their_end_like_before() {
        // Malformed length lines still wait for CRLF before failing, and
        // fail on length when it never comes, whatever the read sizes.
        for (wire, err) in [
            (&b"*1\r\n$3x\r\n"[..], ProtocolError::BulkLength),
            (b"*1\r\n$3\rx\r\n", ProtocolError::BulkLength),
            (b"*1x\r\n", ProtocolError::MultibulkLength),
            (b"*-\r\n", ProtocolError::MultibulkLength),
            (b"*\r\n", ProtocolError::MultibulkLength),
            (b"*1\r\n$\r\n", ProtocolError::BulkLength),
            (b"*1\r\n$-1\r\n", ProtocolError::BulkLength),
            (
                b"*1\r\n$0000000000000000000003\r\n",
                ProtocolError::BulkLength,
            ),
        ] {
            for cut in 1..wire.len() {
                let (reqs, e) = decode_in_pieces(wire, &[cut], |b| decode(b, &Limits::default()));
                assert!(reqs.is_empty());
                assert_eq!(e.as_ref(), Some(&err), "{wire:?} cut at {cut}");
                let mut d = Decoder::default();
                let got = decode_in_pieces(wire, &[cut], |b| d.decode(b, &Limits::default()));
                assert_eq!(got, (reqs, e), "{wire:?} cut at {cut}");
            }
        }
        assert_eq!(
            decode_all(b"*1\r\n$000000000000000003\r\nabc\r\n").unwrap()[0],
            vec![Bytes::from("abc")]
        );
        let mut long = b"*1\r\n$".to_vec();
        long.resize(64 * 1024 + 6, b'1');
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut outcome = Ok(Decoded::Incomplete);
        for piece in long.chunks(1000) {
            buf.extend_from_slice(piece);
            outcome = d.decode(&mut buf, &Limits::default());
        }
        assert_eq!(outcome, Err(ProtocolError::BulkLength));
        let mut buf = BytesMut::from(&b"*"[..]);
        buf.resize(64 * 1024 + 1, b'1');
        assert_eq!(
            Decoder::default().decode(&mut buf, &Limits::default()),
            Err(ProtocolError::CountTooLong)
        );
    }

    /// Requests, valid or not, as they could come off a socket.
    fn stream() -> impl Strategy<Value = Vec<u8>> {
        let multibulk =
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..6)
                .prop_map(|args| encode(&args.iter().map(Vec::as_slice).collect::<Vec<_>>()));
        let inline = "[a-z \"'\\\\]{0,12}(\r\n|\n)".prop_map(String::into_bytes);
        let soup = proptest::collection::vec(
            proptest::sample::select(vec![
                "*", "$", "\r\n", "\r", "\n", "0", "1", "3", "-", "a", " ", "\"", "*1\r\n",
                "*2\r\n", "$1\r\n", "$3\r\n",
            ]),
            1..12,
        )
        .prop_map(|tokens| tokens.concat().into_bytes());
        proptest::collection::vec(prop_oneof![4 => multibulk, 2 => inline, 1 => soup], 0..8)
            .prop_map(|parts| parts.concat())
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

        #[test]
        fn split_streams_decode_as_whole_ones(wire in stream(), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..12)) {
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.sort_unstable();
            let whole = decode_in_pieces(&wire, &[], |b| decode(b, &Limits::default()));
            let mut d = Decoder::default();
            let split = decode_in_pieces(&wire, &cuts, |b| d.decode(b, &Limits::default()));
            prop_assert_eq!(&split, &whole);
            // And as the stateless decoder, walking again on every call, saw them.
            let again = decode_in_pieces(&wire, &cuts, |b| decode(b, &Limits::default()));
            prop_assert_eq!(&again, &whole);
        }
    }
}
