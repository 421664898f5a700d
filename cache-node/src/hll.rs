//! HyperLogLog in Redis's exact representation.
//!
//! A HyperLogLog is a plain string value, byte for byte the one Redis builds,
//! so that values move between Redis and Tidecache (RDB files, DUMP/RESTORE,
//! GET/SET) and PFCOUNT gives the very numbers Redis gives. The layout:
//!
//! - a 16-byte header: `HYLL`, one encoding byte (0 dense, 1 sparse), three
//!   unused zero bytes, then the last computed cardinality as 8 little-endian
//!   bytes whose top bit, when set, marks it stale;
//! - dense: 16384 registers of 6 bits packed from the least significant bit
//!   of each byte upwards (12288 bytes);
//! - sparse: a run-length encoding of the same registers with three opcodes,
//!   `ZERO` (`00xxxxxx`, 1..64 zero registers), `XZERO` (`01xxxxxx yyyyyyyy`,
//!   1..16384 zero registers) and `VAL` (`1vvvvvxx`, 1..4 registers of value
//!   1..32).
//!
//! Elements are hashed with MurmurHash64A (seed `0xadc83b19`); the low 14
//! bits pick a register and the run of zero bits above them, plus one, is the
//! value the register keeps the maximum of. New values start sparse; a value
//! is promoted to dense when a register needs more than 32 or the sparse form
//! would outgrow `hll-sparse-max-bytes` (Redis's default: 3000). Updates of a
//! sparse value split and merge opcodes exactly as Redis does, since a
//! different but equivalent encoding would be a different string. Cardinality
//! comes from the register histogram with Ertl's estimator ("New cardinality
//! estimation algorithms for HyperLogLog sketches", arXiv:1702.01284), the one
//! Redis uses since 5.0.

/// Header bytes before the registers.
pub const HEADER_LEN: usize = 16;
/// Register-index bits taken from the hash.
const P: u32 = 14;
/// Hash bits left for the run of zeros.
const Q: usize = 64 - P as usize;
pub const REGISTERS: usize = 1 << P;
const REGISTER_BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << REGISTER_BITS) - 1;
/// Exact length of a dense value.
pub const DENSE_LEN: usize = HEADER_LEN + REGISTERS * REGISTER_BITS / 8;
/// Redis's default `hll-sparse-max-bytes`.
pub const SPARSE_MAX_BYTES: usize = 3000;

const MAGIC: &[u8; 4] = b"HYLL";
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const SEED: u64 = 0xadc8_3b19;
/// 0.5 / ln(2), the estimator's bias constant for m → ∞.
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

const XZERO_BIT: u8 = 0x40;
const VAL_BIT: u8 = 0x80;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;

/// A sparse value whose opcodes do not cover exactly 16384 registers (Redis's
/// `INVALIDOBJ`): truncated, extended or hand-made bytes. Any opcode running
/// past the last register makes the whole value corrupt, as in Redis since
/// the fix for CVE-2025-32023, even when the registers before it add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt;

/// Whether `v` is a HyperLogLog as Redis decides it: long enough for the
/// header, the magic, a known encoding, and the exact length when dense.
/// Sparse values are checked for consistency only when they are read.
pub fn is_hll(v: &[u8]) -> bool {
    v.len() >= HEADER_LEN
        && &v[..4] == MAGIC
        && v[4] <= SPARSE
        && (v[4] != DENSE || v.len() == DENSE_LEN)
}

pub fn is_dense(v: &[u8]) -> bool {
    v[4] == DENSE
}

/// An empty HyperLogLog: sparse, every register in one `XZERO`, cardinality
/// 0 cached and valid. What PFADD and PFMERGE create for a missing key.
pub fn empty() -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + 2);
    v.extend_from_slice(MAGIC);
    v.push(SPARSE);
    v.resize(HEADER_LEN, 0);
    push_xzero(&mut v, REGISTERS);
    v
}

