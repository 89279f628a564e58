//! Point-in-time reports: the overdue list and visit coverage, both from
//! `sync_core::semantic::due_status` with the district's visit rules.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sync_core::semantic::{DueInput, DueStatus, VisitIntervals, due_status};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppliedFilters, Frame, ReportFormat, ReportQuery, Reported, day_of, day_start_utc};
use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::repo;
use crate::service::visit_rules;
use crate::state::AppState;

/// Where one child stands on the report's day.
#[derive(Clone, Debug)]
pub(crate) struct ChildDue {
    pub child: repo::reports::ChildRow,
    /// On the register on `as_of` (added on or before it, not exited by it).
    pub tracked: bool,
    pub registered_on: NaiveDate,
    pub last_visit_on: Option<NaiveDate>,
    pub interval_days: u32,
    pub due: Option<NaiveDate>,
    pub days_overdue: Option<i64>,
}

/// Every child of the frame's area with its due status on `as_of`.
pub(crate) async fn compute(frame: &Frame) -> AppResult<Vec<ChildDue>> {
    let as_of = frame.filters.as_of;
    let txn = &frame.txn;
    let intervals = visit_rules::effective(txn, Some(frame.districts())).await?;
    let children = repo::reports::children(txn, frame.area).await?;
    let added = repo::reports::added_on(txn, frame.area, as_of).await?;
    let last = last_visits(frame, &children, &intervals).await?;
    let mut out = Vec::with_capacity(children.len());
    for child in children {
        let Some(place) = frame.places.get(&child.village_id) else {
            continue;
        };
        let rules = intervals
            .get(&place.district_id)
            .cloned()
            .unwrap_or_default();
        let registered_on = added
            .get(&child.id)
            .copied()
            .unwrap_or_else(|| day_of(child.created_at));
        let exited_by_then =
            child.status == "exited" && child.exit_date.is_none_or(|exit| exit <= as_of);
        let tracked = registered_on <= as_of && !exited_by_then;
        let input = DueInput {
            category: child.category.clone(),
            active: tracked,
            interval_override_days: child
                .visit_interval_days
                .and_then(|d| u32::try_from(d).ok()),
            registered_on,
            last_visit_on: last.get(&child.id).map(|at| day_of(*at)),
        };
        let interval_days = rules.interval_days(&input.category, input.interval_override_days);
        let (due, days_overdue) = match due_status(&input, as_of, &rules) {
            DueStatus::Overdue { due, days_overdue } => (Some(due), Some(days_overdue)),
            DueStatus::DueToday { due } | DueStatus::Upcoming { due, .. } => (Some(due), None),
            DueStatus::NotTracked => (None, None),
        };
        out.push(ChildDue {
            last_visit_on: input.last_visit_on,
            child,
            tracked,
            registered_on,
            interval_days,
            due,
            days_overdue,
        });
    }
    Ok(out)
}

/// Above this many children, [`last_visits`] reads the recent past first.
const MANY_CHILDREN: usize = 5_000;

/// Each child's last counted visit on or before `as_of`.
///
/// For a large area (a province: tens of thousands of children, a million
/// visits) aggregating every visit ever made is the cost of the report, so
/// the visits of the longest category interval in force are read first
/// (most children were visited then) and only the others are looked up
/// child by child; both ways give the same answer.
async fn last_visits(
    frame: &Frame,
    children: &[repo::reports::ChildRow],
    intervals: &BTreeMap<Uuid, VisitIntervals>,
) -> AppResult<HashMap<Uuid, DateTime<Utc>>> {
    let as_of = frame.filters.as_of;
    let before = day_start_utc(as_of.succ_opt().unwrap_or(as_of));
    if children.len() <= MANY_CHILDREN {
        return Ok(repo::reports::last_visits(&frame.txn, frame.area, before).await?);
    }
    let window_days = intervals
        .values()
        .flat_map(|rules| rules.by_category.values().chain([&rules.fallback_days]))
        .copied()
        .max()
        .unwrap_or_else(|| VisitIntervals::default().fallback_days);
    let since = day_start_utc(as_of - Duration::days(i64::from(window_days)));
    let ids: Vec<Uuid> = children.iter().map(|c| c.id).collect();
    Ok(repo::reports::last_visits_since(&frame.txn, frame.area, &ids, since, before).await?)
}

