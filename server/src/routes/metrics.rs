//! `GET /metrics` (Prometheus text) and the middleware that counts every
//! answered request. Served on `metrics_listen` and, when
//! `metrics_on_public_port` is set, on the public port too.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::outage::DbUnreachable;
use crate::service;
use crate::state::AppState;

/// The Prometheus text exposition of every metric.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = service::metrics::scrape(&state).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The router of the metrics listener: `/metrics` and nothing else.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Counts each answer by route template and status with its latency, and
/// hands an answer refused for an unreachable database to the outage log.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("(unmatched)", MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let response = next.run(request).await;
    crate::metrics::request(
        &route,
        method.as_str(),
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Some(unreachable) = response.extensions().get::<DbUnreachable>() {
        state.outage.refused(&unreachable.cause);
    }
    response
}
