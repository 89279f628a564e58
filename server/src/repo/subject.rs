//! Queries behind a subject-access export: every row that is about one
//! child, deleted ones included.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::entity::{
    attachment, audit_log, case_plan_item, conflict, delivery_attempt, outbox, visit, visit_version,
};

/// Every visit to the child, tombstones included, oldest first.
pub async fn visits(db: &impl ConnectionTrait, child_id: Uuid) -> Result<Vec<visit::Model>, DbErr> {
    visit::Entity::find()
        .filter(visit::Column::ChildId.eq(child_id))
        .order_by_asc(visit::Column::VisitedAt)
        .order_by_asc(visit::Column::Id)
        .all(db)
        .await
}

/// Every version of the given visits, in order.
pub async fn visit_versions(
    db: &impl ConnectionTrait,
    visit_ids: Vec<Uuid>,
) -> Result<Vec<visit_version::Model>, DbErr> {
    visit_version::Entity::find()
        .filter(visit_version::Column::VisitId.is_in(visit_ids))
        .order_by_asc(visit_version::Column::VisitId)
        .order_by_asc(visit_version::Column::Version)
        .order_by_asc(visit_version::Column::CreatedAt)
        .all(db)
        .await
}

/// The needs ledger, deleted items included.
pub async fn needs(
    db: &impl ConnectionTrait,
    child_id: Uuid,
) -> Result<Vec<case_plan_item::Model>, DbErr> {
    case_plan_item::Entity::find()
        .filter(case_plan_item::Column::ChildId.eq(child_id))
        .order_by_asc(case_plan_item::Column::CreatedAt)
        .order_by_asc(case_plan_item::Column::Id)
        .all(db)
        .await
}

/// Every conflict about one of `record_ids` (the child, its visits, its
/// needs), oldest first.
pub async fn conflicts(
    db: &impl ConnectionTrait,
    record_ids: Vec<Uuid>,
) -> Result<Vec<conflict::Model>, DbErr> {
    conflict::Entity::find()
        .filter(conflict::Column::RecordId.is_in(record_ids))
        .order_by_asc(conflict::Column::CreatedAt)
        .order_by_asc(conflict::Column::Id)
        .all(db)
        .await
}

/// The stored photos among `hashes`.
pub async fn attachments(
    db: &impl ConnectionTrait,
    hashes: Vec<String>,
) -> Result<Vec<attachment::Model>, DbErr> {
    attachment::Entity::find()
        .filter(attachment::Column::Sha256.is_in(hashes))
        .order_by_asc(attachment::Column::Sha256)
        .all(db)
        .await
}

/// Outbound messages about the child or its visits, oldest first.
pub async fn outbox(
    db: &impl ConnectionTrait,
    aggregate_ids: Vec<Uuid>,
) -> Result<Vec<outbox::Model>, DbErr> {
    outbox::Entity::find()
        .filter(outbox::Column::AggregateId.is_in(aggregate_ids))
        .order_by_asc(outbox::Column::CreatedAt)
        .order_by_asc(outbox::Column::Id)
        .all(db)
        .await
}

/// Every delivery attempt of the given messages.
pub async fn delivery_attempts(
    db: &impl ConnectionTrait,
    outbox_ids: Vec<Uuid>,
) -> Result<Vec<delivery_attempt::Model>, DbErr> {
    delivery_attempt::Entity::find()
        .filter(delivery_attempt::Column::OutboxId.is_in(outbox_ids))
        .order_by_asc(delivery_attempt::Column::OutboxId)
        .order_by_asc(delivery_attempt::Column::Attempt)
        .all(db)
        .await
}

/// Audit entries about the child: those whose record is the child or one
/// of `record_ids`, and those whose detail names the child (report reads
/// and exports list the children they named). The detail match is a text
/// match on the hyphenated id, which no other value can produce; it scans
/// the log, which is acceptable for a request made a few times a year.
pub async fn audit_entries(
    db: &impl ConnectionTrait,
    child_id: Uuid,
    record_ids: Vec<Uuid>,
) -> Result<Vec<audit_log::Model>, DbErr> {
    let named = Expr::col(audit_log::Column::Detail)
        .cast_as("TEXT")
        .like(format!("%{}%", child_id.hyphenated()));
    audit_log::Entity::find()
        .filter(audit_log::Column::RecordId.is_in(record_ids).or(named))
        .order_by_asc(audit_log::Column::Id)
        .all(db)
        .await
}
