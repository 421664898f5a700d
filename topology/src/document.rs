//! The topology document: who owns which slots, under which epoch.
//!
//! The operator is the only author. It keeps the document in the
//! `CacheCluster` status and pushes it to every node; a node installs a
//! document only if its epoch is newer than (or, with identical content, equal
//! to) the one it has, so a delayed push from an old operator can never undo a
//! newer decision.

use serde::{Deserialize, Serialize};

use crate::slot::{SLOT_COUNT, SlotRange};

/// A versioned description of the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Topology {
    /// Grows with every change; nodes refuse older documents.
    pub epoch: u64,
    pub shards: Vec<Shard>,
}

/// One shard: a primary, its replicas and the slots they serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub name: String,
    pub slots: Vec<SlotRange>,
    pub primary: NodeAddr,
    #[serde(default)]
    pub replicas: Vec<NodeAddr>,
}

/// A node as clients and peers reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddr {
    /// 40 hex characters, as Redis Cluster node ids are; see [`node_id_for`].
    pub id: String,
    pub host: String,
    pub port: u16,
}

/// Why a document is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("slot {slot} is assigned to both shard {first:?} and shard {second:?}")]
    SlotOwnedTwice {
        slot: u16,
        first: String,
        second: String,
    },
    #[error("node id {0:?} appears more than once")]
    DuplicateNode(String),
    #[error("node id {0:?} is not 40 lowercase hex characters")]
    BadNodeId(String),
    #[error("shard name {0:?} appears more than once")]
    DuplicateShard(String),
    #[error("invalid topology document: {0}")]
    Malformed(String),
}

/// Where a node sits in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

impl Topology {
    /// Parses and validates a document from its JSON form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TopologyError> {
        let doc: Topology =
            serde_json::from_slice(bytes).map_err(|e| TopologyError::Malformed(e.to_string()))?;
        doc.slot_owners()?;
        Ok(doc)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a topology always serialises")
    }

    /// For each slot, the index of the shard that owns it, checking on the way
    /// that no slot is owned twice and no node or shard appears twice.
    pub fn slot_owners(&self) -> Result<Vec<Option<u16>>, TopologyError> {
        let mut owners: Vec<Option<u16>> = vec![None; usize::from(SLOT_COUNT)];
        let mut ids = std::collections::HashSet::new();
        let mut names = std::collections::HashSet::new();
        for (index, shard) in self.shards.iter().enumerate() {
            if !names.insert(shard.name.as_str()) {
                return Err(TopologyError::DuplicateShard(shard.name.clone()));
            }
            for node in std::iter::once(&shard.primary).chain(&shard.replicas) {
                if node.id.len() != 40
                    || !node
                        .id
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    return Err(TopologyError::BadNodeId(node.id.clone()));
                }
                if !ids.insert(node.id.as_str()) {
                    return Err(TopologyError::DuplicateNode(node.id.clone()));
                }
            }
            let index = u16::try_from(index)
                .map_err(|_| TopologyError::Malformed("too many shards".into()))?;
            for range in &shard.slots {
                for slot in range.slots() {
                    let owner = &mut owners[usize::from(slot)];
                    if let Some(first) = *owner {
                        return Err(TopologyError::SlotOwnedTwice {
                            slot,
                            first: self.shards[usize::from(first)].name.clone(),
                            second: shard.name.clone(),
                        });
                    }
                    *owner = Some(index);
                }
            }
        }
        Ok(owners)
    }

    /// The number of slots some shard owns.
    pub fn assigned_slots(&self) -> usize {
        self.shards
            .iter()
            .flat_map(|s| &s.slots)
            .map(SlotRange::len)
            .sum()
    }

    /// The shard and role of the node with this id, if the document names it.
    pub fn locate(&self, node_id: &str) -> Option<(usize, Role)> {
        self.shards.iter().enumerate().find_map(|(i, s)| {
            if s.primary.id == node_id {
                Some((i, Role::Primary))
            } else if s.replicas.iter().any(|r| r.id == node_id) {
                Some((i, Role::Replica))
            } else {
                None
            }
        })
    }

    /// True when both documents describe the same cluster, epochs aside.
    pub fn same_layout(&self, other: &Topology) -> bool {
        self.shards == other.shards
    }
}

/// The node id of a named node (a pod name under the operator).
///
/// Derived rather than generated so that a restarted pod keeps its id and the
/// operator can write the document without first asking every node who it is.
/// 160 bits from four seeded FNV-1a passes: not cryptographic, only distinct.
pub fn node_id_for(name: &str) -> String {
    let mut out = String::with_capacity(40);
    for seed in 0u64..3 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for &b in name.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A final avalanche so that names differing in their last byte differ everywhere.
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::slot::even_split;

    fn node(name: &str) -> NodeAddr {
        NodeAddr {
            id: node_id_for(name),
            host: "10.0.0.1".into(),
            port: 6379,
        }
    }

    fn three_shards() -> Topology {
        Topology {
            epoch: 1,
            shards: even_split(3)
                .into_iter()
                .enumerate()
                .map(|(i, r)| Shard {
                    name: format!("c-{i}"),
                    slots: vec![r],
                    primary: node(&format!("c-{i}-0")),
                    replicas: vec![node(&format!("c-{i}-1"))],
                })
                .collect(),
        }
    }

    #[test]
    fn a_valid_document_round_trips_through_json() {
        let doc = three_shards();
        let parsed = Topology::from_json(doc.to_json().as_bytes()).unwrap();
        assert_eq!(parsed, doc);
        assert_eq!(parsed.assigned_slots(), 16384);
        assert_eq!(
            parsed.locate(&node_id_for("c-1-1")),
            Some((1, Role::Replica))
        );
        assert_eq!(
            parsed.locate(&node_id_for("c-2-0")),
            Some((2, Role::Primary))
        );
        assert_eq!(parsed.locate(&node_id_for("nobody")), None);
    }

    #[test]
    fn overlapping_slots_are_refused() {
        let mut doc = three_shards();
        doc.shards[1].slots.push("100-200".parse().unwrap());
        assert!(matches!(
            doc.slot_owners(),
            Err(TopologyError::SlotOwnedTwice { slot: 100, .. })
        ));
    }

    #[test]
    fn duplicate_nodes_and_bad_ids_are_refused() {
        let mut doc = three_shards();
        doc.shards[2].replicas.push(node("c-0-0"));
        assert!(matches!(
            doc.slot_owners(),
            Err(TopologyError::DuplicateNode(_))
        ));
        let mut doc = three_shards();
        doc.shards[0].primary.id = "xyz".into();
        assert!(matches!(
            doc.slot_owners(),
            Err(TopologyError::BadNodeId(_))
        ));
        assert!(Topology::from_json(b"{\"epoch\":1,\"shards\":[{}]}").is_err());
        assert!(Topology::from_json(b"not json").is_err());
    }

    #[test]
    fn node_ids_are_stable_hex_and_distinct() {
        let a = node_id_for("sessions-0-0");
        assert_eq!(a, node_id_for("sessions-0-0"));
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        let ids: std::collections::HashSet<_> = (0..2000)
            .map(|i| node_id_for(&format!("sessions-{}-{}", i / 6, i % 6)))
            .collect();
        assert_eq!(ids.len(), 2000);
    }
}
