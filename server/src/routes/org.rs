//! `/api/v1/org-units` and `/api/v1/users`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use uuid::Uuid;

use crate::auth::{AuthUser, Role};
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiPath};
use crate::service::accounts::{self, NewPassword, UserChange};
use crate::service::auth::{self, NewUser, UserView};
use crate::service::org::{self, OrgUnitView};
use crate::state::AppState;

/// The org units in the caller's scope.
#[utoipa::path(get, path = "/api/v1/org-units", tag = "org",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's unit and every unit below it", body = Vec<OrgUnitView>),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn list_org_units(
    State(state): State<AppState>,
    caller: AuthUser,
) -> AppResult<Json<Vec<OrgUnitView>>> {
    org::units_in_scope(&state, &caller).await.map(Json)
}

/// The accounts in the caller's scope (supervisors and admins).
#[utoipa::path(get, path = "/api/v1/users", tag = "org",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Accounts bound to units in scope", body = Vec<UserView>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Directors manage no accounts", body = ErrorBody),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: AuthUser,
) -> AppResult<Json<Vec<UserView>>> {
    org::users_in_scope(&state, &caller).await.map(Json)
}

/// Create an account (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "org",
    security(("bearer" = [])),
    request_body = NewUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 403, description = "Only admins create accounts", body = ErrorBody),
        (status = 409, description = "Username taken", body = ErrorBody),
        (status = 422, description = "Invalid account", body = ErrorBody),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiJson(input): ApiJson<NewUser>,
) -> AppResult<(StatusCode, Json<UserView>)> {
    caller.require_role(&[Role::Admin])?;
    let created = auth::create_user(&state.db, input, Some(&caller)).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Change an account (admins): its name, its org unit (move a director to
/// another village) or whether it is active.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "org",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The account as changed", body = UserView),
        (status = 403, description = "Only admins change accounts, within their district", body = ErrorBody),
        (status = 404, description = "No such account in the caller's district", body = ErrorBody),
        (status = 422, description = "Empty name, unknown org unit, a unit of the wrong kind for the role, or disabling oneself", body = ErrorBody),
    ))]
pub async fn update_user(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(change): ApiJson<UserChange>,
) -> AppResult<Json<UserView>> {
    accounts::update_user(&state, &caller, id, change)
        .await
        .map(Json)
}

/// Set a new password on an account (admins); its refresh tokens are
/// revoked.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "org",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = NewPassword,
    responses(
        (status = 200, description = "The account; its devices sign in again with the new password", body = UserView),
        (status = 403, description = "Only admins set passwords", body = ErrorBody),
        (status = 404, description = "No such account in the caller's district", body = ErrorBody),
        (status = 422, description = "Password shorter than 10 characters", body = ErrorBody),
    ))]
pub async fn set_password(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<NewPassword>,
) -> AppResult<Json<UserView>> {
    accounts::set_password(&state, &caller, id, input)
        .await
        .map(Json)
}
