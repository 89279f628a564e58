//! Queries on users.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::entity::user;

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(id).one(db).await
}

pub async fn find_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::Username.eq(username))
        .one(db)
        .await
}

/// Users bound to any of `org_units`, ordered by username.
pub async fn in_org_units(
    db: &impl ConnectionTrait,
    org_units: Vec<Uuid>,
) -> Result<Vec<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::OrgUnitId.is_in(org_units))
        .order_by_asc(user::Column::Username)
        .all(db)
        .await
}

pub async fn insert(db: &impl ConnectionTrait, model: user::Model) -> Result<user::Model, DbErr> {
    user::ActiveModel::from(model).insert(db).await
}

/// Writes the columns an admin may change (name, org unit, active flag,
/// password hash, `updated_at`) of `model` over the stored account.
pub async fn update(db: &impl ConnectionTrait, model: user::Model) -> Result<user::Model, DbErr> {
    let mut active = model.clone().into_active_model();
    active.display_name = Set(model.display_name);
    active.org_unit_id = Set(model.org_unit_id);
    active.active = Set(model.active);
    active.password_hash = Set(model.password_hash);
    active.updated_at = Set(model.updated_at);
    active.update(db).await
}
