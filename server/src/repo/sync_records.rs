//! The rows a push writes beside the record: the stored outcome of each
//! mutation (idempotency), conflicts for the supervisor, register events,
//! and integration outbox rows.

use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, EntityTrait};
use uuid::Uuid;

use crate::entity::{applied_mutation, conflict, outbox, register_event, visit_version};

/// The stored outcome of a mutation, if it was applied before.
pub async fn applied(
    db: &impl ConnectionTrait,
    mutation_id: Uuid,
) -> Result<Option<applied_mutation::Model>, DbErr> {
    applied_mutation::Entity::find_by_id(mutation_id)
        .one(db)
        .await
}

pub async fn record_applied(
    db: &impl ConnectionTrait,
    row: applied_mutation::Model,
) -> Result<(), DbErr> {
    applied_mutation::ActiveModel::from(row)
        .insert(db)
        .await
        .map(|_| ())
}

pub async fn insert_conflicts(
    db: &impl ConnectionTrait,
    rows: Vec<conflict::Model>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    conflict::Entity::insert_many(rows.into_iter().map(conflict::ActiveModel::from))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn insert_register_events(
    db: &impl ConnectionTrait,
    rows: Vec<register_event::Model>,
) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    register_event::Entity::insert_many(rows.into_iter().map(register_event::ActiveModel::from))
        .exec(db)
        .await
        .map(|_| ())
}

/// Writes an outbox row for the provincial platform, keyed to the child it
/// is about so the delivery worker keeps each child's messages in order.
pub async fn enqueue(db: &impl ConnectionTrait, row: outbox::Model) -> Result<(), DbErr> {
    outbox::ActiveModel::from(row.clone()).insert(db).await?;
    super::integration::set_order_key(db, &row).await
}

/// One row of a visit's history.
pub async fn insert_visit_version(
    db: &impl ConnectionTrait,
    row: visit_version::Model,
) -> Result<(), DbErr> {
    visit_version::ActiveModel::from(row)
        .insert(db)
        .await
        .map(|_| ())
}
