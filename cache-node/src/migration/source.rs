//! The source side of a migration: one task per outgoing migration (see
//! the module documentation of [`super`] for the protocol).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tidecache_topology::NodeAddr;
use tidecache_topology::admin::{AdminClient, AdminError};
use tidecache_topology::protocol::Request;
use tracing::{info, warn};

use super::{Handles, ImportState, Outgoing, State};
use crate::db::{Db, FollowId, Sink, Step, ValueRef, wire};

/// Keys a capture step copies before the keyspace lock is released: a
/// request that arrives during a step waits for it to end, some tens of
/// microseconds at this size.
const STEP_KEYS: usize = 128;
/// A batch of changes this small is what the freeze waits for: sending it
/// is the pause.
const HANDOFF_KEYS: usize = 512;
/// Catch-up rounds after the copy before handing off anyway (a write load
/// that never lets the changes get small only makes the pause longer).
const MAX_CATCH_UP: usize = 200;
/// Connection and reply timeout on the admin link to the target.
const LINK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the source tries to learn a commit's outcome after losing its
/// reply.
const RESOLVE_FOR: Duration = Duration::from_secs(10);

/// The capture's sink: encodes entries into the batch being built.
struct BatchSink(Arc<Mutex<Batch>>);

#[derive(Default)]
struct Batch {
    out: Outbox,
    keys: u64,
}

impl Sink for BatchSink {
    fn entry(&mut self, _slot: u16, key: &[u8], value: ValueRef<'_>, expires_at: Option<u64>) {
        let mut b = self.0.lock().expect("batch lock");
        wire::put(&mut b.out.bytes, key, value, expires_at);
        b.out.mark();
        b.keys += 1;
    }
}

/// The most bytes one `IMPORT APPLY` carries (a single larger change goes
/// alone): bounds the target's time under its keyspace lock per batch, and
/// keeps a big slot (hash tags) or a burst of changes from ever exceeding
/// the target's request limits.
const MAX_APPLY_BYTES: usize = 1 << 20;

/// Encoded changes, with the places they may be cut into batches.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    /// Ends of the batches so far (change boundaries), ascending.
    cuts: Vec<usize>,
}

impl Outbox {
    /// Called after each change: starts a new batch once this one is full.
    fn mark(&mut self) {
        let start = self.cuts.last().copied().unwrap_or(0);
        if self.bytes.len() - start >= MAX_APPLY_BYTES {
            self.cuts.push(self.bytes.len());
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The batches, in order.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let ends = self.cuts.iter().copied().chain([self.bytes.len()]);
        let starts = std::iter::once(0).chain(self.cuts.iter().copied());
        starts
            .zip(ends)
            .filter(|(a, b)| a < b)
            .map(|(a, b)| &self.bytes[a..b])
    }
}

/// Runs migration `m` to its end, recording how it went in its progress.
/// Runs on the bulk thread (see [`crate::background`]), which sends to the
/// connections' runtime each step that takes the keyspace lock, the link
/// to the target (its I/O task lives where it was opened) and the handoff,
/// while writes to the slots are paused: at nice 19 on a busy machine, a
/// handoff of a fraction of a millisecond took 7 ms.
pub async fn run(shared: Handles, m: Arc<Outgoing>) {
    let shared = Arc::new(shared);
    let outcome = migrate(&shared, &m).await;
    let state = match &outcome {
        Ok(()) => State::Done,
        Err(Failure::Cancelled) => State::Cancelled,
        Err(_) => State::Failed,
    };
    m.update(|p| {
        p.state = state;
        // A done migration's time ends at its handoff, not after the drop.
        p.elapsed = p.elapsed.or_else(|| Some(p.started.elapsed()));
        if let Err(e) = &outcome
            && !matches!(e, Failure::Cancelled)
        {
            p.error = Some(e.to_string());
        }
    });
    let p = m.progress();
    match &outcome {
        Ok(()) => info!(id = m.id, slots = ?m.slots, keys_copied = p.keys_copied,
            keys_forwarded = p.keys_forwarded, elapsed_ms = p.elapsed.unwrap_or_default().as_millis() as u64,
            pause_us = p.pause.unwrap_or_default().as_micros() as u64, "migration done"),
        Err(e) => warn!(id = m.id, error = %e, "migration ended without handing the slots over"),
    }
}

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cancelled")]
    Cancelled,
    #[error("target {0}")]
    Target(#[from] AdminError),
    #[error("{0}")]
    Local(String),
    #[error(
        "lost the target while committing and could not learn the outcome; writes to the slots stay \
         refused until a topology of epoch {0} or newer is installed"
    )]
    Unresolved(u64),
}

