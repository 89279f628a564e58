//! Targeted repair of a phone whose scope checksum differs from the
//! server's: the scope's manifest in pages (entity, id, version of every
//! live record the scope holds, as the checksum sums them), and a fetch of
//! named records whole. A phone repairs with the few records it lacks
//! instead of a new bootstrap (docs/SYNC-PROTOCOL.md §4).

use std::collections::BTreeSet;

use chrono::Utc;
use serde_json::json;
use sync_core::clock::HlcClock;
use sync_core::protocol::{
    FetchRequest, FetchResponse, MAX_FETCH_RECORDS, MAX_MANIFEST_LIMIT, ManifestEntry,
    ManifestResponse, PROTOCOL_VERSION, RecordRef, ScopeChecksum,
};
use sync_core::record::Entity;
use uuid::Uuid;

use super::{DeviceUse, SERVER_NODE, admit_caller, now_ms, placement, pull};
use crate::auth::{AuthUser, Scope};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::repo;
use crate::repo::change_log::ScopeColumn;
use crate::state::AppState;

/// Where a manifest page starts: after this record (`<entity>.<id>`).
fn parse_after(text: &str) -> AppResult<(Entity, Uuid)> {
    let bad = || {
        AppError::bad_request(
            ErrorCode::InvalidCursor,
            "`after` is not a `next_after` this server made; start the manifest again without it",
        )
    };
    let (entity, id) = text.split_once('.').ok_or_else(bad)?;
    let entity = Entity::ALL
        .into_iter()
        .find(|e| e.as_str() == entity)
        .ok_or_else(bad)?;
    Ok((entity, Uuid::try_parse(id).map_err(|_| bad())?))
}

fn render_after(entry: ManifestEntry) -> String {
    format!("{}.{}", entry.0, entry.1.simple())
}

fn scope_column(caller: &AuthUser) -> AppResult<ScopeColumn> {
    placement::scope_column(Scope::of(caller))
        .ok_or_else(|| AppError::forbidden("this account does not sync records to a device"))
}

/// Every live record of the scope, ordered by entity then id, and their
/// checksum: one snapshot, so the page and the checksum agree.
async fn held(
    state: &AppState,
    column: ScopeColumn,
) -> AppResult<(Vec<ManifestEntry>, ScopeChecksum, i64)> {
    let txn = crate::repo::begin_snapshot(&state.reader).await?;
    let head = repo::change_log::head(&txn).await?;
    let mut entries = Vec::new();
    for entity in Entity::ALL {
        for (id, version) in repo::change_log::held_versions(&txn, column, entity).await? {
            entries.push(ManifestEntry(
                entity,
                id,
                u64::try_from(version).unwrap_or(0),
            ));
        }
    }
    txn.commit().await?;
    entries.sort();
    let checksum = ScopeChecksum::of(entries.iter().map(|e| (e.0, e.1, e.2)));
    Ok((entries, checksum, head))
}

/// A page of the caller's scope manifest after `after`.
pub async fn manifest(
    state: &AppState,
    caller: &AuthUser,
    protocol_version: u32,
    after: Option<&str>,
    limit: u32,
) -> AppResult<ManifestResponse> {
    admit_caller(&state.reader, caller, protocol_version, DeviceUse::Pull).await?;
    let column = scope_column(caller)?;
    let after = after.map(parse_after).transpose()?;
    let limit = usize::try_from(limit.clamp(1, MAX_MANIFEST_LIMIT)).unwrap_or(usize::MAX);
    let (entries, scope_checksum, head) = held(state, column).await?;
    let cursor = super::pull::Cursor {
        root: Scope::of(caller).root().unwrap_or_default(),
        seq: head,
        epoch: state.epoch.to_string(),
    }
    .render(caller.user_id, &state.jwt);
    let start = after.map_or(0, |(entity, id)| {
        entries.partition_point(|e| (e.0, e.1) <= (entity, id))
    });
    let page: Vec<ManifestEntry> = entries[start..].iter().take(limit).copied().collect();
    let next_after = (start + page.len() < entries.len())
        .then(|| page.last().copied().map(render_after))
        .flatten();
    Ok(ManifestResponse {
        protocol_version: PROTOCOL_VERSION,
        entries: page,
        next_after,
        scope_checksum,
        cursor: Some(cursor),
    })
}

/// The named records the caller's scope holds, whole; the others listed as
/// missing. The read is put on the audit trail as a pull's is.
pub async fn fetch(
    state: &AppState,
    caller: &AuthUser,
    request: FetchRequest,
) -> AppResult<FetchResponse> {
    admit_caller(
        &state.reader,
        caller,
        request.protocol_version,
        DeviceUse::Pull,
    )
    .await?;
    let column = scope_column(caller)?;
    if request.records.len() > MAX_FETCH_RECORDS {
        return Err(AppError::Validation(format!(
            "a fetch asks for at most {MAX_FETCH_RECORDS} records, not {}",
            request.records.len()
        )));
    }
    let asked: BTreeSet<RecordRef> = request.records.into_iter().collect();
    let txn = crate::repo::begin_snapshot(&state.reader).await?;
    let mut changes = Vec::new();
    let mut missing = Vec::new();
    for entity in Entity::ALL {
        let wanted: Vec<Uuid> = asked
            .iter()
            .filter(|r| r.entity == entity)
            .map(|r| r.id)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let in_scope: BTreeSet<Uuid> = repo::change_log::held_versions(&txn, column, entity)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let (found, gone): (Vec<Uuid>, Vec<Uuid>) =
            wanted.into_iter().partition(|id| in_scope.contains(id));
        missing.extend(gone.into_iter().map(|id| RecordRef { entity, id }));
        for row in repo::synced::load_many(&txn, entity, found, false).await? {
            changes.push(pull::redact(caller.role, row.record));
        }
    }
    txn.commit().await?;
    pull::record_sent(state, caller, "sync.fetch", &changes, json!({})).await?;
    let mut clock = HlcClock::new(SERVER_NODE);
    Ok(FetchResponse {
        protocol_version: PROTOCOL_VERSION,
        server_hlc: clock.tick(now_ms(Utc::now())),
        changes,
        missing,
    })
}
