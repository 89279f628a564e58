//! Queries on `visit_rules`: each district's configured visiting intervals.

use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::entity::visit_rule;

/// The rules configured by the given districts, or by every district.
pub async fn of_districts(
    db: &impl ConnectionTrait,
    districts: Option<Vec<Uuid>>,
) -> Result<Vec<visit_rule::Model>, DbErr> {
    let mut query = visit_rule::Entity::find()
        .order_by_asc(visit_rule::Column::DistrictId)
        .order_by_asc(visit_rule::Column::Category);
    if let Some(districts) = districts {
        query = query.filter(visit_rule::Column::DistrictId.is_in(districts));
    }
    query.all(db).await
}

/// Sets a district's interval for a category (insert or replace).
pub async fn upsert(db: &impl ConnectionTrait, rule: visit_rule::Model) -> Result<(), DbErr> {
    visit_rule::Entity::insert(visit_rule::ActiveModel::from(rule))
        .on_conflict(
            OnConflict::columns([visit_rule::Column::DistrictId, visit_rule::Column::Category])
                .update_columns([
                    visit_rule::Column::IntervalDays,
                    visit_rule::Column::UpdatedAt,
                    visit_rule::Column::UpdatedBy,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Removes a district's rule for a category; true when there was one.
pub async fn delete(
    db: &impl ConnectionTrait,
    district: Uuid,
    category: &str,
) -> Result<bool, DbErr> {
    let result = visit_rule::Entity::delete_many()
        .filter(visit_rule::Column::DistrictId.eq(district))
        .filter(visit_rule::Column::Category.eq(category))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}