/// The cached cardinality, unless a change since it was computed marked it
/// stale.
pub fn cached_count(v: &[u8]) -> Option<u64> {
    let card: [u8; 8] = v[8..16].try_into().expect("header is 16 bytes");
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

pub fn set_cached_count(v: &mut [u8], n: u64) {
    v[8..16].copy_from_slice(&n.to_le_bytes());
}

/// Marks the cached cardinality stale. Only the flag bit changes, as in
/// Redis: the other cached bytes stay, and are part of the value's bytes.
pub fn invalidate(v: &mut [u8]) {
    v[15] |= 0x80;
}

/// MurmurHash2, 64-bit version, reading blocks little-endian whatever the
/// host's byte order (Redis's endian-neutral variant).
pub fn murmur64a(data: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (data.len() as u64).wrapping_mul(M);
    let mut blocks = data.chunks_exact(8);
    for block in &mut blocks {
        let mut k = u64::from_le_bytes(block.try_into().expect("8 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= u64::from(b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register an element updates and the value it offers: one plus the
/// number of zero bits above the index bits, at most Q + 1.
pub fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, SEED);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    // The sentinel bit ends the run when all Q bits are zero.
    let rest = (hash >> P) | (1 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// Adds an element; true when a register changed (the cardinality may have).
pub fn add(v: &mut Vec<u8>, element: &[u8], sparse_max: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(element);
    set(v, index, count, sparse_max)
}

/// Whether adding `element` would raise a register (what PFADD reports),
/// without changing anything.
pub fn would_change(v: &[u8], element: &[u8]) -> Result<bool, Corrupt> {
    let (index, count) = pattern(element);
    Ok(register(v, index)? < count)
}

/// The value of register `index`, in either encoding.
fn register(v: &[u8], index: usize) -> Result<u8, Corrupt> {
    if is_dense(v) {
        return Ok(dense_get(&v[HEADER_LEN..], index));
    }
    // The same walk as `sparse_set`, so both agree on corrupt values.
    let (mut p, mut first) = (HEADER_LEN, 0);
    while p < v.len() {
        let (run, value, len) = op_at(v, p);
        if index < first + run {
            return Ok(value);
        }
        p += len;
        first += run;
    }
    Err(Corrupt)
}

/// Raises register `index` to `count` if it is lower, in either encoding.
fn set(v: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Result<bool, Corrupt> {
    if is_dense(v) {
        Ok(dense_raise(&mut v[HEADER_LEN..], index, count))
    } else {
        sparse_set(v, index, count, sparse_max)
    }
}

// ---- Dense registers -------------------------------------------------------

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * REGISTER_BITS / 8;
    let fb = (i * REGISTER_BITS) & 7;
    let b0 = u32::from(regs[byte]);
    // The last register never reaches into a following byte.
    let b1 = u32::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) & u32::from(REGISTER_MAX)) as u8
}

fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let byte = i * REGISTER_BITS / 8;
    let fb = (i * REGISTER_BITS) & 7;
    let val = u32::from(val);
    let max = u32::from(REGISTER_MAX);
    regs[byte] = ((u32::from(regs[byte]) & !(max << fb)) | (val << fb)) as u8;
    if let Some(next) = regs.get_mut(byte + 1) {
        *next = ((u32::from(*next) & !(max >> (8 - fb))) | (val >> (8 - fb))) as u8;
    }
}

fn dense_raise(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_put(regs, i, count);
        true
    } else {
        false
    }
}

// ---- Sparse opcodes --------------------------------------------------------

fn is_zero(op: u8) -> bool {
    op & 0xc0 == 0
}

fn is_xzero(op: u8) -> bool {
    op & 0xc0 == XZERO_BIT
}

fn is_val(op: u8) -> bool {
    op & VAL_BIT != 0
}

fn val_value(op: u8) -> u8 {
    ((op >> 2) & 0x1f) + 1
}

fn val_len(op: u8) -> usize {
    usize::from(op & 0x3) + 1
}

fn val_op(value: u8, len: usize) -> u8 {
    ((value - 1) << 2) | (len as u8 - 1) | VAL_BIT
}

fn push_xzero(out: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    out.push((l >> 8) as u8 | XZERO_BIT);
    out.push((l & 0xff) as u8);
}

fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        push_xzero(out, len);
    } else {
        out.push(len as u8 - 1);
    }
}

