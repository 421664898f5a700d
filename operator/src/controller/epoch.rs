//! The epoch rule: which epoch a new topology document takes.
//!
//! Nodes install a document only when its epoch is above the one they hold,
//! so every document the operator makes must be numbered above every epoch
//! any node may have heard of. Those are the status's own epoch and the
//! epochs that slot moves reserved in `status.rebalance` (a move's epoch is
//! written there before its source hears of it, and the source hands it to
//! the target at the handoff). The status records an epoch before any node
//! sees it, so a restarted operator never reuses one for another document.
//!
//! A move reserves its epoch [`ROOM_DURING_A_MOVE`] above the next one
//! ([`for_move`]). While it copies, no document may go above it (one with
//! the old owners of its slots under a newer epoch would undo its handoff
//! on the nodes), but one may go below it ([`during_move`]): a node keeps a
//! handoff's change of owner over any older document it installs, and the
//! source hands off only above every epoch it knows. So a shard outside the
//! move fails over without waiting for it; the document after the move
//! takes the move's epoch, above those.

use super::resharding::reserved_epoch;
use crate::crd::CacheClusterStatus;

/// The epoch of the next new document: above the status's and above every
/// epoch a move reserved.
pub fn next(status: &CacheClusterStatus) -> u64 {
    status.epoch.max(reserved_epoch(status.rebalance.as_ref())) + 1
}

/// How many documents may be made while a move copies (failovers of
/// shards outside it): the room [`for_move`] leaves below the move's epoch.
pub const ROOM_DURING_A_MOVE: u64 = 16;

/// The epoch a move starting now reserves: room for
/// [`ROOM_DURING_A_MOVE`] documents below it.
pub fn for_move(status: &CacheClusterStatus) -> u64 {
    next(status) + ROOM_DURING_A_MOVE
}

/// The epoch of a document made while moves copy: above the status's and
/// below every copying (or handed-over, unrecorded) move's; `None` when there is no room left (the
/// document waits for the moves).
pub fn during_move(status: &CacheClusterStatus) -> Option<u64> {
    let below = status
        .rebalance
        .iter()
        .flat_map(|r| &r.moves)
        .filter(|m| {
            matches!(
                m.state,
                crate::crd::MoveState::Copying | crate::crd::MoveState::Committed
            )
        })
        .map(|m| m.epoch)
        .min()?;
    let epoch = status.epoch + 1;
    (epoch < below).then_some(epoch)
}

/// After a move's handoff under `move_epoch`: the document that gives the
/// target its slots takes that epoch (the nodes already run it), or the
/// next one should the status have gone past it meanwhile.
pub fn after_handoff(recorded: u64, move_epoch: u64) -> u64 {
    if recorded < move_epoch {
        move_epoch
    } else {
        recorded + 1
    }
}

/// After a move failed: its spent epoch becomes the document's, which
/// settles any write freeze the attempt left on its source (a node lifts a
/// handoff's freeze when a document of that epoch or newer arrives).
pub fn spent(recorded: u64, move_epoch: u64) -> u64 {
    recorded.max(move_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{MoveState, MoveStatus, RebalanceStatus};

    fn with_moves(epoch: u64, reserved: &[u64]) -> CacheClusterStatus {
        CacheClusterStatus {
            epoch,
            rebalance: Some(RebalanceStatus {
                shards: 2,
                moves: reserved
                    .iter()
                    .map(|&e| MoveStatus {
                        from: "a".into(),
                        to: "b".into(),
                        slots: vec![],
                        keys: 0,
                        state: MoveState::Pending,
                        epoch: e,
                        attempts: 0,
                        last_error: None,
                        retry_after: None,
                    })
                    .collect(),
            }),
            ..CacheClusterStatus::default()
        }
    }

    #[test]
    fn a_new_document_goes_above_every_epoch_recorded_or_reserved() {
        assert_eq!(next(&CacheClusterStatus::default()), 1);
        assert_eq!(next(&with_moves(5, &[])), 6);
        assert_eq!(next(&with_moves(5, &[0, 9, 7])), 10);
        assert_eq!(next(&with_moves(12, &[9])), 13);
        // Every candidate beats everything a node may hold.
        for epoch in 0..20 {
            for reserved in 0..20 {
                let s = with_moves(epoch, &[reserved]);
                assert!(next(&s) > epoch && next(&s) > reserved);
            }
        }
    }

    #[test]
    fn a_handoff_adopts_the_moves_epoch_unless_the_status_passed_it() {
        assert_eq!(after_handoff(4, 7), 7);
        assert_eq!(after_handoff(7, 7), 8);
        assert_eq!(after_handoff(9, 7), 10);
    }

    #[test]
    fn documents_during_a_move_go_below_it_while_there_is_room() {
        let mut s = with_moves(5, &[]);
        assert_eq!(during_move(&s), None, "no move copies");
        let reserved = for_move(&s);
        assert_eq!(reserved, 6 + ROOM_DURING_A_MOVE);
        s = with_moves(5, &[reserved]);
        assert_eq!(during_move(&s), None, "a pending move holds nothing");
        s.rebalance.as_mut().unwrap().moves[0].state = MoveState::Copying;
        // Each document takes the next epoch, up to the move's.
        let mut made = 0;
        while let Some(e) = during_move(&s) {
            assert!(e > s.epoch && e < reserved);
            s.epoch = e;
            made += 1;
        }
        assert_eq!(made, ROOM_DURING_A_MOVE);
        // The move's handoff still goes above them all.
        assert_eq!(after_handoff(s.epoch, reserved), reserved);
    }

    #[test]
    fn a_failed_move_leaves_its_epoch_spent() {
        assert_eq!(spent(4, 7), 7);
        assert_eq!(spent(9, 7), 9);
    }
}
