//! Queries behind the supervisor's review: the filtered visit log, a
//! visit's history and conflicts, a child's page, the roster, and the
//! conflict queue. Scope is always given as the villages the caller sees;
//! a visit belongs to the village its child is registered in now.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, JoinType,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, RelationTrait, Select, Set,
};
use uuid::Uuid;

use crate::entity::{
    case_plan_item, child, conflict, register_event, urgent_acknowledgement, user, visit,
    visit_version,
};

/// How the visit log is ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VisitSort {
    /// Newest visit first.
    #[default]
    VisitedDesc,
    /// Oldest visit first.
    VisitedAsc,
    /// Most recently changed first.
    UpdatedDesc,
}

/// The visit log's filters. `villages` is the scope (never empty for a
/// meaningful answer); the rest narrow it.
#[derive(Clone, Debug, Default)]
pub struct VisitFilter {
    pub villages: Vec<Uuid>,
    pub author: Option<Uuid>,
    pub child: Option<Uuid>,
    pub kind: Option<String>,
    pub review_status: Option<String>,
    /// Visits at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Visits before this instant.
    pub until: Option<DateTime<Utc>>,
    pub has_risk_flags: Option<bool>,
    pub has_conflict: Option<bool>,
    pub amended: Option<bool>,
    pub urgent: Option<UrgentFilter>,
    pub sort: VisitSort,
}

/// The visit log's urgent filter: visits that raised an urgent risk alert
/// (an `urgent` conflict row), all of them or by whether it is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrgentFilter {
    /// Every visit that raised an urgent alert.
    Any,
    /// An alert nobody has acknowledged yet (an open `urgent` row).
    Unhandled,
    /// Alerts raised and all acknowledged.
    Handled,
}

const OPEN_CONFLICT: &str = "EXISTS (SELECT 1 FROM conflicts c WHERE c.entity = 'visit' \
     AND c.record_id = visits.id AND c.status = 'open')";
const AMENDED: &str = "EXISTS (SELECT 1 FROM conflicts c WHERE c.entity = 'visit' \
     AND c.record_id = visits.id AND c.kind = 'amendment')";
const URGENT: &str = "EXISTS (SELECT 1 FROM conflicts c WHERE c.entity = 'visit' \
     AND c.record_id = visits.id AND c.kind = 'urgent')";
const URGENT_OPEN: &str = "EXISTS (SELECT 1 FROM conflicts c WHERE c.entity = 'visit' \
     AND c.record_id = visits.id AND c.kind = 'urgent' AND c.status = 'open')";
const HAS_RISK: &str = "CAST(visits.risk_flags AS TEXT) <> '[]'";

fn yes_no(query: Select<visit::Entity>, wanted: Option<bool>, sql: &str) -> Select<visit::Entity> {
    match wanted {
        Some(true) => query.filter(Expr::cust(sql.to_owned())),
        Some(false) => query.filter(Expr::cust(format!("NOT ({sql})"))),
        None => query,
    }
}

fn visit_query(filter: &VisitFilter) -> Select<visit::Entity> {
    let mut query = visit::Entity::find()
        .join(JoinType::InnerJoin, visit::Relation::Child.def())
        .filter(child::Column::VillageId.is_in(filter.villages.clone()))
        .filter(visit::Column::Deleted.eq(false));
    if let Some(author) = filter.author {
        query = query.filter(visit::Column::AuthorId.eq(author));
    }
    if let Some(child) = filter.child {
        query = query.filter(visit::Column::ChildId.eq(child));
    }
    if let Some(kind) = &filter.kind {
        query = query.filter(visit::Column::Kind.eq(kind.clone()));
    }
    if let Some(status) = &filter.review_status {
        query = query.filter(visit::Column::ReviewStatus.eq(status.clone()));
    }
    if let Some(from) = filter.from {
        query = query.filter(visit::Column::VisitedAt.gte(from));
    }
    if let Some(until) = filter.until {
        query = query.filter(visit::Column::VisitedAt.lt(until));
    }
    query = yes_no(query, filter.has_risk_flags, HAS_RISK);
    query = yes_no(query, filter.has_conflict, OPEN_CONFLICT);
    query = match filter.urgent {
        Some(UrgentFilter::Any) => yes_no(query, Some(true), URGENT),
        Some(UrgentFilter::Unhandled) => yes_no(query, Some(true), URGENT_OPEN),
        Some(UrgentFilter::Handled) => {
            yes_no(yes_no(query, Some(true), URGENT), Some(false), URGENT_OPEN)
        }
        None => query,
    };
    yes_no(query, filter.amended, AMENDED)
}

