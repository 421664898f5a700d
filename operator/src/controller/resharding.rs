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

use tidecache_topology::SlotRange;
use tidecache_topology::admin::MigrationStatus;

use super::rebalance::{self, Ownership, SlotLoad};
use crate::crd::{MoveStatus, RebalanceStatus, ShardStatus};

pub const PENDING: &str = "Pending";
pub const COPYING: &str = "Copying";
pub const DONE: &str = "Done";

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
/// each owning slots.
pub fn settled(shards: &[ShardStatus], wanted: usize) -> bool {
    shards.len() == wanted && shards.iter().all(|s| !s.slots.is_empty())
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
                state: PENDING.into(),
                epoch: 0,
                attempts: 0,
                last_error: None,
                retry_after: None,
            })
            .collect(),
    })
}

/// The move to work on: the one copying, else the first pending.
pub fn current(r: &RebalanceStatus) -> Option<usize> {
    r.moves
        .iter()
        .position(|m| m.state == COPYING)
        .or_else(|| r.moves.iter().position(|m| m.state == PENDING))
}

/// Whether a move is copying: no new topology document may be made then
/// (one with the old layout under a newer epoch would undo its handoff).
pub fn holds_topology(r: Option<&RebalanceStatus>) -> bool {
    r.is_some_and(|r| r.moves.iter().any(|m| m.state == COPYING))
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

/// Judges a copying move from what its source says (see [`Source`]) and
/// the target's `IMPORT STATUS` (`None`: not reachable). A move is retried
/// only when it cannot have committed: the source ended it without ever
/// sending the commit, or the target says the import is over without one
/// (after an abort, a target refuses that import for good).
pub fn judge(source: Source<'_>, target: Option<&str>) -> Verdict {
    let state = match source {
        Source::Known(s) => Some(s.state.as_str()),
        _ => None,
    };
    match (source, target) {
        _ if state == Some("done") || target == Some("committed") => Verdict::Done,
        _ if matches!(state, Some("copying" | "handoff")) => Verdict::Wait,
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
        (Source::Unreachable, Some("aborted")) => {
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

/// Shards the spec no longer wants, once they own nothing: removed from the
/// status (their StatefulSets are deleted after). `None` while any of them
/// still owns a slot.
pub fn leaving_drained(shards: &[ShardStatus], wanted: usize) -> Option<Vec<String>> {
    let leaving = shards.get(wanted..).unwrap_or_default();
    leaving
        .iter()
        .all(|s| s.slots.is_empty())
        .then(|| leaving.iter().map(|s| s.name.clone()).collect())
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
                bytes: keys_per_slot * 50
            };
            16384
        ]
    }

    /// Runs every move of `r` on `s` as if each migration succeeded.
    fn run_all(s: &mut [ShardStatus], r: &mut RebalanceStatus) {
        while let Some(i) = current(r) {
            apply_done(s, &r.moves[i]).unwrap();
            r.moves[i].state = DONE.into();
        }
    }

    fn slot_count(s: &ShardStatus) -> usize {
        slot_set(s).unwrap().len()
    }

    #[test]
    fn scaling_out_and_in_moves_every_slot_once_and_drains_leaving_shards() {
        // 3 → 5: the two new shards receive about a fifth each.
        let mut s = shards(5, 3);
        assert!(!settled(&s, 5));
        let mut r = start(&s, 5, &uniform(10)).unwrap();
        assert!(!r.moves.is_empty());
        assert!(r.moves.iter().all(|m| m.state == PENDING && m.epoch == 0));
        run_all(&mut s, &mut r);
        ownership(&s).unwrap();
        for shard in &s {
            let n = slot_count(shard);
            assert!((3200..=3400).contains(&n), "{}: {n} slots", shard.name);
        }
        assert!(settled(&s, 5));
        assert_eq!(leaving_drained(&s, 5), Some(vec![]));
        // 5 → 2: shards 2..5 are drained over both remaining shards.
        let mut r = start(&s, 2, &uniform(10)).unwrap();
        assert_eq!(leaving_drained(&s, 2), None, "not before the moves");
        let receivers: std::collections::BTreeSet<&str> =
            r.moves.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(receivers, ["c-0", "c-1"].into());
        run_all(&mut s, &mut r);
        assert_eq!(
            leaving_drained(&s, 2),
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
            state: COPYING.into(),
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
        use Verdict::*;
        let states = ["copying", "handoff", "done", "failed", "cancelled"];
        let statuses: Vec<MigrationStatus> = states
            .iter()
            .flat_map(|&state| {
                [false, true].map(|commit_sent| MigrationStatus {
                    state: state.into(),
                    error: "boom".into(),
                    commit_sent,
                })
            })
            .collect();
        let mut sources = vec![Source::Unreachable, Source::Unknown];
        sources.extend(statuses.iter().map(Source::Known));
        let imports = [
            None,
            Some("importing"),
            Some("committed"),
            Some("aborted"),
            Some("unknown"),
        ];
        for source in sources {
            let known = match source {
                Source::Known(s) => Some(s),
                _ => None,
            };
            let state = known.map(|s| s.state.as_str());
            for target in imports {
                let v = judge(source, target);
                // Could the slots have moved, or may they still?
                let may_commit = match (source, target) {
                    (_, Some("committed")) => true,
                    (Source::Known(s), _) if s.state == "done" => true,
                    (Source::Known(s), _) if ["copying", "handoff"].contains(&s.state.as_str()) => {
                        true
                    }
                    // Over on the target: no commit can land any more.
                    (_, Some("aborted" | "unknown")) if !matches!(source, Source::Unreachable) => {
                        false
                    }
                    (Source::Unreachable, Some("aborted")) => false,
                    (Source::Known(s), _) => s.commit_sent && target.is_none(),
                    (Source::Unknown, Some(_)) => false,
                    _ => true,
                };
                if target == Some("committed") || state == Some("done") {
                    assert_eq!(v, Done, "{source:?} {target:?}");
                } else if may_commit {
                    assert_eq!(v, Wait, "{source:?} {target:?}");
                } else {
                    assert!(matches!(v, Retry(_)), "{source:?} {target:?}: {v:?}");
                }
            }
        }
        let failed = MigrationStatus {
            state: "failed".into(),
            error: "target refused".into(),
            commit_sent: true,
        };
        assert_eq!(
            judge(Source::Known(&failed), Some("aborted")),
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
        assert_eq!(judge(Source::Unreachable, Some("importing")), Wait);
        assert!(matches!(
            judge(Source::Unreachable, Some("aborted")),
            Retry(_)
        ));
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
        r.moves[0].state = COPYING.into();
        assert!(holds_topology(Some(&r)));
        r.moves[0].state = DONE.into();
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
        assert_eq!(current(&r), Some(0));
        r.moves[0].state = COPYING.into();
        assert_eq!(current(&r), Some(0));
    }

    #[test]
    fn a_finished_rebalance_is_written_as_null() {
        // Status is merge-patched: only an explicit null removes the field.
        let v = serde_json::to_value(crate::crd::CacheClusterStatus::default()).unwrap();
        assert_eq!(v.get("rebalance"), Some(&serde_json::Value::Null));
    }
}
