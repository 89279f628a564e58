//! The audit trail: who read or wrote which record, when, and every export
//! and administrative action — append-only and hash-chained.
//!
//! Each row's hash is SHA-256 over the previous row's hash and the row's own
//! content in a canonical form, so editing any row breaks its hash, deleting
//! a row breaks the next row's link, and deleting rows from the end shows as
//! a row count below the writer lock's counter (see migration 000007).
//! [`verify`] walks the chain; `seedling audit verify` runs it.
//!
//! [`record`] runs inside the caller's transaction, so an audit row exists
//! exactly when the change it describes committed. Call it after any
//! change-log append: the lock order is change log, then audit log.
//! [`record_read`] puts a read on the trail after the read, in a short
//! write transaction of its own, shared with the reads waiting beside it
//! ([`reads`]).

pub mod reads;

use std::collections::BTreeSet;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ConnectionTrait, DbErr};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::entity::audit_log;
use crate::error::AppResult;
use crate::repo;
use crate::state::AppState;

/// One thing to put on the record.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The user who acted; `None` for the system itself.
    pub actor_id: Option<Uuid>,
    /// What happened, as `noun.verb`: `visit.approve`, `child.read`, `report.export`.
    pub action: &'static str,
    /// The kind of record concerned, when there is one.
    pub entity: Option<&'static str>,
    pub record_id: Option<Uuid>,
    /// Whatever else an investigator needs: ids read, the comment, the filter.
    pub detail: Value,
}

/// Appends `entry` to the chain inside the caller's transaction.
pub async fn record(db: &impl ConnectionTrait, entry: Entry) -> Result<(), DbErr> {
    record_at(db, entry, Utc::now()).await
}

/// As [`record`], stamped with `at`.
pub async fn record_at(
    db: &impl ConnectionTrait,
    entry: Entry,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    record_many_at(db, vec![entry], at).await
}

/// Appends `entries` in order, each linked to the one before, under one
/// take of the writer lock, with multi-row inserts.
pub async fn record_many_at(
    db: &impl ConnectionTrait,
    entries: Vec<Entry>,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    // The lock's counter is a 4-byte integer; a batch holds a few hundred.
    let count = i32::try_from(entries.len()).unwrap_or(i32::MAX);
    let mut prev_hash = repo::audit::lock_head(db, count).await?;
    let mut rows = Vec::with_capacity(entries.len());
    for entry in entries {
        let mut row = audit_log::Model {
            id: 0,
            // Stored timestamps keep microseconds on every backend; hash what is kept.
            at: at.trunc_subsecs(6),
            actor_id: entry.actor_id,
            action: entry.action.to_owned(),
            entity: entry.entity.map(str::to_owned),
            record_id: entry.record_id,
            detail: Some(entry.detail),
            prev_hash,
            hash: String::new(),
        };
        row.hash = row_hash(&row);
        prev_hash = Some(row.hash.clone());
        rows.push(row);
    }
    repo::audit::insert(db, rows).await
}

/// Puts a read of children's records on the trail: one entry per request,
/// written after the read in one short write transaction that holds no
/// change-log lock (so the lock order holds). `detail` (an object) gets the
/// children the read returned, sorted, under `child_ids`, the compact form
/// [`about_child`] finds. A read that returned no child discloses nothing
/// and writes nothing. `about` is the one record read, if one was.
pub(crate) async fn record_read(
    state: &AppState,
    caller: &AuthUser,
    action: &'static str,
    about: Option<(&'static str, Uuid)>,
    child_ids: impl IntoIterator<Item = Uuid>,
    detail: Value,
) -> AppResult<()> {
    let child_ids: BTreeSet<Uuid> = child_ids.into_iter().collect();
    if child_ids.is_empty() {
        return Ok(());
    }
    let mut detail = match detail {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    detail.insert("child_ids".to_owned(), serde_json::json!(child_ids));
    record_alone(
        state,
        Entry {
            actor_id: Some(caller.user_id),
            action,
            entity: about.map(|(entity, _)| entity),
            record_id: about.map(|(_, id)| id),
            detail: Value::Object(detail),
        },
    )
    .await
}

/// Appends `entry` in a write transaction without the caller's, shared
/// with the entries waiting beside it ([`reads`]), and returns once it has
/// committed: how a read made from a read-only snapshot (a report, a pull
/// page, a change-feed page, a review read) goes on the trail. No
/// change-log lock is held, so the lock order (change log, then audit log)
/// holds.
pub(crate) async fn record_alone(state: &AppState, entry: Entry) -> AppResult<()> {
    reads::append(state, entry).await
}

/// Every row that records a read or write of `child`'s records, in chain
/// order: rows about the child itself (`record_id`) and rows whose detail
/// lists it — a sync push or pull page (`children`), a roster import
/// (`rows[].child_id`), a report, a review read or a photo download
/// (`child_ids`). Answers "who read or
/// wrote this child's record, and when" (docs/SECURITY.md).
pub async fn about_child(
    db: &impl ConnectionTrait,
    child: Uuid,
) -> Result<Vec<audit_log::Model>, DbErr> {
    const PAGE: u64 = 1_000;
    let wanted = Value::String(child.to_string());
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let rows = repo::audit::naming(db, child, after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        found.extend(rows.into_iter().filter(|row| {
            row.record_id == Some(child) || row.detail.as_ref().is_some_and(|d| names(d, &wanted))
        }));
    }
    Ok(found)
}

/// True when `value` holds `wanted` as a whole string anywhere inside it.
fn names(value: &Value, wanted: &Value) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| names(item, wanted)),
        Value::Object(map) => map.values().any(|item| names(item, wanted)),
        other => other == wanted,
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Rows read.
    pub rows: u64,
    /// Rows ever appended, by the writer lock's counter.
    pub appended: u64,
    /// True when the chain is whole and unedited.
    pub intact: bool,
    /// The first problems found, in chain order (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<Problem>,
}

