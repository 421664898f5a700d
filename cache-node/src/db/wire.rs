//! The bytes a migration stream and a replication stream carry: a batch is a sequence of changes,
//! each the whole state of one key (or its absence), so the target applies
//! them in order and ends up with the source's keys whatever commands made
//! them. Sending states rather than commands makes the stream
//! deterministic by construction: no command needs rewriting (relative
//! expiries, `SPOP`'s random choice, a key the source found expired), and a
//! key written many times between two batches is sent once.
//!
//! ```text
//! change := 1 key deadline value   a key and its value (deadline 0: none)
//!         | 2 key                  the key no longer exists
//!         | 3                      every key of the migrating slots is gone (FLUSHALL)
//! key    := varint-length bytes
//! value  := 0 bytes | 1 count bytes* (list, head first) | 2 count (field value)*
//!         | 3 count bytes* (set) | 4 count (member f64-le)* (sorted set)
//! ```
//!
//! Decoding checks every length against the bytes left, so a corrupt or
//! hostile batch is an error, never a panic or an allocation it did not
//! pay for in bytes.

use bytes::{Buf as _, BufMut as _, Bytes};

use crate::db::{Value, ValueRef, own};
use crate::types::{End, Hash, List, Set, SortedSet};

const PUT: u8 = 1;
const DEL: u8 = 2;
const CLEAR: u8 = 3;

const STR: u8 = 0;
const LIST: u8 = 1;
const HASH: u8 = 2;
const SET: u8 = 3;
const ZSET: u8 = 4;

/// One change of a batch, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put {
        key: Bytes,
        value: Value,
        expires_at: Option<u64>,
    },
    Del {
        key: Bytes,
    },
    Clear,
}

/// Why a batch did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt migration batch at byte {at}: {what}")]
pub struct WireError {
    pub at: usize,
    pub what: &'static str,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a key with its value and deadline.
pub fn put(out: &mut Vec<u8>, key: &[u8], value: ValueRef<'_>, expires_at: Option<u64>) {
    out.push(PUT);
    put_bytes(out, key);
    put_varint(out, expires_at.unwrap_or(0));
    match value {
        ValueRef::Str(s) => {
            out.push(STR);
            put_bytes(out, &s);
        }
        ValueRef::List(l) => {
            out.push(LIST);
            put_varint(out, l.len() as u64);
            for item in l.iter() {
                put_bytes(out, item);
            }
        }
        ValueRef::Hash(h) => {
            out.push(HASH);
            put_varint(out, h.len() as u64);
            for (field, value) in h.iter() {
                put_bytes(out, field);
                put_bytes(out, value);
            }
        }
        ValueRef::Set(s) => {
            out.push(SET);
            put_varint(out, s.len() as u64);
            for member in s.iter() {
                put_bytes(out, member);
            }
        }
        ValueRef::ZSet(z) => {
            out.push(ZSET);
            put_varint(out, z.len() as u64);
            for (member, score) in z.iter() {
                put_bytes(out, member);
                out.put_f64_le(score);
            }
        }
    }
}

/// Appends "`key` no longer exists".
pub fn del(out: &mut Vec<u8>, key: &[u8]) {
    out.push(DEL);
    put_bytes(out, key);
}

/// Appends "every key of the migrating slots is gone".
pub fn clear(out: &mut Vec<u8>) {
    out.push(CLEAR);
}

/// Decodes a whole batch, or nothing of it: a corrupt batch is refused
/// before any of its changes is applied.
pub fn decode_all(buf: Bytes) -> Result<Vec<Change>, WireError> {
    Reader::new(buf).collect()
}

/// Applies decoded changes in order; `clear` is what a flush means to the
/// receiver (every key for a replica, the migrating slots for a target).
pub fn apply(
    db: &mut crate::db::Db,
    changes: Vec<Change>,
    mut clear: impl FnMut(&mut crate::db::Db),
) {
    for change in changes {
        match change {
            Change::Put {
                key,
                value,
                expires_at,
            } => db.set(key, value, expires_at),
            Change::Del { key } => {
                db.remove(&key);
            }
            Change::Clear => clear(db),
        }
    }
}

/// Reads changes off a batch, front to back.
pub struct Reader {
    buf: Bytes,
    len: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        let len = buf.len();
        Self { buf, len }
    }

