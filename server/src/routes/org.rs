//! `/api/v1/org-units` and `/api/v1/users`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::{AuthUser, Role, Scope};
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::ApiJson;
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
    let created = auth::create_user(&state.db, input, Some(Scope::of(&caller))).await?;
    Ok((StatusCode::CREATED, Json(created)))
}
