//! Snapshots to and restores from the snapshot store, as the operator
//! orders them (`TIDECACHE SNAPSHOT`, `TIDECACHE RESTORE`): one of each
//! at a time, each on a thread of its own, their progress and results kept
//! for `STATUS`, INFO and the metrics.
//!
//! A snapshot covers the slots the node owns when it starts and writes one
//! object. Its AUX metadata names the snapshot, so a restore can refuse an
//! object of another snapshot (a foreign object). A restore reads any list
//! of objects and keeps the keys of the slots the node owns, so N shards'
//! objects restore into M shards; while it runs, commands but admin ones
//! get `LOADING`, and if it fails the keyspace is emptied and commands get
//! the error: the node never serves part of a snapshot.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tidecache_topology::SlotSet;
use tokio::runtime::Handle;

use super::codec::EncryptionKey;
use super::load::{self, Loaded, read_batches};
use super::store::Store;
use super::{Locker, Summary, write_stepwise};

/// The AUX field naming the snapshot an object belongs to.
pub const AUX_SNAPSHOT: &str = "tidecache-snapshot";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Running,
    Done,
    Failed,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Done => "done",
            Phase::Failed => "failed",
        }
    }
}

/// A snapshot or restore, as `STATUS` reports it.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: String,
    pub phase: Phase,
    /// Objects written (a snapshot: one) or read.
    pub objects: Vec<String>,
    /// Keys written, or kept.
    pub keys: u64,
    /// Bytes of RDB streams written or read.
    pub rdb_bytes: u64,
    /// Bytes stored (after compression and encryption), for a snapshot.
    pub stored_bytes: u64,
    /// The RDB stream's CRC-64, for a snapshot.
    pub crc64: u64,
    /// Slots covered (a snapshot) or kept (a restore).
    pub slots: String,
    pub started: Instant,
    pub seconds: f64,
    pub error: Option<String>,
}

impl Job {
    fn new(id: &str, objects: Vec<String>, slots: String) -> Job {
        Job {
            id: id.to_owned(),
            phase: Phase::Running,
            objects,
            keys: 0,
            rdb_bytes: 0,
            stored_bytes: 0,
            crc64: 0,
            slots,
            started: Instant::now(),
            seconds: 0.0,
            error: None,
        }
    }

    /// `STATUS`'s reply: field, value pairs.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let seconds = match self.phase {
            Phase::Running => self.started.elapsed().as_secs_f64(),
            _ => self.seconds,
        };
        vec![
            ("id", self.id.clone()),
            ("phase", self.phase.name().to_owned()),
            ("objects", self.objects.join(",")),
            ("keys", self.keys.to_string()),
            ("rdb_bytes", self.rdb_bytes.to_string()),
            ("stored_bytes", self.stored_bytes.to_string()),
            ("crc64", format!("{:016x}", self.crc64)),
            ("slots", self.slots.clone()),
            ("seconds", format!("{seconds:.3}")),
            ("error", self.error.clone().unwrap_or_default()),
        ]
    }
}

/// The node's snapshot store and its jobs.
pub struct Jobs {
    pub store: Option<Store>,
    pub key: Option<EncryptionKey>,
    pub snapshot: Mutex<Option<Job>>,
    pub restore: Mutex<Option<Job>>,
    /// Totals for the metrics.
    pub snapshots_done: std::sync::atomic::AtomicU64,
    pub snapshots_failed: std::sync::atomic::AtomicU64,
    pub restores_done: std::sync::atomic::AtomicU64,
    pub restores_failed: std::sync::atomic::AtomicU64,
}

/// Why a job did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("ERR no snapshot store is configured (--snapshot-store)")]
    NoStore,
    #[error("ERR a {0} is already running")]
    Busy(&'static str),
    #[error("ERR cannot start the thread: {0}")]
    Thread(std::io::Error),
}

/// What a running restore does to commands: `None` serves them.
pub type Gate = Arc<Mutex<Option<String>>>;

