//! HTTP layer: the router, its middleware and the OpenAPI document. Handlers
//! stay thin: extract, call one service function, answer.

pub mod attachments;
pub mod auth;
pub mod devices;
pub mod extract;
pub mod health;
pub mod integration;
pub mod metrics;
pub mod org;
pub mod privacy;
pub mod reports;
pub mod review;
pub mod rxdb;
pub mod sync;
pub mod visit_rules;
pub mod watermelon;

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::compression::CompressionLayer;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::{
    DefaultOnBodyChunk, DefaultOnEos, DefaultOnFailure, DefaultOnRequest, DefaultOnResponse,
    TraceLayer,
};
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
        (name = "rxdb", description = "RxDB replication: pull and push handlers over the sync API (docs/ADAPTERS.md)"),
        (name = "watermelon", description = "WatermelonDB sync: pullChanges and pushChanges over the sync API (docs/ADAPTERS.md)"),
        (name = "attachments", description = "Visit photos: resumable, content-addressed uploads"),
        (name = "operations", description = "Health and readiness"),
        (name = "reports", description = "Overdue, coverage, visits, register changes, needs and benefits; JSON, CSV or XLSX"),
        (name = "visit-rules", description = "Visiting intervals per child category, configured by the district"),
        (name = "integration", description = "The provincial platform: token, roster batches, change feed, delivery admin"),
        (name = "review", description = "Supervisor review: visit log, decisions, children, conflict queue"),
        (name = "privacy", description = "Minors' personal data: the subject-access export of one child"),
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
        .routes(routes!(org::update_user))
        .routes(routes!(org::set_password))
        .routes(routes!(devices::list_devices))
        .routes(routes!(devices::set_device_state))
        .routes(routes!(sync::push))
        .routes(routes!(sync::pull))
        .routes(routes!(sync::manifest))
        .routes(routes!(sync::fetch))
        .routes(routes!(sync::events))
        .routes(routes!(rxdb::pull))
        .routes(routes!(rxdb::push))
        .routes(routes!(watermelon::pull))
        .routes(routes!(watermelon::push))
        .routes(routes!(attachments::upload, attachments::download))
        .routes(routes!(attachments::status))
        .routes(routes!(reports::overdue))
        .routes(routes!(reports::coverage))
        .routes(routes!(reports::visits_by_month))
        .routes(routes!(reports::register_changes))
        .routes(routes!(reports::open_needs))
        .routes(routes!(reports::benefits))
        .routes(routes!(reports::dashboard))
        .routes(routes!(visit_rules::show))
        .routes(routes!(visit_rules::set, visit_rules::reset))
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
        .routes(routes!(review::list_visits))
        .routes(routes!(review::visit_detail))
        .routes(routes!(review::review_visit))
        .routes(routes!(review::acknowledge_urgent))
        .routes(routes!(review::list_children))
        .routes(routes!(review::child_page))
        .routes(routes!(privacy::export_child))
        .routes(routes!(review::list_conflicts))
        .routes(routes!(review::resolve_conflict))
}

/// The OpenAPI document of the whole API, as served at `/openapi.json`.
pub fn openapi() -> serde_json::Value {
    document(api_router().into_openapi())
}

fn document(mut api: utoipa::openapi::OpenApi) -> serde_json::Value {
    document_common_errors(&mut api);
    let mut document = serde_json::to_value(api).expect("the OpenAPI model serialises");
    sync::schema::publish(&mut document);
    document
}

/// Adds to every operation the error answers that come from the shared
/// extractors and middleware rather than from its handler, unless the
/// operation already describes them: a JSON body that is not JSON (400), too
/// large (413), stalled (408), not sent as JSON (415) or of the wrong shape
/// (422); a bad
/// path or query parameter (400); a missing or invalid token (401) and a
/// lost device (403); a timeout or an unreachable database (503). A new route
/// is then documented as precisely as the old ones without repeating these.
fn document_common_errors(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(
                            <ErrorBody as utoipa::ToSchema>::name(),
                        )))
                        .build(),
                )
                .build(),
        )
    };
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let mut add = Vec::new();
            let params = operation.parameters.iter().flatten();
            let in_path_or_query = params.filter_map(|param| match param {
                RefOr::T(param) => Some(&param.parameter_in),
                RefOr::Ref(_) => None,
            });
            if in_path_or_query
                .into_iter()
                .any(|place| matches!(place, ParameterIn::Path | ParameterIn::Query))
            {
                add.push(("400", "A malformed path or query parameter"));
            }
            let has_query = operation.parameters.iter().flatten().any(|param| {
                matches!(param, RefOr::T(param) if matches!(param.parameter_in, ParameterIn::Query))
            });
            if has_query {
                add.push((
                    "422",
                    "A query parameter's value is not one the route knows (an unknown category, status or period)",
                ));
            }
            if let Some(RefOr::T(body)) = &operation.request_body {
                if body.content.contains_key("application/json") {
                    add.push(("400", "The body is not JSON"));
                    add.push(("415", "The body was not sent as `application/json`"));
                    add.push(("422", "The JSON does not have the expected shape"));
                }
                add.push(("413", "The body is larger than `max_body_bytes`"));
                add.push((
                    "408",
                    "The body stopped arriving for longer than `body_read_timeout_secs`",
                ));
            }
            let signed_in = operation
                .security
                .iter()
                .flatten()
                .any(|requirement| *requirement != Default::default());
            if signed_in {
                add.push(("401", "No bearer token, or an invalid or expired one"));
                add.push((
                    "403",
                    "Outside the caller's role or scope, or the device was reported lost: wipe the store",
                ));
            }
            add.push((
                "503",
                "The request took too long or the database is unavailable; see Retry-After",
            ));
            for (status, description) in add {
                operation
                    .responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description));
            }
        }
    }
}

