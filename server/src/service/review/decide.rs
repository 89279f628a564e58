//! Review decisions: a supervisor approves a submitted visit or returns it
//! for revision with a comment. The decision is a normal change merged
//! through `sync-core` as the supervisor (the value-level transitions in
//! `sync_core::rules::REVIEW_TRANSITIONS` decide who may move the status
//! where), so it reaches the director's phone at the next pull; an approval
//! locks the visit and is reported to the provincial platform through the
//! outbox. Decision, change-log rows, outbox row and audit row commit
//! together or not at all.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sync_core::merge::Reason;
use sync_core::protocol::{FieldChange, Mutation, MutationResult, Op};
use sync_core::record::Entity;
use utoipa::ToSchema;
use uuid::Uuid;

use super::ScopeUnits;
use super::log::visit_in_scope;
use crate::auth::{AuthUser, Role};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::sync::now_ms;
use crate::service::sync::push::{Acting, Batch, apply_one};
use crate::state::AppState;

/// Longest review comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// What the supervisor decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// 审核通过: the visit locks.
    Approve,
    /// 退回修改: back to the director with a comment.
    Return,
}

/// Body of `POST /api/v1/visits/{id}/review`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReviewInput {
    pub decision: Decision,
    /// Required when returning: what the director should correct.
    pub comment: Option<String>,
    /// The version of the visit the supervisor reviewed (`version` in the
    /// visit log). A visit changed since is refused with 409.
    pub version: i64,
}

/// The visit after the decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewOutcome {
    pub visit_id: Uuid,
    pub version: i64,
    pub review_status: String,
    pub review_comment: Option<String>,
    pub locked: bool,
}

/// Approves or returns a visit.
pub async fn review(
    state: &AppState,
    caller: &AuthUser,
    visit_id: Uuid,
    input: ReviewInput,
) -> AppResult<ReviewOutcome> {
    if caller.role != Role::Supervisor {
        return Err(AppError::forbidden(
            "only the town supervisor approves or returns visits",
        ));
    }
    let comment = input
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return Err(AppError::Validation(format!(
            "a comment has at most {MAX_COMMENT_CHARS} characters"
        )));
    }
    if input.decision == Decision::Return && comment.is_none() {
        return Err(AppError::Validation(
            "returning a visit needs a comment saying what to correct".to_owned(),
        ));
    }
    let txn = crate::repo::begin_write(&state.db).await?;
    let scope = ScopeUnits::load(&txn, caller).await?;
    let (visit, _) = visit_in_scope(&txn, &scope, visit_id).await?;
    if visit.version != input.version {
        return Err(AppError::Conflict(format!(
            "the visit changed since you opened it (now version {}, you reviewed {}); reload it and review again",
            visit.version, input.version
        )));
    }
    let now = Utc::now();
    let mut batch = Batch::new();
    let hlc = batch.clock.tick(now_ms(now));
    let status = match input.decision {
        Decision::Approve => "approved",
        Decision::Return => "returned",
    };
    let mut fields = BTreeMap::new();
    fields.insert(
        "review_status".to_owned(),
        FieldChange::set(hlc, json!(status)),
    );
    fields.insert(
        "review_comment".to_owned(),
        FieldChange::set(hlc, json!(comment)),
    );
    let mutation = Mutation {
        mutation_id: Uuid::now_v7(),
        entity: Entity::Visit,
        record_id: visit_id,
        op: Op::Update,
        base_version: u64::try_from(input.version).unwrap_or(0),
        hlc,
        fields,
    };
    let result = apply_one(&txn, caller, mutation, Acting::AsCaller, &mut batch).await?;
    let version = applied_version(&result, &visit.review_status)?;
    if input.decision == Decision::Approve {
        enqueue_approved(&txn, visit_id, now).await?;
    }
    batch.append_changes(&txn, now).await?;
    crate::service::audit::record(
        &txn,
        crate::service::audit::Entry {
            actor_id: Some(caller.user_id),
            action: match input.decision {
                Decision::Approve => "visit.approve",
                Decision::Return => "visit.return",
            },
            entity: Some("visit"),
            record_id: Some(visit_id),
            detail: json!({ "version": version, "comment": comment, "from": visit.review_status }),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(ReviewOutcome {
        visit_id,
        version,
        review_status: status.to_owned(),
        review_comment: comment,
        locked: input.decision == Decision::Approve,
    })
}

/// The new version of a change made on the server, or why it was refused.
pub(crate) fn applied_version(result: &MutationResult, status: &str) -> AppResult<i64> {
    let version = match result {
        MutationResult::Applied { version, .. } => *version,
        MutationResult::Merged {
            version, refusals, ..
        } if refusals.is_empty() => *version,
        MutationResult::Merged { refusals, .. } => {
            let what: Vec<String> = refusals
                .iter()
                .map(|r| format!("{}: {}", r.field, r.message))
                .collect();
            return Err(AppError::forbidden(format!("refused: {}", what.join("; "))));
        }
        MutationResult::Rejected {
            reason, message, ..
        } => {
            return Err(match reason {
                Reason::InvalidTransition => AppError::Conflict(format!(
                    "only a submitted visit can be approved or returned; this one is {status}"
                )),
                Reason::RoleNotAllowed | Reason::NotAuthor | Reason::OutOfScope => {
                    AppError::forbidden(message.clone())
                }
                Reason::InvalidValue | Reason::UnknownField | Reason::WrongFieldKind => {
                    AppError::Validation(message.clone())
                }
                _ => AppError::Conflict(message.clone()),
            });
        }
    };
    Ok(i64::try_from(version).unwrap_or(i64::MAX))
}

/// The outbox row reporting an approved visit to the provincial platform:
/// the approved record as stored.
async fn enqueue_approved(
    txn: &DatabaseTransaction,
    visit_id: Uuid,
    now: chrono::DateTime<Utc>,
) -> AppResult<()> {
    let row = repo::synced::load(txn, Entity::Visit, visit_id, false)
        .await?
        .ok_or_else(|| AppError::Internal("approved visit vanished".to_owned()))?;
    let mut payload = row.record.values();
    payload.insert("id".to_owned(), json!(visit_id));
    payload.insert("version".to_owned(), json!(row.record.version));
    repo::sync_records::enqueue(
        txn,
        vec![repo::sync_records::message(
            "visit_approved".to_owned(),
            visit_id,
            Value::Object(payload),
            now,
        )],
    )
    .await?;
    Ok(())
}
