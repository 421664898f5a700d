//! Eviction at `maxmemory`: the policies, the per-key access data they rank
//! keys by, and the choice of victims.
//!
//! Each entry carries one `u32` of access data, read as Redis reads its
//! 24-bit `lru` field: under an LFU policy the minute of the last decay
//! (16 bits) and a logarithmic access counter (8 bits); under every other
//! policy an LRU clock. Ranking is approximate, as in Redis: each eviction
//! samples `maxmemory-samples` keys and offers them to a small [`Pool`] of the
//! best victims seen so far, so that good candidates found by one eviction
//! serve the next ones. `volatile-ttl` (and the first phase of
//! `volatile-first`) need no sampling: the keyspace keeps its deadlines in
//! order, so the soonest one is known exactly.
//!
//! The pure parts — counters, clocks, ranks, which keys a policy may take —
//! are free functions here; [`crate::db::Db::evict_one`] applies them to the
//! keyspace and [`make_room`] runs evictions until a command fits.

use bytes::Bytes;

/// What to do when a write would take memory past `maxmemory`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
    AllKeysLru,
    AllKeysLfu,
    AllKeysRandom,
    #[default]
    NoEviction,
    /// Tidecache's own, what ElastiCache Serverless does at its storage
    /// limit: keys with a TTL go first, soonest deadline first; when no key
    /// has one, least recently used keys (as `allkeys-lru`).
    VolatileFirst,
}

impl Policy {
    /// Every policy, in the order Redis lists them in its errors, ours last.
    pub const ALL: [Policy; 9] = [
        Policy::VolatileLru,
        Policy::VolatileLfu,
        Policy::VolatileRandom,
        Policy::VolatileTtl,
        Policy::AllKeysLru,
        Policy::AllKeysLfu,
        Policy::AllKeysRandom,
        Policy::NoEviction,
        Policy::VolatileFirst,
    ];

    /// The names the `--maxmemory-policy` flag accepts.
    pub const NAMES: [&str; 9] = [
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "noeviction",
        "volatile-first",
    ];

    pub fn name(self) -> &'static str {
        let i = Self::ALL
            .iter()
            .position(|&p| p == self)
            .expect("every policy is listed");
        Self::NAMES[i]
    }

    /// Parses a policy name, in any case (as CONFIG SET does).
    pub fn parse(name: &str) -> Option<Policy> {
        Self::NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| Self::ALL[i])
    }

    /// What the policy records about each key: the one place a policy's
    /// LRU or LFU nature is read from.
    pub fn kind(self) -> Kind {
        match self {
            Policy::AllKeysLfu | Policy::VolatileLfu => Kind::Lfu,
            // `volatile-first` ranks keys by LRU once no key has a deadline.
            Policy::AllKeysLru | Policy::VolatileLru | Policy::VolatileFirst => Kind::Lru,
            Policy::VolatileRandom
            | Policy::VolatileTtl
            | Policy::AllKeysRandom
            | Policy::NoEviction => Kind::Other,
        }
    }

    /// Whether entries carry an LFU counter rather than an LRU clock.
    pub fn is_lfu(self) -> bool {
        self.kind() == Kind::Lfu
    }
}

/// What a policy records about each key, which decides what OBJECT
/// IDLETIME and FREQ may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `noeviction`, `*-random`, `volatile-ttl`: Redis still keeps an LRU
    /// clock, so IDLETIME answers and FREQ refuses.
    Other,
    /// `allkeys-lru`, `volatile-lru`, `volatile-first`.
    Lru,
    /// `allkeys-lfu`, `volatile-lfu`: a frequency counter replaces the clock.
    Lfu,
}

impl Kind {
    /// LRU and LFU policies need per-key access data.
    pub fn tracks_access(self) -> bool {
        self != Kind::Other
    }
}

/// Redis's `LFU_INIT_VAL`: new keys start with a few accesses' credit, so
/// that they are not the first to go before they had a chance to be read.
pub const LFU_INIT: u8 = 5;
/// Best victims remembered between evictions (Redis's `EVPOOL_SIZE`).
pub const POOL_SIZE: usize = 16;
/// Bounds of `maxmemory-samples`. Redis 7.2 allows up to `INT_MAX`; sampling
/// runs under the keyspace lock, so we keep Redis 8's bound.
pub const MAX_SAMPLES: usize = 64;
/// Milliseconds per tick of the LRU clock. A `u32` of 4 ms ticks wraps after
/// 198 days, about as long as Redis's 24 bits of seconds (194 days), with a
/// resolution fine enough to tell a key read a moment ago from one written
/// a second ago.
pub const LRU_TICK_MS: u64 = 4;