/// Longest request target (path and query) read, in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest total of request header names and values read, in bytes.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Oversized addresses and headers answered in the error envelope (414,
/// 431), before any route runs. Far larger ones are cut by hyper itself,
/// without a body.
async fn request_size_limits(
    request: Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return AppError::UriTooLong(MAX_URI_BYTES).into_response();
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADER_BYTES {
        return AppError::HeadersTooLarge(MAX_HEADER_BYTES).into_response();
    }
    next.run(request).await
}

/// The application: every route with its middleware, bound to `state`.
pub fn app(state: AppState) -> Router {
    let (router, api) = api_router().split_for_parts();
    let api = document(api);
    let timeout = Duration::from_secs(state.config.request_timeout_secs);
    let body_timeout = Duration::from_secs(state.config.body_read_timeout_secs);
    let body_limit = state.config.max_body_bytes;
    let router = if state.config.metrics_on_public_port {
        router.route("/metrics", get(metrics::metrics))
    } else {
        router
    };
    router
        .route("/openapi.json", get(move || async move { Json(api) }))
        .merge(crate::web::router())
        .fallback(|| async { AppError::not_found("no such route") })
        .method_not_allowed_fallback(|| async { AppError::MethodNotAllowed })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(trace_layer())
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    metrics::observe,
                ))
                .layer(axum::middleware::from_fn(request_size_limits))
                .layer(CatchPanicLayer::custom(|_| -> Response {
                    AppError::Internal("a handler panicked".to_owned()).into_response()
                }))
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    AppError::Timeout
                }))
                .timeout(timeout)
                .layer(RequestBodyTimeoutLayer::new(body_timeout))
                .layer(CompressionLayer::new())
                .layer(RequestDecompressionLayer::new())
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .with_state(state)
}

/// The span every request is logged in (with its `x-request-id`).
fn request_span(request: &Request<axum::body::Body>) -> tracing::Span {
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
}

/// Request tracing. tower-http logs every 5xx answer as a failure at ERROR
/// by default; here that is DEBUG, because `AppError::into_response` already
/// logs each 5xx once at the level it deserves: a 500 at ERROR with its
/// detail, a deadlock at WARN, a refusal while the database is unreachable
/// at DEBUG (the outage itself is logged once, `outage.rs`) and
/// back-pressure at DEBUG. Left at ERROR, a failover wrote one ERROR line
/// per refused request.
type RequestTrace = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    fn(&Request<axum::body::Body>) -> tracing::Span,
    DefaultOnRequest,
    DefaultOnResponse,
    DefaultOnBodyChunk,
    DefaultOnEos,
    DefaultOnFailure,
>;

fn trace_layer() -> RequestTrace {
    TraceLayer::new_for_http()
        .make_span_with(request_span as fn(&Request<axum::body::Body>) -> tracing::Span)
        .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG))
}

#[cfg(test)]
mod trace_tests {
    use std::sync::{Arc, Mutex};

    use tower::ServiceExt;

    use super::*;

    /// Log output kept in memory.
    #[derive(Debug, Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    /// The ERROR lines logged while answering `GET /` with `error`.
    async fn errors_logged_answering(error: fn() -> AppError) -> (u16, Vec<String>) {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_max_level(tracing::Level::ERROR)
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let app = Router::new()
            .route("/", get(move || async move { error() }))
            .layer(trace_layer());
        let answer = app
            .oneshot(
                Request::get("/")
                    .body(axum::body::Body::empty())
                    .expect("a request"),
            )
            .await
            .expect("an answer");
        let text =
            String::from_utf8(captured.0.lock().expect("log buffer").clone()).expect("UTF-8 logs");
        let lines = text.lines().map(str::to_owned).collect();
        (answer.status().as_u16(), lines)
    }

    #[tokio::test]
    async fn a_request_refused_while_the_database_is_unreachable_logs_no_error() {
        let (status, errors) = errors_logged_answering(|| {
            AppError::Unavailable(sea_orm::DbErr::ConnectionAcquire(
                sea_orm::ConnAcquireErr::Timeout,
            ))
        })
        .await;
        assert_eq!(status, 503);
        assert!(errors.is_empty(), "logged at ERROR: {errors:?}");
        let (status, errors) = errors_logged_answering(|| AppError::Busy).await;
        assert_eq!(status, 503);
        assert!(errors.is_empty(), "logged at ERROR: {errors:?}");
    }

    #[tokio::test]
    async fn an_internal_error_is_logged_once() {
        let (status, errors) =
            errors_logged_answering(|| AppError::Internal("a broken invariant".into())).await;
        assert_eq!(status, 500);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("request failed"), "{errors:?}");
    }
}
