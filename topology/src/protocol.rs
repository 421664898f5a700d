//! The admin protocol: every `TIDECACHE` command that crosses a process
//! boundary, the words of its replies, the states it reports and the INFO
//! fields read across it. This module is its reference: the operator
//! ([`crate::admin`]), the node (its handlers, and its own calls to other
//! nodes: a replica to its primary, a migration's source to its target) and
//! the tests all go through it, so the two sides cannot drift apart.
//!
//! # Requests
//!
//! | Request | Reply |
//! |---|---|
//! | `TOPOLOGY SET <json>` | `OK`; `STALE` when the node holds a newer epoch |
//! | `TOPOLOGY GET` | the document (JSON), or nil |
//! | `TOPOLOGY EPOCH` | the document's epoch (0 without one) |
//! | `MIGRATE START <id> <host> <port> <epoch> <range>...` | `OK` (source side) |
//! | `MIGRATE STATUS [<id>]` | one migration's fields ([`status`]), or all of them |
//! | `MIGRATE CANCEL <id>` | `OK` |
//! | `IMPORT BEGIN <id> <epoch> <range>...` | `OK` (target side) |
//! | `IMPORT APPLY <id> <batch>` | the number of changes applied |
//! | `IMPORT COMMIT <id>` / `ABORT <id>` | `OK` |
//! | `IMPORT STATUS <id>` | an [`ImportState`] word |
//! | `REPL PSYNC <replica> <host> <port> <replid> <offset>` | `[CONTINUE, replid, offset]` or `[FULLRESYNC, replid, offset, sync]` |
//! | `REPL SNAPSHOT <sync>` | `[done, part]` |
//! | `REPL FETCH <replica> <replid> <offset>` | the stream from `offset` (empty when nothing came) |
//! | `LEASE RENEW <epoch> [<clock>]` / `WAIVE <epoch>` | `OK` |
//! | `LEASE FENCE <epoch>` | `[replid, offset]` |
//! | `SLOTSTATS` | `slot keys bytes`, flat, for every slot holding keys |
//! | `SLOTSTATS LOAD` | `slot keys bytes calls cpu_usec`, flat, for every slot holding keys or recently used ([`SLOT_STATS_LOAD_WIDTH`]) |
//!
//! A [`Request`] encodes to its arguments ([`Request::cmd`],
//! [`Request::args`]) and parses back from them ([`Request::parse`]).
//! Parsing borrows: a payload (a topology document, an `IMPORT APPLY`
//! batch) is a reference to the caller's own argument, of the caller's own
//! type (`Bytes` on the node), so a batch of megabytes is never copied.
//! A [`ParseError`] displays as the node's error reply, prefix included.

use std::fmt;
use std::str::FromStr;

use crate::slot::SlotRange;

/// The command every request starts with.
pub const COMMAND: &str = "TIDECACHE";

/// How many numbers `SLOTSTATS LOAD` gives per slot: slot, keys, bytes,
/// calls and cpu-usec (over the node's last 10 to 20 seconds).
pub const SLOT_STATS_LOAD_WIDTH: usize = 5;

/// A migration id: at most this long, printable (it appears in logs and INFO).
pub const MAX_ID_LEN: usize = 64;

/// Whether `id` may name a migration.
pub fn valid_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.iter().all(|b| b.is_ascii_graphic())
}

/// A word of a reply that names no state of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {word:?}")]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
}

