//! A key, its value, its deadline and its access data in one allocation.
//!
//! A slot's table holds one [`Record`] per key: a single pointer. A key of
//! 16 bytes with a 16-byte value takes one 48-byte allocation plus its
//! 8-byte bucket, where a `HashMap<Bytes, Entry>` took a 90-byte bucket, a
//! key allocation and a value allocation. Strings up to [`INLINE_MAX`] bytes
//! live in the record itself; longer strings and collections are a payload
//! the record holds (a `Bytes` or a [`Value`]), so that borrowing them as
//! `&Bytes` or `&Hash` costs nothing.
//!
//! Layout, every field at its natural alignment:
//!
//! ```text
//! 0   access: u32        LRU clock or LFU counter (crate::evict)
//! 4   flags: u8          kind (inline / shared string / boxed value), has deadline, long key
//! 5   inline_len: u8     length of an inline string
//! 6   key_len: u16       u16::MAX when the key is longer: then a u64 follows
//! 8   [key_len: u64]     LONG_KEY only
//!     [deadline: u64]    DEADLINE only: Unix ms
//!     [payload]          Bytes (SHARED) or Value (BOXED)
//!     key bytes
//!     inline string bytes
//! ```
//!
//! The layout can always be recomputed from the first 8 bytes (and the long
//! key length), so a record needs no size field: dropping it, or reading it,
//! starts from its header.

use std::alloc::{self, Layout};
use std::mem::{ManuallyDrop, align_of, size_of};
use std::ptr::{self, NonNull};

use bytes::Bytes;

use super::value::{StrRef, Value, ValueRef, alloc_size};
use crate::types::own;

/// Longest string stored inside its record. Longer strings get a buffer of
/// their own: rewriting one in place (APPEND, SETRANGE, SETBIT) then does
/// not copy the key along with it.
pub const INLINE_MAX: usize = u8::MAX as usize;

const HEADER: usize = 8;
const WORD: usize = 8;

const KIND: u8 = 0b11;
const INLINE: u8 = 0;
const SHARED: u8 = 1;
const BOXED: u8 = 2;
const DEADLINE: u8 = 1 << 2;
const LONG_KEY: u8 = 1 << 3;

// Payloads sit at 8-byte offsets from an 8-byte aligned allocation.
const _: () = assert!(align_of::<Bytes>() <= WORD && size_of::<Bytes>().is_multiple_of(WORD));
const _: () = assert!(align_of::<Value>() <= WORD && size_of::<Value>().is_multiple_of(WORD));

/// Where each field of a record is, from its header.
#[derive(Clone, Copy)]
struct Shape {
    flags: u8,
    key_len: usize,
    inline_len: usize,
}

impl Shape {
    fn kind(self) -> u8 {
        self.flags & KIND
    }

    fn has_deadline(self) -> bool {
        self.flags & DEADLINE != 0
    }

    fn deadline_at(self) -> usize {
        HEADER + if self.flags & LONG_KEY != 0 { WORD } else { 0 }
    }

    fn payload_at(self) -> usize {
        self.deadline_at() + if self.has_deadline() { WORD } else { 0 }
    }

    fn key_at(self) -> usize {
        self.payload_at()
            + match self.kind() {
                SHARED => size_of::<Bytes>(),
                BOXED => size_of::<Value>(),
                _ => 0,
            }
    }

    fn inline_at(self) -> usize {
        self.key_at() + self.key_len
    }

    fn layout(self) -> Layout {
        // Keys and values are bounded by the protocol's limits (512 MB), far
        // from overflowing `isize`.
        Layout::from_size_align(self.inline_at() + self.inline_len, WORD)
            .expect("record size fits in isize")
    }
}

/// One key of the keyspace with everything stored for it.
pub struct Record {
    ptr: NonNull<u8>,
}

// SAFETY: a record owns its allocation exclusively, like a `Box`, and the
// payloads it may hold (`Bytes`, `Value`) are `Send`.
unsafe impl Send for Record {}
// SAFETY: `&Record` only reads (mutation takes `&mut`), and the payloads
// are `Sync`.
unsafe impl Sync for Record {}

