//! Changing a cluster's shard count: the pure decisions between the
//! rebalance planner ([`super::rebalance`]) and the nodes' atomic slot
//! migrations. The reconcile loop does the I/O; everything it decides with
//! is here, tested without an API server or a node.
//!
//! The status is the record. A rebalance is planned once (from the slot
//! ownership in status and the keys each node reports per slot), written to
//! `status.rebalance`, and its moves run one at a time:
//!
//! - `Pending` → `Copying`: the move gets the next epoch *in status first*
//!   (a node must never hold an epoch the status does not know), then the
//!   source primary is told `TIDECACHE MIGRATE START`;
//! - `Copying` → `Done` when the source reports `done`, or when the target
//!   reports the import `committed` (the source's answer was lost or it
//!   restarted): the status then gives the slots to the target shard under
//!   the move's epoch, and the next document says so;
//! - `Copying` → `Pending` (retried under a new epoch) when the migration
//!   failed without a commit; the target's partial copy is aborted and the
//!   spent epoch becomes the document's, which also releases any write
//!   freeze a lost commit left on the source.
//!
//! When every move is done, shards beyond the spec's count own no slot and
//! are removed from the status, then their StatefulSets are deleted.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tidecache_topology::SlotRange;
use tidecache_topology::protocol::{ImportState, MigrationState, MigrationStatus};

use super::decide::FAILOVER_AFTER;
use super::epoch;
use super::failover::Seen;
use super::rebalance::{self, MoveState, Ownership, SlotLoad};
use crate::crd::{CacheClusterStatus, MoveStatus, RebalanceStatus, ShardStatus};

/// Who owns each slot, from the shards in status (shard ids are indices).
pub fn ownership(shards: &[ShardStatus]) -> Result<Ownership, String> {
    let mut ranges = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        for r in &s.slots {
            let range: SlotRange = r.parse().map_err(|e| format!("shard {}: {e}", s.name))?;
            ranges.push((i as u16, range));
        }
    }
    Ownership::from_ranges(ranges).map_err(|e| e.to_string())
}

/// Whether the shards in status already are the spec's: `wanted` of them,
/// each owning slots, then `spare` warm spares owning none.
pub fn settled(shards: &[ShardStatus], wanted: usize, spare: usize) -> bool {
    shards.len() == wanted + spare
        && shards[..wanted].iter().all(|s| !s.slots.is_empty())
        && shards[wanted..].iter().all(|s| s.slots.is_empty())
}

/// Plans the moves from the shards in status to `wanted` shards (the first
/// `wanted` of the status's, new ones already listed without slots).
/// `loads` has one entry per slot. An empty list of moves is possible (the
/// leaving shards own nothing).
pub fn start(
    shards: &[ShardStatus],
    wanted: usize,
    loads: &[SlotLoad],
) -> Result<RebalanceStatus, String> {
    let current = ownership(shards)?;
    let desired: Vec<u16> = (0..wanted as u16).collect();
    let plan = rebalance::plan(&current, loads, &desired).map_err(|e| e.to_string())?;
    Ok(RebalanceStatus {
        shards: wanted as i32,
        moves: plan
            .moves
            .iter()
            .map(|m| MoveStatus {
                from: shards[usize::from(m.from)].name.clone(),
                to: shards[usize::from(m.to)].name.clone(),
                slots: m.ranges.iter().map(ToString::to_string).collect(),
                keys: m.keys,
                state: MoveState::Pending,
                epoch: 0,
                attempts: 0,
                last_error: None,
                retry_after: None,
            })
            .collect(),
    })
}

/// Whether a move holds its shards: copying, or handed over and not yet
/// recorded.
fn active(m: &MoveStatus) -> bool {
    matches!(m.state, MoveState::Copying | MoveState::Committed)
}

/// The shards the copying (or handed-over, unrecorded) moves involve,
/// sources and targets: their layout stays as recorded until the moves are
/// recorded, and no other move may use them meanwhile.
pub fn moving(r: Option<&RebalanceStatus>) -> Vec<&str> {
    r.iter()
        .flat_map(|r| &r.moves)
        .filter(|m| active(m))
        .flat_map(|m| [m.from.as_str(), m.to.as_str()])
        .collect()
}

/// Whether a move is copying or handed over unrecorded: no new topology
/// document may be made then above its epoch (one with the old layout
/// under a newer epoch would undo its handoff); below it, only for
/// failovers of other shards ([`epoch::during_move`]).
pub fn holds_topology(r: Option<&RebalanceStatus>) -> bool {
    r.is_some_and(|r| r.moves.iter().any(active))
}

/// The highest epoch any move reserved: documents must go above it.
pub fn reserved_epoch(r: Option<&RebalanceStatus>) -> u64 {
    r.map_or(0, |r| r.moves.iter().map(|m| m.epoch).max().unwrap_or(0))
}

/// How long a move waits after its `attempts`-th attempt failed: 3 s,
/// doubling, at most 5 minutes.
pub fn retry_backoff(attempts: u32) -> std::time::Duration {
    const FIRST: u64 = 3;
    const MOST: u64 = 300;
    let doublings = attempts.saturating_sub(1).min(16);
    std::time::Duration::from_secs((FIRST << doublings).min(MOST))
}

/// The migration id of a move's attempt: one per epoch, so a retry is a new
/// migration and an answer about an old attempt is never taken for a new one.
pub fn migration_id(cluster: &str, epoch: u64) -> String {
    format!("{cluster}-e{epoch}")
}

