//! Replication commands: the stream a replica pulls (`TIDECACHE REPL`),
//! `WAIT`, `ROLE`, `READONLY`/`READWRITE`, `REPLICAOF`, and the
//! replication section of INFO.

use std::fmt::Write as _;
use std::time::Instant;

use bytes::Bytes;

use std::sync::RwLockWriteGuard;

use tidecache_topology::protocol::{PSYNC_CONTINUE, PSYNC_FULLRESYNC, Request, info as field};

use super::util::{eq, int_arg};
use super::{Ctx, admin_request, misrouted};
use crate::client::{PendingWait, Wait};
use crate::cluster::ClusterState;
use crate::frame::Reply;
use crate::replication::{self, FETCH_WAIT, Role, primary::Psync};
use crate::state::Shared;

fn text(arg: &Bytes) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

fn port_arg(arg: &Bytes) -> Result<u16, Reply> {
    int_arg(arg)
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|p| *p > 0)
        .ok_or_else(|| Reply::error("ERR Invalid master port"))
}

/// What a replica asks its primary (`TIDECACHE REPL`, see
/// [`crate::replication`]): only a primary under a document naming it one
/// answers.
fn replicating(
    cx: &mut Ctx,
    args: &[Bytes],
    run: impl FnOnce(&mut Ctx, Request<'_, Bytes>) -> Result<Reply, Reply>,
) -> Reply {
    let source = || -> Result<(), Reply> {
        if cx.shared.role.get() != Role::Primary {
            return Err(Reply::error(
                "ERR this node is a replica: replicas do not chain",
            ));
        }
        // A node under the operator is a source only once a document names
        // it primary: a process that restarted empty must never be synced
        // from, or its replicas would drop the data it lost.
        if cx.shared.cluster_mode
            && cx.shared.cluster.read().expect("cluster lock").role()
                != Some(tidecache_topology::document::Role::Primary)
        {
            return Err(Reply::error(
                "ERR this node is not a primary in its topology (yet): nothing to replicate",
            ));
        }
        Ok(())
    };
    source()
        .and_then(|()| admin_request(args))
        .and_then(|r| run(cx, r))
        .unwrap_or_else(|e| e)
}

/// `TIDECACHE REPL`'s own handler: the word after it names none of its
/// actions. A replica, or a node no document names primary, refuses
/// before any syntax, as for the actions themselves.
pub fn syntax(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    replicating(cx, args, |_, r| Err(misrouted(&r)))
}

/// `TIDECACHE REPL PSYNC <id> <host> <port> <replid> <offset>`
pub fn psync(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    replicating(cx, args, |cx, r| {
        let Request::ReplPsync {
            replica,
            host,
            port,
            replid,
            offset,
        } = r
        else {
            return Err(misrouted(&r));
        };
        let mut repl = cx.shared.repl.lock().expect("replication lock");
        // A replica asking is contact, as of the reply it had last (see
        // `Stream::replied_at`): the primary's write lease holds that long.
        renew_from(cx.shared, &repl, replica);
        let reply = match repl
            .stream
            .psync(cx.db, replica, (host, port), replid, offset)
        {
            Psync::Continue { replid, offset } => vec![
                Reply::text(PSYNC_CONTINUE),
                Reply::bulk(replid),
                Reply::Integer(offset as i64),
            ],
            Psync::Full {
                replid,
                offset,
                sync,
            } => vec![
                Reply::text(PSYNC_FULLRESYNC),
                Reply::bulk(replid),
                Reply::Integer(offset as i64),
                Reply::Integer(sync as i64),
            ],
        };
        repl.stream.reply_sent(replica, cx.shared.now_ms());
        Ok(Reply::Array(reply))
    })
}

/// `TIDECACHE REPL SNAPSHOT <sync>`
pub fn snapshot(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    replicating(cx, args, |cx, r| {
        let Request::ReplSnapshot { sync } = r else {
            return Err(misrouted(&r));
        };
        let mut repl = cx.shared.repl.lock().expect("replication lock");
        let replica = repl.stream.sync_replica(sync).map(str::to_owned);
        if let Some(id) = &replica {
            renew_from(cx.shared, &repl, id);
        }
        let (done, part) = repl
            .stream
            .snapshot(cx.db, sync)
            .ok_or_else(|| Reply::error("ERR no such full sync (abandoned or over)"))?;
        if let Some(id) = &replica {
            repl.stream.reply_sent(id, cx.shared.now_ms());
        }
        Ok(Reply::Array(vec![
            Reply::Integer(i64::from(done)),
            Reply::bulk(part),
        ]))
    })
}

/// `TIDECACHE REPL FETCH <id> <replid> <offset>`
pub fn fetch(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    replicating(cx, args, |cx, r| match r {
        Request::ReplFetch {
            replica,
            replid,
            offset,
        } => fetch_from(cx, replica, replid, offset),
        other => Err(misrouted(&other)),
    })
}

/// `TIDECACHE LEASE RENEW <epoch> [<clock>]` | `WAIVE <epoch>` |
/// `FENCE <epoch>`: the operator's hold on a primary's writes. Each
/// applies only while the node runs the document of `epoch` as a primary,
/// so an order made from an older view of the cluster never keeps a
/// deposed primary writing.
///
/// - `RENEW`: the operator reached this primary; its write lease holds.
/// - `WAIVE`: this just-promoted primary need not wait for its old
///   primary's lease (the operator fenced that one, or knows it is gone).
/// - `FENCE`: a planned switchover begins: writes on this node's slots
///   wait (as during a migration's handoff) until a document of `epoch + 1`
///   or newer arrives, or at most [`FENCE_HOLD`]; the reply is the
///   stream's end, `[replid, offset]`, which the replica to promote must
///   reach first.
fn leasing(
    cx: &mut Ctx,
    args: &[Bytes],
    run: impl FnOnce(&mut Ctx, Request<'_, Bytes>, RwLockWriteGuard<'_, ClusterState>) -> Reply,
) -> Reply {
    // The epoch is read, and checked against the node's, before the rest
    // of the request: an order from an older view is STALE however it is
    // worded (the table's arity leaves it at `args[3]`).
    let epoch = match int_arg(&args[3]).and_then(|n| u64::try_from(n).map_err(|_| not_integer())) {
        Ok(epoch) => epoch,
        Err(e) => return e,
    };
    let shared = cx.shared;
    let cluster = shared.cluster.write().expect("cluster lock");
    let primary = cluster.role() == Some(tidecache_topology::document::Role::Primary);
    if cluster.epoch() != epoch || !primary || shared.role.get() != Role::Primary {
        return Reply::error(format!(
            "STALE this node runs epoch {} as {}, not epoch {epoch} as a primary",
            cluster.epoch(),
            if primary { "a primary" } else { "no primary" }
        ));
    }
    match admin_request(args) {
        Ok(request) => run(cx, request, cluster),
        Err(e) => e,
    }
}

fn not_integer() -> Reply {
    Reply::error(super::util::NOT_INTEGER)
}

/// `TIDECACHE LEASE`'s own handler: the word after it names none of its
/// actions. The epoch is checked first, as for the actions themselves.
pub fn lease_syntax(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    leasing(cx, args, |_, r, _| misrouted(&r))
}

/// `TIDECACHE LEASE RENEW <epoch> [<clock>]`
pub fn lease_renew(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    leasing(cx, args, |cx, r, _| {
        // Up to the clock reading the operator had before sending this
        // (INFO's `tidecache_lease_clock_ms`), never past now: a renewal
        // held up in the network renews nothing past that reading.
        let Request::LeaseRenew { clock, .. } = r else {
            return misrouted(&r);
        };
        let now = cx.shared.now_ms();
        cx.shared.lease.renew(clock.map_or(now, |c| c.min(now)));
        Reply::OK
    })
}

/// `TIDECACHE LEASE WAIVE <epoch>`
pub fn lease_waive(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    leasing(cx, args, |cx, r, _| {
        let Request::LeaseWaive { .. } = r else {
            return misrouted(&r);
        };
        cx.shared
            .lease
            .writes_from_ms
            .store(0, std::sync::atomic::Ordering::Relaxed);
        Reply::OK
    })
}

/// `TIDECACHE LEASE FENCE <epoch>`
pub fn lease_fence(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    leasing(cx, args, |cx, r, mut cluster| {
        let Request::LeaseFence { epoch } = r else {
            return misrouted(&r);
        };
        let slots = tidecache_topology::SlotSet::from_ranges(&cluster.owned_slots());
        cluster.freeze_for(epoch + 1, &slots, FENCE_HOLD);
        drop(cluster);
        let mut repl = cx.shared.repl.lock().expect("replication lock");
        repl.stream.pump(cx.db);
        Reply::Array(vec![
            Reply::bulk(repl.stream.replid().to_owned()),
            Reply::Integer(repl.stream.offset() as i64),
        ])
    })
}

/// The longest a switchover's fence holds writes without a newer document.
const FENCE_HOLD: std::time::Duration = std::time::Duration::from_secs(10);

/// Renews the write lease to the time this node last replied to replica
/// `id` (nothing for a replica it never replied to).
fn renew_from(shared: &Shared, repl: &replication::Replication, id: &str) {
    if let Some(at) = repl.stream.replied_at(id) {
        shared.lease.renew(at);
    }
}

/// The stream from `offset`, waiting up to [`FETCH_WAIT`] for something to
/// send; an empty reply when nothing came.
fn fetch_from(cx: &mut Ctx, id: &str, replid: &str, offset: u64) -> Result<Reply, Reply> {
    let mut repl = cx.shared.repl.lock().expect("replication lock");
    renew_from(cx.shared, &repl, id);
    let fetched = repl.stream.fetch(cx.db, id, replid, offset);
    let part = match fetched {
        Err(e) => {
            cx.client.pending = None;
            return Err(Reply::error(format!("ERR {e}")));
        }
        Ok(Some(part)) => Some(part),
        Ok(None) => None,
    };
    let now = tokio::time::Instant::now();
    let deadline = cx
        .client
        .pending
        .get_or_insert(PendingWait {
            offset,
            history: repl.stream.history(),
            deadline: Some(now + FETCH_WAIT),
        })
        .deadline;
    match part {
        Some(part) => {
            cx.client.pending = None;
            repl.stream.reply_sent(id, cx.shared.now_ms());
            Ok(Reply::bulk(part))
        }
        None if deadline.is_some_and(|d| d <= now) => {
            cx.client.pending = None;
            repl.stream.reply_sent(id, cx.shared.now_ms());
            Ok(Reply::bulk(Bytes::new()))
        }
        None => {
            // Read under the keyspace lock, which every change takes: a
            // change after this look raises the count past `seen`.
            let signal = repl.stream.changed.clone();
            cx.client.wait = Some(Wait::Signal {
                seen: signal.seq(),
                signal,
                deadline,
                blocking: false,
            });
            Ok(Reply::Null)
        }
    }
}

/// `WAIT numreplicas timeout`: until that many replicas applied every
/// write made before it, or the timeout (milliseconds, 0 for none) ends;
/// the number that did.
pub fn wait(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    let wanted = match int_arg(&args[1]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let timeout = match int_arg(&args[2]) {
        Ok(t) if t < 0 => return Reply::error("ERR timeout is negative"),
        Ok(t) => t as u64,
        Err(_) => return Reply::error("ERR timeout is not an integer or out of range"),
    };
    if cx.shared.role.get() != Role::Primary {
        cx.client.pending = None;
        return Reply::error(
            "ERR WAIT cannot be used with replica instances. Please also note that since Redis 4.0 if a replica is configured to be writable (which is not the default) writes to replicas are just local and are not propagated.",
        );
    }
    let mut repl = cx.shared.repl.lock().expect("replication lock");
    // A pending wait of another history (the node was demoted and
    // promoted again while it waited) is not this one's.
    let pending = match cx
        .client
        .pending
        .filter(|p| p.history == repl.stream.history())
    {
        Some(p) => p,
        None => {
            // Every write before this command into the stream: its end is
            // what the replicas must reach.
            repl.stream.pump(cx.db);
            let p = PendingWait {
                offset: repl.stream.offset(),
                history: repl.stream.history(),
                deadline: (timeout > 0).then(|| {
                    tokio::time::Instant::now() + std::time::Duration::from_millis(timeout)
                }),
            };
            cx.client.pending = Some(p);
            p
        }
    };
    let done = repl.stream.acknowledged(pending.offset);
    let over = pending
        .deadline
        .is_some_and(|d| d <= tokio::time::Instant::now());
    // Inside MULTI nothing may block: the count as it is now.
    if done as i64 >= wanted || over || cx.client.in_exec {
        cx.client.pending = None;
        return Reply::Integer(done as i64);
    }
    let signal = repl.stream.acked.clone();
    cx.client.wait = Some(Wait::Signal {
        seen: signal.seq(),
        signal,
        deadline: pending.deadline,
        blocking: true,
    });
    Reply::Null
}

/// `ROLE`
pub fn role(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    let repl = cx.shared.repl.lock().expect("replication lock");
    match &repl.link {
        Some(link) => Reply::Array(vec![
            Reply::text("slave"),
            Reply::text(&link.host),
            Reply::Integer(link.port.into()),
            Reply::text(link.state.name()),
            Reply::Integer(repl.applied.as_ref().map_or(-1, |(_, o)| *o as i64)),
        ]),
        None => {
            let now = Instant::now();
            let replicas = repl
                .stream
                .replicas()
                .filter(|(_, p)| p.online(now))
                .map(|(_, p)| {
                    Reply::Array(vec![
                        Reply::text(&p.host),
                        Reply::text(&p.port.to_string()),
                        Reply::text(&p.ack.to_string()),
                    ])
                })
                .collect();
            Reply::Array(vec![
                Reply::text("master"),
                Reply::Integer(repl.stream.offset() as i64),
                Reply::Array(replicas),
            ])
        }
    }
}

/// `READONLY`: in cluster mode, a replica serves this client's reads of
/// its shard's slots instead of redirecting them.
pub fn readonly(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    set_readonly(cx, true)
}

/// `READWRITE`: back to redirecting every command to the primary.
pub fn readwrite(cx: &mut Ctx, _: &[Bytes]) -> Reply {
    set_readonly(cx, false)
}

fn set_readonly(cx: &mut Ctx, on: bool) -> Reply {
    if !cx.shared.cluster_mode {
        return Reply::error("ERR This instance has cluster support disabled");
    }
    cx.client.readonly = on;
    Reply::OK
}

/// `REPLICAOF host port | NO ONE` (and `SLAVEOF`): standalone nodes only;
/// under the operator the topology says who follows whom.
pub fn replicaof(cx: &mut Ctx, args: &[Bytes]) -> Reply {
    if cx.shared.cluster_mode {
        return Reply::error("ERR REPLICAOF not allowed in cluster mode.");
    }
    if eq(&args[1], "NO") && eq(&args[2], "ONE") {
        replication::follow(&cx.shared.replication_handles(), cx.db, None);
        return Reply::OK;
    }
    let port = match port_arg(&args[2]) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if cx.shared.config.admin_password.is_none() {
        return Reply::error(
            "ERR replication runs over the admin user: start both nodes with the same --admin-password",
        );
    }
    let host = text(&args[1]);
    let already = cx
        .shared
        .repl
        .lock()
        .expect("replication lock")
        .link
        .as_ref()
        .is_some_and(|l| l.host == host && l.port == port);
    if already {
        return Reply::Simple("OK Already connected to specified master");
    }
    replication::follow(&cx.shared.replication_handles(), cx.db, Some((host, port)));
    Reply::OK
}

/// INFO's replication section.
pub fn info(shared: &Shared, out: &mut String) {
    let repl = shared.repl.lock().expect("replication lock");
    let mut w = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    let now = Instant::now();
    match &repl.link {
        Some(link) => {
            w(field::ROLE, &field::REPLICA);
            w("master_host", &link.host);
            w("master_port", &link.port);
            w(
                field::MASTER_LINK_STATUS,
                &if link.state == replication::replica::LinkState::Connected {
                    field::LINK_UP
                } else {
                    field::LINK_DOWN
                },
            );
            w(
                "master_last_io_seconds_ago",
                &replication::ago(link.last_io),
            );
            w(
                field::MASTER_SYNC_IN_PROGRESS,
                &i32::from(link.state == replication::replica::LinkState::Sync),
            );
            let offset = repl.applied.as_ref().map_or(0, |(_, o)| *o);
            w("slave_read_repl_offset", &offset);
            w("slave_repl_offset", &offset);
            w("slave_priority", &100);
            w("slave_read_only", &1);
            w("replica_announced", &1);
            w("connected_slaves", &0);
            w("tidecache_full_syncs", &link.full_syncs);
            w("tidecache_partial_syncs", &link.partial_syncs);
            if let Some(e) = &link.last_error {
                w("tidecache_link_error", &e.replace(['\r', '\n'], " "));
            }
            w(
                field::MASTER_REPLID,
                &repl
                    .applied
                    .as_ref()
                    .map_or("0".repeat(40), |(id, _)| id.clone()),
            );
            w(field::MASTER_REPL_OFFSET, &offset);
        }
        None => {
            let s = &repl.stream;
            w(field::ROLE, &field::PRIMARY);
            // Made primary before its first sync completed (see
            // `replication::follow`): it serves nothing.
            if shared.role.get() == Role::Loading {
                w(field::MASTER_SYNC_IN_PROGRESS, &1);
                w(field::TIDECACHE_INCOMPLETE_KEYSPACE, &1);
            }
            let online: Vec<_> = s.replicas().filter(|(_, p)| p.online(now)).collect();
            w("connected_slaves", &online.len());
            for (i, (_, p)) in online.iter().enumerate() {
                w(
                    &format!("slave{i}"),
                    &format!(
                        "ip={},port={},state={},offset={},lag={}",
                        p.host,
                        p.port,
                        if p.syncing { "wait_bgsave" } else { "online" },
                        p.ack,
                        now.duration_since(p.last_seen).as_secs()
                    ),
                );
            }
            w("master_failover_state", &"no-failover");
            w(field::MASTER_REPLID, &s.replid());
            w("master_replid2", &"0".repeat(40));
            w(field::MASTER_REPL_OFFSET, &s.offset());
            w("second_repl_offset", &-1);
            w("repl_backlog_active", &i32::from(s.is_active()));
            w("repl_backlog_size", &s.backlog_size());
            w("repl_backlog_first_byte_offset", &s.backlog_start());
            w("repl_backlog_histlen", &s.backlog_bytes());
            w("tidecache_sync_buffer_bytes", &s.sync_buffer_bytes());
            w(field::TIDECACHE_LEASE_CLOCK_MS, &shared.now_ms());
            w("tidecache_syncs_over_limit", &s.syncs_over_limit());
        }
    }
}
