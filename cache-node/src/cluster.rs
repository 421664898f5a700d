//! The node's view of the cluster: which slots it serves and who serves the
//! others.
//!
//! In standalone mode the node owns all 16384 slots and describes itself as a
//! one-shard cluster (so cluster-aware clients work against a lone node). In
//! cluster mode it serves nothing until the operator installs a topology
//! document, then answers `MOVED` for slots another shard owns.

use tidecache_topology::document::Role;
use tidecache_topology::{
    NodeAddr, SLOT_COUNT, Shard, SlotRange, SlotSet, Topology, TopologyError,
};

/// How a node was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Standalone,
    Cluster,
}

/// Why a keyed command cannot run here, with Redis's reply for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    Moved {
        slot: u16,
        addr: String,
    },
    CrossSlot,
    Unserved,
    Down,
    /// The slot is being handed to another node: the write waits until
    /// the handoff ends (milliseconds), then routes again.
    Frozen,
}

impl Redirect {
    pub fn message(&self) -> String {
        match self {
            Redirect::Moved { slot, addr } => format!("MOVED {slot} {addr}"),
            Redirect::CrossSlot => "CROSSSLOT Keys in request don't hash to the same slot".into(),
            Redirect::Unserved => "CLUSTERDOWN Hash slot not served".into(),
            Redirect::Down => "CLUSTERDOWN The cluster is down".into(),
            Redirect::Frozen => "TRYAGAIN Slot is being handed to another node".into(),
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
    /// Slots whose owner a completed migration changed under an epoch newer
    /// than the document's, until the operator installs a document at
    /// least that new (which then says the same).
    handoffs: Vec<Handoff>,
    /// Slots whose writes wait while a migration hands them over, with the
    /// epoch of that handoff: a document that new settles them too.
    freezes: Vec<Freeze>,
}

/// Slots whose commands wait while a handoff of epoch `epoch` is decided.
#[derive(Debug, Clone)]
struct Freeze {
    epoch: u64,
    slots: SlotSet,
    /// Reads wait too: the handoff's outcome is unknown, and the new owner
    /// may already be taking writes.
    reads: bool,
    /// Lifted by itself then, if no document settled it before.
    until: Option<std::time::Instant>,
}

impl Freeze {
    fn holds(&self) -> bool {
        self.until.is_none_or(|u| std::time::Instant::now() < u)
    }
}

/// A completed migration's change of owner.
#[derive(Debug, Clone)]
struct Handoff {
    epoch: u64,
    slots: SlotSet,
    /// The new owner; `None` for this node.
    to: Option<NodeAddr>,
}

impl ClusterState {
    pub fn new(mode: Mode, me: NodeAddr) -> Self {
        let mut state = Self {
            mode,
            me,
            topology: None,
            owners: vec![None; usize::from(SLOT_COUNT)],
            place: None,
            handoffs: Vec::new(),
            freezes: Vec::new(),
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

    /// The document's epoch (0 when there is none).
    pub fn epoch(&self) -> u64 {
        self.topology.as_ref().map_or(0, |t| t.epoch)
    }

    /// The newest epoch this node knows: the document's or a handoff's.
    pub fn newest_epoch(&self) -> u64 {
        self.handoffs
            .iter()
            .map(|h| h.epoch)
            .fold(self.epoch(), u64::max)
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
        // A document as new as a handoff is the operator's word on those
        // slots, after it learnt how the migration ended.
        self.handoffs.retain(|h| h.epoch > doc.epoch);
        self.freezes.retain(|f| f.epoch > doc.epoch);
        self.topology = Some(doc);
        Ok(())
    }

    /// Records that `slots` now belong to `to` (`None`: to this node) under
    /// `epoch`, which must be newer than every epoch this node knows.
    pub fn hand_off(
        &mut self,
        slots: SlotSet,
        epoch: u64,
        to: Option<NodeAddr>,
    ) -> Result<(), InstallError> {
        let newest = self.newest_epoch();
        if epoch <= newest {
            return Err(InstallError::Older {
                offered: epoch,
                installed: newest,
            });
        }
        self.handoffs.push(Handoff { epoch, slots, to });
        Ok(())
    }

    /// Holds writes to `slots` back for the handoff of epoch `epoch`.
    pub fn freeze(&mut self, epoch: u64, slots: &SlotSet) {
        self.freezes.push(Freeze {
            epoch,
            slots: slots.clone(),
            reads: false,
            until: None,
        });
    }

    /// [`ClusterState::freeze`] for at most `hold`: a switchover's fence,
    /// which the operator lifts with a newer document, lifts itself should
    /// the operator stop first (the write lease still guards the node).
    pub fn freeze_for(&mut self, epoch: u64, slots: &SlotSet, hold: std::time::Duration) {
        self.freezes.push(Freeze {
            epoch,
            slots: slots.clone(),
            reads: false,
            until: Some(std::time::Instant::now() + hold),
        });
    }

    /// Lets the writes held back for the handoff of epoch `epoch` go.
    pub fn thaw(&mut self, epoch: u64) {
        self.freezes.retain(|f| f.epoch != epoch);
    }

    /// Holds reads of the handoff of epoch `epoch` back too, until a
    /// document settles it: its outcome could not be learnt.
    pub fn freeze_reads(&mut self, epoch: u64) {
        for f in self.freezes.iter_mut().filter(|f| f.epoch == epoch) {
            f.reads = true;
        }
    }

    /// Whether any write is held back.
    pub fn any_frozen(&self) -> bool {
        self.freezes.iter().any(Freeze::holds)
    }

    /// Whether this node, as primary, serves `slot` now (document and
    /// handoffs together).
    pub fn serves(&self, slot: u16) -> bool {
        if self.mode == Mode::Standalone {
            return true;
        }
        if let Some(h) = self.handoff_of(slot) {
            return h.to.is_none();
        }
        matches!((self.place, self.owners[usize::from(slot)]),
            (Some((mine, Role::Primary)), Some(owner)) if mine == usize::from(owner))
    }

    /// The newest handoff covering `slot`.
    fn handoff_of(&self, slot: u16) -> Option<&Handoff> {
        self.handoffs
            .iter()
            .filter(|h| h.slots.contains(slot))
            .max_by_key(|h| h.epoch)
    }

    /// Checks that this node may serve a command touching `slots` (the slot
    /// of each key, in order). `None` means go ahead.
    pub fn route(&self, slots: impl Iterator<Item = u16>) -> Option<Redirect> {
        self.route_as(slots, false, false)
    }

    /// [`ClusterState::route`] for a command that may write: a write to a
    /// slot being handed over gets [`Redirect::Frozen`].
    pub fn route_write(&self, slots: impl Iterator<Item = u16>) -> Option<Redirect> {
        self.route_as(slots, true, false)
    }

    /// [`ClusterState::route`] for a read by a client that sent `READONLY`:
    /// a replica serves reads of its own shard's slots.
    pub fn route_replica_read(&self, slots: impl Iterator<Item = u16>) -> Option<Redirect> {
        self.route_as(slots, false, true)
    }

    fn route_as(
        &self,
        mut slots: impl Iterator<Item = u16>,
        write: bool,
        replica_reads: bool,
    ) -> Option<Redirect> {
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
        let handoff = if self.handoffs.is_empty() {
            None
        } else {
            self.handoff_of(first)
        };
        let elsewhere = match handoff {
            Some(h) => h.to.as_ref(),
            None => match self.owners[usize::from(first)] {
                None => return Some(Redirect::Unserved),
                Some(owner) => match self.place {
                    Some((mine, Role::Primary)) if mine == usize::from(owner) => None,
                    Some((mine, Role::Replica)) if replica_reads && mine == usize::from(owner) => {
                        None
                    }
                    _ => Some(&doc.shards[usize::from(owner)].primary),
                },
            },
        };
        if let Some(owner) = elsewhere {
            return Some(Redirect::Moved {
                slot: first,
                addr: format!("{}:{}", owner.host, owner.port),
            });
        }
        if self
            .freezes
            .iter()
            .any(|f| (write || f.reads) && f.slots.contains(first) && f.holds())
        {
            return Some(Redirect::Frozen);
        }
        None
    }

    /// The slots this node serves as primary.
    pub fn owned_slots(&self) -> Vec<SlotRange> {
        match (self.view(), self.place) {
            (Some(doc), Some((i, _))) => doc.shards[i].slots.clone(),
            _ => Vec::new(),
        }
    }

    /// The installed document with completed handoffs applied, under the
    /// newest epoch: what `CLUSTER SLOTS` and friends tell clients, so a
    /// client that follows a `MOVED` and refreshes its map learns the new
    /// owner before the operator's next document.
    pub fn view(&self) -> Option<std::borrow::Cow<'_, Topology>> {
        let doc = self.topology.as_ref()?;
        if self.handoffs.is_empty() {
            return Some(std::borrow::Cow::Borrowed(doc));
        }
        let mut view = doc.clone();
        let mut handoffs: Vec<&Handoff> = self.handoffs.iter().collect();
        handoffs.sort_by_key(|h| h.epoch);
        for h in handoffs {
            let dest = match &h.to {
                None => self.place.map(|(i, _)| i),
                Some(to) => view
                    .shards
                    .iter()
                    .position(|s| s.primary.host == to.host && s.primary.port == to.port),
            };
            // A new owner the document does not list yet keeps the
            // document's layout in the view; routing still redirects.
            let Some(dest) = dest else { continue };
            for (i, shard) in view.shards.iter_mut().enumerate() {
                let mut set = SlotSet::from_ranges(&shard.slots);
                for slot in h.slots.iter() {
                    if i == dest {
                        set.insert(slot);
                    } else {
                        set.remove(slot);
                    }
                }
                shard.slots = set.ranges();
            }
            view.epoch = h.epoch;
        }
        Some(std::borrow::Cow::Owned(view))
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

    #[test]
    fn handoffs_and_freezes_route_until_a_document_settles_them() {
        let mut st = ClusterState::new(Mode::Cluster, addr("p0", 7000));
        st.install(doc(3)).unwrap();
        let moving = SlotSet::from_ranges(&[SlotRange { start: 0, end: 9 }]);
        // Frozen: writes wait, reads go on, other slots untouched.
        st.freeze(4, &moving);
        assert!(st.any_frozen());
        assert_eq!(st.route_write([5u16].into_iter()), Some(Redirect::Frozen));
        assert_eq!(st.route([5u16].into_iter()), None);
        assert_eq!(st.route_write([10u16].into_iter()), None);
        // A slot another node owns is redirected even while frozen here.
        assert!(matches!(
            st.route_write([9000u16].into_iter()),
            Some(Redirect::Moved { .. })
        ));
        // Handed over: redirected to the new owner, in the view too.
        let to = addr("p1", 7001);
        st.hand_off(moving.clone(), 4, Some(to.clone())).unwrap();
        st.thaw(4);
        assert!(!st.any_frozen());
        let moved = Some(Redirect::Moved {
            slot: 5,
            addr: "10.0.0.1:7001".into(),
        });
        assert_eq!(st.route_write([5u16].into_iter()), moved);
        assert_eq!(st.route([5u16].into_iter()), moved);
        assert!(!st.serves(5) && st.serves(10));
        assert_eq!(st.newest_epoch(), 4);
        assert_eq!(st.epoch(), 3);
        let view = st.view().unwrap();
        assert_eq!(view.epoch, 4);
        assert_eq!(
            view.shards[0].slots,
            vec![SlotRange {
                start: 10,
                end: 8191
            }]
        );
        assert_eq!(
            view.shards[1].slots,
            vec![
                SlotRange { start: 0, end: 9 },
                SlotRange {
                    start: 8192,
                    end: 16383
                }
            ]
        );
        assert_eq!(
            st.owned_slots(),
            vec![SlotRange {
                start: 10,
                end: 8191
            }]
        );
        // Epochs only grow: a handoff must be newer than all we know.
        assert!(st.hand_off(moving.clone(), 4, Some(to)).is_err());
        // An older document is accepted but the newer handoff still rules.
        let mut newer_doc = doc(3);
        newer_doc.epoch = 3;
        assert!(!st.install(newer_doc).unwrap());
        assert_eq!(st.route([5u16].into_iter()), moved);
        // A handoff whose outcome is unknown holds reads back too.
        st.freeze(5, &moving);
        let lone = SlotSet::from_ranges(&[SlotRange { start: 20, end: 20 }]);
        st.freeze(5, &lone);
        assert_eq!(st.route([20u16].into_iter()), None);
        st.freeze_reads(5);
        assert_eq!(st.route([20u16].into_iter()), Some(Redirect::Frozen));
        assert_eq!(st.route([21u16].into_iter()), None);
        assert_eq!(
            st.route([5u16].into_iter()),
            moved,
            "a handoff still redirects"
        );
        // A document as new as the handoff settles it (here: it says the
        // slots came back, as after an operator's rollback).
        st.install(doc(5)).unwrap();
        assert!(!st.any_frozen(), "a document as new as a freeze settles it");
        assert_eq!(st.route_write([5u16].into_iter()), None);
        assert_eq!(st.newest_epoch(), 5);
        // The target's side: slots handed to it are served.
        let mut target = ClusterState::new(Mode::Cluster, addr("p1", 7001));
        target.install(doc(5)).unwrap();
        assert!(matches!(
            target.route([5u16].into_iter()),
            Some(Redirect::Moved { .. })
        ));
        target.hand_off(moving, 6, None).unwrap();
        assert_eq!(target.route_write([5u16].into_iter()), None);
        assert!(target.serves(5));
        assert_eq!(
            target.view().unwrap().shards[1].slots[0],
            SlotRange { start: 0, end: 9 }
        );
    }
}
