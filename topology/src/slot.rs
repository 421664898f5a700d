//! Hash slots as Redis Cluster defines them: `CRC16(key) mod 16384`, where a
//! non-empty `{tag}` in the key hashes alone so that related keys share a slot.

use std::fmt;
use std::str::FromStr;

/// The number of hash slots in a cluster.
pub const SLOT_COUNT: u16 = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), the checksum Redis
/// Cluster uses for key slots. It is on every keyed command's path, so it
/// takes eight bytes a step ("slicing by 8"): a byte-at-a-time table CRC is
/// one dependent load per byte, this is eight independent ones per step.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // The register meets the first two bytes; every byte then adds its
        // contribution shifted by the bytes that follow it.
        let [hi, lo] = crc.to_be_bytes();
        crc = SLICES[7][usize::from(c[0] ^ hi)]
            ^ SLICES[6][usize::from(c[1] ^ lo)]
            ^ SLICES[5][usize::from(c[2])]
            ^ SLICES[4][usize::from(c[3])]
            ^ SLICES[3][usize::from(c[4])]
            ^ SLICES[2][usize::from(c[5])]
            ^ SLICES[1][usize::from(c[6])]
            ^ SLICES[0][usize::from(c[7])];
    }
    chunks.remainder().iter().fold(crc, |crc, &b| {
        (crc << 8) ^ SLICES[0][usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// `SLICES[k][v]`: what byte `v` followed by `k` zero bytes contributes to
/// the register, i.e. `v * x^(16 + 8k) mod P`. `SLICES[0]` is the classic
/// byte-at-a-time table.
const SLICES: [[u16; 256]; 8] = crc16_slices();

/// `r * x^bits mod P` for the CRC's polynomial, one bit at a time.
const fn shift(mut r: u16, bits: u32) -> u16 {
    let mut i = 0;
    while i < bits {
        r = if r & 0x8000 != 0 {
            (r << 1) ^ 0x1021
        } else {
            r << 1
        };
        i += 1;
    }
    r
}

const fn crc16_slices() -> [[u16; 256]; 8] {
    let mut slices = [[0u16; 256]; 8];
    let mut v = 0;
    while v < 256 {
        // A byte enters at the register's top: v * x^8 is (v << 8).
        let mut r = shift((v as u16) << 8, 8);
        let mut k = 0;
        while k < 8 {
            slices[k][v] = r;
            r = shift(r, 8);
            k += 1;
        }
        v += 1;
    }
    slices
}

/// The slot of a key. Only the part between the first `{` and the next `}` is
/// hashed when that part is non-empty (Redis's hash tags).
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match memchr::memchr(b'{', key) {
        Some(open) => match memchr::memchr(b'}', &key[open + 1..]) {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16(hashed) & (SLOT_COUNT - 1)
}

/// An inclusive range of slots, written `"start-end"` (or `"slot"` when both
/// ends are equal) as `CLUSTER NODES` and the topology document write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlotRange {
    pub start: u16,
    pub end: u16,
}

impl SlotRange {
    /// A range; `None` when `start > end` or `end` is past the last slot.
    pub fn new(start: u16, end: u16) -> Option<Self> {
        (start <= end && end < SLOT_COUNT).then_some(Self { start, end })
    }

    /// The number of slots in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// A range is never empty; this exists for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, slot: u16) -> bool {
        (self.start..=self.end).contains(&slot)
    }

    pub fn slots(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }
}

impl fmt::Display for SlotRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// Why a slot range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid slot range {0:?}: expected \"N\" or \"START-END\" with 0 <= START <= END <= 16383"
)]
pub struct ParseSlotRangeError(pub String);

impl FromStr for SlotRange {
    type Err = ParseSlotRangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseSlotRangeError(s.to_owned());
        let (start, end) = match s.split_once('-') {
            Some((a, b)) => (a.parse().map_err(|_| err())?, b.parse().map_err(|_| err())?),
            None => {
                let n = s.parse().map_err(|_| err())?;
                (n, n)
            }
        };
        SlotRange::new(start, end).ok_or_else(err)
    }
}