/// Gives a finished move's slots to its target shard in `shards`.
pub fn apply_done(shards: &mut [ShardStatus], mv: &MoveStatus) -> Result<(), String> {
    let moved: Vec<SlotRange> = mv
        .slots
        .iter()
        .map(|r| r.parse().map_err(|e| format!("{e}")))
        .collect::<Result<_, String>>()?;
    let moved_set = tidecache_topology::SlotSet::from_ranges(&moved);
    let to = shards
        .iter()
        .position(|s| s.name == mv.to)
        .ok_or_else(|| format!("no shard {} in status", mv.to))?;
    let from = shards
        .iter()
        .position(|s| s.name == mv.from)
        .ok_or_else(|| format!("no shard {} in status", mv.from))?;
    let mut source = slot_set(&shards[from])?;
    if let Some(slot) = moved_set.iter().find(|&s| !source.contains(s)) {
        return Err(format!(
            "slot {slot} should leave {} but it does not own it",
            mv.from
        ));
    }
    for slot in moved_set.iter() {
        source.remove(slot);
    }
    let mut target = slot_set(&shards[to])?;
    for slot in moved_set.iter() {
        target.insert(slot);
    }
    shards[from].slots = source.ranges().iter().map(ToString::to_string).collect();
    shards[to].slots = target.ranges().iter().map(ToString::to_string).collect();
    Ok(())
}

fn slot_set(shard: &ShardStatus) -> Result<tidecache_topology::SlotSet, String> {
    let ranges: Vec<SlotRange> = shard
        .slots
        .iter()
        .map(|r| r.parse().map_err(|e| format!("{e}")))
        .collect::<Result<_, String>>()?;
    Ok(tidecache_topology::SlotSet::from_ranges(&ranges))
}

/// What a copying move has come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Still running, or the nodes could not be asked: look again soon.
    Wait,
    /// The target serves the slots.
    Done,
    /// It ended without a commit: abort the target's import if it is still
    /// open, then run the move again under a new epoch.
    Retry(String),
}

/// What the operator learned of a copying move from its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// It could not be asked.
    Unreachable,
    /// It does not know the migration: it restarted, or never got the order.
    Unknown,
    /// Its `MIGRATE STATUS`.
    Known(&'a MigrationStatus),
}

impl<'a> Source<'a> {
    /// What a `MIGRATE STATUS` asked of the source came to: an error is an
    /// unreachable source (whatever the error: it may still be migrating).
    pub fn of<E>(answer: &'a Result<Option<MigrationStatus>, E>) -> Self {
        match answer {
            Err(_) => Source::Unreachable,
            Ok(None) => Source::Unknown,
            Ok(Some(s)) => Source::Known(s),
        }
    }
}

/// Judges a copying move from what its source says (see [`Source`]) and
/// the target's `IMPORT STATUS` (`None`: not reachable). A move is retried
/// only when it cannot have committed: the source ended it without ever
/// sending the commit, or the target says the import is over without one
/// (after an abort, a target refuses that import for good).
pub fn judge(source: Source<'_>, target: Option<ImportState>) -> Verdict {
    let state = match source {
        Source::Known(s) => Some(s.state),
        _ => None,
    };
    match (source, target) {
        _ if state == Some(MigrationState::Done) || target == Some(ImportState::Committed) => {
            Verdict::Done
        }
        _ if matches!(
            state,
            Some(MigrationState::Copying | MigrationState::Handoff)
        ) =>
        {
            Verdict::Wait
        }
        // The source ended without sending the commit: nothing moved,
        // whatever became of the target (a dead target must not hold up
        // the move, nor the failovers that wait for it).
        (Source::Known(s), None) if !s.commit_sent => Verdict::Retry(ended(s)),
        // Ended after sending the commit, or the source lost it: the
        // target must be heard first, a lost commit reply may have
        // committed there.
        (_, None) => Verdict::Wait,
        // A source that cannot be asked may still send the commit, unless
        // the target refuses it for good (it was told to abort).
        (Source::Unreachable, Some(ImportState::Aborted)) => {
            Verdict::Retry("the source is unreachable; its import was aborted".into())
        }
        (Source::Unreachable, Some(_)) => Verdict::Wait,
        (Source::Known(s), Some(_)) => Verdict::Retry(ended(s)),
        (Source::Unknown, Some(_)) => {
            Verdict::Retry("the source does not know the migration".into())
        }
    }
}

fn ended(s: &MigrationStatus) -> String {
    if s.error.is_empty() {
        format!("migration {}", s.state)
    } else {
        format!("migration {}: {}", s.state, s.error)
    }
}

/// Shards the spec no longer wants, once they own nothing: the first
/// `spare` of them stay as warm spares, the others are removed from the
/// status (their StatefulSets are deleted after). `None` while any of them
/// still owns a slot.
pub fn leaving_drained(shards: &[ShardStatus], wanted: usize, spare: usize) -> Option<Vec<String>> {
    let leaving = shards.get(wanted..).unwrap_or_default();
    leaving
        .iter()
        .all(|s| s.slots.is_empty())
        .then(|| leaving.iter().skip(spare).map(|s| s.name.clone()).collect())
}

/// A primary's address, as the migration orders need it.
pub type Endpoint = (String, u16);

/// How soon a pass looks again while a rebalance moves.
pub const SOON: Duration = Duration::from_millis(300);
/// How soon it looks again when it waits on the nodes.
pub const LATER: Duration = Duration::from_secs(3);
/// How soon it tries again when no plan could be made.
pub const REPLAN_AFTER: Duration = Duration::from_secs(30);

