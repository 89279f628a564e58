//! Turning a merge outcome into conflict rows a supervisor can see and
//! resolve: every losing value, every refused field, every proposed
//! amendment, every rejected mutation and every semantic flag. Nothing the
//! device sent is dropped without a row here — except refusals for scope
//! beyond 100 an hour per account, which the push still answers and the
//! idempotency store keeps (`push::REFUSALS_PER_HOUR`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sync_core::merge::{Flag, MergeOutcome, Verdict};
use sync_core::protocol::Mutation;
use sync_core::rules::replace_nul;
use uuid::Uuid;

use crate::entity::conflict;

/// The conflict rows for one merged mutation. `local` is the server's side,
/// `remote` the device's. `village` is the child's; `left_town`, for a visit
/// filed under a village of another town than the child's now, that
/// village: a visit after a transfer is shown to both towns.
pub fn rows_for(
    mutation: &Mutation,
    outcome: &MergeOutcome,
    actor: Uuid,
    village: Option<Uuid>,
    left_town: Option<Uuid>,
    now: DateTime<Utc>,
) -> Vec<conflict::Model> {
    let row = |kind: String, field: Option<String>| conflict::Model {
        id: Uuid::now_v7(),
        entity: mutation.entity.as_str().to_owned(),
        record_id: mutation.record_id,
        field,
        kind,
        local_value: None,
        remote_value: None,
        local_clock: None,
        remote_clock: None,
        rule: None,
        winner: None,
        mutation_id: Some(mutation.mutation_id),
        actor_id: Some(actor),
        village_id: village,
        status: "open".to_owned(),
        resolution: None,
        resolved_by: None,
        resolved_at: None,
        created_at: now,
    };
    let mut rows = Vec::new();
    for c in &outcome.conflicts {
        let field = match (&c.field, &c.item_id) {
            (Some(field), Some(item)) => Some(format!("{field}#{item}")),
            (field, _) => field.clone(),
        };
        rows.push(conflict::Model {
            local_value: Some(c.server.value.clone()),
            remote_value: Some(c.client.value.clone()),
            local_clock: Some(c.server.hlc.to_string()),
            remote_clock: Some(c.client.hlc.to_string()),
            rule: c.rule.map(|rule| wire_name(&rule)),
            winner: Some(wire_name(&c.winner)),
            ..row(wire_name(&c.kind), field)
        });
    }
    for refusal in &outcome.refusals {
        rows.push(conflict::Model {
            remote_value: Some(refusal.value.clone()),
            rule: Some(wire_name(&refusal.reason)),
            winner: Some("server".to_owned()),
            ..row("refused_field".to_owned(), Some(refusal.field.clone()))
        });
    }
    if let Some(amendment) = &outcome.amendment {
        rows.push(conflict::Model {
            remote_value: serde_json::to_value(amendment).ok(),
            ..row("amendment".to_owned(), None)
        });
    } else if let Verdict::Rejected { reason, message } = &outcome.verdict {
        rows.push(conflict::Model {
            remote_value: serde_json::to_value(mutation).ok(),
            local_value: Some(json!({ "message": message })),
            rule: Some(wire_name(reason)),
            winner: Some("server".to_owned()),
            ..row("rejected_mutation".to_owned(), None)
        });
    }
    for flag in &outcome.flags {
        let detail = match flag {
            Flag::ClockSkewed => continue,
            Flag::PossibleDuplicate { other_visit_id } => {
                Some(json!({ "other_visit_id": other_visit_id }))
            }
            _ => None,
        };
        rows.push(conflict::Model {
            remote_value: detail.clone(),
            ..row(flag_name(flag), None)
        });
        // The town the child left sees it too: its director recorded the
        // visit, and its supervisor follows up with them.
        if *flag == Flag::VisitAfterTransfer && left_town.is_some() && left_town != village {
            rows.push(conflict::Model {
                village_id: left_town,
                remote_value: detail,
                ..row(flag_name(flag), None)
            });
        }
    }
    // What was refused for holding U+0000 is kept with U+FFFD in its place:
    // PostgreSQL's text and jsonb cannot store the character.
    for row in &mut rows {
        if let Some(field) = &mut row.field {
            *field = field.replace('\0', "\u{fffd}");
        }
        for value in [&mut row.local_value, &mut row.remote_value]
            .into_iter()
            .flatten()
        {
            replace_nul(value);
        }
    }
    rows
}

/// The snake_case wire name of a serde unit enum value.
fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => "unknown".to_owned(),
    }
}

fn flag_name(flag: &Flag) -> String {
    match serde_json::to_value(flag) {
        Ok(Value::Object(map)) => map
            .get("flag")
            .and_then(Value::as_str)
            .unwrap_or("flag")
            .to_owned(),
        Ok(Value::String(name)) => name,
        _ => "flag".to_owned(),
    }
}
