//! `/api/v1/watermelon/*`: WatermelonDB's `pullChanges` and `pushChanges`
//! over Seedling's sync (docs/ADAPTERS.md); the translation lives in
//! `service::sync::watermelon`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiQuery};
use crate::routes::sync::SyncSlot;
use crate::service::sync::watermelon::{
    self, DEFAULT_PULL_CHANGES, PullAnswer, PushAnswer, PushBody,
};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatermelonPullParams {
    /// The `timestamp` of the previous answer (`lastPulledAt`); absent at first.
    pub last_pulled_at: Option<i64>,
    /// The `cursor` of the previous answer; given exactly when `last_pulled_at` is.
    pub cursor: Option<String>,
    /// Changes wanted in one answer (default 2000, at most 5000).
    pub limit: Option<u32>,
}

/// WatermelonDB's `pullChanges`: the changes in the caller's scope after
/// the cursor, live records as `updated`, deletions and purges as `deleted`.
#[utoipa::path(get, path = "/api/v1/watermelon/pull", tag = "watermelon", operation_id = "watermelon_pull",
    security(("bearer" = [])),
    params(WatermelonPullParams),
    responses(
        (status = 200, description = "`{changes, timestamp, cursor, has_more, scope_checksum}` (docs/ADAPTERS.md)", body = PullAnswer),
        (status = 400, description = "Invalid cursor, or one that does not match `last_pulled_at`: pull without either", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 409, description = "`server_restored`: see docs/SYNC-PROTOCOL.md §4", body = ErrorBody),
    ))]
pub async fn pull(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<WatermelonPullParams>,
) -> AppResult<Json<PullAnswer>> {
    let answer = watermelon::pull(
        &state,
        &caller,
        params.last_pulled_at,
        params.cursor,
        params.limit.unwrap_or(DEFAULT_PULL_CHANGES),
    )
    .await?;
    let sent = answer
        .changes
        .values()
        .map(|table| table.updated.len() + table.deleted.len())
        .sum();
    crate::metrics::pull(sent);
    Ok(Json(answer))
}

/// WatermelonDB's `pushChanges`: one Seedling push; answers every result
/// and the server's copy of each record the push did not plainly apply.
#[utoipa::path(post, path = "/api/v1/watermelon/push", tag = "watermelon", operation_id = "watermelon_push",
    security(("bearer" = [])),
    request_body(content = PushBody, description = "WatermelonDB's local changes"),
    responses(
        (status = 200, description = "`{results, changes}`: apply `changes` at the next pull", body = PushAnswer),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 413, description = "Too many records or too large a body", body = ErrorBody),
        (status = 422, description = "A table Seedling does not sync, or a record that is not one of the table's", body = ErrorBody),
    ))]
pub async fn push(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(body): ApiJson<PushBody>,
) -> AppResult<Json<PushAnswer>> {
    watermelon::push(&state, &caller, body).await.map(Json)
}
