//! Reports for supervisors, the district and the provincial platform:
//! overdue children, visit coverage, visits by kind and month, children
//! added and exited, open needs-ledger items and benefit totals.
//!
//! Every report is scoped to the caller (a supervisor sees their town, an
//! admin their district, the integration account every district; directors
//! get none) and filtered by town or village and by period. Days are days in
//! China Standard Time (UTC+8), as on the phones. Due dates and overdue
//! days come from `sync_core::semantic::due_status` with the district's
//! visit rules ([`super::visit_rules::effective`]), the same function and
//! the same intervals a phone uses.
//!
//! Each report reads inside one read-only transaction, so its figures are
//! one consistent snapshot; then one short write transaction puts the read
//! (or export) on the audit trail, with the children it names.

mod due;
pub mod export;
mod periodic;

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{AuthUser, Role, Scope};
use crate::entity::org_unit;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::reports::Area;
use crate::service::audit;
use crate::state::AppState;

pub use due::{
    CoverageReport, CoverageRow, OverdueReport, OverdueRow, OverdueSummary, coverage, overdue,
};
pub use export::ReportFormat;
pub use periodic::{
    BenefitRow, BenefitsReport, BenefitsSummary, OpenNeedsReport, OpenNeedsRow, OpenNeedsSummary,
    RegisterChangeRow, RegisterChangesReport, RegisterChangesSummary, VisitMonthRow,
    VisitsByMonthReport, VisitsByMonthSummary, benefits, open_needs, register_changes,
    visits_by_month,
};

/// China Standard Time, in which report days and months are counted.
pub const REPORT_UTC_OFFSET_HOURS: i64 = 8;

/// The filters every report takes. Unknown parameters are ignored.
#[derive(Clone, Debug, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Only this town (must lie in the caller's scope).
    pub town_id: Option<Uuid>,
    /// Only this village (must lie in the caller's scope).
    pub village_id: Option<Uuid>,
    /// First day of the period (inclusive). Default: the first day of the
    /// month eleven months before `to`, i.e. twelve calendar months.
    pub from: Option<NaiveDate>,
    /// Last day of the period (inclusive). Default: today (UTC+8).
    pub to: Option<NaiveDate>,
    /// The day point-in-time figures (overdue, coverage, past-due needs)
    /// are computed for. Default: `to`, else today (UTC+8).
    pub as_of: Option<NaiveDate>,
}

/// The filters as applied, echoed in every JSON report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AppliedFilters {
    /// `all`, `district`, `town` or `village`: what the figures cover.
    pub area: String,
    /// The unit the figures cover (`None` for every district).
    pub area_id: Option<Uuid>,
    pub area_name: Option<String>,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub as_of: NaiveDate,
}

/// A village and the town it belongs to, for naming report lines.
#[derive(Clone, Debug)]
pub(crate) struct Place {
    pub village_id: Uuid,
    pub village_code: String,
    pub village_name: String,
    pub town_id: Uuid,
    pub town_code: String,
    pub town_name: String,
    pub district_id: Uuid,
}

/// What every report starts from: its snapshot, area, period and names.
pub(crate) struct Frame {
    pub txn: DatabaseTransaction,
    pub area: Area,
    pub filters: AppliedFilters,
    /// Every village of the area, by id.
    pub places: BTreeMap<Uuid, Place>,
}

impl Frame {
    /// Opens the snapshot and checks the caller and the filters.
    pub async fn open(state: &AppState, caller: &AuthUser, query: &ReportQuery) -> AppResult<Self> {
        caller.require_role(&[Role::Supervisor, Role::Admin, Role::Integration])?;
        let txn = crate::repo::begin_snapshot(&state.reader).await?;
        let scope = Scope::of(caller);
        let units = match scope.root() {
            Some(root) => repo::org_units::subtree(&txn, root).await?,
            None => repo::org_units::all(&txn).await?,
        };
        let (area, area_unit) = resolve_area(&txn, scope, query, &units).await?;
        let today = today();
        let to = query.to.unwrap_or(today);
        let from = query.from.unwrap_or_else(|| twelve_months_before(to));
        if from > to {
            return Err(AppError::Validation(format!(
                "the period starts ({from}) after it ends ({to})"
            )));
        }
        let as_of = query.as_of.or(query.to).unwrap_or(today);
        let places = places(&units, area);
        let filters = AppliedFilters {
            area: match area {
                Area::All => "all",
                Area::District(_) => "district",
                Area::Town(_) => "town",
                Area::Village(_) => "village",
            }
            .to_owned(),
            area_id: area_unit.as_ref().map(|u| u.id),
            area_name: area_unit.map(|u| u.name),
            from,
            to,
            as_of,
        };
        Ok(Self {
            txn,
            area,
            filters,
            places,
        })
    }