async fn migrate(shared: &Arc<Handles>, m: &Arc<Outgoing>) -> Result<(), Failure> {
    let password = shared
        .admin_password
        .clone()
        .ok_or_else(|| Failure::Local("no --admin-password to reach the target with".into()))?;
    let (host, port) = (m.host.clone(), m.port);
    let mut target = shared
        .background
        .urgent(async move { AdminClient::connect(&host, port, &password, LINK_TIMEOUT).await })
        .await?;
    target
        .send::<()>(&Request::ImportBegin {
            id: &m.id,
            epoch: m.epoch,
            ranges: m.slots.ranges(),
        })
        .await?;

    let batch = Arc::new(Mutex::new(Batch::default()));
    let (capture, follow) = locked(shared, {
        let (slots, sink) = (m.slots.clone(), BatchSink(batch.clone()));
        // One lock: the capture's instant and the follower's first change
        // are the same point in the write order.
        move |db| {
            let capture = db.start_capture(slots.iter(), Box::new(sink));
            (capture, db.follow(slots))
        }
    })
    .await;
    let streamed = stream(shared, m, &mut target, &batch, capture, follow).await;
    if let Err(e) = streamed {
        locked(shared, move |db| {
            db.cancel_capture(capture);
            db.unfollow(follow);
        })
        .await;
        abort(&mut target, &m.id).await;
        return Err(e);
    }
    let (shared2, m2) = (shared.clone(), m.clone());
    shared
        .background
        .urgent(async move { hand_off(&shared2, &m2, &mut target, follow).await })
        .await?;
    // The slots are the target's from here: the migration is done, and
    // the copy left here goes in the background.
    m.update(|p| {
        p.state = State::Done;
        p.elapsed = Some(p.started.elapsed());
    });
    drop_copy(shared, m).await;
    Ok(())
}

/// Runs `work` under the keyspace lock on the connections' runtime (see
/// [`crate::background`]: the bulk thread never holds the lock).
async fn locked<T: Send + 'static>(
    shared: &Arc<Handles>,
    work: impl FnOnce(&mut Db) -> T + Send + 'static,
) -> T {
    let shared2 = shared.clone();
    shared
        .background
        .urgent(async move { work(&mut shared2.db.lock().expect("db lock")) })
        .await
}

/// Streams the capture and the changes after it until the capture is done
/// and a round of changes is small.
async fn stream(
    shared: &Arc<Handles>,
    m: &Outgoing,
    target: &mut AdminClient,
    batch: &Arc<Mutex<Batch>>,
    capture: crate::db::CaptureId,
    follow: FollowId,
) -> Result<(), Failure> {
    let mut capturing = true;
    let mut catch_up = 0;
    loop {
        if m.cancelled() {
            return Err(Failure::Cancelled);
        }
        let batch = batch.clone();
        let step = locked(shared, move |db| {
            let step = if capturing {
                db.capture_step(capture, STEP_KEYS)
            } else {
                Some(Step::More)
            };
            let b = std::mem::take(&mut *batch.lock().expect("batch lock"));
            let mut out = b.out;
            let forwarded = encode_changes(db, follow, &mut out);
            (step, out, b.keys, forwarded)
        })
        .await;
        let (step, bytes, copied, forwarded) = step;
        match step {
            Some(Step::More) => {}
            Some(Step::Done(_)) => capturing = false,
            None => return Err(Failure::Local("the capture vanished".into())),
        }
        send(target, m, bytes, copied, forwarded).await?;
        if !capturing {
            catch_up += 1;
            if forwarded <= HANDOFF_KEYS as u64 || catch_up >= MAX_CATCH_UP {
                return Ok(());
            }
        }
        // Let the connections have the keyspace between two rounds.
        tokio::task::yield_now().await;
    }
}

/// Appends the current state of every key of `follow` that changed since
/// the last call; returns how many keys that was.
fn encode_changes(db: &mut Db, follow: FollowId, out: &mut Outbox) -> u64 {
    let Some(changes) = db.take_changes(follow) else {
        return 0;
    };
    if changes.cleared {
        wire::clear(&mut out.bytes);
        out.mark();
    }
    for key in &changes.keys {
        match db.state(key) {
            Some((value, expires_at)) => wire::put(&mut out.bytes, key, value, expires_at),
            None => wire::del(&mut out.bytes, key),
        }
        out.mark();
    }
    changes.keys.len() as u64 + u64::from(changes.cleared)
}