impl serde::Serialize for SlotRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SlotRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Splits the 16384 slots into `shards` contiguous ranges whose sizes differ by
/// at most one, the larger ones first — the same layout `redis-cli --cluster
/// create` produces, so that users recognise it.
pub fn even_split(shards: u16) -> Vec<SlotRange> {
    assert!(
        (1..=SLOT_COUNT).contains(&shards),
        "shard count out of range: {shards}"
    );
    let base = SLOT_COUNT / shards;
    let extra = SLOT_COUNT % shards;
    let mut start = 0u16;
    (0..shards)
        .map(|i| {
            let len = base + u16::from(i < extra);
            let range = SlotRange {
                start,
                end: start + len - 1,
            };
            start += len;
            range
        })
        .collect()
}

/// Merges sorted-or-not ranges into the fewest ranges covering the same slots.
pub fn coalesce(mut ranges: Vec<SlotRange>) -> Vec<SlotRange> {
    ranges.sort();
    let mut out: Vec<SlotRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if u32::from(r.start) <= u32::from(last.end) + 1 => {
                last.end = last.end.max(r.end);
            }
            _ => out.push(r),
        }
    }
    out
}

/// A set of slots, one bit each (2 KiB): what a migration moves, what a
/// node imports or holds back writes for.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SlotSet {
    words: Box<[u64; SLOT_WORDS]>,
}

const SLOT_WORDS: usize = SLOT_COUNT as usize / 64;

impl SlotSet {
    pub fn new() -> Self {
        Self {
            words: Box::new([0; SLOT_WORDS]),
        }
    }

