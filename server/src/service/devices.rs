//! The phones of the accounts in a supervisor's or admin's scope, and what
//! to do when one is replaced or lost.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role, Scope};
use crate::entity::{device, user};
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::service::org::units_in_scope;
use crate::state::AppState;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: Uuid,
    pub name: String,
    /// `active`, `retired` (replaced: may send its pending records, then
    /// wipes) or `lost` (refused at once and told to wipe).
    pub state: String,
    pub user_id: Uuid,
    pub username: String,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

fn view(device: device::Model, user: &user::Model) -> DeviceView {
    DeviceView {
        id: device.id,
        name: device.name,
        state: device.state,
        user_id: user.id,
        username: user.username.clone(),
        last_seen_at: device.last_seen_at,
        created_at: device.created_at,
    }
}

/// The new state of a device, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDeviceState {
    /// `active`, `retired` or `lost`.
    #[schema(example = "lost")]
    pub state: String,
    /// Why, for the audit trail (e.g. "reported lost at the town meeting").
    #[schema(example = "丢失：村委会会议后报失")]
    pub reason: Option<String>,
}

const SETTABLE_STATES: [&str; 3] = ["active", "retired", "lost"];

/// The devices last used by accounts in the caller's scope (supervisors and
/// admins).
pub async fn in_scope(state: &AppState, caller: &AuthUser) -> AppResult<Vec<DeviceView>> {
    caller.require_role(&[Role::Supervisor, Role::Admin])?;
    let units = units_in_scope(state, caller).await?;
    let users = repo::users::in_org_units(&state.db, units.iter().map(|u| u.id).collect()).await?;
    let devices =
        repo::devices::of_users(&state.db, users.iter().map(|user| user.id).collect()).await?;
    Ok(devices
        .into_iter()
        .filter_map(|device| {
            let user = users.iter().find(|user| user.id == device.user_id)?;
            Some(view(device, user))
        })
        .collect())
}

/// Marks a device active, retired or lost. A lost device's refresh tokens
/// are revoked at once; the phone is refused at its next contact and wipes
/// its store. Audited.
pub async fn set_state(
    state: &AppState,
    caller: &AuthUser,
    device_id: Uuid,
    input: SetDeviceState,
) -> AppResult<DeviceView> {
    caller.require_role(&[Role::Supervisor, Role::Admin])?;
    if !SETTABLE_STATES.contains(&input.state.as_str()) {
        return Err(AppError::Validation(format!(
            "state must be one of {}",
            SETTABLE_STATES.join(", ")
        )));
    }
    if input
        .reason
        .as_ref()
        .is_some_and(|reason| reason.chars().count() > 500)
    {
        return Err(AppError::Validation(
            "reason is longer than 500 characters".to_owned(),
        ));
    }
    let now = Utc::now();
    let txn = crate::repo::begin_write(&state.db).await?;
    let not_found = || AppError::not_found("no such device in your area");
    let device = repo::devices::find(&txn, device_id)
        .await?
        .ok_or_else(not_found)?;
    let owner = repo::users::find(&txn, device.user_id)
        .await?
        .ok_or_else(not_found)?;
    let lineage = repo::org_units::lineage(&txn, owner.org_unit_id).await?;
    if !Scope::of(caller).contains(&lineage) {
        return Err(not_found());
    }
    let before = device.state.clone();
    let device = repo::devices::set_state(&txn, device, &input.state).await?;
    let revoked_tokens = if input.state == "lost" {
        repo::refresh_tokens::revoke_device(&txn, device_id, now).await?
    } else {
        0
    };
    audit::record_at(
        &txn,
        audit::Entry {
            actor_id: Some(caller.user_id),
            action: "device.set_state",
            entity: Some("device"),
            record_id: Some(device_id),
            detail: json!({
                "from": before,
                "to": input.state,
                "reason": input.reason,
                "owner": owner.username,
                "refresh_tokens_revoked": revoked_tokens,
            }),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::warn!(device = %device_id, from = %before, to = %device.state, "device state changed");
    Ok(view(device, &owner))
}

/// A retired phone has pushed its outbox and asked to pull: it is told to
/// wipe its store, and from now on refused everything (state `wiped`, its
/// refresh tokens revoked), so it pushes its pending records once and only
/// once. Audited; a second call changes nothing.
pub(crate) async fn told_to_wipe(db: &DatabaseConnection, device_id: Uuid) -> AppResult<()> {
    let now = Utc::now();
    let txn = crate::repo::begin_write(db).await?;
    if repo::devices::transition(&txn, device_id, "retired", "wiped").await? {
        let revoked = repo::refresh_tokens::revoke_device(&txn, device_id, now).await?;
        audit::record_at(
            &txn,
            audit::Entry {
                actor_id: None,
                action: "device.told_to_wipe",
                entity: Some("device"),
                record_id: Some(device_id),
                detail: json!({ "from": "retired", "to": "wiped", "refresh_tokens_revoked": revoked }),
            },
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(())
}
