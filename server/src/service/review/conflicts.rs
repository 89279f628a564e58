//! The conflict queue: open conflicts in the caller's scope — concurrent
//! edits, refused fields, semantic notices (a visit to a transferred
//! child, a possible duplicate) and proposed amendments — each with both
//! values, the rule applied and the winner; and their resolution.
//!
//! Resolving is a normal change through `sync-core` that syncs to devices:
//! `keep` leaves the record as merged, `other` writes the losing value,
//! `new` writes a value the supervisor enters; an amendment is `accept`ed
//! (applied to the locked visit as its author's correction) or `reject`ed.
//! The record change, the conflict's resolution and the audit row commit
//! together. Reading the queue is audited too (`conflicts.list`), naming
//! the children its conflicts are about.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::DatabaseTransaction;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sync_core::protocol::{FieldChange, Mutation, Op};
use sync_core::record::Entity;
use sync_core::rules::{Actor, Role as SyncRole, rules_for};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::decide::applied_version;
use super::log::{ConflictNames, ConflictView, actions_for, conflict_view};
use super::{ScopeUnits, require_reader};
use crate::auth::{AuthUser, Role};
use crate::entity::conflict;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::synced::StoredRow;
use crate::service::audit;
use crate::service::sync::now_ms;
use crate::service::sync::push::{Acting, Batch, apply_one};
use crate::state::AppState;

/// Filters of `GET /api/v1/conflicts`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConflictQuery {
    /// `open` (default), `resolved` or `all`.
    pub status: Option<String>,
    /// A conflict kind, e.g. `amendment` or `concurrent_write`.
    pub kind: Option<String>,
    /// Page size, 1–200 (default 50).
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// A page of the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictPage {
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    pub conflicts: Vec<ConflictView>,
}

/// How to resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Keep the merged result (the winner); for a notice, acknowledge it.
    Keep,
    /// Write the other (losing or refused) value.
    Other,
    /// Write a new value, given in `value`.
    New,
    /// Apply a proposed amendment to the locked visit.
    Accept,
    /// Decline a proposed amendment; the visit stays as approved.
    Reject,
}

/// Body of `POST /api/v1/conflicts/{id}/resolve`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ResolveInput {
    pub action: Action,
    /// The value for `new` (for a set item, the whole item, or `null` to
    /// remove it).
    #[schema(value_type = Option<Object>)]
    pub value: Option<Value>,
    /// Why, for the record.
    pub note: Option<String>,
}

/// The conflict queue.
pub async fn list(
    state: &AppState,
    caller: &AuthUser,
    q: ConflictQuery,
) -> AppResult<ConflictPage> {
    require_reader(caller)?;
    let db = &state.db;
    let scope = ScopeUnits::load(db, caller).await?;
    let status = match q.status.as_deref() {
        None | Some("open") => Some("open"),
        Some("resolved") => Some("resolved"),
        Some("all") => None,
        Some(other) => {
            return Err(AppError::Validation(format!(
                "unknown status `{other}`; expected open, resolved or all"
            )));
        }
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let offset = q.offset.unwrap_or(0);
    let (total, rows) = repo::review::conflicts(
        db,
        scope.villages(),
        status,
        q.kind.as_deref(),
        offset,
        limit,
    )
    .await?;
    let names = ConflictNames::load(db, &rows).await?;
    audit::record_read(
        state,
        caller,
        "conflicts.list",
        None,
        names.child_ids(),
        json!({ "rows": rows.len(), "offset": offset }),
    )
    .await?;
    Ok(ConflictPage {
        total,
        offset,
        limit,
        conflicts: rows.into_iter().map(|c| conflict_view(c, &names)).collect(),
    })
}

/// Resolves one conflict.
pub async fn resolve(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    input: ResolveInput,
) -> AppResult<ConflictView> {
    require_reader(caller)?;
    let txn = crate::repo::begin_write(&state.db).await?;
    let scope = ScopeUnits::load(&txn, caller).await?;
    let missing = || AppError::not_found("no conflict with this id in your scope");
    if !repo::review::conflict_in_villages(&txn, id, &scope.villages()).await? {
        return Err(missing());
    }
    let row = repo::review::conflict_for_update(&txn, id)
        .await?
        .ok_or_else(missing)?;
    if row.status != "open" {
        return Err(AppError::Conflict(
            "this conflict is already resolved".to_owned(),
        ));
    }
    if row.kind == "urgent" {
        return Err(AppError::Validation(
            "an urgent alert is acknowledged on its visit (POST /api/v1/visits/{id}/acknowledge), \
             not resolved here"
                .to_owned(),
        ));
    }
    let action_name = wire(&input.action);
    if !actions_for(&row).contains(&action_name.as_str()) {
        return Err(AppError::Validation(format!(
            "a {} conflict is resolved with {}, not {action_name}",
            row.kind,
            actions_for(&row).join(", ")
        )));
    }
    let now = Utc::now();
    let mut batch = Batch::new();
    let written = match input.action {
        Action::Keep | Action::Reject => None,
        Action::Accept => Some(accept(&txn, caller, &row, &mut batch).await?),
        Action::Other => {
            let value = other_value(&row)?;
            Some(write_field(&txn, caller, &row, value, &mut batch).await?)
        }
        Action::New => {
            let value = input.value.clone().ok_or_else(|| {
                AppError::Validation("`new` needs the value to write in `value`".to_owned())
            })?;
            Some(write_field(&txn, caller, &row, value, &mut batch).await?)
        }
    };
    let resolution = json!({
        "action": action_name,
        "value": input.value,
        "note": input.note,
        "version": written,
    });
    let resolved =
        repo::review::resolve_conflict(&txn, row, resolution.clone(), caller.user_id, now).await?;
    batch.append_changes(&txn, now).await?;
    audit::record(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "conflict.resolve",
            entity: Some("conflict"),
            record_id: Some(resolved.id),
            detail: json!({
                "entity": resolved.entity,
                "record_id": resolved.record_id,
                "kind": resolved.kind,
                "field": resolved.field,
                "resolution": resolution,
            }),
        },
    )
    .await?;
    txn.commit().await?;
    let names = ConflictNames::load(&state.db, std::slice::from_ref(&resolved)).await?;
    crate::metrics::conflict_resolved(&action_name);
    Ok(conflict_view(resolved, &names))
}

