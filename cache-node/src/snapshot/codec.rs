//! What a snapshot object is made of around its RDB stream: optional zstd
//! compression, then optional client-side encryption (AES-256-GCM), in
//! that order on the way out and the reverse on the way in. A reader
//! tells the layers apart by their first bytes, so plain RDB files (a
//! redis-server's, an ElastiCache export) restore as they are.
//!
//! ```text
//! sealed := "TCSEAL01" prefix:7  frame*
//! frame  := len:u32-be  AES-256-GCM(plain[<= 1 MiB]) with nonce prefix ‖ counter:u32-be ‖ last:u8
//! ```
//!
//! Sealing is the STREAM construction (Hoang, Reyhanitabar, Rogaway,
//! Vizár): each frame's nonce carries its index and whether it is the
//! last, so frames cannot be reordered, dropped, repeated or moved to
//! another object (the 7-byte prefix is random per object), and a
//! truncated object fails: it lacks a frame marked last. The header is the
//! first frame's associated data.

use std::io::{self, Read, Write};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};

const MAGIC: &[u8; 8] = b"TCSEAL01";
const PREFIX: usize = 7;
/// Plaintext bytes per frame.
const FRAME: usize = 1 << 20;
const TAG: usize = 16;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// A 256-bit key, read from a file (a mounted Secret): 32 raw bytes, or 64
/// hex digits, or base64 of 32 bytes, with surrounding whitespace ignored.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EncryptionKey(..)")
    }
}

impl EncryptionKey {
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
            return Ok(EncryptionKey(raw));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|_| "the key is neither 32 bytes nor text".to_string())?
            .trim();
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut key = [0; 32];
            for (i, k) in key.iter_mut().enumerate() {
                *k = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits");
            }
            return Ok(EncryptionKey(key));
        }
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| {
                "the key must be 32 bytes, 64 hex digits or base64 of 32 bytes".to_string()
            })?;
        <[u8; 32]>::try_from(decoded.as_slice())
            .map(EncryptionKey)
            .map_err(|_| format!("the key is {} bytes; AES-256 needs 32", decoded.len()))
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

fn nonce(prefix: &[u8; PREFIX], counter: u32, last: bool) -> [u8; 12] {
    let mut n = [0; 12];
    n[..PREFIX].copy_from_slice(prefix);
    n[PREFIX..PREFIX + 4].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn header(prefix: &[u8; PREFIX]) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend_from_slice(prefix);
    h
}

/// Seals what is written to it into `inner`, a frame at a time.
pub struct SealWriter<W: Write> {
    inner: W,
    cipher: Aes256Gcm,
    prefix: [u8; PREFIX],
    counter: u32,
    buf: Vec<u8>,
    started: bool,
}

