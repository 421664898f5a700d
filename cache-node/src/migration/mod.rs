//! Atomic slot migration, node to node (the Valkey 9 / Dragonfly model,
//! not per-key `MIGRATE` with `ASK`).
//!
//! The operator tells the source `TIDECACHE MIGRATE START <id> <host>
//! <port> <epoch> <ranges>`. The source ([`source`]) opens an admin
//! connection to the target and:
//!
//! 1. `IMPORT BEGIN`: the target drops whatever stale keys it holds in
//!    those slots and accepts the stream for them (clients are still sent
//!    to the source: the target does not serve the slots yet);
//! 2. starts, under one keyspace lock, a consistent capture of the slots
//!    ([`crate::db::Sink`]) and a follower that records every key changed
//!    in them from that instant ([`crate::db::FollowId`]);
//! 3. streams batches (`IMPORT APPLY`, [`crate::db::wire`]): captured keys first, then
//!    the current state of each key changed since — a capture hands a slot
//!    over before its first change, so a key's captured state always
//!    precedes its later states in the stream;
//! 4. when the capture is done and a batch of changes is small, freezes
//!    writes on the slots (clients wait, reads go on), sends the last
//!    changes and `IMPORT COMMIT`: the target takes the slots under the
//!    migration's epoch; the source records the same handoff, answers
//!    `MOVED` from then on, lets the frozen writes go (they follow the
//!    redirect) and drops its copy in the background.
//!
//! No write is lost: every write before the freeze is in the stream before
//! the commit, none runs on the slots during it, and after it they run on
//! the target. No slot is served twice: the target serves only after its
//! commit, the source stops at the freeze. A failure or `CANCEL` before
//! the commit rolls back: the target drops its partial copy
//! (`IMPORT ABORT`), the source never stopped owning the slots. If the
//! commit's reply is lost, the source asks the target (`IMPORT STATUS`)
//! before deciding; if it cannot learn the outcome it keeps the slots
//! frozen, reads too (commands get `TRYAGAIN`), until the operator installs a topology
//! at least as new as the migration's epoch, which settles it.

pub mod source;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tidecache_topology::SlotSet;
use tokio::sync::Notify;

use crate::background::Background;
use crate::cluster::ClusterState;
use crate::db::Db;

/// Where an outgoing migration is, and how an import ended, as
/// `MIGRATE STATUS` and `IMPORT STATUS` report them: the admin protocol's
/// own states.
pub use tidecache_topology::protocol::{
    ImportState, MAX_ID_LEN, MigrationState as State, valid_id,
};

/// What a migration's task uses of the node's state: the same cells the
/// state holds (`state::Shared::migration_handles`), and nothing else of it.
#[derive(Clone)]
pub struct Handles {
    pub db: Arc<Mutex<Db>>,
    pub cluster: Arc<RwLock<ClusterState>>,
    /// Every migration, to tell whether a slot came back meanwhile.
    pub migrations: Arc<Mutex<Migrations>>,
    /// Notified when a migration's handoff lets frozen writes go.
    pub unfrozen: Arc<Notify>,
    /// Where the task runs, and its way back to the connections' runtime.
    pub background: Arc<Background>,
    /// `--admin-password`: how the source reaches the target.
    pub admin_password: Option<String>,
}

/// What `MIGRATE STATUS` and INFO show of an outgoing migration.
#[derive(Debug, Clone)]
pub struct Progress {
    pub state: State,
    /// Captured keys sent.
    pub keys_copied: u64,
    /// Changed keys sent after the capture had them.
    pub keys_forwarded: u64,
    pub bytes_sent: u64,
    pub started: Instant,
    /// Set when the migration ends.
    pub elapsed: Option<Duration>,
    /// How long writes on the slots were frozen.
    pub pause: Option<Duration>,
    pub error: Option<String>,
    /// Whether the source ever sent the target `IMPORT COMMIT`. A migration
    /// that ended without sending it cannot have moved the slots, whatever
    /// the target says or whether it can be asked at all: the operator
    /// retries it even when the target is gone (`MIGRATE STATUS`'s
    /// `commit_sent`).
    pub commit_sent: bool,
}

/// One outgoing migration: its orders and its progress.
pub struct Outgoing {
    pub id: String,
    pub host: String,
    pub port: u16,
    /// The epoch the handoff takes.
    pub epoch: u64,
    pub slots: SlotSet,
    cancel: AtomicBool,
    progress: std::sync::Mutex<Progress>,
}

impl Outgoing {
    pub fn progress(&self) -> Progress {
        self.progress.lock().expect("progress lock").clone()
    }

    fn update(&self, f: impl FnOnce(&mut Progress)) {
        f(&mut self.progress.lock().expect("progress lock"));
    }

    /// Asks the migration to stop; it does unless its handoff began.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Acquire)
    }
}