    /// The districts the area spans (for their visit rules).
    pub fn districts(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.places.values().map(|p| p.district_id).collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// `[from, to]` as UTC instants `[start, end)`.
    pub fn period_utc(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        (
            day_start_utc(self.filters.from),
            day_start_utc(self.filters.to + Duration::days(1)),
        )
    }

    /// Ends the snapshot and puts the read on the audit trail (one short
    /// write transaction): the report, its format and filters, how many
    /// lines, and the children named, if the report names any.
    pub async fn close(
        self,
        state: &AppState,
        caller: &AuthUser,
        report: Reported<'_>,
    ) -> AppResult<()> {
        self.txn.commit().await?;
        audit::record_alone(
            state,
            audit::Entry {
                actor_id: Some(caller.user_id),
                action: report.format.audit_action(),
                entity: None,
                record_id: None,
                detail: json!({
                    "report": report.name,
                    "format": report.format.as_str(),
                    "filters": self.filters,
                    "rows": report.rows,
                    "child_ids": report.child_ids,
                }),
            },
        )
        .await
    }
}

/// What a finished report tells the audit trail.
pub(crate) struct Reported<'a> {
    pub name: &'static str,
    pub format: ReportFormat,
    pub rows: usize,
    /// The children the report names (overdue list, register changes).
    pub child_ids: &'a [Uuid],
}

impl<'a> Reported<'a> {
    pub fn new(name: &'static str, format: ReportFormat, rows: usize) -> Self {
        Self {
            name,
            format,
            rows,
            child_ids: &[],
        }
    }

    pub fn naming(mut self, child_ids: &'a [Uuid]) -> Self {
        self.child_ids = child_ids;
        self
    }
}

/// Checks the town and village filters against the caller's scope.
async fn resolve_area(
    db: &impl ConnectionTrait,
    scope: Scope,
    query: &ReportQuery,
    units: &[org_unit::Model],
) -> AppResult<(Area, Option<org_unit::Model>)> {
    let in_scope = |id: Uuid, kind: &str, what: &str| -> AppResult<org_unit::Model> {
        match units.iter().find(|u| u.id == id) {
            Some(unit) if unit.kind == kind => Ok(unit.clone()),
            Some(_) => Err(AppError::Validation(format!("{id} is not a {what}"))),
            None => Err(AppError::forbidden(format!(
                "the {what} {id} is outside your scope"
            ))),
        }
    };
    if let Some(village) = query.village_id {
        let unit = in_scope(village, "village", "village")?;
        if let Some(town) = query.town_id
            && unit.parent_id != Some(town)
        {
            in_scope(town, "town", "town")?;
            return Err(AppError::Validation(format!(
                "the village {village} is not in the town {town}"
            )));
        }
        return Ok((Area::Village(village), Some(unit)));
    }
    if let Some(town) = query.town_id {
        let unit = in_scope(town, "town", "town")?;
        return Ok((Area::Town(town), Some(unit)));
    }
    Ok(match scope {
        Scope::Province => (Area::All, None),
        Scope::District(id) => (Area::District(id), repo::org_units::find(db, id).await?),
        Scope::Town(id) => (Area::Town(id), repo::org_units::find(db, id).await?),
        Scope::Village(id) => (Area::Village(id), repo::org_units::find(db, id).await?),
    })
}