/// A state as a closed set of lowercase wire words.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident, $kind:literal {
        $($(#[$vmeta:meta])* $variant:ident = $word:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every state, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant,)*];

            /// The word on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word,)*
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;

            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)*
                    _ => Err(UnknownWord { kind: $kind, word: s.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words! {
    /// Where an outgoing migration is, on its source (`MIGRATE STATUS`'s
    /// `state`).
    MigrationState, "migration state" {
        /// Streaming the captured copy (and the changes made since).
        Copying = "copying",
        /// Writes on the slots are frozen while the last changes go over.
        Handoff = "handoff",
        Done = "done",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl MigrationState {
    /// Whether the migration ended (it changes no more).
    pub fn is_over(self) -> bool {
        matches!(
            self,
            MigrationState::Done | MigrationState::Cancelled | MigrationState::Failed
        )
    }
}

words! {
    /// How an import stands on its target (`IMPORT STATUS`).
    ImportState, "import state" {
        Importing = "importing",
        Committed = "committed",
        Aborted = "aborted",
        /// The target never heard of it (or forgot it: it restarted).
        Unknown = "unknown",
    }
}

/// How a migration stands on its source (`MIGRATE STATUS <id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationStatus {
    pub state: MigrationState,
    pub error: String,
    /// Whether the source ever sent `IMPORT COMMIT`: one that never did
    /// cannot have moved the slots.
    pub commit_sent: bool,
}

impl MigrationStatus {
    /// Reads a `MIGRATE STATUS <id>` reply, given its fields by name. A
    /// node that does not report `commit_sent` is taken to have sent the
    /// commit: the cautious reading.
    pub fn from_fields<'f>(field: impl Fn(&str) -> Option<&'f str>) -> Result<Self, UnknownWord> {
        Ok(MigrationStatus {
            state: field(status::STATE).unwrap_or_default().parse()?,
            error: field(status::ERROR).unwrap_or_default().to_owned(),
            commit_sent: field(status::COMMIT_SENT) != Some("0"),
        })
    }
}

/// The fields of a `MIGRATE STATUS` reply (a map in RESP3, pairs in RESP2).
pub mod status {
    pub const ID: &str = "id";
    /// A [`super::MigrationState`] word.
    pub const STATE: &str = "state";
    /// `host:port`.
    pub const TARGET: &str = "target";
    pub const EPOCH: &str = "epoch";
    /// Slot ranges, comma-separated.
    pub const SLOTS: &str = "slots";
    /// `1` once the source sent `IMPORT COMMIT`, else `0`.
    pub const COMMIT_SENT: &str = "commit_sent";
    pub const KEYS_COPIED: &str = "keys_copied";
    pub const KEYS_FORWARDED: &str = "keys_forwarded";
    pub const BYTES_SENT: &str = "bytes_sent";
    pub const ELAPSED_MS: &str = "elapsed_ms";
    pub const PAUSE_US: &str = "pause_us";
    /// Why it failed; empty otherwise.
    pub const ERROR: &str = "error";
}

/// The first word of a `REPL PSYNC` reply: the replica goes on from its
/// offset in the primary's backlog.
pub const PSYNC_CONTINUE: &str = "CONTINUE";
/// The first word of a `REPL PSYNC` reply: the replica replaces its
/// keyspace by a snapshot (`REPL SNAPSHOT <sync>`) first.
pub const PSYNC_FULLRESYNC: &str = "FULLRESYNC";

/// The fields of `INFO replication` that the operator reads, and their
/// values, as Redis names them (with Tidecache's own under `tidecache_`).
pub mod info {
    /// [`PRIMARY`] or [`REPLICA`].
    pub const ROLE: &str = "role";
    pub const PRIMARY: &str = "master";
    pub const REPLICA: &str = "slave";
    /// The history the keyspace is at (a replica's: its primary's).
    pub const MASTER_REPLID: &str = "master_replid";
    /// The offset in that history.
    pub const MASTER_REPL_OFFSET: &str = "master_repl_offset";
    /// A replica: [`LINK_UP`] or [`LINK_DOWN`].
    pub const MASTER_LINK_STATUS: &str = "master_link_status";
    pub const LINK_UP: &str = "up";
    pub const LINK_DOWN: &str = "down";
    /// `1` while a full sync replaces the keyspace.
    pub const MASTER_SYNC_IN_PROGRESS: &str = "master_sync_in_progress";
    /// A primary's lease clock, in milliseconds: what a `LEASE RENEW` sent
    /// after reading it renews the lease up to.
    pub const TIDECACHE_LEASE_CLOCK_MS: &str = "tidecache_lease_clock_ms";
    /// `1` on a primary made one before its first sync completed: it
    /// serves nothing.
    pub const TIDECACHE_INCOMPLETE_KEYSPACE: &str = "tidecache_incomplete_keyspace";

    // What the autoscaler reads (INFO memory, stats and cpu).
    /// Bytes the node's allocator holds (Redis's `used_memory`).
    pub const USED_MEMORY: &str = "used_memory";
    /// Of [`USED_MEMORY`], what `maxmemory` does not count (the
    /// replication stream's buffers, as in Redis).
    pub const MEM_NOT_COUNTED_FOR_EVICT: &str = "mem_not_counted_for_evict";
    /// The node's `maxmemory` (0: no limit).
    pub const MAXMEMORY: &str = "maxmemory";
    /// Commands run since the node started.
    pub const TOTAL_COMMANDS_PROCESSED: &str = "total_commands_processed";
    /// Keys evicted for memory since the node started.
    pub const EVICTED_KEYS: &str = "evicted_keys";
    /// Writes refused with `OOM` since the node started.
    pub const TIDECACHE_OOM_REJECTED: &str = "tidecache_oom_rejected";
    /// CPU seconds the node spent in the kernel and in user space.
    pub const USED_CPU_SYS: &str = "used_cpu_sys";
    pub const USED_CPU_USER: &str = "used_cpu_user";
    /// The CPU the node may use, in millicores (0: unknown), from its
    /// pod's CPU limit.
    pub const TIDECACHE_CPU_LIMIT_MILLICORES: &str = "tidecache_cpu_limit_millicores";
}

/// A family of requests (the second word), for the errors that name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Topology,
    Migrate,
    Import,
    Repl,
    Lease,
    SlotStats,
    Snapshot,
    Restore,
}

impl Group {
    pub const ALL: &[Group] = &[
        Group::Topology,
        Group::Migrate,
        Group::Import,
        Group::Repl,
        Group::Lease,
        Group::SlotStats,
        Group::Snapshot,
        Group::Restore,
    ];

    /// The word on the wire.
    pub fn word(self) -> &'static str {
        match self {
            Group::Topology => "TOPOLOGY",
            Group::Migrate => "MIGRATE",
            Group::Import => "IMPORT",
            Group::Repl => "REPL",
            Group::Lease => "LEASE",
            Group::SlotStats => "SLOTSTATS",
            Group::Snapshot => "SNAPSHOT",
            Group::Restore => "RESTORE",
        }
    }

    /// The name the node's command table and ACLs know it by.
    pub fn command_name(self) -> &'static str {
        match self {
            Group::Topology => "tidecache|topology",
            Group::Migrate => "tidecache|migrate",
            Group::Import => "tidecache|import",
            Group::Repl => "tidecache|repl",
            Group::Lease => "tidecache|lease",
            Group::SlotStats => "tidecache|slotstats",
            Group::Snapshot => "tidecache|snapshot",
            Group::Restore => "tidecache|restore",
        }
    }

    /// What a request of the group looks like (in its syntax error).
    pub fn usage(self) -> &'static str {
        match self {
            Group::Topology => "TIDECACHE TOPOLOGY SET <json> | GET | EPOCH",
            Group::Migrate => {
                "TIDECACHE MIGRATE START <id> <host> <port> <epoch> <range>... | \
                 STATUS [<id>] | CANCEL <id>"
            }
            Group::Import => {
                "TIDECACHE IMPORT BEGIN <id> <epoch> <range>... | \
                 APPLY <id> <batch> | COMMIT <id> | ABORT <id> | STATUS <id>"
            }
            Group::Repl => {
                "TIDECACHE REPL PSYNC id host port replid offset | SNAPSHOT sync | FETCH id replid offset"
            }
            Group::Lease => "TIDECACHE LEASE RENEW|WAIVE|FENCE <epoch>",
            Group::SlotStats => "TIDECACHE SLOTSTATS [LOAD]",
            Group::Snapshot => "TIDECACHE SNAPSHOT START <id> <object> | STATUS",
            Group::Restore => "TIDECACHE RESTORE START <id> <snapshot id|-> <object>... | STATUS",
        }
    }

    fn of(word: &[u8]) -> Option<Group> {
        Group::ALL
            .iter()
            .copied()
            .find(|g| word.eq_ignore_ascii_case(g.word().as_bytes()))
    }
}

