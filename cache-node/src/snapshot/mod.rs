//! Snapshots: the keyspace (or some of its slots) written as an RDB stream
//! through a fork-less capture ([`crate::db::capture`]) while clients
//! keep being served, and RDB streams loaded back.
//!
//! A [`Snapshotter`] owns one capture. Each [`Snapshotter::step`] takes
//! the keyspace lock for a bounded number of keys and serializes them
//! into a buffer; between steps the writer hands the buffer to the output
//! without the lock (a file, or an object store's multipart upload
//! through [`codec`]'s compression and encryption). Writes to keys the
//! capture has not reached yet serialize those keys' old states into the
//! same buffer first, so memory beyond the keyspace is the buffer and the
//! keys written during the snapshot, not a second copy of the data.
//!
//! - [`save`]: `SAVE`, `BGSAVE` and `LASTSAVE`'s state, the standalone
//!   node's RDB file (`--dir`, `--dbfilename`).
//! - [`load`]: reading an RDB stream into the keyspace, keeping the keys of
//!   the slots asked for.
//! - [`store`]: S3-compatible object storage or a local directory, written
//!   by multipart upload as the stream is produced; [`codec`]: compression
//!   and encryption at rest around the RDB stream.
//! - [`jobs`]: snapshots to and restores from the store, as the operator
//!   orders them (`TIDECACHE SNAPSHOT`/`RESTORE`).

pub mod codec;
pub mod jobs;
pub mod load;
pub mod save;
pub mod store;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{CaptureId, Sink, Step};
use crate::db::{Db, ValueRef};
use crate::rdb;

/// Keys serialized per lock hold.
const STEP_KEYS: usize = 512;

/// Bytes a step lets the buffer reach before it releases the lock and
/// hands the buffer to the writer: about half a millisecond of
/// serializing, the longest a client waits for the lock on its account.
const CHUNK: usize = 128 << 10;

/// Where a capture's keys are serialized: the writer takes the bytes.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    keys: u64,
}

#[derive(Clone)]
struct RdbSink(Arc<Mutex<Buffer>>);

impl Sink for RdbSink {
    fn entry(&mut self, _slot: u16, key: &[u8], value: ValueRef<'_>, expires_at: Option<u64>) {
        let mut b = self.0.lock().expect("snapshot buffer lock");
        rdb::entry(&mut b.bytes, key, value, expires_at);
        b.keys += 1;
    }
}

/// What a finished snapshot wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub keys: u64,
    /// Bytes of the RDB stream (before compression or encryption).
    pub bytes: u64,
    /// The stream's own checksum, its last 8 bytes.
    pub crc64: u64,
    /// Unix ms of the instant the snapshot is of.
    pub at_ms: u64,
    pub took: Duration,
}

/// One snapshot in progress: a capture and the RDB stream it becomes.
pub struct Snapshotter {
    id: CaptureId,
    buf: Arc<Mutex<Buffer>>,
    crc: crc::Digest<'static, u64, crc::Table<16>>,
    written: u64,
    at_ms: u64,
    started: Instant,
    done: bool,
}

impl Snapshotter {
    /// Starts a capture of `slots` at this instant, with the RDB header
    /// (and `aux` metadata) first in the stream.
    pub fn start(db: &mut Db, slots: impl IntoIterator<Item = u16>, aux: &[(&str, &[u8])]) -> Self {
        let mut b = Buffer::default();
        let ctime = (db.now_ms() / 1000).to_string();
        let mut all_aux: Vec<(&str, &[u8])> = vec![
            ("tidecache-ver", env!("CARGO_PKG_VERSION").as_bytes()),
            ("redis-bits", b"64"),
            ("ctime", ctime.as_bytes()),
        ];
        all_aux.extend_from_slice(aux);
        rdb::header(&mut b.bytes, &all_aux);
        let buf = Arc::new(Mutex::new(b));
        let at_ms = db.now_ms();
        let id = db.start_capture(slots, Box::new(RdbSink(buf.clone())));
        Snapshotter {
            id,
            buf,
            crc: rdb::CRC64.digest(),
            written: 0,
            at_ms,
            started: Instant::now(),
            done: false,
        }
    }

    /// A handle for running steps where the snapshotter itself cannot go
    /// (on the connections' runtime while the writer waits).
    pub fn stepper(&self) -> Stepper {
        Stepper {
            id: self.id,
            buf: self.buf.clone(),
        }
    }

    /// Serializes keys under the lock until a chunk is ready or every
    /// slot is captured; whether the capture is done.
    pub fn step(&mut self, db: &mut Db) -> bool {
        let done = self.stepper().step(db);
        self.done |= done;
        done
    }

    /// Marks the capture done (after a [`Stepper`] said so).
    pub fn set_done(&mut self) {
        self.done = true;
    }

    /// The bytes serialized so far, for the output; they count into the
    /// checksum.
    pub fn take_chunk(&mut self) -> Vec<u8> {
        // The next step starts from a buffer of a chunk's size, so it does
        // not grow it by doubling (copying every byte again each time).
        let fresh = Vec::with_capacity(CHUNK + CHUNK / 4);
        let bytes = std::mem::replace(
            &mut self.buf.lock().expect("snapshot buffer lock").bytes,
            fresh,
        );
        self.crc.update(&bytes);
        self.written += bytes.len() as u64;
        bytes
    }

