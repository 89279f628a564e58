//! The change feed: `GET /api/v1/integration/changes?cursor=` for a
//! platform that prefers to pull. It pages the change log — the sequence
//! the device pull reads, handed out in commit order under the change-log
//! writer lock — so a cursor never passes a change still being written:
//! gap-free like the sync pull. Each page carries the current state of each
//! record changed in it (a record changed twice appears once, at its latest
//! version), read in one snapshot with the page.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};
use sync_core::record::Entity;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::repo;
use crate::state::AppState;

/// Default and largest page size.
pub const DEFAULT_LIMIT: u64 = 200;
pub const MAX_LIMIT: u64 = 1000;

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedPage {
    pub changes: Vec<FeedChange>,
    /// Pass as `cursor` to read on; stays put when nothing is new.
    pub next_cursor: String,
    /// True when more changes follow right away.
    pub has_more: bool,
}

/// A record as it is now.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedChange {
    /// The change-log sequence of its latest change in this page.
    pub seq: i64,
    /// `child`, `visit` or `case_plan_item`.
    pub entity: String,
    pub id: Uuid,
    pub version: u64,
    pub deleted: bool,
    /// The record's fields, named as in docs/SYNC-PROTOCOL.md.
    #[schema(value_type = Object)]
    pub fields: Value,
}

/// A cursor is the last sequence read, as a decimal string.
fn parse_cursor(cursor: Option<&str>) -> AppResult<i64> {
    match cursor {
        None | Some("") => Ok(0),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|seq| *seq >= 0)
            .ok_or_else(|| {
                AppError::bad_request(
                    ErrorCode::InvalidCursor,
                    "the cursor is not one this feed made; start without a cursor",
                )
            }),
    }
}

pub async fn changes(
    state: &AppState,
    caller: &AuthUser,
    cursor: Option<&str>,
    limit: Option<u64>,
) -> AppResult<FeedPage> {
    caller.require_role(&[Role::Integration, Role::Admin])?;
    let after = parse_cursor(cursor)?;
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let txn = crate::repo::begin_snapshot(&state.reader).await?;
    let mut rows = repo::integration::feed_page(&txn, after, limit + 1).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next = rows.last().map_or(after, |row| row.seq);
    let mut latest: BTreeMap<(String, Uuid), i64> = BTreeMap::new();
    for row in rows {
        latest.insert((row.entity, row.record_id), row.seq);
    }
    let mut by_entity: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for (entity, id) in latest.keys() {
        by_entity.entry(entity.clone()).or_default().push(*id);
    }
    let mut changes = Vec::new();
    for (name, ids) in by_entity {
        let entity = Entity::ALL
            .into_iter()
            .find(|entity| entity.as_str() == name)
            .ok_or_else(|| AppError::Internal(format!("change log names `{name}`")))?;
        for row in repo::synced::load_many(&txn, entity, ids, false).await? {
            let record = row.record;
            changes.push(FeedChange {
                seq: latest
                    .get(&(name.clone(), record.id))
                    .copied()
                    .unwrap_or(next),
                entity: name.clone(),
                id: record.id,
                version: record.version,
                deleted: record.is_deleted(),
                fields: json!(record.values()),
            });
        }
    }
    txn.commit().await?;
    changes.sort_by_key(|change| change.seq);
    if !changes.is_empty() {
        audit_read(state, caller, after, next, &changes).await?;
    }
    Ok(FeedPage {
        changes,
        next_cursor: next.to_string(),
        has_more,
    })
}

/// Puts a page that named records on the audit trail, like a report read
/// (one short write transaction after the snapshot): the cursor, how many
/// records, and the children they are about. Empty pages disclose nothing
/// and are not recorded, so a platform polling every few seconds does not
/// fill the log.
async fn audit_read(
    state: &AppState,
    caller: &AuthUser,
    after: i64,
    next: i64,
    changes: &[FeedChange],
) -> AppResult<()> {
    let mut child_ids: Vec<Uuid> = changes
        .iter()
        .filter_map(|change| {
            if change.entity == Entity::Child.as_str() {
                Some(change.id)
            } else {
                change
                    .fields
                    .get("child_id")
                    .and_then(Value::as_str)
                    .and_then(|id| Uuid::try_parse(id).ok())
            }
        })
        .collect();
    child_ids.sort();
    child_ids.dedup();
    crate::service::audit::record_alone(
        state,
        crate::service::audit::Entry {
            actor_id: Some(caller.user_id),
            action: "change_feed.read",
            entity: None,
            record_id: None,
            detail: json!({
                "cursor": after,
                "next_cursor": next,
                "records": changes.len(),
                "child_ids": child_ids,
            }),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_sequence_numbers_and_garbage_is_refused() {
        assert_eq!(parse_cursor(None).unwrap(), 0);
        assert_eq!(parse_cursor(Some("42")).unwrap(), 42);
        for bad in ["-1", "x", "1.5"] {
            assert_eq!(
                parse_cursor(Some(bad)).unwrap_err().code(),
                "invalid_cursor"
            );
        }
    }
}
