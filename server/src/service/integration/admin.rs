//! The admin's view of delivery: counts per state, lag, parked rows with
//! their last error, every attempt at a row, replay of one or all parked
//! rows, and pause/resume (kept in the database, so every process obeys).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::worker::PAUSED_SETTING;
use crate::auth::{AuthUser, Role};
use crate::entity::delivery_attempt;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::state::AppState;

/// Delivery as it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryStatus {
    /// False when this server has no provincial endpoint configured
    /// (`integration_endpoint` empty): nothing is sent, messages wait in
    /// the outbox.
    pub endpoint_configured: bool,
    /// True when an admin paused delivery.
    pub paused: bool,
    /// Rows waiting for their first or next attempt.
    pub pending: i64,
    /// Rows a worker is sending now (or whose worker stopped mid-way; they
    /// are taken over when the lease runs out).
    pub delivering: i64,
    pub delivered: i64,
    /// Rows waiting for an admin.
    pub parked: i64,
    /// Pending rows held back behind an earlier parked row of their child.
    pub blocked_by_parked: i64,
    /// When the oldest undelivered row was written.
    pub oldest_undelivered_at: Option<DateTime<Utc>>,
    /// Seconds since then: how far delivery is behind.
    pub lag_seconds: i64,
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// A parked row.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParkedDelivery {
    pub id: Uuid,
    pub kind: String,
    pub aggregate_id: Uuid,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub last_status_code: Option<i32>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// One recorded attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub latency_ms: i64,
    pub status_code: Option<i32>,
    /// `delivered`, `retry` or `parked`.
    pub outcome: String,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
    pub key_id: String,
    pub worker_id: Uuid,
}

impl From<delivery_attempt::Model> for AttemptView {
    fn from(row: delivery_attempt::Model) -> Self {
        Self {
            attempt: row.attempt,
            started_at: row.started_at,
            latency_ms: row.latency_ms,
            status_code: row.status_code,
            outcome: row.outcome,
            error: row.error,
            response_excerpt: row.response_excerpt,
            key_id: row.key_id,
            worker_id: row.worker_id,
        }
    }
}

/// A row and its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    pub id: Uuid,
    pub kind: String,
    pub aggregate_id: Uuid,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub history: Vec<AttemptView>,
}

/// Whether delivery is paused.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseState {
    pub paused: bool,
}

/// What a replay put back in the queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    pub replayed: Vec<Uuid>,
}

fn admin_only(caller: &AuthUser) -> AppResult<()> {
    caller.require_role(&[Role::Admin])
}

pub async fn status(state: &AppState, caller: &AuthUser) -> AppResult<DeliveryStatus> {
    admin_only(caller)?;
    let txn = crate::repo::begin_snapshot(&state.db).await?;
    let mut status = DeliveryStatus {
        endpoint_configured: !state.config.integration_endpoint.trim().is_empty(),
        paused: false,
        pending: 0,
        delivering: 0,
        delivered: 0,
        parked: 0,
        blocked_by_parked: repo::integration::blocked_by_parked(&txn).await?,
        oldest_undelivered_at: repo::integration::oldest_undelivered(&txn).await?,
        lag_seconds: 0,
        last_delivered_at: repo::integration::last_delivered(&txn).await?,
    };
    for (state_name, count) in repo::integration::status_counts(&txn).await? {
        match state_name.as_str() {
            repo::integration::PENDING => status.pending = count,
            repo::integration::DELIVERING => status.delivering = count,
            repo::integration::DELIVERED => status.delivered = count,
            repo::integration::PARKED => status.parked = count,
            _ => {}
        }
    }
    status.paused = repo::integration::setting(&txn, PAUSED_SETTING)
        .await?
        .and_then(|value| value.as_bool())
        .unwrap_or(false);
    txn.commit().await?;
    status.lag_seconds = status
        .oldest_undelivered_at
        .map_or(0, |at| (Utc::now() - at).num_seconds().max(0));
    Ok(status)
}

pub async fn parked(
    state: &AppState,
    caller: &AuthUser,
    limit: u64,
) -> AppResult<Vec<ParkedDelivery>> {
    admin_only(caller)?;
    let txn = crate::repo::begin_snapshot(&state.db).await?;
    let rows = repo::integration::parked(&txn, limit.clamp(1, 1000)).await?;
    let last = repo::integration::last_attempts(&txn, rows.iter().map(|r| r.id).collect()).await?;
    txn.commit().await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let attempt = last.iter().find(|a| a.outbox_id == row.id);
            ParkedDelivery {
                id: row.id,
                kind: row.kind,
                aggregate_id: row.aggregate_id,
                attempts: row.attempts,
                last_error: row.last_error,
                last_status_code: attempt.and_then(|a| a.status_code),
                last_attempt_at: attempt.map(|a| a.started_at),
                created_at: row.created_at,
            }
        })
        .collect())
}

pub async fn detail(state: &AppState, caller: &AuthUser, id: Uuid) -> AppResult<DeliveryDetail> {
    admin_only(caller)?;
    let txn = crate::repo::begin_snapshot(&state.db).await?;
    let row = repo::integration::find(&txn, id)
        .await?
        .ok_or_else(|| AppError::not_found("no outbound message has this id"))?;
    let history = repo::integration::attempts(&txn, id).await?;
    txn.commit().await?;
    Ok(DeliveryDetail {
        id: row.id,
        kind: row.kind,
        aggregate_id: row.aggregate_id,
        status: row.status,
        attempts: row.attempts,
        next_attempt_at: row.next_attempt_at,
        last_error: row.last_error,
        created_at: row.created_at,
        delivered_at: row.delivered_at,
        payload: row.payload,
        history: history.into_iter().map(AttemptView::from).collect(),
    })
}

/// Puts one parked row (`Some(id)`) or every parked row back in the queue.
pub async fn replay(state: &AppState, caller: &AuthUser, id: Option<Uuid>) -> AppResult<Replayed> {
    admin_only(caller)?;
    let txn = crate::repo::begin_write(&state.db).await?;
    if let Some(id) = id {
        let row = repo::integration::find(&txn, id)
            .await?
            .ok_or_else(|| AppError::not_found("no outbound message has this id"))?;
        if row.status != repo::integration::PARKED {
            return Err(AppError::Conflict(format!(
                "only a parked message can be replayed; this one is {}",
                row.status
            )));
        }
    }
    let replayed = repo::integration::replay(&txn, id, Utc::now()).await?;
    audit::record(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: if id.is_some() {
                "integration.replay"
            } else {
                "integration.replay_parked"
            },
            entity: Some("outbox"),
            record_id: id,
            detail: json!({ "replayed": replayed }),
        },
    )
    .await?;
    txn.commit().await?;
    tracing::info!(admin = %caller.user_id, count = replayed.len(), "parked deliveries replayed");
    Ok(Replayed { replayed })
}

/// Pauses (`true`) or resumes delivery in every process.
pub async fn set_paused(state: &AppState, caller: &AuthUser, pause: bool) -> AppResult<PauseState> {
    admin_only(caller)?;
    let txn = crate::repo::begin_write(&state.db).await?;
    repo::integration::put_setting(
        &txn,
        PAUSED_SETTING,
        json!(pause),
        Some(caller.user_id),
        Utc::now(),
    )
    .await?;
    audit::record(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: if pause {
                "integration.pause"
            } else {
                "integration.resume"
            },
            entity: None,
            record_id: None,
            detail: json!({ "paused": pause }),
        },
    )
    .await?;
    txn.commit().await?;
    tracing::info!(admin = %caller.user_id, paused = pause, "delivery pause changed");
    Ok(PauseState { paused: pause })
}
