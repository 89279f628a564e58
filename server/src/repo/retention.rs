//! Queries of the retention policy for exited children: which children are
//! due, and the updates that remove their personal fields.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::entity::{
    attachment, case_plan_item, child, conflict, delivery_attempt, outbox, visit, visit_version,
};

/// Up to `limit` children, after `after` in id order, that exited on or
/// before `cutoff` and are not archived yet.
pub async fn due(
    db: &impl ConnectionTrait,
    cutoff: NaiveDate,
    after: Uuid,
    limit: u64,
) -> Result<Vec<child::Model>, DbErr> {
    child::Entity::find()
        .filter(child::Column::Status.eq("exited"))
        .filter(child::Column::ExitDate.lte(cutoff))
        .filter(child::Column::ArchivedAt.is_null())
        .filter(child::Column::Id.gt(after))
        .order_by_asc(child::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Those of `children` whose record was archived.
pub async fn archived_among(
    db: &impl ConnectionTrait,
    children: Vec<Uuid>,
) -> Result<Vec<Uuid>, DbErr> {
    let mut out = Vec::new();
    for chunk in children.chunks(crate::repo::MAX_BIND_PARAMETERS) {
        let ids: Vec<Uuid> = child::Entity::find()
            .select_only()
            .column(child::Column::Id)
            .filter(child::Column::Id.is_in(chunk.iter().copied()))
            .filter(child::Column::ArchivedAt.is_not_null())
            .into_tuple()
            .all(db)
            .await?;
        out.extend(ids);
    }
    Ok(out)
}

/// Replaces the personal fields of the child's register entry, unless
/// another process archived it first; true when this call did.
pub async fn archive_child(
    db: &impl ConnectionTrait,
    id: Uuid,
    pseudonym: &str,
    birth_year_start: NaiveDate,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let none = || Expr::value(sea_orm::Value::String(None));
    let result = child::Entity::update_many()
        .col_expr(child::Column::Name, Expr::value(pseudonym))
        .col_expr(child::Column::BirthDate, Expr::value(birth_year_start))
        .col_expr(child::Column::IdNumber, none())
        .col_expr(child::Column::GuardianName, none())
        .col_expr(child::Column::GuardianRelation, none())
        .col_expr(child::Column::GuardianPhone, none())
        .col_expr(child::Column::Address, none())
        .col_expr(child::Column::School, none())
        .col_expr(child::Column::HealthNotes, none())
        .col_expr(child::Column::DisabilityNotes, none())
        .col_expr(child::Column::UpdatedAt, Expr::value(now))
        .col_expr(child::Column::ArchivedAt, Expr::value(Some(now)))
        .filter(child::Column::Id.eq(id))
        .filter(child::Column::ArchivedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}

/// Removes what a visit says about the child and their home — notes,
/// location, photos, the free text of needs and risk flags — and keeps what
/// reports count: when, by whom, what kind, which areas and flag kinds, the
/// review status.
pub async fn scrub_visit(db: &impl ConnectionTrait, row: visit::Model) -> Result<(), DbErr> {
    let needs = keep_keys(&row.needs, &["id", "area"]);
    let flags = keep_keys(&row.risk_flags, &["id", "kind"]);
    let mut active = row.into_active_model();
    active.location = Set(None);
    active.observations = Set(None);
    active.follow_up = Set(None);
    active.review_comment = Set(None);
    active.photos = Set(json!([]));
    active.needs = Set(needs);
    active.risk_flags = Set(flags);
    active.update(db).await?;
    Ok(())
}

/// Keeps only which fields each version changed, not the values.
pub async fn scrub_versions(
    db: &impl ConnectionTrait,
    versions: Vec<visit_version::Model>,
) -> Result<(), DbErr> {
    for version in versions {
        let changes = keep_keys(&version.changes, &["field"]);
        let mut active = version.into_active_model();
        active.changes = Set(changes);
        active.update(db).await?;
    }
    Ok(())
}

/// Clears the free text of the child's needs-ledger items; area, status and
/// dates stay for the needs report.
pub async fn scrub_needs(db: &impl ConnectionTrait, child_id: Uuid) -> Result<(), DbErr> {
    case_plan_item::Entity::update_many()
        .col_expr(case_plan_item::Column::Description, Expr::value(""))
        .col_expr(
            case_plan_item::Column::Owner,
            Expr::value(sea_orm::Value::String(None)),
        )
        .filter(case_plan_item::Column::ChildId.eq(child_id))
        .exec(db)
        .await?;
    Ok(())
}

/// Clears the competing values kept in conflicts about these records.
pub async fn scrub_conflicts(
    db: &impl ConnectionTrait,
    record_ids: Vec<Uuid>,
) -> Result<(), DbErr> {
    let none = || Expr::value(sea_orm::Value::Json(None));
    conflict::Entity::update_many()
        .col_expr(conflict::Column::LocalValue, none())
        .col_expr(conflict::Column::RemoteValue, none())
        .col_expr(conflict::Column::Resolution, none())
        .filter(conflict::Column::RecordId.is_in(record_ids))
        .exec(db)
        .await?;
    Ok(())
}

/// Replaces the payload of delivered messages about these records (the
/// platform has them) and the response excerpts of their attempts. Messages
/// not yet delivered keep their payload, so nothing owed is lost.
pub async fn scrub_delivered(
    db: &impl ConnectionTrait,
    aggregate_ids: Vec<Uuid>,
) -> Result<(), DbErr> {
    let delivered: Vec<Uuid> = outbox::Entity::find()
        .select_only()
        .column(outbox::Column::Id)
        .filter(outbox::Column::AggregateId.is_in(aggregate_ids))
        .filter(outbox::Column::Status.eq("delivered"))
        .into_tuple()
        .all(db)
        .await?;
    if delivered.is_empty() {
        return Ok(());
    }
    outbox::Entity::update_many()
        .col_expr(
            outbox::Column::Payload,
            Expr::value(json!({ "archived": true })),
        )
        .filter(outbox::Column::Id.is_in(delivered.clone()))
        .exec(db)
        .await?;
    delivery_attempt::Entity::update_many()
        .col_expr(
            delivery_attempt::Column::ResponseExcerpt,
            Expr::value(sea_orm::Value::String(None)),
        )
        .filter(delivery_attempt::Column::OutboxId.is_in(delivered))
        .exec(db)
        .await?;
    Ok(())
}

/// Forgets a stored photo (its bytes are removed from the store after the
/// transaction commits).
pub async fn forget_attachment(db: &impl ConnectionTrait, sha256: &str) -> Result<(), DbErr> {
    attachment::Entity::delete_many()
        .filter(attachment::Column::Sha256.eq(sha256))
        .exec(db)
        .await?;
    Ok(())
}

/// An array of objects with only `keys` kept in each.
fn keep_keys(items: &Value, keys: &[&str]) -> Value {
    match items {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| match item {
                    Value::Object(map) => Value::Object(
                        map.iter()
                            .filter(|(key, _)| keys.contains(&key.as_str()))
                            .map(|(key, value)| (key.clone(), value.clone()))
                            .collect(),
                    ),
                    _ => Value::Null,
                })
                .collect(),
        ),
        _ => json!([]),
    }
}

#[cfg(test)]
mod tests {
    use super::keep_keys;
    use serde_json::json;

    #[test]
    fn only_the_named_keys_are_kept() {
        let needs = json!([{ "id": "n1", "area": "study", "description": "数学辅导" }, "odd"]);
        assert_eq!(
            keep_keys(&needs, &["id", "area"]),
            json!([{ "id": "n1", "area": "study" }, null])
        );
        assert_eq!(keep_keys(&json!(null), &["id"]), json!([]));
    }
}
