//! Bit commands on string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP,
//! BITFIELD and BITFIELD_RO.
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis. The pure
//! bit logic (counting, searching, reading and writing fields with overflow
//! control) is in plain functions over byte slices, tested against a naive
//! bit-by-bit model; the handlers parse arguments in Redis's order (so that
//! errors win in the same order) and edit the stored string in place.

use bytes::Bytes;

use super::Ctx;
use super::util::{NOT_INTEGER, SYNTAX, eq, int_arg, parse_i64};
use crate::db::{Value, ValueRef, WRONGTYPE};
use crate::frame::Reply;

const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";
const BAD_TYPE: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

// ---- Pure bit logic ----------------------------------------------------------

/// What BITCOUNT and BITPOS ranges count in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Byte,
    Bit,
}

/// Resolves an inclusive `[start, end]` range in `unit`s over a string of
/// `len` bytes the way Redis does (negative from the end, clamped), as an
/// inclusive bit range; `None` when it is empty.
fn bit_range(len: usize, start: i64, end: i64, unit: Unit) -> Option<(u64, u64)> {
    let total = match unit {
        Unit::Byte => len as i64,
        Unit::Bit => len as i64 * 8,
    };
    let (mut start, mut end) = (start, end);
    if start < 0 {
        start = start.saturating_add(total);
    }
    if end < 0 {
        end = end.saturating_add(total);
    }
    let start = start.max(0);
    let end = end.max(0).min(total - 1);
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(match unit {
        Unit::Byte => (start * 8, end * 8 + 7),
        Unit::Bit => (start, end),
    })
}

/// Set bits in the inclusive bit range `[first, last]` of `s`.
fn ones_in(s: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let mut chunks = s[fb..=lb].chunks_exact(8);
    let mut n: u64 = chunks
        .by_ref()
        .map(|c| u64::from(u64::from_ne_bytes(c.try_into().expect("8 bytes")).count_ones()))
        .sum();
    n += chunks
        .remainder()
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum::<u64>();
    // Take off the bits of the edge bytes outside the range.
    let before = !(0xffu8 >> (first & 7));
    let after = (0xffu32 >> ((last & 7) + 1)) as u8;
    n - u64::from((s[fb] & before).count_ones()) - u64::from((s[lb] & after).count_ones())
}

/// BITCOUNT of a string: the whole string, or an inclusive range.
pub fn count_bits(s: &[u8], range: Option<(i64, i64, Unit)>) -> i64 {
    let (first, last) = match range {
        None if s.is_empty() => return 0,
        None => (0, s.len() as u64 * 8 - 1),
        // Both ends before the start, in the wrong order: nothing, even where
        // clamping would bring them together.
        Some((start, end, _)) if start < 0 && end < 0 && start > end => return 0,
        Some((start, end, unit)) => match bit_range(s.len(), start, end, unit) {
            Some(r) => r,
            None => return 0,
        },
    };
    ones_in(s, first, last) as i64
}

/// The first bit equal to `bit` in the inclusive bit range `[first, last]`.
fn find_bit(s: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    // Out-of-range bits of the edge bytes are forced to the value not sought.
    let before = !(0xffu8 >> (first & 7));
    let after = (0xffu32 >> ((last & 7) + 1)) as u8;
    let masked = |i: usize| {
        let b = s[i];
        let mut outside = 0;
        if i == fb {
            outside |= before;
        }
        if i == lb {
            outside |= after;
        }
        if bit { b & !outside } else { b | outside }
    };
    let hit = |i: usize, b: u8| {
        let b = if bit { b } else { !b };
        (b != 0).then(|| i as u64 * 8 + u64::from(b.leading_zeros()))
    };
    if let Some(p) = hit(fb, masked(fb)) {
        return Some(p);
    }
    if lb > fb {
        let skip = if bit { 0x00 } else { 0xff };
        if let Some(j) = s[fb + 1..lb].iter().position(|&b| b != skip) {
            return hit(fb + 1 + j, s[fb + 1 + j]);
        }
        return hit(lb, masked(lb));
    }
    None
}

