//! WatermelonDB sync (docs/ADAPTERS.md): the `pullChanges` and
//! `pushChanges` that `synchronize()` calls, mapped onto Seedling's own
//! pull and push — the same merge, idempotency store, scope, purge, audit
//! and conflict machinery; this module only translates ([`raw`]).
//!
//! - **Pull**: native pull pages read on until the answer holds `limit`
//!   changes or the log is read to its end; every live record is sent as
//!   `updated` (the app syncs with `sendCreatedAsUpdated`), a tombstone or
//!   a purge as `deleted`. `timestamp` is the change-log position the
//!   answer reaches, plus one — never wall time — and `cursor` is the signed
//!   pull cursor at that position, which the app sends back beside
//!   `last_pulled_at`. WatermelonDB 0.28 applies one answer as one batch
//!   and has no paged pull, so `has_more` tells the adapter to sync again.
//! - **Push**: each raw record becomes at most one mutation (`created` a
//!   create; `updated` the columns in `_changed` on its `server_version`; a
//!   `deleted` id a delete), pushed through [`push::push`] as one batch.
//!   WatermelonDB marks everything it pushed as synced, so the answer
//!   carries, as changes to apply at the next pull, the server's copy of
//!   every pushed record the push did not plainly apply: a refused field's
//!   value, a rejected edit (an approved visit's amendment), a record that
//!   left the scope or was never accepted (`deleted`). A row that cannot be
//!   read (an `id` that is not a UUID, a JSON column that does not parse)
//!   is answered in `refused` on its own, and the rest applies: one bad row
//!   never holds back a device's other changes.

pub mod raw;

use std::collections::BTreeMap;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_core::clock::HlcClock;
use sync_core::merge::Reason;
use sync_core::protocol::{
    FetchRequest, MAX_FETCH_RECORDS, MAX_PULL_LIMIT, Mutation, MutationResult, PROTOCOL_VERSION,
    PullEncoding, PullRequest, PushRequest, RecordRef, ScopeChecksum,
};
use sync_core::record::{Entity, Record};
use utoipa::ToSchema;
use uuid::Uuid;

use super::rxdb::document::BadRow;
use super::{DeviceUse, admit_caller, now_ms, pull, push, repair};
use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::state::AppState;

/// Changes one pull answers by default.
pub const DEFAULT_PULL_CHANGES: u32 = 2000;
/// The most changes one pull answers.
pub const MAX_PULL_CHANGES: u32 = 5000;
/// How many native pages one pull reads at most.
const MAX_PAGES: usize = 20;

/// The WatermelonDB table of each entity.
pub const TABLES: [(Entity, &str); 3] = [
    (Entity::Child, "children"),
    (Entity::Visit, "visits"),
    (Entity::CasePlanItem, "case_plan_items"),
];

fn table_of(entity: Entity) -> &'static str {
    TABLES
        .iter()
        .find(|(e, _)| *e == entity)
        .map_or("unknown", |(_, table)| table)
}

/// The changes of one table, as WatermelonDB takes them.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct TableChanges {
    /// Always empty: live records come as `updated`.
    #[schema(value_type = Vec<Object>)]
    pub created: Vec<Value>,
    /// Raw records, whole.
    #[schema(value_type = Vec<Object>)]
    pub updated: Vec<Value>,
    /// Ids of records deleted or gone from the scope.
    pub deleted: Vec<Uuid>,
}

/// The answer of a pull.
#[derive(Debug, Serialize, ToSchema)]
pub struct PullAnswer {
    /// `children`, `visits` and `case_plan_items`.
    pub changes: BTreeMap<&'static str, TableChanges>,
    /// The change-log position reached, plus one: `synchronize()` keeps it
    /// as `lastPulledAt`.
    pub timestamp: i64,
    /// The signed pull cursor at `timestamp`: send it back with it.
    pub cursor: String,
    /// More changes wait: sync again.
    pub has_more: bool,
    /// Checksum of the whole scope as the server sees it (live records).
    #[schema(value_type = Object)]
    pub scope_checksum: ScopeChecksum,
}

/// A pushed deletion: WatermelonDB's bare id, or the id with the
/// `server_version` the app held (the adapter sends it when it can read it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Deleted {
    /// An id: deleted on the server's current version.
    Id(Uuid),
    /// An id and the version the app deleted.
    Known {
        /// The record.
        id: Uuid,
        /// The version the app held; null when unknown.
        server_version: Option<u64>,
    },
}

/// The pushed changes of one table.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushTable {
    /// Raw records made on the device.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub created: Vec<Value>,
    /// Raw records edited on the device, with `_changed`.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub updated: Vec<Value>,
    /// Records deleted on the device.
    #[serde(default)]
    pub deleted: Vec<Deleted>,
}

