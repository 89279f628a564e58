//! Inbound from the provincial platform: client-credential sign-in, and
//! roster batches (children added by cross-department data matching,
//! changes to their register entry, exits) keyed by the platform's
//! external id.
//!
//! A batch is one transaction. Each row is validated on its own; a bad row
//! is reported with its reason and the good rows apply. Rows apply through
//! the same path as a device's push (`sync-core` merge under the
//! integration role's field authority, register events and their outbox
//! rows, change log appended last under the writer lock), so directors'
//! phones receive the changes at their next pull. A batch id is applied
//! once: a retry of the same batch answers the stored report and changes
//! nothing; the same batch id with other content is refused. A dry run
//! validates and applies everything inside the transaction, reports, and
//! rolls back.

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;
use sea_orm::{DatabaseTransaction, SqlErr};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use sync_core::protocol::{FieldChange, FieldOp, Mutation, MutationResult, Op};
use sync_core::record::Entity;
use sync_core::rules::{Actor, Role as SyncRole, rules_for};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role, password};
use crate::entity::integration_batch;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::repo;
use crate::service::audit;
use crate::service::auth::throttle;
use crate::service::sync::push::{Acting, Batch, apply_one};
use crate::state::AppState;

/// `POST /api/v1/integration/token`: OAuth 2.0 client credentials.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    #[schema(example = "client_credentials")]
    pub grant_type: String,
    /// The integration account's user name.
    #[schema(example = "province")]
    pub client_id: String,
    pub client_secret: String,
}

/// An access token for the integration account.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the token expires; then ask for a new one.
    pub expires_in: i64,
}

/// Signs an integration account in with its client id and secret,
/// throttled as a person's sign-in is (per client id and per address).
pub async fn token(
    state: &AppState,
    input: TokenRequest,
    client: Option<std::net::IpAddr>,
) -> AppResult<TokenResponse> {
    if input.grant_type != "client_credentials" {
        return Err(AppError::bad_request(
            ErrorCode::UnsupportedGrantType,
            "grant_type must be client_credentials",
        ));
    }
    let keys = throttle::Keys::new(&input.client_id, client);
    throttle::check(state, &keys, Utc::now()).await?;
    let found = repo::users::find_by_username(&state.db, input.client_id.trim()).await?;
    let hash = found.as_ref().map_or_else(
        || password::dummy_hash().to_owned(),
        |user| user.password_hash.clone(),
    );
    let secret_ok = password::verify_password_async(input.client_secret, hash).await?;
    let user = match found {
        Some(user) if secret_ok && user.active && user.role == Role::Integration.as_str() => user,
        _ => {
            tracing::info!(client = %input.client_id, "integration sign-in refused");
            throttle::failed(state, &keys, Utc::now()).await?;
            return Err(AppError::unauthorized(
                ErrorCode::InvalidClient,
                "unknown client, wrong secret, or not an integration account",
            ));
        }
    };
    throttle::succeeded(state, &keys).await?;
    // The account is its own "device": the platform has no phone.
    let access_token = state.jwt.issue(
        user.id,
        Role::Integration,
        user.org_unit_id,
        user.id,
        Utc::now().timestamp(),
    )?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: state.jwt.ttl_secs(),
    })
}

/// A batch of roster changes.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RosterBatch {
    /// The platform's id for this batch (1–100 characters). Sending the same
    /// batch again answers the first report.
    #[schema(example = "2026-11-29-0001")]
    pub batch_id: String,
    /// Validate and report without changing anything.
    #[serde(default)]
    pub dry_run: bool,
    pub rows: Vec<RosterRow>,
}

/// One roster change.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RosterRow {
    /// The row's key within the batch, echoed in the report (default: its
    /// position, from 0).
    #[serde(default)]
    pub row_id: Option<String>,
    /// `add`, `update` or `exit`.
    #[schema(example = "add")]
    pub action: String,
    /// The platform's id of the child.
    #[schema(example = "ZJ-330213-2026-000123")]
    pub external_id: String,
    /// Register fields (docs/INTEGRATION.md §7): `name`, `gender`,
    /// `birth_date`, `id_number`, `category`, `village_code`, … For
    /// `exit`: `exit_reason` and `exit_date`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub fields: Map<String, Value>,
}