/// BITPOS of a string: the first bit equal to `bit` from `start` (to `end`
/// when given), or -1. Looking for a 0 with no end given, the string counts
/// as padded with zeros on the right, so the answer is the bit just past it.
pub fn first_bit(s: &[u8], bit: bool, start: Option<i64>, end: Option<i64>, unit: Unit) -> i64 {
    let range = match start {
        None => bit_range(s.len(), 0, -1, Unit::Byte),
        Some(start) => bit_range(s.len(), start, end.unwrap_or(-1), unit),
    };
    let Some((first, last)) = range else {
        return -1;
    };
    match find_bit(s, bit, first, last) {
        Some(p) => p as i64,
        None if !bit && end.is_none() => last as i64 + 1,
        None => -1,
    }
}

/// The `bits`-wide (1..=64) unsigned field at bit `offset`, most significant
/// bit first; bits past the end of `s` read as zero.
pub fn get_field(s: &[u8], offset: u64, bits: u32) -> u64 {
    let byte = (offset >> 3) as usize;
    let shift = (offset & 7) as u32;
    // The field spans at most 9 bytes.
    let window = (0..9).fold(0u128, |w, i| {
        let b = byte.checked_add(i).and_then(|j| s.get(j)).copied();
        (w << 8) | u128::from(b.unwrap_or(0))
    });
    let mask = (1u128 << bits) - 1;
    ((window >> (72 - shift - bits)) & mask) as u64
}

/// Writes the low `bits` bits of `value` as the field at bit `offset`; `buf`
/// must already cover the field.
pub fn set_field(buf: &mut [u8], offset: u64, bits: u32, value: u64) {
    let byte = (offset >> 3) as usize;
    let shift = 72 - (offset & 7) as u32 - bits;
    let mask = ((1u128 << bits) - 1) << shift;
    let mut window = (0..9).fold(0u128, |w, i| {
        (w << 8) | u128::from(buf.get(byte + i).copied().unwrap_or(0))
    });
    window = (window & !mask) | ((u128::from(value) << shift) & mask);
    // Bytes past the end lie outside the field, so they need no writing.
    for (i, b) in buf.iter_mut().skip(byte).take(9).enumerate() {
        *b = (window >> (64 - 8 * i)) as u8;
    }
}

/// The field's bits as a signed (two's complement) integer.
pub fn sign_extend(v: u64, bits: u32) -> i64 {
    let unused = 64 - bits;
    ((v << unused) as i64) >> unused
}

/// BITFIELD's OVERFLOW behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// Stores `value + incr` in an unsigned field of `bits` (1..=63): the value
/// to write, or `None` when it does not fit and the policy is FAIL. A SET is
/// `incr` 0 with the argument as `value`, so a negative argument overflows
/// (it is a huge unsigned number) and saturates to the maximum, as in Redis.
pub fn add_unsigned(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = (1u64 << bits) - 1;
    let (sum, carried) = value.overflowing_add_signed(incr);
    let over = value > max || (incr > 0 && (carried || sum > max));
    let under = !over && incr < 0 && carried;
    match (over || under, overflow) {
        (false, _) => Some(sum),
        (true, Overflow::Wrap) => Some(sum & max),
        (true, Overflow::Sat) => Some(if over { max } else { 0 }),
        (true, Overflow::Fail) => None,
    }
}

/// Stores `value + incr` in a signed field of `bits` (1..=64); as
/// [`add_unsigned`]. Wrapping keeps the low bits, sign-extended.
///
/// Redis computes the headroom `max - value` with 64-bit wrap-around, so a
/// SET of a value within `max` of `i64::MIN` (for i8: below
/// -9223372036854775680) counts as an overflow upwards and saturates to the
/// maximum; that is kept, for identical results.
pub fn add_signed(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 {
        i64::MAX
    } else {
        (1i64 << (bits - 1)) - 1
    };
    let min = -max - 1;
    let (sum, wrapped) = value.overflowing_add(incr);
    let headroom = (max as u64).wrapping_sub(value as u64) as i64;
    let quirk = bits != 64 && incr > headroom;
    let over = quirk || value > max || (wrapped && incr > 0) || (!wrapped && sum > max);
    let under = !over && (value < min || (wrapped && incr < 0) || (!wrapped && sum < min));
    match (over || under, overflow) {
        (false, _) => Some(sum),
        (true, Overflow::Wrap) => Some(sign_extend(sum as u64, bits)),
        (true, Overflow::Sat) => Some(if over { max } else { min }),
        (true, Overflow::Fail) => None,
    }
}

// ---- Editing stored strings ---------------------------------------------------

