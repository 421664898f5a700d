//! The replica's side: one task per link to a primary, which keeps the
//! keyspace equal to the primary's until the link is replaced or dropped.

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::Value as RValue;
use tidecache_topology::admin::{AdminClient, AdminError};
use tidecache_topology::protocol::{PSYNC_CONTINUE, PSYNC_FULLRESYNC, Request};
use tracing::{info, warn};

use super::{Handles, Role, apply};

/// Held in the node's state (see [`super::role`]).
pub use super::role::{Link, LinkState};

/// Connection and reply timeout on the link (a `FETCH` waits at most
/// [`super::FETCH_WAIT`] on the primary, so a reply takes far less).
const LINK_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest pause between two attempts to reach the primary.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("{0}")]
    Link(#[from] AdminError),
    #[error("primary sent {0}")]
    Protocol(String),
    #[error("no --admin-password to reach the primary with")]
    NoPassword,
    #[error("replaced by a newer link")]
    Replaced,
}

/// Follows the primary at `host:port` until aborted: reconnects after a
/// break and resumes from the backlog, or syncs in full when it cannot.
pub async fn run(shared: Handles, host: String, port: u16, generation: u64) {
    let mut backoff = Duration::from_millis(50);
    loop {
        match session(&shared, &host, port, generation).await {
            Err(Failure::Replaced) => return,
            Err(e) => {
                warn!(primary = %format!("{host}:{port}"), error = %e, "replication link down");
                update(&shared, generation, |l| {
                    l.state = LinkState::Connecting;
                    l.last_error = Some(e.to_string());
                });
            }
            Ok(()) => {}
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Changes this link's state, unless a newer link replaced it.
fn update(shared: &Handles, generation: u64, f: impl FnOnce(&mut Link)) -> bool {
    let mut repl = shared.repl.lock().expect("replication lock");
    match repl.link.as_mut() {
        Some(l) if l.generation == generation => {
            f(l);
            true
        }
        _ => false,
    }
}

fn text(v: &RValue) -> Option<String> {
    match v {
        RValue::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        RValue::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(v: &RValue) -> Option<u64> {
    match v {
        RValue::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn bytes(v: RValue) -> Option<Bytes> {
    match v {
        RValue::BulkString(b) => Some(Bytes::from(b)),
        RValue::Nil => Some(Bytes::new()),
        _ => None,
    }
}

/// One connection's life: handshake, full sync if needed, then the stream.
async fn session(shared: &Handles, host: &str, port: u16, generation: u64) -> Result<(), Failure> {
    let password = shared.admin_password.clone().ok_or(Failure::NoPassword)?;
    let mut primary = AdminClient::connect(host, port, &password, LINK_TIMEOUT).await?;
    let me = shared.cluster.read().expect("cluster lock").me().clone();
    let (held_replid, held_offset) = shared
        .repl
        .lock()
        .expect("replication lock")
        .applied
        .clone()
        .unwrap_or_else(|| ("?".into(), 0));
    let reply: Vec<RValue> = primary
        .send(&Request::ReplPsync {
            replica: &me.id,
            host: &me.host,
            port: me.port,
            replid: &held_replid,
            offset: held_offset,
        })
        .await?;
    let bad = || Failure::Protocol(format!("{reply:?} to PSYNC"));
    let kind = reply.first().and_then(text).ok_or_else(bad)?;
    let replid = reply.get(1).and_then(text).ok_or_else(bad)?;
    let mut offset = reply.get(2).and_then(int).ok_or_else(bad)?;
    match kind.as_str() {
        PSYNC_CONTINUE => {
            info!(primary = %format!("{host}:{port}"), offset, "replication resumed from the backlog");
            update(shared, generation, |l| l.partial_syncs += 1);
        }
        PSYNC_FULLRESYNC => {
            let sync = reply.get(3).and_then(int).ok_or_else(bad)?;
            full_sync(shared, &mut primary, generation, &replid, offset, sync).await?;
        }
        _ => return Err(bad()),
    }
    if !update(shared, generation, |l| {
        l.state = LinkState::Connected;
        l.last_io = Some(Instant::now());
        l.last_error = None;
    }) {
        return Err(Failure::Replaced);
    }
    loop {
        let part: RValue = match primary
            .send(&Request::ReplFetch {
                replica: &me.id,
                replid: &replid,
                offset,
            })
            .await
        {
            Ok(v) => v,
            Err(e) if e.is_reply() => {
                // Another history, or trimmed: start over from scratch
                // (unless a newer link took over meanwhile).
                let mut repl = shared.repl.lock().expect("replication lock");
                if matches!(&repl.link, Some(l) if l.generation == generation) {
                    repl.applied = None;
                }
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
        };
        let part = bytes(part)
            .ok_or_else(|| Failure::Protocol("a FETCH reply that is not a bulk string".into()))?;
        let len = part.len() as u64;
        if !part.is_empty() {
            apply_part(shared, generation, part, Some((&replid, offset + len)))?;
            offset += len;
        }
        if !update(shared, generation, |l| l.last_io = Some(Instant::now())) {
            return Err(Failure::Replaced);
        }
    }
}

/// Applies a part of the stream (or of a snapshot) under the keyspace
/// lock and, with `at`, records the offset the keyspace is now at.
fn apply_part(
    shared: &Handles,
    generation: u64,
    part: Bytes,
    at: Option<(&str, u64)>,
) -> Result<(), Failure> {
    let changes =
        crate::db::wire::decode_all(part).map_err(|e| Failure::Protocol(e.to_string()))?;
    let mut db = shared.db.lock().expect("db lock");
    let mut repl = shared.repl.lock().expect("replication lock");
    if !matches!(&repl.link, Some(l) if l.generation == generation) {
        return Err(Failure::Replaced);
    }
    apply(&mut db, changes);
    if let Some((replid, offset)) = at {
        repl.applied = Some((replid.to_owned(), offset));
        repl.partial = false;
        // Whole again (the end of a full sync): reads are served.
        shared.role.set(Role::Replica);
    }
    Ok(())
}

/// Replaces the keyspace by the primary's snapshot, then records the
/// stream offset it is at.
async fn full_sync(
    shared: &Handles,
    primary: &mut AdminClient,
    generation: u64,
    replid: &str,
    offset: u64,
    sync: u64,
) -> Result<(), Failure> {
    let started = Instant::now();
    {
        let mut db = shared.db.lock().expect("db lock");
        let mut repl = shared.repl.lock().expect("replication lock");
        if !matches!(&repl.link, Some(l) if l.generation == generation) {
            return Err(Failure::Replaced);
        }
        // Until the copy is whole, the keyspace is no history at all.
        repl.applied = None;
        repl.partial = true;
        if let Some(l) = repl.link.as_mut() {
            l.state = LinkState::Sync;
        }
        shared.role.set(Role::Loading);
        db.flush();
    }
    let mut copied = 0u64;
    loop {
        let reply: Vec<RValue> = primary.send(&Request::ReplSnapshot { sync }).await?;
        let mut reply = reply.into_iter();
        let done = reply.next().as_ref().and_then(int);
        let part = reply.next().and_then(bytes);
        let (Some(done), Some(part)) = (done, part) else {
            return Err(Failure::Protocol(
                "a SNAPSHOT reply that is not [done, bytes]".into(),
            ));
        };
        copied += part.len() as u64;
        let last = done == 1;
        apply_part(shared, generation, part, last.then_some((replid, offset)))?;
        if last {
            break;
        }
    }
    update(shared, generation, |l| l.full_syncs += 1);
    info!(
        bytes = copied,
        elapsed_ms = started.elapsed().as_millis() as u64,
        offset,
        "full sync from the primary done"
    );
    Ok(())
}
