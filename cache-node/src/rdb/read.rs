//! Reading RDB: a streaming reader over any [`Read`] (a file, an object
//! store's body), one key at a time in bounded memory, verifying the
//! checksum at the end; and `RESTORE`'s payloads.
//!
//! Nothing is allocated on a length's say-so alone: strings grow as their
//! bytes actually arrive and collections as their elements decode, so a
//! corrupt or hostile length costs an error, not memory.

use std::io::Read;

use bytes::Bytes;

use super::packed::{self, Elem};
use super::{CRC64, QUICKLIST_PACKED, QUICKLIST_PLAIN, RdbError, VERSION_READ_MAX, op, ty};
use crate::db::Value;
use crate::types::{End, Hash, List, Set, SortedSet};

/// Bytes read from the source at a time.
const BUF: usize = 256 * 1024;

/// Largest allocation made ahead of the bytes that fill it.
const AHEAD: usize = 1 << 20;

/// The source, buffered, with the running checksum of what was consumed.
struct Src<R> {
    r: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// `buf[hashed..pos]` is consumed but not yet in `crc`.
    hashed: usize,
    crc: crc::Digest<'static, u64, crc::Table<16>>,
    /// Stream offset of `buf[0]`.
    base: u64,
}

impl<R: Read> Src<R> {
    fn new(r: R) -> Self {
        Src {
            r,
            buf: vec![0; BUF].into_boxed_slice(),
            pos: 0,
            end: 0,
            hashed: 0,
            crc: CRC64.digest(),
            base: 0,
        }
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn corrupt(&self, what: impl Into<String>) -> RdbError {
        RdbError::Corrupt {
            at: self.offset(),
            what: what.into(),
        }
    }

    /// Makes at least one unconsumed byte available, or fails as truncated.
    fn fill(&mut self) -> Result<(), RdbError> {
        if self.pos < self.end {
            return Ok(());
        }
        self.crc.update(&self.buf[self.hashed..self.pos]);
        self.base += self.pos as u64;
        self.pos = 0;
        self.end = 0;
        self.hashed = 0;
        loop {
            match self.r.read(&mut self.buf) {
                Ok(0) => return Err(RdbError::Truncated(self.base)),
                Ok(n) => {
                    self.end = n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn u8(&mut self) -> Result<u8, RdbError> {
        self.fill()?;
        self.pos += 1;
        Ok(self.buf[self.pos - 1])
    }

    fn exact(&mut self, out: &mut [u8]) -> Result<(), RdbError> {
        let mut done = 0;
        while done < out.len() {
            self.fill()?;
            let n = (out.len() - done).min(self.end - self.pos);
            out[done..done + n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            done += n;
        }
        Ok(())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let mut a = [0; N];
        self.exact(&mut a)?;
        Ok(a)
    }

    /// `n` bytes, allocated as they arrive.
    fn bytes(&mut self, n: u64) -> Result<Vec<u8>, RdbError> {
        let n = usize::try_from(n).map_err(|_| self.corrupt("string longer than memory"))?;
        let mut v = Vec::with_capacity(n.min(AHEAD));
        while v.len() < n {
            self.fill()?;
            let take = (n - v.len()).min(self.end - self.pos);
            v.extend_from_slice(&self.buf[self.pos..self.pos + take]);
            self.pos += take;
        }
        Ok(v)
    }

    /// The checksum of everything consumed so far.
    fn checksum(&mut self) -> u64 {
        self.crc.update(&self.buf[self.hashed..self.pos]);
        self.hashed = self.pos;
        self.crc.clone().finalize()
    }

    /// Whether the source has nothing after what was consumed.
    fn at_end(&mut self) -> Result<bool, RdbError> {
        match self.fill() {
            Ok(()) => Ok(false),
            Err(RdbError::Truncated(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// A length, or one of the special string encodings.
enum Len {
    Plain(u64),
    Int8,
    Int16,
    Int32,
    Lzf,
}

impl<R: Read> Src<R> {
    fn len_or_enc(&mut self) -> Result<Len, RdbError> {
        let b = self.u8()?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(self.u8()?)),
            2 => match b {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.array()?))),
                0x81 => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => return Err(self.corrupt(format!("unknown length prefix {b:#04x}"))),
            },
            _ => match b & 0x3f {
                0 => Len::Int8,
                1 => Len::Int16,
                2 => Len::Int32,
                3 => Len::Lzf,
                _ => return Err(self.corrupt(format!("unknown string encoding {b:#04x}"))),
            },
        })
    }

    fn len(&mut self) -> Result<u64, RdbError> {
        match self.len_or_enc()? {
            Len::Plain(n) => Ok(n),
            _ => Err(self.corrupt("an encoded string where a length belongs")),
        }
    }

    /// A length that counts things held in memory.
    fn count(&mut self) -> Result<usize, RdbError> {
        let n = self.len()?;
        usize::try_from(n).map_err(|_| self.corrupt("count larger than memory"))
    }

    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        Ok(match self.len_or_enc()? {
            Len::Plain(n) => self.bytes(n)?,
            Len::Int8 => (self.u8()? as i8).to_string().into_bytes(),
            Len::Int16 => i16::from_le_bytes(self.array()?).to_string().into_bytes(),
            Len::Int32 => i32::from_le_bytes(self.array()?).to_string().into_bytes(),
            Len::Lzf => {
                let clen = self.len()?;
                let len = self.len()?;
                let len = usize::try_from(len).map_err(|_| self.corrupt("LZF length"))?;
                let packed = self.bytes(clen)?;
                packed::lzf_decompress(&packed, len).map_err(|e| self.corrupt(e))?
            }
        })
    }

    fn bulk(&mut self) -> Result<Bytes, RdbError> {
        self.string().map(Bytes::from)
    }

    /// A score of the first sorted-set encoding: a length-prefixed decimal,
    /// or 253/254/255 for NaN/+inf/-inf.
    fn score_v1(&mut self) -> Result<f64, RdbError> {
        match self.u8()? {
            253 => Err(self.corrupt("score is NaN")),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.bytes(u64::from(n))?;
                packed::parse_score(&s).ok_or_else(|| self.corrupt("score is not a number"))
            }
        }
    }

    fn score_binary(&mut self) -> Result<f64, RdbError> {
        let f = f64::from_le_bytes(self.array()?);
        if f.is_nan() {
            return Err(self.corrupt("score is NaN"));
        }
        Ok(f)
    }

    /// A listpack's (or else a ziplist's) elements, handed to `each`.
    fn packed<'b>(
        &self,
        blob: &'b [u8],
        listpack: bool,
        each: impl FnMut(Elem<'b>) -> Result<(), &'static str>,
    ) -> Result<(), RdbError> {
        let walked = if listpack {
            packed::listpack(blob, each)
        } else {
            packed::ziplist(blob, each)
        };
        walked.map(drop).map_err(|e| self.corrupt(e))
    }

    /// One value of type `t`.
    fn value(&mut self, t: u8) -> Result<Value, RdbError> {
        let value = match t {
            ty::STRING => Value::Str(self.bulk()?),
            ty::LIST => {
                let mut list = List::default();
                for _ in 0..self.count()? {
                    list.push(End::Right, self.bulk()?);
                }
                Value::List(list)
            }
            ty::SET => {
                let mut set = Set::default();
                for _ in 0..self.count()? {
                    set.insert(self.bulk()?);
                }
                Value::Set(set)
            }
            ty::ZSET | ty::ZSET_2 => {
                let mut z = SortedSet::default();
                for _ in 0..self.count()? {
                    let member = self.bulk()?;
                    let score = if t == ty::ZSET {
                        self.score_v1()?
                    } else {
                        self.score_binary()?
                    };
                    z.insert(member, score);
                }
                Value::ZSet(z)
            }
            ty::HASH => {
                let mut h = Hash::default();
                for _ in 0..self.count()? {
                    let field = self.bulk()?;
                    h.insert(field, self.bulk()?);
                }
                Value::Hash(h)
            }
            ty::HASH_ZIPMAP => {
                let blob = self.string()?;
                let mut h = Hash::default();
                packed::zipmap(&blob, |k, v| {
                    h.insert(Bytes::copy_from_slice(k), Bytes::copy_from_slice(v));
                })
                .map_err(|e| self.corrupt(e))?;
                Value::Hash(h)
            }
            ty::SET_INTSET => {
                let blob = self.string()?;
                let mut set = Set::default();
                packed::intset(&blob, |n| {
                    set.insert(Bytes::from(n.to_string()));
                })
                .map_err(|e| self.corrupt(e))?;
                Value::Set(set)
            }
            ty::LIST_ZIPLIST | ty::LIST_QUICKLIST | ty::LIST_QUICKLIST_2 => {
                let mut list = List::default();
                let nodes = if t == ty::LIST_ZIPLIST {
                    1
                } else {
                    self.count()?
                };
                for _ in 0..nodes {
                    let container = if t == ty::LIST_QUICKLIST_2 {
                        self.len()?
                    } else {
                        QUICKLIST_PACKED
                    };
                    let blob = self.string()?;
                    match container {
                        QUICKLIST_PLAIN => list.push(End::Right, Bytes::from(blob)),
                        QUICKLIST_PACKED => {
                            self.packed(&blob, t == ty::LIST_QUICKLIST_2, |e| {
                                list.push(End::Right, Bytes::from(e.to_vec()));
                                Ok(())
                            })?;
                        }
                        c => return Err(self.corrupt(format!("unknown quicklist container {c}"))),
                    }
                }
                Value::List(list)
            }
            ty::SET_LISTPACK => {
                let blob = self.string()?;
                let mut set = Set::default();
                self.packed(&blob, true, |e| {
                    set.insert(Bytes::from(e.to_vec()));
                    Ok(())
                })?;
                Value::Set(set)
            }
            ty::ZSET_ZIPLIST | ty::ZSET_LISTPACK => {
                let blob = self.string()?;
                let mut z = SortedSet::default();
                let mut member = None;
                self.packed(&blob, t == ty::ZSET_LISTPACK, |e| {
                    match member.take() {
                        None => member = Some(Bytes::from(e.to_vec())),
                        Some(m) => {
                            z.insert(m, e.score()?);
                        }
                    }
                    Ok(())
                })?;
                if member.is_some() {
                    return Err(self.corrupt("sorted set with a member and no score"));
                }
                Value::ZSet(z)
            }
            ty::HASH_ZIPLIST | ty::HASH_LISTPACK => {
                let blob = self.string()?;
                let mut h = Hash::default();
                let mut field = None;
                self.packed(&blob, t == ty::HASH_LISTPACK, |e| {
                    match field.take() {
                        None => field = Some(Bytes::from(e.to_vec())),
                        Some(f) => {
                            h.insert(f, Bytes::from(e.to_vec()));
                        }
                    }
                    Ok(())
                })?;
                if field.is_some() {
                    return Err(self.corrupt("hash with a field and no value"));
                }
                Value::Hash(h)
            }
            ty::STREAM_LISTPACKS | ty::STREAM_LISTPACKS_2 | ty::STREAM_LISTPACKS_3 => {
                return Err(self.unsupported("stream"));
            }
            ty::MODULE_PRE_GA | ty::MODULE_2 => return Err(self.unsupported("module value")),
            t => return Err(self.corrupt(format!("unknown value type {t}"))),
        };
        Ok(value)
    }

    fn unsupported(&self, what: &'static str) -> RdbError {
        RdbError::Unsupported {
            at: self.offset(),
            what,
        }
    }

    /// Skips a module's auxiliary data: module id, when, and typed fields
    /// up to the end marker (RDB 9+ writes them self-describing).
    fn skip_module_aux(&mut self) -> Result<(), RdbError> {
        self.len()?; // module id
        let when_opcode = self.len()?;
        self.len()?; // when
        if when_opcode != 2 {
            return Err(self.corrupt("module aux data without typed fields"));
        }
        loop {
            match self.len()? {
                0 => return Ok(()),
                1 | 2 => drop(self.len()?),
                3 => drop(self.array::<4>()?),
                4 => drop(self.array::<8>()?),
                5 => drop(self.string()?),
                n => return Err(self.corrupt(format!("unknown module field type {n}"))),
            }
        }
    }
}

/// One key read off an RDB stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub key: Bytes,
    pub value: Value,
    /// Unix ms; may be in the past (the caller drops such keys).
    pub expires_at: Option<u64>,
    /// Seconds since last use, if the writer kept LRU data.
    pub idle_secs: Option<u64>,
    /// The LFU counter, if the writer kept LFU data.
    pub freq: Option<u8>,
}

/// Reads an RDB stream key by key: [`Reader::next`] until `None`, which
/// comes only after the end marker and a matching checksum.
pub struct Reader<R> {
    src: Src<R>,
    version: u16,
    done: bool,
    /// The file's AUX metadata, as read so far.
    pub aux: Vec<(Bytes, Bytes)>,
    /// Function libraries skipped (this node has no scripting yet).
    pub functions_skipped: usize,
}

impl<R: Read> Reader<R> {
    /// Reads the signature and version.
    pub fn new(r: R) -> Result<Self, RdbError> {
        let mut src = Src::new(r);
        let mut magic = [0; 9];
        src.exact(&mut magic).map_err(|e| match e {
            RdbError::Truncated(_) => RdbError::NotRdb,
            e => e,
        })?;
        if &magic[..5] != b"REDIS" || !magic[5..].iter().all(u8::is_ascii_digit) {
            return Err(RdbError::NotRdb);
        }
        let version: u16 = std::str::from_utf8(&magic[5..])
            .expect("ASCII digits")
            .parse()
            .expect("four digits");
        if version == 0 || version > VERSION_READ_MAX {
            return Err(RdbError::Version(version));
        }
        Ok(Reader {
            src,
            version,
            done: false,
            aux: Vec::new(),
            functions_skipped: 0,
        })
    }

    pub fn version(&self) -> u16 {
        self.version
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.src.offset()
    }

    /// The next key, or `None` once the stream ended well.
    pub fn next_item(&mut self) -> Result<Option<Item>, RdbError> {
        if self.done {
            return Ok(None);
        }
        let mut expires_at = None;
        let mut idle_secs = None;
        let mut freq = None;
        loop {
            let t = self.src.u8()?;
            match t {
                op::EOF => {
                    self.finish()?;
                    return Ok(None);
                }
                op::SELECTDB => {
                    let db = self.src.len()?;
                    if db != 0 {
                        return Err(RdbError::Database(db));
                    }
                }
                op::RESIZEDB => {
                    self.src.len()?;
                    self.src.len()?;
                }
                op::SLOT_INFO => {
                    for _ in 0..3 {
                        self.src.len()?;
                    }
                }
                op::AUX => {
                    let name = self.src.bulk()?;
                    let value = self.src.bulk()?;
                    self.aux.push((name, value));
                }
                op::EXPIRETIME_MS => {
                    expires_at = Some(u64::from_le_bytes(self.src.array()?));
                }
                op::EXPIRETIME => {
                    let secs = u32::from_le_bytes(self.src.array()?);
                    expires_at = Some(u64::from(secs) * 1000);
                }
                op::IDLE => idle_secs = Some(self.src.len()?),
                op::FREQ => freq = Some(self.src.u8()?),
                op::FUNCTION2 => {
                    self.src.string()?;
                    self.functions_skipped += 1;
                }
                op::FUNCTION_PRE_GA => return Err(self.src.unsupported("pre-7.0 function")),
                op::MODULE_AUX => self.src.skip_module_aux()?,
                t => {
                    let key = self.src.bulk()?;
                    let value = self.src.value(t)?;
                    // redis-server skips empty collections in a file (and
                    // this node never stores one): so do we.
                    if value.is_empty_collection() {
                        expires_at = None;
                        idle_secs = None;
                        freq = None;
                        continue;
                    }
                    return Ok(Some(Item {
                        key,
                        value,
                        expires_at,
                        idle_secs,
                        freq,
                    }));
                }
            }
        }
    }

    /// After the end marker: the checksum (version 5 on), then nothing.
    fn finish(&mut self) -> Result<(), RdbError> {
        if self.version >= 5 {
            let computed = self.src.checksum();
            let stored = u64::from_le_bytes(self.src.array()?);
            // A writer with checksums turned off writes 0.
            if stored != 0 && stored != computed {
                return Err(RdbError::Checksum { stored, computed });
            }
        }
        if !self.src.at_end()? {
            return Err(self.src.corrupt("bytes after the end of the RDB stream"));
        }
        self.done = true;
        Ok(())
    }
}

/// `RESTORE`'s payload: the value, after checking the version and CRC-64
/// its last 10 bytes carry.
pub fn load_payload(payload: &[u8]) -> Result<Value, RdbError> {
    let Some(body_len) = payload.len().checked_sub(10) else {
        return Err(RdbError::Truncated(payload.len() as u64));
    };
    let version = u16::from_le_bytes([payload[body_len], payload[body_len + 1]]);
    if version > VERSION_READ_MAX {
        return Err(RdbError::Version(version));
    }
    let stored = u64::from_le_bytes(payload[body_len + 2..].try_into().expect("8 bytes"));
    let computed = CRC64.checksum(&payload[..body_len + 2]);
    if stored != computed {
        return Err(RdbError::Checksum { stored, computed });
    }
    let mut src = Src::new(&payload[..body_len]);
    let t = src.u8()?;
    let value = src.value(t)?;
    if value.is_empty_collection() {
        return Err(src.corrupt("empty collection"));
    }
    if !src.at_end()? {
        return Err(src.corrupt("bytes after the value"));
    }
    Ok(value)
}
