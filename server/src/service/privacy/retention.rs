//! Retention for exited children. A child who exits leaves the village's
//! phones at once (the pull purges it, `service::sync::placement`). On the
//! server the record is kept for `retention_exited_years` after the exit's
//! effective date, then *archived*: the personal fields are removed or
//! generalised, what the reports count is kept, the town's and district's
//! phones are told to purge it, and the archive is audited.
//!
//! [`run`] archives every child due, one transaction per child; it is
//! idempotent (an archived child is never due again) and safe with several
//! processes (the archive is a conditional update: one process wins, the
//! other skips).

use chrono::{Datelike, Months, NaiveDate, Utc};
use serde::Serialize;
use serde_json::json;
use sync_core::record::Entity;
use uuid::Uuid;

use crate::entity::child;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::change_log::{NewChange, ScopeColumn};
use crate::service::audit;
use crate::state::AppState;
use crate::storage::Sha256Hex;

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RetentionReport {
    /// The policy applied, in years after the exit (0: archiving is off).
    pub policy_years: u32,
    /// Children who exited on or before this day were due.
    pub cutoff: Option<NaiveDate>,
    /// Children archived by this run.
    pub archived: u64,
    pub archived_ids: Vec<Uuid>,
    /// Photos removed from the store (no other record showed them).
    pub photos_removed: u64,
    /// Photos whose bytes could not be removed (logged; the record is gone,
    /// the bytes can be removed by hand or are removed at the next upload
    /// of the same photo).
    pub photo_errors: u64,
}

/// The name an archived child is listed under: tells rows apart, names no one.
pub fn pseudonym(id: Uuid) -> String {
    format!("已归档-{}", &id.simple().to_string()[..8])
}

/// Today in China time, the day exits are dated in.
pub fn today() -> NaiveDate {
    crate::service::review::today()
}

/// The last exit day that is due on `today` under a policy of `years`.
pub fn cutoff(today: NaiveDate, years: u32) -> Option<NaiveDate> {
    (years > 0).then(|| today.checked_sub_months(Months::new(years.saturating_mul(12))))?
}

/// Archives every child who exited `retention_exited_years` or more before
/// `today` and is not archived yet.
pub async fn run(state: &AppState, today: NaiveDate) -> AppResult<RetentionReport> {
    const PAGE: u64 = 200;
    let years = state.config.retention_exited_years;
    let mut report = RetentionReport {
        policy_years: years,
        cutoff: cutoff(today, years),
        ..RetentionReport::default()
    };
    let Some(cutoff) = report.cutoff else {
        return Ok(report);
    };
    let mut after = Uuid::nil();
    loop {
        let due = repo::retention::due(&state.db, cutoff, after, PAGE).await?;
        let Some(last) = due.last() else { break };
        after = last.id;
        for child in due {
            let id = child.id;
            let Some(photos) = archive_one(state, child, years).await? else {
                continue;
            };
            report.archived += 1;
            report.archived_ids.push(id);
            for sha in photos {
                match state.attachments.delete(&sha).await {
                    Ok(()) => report.photos_removed += 1,
                    Err(err) => {
                        report.photo_errors += 1;
                        tracing::warn!(child = %id, photo = %sha, "removing an archived photo failed: {err}");
                    }
                }
            }
        }
    }
    tracing::info!(archived = report.archived, %cutoff, "retention run");
    Ok(report)
}

/// Archives one child in one transaction; the photos to remove from the
/// store once it committed, or `None` when another process was first.
async fn archive_one(
    state: &AppState,
    child: child::Model,
    years: u32,
) -> AppResult<Option<Vec<Sha256Hex>>> {
    let now = Utc::now();
    let txn = crate::repo::begin_write(&state.db).await?;
    let birth_year =
        NaiveDate::from_ymd_opt(child.birth_date.year(), 1, 1).unwrap_or(child.birth_date);
    if !repo::retention::archive_child(&txn, child.id, &pseudonym(child.id), birth_year, now)
        .await?
    {
        return Ok(None);
    }
    let visits = repo::subject::visits(&txn, child.id).await?;
    let visit_ids: Vec<Uuid> = visits.iter().map(|v| v.id).collect();
    let needs = repo::subject::needs(&txn, child.id).await?;
    let mut photos: Vec<String> = visits
        .iter()
        .flat_map(|v| super::export::photo_hashes(&v.photos))
        .collect();
    photos.sort();
    photos.dedup();
    let mut purges = Vec::new();
    let lineage = repo::org_units::lineage(&txn, child.village_id).await?;
    let scopes: Vec<ScopeColumn> = [
        lineage.get(1).copied().map(ScopeColumn::Town),
        lineage.get(2).copied().map(ScopeColumn::District),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut purge = |entity: Entity, record_id: Uuid, version: i64| {
        for scope in &scopes {
            purges.push(NewChange::Purge {
                entity,
                record_id,
                version,
                scope: *scope,
            });
        }
    };
    purge(Entity::Child, child.id, child.version);
    for visit in &visits {
        purge(Entity::Visit, visit.id, visit.version);
    }
    for need in &needs {
        purge(Entity::CasePlanItem, need.id, need.version);
    }

    let versions = repo::subject::visit_versions(&txn, visit_ids.clone()).await?;
    repo::retention::scrub_versions(&txn, versions).await?;
    for visit in visits {
        repo::retention::scrub_visit(&txn, visit).await?;
    }
    repo::retention::scrub_needs(&txn, child.id).await?;
    let mut records = vec![child.id];
    records.extend(&visit_ids);
    records.extend(needs.iter().map(|n| n.id));
    repo::retention::scrub_conflicts(&txn, records).await?;
    let mut aggregates = vec![child.id];
    aggregates.extend(&visit_ids);
    repo::retention::scrub_delivered(&txn, aggregates).await?;
    let mut removed = Vec::new();
    for sha in photos {
        if repo::attachments::referencing(&txn, &sha).await?.is_empty() {
            repo::retention::forget_attachment(&txn, &sha).await?;
            removed
                .push(Sha256Hex::try_from(sha).map_err(|_| {
                    AppError::Internal("a stored photo hash is not hex".to_owned())
                })?);
        }
    }
    repo::change_log::append(&txn, purges, now).await?;
    audit::record(
        &txn,
        audit::Entry {
            actor_id: None,
            action: "child.archive",
            entity: Some("child"),
            record_id: Some(child.id),
            detail: json!({
                "exit_date": child.exit_date,
                "policy_years": years,
                "visits": visit_ids.len(),
                "needs": needs.len(),
                "photos_removed": removed.len(),
            }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(Some(removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_is_whole_years_before_today_and_zero_is_off() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).unwrap();
        assert_eq!(cutoff(today, 5), NaiveDate::from_ymd_opt(2021, 11, 29));
        let leap = NaiveDate::from_ymd_opt(2028, 2, 29).unwrap();
        assert_eq!(cutoff(leap, 1), NaiveDate::from_ymd_opt(2027, 2, 28));
        assert_eq!(cutoff(today, 0), None);
    }

    #[test]
    fn a_pseudonym_names_no_one_and_tells_children_apart() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(pseudonym(a).starts_with("已归档-"));
        assert_ne!(pseudonym(a), pseudonym(b));
    }
}
