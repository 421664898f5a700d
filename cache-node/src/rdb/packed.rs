//! The packed encodings Redis keeps small collections in, which its RDB
//! files carry as opaque strings: listpack (7.0+), ziplist (3.2–6.2),
//! intset and zipmap (2.x), and the LZF compression of long strings.
//!
//! Each decoder walks a blob it was handed, checks every length against
//! the bytes left, and calls `each` per element; a malformed blob is an
//! error (`&'static str` saying what was wrong), never a panic or an
//! out-of-bounds read. Elements are lent as [`Elem`]: packed formats store
//! numeric strings as integers, and the string a client wrote is the
//! integer's decimal form (Redis packs only strings that round-trip).

/// One element of a packed collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem<'a> {
    Str(&'a [u8]),
    Int(i64),
}

impl Elem<'_> {
    /// The element as the string a client reads.
    pub fn to_vec(self) -> Vec<u8> {
        match self {
            Elem::Str(s) => s.to_vec(),
            Elem::Int(n) => n.to_string().into_bytes(),
        }
    }

    /// The element read as a sorted set's score.
    pub fn score(self) -> Result<f64, &'static str> {
        let score = match self {
            Elem::Int(n) => n as f64,
            Elem::Str(s) => parse_score(s).ok_or("score is not a number")?,
        };
        if score.is_nan() {
            return Err("score is NaN");
        }
        Ok(score)
    }
}

/// A score as Redis prints it (`inf`, `-inf`, decimal or exponent form).
pub fn parse_score(s: &[u8]) -> Option<f64> {
    std::str::from_utf8(s).ok()?.parse::<f64>().ok()
}

/// A cursor over a blob that refuses to read past its end.
struct Cur<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    /// A cursor past the blob's first field, its whole size (u32 LE),
    /// which must be the blob's: else `mismatch`.
    fn sized(b: &'a [u8], mismatch: &'static str) -> Result<Self, &'static str> {
        let mut c = Cur { b, at: 0 };
        if u32::from_le_bytes(c.le()?) as usize != b.len() {
            return Err(mismatch);
        }
        Ok(c)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        let end = self.at.checked_add(n).ok_or("length overflows")?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or("element runs past the end")?;
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], &'static str> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn peek(&self) -> Result<u8, &'static str> {
        self.b.get(self.at).copied().ok_or("missing end marker")
    }
}

/// Sign-extends the low `bits` bits of `v`.
fn signed(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Bytes a listpack entry's back-length takes for an entry of `len` bytes.
fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_382 => 2,
        16_383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Walks a listpack: `total:u32 count:u16 entry* 0xFF`, each entry an
/// encoding, its data and its length written backwards.
pub fn listpack<'a>(
    blob: &'a [u8],
    mut each: impl FnMut(Elem<'a>) -> Result<(), &'static str>,
) -> Result<usize, &'static str> {
    let mut c = Cur::sized(blob, "listpack size does not match its header")?;
    let _count = c.le::<2>()?; // 65535 means "count it", so walk to the end.
    let mut n = 0;
    loop {
        let start = c.at;
        let b = c.u8()?;
        let elem = match b {
            0xFF => {
                if c.at != blob.len() {
                    return Err("bytes after the listpack's end marker");
                }
                return Ok(n);
            }
            _ if b & 0x80 == 0 => Elem::Int(i64::from(b & 0x7f)),
            _ if b & 0xC0 == 0x80 => Elem::Str(c.take(usize::from(b & 0x3f))?),
            _ if b & 0xE0 == 0xC0 => {
                let v = (u64::from(b & 0x1f) << 8) | u64::from(c.u8()?);
                Elem::Int(signed(v, 13))
            }
            _ if b & 0xF0 == 0xE0 => {
                let len = (usize::from(b & 0x0f) << 8) | usize::from(c.u8()?);
                Elem::Str(c.take(len)?)
            }
            0xF0 => {
                let len = u32::from_le_bytes(c.le()?) as usize;
                Elem::Str(c.take(len)?)
            }
            0xF1 => Elem::Int(i64::from(i16::from_le_bytes(c.le()?))),
            0xF2 => {
                let [a, b2, c2] = c.le()?;
                Elem::Int(signed(u64::from(u32::from_le_bytes([a, b2, c2, 0])), 24))
            }
            0xF3 => Elem::Int(i64::from(i32::from_le_bytes(c.le()?))),
            0xF4 => Elem::Int(i64::from_le_bytes(c.le()?)),
            _ => return Err("unknown listpack entry encoding"),
        };
        let len = c.at - start;
        c.take(backlen_size(len))?;
        each(elem)?;
        n += 1;
    }
}

