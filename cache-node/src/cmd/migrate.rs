//! `TIDECACHE MIGRATE` (the operator's orders to a source) and `TIDECACHE
//! IMPORT` (the source's stream to its target); see [`crate::migration`].

use bytes::Bytes;
use tidecache_topology::protocol::{Request, status as field};
use tidecache_topology::{SlotRange, SlotSet, key_slot};
use tracing::info;

use super::{Ctx, admin_request, misrouted};
use crate::client::Wait;
use crate::db::Db;
use crate::db::wire::{self, Change, decode_all};
use crate::frame::Reply;
use crate::migration::{Import, ImportState, Outgoing, Progress, StartError, State, source};
use crate::state::Shared;

/// Both ends of a migration run in cluster mode, under an epoch newer than
/// any they know.
fn check_epoch(cluster: &crate::cluster::ClusterState, epoch: u64) -> Result<(), Reply> {
    if cluster.mode() != crate::cluster::Mode::Cluster {
        return Err(Reply::error(
            "ERR this node runs standalone; migrations need --cluster-enabled yes",
        ));
    }
    let newest = cluster.newest_epoch();
    if epoch <= newest {
        return Err(Reply::error(format!(
            "STALE migration epoch {epoch} is not newer than epoch {newest}"
        )));
    }
    Ok(())
}

/// `TIDECACHE MIGRATE START <id> <host> <port> <epoch> <range>...`
pub fn start(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::MigrateStart {
            id,
            host,
            port,
            epoch,
            ranges,
        }) => start_outgoing(cx, id, (host, port), epoch, &ranges).unwrap_or_else(|e| e),
        Ok(other) => misrouted(&other),
        Err(e) => e,
    }
}

fn start_outgoing(
    cx: &mut Ctx,
    id: &str,
    (host, port): (&str, u16),
    epoch: u64,
    ranges: &[SlotRange],
) -> Result<Reply, Reply> {
    let shared = cx.shared;
    let slots = SlotSet::from_ranges(ranges);
    // Only a primary with its whole keyspace moves slots (not a replica,
    // nor one made primary in the middle of a full sync).
    if shared.role.get() != crate::replication::Role::Primary {
        return Err(Reply::error(
            "ERR this node is not a primary with a whole keyspace: it cannot move slots",
        ));
    }
    {
        let cluster = shared.cluster.read().expect("cluster lock");
        check_epoch(&cluster, epoch)?;
        if let Some(slot) = slots.iter().find(|&s| !cluster.serves(s)) {
            return Err(Reply::error(format!(
                "ERR slot {slot} is not served by this node"
            )));
        }
        let me = cluster.me();
        if me.host == host && me.port == port {
            return Err(Reply::error("ERR the target is this node"));
        }
    }
    let m = shared
        .migrations
        .lock()
        .expect("migrations lock")
        .start_outgoing(id.to_owned(), host.to_owned(), port, epoch, slots)
        .map_err(|e: StartError| Reply::error(e.to_string()))?;
    info!(id = m.id, target = %format!("{}:{}", m.host, m.port), epoch, slots = ?m.slots, "migration started");
    cx.shared
        .background
        .spawn(source::run(cx.shared.migration_handles(), m));
    Ok(Reply::OK)
}