/// One incoming migration on the target.
#[derive(Debug, Clone)]
pub struct Import {
    pub slots: SlotSet,
    pub epoch: u64,
    pub changes_applied: u64,
}

/// Ended outgoing migrations remembered for STATUS.
const HISTORY: usize = 32;
/// Ended imports remembered for STATUS, and so refused if begun again.
/// The operator judges a move by a target's answer: an import that
/// committed here must still say so when the operator asks, however many
/// imports it forbade since (one per lost source). Some 40 bytes each.
const IMPORT_HISTORY: usize = 4096;

/// Every migration this node takes part in.
#[derive(Default)]
pub struct Migrations {
    outgoing: VecDeque<Arc<Outgoing>>,
    imports: HashMap<String, Import>,
    /// Imports that ended, newest last.
    ended_imports: VecDeque<(String, ImportState)>,
}

/// Why a migration could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("BUSY migration {0} is already running")]
    Duplicate(String),
    #[error("BUSY migration {0} is running; one at a time")]
    Busy(String),
}

impl Migrations {
    /// Registers an outgoing migration, refusing an id in use or slots
    /// another running migration moves.
    pub fn start_outgoing(
        &mut self,
        id: String,
        host: String,
        port: u16,
        epoch: u64,
        slots: SlotSet,
    ) -> Result<Arc<Outgoing>, StartError> {
        // One at a time: two handoffs from one node could finish out of
        // epoch order, and the later one would then not be recordable.
        for m in &self.outgoing {
            let running = !m.progress().state.is_over();
            if m.id == id && running {
                return Err(StartError::Duplicate(id));
            }
            if running {
                return Err(StartError::Busy(m.id.clone()));
            }
        }
        self.outgoing.retain(|m| m.id != id);
        let m = Arc::new(Outgoing {
            id,
            host,
            port,
            epoch,
            slots,
            cancel: AtomicBool::new(false),
            progress: std::sync::Mutex::new(Progress {
                state: State::Copying,
                commit_sent: false,
                keys_copied: 0,
                keys_forwarded: 0,
                bytes_sent: 0,
                started: Instant::now(),
                elapsed: None,
                pause: None,
                error: None,
            }),
        });
        self.outgoing.push_back(m.clone());
        while self.outgoing.len() > HISTORY {
            match self
                .outgoing
                .iter()
                .position(|m| m.progress().state.is_over())
            {
                Some(i) => drop(self.outgoing.remove(i)),
                None => break,
            }
        }
        Ok(m)
    }

    pub fn outgoing(&self, id: &str) -> Option<Arc<Outgoing>> {
        self.outgoing.iter().find(|m| m.id == id).cloned()
    }

    pub fn all_outgoing(&self) -> impl Iterator<Item = &Arc<Outgoing>> {
        self.outgoing.iter()
    }

    pub fn import(&self, id: &str) -> Option<&Import> {
        self.imports.get(id)
    }

    pub fn import_mut(&mut self, id: &str) -> Option<&mut Import> {
        self.imports.get_mut(id)
    }

    /// The id of a running import whose slots overlap `slots`, other than `id`.
    pub fn import_overlapping(&self, id: &str, slots: &SlotSet) -> Option<String> {
        self.imports
            .iter()
            .find(|(other, i)| other.as_str() != id && i.slots.intersects(slots))
            .map(|(other, _)| other.clone())
    }

    pub fn begin_import(&mut self, id: String, import: Import) {
        self.ended_imports.retain(|(i, _)| *i != id);
        self.imports.insert(id, import);
    }

    /// Ends import `id` as `how`; its record, if it was running.
    pub fn end_import(&mut self, id: &str, how: ImportState) -> Option<Import> {
        let import = self.imports.remove(id);
        if import.is_some() {
            self.record_end(id, how);
        }
        import
    }

    /// Records import `id`, which never began here, as aborted: a `BEGIN`
    /// for it that arrives late (from a source the operator gave up on)
    /// is refused, so it can never commit.
    pub fn forbid_import(&mut self, id: &str) {
        if self.import_state(id) == ImportState::Unknown {
            self.record_end(id, ImportState::Aborted);
        }
    }

    fn record_end(&mut self, id: &str, how: ImportState) {
        self.ended_imports.retain(|(i, _)| i != id);
        self.ended_imports.push_back((id.to_owned(), how));
        while self.ended_imports.len() > IMPORT_HISTORY {
            self.ended_imports.pop_front();
        }
    }

    pub fn imports(&self) -> impl Iterator<Item = (&String, &Import)> {
        self.imports.iter()
    }

    pub fn import_state(&self, id: &str) -> ImportState {
        if self.imports.contains_key(id) {
            return ImportState::Importing;
        }
        self.ended_imports
            .iter()
            .rev()
            .find(|(i, _)| i == id)
            .map_or(ImportState::Unknown, |(_, s)| *s)
    }
}
