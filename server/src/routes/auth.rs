//! `/api/v1/auth/*`: sign-in, refresh, sign-out, and who am I.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorBody, ErrorCode};
use crate::repo;
use crate::routes::extract::{ApiJson, ClientAddr};
use crate::service::auth::{self, LoginRequest, RefreshRequest, Session, UserView};
use crate::service::org::OrgUnitView;
use crate::state::AppState;

/// Sign in with username and password from a device.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = Session),
        (status = 401, description = "Wrong credentials or disabled account", body = ErrorBody),
        (status = 403, description = "The device was reported lost or revoked", body = ErrorBody),
        (status = 422, description = "Invalid request body", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins for this account or address; see Retry-After", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(input): ApiJson<LoginRequest>,
) -> AppResult<Json<Session>> {
    auth::login(&state, input, client).await.map(Json)
}

/// Trade a refresh token for new tokens; the old refresh token is spent.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = Session),
        (status = 401, description = "Invalid, expired, revoked or reused refresh token", body = ErrorBody),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<RefreshRequest>,
) -> AppResult<Json<Session>> {
    auth::refresh(&state, &input.refresh_token).await.map(Json)
}

/// End the session a refresh token belongs to.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses((status = 204, description = "Signed out")))]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<RefreshRequest>,
) -> AppResult<StatusCode> {
    auth::logout(&state, &input.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn me(State(state): State<AppState>, caller: AuthUser) -> AppResult<Json<UserView>> {
    let user = repo::users::find(&state.db, caller.user_id)
        .await?
        .ok_or_else(|| {
            AppError::unauthorized(ErrorCode::InvalidToken, "this account no longer exists")
        })?;
    let unit = repo::org_units::find(&state.db, user.org_unit_id)
        .await?
        .ok_or_else(|| AppError::Internal("user without org unit".to_owned()))?;
    auth::user_view(user, OrgUnitView::from(unit)).map(Json)
}