/// What became of a batch.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct BatchReport {
    pub batch_id: String,
    pub dry_run: bool,
    /// True when this answer is the stored report of an earlier delivery
    /// of the same batch.
    pub replayed: bool,
    pub applied: usize,
    pub rejected: usize,
    pub rows: Vec<RowReport>,
}

/// What became of one row.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct RowReport {
    pub row_id: String,
    pub external_id: String,
    /// `applied` (the register changed), `unchanged` (it already said
    /// so) or `rejected`.
    pub status: String,
    /// Seedling's id of the child.
    pub child_id: Option<Uuid>,
    /// The child's server version afterwards.
    pub version: Option<u64>,
    /// Why a row was rejected (machine-readable).
    pub code: Option<String>,
    pub message: Option<String>,
}

const ACTIONS: [&str; 3] = ["add", "update", "exit"];

/// Applies a roster batch (or, on a dry run, reports what it would do).
pub async fn import(
    state: &AppState,
    caller: &AuthUser,
    batch: RosterBatch,
) -> AppResult<BatchReport> {
    caller.require_role(&[Role::Integration])?;
    let batch_id = batch.batch_id.trim().to_owned();
    if batch_id.is_empty() || batch_id.chars().count() > 100 {
        return Err(AppError::Validation(
            "batch_id must be 1 to 100 characters".to_owned(),
        ));
    }
    if batch.rows.is_empty() {
        return Err(AppError::Validation(
            "a batch needs at least one row".to_owned(),
        ));
    }
    let limit = state.config.integration_max_batch_rows;
    if batch.rows.len() > limit {
        return Err(AppError::PayloadTooLarge(format!(
            "at most {limit} rows per batch; split it"
        )));
    }
    let mut seen = HashSet::new();
    for (index, row) in batch.rows.iter().enumerate() {
        if !seen.insert(row_key(row, index)) {
            return Err(AppError::Validation(format!(
                "row_id `{}` appears twice in this batch",
                row_key(row, index)
            )));
        }
    }
    let digest = request_digest(&batch)?;
    match import_once(state, caller, &batch, &batch_id, &digest).await {
        // A copy of this batch committed first (a retry racing the
        // original): answered again, it finds the stored report.
        Err(AppError::Database(err))
            if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
        {
            import_once(state, caller, &batch, &batch_id, &digest).await
        }
        other => other,
    }
}

async fn import_once(
    state: &AppState,
    caller: &AuthUser,
    batch: &RosterBatch,
    batch_id: &str,
    digest: &str,
) -> AppResult<BatchReport> {
    let txn = crate::repo::begin_write(&state.db).await?;
    if let Some(stored) = repo::integration::batch(&txn, caller.user_id, batch_id).await? {
        txn.commit().await?;
        if stored.request_sha256 != digest {
            return Err(AppError::Conflict(format!(
                "batch `{batch_id}` was already applied with other content; use a new batch_id"
            )));
        }
        let mut report: BatchReport = serde_json::from_value(stored.report)
            .map_err(|err| AppError::Internal(format!("stored batch report unreadable: {err}")))?;
        report.replayed = true;
        report.dry_run = batch.dry_run;
        return Ok(report);
    }
    let mut applier = Batch::new();
    let mut rows = Vec::with_capacity(batch.rows.len());
    for (index, row) in batch.rows.iter().enumerate() {
        rows.push(import_row(&txn, caller, batch_id, index, row, &mut applier).await?);
    }
    let now = Utc::now();
    repo::change_log::append(&txn, applier.take_changes(), now).await?;
    let report = BatchReport {
        batch_id: batch_id.to_owned(),
        dry_run: batch.dry_run,
        replayed: false,
        applied: rows.iter().filter(|r| r.status != "rejected").count(),
        rejected: rows.iter().filter(|r| r.status == "rejected").count(),
        rows,
    };
    if batch.dry_run {
        txn.rollback().await?;
        return Ok(report);
    }
    repo::integration::insert_batch(
        &txn,
        integration_batch::Model {
            client_id: caller.user_id,
            batch_id: batch_id.to_owned(),
            request_sha256: digest.to_owned(),
            report: serde_json::to_value(&report)
                .map_err(|err| AppError::Internal(err.to_string()))?,
            created_at: now,
        },
    )
    .await?;
    // After the change-log append: the lock order is change log, then audit log.
    audit::record(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "integration.roster_import",
            entity: Some("child"),
            record_id: None,
            detail: json!({
                "batch_id": batch_id,
                "applied": report.applied,
                "rejected": report.rejected,
                "rows": report.rows.iter().map(|row| json!({
                    "row_id": row.row_id,
                    "external_id": row.external_id,
                    "status": row.status,
                    "child_id": row.child_id,
                    "code": row.code,
                })).collect::<Vec<_>>(),
            }),
        },
    )
    .await?;
    txn.commit().await?;
    tracing::info!(batch = %batch_id, applied = report.applied, rejected = report.rejected, "roster batch applied");
    Ok(report)
}

