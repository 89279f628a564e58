//! `pull`: the changes in the caller's scope after a cursor, in pages, with
//! purge notices and the scope checksum.
//!
//! The cursor is `<scope root>.<sequence>`. Sequence numbers are handed out
//! in commit order (see `repo::change_log`), so a page never runs ahead of
//! an uncommitted change. A cursor made for another scope (the user was
//! moved) restarts from the beginning and purges what the old scope held.
//! The page, its records and the checksum are read in one snapshot. A page
//! that carries records is put on the audit trail before it is answered.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use sea_orm::DatabaseTransaction;
use serde_json::json;
use sync_core::clock::HlcClock;
use sync_core::protocol::{
    PROTOCOL_VERSION, PullRequest, PullResponse, Purge, PurgeReason, ScopeChecksum,
};
use sync_core::record::{Entity, Field, Record};
use uuid::Uuid;

use super::{DeviceUse, SERVER_NODE, admit_caller, now_ms, placement};
use crate::auth::jwt::JwtKeys;
use crate::auth::{AuthUser, Role, Scope};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::repo;
use crate::repo::change_log::ScopeColumn;
use crate::service::audit;
use crate::state::AppState;

/// A parsed cursor: the scope it was made for, the last sequence seen and
/// the database's epoch it was made in. On the wire
/// `<scope root>.<sequence>.<tag>`, or `<scope root>.<sequence>.<epoch>.<tag>`
/// once the database has been restored (its epoch is no longer `""`); the
/// tag an HMAC (under a key derived from the token signing keys) over root,
/// sequence, epoch and the user it was made for: a cursor cannot be forged,
/// edited, or replayed by another account, so a scope the caller never held
/// never reaches the purge list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub root: Uuid,
    pub seq: i64,
    pub epoch: String,
}

impl Cursor {
    fn signed_text(&self, user: Uuid) -> String {
        let (root, seq) = (self.root.simple(), self.seq);
        if self.epoch.is_empty() {
            format!("v1|{root}|{seq}|{}", user.simple())
        } else {
            format!("v1|{root}|{seq}|{}|{}", user.simple(), self.epoch)
        }
    }

    fn parse(text: &str, user: Uuid, keys: &JwtKeys) -> AppResult<Self> {
        let bad = || {
            AppError::bad_request(
                ErrorCode::InvalidCursor,
                "the cursor is not one this server made for you; pull without a cursor to start over",
            )
        };
        let parts: Vec<&str> = text.split('.').collect();
        let (root, seq, epoch, tag) = match parts[..] {
            [root, seq, tag] => (root, seq, "", tag),
            [root, seq, epoch, tag] if !epoch.is_empty() => (root, seq, epoch, tag),
            _ => return Err(bad()),
        };
        let root = Uuid::try_parse(root).map_err(|_| bad())?;
        let seq: i64 = seq.parse().ok().filter(|seq| *seq >= 0).ok_or_else(bad)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| bad())?;
        let cursor = Self {
            root,
            seq,
            epoch: epoch.to_owned(),
        };
        if !keys.cursor_tag_matches(&cursor.signed_text(user), &tag) {
            return Err(bad());
        }
        Ok(cursor)
    }

    pub(crate) fn render(&self, user: Uuid, keys: &JwtKeys) -> String {
        let tag = URL_SAFE_NO_PAD.encode(keys.cursor_tag(&self.signed_text(user)));
        if self.epoch.is_empty() {
            format!("{}.{}.{tag}", self.root.simple(), self.seq)
        } else {
            format!("{}.{}.{}.{tag}", self.root.simple(), self.seq, self.epoch)
        }
    }
}

/// Whether `text`, the cursor a device sends with a push, is one this
/// server made for the caller in a history of the database that a restore
/// replaced. A cursor the server cannot read says nothing here (the pull
/// that follows answers it): a push never fails for its cursor.
pub(crate) fn made_before_restore(text: &str, caller: &AuthUser, state: &AppState) -> bool {
    Cursor::parse(text, caller.user_id, &state.jwt)
        .is_ok_and(|cursor| *cursor.epoch != *state.epoch)
}