    fn err(&self, what: &'static str) -> WireError {
        WireError {
            at: self.len - self.buf.len(),
            what,
        }
    }

    fn byte(&mut self) -> Result<u8, WireError> {
        if self.buf.is_empty() {
            return Err(self.err("truncated"));
        }
        Ok(self.buf.get_u8())
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(self.err("varint too long"))
    }

    /// A count of elements, each at least `min` bytes: more than the bytes
    /// left could hold is corrupt (and would be an unpaid allocation).
    fn count(&mut self, min: usize) -> Result<usize, WireError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min) <= self.buf.len() => Ok(n),
            _ => Err(self.err("count larger than the batch")),
        }
    }

    fn bytes(&mut self) -> Result<Bytes, WireError> {
        let n = self.varint()?;
        match usize::try_from(n) {
            Ok(n) if n <= self.buf.len() => Ok(self.buf.split_to(n)),
            _ => Err(self.err("length past the end of the batch")),
        }
    }

    /// A string of a value: copied out of the batch (see [`own`]), which
    /// a stored slice would keep alive whole.
    fn element(&mut self) -> Result<Bytes, WireError> {
        self.bytes().map(own)
    }

    fn value(&mut self) -> Result<Value, WireError> {
        Ok(match self.byte()? {
            STR => Value::Str(self.element()?),
            LIST => {
                let mut l = List::default();
                for _ in 0..self.count(1)? {
                    l.push(End::Right, self.element()?);
                }
                non_empty(self, l.is_empty(), Value::List(l))?
            }
            HASH => {
                let mut h = Hash::default();
                for _ in 0..self.count(2)? {
                    let field = self.element()?;
                    h.insert(field, self.element()?);
                }
                non_empty(self, h.is_empty(), Value::Hash(h))?
            }
            SET => {
                let mut s = Set::default();
                for _ in 0..self.count(1)? {
                    s.insert(self.element()?);
                }
                non_empty(self, s.is_empty(), Value::Set(s))?
            }
            ZSET => {
                let mut z = SortedSet::default();
                for _ in 0..self.count(9)? {
                    let member = self.element()?;
                    if self.buf.len() < 8 {
                        return Err(self.err("truncated"));
                    }
                    let score = self.buf.get_f64_le();
                    if score.is_nan() {
                        return Err(self.err("NaN score"));
                    }
                    z.insert(member, score);
                }
                non_empty(self, z.is_empty(), Value::ZSet(z))?
            }
            _ => return Err(self.err("unknown value type")),
        })
    }
}

/// Collections never exist empty (Redis deletes them with their last element).
fn non_empty(r: &Reader, empty: bool, v: Value) -> Result<Value, WireError> {
    if empty {
        Err(r.err("empty collection"))
    } else {
        Ok(v)
    }
}