/// What `pushChanges` sends.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PushBody {
    /// Table name → its changes.
    pub changes: BTreeMap<String, PushTable>,
}

/// A pushed row the server could not read (an `id` that is not a UUID, a
/// JSON column that does not parse): refused on its own, while the rest of
/// the push applies. The adapter keeps it unsynced on the device.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedRow {
    /// The row's table.
    pub table: &'static str,
    /// The row's `id` as sent (not always a UUID).
    pub id: String,
    /// Always `invalid_value`.
    #[schema(value_type = String)]
    pub reason: Reason,
    /// What is wrong with it.
    pub message: String,
}

/// The answer of a push.
#[derive(Debug, Serialize, ToSchema)]
pub struct PushAnswer {
    /// The result of every mutation, as the sync push answers it.
    #[schema(value_type = Vec<Object>)]
    pub results: Vec<MutationResult>,
    /// The rows that could not be read, each refused on its own.
    pub refused: Vec<RefusedRow>,
    /// The server's copy of the records the push did not plainly apply,
    /// to apply at the next pull (WatermelonDB marks what it pushed as
    /// synced).
    pub changes: BTreeMap<&'static str, TableChanges>,
}

fn empty_changes() -> BTreeMap<&'static str, TableChanges> {
    TABLES
        .iter()
        .map(|(_, table)| (*table, TableChanges::default()))
        .collect()
}

fn bad_cursor(why: &str) -> AppError {
    AppError::bad_request(ErrorCode::InvalidCursor, why)
}

/// Pulls the changes after `cursor` (at `last_pulled_at`).
pub async fn pull(
    state: &AppState,
    caller: &AuthUser,
    last_pulled_at: Option<i64>,
    cursor: Option<String>,
    limit: u32,
) -> AppResult<PullAnswer> {
    let limit = limit.clamp(1, MAX_PULL_CHANGES) as usize;
    match (&cursor, last_pulled_at) {
        (None, Some(_)) => {
            return Err(bad_cursor(
                "`last_pulled_at` comes with the `cursor` its pull answered; pull without either to start over",
            ));
        }
        (Some(text), Some(at)) if pull::position(text, caller, state)? + 1 != at => {
            return Err(bad_cursor(
                "the cursor is not the one answered with this `last_pulled_at`; pull without either to start over",
            ));
        }
        _ => {}
    }
    // The latest state per record, in the order first met.
    let mut order: Vec<(Entity, Uuid)> = Vec::new();
    let mut latest: BTreeMap<(Entity, Uuid), Option<Record>> = BTreeMap::new();
    let mut cursor = cursor;
    let mut checksum = None;
    let mut has_more = false;
    for _ in 0..MAX_PAGES {
        let wanted = (limit - latest.len().min(limit)).clamp(1, MAX_PULL_LIMIT as usize);
        let page = pull::pull(
            state,
            caller,
            PullRequest {
                protocol_version: PROTOCOL_VERSION,
                cursor: cursor.clone(),
                limit: u32::try_from(wanted).unwrap_or(MAX_PULL_LIMIT),
                // Every page's checksum: the loop may stop before the last.
                encoding: PullEncoding::Full,
            },
        )
        .await?;
        let states = page
            .changes
            .into_iter()
            .map(|record| {
                let key = (record.entity, record.id);
                (key, (!record.is_deleted()).then_some(record))
            })
            .chain(
                page.purges
                    .iter()
                    .map(|purge| ((purge.entity, purge.record_id), None)),
            );
        for (key, now) in states {
            if latest.insert(key, now).is_none() {
                order.push(key);
            }
        }
        cursor = Some(page.next_cursor);
        checksum = page.scope_checksum;
        has_more = page.has_more;
        if !has_more || latest.len() >= limit {
            break;
        }
    }
    let cursor = cursor.unwrap_or_default();
    let mut changes = empty_changes();
    for key in order {
        let table = changes.entry(table_of(key.0)).or_default();
        match latest.remove(&key).flatten() {
            Some(record) => table.updated.push(raw::to_raw(&record)),
            None => table.deleted.push(key.1),
        }
    }
    Ok(PullAnswer {
        changes,
        timestamp: pull::position(&cursor, caller, state)? + 1,
        cursor,
        has_more,
        scope_checksum: checksum.unwrap_or_default(),
    })
}

/// One pushed row, read: the mutation it stands for, if any.
struct Row {
    entity: Entity,
    id: Uuid,
    mutation: Option<Mutation>,
}

