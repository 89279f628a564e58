//! Reports over a period: visits by kind and month, children added and
//! exited (from the effective-dated register events), open needs-ledger
//! items, and benefit totals per month from the dated standards.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sync_core::rules::{CATEGORIES, VISIT_KINDS};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppliedFilters, Frame, ReportFormat, ReportQuery, Reported, day_of, months};
use crate::auth::AuthUser;
use crate::error::AppResult;
use crate::repo;
use crate::state::AppState;

/// Visits of one month, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VisitMonthRow {
    /// `YYYY-MM` (UTC+8).
    pub month: String,
    pub home_visit: i64,
    pub phone_follow_up: i64,
    pub school_visit: i64,
    pub other: i64,
    pub total: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VisitsByMonthSummary {
    /// Every visit of the period in the area: the visit log with the same
    /// town, village and date filters lists exactly this many.
    pub total: i64,
    /// Per visit kind.
    pub by_kind: BTreeMap<String, i64>,
}

/// `GET /api/v1/reports/visits-by-month`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VisitsByMonthReport {
    pub filters: AppliedFilters,
    pub summary: VisitsByMonthSummary,
    /// Every month of the period, oldest first (months without visits too).
    pub rows: Vec<VisitMonthRow>,
}

/// The month lines and their summary, for the frame's area and period.
pub(crate) async fn visit_months(
    frame: &Frame,
) -> AppResult<(Vec<VisitMonthRow>, VisitsByMonthSummary)> {
    let (start, end) = frame.period_utc();
    let counts =
        repo::reports::visits_by_month(&frame.txn, frame.area, Some(start), Some(end)).await?;
    let mut rows: BTreeMap<String, VisitMonthRow> = months(frame.filters.from, frame.filters.to)
        .into_iter()
        .map(|m| {
            let month = m.format("%Y-%m").to_string();
            (
                month.clone(),
                VisitMonthRow {
                    month,
                    home_visit: 0,
                    phone_follow_up: 0,
                    school_visit: 0,
                    other: 0,
                    total: 0,
                },
            )
        })
        .collect();
    let mut by_kind: BTreeMap<String, i64> =
        VISIT_KINDS.iter().map(|k| ((*k).to_owned(), 0)).collect();
    let mut total = 0;
    for count in counts {
        let row = rows
            .entry(count.month.clone())
            .or_insert_with(|| VisitMonthRow {
                month: count.month.clone(),
                home_visit: 0,
                phone_follow_up: 0,
                school_visit: 0,
                other: 0,
                total: 0,
            });
        match count.kind.as_str() {
            "home_visit" => row.home_visit += count.visits,
            "phone_follow_up" => row.phone_follow_up += count.visits,
            "school_visit" => row.school_visit += count.visits,
            _ => row.other += count.visits,
        }
        row.total += count.visits;
        total += count.visits;
        *by_kind.entry(count.kind).or_insert(0) += count.visits;
    }
    Ok((
        rows.into_values().collect(),
        VisitsByMonthSummary { total, by_kind },
    ))
}

/// Visits made in the area during the period, by month and kind.
pub async fn visits_by_month(
    state: &AppState,
    caller: &AuthUser,
    query: &ReportQuery,
    format: ReportFormat,
) -> AppResult<VisitsByMonthReport> {
    let frame = Frame::open(state, caller, query).await?;
    let (rows, summary) = visit_months(&frame).await?;
    let filters = frame.filters.clone();
    frame
        .close(
            state,
            caller,
            Reported::new("visits_by_month", format, rows.len()),
        )
        .await?;
    Ok(VisitsByMonthReport {
        filters,
        summary,
        rows,
    })
}

/// A child added to or exited from the register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterChangeRow {
    pub effective_date: NaiveDate,
    /// `added` or `exited`.
    pub kind: String,
    pub child_id: Uuid,
    pub child_name: String,
    /// The child's current category.
    pub category: String,
    pub town_id: Uuid,
    pub town_name: String,
    pub village_id: Uuid,
    pub village_name: String,
    /// `director`, `district` or `data_matching`.
    pub source: String,
    /// For an exit: `turned_18`, `adopted`, `moved_away`, `died` or
    /// `no_longer_eligible`.
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RegisterChangesSummary {
    pub added: usize,
    pub exited: usize,
    pub added_by_source: BTreeMap<String, usize>,
    /// Exits per reason (`unknown` when none was given).
    pub exited_by_reason: BTreeMap<String, usize>,
}