/// One page of the visit log and the number of visits matching in all.
pub async fn visits(
    db: &impl ConnectionTrait,
    filter: &VisitFilter,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<visit::Model>), DbErr> {
    if filter.villages.is_empty() {
        return Ok((0, Vec::new()));
    }
    let total = visit_query(filter).count(db).await?;
    // An urgent alert nobody has acknowledged comes first, whatever the sort.
    let query = visit_query(filter).order_by_desc(Expr::cust(URGENT_OPEN));
    let query = match filter.sort {
        VisitSort::VisitedDesc => query.order_by_desc(visit::Column::VisitedAt),
        VisitSort::VisitedAsc => query.order_by_asc(visit::Column::VisitedAt),
        VisitSort::UpdatedDesc => query.order_by_desc(visit::Column::UpdatedAt),
    };
    let rows = query
        .order_by_asc(visit::Column::Id)
        .offset(Ord::min(offset, MAX_OFFSET))
        .limit(limit)
        .all(db)
        .await?;
    Ok((total, rows))
}

pub async fn visit(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<visit::Model>, DbErr> {
    visit::Entity::find_by_id(id).one(db).await
}

pub async fn child(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<child::Model>, DbErr> {
    child::Entity::find_by_id(id).one(db).await
}

pub async fn children_by_ids(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<Vec<child::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    child::Entity::find()
        .filter(child::Column::Id.is_in(ids))
        .all(db)
        .await
}

pub async fn users_by_ids(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<Vec<user::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(db)
        .await
}

/// The conflicts that mark visits (of `ids`) in the log: open ones, and
/// every amendment and urgent alert.
pub async fn conflict_marks(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<Vec<conflict::Model>, DbErr> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    conflict::Entity::find()
        .filter(conflict::Column::Entity.eq("visit"))
        .filter(conflict::Column::RecordId.is_in(ids))
        .filter(
            conflict::Column::Status
                .eq("open")
                .or(conflict::Column::Kind.is_in(["amendment", "urgent"])),
        )
        .all(db)
        .await
}

/// A visit's history, oldest first.
pub async fn visit_versions(
    db: &impl ConnectionTrait,
    visit_id: Uuid,
) -> Result<Vec<visit_version::Model>, DbErr> {
    visit_version::Entity::find()
        .filter(visit_version::Column::VisitId.eq(visit_id))
        .order_by_asc(visit_version::Column::Version)
        .order_by_asc(visit_version::Column::CreatedAt)
        .all(db)
        .await
}

/// Every conflict about a record, oldest first.
pub async fn conflicts_of(
    db: &impl ConnectionTrait,
    entity: &str,
    record_id: Uuid,
) -> Result<Vec<conflict::Model>, DbErr> {
    conflict::Entity::find()
        .filter(conflict::Column::Entity.eq(entity))
        .filter(conflict::Column::RecordId.eq(record_id))
        .order_by_asc(conflict::Column::CreatedAt)
        .order_by_asc(conflict::Column::Id)
        .all(db)
        .await
}

/// Conflicts that stay in the queue of the village they were filed in: a
/// `visit_after_transfer` notice (filed for the child's new town and, as
/// a second row, for the town it left) and a `rejected_mutation` (the
/// sender's matter, filed in the sender's village). Every other conflict
/// is about a record of a child and belongs to the village the child is
/// registered in now, as its visits do: after a transfer it moves with
/// the child to the new town's queue.
pub const FILED_WHERE_MADE: &[&str] = &["visit_after_transfer", "rejected_mutation"];

/// Conflicts in the given villages: [`FILED_WHERE_MADE`] kinds by the
/// village they were filed in, the rest by the current village of the
/// child their record is about (a child itself, a visit's child, a needs
/// item's child).
fn conflicts_in(villages: &[Uuid]) -> Condition {
    let children = child::Entity::find()
        .select_only()
        .column(child::Column::Id)
        .filter(child::Column::VillageId.is_in(villages.iter().copied()))
        .into_query();
    let visits = visit::Entity::find()
        .select_only()
        .column(visit::Column::Id)
        .filter(visit::Column::ChildId.in_subquery(children.clone()))
        .into_query();
    let needs = case_plan_item::Entity::find()
        .select_only()
        .column(case_plan_item::Column::Id)
        .filter(case_plan_item::Column::ChildId.in_subquery(children.clone()))
        .into_query();
    let about = |entity: &str, ids| {
        Condition::all()
            .add(conflict::Column::Entity.eq(entity))
            .add(conflict::Column::RecordId.in_subquery(ids))
    };
    Condition::any()
        .add(
            Condition::all()
                .add(conflict::Column::Kind.is_in(FILED_WHERE_MADE.iter().copied()))
                .add(conflict::Column::VillageId.is_in(villages.iter().copied())),
        )
        .add(
            Condition::all()
                .add(conflict::Column::Kind.is_not_in(FILED_WHERE_MADE.iter().copied()))
                .add(
                    Condition::any()
                        .add(about("child", children))
                        .add(about("visit", visits))
                        .add(about("case_plan_item", needs)),
                ),
        )
}

/// The conflict queue: conflicts in the given villages (see
/// [`conflicts_in`]), newest first.
pub async fn conflicts(
    db: &impl ConnectionTrait,
    villages: Vec<Uuid>,
    status: Option<&str>,
    kind: Option<&str>,
    offset: u64,
    limit: u64,
) -> Result<(u64, Vec<conflict::Model>), DbErr> {
    if villages.is_empty() {
        return Ok((0, Vec::new()));
    }
    let mut query = conflict::Entity::find().filter(conflicts_in(&villages));
    if let Some(status) = status {
        query = query.filter(conflict::Column::Status.eq(status));
    }
    if let Some(kind) = kind {
        query = query.filter(conflict::Column::Kind.eq(kind));
    }
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_desc(conflict::Column::CreatedAt)
        .order_by_desc(conflict::Column::Id)
        .offset(Ord::min(offset, MAX_OFFSET))
        .limit(limit)
        .all(db)
        .await?;
    Ok((total, rows))
}

/// True when conflict `id` is in the given villages (the queue's rule,
/// [`conflicts_in`]).
pub async fn conflict_in_villages(
    db: &impl ConnectionTrait,
    id: Uuid,
    villages: &[Uuid],
) -> Result<bool, DbErr> {
    if villages.is_empty() {
        return Ok(false);
    }
    Ok(conflict::Entity::find_by_id(id)
        .filter(conflicts_in(villages))
        .count(db)
        .await?
        > 0)
}

/// Loads a conflict, locked on PostgreSQL until the transaction ends.
pub async fn conflict_for_update(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<conflict::Model>, DbErr> {
    conflict::Entity::find_by_id(id)
        .lock_exclusive()
        .one(db)
        .await
}

/// Marks a conflict resolved.
pub async fn resolve_conflict(
    db: &impl ConnectionTrait,
    row: conflict::Model,
    resolution: serde_json::Value,
    by: Uuid,
    at: DateTime<Utc>,
) -> Result<conflict::Model, DbErr> {
    let mut active: conflict::ActiveModel = row.into();
    active.status = Set("resolved".to_owned());
    active.resolution = Set(Some(resolution));
    active.resolved_by = Set(Some(by));
    active.resolved_at = Set(Some(at));
    active.update(db).await
}

/// A visit's urgent alerts (its `urgent` conflict rows), oldest first,
/// locked on PostgreSQL until the transaction ends.
pub async fn urgent_alerts_for_update(
    db: &impl ConnectionTrait,
    visit_id: Uuid,
) -> Result<Vec<conflict::Model>, DbErr> {
    conflict::Entity::find()
        .filter(conflict::Column::Entity.eq("visit"))
        .filter(conflict::Column::RecordId.eq(visit_id))
        .filter(conflict::Column::Kind.eq("urgent"))
        .order_by_asc(conflict::Column::CreatedAt)
        .order_by_asc(conflict::Column::Id)
        .lock_exclusive()
        .all(db)
        .await
}

/// How many urgent alerts nobody has acknowledged yet, in the whole
/// database, and when the oldest of them was raised.
pub async fn unacknowledged_urgent(
    db: &impl ConnectionTrait,
) -> Result<(i64, Option<DateTime<Utc>>), DbErr> {
    let open = || {
        conflict::Entity::find()
            .filter(conflict::Column::Entity.eq("visit"))
            .filter(conflict::Column::Kind.eq("urgent"))
            .filter(conflict::Column::Status.eq("open"))
    };
    let count = open().count(db).await?;
    let oldest = open()
        .select_only()
        .column(conflict::Column::CreatedAt)
        .order_by_asc(conflict::Column::CreatedAt)
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    Ok((i64::try_from(count).unwrap_or(i64::MAX), oldest))
}

/// The acknowledgements of a visit's urgent alerts, oldest first.
pub async fn urgent_acknowledgements(
    db: &impl ConnectionTrait,
    visit_id: Uuid,
) -> Result<Vec<urgent_acknowledgement::Model>, DbErr> {
    urgent_acknowledgement::Entity::find()
        .filter(urgent_acknowledgement::Column::VisitId.eq(visit_id))
        .order_by_asc(urgent_acknowledgement::Column::CreatedAt)
        .order_by_asc(urgent_acknowledgement::Column::Id)
        .all(db)
        .await
}

/// Records an acknowledgement.
pub async fn insert_urgent_acknowledgement(
    db: &impl ConnectionTrait,
    row: urgent_acknowledgement::Model,
) -> Result<urgent_acknowledgement::Model, DbErr> {
    urgent_acknowledgement::ActiveModel::from(row)
        .insert(db)
        .await
}

/// Children registered in the given villages, by name.
pub async fn children_in(
    db: &impl ConnectionTrait,
    villages: Vec<Uuid>,
) -> Result<Vec<child::Model>, DbErr> {
    if villages.is_empty() {
        return Ok(Vec::new());
    }
    child::Entity::find()
        .filter(child::Column::VillageId.is_in(villages))
        .filter(child::Column::Deleted.eq(false))
        .order_by_asc(child::Column::Name)
        .order_by_asc(child::Column::Id)
        .all(db)
        .await
}

/// The day of each child's latest visit that counts for the due date (not
/// a draft, not deleted), for the children of the given villages.
pub async fn last_visits(
    db: &impl ConnectionTrait,
    villages: Vec<Uuid>,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, DbErr> {
    if villages.is_empty() {
        return Ok(Vec::new());
    }
    visit::Entity::find()
        .select_only()
        .column(visit::Column::ChildId)
        .column_as(visit::Column::VisitedAt.max(), "last")
        .join(JoinType::InnerJoin, visit::Relation::Child.def())
        .filter(child::Column::VillageId.is_in(villages))
        .filter(visit::Column::Deleted.eq(false))
        .filter(visit::Column::ReviewStatus.ne("draft"))
        .group_by(visit::Column::ChildId)
        .into_tuple()
        .all(db)
        .await
}

/// The day each child (of the given villages) was last added to the
/// register.
pub async fn registered_on(
    db: &impl ConnectionTrait,
    villages: Vec<Uuid>,
) -> Result<Vec<(Uuid, NaiveDate)>, DbErr> {
    if villages.is_empty() {
        return Ok(Vec::new());
    }
    register_event::Entity::find()
        .select_only()
        .column(register_event::Column::ChildId)
        .column_as(register_event::Column::EffectiveDate.max(), "added_on")
        .join(JoinType::InnerJoin, register_event::Relation::Child.def())
        .filter(child::Column::VillageId.is_in(villages))
        .filter(register_event::Column::Kind.eq("added"))
        .group_by(register_event::Column::ChildId)
        .into_tuple()
        .all(db)
        .await
}

/// A child's register events, in effective order.
pub async fn register_events(
    db: &impl ConnectionTrait,
    child_id: Uuid,
) -> Result<Vec<register_event::Model>, DbErr> {
    register_event::Entity::find()
        .filter(register_event::Column::ChildId.eq(child_id))
        .order_by_asc(register_event::Column::EffectiveDate)
        .order_by_asc(register_event::Column::CreatedAt)
        .all(db)
        .await
}

/// A child's needs ledger (case-plan items), live ones only.
pub async fn case_plan_items(
    db: &impl ConnectionTrait,
    child_id: Uuid,
) -> Result<Vec<case_plan_item::Model>, DbErr> {
    case_plan_item::Entity::find()
        .filter(case_plan_item::Column::ChildId.eq(child_id))
        .filter(case_plan_item::Column::Deleted.eq(false))
        .order_by_asc(case_plan_item::Column::CreatedAt)
        .all(db)
        .await
}

/// What a conflict's record is about: its child and, for a visit, when
/// the visit took place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConflictSubject {
    pub child_id: Uuid,
    pub visited_at: Option<DateTime<Utc>>,
}

/// The subject of each conflict's record, by `(entity, record id)`; a
/// record that does not exist (a refused create) has none.
pub async fn conflict_subjects(
    db: &impl ConnectionTrait,
    conflicts: &[conflict::Model],
) -> Result<std::collections::HashMap<(String, Uuid), ConflictSubject>, DbErr> {
    let of = |entity: &str| -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = conflicts
            .iter()
            .filter(|c| c.entity == entity)
            .map(|c| c.record_id)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    let mut subjects = std::collections::HashMap::new();
    let children = of("child");
    if !children.is_empty() {
        for id in child::Entity::find()
            .select_only()
            .column(child::Column::Id)
            .filter(child::Column::Id.is_in(children))
            .into_tuple::<Uuid>()
            .all(db)
            .await?
        {
            let subject = ConflictSubject {
                child_id: id,
                visited_at: None,
            };
            subjects.insert(("child".to_owned(), id), subject);
        }
    }
    let visits = of("visit");
    if !visits.is_empty() {
        for (id, child_id, visited_at) in visit::Entity::find()
            .select_only()
            .column(visit::Column::Id)
            .column(visit::Column::ChildId)
            .column(visit::Column::VisitedAt)
            .filter(visit::Column::Id.is_in(visits))
            .into_tuple::<(Uuid, Uuid, DateTime<Utc>)>()
            .all(db)
            .await?
        {
            let subject = ConflictSubject {
                child_id,
                visited_at: Some(visited_at),
            };
            subjects.insert(("visit".to_owned(), id), subject);
        }
    }
    let needs = of("case_plan_item");
    if !needs.is_empty() {
        for (id, child_id) in case_plan_item::Entity::find()
            .select_only()
            .column(case_plan_item::Column::Id)
            .column(case_plan_item::Column::ChildId)
            .filter(case_plan_item::Column::Id.is_in(needs))
            .into_tuple::<(Uuid, Uuid)>()
            .all(db)
            .await?
        {
            let subject = ConflictSubject {
                child_id,
                visited_at: None,
            };
            subjects.insert(("case_plan_item".to_owned(), id), subject);
        }
    }
    Ok(subjects)
}

/// The largest offset a database accepts (a signed 64-bit integer); a
/// larger one reads past the end anyway.
const MAX_OFFSET: u64 = i64::MAX as u64;

/// How many refused mutations `actor` has had filed in a conflict queue
/// since `since`.
pub async fn refusals_filed_since(
    db: &impl ConnectionTrait,
    actor: Uuid,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<u64, DbErr> {
    conflict::Entity::find()
        .filter(conflict::Column::ActorId.eq(actor))
        .filter(conflict::Column::Kind.eq("rejected_mutation"))
        .filter(conflict::Column::CreatedAt.gte(since))
        .count(db)
        .await
}

/// Conflicts in the given villages (see [`conflicts_in`]) filed after
/// `after` (`created_at`, then id), oldest first: what a device's
/// read-only copy of the queue pulls next.
pub async fn conflicts_after(
    db: &impl ConnectionTrait,
    villages: Vec<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<conflict::Model>, DbErr> {
    if villages.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = conflict::Entity::find().filter(conflicts_in(&villages));
    if let Some((at, id)) = after {
        query = query.filter(
            Condition::any()
                .add(conflict::Column::CreatedAt.gt(at))
                .add(
                    Condition::all()
                        .add(conflict::Column::CreatedAt.eq(at))
                        .add(conflict::Column::Id.gt(id)),
                ),
        );
    }
    query
        .order_by_asc(conflict::Column::CreatedAt)
        .order_by_asc(conflict::Column::Id)
        .limit(limit)
        .all(db)
        .await
}