/// Runs `f` on the bytes of a string value, in place: the buffer is reused
/// unless something else still holds it (a reply being written, a snapshot
/// in progress), in which case it is copied once, so repeated SETBITs or
/// PFADDs on a large value do not copy it each time.
pub(super) fn edit_str<R>(value: &mut Value, f: impl FnOnce(&mut Vec<u8>) -> R) -> Option<R> {
    let Value::Str(s) = value else {
        return None;
    };
    let mut buf = Vec::from(std::mem::take(s));
    let r = f(&mut buf);
    *s = Bytes::from(buf);
    Some(r)
}

/// Zero-pads `buf` to at least `len` bytes, growing like Redis's strings:
/// doubling up to 1 MiB, then 1 MiB at a time, so a bitmap grown a bit at a
/// time costs amortised O(1) without reserving twice a huge bitmap.
fn grow_zeroed(buf: &mut Vec<u8>, len: usize) {
    if len <= buf.len() {
        return;
    }
    if len > buf.capacity() {
        const STEP: usize = 1 << 20;
        let target = if len < STEP { len * 2 } else { len + STEP };
        buf.reserve_exact(target - buf.len());
    }
    buf.resize(len, 0);
}

/// Ensures `key` holds a string, creating an empty one; WRONGTYPE otherwise.
fn string_for_write(cx: &mut Ctx, key: &Bytes) -> Result<(), Reply> {
    match cx.db.peek(key).map(|e| e.value) {
        Some(ValueRef::Str(_)) => Ok(()),
        Some(_) => Err(Reply::error(WRONGTYPE)),
        None => {
            cx.db.set(key.clone(), Value::Str(Bytes::new()), None);
            Ok(())
        }
    }
}

/// The string at `key` for reading: `None` when missing.
fn string_for_read(cx: &mut Ctx, key: &[u8]) -> Result<Option<Bytes>, Reply> {
    match cx.db.get(key).map(|e| e.value) {
        None => Ok(None),
        Some(ValueRef::Str(s)) => Ok(Some(s.to_bytes())),
        Some(_) => Err(Reply::error(WRONGTYPE)),
    }
}

macro_rules! or_return {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return reply,
        }
    };
}

// ---- Argument parsing -----------------------------------------------------------

/// A bit offset as Redis parses it: a non-negative integer whose byte lies
/// below proto-max-bulk-len; with `field_bits`, `#n` means the n-th field of
/// that width (BITFIELD).
fn bit_offset(cx: &Ctx, arg: &[u8], field_bits: Option<u32>) -> Result<u64, Reply> {
    let (digits, scale) = match (arg.first(), field_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], i64::from(bits)),
        _ => (arg, 1),
    };
    let limit = cx.shared.config.proto_max_bulk_len;
    parse_i64(digits)
        // Redis multiplies with 64-bit wrap-around (`#-9223372036854775808`
        // is offset 0 for an even width); the range check below still holds.
        .map(|n| n.wrapping_mul(scale))
        .and_then(|n| u64::try_from(n).ok())
        .filter(|&n| n >> 3 < limit)
        .ok_or_else(|| Reply::error(BAD_OFFSET))
}

fn unit_arg(arg: &Bytes) -> Result<Unit, Reply> {
    if eq(arg, "BIT") {
        Ok(Unit::Bit)
    } else if eq(arg, "BYTE") {
        Ok(Unit::Byte)
    } else {
        Err(Reply::error(SYNTAX))
    }
}

// ---- Handlers -------------------------------------------------------------------