impl Jobs {
    pub fn new(store: Option<Store>, key: Option<EncryptionKey>) -> Jobs {
        Jobs {
            store,
            key,
            snapshot: Mutex::new(None),
            restore: Mutex::new(None),
            snapshots_done: Default::default(),
            snapshots_failed: Default::default(),
            restores_done: Default::default(),
            restores_failed: Default::default(),
        }
    }

    /// Records `job` as started; `Ok(false)` when a job of the same id
    /// runs or ran already (a repeated request, which changes nothing).
    fn begin(slot: &Mutex<Option<Job>>, what: &'static str, job: Job) -> Result<bool, StartError> {
        let mut current = slot.lock().expect("job lock");
        if let Some(j) = current.as_ref() {
            if j.id == job.id && j.phase != Phase::Failed {
                return Ok(false);
            }
            if j.phase == Phase::Running {
                return Err(StartError::Busy(what));
            }
        }
        *current = Some(job);
        Ok(true)
    }

    fn end(slot: &Mutex<Option<Job>>, result: Result<Job, String>) -> bool {
        let mut current = slot.lock().expect("job lock");
        let job = current.as_mut().expect("a job runs");
        job.seconds = job.started.elapsed().as_secs_f64();
        match result {
            Ok(done) => {
                *job = Job {
                    phase: Phase::Done,
                    seconds: job.seconds,
                    started: job.started,
                    ..done
                };
                true
            }
            Err(e) => {
                job.phase = Phase::Failed;
                job.error = Some(e);
                false
            }
        }
    }

