//! The encodings Redis 7.2 would keep a value in (`OBJECT ENCODING`), and
//! the thresholds behind them, which `CONFIG GET` reports and which decide
//! whether a *SCAN returns a collection whole.

use bytes::Bytes;

use crate::db::ValueRef;
use crate::types::List;

// Redis 7.2's defaults for its compact encodings.
/// `hash-`, `set-` and `zset-max-listpack-entries`.
pub(super) const LISTPACK_ENTRIES: usize = 128;
/// `hash-`, `set-` and `zset-max-listpack-value`.
pub(super) const LISTPACK_VALUE: usize = 64;
/// `set-max-intset-entries`.
pub(super) const INTSET_ENTRIES: usize = 512;
/// `list-max-listpack-size -2`: a list stays one listpack up to 8 KiB.
const LIST_LISTPACK_BYTES: usize = 8192;
/// Longest string Redis allocates together with its object header.
const EMBSTR_MAX: usize = 44;
/// Redis shares the objects of the integers 0..10000 (`OBJ_SHARED_INTEGERS`).
pub(super) const SHARED_INTEGERS: i64 = 10_000;

/// Whether a string would be stored as an integer (`int` encoding).
pub(super) fn is_int_encoded(s: &[u8]) -> bool {
    s.len() <= 20 && super::util::parse_i64(s).is_some()
}

/// The encoding Redis 7.2 reports for the same value under its default
/// thresholds. Judged from the contents alone: Redis never converts a
/// collection back after it shrinks, and we keep no history, so a
/// collection that grew and shrank again reads as compact here.
pub(super) fn encoding(value: ValueRef<'_>) -> &'static str {
    let short = |b: &Bytes| b.len() <= LISTPACK_VALUE;
    match value {
        ValueRef::Str(s) if is_int_encoded(&s) => "int",
        ValueRef::Str(s) if s.len() <= EMBSTR_MAX => "embstr",
        ValueRef::Str(_) => "raw",
        ValueRef::Hash(h)
            if h.len() <= LISTPACK_ENTRIES && h.iter().all(|(f, v)| short(f) && short(v)) =>
        {
            "listpack"
        }
        ValueRef::Hash(_) => "hashtable",
        // Intset members are integers Redis's `string2ll` accepts.
        ValueRef::Set(s)
            if s.len() <= INTSET_ENTRIES
                && s.iter().all(|m| super::util::parse_i64(m).is_some()) =>
        {
            "intset"
        }
        ValueRef::Set(s) if s.len() <= LISTPACK_ENTRIES && s.iter().all(short) => "listpack",
        ValueRef::Set(_) => "hashtable",
        ValueRef::ZSet(z) if z.len() <= LISTPACK_ENTRIES && z.iter().all(|(m, _)| short(m)) => {
            "listpack"
        }
        ValueRef::ZSet(_) => "skiplist",
        ValueRef::List(l) if fits_one_listpack(l) => "listpack",
        ValueRef::List(_) => "quicklist",
    }
}

/// Whether a list fits the 8 KiB listpack Redis 7.2 keeps small lists in,
/// sizing entries as the listpack format does.
fn fits_one_listpack(list: &List) -> bool {
    // Header (total bytes, count) and end marker.
    let mut bytes = 7;
    for item in list.iter() {
        let entry = match super::util::parse_i64(item).filter(|_| item.len() <= 20) {
            Some(0..=127) => 1,
            Some(-4096..=4095) => 2,
            Some(-32_768..=32_767) => 3,
            Some(-8_388_608..=8_388_607) => 4,
            Some(-2_147_483_648..=2_147_483_647) => 5,
            Some(_) => 9,
            None if item.len() < 64 => 1 + item.len(),
            None if item.len() < 4096 => 2 + item.len(),
            None => 5 + item.len(),
        };
        // Each entry ends with its own length, for walking backwards.
        let backlen = match entry {
            0..=127 => 1,
            128..=16_382 => 2,
            16_383..=2_097_150 => 3,
            2_097_151..=268_435_454 => 4,
            _ => 5,
        };
        bytes += entry + backlen;
        if bytes > LIST_LISTPACK_BYTES {
            return false;
        }
    }
    true
}

/// Whether a collection comes back whole from its *SCAN (Redis's compact
/// encodings ignore the cursor).
pub(super) fn is_compact(value: ValueRef<'_>) -> bool {
    matches!(encoding(value), "listpack" | "intset")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Value;
    use crate::types::{End, Hash, Set, SortedSet};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn strings_encode_like_redis() {
        let enc = |s: &str| encoding(Value::Str(b(s)).as_ref());
        assert_eq!(enc("12345"), "int");
        assert_eq!(enc("-9223372036854775808"), "int");
        assert_eq!(enc("9223372036854775808"), "embstr");
        assert_eq!(enc("007"), "embstr");
        assert_eq!(enc(&"x".repeat(44)), "embstr");
        assert_eq!(enc(&"x".repeat(45)), "raw");
    }

    #[test]
    fn collections_encode_by_redis_default_thresholds() {
        let set = |n: usize, f: &dyn Fn(usize) -> String| {
            Value::Set((0..n).map(|i| b(&f(i))).collect::<Set>())
        };
        assert_eq!(encoding(set(512, &|i| i.to_string()).as_ref()), "intset");
        assert_eq!(encoding(set(513, &|i| i.to_string()).as_ref()), "hashtable");
        assert_eq!(
            encoding(set(128, &|i| format!("m{i}")).as_ref()),
            "listpack"
        );
        assert_eq!(
            encoding(set(129, &|i| format!("m{i}")).as_ref()),
            "hashtable"
        );
        assert_eq!(encoding(set(1, &|_| "x".repeat(65)).as_ref()), "hashtable");

        let mut h = Hash::default();
        h.insert(b("f"), b(&"v".repeat(64)));
        assert_eq!(encoding(Value::Hash(h.clone()).as_ref()), "listpack");
        h.insert(b("g"), b(&"v".repeat(65)));
        assert_eq!(encoding(Value::Hash(h).as_ref()), "hashtable");

        let mut z = SortedSet::default();
        for i in 0..128 {
            z.insert(b(&i.to_string()), i as f64);
        }
        assert_eq!(encoding(Value::ZSet(z.clone()).as_ref()), "listpack");
        z.insert(b("one more"), 0.0);
        assert_eq!(encoding(Value::ZSet(z).as_ref()), "skiplist");

        let mut l = List::default();
        for _ in 0..1000 {
            l.push(End::Right, b("abcde"));
        }
        // 1000 entries of 1 + 5 bytes and a 1-byte back length: 7007 bytes.
        assert_eq!(encoding(Value::List(l.clone()).as_ref()), "listpack");
        for _ in 0..200 {
            l.push(End::Right, b("abcde"));
        }
        assert_eq!(encoding(Value::List(l).as_ref()), "quicklist");
        let mut big = List::default();
        big.push(End::Left, b(&"x".repeat(9000)));
        assert_eq!(encoding(Value::List(big).as_ref()), "quicklist");
    }
}
