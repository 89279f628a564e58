//! The children roster (with each child's due date from the visit rules)
//! and a child's page: register entry, register events, visits, needs
//! ledger and due date. Each read that returns children is audited
//! (`children.list`, `child.read`), naming them.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_core::rules::CATEGORIES;
use sync_core::semantic::{DueInput, DueStatus, VisitIntervals, due_status};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::log::{VisitSummary, summaries};
use super::{Place, ScopeUnits, require_reader, today};
use crate::auth::AuthUser;
use crate::entity::{case_plan_item, child, register_event};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::review::{VisitFilter, VisitSort};
use crate::service::audit;
use crate::state::AppState;

/// Filters of `GET /api/v1/children`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChildQuery {
    /// A town (or village) in your scope.
    pub town: Option<Uuid>,
    /// A village in your scope.
    pub village: Option<Uuid>,
    /// A child category, e.g. `scattered_orphan`.
    pub category: Option<String>,
    /// `active` (default) or `exited`; `all` for both.
    pub status: Option<String>,
    /// Only children overdue for a visit.
    pub overdue: Option<bool>,
    /// Part of the name.
    pub q: Option<String>,
}

/// One child on the roster.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChildSummary {
    pub id: Uuid,
    pub name: String,
    pub gender: Option<String>,
    pub birth_date: NaiveDate,
    pub category: String,
    /// `active` or `exited`.
    pub status: String,
    #[serde(flatten)]
    pub place: Place,
    /// Day of the last visit that counts (not a draft), China time.
    pub last_visit_on: Option<NaiveDate>,
    /// The visiting interval that applies, in days.
    pub interval_days: u32,
    /// Where the child stands for the next visit: `{state: upcoming|due_today|overdue|not_tracked, due, days_left|days_overdue}`.
    #[schema(value_type = Object)]
    pub due: DueStatus,
}

/// The roster.
#[derive(Debug, Serialize, ToSchema)]
pub struct Roster {
    pub total: usize,
    /// Of those, overdue for a visit.
    pub overdue: usize,
    pub children: Vec<ChildSummary>,
}

