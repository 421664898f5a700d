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
                Protocol::Resp3 => line(out, b',', format_double(*d).as_bytes()),
                Protocol::Resp2 => bulk(out, format_double(*d).as_bytes()),
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

/// Formats a double as Redis does: integral values without a fraction,
/// `inf`/`-inf`, otherwise the shortest representation that round-trips.
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
}
