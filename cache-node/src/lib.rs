//! Tidecache's data node: a Redis-compatible in-memory cache server.
//!
//! # Layout
//!
//! Dependencies point one way (`tests/layering.rs` ranks the modules and
//! keeps it so): the node starts the connection loop, which uses the
//! commands, which use the node's state, which holds the keyspace.
//! Replication and migration sit below the state: their tasks are handed
//! the few shared cells they use (`replication::Handles`,
//! `migration::Handles`), never the state itself. This file holds only
//! module declarations and the re-export of [`Node`].
//!
//! - [`node`]: a running node: binds the ports and starts the tasks.
//! - [`config`]: command-line flags (Redis's names) and environment.
//! - [`state`]: what every connection, command and task shares (`Shared`:
//!   configuration, keyspace, topology, clients, pub/sub, replication and
//!   migration state, counters) and the rules that go with it.
//! - [`server`]: the accept loop and one task per connection; each reads
//!   requests, runs them under one keyspace lock per batch and writes the
//!   replies with one syscall; commands that must wait (blocking pops,
//!   `CLIENT PAUSE`) hold the connection's later input back until they ran.
//! - [`client`]: a connection's state (transaction, watches, subscriptions,
//!   reply mode) and the handle other connections see (`CLIENT LIST`/`KILL`,
//!   pub/sub delivery with output buffer limits).
//! - [`pubsub`]: who subscribes to which channel, pattern or shard channel.
//! - [`parse`]: decodes requests (RESP arrays and inline commands) from a
//!   connection's buffer, with limits on sizes and counts.
//! - [`frame`]: replies and their RESP2/RESP3 encodings.
//! - [`cmd`]: the command table and the one dispatcher that runs the generic
//!   checks (arity, auth, slot ownership, memory) before a handler;
//!   `cmd::args` reads arguments, `cmd::config` is CONFIG's parameter table.
//! - [`glob`]: Redis glob patterns (KEYS and, later, SCAN MATCH, PSUBSCRIBE).
//! - [`db`]: the keyspace, one hash table per slot holding one allocation
//!   per key (key, short value, deadline, access data: `db::record`), with
//!   lazy and active expiry, uniform key sampling, consistent copy-on-write
//!   captures of slots for snapshots, replication and migration
//!   (`db::capture`), and one hook on every change that breaks `WATCH`es
//!   and wakes clients blocked on the key; `db::wire` is the change stream
//!   migration and replication carry, `db::room` evicts until a write fits.
//! - [`evict`]: `maxmemory` policies, per-key LRU/LFU data and the choice of
//!   victims, pure functions the keyspace applies; [`memory`]: used memory, from jemalloc's statistics when the
//!   binary runs on it, from the keyspace's accounting otherwise.
//! - [`types`]: collection values (hashes, lists, sets) with O(1) memory accounting.
//! - [`hll`]: HyperLogLog values, byte for byte Redis's, for the PF commands.
//! - [`cluster`]: the node's view of the topology the operator installs:
//!   which slots it serves, `MOVED`/`CROSSSLOT`/`CLUSTERDOWN` for the others.
//! - [`migration`]: atomic slot migration between nodes: the source's task
//!   streaming a capture and every later change, the handoff under a
//!   brief write freeze.
//! - [`replication`]: replicas following a primary; `replication::role` is
//!   the part the node's state holds (role, write lease, stream, link).
//! - [`rdb`]: Redis's RDB format, written and read by our own code
//!   (snapshots, `SAVE` files, `DUMP`/`RESTORE` payloads); `rdb::packed`
//!   decodes the packed encodings Redis's files carry.
//! - [`snapshot`]: snapshots through a fork-less capture, stepped under
//!   the lock and written from a thread of their own; `SAVE`/`BGSAVE`'s
//!   file (`snapshot::save`) and RDB loading (`snapshot::load`).
//! - [`tls`]: the `--tls-*` files loaded into a rustls acceptor at start;
//!   the TLS port's connections then run the same loop as plain ones.
//! - [`slowlog`]: the last commands slower than a threshold (`SLOWLOG`).
//! - [`http`]: liveness, readiness and Prometheus metrics over HTTP.
//! - [`clock`]: Unix time driven by tokio's clock, so tests can pause time.
//! - [`ident`]: the Redis version the node follows, random ids.

pub mod background;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod cmd;
pub mod config;
pub mod cpu;
pub mod db;
pub mod evict;
pub mod frame;
pub mod glob;
pub mod hll;
pub mod http;
pub mod ident;
pub mod memory;
pub mod migration;
pub mod node;
pub mod parse;
pub mod pubsub;
pub mod rdb;
pub mod replication;
pub mod server;
pub mod slowlog;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod types;

pub use node::Node;
