//! Collection values. Each keeps a running count of the bytes it holds, so
//! that the keyspace can account memory in O(1) per write instead of walking
//! a collection.
//!
//! Every element stored is first given an allocation of its own
//! ([`own`]): arguments arrive as slices of a connection's read buffer, and
//! one small field kept as such a slice would keep the whole buffer (tens of
//! kilobytes, shared with every other argument of the read) alive, uncounted
//! and unfreeable by eviction.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use bytes::Bytes;

/// Strings up to this long are copied out of the request that brought them
/// (Redis copies arguments below `PROTO_MBULK_BIG_ARG` the same way). A
/// slice would keep the whole read buffer alive, shared with every other
/// key and value of the same read, and evicting the key would free nothing.
pub const COPY_MAX: usize = 32 * 1024;

/// `b`, in an allocation of its own unless it already has one or is large
/// enough to fill the buffer it shares.
pub fn own(b: Bytes) -> Bytes {
    if b.len() <= COPY_MAX && !b.is_unique() {
        Bytes::copy_from_slice(&b)
    } else {
        b
    }
}

/// Bytes charged per collection element on top of its payload: a hash table
/// slot and the `Bytes` headers. An estimate until the allocator's own
/// statistics replace it.
const ELEMENT_OVERHEAD: usize = 48;

/// A hash: field → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hash {
    map: HashMap<Bytes, Bytes>,
    bytes: usize,
}

impl Hash {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.map.get(field)
    }

    /// Sets a field; true when the field is new.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> bool {
        let (field, value) = (own(field), own(value));
        let add = value.len();
        match self.map.insert(field.clone(), value) {
            Some(old) => {
                self.bytes = self.bytes - old.len() + add;
                false
            }
            None => {
                self.bytes += field.len() + add + ELEMENT_OVERHEAD;
                true
            }
        }
    }

    pub fn remove(&mut self, field: &[u8]) -> bool {
        match self.map.remove_entry(field) {
            Some((f, v)) => {
                self.bytes -= f.len() + v.len() + ELEMENT_OVERHEAD;
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.map.iter()
    }
}

/// A set of members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    members: HashSet<Bytes>,
    bytes: usize,
}

impl Set {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        self.members.contains(m)
    }

    /// Adds a member; true when it is new.
    pub fn insert(&mut self, m: Bytes) -> bool {
        let m = own(m);
        let len = m.len();
        let new = self.members.insert(m);
        if new {
            self.bytes += len + ELEMENT_OVERHEAD;
        }
        new
    }

    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self.members.take(m) {
            Some(old) => {
                self.bytes -= old.len() + ELEMENT_OVERHEAD;
                true
            }
            None => false,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Bytes> {
        self.members.iter()
    }
}

impl FromIterator<Bytes> for Set {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> Self {
        let mut s = Set::default();
        for m in iter {
            s.insert(m);
        }
        s
    }
}

/// A list of elements, cheap to push and pop at both ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct List {
    items: VecDeque<Bytes>,
    bytes: usize,
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Left,
    Right,
}

impl List {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn charge(b: &Bytes) -> usize {
        b.len() + ELEMENT_OVERHEAD
    }

    pub fn push(&mut self, end: End, item: Bytes) {
        let item = own(item);
        self.bytes += Self::charge(&item);
        match end {
            End::Left => self.items.push_front(item),
            End::Right => self.items.push_back(item),
        }
    }

    pub fn pop(&mut self, end: End) -> Option<Bytes> {
        let item = match end {
            End::Left => self.items.pop_front(),
            End::Right => self.items.pop_back(),
        }?;
        self.bytes -= Self::charge(&item);
        Some(item)
    }

    pub fn get(&self, index: usize) -> Option<&Bytes> {
        self.items.get(index)
    }

    /// Replaces the element at `index`; false when out of range.
    pub fn set(&mut self, index: usize, item: Bytes) -> bool {
        let Some(slot) = self.items.get_mut(index) else {
            return false;
        };
        let item = own(item);
        self.bytes = self.bytes - slot.len() + item.len();
        *slot = item;
        true
    }

    pub fn insert(&mut self, index: usize, item: Bytes) {
        let item = own(item);
        self.bytes += Self::charge(&item);
        self.items.insert(index, item);
    }

    pub fn remove(&mut self, index: usize) -> Option<Bytes> {
        let item = self.items.remove(index)?;
        self.bytes -= Self::charge(&item);
        Some(item)
    }

    /// Keeps only the elements in `start..end`.
    pub fn retain_range(&mut self, start: usize, end: usize) {
        let end = end.min(self.items.len());
        let start = start.min(end);
        let removed: usize = self
            .items
            .drain(end..)
            .map(|i| Self::charge(&i))
            .sum::<usize>()
            + self
                .items
                .drain(..start)
                .map(|i| Self::charge(&i))
                .sum::<usize>();
        self.bytes -= removed;
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator {
        self.items.iter()
    }
}

/// A score with a total order (NaN is refused before it gets here; -0 is
/// stored as 0 so that equal scores compare equal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(f64);

impl Score {
    pub fn new(f: f64) -> Self {
        Score(if f == 0.0 { 0.0 } else { f })
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A sorted set: members ordered by (score, member).
///
/// A map gives O(1) score lookups and an ordered set gives ordered ranges.
/// Ranks are counted by walking the ordered set (O(rank)); an order-statistic
/// structure replaces it when the engine work needs ranks in O(log n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedSet {
    scores: HashMap<Bytes, Score>,
    order: BTreeSet<(Score, Bytes)>,
    bytes: usize,
}

impl SortedSet {
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.get())
    }