/// Pushes WatermelonDB's changes as one Seedling push (see the module doc).
pub async fn push(state: &AppState, caller: &AuthUser, body: PushBody) -> AppResult<PushAnswer> {
    let mut tables = Vec::new();
    for (name, changes) in body.changes {
        let entity = TABLES
            .iter()
            .find(|(_, table)| *table == name)
            .map(|(entity, _)| *entity)
            .ok_or_else(|| {
                AppError::Validation(format!(
                    "no such table `{name}`; Seedling syncs children, visits and case_plan_items"
                ))
            })?;
        tables.push((entity, changes));
    }
    // The server's copy of every edited or deleted record, to diff against.
    let mut asked = Vec::new();
    for (entity, changes) in &tables {
        for raw in &changes.updated {
            if let Ok(id) = raw::raw_id(raw) {
                asked.push(RecordRef {
                    entity: *entity,
                    id,
                });
            }
        }
        for deleted in &changes.deleted {
            let (Deleted::Id(id) | Deleted::Known { id, .. }) = deleted;
            asked.push(RecordRef {
                entity: *entity,
                id: *id,
            });
        }
    }
    let mut current = fetch(state, caller, asked).await?;

    let mut clock = HlcClock::new(caller.device_id);
    let arrival = clock.tick(now_ms(Utc::now()));
    let device = caller.device_id;
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for (entity, changes) in &tables {
        let entity = *entity;
        let pushed = (changes.created.iter().map(|raw| (raw, true)))
            .chain(changes.updated.iter().map(|raw| (raw, false)));
        for (raw, created) in pushed {
            let read = raw::raw_id(raw).and_then(|id| {
                let mutation = if created {
                    raw::created(entity, device, raw, arrival)?
                } else {
                    raw::updated(entity, device, raw, current.get(&(entity, id)), arrival)?
                };
                Ok((id, mutation))
            });
            match read {
                Ok((id, mutation)) => rows.push(Row {
                    entity,
                    id,
                    mutation,
                }),
                Err(BadRow(message)) => refused.push(RefusedRow {
                    table: table_of(entity),
                    id: match raw.get("id") {
                        Some(Value::String(id)) => id.clone(),
                        Some(other) => other.to_string(),
                        None => String::new(),
                    },
                    reason: Reason::InvalidValue,
                    message,
                }),
            }
        }
        for deleted in &changes.deleted {
            let (id, base) = match deleted {
                Deleted::Id(id) => (*id, None),
                Deleted::Known { id, server_version } => (*id, *server_version),
            };
            let now = current.get(&(entity, id));
            let mutation = raw::deleted(entity, device, id, base, now, arrival)
                .map_err(|BadRow(why)| AppError::Validation(why))?;
            rows.push(Row {
                entity,
                id,
                mutation,
            });
        }
    }
    current.clear();

    let mutations: Vec<Mutation> = rows.iter().filter_map(|row| row.mutation.clone()).collect();
    let results = if mutations.is_empty() {
        // Nothing to write; the caller is still checked as for any push.
        admit_caller(&state.reader, caller, PROTOCOL_VERSION, DeviceUse::Push).await?;
        Vec::new()
    } else {
        push::push(
            state,
            caller,
            PushRequest {
                protocol_version: PROTOCOL_VERSION,
                device_id: device,
                device_hlc: arrival,
                mutations,
                cursor: None,
            },
        )
        .await?
        .results
    };

    // The records to send back: all but those the push plainly applied.
    let applied: Vec<Uuid> = results
        .iter()
        .filter_map(|result| match result {
            MutationResult::Applied { record_id, .. } => Some(*record_id),
            _ => None,
        })
        .collect();
    let mut send_back: Vec<RecordRef> = Vec::new();
    for row in &rows {
        let wanted = RecordRef {
            entity: row.entity,
            id: row.id,
        };
        if (row.mutation.is_none() || !applied.contains(&row.id)) && !send_back.contains(&wanted) {
            send_back.push(wanted);
        }
    }
    let held = fetch(state, caller, send_back.clone()).await?;
    let mut changes = empty_changes();
    for wanted in send_back {
        let table = changes.entry(table_of(wanted.entity)).or_default();
        match held.get(&(wanted.entity, wanted.id)) {
            Some(record) if !record.is_deleted() => table.updated.push(raw::to_raw(record)),
            _ => table.deleted.push(wanted.id),
        }
    }
    Ok(PushAnswer {
        results,
        refused,
        changes,
    })
}

/// The caller's copy of the named records, by entity and id (those its
/// scope holds), fetched in pages of the fetch's limit.
async fn fetch(
    state: &AppState,
    caller: &AuthUser,
    records: Vec<RecordRef>,
) -> AppResult<BTreeMap<(Entity, Uuid), Record>> {
    let mut held = BTreeMap::new();
    for chunk in records.chunks(MAX_FETCH_RECORDS) {
        let answer = repair::fetch(
            state,
            caller,
            FetchRequest {
                protocol_version: PROTOCOL_VERSION,
                records: chunk.to_vec(),
            },
        )
        .await?;
        held.extend(
            answer
                .changes
                .into_iter()
                .map(|record| ((record.entity, record.id), record)),
        );
    }
    Ok(held)
}