/// The villages of `area` among `units`, with their town and district.
fn places(units: &[org_unit::Model], area: Area) -> BTreeMap<Uuid, Place> {
    let by_id: BTreeMap<Uuid, &org_unit::Model> = units.iter().map(|u| (u.id, u)).collect();
    units
        .iter()
        .filter(|u| u.kind == "village")
        .filter_map(|village| {
            let town = by_id.get(&village.parent_id?)?;
            let district = town.parent_id.unwrap_or(town.id);
            let keep = match area {
                Area::All => true,
                Area::District(d) => district == d,
                Area::Town(t) => town.id == t,
                Area::Village(v) => village.id == v,
            };
            keep.then(|| {
                (
                    village.id,
                    Place {
                        village_id: village.id,
                        village_code: village.code.clone(),
                        village_name: village.name.clone(),
                        town_id: town.id,
                        town_code: town.code.clone(),
                        town_name: town.name.clone(),
                        district_id: district,
                    },
                )
            })
        })
        .collect()
}

/// Days of the district's calendar (crate::calendar), as the reports count
/// them.
pub use crate::calendar::{day_of, start_of as day_start_utc, today};

/// The first day of the month eleven months before `to`'s month.
fn twelve_months_before(to: NaiveDate) -> NaiveDate {
    let months = to.year() * 12 + to.month0() as i32 - 11;
    NaiveDate::from_ymd_opt(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
        .unwrap_or(to)
}

/// The first days of the months that overlap `[from, to]`.
pub(crate) fn months(from: NaiveDate, to: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut month = from.with_day(1).unwrap_or(from);
    while month <= to {
        out.push(month);
        month = month
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(NaiveDate::MAX);
    }
    out
}

/// What the console's dashboard shows, in one call.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct Dashboard {
    pub filters: AppliedFilters,
    /// Active children tracked on `as_of`.
    pub tracked_children: usize,
    /// Of those, overdue for a visit.
    pub overdue_children: usize,
    /// The whole area's coverage line.
    pub coverage: CoverageRow,
    /// Coverage per town of the area.
    pub coverage_by_town: Vec<CoverageRow>,
    /// Visits per month of the period, by kind.
    pub visits_by_month: Vec<VisitMonthRow>,
}

/// The dashboard: overdue count, coverage by town and visits per month.
pub async fn dashboard(
    state: &AppState,
    caller: &AuthUser,
    query: &ReportQuery,
) -> AppResult<Dashboard> {
    let frame = Frame::open(state, caller, query).await?;
    let due = due::compute(&frame).await?;
    let coverage = due::coverage_rows(&frame, &due);
    let visits = periodic::visit_months(&frame).await?;
    let filters = frame.filters.clone();
    let lines = due.iter().filter(|d| d.tracked).count();
    frame
        .close(
            state,
            caller,
            Reported::new("dashboard", ReportFormat::Json, lines),
        )
        .await?;
    let (total, lines) = coverage;
    Ok(Dashboard {
        filters,
        tracked_children: due.iter().filter(|d| d.tracked).count(),
        overdue_children: due.iter().filter(|d| d.days_overdue.is_some()).count(),
        coverage: total,
        coverage_by_town: lines.into_iter().filter(|l| l.level == "town").collect(),
        visits_by_month: visits.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_period_is_twelve_calendar_months() {
        assert_eq!(twelve_months_before(d("2026-11-29")), d("2025-12-01"));
        assert_eq!(twelve_months_before(d("2026-01-05")), d("2025-02-01"));
        assert_eq!(twelve_months_before(d("2026-12-31")), d("2026-01-01"));
    }

    #[test]
    fn months_cover_the_period() {
        assert_eq!(
            months(d("2026-01-15"), d("2026-03-01")),
            vec![d("2026-01-01"), d("2026-02-01"), d("2026-03-01")]
        );
    }

    #[test]
    fn days_are_counted_in_china_standard_time() {
        let late_evening_utc: DateTime<Utc> = "2026-03-01T17:30:00Z".parse().unwrap();
        assert_eq!(day_of(late_evening_utc), d("2026-03-02"));
        assert_eq!(
            day_start_utc(d("2026-03-02")),
            "2026-03-01T16:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }
}