impl Record {
    /// A record for `key` holding `value`; `deadline` 0 means none.
    pub fn new(key: &[u8], value: Value, deadline: u64, access: u32) -> Record {
        let (kind, inline_len) = match &value {
            Value::Str(s) if s.len() <= INLINE_MAX => (INLINE, s.len()),
            Value::Str(_) => (SHARED, 0),
            _ => (BOXED, 0),
        };
        let long = key.len() >= usize::from(u16::MAX);
        let flags =
            kind | if deadline != 0 { DEADLINE } else { 0 } | if long { LONG_KEY } else { 0 };
        let shape = Shape {
            flags,
            key_len: key.len(),
            inline_len,
        };
        let layout = shape.layout();
        // SAFETY: the layout has a non-zero size (the header alone is 8).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        let p = ptr.as_ptr();
        // SAFETY: every write below is inside the allocation just made, at
        // the offsets `shape` gives, each suitably aligned (see the layout
        // in the module documentation).
        unsafe {
            p.cast::<u32>().write(access);
            p.add(4).write(flags);
            p.add(5).write(inline_len as u8);
            let short_len = if long { u16::MAX } else { key.len() as u16 };
            p.add(6).cast::<u16>().write(short_len);
            if long {
                p.add(HEADER).cast::<u64>().write(key.len() as u64);
            }
            if deadline != 0 {
                p.add(shape.deadline_at()).cast::<u64>().write(deadline);
            }
            ptr::copy_nonoverlapping(key.as_ptr(), p.add(shape.key_at()), key.len());
            match value {
                Value::Str(s) if kind == INLINE => {
                    ptr::copy_nonoverlapping(s.as_ptr(), p.add(shape.inline_at()), inline_len);
                }
                Value::Str(s) => p.add(shape.payload_at()).cast::<Bytes>().write(own(s)),
                other => p.add(shape.payload_at()).cast::<Value>().write(other),
            }
        }
        Record { ptr }
    }

    fn shape(&self) -> Shape {
        let p = self.ptr.as_ptr();
        // SAFETY: the header and, for long keys, the word after it were
        // written by `new` and are never changed.
        unsafe {
            let flags = p.add(4).read();
            let short_len = p.add(6).cast::<u16>().read();
            let key_len = if flags & LONG_KEY != 0 {
                p.add(HEADER).cast::<u64>().read() as usize
            } else {
                usize::from(short_len)
            };
            Shape {
                flags,
                key_len,
                inline_len: usize::from(p.add(5).read()),
            }
        }
    }

    pub fn key(&self) -> &[u8] {
        let shape = self.shape();
        // SAFETY: `new` copied `key_len` bytes of key at `key_at`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(shape.key_at()), shape.key_len) }
    }

    /// LRU clock or LFU counter.
    pub fn access(&self) -> u32 {
        // SAFETY: the first word of every record is its access data.
        unsafe { self.ptr.as_ptr().cast::<u32>().read() }
    }

    pub fn set_access(&mut self, access: u32) {
        // SAFETY: as in `access`; `&mut self` makes the write exclusive.
        unsafe { self.ptr.as_ptr().cast::<u32>().write(access) }
    }

    /// Unix time in milliseconds after which the key no longer exists; 0
    /// for none.
    pub fn deadline(&self) -> u64 {
        let shape = self.shape();
        if !shape.has_deadline() {
            return 0;
        }
        // SAFETY: `new` wrote the deadline at `deadline_at` when flagged.
        unsafe {
            self.ptr
                .as_ptr()
                .add(shape.deadline_at())
                .cast::<u64>()
                .read()
        }
    }

    /// Whether the key exists at `now` (ms).
    pub fn live_at(&self, now: u64) -> bool {
        let d = self.deadline();
        d == 0 || d > now
    }

