//! Queries on devices.

use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, Set};
use uuid::Uuid;

use crate::entity::device;

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<device::Model>, DbErr> {
    device::Entity::find_by_id(id).one(db).await
}

pub async fn insert(
    db: &impl ConnectionTrait,
    model: device::Model,
) -> Result<device::Model, DbErr> {
    device::ActiveModel::from(model).insert(db).await
}

/// Records that the device was just used by `user_id`.
pub async fn touch(
    db: &impl ConnectionTrait,
    device: device::Model,
    user_id: Uuid,
    name: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<device::Model, DbErr> {
    let mut active = device.into_active_model();
    active.user_id = Set(user_id);
    if let Some(name) = name {
        active.name = Set(name);
    }
    active.last_seen_at = Set(Some(now));
    active.update(db).await
}