/// The opcode at `p`: registers covered, value (0 for the zero runs) and
/// length in bytes. An `XZERO` cut short by the end of the value reads its
/// second byte as 0, which is what Redis reads there (the string's
/// terminator), so such values are judged the same way. (Once Redis has
/// updated such a value it may have left another byte past the end, which
/// no client can see; values that corrupt can then evolve differently.)
fn op_at(v: &[u8], p: usize) -> (usize, u8, usize) {
    let op = v[p];
    if is_zero(op) {
        (usize::from(op & 0x3f) + 1, 0, 1)
    } else if is_xzero(op) {
        let low = usize::from(v.get(p + 1).copied().unwrap_or(0));
        (((usize::from(op & 0x3f) << 8) | low) + 1, 0, 2)
    } else {
        (val_len(op), val_value(op), 1)
    }
}

/// The sparse opcodes of `v` as (run length, value).
fn runs(v: &[u8]) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut p = HEADER_LEN;
    std::iter::from_fn(move || {
        (p < v.len()).then(|| {
            let (run, value, len) = op_at(v, p);
            p += len;
            (run, value)
        })
    })
}

/// Redis's `hllSparseSet`: raises register `index` of a sparse value to
/// `count`, rewriting the one opcode that covers it into at most three and
/// merging equal neighbours, or promotes the value to dense.
fn sparse_set(
    v: &mut Vec<u8>,
    index: usize,
    count: u8,
    sparse_max: usize,
) -> Result<bool, Corrupt> {
    if count > VAL_MAX_VALUE {
        return promote(v, index, count);
    }
    // Find the opcode covering `index`.
    let (mut p, mut first, mut span, mut prev) = (HEADER_LEN, 0, 0, None);
    while p < v.len() {
        let (run, _, len) = op_at(v, p);
        span = run;
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += len;
        first += span;
    }
    if span == 0 || p >= v.len() {
        return Err(Corrupt);
    }
    let op = v[p];
    let oplen = if is_xzero(op) { 2 } else { 1 };
    let has_next = p + oplen < v.len();
    if is_val(op) {
        if val_value(op) >= count {
            return Ok(false);
        }
        if span == 1 {
            v[p] = val_op(count, 1);
            merge_vals(v, prev);
            return Ok(true);
        }
    }
    if is_zero(op) && span == 1 {
        v[p] = val_op(count, 1);
        merge_vals(v, prev);
        return Ok(true);
    }
    // Split the run into what precedes the register, the register, and what
    // follows it.
    let last = first + span - 1;
    let mut seq = Vec::with_capacity(5);
    if is_val(op) {
        let current = val_value(op);
        if index != first {
            seq.push(val_op(current, index - first));
        }
        seq.push(val_op(count, 1));
        if index != last {
            seq.push(val_op(current, last - index));
        }
    } else {
        if index != first {
            push_zeros(&mut seq, index - first);
        }
        seq.push(val_op(count, 1));
        if index != last {
            push_zeros(&mut seq, last - index);
        }
    }
    let new_len = v.len() + seq.len() - oplen;
    if seq.len() > oplen && new_len > sparse_max {
        return promote(v, index, count);
    }
    if has_next {
        v.splice(p..p + oplen, seq);
    } else {
        // The last opcode: Redis copies the new sequence over it and sets the
        // length by the difference, which for a cut-short XZERO drops the
        // sequence's last byte; do the same.
        v.truncate(p);
        v.extend_from_slice(&seq);
        v.truncate(new_len);
    }
    merge_vals(v, prev);
    Ok(true)
}

/// After an update: merges adjacent `VAL` opcodes of equal value that fit in
/// one, scanning at most five opcodes from the one before the change, and
/// marks the cached cardinality stale.
fn merge_vals(v: &mut Vec<u8>, prev: Option<usize>) {
    let mut p = prev.unwrap_or(HEADER_LEN);
    let mut budget = 5;
    while p < v.len() && budget > 0 {
        budget -= 1;
        let op = v[p];
        if is_xzero(op) {
            p += 2;
            continue;
        }
        if is_zero(op) {
            p += 1;
            continue;
        }
        if let Some(&next) = v.get(p + 1)
            && is_val(next)
            && val_value(op) == val_value(next)
            && val_len(op) + val_len(next) <= VAL_MAX_LEN
        {
            v[p + 1] = val_op(val_value(op), val_len(op) + val_len(next));
            v.remove(p);
            // Try the merged opcode against its right neighbour too.
            continue;
        }
        p += 1;
    }
    invalidate(v);
}