/// The change-log position a cursor this server made for the caller
/// stands at (a WatermelonDB pull answers it as its `timestamp`).
pub(crate) fn position(text: &str, caller: &AuthUser, state: &AppState) -> AppResult<i64> {
    Cursor::parse(text, caller.user_id, &state.jwt).map(|cursor| cursor.seq)
}

pub async fn pull(
    state: &AppState,
    caller: &AuthUser,
    request: PullRequest,
) -> AppResult<PullResponse> {
    pull_of(state, caller, request, None).await
}

/// A pull of one entity's changes and purges only (an RxDB collection
/// replicates one entity): the same cursor, scope, purge and audit rules.
/// The cursor it answers is a position in this entity's changes, for this
/// entity's next pull. The scope checksum is the whole scope's.
pub async fn pull_entity(
    state: &AppState,
    caller: &AuthUser,
    request: PullRequest,
    entity: Entity,
) -> AppResult<PullResponse> {
    pull_of(state, caller, request, Some(entity)).await
}

async fn pull_of(
    state: &AppState,
    caller: &AuthUser,
    request: PullRequest,
    only: Option<Entity>,
) -> AppResult<PullResponse> {
    admit_caller(
        &state.reader,
        caller,
        request.protocol_version,
        DeviceUse::Pull,
    )
    .await?;
    let scope = Scope::of(caller);
    let column = placement::scope_column(scope)
        .ok_or_else(|| AppError::forbidden("this account does not sync records to a device"))?;
    let root = scope.root().unwrap_or_default();
    let limit = u64::from(request.effective_limit());
    let given = request
        .cursor
        .as_deref()
        .map(|text| Cursor::parse(text, caller.user_id, &state.jwt))
        .transpose()?;

    if given
        .as_ref()
        .is_some_and(|cursor| *cursor.epoch != *state.epoch)
    {
        // Made in a history of the database that a restore replaced.
        return Err(AppError::Restored);
    }
    let txn = crate::repo::begin_snapshot(&state.reader).await?;
    if let Some(cursor) = &given
        && cursor.seq > repo::change_log::head(&txn).await?
    {
        // Made by this server, yet beyond its log: the database was
        // restored from an older backup. Start over rather than miss what
        // the restored log holds.
        return Err(AppError::bad_request(
            ErrorCode::InvalidCursor,
            "the cursor is ahead of this server's change log (restored from a backup?); pull without a cursor to start over",
        ));
    }
    let mut purges = Vec::new();
    let after = match given {
        Some(cursor) if cursor.root == root => cursor.seq,
        Some(old) => {
            purges = left_behind(&txn, old.root, column).await?;
            purges.retain(|purge| only.is_none_or(|entity| purge.entity == entity));
            0
        }
        None => 0,
    };
    let mut rows = repo::change_log::page(&txn, column, after, limit + 1, only).await?;
    let has_more = rows.len() as u64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_seq = rows.last().map_or(after, |row| row.seq);

    // The latest change per record in this page decides: whole record or
    // purge. A record is sent whole only if the scope still holds it at the
    // end of this snapshot: a record whose last change here is a purge (on
    // a later page) is not sent, even whole — its current values belong to
    // another scope.
    let mut latest: BTreeMap<(String, Uuid), String> = BTreeMap::new();
    for row in rows {
        latest.insert((row.entity, row.record_id), row.op);
    }
    let upserted: Vec<Uuid> = latest
        .iter()
        .filter(|(_, op)| *op == "upsert")
        .map(|((_, id), _)| *id)
        .collect();
    for (entity, id, op) in
        repo::change_log::later_changes(&txn, column, next_seq, upserted).await?
    {
        if let Some(last) = latest.get_mut(&(entity, id))
            && *last != "purge"
        {
            // Only whether the record is still held matters here: a later
            // purge leaves it to the page that carries the purge.
            *last = if op == "upsert" {
                "upsert".to_owned()
            } else {
                "gone".to_owned()
            };
        }
    }
    let mut wanted: BTreeMap<Entity, Vec<Uuid>> = BTreeMap::new();
    for ((entity, id), op) in latest {
        let entity = parse_entity(&entity)?;
        match op.as_str() {
            "purge" => purges.push(Purge {
                entity,
                record_id: id,
                reason: PurgeReason::LeftScope,
            }),
            "upsert" => wanted.entry(entity).or_default().push(id),
            _ => {}
        }
    }
    let mut changes = Vec::new();
    for (entity, ids) in wanted {
        for row in repo::synced::load_many(&txn, entity, ids, false).await? {
            changes.push(redact(caller.role, row.record));
        }
    }
    // The compact encoding carries the checksum on the last page only: a
    // device compares it once its pull is done, and a town's costs a read
    // of the scope's log per page.
    let scope_checksum = if request.encoding.is_full() || !has_more {
        Some(checksum(&txn, column).await?)
    } else {
        None
    };
    txn.commit().await?;
    record_sent(
        state,
        caller,
        "sync.pull",
        &changes,
        json!({ "after": after, "through": next_seq }),
    )
    .await?;

    let mut clock = HlcClock::new(SERVER_NODE);
    Ok(PullResponse {
        protocol_version: PROTOCOL_VERSION,
        server_hlc: clock.tick(now_ms(Utc::now())),
        changes,
        purges,
        next_cursor: Cursor {
            root,
            seq: next_seq,
            epoch: state.epoch.to_string(),
        }
        .render(caller.user_id, &state.jwt),
        has_more,
        scope_checksum,
    })
}