/// What this pass does about the shard count, decided from the status
/// alone (see [`next`]); each step that needs the nodes' answers continues
/// in a pure function of them ([`planned`], [`finish`], [`begin`],
/// [`abort_for_lost_source`], [`conclude`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The shards are the spec's and nothing moves.
    Settled,
    /// Do nothing now; look again after this long.
    Wait(Duration),
    /// Plan the moves: needs each slot's load from the primaries.
    Plan,
    /// Every move is done: record the end ([`finish`]).
    Finish,
    /// No move copies any more and some handed over: record them
    /// ([`record`]).
    Record,
    /// Start move `index` ([`begin`]), then order its source to migrate.
    Start {
        index: usize,
        source: Endpoint,
        target: Endpoint,
    },
    /// Ask the source and target how move `index`, copying, stands, then
    /// [`conclude`].
    Check {
        index: usize,
        source: Endpoint,
        target: Endpoint,
    },
}

/// Decides the rebalance's next step. `addresses` are the shards with their
/// primaries' current addresses (a restarted pod has a new one);
/// `all_serving`: every shard's primary serves the current document;
/// `replan`: the autoscaler asks for a plan at the same shard count (a hot
/// shard).
pub fn next(
    status: &CacheClusterStatus,
    addresses: &[ShardStatus],
    (wanted, spare): (usize, usize),
    all_serving: bool,
    replan: bool,
    now: Timestamp,
) -> Next {
    let Some(r) = &status.rebalance else {
        if settled(&status.shards, wanted, spare) && !replan {
            return Next::Settled;
        }
        return if all_serving {
            Next::Plan
        } else {
            Next::Wait(LATER)
        };
    };
    let copying = r.moves.iter().any(|m| m.state == MoveState::Copying);
    if !copying && r.moves.iter().any(|m| m.state == MoveState::Committed) {
        return Next::Record;
    }
    if r.moves.iter().all(|m| m.state == MoveState::Done) {
        return Next::Finish;
    }
    let endpoints =
        |mv: &MoveStatus| Some((endpoint(addresses, &mv.from)?, endpoint(addresses, &mv.to)?));
    // A pending move whose shards no other move holds starts, once every
    // shard serves and its backoff (after a failure) is over: moves of
    // disjoint shards copy at once.
    let busy = moving(Some(r));
    let mut wait = LATER;
    if all_serving {
        for (index, mv) in r.moves.iter().enumerate() {
            if mv.state != MoveState::Pending
                || busy.contains(&mv.from.as_str())
                || busy.contains(&mv.to.as_str())
            {
                continue;
            }
            if let Some(left) = mv
                .retry_after
                .as_ref()
                .and_then(|t| t.0.duration_since(now).try_into().ok())
                .filter(|d: &Duration| !d.is_zero())
            {
                wait = wait.min(left);
                continue;
            }
            if let Some((source, target)) = endpoints(mv) {
                return Next::Start {
                    index,
                    source,
                    target,
                };
            }
        }
    }
    // Else a copying move is checked on, even in a cluster not all serving.
    if let Some(index) = r.moves.iter().position(|m| m.state == MoveState::Copying) {
        return match endpoints(&r.moves[index]) {
            Some((source, target)) => Next::Check {
                index,
                source,
                target,
            },
            None => Next::Wait(LATER),
        };
    }
    Next::Wait(wait)
}

fn endpoint(shards: &[ShardStatus], shard: &str) -> Option<Endpoint> {
    let address = &shards
        .iter()
        .find(|s| s.name == shard)?
        .primary
        .as_ref()?
        .address;
    let (host, port) = address.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}

/// Records a planned rebalance; returns what the event says of it.
pub fn planned(status: &mut CacheClusterStatus, r: RebalanceStatus) -> String {
    let message = format!(
        "moving {} slot ranges' worth in {} moves to go from {} to {} shards",
        r.moves.iter().map(|m| m.slots.len()).sum::<usize>(),
        r.moves.len(),
        status.shards.iter().filter(|s| !s.slots.is_empty()).count(),
        r.shards
    );
    status.rebalance = Some(r);
    message
}

/// How a rebalance whose moves are all done ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// The shards the spec dropped own nothing and left the status (their
    /// StatefulSets are deleted after): these.
    Removed(Vec<String>),
    /// A leaving shard still owns slots: the rebalance is dropped and
    /// planned again.
    Replan,
}

impl Finished {
    /// What the Event says of it.
    pub fn message(&self, wanted: usize) -> String {
        match self {
            Finished::Removed(leaving) if leaving.is_empty() => {
                format!("{wanted} shards; removed none")
            }
            Finished::Removed(leaving) => {
                format!("{wanted} shards; removed {}", leaving.join(", "))
            }
            Finished::Replan => "a leaving shard still owns slots; planning again".into(),
        }
    }
}

/// Ends a rebalance whose moves are all done, in `status`; the first
/// `spare` drained shards stay as warm spares.
pub fn finish(status: &mut CacheClusterStatus, wanted: usize, spare: usize) -> Finished {
    let Some(leaving) = leaving_drained(&status.shards, wanted, spare) else {
        status.rebalance = None;
        return Finished::Replan;
    };
    if !leaving.is_empty() {
        // A document without the drained shards.
        status.shards.truncate(wanted + spare);
        status.epoch = epoch::next(status);
    }
    status.rebalance = None;
    Finished::Removed(leaving)
}

/// What a started move's source is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begun {
    pub id: String,
    pub epoch: u64,
    pub ranges: Vec<SlotRange>,
}

/// Starts move `index` in `status`: it reserves its epoch (recorded before
/// any node hears of it; [`epoch::for_move`] leaves room below it for the
/// failovers of other shards) and becomes `Copying`.
pub fn begin(status: &mut CacheClusterStatus, cluster: &str, index: usize) -> Begun {
    let epoch = epoch::for_move(status);
    let m = &mut status.rebalance.as_mut().expect("a rebalance").moves[index];
    m.epoch = epoch;
    m.state = MoveState::Copying;
    m.attempts += 1;
    Begun {
        id: migration_id(cluster, epoch),
        epoch,
        ranges: m.slots.iter().filter_map(|r| r.parse().ok()).collect(),
    }
}

