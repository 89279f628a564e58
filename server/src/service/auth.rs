//! Sign-in, token refresh with rotation and reuse detection, sign-out, and
//! user accounts.

pub(crate) mod throttle;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use rand::RngCore;
use sea_orm::ConnectionTrait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Role, Scope, password};
use crate::entity::{device, refresh_token, user};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::repo;
use crate::service::org::OrgUnitView;
use crate::state::AppState;

/// What a device is about to do, for [`ensure_device_usable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceUse {
    /// Any signed-in request.
    Request,
    SignIn,
    Refresh,
    Push,
    Pull,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "director-001")]
    pub username: String,
    #[schema(example = "seedling-demo")]
    pub password: String,
    /// The client-made id of the phone (or console) signing in.
    pub device_id: Uuid,
    /// A name people recognise, e.g. the phone model.
    #[serde(default)]
    pub device_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Tokens for a signed-in device.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub access_token: String,
    /// Single use: each refresh answers a new one and spends the old.
    pub refresh_token: String,
    /// Seconds until `access_token` expires.
    pub expires_in: i64,
    pub token_type: &'static str,
    pub user: UserView,
    /// Base64 of 32 bytes, only in the answer to a password sign-in: the
    /// device's own key, with which a field app wraps the key of its
    /// encrypted store, so that signing in again recovers a store whose PIN
    /// was forgotten (docs/SECURITY.md). The same on every sign-in of the
    /// device's account; another account is refused on that device id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_key: Option<String>,
    /// The district's calendar (an IANA zone, `district_time_zone`): the
    /// zone in which days are counted — due dates, report days — and in
    /// which an app shows dates.
    #[schema(example = "Asia/Shanghai")]
    pub district_time_zone: String,
}

/// A user as the API shows it (never the password hash).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
    pub org_unit: OrgUnitView,
}

/// What it takes to create an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Administrative code of the org unit the user is bound to.
    pub org_unit_code: String,
    pub password: String,
}

/// Signs in from a device (registering it on first use). `client` is the
/// caller's address, for throttling repeated failures.
pub async fn login(
    state: &AppState,
    input: LoginRequest,
    client: Option<IpAddr>,
) -> AppResult<Session> {
    let keys = throttle::Keys::new(&input.username, client);
    let found = repo::users::find_by_username(&state.db, input.username.trim()).await?;
    let known_device = match &found {
        Some(user) => repo::devices::find(&state.db, input.device_id)
            .await?
            .is_some_and(|device| device.user_id == user.id),
        None => false,
    };
    if known_device {
        throttle::check_known_device(state, &keys, Utc::now()).await?;
    } else {
        throttle::check(state, &keys, Utc::now()).await?;
    }
    let hash = found.as_ref().map_or_else(
        || password::dummy_hash().to_owned(),
        |u| u.password_hash.clone(),
    );
    let password_ok = password::verify_password_async(input.password, hash).await?;
    let user = match found {
        Some(user) if password_ok => user,
        _ => {
            tracing::info!(username = %input.username, "sign-in refused: wrong credentials");
            throttle::failed(state, &keys, Utc::now()).await?;
            return Err(AppError::unauthorized(
                ErrorCode::InvalidCredentials,
                "wrong username or password",
            ));
        }
    };
    if !user.active {
        return Err(AppError::unauthorized(
            ErrorCode::AccountDisabled,
            "this account is disabled; ask the district bureau",
        ));
    }
    throttle::succeeded(state, &keys).await?;

    let now = Utc::now();
    let txn = crate::repo::begin_write(&state.db).await?;
    let device_key = match repo::devices::find(&txn, input.device_id).await? {
        Some(existing) => {
            ensure_device_usable(&existing, DeviceUse::SignIn)?;
            if existing.user_id != user.id {
                // Taking another account's device over would cut that
                // account's phone off (`device_reassigned`); an app signing
                // in someone else makes itself a new device id first.
                tracing::info!(device = %existing.id, user = %user.username, "sign-in refused: the device belongs to another account");
                return Err(AppError::unauthorized(
                    ErrorCode::DeviceInUse,
                    "this device id is registered to another account; the app must start afresh with a new device id before another person signs in",
                ));
            }
            let key = existing.device_key.clone().unwrap_or_else(new_device_key);
            repo::devices::touch(
                &txn,
                existing,
                user.id,
                input.device_name,
                Some(key.clone()),
                now,
            )
            .await?;
            key
        }
        None => {
            let name = input
                .device_name
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| "unnamed device".to_owned());
            let key = new_device_key();
            repo::devices::insert(
                &txn,
                device::Model {
                    id: input.device_id,
                    user_id: user.id,
                    name,
                    state: "active".to_owned(),
                    protocol_version: None,
                    last_seen_at: Some(now),
                    created_at: now,
                    device_key: Some(key.clone()),
                    session_ended_at: None,
                },
            )
            .await?;
            key
        }
    };
    let refresh_token =
        issue_refresh_token(state, &txn, &user, input.device_id, Uuid::now_v7()).await?;
    let mut session = session_for(state, &txn, user, input.device_id, refresh_token).await?;
    session.device_key = Some(device_key);
    txn.commit().await?;
    tracing::info!(user = %session.user.username, device = %input.device_id, "signed in");
    Ok(session)
}

