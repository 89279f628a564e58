//! `/api/v1/integration/*`: the provincial platform's side (token, roster
//! batches, change feed) and the admin's view of delivery
//! (docs/INTEGRATION.md).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiPath, ApiQuery, ClientAddr};
use crate::service::integration::admin::{
    self, DeliveryDetail, DeliveryStatus, ParkedDelivery, PauseState, Replayed,
};
use crate::service::integration::feed::{self, FeedPage};
use crate::service::integration::inbound::{
    self, BatchReport, RosterBatch, TokenRequest, TokenResponse,
};
use crate::state::AppState;

/// Sign an integration account in with client credentials.
#[utoipa::path(post, path = "/api/v1/integration/token", tag = "integration",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "An access token with the integration role", body = TokenResponse),
        (status = 400, description = "grant_type is not client_credentials", body = ErrorBody),
        (status = 401, description = "Unknown client or wrong secret", body = ErrorBody),
        (status = 429, description = "Too many failed attempts from this client id or address; see Retry-After", body = ErrorBody),
    ))]
pub async fn token(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(input): ApiJson<TokenRequest>,
) -> AppResult<Json<TokenResponse>> {
    inbound::token(&state, input, client).await.map(Json)
}

/// Apply (or dry-run) a batch of roster changes keyed by external id.
#[utoipa::path(post, path = "/api/v1/integration/roster-batches", tag = "integration",
    security(("bearer" = [])),
    request_body = RosterBatch,
    responses(
        (status = 200, description = "One report line per row; good rows applied", body = BatchReport),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an integration account", body = ErrorBody),
        (status = 409, description = "The batch id was used for other content", body = ErrorBody),
        (status = 413, description = "Too many rows", body = ErrorBody),
        (status = 422, description = "Not a valid batch", body = ErrorBody),
    ))]
pub async fn roster_batch(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(batch): ApiJson<RosterBatch>,
) -> AppResult<Json<BatchReport>> {
    inbound::import(&state, &caller, batch).await.map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedParams {
    /// `next_cursor` of the previous page; absent to start from the beginning.
    pub cursor: Option<String>,
    /// Page size (default 200, at most 1000).
    pub limit: Option<u64>,
}

/// Read the change feed after a cursor.
#[utoipa::path(get, path = "/api/v1/integration/changes", tag = "integration",
    security(("bearer" = [])),
    params(FeedParams),
    responses(
        (status = 200, description = "A page of changed records", body = FeedPage),
        (status = 400, description = "Invalid cursor", body = ErrorBody),
        (status = 403, description = "Not an integration or admin account", body = ErrorBody),
    ))]
pub async fn changes(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<FeedParams>,
) -> AppResult<Json<FeedPage>> {
    feed::changes(&state, &caller, params.cursor.as_deref(), params.limit)
        .await
        .map(Json)
}

/// Delivery status: counts, lag, pause.
#[utoipa::path(get, path = "/api/v1/integration/admin/status", tag = "integration", operation_id = "integration_status",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Delivery status", body = DeliveryStatus),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    caller: AuthUser,
) -> AppResult<Json<DeliveryStatus>> {
    admin::status(&state, &caller).await.map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParkedParams {
    /// At most this many (default 100).
    pub limit: Option<u64>,
}

/// Parked deliveries with their last error.
#[utoipa::path(get, path = "/api/v1/integration/admin/parked", tag = "integration",
    security(("bearer" = [])),
    params(ParkedParams),
    responses(
        (status = 200, description = "Parked deliveries, oldest first", body = Vec<ParkedDelivery>),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub async fn parked(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ParkedParams>,
) -> AppResult<Json<Vec<ParkedDelivery>>> {
    admin::parked(&state, &caller, params.limit.unwrap_or(100))
        .await
        .map(Json)
}

/// One outbound message with every attempt at it.
#[utoipa::path(get, path = "/api/v1/integration/admin/deliveries/{id}", tag = "integration",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The message's id (its idempotency key)")),
    responses(
        (status = 200, description = "The message and its attempts", body = DeliveryDetail),
        (status = 404, description = "No such message", body = ErrorBody),
    ))]
pub async fn delivery(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<DeliveryDetail>> {
    admin::detail(&state, &caller, id).await.map(Json)
}

/// Put one parked message back in the queue.
#[utoipa::path(post, path = "/api/v1/integration/admin/deliveries/{id}/replay", tag = "integration",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The parked message's id")),
    responses(
        (status = 200, description = "Replayed", body = Replayed),
        (status = 404, description = "No such message", body = ErrorBody),
        (status = 409, description = "The message is not parked", body = ErrorBody),
    ))]
pub async fn replay_one(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<Replayed>> {
    admin::replay(&state, &caller, Some(id)).await.map(Json)
}

/// Put every parked message back in the queue.
#[utoipa::path(post, path = "/api/v1/integration/admin/replay-parked", tag = "integration",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The ids replayed", body = Replayed),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub async fn replay_all(
    State(state): State<AppState>,
    caller: AuthUser,
) -> AppResult<Json<Replayed>> {
    admin::replay(&state, &caller, None).await.map(Json)
}

/// Pause delivery in every server process.
#[utoipa::path(post, path = "/api/v1/integration/admin/pause", tag = "integration",
    security(("bearer" = [])),
    responses((status = 200, description = "Paused", body = PauseState)))]
pub async fn pause(State(state): State<AppState>, caller: AuthUser) -> AppResult<Json<PauseState>> {
    admin::set_paused(&state, &caller, true).await.map(Json)
}

/// Resume delivery.
#[utoipa::path(post, path = "/api/v1/integration/admin/resume", tag = "integration",
    security(("bearer" = [])),
    responses((status = 200, description = "Resumed", body = PauseState)))]
pub async fn resume(
    State(state): State<AppState>,
    caller: AuthUser,
) -> AppResult<Json<PauseState>> {
    admin::set_paused(&state, &caller, false).await.map(Json)
}
