//! The node's view of the cluster: which slots it serves and who serves the
//! others.
//!
//! In standalone mode the node owns all 16384 slots and describes itself as a
//! one-shard cluster (so cluster-aware clients work against a lone node). In
//! cluster mode it serves nothing until the operator installs a topology
//! document, then answers `MOVED` for slots another shard owns.

use tidecache_topology::document::Role;
use tidecache_topology::{NodeAddr, SLOT_COUNT, Shard, SlotRange, Topology, TopologyError};

/// How a node was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

/// Why a keyed command cannot run here, with Redis's reply for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    Moved { slot: u16, addr: String },
    CrossSlot,
    Unserved,
    Down,
}

impl Redirect {
    pub fn message(&self) -> String {
        match self {
            Redirect::Moved { slot, addr } => format!("MOVED {slot} {addr}"),
            Redirect::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot".into(),
            Redirect::Unserved => "CLUSTERDOWN Hash slot not served".into(),
            Redirect::Down => "CLUSTERDOWN The cluster is down".into(),
        }
    }
}

/// Why a topology was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallError {
    #[error("STALE topology epoch {offered} is older than the installed epoch {installed}")]
    Older { offered: u64, installed: u64 },
    #[error("STALE topology epoch {0} is already installed with a different layout")]
    Conflict(u64),
    #[error("ERR {0}")]
    Invalid(#[from] TopologyError),
}

pub struct ClusterState {
    mode: Mode,
    me: NodeAddr,
    topology: Option<Topology>,
    /// Shard index owning each slot, from the installed document.
    owners: Vec<Option<u16>>,
    /// Where this node sits in the installed document.
    place: Option<(usize, Role)>,
}

impl ClusterState {
    pub fn new(mode: Mode, me: NodeAddr) -> Self {
        let mut state = Self {
            mode,
            me,
            topology: None,
            owners: vec![None; usize::from(SLOT_COUNT)],
            place: None,
        };
        if mode == Mode::Standalone {
            let doc = state.standalone_topology();
            state.adopt(doc).expect("a one-shard document is valid");
        }
        state
    }

