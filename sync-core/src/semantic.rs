//! Semantic checks the field merge cannot see, as pure functions over facts
//! the server supplies, and the due-date / overdue rule shared by phone and
//! server.
//!
//! * A visit dated more than [`DEFAULT_FUTURE_TOLERANCE_MS`] after the
//!   server's clock, or before the child's birth, is refused.
//! * A visit dated after the child exited the register, or after the child
//!   moved out of the visit's village, is accepted and flagged for the
//!   supervisor (the director may not have known).
//! * A second visit to the same child on the same day from another device is
//!   accepted and flagged as a possible duplicate.
//!
//! The due date of a child's next visit is its last visit (or, if never
//! visited, the day it was added to the register) plus the visiting interval:
//! the child's own override if set, else its category's interval from
//! [`VisitIntervals`]. The defaults are documented assumptions — no national
//! rule fixes them — and the district configures its own.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    calendar::Calendar,
    merge::{Flag, MergeOutcome, Reason, Verdict},
    record::Record,
};

/// How far in the future a visit may be dated: 24 hours, enough for time
/// zones and phones whose clock is off by a few hours.
pub const DEFAULT_FUTURE_TOLERANCE_MS: i64 = 24 * 60 * 60 * 1000;

/// What the server knows about the visited child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildFacts {
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Effective date of the exit from the register, if exited.
    pub exited_on: Option<NaiveDate>,
    /// The child's current village.
    pub village_id: Uuid,
    /// Effective date the child entered its current village (transfer), if known.
    pub in_village_since: Option<NaiveDate>,
    /// When that transfer was recorded: a visit on the transfer's own day
    /// but after this instant is after the transfer too.
    #[serde(default)]
    pub transferred_at: Option<DateTime<Utc>>,
}

/// Another visit to the same child, for the duplicate check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherVisit {
    /// Its id.
    pub visit_id: Uuid,
    /// The device that recorded it.
    pub device_id: Option<Uuid>,
    /// The district's day it happened ([`Calendar::day`]).
    pub visited_on: NaiveDate,
}

/// The result of [`check_visit`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VisitCheck {
    /// Set when the visit must be refused.
    pub refusal: Option<(Reason, String)>,
    /// Notices for the supervisor (the visit is kept).
    pub flags: Vec<Flag>,
}

impl VisitCheck {
    /// Folds the check into a merge outcome: a refusal turns it into a
    /// rejection with the record as it was before (`before`); flags are added.
    pub fn apply<'a>(self, before: Option<&'a Record>, outcome: &mut MergeOutcome<'a>) {
        if let Some((reason, message)) = self.refusal {
            let mut rejected = MergeOutcome::rejected(before, reason, message);
            rejected.refusals = std::mem::take(&mut outcome.refusals);
            *outcome = rejected;
            return;
        }
        if !matches!(outcome.verdict, Verdict::Rejected { .. }) {
            outcome.flags.extend(self.flags);
        }
    }
}

/// The most `possible_duplicate` flags one visit gets: the first few
/// other same-day visits say it as well as all of them would, and each
/// flag is a row in the supervisor's queue.
pub const MAX_DUPLICATE_FLAGS: usize = 5;

/// The date-time of a visit (`visited_at`), if present and well-formed.
pub fn visited_at(visit: &Record) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(visit.get_str("visited_at")?).ok()
}