/// Why arguments are not a request. Each displays as the reply the node
/// sends for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error(
        "ERR unknown command: expected TIDECACHE TOPOLOGY|MIGRATE|IMPORT|REPL|LEASE|SLOTSTATS|SNAPSHOT|RESTORE"
    )]
    Unknown,
    #[error("ERR syntax error: expected {}", .0.usage())]
    Syntax(Group),
    #[error("ERR wrong number of arguments for '{}' command", .0.command_name())]
    Arity(Group),
    #[error("ERR invalid migration id: 1 to {MAX_ID_LEN} printable ASCII characters")]
    InvalidId,
    #[error("ERR invalid port")]
    InvalidPort,
    /// A replica's port in `REPL PSYNC` (Redis's `REPLICAOF` wording).
    #[error("ERR Invalid master port")]
    InvalidReplicaPort,
    #[error("ERR invalid epoch: expected a positive integer")]
    InvalidEpoch,
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    #[error("ERR invalid slot range")]
    InvalidRangeText,
    #[error("ERR {0}")]
    InvalidRange(crate::slot::ParseSlotRangeError),
}

/// One admin request. `P` is the type of its payload arguments (the
/// topology document, an `IMPORT APPLY` batch): `[u8]` for a request built
/// to be sent, the caller's argument type for one parsed ([`Request::parse`]
/// borrows them).
#[derive(Debug, PartialEq, Eq)]
pub enum Request<'a, P: ?Sized = [u8]> {
    /// Installs a topology document (JSON).
    TopologySet {
        document: &'a P,
    },
    TopologyGet,
    TopologyEpoch,
    /// Orders a source to move `ranges` to the primary at `host:port`
    /// under `epoch`.
    MigrateStart {
        id: &'a str,
        host: &'a str,
        port: u16,
        epoch: u64,
        ranges: Vec<SlotRange>,
    },
    /// One migration, or (`None`) every one the source remembers.
    MigrateStatus {
        id: Option<&'a str>,
    },
    MigrateCancel {
        id: &'a str,
    },
    /// A source opens import `id` of `ranges` on its target.
    ImportBegin {
        id: &'a str,
        epoch: u64,
        ranges: Vec<SlotRange>,
    },
    /// A batch of the change stream (the format of the node's `db::wire`,
    /// `cache-node/src/db/wire.rs`).
    ImportApply {
        id: &'a str,
        batch: &'a P,
    },
    ImportCommit {
        id: &'a str,
    },
    ImportAbort {
        id: &'a str,
    },
    ImportStatus {
        id: &'a str,
    },
    /// A replica (`replica`, listening on `host:port`) holding history
    /// `replid` up to `offset` asks its primary to go on from there.
    ReplPsync {
        replica: &'a str,
        host: &'a str,
        port: u16,
        replid: &'a str,
        offset: u64,
    },
    /// The next part of full sync `sync`'s snapshot.
    ReplSnapshot {
        sync: u64,
    },
    /// The stream of history `replid` from `offset`.
    ReplFetch {
        replica: &'a str,
        replid: &'a str,
        offset: u64,
    },
    /// Keeps a primary's write lease, up to `clock` (its lease clock read
    /// before) when given.
    LeaseRenew {
        epoch: u64,
        clock: Option<u64>,
    },
    /// Lets a just-promoted primary write at once.
    LeaseWaive {
        epoch: u64,
    },
    /// Holds a primary's writes for a switchover.
    LeaseFence {
        epoch: u64,
    },
    /// What each slot holds and, with `load`, what it recently served.
    SlotStats {
        load: bool,
    },
    /// Snapshots the node's slots into object `object` of its store.
    SnapshotStart {
        id: &'a str,
        object: &'a str,
    },
    SnapshotStatus,
    /// Empties the node and loads `objects`, keeping the keys of its
    /// slots; with `snapshot`, each object must belong to that snapshot.
    RestoreStart {
        id: &'a str,
        snapshot: Option<&'a str>,
        objects: Vec<&'a str>,
    },
    RestoreStatus,
}

