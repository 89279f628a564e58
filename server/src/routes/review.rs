//! `/api/v1/visits`, `/api/v1/children` and `/api/v1/conflicts`: the
//! supervisor's review (docs/API.md, "Review").

use axum::Json;
use axum::extract::State;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::review::children::{self, ChildPage, ChildQuery, Roster};
use crate::service::review::conflicts::{self, ConflictPage, ConflictQuery, ResolveInput};
use crate::service::review::decide::{self, ReviewInput, ReviewOutcome};
use crate::service::review::log::{self, ConflictView, VisitDetail, VisitPage, VisitQuery};
use crate::service::review::urgent::{self, AcknowledgeInput, UrgentView};
use crate::state::AppState;

/// The visit log: visits in the caller's scope, filtered, sorted and paged.
#[utoipa::path(get, path = "/api/v1/visits", tag = "review",
    security(("bearer" = [])),
    params(VisitQuery),
    responses(
        (status = 200, description = "A page of the visit log", body = VisitPage),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not a supervisor or admin, or a town outside your scope", body = ErrorBody),
        (status = 422, description = "Unknown filter value", body = ErrorBody),
    ))]
pub async fn list_visits(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<VisitQuery>,
) -> AppResult<Json<VisitPage>> {
    log::list(&state, &caller, query).await.map(Json)
}

/// A visit's whole history: every version, conflicts, amendments, decisions.
#[utoipa::path(get, path = "/api/v1/visits/{id}", tag = "review",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Visit id")),
    responses(
        (status = 200, description = "The visit with its history", body = VisitDetail),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 404, description = "No such visit in your scope", body = ErrorBody),
    ))]
pub async fn visit_detail(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<VisitDetail>> {
    log::detail(&state, &caller, id).await.map(Json)
}

/// Approve a submitted visit, or return it for revision with a comment.
#[utoipa::path(post, path = "/api/v1/visits/{id}/review", tag = "review",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Visit id")),
    request_body = ReviewInput,
    responses(
        (status = 200, description = "Decided; syncs to the director's phone", body = ReviewOutcome),
        (status = 403, description = "Not the town supervisor", body = ErrorBody),
        (status = 404, description = "No such visit in your scope", body = ErrorBody),
        (status = 409, description = "The visit changed since, or is not submitted", body = ErrorBody),
        (status = 422, description = "A return without a comment", body = ErrorBody),
    ))]
pub async fn review_visit(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<ReviewInput>,
) -> AppResult<Json<ReviewOutcome>> {
    decide::review(&state, &caller, id, input).await.map(Json)
}

/// Acknowledge a visit's urgent risk alert: `acknowledged` (已知悉) or
/// `reported` (已上报). Resolves its open alerts; recorded with who and when.
#[utoipa::path(post, path = "/api/v1/visits/{id}/acknowledge", tag = "review",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Visit id")),
    request_body = AcknowledgeInput,
    responses(
        (status = 200, description = "Acknowledged; the alert and every acknowledgement", body = UrgentView),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 404, description = "No such visit in your scope", body = ErrorBody),
        (status = 409, description = "The visit raised no urgent alert, or it is already handled", body = ErrorBody),
    ))]
pub async fn acknowledge_urgent(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<AcknowledgeInput>,
) -> AppResult<Json<UrgentView>> {
    urgent::acknowledge(&state, &caller, id, input)
        .await
        .map(Json)
}

/// The children roster with due dates; `overdue=true` lists the overdue.
#[utoipa::path(get, path = "/api/v1/children", tag = "review",
    security(("bearer" = [])),
    params(ChildQuery),
    responses(
        (status = 200, description = "Children in scope", body = Roster),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
    ))]
pub async fn list_children(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<ChildQuery>,
) -> AppResult<Json<Roster>> {
    children::roster(&state, &caller, query).await.map(Json)
}

/// A child's page: register entry and events, visits, needs ledger, due date.
#[utoipa::path(get, path = "/api/v1/children/{id}", tag = "review",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Child id")),
    responses(
        (status = 200, description = "The child's page", body = ChildPage),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
        (status = 404, description = "No such child in your scope", body = ErrorBody),
    ))]
pub async fn child_page(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<ChildPage>> {
    children::page(&state, &caller, id).await.map(Json)
}

/// The conflict queue.
#[utoipa::path(get, path = "/api/v1/conflicts", tag = "review",
    security(("bearer" = [])),
    params(ConflictQuery),
    responses(
        (status = 200, description = "Conflicts in scope", body = ConflictPage),
        (status = 403, description = "Not a supervisor or admin", body = ErrorBody),
    ))]
pub async fn list_conflicts(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<ConflictQuery>,
) -> AppResult<Json<ConflictPage>> {
    conflicts::list(&state, &caller, query).await.map(Json)
}

/// Resolve a conflict: keep the winner, choose the other value, enter a
/// new one, or accept or reject an amendment.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", tag = "review",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Conflict id")),
    request_body = ResolveInput,
    responses(
        (status = 200, description = "Resolved; any change syncs to devices", body = ConflictView),
        (status = 403, description = "Not allowed to write this field", body = ErrorBody),
        (status = 404, description = "No such conflict in your scope", body = ErrorBody),
        (status = 409, description = "Already resolved, or the record is locked", body = ErrorBody),
        (status = 422, description = "An action this conflict does not take", body = ErrorBody),
    ))]
pub async fn resolve_conflict(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<ResolveInput>,
) -> AppResult<Json<ConflictView>> {
    conflicts::resolve(&state, &caller, id, input)
        .await
        .map(Json)
}
