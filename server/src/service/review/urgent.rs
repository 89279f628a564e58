//! Urgent risk alerts (强制报告): a visit whose risk flags include one
//! marked `"urgent": true` raised an alert at its push — an open `urgent`
//! row in the conflict queue for the town supervisor and the district.
//! A supervisor or admin in scope acknowledges it on the visit: `acknowledged`
//! (已知悉) or `reported` (已上报, to the police as mandatory reporting
//! requires). The acknowledgement is server bookkeeping (table
//! `urgent_acknowledgements`), not a synced field: it concerns the review,
//! not what the director recorded, and phones never need it.
//!
//! Acknowledging resolves every open alert of the visit, records who, when
//! and which of the two, and is audited, in one transaction. A visit that
//! raises a new alert later (another urgent flag) is unhandled again. After
//! `acknowledged`, `reported` may still be recorded; anything else on a
//! handled alert is refused with 409 naming who handled it and when.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use uuid::Uuid;

use super::ScopeUnits;
use super::log::{user_names, visit_in_scope};
use crate::auth::{AuthUser, Role};
use crate::entity::{conflict, urgent_acknowledgement};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::state::AppState;

/// What the supervisor or district records about an urgent alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AckAction {
    /// 已知悉: they know of it and follow it up.
    Acknowledged,
    /// 已上报: reported to the police (mandatory reporting).
    Reported,
}

impl AckAction {
    fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledged => "acknowledged",
            Self::Reported => "reported",
        }
    }
}

/// Body of `POST /api/v1/visits/{id}/acknowledge`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AcknowledgeInput {
    pub action: AckAction,
}

/// One acknowledgement: who, when, which of the two.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AcknowledgementView {
    /// `acknowledged` (已知悉) or `reported` (已上报).
    pub action: String,
    pub by_id: Uuid,
    pub by_name: Option<String>,
    /// `supervisor` or `admin`.
    pub by_role: String,
    pub at: DateTime<Utc>,
}

/// A visit's urgent alert as its page shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UrgentView {
    /// The codes of the urgent risk flags the visit carries now
    /// (`sexual_abuse`, `physical_abuse`, …).
    pub risk_types: Vec<String>,
    /// When the latest alert was raised (the push that carried the flag).
    pub raised_at: DateTime<Utc>,
    /// True while an alert is not acknowledged.
    pub unhandled: bool,
    /// Every acknowledgement, oldest first.
    pub acknowledgements: Vec<AcknowledgementView>,
}

/// The codes of a visit's urgent risk flags (an item's `kind`, or `code`).
pub fn urgent_risk_types(risk_flags: &Value) -> Vec<String> {
    risk_flags
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| sync_core::protocol::is_urgent_item(item))
        .filter_map(|item| {
            item.get("kind")
                .or_else(|| item.get("code"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// The urgent view of a visit from its alerts and acknowledgements; `None`
/// when it never raised an alert.
pub(crate) fn view(
    risk_flags: &Value,
    alerts: &[conflict::Model],
    acks: Vec<urgent_acknowledgement::Model>,
    names: &HashMap<Uuid, String>,
) -> Option<UrgentView> {
    let raised_at = alerts.iter().map(|a| a.created_at).max()?;
    Some(UrgentView {
        risk_types: urgent_risk_types(risk_flags),
        raised_at,
        unhandled: alerts.iter().any(|a| a.status == "open"),
        acknowledgements: acks
            .into_iter()
            .map(|a| AcknowledgementView {
                by_name: names.get(&a.actor_id).cloned(),
                action: a.action,
                by_id: a.actor_id,
                by_role: a.actor_role,
                at: a.created_at,
            })
            .collect(),
    })
}

/// Records that the caller knows of (or has reported) a visit's urgent
/// alert.
pub async fn acknowledge(
    state: &AppState,
    caller: &AuthUser,
    visit_id: Uuid,
    input: AcknowledgeInput,
) -> AppResult<UrgentView> {
    if !matches!(caller.role, Role::Supervisor | Role::Admin) {
        return Err(AppError::forbidden(
            "urgent alerts are acknowledged by the town supervisor or the district bureau",
        ));
    }
    let txn = repo::begin_write(&state.db).await?;
    let scope = ScopeUnits::load(&txn, caller).await?;
    let (visit, child) = visit_in_scope(&txn, &scope, visit_id).await?;
    let alerts = repo::review::urgent_alerts_for_update(&txn, visit_id).await?;
    let Some(latest) = alerts.iter().map(|a| a.created_at).max() else {
        return Err(AppError::Conflict(
            "this visit raised no urgent risk alert; there is nothing to acknowledge".to_owned(),
        ));
    };
    let acks = repo::review::urgent_acknowledgements(&txn, visit_id).await?;
    let open: Vec<conflict::Model> = alerts
        .iter()
        .filter(|a| a.status == "open")
        .cloned()
        .collect();
    // The acknowledgements of the latest alert (made after it was raised).
    let current: Vec<&urgent_acknowledgement::Model> =
        acks.iter().filter(|a| a.created_at >= latest).collect();
    let escalation =
        input.action == AckAction::Reported && !current.iter().any(|a| a.action == "reported");
    if open.is_empty() && !escalation {
        let names = user_names(&txn, current.iter().map(|a| a.actor_id).collect()).await?;
        let done: Vec<String> = current
            .iter()
            .map(|a| {
                format!(
                    "{} by {} at {}",
                    a.action,
                    names.get(&a.actor_id).map_or("?", String::as_str),
                    a.created_at.to_rfc3339()
                )
            })
            .collect();
        return Err(AppError::Conflict(format!(
            "this urgent alert is already handled ({}); reload the visit",
            done.join("; ")
        )));
    }
    let now = Utc::now();
    let ack = repo::review::insert_urgent_acknowledgement(
        &txn,
        urgent_acknowledgement::Model {
            id: Uuid::now_v7(),
            visit_id,
            action: input.action.as_str().to_owned(),
            actor_id: caller.user_id,
            actor_role: caller.role.as_str().to_owned(),
            created_at: now,
        },
    )
    .await?;
    let resolution = json!({ "action": input.action.as_str(), "acknowledgement_id": ack.id });
    for alert in &open {
        repo::review::resolve_conflict(
            &txn,
            alert.clone(),
            resolution.clone(),
            caller.user_id,
            now,
        )
        .await?;
    }
    audit::record(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "visit.urgent_acknowledge",
            entity: Some("visit"),
            record_id: Some(visit_id),
            detail: json!({
                "action": input.action.as_str(),
                "child_id": child.id,
                "alerts": open.iter().map(|a| a.id).collect::<Vec<_>>(),
            }),
        },
    )
    .await?;
    let alerts = repo::review::urgent_alerts_for_update(&txn, visit_id).await?;
    let acks = repo::review::urgent_acknowledgements(&txn, visit_id).await?;
    let names = user_names(&txn, acks.iter().map(|a| a.actor_id).collect()).await?;
    txn.commit().await?;
    view(&visit.risk_flags, &alerts, acks, &names)
        .ok_or_else(|| AppError::Internal("an acknowledged alert vanished".to_owned()))
}