async fn send(
    target: &mut AdminClient,
    m: &Outgoing,
    out: Outbox,
    copied: u64,
    forwarded: u64,
) -> Result<(), Failure> {
    if out.is_empty() {
        return Ok(());
    }
    for piece in out.pieces() {
        target
            .send::<i64>(&Request::ImportApply {
                id: &m.id,
                batch: piece,
            })
            .await?;
    }
    m.update(|p| {
        p.keys_copied += copied;
        p.keys_forwarded += forwarded;
        p.bytes_sent += out.bytes.len() as u64;
    });
    Ok(())
}

/// Freezes writes on the slots, sends the last changes and commits; on
/// success the slots are the target's here too and the frozen writes go
/// on to their `MOVED`.
async fn hand_off(
    shared: &Handles,
    m: &Outgoing,
    target: &mut AdminClient,
    follow: FollowId,
) -> Result<(), Failure> {
    m.update(|p| p.state = State::Handoff);
    let frozen_at = Instant::now();
    let last = {
        let mut db = shared.db.lock().expect("db lock");
        let mut cluster = shared.cluster.write().expect("cluster lock");
        // Checked under the freeze: a topology as new as the migration
        // arrived meanwhile, so this handoff could not be recorded here.
        let newest = cluster.newest_epoch();
        if m.epoch <= newest {
            drop(cluster);
            db.unfollow(follow);
            Err(newest)
        } else {
            cluster.freeze(m.epoch, &m.slots);
            drop(cluster);
            let mut out = Outbox::default();
            let forwarded = encode_changes(&mut db, follow, &mut out);
            db.unfollow(follow);
            Ok((out, forwarded))
        }
    };
    let last = match last {
        Ok(last) => last,
        Err(newest) => {
            abort(target, &m.id).await;
            return Err(Failure::Local(format!(
                "superseded: this node knows epoch {newest}, not older than the migration's"
            )));
        }
    };
    let committed = match commit(target, m, last).await {
        Ok(()) => Ok(true),
        Err(Failure::Target(e)) if e.is_reply() => {
            // The target refused: it did not take the slots.
            abort(target, &m.id).await;
            Err(Failure::Target(e))
        }
        Err(e) => {
            warn!(id = m.id, error = %e, "lost the commit's reply; asking the target how it ended");
            resolve(shared, m).await
        }
    };
    let pause = frozen_at.elapsed();
    m.update(|p| p.pause = Some(pause));
    match committed {
        Ok(true) => {
            let mut db = shared.db.lock().expect("db lock");
            let mut cluster = shared.cluster.write().expect("cluster lock");
            let to = NodeAddr {
                id: String::new(),
                host: m.host.clone(),
                port: m.port,
            };
            if let Err(e) = cluster.hand_off(m.slots.clone(), m.epoch, Some(to)) {
                // The target serves the slots but this node could not
                // record it (a document as new arrived during the commit):
                // stay frozen and keep the copy until the operator's
                // document settles the slots.
                return Err(Failure::Local(format!(
                    "the target committed but the handoff could not be recorded here ({e}); writes stay frozen"
                )));
            }
            cluster.thaw(m.epoch);
            drop(cluster);
            // Clients blocked on keys of the slots retry and meet the MOVED.
            db.wake_blocked();
            drop(db);
            shared.unfrozen.notify_waiters();
            Ok(())
        }
        Ok(false) => {
            thaw(shared, m.epoch);
            Err(Failure::Local(
                "the target did not commit; the slots stay here".into(),
            ))
        }
        Err(Failure::Unresolved(epoch)) => {
            // The target may be serving the slots already: stale reads
            // here would be a second owner's answers.
            let _db = shared.db.lock().expect("db lock");
            shared
                .cluster
                .write()
                .expect("cluster lock")
                .freeze_reads(epoch);
            Err(Failure::Unresolved(epoch))
        }
        Err(e) => {
            thaw(shared, m.epoch);
            Err(e)
        }
    }
}

fn thaw(shared: &Handles, epoch: u64) {
    let _db = shared.db.lock().expect("db lock");
    shared.cluster.write().expect("cluster lock").thaw(epoch);
    shared.unfrozen.notify_waiters();
}