/// Puts a read of records on the audit trail before it is answered (a pull
/// page as `sync.pull`, a repair fetch as `sync.fetch`): one entry naming
/// the children whose records it carries (a child's register entry, visits
/// or needs items), in a write transaction of its own since the records
/// were read from a read-only snapshot. A read that carries no record is
/// not recorded. Should the entry fail, the records are not sent.
pub(super) async fn record_sent(
    state: &AppState,
    caller: &AuthUser,
    action: &'static str,
    changes: &[Record],
    extra: serde_json::Value,
) -> AppResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let children = changes
        .iter()
        .filter_map(|record| match record.entity {
            Entity::Child => Some(record.id),
            _ => record
                .get_str("child_id")
                .and_then(|id| Uuid::try_parse(id).ok()),
        })
        .collect();
    let mut detail = json!({
        "id_numbers": match caller.role {
            Role::Admin => "whole",
            Role::Director => "none",
            _ => "masked",
        },
    });
    if let (Some(detail), serde_json::Value::Object(extra)) = (detail.as_object_mut(), extra) {
        detail.extend(extra);
    }
    let entry = super::audit_entry(
        caller,
        action,
        children,
        changes.iter().map(|record| record.entity),
        detail,
    );
    audit::record_alone(state, entry).await
}

/// Purge notices for what a device of the old scope holds that the new
/// scope does not.
async fn left_behind(
    txn: &DatabaseTransaction,
    old_root: Uuid,
    new: ScopeColumn,
) -> AppResult<Vec<Purge>> {
    let mut held = BTreeSet::new();
    for column in [
        ScopeColumn::Village(old_root),
        ScopeColumn::Town(old_root),
        ScopeColumn::District(old_root),
    ] {
        held.extend(repo::change_log::records_in_scope(txn, column).await?);
    }
    let kept: BTreeSet<_> = repo::change_log::records_in_scope(txn, new)
        .await?
        .into_iter()
        .collect();
    held.difference(&kept)
        .map(|(entity, id)| {
            Ok(Purge {
                entity: parse_entity(entity)?,
                record_id: *id,
                reason: PurgeReason::LeftScope,
            })
        })
        .collect()
}

