//! `/api/v1/sync/*`: the device sync protocol (docs/SYNC-PROTOCOL.md).

use std::convert::Infallible;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use sync_core::protocol::{
    CompactPullResponse, DEFAULT_MANIFEST_LIMIT, FetchRequest, FetchResponse, ManifestResponse,
    PullEncoding, PullRequest, PushRequest, PushResponse,
};

use tokio::sync::OwnedSemaphorePermit;
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiQuery};
use crate::service::sync;
use crate::state::AppState;

pub mod schema;

use schema::{
    FetchRequestSchema, FetchResponseSchema, ManifestResponseSchema, PullPageSchema,
    PushRequestSchema, PushResponseSchema,
};

/// Push a batch of mutations, applied in one transaction; a retried
/// mutation id answers the stored outcome.
#[utoipa::path(post, path = "/api/v1/sync/push", tag = "sync",
    security(("bearer" = [])),
    request_body(content = PushRequestSchema, description = "PushRequest (docs/SYNC-PROTOCOL.md §3)"),
    responses(
        (status = 200, description = "One result per mutation", body = PushResponseSchema),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 409, description = "`server_restored`: the push's cursor was made before the server was restored from a backup; nothing was applied. Recover, then push again with the manifest's cursor", body = ErrorBody),
        (status = 413, description = "Too many mutations or too large a body", body = ErrorBody),
        (status = 422, description = "Not a valid push request", body = ErrorBody),
        (status = 426, description = "Unsupported protocol version: update the app", body = ErrorBody),
    ))]
pub async fn push(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(request): ApiJson<PushRequest>,
) -> AppResult<Json<PushResponse>> {
    let response = sync::push::push(&state, &caller, request).await?;
    crate::metrics::push(&response);
    Ok(Json(response))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PullParams {
    /// The protocol version the device speaks.
    pub protocol_version: u32,
    /// The `next_cursor` of the previous page; absent for a fresh device.
    pub cursor: Option<String>,
    /// Page size (default 200, at most 1000).
    pub limit: Option<u32>,
    /// `compact`: one clock per record, field clocks only where they
    /// differ, and the scope checksum on the last page only
    /// (docs/SYNC-PROTOCOL.md §4). Default `full`.
    #[param(inline)]
    pub encoding: Option<EncodingParam>,
}

/// How a pull page writes its records (`sync_core::protocol::PullEncoding`).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EncodingParam {
    Full,
    Compact,
}

impl From<EncodingParam> for PullEncoding {
    fn from(param: EncodingParam) -> Self {
        match param {
            EncodingParam::Full => PullEncoding::Full,
            EncodingParam::Compact => PullEncoding::Compact,
        }
    }
}

/// Pull the changes in the caller's scope after a cursor.
#[utoipa::path(get, path = "/api/v1/sync/pull", tag = "sync",
    security(("bearer" = [])),
    params(PullParams),
    responses(
        (status = 200, description = "A page of changes, in the encoding asked for (docs/SYNC-PROTOCOL.md §4)", body = PullPageSchema),
        (status = 400, description = "`invalid_cursor`, or `invalid_query` for a query it cannot read (an unknown `encoding`)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 409, description = "`server_restored`: the server was restored from a backup since this cursor; send back what it lacks, then pull on from the manifest's cursor", body = ErrorBody),
        (status = 426, description = "Unsupported protocol version: update the app", body = ErrorBody),
    ))]