/// One migration's fields, flat (a map in RESP3, pairs in RESP2).
fn progress_reply(m: &Outgoing, p: &Progress) -> Reply {
    let ranges: Vec<String> = m.slots.ranges().iter().map(ToString::to_string).collect();
    let elapsed = p.elapsed.unwrap_or_else(|| p.started.elapsed());
    let pair = |k: &str, v: Reply| (Reply::text(k), v);
    Reply::Map(vec![
        pair(field::ID, Reply::text(&m.id)),
        pair(field::STATE, Reply::text(p.state.as_str())),
        pair(
            field::TARGET,
            Reply::text(&format!("{}:{}", m.host, m.port)),
        ),
        pair(field::EPOCH, Reply::Integer(m.epoch as i64)),
        pair(field::SLOTS, Reply::text(&ranges.join(","))),
        pair(field::COMMIT_SENT, Reply::Integer(i64::from(p.commit_sent))),
        pair(field::KEYS_COPIED, Reply::Integer(p.keys_copied as i64)),
        pair(
            field::KEYS_FORWARDED,
            Reply::Integer(p.keys_forwarded as i64),
        ),
        pair(field::BYTES_SENT, Reply::Integer(p.bytes_sent as i64)),
        pair(
            field::ELAPSED_MS,
            Reply::Integer(elapsed.as_millis() as i64),
        ),
        pair(
            field::PAUSE_US,
            Reply::Integer(p.pause.map_or(0, |d| d.as_micros() as i64)),
        ),
        pair(
            field::ERROR,
            p.error.as_deref().map_or(Reply::text(""), Reply::text),
        ),
    ])
}

/// `TIDECACHE MIGRATE STATUS [<id>]`
pub fn status(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::MigrateStatus { id }) => outgoing_status(cx, id).unwrap_or_else(|e| e),
        Ok(other) => misrouted(&other),
        Err(e) => e,
    }
}

fn outgoing_status(cx: &mut Ctx, id: Option<&str>) -> Result<Reply, Reply> {
    let migrations = cx.shared.migrations.lock().expect("migrations lock");
    match id {
        Some(id) => {
            let m = migrations
                .outgoing(id)
                .ok_or_else(|| Reply::error("ERR no such migration"))?;
            Ok(progress_reply(&m, &m.progress()))
        }
        None => Ok(Reply::Array(
            migrations
                .all_outgoing()
                .map(|m| progress_reply(m, &m.progress()))
                .collect(),
        )),
    }
}

/// `TIDECACHE MIGRATE CANCEL <id>`
pub fn cancel(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::MigrateCancel { id }) => cancel_outgoing(cx, id).unwrap_or_else(|e| e),
        Ok(other) => misrouted(&other),
        Err(e) => e,
    }
}

fn cancel_outgoing(cx: &mut Ctx, id: &str) -> Result<Reply, Reply> {
    let m = cx
        .shared
        .migrations
        .lock()
        .expect("migrations lock")
        .outgoing(id)
        .ok_or_else(|| Reply::error("ERR no such migration"))?;
    let state = m.progress().state;
    if state.is_over() {
        return Err(Reply::error(format!(
            "ERR migration already ended: {}",
            state.as_str()
        )));
    }
    if state == State::Handoff {
        return Err(Reply::error(
            "BUSY migration is handing off; it completes or rolls back by itself",
        ));
    }
    m.cancel();
    Ok(Reply::OK)
}

// `TIDECACHE IMPORT BEGIN|APPLY|COMMIT|ABORT|STATUS`: the stream a source
// node sends. Each runs under the keyspace lock, so a batch is applied
// whole before any other command runs (`APPLY` on the bulk thread).

/// An import request that takes slots or keys (`BEGIN`, `APPLY`,
/// `COMMIT`). Only a primary takes them, and only within its write lease:
/// keys applied on a replica would diverge from its primary, and a primary
/// that may have been replaced must not take new ones.
fn importing(
    cx: &mut Ctx,
    args: &[Bytes],
    run: impl FnOnce(&mut Ctx, Request<'_, Bytes>) -> Result<Reply, Reply>,
) -> Reply {
    may_import(cx.shared)
        .and_then(|()| admin_request(args))
        .and_then(|r| run(cx, r))
        .unwrap_or_else(|e| e)
}

/// `TIDECACHE IMPORT BEGIN <id> <epoch> <range>...`
pub fn import_begin(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    importing(cx, args, |cx, r| match r {
        Request::ImportBegin { id, epoch, ranges } => begin(cx, id, epoch, &ranges),
        other => Err(misrouted(&other)),
    })
}

/// `TIDECACHE IMPORT APPLY <id> <batch>`
pub fn import_apply(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    importing(cx, args, |cx, r| match r {
        Request::ImportApply { id, batch } => apply(cx, id, batch),
        other => Err(misrouted(&other)),
    })
}

/// `TIDECACHE IMPORT COMMIT <id>`
pub fn import_commit(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    importing(cx, args, |cx, r| match r {
        Request::ImportCommit { id } => commit(cx, id),
        other => Err(misrouted(&other)),
    })
}

/// `TIDECACHE IMPORT ABORT <id>`
pub fn import_abort(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::ImportAbort { id }) => abort(cx, id).unwrap_or_else(|e| e),
        Ok(other) => misrouted(&other),
        Err(e) => e,
    }
}

