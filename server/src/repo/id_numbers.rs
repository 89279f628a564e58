//! Identity-card numbers as stored (sealed), for re-encryption under a new key.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::entity::child;

/// Up to `limit` children after `after` (by id) that have a number, with the
/// number as stored.
pub async fn stored_page(
    db: &impl ConnectionTrait,
    after: Uuid,
    limit: u64,
) -> Result<Vec<(Uuid, String)>, DbErr> {
    child::Entity::find()
        .select_only()
        .column(child::Column::Id)
        .column(child::Column::IdNumber)
        .filter(child::Column::Id.gt(after))
        .filter(child::Column::IdNumber.is_not_null())
        .order_by_asc(child::Column::Id)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await
}

/// Replaces a stored number (the same number, sealed anew).
pub async fn replace(db: &impl ConnectionTrait, id: Uuid, sealed: String) -> Result<(), DbErr> {
    child::Entity::update_many()
        .col_expr(child::Column::IdNumber, Expr::value(sealed))
        .filter(child::Column::Id.eq(id))
        .exec(db)
        .await
        .map(|_| ())
}
