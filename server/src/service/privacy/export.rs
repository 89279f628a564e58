//! Subject access: everything Seedling holds about one child, as one JSON
//! document, for the district bureau to hand over when a child or their
//! guardian asks (docs/SECURITY.md, "Subject access").
//!
//! Only district admins may export, and only children of their district:
//! the bureau answers subject-access requests, and the document carries the
//! whole identity-card number and every conflict and audit entry, more
//! than a supervisor's review needs. The export is read and audited in one
//! transaction: a document exists only with its `child.export` entry.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role, Scope};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::service::org::OrgUnitView;
use crate::state::AppState;

/// The version of the document's layout.
pub const FORMAT: &str = "seedling.subject-access/1";

/// Everything about one child.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectExport {
    /// `seedling.subject-access/1`.
    pub format: &'static str,
    pub generated_at: DateTime<Utc>,
    /// The admin who exported.
    pub generated_by: Uuid,
    /// The register entry as stored now, identity-card number in clear.
    #[schema(value_type = Object)]
    pub child: Value,
    /// The village the child is registered in, its town and district.
    pub places: Vec<OrgUnitView>,
    /// Every register event (added, category changed, transferred, exited).
    #[schema(value_type = Vec<Object>)]
    pub register_events: Vec<Value>,
    /// Every visit, deleted ones included, oldest first.
    pub visits: Vec<VisitExport>,
    /// The needs ledger, deleted items included.
    #[schema(value_type = Vec<Object>)]
    pub needs: Vec<Value>,
    /// Conflicts about the register entry and the needs ledger (those about
    /// a visit are under the visit).
    #[schema(value_type = Vec<Object>)]
    pub conflicts: Vec<Value>,
    /// The photos of the visits: metadata here, the bytes at `download`.
    pub attachments: Vec<AttachmentExport>,
    /// Messages to the provincial platform about the child or its visits,
    /// with every delivery attempt.
    pub deliveries: Vec<DeliveryExport>,
    /// Audit entries about the child, its visits, needs and conflicts, and
    /// report reads that named the child; oldest first.
    #[schema(value_type = Vec<Object>)]
    pub audit: Vec<Value>,
    /// The accounts the document refers to.
    pub people: Vec<PersonView>,
}

/// One visit with its whole history.
#[derive(Debug, Serialize, ToSchema)]
pub struct VisitExport {
    /// The visit as stored now.
    #[schema(value_type = Object)]
    pub record: Value,
    /// Every version: who changed which field from what to what.
    #[schema(value_type = Vec<Object>)]
    pub versions: Vec<Value>,
    /// The review decisions among the versions.
    pub review_decisions: Vec<ReviewDecision>,
    /// Conflicts and amendments about the visit.
    #[schema(value_type = Vec<Object>)]
    pub conflicts: Vec<Value>,
}

/// A supervisor's decision on a visit.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewDecision {
    pub version: i64,
    pub at: DateTime<Utc>,
    pub by: Option<Uuid>,
    /// `approved` or `returned`.
    #[schema(value_type = Option<String>)]
    pub review_status: Value,
    #[schema(value_type = Option<String>)]
    pub review_comment: Value,
}

/// A photo's metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttachmentExport {
    pub sha256: String,
    pub content_type: String,
    pub size_bytes: i64,
    /// `complete`, or `uploading` while chunks are missing.
    pub status: String,
    pub uploaded_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// The visits showing it.
    pub visit_ids: Vec<Uuid>,
    /// Where an admin downloads it (`GET`, same token).
    pub download: String,
}

/// An outbound message with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryExport {
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub message: Value,
    #[schema(value_type = Vec<Object>)]
    pub attempts: Vec<Value>,
}

/// An account named in the document.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
}

