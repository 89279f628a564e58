//! RxDB replication (docs/ADAPTERS.md): an RxDB collection's pull and push
//! handlers mapped onto Seedling's own pull and push — the same merge,
//! idempotency store, scope, purge, audit and conflict machinery; this
//! module only translates.
//!
//! - **Pull**: a pull of the collection's entity ([`pull::pull_entity`]),
//!   its records as documents and its purges as deleted documents
//!   ([`document`]). The checkpoint carries Seedling's cursor. RxDB stops
//!   pulling when a batch holds fewer documents than it asked for, so the
//!   server pages on until the batch is full or the log is read to its end.
//! - **Push**: each row becomes at most one mutation (create, update on
//!   the assumed master's `server_version`, or delete) with a mutation id
//!   made from the row, pushed through [`push::push`] as one batch. Every
//!   row that wrote or was refused is answered with the server's document:
//!   RxDB learns the new `server_version` only from a "conflict", and the
//!   adapter's conflict handler takes the server's state (the server has
//!   already merged; a losing value sits in its conflict queue).
//! - **`conflicts`**: a pull-only collection of the conflict records filed
//!   in the caller's scope, in the order they were filed.

pub mod document;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sync_core::clock::HlcClock;
use sync_core::merge::Reason;
use sync_core::protocol::{
    FetchRequest, MAX_PULL_LIMIT, MutationResult, Op, PROTOCOL_VERSION, PullEncoding, PullRequest,
    PushRequest, RecordRef,
};
use sync_core::record::Entity;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{DeviceUse, admit_caller, now_ms, pull, push, repair};
use crate::auth::{AuthUser, Role};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::repo;
use crate::service::audit;
use crate::state::AppState;

/// How many pages of the log one RxDB pull reads at most to fill its batch
/// (a page's records can repeat: one record changed twice is one document).
const MAX_PAGES_PER_BATCH: usize = 20;

/// The collections an RxDB app replicates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Collection {
    /// A record collection: `children`, `visits`, `case_plan_items`.
    Records(Entity),
    /// The read-only copy of the conflict queue of the caller's scope.
    Conflicts,
}

impl Collection {
    /// The collection named in the path.
    pub fn parse(name: &str) -> AppResult<Self> {
        Ok(match name {
            "children" => Self::Records(Entity::Child),
            "visits" => Self::Records(Entity::Visit),
            "case_plan_items" => Self::Records(Entity::CasePlanItem),
            "conflicts" => Self::Conflicts,
            _ => {
                return Err(AppError::not_found(
                    "no such RxDB collection; expected children, visits, case_plan_items or conflicts",
                ));
            }
        })
    }
}

/// The answer of a pull: RxDB's `{documents, checkpoint}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullAnswer {
    /// Documents in order; a deleted one with `purged` left the scope.
    #[schema(value_type = Vec<Object>)]
    pub documents: Vec<Value>,
    /// `{"cursor": …}`: pass its `cursor` back as `checkpoint`; opaque to
    /// the app.
    #[schema(value_type = Object)]
    pub checkpoint: Value,
}

/// One pushed row, as RxDB's `masterWrite` gets it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushRow {
    /// The server's document as the device last saw it (`null`: new).
    #[schema(value_type = Option<Object>)]
    pub assumed_master_state: Option<Value>,
    /// The device's document now.
    #[schema(value_type = Object)]
    pub new_document_state: Value,
}

/// Pulls the next batch of a collection after `checkpoint`.
pub async fn pull(
    state: &AppState,
    caller: &AuthUser,
    collection: Collection,
    checkpoint: Option<String>,
    batch_size: u32,
) -> AppResult<PullAnswer> {
    let batch_size = batch_size.clamp(1, MAX_PULL_LIMIT);
    match collection {
        Collection::Records(entity) => {
            pull_records(state, caller, entity, checkpoint, batch_size).await
        }
        Collection::Conflicts => pull_conflicts(state, caller, checkpoint, batch_size).await,
    }
}

async fn pull_records(
    state: &AppState,
    caller: &AuthUser,
    entity: Entity,
    mut cursor: Option<String>,
    batch_size: u32,
) -> AppResult<PullAnswer> {
    // The latest document per record id, in the order first met.
    let mut order: Vec<Uuid> = Vec::new();
    let mut latest: BTreeMap<Uuid, Value> = BTreeMap::new();
    for _ in 0..MAX_PAGES_PER_BATCH {
        let request = PullRequest {
            protocol_version: PROTOCOL_VERSION,
            cursor: cursor.clone(),
            limit: batch_size,
            encoding: PullEncoding::Full,
        };
        let page = pull::pull_entity(state, caller, request, entity).await?;
        let documents = page
            .changes
            .iter()
            .map(|record| (record.id, document::to_document(record)))
            .chain(
                page.purges
                    .iter()
                    .map(|purge| (purge.record_id, document::purge_document(purge))),
            );
        for (id, doc) in documents {
            if latest.insert(id, doc).is_none() {
                order.push(id);
            }
        }
        cursor = Some(page.next_cursor);
        if !page.has_more || latest.len() >= batch_size as usize {
            break;
        }
    }
    Ok(PullAnswer {
        documents: order
            .into_iter()
            .filter_map(|id| latest.remove(&id))
            .collect(),
        checkpoint: json!({ "cursor": cursor }),
    })
}