    pub fn value(&self) -> ValueRef<'_> {
        let shape = self.shape();
        let p = self.ptr.as_ptr();
        // SAFETY: `new` stored the kind of payload the flags say, at the
        // offsets `shape` gives; it lives as long as the record.
        unsafe {
            match shape.kind() {
                INLINE => ValueRef::Str(StrRef::Inline(std::slice::from_raw_parts(
                    p.add(shape.inline_at()),
                    shape.inline_len,
                ))),
                SHARED => {
                    ValueRef::Str(StrRef::Shared(&*p.add(shape.payload_at()).cast::<Bytes>()))
                }
                _ => (*p.add(shape.payload_at()).cast::<Value>()).as_ref(),
            }
        }
    }

    /// The collection this record holds, to change in place; `None` for a
    /// string (strings change by [`Record::rebuilt`]).
    pub fn collection_mut(&mut self) -> Option<&mut Value> {
        let shape = self.shape();
        if shape.kind() != BOXED {
            return None;
        }
        // SAFETY: as in `value`; `&mut self` makes the borrow exclusive.
        unsafe { Some(&mut *self.ptr.as_ptr().add(shape.payload_at()).cast::<Value>()) }
    }

    /// Bytes the record accounts for in `used_memory`: its allocation and
    /// what its payload holds.
    pub fn bytes(&self) -> usize {
        let own = alloc_size(self.shape().layout().size());
        let payload = match self.value() {
            ValueRef::Str(StrRef::Inline(_)) => 0,
            ValueRef::Str(StrRef::Shared(s)) => super::value::shared_str_bytes(s),
            ValueRef::Hash(h) => h.bytes(),
            ValueRef::List(l) => l.bytes(),
            ValueRef::Set(s) => s.bytes(),
            ValueRef::ZSet(z) => z.bytes(),
        };
        own + payload
    }

    /// Takes the record apart: `f` gets the key (valid only during the
    /// call), the value, the deadline and the access data.
    pub fn into_parts<R>(self, f: impl FnOnce(&[u8], Value, u64, u32) -> R) -> R {
        let this = ManuallyDrop::new(self);
        let shape = this.shape();
        let p = this.ptr.as_ptr();
        // SAFETY: the payload is read out exactly once (the record is not
        // dropped, so it is not dropped again), and the allocation is freed
        // with the layout it was made with after `f` stopped using the key.
        unsafe {
            let value = match shape.kind() {
                INLINE => match this.value() {
                    ValueRef::Str(s) => Value::Str(Bytes::copy_from_slice(&s)),
                    _ => unreachable!("an inline record holds a string"),
                },
                SHARED => Value::Str(p.add(shape.payload_at()).cast::<Bytes>().read()),
                _ => p.add(shape.payload_at()).cast::<Value>().read(),
            };
            let result = f(this.key(), value, this.deadline(), this.access());
            alloc::dealloc(p, shape.layout());
            result
        }
    }

    /// This record with `value` and `deadline` instead of its own.
    pub fn rebuilt(self, value: Value, deadline: u64) -> Record {
        // An inline string of the same length is overwritten in place.
        if let Value::Str(s) = &value {
            let shape = self.shape();
            if shape.kind() == INLINE && s.len() == shape.inline_len && deadline == self.deadline()
            {
                // SAFETY: the same `inline_len` bytes `new` wrote.
                unsafe {
                    let at = self.ptr.as_ptr().add(shape.inline_at());
                    ptr::copy_nonoverlapping(s.as_ptr(), at, s.len());
                }
                return self;
            }
        }
        self.into_parts(|key, _, _, access| Record::new(key, value, deadline, access))
    }

    /// This record with another deadline (0 for none), value unchanged.
    pub fn with_deadline(self, deadline: u64) -> Record {
        if deadline == self.deadline() {
            return self;
        }
        self.into_parts(|key, value, _, access| Record::new(key, value, deadline, access))
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let shape = self.shape();
        let p = self.ptr.as_ptr();
        // SAFETY: the payload the flags name was written by `new` and not
        // moved out (`into_parts` skips this drop); the layout is the one
        // the allocation was made with.
        unsafe {
            match shape.kind() {
                SHARED => ptr::drop_in_place(p.add(shape.payload_at()).cast::<Bytes>()),
                BOXED => ptr::drop_in_place(p.add(shape.payload_at()).cast::<Value>()),
                _ => {}
            }
            alloc::dealloc(p, shape.layout());
        }
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("key", &Bytes::copy_from_slice(self.key()))
            .field("value", &self.value())
            .field("deadline", &self.deadline())
            .field("access", &self.access())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Hash;

    fn text(s: &[u8]) -> Value {
        Value::Str(Bytes::copy_from_slice(s))
    }

    fn str_of(r: &Record) -> Vec<u8> {
        r.value().as_str().expect("a string").to_vec()
    }

    #[test]
    fn every_shape_round_trips() {
        let long_key = vec![b'k'; usize::from(u16::MAX) + 3];
        let long_value = vec![b'v'; INLINE_MAX + 1];
        let keys: [&[u8]; 4] = [b"", b"k", &[7u8; 200], &long_key];
        let mut hash = Hash::default();
        hash.insert(Bytes::from("f"), Bytes::from("v"));
        let values = [
            text(b""),
            text(b"small"),
            text(&vec![b'x'; INLINE_MAX]),
            Value::Str(Bytes::from(long_value)),
            Value::Hash(hash),
        ];
        for key in keys {
            for value in &values {
                for deadline in [0, 1, u64::MAX] {
                    let r = Record::new(key, value.clone(), deadline, 0xdead_beef);
                    assert_eq!(r.key(), key);
                    assert_eq!(r.deadline(), deadline);
                    assert_eq!(r.access(), 0xdead_beef);
                    assert_eq!(r.value().to_value(), *value);
                    r.into_parts(|k, v, d, a| {
                        assert_eq!((k, &v, d, a), (key, value, deadline, 0xdead_beef));
                    });
                }
            }
        }
    }

    #[test]
    fn a_small_key_and_value_take_one_small_allocation() {
        let r = Record::new(&[b'k'; 16], text(&[b'v'; 16]), 0, 0);
        assert_eq!(r.bytes(), 48);
        assert_eq!(size_of::<Record>(), 8);
        // 8 header + 8 deadline + 16 + 16: still the 48-byte class.
        let with_ttl = r.with_deadline(5);
        assert_eq!(with_ttl.bytes(), 48);
        assert_eq!(
            Record::new(&[b'k'; 16], text(&[b'v'; 17]), 5, 0).bytes(),
            64
        );
    }

    #[test]
    fn rebuilding_changes_value_and_deadline_and_keeps_key_and_access() {
        let mut r = Record::new(b"key", text(b"1234"), 0, 9);
        r.set_access(10);
        let r = r.rebuilt(text(b"5678"), 0);
        assert_eq!(str_of(&r), b"5678");
        let r = r.rebuilt(text(&[b'z'; 1000]), 77);
        assert_eq!((r.key(), r.deadline(), r.access()), (&b"key"[..], 77, 10));
        assert_eq!(str_of(&r), vec![b'z'; 1000]);
        let mut r = r.with_deadline(0);
        assert!(r.collection_mut().is_none(), "strings are rebuilt");
        assert_eq!((str_of(&r).len(), r.deadline()), (1000, 0));
        let mut hash = Hash::default();
        hash.insert(Bytes::from("f"), Bytes::from("v"));
        let mut h = Record::new(b"h", Value::Hash(hash), 0, 0);
        match h.collection_mut() {
            Some(Value::Hash(hash)) => hash.insert(Bytes::from("g"), Bytes::from("w")),
            _ => panic!("a collection is changed in place"),
        };
        assert!(matches!(h.value(), ValueRef::Hash(hash) if hash.len() == 2));
    }

    #[test]
    fn payloads_are_dropped_once() {
        let shared = Bytes::from(vec![1u8; 1000]);
        let mut hash = Hash::default();
        hash.insert(shared.clone(), shared.clone());
        let r = Record::new(b"h", Value::Hash(hash), 3, 0);
        let s = Record::new(b"s", Value::Str(shared.clone()), 0, 0);
        drop(r);
        let taken = s.into_parts(|_, v, _, _| v);
        drop(taken);
        // Only our own reference is left: nothing leaked or freed twice.
        assert!(shared.is_unique());
    }
}