/// The checksum of the live records a fully synced device of this scope
/// holds (the records whose latest change in the scope is an upsert).
pub(super) async fn checksum(
    txn: &DatabaseTransaction,
    column: ScopeColumn,
) -> AppResult<ScopeChecksum> {
    let mut sum = ScopeChecksum::default();
    for entity in Entity::ALL {
        for (id, version) in repo::change_log::held_versions(txn, column, entity).await? {
            sum.add(entity, id, u64::try_from(version).unwrap_or(0));
        }
    }
    Ok(sum)
}

/// What a phone receives of a record: no identity-card number at all on a
/// director's phone (a phone shared with family needs none: DESIGN.md §7),
/// only masked on a supervisor's, whole for admins. The sync metadata stays,
/// so the phone's copy merges and checksums as the server's (the checksum
/// sums versions, not fields).
pub(super) fn redact(role: Role, mut record: Record) -> Record {
    if record.entity != Entity::Child {
        return record;
    }
    match role {
        Role::Director => {
            record.fields.remove("id_number");
        }
        Role::Admin => {}
        _ => {
            if let Some(Field::Register(register)) = record.fields.get_mut("id_number")
                && let Some(number) = register.value.as_str()
            {
                register.value = crate::crypto::mask(number).into();
            }
        }
    }
    record
}

fn parse_entity(name: &str) -> AppResult<Entity> {
    Entity::ALL
        .into_iter()
        .find(|entity| entity.as_str() == name)
        .ok_or_else(|| AppError::Internal(format!("change log names an unknown entity `{name}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(secret: &[u8]) -> JwtKeys {
        JwtKeys::new("k1", [("k1", secret)], 900).expect("a key ring")
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let keys = ring(b"a-test-secret-of-at-least-32-bytes!!");
        let user = Uuid::new_v4();
        let cursor = Cursor {
            root: Uuid::new_v4(),
            seq: 42,
            epoch: String::new(),
        };
        let text = cursor.render(user, &keys);
        assert_eq!(Cursor::parse(&text, user, &keys).unwrap(), cursor);
        let (unsigned, _) = text.rsplit_once('.').unwrap();
        let edited = text.replacen(".42.", ".41.", 1);
        let other_root = text.replacen(
            &cursor.root.simple().to_string(),
            &Uuid::nil().simple().to_string(),
            1,
        );
        let other_keys = ring(b"another-secret-of-at-least-32-bytes!");
        for bad in [
            "",
            "42",
            "x.1",
            unsigned,
            &format!("{}.0", Uuid::nil().simple()),
            &format!("{}.-1.AAAA", Uuid::nil().simple()),
            &edited,
            &other_root,
        ] {
            assert_eq!(
                Cursor::parse(bad, user, &keys).unwrap_err().code(),
                "invalid_cursor",
                "{bad}"
            );
        }
        // Another account, or another server's keys: refused too.
        assert!(Cursor::parse(&text, Uuid::new_v4(), &keys).is_err());
        assert!(Cursor::parse(&text, user, &other_keys).is_err());
    }

    #[test]
    fn a_cursor_carries_its_epoch_under_the_signature() {
        let keys = ring(b"a-test-secret-of-at-least-32-bytes!!");
        let user = Uuid::new_v4();
        let cursor = Cursor {
            root: Uuid::new_v4(),
            seq: 7,
            epoch: "3f2a9c".to_owned(),
        };
        let text = cursor.render(user, &keys);
        assert_eq!(text.split('.').count(), 4, "{text}");
        assert_eq!(Cursor::parse(&text, user, &keys).unwrap(), cursor);
        // The epoch cannot be edited, nor dropped to pass for a cursor of
        // the original history.
        let edited = text.replacen(".3f2a9c.", ".3f2a9d.", 1);
        let dropped = text.replacen(".3f2a9c.", ".", 1);
        for bad in [edited, dropped] {
            assert_eq!(
                Cursor::parse(&bad, user, &keys).unwrap_err().code(),
                "invalid_cursor",
                "{bad}"
            );
        }
    }
}
