//! HTTP layer: the router, its middleware and the OpenAPI document. Handlers
//! stay thin: extract, call one service function, answer.

pub mod attachments;
pub mod auth;
pub mod devices;
pub mod extract;
pub mod health;
pub mod integration;
pub mod org;
pub mod reports;
pub mod sync;
pub mod visit_rules;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{AppError, ErrorBody};
use crate::state::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Seedling API",
        description = "Sync, review, report, admin and integration API for child-welfare field work.",
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "auth", description = "Sign-in and tokens"),
        (name = "org", description = "The org tree and accounts"),
        (name = "sync", description = "Device sync: push mutations, pull changes"),
        (name = "attachments", description = "Visit photos: resumable, content-addressed uploads"),
        (name = "operations", description = "Health and readiness"),
        (name = "integration", description = "The provincial platform: token, roster batches, change feed, delivery admin"),
        (name = "reports", description = "Overdue, coverage, visits, register changes, needs and benefits; JSON, CSV or XLSX"),
        (name = "visit-rules", description = "Visiting intervals per child category, configured by the district"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every documented route, with its OpenAPI description.
fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(org::list_org_units))
        .routes(routes!(org::list_users, org::create_user))
        .routes(routes!(devices::list_devices))
        .routes(routes!(devices::set_device_state))
        .routes(routes!(sync::push))
        .routes(routes!(sync::pull))
        .routes(routes!(attachments::upload, attachments::download))
        .routes(routes!(attachments::status))
        .routes(routes!(integration::token))
        .routes(routes!(integration::roster_batch))
        .routes(routes!(integration::changes))
        .routes(routes!(integration::status))
        .routes(routes!(integration::parked))
        .routes(routes!(integration::delivery))
        .routes(routes!(integration::replay_one))
        .routes(routes!(integration::replay_all))
        .routes(routes!(integration::pause))
        .routes(routes!(integration::resume))
        .routes(routes!(reports::overdue))
        .routes(routes!(reports::coverage))
        .routes(routes!(reports::visits_by_month))
        .routes(routes!(reports::register_changes))
        .routes(routes!(reports::open_needs))
        .routes(routes!(reports::benefits))
        .routes(routes!(reports::dashboard))
        .routes(routes!(visit_rules::show))
        .routes(routes!(visit_rules::set, visit_rules::reset))
}

/// The OpenAPI document of the whole API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}

/// The application: every route with its middleware, bound to `state`.
pub fn app(state: AppState) -> Router {
    let (router, api) = api_router().split_for_parts();
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let body_limit = state.config.max_body_bytes;
    router
        .route("/openapi.json", get(move || async move { Json(api) }))
        .fallback(|| async { AppError::not_found("no such route") })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        let request_id = request
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            path = %request.uri().path(),
                            request_id = %request_id,
                        )
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(CatchPanicLayer::custom(|_| -> Response {
                    AppError::Internal("a handler panicked".to_owned()).into_response()
                }))
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    AppError::Timeout
                }))
                .timeout(timeout)
                .layer(CompressionLayer::new())
                .layer(RequestDecompressionLayer::new())
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}