/// `SETBIT key offset 0|1`: the bit's previous value.
pub fn setbit(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let offset = or_return!(bit_offset(cx, &args[2], None));
    let on = match parse_i64(&args[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Reply::error(BAD_BIT),
    };
    // The offset check bounds the string to proto-max-bulk-len bytes.
    let Ok(byte) = usize::try_from(offset >> 3) else {
        return Reply::error(TOO_BIG);
    };
    // Setting a bit to the value it has changes nothing: answer without
    // writing, so that the key counts as unchanged (a WATCH on it holds).
    if let Some(ValueRef::Str(s)) = cx.db.peek(&args[1]).map(|e| e.value)
        && let Some(&b) = s.get(byte)
        && (b & (0x80u8 >> (offset & 7)) != 0) == on
    {
        return Reply::Integer(i64::from(on));
    }
    or_return!(string_for_write(cx, &args[1]));
    let old = cx.db.update(&args[1], |v| {
        edit_str(v, |buf| {
            grow_zeroed(buf, byte + 1);
            let mask = 0x80u8 >> (offset & 7);
            let old = buf[byte] & mask != 0;
            if on {
                buf[byte] |= mask;
            } else {
                buf[byte] &= !mask;
            }
            old
        })
    });
    Reply::Integer(i64::from(old.flatten() == Some(true)))
}

/// `GETBIT key offset`
pub fn getbit(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let offset = or_return!(bit_offset(cx, &args[2], None));
    let s = or_return!(string_for_read(cx, &args[1])).unwrap_or_default();
    Reply::Integer(get_field(&s, offset, 1) as i64)
}

/// `BITCOUNT key [start end [BYTE | BIT]]`
pub fn bitcount(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    // Redis 7.2 looks the key up first: a missing key counts 0 whatever the
    // other arguments.
    let Some(s) = or_return!(string_for_read(cx, &args[1])) else {
        return Reply::Integer(0);
    };
    let range = match args.len() {
        2 => None,
        4 | 5 => {
            let start = or_return!(int_arg(&args[2]));
            let end = or_return!(int_arg(&args[3]));
            // Checked before the unit is parsed, as Redis does.
            if start < 0 && end < 0 && start > end {
                return Reply::Integer(0);
            }
            let unit = match args.get(4) {
                Some(a) => or_return!(unit_arg(a)),
                None => Unit::Byte,
            };
            Some((start, end, unit))
        }
        _ => return Reply::error(SYNTAX),
    };
    Reply::Integer(count_bits(&s, range))
}

/// `BITPOS key bit [start [end [BYTE | BIT]]]`
pub fn bitpos(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let bit = match parse_i64(&args[2]) {
        Some(0) => false,
        Some(1) => true,
        Some(_) => return Reply::error("ERR The bit argument must be 1 or 0."),
        None => return Reply::error(NOT_INTEGER),
    };
    // A missing key is an endless run of zeros.
    let Some(s) = or_return!(string_for_read(cx, &args[1])) else {
        return Reply::Integer(if bit { -1 } else { 0 });
    };
    if args.len() > 6 {
        return Reply::error(SYNTAX);
    }
    let start = match args.get(3) {
        Some(a) => Some(or_return!(int_arg(a))),
        None => None,
    };
    // Redis parses the unit before the end.
    let unit = match args.get(5) {
        Some(a) => or_return!(unit_arg(a)),
        None => Unit::Byte,
    };
    let end = match args.get(4) {
        Some(a) => Some(or_return!(int_arg(a))),
        None => None,
    };
    Reply::Integer(first_bit(&s, bit, start, end, unit))
}

#[derive(Clone, Copy)]
enum Bitop {
    And,
    Or,
    Xor,
    Not,
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`: stores the result (missing
/// keys and short strings read as zeros) and returns its length; an empty
/// result deletes the destination.
pub fn bitop(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let op = if eq(&args[1], "AND") {
        Bitop::And
    } else if eq(&args[1], "OR") {
        Bitop::Or
    } else if eq(&args[1], "XOR") {
        Bitop::Xor
    } else if eq(&args[1], "NOT") {
        Bitop::Not
    } else {
        return Reply::error(SYNTAX);
    };
    if matches!(op, Bitop::Not) && args.len() != 4 {
        return Reply::error("ERR BITOP NOT must be called with a single source key.");
    }
    let mut sources = Vec::with_capacity(args.len() - 3);
    for key in &args[3..] {
        sources.push(or_return!(string_for_read(cx, key)).unwrap_or_default());
    }
    let len = sources.iter().map(Bytes::len).max().unwrap_or(0);
    let dest = &args[2];
    if len == 0 {
        cx.db.remove(dest);
        return Reply::Integer(0);
    }
    let mut out = vec![0u8; len];
    out[..sources[0].len()].copy_from_slice(&sources[0]);
    match op {
        Bitop::Not => out.iter_mut().for_each(|b| *b = !*b),
        Bitop::And => {
            for s in &sources[1..] {
                for (i, b) in out.iter_mut().enumerate() {
                    *b &= s.get(i).copied().unwrap_or(0);
                }
            }
        }
        Bitop::Or | Bitop::Xor => {
            for s in &sources[1..] {
                for (b, x) in out.iter_mut().zip(s.iter()) {
                    if matches!(op, Bitop::Or) {
                        *b |= x;
                    } else {
                        *b ^= x;
                    }
                }
            }
        }
    }
    // A plain SET of the destination: any TTL it had is gone, as in Redis.
    cx.db.set(dest.clone(), Value::Str(Bytes::from(out)), None);
    Reply::Integer(len as i64)
}

#[derive(Clone, Copy)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

#[derive(Clone, Copy)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// `i1`..`i64` or `u1`..`u63` (u64 values would not fit a RESP integer).
fn field_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    // Redis reads the width as a C string: a NUL ends it.
    let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(Reply::error(BAD_TYPE)),
    };
    match parse_i64(&arg[1..]) {
        Some(n) if n >= 1 && n <= if signed { 64 } else { 63 } => Ok((signed, n as u32)),
        _ => Err(Reply::error(BAD_TYPE)),
    }
}

/// `BITFIELD key [GET type offset | SET type offset value | INCRBY type
/// offset increment | OVERFLOW WRAP|SAT|FAIL] ...`
pub fn bitfield(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bitfield_generic(cx, args, false)
}

/// `BITFIELD_RO key [GET type offset ...]`
pub fn bitfield_ro(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    bitfield_generic(cx, args, true)
}

fn bitfield_generic(cx: &mut Ctx, args: &[Bytes], read_only: bool) -> Reply {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    // The last bit any SET or INCRBY touches.
    let mut highest: Option<u64> = None;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let sub = &args[j];
        let op_args = if eq(sub, "GET") && left >= 2 {
            2
        } else if (eq(sub, "SET") || eq(sub, "INCRBY")) && left >= 3 {
            3
        } else if eq(sub, "OVERFLOW") && left >= 1 {
            let kind = &args[j + 1];
            overflow = if eq(kind, "WRAP") {
                Overflow::Wrap
            } else if eq(kind, "SAT") {
                Overflow::Sat
            } else if eq(kind, "FAIL") {
                Overflow::Fail
            } else {
                return Reply::error("ERR Invalid OVERFLOW type specified");
            };
            j += 2;
            continue;
        } else {
            return Reply::error(SYNTAX);
        };
        let (signed, bits) = or_return!(field_type(&args[j + 1]));
        let offset = or_return!(bit_offset(cx, &args[j + 2], Some(bits)));
        let op = if op_args == 2 {
            FieldOp::Get
        } else {
            let last = offset + u64::from(bits) - 1;
            highest = Some(highest.map_or(last, |h| h.max(last)));
            let n = or_return!(int_arg(&args[j + 3]));
            if eq(sub, "SET") {
                FieldOp::Set(n)
            } else {
                FieldOp::IncrBy(n)
            }
        };
        fields.push(Field {
            op,
            signed,
            bits,
            offset,
            overflow,
        });
        j += 1 + op_args;
    }
    let key = &args[1];
    let Some(highest) = highest else {
        // Only GETs: a missing key reads as zeros.
        let s = or_return!(string_for_read(cx, key)).unwrap_or_default();
        return Reply::Array(fields.iter().map(|f| read_field(&s, f)).collect());
    };
    if read_only {
        return Reply::error("ERR BITFIELD_RO only supports the GET subcommand");
    }
    // A field may end up to 63 bits past the last offset the offset check
    // allows: keep the string itself within proto-max-bulk-len.
    let limit = cx.shared.config.proto_max_bulk_len;
    let len = usize::try_from(highest / 8 + 1)
        .ok()
        .filter(|&n| n as u64 <= limit);
    match cx.db.peek(key).map(|e| e.value) {
        Some(ValueRef::Str(s)) => {
            if let Some(replies) = len.and_then(|len| dry_run(&s, &fields, len)) {
                return Reply::Array(replies);
            }
        }
        Some(_) => return Reply::error(WRONGTYPE),
        None => {}
    }
    let Some(len) = len else {
        return Reply::error(TOO_BIG);
    };
    or_return!(string_for_write(cx, key));
    // Like Redis, the string grows to cover every write even when an
    // OVERFLOW FAIL leaves a field unwritten.
    let replies = cx.db.update(key, |v| {
        edit_str(v, |buf| {
            grow_zeroed(buf, len);
            fields.iter().map(|f| apply_field(buf, f)).collect()
        })
    });
    Reply::Array(replies.flatten().unwrap_or_default())
}

/// The replies of a BITFIELD whose writes all leave `s` as it is (no
/// growth, every field already holding what is stored), or `None`. Such a
/// command is answered without writing, so the key counts as unchanged (a
/// WATCH on it holds), as in Redis. Each field is tried on a copy of the at
/// most 9 bytes it spans; until a field changes, later fields read the
/// original bytes.
fn dry_run(s: &[u8], fields: &[Field], len: usize) -> Option<Vec<Reply>> {
    if len > s.len() {
        return None;
    }
    fields
        .iter()
        .map(|f| {
            let byte = (f.offset >> 3) as usize;
            let mut window = [0u8; 9];
            for (i, w) in window.iter_mut().enumerate() {
                *w = s.get(byte + i).copied().unwrap_or(0);
            }
            let before = window;
            let local = Field {
                offset: f.offset & 7,
                ..*f
            };
            let reply = apply_field(&mut window, &local);
            (window == before).then_some(reply)
        })
        .collect()
}

fn read_field(s: &[u8], f: &Field) -> Reply {
    let raw = get_field(s, f.offset, f.bits);
    Reply::Integer(if f.signed {
        sign_extend(raw, f.bits)
    } else {
        raw as i64
    })
}

/// Runs one BITFIELD operation on a buffer that covers every written field.
fn apply_field(buf: &mut [u8], f: &Field) -> Reply {
    let raw = get_field(buf, f.offset, f.bits);
    // What to store (None: OVERFLOW FAIL) and the reply: SET answers the old
    // value, INCRBY the new one.
    let (stored, reply) = match (f.op, f.signed) {
        (FieldOp::Get, _) => return read_field(buf, f),
        (FieldOp::Set(n), true) => (
            add_signed(n, 0, f.bits, f.overflow).map(|v| v as u64),
            sign_extend(raw, f.bits),
        ),
        (FieldOp::Set(n), false) => (add_unsigned(n as u64, 0, f.bits, f.overflow), raw as i64),
        (FieldOp::IncrBy(n), true) => {
            let new = add_signed(sign_extend(raw, f.bits), n, f.bits, f.overflow);
            (new.map(|v| v as u64), new.unwrap_or(0))
        }
        (FieldOp::IncrBy(n), false) => {
            let new = add_unsigned(raw, n, f.bits, f.overflow);
            (new, new.unwrap_or(0) as i64)
        }
    };
    match stored {
        Some(v) => {
            set_field(buf, f.offset, f.bits, v);
            Reply::Integer(reply)
        }
        None => Reply::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bit(s: &[u8], i: u64) -> bool {
        s.get((i / 8) as usize)
            .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    }

    /// Redis's range rule, written out plainly, as an inclusive bit range.
    fn model_range(len: usize, start: i64, end: i64, unit: Unit) -> Option<(i64, i64)> {
        let total = len as i64 * if unit == Unit::Bit { 8 } else { 1 };
        let s = if start < 0 {
            (total + start).max(0)
        } else {
            start
        };
        let e = if end < 0 { (total + end).max(0) } else { end };
        let e = e.min(total - 1);
        if s > e {
            return None;
        }
        Some(if unit == Unit::Bit {
            (s, e)
        } else {
            (s * 8, e * 8 + 7)
        })
    }

    fn model_count(s: &[u8], range: Option<(i64, i64, Unit)>) -> i64 {
        let (a, b) = match range {
            None => (0, s.len() as i64 * 8 - 1),
            Some((st, en, _)) if st < 0 && en < 0 && st > en => return 0,
            Some((st, en, u)) => match model_range(s.len(), st, en, u) {
                Some(r) => r,
                None => return 0,
            },
        };
        (a.max(0)..=b).filter(|&i| bit(s, i as u64)).count() as i64
    }

    fn model_pos(s: &[u8], want: bool, start: Option<i64>, end: Option<i64>, unit: Unit) -> i64 {
        let range = match start {
            None => model_range(s.len(), 0, -1, Unit::Byte),
            Some(st) => model_range(s.len(), st, end.unwrap_or(-1), unit),
        };
        let Some((a, b)) = range else { return -1 };
        for i in a..=b {
            if bit(s, i as u64) == want {
                return i;
            }
        }
        if !want && end.is_none() { b + 1 } else { -1 }
    }

    fn model_get(s: &[u8], offset: u64, bits: u32) -> u64 {
        (0..u64::from(bits)).fold(0, |v, i| (v << 1) | u64::from(bit(s, offset + i)))
    }

    fn model_set(s: &mut [u8], offset: u64, bits: u32, value: u64) {
        for i in 0..u64::from(bits) {
            let on = value >> (u64::from(bits) - 1 - i) & 1 == 1;
            let (byte, mask) = (((offset + i) / 8) as usize, 0x80u8 >> ((offset + i) % 8));
            if on {
                s[byte] |= mask;
            } else {
                s[byte] &= !mask;
            }
        }
    }

    /// Overflow with unbounded arithmetic: the stored value, or None.
    fn model_store(value: i128, bits: u32, signed: bool, ow: Overflow) -> Option<i128> {
        let (min, max) = if signed {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else {
            (0, (1i128 << bits) - 1)
        };
        if (min..=max).contains(&value) {
            return Some(value);
        }
        match ow {
            Overflow::Fail => None,
            Overflow::Sat => Some(if value > max { max } else { min }),
            Overflow::Wrap => {
                let m = value.rem_euclid(1i128 << bits);
                Some(if signed && m > max {
                    m - (1i128 << bits)
                } else {
                    m
                })
            }
        }
    }

    fn unit() -> impl Strategy<Value = Unit> {
        prop_oneof![Just(Unit::Byte), Just(Unit::Bit)]
    }

    fn overflow() -> impl Strategy<Value = Overflow> {
        prop_oneof![
            Just(Overflow::Wrap),
            Just(Overflow::Sat),
            Just(Overflow::Fail)
        ]
    }

    #[test]
    fn redis_examples() {
        // From Redis's documentation and redis-server 7.
        assert_eq!(count_bits(b"foobar", None), 26);
        assert_eq!(count_bits(b"foobar", Some((0, 0, Unit::Byte))), 4);
        assert_eq!(count_bits(b"foobar", Some((1, 1, Unit::Byte))), 6);
        assert_eq!(count_bits(b"foobar", Some((5, 30, Unit::Bit))), 17);
        assert_eq!(count_bits(b"foobar", Some((-100, -200, Unit::Bit))), 0);
        assert_eq!(
            first_bit(b"\xff\xf0\x00", false, None, None, Unit::Byte),
            12
        );
        assert_eq!(
            first_bit(b"\x00\xff\xf0", true, Some(0), None, Unit::Byte),
            8
        );
        assert_eq!(
            first_bit(b"\x00\xff\xf0", true, Some(2), None, Unit::Byte),
            16
        );
        assert_eq!(
            first_bit(b"\x00\xff\xf0", true, Some(2), Some(-1), Unit::Byte),
            16
        );
        assert_eq!(
            first_bit(b"\x00\xff\xf0", true, Some(7), Some(15), Unit::Bit),
            8
        );
        assert_eq!(first_bit(b"\xff\xff", false, None, None, Unit::Byte), 16);
        assert_eq!(
            first_bit(b"\xff\xff", false, Some(0), Some(-1), Unit::Byte),
            -1
        );
        assert_eq!(first_bit(b"\x00\x00", true, None, None, Unit::Byte), -1);
        assert_eq!(first_bit(b"", false, None, None, Unit::Byte), -1);
        assert_eq!(get_field(b"\x01\x70", 7, 5), 23);
        let mut buf = [0u8; 2];
        set_field(&mut buf, 7, 5, 23);
        assert_eq!(buf, [0b0000_0001, 0b0111_0000]);
    }

    #[test]
    fn overflow_matches_redis() {
        // Values redis-server 7 returns for BITFIELD ... OVERFLOW x SET/INCRBY.
        assert_eq!(add_unsigned(-1i64 as u64, 0, 8, Overflow::Sat), Some(255));
        assert_eq!(add_unsigned(-300i64 as u64, 0, 8, Overflow::Sat), Some(255));
        assert_eq!(add_unsigned(300, 0, 8, Overflow::Sat), Some(255));
        assert_eq!(add_unsigned(300, 0, 8, Overflow::Wrap), Some(44));
        assert_eq!(add_unsigned(256, 0, 8, Overflow::Fail), None);
        assert_eq!(add_unsigned(0, 10, 2, Overflow::Fail), None);
        assert_eq!(add_unsigned(1, -2, 8, Overflow::Sat), Some(0));
        assert_eq!(add_signed(300, 0, 8, Overflow::Wrap), Some(44));
        assert_eq!(add_signed(-300, 0, 8, Overflow::Sat), Some(-128));
        assert_eq!(add_signed(-1, i64::MIN, 64, Overflow::Sat), Some(i64::MIN));
        assert_eq!(add_signed(i64::MIN, i64::MIN, 64, Overflow::Wrap), Some(0));
        assert_eq!(add_signed(127, 1, 8, Overflow::Wrap), Some(-128));
        // Redis's wrapped headroom: far below the minimum saturates upwards.
        assert_eq!(
            add_signed(i64::MIN, 0, 33, Overflow::Sat),
            Some((1 << 32) - 1)
        );
        assert_eq!(
            add_signed(-9223372036854775681, 0, 8, Overflow::Sat),
            Some(127)
        );
        assert_eq!(
            add_signed(-9223372036854775680, 0, 8, Overflow::Sat),
            Some(-128)
        );
        assert_eq!(add_signed(i64::MIN, 0, 8, Overflow::Wrap), Some(0));
        assert_eq!(
            add_unsigned(i64::MAX as u64, i64::MAX, 63, Overflow::Wrap),
            Some(i64::MAX as u64 - 1)
        );
    }

    proptest! {
        #[test]
        fn bitcount_matches_the_model(s in prop::collection::vec(any::<u8>(), 0..40),
                                      start in -400i64..400, end in -400i64..400, u in unit(), whole in any::<bool>()) {
            let range = (!whole).then_some((start, end, u));
            prop_assert_eq!(count_bits(&s, range), model_count(&s, range));
        }

        #[test]
        fn bitpos_matches_the_model(s in prop::collection::vec(prop_oneof![Just(0u8), Just(0xff), any::<u8>()], 0..40),
                                    want in any::<bool>(), start in prop::option::of(-400i64..400),
                                    end in prop::option::of(-400i64..400), u in unit()) {
            // An end (and unit) only comes with a start.
            let end = start.and(end);
            prop_assert_eq!(first_bit(&s, want, start, end, u), model_pos(&s, want, start, end, u));
        }

        #[test]
        fn fields_read_and_write_like_single_bits(mut s in prop::collection::vec(any::<u8>(), 0..24),
                                                  offset in 0u64..200, bits in 1u32..=64, value in any::<u64>()) {
            prop_assert_eq!(get_field(&s, offset, bits), model_get(&s, offset, bits));
            let need = ((offset + u64::from(bits) - 1) / 8 + 1) as usize;
            if s.len() < need {
                s.resize(need, 0);
            }
            let mut expected = s.clone();
            model_set(&mut expected, offset, bits, value);
            set_field(&mut s, offset, bits, value);
            prop_assert_eq!(&s, &expected);
            let mask = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
            prop_assert_eq!(get_field(&s, offset, bits), value & mask);
        }

        #[test]
        fn unsigned_overflow_matches_unbounded_arithmetic(bits in 1u32..=63, raw in any::<u64>(),
                                                          incr in any::<i64>(), set in any::<bool>(), ow in overflow()) {
            let value = raw & ((1u64 << bits) - 1);
            let (got, want) = if set {
                // SET: the argument, as an unsigned 64-bit number.
                (add_unsigned(incr as u64, 0, bits, ow), model_store(i128::from(incr as u64), bits, false, ow))
            } else {
                (add_unsigned(value, incr, bits, ow), model_store(i128::from(value) + i128::from(incr), bits, false, ow))
            };
            prop_assert_eq!(got.map(i128::from), want);
        }

        #[test]
        fn signed_overflow_matches_unbounded_arithmetic(bits in 1u32..=64, raw in any::<u64>(),
                                                        incr in any::<i64>(), set in any::<bool>(), ow in overflow()) {
            let value = sign_extend(raw, bits);
            let (got, want) = if set {
                let mut want = model_store(i128::from(incr), bits, true, ow);
                // Redis's wrapped headroom (see `add_signed`).
                let max = (1i128 << (bits - 1)) - 1;
                if bits < 64 && ow == Overflow::Sat && max - i128::from(incr) > i128::from(i64::MAX) {
                    want = Some(max);
                }
                (add_signed(incr, 0, bits, ow), want)
            } else {
                (add_signed(value, incr, bits, ow), model_store(i128::from(value) + i128::from(incr), bits, true, ow))
            };
            prop_assert_eq!(got.map(i128::from), want);
        }
    }
}