impl<P: AsRef<[u8]> + ?Sized> Request<'_, P> {
    /// The family the request belongs to.
    pub fn group(&self) -> Group {
        match self {
            Request::TopologySet { .. } | Request::TopologyGet | Request::TopologyEpoch => {
                Group::Topology
            }
            Request::MigrateStart { .. }
            | Request::MigrateStatus { .. }
            | Request::MigrateCancel { .. } => Group::Migrate,
            Request::ImportBegin { .. }
            | Request::ImportApply { .. }
            | Request::ImportCommit { .. }
            | Request::ImportAbort { .. }
            | Request::ImportStatus { .. } => Group::Import,
            Request::ReplPsync { .. }
            | Request::ReplSnapshot { .. }
            | Request::ReplFetch { .. } => Group::Repl,
            Request::LeaseRenew { .. }
            | Request::LeaseWaive { .. }
            | Request::LeaseFence { .. } => Group::Lease,
            Request::SlotStats { .. } => Group::SlotStats,
            Request::SnapshotStart { .. } | Request::SnapshotStatus => Group::Snapshot,
            Request::RestoreStart { .. } | Request::RestoreStatus => Group::Restore,
        }
    }

    /// The request's arguments, in order, each given to `arg`.
    pub fn encode(&self, mut arg: impl FnMut(&[u8])) {
        let mut words = |words: &[&str]| words.iter().for_each(|w| arg(w.as_bytes()));
        let number = |n: u64| n.to_string();
        match self {
            Request::TopologySet { document } => {
                words(&[COMMAND, "TOPOLOGY", "SET"]);
                arg(document.as_ref());
            }
            Request::TopologyGet => words(&[COMMAND, "TOPOLOGY", "GET"]),
            Request::TopologyEpoch => words(&[COMMAND, "TOPOLOGY", "EPOCH"]),
            Request::MigrateStart {
                id,
                host,
                port,
                epoch,
                ranges,
            } => {
                let (port, epoch) = (number((*port).into()), number(*epoch));
                words(&[COMMAND, "MIGRATE", "START", id, host, &port, &epoch]);
                for r in ranges {
                    arg(r.to_string().as_bytes());
                }
            }
            Request::MigrateStatus { id: None } => words(&[COMMAND, "MIGRATE", "STATUS"]),
            Request::MigrateStatus { id: Some(id) } => {
                words(&[COMMAND, "MIGRATE", "STATUS", id]);
            }
            Request::MigrateCancel { id } => words(&[COMMAND, "MIGRATE", "CANCEL", id]),
            Request::ImportBegin { id, epoch, ranges } => {
                words(&[COMMAND, "IMPORT", "BEGIN", id, &number(*epoch)]);
                for r in ranges {
                    arg(r.to_string().as_bytes());
                }
            }
            Request::ImportApply { id, batch } => {
                words(&[COMMAND, "IMPORT", "APPLY", id]);
                arg(batch.as_ref());
            }
            Request::ImportCommit { id } => words(&[COMMAND, "IMPORT", "COMMIT", id]),
            Request::ImportAbort { id } => words(&[COMMAND, "IMPORT", "ABORT", id]),
            Request::ImportStatus { id } => words(&[COMMAND, "IMPORT", "STATUS", id]),
            Request::ReplPsync {
                replica,
                host,
                port,
                replid,
                offset,
            } => {
                let (port, offset) = (number((*port).into()), number(*offset));
                words(&[
                    COMMAND, "REPL", "PSYNC", replica, host, &port, replid, &offset,
                ]);
            }
            Request::ReplSnapshot { sync } => {
                words(&[COMMAND, "REPL", "SNAPSHOT", &number(*sync)]);
            }
            Request::ReplFetch {
                replica,
                replid,
                offset,
            } => words(&[COMMAND, "REPL", "FETCH", replica, replid, &number(*offset)]),
            Request::LeaseRenew { epoch, clock } => {
                words(&[COMMAND, "LEASE", "RENEW", &number(*epoch)]);
                if let Some(clock) = clock {
                    words(&[&number(*clock)]);
                }
            }
            Request::LeaseWaive { epoch } => words(&[COMMAND, "LEASE", "WAIVE", &number(*epoch)]),
            Request::LeaseFence { epoch } => words(&[COMMAND, "LEASE", "FENCE", &number(*epoch)]),
            Request::SlotStats { load } => {
                words(&[COMMAND, "SLOTSTATS"]);
                if *load {
                    words(&["LOAD"]);
                }
            }
            Request::SnapshotStart { id, object } => {
                words(&[COMMAND, "SNAPSHOT", "START", id, object]);
            }
            Request::SnapshotStatus => words(&[COMMAND, "SNAPSHOT", "STATUS"]),
            Request::RestoreStart {
                id,
                snapshot,
                objects,
            } => {
                words(&[COMMAND, "RESTORE", "START", id, snapshot.unwrap_or("-")]);
                words(objects);
            }
            Request::RestoreStatus => words(&[COMMAND, "RESTORE", "STATUS"]),
        }
    }

    /// The same request with its payloads seen as bytes.
    pub fn as_bytes(&self) -> Request<'_, [u8]> {
        match self {
            Request::TopologySet { document } => Request::TopologySet {
                document: document.as_ref(),
            },
            Request::TopologyGet => Request::TopologyGet,
            Request::TopologyEpoch => Request::TopologyEpoch,
            Request::MigrateStart {
                id,
                host,
                port,
                epoch,
                ranges,
            } => Request::MigrateStart {
                id,
                host,
                port: *port,
                epoch: *epoch,
                ranges: ranges.clone(),
            },
            Request::MigrateStatus { id } => Request::MigrateStatus { id: *id },
            Request::MigrateCancel { id } => Request::MigrateCancel { id },
            Request::ImportBegin { id, epoch, ranges } => Request::ImportBegin {
                id,
                epoch: *epoch,
                ranges: ranges.clone(),
            },
            Request::ImportApply { id, batch } => Request::ImportApply {
                id,
                batch: batch.as_ref(),
            },
            Request::ImportCommit { id } => Request::ImportCommit { id },
            Request::ImportAbort { id } => Request::ImportAbort { id },
            Request::ImportStatus { id } => Request::ImportStatus { id },
            Request::ReplPsync {
                replica,
                host,
                port,
                replid,
                offset,
            } => Request::ReplPsync {
                replica,
                host,
                port: *port,
                replid,
                offset: *offset,
            },
            Request::ReplSnapshot { sync } => Request::ReplSnapshot { sync: *sync },
            Request::ReplFetch {
                replica,
                replid,
                offset,
            } => Request::ReplFetch {
                replica,
                replid,
                offset: *offset,
            },
            Request::LeaseRenew { epoch, clock } => Request::LeaseRenew {
                epoch: *epoch,
                clock: *clock,
            },
            Request::LeaseWaive { epoch } => Request::LeaseWaive { epoch: *epoch },
            Request::LeaseFence { epoch } => Request::LeaseFence { epoch: *epoch },
            Request::SlotStats { load } => Request::SlotStats { load: *load },
            Request::SnapshotStart { id, object } => Request::SnapshotStart { id, object },
            Request::SnapshotStatus => Request::SnapshotStatus,
            Request::RestoreStart {
                id,
                snapshot,
                objects,
            } => Request::RestoreStart {
                id,
                snapshot: *snapshot,
                objects: objects.clone(),
            },
            Request::RestoreStatus => Request::RestoreStatus,
        }
    }
}