/// Walks a ziplist: `bytes:u32 tail:u32 count:u16 entry* 0xFF`, each entry
/// the previous one's length, an encoding and its data.
pub fn ziplist<'a>(
    blob: &'a [u8],
    mut each: impl FnMut(Elem<'a>) -> Result<(), &'static str>,
) -> Result<usize, &'static str> {
    let mut c = Cur::sized(blob, "ziplist size does not match its header")?;
    c.take(4 + 2)?;
    let mut n = 0;
    loop {
        if c.peek()? == 0xFF {
            c.at += 1;
            if c.at != blob.len() {
                return Err("bytes after the ziplist's end marker");
            }
            return Ok(n);
        }
        if c.u8()? == 0xFE {
            c.take(4)?;
        }
        let e = c.u8()?;
        let elem = match e >> 6 {
            0 => Elem::Str(c.take(usize::from(e & 0x3f))?),
            1 => {
                let len = (usize::from(e & 0x3f) << 8) | usize::from(c.u8()?);
                Elem::Str(c.take(len)?)
            }
            2 => {
                let len = u32::from_be_bytes(c.le()?) as usize;
                Elem::Str(c.take(len)?)
            }
            _ => match e {
                0xC0 => Elem::Int(i64::from(i16::from_le_bytes(c.le()?))),
                0xD0 => Elem::Int(i64::from(i32::from_le_bytes(c.le()?))),
                0xE0 => Elem::Int(i64::from_le_bytes(c.le()?)),
                0xF0 => {
                    let [a, b, d] = c.le()?;
                    Elem::Int(signed(u64::from(u32::from_le_bytes([a, b, d, 0])), 24))
                }
                0xFE => Elem::Int(i64::from(c.u8()? as i8)),
                0xF1..=0xFD => Elem::Int(i64::from(e & 0x0f) - 1),
                _ => return Err("unknown ziplist entry encoding"),
            },
        };
        each(elem)?;
        n += 1;
    }
}

/// Walks an intset: `encoding:u32 (2, 4 or 8) count:u32 int*`, little-endian.
pub fn intset(blob: &[u8], mut each: impl FnMut(i64)) -> Result<usize, &'static str> {
    let mut c = Cur { b: blob, at: 0 };
    let width = u32::from_le_bytes(c.le()?) as usize;
    let count = u32::from_le_bytes(c.le()?) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err("unknown intset encoding");
    }
    if count.checked_mul(width) != Some(blob.len() - 8) {
        return Err("intset size does not match its count");
    }
    for _ in 0..count {
        each(match width {
            2 => i64::from(i16::from_le_bytes(c.le()?)),
            4 => i64::from(i32::from_le_bytes(c.le()?)),
            _ => i64::from_le_bytes(c.le()?),
        });
    }
    Ok(count)
}

/// Walks a zipmap (Redis 2.x hashes): `count:u8 (len key len free value
/// pad[free])* 0xFF`, lengths one byte below 254, else 254 and a u32.
pub fn zipmap<'a>(
    blob: &'a [u8],
    mut each: impl FnMut(&'a [u8], &'a [u8]),
) -> Result<usize, &'static str> {
    let mut c = Cur { b: blob, at: 0 };
    c.u8()?;
    let len = |c: &mut Cur<'a>| -> Result<Option<usize>, &'static str> {
        match c.u8()? {
            0xFF => Ok(None),
            0xFE => Ok(Some(u32::from_le_bytes(c.le()?) as usize)),
            n => Ok(Some(usize::from(n))),
        }
    };
    let mut n = 0;
    while let Some(klen) = len(&mut c)? {
        let key = c.take(klen)?;
        let vlen = len(&mut c)?.ok_or("zipmap ends inside a pair")?;
        let free = usize::from(c.u8()?);
        let value = c.take(vlen)?;
        c.take(free)?;
        each(key, value);
        n += 1;
    }
    if c.at != blob.len() {
        return Err("bytes after the zipmap's end marker");
    }
    Ok(n)
}

