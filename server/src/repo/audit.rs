//! Audit-log queries: appending to the hash chain under its writer lock and
//! reading it back in order.

use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, NotSet, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::entity::{audit_log, sync_lock};

const LOCK: &str = "audit_log";

/// Takes the audit writer lock for the rest of the caller's transaction and
/// counts `count` more appended rows; returns the hash of the current last
/// row.
pub async fn lock_head(db: &impl ConnectionTrait, count: i32) -> Result<Option<String>, DbErr> {
    let taken = sync_lock::Entity::update_many()
        .col_expr(
            sync_lock::Column::Taken,
            Expr::col(sync_lock::Column::Taken).add(count),
        )
        .filter(sync_lock::Column::Name.eq(LOCK))
        .exec(db)
        .await?;
    if taken.rows_affected != 1 {
        return Err(DbErr::RecordNotFound(
            "the audit_log writer lock row is missing; run the migrations".to_owned(),
        ));
    }
    let last = audit_log::Entity::find()
        .select_only()
        .column(audit_log::Column::Hash)
        .order_by_desc(audit_log::Column::Id)
        .limit(1)
        .into_tuple::<String>()
        .one(db)
        .await?;
    Ok(last)
}

/// Inserts rows in order (ids follow the order of the rows); call after
/// [`lock_head`] in the same transaction.
pub async fn insert(db: &impl ConnectionTrait, rows: Vec<audit_log::Model>) -> Result<(), DbErr> {
    let rows: Vec<audit_log::ActiveModel> = rows
        .into_iter()
        .map(|row| {
            let mut active = audit_log::ActiveModel::from(row);
            active.id = NotSet;
            active
        })
        .collect();
    super::insert_all(db, rows).await
}

/// Up to `limit` rows with an id above `after`, in chain order.
pub async fn page(
    db: &impl ConnectionTrait,
    after: i64,
    limit: u64,
) -> Result<Vec<audit_log::Model>, DbErr> {
    audit_log::Entity::find()
        .filter(audit_log::Column::Id.gt(after))
        .order_by_asc(audit_log::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// How many rows have ever been appended, by the writer lock's counter.
pub async fn appended(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let lock = sync_lock::Entity::find_by_id(LOCK.to_owned())
        .one(db)
        .await?;
    Ok(lock.map_or(0, |lock| lock.taken))
}

/// Rows that may concern `id`: about it (`record_id`), or naming it
/// anywhere in their detail (a sync request lists the children it read or
/// wrote). A text search over the detail, in chain order after `after`: an
/// investigator's query, not a hot path. The caller checks each row.
pub async fn naming(
    db: &impl ConnectionTrait,
    id: Uuid,
    after: i64,
    limit: u64,
) -> Result<Vec<audit_log::Model>, DbErr> {
    let detail = match db.get_database_backend() {
        DbBackend::Postgres => Expr::col(audit_log::Column::Detail).cast_as(Alias::new("text")),
        _ => Expr::col(audit_log::Column::Detail),
    };
    audit_log::Entity::find()
        .filter(audit_log::Column::Id.gt(after))
        .filter(
            Condition::any()
                .add(audit_log::Column::RecordId.eq(id))
                .add(detail.like(format!("%{id}%"))),
        )
        .order_by_asc(audit_log::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