/// Whether the primary of shard `shard` (in status) is gone as a failover
/// judges it ([`Seen::gone`]): a move from it cannot wait for it.
pub fn source_lost(
    status: &CacheClusterStatus,
    shard: &str,
    seen: &BTreeMap<String, Seen>,
) -> bool {
    status
        .shards
        .iter()
        .find(|s| s.name == shard)
        .and_then(|s| s.primary.as_ref())
        .and_then(|p| seen.get(&p.pod))
        .is_some_and(|s| s.gone(FAILOVER_AFTER))
}

/// Whether to abort the target's import before judging: the source cannot
/// be asked and its primary is lost (`source_lost`, as a failover judges),
/// so it holds up its shard's failover; once aborted, the target refuses
/// the source's commit for good.
pub fn abort_for_lost_source(
    source_unreachable: bool,
    source_lost: bool,
    target: ImportState,
) -> bool {
    source_unreachable
        && source_lost
        && matches!(target, ImportState::Importing | ImportState::Unknown)
}

/// What a checked move came to, once recorded in the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conclusion {
    /// Still running: look again soon.
    Wait,
    /// Handed over while other moves copy: recorded with them.
    Committed,
    /// The target owns the slots (`Some(why)`: they did not fit the status,
    /// which is planned again).
    Done(Option<String>),
    /// Failed: abort the target's import first when `abort_target`; then it
    /// runs again under a new epoch after `backoff`.
    Retry {
        why: String,
        abort_target: bool,
        backoff: Duration,
    },
}

/// Records the moves handed over (`Committed`) once no move copies: their
/// slots go to their targets in `status`, and the epoch goes to the
/// highest any of them, or a failed attempt meanwhile, took (the nodes run
/// those). `Err` when a move does not fit the status: the rebalance is
/// dropped, to be planned again, above every epoch it reserved.
pub fn record(status: &mut CacheClusterStatus) -> Result<(), String> {
    let moves = status
        .rebalance
        .as_ref()
        .expect("a rebalance")
        .moves
        .clone();
    let mut top = 0;
    for (i, mv) in moves.iter().enumerate() {
        match mv.state {
            MoveState::Committed => {
                if let Err(e) = apply_done(&mut status.shards, mv) {
                    status.epoch = epoch::next(status);
                    status.rebalance = None;
                    return Err(e);
                }
                status.rebalance.as_mut().expect("a rebalance").moves[i].state = MoveState::Done;
                top = top.max(mv.epoch);
            }
            MoveState::Pending if mv.attempts > 0 => top = top.max(mv.epoch),
            _ => {}
        }
    }
    status.epoch = epoch::after_handoff(status.epoch, top);
    Ok(())
}