    /// Sets `member`'s score; returns the previous one.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        let member = own(member);
        let score = Score::new(score);
        let previous = self.scores.insert(member.clone(), score);
        match previous {
            Some(old) => {
                self.order.remove(&(old, member.clone()));
            }
            None => self.bytes += member.len() + 2 * ELEMENT_OVERHEAD,
        }
        self.order.insert((score, member));
        previous.map(Score::get)
    }

    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let (m, score) = self.scores.remove_entry(member)?;
        self.order.remove(&(score, m.clone()));
        self.bytes -= m.len() + 2 * ELEMENT_OVERHEAD;
        Some(score.get())
    }

    /// 0-based rank in ascending order.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = *self.scores.get(member)?;
        Some(
            self.order
                .range(..(score, Bytes::copy_from_slice(member)))
                .count(),
        )
    }

    /// Members in ascending order of (score, member).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Bytes, f64)> {
        self.order.iter().map(|(s, m)| (m, s.get()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_elements_do_not_pin_the_request_buffer() {
        // One read buffer that every argument is a slice of.
        let frame = Bytes::from(b"fieldvaluememberitem".to_vec());
        let arg = |a: usize, b: usize| frame.slice(a..b);
        let mut h = Hash::default();
        h.insert(arg(0, 5), arg(5, 10));
        let mut s = Set::default();
        s.insert(arg(10, 16));
        let mut l = List::default();
        l.push(End::Left, arg(16, 20));
        l.insert(0, arg(16, 20));
        l.set(1, arg(0, 5));
        let mut z = SortedSet::default();
        z.insert(arg(10, 16), 1.0);
        // Nothing kept a slice: the buffer has one owner again.
        assert!(frame.is_unique());
        assert_eq!(h.get(b"field").map(|v| &v[..]), Some(&b"value"[..]));
    }

    #[test]
    fn hash_accounting_follows_every_change() {
        let mut h = Hash::default();
        assert!(h.insert(Bytes::from("f"), Bytes::from("abc")));
        assert!(!h.insert(Bytes::from("f"), Bytes::from("abcdef")));
        assert_eq!(h.bytes(), 1 + 6 + ELEMENT_OVERHEAD);
        assert!(h.remove(b"f"));
        assert_eq!(h.bytes(), 0);
        assert!(!h.remove(b"f"));
    }

    #[test]
    fn list_accounting_follows_every_change() {
        let mut l = List::default();
        for (i, s) in ["a", "bb", "ccc", "dddd"].into_iter().enumerate() {
            l.push(
                if i % 2 == 0 { End::Right } else { End::Left },
                Bytes::from(s),
            );
        }
        assert_eq!(
            l.iter().map(|b| b.as_ref()).collect::<Vec<_>>(),
            [&b"dddd"[..], b"bb", b"a", b"ccc"]
        );
        l.set(0, Bytes::from("x"));
        l.insert(1, Bytes::from("yy"));
        l.retain_range(1, 3);
        assert_eq!(
            l.iter().map(|b| b.as_ref()).collect::<Vec<_>>(),
            [&b"yy"[..], b"bb"]
        );
        assert_eq!(l.bytes(), 4 + 2 * ELEMENT_OVERHEAD);
        l.pop(End::Left);
        l.remove(0);
        assert_eq!(l.bytes(), 0);
        assert!(l.is_empty());
    }

    #[test]
    fn sorted_sets_order_by_score_then_member() {
        let mut z = SortedSet::default();
        z.insert(Bytes::from("b"), 1.0);
        z.insert(Bytes::from("a"), 1.0);
        z.insert(Bytes::from("c"), -0.0);
        assert_eq!(z.insert(Bytes::from("c"), 5.0), Some(0.0));
        let order: Vec<_> = z.iter().map(|(m, s)| (m.clone(), s)).collect();
        assert_eq!(
            order,
            vec![
                (Bytes::from("a"), 1.0),
                (Bytes::from("b"), 1.0),
                (Bytes::from("c"), 5.0)
            ]
        );
        assert_eq!(z.rank(b"c"), Some(2));
        assert_eq!(z.remove(b"a"), Some(1.0));
        z.remove(b"b");
        z.remove(b"c");
        assert_eq!(z.bytes(), 0);
        assert!(z.is_empty());
    }

    #[test]
    fn set_accounting_follows_every_change() {
        let mut s: Set = ["a", "bb", "a"].into_iter().map(Bytes::from).collect();
        assert_eq!(s.len(), 2);
        assert_eq!(s.bytes(), 3 + 2 * ELEMENT_OVERHEAD);
        s.remove(b"a");
        s.remove(b"bb");
        assert_eq!(s.bytes(), 0);
    }
}
