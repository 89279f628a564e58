//! The visit log: visits in the caller's scope with filters, sorting and
//! paging, and one visit's whole history — every version with who changed
//! which field when, its conflicts, amendments and review decisions.
//! Each read that returns visits is audited (`visits.list`, `visit.read`),
//! naming the children they are about.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sync_core::rules::{REVIEW_STATUSES, VISIT_KINDS};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::urgent::UrgentView;
use super::{Place, ScopeUnits, require_reader, start_of};
use crate::auth::AuthUser;
use crate::entity::{child, conflict, user, visit, visit_version};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::review::{UrgentFilter, VisitFilter, VisitSort};
use crate::service::audit;
use crate::state::AppState;

/// Largest page of the visit log.
pub const MAX_PAGE: u64 = 200;

/// Filters of `GET /api/v1/visits`. Dates are days in China Standard Time;
/// `to` is inclusive.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VisitQuery {
    /// A town (or village) in your scope.
    pub town: Option<Uuid>,
    /// A village in your scope.
    pub village: Option<Uuid>,
    /// The director who recorded the visit.
    pub director: Option<Uuid>,
    pub child: Option<Uuid>,
    /// `home_visit`, `phone_follow_up`, `school_visit` or `other`.
    pub kind: Option<String>,
    /// `draft`, `submitted`, `returned` or `approved`.
    pub review_status: Option<String>,
    /// First day, `YYYY-MM-DD`.
    pub from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD` (inclusive).
    pub to: Option<NaiveDate>,
    /// Only visits with (or without) risk flags.
    pub risk: Option<bool>,
    /// Only visits with (or without) open conflicts.
    pub has_conflict: Option<bool>,
    /// Only visits with (or without) proposed amendments.
    pub amended: Option<bool>,
    /// Only visits that raised an urgent risk alert (mandatory reporting):
    /// `any`, `unhandled` (not yet acknowledged) or `handled`. Whatever
    /// the filter, unhandled urgent visits come first in the log.
    pub urgent: Option<String>,
    /// `visited_desc` (default), `visited_asc` or `updated_desc`.
    pub sort: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    /// Visits to skip.
    pub offset: Option<u64>,
}

/// One line of the visit log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct VisitSummary {
    pub id: Uuid,
    /// Server version; send it back with a review decision.
    pub version: i64,
    pub child_id: Uuid,
    pub child_name: String,
    /// Where the child is registered now.
    #[serde(flatten)]
    pub place: Place,
    pub author_id: Uuid,
    pub author_name: String,
    pub kind: String,
    pub visited_at: DateTime<Utc>,
    pub review_status: String,
    pub review_comment: Option<String>,
    /// Number of risk flags.
    pub risk_flags: usize,
    /// The risk flags' codes (`sexual_abuse`, `dropout_risk`, …), in order.
    pub risk_types: Vec<String>,
    /// True when the visit raised an urgent risk alert (mandatory reporting).
    pub urgent: bool,
    /// True while an urgent alert of the visit is not acknowledged.
    pub urgent_unhandled: bool,
    /// Open conflicts about this visit.
    pub open_conflicts: usize,
    /// True when the director proposed an amendment after approval.
    pub amended: bool,
    /// Approved visits are locked: later edits become amendments.
    pub locked: bool,
    pub updated_at: DateTime<Utc>,
}

/// A page of the visit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitPage {
    /// Visits matching the filters in all.
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    pub visits: Vec<VisitSummary>,
}

/// One version of a visit: who changed which fields, from what to what.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    /// `created`, `edited`, `reviewed`, `amendment_accepted` or `deleted`.
    pub kind: String,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub actor_role: Option<String>,
    pub at: DateTime<Utc>,
    /// `[{field, before, after}]`.
    #[schema(value_type = Vec<Object>)]
    pub changes: Value,
}

/// A conflict as the queue and a visit's page show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConflictView {
    pub id: Uuid,
    /// `visit`, `child` or `case_plan_item`.
    pub entity: String,
    pub record_id: Uuid,
    /// The field (`needs#<item id>` for a set item), if about one field.
    pub field: Option<String>,
    /// `concurrent_write`, `refused_field`, `amendment`,
    /// `possible_duplicate`, `visit_after_transfer`, …
    pub kind: String,
    /// The server's side.
    #[schema(value_type = Option<Object>)]
    pub local_value: Option<Value>,
    /// The device's side.
    #[schema(value_type = Option<Object>)]
    pub remote_value: Option<Value>,
    /// The rule that decided it.
    pub rule: Option<String>,
    /// `server` or `client`.
    pub winner: Option<String>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    /// The village the conflict was filed in.
    pub village_id: Option<Uuid>,
    /// The child the record is about (a child itself, a visit's or a
    /// needs item's child); `null` when the record does not exist (a
    /// refused create).
    pub child_id: Option<Uuid>,
    pub child_name: Option<String>,
    /// For a conflict about a visit, when the visit took place.
    pub visited_at: Option<DateTime<Utc>>,
    /// `open` or `resolved`.
    pub status: String,
    #[schema(value_type = Option<Object>)]
    pub resolution: Option<Value>,
    pub resolved_by: Option<Uuid>,
    pub resolved_by_name: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// What a resolution may do: `keep`, `other`, `new` (a field), or
    /// `accept` and `reject` (an amendment), or `keep` alone (a notice);
    /// none for an open `urgent` alert, which is acknowledged on its visit
    /// (`POST /api/v1/visits/{id}/acknowledge`).
    pub actions: Vec<&'static str>,
}

