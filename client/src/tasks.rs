//! The director's day, from the records on the phone: the visits the
//! supervisor returned for revision (`sync_core::tasks::review_tasks`) and
//! every child of the village with its due status
//! (`sync_core::semantic::due_status`), counted in the district's calendar.
//!
//! What the due rule is fed, the same way as the TypeScript SDK
//! (`sdk/src/views.ts`): the last visit that counts is the latest live
//! visit that is not a draft, on its day in the district's calendar; the
//! day a child was added to the register is the day of the oldest field
//! clock of the server's copy (the clock of its creation), and today when
//! the child has none yet.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use sync_core::{
    calendar::Calendar,
    record::{Entity, Field, Record},
    semantic::{DueInput, DueStatus, VisitIntervals, due_status},
    tasks::{ReviewTask, review_tasks},
};
use uuid::Uuid;

use crate::store::{Store, StoreError};

/// A child and where it stands for its next visit.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildDue {
    /// The child.
    pub child_id: Uuid,
    /// Name, as the register has it.
    pub name: String,
    /// Category code (`left_behind`, …).
    pub category: String,
    /// The child's village.
    pub village_id: Option<Uuid>,
    /// The day of the last visit that counts.
    pub last_visit_on: Option<NaiveDate>,
    /// The visiting interval that applies, in days.
    pub interval_days: u32,
    /// Due status on the day asked.
    pub due: DueStatus,
}

/// What a director has to do on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct DayTasks {
    /// The day (the district's).
    pub today: NaiveDate,
    /// Visits returned for revision, oldest visit first.
    pub returned: Vec<ReviewTask>,
    /// Children overdue or due today: most overdue first, then by name.
    pub due: Vec<ChildDue>,
}

/// Every live child of `records` with its due status on `today`: overdue
/// first (most overdue first), then due today, upcoming (soonest first),
/// not tracked; then by name and id. A pure function of its inputs.
pub fn children_due(
    records: &[Record],
    today: NaiveDate,
    calendar: &Calendar,
    intervals: &VisitIntervals,
) -> Vec<ChildDue> {
    let mut last: BTreeMap<Uuid, NaiveDate> = BTreeMap::new();
    for visit in records
        .iter()
        .filter(|r| r.entity == Entity::Visit && !r.is_deleted())
        .filter(|r| r.get_str("review_status") != Some("draft"))
    {
        let child = visit
            .get_str("child_id")
            .and_then(|c| Uuid::try_parse(c).ok());
        let day = visit
            .get_str("visited_at")
            .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
            .map(|at| calendar.day(&at));
        if let (Some(child), Some(day)) = (child, day) {
            let best = last.entry(child).or_insert(day);
            *best = (*best).max(day);
        }
    }
    let mut children: Vec<ChildDue> = records
        .iter()
        .filter(|r| r.entity == Entity::Child && !r.is_deleted())
        .map(|child| {
            let category = child.get_str("category").unwrap_or_default().to_owned();
            let override_days = child
                .get("visit_interval_days")
                .and_then(|v| v.as_u64())
                .and_then(|d| u32::try_from(d).ok());
            let input = DueInput {
                category: category.clone(),
                active: child.get_str("status") != Some("exited"),
                interval_override_days: override_days,
                registered_on: registered_on(child, calendar).unwrap_or(today),
                last_visit_on: last.get(&child.id).copied(),
            };
            ChildDue {
                child_id: child.id,
                name: child.get_str("name").unwrap_or_default().to_owned(),
                village_id: child
                    .get_str("village_id")
                    .and_then(|v| Uuid::try_parse(v).ok()),
                last_visit_on: input.last_visit_on,
                interval_days: intervals.interval_days(&category, override_days),
                due: due_status(&input, today, intervals),
                category,
            }
        })
        .collect();
    children.sort_by(|a, b| {
        rank(&a.due)
            .cmp(&rank(&b.due))
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| a.child_id.cmp(&b.child_id))
    });
    children
}

/// Sort key of a due status: overdue (most first), due today, upcoming
/// (soonest first), not tracked.
fn rank(due: &DueStatus) -> (u8, i64) {
    match due {
        DueStatus::Overdue { days_overdue, .. } => (0, -days_overdue),
        DueStatus::DueToday { .. } => (1, 0),
        DueStatus::Upcoming { days_left, .. } => (2, *days_left),
        DueStatus::NotTracked => (3, 0),
    }
}

