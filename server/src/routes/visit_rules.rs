//! `/api/v1/visit-rules`: the district's visiting interval per child
//! category. Every role reads them (phones compute due dates from them);
//! admins change them.

use axum::Json;
use axum::extract::State;

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiPath};
use crate::service::visit_rules::{self, SetVisitRule, VisitRulesView};
use crate::state::AppState;

/// The caller's district's visit rules, with the assumed defaults.
#[utoipa::path(get, path = "/api/v1/visit-rules", tag = "visit-rules",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Effective intervals (`intervals` is sync-core's VisitIntervals)", body = VisitRulesView),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    caller: AuthUser,
) -> AppResult<Json<VisitRulesView>> {
    visit_rules::show(&state, &caller).await.map(Json)
}

/// Set the district's interval for a category (admins).
#[utoipa::path(put, path = "/api/v1/visit-rules/{category}", tag = "visit-rules",
    security(("bearer" = [])),
    params(("category" = String, Path, description = "A child category, e.g. `left_behind`")),
    request_body = SetVisitRule,
    responses(
        (status = 200, description = "The district's rules after the change", body = VisitRulesView),
        (status = 403, description = "Only admins change visit rules", body = ErrorBody),
        (status = 422, description = "Unknown category or interval out of range", body = ErrorBody),
    ))]
pub async fn set(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(category): ApiPath<String>,
    ApiJson(input): ApiJson<SetVisitRule>,
) -> AppResult<Json<VisitRulesView>> {
    visit_rules::set(&state, &caller, &category, input)
        .await
        .map(Json)
}

/// Return a category to the assumed default interval (admins).
#[utoipa::path(delete, path = "/api/v1/visit-rules/{category}", tag = "visit-rules",
    security(("bearer" = [])),
    params(("category" = String, Path, description = "A child category")),
    responses(
        (status = 200, description = "The district's rules after the change", body = VisitRulesView),
        (status = 403, description = "Only admins change visit rules", body = ErrorBody),
        (status = 422, description = "Unknown category", body = ErrorBody),
    ))]
pub async fn reset(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(category): ApiPath<String>,
) -> AppResult<Json<VisitRulesView>> {
    visit_rules::reset(&state, &caller, &category)
        .await
        .map(Json)
}