/// A visit with its whole history.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitDetail {
    #[serde(flatten)]
    pub summary: VisitSummary,
    /// Every field of the visit as stored now.
    #[schema(value_type = Object)]
    pub record: Value,
    pub reviewed_by: Option<Uuid>,
    pub reviewed_by_name: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    /// Every version, oldest first.
    pub history: Vec<VersionView>,
    /// Every conflict about the visit (open and resolved), amendments included.
    pub conflicts: Vec<ConflictView>,
    /// The urgent alert and its acknowledgements; `null` when the visit
    /// raised none. (The summary's `urgent` is the boolean.)
    pub urgent_alert: Option<UrgentView>,
}

/// The visit log.
pub async fn list(state: &AppState, caller: &AuthUser, q: VisitQuery) -> AppResult<VisitPage> {
    require_reader(caller)?;
    let db = &state.db;
    let scope = ScopeUnits::load(db, caller).await?;
    let filter = filter_of(&scope, &q)?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let offset = q.offset.unwrap_or(0);
    let (total, rows) = repo::review::visits(db, &filter, offset, limit).await?;
    let visits = summaries(db, &scope, rows).await?;
    audit::record_read(
        state,
        caller,
        "visits.list",
        None,
        visits.iter().map(|v| v.child_id),
        json!({ "rows": visits.len(), "offset": offset }),
    )
    .await?;
    Ok(VisitPage {
        total,
        offset,
        limit,
        visits,
    })
}

fn filter_of(scope: &ScopeUnits, q: &VisitQuery) -> AppResult<VisitFilter> {
    let mut villages = scope.villages();
    for unit in [q.town, q.village].into_iter().flatten() {
        let under: HashSet<Uuid> = scope.villages_under(unit)?.into_iter().collect();
        villages.retain(|v| under.contains(v));
    }
    let one_of = |value: &Option<String>, allowed: &[&str], what: &str| match value {
        Some(v) if !allowed.contains(&v.as_str()) => Err(AppError::Validation(format!(
            "unknown {what} `{v}`; expected one of {}",
            allowed.join(", ")
        ))),
        _ => Ok(()),
    };
    one_of(&q.kind, VISIT_KINDS, "kind")?;
    one_of(&q.review_status, REVIEW_STATUSES, "review_status")?;
    let sort = match q.sort.as_deref() {
        None | Some("visited_desc") => VisitSort::VisitedDesc,
        Some("visited_asc") => VisitSort::VisitedAsc,
        Some("updated_desc") => VisitSort::UpdatedDesc,
        Some(other) => {
            return Err(AppError::Validation(format!(
                "unknown sort `{other}`; expected visited_desc, visited_asc or updated_desc"
            )));
        }
    };
    let urgent = match q.urgent.as_deref() {
        None => None,
        Some("any") => Some(UrgentFilter::Any),
        Some("unhandled") => Some(UrgentFilter::Unhandled),
        Some("handled") => Some(UrgentFilter::Handled),
        Some(other) => {
            return Err(AppError::Validation(format!(
                "unknown urgent `{other}`; expected any, unhandled or handled"
            )));
        }
    };
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(AppError::Validation(
            "`from` must not be after `to`".to_owned(),
        ));
    }
    Ok(VisitFilter {
        villages,
        author: q.director,
        child: q.child,
        kind: q.kind.clone(),
        review_status: q.review_status.clone(),
        from: q.from.map(start_of),
        until: q.to.map(|day| start_of(day + Duration::days(1))),
        has_risk_flags: q.risk,
        has_conflict: q.has_conflict,
        amended: q.amended,
        urgent,
        sort,
    })
}