    fn standalone_topology(&self) -> Topology {
        Topology {
            epoch: 0,
            shards: vec![Shard {
                name: "standalone".into(),
                slots: vec![SlotRange {
                    start: 0,
                    end: SLOT_COUNT - 1,
                }],
                primary: self.me.clone(),
                replicas: vec![],
            }],
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn me(&self) -> &NodeAddr {
        &self.me
    }

    pub fn topology(&self) -> Option<&Topology> {
        self.topology.as_ref()
    }

    pub fn epoch(&self) -> u64 {
        self.topology.as_ref().map_or(0, |t| t.epoch)
    }

    /// Whether this node has a topology to serve from (readiness).
    pub fn is_configured(&self) -> bool {
        self.topology.is_some()
    }

    pub fn role(&self) -> Option<Role> {
        self.place.map(|(_, role)| role)
    }

    /// Installs a document from the operator, enforcing epoch order.
    pub fn install(&mut self, doc: Topology) -> Result<bool, InstallError> {
        if self.mode == Mode::Standalone {
            return Err(InstallError::Invalid(TopologyError::Malformed(
                "this node runs standalone; start it with --cluster-enabled yes to manage it"
                    .into(),
            )));
        }
        if let Some(cur) = &self.topology {
            if doc.epoch < cur.epoch {
                return Err(InstallError::Older {
                    offered: doc.epoch,
                    installed: cur.epoch,
                });
            }
            if doc.epoch == cur.epoch {
                return if doc.same_layout(cur) {
                    Ok(false)
                } else {
                    Err(InstallError::Conflict(doc.epoch))
                };
            }
        }
        self.adopt(doc)?;
        Ok(true)
    }

    fn adopt(&mut self, doc: Topology) -> Result<(), TopologyError> {
        self.owners = doc.slot_owners()?;
        self.place = doc.locate(&self.me.id);
        self.topology = Some(doc);
        Ok(())
    }

    /// Checks that this node may serve a command touching `slots` (the slot
    /// of each key, in order). `None` means go ahead.
    pub fn route(&self, mut slots: impl Iterator<Item = u16>) -> Option<Redirect> {
        if self.mode == Mode::Standalone {
            return None;
        }
        let first = slots.next()?;
        if slots.any(|s| s != first) {
            return Some(Redirect::CrossSlot);
        }
        let Some(doc) = &self.topology else {
            return Some(Redirect::Down);
        };
        let Some(owner) = self.owners[usize::from(first)] else {
            return Some(Redirect::Unserved);
        };
        match self.place {
            Some((mine, Role::Primary)) if mine == usize::from(owner) => None,
            _ => {
                let primary = &doc.shards[usize::from(owner)].primary;
                Some(Redirect::Moved {
                    slot: first,
                    addr: format!("{}:{}", primary.host, primary.port),
                })
            }
        }
    }

    /// The slots this node serves as primary.
    pub fn owned_slots(&self) -> Vec<SlotRange> {
        match (&self.topology, self.place) {
            (Some(doc), Some((i, _))) => doc.shards[i].slots.clone(),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tidecache_topology::node_id_for;
    use tidecache_topology::slot::even_split;

    fn addr(name: &str, port: u16) -> NodeAddr {
        NodeAddr {
            id: node_id_for(name),
            host: "10.0.0.1".into(),
            port,
        }
    }

    fn doc(epoch: u64) -> Topology {
        Topology {
            epoch,
            shards: even_split(2)
                .into_iter()
                .enumerate()
                .map(|(i, r)| Shard {
                    name: format!("s{i}"),
                    slots: vec![r],
                    primary: addr(&format!("p{i}"), 7000 + i as u16),
                    replicas: vec![addr(&format!("r{i}"), 7100 + i as u16)],
                })
                .collect(),
        }
    }

    #[test]
    fn standalone_serves_everything() {
        let st = ClusterState::new(Mode::Standalone, addr("me", 6379));
        assert_eq!(st.route([1u16, 16000].into_iter()), None);
        assert_eq!(
            st.owned_slots(),
            vec![SlotRange {
                start: 0,
                end: 16383
            }]
        );
    }

    #[test]
    fn cluster_mode_is_down_until_configured() {
        let mut st = ClusterState::new(Mode::Cluster, addr("p0", 7000));
        assert_eq!(st.route([5u16].into_iter()), Some(Redirect::Down));
        assert!(st.install(doc(3)).unwrap());
        assert_eq!(st.route([5u16].into_iter()), None);
        assert_eq!(
            st.route([9000u16].into_iter()),
            Some(Redirect::Moved {
                slot: 9000,
                addr: "10.0.0.1:7001".into()
            })
        );
        assert_eq!(
            st.route([5u16, 9000].into_iter()),
            Some(Redirect::CrossSlot)
        );
        assert_eq!(st.route(std::iter::empty()), None);
    }

    #[test]
    fn replicas_redirect_to_their_primary() {
        let mut st = ClusterState::new(Mode::Cluster, addr("r0", 7100));
        st.install(doc(1)).unwrap();
        assert_eq!(
            st.route([5u16].into_iter()),
            Some(Redirect::Moved {
                slot: 5,
                addr: "10.0.0.1:7000".into()
            })
        );
    }

    #[test]
    fn epochs_only_move_forward() {
        let mut st = ClusterState::new(Mode::Cluster, addr("p0", 7000));
        st.install(doc(5)).unwrap();
        assert!(
            !st.install(doc(5)).unwrap(),
            "same document again is a no-op"
        );
        assert_eq!(
            st.install(doc(4)),
            Err(InstallError::Older {
                offered: 4,
                installed: 5
            })
        );
        let mut other = doc(5);
        other.shards.pop();
        assert_eq!(st.install(other), Err(InstallError::Conflict(5)));
        let mut next = doc(6);
        next.shards[0].slots = vec![SlotRange { start: 0, end: 99 }];
        st.install(next).unwrap();
        assert_eq!(st.route([100u16].into_iter()), Some(Redirect::Unserved));
        assert_eq!(st.epoch(), 6);
    }
}
