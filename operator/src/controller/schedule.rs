//! When scheduled snapshots are due and which ones retention prunes: pure,
//! tested without a clock or an API server.
//!
//! A schedule is a cron expression in UTC: five fields (minute hour day
//! month weekday, e.g. `0 3 * * *` for 03:00 daily, the ElastiCache
//! snapshot window's role), or six with seconds first (for tests and short
//! schedules). A snapshot is due at the latest scheduled instant after the
//! last one taken (or the cluster's creation) and not after now: instants
//! missed while the operator was down collapse into one snapshot.

use std::str::FromStr as _;

use chrono::{DateTime, Utc};

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule(cron::Schedule);

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let fields = expr.split_whitespace().count();
        let full = match fields {
            5 => format!("0 {expr}"),
            6 => expr.to_owned(),
            _ => {
                return Err(format!(
                    "schedule {expr:?}: expected 5 cron fields (minute hour day month weekday), or 6 with seconds first"
                ));
            }
        };
        cron::Schedule::from_str(&full)
            .map(Schedule)
            .map_err(|e| format!("schedule {expr:?}: {e}"))
    }

    /// The snapshot due now: the latest scheduled instant in `(after, now]`.
    pub fn due(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.after(&after).take_while(|t| *t <= now).last()
    }

    /// The next scheduled instant after `now` (when to look again).
    pub fn next(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.0.after(&now).next()
    }
}

/// How long scheduled snapshots are kept: a number of days (1–35, as
/// ElastiCache allows), a count, or both (a snapshot goes when either says
/// so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keep {
    pub days: Option<u32>,
    pub count: Option<u32>,
}

/// Where a scheduled snapshot stands, as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Never pruned: its objects are being written.
    Running,
    Completed,
    Failed,
}

/// A scheduled snapshot, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub name: String,
    pub created: DateTime<Utc>,
    pub state: State,
}

