//! Visit rules: the visiting interval per child category that each district
//! configures, over `sync-core`'s assumed defaults.
//!
//! One source of truth: the defaults live only in
//! `sync_core::semantic::VisitIntervals::default()`; the `visit_rules` table
//! holds what a district set. [`effective`] lays the district's rows over
//! the defaults, and the result is the very `VisitIntervals` value that
//! `sync_core::semantic::due_status` takes — on the server for the reports,
//! and on the phone, which reads it from `GET /api/v1/visit-rules`. A
//! child's own interval (`visit_interval_days`) is a synced field of the
//! child record and reaches phones at their next pull.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sync_core::rules::CATEGORIES;
use sync_core::semantic::VisitIntervals;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role};
use crate::entity::visit_rule;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::state::AppState;

/// The longest interval a district may set, in days.
pub const MAX_INTERVAL_DAYS: u32 = 366;

/// A district's visit rules as phones and the console read them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VisitRulesView {
    /// The district the rules belong to.
    pub district_id: Uuid,
    /// The effective intervals, in the shape `sync_core::semantic::VisitIntervals`
    /// deserializes: days per category, and the days for any other category.
    #[schema(value_type = Object, example = json!({"by_category": {"scattered_orphan": 30, "left_behind": 90}, "fallback_days": 30}))]
    pub intervals: VisitIntervals,
    /// One line per category: the effective interval and where it comes from.
    pub rules: Vec<VisitRuleView>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VisitRuleView {
    pub category: String,
    /// The interval in force.
    pub interval_days: u32,
    /// The assumed default (no national rule fixes it).
    pub default_days: u32,
    /// `district` when the district set it, `default` otherwise.
    pub source: String,
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Uuid>,
}

/// Body of `PUT /api/v1/visit-rules/{category}`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SetVisitRule {
    /// Days between visits, 1 to 366.
    #[schema(example = 30)]
    pub interval_days: u32,
}

/// The intervals in force for each of `districts`: the district's rows over
/// the defaults. A district with no rows gets the defaults.
pub async fn effective(
    db: &impl ConnectionTrait,
    districts: Option<Vec<Uuid>>,
) -> AppResult<BTreeMap<Uuid, VisitIntervals>> {
    let mut out: BTreeMap<Uuid, VisitIntervals> = BTreeMap::new();
    if let Some(ids) = &districts {
        for id in ids {
            out.insert(*id, VisitIntervals::default());
        }
    }
    for row in repo::visit_rules::of_districts(db, districts).await? {
        let days = u32::try_from(row.interval_days).unwrap_or(0);
        if days > 0 {
            out.entry(row.district_id)
                .or_default()
                .by_category
                .insert(row.category, days);
        }
    }
    Ok(out)
}

/// The caller's district's rules. Every role reads them: phones compute
/// due dates from them.
pub async fn show(state: &AppState, caller: &AuthUser) -> AppResult<VisitRulesView> {
    let district = district_of(&state.reader, caller.org_unit_id).await?;
    view(&state.reader, district).await
}

/// Sets the caller's district's interval for `category` (admins).
pub async fn set(
    state: &AppState,
    caller: &AuthUser,
    category: &str,
    input: SetVisitRule,
) -> AppResult<VisitRulesView> {
    caller.require_role(&[Role::Admin])?;
    check_category(category)?;
    if !(1..=MAX_INTERVAL_DAYS).contains(&input.interval_days) {
        return Err(AppError::Validation(format!(
            "interval_days must be between 1 and {MAX_INTERVAL_DAYS}"
        )));
    }
    let txn = crate::repo::begin_write(&state.db).await?;
    let district = district_of(&txn, caller.org_unit_id).await?;
    repo::visit_rules::upsert(
        &txn,
        visit_rule::Model {
            district_id: district,
            category: category.to_owned(),
            interval_days: i32::try_from(input.interval_days).unwrap_or(i32::MAX),
            updated_at: Utc::now(),
            updated_by: Some(caller.user_id),
        },
    )
    .await?;
    audit::record(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "visit_rule.set",
            entity: Some("visit_rule"),
            record_id: Some(district),
            detail: json!({"category": category, "interval_days": input.interval_days}),
        },
    )
    .await?;
    let answer = view(&txn, district).await?;
    txn.commit().await?;
    Ok(answer)
}

/// Returns the caller's district to the assumed default for `category`
/// (admins).
pub async fn reset(
    state: &AppState,
    caller: &AuthUser,
    category: &str,
) -> AppResult<VisitRulesView> {
    caller.require_role(&[Role::Admin])?;
    check_category(category)?;
    let txn = crate::repo::begin_write(&state.db).await?;
    let district = district_of(&txn, caller.org_unit_id).await?;
    if repo::visit_rules::delete(&txn, district, category).await? {
        audit::record(
            &txn,
            audit::Entry {
                actor_id: Some(caller.user_id),
                action: "visit_rule.reset",
                entity: Some("visit_rule"),
                record_id: Some(district),
                detail: json!({"category": category}),
            },
        )
        .await?;
    }
    let answer = view(&txn, district).await?;
    txn.commit().await?;
    Ok(answer)
}

fn check_category(category: &str) -> AppResult<()> {
    if CATEGORIES.contains(&category) {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "unknown category `{category}`; expected one of {}",
            CATEGORIES.join(", ")
        )))
    }
}

/// The district at the top of a unit's lineage.
/// The intervals in force for the district `unit` (any org unit) lies in.
pub(crate) async fn intervals_for_unit(
    db: &impl ConnectionTrait,
    unit: Uuid,
) -> AppResult<VisitIntervals> {
    let district = district_of(db, unit).await?;
    Ok(effective(db, Some(vec![district]))
        .await?
        .remove(&district)
        .unwrap_or_default())
}

async fn district_of(db: &impl ConnectionTrait, unit: Uuid) -> AppResult<Uuid> {
    repo::org_units::lineage(db, unit)
        .await?
        .last()
        .copied()
        .ok_or_else(|| AppError::Internal("the caller's org unit is missing".to_owned()))
}

async fn view(db: &impl ConnectionTrait, district: Uuid) -> AppResult<VisitRulesView> {
    let rows = repo::visit_rules::of_districts(db, Some(vec![district])).await?;
    let defaults = VisitIntervals::default();
    let intervals = effective(db, Some(vec![district]))
        .await?
        .remove(&district)
        .unwrap_or_default();
    let rules = CATEGORIES
        .iter()
        .map(|category| {
            let row = rows.iter().find(|r| r.category == *category);
            VisitRuleView {
                category: (*category).to_owned(),
                interval_days: intervals.interval_days(category, None),
                default_days: defaults.interval_days(category, None),
                source: if row.is_some() { "district" } else { "default" }.to_owned(),
                updated_at: row.map(|r| r.updated_at),
                updated_by: row.and_then(|r| r.updated_by),
            }
        })
        .collect();
    Ok(VisitRulesView {
        district_id: district,
        intervals,
        rules,
    })
}