/// `TIDECACHE IMPORT STATUS <id>`
pub fn import_status(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    match admin_request(args) {
        Ok(Request::ImportStatus { id }) => {
            let migrations = cx.shared.migrations.lock().expect("migrations lock");
            Reply::text(migrations.import_state(id).as_str())
        }
        Ok(other) => misrouted(&other),
        Err(e) => e,
    }
}

/// Only a primary within its write lease takes slots.
fn may_import(shared: &Shared) -> Result<(), Reply> {
    if shared.role.get() != crate::replication::Role::Primary {
        return Err(Reply::error(
            "READONLY this node is a replica: it cannot import slots",
        ));
    }
    shared
        .lease
        .check(shared.now_ms())
        .map_err(|f| Reply::error(f.message()))
}

fn begin(cx: &mut Ctx, id: &str, epoch: u64, ranges: &[SlotRange]) -> Result<Reply, Reply> {
    let shared = cx.shared;
    let slots = SlotSet::from_ranges(ranges);
    {
        let cluster = shared.cluster.read().expect("cluster lock");
        check_epoch(&cluster, epoch)?;
        if let Some(slot) = slots.iter().find(|&s| cluster.serves(s)) {
            return Err(Reply::error(format!(
                "ERR slot {slot} is already served by this node"
            )));
        }
    }
    let mut migrations = shared.migrations.lock().expect("migrations lock");
    // Ids are one per attempt: one that ended here never begins again (an
    // aborted one may be a source the operator gave up on, arriving late).
    match migrations.import_state(id) {
        ImportState::Unknown | ImportState::Importing => {}
        ended => {
            return Err(Reply::error(format!(
                "ERR import {id} already ended here: {ended}"
            )));
        }
    }
    if let Some(other) = migrations.import_overlapping(id, &slots) {
        // An older import of these slots was abandoned (its source failed
        // or was cancelled unheard): the newer epoch replaces it.
        let older = migrations.import(&other).map(|i| i.epoch);
        if older.is_some_and(|e| e < epoch) {
            let old = migrations
                .end_import(&other, ImportState::Aborted)
                .expect("the import exists");
            for s in old.slots.iter() {
                cx.db.drop_slot(s);
            }
            info!(id = other, "import replaced by a newer one");
        } else {
            return Err(Reply::error(format!("BUSY slots overlap import {other}")));
        }
    }
    // Keys in slots this node does not serve are leftovers (an import that
    // was abandoned): the stream brings the real ones.
    let stale: usize = slots.iter().map(|s| cx.db.drop_slot(s)).sum();
    info!(id, epoch, slots = ?slots, stale, "import started");
    migrations.begin_import(
        id.to_owned(),
        Import {
            slots,
            epoch,
            changes_applied: 0,
        },
    );
    Ok(Reply::OK)
}