fn promote(v: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    *v = to_dense(v)?;
    Ok(dense_raise(&mut v[HEADER_LEN..], index, count))
}

/// The dense form of `v`, keeping its header (and so its cached count).
pub fn to_dense(v: &[u8]) -> Result<Vec<u8>, Corrupt> {
    if is_dense(v) {
        return Ok(v.to_vec());
    }
    let mut dense = vec![0u8; DENSE_LEN];
    dense[..HEADER_LEN].copy_from_slice(&v[..HEADER_LEN]);
    dense[4] = DENSE;
    let regs = &mut dense[HEADER_LEN..];
    let mut idx = 0;
    for (run, value) in runs(v) {
        if idx + run > REGISTERS {
            return Err(Corrupt);
        }
        if value != 0 {
            for i in idx..idx + run {
                dense_put(regs, i, value);
            }
        }
        idx += run;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    Ok(dense)
}

// ---- Counting and merging ---------------------------------------------------

/// How many registers hold each value.
pub type Histogram = [u64; 64];

pub fn histogram(v: &[u8]) -> Result<Histogram, Corrupt> {
    let mut h = [0; 64];
    if is_dense(v) {
        let regs = &v[HEADER_LEN..];
        for i in 0..REGISTERS {
            h[usize::from(dense_get(regs, i))] += 1;
        }
        return Ok(h);
    }
    let mut idx = 0;
    for (run, value) in runs(v) {
        if idx + run > REGISTERS {
            return Err(Corrupt);
        }
        idx += run;
        h[usize::from(value)] += run as u64;
    }
    if idx == REGISTERS {
        Ok(h)
    } else {
        Err(Corrupt)
    }
}

/// The histogram of registers held one per byte (a merge in progress).
pub fn raw_histogram(regs: &[u8; REGISTERS]) -> Histogram {
    let mut h = [0; 64];
    for &r in regs {
        h[usize::from(r & REGISTER_MAX)] += 1;
    }
    h
}

/// Ertl's improved raw estimator, with Redis's floating-point order of
/// operations so that results agree to the unit.
pub fn estimate(h: &Histogram) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - h[Q + 1] as f64) / m);
    for &n in h[1..=Q].iter().rev() {
        z += n as f64;
        z *= 0.5;
    }
    z += m * sigma(h[0] as f64 / m);
    (ALPHA_INF * m * m / z).round() as u64
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if z == before {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        let d = 1.0 - x;
        z -= d * d * y;
        if z == before {
            return z / 3.0;
        }
    }
}

/// The estimated cardinality of one value (ignoring its cache).
pub fn count(v: &[u8]) -> Result<u64, Corrupt> {
    histogram(v).map(|h| estimate(&h))
}

/// Folds `v` into `max`, register by register.
pub fn merge_into(max: &mut [u8; REGISTERS], v: &[u8]) -> Result<(), Corrupt> {
    if is_dense(v) {
        let regs = &v[HEADER_LEN..];
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(regs, i));
        }
        return Ok(());
    }
    let mut i = 0;
    for (run, value) in runs(v) {
        if i + run > REGISTERS {
            return Err(Corrupt);
        }
        if value != 0 {
            for m in &mut max[i..i + run] {
                *m = (*m).max(value);
            }
        }
        i += run;
    }
    if i == REGISTERS { Ok(()) } else { Err(Corrupt) }
}