impl Iterator for Reader {
    type Item = Result<Change, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let change = (|| {
            Ok(match self.byte()? {
                PUT => {
                    let key = self.bytes()?;
                    let deadline = self.varint()?;
                    Change::Put {
                        key,
                        expires_at: (deadline != 0).then_some(deadline),
                        value: self.value()?,
                    }
                }
                DEL => Change::Del { key: self.bytes()? },
                CLEAR => Change::Clear,
                _ => return Err(self.err("unknown change")),
            })
        })();
        if change.is_err() {
            // Nothing after a corrupt change can be trusted.
            self.buf.clear();
        }
        Some(change)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        let bytes = || proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from);
        prop_oneof![
            bytes().prop_map(Value::Str),
            proptest::collection::vec(bytes(), 1..20).prop_map(|items| {
                let mut l = List::default();
                for i in items {
                    l.push(End::Right, i);
                }
                Value::List(l)
            }),
            proptest::collection::vec((bytes(), bytes()), 1..20).prop_map(|pairs| {
                let mut h = Hash::default();
                for (f, v) in pairs {
                    h.insert(f, v);
                }
                Value::Hash(h)
            }),
            proptest::collection::vec(bytes(), 1..20)
                .prop_map(|m| Value::Set(m.into_iter().collect())),
            proptest::collection::vec((bytes(), -1e9f64..1e9), 1..20).prop_map(|pairs| {
                let mut z = SortedSet::default();
                for (m, s) in pairs {
                    z.insert(m, s);
                }
                Value::ZSet(z)
            }),
        ]
    }

    fn change() -> impl Strategy<Value = Change> {
        let key = proptest::collection::vec(any::<u8>(), 0..300).prop_map(Bytes::from);
        prop_oneof![
            (key.clone(), value(), proptest::option::of(1u64..u64::MAX)).prop_map(
                |(key, value, expires_at)| Change::Put {
                    key,
                    value,
                    expires_at
                }
            ),
            key.prop_map(|key| Change::Del { key }),
            Just(Change::Clear),
        ]
    }

    fn encode(changes: &[Change]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in changes {
            match c {
                Change::Put {
                    key,
                    value,
                    expires_at,
                } => put(&mut out, key, value.as_ref(), *expires_at),
                Change::Del { key } => del(&mut out, key),
                Change::Clear => clear(&mut out),
            }
        }
        out
    }

    proptest! {
        #[test]
        fn batches_decode_to_what_was_encoded(changes in proptest::collection::vec(change(), 0..20)) {
            let decoded: Result<Vec<_>, _> = Reader::new(encode(&changes).into()).collect();
            prop_assert_eq!(decoded.unwrap(), changes);
        }

        #[test]
        fn damaged_batches_are_errors_not_panics(
            changes in proptest::collection::vec(change(), 1..10),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            garbage in any::<u8>(),
        ) {
            let bytes = encode(&changes);
            // Truncated anywhere: decodes a prefix, then errors or ends.
            let short = Bytes::copy_from_slice(&bytes[..cut.index(bytes.len())]);
            let _ = Reader::new(short).count();
            // One byte replaced: never panics, stops after an error.
            let mut bent = bytes.clone();
            bent[flip.index(bytes.len())] = garbage;
            let mut seen_error = false;
            for c in Reader::new(bent.into()) {
                prop_assert!(!seen_error, "a change after an error");
                seen_error = c.is_err();
            }
        }
    }

    #[test]
    fn hostile_counts_are_refused_before_allocating() {
        // A list claiming 2^62 elements in a 16-byte batch.
        let mut b = vec![PUT, 1, b'k', 0, LIST];
        put_varint(&mut b, 1 << 62);
        let err = Reader::new(b.into()).next().unwrap().unwrap_err();
        assert_eq!(err.what, "count larger than the batch");
        let err = Reader::new(Bytes::from_static(&[PUT, 1, b'k', 0, LIST, 0]))
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(err.what, "empty collection");
        let err = Reader::new(Bytes::from_static(&[9]))
            .next()
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err,
            WireError {
                at: 1,
                what: "unknown change"
            }
        );
    }

    #[test]
    fn decoded_values_do_not_pin_the_batch() {
        let mut b = Vec::new();
        put(
            &mut b,
            b"k",
            Value::Str(Bytes::from(vec![b'x'; 1000])).as_ref(),
            None,
        );
        let batch = Bytes::from(b);
        let Some(Ok(Change::Put {
            value: Value::Str(s),
            ..
        })) = Reader::new(batch.clone()).next()
        else {
            panic!("a put");
        };
        let inside = batch.as_ptr_range();
        assert!(
            !inside.contains(&s.as_ptr()),
            "the value is a copy, not a slice of the batch"
        );
    }
}