/// `IMPORT APPLY`. The batch is decoded on the bulk thread (see
/// [`crate::background`]) and then applied under the keyspace lock at the
/// connections' priority: the connection waits for the reply without
/// holding the lock meanwhile. In a transaction, which runs whole under
/// one lock, it is applied at once.
fn apply(cx: &mut Ctx, id: &str, batch: &Bytes) -> Result<Reply, Reply> {
    // In a transaction, and for a small batch (the handoff's last one,
    // while the source holds writes to the slots): at once, at the
    // connection's priority, rather than after a hop to the bulk thread.
    if cx.client.in_exec || batch.len() <= INLINE_APPLY_BYTES {
        let changes = decode(batch)?;
        return apply_changes(cx.shared, cx.db, id, changes);
    }
    let shared = cx.shared.arc();
    let (id, batch) = (id.to_owned(), batch.clone());
    let (tx, done) = tokio::sync::oneshot::channel();
    cx.shared.background.spawn(async move {
        let reply = match decode(&batch) {
            Err(e) => e,
            Ok(changes) => {
                let shared2 = shared.clone();
                let applied = async move {
                    let mut db = shared2.db.lock().expect("db lock");
                    // Again: the node may have become a replica or lost
                    // its lease while the batch was decoded.
                    may_import(&shared2)?;
                    apply_changes(&shared2, &mut db, &id, changes)
                };
                shared
                    .background
                    .urgent(applied)
                    .await
                    .unwrap_or_else(|e| e)
            }
        };
        let _ = tx.send(reply);
    });
    cx.client.wait = Some(Wait::Done(done));
    Ok(Reply::Null)
}

/// Batches up to this size are applied inline (see [`apply`]): decoding
/// them takes microseconds.
const INLINE_APPLY_BYTES: usize = 64 * 1024;

fn decode(batch: &Bytes) -> Result<Vec<Change>, Reply> {
    decode_all(batch.clone()).map_err(|e| Reply::error(format!("ERR {e}")))
}

/// Applies a decoded batch of import `id`, whole or not at all.
fn apply_changes(
    shared: &Shared,
    db: &mut Db,
    id: &str,
    changes: Vec<Change>,
) -> Result<Reply, Reply> {
    // An import grows memory like any write: past `maxmemory` it evicts by
    // the policy, or fails the batch (the source then gives up and the
    // move is retried later) rather than growing the node until the
    // kernel kills it.
    let max = shared.maxmemory();
    if max > 0
        && db.used_memory() > max
        && crate::db::make_room(db, max, true) == crate::db::Room::Full
    {
        return Err(Reply::error(format!(
            "{} (this node cannot take the migration's keys)",
            crate::db::OOM
        )));
    }
    let mut migrations = shared.migrations.lock().expect("migrations lock");
    let import = migrations
        .import_mut(id)
        .ok_or_else(|| Reply::error("ERR no such import"))?;
    // The whole batch is checked before any of it is applied: a refused
    // batch leaves nothing behind.
    if let Some(key) = changes.iter().find_map(|c| match c {
        Change::Put { key, .. } | Change::Del { key } if !import.slots.contains(key_slot(key)) => {
            Some(key)
        }
        _ => None,
    }) {
        return Err(Reply::error(format!(
            "ERR key in slot {} is not part of this import",
            key_slot(key)
        )));
    }
    let applied = changes.len();
    let slots = import.slots.clone();
    // A flush on the source empties only the migrating slots here.
    wire::apply(db, changes, |db| {
        for slot in slots.iter() {
            db.drop_slot(slot);
        }
    });
    import.changes_applied += applied as u64;
    Ok(Reply::Integer(applied as i64))
}

fn commit(cx: &mut Ctx, id: &str) -> Result<Reply, Reply> {
    let shared = cx.shared;
    let mut migrations = shared.migrations.lock().expect("migrations lock");
    if migrations.import_state(id) == ImportState::Committed {
        return Ok(Reply::OK); // a retried commit
    }
    let import = migrations
        .import(id)
        .ok_or_else(|| Reply::error("ERR no such import"))?;
    shared
        .cluster
        .write()
        .expect("cluster lock")
        .hand_off(import.slots.clone(), import.epoch, None)
        .map_err(|e| Reply::error(e.to_string()))?;
    let import = migrations
        .end_import(id, ImportState::Committed)
        .expect("the import exists");
    info!(id, epoch = import.epoch, slots = ?import.slots, changes = import.changes_applied, "import committed: serving the slots");
    Ok(Reply::OK)
}