impl<W: Write> SealWriter<W> {
    pub fn new(inner: W, key: &EncryptionKey) -> Self {
        SealWriter {
            inner,
            cipher: key.cipher(),
            prefix: rand::random(),
            counter: 0,
            buf: Vec::with_capacity(FRAME),
            started: false,
        }
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let aad = if self.counter == 0 {
            header(&self.prefix)
        } else {
            Vec::new()
        };
        if !self.started {
            self.inner.write_all(&header(&self.prefix))?;
            self.started = true;
        }
        let n = nonce(&self.prefix, self.counter, last);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&n),
                Payload {
                    msg: &self.buf,
                    aad: &aad,
                },
            )
            .map_err(|_| io::Error::other("encryption failed"))?;
        self.inner.write_all(&(sealed.len() as u32).to_be_bytes())?;
        self.inner.write_all(&sealed)?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("object too large to seal (2^32 frames)"))?;
        Ok(())
    }

    /// Seals the last frame and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for SealWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(FRAME - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == FRAME {
            self.seal(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Frames are sealed when full or at the end; flushing the inner
        // writer is all a flush can do.
        self.inner.flush()
    }
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Opens what a [`SealWriter`] sealed, failing on any tampering,
/// truncation or a wrong key.
pub struct OpenReader<R: Read> {
    inner: R,
    cipher: Aes256Gcm,
    prefix: [u8; PREFIX],
    counter: u32,
    plain: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl<R: Read> OpenReader<R> {
    /// Reads the header; `inner` must start with it.
    pub fn new(mut inner: R, key: &EncryptionKey) -> io::Result<Self> {
        let mut h = [0; 8 + PREFIX];
        inner.read_exact(&mut h)?;
        if &h[..8] != MAGIC {
            return Err(invalid("not a sealed snapshot object"));
        }
        Ok(OpenReader {
            inner,
            cipher: key.cipher(),
            prefix: h[8..].try_into().expect("7 bytes"),
            counter: 0,
            plain: Vec::new(),
            pos: 0,
            ended: false,
        })
    }

    fn next_frame(&mut self) -> io::Result<()> {
        let mut len = [0; 4];
        match self.inner.read_exact(&mut len) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(invalid("sealed object truncated: no final frame"));
            }
            r => r?,
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG..=FRAME + TAG).contains(&len) {
            return Err(invalid("sealed object corrupt: bad frame length"));
        }
        let mut sealed = vec![0; len];
        self.inner
            .read_exact(&mut sealed)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => invalid("sealed object truncated inside a frame"),
                _ => e,
            })?;
        let aad = if self.counter == 0 {
            header(&self.prefix)
        } else {
            Vec::new()
        };
        // A frame opens under exactly one of the two nonces, or neither.
        for last in [false, true] {
            let n = nonce(&self.prefix, self.counter, last);
            if let Ok(plain) = self.cipher.decrypt(
                Nonce::from_slice(&n),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            ) {
                self.plain = plain;
                self.pos = 0;
                self.ended = last;
                self.counter += 1;
                if last {
                    let mut extra = [0; 1];
                    if self.inner.read(&mut extra)? != 0 {
                        return Err(invalid("sealed object corrupt: data after the final frame"));
                    }
                }
                return Ok(());
            }
        }
        Err(invalid(
            "sealed object does not decrypt: wrong key, or corrupt",
        ))
    }
}

