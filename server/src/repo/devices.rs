//! Queries on devices.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set,
};
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

/// Records that the device was just used by `user_id` (and, on a sign-in,
/// its store key).
pub async fn touch(
    db: &impl ConnectionTrait,
    device: device::Model,
    user_id: Uuid,
    name: Option<String>,
    device_key: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<device::Model, DbErr> {
    let changed_key = device_key.filter(|key| device.device_key.as_ref() != Some(key));
    let mut active = device.into_active_model();
    active.user_id = Set(user_id);
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(key) = changed_key {
        active.device_key = Set(Some(key));
    }
    active.last_seen_at = Set(Some(now));
    active.update(db).await
}

/// Ends the device's session at `at`: access tokens issued before it are
/// refused from now on.
pub async fn end_session(
    db: &impl ConnectionTrait,
    id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), DbErr> {
    device::Entity::update_many()
        .col_expr(device::Column::SessionEndedAt, Expr::value(at))
        .filter(device::Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Devices last used by any of `users`, most recently seen first.
pub async fn of_users(
    db: &impl ConnectionTrait,
    users: Vec<Uuid>,
) -> Result<Vec<device::Model>, DbErr> {
    device::Entity::find()
        .filter(device::Column::UserId.is_in(users))
        .order_by_desc(device::Column::LastSeenAt)
        .order_by_asc(device::Column::Id)
        .all(db)
        .await
}

/// Sets a device's state.
pub async fn set_state(
    db: &impl ConnectionTrait,
    device: device::Model,
    state: &str,
) -> Result<device::Model, DbErr> {
    let mut active = device.into_active_model();
    active.state = Set(state.to_owned());
    active.update(db).await
}

/// Moves a device from `from` to `to`, unless something else moved it
/// first; true when this call did.
pub async fn transition(
    db: &impl ConnectionTrait,
    id: Uuid,
    from: &str,
    to: &str,
) -> Result<bool, DbErr> {
    let result = device::Entity::update_many()
        .col_expr(device::Column::State, Expr::value(to))
        .filter(device::Column::Id.eq(id))
        .filter(device::Column::State.eq(from))
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