fn abort(cx: &mut Ctx, id: &str) -> Result<Reply, Reply> {
    let mut migrations = cx.shared.migrations.lock().expect("migrations lock");
    match migrations.import_state(id) {
        ImportState::Committed => Err(Reply::error(
            "ERR import already committed: the slots are served here",
        )),
        ImportState::Importing => {
            let import = migrations
                .end_import(id, ImportState::Aborted)
                .expect("the import exists");
            let dropped: usize = import.slots.iter().map(|s| cx.db.drop_slot(s)).sum();
            info!(id, dropped, "import aborted");
            Ok(Reply::OK)
        }
        ImportState::Aborted => Ok(Reply::OK),
        ImportState::Unknown => {
            migrations.forbid_import(id);
            Ok(Reply::OK)
        }
    }
}

/// INFO's `migration` section.
pub fn info(shared: &Shared, out: &mut String) {
    use std::fmt::Write as _;
    let migrations = shared.migrations.lock().expect("migrations lock");
    let outgoing: Vec<_> = migrations.all_outgoing().collect();
    let running = outgoing
        .iter()
        .filter(|m| !m.progress().state.is_over())
        .count();
    let _ = write!(
        out,
        "# Migration\r\nmigrations_running:{running}\r\nimports_running:{}\r\n",
        migrations.imports().count()
    );
    for m in outgoing {
        let p = m.progress();
        let elapsed = p.elapsed.unwrap_or_else(|| p.started.elapsed());
        let _ = write!(
            out,
            "migration_{}:state={},target={}:{},epoch={},slots={},keys_copied={},keys_forwarded={},bytes_sent={},elapsed_ms={},pause_us={}\r\n",
            m.id,
            p.state.as_str(),
            m.host,
            m.port,
            m.epoch,
            m.slots.len(),
            p.keys_copied,
            p.keys_forwarded,
            p.bytes_sent,
            elapsed.as_millis(),
            p.pause.map_or(0, |d| d.as_micros()),
        );
    }
    for (id, i) in migrations.imports() {
        let _ = write!(
            out,
            "import_{id}:state=importing,epoch={},slots={},changes_applied={}\r\n",
            i.epoch,
            i.slots.len(),
            i.changes_applied
        );
    }
}

/// `TIDECACHE SLOTSTATS [LOAD]`: `slot keys bytes` for every slot holding
/// a key, flat; bytes as the keyspace accounts them per slot (records,
/// deadline index, the slot's table). With `LOAD`, also `calls cpu_usec`,
/// what the slot served over the last 10 to 20 seconds, for every slot
/// holding a key or served recently. The rebalance planner balances both.
pub fn slot_stats(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let load = match admin_request(args) {
        Ok(Request::SlotStats { load }) => load,
        Ok(other) => return misrouted(&other),
        Err(e) => return e,
    };
    let now = cx.db.now_ms();
    let mut out = Vec::new();
    let int = |n: u64| Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    for slot in 0..tidecache_topology::SLOT_COUNT {
        let keys = cx.db.count_in_slot(slot) as u64;
        let traffic = if load {
            cx.db.traffic.recent(now, slot)
        } else {
            Default::default()
        };
        if keys == 0 && traffic.calls == 0 {
            continue;
        }
        out.push(int(u64::from(slot)));
        out.push(int(keys));
        out.push(int(cx.db.bytes_in_slot(slot) as u64));
        if load {
            out.push(int(traffic.calls));
            out.push(int(traffic.nanos / 1000));
        }
    }
    Reply::Array(out)
}