fn row_key(row: &RosterRow, index: usize) -> String {
    row.row_id.clone().unwrap_or_else(|| index.to_string())
}

/// The hash that tells a retry of a batch from other content under the
/// same id (`dry_run` is not part of it).
fn request_digest(batch: &RosterBatch) -> AppResult<String> {
    let canonical = serde_json::to_vec(&json!({ "batch_id": batch.batch_id, "rows": batch.rows }))
        .map_err(|err| AppError::Internal(err.to_string()))?;
    Ok(hex::encode(Sha256::digest(canonical)))
}

/// A refusal of one row, reported and not applied.
struct RowRefusal {
    code: &'static str,
    message: String,
}

fn refuse(code: &'static str, message: impl Into<String>) -> RowRefusal {
    RowRefusal {
        code,
        message: message.into(),
    }
}

async fn import_row(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    batch_id: &str,
    index: usize,
    row: &RosterRow,
    applier: &mut Batch,
) -> AppResult<RowReport> {
    let mut report = RowReport {
        row_id: row_key(row, index),
        external_id: row.external_id.clone(),
        status: "rejected".to_owned(),
        child_id: None,
        version: None,
        code: None,
        message: None,
    };
    let mutation = match build_mutation(txn, caller, batch_id, &report.row_id, row).await? {
        Ok(Plan::Apply(mutation)) => mutation,
        Ok(Plan::Unchanged { child_id, version }) => {
            report.status = "unchanged".to_owned();
            report.child_id = Some(child_id);
            report.version = Some(version);
            return Ok(report);
        }
        Err(refusal) => {
            report.code = Some(refusal.code.to_owned());
            report.message = Some(refusal.message);
            return Ok(report);
        }
    };
    report.child_id = Some(mutation.record_id);
    match apply_one(txn, caller, mutation, Acting::AsCaller, applier).await? {
        MutationResult::Applied { version, .. } => {
            report.status = "applied".to_owned();
            report.version = Some(version);
        }
        MutationResult::Merged {
            version, refusals, ..
        } if refusals.is_empty() => {
            report.status = "applied".to_owned();
            report.version = Some(version);
        }
        MutationResult::Merged {
            refusals, version, ..
        } => {
            report.status = "applied".to_owned();
            report.version = Some(version);
            report.code = Some("fields_refused".to_owned());
            report.message = Some(
                refusals
                    .iter()
                    .map(|r| format!("{}: {}", r.field, r.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        MutationResult::Rejected {
            reason, message, ..
        } => {
            report.code = Some(
                serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "rejected".to_owned()),
            );
            report.message = Some(message);
        }
    }
    Ok(report)
}

/// What a valid row comes to.
enum Plan {
    Apply(Mutation),
    /// The register already says what the row says.
    Unchanged {
        child_id: Uuid,
        version: u64,
    },
}

/// The mutation a row asks for, or why the row is refused.
async fn build_mutation(
    txn: &DatabaseTransaction,
    caller: &AuthUser,
    batch_id: &str,
    row_id: &str,
    row: &RosterRow,
) -> AppResult<Result<Plan, RowRefusal>> {
    let external_id = row.external_id.trim();
    if external_id.is_empty() || external_id.chars().count() > 64 {
        return Ok(Err(refuse(
            "invalid_external_id",
            "external_id must be 1 to 64 characters",
        )));
    }
    if !ACTIONS.contains(&row.action.as_str()) {
        return Ok(Err(refuse(
            "unknown_action",
            format!("action must be add, update or exit, not `{}`", row.action),
        )));
    }
    let existing = repo::integration::child_by_external_id(txn, external_id).await?;
    let current = match existing {
        Some(id) => repo::synced::load(txn, Entity::Child, id, true)
            .await?
            .filter(|row| !row.record.is_deleted()),
        None => None,
    };
    match (row.action.as_str(), &current) {
        ("add", Some(_)) => {
            return Ok(Err(refuse(
                "already_registered",
                "a child with this external_id is already on the register; send update",
            )));
        }
        ("update" | "exit", None) => {
            return Ok(Err(refuse(
                "unknown_external_id",
                "no child on the register has this external_id",
            )));
        }
        _ => {}
    }

    let rules = rules_for(Entity::Child);
    let actor = Actor::new(caller.user_id, SyncRole::Integration);
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in &row.fields {
        if name == "village_code" {
            let Some(code) = value.as_str() else {
                return Ok(Err(refuse(
                    "invalid_value",
                    "village_code must be a string",
                )));
            };
            let unit = repo::org_units::find_by_code(txn, code).await?;
            match unit {
                Some(unit) if unit.kind == "village" => {
                    values.insert("village_id".to_owned(), json!(unit.id));
                }
                _ => {
                    return Ok(Err(refuse(
                        "unknown_village",
                        format!("no village has the code `{code}`"),
                    )));
                }
            }
            continue;
        }
        let rule = match rules.field(name) {
            Some(rule) if name != "external_id" && name != "village_id" => rule,
            _ => {
                return Ok(Err(refuse(
                    "unknown_field",
                    format!("`{name}` is not a roster field the platform sends"),
                )));
            }
        };
        if !rule.writers.admits_role(actor.role) {
            return Ok(Err(refuse(
                "role_not_allowed",
                format!("`{name}` is kept by the district, not the platform"),
            )));
        }
        if !value.is_null()
            && let Err(expected) = rule.ty.check(value)
        {
            return Ok(Err(refuse(
                "invalid_value",
                format!("`{name}` must be {expected}"),
            )));
        }
        values.insert(name.clone(), value.clone());
    }
    match row.action.as_str() {
        "add" => {
            values.insert("external_id".to_owned(), json!(external_id));
            values.entry("status".to_owned()).or_insert(json!("active"));
            for required in ["name", "birth_date", "category", "village_id"] {
                if values.get(required).is_none_or(Value::is_null) {
                    let shown = if required == "village_id" {
                        "village_code"
                    } else {
                        required
                    };
                    return Ok(Err(refuse(
                        "missing_field",
                        format!("an added child needs `{shown}`"),
                    )));
                }
            }
        }
        "exit" => {
            for required in ["exit_reason", "exit_date"] {
                if values.get(required).is_none_or(Value::is_null) {
                    return Ok(Err(refuse(
                        "missing_field",
                        format!("an exit needs `{required}`"),
                    )));
                }
            }
            values.insert("status".to_owned(), json!("exited"));
        }
        _ => {
            if values.is_empty() {
                return Ok(Err(refuse(
                    "no_fields",
                    "an update needs at least one field",
                )));
            }
        }
    }

    // Only what differs from the register is written: a row repeating what
    // Seedling holds changes nothing and reaches no phone.
    if let Some(stored) = &current {
        values.retain(|name, value| stored.record.get(name).as_ref() != Some(value));
        if values.is_empty() {
            return Ok(Ok(Plan::Unchanged {
                child_id: stored.record.id,
                version: stored.record.version,
            }));
        }
    }
    let now_ms = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let mut clock = sync_core::clock::HlcClock::new(crate::service::sync::SERVER_NODE);
    let hlc = clock.tick(now_ms);
    let (op, record_id, base_version) = match &current {
        Some(stored) => (Op::Update, stored.record.id, stored.record.version),
        None => (Op::Create, Uuid::now_v7(), 0),
    };
    Ok(Ok(Plan::Apply(Mutation {
        mutation_id: row_mutation_id(caller.user_id, batch_id, row_id),
        entity: Entity::Child,
        record_id,
        op,
        base_version,
        hlc,
        fields: values
            .into_iter()
            .map(|(name, value)| {
                (
                    name,
                    FieldChange {
                        hlc,
                        op: FieldOp::Set(value),
                    },
                )
            })
            .collect(),
    })))
}

/// The mutation id of a batch row: the same row of the same batch always
/// gets the same id, so the idempotency store knows it.
fn row_mutation_id(client: Uuid, batch_id: &str, row_id: &str) -> Uuid {
    let digest = Sha256::digest(format!("{client}/{batch_id}/{row_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