async fn pull_conflicts(
    state: &AppState,
    caller: &AuthUser,
    checkpoint: Option<String>,
    batch_size: u32,
) -> AppResult<PullAnswer> {
    admit_caller(&state.reader, caller, PROTOCOL_VERSION, DeviceUse::Pull).await?;
    let after = checkpoint
        .as_deref()
        .map(parse_conflict_checkpoint)
        .transpose()?;
    let scope = crate::service::review::ScopeUnits::load(&state.reader, caller).await?;
    let rows = repo::review::conflicts_after(
        &state.reader,
        scope.villages(),
        after,
        u64::from(batch_size),
    )
    .await?;
    let last = rows.last().map(|row| (row.created_at, row.id)).or(after);
    let names = crate::service::review::log::ConflictNames::load(&state.reader, &rows).await?;
    audit::record_read(
        state,
        caller,
        "rxdb.conflicts",
        None,
        names.child_ids(),
        json!({ "rows": rows.len() }),
    )
    .await?;
    let documents = rows
        .into_iter()
        .map(|row| {
            // An identity-card number stays off the phones of those who
            // may not read it whole: the values of a conflict about it, or
            // about a child's whole entry (a refused mutation as sent, a
            // delete against an edit), are left out.
            let hidden = caller.role != Role::Admin
                && match row.field.as_deref() {
                    Some(field) => field == "id_number",
                    None => row.entity == "child",
                };
            json!({
                "id": row.id.to_string(),
                "entity": row.entity,
                "record_id": row.record_id.to_string(),
                "field": row.field,
                "kind": row.kind,
                "rule": row.rule,
                "winner": row.winner,
                "local_value": if hidden { Value::Null } else { row.local_value.unwrap_or(Value::Null) },
                "remote_value": if hidden { Value::Null } else { row.remote_value.unwrap_or(Value::Null) },
                "status": row.status,
                "created_at": row.created_at.to_rfc3339(),
                "_deleted": false,
            })
        })
        .collect();
    Ok(PullAnswer {
        documents,
        checkpoint: match last {
            Some((at, id)) => json!({ "cursor": format!("{}|{id}", at.to_rfc3339()) }),
            None => json!({ "cursor": null }),
        },
    })
}

fn parse_conflict_checkpoint(text: &str) -> AppResult<(DateTime<Utc>, Uuid)> {
    let bad = || {
        AppError::bad_request(
            ErrorCode::InvalidCursor,
            "the checkpoint is not one this server made; pull without one to start over",
        )
    };
    let (at, id) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok((
        at.with_timezone(&Utc),
        Uuid::try_parse(id).map_err(|_| bad())?,
    ))
}

/// Pushes RxDB rows as one Seedling push; answers the server's document of
/// every row that wrote or was refused (see the module doc).
pub async fn push(
    state: &AppState,
    caller: &AuthUser,
    collection: Collection,
    rows: Vec<PushRow>,
) -> AppResult<Vec<Value>> {
    let Collection::Records(entity) = collection else {
        return Err(AppError::Validation(
            "the conflicts collection is read-only; resolve conflicts in the console".to_owned(),
        ));
    };
    let mut clock = HlcClock::new(caller.device_id);
    let arrival = clock.tick(now_ms(Utc::now()));
    let mut mutations = Vec::with_capacity(rows.len());
    for row in &rows {
        let mutation = document::to_mutation(
            entity,
            caller.device_id,
            row.assumed_master_state.as_ref(),
            &row.new_document_state,
            arrival,
        )
        .map_err(|document::BadRow(why)| AppError::Validation(why))?;
        mutations.extend(mutation);
    }
    if mutations.is_empty() {
        // Nothing to write; the caller is still checked as for any push.
        admit_caller(&state.reader, caller, PROTOCOL_VERSION, DeviceUse::Push).await?;
        return Ok(Vec::new());
    }
    let deletes: Vec<Uuid> = mutations
        .iter()
        .filter(|mutation| mutation.op == Op::Delete)
        .map(|mutation| mutation.record_id)
        .collect();
    let response = push::push(
        state,
        caller,
        PushRequest {
            protocol_version: PROTOCOL_VERSION,
            device_id: caller.device_id,
            device_hlc: arrival,
            mutations,
            cursor: None,
        },
    )
    .await?;
    // Per record: why its mutation was refused as a whole, if it was.
    let mut written: Vec<(Uuid, Option<Reason>)> = Vec::with_capacity(response.results.len());
    for result in &response.results {
        let answered = match result {
            MutationResult::Applied { record_id, .. }
            | MutationResult::Merged { record_id, .. } => (*record_id, None),
            MutationResult::Rejected {
                record_id, reason, ..
            } => (*record_id, Some(*reason)),
        };
        if !written.iter().any(|(id, _)| *id == answered.0) {
            written.push(answered);
        }
    }
    let fetched = repair::fetch(
        state,
        caller,
        FetchRequest {
            protocol_version: PROTOCOL_VERSION,
            records: written
                .iter()
                .map(|&(id, _)| RecordRef { entity, id })
                .collect(),
        },
    )
    .await?;
    let mut answers: BTreeMap<Uuid, Value> = fetched
        .changes
        .iter()
        .map(|record| (record.id, document::to_document(record)))
        .collect();
    Ok(written
        .into_iter()
        .map(|(id, refused)| {
            answers
                .remove(&id)
                .unwrap_or_else(|| document::gone_document(id, refused, deletes.contains(&id)))
        })
        .collect())
}