pub async fn refresh(state: &AppState, presented: &str) -> AppResult<Session> {
    let now = Utc::now();
    let txn = crate::repo::begin_write(&state.db).await?;
    let invalid = || {
        AppError::unauthorized(
            ErrorCode::InvalidRefreshToken,
            "the refresh token is not valid; sign in again",
        )
    };
    let token = repo::refresh_tokens::find_by_hash(&txn, &hash_token(presented))
        .await?
        .ok_or_else(invalid)?;
    if token.revoked_at.is_some() {
        return Err(AppError::unauthorized(
            ErrorCode::RefreshTokenRevoked,
            "this session was ended; sign in again",
        ));
    }
    if token.used_at.is_some() || !repo::refresh_tokens::mark_used(&txn, token.id, now).await? {
        // A spent token came back: someone holds a copy. End the whole family,
        // and every access token of the device issued until now.
        repo::refresh_tokens::revoke_family(&txn, token.family_id, now).await?;
        repo::devices::end_session(&txn, token.device_id, now).await?;
        crate::service::audit::record(
            &txn,
            crate::service::audit::Entry {
                actor_id: Some(token.user_id),
                action: "auth.refresh_reuse",
                entity: Some("device"),
                record_id: Some(token.device_id),
                detail: serde_json::json!({ "family_id": token.family_id }),
            },
        )
        .await?;
        txn.commit().await?;
        tracing::warn!(family = %token.family_id, device = %token.device_id, "refresh token reused; family revoked");
        return Err(AppError::unauthorized(
            ErrorCode::RefreshTokenReused,
            "this refresh token was already used; for safety the session was ended, sign in again",
        ));
    }
    if token.expires_at <= now {
        return Err(AppError::unauthorized(
            ErrorCode::RefreshTokenExpired,
            "the session has expired; sign in again",
        ));
    }
    let user = repo::users::find(&txn, token.user_id)
        .await?
        .ok_or_else(invalid)?;
    if !user.active {
        return Err(AppError::unauthorized(
            ErrorCode::AccountDisabled,
            "this account is disabled; ask the district bureau",
        ));
    }
    let device = repo::devices::find(&txn, token.device_id)
        .await?
        .ok_or_else(invalid)?;
    ensure_device_usable(&device, DeviceUse::Refresh)?;
    repo::devices::touch(&txn, device, user.id, None, None, now).await?;
    let refresh_token =
        issue_refresh_token(state, &txn, &user, token.device_id, token.family_id).await?;
    let session = session_for(state, &txn, user, token.device_id, refresh_token).await?;
    txn.commit().await?;
    Ok(session)
}

/// Ends the session the refresh token belongs to. Unknown tokens are
/// ignored, so a repeated sign-out succeeds.
pub async fn logout(state: &AppState, presented: &str) -> AppResult<()> {
    let txn = crate::repo::begin_write(&state.db).await?;
    if let Some(token) = repo::refresh_tokens::find_by_hash(&txn, &hash_token(presented)).await? {
        let now = Utc::now();
        repo::refresh_tokens::revoke_family(&txn, token.family_id, now).await?;
        // The access tokens of this session end with it, not 15 minutes on.
        repo::devices::end_session(&txn, token.device_id, now).await?;
    }
    txn.commit().await?;
    Ok(())
}

/// The rules a password must meet.
pub(crate) fn check_password_rules(password: &str) -> AppResult<()> {
    if password.chars().count() < 10 {
        return Err(AppError::Validation(
            "password must be at least 10 characters".to_owned(),
        ));
    }
    Ok(())
}

