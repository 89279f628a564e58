//! The reports' queries: children, visits, register events, needs-ledger
//! items and benefit standards of an area of the org tree, aggregated in the
//! database where the rows would be many (visits).
//!
//! An [`Area`] becomes a condition on a `village_id` column through
//! sub-queries on `org_units` (district → town → village), never a long
//! list of ids, so a province-wide or district-wide report stays one query.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::sea_query::{Expr, SelectStatement, SimpleExpr};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};
use uuid::Uuid;

use crate::entity::{benefit_standard, case_plan_item, child, org_unit, register_event, visit};

/// The part of the org tree a report covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Every unit this server holds.
    All,
    District(Uuid),
    Town(Uuid),
    Village(Uuid),
}

/// Ids of the villages of a town.
fn villages_of_town(town: Uuid) -> SelectStatement {
    org_unit::Entity::find()
        .select_only()
        .column(org_unit::Column::Id)
        .filter(org_unit::Column::ParentId.eq(town))
        .into_query()
}

/// Ids of the villages of a district.
fn villages_of_district(district: Uuid) -> SelectStatement {
    let towns = org_unit::Entity::find()
        .select_only()
        .column(org_unit::Column::Id)
        .filter(org_unit::Column::ParentId.eq(district))
        .into_query();
    org_unit::Entity::find()
        .select_only()
        .column(org_unit::Column::Id)
        .filter(org_unit::Column::ParentId.in_subquery(towns))
        .into_query()
}

/// `column` (a village id) lies in `area`; `None` for the whole server.
fn in_area(column: impl ColumnTrait, area: Area) -> Option<SimpleExpr> {
    match area {
        Area::All => None,
        Area::Village(v) => Some(column.eq(v)),
        Area::Town(t) => Some(column.in_subquery(villages_of_town(t))),
        Area::District(d) => Some(column.in_subquery(villages_of_district(d))),
    }
}

/// Ids of the (not deleted) children whose current village is in `area`.
fn children_of(area: Area) -> SelectStatement {
    child::Entity::find()
        .select_only()
        .column(child::Column::Id)
        .filter(child::Column::Deleted.eq(false))
        .apply_if(in_area(child::Column::VillageId, area), QueryFilter::filter)
        .into_query()
}

/// What the reports read of a child.
#[derive(Clone, Debug, FromQueryResult)]
pub struct ChildRow {
    pub id: Uuid,
    pub name: String,
    pub category: String,
    pub status: String,
    pub exit_reason: Option<String>,
    pub exit_date: Option<NaiveDate>,
    pub village_id: Uuid,
    pub visit_interval_days: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// The columns of [`ChildRow`], selected from `children`.
fn child_rows() -> sea_orm::Select<child::Entity> {
    child::Entity::find().select_only().columns([
        child::Column::Id,
        child::Column::Name,
        child::Column::Category,
        child::Column::Status,
        child::Column::ExitReason,
        child::Column::ExitDate,
        child::Column::VillageId,
        child::Column::VisitIntervalDays,
        child::Column::CreatedAt,
    ])
}

/// The children (not deleted) whose current village is in `area`.
pub async fn children(db: &impl ConnectionTrait, area: Area) -> Result<Vec<ChildRow>, DbErr> {
    child_rows()
        .filter(child::Column::Deleted.eq(false))
        .apply_if(in_area(child::Column::VillageId, area), QueryFilter::filter)
        .into_model::<ChildRow>()
        .all(db)
        .await
}

/// The day each child of `area` was last added to the register on or
/// before `until` (a child re-added after an exit counts from the re-entry).
pub async fn added_on(
    db: &impl ConnectionTrait,
    area: Area,
    until: NaiveDate,
) -> Result<HashMap<Uuid, NaiveDate>, DbErr> {
    let rows: Vec<(Uuid, Option<NaiveDate>)> = register_event::Entity::find()
        .select_only()
        .column(register_event::Column::ChildId)
        .column_as(register_event::Column::EffectiveDate.max(), "added_on")
        .filter(register_event::Column::Kind.eq("added"))
        .filter(register_event::Column::EffectiveDate.lte(until))
        .apply_if(
            (area != Area::All)
                .then(|| register_event::Column::ChildId.in_subquery(children_of(area))),
            QueryFilter::filter,
        )
        .group_by(register_event::Column::ChildId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, day)| day.map(|d| (id, d)))
        .collect())
}

