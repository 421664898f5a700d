//! The pieces that the data node and the operator must agree on, kept in one
//! place so that they cannot drift apart.
//!
//! # Layout
//!
//! - [`slot`]: Redis Cluster hash slots — CRC16 with hash tags, slot ranges and
//!   their textual form (`"0-5460"`), and the even split of the 16384 slots.
//! - [`document`]: the versioned topology document the operator pushes to every
//!   node (shards, slot ranges, primary and replicas, an epoch that only grows),
//!   and the node identities derived from pod names.
//! - [`protocol`]: the admin protocol itself — the `TIDECACHE` requests as
//!   one typed vocabulary (encoded by every sender, parsed by the node's
//!   handlers), the migration and import states, the INFO fields read
//!   across the boundary.
//! - [`admin`]: the client the operator uses to talk to nodes over RESP with the
//!   admin user (install a topology, read it back), built on [`protocol`].

pub mod admin;
pub mod document;
pub mod protocol;
pub mod slot;

pub use document::{NodeAddr, Shard, Topology, TopologyError, node_id_for};
pub use slot::{SLOT_COUNT, SlotRange, SlotSet, key_slot};