/// Creates an account after checking that its role fits its org unit and,
/// when made by a signed-in admin (`by`), that the unit lies inside the
/// admin's scope; then audited as `user.create`.
pub async fn create_user(
    db: &sea_orm::DatabaseConnection,
    input: NewUser,
    by: Option<&crate::auth::AuthUser>,
) -> AppResult<UserView> {
    let within = by.map(Scope::of);
    let username = input.username.trim().to_owned();
    if username.is_empty() || username.len() > 64 || username.chars().any(char::is_whitespace) {
        return Err(AppError::Validation(
            "username must be 1 to 64 characters without spaces".to_owned(),
        ));
    }
    check_password_rules(&input.password)?;
    let hash = password::hash_password_async(input.password).await?;
    let txn = crate::repo::begin_write(db).await?;
    let unit = repo::org_units::find_by_code(&txn, &input.org_unit_code)
        .await?
        .ok_or_else(|| {
            AppError::Validation(format!("no org unit has code `{}`", input.org_unit_code))
        })?;
    if let Some(scope) = within {
        let lineage = repo::org_units::lineage(&txn, unit.id).await?;
        if !scope.contains(&lineage) {
            return Err(AppError::forbidden(format!(
                "org unit `{}` is outside your scope",
                unit.code
            )));
        }
    }
    if unit.kind != input.role.org_unit_kind() {
        return Err(AppError::Validation(format!(
            "a {} is bound to a {}, but `{}` is a {}",
            input.role.as_str(),
            input.role.org_unit_kind(),
            unit.code,
            unit.kind
        )));
    }
    if repo::users::find_by_username(&txn, &username)
        .await?
        .is_some()
    {
        return Err(AppError::Conflict(format!(
            "username `{username}` is taken"
        )));
    }
    let now = Utc::now();
    let created = repo::users::insert(
        &txn,
        user::Model {
            id: Uuid::now_v7(),
            username,
            display_name: input.display_name.trim().to_owned(),
            role: input.role.as_str().to_owned(),
            org_unit_id: unit.id,
            password_hash: hash,
            active: true,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    if let Some(admin) = by {
        crate::service::audit::record(
            &txn,
            crate::service::audit::Entry {
                actor_id: Some(admin.user_id),
                action: "user.create",
                entity: Some("user"),
                record_id: Some(created.id),
                detail: serde_json::json!({
                    "username": created.username,
                    "role": created.role,
                    "org_unit": unit.code,
                }),
            },
        )
        .await?;
    }
    txn.commit().await?;
    user_view(created, OrgUnitView::from(unit))
}

pub(crate) fn user_view(user: user::Model, org_unit: OrgUnitView) -> AppResult<UserView> {
    Ok(UserView {
        role: user.role.parse()?,
        id: user.id,
        username: user.username,
        display_name: user.display_name,
        active: user.active,
        org_unit,
    })
}

/// Refuses what a device in its state may no longer do. A *lost* (or
/// revoked) phone is refused everything and told to wipe its store. A
/// *retired* phone — replaced by a new one — may still refresh its token
/// and push its pending records, so nothing recorded on it is lost, but may
/// not sign in again, and its next pull tells it to wipe (the reference
/// client always pushes its whole outbox before it pulls); from then on it
/// is *wiped* and refused everything.
pub(crate) fn ensure_device_usable(device: &device::Model, about_to: DeviceUse) -> AppResult<()> {
    match device.state.as_str() {
        "lost" | "revoked" => Err(AppError::DeviceRevoked(
            "this phone was reported lost and can no longer be used; its data must be wiped. Sign in on a registered phone".to_owned(),
        )),
        "wiped" => Err(replaced()),
        "retired" if matches!(about_to, DeviceUse::SignIn | DeviceUse::Pull) => Err(replaced()),
        _ => Ok(()),
    }
}

fn replaced() -> AppError {
    AppError::DeviceRevoked(
        "this phone was replaced: its records have been received and its data must be wiped. Use the new phone".to_owned(),
    )
}

fn new_device_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

async fn issue_refresh_token(
    state: &AppState,
    db: &impl ConnectionTrait,
    user: &user::Model,
    device_id: Uuid,
    family_id: Uuid,
) -> AppResult<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let now = Utc::now();
    let ttl_days = i64::try_from(state.config.refresh_token_ttl_days).unwrap_or(365);
    repo::refresh_tokens::insert(
        db,
        refresh_token::Model {
            id: Uuid::now_v7(),
            token_hash: hash_token(&token),
            family_id,
            user_id: user.id,
            device_id,
            expires_at: now + Duration::days(ttl_days),
            created_at: now,
            used_at: None,
            revoked_at: None,
        },
    )
    .await?;
    Ok(token)
}

async fn session_for(
    state: &AppState,
    db: &impl ConnectionTrait,
    user: user::Model,
    device_id: Uuid,
    refresh_token: String,
) -> AppResult<Session> {
    let unit = repo::org_units::find(db, user.org_unit_id)
        .await?
        .ok_or_else(|| AppError::Internal(format!("user {} has no org unit", user.id)))?;
    let role: Role = user.role.parse()?;
    let access_token = state.jwt.issue_at_ms(
        user.id,
        role,
        user.org_unit_id,
        device_id,
        Utc::now().timestamp_millis(),
    )?;
    Ok(Session {
        access_token,
        refresh_token,
        expires_in: state.jwt.ttl_secs(),
        token_type: "Bearer",
        user: user_view(user, OrgUnitView::from(unit))?,
        device_key: None,
        district_time_zone: crate::calendar::district().to_string(),
    })
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