/// A request built to be sent (its payloads plain bytes, so that
/// `Request::TopologyGet.cmd()` needs no annotation).
impl<'a> Request<'a, [u8]> {
    /// One of every request (both forms of those with an optional part),
    /// carrying `document` and `batch`: what the tests of both sides walk,
    /// so that a new request is covered everywhere at once.
    pub fn examples(document: &'a [u8], batch: &'a [u8]) -> Vec<Request<'a>> {
        vec![
            Request::TopologySet { document },
            Request::TopologyGet,
            Request::TopologyEpoch,
            Request::MigrateStart {
                id: "m-1",
                host: "10.0.0.7",
                port: 6379,
                epoch: 12,
                ranges: vec![slot_range("0-100"), slot_range("200")],
            },
            Request::MigrateStatus { id: Some("m-1") },
            Request::MigrateStatus { id: None },
            Request::MigrateCancel { id: "m-1" },
            Request::ImportBegin {
                id: "m-1",
                epoch: 12,
                ranges: vec![slot_range("16383")],
            },
            Request::ImportApply { id: "m-1", batch },
            Request::ImportCommit { id: "m-1" },
            Request::ImportAbort { id: "m-1" },
            Request::ImportStatus { id: "m-1" },
            Request::ReplPsync {
                replica: "node-b",
                host: "b.tidecache",
                port: 7000,
                replid: "?",
                offset: 0,
            },
            Request::ReplSnapshot { sync: 3 },
            Request::ReplFetch {
                replica: "node-b",
                replid: "abc",
                offset: u64::from(u32::MAX) + 1,
            },
            Request::LeaseRenew {
                epoch: 4,
                clock: Some(1234),
            },
            Request::LeaseRenew {
                epoch: 4,
                clock: None,
            },
            Request::LeaseWaive { epoch: 4 },
            Request::LeaseFence { epoch: 4 },
            Request::SlotStats { load: false },
            Request::SlotStats { load: true },
            Request::SnapshotStart {
                id: "s-1",
                object: "c/s-1/shard-0.rdb",
            },
            Request::SnapshotStatus,
            Request::RestoreStart {
                id: "r-1",
                snapshot: Some("s-1"),
                objects: vec!["c/s-1/shard-0.rdb", "c/s-1/shard-1.rdb"],
            },
            Request::RestoreStart {
                id: "r-2",
                snapshot: None,
                objects: vec!["dump.rdb"],
            },
            Request::RestoreStatus,
        ]
    }
}