    /// Bytes waiting in the buffer.
    pub fn pending(&self) -> usize {
        self.buf.lock().expect("snapshot buffer lock").bytes.len()
    }

    /// Keys serialized so far.
    pub fn keys(&self) -> u64 {
        self.buf.lock().expect("snapshot buffer lock").keys
    }

    /// After the last step and chunk: the end marker and checksum to
    /// write last, and what was written.
    pub fn finish(mut self) -> (Vec<u8>, Summary) {
        assert!(self.done, "finish before the capture is done");
        let mut tail = self.take_chunk();
        tail.push(rdb::EOF);
        self.crc.update(&tail[tail.len() - 1..]);
        let crc64 = self.crc.clone().finalize();
        tail.extend_from_slice(&crc64.to_le_bytes());
        let summary = Summary {
            keys: self.keys(),
            bytes: self.written + 9,
            crc64,
            at_ms: self.at_ms,
            took: self.started.elapsed(),
        };
        (tail, summary)
    }

    /// Stops the capture (an output failed).
    pub fn cancel(self, db: &mut Db) {
        db.cancel_capture(self.id);
    }

    /// Writes the whole snapshot to `out` while holding `db` (`SAVE`: the
    /// server waits, as redis-server's does).
    pub fn run_locked(mut self, db: &mut Db, out: &mut dyn Write) -> std::io::Result<Summary> {
        loop {
            let done = self.step(db);
            let chunk = self.take_chunk();
            if let Err(e) = out.write_all(&chunk) {
                self.cancel(db);
                return Err(e);
            }
            if done {
                break;
            }
        }
        let (tail, summary) = self.finish();
        out.write_all(&tail)?;
        out.flush()?;
        Ok(summary)
    }
}

/// The part of a [`Snapshotter`] that steps the capture.
#[derive(Clone)]
pub struct Stepper {
    id: CaptureId,
    buf: Arc<Mutex<Buffer>>,
}

impl Stepper {
    /// See [`Snapshotter::step`].
    pub fn step(&self, db: &mut Db) -> bool {
        loop {
            match db.capture_step(self.id, STEP_KEYS) {
                Some(Step::More) => {}
                Some(Step::Done(_)) | None => return true,
            }
            if self.buf.lock().expect("snapshot buffer lock").bytes.len() >= CHUNK {
                return false;
            }
        }
    }
}

/// Runs closures on the keyspace from a snapshot's own thread: on the
/// connections' runtime, at their priority, while the thread waits (see
/// [`crate::background`]: a niced thread must not hold the lock).
#[derive(Clone)]
pub struct Locker {
    pub db: Arc<Mutex<Db>>,
    /// The connections' runtime; `None` runs in place (unit tests).
    pub urgent: Option<tokio::runtime::Handle>,
}

impl Locker {
    /// Runs `f` and waits for it.
    pub fn run<R: Send + 'static>(&self, f: impl FnOnce(&mut Db) -> R + Send + 'static) -> R {
        self.start(f).wait()
    }

    /// Starts `f`, to be waited for later: the writer writes one chunk
    /// while the next is serialized.
    pub fn start<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Db) -> R + Send + 'static,
    ) -> Pending<R> {
        let db = self.db.clone();
        let job = move || f(&mut db.lock().expect("db lock"));
        match &self.urgent {
            Some(h) => Pending::Running(h.clone(), h.spawn(async move { job() })),
            None => Pending::Done(job()),
        }
    }
}

/// A closure [`Locker::start`]ed.
pub enum Pending<R> {
    Running(tokio::runtime::Handle, tokio::task::JoinHandle<R>),
    Done(R),
}

impl<R> Pending<R> {
    pub fn wait(self) -> R {
        match self {
            Pending::Done(r) => r,
            Pending::Running(h, join) => match h.block_on(join) {
                Ok(r) => r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => panic!("keyspace step cancelled: {e}"),
            },
        }
    }
}

/// Writes a snapshot of `slots` to `out` from a thread of its own (at a
/// low priority: compression, encryption and I/O happen here), taking the
/// keyspace lock through `locker` for one bounded step at a time. On an
/// output error the capture is cancelled.
pub fn write_stepwise(
    locker: &Locker,
    slots: Vec<u16>,
    aux: Vec<(String, Vec<u8>)>,
    out: &mut dyn Write,
) -> std::io::Result<Summary> {
    let mut snap = locker.run(move |db| {
        let aux: Vec<(&str, &[u8])> = aux.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        Snapshotter::start(db, slots, &aux)
    });
    let step = |stepper: Stepper| locker.start(move |db| stepper.step(db));
    let mut next = Some(step(snap.stepper()));
    loop {
        let done = next.take().expect("a step runs").wait();
        if done {
            snap.set_done();
        }
        let chunk = snap.take_chunk();
        // The next step serializes while this chunk is written: the
        // buffer is taken whole, so chunks stay in order.
        if !done {
            next = Some(step(snap.stepper()));
        }
        if let Err(e) = out.write_all(&chunk) {
            if let Some(step) = next.take() {
                step.wait();
            }
            let id = snap.id;
            locker.run(move |db| drop(db.cancel_capture(id)));
            return Err(e);
        }
        if done {
            break;
        }
    }
    let (tail, summary) = snap.finish();
    out.write_all(&tail)?;
    out.flush()?;
    Ok(summary)
}
