//! The rows a mutation writes beside its record: a visit's history row,
//! register events for a child's register entry, and the urgent alert.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sync_core::protocol::Mutation;
use sync_core::record::Record;
use uuid::Uuid;

use super::Acting;
use crate::auth::{AuthUser, Role};
use crate::entity::{outbox, register_event, visit_version};
use crate::repo::synced::StoredRow;

/// One row of a visit's history: which fields changed from what to what,
/// by whom, at which version.
pub(super) fn visit_version(
    caller: &AuthUser,
    mutation: &Mutation,
    record: &Record,
    current: Option<&StoredRow>,
    acting: Acting,
    now: DateTime<Utc>,
) -> visit_version::Model {
    let before = current.map(|row| row.record.values()).unwrap_or_default();
    let after = record.values();
    let mut names: Vec<&String> = before.keys().chain(after.keys()).collect();
    names.sort();
    names.dedup();
    let changes: Vec<Value> = names
        .into_iter()
        .filter(|name| before.get(*name) != after.get(*name))
        .map(|name| json!({ "field": name, "before": before.get(name), "after": after.get(name) }))
        .collect();
    let review_only = changes.iter().all(|c| {
        matches!(
            c["field"].as_str(),
            Some("review_status" | "review_comment")
        )
    });
    let kind = if current.is_none() {
        "created"
    } else if record.is_deleted() {
        "deleted"
    } else if matches!(
        acting,
        Acting::ForAuthor {
            amendment: true,
            ..
        }
    ) {
        "amendment_accepted"
    } else if review_only && !changes.is_empty() {
        "reviewed"
    } else {
        "edited"
    };
    visit_version::Model {
        id: Uuid::now_v7(),
        visit_id: record.id,
        version: i64::try_from(record.version).unwrap_or(i64::MAX),
        actor_id: Some(caller.user_id),
        actor_role: Some(caller.role.as_str().to_owned()),
        mutation_id: Some(mutation.mutation_id),
        kind: kind.to_owned(),
        changes: Value::Array(changes),
        created_at: now,
    }
}

/// Register events for what changed in a child's register entry.
pub(super) fn register_events(
    caller: &AuthUser,
    after: &Record,
    before: Option<&Record>,
    now: DateTime<Utc>,
) -> Vec<register_event::Model> {
    let today = crate::calendar::day_of(now);
    let source = match caller.role {
        Role::Integration => "data_matching",
        Role::Director => "director",
        Role::Supervisor | Role::Admin => "district",
    };
    let event = |kind: &str, from: Option<&str>, to: Option<&str>, date, reason: Option<&str>| {
        register_event::Model {
            id: Uuid::now_v7(),
            child_id: after.id,
            kind: kind.to_owned(),
            effective_date: date,
            source: source.to_owned(),
            from_value: from.map(str::to_owned),
            to_value: to.map(str::to_owned),
            reason: reason.map(str::to_owned),
            recorded_by: Some(caller.user_id),
            created_at: now,
        }
    };
    let Some(before) = before else {
        return vec![event("added", None, after.get_str("category"), today, None)];
    };
    let mut events = Vec::new();
    let changed = |field: &str| before.get_str(field) != after.get_str(field);
    if changed("category") {
        events.push(event(
            "category_changed",
            before.get_str("category"),
            after.get_str("category"),
            today,
            None,
        ));
    }
    if changed("village_id") {
        events.push(event(
            "transferred",
            before.get_str("village_id"),
            after.get_str("village_id"),
            today,
            None,
        ));
    }
    if changed("status") {
        let exit_date = after
            .get_str("exit_date")
            .and_then(|d| d.parse().ok())
            .unwrap_or(today);
        match after.get_str("status") {
            Some("exited") => events.push(event(
                "exited",
                Some("active"),
                Some("exited"),
                exit_date,
                after.get_str("exit_reason"),
            )),
            Some("active") => {
                events.push(event("added", Some("exited"), Some("active"), today, None))
            }
            _ => {}
        }
    }
    events
}

/// An urgent risk flag (suspected abuse or neglect falls under mandatory
/// reporting): the outbox row for the provincial platform, written in the
/// push's transaction beside the open `urgent` conflict row for the town
/// supervisor and the district.
pub(super) fn alert(
    mutation: &Mutation,
    record: Option<&Record>,
    village: Option<Uuid>,
    now: DateTime<Utc>,
) -> outbox::Model {
    let payload = json!({
        "visit_id": mutation.record_id,
        "child_id": record.and_then(|r| r.get("child_id")),
        "village_id": village,
        "risk_flags": record.and_then(|r| r.get("risk_flags")),
        "raised_at": now,
    });
    tracing::warn!(visit = %mutation.record_id, "urgent risk flag raised");
    crate::repo::sync_records::message("urgent_alert".to_owned(), mutation.record_id, payload, now)
}
