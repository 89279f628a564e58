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
/// order. Rows whose payload names the child (`child_id`) go in multi-row
/// inserts with their key; any other row has its key looked up after.
pub async fn enqueue(db: &impl ConnectionTrait, rows: Vec<outbox::Model>) -> Result<(), DbErr> {
    let (keyed, unkeyed): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .map(|row| (payload_child(&row.payload), row))
        .partition(|(key, _)| key.is_some());
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
    for (_, row) in unkeyed {
        outbox::ActiveModel::from(row.clone()).insert(db).await?;
        super::integration::set_order_key(db, &row).await?;
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

fn payload_child(payload: &JsonValue) -> Option<Uuid> {
    payload
        .get("child_id")
        .and_then(JsonValue::as_str)
        .and_then(|id| Uuid::try_parse(id).ok())
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