/// Log lines for visit rows, with names and conflict marks.
pub(crate) async fn summaries(
    db: &impl sea_orm::ConnectionTrait,
    scope: &ScopeUnits,
    rows: Vec<visit::Model>,
) -> AppResult<Vec<VisitSummary>> {
    let ids: Vec<Uuid> = rows.iter().map(|v| v.id).collect();
    let children: HashMap<Uuid, child::Model> = repo::review::children_by_ids(
        db,
        rows.iter()
            .map(|v| v.child_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect(),
    )
    .await?
    .into_iter()
    .map(|c| (c.id, c))
    .collect();
    let users = user_names(
        db,
        rows.iter()
            .map(|v| v.author_id)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect(),
    )
    .await?;
    let marks = repo::review::conflict_marks(db, ids).await?;
    Ok(rows
        .into_iter()
        .map(|v| {
            let child = children.get(&v.child_id);
            let open = marks
                .iter()
                .filter(|c| c.record_id == v.id && c.status == "open")
                .count();
            let amended = marks
                .iter()
                .any(|c| c.record_id == v.id && c.kind == "amendment");
            let alerts = || {
                marks
                    .iter()
                    .filter(|c| c.record_id == v.id && c.kind == "urgent")
            };
            let risk_types = v
                .risk_flags
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    f.get("kind")
                        .or_else(|| f.get("code"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                })
                .collect();
            VisitSummary {
                id: v.id,
                version: v.version,
                child_id: v.child_id,
                child_name: child.map(|c| c.name.clone()).unwrap_or_default(),
                place: scope.place(child.map_or(v.village_id, |c| c.village_id)),
                author_id: v.author_id,
                author_name: users.get(&v.author_id).cloned().unwrap_or_default(),
                kind: v.kind,
                visited_at: v.visited_at,
                locked: v.review_status == "approved",
                review_status: v.review_status,
                review_comment: v.review_comment,
                risk_flags: v.risk_flags.as_array().map_or(0, Vec::len),
                risk_types,
                urgent: alerts().next().is_some(),
                urgent_unhandled: alerts().any(|c| c.status == "open"),
                open_conflicts: open,
                amended,
                updated_at: v.updated_at,
            }
        })
        .collect())
}

pub(crate) async fn user_names(
    db: &impl sea_orm::ConnectionTrait,
    ids: Vec<Uuid>,
) -> AppResult<HashMap<Uuid, String>> {
    Ok(repo::review::users_by_ids(db, ids)
        .await?
        .into_iter()
        .map(|u: user::Model| (u.id, u.display_name))
        .collect())
}

/// A visit in the caller's scope, or 404 (a visit outside the scope is not
/// told apart from a missing one).
pub(crate) async fn visit_in_scope(
    db: &impl sea_orm::ConnectionTrait,
    scope: &ScopeUnits,
    id: Uuid,
) -> AppResult<(visit::Model, child::Model)> {
    let missing = || AppError::not_found("no visit with this id in your scope");
    let visit = repo::review::visit(db, id)
        .await?
        .filter(|v| !v.deleted)
        .ok_or_else(missing)?;
    let child = repo::review::child(db, visit.child_id)
        .await?
        .ok_or_else(missing)?;
    if !scope.villages().contains(&child.village_id) {
        return Err(missing());
    }
    Ok((visit, child))
}

/// One visit with its history, conflicts and amendments.
pub async fn detail(state: &AppState, caller: &AuthUser, id: Uuid) -> AppResult<VisitDetail> {
    require_reader(caller)?;
    let db = &state.db;
    let scope = ScopeUnits::load(db, caller).await?;
    let (visit, child) = visit_in_scope(db, &scope, id).await?;
    let record = repo::synced::load(db, sync_core::record::Entity::Visit, id, false)
        .await?
        .map(|row| Value::Object(row.record.values()))
        .unwrap_or(Value::Null);
    let versions = repo::review::visit_versions(db, id).await?;
    let conflicts = repo::review::conflicts_of(db, "visit", id).await?;
    let acks = repo::review::urgent_acknowledgements(db, id).await?;
    let mut people: HashSet<Uuid> = versions.iter().filter_map(|v| v.actor_id).collect();
    people.extend(conflicts.iter().filter_map(|c| c.actor_id));
    people.extend(visit.reviewed_by);
    people.extend(acks.iter().map(|a| a.actor_id));
    let names = user_names(db, people.into_iter().collect()).await?;
    let reviewed_by = visit.reviewed_by;
    let reviewed_at = visit.reviewed_at;
    let alerts: Vec<conflict::Model> = conflicts
        .iter()
        .filter(|c| c.kind == "urgent")
        .cloned()
        .collect();
    let urgent = super::urgent::view(&visit.risk_flags, &alerts, acks, &names);
    let conflict_names = ConflictNames::load(db, &conflicts).await?;
    let summary = summaries(db, &scope, vec![visit]).await?.remove(0);
    audit::record_read(
        state,
        caller,
        "visit.read",
        Some(("visit", id)),
        [child.id],
        json!({ "versions": versions.len(), "conflicts": conflicts.len() }),
    )
    .await?;
    Ok(VisitDetail {
        summary,
        record,
        reviewed_by,
        reviewed_by_name: reviewed_by.and_then(|id| names.get(&id).cloned()),
        reviewed_at,
        history: versions
            .into_iter()
            .map(|v: visit_version::Model| VersionView {
                version: v.version,
                kind: v.kind,
                actor_name: v.actor_id.and_then(|id| names.get(&id).cloned()),
                actor_id: v.actor_id,
                actor_role: v.actor_role,
                at: v.created_at,
                changes: v.changes,
            })
            .collect(),
        conflicts: conflicts
            .into_iter()
            .map(|c| conflict_view(c, &conflict_names))
            .collect(),
        urgent_alert: urgent,
    })
}

/// What a resolution may do with a conflict of this kind.
pub(crate) fn actions_for(c: &conflict::Model) -> Vec<&'static str> {
    if c.status != "open" {
        return Vec::new();
    }
    match c.kind.as_str() {
        "amendment" => vec!["accept", "reject"],
        // Acknowledged on the visit (`POST /visits/{id}/acknowledge`).
        "urgent" => Vec::new(),
        _ if c.field.is_some() => vec!["keep", "other", "new"],
        _ => vec!["keep"],
    }
}

