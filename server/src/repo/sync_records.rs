//! The rows a push writes beside the record: the stored outcome of each
//! mutation (idempotency), conflicts for the supervisor, register events,
//! and integration outbox rows. A push writes each kind with multi-row
//! inserts (see [`super::insert_all`]).

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::entity::{applied_mutation, conflict, outbox, register_event};

/// The stored outcomes of those of `mutation_ids` that were applied before.
pub async fn applied(
    db: &impl ConnectionTrait,
    mutation_ids: Vec<Uuid>,
) -> Result<Vec<applied_mutation::Model>, DbErr> {
    let mut out = Vec::new();
    for chunk in mutation_ids.chunks(super::MAX_BIND_PARAMETERS / 2) {
        out.extend(
            applied_mutation::Entity::find()
                .filter(applied_mutation::Column::MutationId.is_in(chunk.iter().copied()))
                .all(db)
                .await?,
        );
    }
    Ok(out)
}

pub async fn record_applied(
    db: &impl ConnectionTrait,
    rows: Vec<applied_mutation::Model>,
) -> Result<(), DbErr> {
    super::insert_all(
        db,
        rows.into_iter()
            .map(applied_mutation::ActiveModel::from)
            .collect(),
    )
    .await
}

pub async fn insert_conflicts(
    db: &impl ConnectionTrait,
    rows: Vec<conflict::Model>,
) -> Result<(), DbErr> {
    super::insert_all(
        db,
        rows.into_iter().map(conflict::ActiveModel::from).collect(),
    )
    .await
}

pub async fn insert_register_events(
    db: &impl ConnectionTrait,
    rows: Vec<register_event::Model>,
) -> Result<(), DbErr> {
    super::insert_all(
        db,
        rows.into_iter()
            .map(register_event::ActiveModel::from)
            .collect(),
    )
    .await
}

pub async fn enqueue(db: &impl ConnectionTrait, rows: Vec<outbox::Model>) -> Result<(), DbErr> {
    super::insert_all(
        db,
        rows.into_iter().map(outbox::ActiveModel::from).collect(),
    )
    .await
}