/// One overdue child.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverdueRow {
    pub child_id: Uuid,
    pub child_name: String,
    pub category: String,
    pub town_id: Uuid,
    pub town_name: String,
    pub village_id: Uuid,
    pub village_name: String,
    /// The interval that applies (the child's own, else its category's).
    pub interval_days: u32,
    /// The day the child was (last) added to the register.
    pub registered_on: NaiveDate,
    /// The last visit on or before `as_of`; `None` if never visited.
    pub last_visit_on: Option<NaiveDate>,
    pub due_date: NaiveDate,
    pub days_overdue: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverdueSummary {
    /// Children on the register on `as_of` in the area.
    pub tracked_children: usize,
    pub overdue_children: usize,
    /// Overdue children never visited at all.
    pub never_visited: usize,
}

/// `GET /api/v1/reports/overdue`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OverdueReport {
    pub filters: AppliedFilters,
    pub summary: OverdueSummary,
    /// Most overdue first.
    pub rows: Vec<OverdueRow>,
}

/// Children overdue for a visit on `as_of`, most overdue first.
pub async fn overdue(
    state: &AppState,
    caller: &AuthUser,
    query: &ReportQuery,
    format: ReportFormat,
) -> AppResult<OverdueReport> {
    let frame = Frame::open(state, caller, query).await?;
    let due = compute(&frame).await?;
    let mut rows: Vec<(String, String, OverdueRow)> = due
        .iter()
        .filter_map(|d| {
            let days_overdue = d.days_overdue?;
            let place = frame.places.get(&d.child.village_id)?;
            Some((
                place.town_code.clone(),
                place.village_code.clone(),
                OverdueRow {
                    child_id: d.child.id,
                    child_name: d.child.name.clone(),
                    category: d.child.category.clone(),
                    town_id: place.town_id,
                    town_name: place.town_name.clone(),
                    village_id: place.village_id,
                    village_name: place.village_name.clone(),
                    interval_days: d.interval_days,
                    registered_on: d.registered_on,
                    last_visit_on: d.last_visit_on,
                    due_date: d.due?,
                    days_overdue,
                },
            ))
        })
        .collect();
    rows.sort_by(|(ta, va, a), (tb, vb, b)| {
        b.days_overdue
            .cmp(&a.days_overdue)
            .then_with(|| ta.cmp(tb))
            .then_with(|| va.cmp(vb))
            .then_with(|| a.child_name.cmp(&b.child_name))
            .then_with(|| a.child_id.cmp(&b.child_id))
    });
    let rows: Vec<OverdueRow> = rows.into_iter().map(|(_, _, row)| row).collect();
    let summary = OverdueSummary {
        tracked_children: due.iter().filter(|d| d.tracked).count(),
        overdue_children: rows.len(),
        never_visited: rows.iter().filter(|r| r.last_visit_on.is_none()).count(),
    };
    let filters = frame.filters.clone();
    let named: Vec<Uuid> = rows.iter().map(|r| r.child_id).collect();
    frame
        .close(
            state,
            caller,
            Reported::new("overdue", format, rows.len()).naming(&named),
        )
        .await?;
    Ok(OverdueReport {
        filters,
        summary,
        rows,
    })
}

