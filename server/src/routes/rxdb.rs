//! `/api/v1/rxdb/{collection}/*`: RxDB's replication handlers over
//! Seedling's sync (docs/ADAPTERS.md); the translation lives in
//! `service::sync::rxdb`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::sync::SyncSlot;
use crate::service::sync::rxdb::{self, Collection, PullAnswer, PushRow};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RxPullParams {
    /// The `cursor` of the previous answer's checkpoint; absent at first.
    pub checkpoint: Option<String>,
    /// Documents wanted (RxDB's `batchSize`; default 100, at most 1000).
    #[serde(rename = "batchSize")]
    pub batch_size: Option<u32>,
}

/// RxDB's pull handler: the collection's documents changed after the
/// checkpoint, purges as deleted documents with `purged`.
#[utoipa::path(get, path = "/api/v1/rxdb/{collection}/pull", tag = "rxdb", operation_id = "rxdb_pull",
    security(("bearer" = [])),
    params(("collection" = String, Path, description = "`children`, `visits`, `case_plan_items` or `conflicts`"), RxPullParams),
    responses(
        (status = 200, description = "`{documents, checkpoint}` (docs/ADAPTERS.md)", body = PullAnswer),
        (status = 400, description = "Invalid checkpoint: pull without one", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 404, description = "No such collection", body = ErrorBody),
        (status = 409, description = "`server_restored`: see docs/SYNC-PROTOCOL.md §4", body = ErrorBody),
    ))]
pub async fn pull(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(collection): ApiPath<String>,
    ApiQuery(params): ApiQuery<RxPullParams>,
) -> AppResult<Json<PullAnswer>> {
    let collection = Collection::parse(&collection)?;
    let answer = rxdb::pull(
        &state,
        &caller,
        collection,
        params.checkpoint,
        params.batch_size.unwrap_or(100),
    )
    .await?;
    crate::metrics::pull(answer.documents.len());
    Ok(Json(answer))
}

/// RxDB's push handler: rows of `{assumedMasterState, newDocumentState}`,
/// one Seedling push; answers the server's document of every row that
/// wrote or was refused (take it: the server already merged).
#[utoipa::path(post, path = "/api/v1/rxdb/{collection}/push", tag = "rxdb", operation_id = "rxdb_push",
    security(("bearer" = [])),
    params(("collection" = String, Path, description = "`children`, `visits` or `case_plan_items`")),
    request_body(content = Vec<PushRow>, description = "RxDB's write rows"),
    responses(
        (status = 200, description = "The server's documents of the rows that changed or were refused", body = Vec<Object>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 404, description = "No such collection", body = ErrorBody),
        (status = 413, description = "Too many rows or too large a body", body = ErrorBody),
        (status = 422, description = "A row is not a document of the collection, or the collection is read-only", body = ErrorBody),
    ))]
pub async fn push(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(collection): ApiPath<String>,
    ApiJson(rows): ApiJson<Vec<PushRow>>,
) -> AppResult<Json<Vec<Value>>> {
    let collection = Collection::parse(&collection)?;
    rxdb::push(&state, &caller, collection, rows)
        .await
        .map(Json)
}
