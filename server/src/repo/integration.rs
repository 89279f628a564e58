//! Queries of the provincial integration: claiming outbox rows for
//! delivery (with `FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite, whose
//! writers are serialised, the same conditional `UPDATE … RETURNING`),
//! finishing them, the delivery attempts, the admin views, the settings all
//! processes obey, stored roster batches and the change feed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult,
    JsonValue, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement, Value,
};
use uuid::Uuid;

use crate::entity::{
    change_log, child, delivery_attempt, integration_batch, integration_setting, outbox, visit,
};

/// Outbox states.
pub const PENDING: &str = "pending";
pub const DELIVERING: &str = "delivering";
pub const DELIVERED: &str = "delivered";
pub const PARKED: &str = "parked";

/// A row claimed for delivery.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct Claimed {
    pub id: Uuid,
    pub kind: String,
    pub aggregate_id: Uuid,
    pub payload: JsonValue,
    /// Attempts made before this one.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// The child the message is about, when known.
    pub order_key: Option<Uuid>,
}

/// Claims up to `limit` rows that are due, under `lease_id` until
/// `lease_until`. A row is due when it is pending (or its last claim's
/// lease ran out), its next attempt time has come, and no earlier row for
/// the same child is still undelivered: per-child order.
pub async fn claim(
    db: &impl ConnectionTrait,
    lease_id: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let lock = match backend {
        DbBackend::Postgres => "FOR UPDATE SKIP LOCKED",
        _ => "",
    };
    let sql = format!(
        "UPDATE outbox SET status = '{DELIVERING}', locked_until = $1, lease_id = $2 \
         WHERE id IN ( \
           SELECT o.id FROM outbox o \
           WHERE o.status IN ('{PENDING}', '{DELIVERING}') \
             AND o.next_attempt_at <= $3 \
             AND (o.locked_until IS NULL OR o.locked_until <= $3) \
             AND NOT EXISTS ( \
               SELECT 1 FROM outbox e \
               WHERE e.order_key = o.order_key AND e.status <> '{DELIVERED}' \
                 AND (e.created_at < o.created_at OR (e.created_at = o.created_at AND e.id < o.id))) \
           ORDER BY o.created_at, o.id \
           LIMIT $4 {lock}) \
         RETURNING id, kind, aggregate_id, payload, attempts, created_at, order_key"
    );
    let sql = match backend {
        DbBackend::Postgres => sql,
        _ => sql.replace('$', "?"),
    };
    let values: Vec<Value> = vec![
        lease_until.into(),
        lease_id.into(),
        now.into(),
        i64::try_from(limit).unwrap_or(i64::MAX).into(),
    ];
    let mut rows = Claimed::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
        .all(db)
        .await?;
    rows.sort_by_key(|row| (row.created_at, row.id));
    Ok(rows)
}

/// What became of an attempt.
#[derive(Clone, Debug)]
pub struct Finish {
    pub status: &'static str,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Records an attempt and the row's new state, if the row is still under
/// `lease_id`. False when the lease was lost (it ran out and another
/// worker claimed the row): the attempt is recorded all the same.
pub async fn finish(
    db: &impl ConnectionTrait,
    outbox_id: Uuid,
    lease_id: Uuid,
    finish: Finish,
    attempt: delivery_attempt::Model,
) -> Result<bool, DbErr> {
    delivery_attempt::ActiveModel::from(attempt)
        .insert(db)
        .await?;
    let update = Query::update()
        .table(outbox::Entity)
        .values([
            (outbox::Column::Status, finish.status.into()),
            (outbox::Column::Attempts, finish.attempts.into()),
            (outbox::Column::NextAttemptAt, finish.next_attempt_at.into()),
            (
                outbox::Column::LockedUntil,
                Option::<DateTime<Utc>>::None.into(),
            ),
            (outbox::Column::LastError, finish.last_error.into()),
            (outbox::Column::DeliveredAt, finish.delivered_at.into()),
        ])
        .value(Alias::new("lease_id"), Option::<Uuid>::None)
        .and_where(Expr::col(outbox::Column::Id).eq(outbox_id))
        .and_where(Expr::col(Alias::new("lease_id")).eq(lease_id))
        .to_owned();
    Ok(db.execute(&update).await?.rows_affected() == 1)
}

/// Hands rows claimed under `lease_id` but not attempted back (a worker
/// stopping), so another worker need not wait for the lease to run out.
pub async fn release(db: &impl ConnectionTrait, lease_id: Uuid, ids: &[Uuid]) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let update = Query::update()
        .table(outbox::Entity)
        .values([
            (outbox::Column::Status, PENDING.into()),
            (
                outbox::Column::LockedUntil,
                Option::<DateTime<Utc>>::None.into(),
            ),
        ])
        .value(Alias::new("lease_id"), Option::<Uuid>::None)
        .and_where(Expr::col(outbox::Column::Id).is_in(ids.iter().copied()))
        .and_where(Expr::col(Alias::new("lease_id")).eq(lease_id))
        .to_owned();
    db.execute(&update).await.map(|_| ())
}