/// A slot range from its text (the examples' ranges are valid).
fn slot_range(s: &str) -> SlotRange {
    s.parse().expect("a valid slot range")
}

impl Request<'_, [u8]> {
    /// The request as arguments.
    pub fn args(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.encode(|a| out.push(a.to_vec()));
        out
    }

    /// The request as a command to send.
    pub fn cmd(&self) -> redis::Cmd {
        let mut cmd = redis::Cmd::new();
        self.encode(|a| {
            cmd.arg(a);
        });
        cmd
    }
}

impl<'a, P: AsRef<[u8]>> Request<'a, P> {
    /// Parses a whole command (`TIDECACHE` included), borrowing from it.
    /// Arguments are checked in order, so the first bad one is the one
    /// reported, as the node always reported it.
    pub fn parse(args: &'a [P]) -> Result<Self, ParseError> {
        let word = |i: usize| args.get(i).map(AsRef::as_ref);
        if !word(0).is_some_and(|w| w.eq_ignore_ascii_case(COMMAND.as_bytes())) {
            return Err(ParseError::Unknown);
        }
        let group = word(1).and_then(Group::of).ok_or(ParseError::Unknown)?;
        let n = args.len();
        if group == Group::SlotStats {
            return match n {
                2 => Ok(Request::SlotStats { load: false }),
                3 if word(2).is_some_and(|w| w.eq_ignore_ascii_case(b"LOAD")) => {
                    Ok(Request::SlotStats { load: true })
                }
                3 => Err(ParseError::Syntax(group)),
                _ => Err(ParseError::Arity(group)),
            };
        }
        let action = word(2).ok_or(ParseError::Arity(group))?;
        let is = |w: &str| action.eq_ignore_ascii_case(w.as_bytes());
        let syntax = ParseError::Syntax(group);
        let text = |i: usize| std::str::from_utf8(args[i].as_ref()).map_err(|_| syntax.clone());
        let id = |i: usize| {
            let id = args[i].as_ref();
            if valid_id(id) {
                text(i)
            } else {
                Err(ParseError::InvalidId)
            }
        };
        let integer = |i: usize| strict_u64(args[i].as_ref()).ok_or(ParseError::NotInteger);
        let epoch = |i: usize| {
            std::str::from_utf8(args[i].as_ref())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|&e| e > 0)
                .ok_or(ParseError::InvalidEpoch)
        };
        let ranges = |from: usize| {
            args[from..]
                .iter()
                .map(|a| {
                    std::str::from_utf8(a.as_ref())
                        .map_err(|_| ParseError::InvalidRangeText)?
                        .parse::<SlotRange>()
                        .map_err(ParseError::InvalidRange)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        match group {
            Group::Topology if is("SET") && n == 4 => {
                Ok(Request::TopologySet { document: &args[3] })
            }
            Group::Topology if is("GET") && n == 3 => Ok(Request::TopologyGet),
            Group::Topology if is("EPOCH") && n == 3 => Ok(Request::TopologyEpoch),
            Group::Migrate if is("START") && n >= 8 => Ok(Request::MigrateStart {
                id: id(3)?,
                host: text(4)?,
                port: std::str::from_utf8(args[5].as_ref())
                    .ok()
                    .and_then(|p| p.parse::<u16>().ok())
                    .filter(|&p| p > 0)
                    .ok_or(ParseError::InvalidPort)?,
                epoch: epoch(6)?,
                ranges: ranges(7)?,
            }),
            Group::Migrate if is("STATUS") && n <= 4 => Ok(Request::MigrateStatus {
                id: if n == 4 { Some(text(3)?) } else { None },
            }),
            Group::Migrate if is("CANCEL") && n == 4 => Ok(Request::MigrateCancel { id: text(3)? }),
            Group::Import if is("BEGIN") && n >= 6 => Ok(Request::ImportBegin {
                id: id(3)?,
                epoch: epoch(4)?,
                ranges: ranges(5)?,
            }),
            Group::Import if is("APPLY") && n == 5 => Ok(Request::ImportApply {
                id: text(3)?,
                batch: &args[4],
            }),
            Group::Import if is("COMMIT") && n == 4 => Ok(Request::ImportCommit { id: text(3)? }),
            Group::Import if is("ABORT") && n == 4 => Ok(Request::ImportAbort { id: text(3)? }),
            Group::Import if is("STATUS") && n == 4 => Ok(Request::ImportStatus { id: text(3)? }),
            Group::Repl if is("PSYNC") && n == 8 => {
                let port = strict_u64(args[5].as_ref())
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|&p| p > 0)
                    .ok_or(ParseError::InvalidReplicaPort)?;
                let offset = integer(7)?;
                Ok(Request::ReplPsync {
                    replica: text(3)?,
                    host: text(4)?,
                    port,
                    replid: text(6)?,
                    offset,
                })
            }
            Group::Repl if is("SNAPSHOT") && n == 4 => {
                Ok(Request::ReplSnapshot { sync: integer(3)? })
            }
            Group::Repl if is("FETCH") && n == 6 => {
                let offset = integer(5)?;
                Ok(Request::ReplFetch {
                    replica: text(3)?,
                    replid: text(4)?,
                    offset,
                })
            }
            Group::Lease => {
                // The epoch is read first, whatever the action.
                if n < 4 {
                    return Err(ParseError::Arity(group));
                }
                let epoch = integer(3)?;
                if is("RENEW") && n <= 5 {
                    let clock = if n == 5 { Some(integer(4)?) } else { None };
                    Ok(Request::LeaseRenew { epoch, clock })
                } else if n > 4 {
                    Err(ParseError::Arity(group))
                } else if is("WAIVE") {
                    Ok(Request::LeaseWaive { epoch })
                } else if is("FENCE") {
                    Ok(Request::LeaseFence { epoch })
                } else {
                    Err(syntax)
                }
            }
            Group::Snapshot if is("START") && n == 5 => Ok(Request::SnapshotStart {
                id: id(3)?,
                object: text(4)?,
            }),
            Group::Snapshot if is("STATUS") && n == 3 => Ok(Request::SnapshotStatus),
            Group::Restore if is("START") && n >= 6 => Ok(Request::RestoreStart {
                id: id(3)?,
                snapshot: match text(4)? {
                    "-" => None,
                    s => Some(s),
                },
                objects: (5..n).map(text).collect::<Result<_, _>>()?,
            }),
            Group::Restore if is("STATUS") && n == 3 => Ok(Request::RestoreStatus),
            _ => Err(syntax),
        }
    }
}

/// A decimal u64 written as Redis writes integers: no sign, no spaces, no
/// leading zero (Redis's `string2ll`, then not negative).
fn strict_u64(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || arg.len() > 20 || (arg.len() > 1 && arg[0] == b'0') {
        return None;
    }
    if !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(arg).ok()?.parse().ok()?;
    // What string2ll takes: an i64.
    i64::try_from(n).ok().map(|_| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_round_trips() {
        // Payloads that are not text, with every byte value.
        let document = br#"{"epoch":1}"#.to_vec();
        let batch: Vec<u8> = (0..=255).collect();
        let requests = Request::examples(&document, &batch);
        let groups: std::collections::HashSet<_> = requests.iter().map(Request::group).collect();
        assert_eq!(groups.len(), Group::ALL.len());
        for request in &requests {
            let args = request.args();
            assert_eq!(args[0], COMMAND.as_bytes());
            assert_eq!(args[1], request.group().word().as_bytes());
            let parsed = Request::parse(&args).unwrap();
            assert_eq!(&parsed.as_bytes(), request, "{args:?}");
            // The payload is the caller's argument, not a copy.
            if let Request::ImportApply { batch, .. } = &parsed {
                assert!(std::ptr::eq(*batch, &args[4]));
            }
            // Borrowed slices parse the same; words in any case.
            let mut slices: Vec<Vec<u8>> = args.clone();
            for w in slices.iter_mut().take(3) {
                if w.iter().all(u8::is_ascii_alphabetic) {
                    w.make_ascii_lowercase();
                }
            }
            let slices: Vec<&[u8]> = slices.iter().map(Vec::as_slice).collect();
            assert_eq!(&Request::parse(&slices).unwrap().as_bytes(), request);
            // The command the client sends is the same arguments.
            let packed = request.cmd().get_packed_command();
            let mut expected = format!("*{}\r\n", args.len()).into_bytes();
            for a in &args {
                expected.extend(format!("${}\r\n", a.len()).bytes());
                expected.extend(a);
                expected.extend(b"\r\n");
            }
            assert_eq!(packed, expected);
        }
    }

    fn refusal(words: &str) -> ParseError {
        let args: Vec<&[u8]> = words.split(' ').map(str::as_bytes).collect();
        Request::parse(&args).unwrap_err()
    }

    #[test]
    fn malformed_requests_are_refused_with_the_nodes_errors() {
        use ParseError::*;
        let cases: &[(&str, ParseError)] = &[
            ("GET k", Unknown),
            ("TIDECACHE NOPE", Unknown),
            ("TIDECACHE SLOTSTATS x", Syntax(Group::SlotStats)),
            ("TIDECACHE SLOTSTATS LOAD x", Arity(Group::SlotStats)),
            ("TIDECACHE TOPOLOGY", Arity(Group::Topology)),
            ("TIDECACHE TOPOLOGY PUT x", Syntax(Group::Topology)),
            ("TIDECACHE TOPOLOGY GET x", Syntax(Group::Topology)),
            ("TIDECACHE MIGRATE STATUS a b", Syntax(Group::Migrate)),
            ("TIDECACHE MIGRATE START m h 1 1", Syntax(Group::Migrate)),
            ("TIDECACHE MIGRATE START m\u{1} h 1 1 0", InvalidId),
            ("TIDECACHE MIGRATE START m h 0 1 0", InvalidPort),
            ("TIDECACHE MIGRATE START m h 1 0 0", InvalidEpoch),
            (
                "TIDECACHE MIGRATE START m h 1 1 0-99999",
                InvalidRange(range_error("0-99999")),
            ),
            ("TIDECACHE IMPORT BEGIN m x 0", InvalidEpoch),
            ("TIDECACHE IMPORT APPLY m", Syntax(Group::Import)),
            ("TIDECACHE IMPORT END m", Syntax(Group::Import)),
            ("TIDECACHE REPL PSYNC a h 70000 r 0", InvalidReplicaPort),
            ("TIDECACHE REPL PSYNC a h 1 r -1", NotInteger),
            ("TIDECACHE REPL SNAPSHOT 01", NotInteger),
            ("TIDECACHE REPL FETCH a r", Syntax(Group::Repl)),
            ("TIDECACHE LEASE RENEW", Arity(Group::Lease)),
            ("TIDECACHE LEASE RENEW +1", NotInteger),
            ("TIDECACHE LEASE RENEW 1 2 3", Arity(Group::Lease)),
            ("TIDECACHE LEASE WAIVE 1 5", Arity(Group::Lease)),
            ("TIDECACHE LEASE KEEP 1", Syntax(Group::Lease)),
        ];
        for (words, error) in cases {
            assert_eq!(refusal(words), *error, "{words}");
        }
        assert_eq!(
            Arity(Group::Lease).to_string(),
            "ERR wrong number of arguments for 'tidecache|lease' command"
        );
        assert_eq!(
            Syntax(Group::Topology).to_string(),
            "ERR syntax error: expected TIDECACHE TOPOLOGY SET <json> | GET | EPOCH"
        );
        assert_eq!(
            InvalidId.to_string(),
            "ERR invalid migration id: 1 to 64 printable ASCII characters"
        );
    }

    fn range_error(s: &str) -> crate::slot::ParseSlotRangeError {
        s.parse::<SlotRange>().unwrap_err()
    }

    #[test]
    fn every_state_round_trips_and_unknown_words_are_errors() {
        for s in MigrationState::ALL {
            assert_eq!(s.as_str().parse::<MigrationState>(), Ok(*s));
            assert_eq!(s.to_string(), s.as_str());
        }
        for s in ImportState::ALL {
            assert_eq!(s.as_str().parse::<ImportState>(), Ok(*s));
            assert_eq!(s.to_string(), s.as_str());
        }
        let words: Vec<_> = MigrationState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(words, ["copying", "handoff", "done", "failed", "cancelled"]);
        let words: Vec<_> = ImportState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(words, ["importing", "committed", "aborted", "unknown"]);
        for bad in ["", "Copying", "handing-off", "cancelled "] {
            assert!(bad.parse::<MigrationState>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "gone".parse::<ImportState>().unwrap_err().to_string(),
            "unknown import state \"gone\""
        );
        assert!(!MigrationState::Handoff.is_over() && MigrationState::Failed.is_over());
    }

    #[test]
    fn a_status_is_read_from_its_fields() {
        let fields = [("state", "failed"), ("error", "boom"), ("commit_sent", "0")];
        let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
        assert_eq!(
            MigrationStatus::from_fields(get),
            Ok(MigrationStatus {
                state: MigrationState::Failed,
                error: "boom".into(),
                commit_sent: false,
            })
        );
        // An older node that does not say: taken to have sent it.
        let old = MigrationStatus::from_fields(|k| (k == "state").then_some("done")).unwrap();
        assert!(old.commit_sent);
        assert!(MigrationStatus::from_fields(|_| None).is_err());
    }
}