/// PFMERGE's write: raises every register of `v` to `max`, in register order
/// (which fixes the sparse encoding's shape), converting `v` to dense first
/// when any input was dense, and marks the cached count stale.
pub fn raise_all(
    v: &mut Vec<u8>,
    max: &[u8; REGISTERS],
    dense: bool,
    sparse_max: usize,
) -> Result<(), Corrupt> {
    if dense && !is_dense(v) {
        *v = to_dense(v)?;
    }
    for (i, &m) in max.iter().enumerate() {
        if m != 0 {
            set(v, i, m, sparse_max)?;
        }
    }
    invalidate(v);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hll_of(elements: impl IntoIterator<Item = String>) -> Vec<u8> {
        let mut v = empty();
        for e in elements {
            add(&mut v, e.as_bytes(), SPARSE_MAX_BYTES).unwrap();
        }
        v
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Every register, decoded naively from either encoding.
    fn registers(v: &[u8]) -> Vec<u8> {
        if is_dense(v) {
            (0..REGISTERS)
                .map(|i| dense_get(&v[HEADER_LEN..], i))
                .collect()
        } else {
            runs(v)
                .flat_map(|(run, value)| std::iter::repeat_n(value, run))
                .collect()
        }
    }

    #[test]
    fn every_hash_tail_length_matches_redis() {
        // PFADD lens with the prefixes of length 1..40 of one string, on
        // redis-server 7: covers MurmurHash64A's 8-byte blocks and every
        // tail length.
        let alphabet = "abcdefghijklmnopqrstuvwxyz0123456789ABCD";
        let v = hll_of((1..=40).map(|n| alphabet[..n].to_string()));
        assert_eq!(
            v,
            hex(concat!(
                "48594c4c01000000000000000000008042ce80424e80404680455f8c40848042eb8809",
                "8040468c421f804551840f882c8440b88c434d8840ab80268041a08045d584412b8040",
                "a98040908040db90428a8040e980419b8040499c40e68041d68040d48440ee8040938c",
                "414c84412680427e8441d880409884411f944244804063844255804218"
            ))
        );
        assert_eq!(count(&v), Ok(40));
    }

    #[test]
    fn an_empty_value_is_one_xzero() {
        let v = empty();
        assert_eq!(v, hex("48594c4c0100000000000000000000007fff"));
        assert!(is_hll(&v));
        assert_eq!(cached_count(&v), Some(0));
        assert_eq!(count(&v), Ok(0));
        assert_eq!(registers(&v), vec![0; REGISTERS]);
    }

    #[test]
    fn values_are_byte_identical_to_redis() {
        // Produced by redis-server 7 with PFADD h a b c, then PFCOUNT h.
        let mut v = hll_of(["a", "b", "c"].map(String::from));
        assert_eq!(
            v,
            hex("48594c4c01000000000000000000008060f38050b1844bfb80425a")
        );
        assert_eq!(cached_count(&v), None);
        let n = count(&v).unwrap();
        assert_eq!(n, 3);
        set_cached_count(&mut v, n);
        assert_eq!(
            v,
            hex("48594c4c01000000030000000000000060f38050b1844bfb80425a")
        );
        // PFADD h d leaves the stale count's low bytes in place.
        assert!(add(&mut v, b"d", SPARSE_MAX_BYTES).unwrap());
        assert_eq!(
            v,
            hex("48594c4c0100000003000000000000805c7b8044768050b1844bfb80425a")
        );
        assert_eq!(
            hll_of([String::new()]),
            hex("48594c4c01000000000000000000008057318468cc")
        );
        assert_eq!(
            hll_of(["0".to_string()]),
            hex("48594c4c01000000000000000000008073a88c4c55")
        );
    }

    #[test]
    fn registers_round_trip_through_both_encodings() {
        let v = hll_of((0..700).map(|i| format!("e{i}")));
        assert!(!is_dense(&v));
        let dense = to_dense(&v).unwrap();
        assert_eq!(dense.len(), DENSE_LEN);
        assert_eq!(registers(&v), registers(&dense));
        assert_eq!(histogram(&v), histogram(&dense));
        let mut max = [0u8; REGISTERS];
        merge_into(&mut max, &v).unwrap();
        assert_eq!(max.to_vec(), registers(&v));
        assert_eq!(raw_histogram(&max), histogram(&v).unwrap());
    }

    #[test]
    fn sparse_values_promote_past_the_size_limit() {
        let mut v = empty();
        let mut n = 0;
        while !is_dense(&v) {
            assert!(v.len() <= SPARSE_MAX_BYTES);
            add(&mut v, format!("x{n}").as_bytes(), SPARSE_MAX_BYTES).unwrap();
            n += 1;
        }
        assert_eq!(v.len(), DENSE_LEN);
        assert!(n > 1000, "promoted after {n}");
        // A tiny limit promotes at once.
        let mut small = empty();
        add(&mut small, b"a", 18).unwrap();
        assert!(is_dense(&small));
    }

    #[test]
    fn would_change_predicts_add() {
        let mut v = empty();
        for i in 0..3000 {
            let e = format!("w{}", i % 1700);
            let predicted = would_change(&v, e.as_bytes()).unwrap();
            let before = v.clone();
            assert_eq!(
                add(&mut v, e.as_bytes(), SPARSE_MAX_BYTES).unwrap(),
                predicted
            );
            if !predicted {
                assert_eq!(v, before, "a no-op add leaves the bytes alone");
            }
        }
        assert!(is_dense(&v));
        let mut bare = empty();
        bare.truncate(HEADER_LEN);
        assert_eq!(would_change(&bare, b"a"), Err(Corrupt));
    }

    #[test]
    fn a_register_above_32_forces_dense() {
        let mut v = empty();
        assert!(set(&mut v, 5, 33, SPARSE_MAX_BYTES).unwrap());
        assert!(is_dense(&v));
        assert_eq!(registers(&v)[5], 33);
    }

    #[test]
    fn corrupt_values_are_detected() {
        let mut v = hll_of(["a", "b", "c"].map(String::from));
        v.extend_from_slice(b"hello");
        assert_eq!(count(&v), Err(Corrupt));
        let mut max = [0u8; REGISTERS];
        assert_eq!(merge_into(&mut max, &v), Err(Corrupt));
        assert_eq!(to_dense(&v), Err(Corrupt));
        // All registers covered, then one more VAL: corrupt too.
        let mut extra = empty();
        extra.push(val_op(1, 1));
        assert_eq!(count(&extra), Err(Corrupt));
        assert_eq!(merge_into(&mut max, &extra), Err(Corrupt));
        assert_eq!(to_dense(&extra), Err(Corrupt));
        // No opcodes at all: nothing covers the register.
        let mut bare = empty();
        bare.truncate(HEADER_LEN);
        assert_eq!(add(&mut bare, b"a", SPARSE_MAX_BYTES), Err(Corrupt));
        assert!(!is_hll(b"HYLL"));
        assert!(!is_hll(b"HYLL\x02\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
        assert!(!is_hll(b"HYLL\x00\0\0\0\0\0\0\0\0\0\0\0\x7f\xff"));
    }

    #[test]
    fn estimates_stay_within_the_standard_error() {
        for n in [10usize, 1000, 20_000] {
            let v = hll_of((0..n).map(|i| format!("k{i}")));
            let c = count(&v).unwrap() as f64;
            // 1.04/sqrt(16384) is 0.81%; allow five standard errors.
            assert!((c - n as f64).abs() <= n as f64 * 0.0406 + 1.0, "{n}: {c}");
        }
    }

    proptest::proptest! {
        /// Adding any elements to a sparse value keeps it equal, register
        /// for register, to adding them to a dense one, with the same count.
        #[test]
        fn sparse_and_dense_agree(elements in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..12), 0..300)) {
            let mut sparse = empty();
            let mut dense = to_dense(&empty()).unwrap();
            let mut model = vec![0u8; REGISTERS];
            for e in &elements {
                let (i, c) = pattern(e);
                let changed = c > model[i];
                model[i] = model[i].max(c);
                proptest::prop_assert_eq!(add(&mut sparse, e, SPARSE_MAX_BYTES).unwrap(), changed);
                proptest::prop_assert_eq!(add(&mut dense, e, SPARSE_MAX_BYTES).unwrap(), changed);
            }
            proptest::prop_assert_eq!(registers(&sparse), model.clone());
            proptest::prop_assert_eq!(registers(&dense), model);
            proptest::prop_assert_eq!(count(&sparse), count(&dense));
        }

        /// Sparse updates in any register order, splitting and merging
        /// opcodes, decode to exactly the registers set.
        #[test]
        fn sparse_set_keeps_registers(updates in proptest::collection::vec((0usize..REGISTERS, 1u8..=32), 0..200)) {
            let mut v = empty();
            let mut model = vec![0u8; REGISTERS];
            for &(i, c) in &updates {
                set(&mut v, i, c, usize::MAX).unwrap();
                model[i] = model[i].max(c);
            }
            proptest::prop_assert!(!is_dense(&v));
            proptest::prop_assert_eq!(registers(&v), model);
        }
    }
}