fn wire<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn entity_of(row: &conflict::Model) -> AppResult<Entity> {
    serde_json::from_value(json!(row.entity))
        .map_err(|_| AppError::Internal(format!("conflict on unknown entity {}", row.entity)))
}

/// The value that did not win.
fn other_value(row: &conflict::Model) -> AppResult<Value> {
    let value = match row.winner.as_deref() {
        Some("client") => row.local_value.clone(),
        _ => row.remote_value.clone(),
    };
    value.ok_or_else(|| AppError::Validation("this conflict has no other value".to_owned()))
}

async fn load_record(txn: &DatabaseTransaction, entity: Entity, id: Uuid) -> AppResult<StoredRow> {
    repo::synced::load(txn, entity, id, true)
        .await?
        .filter(|row| !row.record.is_deleted())
        .ok_or_else(|| AppError::Conflict("the record was deleted since".to_owned()))
}

/// The visit's author as a director, for writes only the author may make.
fn author_of(row: &StoredRow) -> AppResult<Actor> {
    row.record
        .get_str("author_id")
        .and_then(|a| Uuid::try_parse(a).ok())
        .map(|id| Actor::new(id, SyncRole::Director))
        .ok_or_else(|| AppError::Internal("visit without an author".to_owned()))
}

/// Writes one field (or set item) of the conflict's record.
async fn write_field(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    row: &conflict::Model,
    value: Value,
    batch: &mut Batch,
) -> AppResult<i64> {
    let entity = entity_of(row)?;
    let path = row
        .field
        .as_deref()
        .ok_or_else(|| AppError::Validation("this conflict is not about a field".to_owned()))?;
    let (field, item) = match path.split_once('#') {
        Some((field, item)) => (field, Some(item)),
        None => (path, None),
    };
    let stored = load_record(txn, entity, row.record_id).await?;
    let rule = rules_for(entity)
        .field(field)
        .ok_or_else(|| AppError::Validation(format!("unknown field {field}")))?;
    let acting = if rule.writers.admits_role(caller.role.to_sync()) {
        Acting::AsCaller
    } else if entity == Entity::Visit && caller.role == Role::Supervisor {
        if stored.record.get_str("review_status") == Some("approved") {
            return Err(AppError::Conflict(
                "the visit is approved and locked; return it first or accept an amendment"
                    .to_owned(),
            ));
        }
        Acting::ForAuthor {
            author: author_of(&stored)?,
            amendment: false,
        }
    } else {
        return Err(AppError::forbidden(format!(
            "{field} of a {} is resolved by the district",
            row.entity
        )));
    };
    let hlc = batch.clock.tick(now_ms(Utc::now()));
    let change = match item {
        None if rule.kind.is_set() => whole_set(hlc, stored.record.get(field), value)?,
        None => FieldChange::set(hlc, value),
        Some(item) if value.is_null() => FieldChange::items(hlc, Vec::new(), vec![item.to_owned()]),
        Some(item) => {
            if value.get("id").and_then(Value::as_str) != Some(item) {
                return Err(AppError::Validation(format!(
                    "the new item must keep its id {item}"
                )));
            }
            FieldChange::items(hlc, vec![value], Vec::new())
        }
    };
    let mutation = Mutation {
        mutation_id: Uuid::now_v7(),
        entity,
        record_id: row.record_id,
        op: Op::Update,
        base_version: stored.record.version,
        hlc,
        fields: BTreeMap::from([(field.to_owned(), change)]),
    };
    let status = stored
        .record
        .get_str("review_status")
        .unwrap_or("")
        .to_owned();
    let result = apply_one(txn, caller, mutation, acting, batch).await?;
    applied_version(&result, &status)
}

