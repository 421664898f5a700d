//! Replies and their encoding on the wire, in RESP2 or RESP3.
//!
//! Handlers build a [`Reply`]; the connection encodes it for the protocol the
//! client chose with `HELLO`. Types that only RESP3 has (maps, sets, doubles,
//! booleans, null, push) fall back to their RESP2 shapes the way Redis does.

use bytes::Bytes;

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Resp2,
    Resp3,
}

/// A reply to a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Simple(&'static str),
    Status(String),
    /// An error line, including its prefix (`ERR`, `WRONGTYPE`, `MOVED`, ...).
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    Null,
    /// `*-1` in RESP2 (a missing array), `_` in RESP3.
    NullArray,
    Array(Vec<Reply>),
    Map(Vec<(Reply, Reply)>),
    Set(Vec<Reply>),
    Double(f64),
    Boolean(bool),
    /// Verbatim text (`=` in RESP3, a bulk string in RESP2), e.g. INFO, CLIENT INFO.
    Verbatim(String),
    Push(Vec<Reply>),
    /// Several replies one after the other, not an aggregate: what
    /// `SUBSCRIBE a b` answers (one confirmation per channel).
    Many(Vec<Reply>),
}

impl Reply {
    pub const OK: Reply = Reply::Simple("OK");

    pub fn error(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    pub fn bulk(data: impl Into<Bytes>) -> Reply {
        Reply::Bulk(data.into())
    }

    pub fn text(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the encoding of `self` to `out`.
    pub fn encode(&self, proto: Protocol, out: &mut Vec<u8>) {
        match self {
            Reply::Simple(s) => line(out, b'+', s.as_bytes()),
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(s) => {
                // An error is one line: a newline inside would desynchronise the client.
                let clean: Vec<u8> = s
                    .bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                    .collect();
                line(out, b'-', &clean)
            }
            Reply::Integer(n) => line(out, b':', itoa(*n).as_bytes()),
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null => match proto {
                Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Reply::NullArray => match proto {
                Protocol::Resp2 => out.extend_from_slice(b"*-1\r\n"),
                Protocol::Resp3 => out.extend_from_slice(b"_\r\n"),
            },
            Reply::Array(items) => aggregate(out, b'*', items, proto),
            Reply::Set(items) => aggregate(
                out,
                if proto == Protocol::Resp3 { b'~' } else { b'*' },
                items,
                proto,
            ),
            Reply::Push(items) => aggregate(
                out,
                if proto == Protocol::Resp3 { b'>' } else { b'*' },
                items,
                proto,
            ),
            Reply::Many(replies) => {
                for r in replies {
                    r.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Protocol::Resp3 => line(out, b'%', itoa(pairs.len() as i64).as_bytes()),
                    Protocol::Resp2 => line(out, b'*', itoa(2 * pairs.len() as i64).as_bytes()),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => match proto {
                Protocol::Resp3 => line(out, b',', format_reply_double(*d).as_bytes()),
                Protocol::Resp2 => bulk(out, format_reply_double(*d).as_bytes()),
            },
            Reply::Boolean(b) => match proto {
                Protocol::Resp3 => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
                Protocol::Resp2 => out.extend_from_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            },
            Reply::Verbatim(text) => match proto {
                Protocol::Resp3 => {
                    line(out, b'=', itoa(text.len() as i64 + 4).as_bytes());
                    out.extend_from_slice(b"txt:");
                    out.extend_from_slice(text.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                Protocol::Resp2 => bulk(out, text.as_bytes()),
            },
        }
    }
}

fn line(out: &mut Vec<u8>, prefix: u8, body: &[u8]) {
    out.push(prefix);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, data: &[u8]) {
    line(out, b'$', itoa(data.len() as i64).as_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

fn aggregate(out: &mut Vec<u8>, prefix: u8, items: &[Reply], proto: Protocol) {
    line(out, prefix, itoa(items.len() as i64).as_bytes());
    for item in items {
        item.encode(proto, out);
    }
}

fn itoa(n: i64) -> String {
    n.to_string()
}

/// Formats a double the way Redis writes a value it stores as text
/// (INCRBYFLOAT, HINCRBYFLOAT): integral values without a fraction,
/// `inf`/`-inf`, otherwise the shortest representation that round-trips,
/// never in exponent form. Double replies use [`format_reply_double`].
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        if d > 0.0 { "inf".into() } else { "-inf".into() }
    } else if d.is_nan() {
        "nan".into()
    } else if d == d.trunc() && d.abs() < 1e17 {
        format!("{}", d as i64)
    } else {
        format!("{d}")
    }
}

/// Formats a double reply (RESP3 `,`, or the bulk string RESP2 gets, as for
/// ZSCORE) as Redis 7.2 does since it moved `addReplyDouble` from `%.17g`
/// to fpconv (redis/redis#10587): the shortest digits that read back as the
/// same double (`0.1`, not 7.0's `0.10000000000000001`), laid out by
/// fpconv's rules — a plain integer while it needs at most 7 zeros after
/// its digits, a plain decimal while the exponent is above -7 (or the
/// number of digits makes it short), otherwise `d.ddde+N` with the exponent
/// unpadded (`1e+300`, `1.5e+20`, `1e-7`).
pub fn format_reply_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    if d.is_nan() {
        return "nan".into();
    }
    if d == 0.0 {
        // fpconv writes `-0` for negative zero, but a small sorted set (the
        // usual case) keeps its scores as text, where Redis turns -0 into 0.
        return "0".into();
    }
    // `{:e}` gives the shortest round-trip digits and the decimal exponent
    // of the first one: `d.ddd e X`.
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = sci.split_once('e').expect("an exponent");
    let first_exp: i32 = exp.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let n = digits.len() as i32;
    // fpconv's K: the power of ten of the last digit.
    let k = first_exp - (n - 1);
    let mut out = String::with_capacity(24);
    if d < 0.0 {
        out.push('-');
    }
    if k >= 0 && first_exp.abs() < n + 7 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', k as usize));
    } else if k < 0 && (k > -7 || first_exp.abs() < 4) {
        let int_len = n + k;
        if int_len <= 0 {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-int_len) as usize));
            out.push_str(&digits);
        } else {
            out.push_str(&digits[..int_len as usize]);
            out.push('.');
            out.push_str(&digits[int_len as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if first_exp < 0 { '-' } else { '+' });
        out.push_str(&first_exp.unsigned_abs().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: Reply, p: Protocol) -> String {
        let mut out = Vec::new();
        r.encode(p, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(enc(Reply::OK, Protocol::Resp2), "+OK\r\n");
        assert_eq!(enc(Reply::Integer(-3), Protocol::Resp2), ":-3\r\n");
        assert_eq!(enc(Reply::text("hi"), Protocol::Resp2), "$2\r\nhi\r\n");
        assert_eq!(
            enc(Reply::error("ERR a\r\nb"), Protocol::Resp2),
            "-ERR a  b\r\n"
        );
    }

    #[test]
    fn resp3_types_fall_back_in_resp2() {
        assert_eq!(enc(Reply::Null, Protocol::Resp2), "$-1\r\n");
        assert_eq!(enc(Reply::Null, Protocol::Resp3), "_\r\n");
        assert_eq!(enc(Reply::NullArray, Protocol::Resp2), "*-1\r\n");
        let map = Reply::Map(vec![(Reply::text("a"), Reply::Integer(1))]);
        assert_eq!(enc(map.clone(), Protocol::Resp2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(map, Protocol::Resp3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(Reply::Boolean(true), Protocol::Resp3), "#t\r\n");
        assert_eq!(enc(Reply::Double(1.5), Protocol::Resp3), ",1.5\r\n");
        assert_eq!(enc(Reply::Double(3.0), Protocol::Resp2), "$1\r\n3\r\n");
        assert_eq!(
            enc(Reply::Verbatim("x".into()), Protocol::Resp3),
            "=5\r\ntxt:x\r\n"
        );
        assert_eq!(enc(Reply::Set(vec![]), Protocol::Resp3), "~0\r\n");
    }

    #[test]
    fn double_replies_follow_redis_7_2() {
        // Shortest digits in fpconv's layout. Derived from fpconv's rules
        // (Redis 7.2's deps/fpconv); the reference server on this machine is
        // 7.0, which prints `%.17g` instead (`0.10000000000000001`).
        for (score, redis) in [
            (0.1, "0.1"),
            (3.3, "3.3"),
            (2.5, "2.5"),
            (3.0, "3"),
            (-2.5, "-2.5"),
            (12345.678, "12345.678"),
            (123456789.123, "123456789.123"),
            (1e6, "1000000"),
            (1e7, "10000000"),
            (1e8, "1e+8"),
            (1.5e20, "1.5e+20"),
            (123456789012345678.0, "123456789012345680"),
            (1e16, "1e+16"),
            (-1e16, "-1e+16"),
            (1e17, "1e+17"),
            (1e300, "1e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1e-4, "0.0001"),
            (1e-5, "0.00001"),
            (0.000001234, "1.234e-6"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (1e-300, "1e-300"),
            (5e-324, "5e-324"),
            (-0.0, "0"),
        ] {
            assert_eq!(format_reply_double(score), redis, "{score:e}");
            assert_eq!(
                enc(Reply::Double(score), Protocol::Resp2),
                format!("${}\r\n{redis}\r\n", redis.len())
            );
            assert_eq!(
                enc(Reply::Double(score), Protocol::Resp3),
                format!(",{redis}\r\n")
            );
        }
        assert_eq!(format_reply_double(f64::INFINITY), "inf");
        assert_eq!(format_reply_double(f64::NEG_INFINITY), "-inf");
        // Every reply reads back as the same double.
        for bits in (0..2000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) {
            let d = f64::from_bits(bits);
            if d.is_finite() && d != 0.0 {
                assert_eq!(format_reply_double(d).parse::<f64>().unwrap(), d);
            }
        }
    }

    #[test]
    fn stored_doubles_keep_their_long_form() {
        // INCRBYFLOAT's text, unlike a double reply, has no exponent and no
        // 17th digit (Redis 7.0 answers `INCRBYFLOAT f 1e300` with 301 digits).
        assert_eq!(format_double(0.1), "0.1");
        assert_eq!(format_double(3.0), "3");
        let big = format_double(1e300);
        assert!(big.len() == 301 && big.bytes().all(|b| b.is_ascii_digit()));
    }
}