impl<R: Read> Read for OpenReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.ended {
                return Ok(0);
            }
            self.next_frame()?;
        }
        let n = out.len().min(self.plain.len() - self.pos);
        out[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// How a snapshot object is written.
#[derive(Debug, Clone, Default)]
pub struct Codec {
    /// zstd level, if compressed.
    pub zstd_level: Option<i32>,
    pub key: Option<EncryptionKey>,
}

/// A writer that must be finished to be complete.
pub trait Finish: Write + Send {
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// The output at the bottom of the stack: finishing it makes the object
/// exist (closes the file, completes the multipart upload).
pub trait Output: Write + Send {
    fn complete(self: Box<Self>) -> io::Result<()>;
}

struct Sealed(SealWriter<Box<dyn Finish>>);

impl Write for Sealed {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Finish for Sealed {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

struct Compressed(zstd::stream::write::Encoder<'static, Box<dyn Finish>>);

impl Write for Compressed {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Finish for Compressed {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

struct Bottom(Box<dyn Output>);

impl Write for Bottom {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Finish for Bottom {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.complete()
    }
}

impl Codec {
    /// The file name suffix of objects it writes.
    pub fn suffix(&self) -> &'static str {
        match (self.zstd_level.is_some(), self.key.is_some()) {
            (false, false) => ".rdb",
            (true, false) => ".rdb.zst",
            (false, true) => ".rdb.sealed",
            (true, true) => ".rdb.zst.sealed",
        }
    }

    /// The stack that turns an RDB stream into the object written to `out`.
    pub fn writer(&self, out: Box<dyn Output>) -> io::Result<Box<dyn Finish>> {
        let mut w: Box<dyn Finish> = Box::new(Bottom(out));
        if let Some(key) = &self.key {
            w = Box::new(Sealed(SealWriter::new(w, key)));
        }
        if let Some(level) = self.zstd_level {
            let mut enc = zstd::stream::write::Encoder::new(w, level)?;
            enc.include_checksum(true)?;
            w = Box::new(Compressed(enc));
        }
        Ok(w)
    }
}

/// Reads an object back to its RDB stream, whatever its layers: sealed
/// objects need `key`; zstd is recognised by its magic number; anything
/// else is taken as RDB (its own signature is checked next).
pub fn reader(
    inner: Box<dyn Read + Send>,
    key: Option<&EncryptionKey>,
) -> io::Result<Box<dyn Read + Send>> {
    let mut r = io::BufReader::with_capacity(256 << 10, inner);
    let head = io::BufRead::fill_buf(&mut r)?;
    if head.starts_with(MAGIC) {
        let key = key.ok_or_else(|| {
            invalid("the object is encrypted and no encryption key is configured")
        })?;
        let opened = OpenReader::new(r, key)?;
        return reader(Box::new(opened), None);
    }
    if head.starts_with(&ZSTD_MAGIC) {
        return Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?));
    }
    Ok(Box::new(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Mem {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Output for Mem {
        fn complete(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    fn encode(codec: &Codec, data: &[u8]) -> Vec<u8> {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut w = codec.writer(Box::new(Mem(out.clone()))).unwrap();
        for piece in data.chunks(7777) {
            w.write_all(piece).unwrap();
        }
        w.finish().unwrap();
        out.lock().unwrap().clone()
    }

    fn decode(bytes: Vec<u8>, key: Option<&EncryptionKey>) -> io::Result<Vec<u8>> {
        let mut r = reader(Box::new(io::Cursor::new(bytes)), key)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    fn bad_copy(bytes: &[u8], at: usize) -> Vec<u8> {
        let mut bad = bytes.to_vec();
        bad[at] ^= 1;
        bad
    }

    fn key(b: u8) -> EncryptionKey {
        EncryptionKey([b; 32])
    }

    #[test]
    fn every_layering_round_trips() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        for codec in [
            Codec::default(),
            Codec {
                zstd_level: Some(1),
                key: None,
            },
            Codec {
                zstd_level: None,
                key: Some(key(1)),
            },
            Codec {
                zstd_level: Some(3),
                key: Some(key(1)),
            },
        ] {
            let bytes = encode(&codec, &data);
            assert_eq!(
                decode(bytes, Some(&key(1))).unwrap(),
                data,
                "{}",
                codec.suffix()
            );
        }
        // An empty stream seals to one (last) frame.
        let sealed = encode(
            &Codec {
                zstd_level: None,
                key: Some(key(2)),
            },
            b"",
        );
        assert_eq!(decode(sealed, Some(&key(2))).unwrap(), b"");
    }

    #[test]
    fn sealed_objects_refuse_tampering_truncation_and_wrong_keys() {
        let data = vec![7u8; 2 * FRAME + 100];
        let codec = Codec {
            zstd_level: None,
            key: Some(key(9)),
        };
        let sealed = encode(&codec, &data);
        assert!(decode(sealed.clone(), Some(&key(8))).is_err(), "wrong key");
        assert!(decode(sealed.clone(), None).is_err(), "no key");
        for at in [10, 20, 1000, sealed.len() / 2, sealed.len() - 1] {
            assert!(
                decode(bad_copy(&sealed, at), Some(&key(9))).is_err(),
                "flip at {at}"
            );
        }
        // A flipped magic number reads as another, unsealed stream, which
        // the RDB reader then refuses by its signature.
        assert_ne!(decode(bad_copy(&sealed, 0), Some(&key(9))).unwrap(), data);
        // Cut at a frame boundary: every remaining frame is genuine, but
        // none is the last.
        let first_frame = 15 + 4 + FRAME + TAG;
        assert!(decode(sealed[..first_frame].to_vec(), Some(&key(9))).is_err());
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(decode(longer, Some(&key(9))).is_err());
    }

    #[test]
    fn keys_parse_in_three_forms() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(EncryptionKey::parse(hex.as_bytes()).unwrap().0[31], 0xff);
        assert_eq!(EncryptionKey::parse(&[5u8; 32]).unwrap().0, [5; 32]);
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]) + "\n";
        assert_eq!(EncryptionKey::parse(b64.as_bytes()).unwrap().0, [3; 32]);
        assert!(EncryptionKey::parse(b"short").is_err());
    }
}
