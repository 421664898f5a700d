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

/// A scheduled snapshot, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub name: String,
    pub created: DateTime<Utc>,
    /// Still running: never pruned (its objects are being written).
    pub running: bool,
}

/// The snapshots retention removes: beyond the newest `count`, and older
/// than `days`. The newest finished snapshot is always kept, whatever the
/// rules say, so a cluster with snapshots configured never has none.
pub fn prune(taken: &[Taken], keep: Keep, now: DateTime<Utc>) -> Vec<String> {
    let mut finished: Vec<&Taken> = taken.iter().filter(|t| !t.running).collect();
    finished.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.name.cmp(&b.name)));
    finished
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, t)| {
            let over_count = keep.count.is_some_and(|c| *i >= c as usize);
            let too_old = keep
                .days
                .is_some_and(|d| now - t.created > chrono::Duration::days(i64::from(d)));
            over_count || too_old
        })
        .map(|(_, t)| t.name.clone())
        .collect()
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

    fn taken(name: &str, created: &str, running: bool) -> Taken {
        Taken {
            name: name.into(),
            created: at(created),
            running,
        }
    }

    #[test]
    fn retention_by_count_and_by_age() {
        let all = vec![
            taken("a", "2026-12-01T03:00:00Z", false),
            taken("b", "2026-12-02T03:00:00Z", false),
            taken("c", "2026-12-03T03:00:00Z", false),
            taken("d", "2026-12-04T03:00:00Z", true),
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

    proptest! {
        #[test]
        fn retention_never_removes_the_newest_or_a_running_one(
            ages in prop::collection::vec((0i64..100, any::<bool>()), 0..20),
            days in prop::option::of(1u32..35),
            count in prop::option::of(1u32..10),
        ) {
            let now = at("2026-12-31T00:00:00Z");
            let all: Vec<Taken> = ages
                .iter()
                .enumerate()
                .map(|(i, (h, running))| Taken {
                    name: format!("s{i}"),
                    created: now - chrono::Duration::hours(*h * 24),
                    running: *running,
                })
                .collect();
            let gone = prune(&all, Keep { days, count }, now);
            let newest = all.iter().filter(|t| !t.running).max_by(|a, b| a.created.cmp(&b.created).then_with(|| b.name.cmp(&a.name)));
            if let Some(n) = newest {
                prop_assert!(!gone.contains(&n.name));
            }
            for t in all.iter().filter(|t| t.running) {
                prop_assert!(!gone.contains(&t.name));
            }
            let kept = all.iter().filter(|t| !t.running).count() - gone.len();
            if let Some(c) = count {
                prop_assert!(kept <= (c as usize).max(1));
            }
        }
    }
}
