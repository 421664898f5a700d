//! Loading RDB streams into the keyspace: at start-up from the standalone
//! node's file, and (in a cluster) from snapshot objects, keeping only the
//! keys of the slots the node owns, so that a snapshot of N shards
//! restores into M.

use std::io::Read;

use tidecache_topology::key_slot;

use bytes::Bytes;

use crate::db::Db;
use crate::rdb::{Item, RdbError, Reader};

/// Why a load stopped.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Rdb(#[from] RdbError),
    /// The stream's metadata was refused (a foreign object).
    #[error("{0}")]
    Refused(String),
}

/// Keys handed to the keyspace per lock hold.
pub const BATCH: usize = 1024;

/// What a load read and kept.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Keys stored.
    pub keys: u64,
    /// Keys of slots not kept.
    pub other_slots: u64,
    /// Keys whose deadline had passed.
    pub expired: u64,
    /// Bytes of the RDB stream.
    pub bytes: u64,
    /// Function libraries skipped (no scripting here yet).
    pub functions_skipped: usize,
}

/// Reads the RDB stream `r` to its end, handing the keys whose slot
/// `keep` accepts to `apply` in batches. Keys already expired at `now_ms`
/// are dropped. `check` sees the stream's AUX metadata before any key is
/// applied. Fails on any damage, after whatever batches were applied: the
/// caller discards them (a partial load is never served).
pub fn read_batches(
    r: impl Read,
    keep: impl Fn(u16) -> bool,
    now_ms: u64,
    check: impl FnOnce(&[(Bytes, Bytes)]) -> Result<(), String>,
    mut apply: impl FnMut(Vec<Item>),
) -> Result<Loaded, LoadError> {
    let mut reader = Reader::new(r)?;
    let mut loaded = Loaded::default();
    let mut batch = Vec::with_capacity(BATCH);
    // Every AUX field of a file comes before its first key.
    let first = reader.next_item()?;
    check(&reader.aux).map_err(LoadError::Refused)?;
    let mut next = first;
    while let Some(item) = next.take() {
        next = reader.next_item()?;
        if !keep(key_slot(&item.key)) {
            loaded.other_slots += 1;
            continue;
        }
        if item.expires_at.is_some_and(|at| at <= now_ms) {
            loaded.expired += 1;
            continue;
        }
        loaded.keys += 1;
        batch.push(item);
        if batch.len() == BATCH {
            apply(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
        }
    }
    if !batch.is_empty() {
        apply(batch);
    }
    loaded.bytes = reader.offset();
    loaded.functions_skipped = reader.functions_skipped;
    Ok(loaded)
}

/// Stores a batch of loaded keys.
pub fn store(db: &mut Db, batch: Vec<Item>) {
    for item in batch {
        let key = item.key.clone();
        db.set(item.key, item.value, item.expires_at);
        if item.idle_secs.is_some() || item.freq.is_some() {
            db.set_use(&key, item.idle_secs, item.freq);
        }
    }
}