/// `GET /api/v1/reports/register-changes`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisterChangesReport {
    pub filters: AppliedFilters,
    pub summary: RegisterChangesSummary,
    /// By effective date.
    pub rows: Vec<RegisterChangeRow>,
}

/// Children added and exited with an effective date in the period, for the
/// children whose current village is in the area.
pub async fn register_changes(
    state: &AppState,
    caller: &AuthUser,
    query: &ReportQuery,
    format: ReportFormat,
) -> AppResult<RegisterChangesReport> {
    let frame = Frame::open(state, caller, query).await?;
    let events = repo::reports::added_and_exited(
        &frame.txn,
        frame.area,
        Some(frame.filters.from),
        Some(frame.filters.to),
    )
    .await?;
    let mut summary = RegisterChangesSummary {
        added: 0,
        exited: 0,
        added_by_source: BTreeMap::new(),
        exited_by_reason: BTreeMap::new(),
    };
    let mut rows = Vec::with_capacity(events.len());
    for repo::reports::EventRow { event, child } in events {
        let Some(place) = frame.places.get(&child.village_id) else {
            continue;
        };
        if event.kind == "added" {
            summary.added += 1;
            *summary
                .added_by_source
                .entry(event.source.clone())
                .or_insert(0) += 1;
        } else {
            summary.exited += 1;
            let reason = event.reason.clone().unwrap_or_else(|| "unknown".to_owned());
            *summary.exited_by_reason.entry(reason).or_insert(0) += 1;
        }
        rows.push(RegisterChangeRow {
            effective_date: event.effective_date,
            kind: event.kind,
            child_id: child.id,
            child_name: child.name,
            category: child.category,
            town_id: place.town_id,
            town_name: place.town_name.clone(),
            village_id: place.village_id,
            village_name: place.village_name.clone(),
            source: event.source,
            reason: event.reason,
        });
    }
    let filters = frame.filters.clone();
    let named: Vec<Uuid> = rows.iter().map(|r| r.child_id).collect();
    frame
        .close(
            state,
            caller,
            Reported::new("register_changes", format, rows.len()).naming(&named),
        )
        .await?;
    Ok(RegisterChangesReport {
        filters,
        summary,
        rows,
    })
}

/// Open needs-ledger items of one village and needs area.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenNeedsRow {
    pub town_id: Uuid,
    pub town_name: String,
    pub village_id: Uuid,
    pub village_name: String,
    /// Needs area: `living`, `study`, `psychology`, ...
    pub needs_area: String,
    /// Items with status `open`.
    pub open: usize,
    /// Items with status `in_progress`.
    pub in_progress: usize,
    /// Of both, those whose due date is before `as_of`.
    pub past_due: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenNeedsSummary {
    pub open: usize,
    pub in_progress: usize,
    pub past_due: usize,
    /// Open and in-progress items per needs area.
    pub by_needs_area: BTreeMap<String, usize>,
}

/// `GET /api/v1/reports/open-needs`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct OpenNeedsReport {
    pub filters: AppliedFilters,
    /// True when `from`/`to` were given: then only items created in the
    /// period count; otherwise every item still open.
    pub period_applied: bool,
    pub summary: OpenNeedsSummary,
    /// By town, village and needs area.
    pub rows: Vec<OpenNeedsRow>,
}