pub async fn pull(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<PullParams>,
) -> AppResult<Response> {
    let request = PullRequest {
        protocol_version: params.protocol_version,
        cursor: params.cursor,
        limit: params
            .limit
            .unwrap_or(sync_core::protocol::DEFAULT_PULL_LIMIT),
        encoding: params
            .encoding
            .map_or(PullEncoding::Full, PullEncoding::from),
    };
    let encoding = request.encoding;
    let response = sync::pull::pull(&state, &caller, request).await?;
    crate::metrics::pull(response.changes.len());
    Ok(match encoding {
        PullEncoding::Full => Json(response).into_response(),
        PullEncoding::Compact => Json(CompactPullResponse::from(response)).into_response(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ManifestParams {
    /// The protocol version the device speaks.
    pub protocol_version: u32,
    /// The `next_after` of the previous page; absent for the first.
    pub after: Option<String>,
    /// Entries per page (default 5000, at most 10000).
    pub limit: Option<u32>,
}

/// The scope's manifest: `[entity, id, version]` of every live record a
/// fully synced device of the caller's scope holds, in pages, for a phone
/// whose scope checksum differs (targeted repair).
#[utoipa::path(get, path = "/api/v1/sync/manifest", tag = "sync",
    security(("bearer" = [])),
    params(ManifestParams),
    responses(
        (status = 200, description = "A page of the manifest (docs/SYNC-PROTOCOL.md §4)", body = ManifestResponseSchema),
        (status = 400, description = "Invalid `after`", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 426, description = "Unsupported protocol version: update the app", body = ErrorBody),
    ))]
pub async fn manifest(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<ManifestParams>,
) -> AppResult<Json<ManifestResponse>> {
    sync::repair::manifest(
        &state,
        &caller,
        params.protocol_version,
        params.after.as_deref(),
        params.limit.unwrap_or(DEFAULT_MANIFEST_LIMIT),
    )
    .await
    .map(Json)
}

/// Named records of the caller's scope, whole, as a pull carries them
/// (targeted repair); the ones the scope does not hold come back as
/// `missing`.
#[utoipa::path(post, path = "/api/v1/sync/fetch", tag = "sync",
    security(("bearer" = [])),
    request_body(content = FetchRequestSchema, description = "FetchRequest (docs/SYNC-PROTOCOL.md §4)"),
    responses(
        (status = 200, description = "The records asked for", body = FetchResponseSchema),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 422, description = "More than 500 records, or not a fetch request", body = ErrorBody),
        (status = 426, description = "Unsupported protocol version: update the app", body = ErrorBody),
    ))]
pub async fn fetch(
    _slot: SyncSlot,
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(request): ApiJson<FetchRequest>,
) -> AppResult<Json<FetchResponse>> {
    sync::repair::fetch(&state, &caller, request)
        .await
        .map(Json)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// The protocol version the device speaks.
    pub protocol_version: u32,
}

/// Server-sent events for an online device: `ready` when the stream
/// opens, then `changed` each time a change in the caller's scope commits
/// (on any server process). The events carry no records: pull on each.
/// A comment line every `events_heartbeat_secs`; the stream ends when the
/// access token expires (reconnect with a fresh one).
#[utoipa::path(get, path = "/api/v1/sync/events", tag = "sync",
    security(("bearer" = [])),
    params(EventsParams),
    responses(
        (status = 200, description = "`text/event-stream`: `event: ready` then `event: changed`, each with `data: {}` (docs/SYNC-PROTOCOL.md §4c)", content_type = "text/event-stream", body = String),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Device lost or revoked: wipe the store", body = ErrorBody),
        (status = 426, description = "Unsupported protocol version: update the app", body = ErrorBody),
        (status = 503, description = "`server_busy`: this process holds `max_event_streams` streams open; retry after `Retry-After`", body = ErrorBody),
    ))]
pub async fn events(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(params): ApiQuery<EventsParams>,
) -> AppResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let signals = sync::events::open(&state, &caller, params.protocol_version).await?;
    let events = signals.map(|signal| {
        let name = match signal {
            sync::events::Signal::Ready => "ready",
            sync::events::Signal::Changed => "changed",
        };
        Ok(Event::default().event(name).data("{}"))
    });
    let heartbeat = Duration::from_secs(state.config.events_heartbeat_secs.max(1));
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// A slot among the `max_sync_in_flight` sync requests served at once,
/// taken before the body is read and held until the answer is made. None
/// free: the request waits in arrival order (tokio's semaphore is fair) for
/// up to `sync_queue_wait_ms`, with at most `max_sync_queued` waiting; past
/// either bound, 503 `server_busy` with `Retry-After`. A waiting request
/// holds its headers only, so the wait costs no memory for bodies.
#[derive(Debug)]
pub struct SyncSlot(#[expect(dead_code, reason = "held for its drop")] OwnedSemaphorePermit);

impl FromRequestParts<AppState> for SyncSlot {
    type Rejection = AppError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Ok(permit) = state.sync_slots.clone().try_acquire_owned() {
            return Ok(SyncSlot(permit));
        }
        let turned_away = || {
            crate::metrics::sync_turned_away();
            AppError::Busy
        };
        let Some(_place) = QueuePlace::take(&state.sync_queued, state.config.max_sync_queued)
        else {
            return Err(turned_away());
        };
        let wait = Duration::from_millis(state.config.sync_queue_wait_ms);
        match tokio::time::timeout(wait, state.sync_slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(SyncSlot(permit)),
            _ => Err(turned_away()),
        }
    }
}

/// A place in the queue for a sync slot, given back when dropped (the
/// request got its slot, timed out, or its client went away).
struct QueuePlace<'a>(&'a AtomicUsize);

impl<'a> QueuePlace<'a> {
    fn take(queued: &'a AtomicUsize, max: usize) -> Option<Self> {
        queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(queued))
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