/// The latest visit of each child that counts for the due date (not
/// deleted, not a draft) made before `before`, as `(child, visited_at)`
/// groups of the visits `filter` keeps.
async fn latest_counted(
    db: &impl ConnectionTrait,
    before: DateTime<Utc>,
    filter: impl FnOnce(sea_orm::Select<visit::Entity>) -> sea_orm::Select<visit::Entity>,
) -> Result<HashMap<Uuid, DateTime<Utc>>, DbErr> {
    let query = visit::Entity::find()
        .select_only()
        .column(visit::Column::ChildId)
        .column_as(visit::Column::VisitedAt.max(), "last")
        .filter(visit::Column::Deleted.eq(false))
        .filter(visit::Column::ReviewStatus.ne("draft"))
        .filter(visit::Column::VisitedAt.lt(before));
    let rows: Vec<(Uuid, Option<DateTime<Utc>>)> = filter(query)
        .group_by(visit::Column::ChildId)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| at.map(|a| (id, a)))
        .collect())
}

/// Each child's latest visit that counts for the due date before `before`,
/// for the children of `area`, wherever the visit was made.
pub async fn last_visits(
    db: &impl ConnectionTrait,
    area: Area,
    before: DateTime<Utc>,
) -> Result<HashMap<Uuid, DateTime<Utc>>, DbErr> {
    latest_counted(db, before, |query| {
        query.apply_if(
            (area != Area::All).then(|| visit::Column::ChildId.in_subquery(children_of(area))),
            QueryFilter::filter,
        )
    })
    .await
}

/// The same answer as [`last_visits`] for `children` (the children of
/// `area`), read in two exact steps that suit a large area: the children
/// visited in `[since, before)` from one range of the
/// `(visited_at, child_id)` index, then the others child by child from the
/// `(child_id, visited_at)` index, a few hundred ids per query. With
/// `since` a little more than the visit interval, the second step reads
/// only the overdue and the never visited.
pub async fn last_visits_since(
    db: &impl ConnectionTrait,
    area: Area,
    children: &[Uuid],
    since: DateTime<Utc>,
    before: DateTime<Utc>,
) -> Result<HashMap<Uuid, DateTime<Utc>>, DbErr> {
    let mut last = latest_counted(db, before, |query| {
        query.filter(visit::Column::VisitedAt.gte(since)).apply_if(
            (area != Area::All).then(|| visit::Column::ChildId.in_subquery(children_of(area))),
            QueryFilter::filter,
        )
    })
    .await?;
    let rest: Vec<Uuid> = children
        .iter()
        .copied()
        .filter(|id| !last.contains_key(id))
        .collect();
    for chunk in rest.chunks(500) {
        last.extend(
            latest_counted(db, before, |query| {
                query.filter(visit::Column::ChildId.is_in(chunk.iter().copied()))
            })
            .await?,
        );
    }
    Ok(last)
}

/// One group of [`visits_by_month`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisitCount {
    /// `YYYY-MM`, in China Standard Time.
    pub month: String,
    pub kind: String,
    pub visits: i64,
}