/// Eviction tunables, changeable with CONFIG SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub policy: Policy,
    /// Keys sampled per eviction (`maxmemory-samples`), 1..=64.
    pub samples: usize,
    /// `lfu-log-factor`: how many accesses it takes to grow the counter.
    pub lfu_log_factor: u32,
    /// `lfu-decay-time`: minutes per step the counter decays by (0 = never).
    pub lfu_decay_time: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: Policy::NoEviction,
            samples: 5,
            lfu_log_factor: 10,
            lfu_decay_time: 1,
        }
    }
}

// ---------------------------------------------------------------------------
// Access data.

/// The LRU clock at `now_ms`.
pub fn lru_clock(now_ms: u64) -> u32 {
    // Wrapping by design: idle times are differences modulo 2^32 ticks.
    (now_ms / LRU_TICK_MS) as u32
}

/// Milliseconds since an entry whose LRU clock reads `access` was used.
pub fn lru_idle_ms(access: u32, now_ms: u64) -> u64 {
    u64::from(lru_clock(now_ms).wrapping_sub(access)) * LRU_TICK_MS
}

/// The LFU clock: Unix minutes, 16 bits of them (wraps every 45 days, as in Redis).
pub fn lfu_minutes(now_ms: u64) -> u16 {
    (now_ms / 60_000) as u16
}

pub fn lfu_pack(minutes: u16, counter: u8) -> u32 {
    u32::from(minutes) << 8 | u32::from(counter)
}

pub fn lfu_unpack(access: u32) -> (u16, u8) {
    ((access >> 8) as u16, access as u8)
}

/// Redis's `LFULogIncr`: the counter grows with probability
/// `1 / ((counter - LFU_INIT) * factor + 1)`, so it takes about
/// `factor * n²`-ish accesses to reach `n`; `r` is uniform in [0, 1).
pub fn lfu_log_incr(counter: u8, factor: u32, r: f64) -> u8 {
    if counter == u8::MAX {
        return counter;
    }
    let base = f64::from(counter.saturating_sub(LFU_INIT));
    let p = 1.0 / (base * f64::from(factor) + 1.0);
    if r < p { counter + 1 } else { counter }
}

/// Redis's `LFUDecrAndReturn`: one step down per `decay_time` minutes
/// elapsed since the last decay, never below zero.
pub fn lfu_decay(counter: u8, elapsed_minutes: u16, decay_time: u32) -> u8 {
    if decay_time == 0 {
        return counter;
    }
    let periods = u32::from(elapsed_minutes) / decay_time;
    u8::try_from(u32::from(counter).saturating_sub(periods)).unwrap_or(0)
}

/// The decayed counter of an entry whose LFU data reads `access` (OBJECT FREQ).
pub fn lfu_count(access: u32, now_ms: u64, decay_time: u32) -> u8 {
    let (then, counter) = lfu_unpack(access);
    lfu_decay(counter, lfu_minutes(now_ms).wrapping_sub(then), decay_time)
}

/// Access data of a key created at `now_ms`.
pub fn fresh_access(s: &Settings, now_ms: u64) -> u32 {
    if s.policy.is_lfu() {
        lfu_pack(lfu_minutes(now_ms), LFU_INIT)
    } else {
        lru_clock(now_ms)
    }
}

/// Access data after one more access at `now_ms`; `r` as for [`lfu_log_incr`].
pub fn on_access(s: &Settings, access: u32, now_ms: u64, r: f64) -> u32 {
    if s.policy.is_lfu() {
        let counter = lfu_count(access, now_ms, s.lfu_decay_time);
        lfu_pack(
            lfu_minutes(now_ms),
            lfu_log_incr(counter, s.lfu_log_factor, r),
        )
    } else {
        lru_clock(now_ms)
    }
}

