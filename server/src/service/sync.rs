//! The sync API's domain operations: [`push`] applies a device's mutations
//! through `sync-core`, the whole push in one transaction with batched reads
//! and writes; [`pull`] pages the changes of the caller's scope after a
//! cursor. Nothing here is kept in process memory between requests: any
//! number of server processes can serve the same devices.

mod conflicts;
pub mod events;
mod placement;
pub mod pull;
pub mod push;
pub mod repair;
pub mod rxdb;
pub mod watermelon;

use sync_core::protocol::check_protocol_version;
use uuid::Uuid;

use crate::auth::{AuthUser, Role};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::repo;
use crate::service::auth::{DeviceUse, ensure_device_usable};

/// The node id of the server's hybrid logical clock: fixed, so every
/// process stamps server writes alike.
pub const SERVER_NODE: Uuid = Uuid::from_u128(0x5eed_1e55_0000_4000_8000_0000_0000_0001);

/// Checks what every sync call needs: a supported protocol version, a role
/// that syncs, and a device that is registered to the caller and usable.
async fn admit_caller(
    db: &sea_orm::DatabaseConnection,
    caller: &AuthUser,
    protocol_version: u32,
    about_to: DeviceUse,
) -> AppResult<()> {
    check_protocol_version(protocol_version).map_err(AppError::UpgradeRequired)?;
    if caller.role == Role::Integration {
        return Err(AppError::forbidden(
            "the integration account exchanges data through /api/v1/integration, not device sync",
        ));
    }
    let device = repo::devices::find(db, caller.device_id)
        .await?
        .ok_or_else(|| {
            AppError::unauthorized(
                ErrorCode::UnknownDevice,
                "this device is not registered; sign in again",
            )
        })?;
    if let Err(refused) = ensure_device_usable(&device, about_to) {
        if device.state == "retired" && about_to == DeviceUse::Pull {
            // Its outbox went first; it is told to wipe now, and nothing more.
            crate::service::devices::told_to_wipe(db, device.id).await?;
        }
        return Err(refused);
    }
    // The token's role and unit are checked against the account as it is
    // now: a moved or disabled user must not keep the old scope until the
    // token expires.
    let user = repo::users::find(db, caller.user_id).await?;
    let current = user.is_some_and(|user| {
        user.active && user.role == caller.role.as_str() && user.org_unit_id == caller.org_unit_id
    });
    if !current {
        return Err(AppError::unauthorized(
            ErrorCode::StaleToken,
            "your account changed since this token was issued; refresh it or sign in again",
        ));
    }
    if device.user_id != caller.user_id {
        return Err(AppError::unauthorized(
            ErrorCode::DeviceReassigned,
            "another account signed in on this device since; sign in again",
        ));
    }
    Ok(())
}

pub(crate) fn now_ms(now: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(now.timestamp_millis()).unwrap_or(0)
}

/// The audit entry of a sync request that wrote or sent children's records:
/// one entry per request, not per record, listing the children concerned
/// (sorted) so "who read or wrote this child's record, and when" is
/// answered by the entries naming the child (docs/SECURITY.md). `entities`
/// yields the entity of each record concerned, counted per kind.
fn audit_entry(
    caller: &AuthUser,
    action: &'static str,
    children: std::collections::BTreeSet<Uuid>,
    entities: impl IntoIterator<Item = sync_core::record::Entity>,
    extra: serde_json::Value,
) -> crate::service::audit::Entry {
    let mut counts = serde_json::Map::new();
    for entity in entities {
        let count = counts
            .entry(entity.as_str().to_owned())
            .or_insert(serde_json::Value::from(0_u64));
        *count = serde_json::Value::from(count.as_u64().unwrap_or(0) + 1);
    }
    let mut detail = serde_json::Map::new();
    detail.insert("device_id".to_owned(), serde_json::json!(caller.device_id));
    detail.insert("role".to_owned(), serde_json::json!(caller.role.as_str()));
    detail.insert("records".to_owned(), serde_json::Value::Object(counts));
    detail.insert("children".to_owned(), serde_json::json!(children));
    if let serde_json::Value::Object(extra) = extra {
        detail.extend(extra);
    }
    crate::service::audit::Entry {
        actor_id: Some(caller.user_id),
        action,
        entity: Some("child"),
        record_id: None,
        detail: serde_json::Value::Object(detail),
    }
}
