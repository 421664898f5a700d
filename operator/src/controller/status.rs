//! Phase and conditions, computed from what the reconcile observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// What a reconcile saw, reduced to what the status reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// A topology document exists (every primary has an address).
    pub has_document: bool,
    /// Slots the document assigns.
    pub assigned_slots: usize,
    /// Shards whose primary pod is Ready and acknowledged the current epoch.
    pub serving_shards: usize,
    pub shards: usize,
    /// The cluster has been Ready before (to tell Pending from Degraded).
    pub was_ready: bool,
}

/// `(phase, Ready condition status, reason, message)`.
pub fn readiness(o: &Observed) -> (&'static str, bool, &'static str, String) {
    if o.has_document && o.assigned_slots == 16384 && o.serving_shards == o.shards {
        return (
            "Ready",
            true,
            "AllSlotsServed",
            format!("all 16384 slots served by {} shards", o.shards),
        );
    }
    let phase = if o.was_ready { "Degraded" } else { "Pending" };
    if !o.has_document {
        return (
            phase,
            false,
            "WaitingForPods",
            "waiting for every shard's primary pod to get an address".into(),
        );
    }
    (
        phase,
        false,
        "PrimariesNotReady",
        format!(
            "{} of {} shards serve their slots",
            o.serving_shards, o.shards
        ),
    )
}

/// Sets condition `type_` in `conditions`, keeping its transition time when
/// its status did not change (so re-reconciling writes nothing new).
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let previous = conditions.iter().position(|c| c.type_ == type_);
    let last_transition_time = match previous.map(|i| &conditions[i]) {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(k8s_openapi::jiff::Timestamp::now()),
    };
    let cond = Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    };
    match previous {
        Some(i) => conditions[i] = cond,
        None => conditions.push(cond),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_needs_every_slot_and_every_primary() {
        let mut o = Observed {
            has_document: true,
            assigned_slots: 16384,
            serving_shards: 3,
            shards: 3,
            was_ready: false,
        };
        assert_eq!(readiness(&o).0, "Ready");
        o.serving_shards = 2;
        assert_eq!(readiness(&o).0, "Pending");
        assert_eq!(readiness(&o).3, "2 of 3 shards serve their slots");
        o.was_ready = true;
        assert_eq!(readiness(&o).0, "Degraded");
        o.has_document = false;
        assert_eq!(readiness(&o).2, "WaitingForPods");
    }

    #[test]
    fn transition_times_only_move_on_transitions() {
        let mut conds = vec![];
        set_condition(&mut conds, "Ready", false, "A", "m".into(), Some(1));
        let t0 = conds[0].last_transition_time.clone();
        std::thread::sleep(std::time::Duration::from_millis(2));
        set_condition(&mut conds, "Ready", false, "B", "n".into(), Some(2));
        assert_eq!(conds[0].last_transition_time, t0);
        assert_eq!(conds[0].reason, "B");
        set_condition(&mut conds, "Ready", true, "C", "o".into(), Some(2));
        assert_ne!(conds[0].last_transition_time, t0);
        assert_eq!(conds.len(), 1);
    }
}
