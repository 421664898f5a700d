//! Drawing keys at random, for eviction and RANDOMKEY.
//!
//! Every key must be equally likely to be drawn, or approximated LRU/LFU
//! degrades: a key that is rarely sampled is rarely evicted, however cold.
//! Walking from a random slot is not uniform (with fewer keys than slots, a
//! key behind a run of full slots is seldom reached), so the keyspace keeps
//! a Fenwick tree of per-slot key counts: a uniformly random index among
//! all keys maps to its slot in 14 steps, and the keys that follow it in
//! slot order complete the sample, each key drawn with the same probability.

use std::collections::BTreeSet;

use bytes::Bytes;
use hashbrown::HashTable;
use tidecache_topology::SLOT_COUNT;

use super::Tables;
use super::record::Record;

/// Key counts per slot, as a Fenwick (binary indexed) tree: O(log slots)
/// to change a count or to find the slot holding the n-th key.
pub(super) struct SlotCounts {
    /// 1-based: `tree[i]` sums the counts of slots `(i - lowbit(i), i]`.
    tree: Vec<u32>,
}

const SLOTS: usize = SLOT_COUNT as usize;

impl SlotCounts {
    pub fn new() -> Self {
        SlotCounts {
            tree: vec![0; SLOTS + 1],
        }
    }

    pub fn add(&mut self, slot: usize, delta: i32) {
        let mut i = slot + 1;
        while i <= SLOTS {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }

    pub fn clear(&mut self) {
        self.tree.fill(0);
    }

    /// The slot holding the key at index `n` (0-based) in slot order, and
    /// the key's index within that slot; `None` past the last key.
    pub fn find(&self, mut n: u32) -> Option<(usize, u32)> {
        let mut pos = 0;
        let mut step = SLOTS;
        while step > 0 {
            let next = pos + step;
            if next <= SLOTS && self.tree[next] <= n {
                n -= self.tree[next];
                pos = next;
            }
            step >>= 1;
        }
        // `pos` slots hold at most `n` keys in all: the key is in slot `pos`.
        (pos < SLOTS).then_some((pos, n))
    }
}

/// Calls `f` on up to `n` records drawn at random, only keys with a
/// deadline when `volatile`, as eviction samples them (Redis's
/// `dictGetSomeKeys`).
pub(super) fn sample(
    tables: &Tables,
    deadlines: &BTreeSet<(u64, Bytes)>,
    len: usize,
    volatile: bool,
    n: usize,
    mut f: impl FnMut(&Record),
) {
    let mut rng = rand::rng();
    // When few keys have a deadline, walking the keyspace would mostly meet
    // others: go to the deadline index straight away.
    let taken = if volatile && deadlines.len() * 2 < len {
        0
    } else {
        walk(
            &tables.slots,
            &tables.counts,
            len,
            volatile,
            n,
            &mut rng,
            &mut f,
        )
    };
    // A walk can also fall short where keys without a deadline cluster
    // (random eviction leaves such runs behind): the index never does.
    if volatile && taken < n {
        from_deadlines(tables, deadlines, n - taken, &mut rng, &mut f);
    }
}

/// Consecutive keys from a uniformly random one, in slot order and within
/// a slot in hash order (as random as any other with respect to their
/// use). Visits at most `16 n` keys; returns how many it passed to `f`.
fn walk(
    slots: &[HashTable<Record>],
    counts: &SlotCounts,
    len: usize,
    volatile: bool,
    n: usize,
    rng: &mut impl rand::Rng,
    f: &mut impl FnMut(&Record),
) -> usize {
    if len == 0 || n == 0 {
        return 0;
    }
    let first = rng.random_range(0..u32::try_from(len).unwrap_or(u32::MAX));
    let Some((start, skip)) = counts.find(first) else {
        return 0;
    };
    let (mut taken, mut visited) = (0, 0);
    let budget = n.saturating_mul(16);
    for i in 0..slots.len() {
        let slot = &slots[(start + i) % slots.len()];
        let skip = if i == 0 { skip as usize } else { 0 };
        for r in slot.iter().skip(skip) {
            visited += 1;
            if !volatile || r.deadline() != 0 {
                f(r);
                taken += 1;
                if taken >= n {
                    return taken;
                }
            }
            if visited >= budget {
                return taken;
            }
        }
    }
    taken
}

/// Keys with a deadline, from the deadline index: at random deadlines
/// between the first and the last, a few steps into the keys there (keys
/// set together often share a deadline).
fn from_deadlines(
    tables: &Tables,
    deadlines: &BTreeSet<(u64, Bytes)>,
    n: usize,
    rng: &mut impl rand::Rng,
    f: &mut impl FnMut(&Record),
) {
    let (Some(&(lo, _)), Some(&(hi, _))) = (deadlines.first(), deadlines.last()) else {
        return;
    };
    for _ in 0..n {
        let from = (rng.random_range(lo..=hi), Bytes::new());
        let step = rng.random_range(0..8);
        let found = deadlines
            .range(from.clone()..)
            .nth(step)
            .or_else(|| deadlines.range(from..).next());
        if let Some((_, k)) = found
            && let Some(r) = tables.get(k)
        {
            f(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn find_agrees_with_a_running_sum(
            counts in proptest::collection::vec((0..SLOTS, 1..50i32), 0..200),
        ) {
            let mut tree = SlotCounts::new();
            let mut plain = vec![0u32; SLOTS];
            for &(slot, c) in &counts {
                tree.add(slot, c);
                plain[slot] += c as u32;
            }
            // Take some back out, as deletions do.
            for &(slot, _) in counts.iter().step_by(3) {
                tree.add(slot, -1);
                plain[slot] -= 1;
            }
            let total: u32 = plain.iter().sum();
            let mut n = 0;
            for (slot, &c) in plain.iter().enumerate() {
                for within in 0..c {
                    prop_assert_eq!(tree.find(n), Some((slot, within)));
                    n += 1;
                }
            }
            prop_assert_eq!(tree.find(total), None);
        }
    }
}
