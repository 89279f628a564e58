//! Queries on users.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
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