/// The snapshots retention removes. Completed ones beyond the newest
/// `count`, and older than `days`; the newest completed one always stays,
/// whatever the rules say, so a cluster with snapshots never has none
/// (failed ones count for nothing, so days of failures cannot push good
/// snapshots out). Failed ones go once a newer snapshot completed, or when
/// older than `days`.
pub fn prune(taken: &[Taken], keep: Keep, now: DateTime<Utc>) -> Vec<String> {
    let too_old = |t: &Taken| {
        keep.days
            .is_some_and(|d| now - t.created > chrono::Duration::days(i64::from(d)))
    };
    let mut completed: Vec<&Taken> = taken
        .iter()
        .filter(|t| t.state == State::Completed)
        .collect();
    completed.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));
    let newest = completed.first().map(|t| t.created);
    let mut gone: Vec<String> = completed
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, t)| keep.count.is_some_and(|c| *i >= c as usize) || too_old(t))
        .map(|(_, t)| t.name.clone())
        .collect();
    gone.extend(
        taken
            .iter()
            .filter(|t| t.state == State::Failed)
            .filter(|t| newest.is_some_and(|n| n > t.created) || too_old(t))
            .map(|t| t.name.clone()),
    );
    gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn daily_at_three() {
        let s = Schedule::parse("0 3 * * *").unwrap();
        let created = at("2026-12-01T10:00:00Z");
        assert_eq!(s.due(created, at("2026-12-02T02:59:59Z")), None);
        assert_eq!(
            s.due(created, at("2026-12-02T03:00:00Z")),
            Some(at("2026-12-02T03:00:00Z"))
        );
        // Three missed days collapse into the latest.
        assert_eq!(
            s.due(created, at("2026-12-04T12:00:00Z")),
            Some(at("2026-12-04T03:00:00Z"))
        );
        // Taken: nothing more until the next day.
        assert_eq!(
            s.due(at("2026-12-04T03:00:00Z"), at("2026-12-04T23:00:00Z")),
            None
        );
        assert_eq!(
            s.next(at("2026-12-04T12:00:00Z")),
            Some(at("2026-12-05T03:00:00Z"))
        );
    }

    #[test]
    fn seconds_and_bad_expressions() {
        let s = Schedule::parse("*/20 * * * * *").unwrap();
        assert_eq!(
            s.due(at("2026-12-01T00:00:05Z"), at("2026-12-01T00:00:45Z")),
            Some(at("2026-12-01T00:00:40Z"))
        );
        assert!(
            Schedule::parse("daily")
                .unwrap_err()
                .contains("5 cron fields")
        );
        assert!(Schedule::parse("0 25 * * *").is_err());
    }

    fn taken(name: &str, created: &str, state: State) -> Taken {
        Taken {
            name: name.into(),
            created: at(created),
            state,
        }
    }

    #[test]
    fn retention_by_count_and_by_age() {
        let all = vec![
            taken("a", "2026-12-01T03:00:00Z", State::Completed),
            taken("b", "2026-12-02T03:00:00Z", State::Completed),
            taken("c", "2026-12-03T03:00:00Z", State::Completed),
            taken("d", "2026-12-04T03:00:00Z", State::Running),
        ];
        let now = at("2026-12-04T02:00:00Z");
        let count = Keep {
            count: Some(2),
            days: None,
        };
        assert_eq!(prune(&all, count, now), vec!["a"]);
        let days = Keep {
            count: None,
            days: Some(2),
        };
        assert_eq!(prune(&all, days, now), vec!["a"]);
        let one_day = Keep {
            count: None,
            days: Some(1),
        };
        assert_eq!(prune(&all, one_day, now), vec!["b", "a"]);
        // The newest finished one stays even when everything is too old.
        let later = at("2027-01-01T00:00:00Z");
        assert_eq!(prune(&all, one_day, later), vec!["b", "a"]);
        assert!(prune(&all, Keep::default(), now).is_empty());
    }

    #[test]
    fn failures_never_push_completed_snapshots_out() {
        let all = vec![
            taken("good", "2026-12-01T03:00:00Z", State::Completed),
            taken("bad1", "2026-12-02T03:00:00Z", State::Failed),
            taken("bad2", "2026-12-03T03:00:00Z", State::Failed),
        ];
        let now = at("2026-12-03T04:00:00Z");
        let keep = Keep {
            count: Some(2),
            days: None,
        };
        assert!(
            prune(&all, keep, now).is_empty(),
            "the only completed one stays"
        );
        // Once a newer one completed, the failures before it go.
        let mut later = all.clone();
        later.push(taken("good2", "2026-12-04T03:00:00Z", State::Completed));
        let mut gone = prune(&later, keep, now);
        gone.sort();
        assert_eq!(gone, vec!["bad1", "bad2"]);
    }

    proptest! {
        #[test]
        fn retention_never_removes_the_newest_or_a_running_one(
            ages in prop::collection::vec((0i64..100, 0u8..3), 0..20),
            days in prop::option::of(1u32..35),
            count in prop::option::of(1u32..10),
        ) {
            let now = at("2026-12-31T00:00:00Z");
            let all: Vec<Taken> = ages
                .iter()
                .enumerate()
                .map(|(i, (h, state))| Taken {
                    name: format!("s{i}"),
                    created: now - chrono::Duration::hours(*h * 24),
                    state: [State::Running, State::Completed, State::Failed][usize::from(*state)],
                })
                .collect();
            let gone = prune(&all, Keep { days, count }, now);
            let done = |t: &&Taken| t.state == State::Completed;
            let newest = all.iter().filter(done).max_by(|a, b| a.created.cmp(&b.created).then_with(|| b.name.cmp(&a.name)));
            if let Some(n) = newest {
                prop_assert!(!gone.contains(&n.name));
            }
            for t in all.iter().filter(|t| t.state == State::Running) {
                prop_assert!(!gone.contains(&t.name));
            }
            let kept = all.iter().filter(done).filter(|t| !gone.contains(&t.name)).count();
            if let Some(c) = count {
                prop_assert!(kept <= (c as usize).max(1));
            }
        }
    }
}