    pub fn from_ranges<'a>(ranges: impl IntoIterator<Item = &'a SlotRange>) -> Self {
        let mut set = Self::new();
        for r in ranges {
            for slot in r.slots() {
                set.insert(slot);
            }
        }
        set
    }

    /// Adds `slot`; slots past the last one are ignored.
    pub fn insert(&mut self, slot: u16) {
        if slot < SLOT_COUNT {
            self.words[usize::from(slot) / 64] |= 1 << (slot % 64);
        }
    }

    pub fn remove(&mut self, slot: u16) {
        if slot < SLOT_COUNT {
            self.words[usize::from(slot) / 64] &= !(1 << (slot % 64));
        }
    }

    pub fn contains(&self, slot: u16) -> bool {
        slot < SLOT_COUNT && self.words[usize::from(slot) / 64] & (1 << (slot % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Whether the two sets share a slot.
    pub fn intersects(&self, other: &SlotSet) -> bool {
        self.words
            .iter()
            .zip(other.words.iter())
            .any(|(a, b)| a & b != 0)
    }

    /// The slots in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        (0..SLOT_COUNT).filter(|&s| self.contains(s))
    }

    /// The fewest ranges covering exactly these slots, ascending.
    pub fn ranges(&self) -> Vec<SlotRange> {
        coalesce(
            self.iter()
                .map(|s| SlotRange { start: s, end: s })
                .collect(),
        )
    }
}

impl Default for SlotSet {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SlotSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ranges: Vec<String> = self.ranges().iter().map(ToString::to_string).collect();
        write!(f, "SlotSet[{}]", ranges.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn crc16_matches_the_redis_cluster_spec() {
        // The check value from the Redis Cluster specification.
        assert_eq!(crc16(b"123456789"), 0x31C3);
    }

    /// The bit-at-a-time definition the table is derived from.
    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn crc16_matches_the_bitwise_definition_on_short_inputs() {
        assert_eq!(crc16_bitwise(b"123456789"), 0x31C3);
        for b in 0..=255u8 {
            assert_eq!(crc16(&[b]), crc16_bitwise(&[b]), "byte {b}");
            assert_eq!(crc16(&[b, !b, b]), crc16_bitwise(&[b, !b, b]), "byte {b}");
            // Whole 8-byte steps, with and without a tail.
            let long: Vec<u8> = (0..21u8).map(|i| b.wrapping_mul(i) ^ i).collect();
            for n in [8, 9, 16, 21] {
                assert_eq!(
                    crc16(&long[..n]),
                    crc16_bitwise(&long[..n]),
                    "byte {b}, {n}"
                );
            }
        }
    }

    #[test]
    fn key_slots_match_redis() {
        // Values as printed by `redis-cli cluster keyslot` on Redis 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"{user1000}.followers"),
            key_slot(b"{user1000}.following")
        );
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") & 16383);
        assert_eq!(key_slot(b"foo{{bar}}zap"), crc16(b"{bar") & 16383);
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn even_split_covers_every_slot_once() {
        for n in [1u16, 2, 3, 5, 7, 100, 16384] {
            let ranges = even_split(n);
            assert_eq!(ranges.len(), usize::from(n));
            assert_eq!(ranges[0].start, 0);
            assert_eq!(ranges.last().unwrap().end, SLOT_COUNT - 1);
            for w in ranges.windows(2) {
                assert_eq!(w[0].end + 1, w[1].start);
                assert!(w[0].len() >= w[1].len() && w[0].len() - w[1].len() <= 1);
            }
        }
        assert_eq!(
            even_split(3),
            vec![
                "0-5461".parse().unwrap(),
                "5462-10922".parse().unwrap(),
                "10923-16383".parse().unwrap()
            ]
        );
    }

    #[test]
    fn ranges_parse_and_print() {
        assert_eq!(
            "7".parse::<SlotRange>().unwrap(),
            SlotRange { start: 7, end: 7 }
        );
        assert_eq!("0-16383".parse::<SlotRange>().unwrap().len(), 16384);
        for bad in ["", "-", "5-4", "0-16384", "a-b", "1-2-3", "-1"] {
            assert!(bad.parse::<SlotRange>().is_err(), "{bad:?} parsed");
        }
        assert_eq!(SlotRange { start: 3, end: 9 }.to_string(), "3-9");
    }

    proptest! {
        #[test]
        fn slots_are_in_range_and_tags_decide(key in proptest::collection::vec(any::<u8>(), 0..64),
                                              tag in "[a-z]{1,8}", a in "[a-z]{0,8}", b in "[a-z]{0,8}") {
            prop_assert!(key_slot(&key) < SLOT_COUNT);
            let k1 = format!("{a}{{{tag}}}{b}");
            prop_assume!(!a.contains('{'));
            prop_assert_eq!(key_slot(k1.as_bytes()), key_slot(tag.as_bytes()));
        }

        #[test]
        fn crc16_matches_the_bitwise_definition(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            prop_assert_eq!(crc16(&data), crc16_bitwise(&data));
        }

        #[test]
        fn even_split_is_a_partition(n in 1u16..=2000) {
            let ranges = even_split(n);
            let total: usize = ranges.iter().map(SlotRange::len).sum();
            prop_assert_eq!(total, usize::from(SLOT_COUNT));
            prop_assert_eq!(coalesce(ranges), vec![SlotRange { start: 0, end: SLOT_COUNT - 1 }]);
        }

        #[test]
        fn ranges_round_trip(a in 0u16..SLOT_COUNT, b in 0u16..SLOT_COUNT) {
            let r = SlotRange::new(a.min(b), a.max(b)).unwrap();
            prop_assert_eq!(r.to_string().parse::<SlotRange>().unwrap(), r);
        }
    }

    #[test]
    fn slot_sets_hold_exactly_their_slots() {
        let ranges = [
            SlotRange::new(0, 3).unwrap(),
            SlotRange::new(5, 5).unwrap(),
            SlotRange::new(16380, 16383).unwrap(),
        ];
        let mut set = SlotSet::from_ranges(&ranges);
        assert_eq!(set.len(), 9);
        assert!(set.contains(0) && set.contains(5) && set.contains(16383));
        assert!(!set.contains(4) && !set.contains(6) && !set.contains(16384));
        assert_eq!(set.ranges(), ranges.to_vec());
        assert_eq!(format!("{set:?}"), "SlotSet[0-3,5,16380-16383]");
        set.insert(4);
        set.insert(16384);
        assert_eq!(set.ranges()[0], SlotRange::new(0, 5).unwrap());
        set.remove(0);
        assert!(!set.contains(0));
        let other = SlotSet::from_ranges(&[SlotRange::new(6, 100).unwrap()]);
        assert!(!set.intersects(&other));
        set.insert(50);
        assert!(set.intersects(&other));
        assert!(SlotSet::new().is_empty() && !set.is_empty());
        assert_eq!(set.iter().count(), set.len());
    }
}
