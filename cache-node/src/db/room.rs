//! Making room for a write at `maxmemory`: evicting, as the policy
//! chooses ([`Db::evict_one`]), until used memory is within the limit.

use std::time::{Duration, Instant};

use super::Db;

/// The reply to a write refused for memory.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Longest one command spends evicting. Past it the command runs anyway and
/// the next writes go on evicting (Redis bounds its eviction cycles the same
/// way, by `maxmemory-eviction-tenacity`, 500 µs by default).
const TIME_LIMIT: Duration = Duration::from_millis(1);
/// Evictions between two looks at the time limit.
const CHECK_EVERY: usize = 16;

/// What [`make_room`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// Used memory is within the limit (or there is no limit).
    Fits,
    /// Still over, but evicting made progress and will go on with the next
    /// write (Redis's `EVICT_RUNNING`).
    Evicting,
    /// Over, and nothing may be evicted (Redis's `EVICT_FAIL`).
    Full,
}

/// Evicts keys until used memory is within `max` (0 = no limit), nothing
/// more may be evicted, or the time limit is reached. With `evict` false it
/// only measures (a client that set `CLIENT NO-EVICT`).
pub fn make_room(db: &mut Db, max: u64, evict: bool) -> Room {
    if max == 0 {
        return Room::Fits;
    }
    let used = db.used_memory();
    if used <= max {
        return Room::Fits;
    }
    if !evict {
        return Room::Full;
    }
    // Progress is counted in the keyspace's accounting, which moves with
    // every removal, rather than by asking the allocator after each one.
    let to_free = used - max;
    let before = db.used_bytes() as u64;
    let started = Instant::now();
    let mut evicted = 0usize;
    loop {
        if before.saturating_sub(db.used_bytes() as u64) >= to_free {
            return Room::Fits;
        }
        if !db.evict_one() {
            return Room::Full;
        }
        evicted += 1;
        if evicted.is_multiple_of(CHECK_EVERY) && started.elapsed() >= TIME_LIMIT {
            return Room::Evicting;
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::evict::{Policy, Settings};

    fn keyspace(policy: Policy, keys: usize) -> Db {
        let mut db =
            Db::new(crate::clock::Clock::manual(1_700_000_000_000)).with_eviction(Settings {
                policy,
                ..Settings::default()
            });
        for i in 0..keys {
            db.set(
                Bytes::from(format!("k{i}")),
                crate::db::Value::Str(Bytes::from(vec![b'v'; 100])),
                None,
            );
        }
        db
    }

    /// Evicts as successive writes would, past the time limit of each.
    fn settle(db: &mut Db, max: u64) -> Room {
        loop {
            match make_room(db, max, true) {
                Room::Evicting => continue,
                done => return done,
            }
        }
    }

    #[test]
    fn room_is_made_down_to_the_limit_and_no_further() {
        let mut db = keyspace(Policy::AllKeysLru, 1000);
        let used = db.used_memory();
        assert_eq!(make_room(&mut db, 0, true), Room::Fits, "no limit");
        assert_eq!(make_room(&mut db, used, true), Room::Fits, "at the limit");
        assert_eq!(db.len(), 1000);
        let limit = used / 2;
        assert_eq!(make_room(&mut db, limit, false), Room::Full, "NO-EVICT");
        assert_eq!(db.len(), 1000);
        assert_eq!(settle(&mut db, limit), Room::Fits);
        let after = db.used_memory();
        assert!(after <= limit, "{after} over {limit}");
        // Only as many keys as it took: one more would have been enough.
        assert!(after > limit - 1000, "{after} far under {limit}");
        assert_eq!(db.stats.evicted, 1000 - db.len() as u64);
    }

    #[test]
    fn without_anything_to_evict_the_room_is_full() {
        let mut db = keyspace(Policy::NoEviction, 100);
        assert_eq!(make_room(&mut db, 1, true), Room::Full);
        assert_eq!(db.len(), 100);
        // volatile-* and no key with a TTL: the same.
        let mut db = keyspace(Policy::VolatileLru, 100);
        assert_eq!(make_room(&mut db, 1, true), Room::Full);
        assert_eq!(db.len(), 100);
        // A limit of one byte takes every key (the keyspace's own
        // accounting then reads zero; jemalloc's would stay above and the
        // next write would find the room full).
        let mut db = keyspace(Policy::AllKeysRandom, 100);
        assert_eq!(settle(&mut db, 1), Room::Fits);
        assert!(db.is_empty());
        assert_eq!(db.stats.evicted, 100);
        assert_eq!(make_room(&mut db, 1, true), Room::Fits);
    }
}