/// Needs-ledger items still open or in progress, by village and needs area.
pub async fn open_needs(
    state: &AppState,
    caller: &AuthUser,
    query: &ReportQuery,
    format: ReportFormat,
) -> AppResult<OpenNeedsReport> {
    let frame = Frame::open(state, caller, query).await?;
    let period_applied = query.from.is_some() || query.to.is_some();
    let (start, end) = frame.period_utc();
    let items = repo::reports::open_items(
        &frame.txn,
        frame.area,
        period_applied.then_some(start),
        period_applied.then_some(end),
    )
    .await?;
    let as_of = frame.filters.as_of;
    let mut summary = OpenNeedsSummary {
        open: 0,
        in_progress: 0,
        past_due: 0,
        by_needs_area: BTreeMap::new(),
    };
    let mut lines: BTreeMap<(String, String, Uuid, String), OpenNeedsRow> = BTreeMap::new();
    for item in items {
        let Some(place) = frame.places.get(&item.village_id) else {
            continue;
        };
        let line = lines
            .entry((
                place.town_code.clone(),
                place.village_code.clone(),
                place.village_id,
                item.area.clone(),
            ))
            .or_insert_with(|| OpenNeedsRow {
                town_id: place.town_id,
                town_name: place.town_name.clone(),
                village_id: place.village_id,
                village_name: place.village_name.clone(),
                needs_area: item.area.clone(),
                open: 0,
                in_progress: 0,
                past_due: 0,
            });
        if item.status == "open" {
            line.open += 1;
            summary.open += 1;
        } else {
            line.in_progress += 1;
            summary.in_progress += 1;
        }
        if item.due_date.is_some_and(|due| due < as_of) {
            line.past_due += 1;
            summary.past_due += 1;
        }
        *summary.by_needs_area.entry(item.area).or_insert(0) += 1;
    }
    let filters = frame.filters.clone();
    let rows: Vec<OpenNeedsRow> = lines.into_values().collect();
    frame
        .close(
            state,
            caller,
            Reported::new("open_needs", format, rows.len()),
        )
        .await?;
    Ok(OpenNeedsReport {
        filters,
        period_applied,
        summary,
        rows,
    })
}

/// Benefits of one category in one month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BenefitRow {
    /// `YYYY-MM`.
    pub month: String,
    pub category: String,
    /// Children paid for that month.
    pub children: usize,
    /// The monthly standard in force on the month's first day, in CNY.
    pub standard_cny: i64,
    /// `children × standard_cny`.
    pub total_cny: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BenefitsSummary {
    pub total_cny: i64,
    /// Total per month (`YYYY-MM`), every month of the period.
    pub by_month: BTreeMap<String, i64>,
}

/// `GET /api/v1/reports/benefits`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct BenefitsReport {
    pub filters: AppliedFilters,
    pub summary: BenefitsSummary,
    /// By month, then category (categories with a standard and children).
    pub rows: Vec<BenefitRow>,
}

/// Benefit totals per month of the period: each child on the register on
/// the month's first day (added in an earlier month, not exited before that
/// day) counts once at the standard of its category in force that day.
pub async fn benefits(
    state: &AppState,
    caller: &AuthUser,
    query: &ReportQuery,
    format: ReportFormat,
) -> AppResult<BenefitsReport> {
    let frame = Frame::open(state, caller, query).await?;
    let standards = repo::reports::benefit_standards(&frame.txn).await?;
    let children = repo::reports::children(&frame.txn, frame.area).await?;
    let added = repo::reports::added_on(&frame.txn, frame.area, frame.filters.to).await?;
    let mut rows = Vec::new();
    let mut summary = BenefitsSummary {
        total_cny: 0,
        by_month: BTreeMap::new(),
    };
    for first in months(frame.filters.from, frame.filters.to) {
        let month = first.format("%Y-%m").to_string();
        let mut month_total = 0;
        for category in CATEGORIES {
            let standard = standards.iter().find(|s| {
                s.category == *category
                    && s.effective_from <= first
                    && s.effective_to.is_none_or(|to| first <= to)
            });
            let Some(standard) = standard else {
                continue;
            };
            let paid = children
                .iter()
                .filter(|c| c.category == *category && frame.places.contains_key(&c.village_id))
                .filter(|c| {
                    let registered_on = added
                        .get(&c.id)
                        .copied()
                        .unwrap_or_else(|| day_of(c.created_at));
                    let exited_before =
                        c.status == "exited" && c.exit_date.is_none_or(|exit| exit < first);
                    registered_on < first && !exited_before
                })
                .count();
            if paid == 0 {
                continue;
            }
            let standard_cny = i64::from(standard.amount_cny);
            let total_cny = standard_cny * paid as i64;
            month_total += total_cny;
            rows.push(BenefitRow {
                month: month.clone(),
                category: (*category).to_owned(),
                children: paid,
                standard_cny,
                total_cny,
            });
        }
        summary.total_cny += month_total;
        summary.by_month.insert(month, month_total);
    }
    let filters = frame.filters.clone();
    frame
        .close(state, caller, Reported::new("benefits", format, rows.len()))
        .await?;
    Ok(BenefitsReport {
        filters,
        summary,
        rows,
    })
}