/// How good a victim a key is under `s` (higher goes first): idle
/// milliseconds under LRU, 255 minus the decayed counter under LFU.
pub fn rank(s: &Settings, access: u32, now_ms: u64) -> u64 {
    if s.policy.is_lfu() {
        u64::from(u8::MAX - lfu_count(access, now_ms, s.lfu_decay_time))
    } else {
        lru_idle_ms(access, now_ms)
    }
}

// ---------------------------------------------------------------------------
// Choosing victims.

/// Where the next victim comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing may be evicted: the write is refused.
    Nothing,
    /// The key with the soonest deadline, exactly.
    SoonestDeadline,
    /// A random key; among those with a deadline if `volatile`.
    Random { volatile: bool },
    /// The best ranked key of a sample, through the pool.
    Ranked { volatile: bool },
}

/// Where `policy` takes its next victim from, given how many keys there are
/// and how many of them have a deadline.
pub fn source(policy: Policy, keys: usize, volatile: usize) -> Source {
    let (needs, source) = match policy {
        Policy::NoEviction => return Source::Nothing,
        Policy::AllKeysLru | Policy::AllKeysLfu => (keys, Source::Ranked { volatile: false }),
        Policy::AllKeysRandom => (keys, Source::Random { volatile: false }),
        Policy::VolatileLru | Policy::VolatileLfu => (volatile, Source::Ranked { volatile: true }),
        Policy::VolatileRandom => (volatile, Source::Random { volatile: true }),
        Policy::VolatileTtl => (volatile, Source::SoonestDeadline),
        Policy::VolatileFirst if volatile > 0 => (volatile, Source::SoonestDeadline),
        Policy::VolatileFirst => (keys, Source::Ranked { volatile: false }),
    };
    if needs == 0 { Source::Nothing } else { source }
}

/// The best victims seen so far, worst first (Redis's eviction pool). Keys
/// may have changed or gone since they were ranked: the keyspace checks each
/// one again when it takes it.
#[derive(Debug, Default)]
pub struct Pool {
    entries: Vec<(u64, Bytes)>,
}

impl Pool {
    /// Offers `key` ranked `rank`: kept when the pool has room or it beats
    /// the worst entry, which then leaves. A key already there is re-ranked.
    pub fn offer(&mut self, rank: u64, key: &[u8]) {
        if let Some(i) = self.entries.iter().position(|(_, k)| k == key) {
            self.entries.remove(i);
        } else if self.entries.len() >= POOL_SIZE {
            if rank <= self.entries[0].0 {
                return;
            }
            self.entries.remove(0);
        }
        let at = self.entries.partition_point(|(r, _)| *r <= rank);
        self.entries.insert(at, (rank, Bytes::copy_from_slice(key)));
    }

