//! The walk the SCAN family shares: one page of a collection for HSCAN,
//! SSCAN and ZSCAN (their grammar is in [`super::args`]), and the reply
//! shape of every *SCAN. Not a command of its own: the handlers live with
//! their types.

use bytes::Bytes;

use super::Ctx;
use super::args::{ScanOptions, scan_cursor};
use super::encoding::is_compact;
use crate::frame::Reply;

/// `[cursor, [items...]]`, the cursor as a bulk string.
pub(super) fn reply(next: u64, items: Vec<Reply>) -> Reply {
    Reply::Array(vec![Reply::text(&next.to_string()), Reply::Array(items)])
}

/// Below this many calls a whole element scan never takes more; see
/// [`scan_members`].
const SCAN_ROUNDS: usize = 32;

/// HSCAN, SSCAN and ZSCAN: the cursor, then the key (a missing key is an
/// empty scan), its type, then the options, in Redis's order; then one page
/// of the collection's `members` (with its length), each chosen member
/// turned into its replies by `emit`.
pub(super) fn scan_collection<'v, C, T, I>(
    cx: &'v mut Ctx,
    args: &[Bytes],
    members: impl FnOnce(&'v C) -> (I, usize),
    emit: impl Fn(&Bytes, T) -> Vec<Reply>,
) -> Reply
where
    C: crate::db::Collection + 'v,
    I: Iterator<Item = (&'v Bytes, T)>,
{
    let cursor = match scan_cursor(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let Some(entry) = cx.db.peek(&args[1]) else {
        return reply(0, vec![]);
    };
    let value = entry.value;
    let Some(collection) = C::of(value) else {
        return Reply::error(crate::db::WRONGTYPE);
    };
    let opts = match ScanOptions::parse(&args[3..], false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let (iter, len) = members(collection);
    let (next, items) = scan_members(iter, len, is_compact(value), cursor, &opts);
    reply(
        next,
        items.into_iter().flat_map(|(m, t)| emit(m, t)).collect(),
    )
}

/// One step of HSCAN, SSCAN or ZSCAN over a collection's `members` (each
/// with what the reply needs of it), starting at `cursor`. Returns the next
/// cursor (0 when done) and the members chosen, already filtered by MATCH.
///
/// A collection Redis keeps compact (`compact`: listpack or intset) comes
/// back whole with cursor 0, whatever the cursor, as in Redis. A larger one
/// is walked in the order of a hash of each member that is fixed for the
/// life of the process, and the cursor is the position in that hash space
/// where the next call starts. Positions never move, so a member present for
/// the whole iteration is returned exactly once however the collection
/// grows, shrinks or changes between calls (Redis's reverse-binary cursor
/// exists to survive rehashing, which a fixed hash space does not have).
///
/// The collection types keep no index by that hash, so each call walks the
/// whole collection. So that a full iteration costs O(n · SCAN_ROUNDS)
/// rather than O(n² / COUNT), a call returns at least 1/SCAN_ROUNDS of the
/// collection: COUNT is only a hint in Redis too.
pub(super) fn scan_members<'a, T>(
    members: impl Iterator<Item = (&'a Bytes, T)>,
    len: usize,
    compact: bool,
    cursor: u64,
    opts: &ScanOptions,
) -> (u64, Vec<(&'a Bytes, T)>) {
    let keep = |(m, _): &(&'a Bytes, T)| opts.matches(m);
    if compact {
        return (0, members.filter(keep).collect());
    }
    let batch = opts.count.max(len.div_ceil(SCAN_ROUNDS)).max(1);
    let mut ahead: Vec<(u64, (&'a Bytes, T))> = members
        .map(|item| (scan_hash(item.0), item))
        .filter(|(h, _)| *h >= cursor)
        .collect();
    if ahead.len() <= batch {
        return (
            0,
            ahead
                .into_iter()
                .map(|(_, item)| item)
                .filter(keep)
                .collect(),
        );
    }
    ahead.select_nth_unstable_by_key(batch - 1, |(h, _)| *h);
    let last = ahead[batch - 1].0;
    let total = ahead.len();
    // Members sharing the last hash go in this batch too: the next cursor
    // starts after that hash.
    let taken: Vec<_> = ahead.into_iter().filter(|(h, _)| *h <= last).collect();
    let next = match last.checked_add(1) {
        Some(next) if taken.len() < total => next,
        _ => 0,
    };
    (
        next,
        taken
            .into_iter()
            .map(|(_, item)| item)
            .filter(keep)
            .collect(),
    )
}

/// The position of a member in the element-scan order: a keyed hash, the
/// key drawn once per process so that clients cannot aim at collisions.
fn scan_hash(member: &[u8]) -> u64 {
    use std::hash::BuildHasher as _;
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new)
        .hash_one(member)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn opts(count: usize) -> ScanOptions {
        ScanOptions {
            pattern: None,
            count,
            type_: None,
        }
    }

    /// Runs a whole element scan over `live`, changing it between calls
    /// with `change`, and returns everything returned.
    fn full_scan(
        live: &mut std::collections::BTreeSet<Bytes>,
        count: usize,
        mut change: impl FnMut(&mut std::collections::BTreeSet<Bytes>, usize),
    ) -> Vec<Bytes> {
        let (mut cursor, mut seen, mut round) = (0, Vec::new(), 0);
        loop {
            let items: Vec<Bytes> = live.iter().cloned().collect();
            let (next, got) = scan_members(
                items.iter().map(|m| (m, ())),
                items.len(),
                false,
                cursor,
                &opts(count),
            );
            seen.extend(got.into_iter().map(|(m, _)| m.clone()));
            if next == 0 {
                return seen;
            }
            assert!(next > cursor, "the cursor moves forward");
            cursor = next;
            change(live, round);
            round += 1;
            assert!(round < 10_000, "the scan terminates");
        }
    }

    #[test]
    fn element_scans_return_every_stable_member_despite_changes() {
        let start: std::collections::BTreeSet<Bytes> =
            (0..2000).map(|i| b(&format!("m{i}"))).collect();
        // Remove some of the original members and add new ones between calls.
        let mut live = start.clone();
        let seen = full_scan(&mut live, 10, |live, round| {
            live.remove(&b(&format!("m{}", round * 7)));
            for j in 0..20 {
                live.insert(b(&format!("new{round}-{j}")));
            }
        });
        let seen: std::collections::HashSet<_> = seen.into_iter().collect();
        for m in start.iter().filter(|m| live.contains(*m)) {
            assert!(seen.contains(m), "{m:?} missed");
        }
        // Unchanged collection: each member exactly once.
        let mut live = start.clone();
        let seen = full_scan(&mut live, 10, |_, _| {});
        assert_eq!(seen.len(), start.len());
        assert_eq!(
            seen.into_iter().collect::<std::collections::BTreeSet<_>>(),
            start
        );
    }

    #[test]
    fn element_scans_take_a_share_of_the_collection_per_call() {
        let items: Vec<Bytes> = (0..3200).map(|i| b(&i.to_string())).collect();
        let (next, got) = scan_members(
            items.iter().map(|m| (m, ())),
            items.len(),
            false,
            0,
            &opts(10),
        );
        assert_ne!(next, 0);
        assert_eq!(got.len(), 100);
        // A huge COUNT returns everything at once.
        let (next, got) = scan_members(
            items.iter().map(|m| (m, ())),
            items.len(),
            false,
            0,
            &opts(usize::MAX),
        );
        assert_eq!((next, got.len()), (0, 3200));
        // Compact collections come back whole even from a later cursor.
        let (next, got) = scan_members(
            items.iter().take(5).map(|m| (m, ())),
            5,
            true,
            12345,
            &opts(1),
        );
        assert_eq!((next, got.len()), (0, 5));
    }
}