/// Coverage of one town, one village, or the whole area.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CoverageRow {
    /// `total`, `town` or `village`.
    pub level: String,
    pub town_id: Option<Uuid>,
    pub town_name: Option<String>,
    pub village_id: Option<Uuid>,
    pub village_name: Option<String>,
    /// Children on the register on `as_of`.
    pub children: usize,
    /// Of those, visited within their interval (last visit at most
    /// `interval_days` before `as_of`).
    pub visited_within_interval: usize,
    /// Overdue for a visit.
    pub overdue: usize,
    /// Never visited, but added recently enough not to be overdue yet.
    pub not_yet_due: usize,
    /// `visited_within_interval / children`, rounded to 4 places; `None`
    /// with no children.
    pub coverage: Option<f64>,
}

impl CoverageRow {
    fn new(level: &str) -> Self {
        Self {
            level: level.to_owned(),
            town_id: None,
            town_name: None,
            village_id: None,
            village_name: None,
            children: 0,
            visited_within_interval: 0,
            overdue: 0,
            not_yet_due: 0,
            coverage: None,
        }
    }

    fn count(&mut self, d: &ChildDue) {
        self.children += 1;
        match (d.days_overdue, d.last_visit_on) {
            (Some(_), _) => self.overdue += 1,
            (None, Some(_)) => self.visited_within_interval += 1,
            (None, None) => self.not_yet_due += 1,
        }
    }

    fn finish(mut self) -> Self {
        self.coverage = (self.children > 0).then(|| {
            let share = self.visited_within_interval as f64 / self.children as f64;
            (share * 10_000.0).round() / 10_000.0
        });
        self
    }
}

/// `GET /api/v1/reports/coverage`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct CoverageReport {
    pub filters: AppliedFilters,
    /// The whole area.
    pub summary: CoverageRow,
    /// Each town (by code), followed by its villages (by code).
    pub rows: Vec<CoverageRow>,
}

/// The total line and the town and village lines.
pub(crate) fn coverage_rows(frame: &Frame, due: &[ChildDue]) -> (CoverageRow, Vec<CoverageRow>) {
    type Villages = BTreeMap<(String, Uuid), CoverageRow>;
    let mut total = CoverageRow::new("total");
    let mut towns: BTreeMap<(String, Uuid), (CoverageRow, Villages)> = BTreeMap::new();
    for place in frame.places.values() {
        let (_, villages) = towns
            .entry((place.town_code.clone(), place.town_id))
            .or_insert_with(|| {
                let mut town = CoverageRow::new("town");
                town.town_id = Some(place.town_id);
                town.town_name = Some(place.town_name.clone());
                (town, BTreeMap::new())
            });
        let mut village = CoverageRow::new("village");
        village.town_id = Some(place.town_id);
        village.town_name = Some(place.town_name.clone());
        village.village_id = Some(place.village_id);
        village.village_name = Some(place.village_name.clone());
        villages.insert((place.village_code.clone(), place.village_id), village);
    }
    for d in due.iter().filter(|d| d.tracked) {
        let Some(place) = frame.places.get(&d.child.village_id) else {
            continue;
        };
        total.count(d);
        if let Some((town, villages)) = towns.get_mut(&(place.town_code.clone(), place.town_id)) {
            town.count(d);
            if let Some(village) = villages.get_mut(&(place.village_code.clone(), place.village_id))
            {
                village.count(d);
            }
        }
    }
    let mut rows = Vec::with_capacity(frame.places.len() + towns.len());
    for (town, villages) in towns.into_values() {
        rows.push(town.finish());
        rows.extend(villages.into_values().map(CoverageRow::finish));
    }
    (total.finish(), rows)
}

/// Share of children visited within their interval on `as_of`, by town and
/// village.
pub async fn coverage(
    state: &AppState,
    caller: &AuthUser,
    query: &ReportQuery,
    format: ReportFormat,
) -> AppResult<CoverageReport> {
    let frame = Frame::open(state, caller, query).await?;
    let due = compute(&frame).await?;
    let (summary, rows) = coverage_rows(&frame, &due);
    let filters = frame.filters.clone();
    frame
        .close(state, caller, Reported::new("coverage", format, rows.len()))
        .await?;
    Ok(CoverageReport {
        filters,
        summary,
        rows,
    })
}
