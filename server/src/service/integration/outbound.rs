//! Outbound messages: the outbox rows a change writes in its own
//! transaction, and the versioned JSON envelope a row travels in.
//!
//! Kinds (docs/INTEGRATION.md §3): `visit_approved` (written by the review
//! service), `urgent_alert` (written by a push carrying an urgent risk
//! flag), and one kind per register event: `register_added`,
//! `register_category_changed`, `register_transferred`, `register_exited`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use sync_core::record::Record;
use uuid::Uuid;

use crate::entity::{outbox, register_event};
use crate::error::AppResult;
use crate::repo;
use crate::repo::integration::Claimed;

/// The envelope's schema version. A change that removes or renames a field
/// makes a new version; new fields may appear within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON body posted for an outbox row. The same row always gives the
/// same bytes, so every retry carries an identical, identically signed body
/// (only the timestamp header and its signature change).
pub fn envelope(row: &Claimed) -> Value {
    json!({
        "schema_version": SCHEMA_VERSION,
        "event_id": row.id,
        "event_type": row.kind,
        "occurred_at": row.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "child_id": row.order_key,
        "aggregate_id": row.aggregate_id,
        "data": row.payload,
    })
}

/// Outbox rows for register events of `child`, to be written beside the
/// events in the same transaction. `codes` keeps the village codes looked
/// up so far (a batch of changes in one village asks once).
pub async fn register_messages(
    db: &impl ConnectionTrait,
    events: &[register_event::Model],
    child: &Record,
    now: DateTime<Utc>,
    codes: &mut HashMap<Uuid, Option<String>>,
) -> AppResult<Vec<outbox::Model>> {
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        let village = |value: Option<&str>| value.and_then(|v| Uuid::try_parse(v).ok());
        let moved = if event.kind == "transferred" {
            (
                village_code(db, village(event.from_value.as_deref()), codes).await?,
                village_code(db, village(event.to_value.as_deref()), codes).await?,
            )
        } else {
            (None, None)
        };
        let payload = json!({
            "child_id": child.id,
            "external_id": child.get("external_id"),
            "event": event.kind,
            "effective_date": event.effective_date,
            "source": event.source,
            "from": event.from_value,
            "to": event.to_value,
            "from_village_code": moved.0,
            "to_village_code": moved.1,
            "reason": event.reason,
            "recorded_by": event.recorded_by,
            "child": child_summary(db, child, codes).await?,
        });
        rows.push(repo::sync_records::message(
            format!("register_{}", event.kind),
            child.id,
            payload,
            now,
        ));
    }
    Ok(rows)
}

/// The register fields of a child as the platform receives them (the
/// village also by its administrative code). The identity-card number is
/// left out: it is sealed at rest, and an outbox payload is stored as it
/// is; the platform reads it through the change feed.
async fn child_summary(
    db: &impl ConnectionTrait,
    child: &Record,
    codes: &mut HashMap<Uuid, Option<String>>,
) -> AppResult<Value> {
    let village_id = child
        .get_str("village_id")
        .and_then(|v| Uuid::try_parse(v).ok());
    let mut summary = serde_json::Map::new();
    for field in [
        "name",
        "gender",
        "birth_date",
        "category",
        "status",
        "exit_reason",
        "exit_date",
        "village_id",
        "guardian_name",
        "guardian_relation",
        "guardian_phone",
        "benefit_standard_cny",
        "external_id",
    ] {
        summary.insert(field.to_owned(), child.get(field).unwrap_or(Value::Null));
    }
    summary.insert(
        "village_code".to_owned(),
        json!(village_code(db, village_id, codes).await?),
    );
    summary.insert("version".to_owned(), json!(child.version));
    Ok(Value::Object(summary))
}

async fn village_code(
    db: &impl ConnectionTrait,
    id: Option<Uuid>,
    codes: &mut HashMap<Uuid, Option<String>>,
) -> AppResult<Option<String>> {
    let Some(id) = id else {
        return Ok(None);
    };
    if let Some(code) = codes.get(&id) {
        return Ok(code.clone());
    }
    let code = repo::org_units::find(db, id).await?.map(|unit| unit.code);
    codes.insert(id, code.clone());
    Ok(code)
}