    /// Takes the best entry.
    pub fn pop(&mut self) -> Option<(u64, Bytes)> {
        self.entries.pop()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(policy: Policy) -> Settings {
        Settings {
            policy,
            ..Settings::default()
        }
    }

    #[test]
    fn policies_parse_and_name_each_other() {
        for (p, name) in Policy::ALL.iter().zip(Policy::NAMES) {
            assert_eq!(p.name(), name);
            assert_eq!(Policy::parse(name), Some(*p));
            assert_eq!(Policy::parse(&name.to_uppercase()), Some(*p));
        }
        for bad in ["", "lru", "allkeys_lru", "allkeys-lru ", "volatile"] {
            assert_eq!(Policy::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Policy::default(), Policy::NoEviction);
        let lfu: Vec<_> = Policy::ALL.iter().filter(|p| p.is_lfu()).collect();
        assert_eq!(lfu, [&Policy::VolatileLfu, &Policy::AllKeysLfu]);
    }

    #[test]
    fn the_log_counter_grows_ever_more_slowly() {
        // At or below the initial value every access counts.
        for c in 0..=LFU_INIT {
            assert_eq!(lfu_log_incr(c, 10, 0.999_999), c + 1);
        }
        // Above it the odds are 1 / ((c - 5) * factor + 1).
        assert_eq!(lfu_log_incr(6, 10, 0.0), 7);
        assert_eq!(lfu_log_incr(6, 10, 1.0 / 11.0 - 1e-9), 7);
        assert_eq!(lfu_log_incr(6, 10, 1.0 / 11.0), 6);
        assert_eq!(lfu_log_incr(15, 10, 1.0 / 101.0 - 1e-9), 16);
        assert_eq!(lfu_log_incr(15, 10, 1.0 / 101.0), 15);
        // A factor of 0 counts every access.
        assert_eq!(lfu_log_incr(200, 0, 0.999), 201);
        // Saturates.
        assert_eq!(lfu_log_incr(255, 0, 0.0), 255);
        // Every counter and draw: never down, at most one up.
        for c in 0..=255u8 {
            for r in [0.0, 0.25, 0.5, 0.999] {
                let n = lfu_log_incr(c, 10, r);
                assert!(n == c || n == c.saturating_add(1), "{c} {r}");
            }
        }
        // Redis's table for factor 10 (redis.conf): 100 hits take a key to
        // about 10, 1000 hits to about 18; the bounds are what 2000 simulated
        // runs spanned.
        let mut rng_state = 0x2545_f491_4f6c_dd1du64;
        let mut draw = || {
            rng_state ^= rng_state << 13;
            rng_state ^= rng_state >> 7;
            rng_state ^= rng_state << 17;
            (rng_state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut c = LFU_INIT;
        for hits in 1..=1000 {
            c = lfu_log_incr(c, 10, draw());
            if hits == 100 {
                assert!((7..=15).contains(&c), "100 hits: {c}");
            }
        }
        assert!((12..=26).contains(&c), "1000 hits: {c}");
    }

    #[test]
    fn the_counter_decays_one_step_per_period() {
        assert_eq!(lfu_decay(10, 0, 1), 10);
        assert_eq!(lfu_decay(10, 3, 1), 7);
        assert_eq!(lfu_decay(10, 3, 2), 9);
        assert_eq!(lfu_decay(10, 19, 2), 1);
        assert_eq!(lfu_decay(10, 20, 2), 0);
        assert_eq!(lfu_decay(10, u16::MAX, 1), 0);
        assert_eq!(lfu_decay(10, u16::MAX, 0), 10, "decay-time 0 never decays");
        assert_eq!(lfu_decay(255, 100, u32::MAX), 255);
        for c in 0..=255u8 {
            for e in [0u16, 1, 7, 300, u16::MAX] {
                for d in [0, 1, 5] {
                    assert!(lfu_decay(c, e, d) <= c);
                }
            }
        }
    }

    #[test]
    fn lfu_data_packs_minutes_and_counter() {
        let now = 1_700_000_000_000;
        let fresh = fresh_access(&with(Policy::AllKeysLfu), now);
        assert_eq!(lfu_unpack(fresh), (lfu_minutes(now), LFU_INIT));
        assert_eq!(lfu_count(fresh, now, 1), LFU_INIT);
        // Two minutes later it decayed by two; an access decays then counts.
        let later = now + 120_000;
        assert_eq!(lfu_count(fresh, later, 1), LFU_INIT - 2);
        let s = with(Policy::AllKeysLfu);
        let touched = on_access(&s, fresh, later, 0.0);
        assert_eq!(lfu_unpack(touched), (lfu_minutes(later), LFU_INIT - 1));
        // The minute clock wraps like Redis's 16 bits.
        let before_wrap = lfu_pack(u16::MAX, 9);
        let after_wrap_ms = (u64::from(u16::MAX) + 3) * 60_000;
        assert_eq!(lfu_count(before_wrap, after_wrap_ms, 1), 9 - 3);
    }

    #[test]
    fn the_lru_clock_measures_idle_time_across_its_wrap() {
        let s = with(Policy::AllKeysLru);
        let t = 1_700_000_000_000;
        let a = fresh_access(&s, t);
        assert_eq!(lru_idle_ms(a, t), 0);
        assert_eq!(lru_idle_ms(a, t + 3), 0, "within one tick");
        assert_eq!(lru_idle_ms(a, t + 10_000), 10_000);
        assert_eq!(on_access(&s, a, t + 500, 0.5), lru_clock(t + 500));
        let wrap = (u64::from(u32::MAX) + 1) * LRU_TICK_MS;
        let old = lru_clock(wrap - 2 * LRU_TICK_MS);
        assert_eq!(lru_idle_ms(old, wrap + LRU_TICK_MS), 3 * LRU_TICK_MS);
    }

    #[test]
    fn ranks_put_the_idlest_and_least_used_first() {
        let now = 1_700_000_000_000;
        let lru = with(Policy::VolatileFirst);
        let old = fresh_access(&lru, now - 60_000);
        let new = fresh_access(&lru, now - 1_000);
        assert!(rank(&lru, old, now) > rank(&lru, new, now));
        let lfu = with(Policy::VolatileLfu);
        let rare = lfu_pack(lfu_minutes(now), 5);
        let common = lfu_pack(lfu_minutes(now), 40);
        assert_eq!(rank(&lfu, rare, now), 250);
        assert!(rank(&lfu, rare, now) > rank(&lfu, common, now));
        // A formerly common key that went cold decays into a victim.
        let faded = lfu_pack(lfu_minutes(now - 60 * 60_000), 40);
        assert!(rank(&lfu, faded, now) > rank(&lfu, rare, now));
    }

    #[test]
    fn each_policy_takes_victims_from_its_own_keys() {
        use Source::*;
        let cases = [
            (Policy::NoEviction, [Nothing, Nothing, Nothing]),
            (
                Policy::AllKeysLru,
                [
                    Nothing,
                    Ranked { volatile: false },
                    Ranked { volatile: false },
                ],
            ),
            (
                Policy::AllKeysLfu,
                [
                    Nothing,
                    Ranked { volatile: false },
                    Ranked { volatile: false },
                ],
            ),
            (
                Policy::AllKeysRandom,
                [
                    Nothing,
                    Random { volatile: false },
                    Random { volatile: false },
                ],
            ),
            (
                Policy::VolatileLru,
                [Nothing, Nothing, Ranked { volatile: true }],
            ),
            (
                Policy::VolatileLfu,
                [Nothing, Nothing, Ranked { volatile: true }],
            ),
            (
                Policy::VolatileRandom,
                [Nothing, Nothing, Random { volatile: true }],
            ),
            (Policy::VolatileTtl, [Nothing, Nothing, SoonestDeadline]),
            (
                Policy::VolatileFirst,
                [Nothing, Ranked { volatile: false }, SoonestDeadline],
            ),
        ];
        assert_eq!(cases.len(), Policy::ALL.len());
        // (keys, volatile): empty, keys without deadlines, some with.
        for (policy, expected) in cases {
            for ((keys, volatile), want) in [(0, 0), (10, 0), (10, 3)].into_iter().zip(expected) {
                assert_eq!(
                    source(policy, keys, volatile),
                    want,
                    "{policy:?} {keys} {volatile}"
                );
            }
        }
    }

    fn key(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn the_pool_keeps_the_best_victims() {
        let mut pool = Pool::default();
        assert!(pool.is_empty());
        for i in 0..40u64 {
            // Ranks 0, 7, 14, ... in a scrambled order.
            let r = (i * 17) % 40 * 7;
            pool.offer(r, &key(&format!("k{r}")));
        }
        assert_eq!(pool.len(), POOL_SIZE);
        // The worst of the 16 kept beats everything that was dropped.
        let mut taken = vec![];
        while let Some((r, k)) = pool.pop() {
            assert_eq!(k, key(&format!("k{r}")));
            taken.push(r);
        }
        let want: Vec<u64> = (24..40).rev().map(|i| i * 7).collect();
        assert_eq!(taken, want);
    }

    #[test]
    fn the_pool_re_ranks_a_key_it_already_holds() {
        let mut pool = Pool::default();
        pool.offer(10, &key("a"));
        pool.offer(20, &key("b"));
        pool.offer(5, &key("b"));
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.pop(), Some((10, key("a"))));
        assert_eq!(pool.pop(), Some((5, key("b"))));
        assert_eq!(pool.pop(), None);
        // A full pool refuses what is no better than its worst.
        for i in 0..POOL_SIZE as u64 {
            pool.offer(100 + i, &key(&format!("k{i}")));
        }
        pool.offer(100, &key("tie"));
        pool.offer(1, &key("worse"));
        assert_eq!(pool.len(), POOL_SIZE);
        assert!(pool.entries.iter().all(|(_, k)| k != "tie" && k != "worse"));
        pool.offer(101, &key("better"));
        assert!(pool.entries.iter().any(|(_, k)| k == "better"));
        assert!(pool.entries.iter().all(|(_, k)| k != "k0"));
        pool.clear();
        assert!(pool.is_empty());
    }
}