/// A child's page.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChildPage {
    #[serde(flatten)]
    pub child: ChildSummary,
    /// The register entry (identity-card number masked).
    pub guardian_name: Option<String>,
    pub guardian_relation: Option<String>,
    pub guardian_phone: Option<String>,
    pub address: Option<String>,
    pub school: Option<String>,
    pub health_notes: Option<String>,
    pub disability_notes: Option<String>,
    pub benefit_standard_cny: Option<i32>,
    pub exit_reason: Option<String>,
    pub exit_date: Option<NaiveDate>,
    /// Last four characters only.
    pub id_number_masked: Option<String>,
    pub version: i64,
    pub register_events: Vec<RegisterEventView>,
    /// Every visit, newest first.
    pub visits: Vec<VisitSummary>,
    /// The needs ledger (case-plan items).
    pub needs: Vec<NeedView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterEventView {
    /// `added`, `category_changed`, `transferred` or `exited`.
    pub kind: String,
    pub effective_date: NaiveDate,
    /// `director`, `district` or `data_matching`.
    pub source: String,
    pub from_value: Option<String>,
    pub to_value: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NeedView {
    pub id: Uuid,
    /// `living`, `study`, `psychology`, `health` or `safety`.
    pub area: String,
    pub description: String,
    /// `open`, `in_progress`, `done` or `cancelled`.
    pub status: String,
    pub owner: Option<String>,
    pub due_date: Option<NaiveDate>,
}

struct DueFacts {
    intervals: VisitIntervals,
    last: HashMap<Uuid, DateTime<Utc>>,
    added: HashMap<Uuid, NaiveDate>,
    today: NaiveDate,
}

impl DueFacts {
    async fn load(db: &impl sea_orm::ConnectionTrait, villages: Vec<Uuid>) -> AppResult<Self> {
        Ok(Self {
            // Every village of a scope lies in one district.
            intervals: match villages.first() {
                Some(village) => {
                    crate::service::visit_rules::intervals_for_unit(db, *village).await?
                }
                None => VisitIntervals::default(),
            },
            last: repo::review::last_visits(db, villages.clone())
                .await?
                .into_iter()
                .collect(),
            added: repo::review::registered_on(db, villages)
                .await?
                .into_iter()
                .collect(),
            today: today(),
        })
    }

    fn summary(&self, scope: &ScopeUnits, c: &child::Model) -> ChildSummary {
        let last_visit_on = self.last.get(&c.id).map(|at| crate::calendar::day_of(*at));
        let input = DueInput {
            category: c.category.clone(),
            active: c.status == "active",
            interval_override_days: c.visit_interval_days.and_then(|d| u32::try_from(d).ok()),
            registered_on: self
                .added
                .get(&c.id)
                .copied()
                .unwrap_or_else(|| crate::calendar::day_of(c.created_at)),
            last_visit_on,
        };
        ChildSummary {
            id: c.id,
            name: c.name.clone(),
            gender: c.gender.clone(),
            birth_date: c.birth_date,
            category: c.category.clone(),
            status: c.status.clone(),
            place: scope.place(c.village_id),
            last_visit_on,
            interval_days: self
                .intervals
                .interval_days(&input.category, input.interval_override_days),
            due: due_status(&input, self.today, &self.intervals),
        }
    }
}

/// The roster of children in scope, with due dates; `overdue=true` gives
/// the overdue list, most overdue first.
pub async fn roster(state: &AppState, caller: &AuthUser, q: ChildQuery) -> AppResult<Roster> {
    require_reader(caller)?;
    let db = &state.db;
    let scope = ScopeUnits::load(db, caller).await?;
    let mut villages = scope.villages();
    for unit in [q.town, q.village].into_iter().flatten() {
        let under = scope.villages_under(unit)?;
        villages.retain(|v| under.contains(v));
    }
    if let Some(category) = &q.category
        && !CATEGORIES.contains(&category.as_str())
    {
        return Err(AppError::Validation(format!(
            "unknown category `{category}`; expected one of {}",
            CATEGORIES.join(", ")
        )));
    }
    let status = q.status.as_deref().unwrap_or("active");
    if !["active", "exited", "all"].contains(&status) {
        return Err(AppError::Validation(
            "status is active, exited or all".to_owned(),
        ));
    }
    let facts = DueFacts::load(db, villages.clone()).await?;
    let needle = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let mut children: Vec<ChildSummary> = repo::review::children_in(db, villages)
        .await?
        .iter()
        .filter(|c| status == "all" || c.status == status)
        .filter(|c| q.category.as_ref().is_none_or(|cat| &c.category == cat))
        .filter(|c| needle.is_none_or(|n| c.name.contains(n)))
        .map(|c| facts.summary(&scope, c))
        .collect();
    let is_overdue = |c: &ChildSummary| matches!(c.due, DueStatus::Overdue { .. });
    let overdue = children.iter().filter(|c| is_overdue(c)).count();
    if let Some(wanted) = q.overdue {
        children.retain(|c| is_overdue(c) == wanted);
    }
    if q.overdue == Some(true) {
        children.sort_by_key(|c| match c.due {
            DueStatus::Overdue { days_overdue, .. } => -days_overdue,
            _ => 0,
        });
    }
    audit::record_read(
        state,
        caller,
        "children.list",
        None,
        children.iter().map(|c| c.id),
        json!({ "rows": children.len() }),
    )
    .await?;
    Ok(Roster {
        total: children.len(),
        overdue,
        children,
    })
}

/// A child's page.
pub async fn page(state: &AppState, caller: &AuthUser, id: Uuid) -> AppResult<ChildPage> {
    require_reader(caller)?;
    let db = &state.db;
    let scope = ScopeUnits::load(db, caller).await?;
    let child = repo::review::child(db, id)
        .await?
        .filter(|c| !c.deleted && scope.villages().contains(&c.village_id))
        .ok_or_else(|| AppError::not_found("no child with this id in your scope"))?;
    let facts = DueFacts::load(db, vec![child.village_id]).await?;
    let filter = VisitFilter {
        villages: vec![child.village_id],
        child: Some(child.id),
        sort: VisitSort::VisitedDesc,
        ..VisitFilter::default()
    };
    let (_, rows) = repo::review::visits(db, &filter, 0, 1000).await?;
    let visits = summaries(db, &scope, rows).await?;
    let events = repo::review::register_events(db, id).await?;
    let needs = repo::review::case_plan_items(db, id).await?;
    audit::record_read(
        state,
        caller,
        "child.read",
        Some(("child", id)),
        [id],
        json!({ "visits": visits.len(), "needs": needs.len() }),
    )
    .await?;
    Ok(ChildPage {
        child: facts.summary(&scope, &child),
        id_number_masked: child.id_number.as_ref().map(|n| crate::crypto::mask(&n.0)),
        guardian_name: child.guardian_name,
        guardian_relation: child.guardian_relation,
        guardian_phone: child.guardian_phone,
        address: child.address,
        school: child.school,
        health_notes: child.health_notes,
        disability_notes: child.disability_notes,
        benefit_standard_cny: child.benefit_standard_cny,
        exit_reason: child.exit_reason,
        exit_date: child.exit_date,
        version: child.version,
        register_events: events
            .into_iter()
            .map(|e: register_event::Model| RegisterEventView {
                kind: e.kind,
                effective_date: e.effective_date,
                source: e.source,
                from_value: e.from_value,
                to_value: e.to_value,
                reason: e.reason,
            })
            .collect(),
        visits,
        needs: needs
            .into_iter()
            .map(|n: case_plan_item::Model| NeedView {
                id: n.id,
                area: n.area,
                description: n.description,
                status: n.status,
                owner: n.owner,
                due_date: n.due_date,
            })
            .collect(),
    })
}