/// The day of the child's oldest field clock, in the district's calendar.
fn registered_on(child: &Record, calendar: &Calendar) -> Option<NaiveDate> {
    child
        .fields
        .values()
        .filter_map(|f| match f {
            Field::Register(r) if r.hlc.wall_ms > 0 => Some(r.hlc.wall_ms),
            _ => None,
        })
        .min()
        .and_then(|ms| calendar.day_of_ms(i64::try_from(ms).ok()?))
}

impl Store {
    /// Every live record on the phone, as the user sees it.
    async fn live_records(&self) -> Result<Vec<Record>, StoreError> {
        let mut records = Vec::new();
        for entity in [Entity::Child, Entity::Visit] {
            records.extend(self.list(entity).await?.into_iter().map(|r| r.record));
        }
        Ok(records)
    }

    /// The signed-in user's visits returned for revision.
    pub async fn review_tasks(&self) -> Result<Vec<ReviewTask>, StoreError> {
        let user = self.user().await?.ok_or(StoreError::NotSignedIn)?;
        let records = self.live_records().await?;
        Ok(review_tasks(user.user_id, &records))
    }

    /// Every child on the phone with its due status on `today`, with the
    /// district's visit rules as last fetched ([`Store::visit_intervals`]).
    pub async fn children_due(
        &self,
        today: NaiveDate,
        calendar: &Calendar,
    ) -> Result<Vec<ChildDue>, StoreError> {
        let intervals = self.visit_intervals().await?;
        let records = self.live_records().await?;
        Ok(children_due(&records, today, calendar, &intervals))
    }

    /// The day's work: returned visits, and the children overdue or due.
    pub async fn day_tasks(
        &self,
        today: NaiveDate,
        calendar: &Calendar,
    ) -> Result<DayTasks, StoreError> {
        let due = self
            .children_due(today, calendar)
            .await?
            .into_iter()
            .filter(|c| {
                matches!(
                    c.due,
                    DueStatus::Overdue { .. } | DueStatus::DueToday { .. }
                )
            })
            .collect();
        Ok(DayTasks {
            today,
            returned: self.review_tasks().await?,
            due,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sync_core::clock::Hlc;
    use sync_core::record::Register;

    use super::*;

    fn record(
        entity: Entity,
        id: u128,
        wall_ms: u64,
        fields: &[(&str, serde_json::Value)],
    ) -> Record {
        let hlc = Hlc::new(wall_ms, 0, Uuid::from_u128(0xa));
        Record {
            entity,
            id: Uuid::from_u128(id),
            version: 1,
            fields: fields
                .iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        Field::Register(Register {
                            value: v.clone(),
                            hlc,
                            version: 1,
                        }),
                    )
                })
                .collect(),
            tombstone: None,
        }
    }

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_day_counts_visits_that_are_not_drafts_in_the_districts_calendar() {
        // Registered 2026-01-01 (Shanghai); a scattered orphan is due monthly.
        let registered = 1_767_225_600_000; // 2026-01-01T00:00:00Z
        let child = |id, name, category| {
            record(
                Entity::Child,
                id,
                registered,
                &[
                    ("name", json!(name)),
                    ("category", json!(category)),
                    ("status", json!("active")),
                ],
            )
        };
        let visit = |id, child: u128, at: &str, status: &str| {
            record(
                Entity::Visit,
                id,
                registered,
                &[
                    ("child_id", json!(Uuid::from_u128(child))),
                    ("visited_at", json!(at)),
                    ("review_status", json!(status)),
                ],
            )
        };
        let records = vec![
            child(1, "甲", "scattered_orphan"),
            child(2, "乙", "scattered_orphan"),
            child(3, "丙", "left_behind"),
            // 16:30 UTC on 2026-02-09 is 2026-02-10 in Shanghai: due 03-12.
            visit(11, 1, "2026-02-09T16:30:00Z", "submitted"),
            // A draft does not count: child 2 is due from its registration.
            visit(12, 2, "2026-03-01T10:00:00+08:00", "draft"),
        ];
        let list = children_due(
            &records,
            day("2026-03-12"),
            &Calendar::default(),
            &VisitIntervals::default(),
        );
        let names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["乙", "甲", "丙"]);
        assert_eq!(
            list[0].due,
            DueStatus::Overdue {
                due: day("2026-01-31"),
                days_overdue: 40
            }
        );
        assert_eq!(list[1].last_visit_on, Some(day("2026-02-10")));
        assert_eq!(
            list[1].due,
            DueStatus::DueToday {
                due: day("2026-03-12")
            }
        );
        assert_eq!(
            list[2].due,
            DueStatus::Upcoming {
                due: day("2026-04-01"),
                days_left: 20
            }
        );
    }
}