/// What the conflicts of a page are about, and the names of the people
/// and children they mention.
#[derive(Debug, Default)]
pub(crate) struct ConflictNames {
    pub subjects: HashMap<(String, Uuid), repo::review::ConflictSubject>,
    /// Users (actors, resolvers) by id.
    pub people: HashMap<Uuid, String>,
    /// Children by id.
    pub children: HashMap<Uuid, String>,
}

impl ConflictNames {
    /// Looks up the subjects, people and children of `rows`.
    pub async fn load(
        db: &impl sea_orm::ConnectionTrait,
        rows: &[conflict::Model],
    ) -> AppResult<Self> {
        let subjects = repo::review::conflict_subjects(db, rows).await?;
        let people: HashSet<Uuid> = rows
            .iter()
            .flat_map(|c| [c.actor_id, c.resolved_by])
            .flatten()
            .collect();
        let children: HashSet<Uuid> = subjects.values().map(|s| s.child_id).collect();
        Ok(Self {
            people: user_names(db, people.into_iter().collect()).await?,
            children: repo::review::children_by_ids(db, children.into_iter().collect())
                .await?
                .into_iter()
                .map(|c| (c.id, c.name))
                .collect(),
            subjects,
        })
    }

    /// The children the conflicts are about.
    pub fn child_ids(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.subjects.values().map(|s| s.child_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

pub(crate) fn conflict_view(c: conflict::Model, names: &ConflictNames) -> ConflictView {
    let actions = actions_for(&c);
    let subject = names
        .subjects
        .get(&(c.entity.clone(), c.record_id))
        .copied();
    let child_id = subject.map(|s| s.child_id);
    ConflictView {
        id: c.id,
        entity: c.entity,
        record_id: c.record_id,
        field: c.field,
        kind: c.kind,
        local_value: c.local_value,
        remote_value: c.remote_value,
        rule: c.rule,
        winner: c.winner,
        actor_name: c.actor_id.and_then(|id| names.people.get(&id).cloned()),
        actor_id: c.actor_id,
        village_id: c.village_id,
        child_name: child_id.and_then(|id| names.children.get(&id).cloned()),
        child_id,
        visited_at: subject.and_then(|s| s.visited_at),
        status: c.status,
        resolution: c.resolution,
        resolved_by_name: c.resolved_by.and_then(|id| names.people.get(&id).cloned()),
        resolved_by: c.resolved_by,
        resolved_at: c.resolved_at,
        created_at: c.created_at,
        actions,
    }
}