/// The child an outbox row is about, which orders its delivery: the
/// `child_id` of the payload, else the child of the visit the row is about,
/// else the aggregate itself when it is a child. `None` when it is about no
/// known child.
pub async fn order_key(
    db: &impl ConnectionTrait,
    row: &outbox::Model,
) -> Result<Option<Uuid>, DbErr> {
    let from_payload = row
        .payload
        .get("child_id")
        .and_then(JsonValue::as_str)
        .and_then(|id| Uuid::try_parse(id).ok());
    if from_payload.is_some() {
        return Ok(from_payload);
    }
    if let Some(child) = visit::Entity::find_by_id(row.aggregate_id)
        .select_only()
        .column(visit::Column::ChildId)
        .into_tuple::<Uuid>()
        .one(db)
        .await?
    {
        return Ok(Some(child));
    }
    child::Entity::find_by_id(row.aggregate_id)
        .select_only()
        .column(child::Column::Id)
        .into_tuple::<Uuid>()
        .one(db)
        .await
}

/// Number of outbox rows per status.
pub async fn status_counts(db: &impl ConnectionTrait) -> Result<Vec<(String, i64)>, DbErr> {
    outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Status)
        .column_as(outbox::Column::Id.count(), "n")
        .group_by(outbox::Column::Status)
        .into_tuple()
        .all(db)
        .await
}

/// When the oldest undelivered row was written, and when the latest row
/// was delivered.
pub async fn oldest_undelivered(db: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    outbox::Entity::find()
        .select_only()
        .column(outbox::Column::CreatedAt)
        .filter(outbox::Column::Status.ne(DELIVERED))
        .order_by_asc(outbox::Column::CreatedAt)
        .limit(1)
        .into_tuple()
        .one(db)
        .await
}

pub async fn last_delivered(db: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    let row: Option<Option<DateTime<Utc>>> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::DeliveredAt)
        .filter(outbox::Column::Status.eq(DELIVERED))
        .order_by_desc(outbox::Column::DeliveredAt)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok(row.flatten())
}

/// Undelivered rows waiting behind an earlier parked row of their child.
pub async fn blocked_by_parked(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM outbox o \
         WHERE o.status = '{PENDING}' AND EXISTS ( \
           SELECT 1 FROM outbox p WHERE p.order_key = o.order_key AND p.status = '{PARKED}' \
             AND (p.created_at < o.created_at OR (p.created_at = o.created_at AND p.id < o.id)))"
    );
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?;
    match row {
        Some(row) => row.try_get::<i64>("", "n"),
        None => Ok(0),
    }
}

