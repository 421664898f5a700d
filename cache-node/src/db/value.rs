//! Values: owned ([`Value`], what commands hand to the keyspace and take out
//! of it) and borrowed ([`ValueRef`], what the keyspace shows of a stored
//! value without copying it).
//!
//! The two differ because the keyspace does not store a `Value` for small
//! strings: their bytes sit inside the key's own allocation (see
//! [`super::record`]), so a borrowed view is all there is to lend.

use std::ops::Deref;

use bytes::Bytes;

use crate::types::{COPY_MAX, Hash, List, Set, SortedSet};

/// A value as commands build it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Bytes),
    Hash(Hash),
    List(List),
    Set(Set),
    ZSet(SortedSet),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        self.as_ref().type_name()
    }

    /// The borrowed view of this value.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::Str(s) => ValueRef::Str(StrRef::Shared(s)),
            Value::Hash(h) => ValueRef::Hash(h),
            Value::List(l) => ValueRef::List(l),
            Value::Set(s) => ValueRef::Set(s),
            Value::ZSet(z) => ValueRef::ZSet(z),
        }
    }

    /// Collections vanish when their last element goes, as in Redis.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

/// A stored value, borrowed from the keyspace.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Str(StrRef<'a>),
    Hash(&'a Hash),
    List(&'a List),
    Set(&'a Set),
    ZSet(&'a SortedSet),
}

impl<'a> ValueRef<'a> {
    pub fn type_name(&self) -> &'static str {
        match self {
            ValueRef::Str(_) => "string",
            ValueRef::Hash(_) => "hash",
            ValueRef::List(_) => "list",
            ValueRef::Set(_) => "set",
            ValueRef::ZSet(_) => "zset",
        }
    }

    /// An owned copy (COPY, and commands that read a value to rewrite it).
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Str(s) => Value::Str(s.to_bytes()),
            ValueRef::Hash(h) => Value::Hash(h.clone()),
            ValueRef::List(l) => Value::List(l.clone()),
            ValueRef::Set(s) => Value::Set(s.clone()),
            ValueRef::ZSet(z) => Value::ZSet(z.clone()),
        }
    }

    /// The string's bytes; `None` for a collection.
    pub fn as_str(self) -> Option<StrRef<'a>> {
        match self {
            ValueRef::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// A stored string: bytes inside the key's allocation, or a buffer of its
/// own for long strings.
#[derive(Debug, Clone, Copy)]
pub enum StrRef<'a> {
    Inline(&'a [u8]),
    Shared(&'a Bytes),
}

impl StrRef<'_> {
    /// The string as `Bytes` for a reply: a copy of an inline string, a new
    /// reference to a long one (which is never copied).
    pub fn to_bytes(self) -> Bytes {
        match self {
            StrRef::Inline(b) => Bytes::copy_from_slice(b),
            StrRef::Shared(b) => b.clone(),
        }
    }
}

impl Deref for StrRef<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            StrRef::Inline(b) => b,
            StrRef::Shared(b) => b,
        }
    }
}

/// A collection type stored in a [`Value`] variant; lets commands read and
/// write any collection through one pair of helpers.
pub trait Collection: Default + Sized {
    fn of<'a>(value: ValueRef<'a>) -> Option<&'a Self>;
    fn of_mut(value: &mut Value) -> Option<&mut Self>;
    fn into_value(self) -> Value;
}

macro_rules! collection {
    ($ty:ident, $variant:ident) => {
        impl Collection for $ty {
            fn of<'a>(value: ValueRef<'a>) -> Option<&'a Self> {
                match value {
                    ValueRef::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn of_mut(value: &mut Value) -> Option<&mut Self> {
                match value {
                    Value::$variant(c) => Some(c),
                    _ => None,
                }
            }
            fn into_value(self) -> Value {
                Value::$variant(self)
            }
        }
    };
}
collection!(Hash, Hash);
collection!(List, List);
collection!(Set, Set);
collection!(SortedSet, ZSet);

/// The reply for a command applied to a key of another type.
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

/// Bytes an allocation of `n` bytes takes: jemalloc's size classes (16-byte
/// steps to 128, then four classes per doubling), which glibc's 16-byte
/// chunks with an 8-byte header follow closely.
pub fn alloc_size(n: usize) -> usize {
    match n {
        0 => 0,
        1..=128 => n.next_multiple_of(16),
        _ => {
            // A quarter of the power of two just below.
            let log2 = usize::BITS - 1 - (n - 1).leading_zeros();
            n.next_multiple_of(1 << (log2 - 2))
        }
    }
}

/// Bytes a string held in a buffer of its own accounts for.
pub(super) fn shared_str_bytes(b: &Bytes) -> usize {
    // Small strings are copies of their own (see `own`); large ones share
    // the request buffer they arrived in, which they fill.
    if b.len() <= COPY_MAX {
        alloc_size(b.len())
    } else {
        b.len()
    }
}
