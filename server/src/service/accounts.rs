//! Changing an account after it was made (district admins): its name, the
//! org unit it is bound to (a director moved to another village), disabling
//! or re-enabling it, and setting a new password. Each change is one
//! transaction with its audit entry.
//!
//! A moved account's phones keep their session: their next sync is refused
//! `stale_token`, they refresh, and the next pull purges the old village's
//! records and brings the new village's (docs/SYNC-PROTOCOL.md §5b). A
//! disabled account is refused at once: its refresh tokens are revoked and
//! its devices' sessions end. A new password revokes the account's refresh
//! tokens, so every device signs in again with it once its access token
//! lapses.

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role, Scope, password};
use crate::entity::user;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::service::auth::{UserView, user_view};
use crate::service::org::OrgUnitView;
use crate::state::AppState;

/// What to change in an account; fields left out stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    #[schema(example = "王丽")]
    pub display_name: Option<String>,
    /// Administrative code of the org unit to bind the account to, of the
    /// kind its role needs (a director's village).
    #[schema(example = "330102001002")]
    pub org_unit_code: Option<String>,
    /// `false` disables the account (sign-in and sync are refused),
    /// `true` enables it again.
    pub active: Option<bool>,
}

/// A new password for an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPassword {
    /// At least 10 characters.
    pub password: String,
}

/// The account `id` if it is in the admin's scope (its unit below the
/// admin's), else `not_found`.
async fn account_in_scope(
    db: &impl sea_orm::ConnectionTrait,
    caller: &AuthUser,
    id: Uuid,
) -> AppResult<user::Model> {
    let not_found = || AppError::not_found("no such account in your area");
    let account = repo::users::find(db, id).await?.ok_or_else(not_found)?;
    let lineage = repo::org_units::lineage(db, account.org_unit_id).await?;
    if !Scope::of(caller).contains(&lineage) {
        return Err(not_found());
    }
    Ok(account)
}

/// Changes an account's name, org unit or active flag (admins). Audited as
/// `user.update` with what changed.
pub async fn update_user(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    change: UserChange,
) -> AppResult<UserView> {
    caller.require_role(&[Role::Admin])?;
    let display_name = match change.display_name.as_deref().map(str::trim) {
        Some("") => {
            return Err(AppError::Validation(
                "display_name must not be empty".to_owned(),
            ));
        }
        Some(name) if name.chars().count() > 100 => {
            return Err(AppError::Validation(
                "display_name is longer than 100 characters".to_owned(),
            ));
        }
        other => other.map(str::to_owned),
    };
    if change.active == Some(false) && id == caller.user_id {
        return Err(AppError::Validation(
            "you cannot disable your own account".to_owned(),
        ));
    }
    let now = Utc::now();
    let txn = repo::begin_write(&state.db).await?;
    let before = account_in_scope(&txn, caller, id).await?;
    let role: Role = before.role.parse()?;
    let old_unit = repo::org_units::find(&txn, before.org_unit_id)
        .await?
        .ok_or_else(|| AppError::Internal(format!("user {id} has no org unit")))?;
    let new_unit = match change.org_unit_code.as_deref() {
        None => old_unit.clone(),
        Some(code) => {
            let unit = repo::org_units::find_by_code(&txn, code)
                .await?
                .ok_or_else(|| AppError::Validation(format!("no org unit has code `{code}`")))?;
            let lineage = repo::org_units::lineage(&txn, unit.id).await?;
            if !Scope::of(caller).contains(&lineage) {
                return Err(AppError::forbidden(format!(
                    "org unit `{code}` is outside your scope"
                )));
            }
            if unit.kind != role.org_unit_kind() {
                return Err(AppError::Validation(format!(
                    "a {} is bound to a {}, but `{code}` is a {}",
                    role.as_str(),
                    role.org_unit_kind(),
                    unit.kind
                )));
            }
            unit
        }
    };
    let mut after = before.clone();
    if let Some(name) = display_name {
        after.display_name = name;
    }
    after.org_unit_id = new_unit.id;
    if let Some(active) = change.active {
        after.active = active;
    }
    after.updated_at = now;
    let disabled = before.active && !after.active;
    let updated = repo::users::update(&txn, after).await?;
    let (mut tokens_revoked, mut sessions_ended) = (0, 0);
    if disabled {
        tokens_revoked = repo::refresh_tokens::revoke_user(&txn, id, now).await?;
        for device in repo::devices::of_users(&txn, vec![id]).await? {
            repo::devices::end_session(&txn, device.id, now).await?;
            sessions_ended += 1;
        }
    }
    audit::record_at(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "user.update",
            entity: Some("user"),
            record_id: Some(id),
            detail: json!({
                "username": updated.username,
                "display_name": {"from": before.display_name, "to": updated.display_name},
                "org_unit": {"from": old_unit.code, "to": new_unit.code},
                "active": {"from": before.active, "to": updated.active},
                "refresh_tokens_revoked": tokens_revoked,
                "sessions_ended": sessions_ended,
            }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user = %id, moved = before.org_unit_id != updated.org_unit_id, active = updated.active, "account changed");
    user_view(updated, OrgUnitView::from(new_unit))
}

/// Sets a new password on an account (admins) and revokes its refresh
/// tokens. Audited as `user.set_password` (never the password).
pub async fn set_password(
    state: &AppState,
    caller: &AuthUser,
    id: Uuid,
    input: NewPassword,
) -> AppResult<UserView> {
    caller.require_role(&[Role::Admin])?;
    crate::service::auth::check_password_rules(&input.password)?;
    let hash = password::hash_password_async(input.password).await?;
    let now = Utc::now();
    let txn = repo::begin_write(&state.db).await?;
    let mut account = account_in_scope(&txn, caller, id).await?;
    account.password_hash = hash;
    account.updated_at = now;
    let updated = repo::users::update(&txn, account).await?;
    let revoked = repo::refresh_tokens::revoke_user(&txn, id, now).await?;
    let unit = repo::org_units::find(&txn, updated.org_unit_id)
        .await?
        .ok_or_else(|| AppError::Internal(format!("user {id} has no org unit")))?;
    audit::record_at(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "user.set_password",
            entity: Some("user"),
            record_id: Some(id),
            detail: json!({ "username": updated.username, "refresh_tokens_revoked": revoked }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(user = %id, "password set by an admin");
    user_view(updated, OrgUnitView::from(unit))
}