/// Records in `status` what move `index` came to, from [`judge`]'s verdict
/// and the target's import state.
pub fn conclude(
    status: &mut CacheClusterStatus,
    index: usize,
    verdict: Verdict,
    target: Option<ImportState>,
    now: Timestamp,
) -> Conclusion {
    let mv = status.rebalance.as_ref().expect("a rebalance").moves[index].clone();
    let others_copy = |status: &CacheClusterStatus| {
        let moves = &status.rebalance.as_ref().expect("a rebalance").moves;
        moves
            .iter()
            .enumerate()
            .any(|(i, m)| i != index && m.state == MoveState::Copying)
    };
    match verdict {
        Verdict::Wait => Conclusion::Wait,
        Verdict::Done => {
            status.rebalance.as_mut().expect("a rebalance").moves[index].state =
                MoveState::Committed;
            if others_copy(status) {
                return Conclusion::Committed;
            }
            match record(status) {
                Ok(()) => Conclusion::Done(None),
                Err(e) => Conclusion::Done(Some(e)),
            }
        }
        Verdict::Retry(why) => {
            // The document that settles the failed attempt's epoch (and
            // lifts any freeze it left) goes above it; while other moves
            // copy it waits for them ([`record`] takes it then), since it
            // would go above theirs.
            let others_active = {
                let moves = &status.rebalance.as_ref().expect("a rebalance").moves;
                moves
                    .iter()
                    .enumerate()
                    .any(|(i, m)| i != index && active(m))
            };
            if !others_active {
                status.epoch = epoch::spent(status.epoch, mv.epoch);
            }
            let m = &mut status.rebalance.as_mut().expect("a rebalance").moves[index];
            m.state = MoveState::Pending;
            m.last_error = Some(why.clone());
            let backoff = retry_backoff(m.attempts);
            m.retry_after = SignedDuration::try_from(backoff)
                .ok()
                .and_then(|d| now.checked_add(d).ok())
                .map(Time);
            Conclusion::Retry {
                why,
                abort_target: target == Some(ImportState::Importing),
                backoff,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::NodeStatus;
    use tidecache_topology::slot::even_split;

    fn shards(n: usize, slotted: usize) -> Vec<ShardStatus> {
        let split = even_split(slotted as u16);
        (0..n)
            .map(|i| ShardStatus {
                name: format!("c-{i}"),
                slots: split
                    .get(i)
                    .map(|r| vec![r.to_string()])
                    .unwrap_or_default(),
                primary: Some(NodeStatus {
                    pod: format!("c-{i}-0"),
                    address: format!("10.0.0.{i}:6379"),
                }),
                replicas: vec![],
            })
            .collect()
    }

    fn uniform(keys_per_slot: u64) -> Vec<SlotLoad> {
        vec![
            SlotLoad {
                keys: keys_per_slot,
                bytes: keys_per_slot * 50,
                ..SlotLoad::default()
            };
            16384
        ]
    }

    /// Runs every move of `r` on `s` as if each migration succeeded.
    fn run_all(s: &mut [ShardStatus], r: &mut RebalanceStatus) {
        while let Some(i) =
            rebalance::next_move(&r.moves.iter().map(|m| m.state).collect::<Vec<_>>())
        {
            apply_done(s, &r.moves[i]).unwrap();
            r.moves[i].state = MoveState::Done;
        }
    }

    fn slot_count(s: &ShardStatus) -> usize {
        slot_set(s).unwrap().len()
    }

    #[test]
    fn scaling_out_and_in_moves_every_slot_once_and_drains_leaving_shards() {
        // 3 → 5: the two new shards receive about a fifth each.
        let mut s = shards(5, 3);
        assert!(!settled(&s, 5, 0));
        let mut r = start(&s, 5, &uniform(10)).unwrap();
        assert!(!r.moves.is_empty());
        assert!(
            r.moves
                .iter()
                .all(|m| m.state == MoveState::Pending && m.epoch == 0)
        );
        run_all(&mut s, &mut r);
        ownership(&s).unwrap();
        for shard in &s {
            let n = slot_count(shard);
            assert!((3200..=3400).contains(&n), "{}: {n} slots", shard.name);
        }
        assert!(settled(&s, 5, 0));
        assert_eq!(leaving_drained(&s, 5, 0), Some(vec![]));
        // 5 → 2: shards 2..5 are drained over both remaining shards.
        let mut r = start(&s, 2, &uniform(10)).unwrap();
        assert_eq!(leaving_drained(&s, 2, 0), None, "not before the moves");
        let receivers: std::collections::BTreeSet<&str> =
            r.moves.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(receivers, ["c-0", "c-1"].into());
        run_all(&mut s, &mut r);
        assert_eq!(
            leaving_drained(&s, 2, 0),
            Some(vec!["c-2".into(), "c-3".into(), "c-4".into()])
        );
        ownership(&s[..2]).unwrap();
        assert_eq!(slot_count(&s[0]) + slot_count(&s[1]), 16384);
    }

    #[test]
    fn a_move_must_find_its_slots_on_its_source() {
        let mut s = shards(2, 2);
        let mv = MoveStatus {
            from: "c-1".into(),
            to: "c-0".into(),
            slots: vec!["0-10".into()],
            keys: 0,
            state: MoveState::Copying,
            epoch: 3,
            attempts: 1,
            last_error: None,
            retry_after: None,
        };
        let e = apply_done(&mut s, &mv).unwrap_err();
        assert_eq!(e, "slot 0 should leave c-1 but it does not own it");
        assert_eq!(s, shards(2, 2), "nothing changed");
    }

    #[test]
    fn the_verdict_never_retries_a_move_that_may_have_committed() {
        use ImportState::*;
        use MigrationState::*;
        use Verdict::*;
        let statuses: Vec<MigrationStatus> =
            [Copying, Handoff, MigrationState::Done, Failed, Cancelled]
                .iter()
                .flat_map(|&state| {
                    [false, true].map(|commit_sent| MigrationStatus {
                        state,
                        error: "boom".into(),
                        commit_sent,
                    })
                })
                .collect();
        let mut sources = vec![Source::Unreachable, Source::Unknown];
        sources.extend(statuses.iter().map(Source::Known));
        let imports = [
            None,
            Some(Importing),
            Some(Committed),
            Some(Aborted),
            Some(Unknown),
        ];
        for source in sources {
            let state = match source {
                Source::Known(s) => Some(s.state),
                _ => None,
            };
            for target in imports {
                let v = judge(source, target);
                // Could the slots have moved, or may they still?
                let may_commit = match (source, target) {
                    (_, Some(Committed)) => true,
                    (Source::Known(s), _) if s.state == MigrationState::Done => true,
                    (Source::Known(s), _) if matches!(s.state, Copying | Handoff) => true,
                    // Over on the target: no commit can land any more.
                    (_, Some(Aborted | Unknown)) if !matches!(source, Source::Unreachable) => false,
                    (Source::Unreachable, Some(Aborted)) => false,
                    (Source::Known(s), _) => s.commit_sent && target.is_none(),
                    (Source::Unknown, Some(_)) => false,
                    _ => true,
                };
                if target == Some(Committed) || state == Some(MigrationState::Done) {
                    assert_eq!(v, Verdict::Done, "{source:?} {target:?}");
                } else if may_commit {
                    assert_eq!(v, Wait, "{source:?} {target:?}");
                } else {
                    assert!(matches!(v, Retry(_)), "{source:?} {target:?}: {v:?}");
                }
            }
        }
        let failed = MigrationStatus {
            state: Failed,
            error: "target refused".into(),
            commit_sent: true,
        };
        assert_eq!(
            judge(Source::Known(&failed), Some(Aborted)),
            Retry("migration failed: target refused".into())
        );
        // A target that died before the commit does not hold the move up.
        let before_commit = MigrationStatus {
            commit_sent: false,
            ..failed.clone()
        };
        assert!(matches!(
            judge(Source::Known(&before_commit), None),
            Retry(_)
        ));
        assert_eq!(judge(Source::Known(&failed), None), Wait);
        // Nor does a source that died, once its target refuses the import.
        assert_eq!(judge(Source::Unreachable, Some(Importing)), Wait);
        assert!(matches!(
            judge(Source::Unreachable, Some(Aborted)),
            Retry(_)
        ));
    }

    fn status_of(shards_: Vec<ShardStatus>, epoch: u64) -> CacheClusterStatus {
        CacheClusterStatus {
            epoch,
            shards: shards_,
            ..CacheClusterStatus::default()
        }
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn a_rebalance_runs_plan_start_check_finish_in_that_order() {
        // 2 → 3 shards: the third is listed without slots.
        let s3 = shards(3, 2);
        let mut status = status_of(s3.clone(), 4);
        let now = at(0);
        assert_eq!(
            next(&status, &s3, (3, 0), false, false, now),
            Next::Wait(LATER),
            "not all serving"
        );
        assert_eq!(next(&status, &s3, (3, 0), true, false, now), Next::Plan);
        let r = start(&status.shards, 3, &uniform(1)).unwrap();
        let moves = r.moves.len();
        let message = planned(&mut status, r);
        assert!(message.ends_with("to go from 2 to 3 shards"), "{message}");
        let mut epochs = vec![];
        for _ in 0..moves {
            let Next::Start {
                index,
                source,
                target,
            } = next(&status, &s3, (3, 0), true, false, now)
            else {
                panic!("a pending move starts");
            };
            let mv = status.rebalance.as_ref().unwrap().moves[index].clone();
            assert_eq!(source.0, format!("10.0.0.{}", &mv.from[2..]));
            assert_eq!(target.0, format!("10.0.0.{}", &mv.to[2..]));
            let begun = begin(&mut status, "c", index);
            assert_eq!(begun.id, format!("c-e{}", begun.epoch));
            assert!(begun.epoch > status.epoch, "reserved above the document");
            epochs.push(begun.epoch);
            let copying = &status.rebalance.as_ref().unwrap().moves[index];
            assert_eq!((copying.state, copying.attempts), (MoveState::Copying, 1));
            assert!(holds_topology(status.rebalance.as_ref()));
            // While it copies, even a non-serving cluster checks on it.
            assert!(
                matches!(next(&status, &s3, (3, 0), false, false, now), Next::Check { index: i, .. } if i == index)
            );
            let c = conclude(
                &mut status,
                index,
                Verdict::Done,
                Some(ImportState::Committed),
                now,
            );
            assert_eq!(c, Conclusion::Done(None));
            assert_eq!(status.epoch, begun.epoch, "the handoff's epoch is adopted");
        }
        assert!(epochs.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(next(&status, &s3, (3, 0), true, false, now), Next::Finish);
        assert_eq!(finish(&mut status, 3, 0), Finished::Removed(vec![]));
        assert_eq!(status.rebalance, None);
        assert_eq!(
            next(&status, &status.shards.clone(), (3, 0), true, false, now),
            Next::Settled
        );
        // A hot shard: the autoscaler asks for a plan at the same count.
        assert_eq!(
            next(&status, &status.shards.clone(), (3, 0), true, true, now),
            Next::Plan
        );
    }

    #[test]
    fn a_scale_in_ends_with_a_document_without_the_drained_shards() {
        let mut status = status_of(shards(3, 3), 7);
        let addresses = status.shards.clone();
        let r = start(&status.shards, 2, &uniform(1)).unwrap();
        planned(&mut status, r);
        while let Next::Start { index, .. } = next(&status, &addresses, (2, 0), true, false, at(0))
        {
            begin(&mut status, "c", index);
            conclude(&mut status, index, Verdict::Done, None, at(0));
        }
        let before = status.epoch;
        assert_eq!(
            finish(&mut status, 2, 0),
            Finished::Removed(vec!["c-2".into()])
        );
        assert_eq!(status.shards.len(), 2);
        assert!(status.epoch > before);
        // A leaving shard that still owns slots is planned again.
        let mut stray = status_of(shards(3, 3), 7);
        stray.rebalance = Some(RebalanceStatus {
            shards: 2,
            moves: vec![],
        });
        assert_eq!(finish(&mut stray, 2, 0), Finished::Replan);
        assert_eq!(stray.rebalance, None);
    }

    #[test]
    fn a_spare_takes_a_scale_out_and_a_drained_shard_becomes_the_spare() {
        // Two shards and a spare: settled.
        let mut status = status_of(shards(3, 2), 7);
        assert!(settled(&status.shards, 2, 1));
        assert!(!settled(&status.shards, 2, 0), "the spare is not wanted");
        assert!(!settled(&status.shards, 3, 0), "the spare owns nothing");
        // Scale-out to 3 (no spare while it changes): the moves all go to
        // the spare, from both shards.
        let addresses = status.shards.clone();
        assert_eq!(
            next(&status, &addresses, (3, 0), true, false, at(0)),
            Next::Plan
        );
        let mut r = start(&status.shards, 3, &uniform(1)).unwrap();
        assert!(r.moves.iter().all(|m| m.to == "c-2"), "{r:?}");
        run_all(&mut status.shards, &mut r);
        assert_eq!(finish(&mut status, 3, 0), Finished::Removed(vec![]));
        assert!(settled(&status.shards, 3, 0));
        // A new spare joins (the layout lists it, owning nothing).
        status.shards = shards(4, 3);
        let mut r = start(&status.shards, 3, &uniform(1)).unwrap();
        run_all(&mut status.shards, &mut r);
        assert!(settled(&status.shards, 3, 1));
        // Scale-in to 2 with one spare: c-2 drains and stays as the spare,
        // the old spare c-3 leaves.
        let addresses = status.shards.clone();
        assert_eq!(
            next(&status, &addresses, (2, 1), true, false, at(0)),
            Next::Plan
        );
        let mut r = start(&status.shards, 2, &uniform(1)).unwrap();
        assert!(r.moves.iter().all(|m| m.from == "c-2"), "{r:?}");
        assert_eq!(leaving_drained(&status.shards, 2, 1), None);
        run_all(&mut status.shards, &mut r);
        status.rebalance = Some(r);
        let before = status.epoch;
        assert_eq!(
            finish(&mut status, 2, 1),
            Finished::Removed(vec!["c-3".into()])
        );
        assert_eq!(status.shards.len(), 3);
        assert!(status.shards[2].slots.is_empty());
        assert!(status.epoch > before);
        assert!(settled(&status.shards, 2, 1));
    }

    #[test]
    fn a_failed_move_is_retried_under_a_new_epoch_after_its_backoff() {
        // 1 → 2 shards: one move.
        let s3 = shards(2, 1);
        let mut status = status_of(s3.clone(), 4);
        let r = start(&status.shards, 2, &uniform(1)).unwrap();
        assert_eq!(r.moves.len(), 1);
        planned(&mut status, r);
        let Next::Start { index, .. } = next(&status, &s3, (2, 0), true, false, at(0)) else {
            panic!()
        };
        let first = begin(&mut status, "c", index);
        let c = conclude(
            &mut status,
            index,
            Verdict::Retry("migration failed".into()),
            Some(ImportState::Importing),
            at(0),
        );
        assert_eq!(
            c,
            Conclusion::Retry {
                why: "migration failed".into(),
                abort_target: true,
                backoff: retry_backoff(1),
            }
        );
        assert_eq!(
            status.epoch, first.epoch,
            "the spent epoch is the document's"
        );
        let mv = &status.rebalance.as_ref().unwrap().moves[index];
        assert_eq!(mv.state, MoveState::Pending);
        assert_eq!(mv.last_error.as_deref(), Some("migration failed"));
        // It waits out the backoff, then starts under a newer epoch.
        assert_eq!(
            next(&status, &s3, (2, 0), true, false, at(1)),
            Next::Wait(Duration::from_secs(2))
        );
        assert!(matches!(
            next(&status, &s3, (2, 0), true, false, at(3)),
            Next::Start { .. }
        ));
        let second = begin(&mut status, "c", index);
        assert!(second.epoch > first.epoch && second.id != first.id);
        assert_eq!(status.rebalance.as_ref().unwrap().moves[index].attempts, 2);
        // A target whose import is over needs no abort.
        let c = conclude(
            &mut status,
            index,
            Verdict::Retry("x".into()),
            Some(ImportState::Aborted),
            at(3),
        );
        assert!(matches!(
            c,
            Conclusion::Retry {
                abort_target: false,
                ..
            }
        ));
    }

    /// Runs `next` and, for a start, `begin`: the index started.
    fn start_next(status: &mut CacheClusterStatus, addresses: &[ShardStatus]) -> Option<usize> {
        match next(status, addresses, (4, 0), true, false, at(0)) {
            Next::Start { index, .. } => {
                begin(status, "c", index);
                Some(index)
            }
            _ => None,
        }
    }

    #[test]
    fn moves_of_disjoint_shards_copy_at_once_and_are_recorded_together() {
        // 2 → 4 shards.
        let s4 = shards(4, 2);
        let mut status = status_of(s4.clone(), 4);
        let r = start(&status.shards, 4, &uniform(1)).unwrap();
        planned(&mut status, r);
        let moves = status.rebalance.as_ref().unwrap().moves.clone();
        let first = start_next(&mut status, &s4).expect("a start");
        // Every other move that shares no shard with it starts too.
        let mut running = vec![first];
        while let Some(i) = start_next(&mut status, &s4) {
            running.push(i);
        }
        assert!(running.len() >= 2, "{moves:?}");
        let busy: Vec<&str> = running
            .iter()
            .flat_map(|&i| [moves[i].from.as_str(), moves[i].to.as_str()])
            .collect();
        let unique: std::collections::BTreeSet<&&str> = busy.iter().collect();
        assert_eq!(unique.len(), busy.len(), "disjoint: {busy:?}");
        // Then the copying moves are checked on.
        assert!(matches!(
            next(&status, &s4, (4, 0), true, false, at(0)),
            Next::Check { .. }
        ));
        let before = status.epoch;
        let top = running
            .iter()
            .map(|&i| status.rebalance.as_ref().unwrap().moves[i].epoch)
            .max()
            .unwrap();
        // The first one done waits for the others: nothing changes in
        // the layout, and a document may still go below them.
        let c = conclude(&mut status, running[0], Verdict::Done, None, at(0));
        assert_eq!(c, Conclusion::Committed);
        assert_eq!(status.epoch, before);
        assert_eq!(status.shards, s4);
        assert!(holds_topology(status.rebalance.as_ref()));
        assert!(epoch::during_move(&status).is_some());
        // The last one records them all, under the highest epoch.
        for &i in &running[1..] {
            conclude(&mut status, i, Verdict::Done, None, at(0));
        }
        let states: Vec<MoveState> = status
            .rebalance
            .as_ref()
            .unwrap()
            .moves
            .iter()
            .map(|m| m.state)
            .collect();
        assert!(
            running.iter().all(|&i| states[i] == MoveState::Done),
            "{states:?}"
        );
        assert_eq!(status.epoch, top);
        ownership(&status.shards).unwrap();
    }

    #[test]
    fn a_move_failing_beside_a_handed_over_one_waits_to_settle_its_epoch() {
        let s4 = shards(4, 2);
        let mut status = status_of(s4.clone(), 4);
        let r = start(&status.shards, 4, &uniform(1)).unwrap();
        planned(&mut status, r);
        let a = start_next(&mut status, &s4).unwrap();
        let b = start_next(&mut status, &s4).unwrap();
        let epochs =
            |s: &CacheClusterStatus, i: usize| s.rebalance.as_ref().unwrap().moves[i].epoch;
        let (ea, eb) = (epochs(&status, a), epochs(&status, b));
        assert!(eb > ea);
        assert_eq!(
            conclude(&mut status, b, Verdict::Done, None, at(0)),
            Conclusion::Committed
        );
        // `a` fails: its spent epoch is below `b`'s, but no document is
        // made now (the status keeps its epoch) ...
        let before = status.epoch;
        assert!(matches!(
            conclude(&mut status, a, Verdict::Retry("x".into()), None, at(0)),
            Conclusion::Retry { .. }
        ));
        assert_eq!(status.epoch, before);
        // ... and with nothing copying, `b` is recorded, above both.
        assert_eq!(next(&status, &s4, (4, 0), true, false, at(0)), Next::Record);
        record(&mut status).unwrap();
        assert_eq!(status.epoch, eb.max(ea));
        assert_eq!(
            status.rebalance.as_ref().unwrap().moves[b].state,
            MoveState::Done
        );
        assert!(!holds_topology(status.rebalance.as_ref()));
    }

    #[test]
    fn a_done_move_that_does_not_fit_the_status_is_planned_again_above_its_epoch() {
        let s3 = shards(3, 2);
        let mut status = status_of(s3.clone(), 4);
        let r = start(&status.shards, 3, &uniform(1)).unwrap();
        planned(&mut status, r);
        let begun = begin(&mut status, "c", 0);
        // Someone else's layout: shard c-0 no longer owns the slots.
        status.shards = shards(3, 3);
        let c = conclude(&mut status, 0, Verdict::Done, None, at(0));
        assert!(matches!(c, Conclusion::Done(Some(_))));
        assert_eq!(status.rebalance, None);
        assert!(status.epoch > begun.epoch);
    }

    #[test]
    fn a_move_waits_for_its_primaries_addresses() {
        let mut s3 = shards(3, 2);
        let mut status = status_of(s3.clone(), 4);
        let r = start(&status.shards, 3, &uniform(1)).unwrap();
        planned(&mut status, r);
        for s in &mut s3 {
            s.primary.as_mut().unwrap().address.clear();
        }
        assert_eq!(
            next(&status, &s3, (3, 0), true, false, at(0)),
            Next::Wait(LATER)
        );
    }

    #[test]
    fn a_source_is_lost_when_its_pod_is_gone_or_silent_past_the_threshold() {
        let status = status_of(shards(2, 2), 4);
        let mut seen = BTreeMap::new();
        assert!(
            !source_lost(&status, "c-0", &seen),
            "never seen: not judged"
        );
        seen.insert(
            "c-0-0".to_owned(),
            Seen {
                pod_alive: true,
                epoch: Some(4),
                ..Seen::default()
            },
        );
        assert!(!source_lost(&status, "c-0", &seen));
        seen.insert(
            "c-0-0".to_owned(),
            Seen {
                pod_alive: true,
                unreachable_for: FAILOVER_AFTER,
                ..Seen::default()
            },
        );
        assert!(source_lost(&status, "c-0", &seen));
        assert!(!source_lost(&status, "c-1", &seen));
        assert!(!source_lost(&status, "c-9", &seen), "no such shard");
        seen.insert("c-1-0".to_owned(), Seen::default());
        assert!(source_lost(&status, "c-1", &seen), "its pod is gone");
        assert_eq!(
            Finished::Removed(vec!["c-2".into(), "c-3".into()]).message(2),
            "2 shards; removed c-2, c-3"
        );
        assert_eq!(
            Finished::Removed(vec![]).message(3),
            "3 shards; removed none"
        );
    }

    #[test]
    fn only_a_lost_source_with_an_open_import_is_aborted() {
        use ImportState::*;
        for target in [Importing, Committed, Aborted, Unknown] {
            for unreachable in [false, true] {
                for lost in [false, true] {
                    let abort = abort_for_lost_source(unreachable, lost, target);
                    assert_eq!(
                        abort,
                        unreachable && lost && matches!(target, Importing | Unknown),
                        "{target:?} {unreachable} {lost}"
                    );
                }
            }
        }
    }

    #[test]
    fn failed_moves_wait_longer_each_time_up_to_five_minutes() {
        let secs: Vec<u64> = (0..12).map(|a| retry_backoff(a).as_secs()).collect();
        assert_eq!(secs, [3, 3, 6, 12, 24, 48, 96, 192, 300, 300, 300, 300]);
        assert_eq!(retry_backoff(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn only_a_copying_move_holds_the_topology() {
        let mut r = start(&shards(3, 2), 3, &uniform(1)).unwrap();
        assert!(!holds_topology(None));
        assert!(!holds_topology(Some(&r)), "pending moves do not");
        r.moves[0].state = MoveState::Copying;
        assert!(holds_topology(Some(&r)));
        r.moves[0].state = MoveState::Done;
        assert!(!holds_topology(Some(&r)));
    }

    #[test]
    fn reserved_epochs_and_ids() {
        let mut r = start(&shards(3, 2), 3, &uniform(1)).unwrap();
        assert_eq!(reserved_epoch(Some(&r)), 0);
        r.moves[0].epoch = 9;
        assert_eq!(reserved_epoch(Some(&r)), 9);
        assert_eq!(reserved_epoch(None), 0);
        assert_eq!(migration_id("sessions", 9), "sessions-e9");
    }

    #[test]
    fn a_finished_rebalance_is_written_as_null() {
        // Status is merge-patched: only an explicit null removes the field.
        let v = serde_json::to_value(crate::crd::CacheClusterStatus::default()).unwrap();
        assert_eq!(v.get("rebalance"), Some(&serde_json::Value::Null));
    }
}