    /// Starts snapshot `id` of `slots` into object `object`.
    pub fn start_snapshot(
        self: &Arc<Self>,
        locker: Locker,
        handle: Handle,
        id: &str,
        object: &str,
        slots: &SlotSet,
    ) -> Result<(), StartError> {
        let store = self.store.clone().ok_or(StartError::NoStore)?;
        let slot_list: Vec<u16> = slots.iter().collect();
        let job = Job::new(id, vec![object.to_owned()], ranges_text(slots));
        if !Self::begin(&self.snapshot, "snapshot", job.clone())? {
            return Ok(());
        }
        let jobs = self.clone();
        let object = object.to_owned();
        let id = id.to_owned();
        std::thread::Builder::new()
            .name("tidecache-snapshot".into())
            .spawn(move || {
                let result = snapshot(&store, &locker, &handle, &id, &object, slot_list)
                    .map(|(summary, stored)| Job {
                        keys: summary.keys,
                        rdb_bytes: summary.bytes,
                        stored_bytes: stored,
                        crc64: summary.crc64,
                        ..job
                    })
                    .map_err(|e| e.to_string());
                if let Err(e) = &result {
                    tracing::warn!(snapshot = %id, error = %e, "snapshot failed");
                }
                let counter = if Self::end(&jobs.snapshot, result) {
                    &jobs.snapshots_done
                } else {
                    &jobs.snapshots_failed
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .map(drop)
            .map_err(|e| {
                self.snapshot.lock().expect("job lock").take();
                StartError::Thread(e)
            })
    }

    /// Starts restore `id` of `objects`, keeping the keys of `slots`; with
    /// `expect`, each object must belong to that snapshot. The keyspace is
    /// emptied first, and `gate` holds commands back until it is done.
    #[allow(clippy::too_many_arguments)]
    pub fn start_restore(
        self: &Arc<Self>,
        locker: Locker,
        handle: Handle,
        gate: Gate,
        id: &str,
        expect: Option<&str>,
        objects: Vec<String>,
        slots: SlotSet,
    ) -> Result<(), StartError> {
        let store = self.store.clone().ok_or(StartError::NoStore)?;
        let job = Job::new(id, objects.clone(), ranges_text(&slots));
        if !Self::begin(&self.restore, "restore", job.clone())? {
            return Ok(());
        }
        *gate.lock().expect("gate lock") =
            Some("LOADING Tidecache is restoring a snapshot".to_owned());
        let gate_on_error = gate.clone();
        let jobs = self.clone();
        let key = self.key.clone();
        let expect = expect.map(str::to_owned);
        let id = id.to_owned();
        std::thread::Builder::new()
            .name("tidecache-restore".into())
            .spawn(move || {
                locker.run(|db| db.flush());
                let result = restore(&store, key.as_ref(), &locker, &handle, expect.as_deref(), &objects, &slots);
                let result = match result {
                    Ok(loaded) => {
                        *gate.lock().expect("gate lock") = None;
                        Ok(Job {
                            keys: loaded.keys,
                            rdb_bytes: loaded.bytes,
                            ..job
                        })
                    }
                    Err(e) => {
                        tracing::warn!(restore = %id, error = %e, "restore failed; the keyspace is emptied");
                        locker.run(|db| db.flush());
                        *gate.lock().expect("gate lock") = Some(format!(
                            "ERR the snapshot restore failed, this node serves no data: {e}"
                        ));
                        Err(e)
                    }
                };
                let counter = if Self::end(&jobs.restore, result) {
                    &jobs.restores_done
                } else {
                    &jobs.restores_failed
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .map(drop)
            .map_err(|e| {
                self.restore.lock().expect("job lock").take();
                *gate_on_error.lock().expect("gate lock") = None;
                StartError::Thread(e)
            })
    }
}

fn snapshot(
    store: &Store,
    locker: &Locker,
    handle: &Handle,
    id: &str,
    object: &str,
    slots: Vec<u16>,
) -> std::io::Result<(Summary, u64)> {
    let mut out = store.writer(handle, object)?;
    let aux = vec![(AUX_SNAPSHOT.to_owned(), id.as_bytes().to_vec())];
    let summary = write_stepwise(locker, slots, aux, &mut out)?;
    out.finish()?;
    let stored = store.size(handle, object)?;
    Ok((summary, stored))
}

fn restore(
    store: &Store,
    key: Option<&EncryptionKey>,
    locker: &Locker,
    handle: &Handle,
    expect: Option<&str>,
    objects: &[String],
    slots: &SlotSet,
) -> Result<Loaded, String> {
    let mut total = Loaded::default();
    let now_ms = locker.run(|db| db.now_ms());
    for object in objects {
        let reader = store
            .reader(handle, object, key)
            .map_err(|e| format!("{object}: {e}"))?;
        let check = |aux: &[(bytes::Bytes, bytes::Bytes)]| match expect {
            None => Ok(()),
            Some(want) => {
                let named = aux.iter().find(|(k, _)| &k[..] == AUX_SNAPSHOT.as_bytes());
                match named {
                    Some((_, v)) if &v[..] == want.as_bytes() => Ok(()),
                    other => Err(format!(
                        "not an object of snapshot {want}: it names {}",
                        other.map_or("no snapshot".into(), |(_, v)| String::from_utf8_lossy(v)
                            .into_owned())
                    )),
                }
            }
        };
        // One batch is applied on the connections' runtime while the next
        // is decoded here.
        let mut applying: Option<super::Pending<()>> = None;
        let loaded = read_batches(
            reader,
            |slot| slots.contains(slot),
            now_ms,
            check,
            |batch| {
                if let Some(p) = applying.take() {
                    p.wait();
                }
                applying = Some(locker.start(move |db| load::store(db, batch)));
            },
        );
        if let Some(p) = applying.take() {
            p.wait();
        }
        let loaded = loaded.map_err(|e| format!("{object}: {e}"))?;
        total.keys += loaded.keys;
        total.other_slots += loaded.other_slots;
        total.expired += loaded.expired;
        total.bytes += loaded.bytes;
    }
    Ok(total)
}

/// `0-5460,10923-16383`.
pub fn ranges_text(slots: &SlotSet) -> String {
    let ranges: Vec<String> = slots.ranges().iter().map(ToString::to_string).collect();
    ranges.join(",")
}