async fn commit(
    target: &mut AdminClient,
    m: &Outgoing,
    (out, forwarded): (Outbox, u64),
) -> Result<(), Failure> {
    send(target, m, out, 0, forwarded).await?;
    m.update(|p| p.commit_sent = true);
    target
        .send::<()>(&Request::ImportCommit { id: &m.id })
        .await?;
    Ok(())
}

/// After a commit whose reply was lost: whether the target committed,
/// asking on fresh connections for a bounded time. An import still open is
/// aborted first, so its answer stays true.
async fn resolve(shared: &Handles, m: &Outgoing) -> Result<bool, Failure> {
    let password = shared.admin_password.clone().unwrap_or_default();
    let until = Instant::now() + RESOLVE_FOR;
    while Instant::now() < until {
        if let Ok(mut t) = AdminClient::connect(&m.host, m.port, &password, LINK_TIMEOUT).await {
            match t.import_status(&m.id).await {
                Ok(ImportState::Committed) => return Ok(true),
                Ok(ImportState::Importing) => {
                    if abort_checked(&mut t, &m.id).await {
                        return Ok(false);
                    }
                }
                Ok(_) => return Ok(false),
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Failure::Unresolved(m.epoch))
}

/// Tells the target to drop its partial copy; best effort (a target that
/// restarted has nothing to drop, and the operator aborts stale imports).
async fn abort(target: &mut AdminClient, id: &str) {
    if !abort_checked(target, id).await {
        warn!(id, "could not abort the import on the target");
    }
}

async fn abort_checked(target: &mut AdminClient, id: &str) -> bool {
    target.import_abort(id).await.is_ok()
}

/// Deletes the source's copy of the slots, one slot per lock, paced: a
/// burst of at most [`DROP_BURST`] then a millisecond off, so that freeing
/// a large copy never starves this node's clients of the keyspace lock or
/// of the CPU (measured: an unpaced drop of 250K keys made requests wait up
/// to 20 ms right after the handoff).
async fn drop_copy(shared: &Arc<Handles>, m: &Outgoing) {
    let slots: Arc<[u16]> = m.slots.iter().collect();
    let mut next = 0;
    while next < slots.len() {
        let (shared2, burst_slots) = (shared.clone(), slots.clone());
        // A burst of slots on the connections' runtime, the lock taken
        // for one slot at a time; then a pause for the requests.
        next = shared
            .background
            .urgent(async move {
                let burst = Instant::now();
                let mut i = next;
                while i < burst_slots.len() && burst.elapsed() < DROP_BURST {
                    drop_slot_copy(&shared2, burst_slots[i]);
                    i += 1;
                }
                i
            })
            .await;
        if next < slots.len() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// Drops the keys of `slot`, unless it came back meanwhile (moved here
/// again, or being imported): then it keeps them.
fn drop_slot_copy(shared: &Handles, slot: u16) {
    let mut db = shared.db.lock().expect("db lock");
    let served = shared.cluster.read().expect("cluster lock").serves(slot);
    let importing = shared
        .migrations
        .lock()
        .expect("migrations lock")
        .imports()
        .any(|(_, i)| i.slots.contains(slot));
    if !served && !importing {
        db.drop_slot(slot);
    }
}

/// The longest stretch the drop of a migrated copy works without a pause.
const DROP_BURST: Duration = Duration::from_micros(200);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{StrRef, ValueRef};

    #[test]
    fn an_outbox_is_cut_into_batches_at_change_boundaries() {
        let mut out = Outbox::default();
        assert_eq!(out.pieces().count(), 0);
        let big = vec![b'x'; MAX_APPLY_BYTES / 3];
        for i in 0..10u8 {
            wire::put(
                &mut out.bytes,
                &[i],
                ValueRef::Str(StrRef::Inline(&big)),
                None,
            );
            out.mark();
        }
        let pieces: Vec<&[u8]> = out.pieces().collect();
        assert_eq!(pieces.len(), 4, "three changes a batch, the last one short");
        assert!(
            pieces
                .iter()
                .all(|p| p.len() <= MAX_APPLY_BYTES + MAX_APPLY_BYTES / 3 + 16)
        );
        assert_eq!(pieces.concat(), out.bytes, "nothing lost or repeated");
        // Each piece decodes whole, on its own.
        let mut keys = Vec::new();
        for p in &pieces {
            for c in wire::Reader::new(bytes::Bytes::copy_from_slice(p)) {
                let wire::Change::Put { key, .. } = c.unwrap() else {
                    panic!("a put")
                };
                keys.push(key[0]);
            }
        }
        assert_eq!(keys, (0..10).collect::<Vec<u8>>());
    }
}