/// One break in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The row at which the chain breaks; `None` for rows missing at the end.
    pub id: Option<i64>,
    /// `edited` (content no longer matches its hash), `unlinked` (its link to
    /// the previous row does not match: a row before it was deleted or
    /// edited together with its hash) or `missing` (rows gone from the end).
    pub kind: &'static str,
    pub message: String,
}

/// How many problems a report lists before it stops looking.
pub const MAX_PROBLEMS: usize = 20;

/// Walks the whole chain in order and reports every break (up to
/// [`MAX_PROBLEMS`]). Reads in pages, so the log can be any size.
pub async fn verify(db: &impl ConnectionTrait) -> Result<VerifyReport, DbErr> {
    const PAGE: u64 = 1_000;
    let mut report = VerifyReport::default();
    let mut previous: Option<String> = None;
    let mut after = 0;
    'pages: loop {
        let rows = repo::audit::page(db, after, PAGE).await?;
        let Some(last) = rows.last() else { break };
        after = last.id;
        for row in rows {
            report.rows += 1;
            if row.prev_hash != previous {
                report.problems.push(Problem {
                    id: Some(row.id),
                    kind: "unlinked",
                    message: format!(
                        "row {} does not follow the row before it: a row was deleted or rewritten",
                        row.id
                    ),
                });
            }
            if row_hash(&row) != row.hash {
                report.problems.push(Problem {
                    id: Some(row.id),
                    kind: "edited",
                    message: format!("row {} was changed after it was written", row.id),
                });
            }
            if report.problems.len() >= MAX_PROBLEMS {
                break 'pages;
            }
            // Follow the stored hash, so one edit is reported once, not
            // again at every later row.
            previous = Some(row.hash);
        }
    }
    report.appended = u64::try_from(repo::audit::appended(db).await?).unwrap_or(0);
    if report.problems.len() < MAX_PROBLEMS && report.rows < report.appended {
        report.problems.push(Problem {
            id: None,
            kind: "missing",
            message: format!(
                "{} rows were appended but only {} remain: rows were deleted from the end",
                report.appended, report.rows
            ),
        });
    }
    report.intact = report.problems.is_empty();
    Ok(report)
}

/// SHA-256, hex, over the previous hash and the row's content, one field
/// per line, the detail as canonical JSON (object keys sorted).
fn row_hash(row: &audit_log::Model) -> String {
    let fields = [
        row.prev_hash.clone().unwrap_or_default(),
        row.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        row.actor_id.map(|id| id.to_string()).unwrap_or_default(),
        row.action.clone(),
        row.entity.clone().unwrap_or_default(),
        row.record_id.map(|id| id.to_string()).unwrap_or_default(),
        row.detail
            .as_ref()
            .map(|detail| canonical(detail).to_string())
            .unwrap_or_default(),
    ];
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update(field.len().to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The same JSON with every object's keys in sorted order, whatever order
/// the database hands them back in.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut sorted = Map::new();
            for key in keys {
                sorted.insert(key.clone(), canonical(&map[key]));
            }
            Value::Object(sorted)
        }
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(detail: Value) -> audit_log::Model {
        audit_log::Model {
            id: 1,
            at: DateTime::parse_from_rfc3339("2026-11-29T08:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            actor_id: None,
            action: "visit.approve".to_owned(),
            entity: Some("visit".to_owned()),
            record_id: None,
            detail: Some(detail),
            prev_hash: None,
            hash: String::new(),
        }
    }

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a = row(serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[{"d":1,"c":2}]}}"#).unwrap());
        let b = row(serde_json::from_str(r#"{"a":{"x":[{"c":2,"d":1}],"y":2},"b":1}"#).unwrap());
        assert_eq!(row_hash(&a), row_hash(&b));
    }

    #[test]
    fn every_field_is_covered() {
        let base = row(json!({"comment": "请补充照片"}));
        let hash = row_hash(&base);
        let mut changed = Vec::new();
        let mut r = base.clone();
        r.action = "visit.return".to_owned();
        changed.push(r);
        let mut r = base.clone();
        r.detail = Some(json!({"comment": "请补充照片。"}));
        changed.push(r);
        let mut r = base.clone();
        r.prev_hash = Some("00".to_owned());
        changed.push(r);
        let mut r = base.clone();
        r.actor_id = Some(Uuid::nil());
        changed.push(r);
        let mut r = base.clone();
        r.record_id = Some(Uuid::nil());
        changed.push(r);
        let mut r = base.clone();
        r.entity = None;
        changed.push(r);
        let mut r = base.clone();
        r.at += chrono::Duration::microseconds(1);
        changed.push(r);
        for r in changed {
            assert_ne!(row_hash(&r), hash, "{r:?}");
        }
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut a = row(json!(null));
        a.action = "visit.approve".to_owned();
        a.entity = Some("visit".to_owned());
        let mut b = a.clone();
        b.action = "visit.approvevisit".to_owned();
        b.entity = Some(String::new());
        assert_ne!(row_hash(&a), row_hash(&b));
    }
}
