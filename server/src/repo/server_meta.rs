//! The database's own facts (`server_meta`): its epoch.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, Set};

use crate::entity::server_meta;

const EPOCH: &str = "epoch";

/// The database's epoch: `""` until it is first restored.
pub async fn epoch(db: &impl ConnectionTrait) -> Result<String, DbErr> {
    Ok(server_meta::Entity::find_by_id(EPOCH.to_owned())
        .one(db)
        .await?
        .map(|row| row.value)
        .unwrap_or_default())
}

/// Sets the database's epoch.
pub async fn set_epoch(db: &impl ConnectionTrait, epoch: &str) -> Result<(), DbErr> {
    server_meta::Entity::insert(server_meta::ActiveModel {
        key: Set(EPOCH.to_owned()),
        value: Set(epoch.to_owned()),
        updated_at: Set(chrono::Utc::now()),
    })
    .on_conflict(
        OnConflict::column(server_meta::Column::Key)
            .update_columns([server_meta::Column::Value, server_meta::Column::UpdatedAt])
            .to_owned(),
    )
    .exec(db)
    .await
    .map(|_| ())
}