/// Decompresses an LZF block (liblzf's format, which RDB strings use) that
/// must come to exactly `len` bytes.
pub fn lzf_decompress(input: &[u8], len: usize) -> Result<Vec<u8>, &'static str> {
    // `len` is the input's claim: reserve no more than LZF can expand the
    // bytes actually there to (a back reference of 3 bytes makes at most
    // 264), and grow if it is true.
    let mut out = Vec::with_capacity(len.min(input.len().saturating_mul(88)).min(1 << 20));
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            // A literal run of ctrl + 1 bytes.
            let run = input
                .get(i..i + ctrl + 1)
                .ok_or("LZF literal runs past the input")?;
            if out.len() + run.len() > len {
                return Err("LZF output longer than stated");
            }
            out.extend_from_slice(run);
            i += ctrl + 1;
        } else {
            // A back reference: length in the top 3 bits (7: one more byte).
            let mut n = ctrl >> 5;
            if n == 7 {
                n += usize::from(*input.get(i).ok_or("LZF reference cut short")?);
                i += 1;
            }
            let low = usize::from(*input.get(i).ok_or("LZF reference cut short")?);
            i += 1;
            let back = ((ctrl & 0x1f) << 8) + low + 1;
            n += 2;
            let from = out
                .len()
                .checked_sub(back)
                .ok_or("LZF reference before the start")?;
            if out.len() + n > len {
                return Err("LZF output longer than stated");
            }
            // Byte by byte: the source may overlap what is being written.
            for k in 0..n {
                let b = out[from + k];
                out.push(b);
            }
        }
    }
    if out.len() != len {
        return Err("LZF output shorter than stated");
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A listpack of `elems` as Redis lays it out (smallest encodings).
    pub fn build_listpack(elems: &[Elem<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for e in elems {
            let start = body.len();
            match *e {
                Elem::Int(n) if (0..128).contains(&n) => body.push(n as u8),
                Elem::Int(n) if (-4096..4096).contains(&n) => {
                    let v = (n as u16) & 0x1fff;
                    body.push(0xC0 | (v >> 8) as u8);
                    body.push(v as u8);
                }
                Elem::Int(n) if i16::try_from(n).is_ok() => {
                    body.push(0xF1);
                    body.extend((n as i16).to_le_bytes());
                }
                Elem::Int(n) if (-(1 << 23)..(1 << 23)).contains(&n) => {
                    body.push(0xF2);
                    body.extend(&(n as i32).to_le_bytes()[..3]);
                }
                Elem::Int(n) if i32::try_from(n).is_ok() => {
                    body.push(0xF3);
                    body.extend((n as i32).to_le_bytes());
                }
                Elem::Int(n) => {
                    body.push(0xF4);
                    body.extend(n.to_le_bytes());
                }
                Elem::Str(s) if s.len() < 64 => {
                    body.push(0x80 | s.len() as u8);
                    body.extend(s);
                }
                Elem::Str(s) if s.len() < 4096 => {
                    body.push(0xE0 | (s.len() >> 8) as u8);
                    body.push(s.len() as u8);
                    body.extend(s);
                }
                Elem::Str(s) => {
                    body.push(0xF0);
                    body.extend((s.len() as u32).to_le_bytes());
                    body.extend(s);
                }
            }
            let len = body.len() - start;
            // The back-length, 7 bits per byte, most significant first.
            let size = backlen_size(len);
            for k in (0..size).rev() {
                let mut b = ((len >> (7 * k)) & 0x7f) as u8;
                if k > 0 {
                    b |= 0x80;
                }
                body.push(b);
            }
        }
        let mut lp = Vec::new();
        lp.extend(((body.len() + 7) as u32).to_le_bytes());
        lp.extend((elems.len() as u16).to_le_bytes());
        lp.extend(body);
        lp.push(0xFF);
        lp
    }

    fn collect_lp(blob: &[u8]) -> Result<Vec<Elem<'_>>, &'static str> {
        let mut v = Vec::new();
        listpack(blob, |e| {
            v.push(e);
            Ok(())
        })?;
        Ok(v)
    }

    #[test]
    fn listpack_reads_every_encoding() {
        let big = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let elems = [
            Elem::Int(0),
            Elem::Int(127),
            Elem::Int(-1),
            Elem::Int(-4096),
            Elem::Int(4095),
            Elem::Int(-32768),
            Elem::Int(8_000_000),
            Elem::Int(-8_388_608),
            Elem::Int(i64::from(i32::MIN)),
            Elem::Int(i64::MAX),
            Elem::Str(b""),
            Elem::Str(b"hello"),
            Elem::Str(&mid),
            Elem::Str(&big),
        ];
        let lp = build_listpack(&elems);
        assert_eq!(collect_lp(&lp).unwrap(), elems);
    }

    #[test]
    fn listpack_refuses_every_truncation() {
        let lp = build_listpack(&[Elem::Str(b"hello"), Elem::Int(1 << 40)]);
        for cut in 0..lp.len() {
            let mut short = lp[..cut].to_vec();
            // Even with a header that agrees with the shorter length.
            if short.len() >= 4 {
                short[..4].copy_from_slice(&(cut as u32).to_le_bytes());
            }
            assert!(collect_lp(&short).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn ziplist_reads_every_encoding() {
        // Built by hand: prevlen, encoding, data.
        let mut body = Vec::new();
        let mut push = |prev: u8, enc: &[u8]| {
            body.push(prev);
            body.extend(enc);
        };
        push(0, &[0x03, b'a', b'b', b'c']); // 6-bit string
        push(5, &[0x40, 0x02, b'h', b'i']); // 14-bit string
        push(4, &[0xC0, 0x34, 0x12]); // int16
        push(3, &[0xD0, 0xff, 0xff, 0xff, 0xff]); // int32 -1
        push(6, &[0xE0, 1, 0, 0, 0, 0, 0, 0, 0]); // int64 1
        push(10, &[0xF0, 0xff, 0xff, 0x7f]); // int24 max
        push(5, &[0xFE, 0x80]); // int8 -128
        push(3, &[0xF1]); // immediate 0
        push(2, &[0xFD]); // immediate 12
        let mut zl = Vec::new();
        zl.extend(((body.len() + 11) as u32).to_le_bytes());
        zl.extend(0u32.to_le_bytes());
        zl.extend(9u16.to_le_bytes());
        zl.extend(body);
        zl.push(0xFF);
        let mut got = Vec::new();
        ziplist(&zl, |e| {
            got.push(e.to_vec());
            Ok(())
        })
        .unwrap();
        let want: Vec<&[u8]> = vec![
            b"abc", b"hi", b"4660", b"-1", b"1", b"8388607", b"-128", b"0", b"12",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn intset_and_zipmap() {
        let mut is = Vec::new();
        is.extend(4u32.to_le_bytes());
        is.extend(2u32.to_le_bytes());
        is.extend((-5i32).to_le_bytes());
        is.extend(70000i32.to_le_bytes());
        let mut got = Vec::new();
        intset(&is, |n| got.push(n)).unwrap();
        assert_eq!(got, [-5, 70000]);
        assert!(intset(&is[..is.len() - 1], |_| {}).is_err());

        let zm = [2, 1, b'a', 2, 1, b'x', b'y', 0, 0, 0, 0, 0xFF];
        let mut pairs = Vec::new();
        zipmap(&zm, |k, v| pairs.push((k.to_vec(), v.to_vec()))).unwrap();
        assert_eq!(pairs, [(b"a".to_vec(), b"xy".to_vec()), (vec![], vec![])]);
        assert!(zipmap(&zm[..zm.len() - 1], |_, _| {}).is_err());
    }

    #[test]
    fn lzf_round_trips_liblzf_output() {
        // Built by hand in liblzf's format (the redis-server interop tests
        // read real ones): a literal 'a', a back reference of 46 at distance
        // 1 (length 7 + 37 + 2), a literal "bca", a reference of 5 at
        // distance 3 that overlaps what it writes.
        let input = [
            0x00, b'a', 0xE0, 0x25, 0x00, 0x02, b'b', b'c', b'a', 0x60, 0x02,
        ];
        let want = format!("{}bcabcabc", "a".repeat(47));
        assert_eq!(lzf_decompress(&input, want.len()).unwrap(), want.as_bytes());
        assert!(lzf_decompress(&input, want.len() + 1).is_err());
        assert!(lzf_decompress(&input[..5], want.len()).is_err());
        assert!(lzf_decompress(&[0x20, 0x05], 10).is_err());
    }
}