/// Visits (not deleted, any review status) to the children whose current
/// village is in `area`, made in `[from, to)`, counted by month (of the
/// district's calendar) and kind. A visit belongs where its child is
/// registered now, as in the visit log.
pub async fn visits_by_month(
    db: &impl ConnectionTrait,
    area: Area,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<VisitCount>, DbErr> {
    // The district's offset (a number, never text from outside).
    let offset = crate::calendar::offset_secs_at(chrono::Utc::now());
    let month = match db.get_database_backend() {
        DbBackend::Postgres => format!(
            "to_char((\"visited_at\" AT TIME ZONE 'UTC') + interval '{offset} seconds', 'YYYY-MM')"
        ),
        _ => format!("strftime('%Y-%m', \"visited_at\", '{offset:+} seconds')"),
    };
    let rows: Vec<(Option<String>, String, i64)> = visit::Entity::find()
        .select_only()
        .column_as(Expr::cust(month.clone()), "month")
        .column(visit::Column::Kind)
        .column_as(visit::Column::Id.count(), "visits")
        .filter(visit::Column::Deleted.eq(false))
        .apply_if(from, |q, from| q.filter(visit::Column::VisitedAt.gte(from)))
        .apply_if(to, |q, to| q.filter(visit::Column::VisitedAt.lt(to)))
        .apply_if(
            (area != Area::All).then(|| visit::Column::ChildId.in_subquery(children_of(area))),
            QueryFilter::filter,
        )
        .group_by(Expr::cust(month))
        .group_by(visit::Column::Kind)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(month, kind, visits)| VisitCount {
            month: month.unwrap_or_default(),
            kind,
            visits,
        })
        .collect())
}

/// A register event with the child it concerns.
#[derive(Clone, Debug)]
pub struct EventRow {
    pub event: register_event::Model,
    pub child: ChildRow,
}

/// `added` and `exited` events effective in `[from, to]` of the children
/// whose current village is in `area`, by date.
pub async fn added_and_exited(
    db: &impl ConnectionTrait,
    area: Area,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Vec<EventRow>, DbErr> {
    let events = register_event::Entity::find()
        .filter(register_event::Column::Kind.is_in(["added", "exited"]))
        .apply_if(from, |q, d| {
            q.filter(register_event::Column::EffectiveDate.gte(d))
        })
        .apply_if(to, |q, d| {
            q.filter(register_event::Column::EffectiveDate.lte(d))
        })
        .apply_if(
            (area != Area::All)
                .then(|| register_event::Column::ChildId.in_subquery(children_of(area))),
            QueryFilter::filter,
        )
        .order_by_asc(register_event::Column::EffectiveDate)
        .order_by_asc(register_event::Column::CreatedAt)
        .order_by_asc(register_event::Column::Id)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.child_id).collect();
    let mut children: HashMap<Uuid, ChildRow> = HashMap::new();
    for chunk in ids.chunks(500) {
        let rows = child_rows()
            .filter(child::Column::Id.is_in(chunk.to_vec()))
            .into_model::<ChildRow>()
            .all(db)
            .await?;
        children.extend(rows.into_iter().map(|c| (c.id, c)));
    }
    Ok(events
        .into_iter()
        .filter_map(|event| {
            let child = children.get(&event.child_id)?.clone();
            Some(EventRow { event, child })
        })
        .collect())
}

/// Needs-ledger items (not deleted) still `open` or `in_progress` in a
/// village of `area`, created in `[from, to)` when given.
pub async fn open_items(
    db: &impl ConnectionTrait,
    area: Area,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Vec<case_plan_item::Model>, DbErr> {
    case_plan_item::Entity::find()
        .filter(case_plan_item::Column::Deleted.eq(false))
        .filter(case_plan_item::Column::Status.is_in(["open", "in_progress"]))
        .apply_if(from, |q, from| {
            q.filter(case_plan_item::Column::CreatedAt.gte(from))
        })
        .apply_if(to, |q, to| {
            q.filter(case_plan_item::Column::CreatedAt.lt(to))
        })
        .apply_if(
            in_area(case_plan_item::Column::VillageId, area),
            QueryFilter::filter,
        )
        .all(db)
        .await
}

/// Every benefit standard, oldest first.
pub async fn benefit_standards(
    db: &impl ConnectionTrait,
) -> Result<Vec<benefit_standard::Model>, DbErr> {
    benefit_standard::Entity::find()
        .order_by_asc(benefit_standard::Column::Category)
        .order_by_asc(benefit_standard::Column::EffectiveFrom)
        .all(db)
        .await
}
