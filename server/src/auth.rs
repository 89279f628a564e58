//! Authentication and authorization: password hashing, access tokens, the
//! [`AuthUser`] extractor and the scope rules every endpoint reuses.

pub mod jwt;
pub mod password;
pub mod scope;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, ErrorCode};
use crate::service::auth::{DeviceUse, ensure_device_usable};
use crate::state::AppState;

pub use scope::Scope;

/// What a user may do is decided by their role and the org unit they are
/// bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 儿童主任: one village.
    Director,
    /// 儿童督导员: one town.
    Supervisor,
    /// District bureau staff.
    Admin,
    /// The provincial platform's machine account.
    Integration,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Director => "director",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
            Self::Integration => "integration",
        }
    }

    /// The same role as `sync-core` names it.
    pub fn to_sync(self) -> sync_core::rules::Role {
        match self {
            Self::Director => sync_core::rules::Role::Director,
            Self::Supervisor => sync_core::rules::Role::Supervisor,
            Self::Admin => sync_core::rules::Role::Admin,
            Self::Integration => sync_core::rules::Role::Integration,
        }
    }

    /// The org-unit kind a user of this role is bound to.
    pub fn org_unit_kind(self) -> &'static str {
        match self {
            Self::Director => "village",
            Self::Supervisor => "town",
            Self::Admin | Self::Integration => "district",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AppError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "director" => Ok(Self::Director),
            "supervisor" => Ok(Self::Supervisor),
            "admin" => Ok(Self::Admin),
            "integration" => Ok(Self::Integration),
            other => Err(AppError::Validation(format!(
                "unknown role `{other}`; expected director, supervisor, admin or integration"
            ))),
        }
    }
}

/// The signed-in caller, taken from a valid `Authorization: Bearer` token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub role: Role,
    pub org_unit_id: Uuid,
    pub device_id: Uuid,
    /// When the access token expires (Unix seconds): a request that lasts
    /// (an event stream) ends then.
    pub expires_at: i64,
}

impl AuthUser {
    /// Refuses the request unless the caller has one of `roles`.
    pub fn require_role(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "this action is not available to the {} role",
                self.role.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            AppError::unauthorized(
                ErrorCode::MissingToken,
                "sign in first: no bearer token was sent",
            )
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                AppError::unauthorized(
                    ErrorCode::InvalidToken,
                    "the Authorization header must be `Bearer <token>`",
                )
            })?;
        let claims = state.jwt.verify(token.trim())?;
        // A phone reported lost is refused at once, whatever it asks, even
        // while its last access token is still valid.
        if let Some(device) = crate::repo::devices::find(&state.reader, claims.dev).await? {
            ensure_device_usable(&device, DeviceUse::Request)?;
            // Signed out (or a copied refresh token came back): the
            // session's access tokens end with it.
            let issued_ms = claims.iat_ms.unwrap_or(claims.iat.saturating_mul(1000));
            if device
                .session_ended_at
                .is_some_and(|ended| issued_ms <= ended.timestamp_millis())
            {
                return Err(AppError::unauthorized(
                    ErrorCode::SessionEnded,
                    "this session was ended (signed out); sign in again",
                ));
            }
        }
        Ok(Self {
            user_id: claims.sub,
            role: claims.role,
            org_unit_id: claims.org,
            device_id: claims.dev,
            expires_at: claims.exp,
        })
    }
}