/// A write of a whole set (a refused set change, or the items a
/// supervisor ticked): `{"add", "remove"}` as the device sent it, or the
/// array of items the set is to hold — those added or replaced, every
/// other current item removed.
fn whole_set(
    hlc: sync_core::clock::Hlc,
    current: Option<Value>,
    value: Value,
) -> AppResult<FieldChange> {
    let ids = |items: &[Value]| -> AppResult<Vec<String>> {
        items
            .iter()
            .map(|item| {
                item.get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| AppError::Validation("every set item needs its `id`".to_owned()))
            })
            .collect()
    };
    match value {
        Value::Object(change) if change.contains_key("add") || change.contains_key("remove") => {
            let add = change
                .get("add")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let remove = change
                .get("remove")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            Ok(FieldChange::items(hlc, add, remove))
        }
        Value::Array(items) => {
            let keep = ids(&items)?;
            let current = current
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default();
            let remove = ids(&current)?
                .into_iter()
                .filter(|id| !keep.contains(id))
                .collect();
            Ok(FieldChange::items(hlc, items, remove))
        }
        _ => Err(AppError::Validation(
            "a set is written as the array of its items, or as `{\"add\", \"remove\"}`".to_owned(),
        )),
    }
}

/// Applies a proposed amendment to the locked visit.
async fn accept(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    row: &conflict::Model,
    batch: &mut Batch,
) -> AppResult<i64> {
    if caller.role != Role::Supervisor {
        return Err(AppError::forbidden(
            "only the town supervisor accepts amendments",
        ));
    }
    let proposed: BTreeMap<String, FieldChange> = row
        .remote_value
        .clone()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| AppError::Internal("amendment without readable fields".to_owned()))?;
    let stored = load_record(txn, Entity::Visit, row.record_id).await?;
    let hlc = batch.clock.tick(now_ms(Utc::now()));
    let fields = proposed
        .into_iter()
        .map(|(name, change)| (name, FieldChange { hlc, op: change.op }))
        .collect();
    let mutation = Mutation {
        mutation_id: Uuid::now_v7(),
        entity: Entity::Visit,
        record_id: row.record_id,
        op: Op::Update,
        base_version: stored.record.version,
        hlc,
        fields,
    };
    let acting = Acting::ForAuthor {
        author: author_of(&stored)?,
        amendment: true,
    };
    let result = apply_one(txn, caller, mutation, acting, batch).await?;
    applied_version(&result, "approved")
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sync_core::clock::Hlc;
    use sync_core::protocol::FieldOp;
    use uuid::Uuid;

    use super::whole_set;

    #[test]
    fn a_whole_set_is_written_as_items_added_and_the_rest_removed() {
        let hlc = Hlc::new(1, 0, Uuid::nil());
        let current = Some(json!([{"id": "a", "area": "living"}, {"id": "b", "area": "study"}]));
        // The items a supervisor ticked: b changed, a dropped.
        let ticked = whole_set(
            hlc,
            current.clone(),
            json!([{"id": "b", "area": "psychology"}]),
        )
        .expect("a set write");
        assert_eq!(
            ticked.op,
            FieldOp::Items {
                add: vec![json!({"id": "b", "area": "psychology"})],
                remove: vec!["a".to_owned()],
            }
        );
        // A refused change as the device sent it.
        let sent = whole_set(
            hlc,
            current.clone(),
            json!({"add": [{"id": "c", "area": "living"}], "remove": ["a"]}),
        )
        .expect("a set write");
        assert_eq!(
            sent.op,
            FieldOp::Items {
                add: vec![json!({"id": "c", "area": "living"})],
                remove: vec!["a".to_owned()],
            }
        );
        assert!(whole_set(hlc, current.clone(), json!("text")).is_err());
        assert!(whole_set(hlc, current, json!([{"area": "living"}])).is_err());
    }
}