/// Exports everything about child `id` and audits the export.
#[tracing::instrument(skip(state, caller), fields(caller = %caller.user_id))]
pub async fn export_child(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
) -> AppResult<SubjectExport> {
    caller.require_role(&[Role::Admin])?;
    let txn = crate::repo::begin_write(&state.db).await?;
    let missing = || AppError::not_found("no child with this id in your district");
    let child = repo::review::child(&txn, id).await?.ok_or_else(missing)?;
    let lineage = repo::org_units::lineage(&txn, child.village_id).await?;
    if !Scope::of(caller).contains(&lineage) {
        return Err(missing());
    }
    let mut places = Vec::with_capacity(lineage.len());
    for unit in &lineage {
        places.extend(
            repo::org_units::find(&txn, *unit)
                .await?
                .map(OrgUnitView::from),
        );
    }

    let events = repo::review::register_events(&txn, id).await?;
    let visits = repo::subject::visits(&txn, id).await?;
    let visit_ids: Vec<Uuid> = visits.iter().map(|v| v.id).collect();
    let versions = repo::subject::visit_versions(&txn, visit_ids.clone()).await?;
    let needs = repo::subject::needs(&txn, id).await?;
    let mut record_ids = vec![id];
    record_ids.extend(&visit_ids);
    record_ids.extend(needs.iter().map(|n| n.id));
    let conflicts = repo::subject::conflicts(&txn, record_ids.clone()).await?;
    record_ids.extend(conflicts.iter().map(|c| c.id));

    let mut photo_visits: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for visit in &visits {
        for sha in photo_hashes(&visit.photos) {
            photo_visits.entry(sha).or_default().push(visit.id);
        }
    }
    let attachments =
        repo::subject::attachments(&txn, photo_visits.keys().cloned().collect()).await?;
    let mut aggregates = vec![id];
    aggregates.extend(&visit_ids);
    let messages = repo::subject::outbox(&txn, aggregates).await?;
    let attempts =
        repo::subject::delivery_attempts(&txn, messages.iter().map(|m| m.id).collect()).await?;
    let audit_rows = repo::subject::audit_entries(&txn, id, record_ids).await?;

    let mut people: BTreeSet<Uuid> = BTreeSet::new();
    people.extend(events.iter().filter_map(|e| e.recorded_by));
    for visit in &visits {
        people.insert(visit.author_id);
        people.extend(visit.reviewed_by);
    }
    people.extend(versions.iter().filter_map(|v| v.actor_id));
    people.extend(
        conflicts
            .iter()
            .flat_map(|c| [c.actor_id, c.resolved_by])
            .flatten(),
    );
    people.extend(attachments.iter().filter_map(|a| a.created_by));
    people.extend(audit_rows.iter().filter_map(|a| a.actor_id));
    people.insert(caller.user_id);
    let people = repo::review::users_by_ids(&txn, people.into_iter().collect())
        .await?
        .into_iter()
        .map(|u| PersonView {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            role: u.role,
        })
        .collect();

    let mut visit_conflicts: BTreeMap<Uuid, Vec<Value>> = BTreeMap::new();
    let mut other_conflicts = Vec::new();
    for c in &conflicts {
        let value = to_value(c, &[])?;
        if c.entity == "visit" {
            visit_conflicts.entry(c.record_id).or_default().push(value);
        } else {
            other_conflicts.push(value);
        }
    }
    let mut visits_out = Vec::with_capacity(visits.len());
    for visit in &visits {
        let own: Vec<_> = versions.iter().filter(|v| v.visit_id == visit.id).collect();
        visits_out.push(VisitExport {
            record: to_value(visit, SYNC_METADATA)?,
            review_decisions: own
                .iter()
                .filter(|v| v.kind == "reviewed")
                .map(|v| ReviewDecision {
                    version: v.version,
                    at: v.created_at,
                    by: v.actor_id,
                    review_status: changed_to(&v.changes, "review_status"),
                    review_comment: changed_to(&v.changes, "review_comment"),
                })
                .collect(),
            versions: own
                .iter()
                .map(|v| to_value(v, &[]))
                .collect::<AppResult<_>>()?,
            conflicts: visit_conflicts.remove(&visit.id).unwrap_or_default(),
        });
    }
    let document = SubjectExport {
        format: FORMAT,
        generated_at: Utc::now(),
        generated_by: caller.user_id,
        child: to_value(&child, SYNC_METADATA)?,
        places,
        register_events: events
            .iter()
            .map(|e| to_value(e, &[]))
            .collect::<AppResult<_>>()?,
        visits: visits_out,
        needs: needs
            .iter()
            .map(|n| to_value(n, SYNC_METADATA))
            .collect::<AppResult<_>>()?,
        conflicts: other_conflicts,
        attachments: attachments
            .into_iter()
            .map(|a| AttachmentExport {
                download: format!("/api/v1/attachments/{}", a.sha256),
                visit_ids: photo_visits.remove(&a.sha256).unwrap_or_default(),
                sha256: a.sha256,
                content_type: a.content_type,
                size_bytes: a.size_bytes,
                status: a.status,
                uploaded_by: a.created_by,
                created_at: a.created_at,
                completed_at: a.completed_at,
            })
            .collect(),
        deliveries: messages
            .iter()
            .map(|m| {
                Ok(DeliveryExport {
                    message: to_value(m, &["locked_until"])?,
                    attempts: attempts
                        .iter()
                        .filter(|a| a.outbox_id == m.id)
                        .map(|a| to_value(a, &["worker_id"]))
                        .collect::<AppResult<_>>()?,
                })
            })
            .collect::<AppResult<_>>()?,
        audit: audit_rows
            .iter()
            .map(|a| to_value(a, &["prev_hash"]))
            .collect::<AppResult<_>>()?,
        people,
    };
    audit::record(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "child.export",
            entity: Some("child"),
            record_id: Some(id),
            detail: json!({
                "format": FORMAT,
                "visits": document.visits.len(),
                "needs": document.needs.len(),
                "attachments": document.attachments.len(),
                "deliveries": document.deliveries.len(),
                "audit_entries": document.audit.len(),
            }),
        },
    )
    .await?;
    txn.commit().await?;
    tracing::info!(child = %id, "subject-access export");
    Ok(document)
}

/// Sync bookkeeping left out of the document: per-field clocks say which
/// device wrote when, not anything about the child.
const SYNC_METADATA: &[&str] = &["field_clocks"];

fn to_value(row: &impl Serialize, drop: &[&str]) -> AppResult<Value> {
    let mut value = serde_json::to_value(row)
        .map_err(|err| AppError::Internal(format!("exporting a row: {err}")))?;
    if let Value::Object(map) = &mut value {
        for key in drop {
            map.remove(*key);
        }
    }
    Ok(value)
}

/// The hashes of a visit's photos (`[{id, sha256}]`).
pub(crate) fn photo_hashes(photos: &Value) -> Vec<String> {
    photos
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("sha256").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The value a version changed `field` to (`changes: [{field, before, after}]`).
fn changed_to(changes: &Value, field: &str) -> Value {
    changes
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c.get("field").and_then(Value::as_str) == Some(field))
        .and_then(|c| c.get("after").cloned())
        .unwrap_or(Value::Null)
}
