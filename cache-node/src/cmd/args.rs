//! Reading a command's arguments: a cursor over them (as mini-redis's
//! `Parse`) and the small grammars several commands share, so a handler
//! takes them from here rather than from a sibling handler. Every error is
//! Redis's own reply, byte for byte.

use bytes::Bytes;

use super::util::{NOT_INTEGER, SYNTAX, eq, parse_i64};
use crate::frame::Reply;
use crate::types::End;

/// `ERR value is not a valid float`.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";

/// The arguments of a command not read yet.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    rest: &'a [Bytes],
}

impl<'a> Args<'a> {
    /// The arguments from `at` on (0 is the command's name).
    pub fn new(args: &'a [Bytes], at: usize) -> Args<'a> {
        Args {
            rest: args.get(at..).unwrap_or(&[]),
        }
    }

    /// The next argument; `ERR syntax error` when there is none.
    pub fn next_bytes(&mut self) -> Result<&'a Bytes, Reply> {
        let (first, rest) = self
            .rest
            .split_first()
            .ok_or_else(|| Reply::error(SYNTAX))?;
        self.rest = rest;
        Ok(first)
    }

    /// The next argument as a strict decimal integer (Redis's `string2ll`).
    pub fn next_int(&mut self) -> Result<i64, Reply> {
        parse_i64(self.next_bytes()?).ok_or_else(|| Reply::error(NOT_INTEGER))
    }

    /// The next argument as an integer of at least 1, or the reply `error`
    /// (Redis words it by what the number counts).
    pub fn next_count(&mut self, error: &'static str) -> Result<u64, Reply> {
        match parse_i64(self.next_bytes()?) {
            Some(n) if n >= 1 => Ok(n as u64),
            _ => Err(Reply::error(error)),
        }
    }

    /// The next argument as a float, as INCRBYFLOAT reads one.
    pub fn next_float(&mut self) -> Result<f64, Reply> {
        parse_float(self.next_bytes()?).ok_or_else(|| Reply::error(NOT_FLOAT))
    }

    /// The next `n` arguments, or `None` (nothing read) when fewer are left.
    pub fn take(&mut self, n: u64) -> Option<&'a [Bytes]> {
        let n = usize::try_from(n).ok().filter(|&n| n <= self.rest.len())?;
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(taken)
    }

    /// Reads the next argument if it is `word` (in any case).
    pub fn eat(&mut self, word: &str) -> bool {
        match self.rest.split_first() {
            Some((first, rest)) if eq(first, word) => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    /// The arguments not read yet.
    pub fn remaining(&self) -> &'a [Bytes] {
        self.rest
    }

    /// `ERR syntax error` if any argument is left.
    pub fn finish(&self) -> Result<(), Reply> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Reply::error(SYNTAX))
        }
    }
}

/// Parses a float as Redis does for INCRBYFLOAT: no spaces, no NaN or infinity.
pub fn parse_float(arg: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(arg).ok()?;
    if s.is_empty()
        || s.len() > 5000
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = s.to_ascii_lowercase();
    if lower.contains("inf") || lower.contains("nan") {
        return None;
    }
    s.parse().ok()
}

/// `LEFT|RIGHT` (LMOVE, LMPOP and their blocking forms).
pub fn left_right(arg: &[u8]) -> Option<End> {
    if arg.eq_ignore_ascii_case(b"LEFT") {
        Some(End::Left)
    } else if arg.eq_ignore_ascii_case(b"RIGHT") {
        Some(End::Right)
    } else {
        None
    }
}

/// `MIN|MAX` of ZMPOP: whether to pop the highest scores.
pub fn min_max(w: &[u8]) -> Option<bool> {
    if w.eq_ignore_ascii_case(b"MIN") {
        Some(false)
    } else if w.eq_ignore_ascii_case(b"MAX") {
        Some(true)
    } else {
        None
    }
}

/// Parses `numkeys key [key ...] <where> [COUNT count]` from `args[at..]`,
/// the shape LMPOP and ZMPOP (and their blocking forms) share: the keys, the
/// `where` word as `parse_where` reads it, and the count (default 1).
pub fn mpop<W>(
    args: &[Bytes],
    at: usize,
    parse_where: impl Fn(&[u8]) -> Option<W>,
) -> Result<(&[Bytes], W, usize), Reply> {
    let mut a = Args::new(args, at);
    let numkeys = a.next_count("ERR numkeys should be greater than 0")?;
    let keys = a.take(numkeys).ok_or_else(|| Reply::error(SYNTAX))?;
    let end = parse_where(a.next_bytes()?).ok_or_else(|| Reply::error(SYNTAX))?;
    let mut count = None;
    while !a.remaining().is_empty() {
        let option = a.next_bytes()?;
        if count.is_some() || !eq(option, "COUNT") {
            // An option without its value is a syntax error either way.
            a.next_bytes()?;
            return Err(Reply::error(SYNTAX));
        }
        let n = a.next_count("ERR count should be greater than 0")?;
        count = Some(usize::try_from(n).unwrap_or(usize::MAX));
    }
    Ok((keys, end, count.unwrap_or(1)))
}