/// Checks a visit (as merged) against the facts about its child. `now_ms` is
/// the server's wall time; `others` are the child's other visits; days are
/// the district's (`calendar`), whatever offset the phone wrote.
pub fn check_visit(
    visit: &Record,
    child: &ChildFacts,
    others: &[OtherVisit],
    now_ms: i64,
    future_tolerance_ms: i64,
    calendar: &Calendar,
) -> VisitCheck {
    let mut out = VisitCheck::default();
    let Some(at) = visited_at(visit) else {
        return out;
    };
    let day = calendar.day(&at);
    if at.timestamp_millis() > now_ms.saturating_add(future_tolerance_ms) {
        out.refusal = Some((
            Reason::VisitInFuture,
            format!("the visit is dated {at}, in the future; check the phone's date"),
        ));
        return out;
    }
    if day < child.birth_date {
        out.refusal = Some((
            Reason::VisitBeforeBirth,
            format!(
                "the visit is dated {day}, before the child's birth on {}",
                child.birth_date
            ),
        ));
        return out;
    }
    if child.exited_on.is_some_and(|d| d < day) {
        out.flags.push(Flag::VisitAfterExit);
    }
    let village = visit
        .get_str("village_id")
        .and_then(|s| Uuid::try_parse(s).ok());
    let after_transfer = match child.in_village_since {
        None => true,
        Some(since) if since < day => true,
        // On the transfer's own day: after it was recorded.
        Some(since) if since == day => child
            .transferred_at
            .is_some_and(|recorded| at.with_timezone(&Utc) > recorded),
        Some(_) => false,
    };
    if village.is_some_and(|v| v != child.village_id) && after_transfer {
        out.flags.push(Flag::VisitAfterTransfer);
    }
    let device = visit
        .get_str("device_id")
        .and_then(|s| Uuid::try_parse(s).ok());
    let duplicates = others
        .iter()
        .filter(|o| {
            o.visit_id != visit.id
                && o.visited_on == day
                && (device.is_none() || o.device_id.is_none() || o.device_id != device)
        })
        .take(MAX_DUPLICATE_FLAGS);
    for o in duplicates {
        out.flags.push(Flag::PossibleDuplicate {
            other_visit_id: o.visit_id,
        });
    }
    out
}

/// Visiting interval in days per child category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitIntervals {
    /// Days per category code.
    pub by_category: BTreeMap<String, u32>,
    /// Days for a category not listed.
    pub fallback_days: u32,
}

impl Default for VisitIntervals {
    /// Assumed defaults (no national rule fixes them; the district configures
    /// its own): scattered orphans, de-facto unsupported children, children
    /// in difficulty and children of edge-of-minimum-income families monthly
    /// (30 days); left-behind and migrant children quarterly (90);
    /// institutional orphans, cared for daily by the institution, quarterly
    /// (90). Anything else: 30.
    fn default() -> Self {
        let by_category = [
            ("institutional_orphan", 90),
            ("scattered_orphan", 30),
            ("de_facto_unsupported", 30),
            ("in_difficulty", 30),
            ("left_behind", 90),
            ("migrant", 90),
            ("low_income_edge", 30),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        Self {
            by_category,
            fallback_days: 30,
        }
    }
}

impl VisitIntervals {
    /// The interval for a category, honouring a per-child override.
    pub fn interval_days(&self, category: &str, override_days: Option<u32>) -> u32 {
        override_days
            .filter(|d| *d > 0)
            .or_else(|| self.by_category.get(category).copied())
            .unwrap_or(self.fallback_days)
    }
}

/// What the due-date rule needs to know about a child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueInput {
    /// Category code.
    pub category: String,
    /// True when the child is still on the register.
    pub active: bool,
    /// The child's `visit_interval_days`, if set.
    pub interval_override_days: Option<u32>,
    /// The day the child was added to the register.
    pub registered_on: NaiveDate,
    /// The day of the last visit that counts, if any.
    pub last_visit_on: Option<NaiveDate>,
}

/// Where a child stands for its next visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DueStatus {
    /// Not due yet.
    Upcoming {
        /// The due date.
        due: NaiveDate,
        /// Days until then.
        days_left: i64,
    },
    /// Due today.
    DueToday {
        /// The due date.
        due: NaiveDate,
    },
    /// Past due (逾期未走访).
    Overdue {
        /// The due date.
        due: NaiveDate,
        /// Days since then.
        days_overdue: i64,
    },
    /// Exited children are not visited.
    NotTracked,
}

/// The date the next visit is due.
pub fn due_date(child: &DueInput, intervals: &VisitIntervals) -> NaiveDate {
    let days = intervals.interval_days(&child.category, child.interval_override_days);
    let from = child.last_visit_on.unwrap_or(child.registered_on);
    from + Duration::days(i64::from(days))
}

/// The due status of a child on `today`.
pub fn due_status(child: &DueInput, today: NaiveDate, intervals: &VisitIntervals) -> DueStatus {
    if !child.active {
        return DueStatus::NotTracked;
    }
    let due = due_date(child, intervals);
    let delta = (due - today).num_days();
    match delta {
        0 => DueStatus::DueToday { due },
        d if d > 0 => DueStatus::Upcoming { due, days_left: d },
        d => DueStatus::Overdue {
            due,
            days_overdue: -d,
        },
    }
}
