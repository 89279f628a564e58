//! The rows a push writes beside the record: the stored outcome of each
//! mutation (idempotency), conflicts for the supervisor, register events,
//! integration outbox rows and visit history. A push writes each kind with
//! multi-row inserts (see [`super::insert_all`]).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, IntoIden, Query};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use sea_orm::{Iterable, JsonValue};
use uuid::Uuid;

use crate::entity::{applied_mutation, conflict, outbox, register_event, visit_version};

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

/// Writes outbox rows for the provincial platform, each keyed to the child
/// it is about so the delivery worker keeps each child's messages in
/// order. The key is written in the same statement as the row: a row
/// written first and keyed after could be claimed in between, when it has
/// no key and so no earlier message to wait for, and overtake its child's
/// earlier messages (or be sent while an earlier one is parked). The key is
/// the payload's `child_id`, else it is looked up (see
/// [`super::integration::order_key`]) before the insert.
pub async fn enqueue(db: &impl ConnectionTrait, rows: Vec<outbox::Model>) -> Result<(), DbErr> {
    let mut keyed = Vec::with_capacity(rows.len());
    for row in rows {
        let key = super::integration::order_key(db, &row).await?;
        keyed.push((key, row));
    }
    let columns: Vec<_> = outbox::Column::iter()
        .map(IntoIden::into_iden)
        .chain([Alias::new("order_key").into_iden()])
        .collect();
    for chunk in keyed.chunks(super::MAX_BIND_PARAMETERS / columns.len()) {
        let mut insert = Query::insert();
        insert.into_table(outbox::Entity).columns(columns.clone());
        for (key, row) in chunk {
            let active = outbox::ActiveModel::from(row.clone());
            let values: Vec<Expr> = outbox::Column::iter()
                .map(|column| active.get(column).into_value().map(Expr::val))
                .chain([Some(Expr::val(*key))])
                .collect::<Option<_>>()
                .ok_or_else(|| DbErr::Custom("an outbox row with a column unset".to_owned()))?;
            insert
                .values(values)
                .map_err(|err| DbErr::Custom(err.to_string()))?;
        }
        db.execute(&insert).await?;
    }
    Ok(())
}

/// A new outbox row, due at once.
pub fn message(
    kind: String,
    aggregate_id: Uuid,
    payload: JsonValue,
    now: DateTime<Utc>,
) -> outbox::Model {
    outbox::Model {
        id: Uuid::now_v7(),
        kind,
        aggregate_id,
        payload,
        status: super::integration::PENDING.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        locked_until: None,
        last_error: None,
        created_at: now,
        delivered_at: None,
    }
}

/// Rows of visits' history.
pub async fn insert_visit_versions(
    db: &impl ConnectionTrait,
    rows: Vec<visit_version::Model>,
) -> Result<(), DbErr> {
    super::insert_all(
        db,
        rows.into_iter()
            .map(visit_version::ActiveModel::from)
            .collect(),
    )
    .await
}