/// Parked rows, oldest first.
pub async fn parked(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::Status.eq(PARKED))
        .order_by_asc(outbox::Column::CreatedAt)
        .order_by_asc(outbox::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<outbox::Model>, DbErr> {
    outbox::Entity::find_by_id(id).one(db).await
}

/// Every attempt at one row, in order.
pub async fn attempts(
    db: &impl ConnectionTrait,
    outbox_id: Uuid,
) -> Result<Vec<delivery_attempt::Model>, DbErr> {
    delivery_attempt::Entity::find()
        .filter(delivery_attempt::Column::OutboxId.eq(outbox_id))
        .order_by_asc(delivery_attempt::Column::StartedAt)
        .order_by_asc(delivery_attempt::Column::Attempt)
        .all(db)
        .await
}

/// The latest attempt at each of `ids`.
pub async fn last_attempts(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<Vec<delivery_attempt::Model>, DbErr> {
    let all = delivery_attempt::Entity::find()
        .filter(delivery_attempt::Column::OutboxId.is_in(ids))
        .order_by_asc(delivery_attempt::Column::StartedAt)
        .all(db)
        .await?;
    let mut latest = std::collections::HashMap::new();
    for attempt in all {
        latest.insert(attempt.outbox_id, attempt);
    }
    Ok(latest.into_values().collect())
}

/// Puts parked rows (all, or the one `id`) back in the queue with a fresh
/// attempt count. Returns the ids replayed.
pub async fn replay(
    db: &impl ConnectionTrait,
    id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    let mut select = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(outbox::Column::Status.eq(PARKED));
    if let Some(id) = id {
        select = select.filter(outbox::Column::Id.eq(id));
    }
    let ids: Vec<Uuid> = select.into_tuple().all(db).await?;
    if ids.is_empty() {
        return Ok(ids);
    }
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value(PENDING))
        .col_expr(outbox::Column::Attempts, Expr::value(0))
        .col_expr(outbox::Column::NextAttemptAt, Expr::value(now))
        .filter(outbox::Column::Id.is_in(ids.clone()))
        .filter(outbox::Column::Status.eq(PARKED))
        .exec(db)
        .await?;
    Ok(ids)
}

/// A setting's value, if it was ever set.
pub async fn setting(db: &impl ConnectionTrait, name: &str) -> Result<Option<JsonValue>, DbErr> {
    Ok(integration_setting::Entity::find_by_id(name.to_owned())
        .one(db)
        .await?
        .map(|row| row.value))
}

/// Sets a setting (insert or replace).
pub async fn put_setting(
    db: &impl ConnectionTrait,
    name: &str,
    value: JsonValue,
    by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::OnConflict;
    integration_setting::Entity::insert(integration_setting::ActiveModel::from(
        integration_setting::Model {
            name: name.to_owned(),
            value,
            updated_by: by,
            updated_at: now,
        },
    ))
    .on_conflict(
        OnConflict::column(integration_setting::Column::Name)
            .update_columns([
                integration_setting::Column::Value,
                integration_setting::Column::UpdatedBy,
                integration_setting::Column::UpdatedAt,
            ])
            .to_owned(),
    )
    .exec(db)
    .await
    .map(|_| ())
}

/// A stored roster batch.
pub async fn batch(
    db: &impl ConnectionTrait,
    client_id: Uuid,
    batch_id: &str,
) -> Result<Option<integration_batch::Model>, DbErr> {
    integration_batch::Entity::find_by_id((client_id, batch_id.to_owned()))
        .one(db)
        .await
}

pub async fn insert_batch(
    db: &impl ConnectionTrait,
    row: integration_batch::Model,
) -> Result<(), DbErr> {
    integration_batch::ActiveModel::from(row)
        .insert(db)
        .await
        .map(|_| ())
}

/// The child registered under the platform's id, if any.
pub async fn child_by_external_id(
    db: &impl ConnectionTrait,
    external_id: &str,
) -> Result<Option<Uuid>, DbErr> {
    child::Entity::find()
        .select_only()
        .column(child::Column::Id)
        .filter(child::Column::ExternalId.eq(external_id))
        .into_tuple()
        .one(db)
        .await
}

/// Up to `limit` change-log rows after `after` that put a record in a
/// district (every record change the platform may read), in order.
pub async fn feed_page(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<change_log::Model>, DbErr> {
    change_log::Entity::find()
        .filter(change_log::Column::Seq.gt(after))
        .filter(change_log::Column::DistrictId.is_not_null())
        .filter(change_log::Column::Op.eq("upsert"))
        .order_by_asc(change_log::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Number of outbox rows in total (for the benchmark and tests).
pub async fn outbox_len(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    outbox::Entity::find().count(db).await
}