/// A SCAN-family cursor: an unsigned decimal integer.
pub fn scan_cursor(arg: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| Reply::error("ERR invalid cursor"))
}

/// `[MATCH pattern] [COUNT count]`, plus `[TYPE type]` for SCAN itself.
pub struct ScanOptions {
    pub pattern: Option<Bytes>,
    pub count: usize,
    /// SCAN's `TYPE`, lowercase.
    pub type_: Option<String>,
}

impl ScanOptions {
    pub fn parse(args: &[Bytes], allow_type: bool) -> Result<Self, Reply> {
        let mut opts = ScanOptions {
            pattern: None,
            count: 10,
            type_: None,
        };
        for pair in args.chunks(2) {
            let [name, value] = pair else {
                return Err(Reply::error(SYNTAX));
            };
            if eq(name, "MATCH") {
                // `*` matches everything: skip the matcher, as Redis does.
                opts.pattern = (&value[..] != b"*").then(|| value.clone());
            } else if eq(name, "COUNT") {
                match parse_i64(value) {
                    Some(n) if n >= 1 => opts.count = usize::try_from(n).unwrap_or(usize::MAX),
                    Some(_) => return Err(Reply::error(SYNTAX)),
                    None => return Err(Reply::error(NOT_INTEGER)),
                }
            } else if eq(name, "TYPE") && allow_type {
                opts.type_ = Some(String::from_utf8_lossy(value).to_ascii_lowercase());
            } else {
                return Err(Reply::error(SYNTAX));
            }
        }
        Ok(opts)
    }

    pub fn matches(&self, name: &[u8]) -> bool {
        self.pattern
            .as_ref()
            .is_none_or(|p| crate::glob::matches(p, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    fn error(r: Result<impl std::fmt::Debug, Reply>) -> Reply {
        r.expect_err("an error")
    }

    #[test]
    fn the_cursor_reads_in_order_with_redis_errors() {
        let v = args(&["cmd", "12", "x", "Count", "3.5", "-1"]);
        let mut a = Args::new(&v, 1);
        assert_eq!(a.next_int(), Ok(12));
        assert_eq!(error(a.next_int()), Reply::error(NOT_INTEGER));
        assert!(!a.eat("limit"));
        assert!(a.eat("COUNT"));
        assert_eq!(a.next_float(), Ok(3.5));
        assert_eq!(error(a.finish()), Reply::error(SYNTAX));
        assert_eq!(
            error(a.next_count("ERR count should be greater than 0")),
            Reply::error("ERR count should be greater than 0")
        );
        assert_eq!(a.finish(), Ok(()));
        assert_eq!(error(a.next_bytes()), Reply::error(SYNTAX));
        assert_eq!(Args::new(&v, 9).remaining().len(), 0);
    }

    #[test]
    fn mpop_reads_keys_where_and_count() {
        let v = args(&["lmpop", "2", "a", "b", "left", "count", "5"]);
        let (keys, end, count) = mpop(&v, 1, left_right).expect("valid");
        assert_eq!((keys.len(), end, count), (2, End::Left, 5));
        let v = args(&["zmpop", "1", "z", "MAX"]);
        assert_eq!(mpop(&v, 1, min_max).map(|(_, m, c)| (m, c)), Ok((true, 1)));
        for (words, want) in [
            (
                &["x", "0", "a", "left"][..],
                "ERR numkeys should be greater than 0",
            ),
            (&["x", "3", "a", "left"], SYNTAX),
            (&["x", "1", "a", "up"], SYNTAX),
            (&["x", "1", "a", "left", "count"], SYNTAX),
            (
                &["x", "1", "a", "left", "count", "0"],
                "ERR count should be greater than 0",
            ),
            (&["x", "1", "a", "left", "count", "1", "count", "2"], SYNTAX),
            (&["x", "1", "a", "left", "limit", "1"], SYNTAX),
        ] {
            let v = args(words);
            assert_eq!(
                error(mpop(&v, 1, left_right)),
                Reply::error(want),
                "{words:?}"
            );
        }
    }
}
