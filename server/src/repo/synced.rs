//! Queries on the synced tables (`children`, `visits`, `case_plan_items`)
//! by entity: load a row as a `sync-core` record, write a merged record
//! back, and the few lookups the merge's semantic checks need.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sync_core::record::{Entity, Record};
use sync_core::rules::rules_for;
use sync_core::semantic::OtherVisit;
use uuid::Uuid;

use super::records::{self, RecordError, SyncedModel, SyncedTable};
use crate::entity::{case_plan_item, child, register_event, visit};

/// A stored row of a synced table, read as a record.
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub record: Record,
    pub created_at: DateTime<Utc>,
    /// The child the row belongs to (the row itself for a child).
    pub child_id: Uuid,
    /// Server bookkeeping of visits that is not synced field data.
    pub reviewed_by: Option<Uuid>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The merged record does not fit the table (a missing or mistyped
    /// column); the mutation is refused, nothing is written.
    #[error("{0}")]
    Shape(String),
}

/// Loads a row by id; on PostgreSQL with `lock`, the row stays locked
/// (`FOR UPDATE`) until the transaction ends. SQLite has a single writer.
pub async fn load(
    db: &impl ConnectionTrait,
    entity: Entity,
    id: Uuid,
    lock: bool,
) -> Result<Option<StoredRow>, RowError> {
    match entity {
        Entity::Child => load_from::<child::Entity>(db, id, lock).await,
        Entity::Visit => load_from::<visit::Entity>(db, id, lock).await,
        Entity::CasePlanItem => load_from::<case_plan_item::Entity>(db, id, lock).await,
    }
}

/// Loads the current rows of many records of one entity, as records. With
/// `lock` on PostgreSQL, the rows stay locked (`FOR UPDATE`) until the
/// transaction ends; they are locked in id order, so two transactions
/// locking overlapping sets wait for each other instead of deadlocking.
pub async fn load_many(
    db: &impl ConnectionTrait,
    entity: Entity,
    ids: Vec<Uuid>,
    lock: bool,
) -> Result<Vec<StoredRow>, RowError> {
    match entity {
        Entity::Child => load_many_from::<child::Entity>(db, ids, lock).await,
        Entity::Visit => load_many_from::<visit::Entity>(db, ids, lock).await,
        Entity::CasePlanItem => load_many_from::<case_plan_item::Entity>(db, ids, lock).await,
    }
}

/// `(id, version, deleted)` of many records of one entity, without
/// reading their fields: what a scope checksum needs.
pub async fn versions(
    db: &impl ConnectionTrait,
    entity: Entity,
    ids: Vec<Uuid>,
) -> Result<Vec<(Uuid, i64, bool)>, DbErr> {
    match entity {
        Entity::Child => versions_from::<child::Entity>(db, ids).await,
        Entity::Visit => versions_from::<visit::Entity>(db, ids).await,
        Entity::CasePlanItem => versions_from::<case_plan_item::Entity>(db, ids).await,
    }
}

fn stored<M: SyncedModel>(row: M) -> Result<StoredRow, RowError> {
    let (reviewed_by, reviewed_at) = row.reviewed();
    let (created_at, child_id) = (row.created_at(), row.child_id());
    Ok(StoredRow {
        record: records::to_record(row)?,
        created_at,
        child_id,
        reviewed_by,
        reviewed_at,
    })
}

async fn load_from<E: SyncedTable>(
    db: &impl ConnectionTrait,
    id: Uuid,
    lock: bool,
) -> Result<Option<StoredRow>, RowError> {
    let query = E::find().filter(E::ID.eq(id));
    let row = if lock {
        query.lock_exclusive().one(db).await?
    } else {
        query.one(db).await?
    };
    row.map(stored).transpose()
}

async fn load_many_from<E: SyncedTable>(
    db: &impl ConnectionTrait,
    mut ids: Vec<Uuid>,
    lock: bool,
) -> Result<Vec<StoredRow>, RowError> {
    let mut out = Vec::with_capacity(ids.len());
    if lock {
        ids.sort_unstable();
        ids.dedup();
    }
    for chunk in ids.chunks(500) {
        let query = E::find().filter(E::ID.is_in(chunk.to_vec()));
        let rows = if lock {
            query.order_by_asc(E::ID).lock_exclusive().all(db).await?
        } else {
            query.all(db).await?
        };
        for row in rows {
            out.push(stored(row)?);
        }
    }
    Ok(out)
}

async fn versions_from<E: SyncedTable>(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<Vec<(Uuid, i64, bool)>, DbErr> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<(Uuid, i64, bool)> = E::find()
            .select_only()
            .column(E::ID)
            .column(E::VERSION)
            .column(E::DELETED)
            .filter(E::ID.is_in(chunk.to_vec()))
            .into_tuple()
            .all(db)
            .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// A merged record as a row of its table, ready to write.
#[derive(Debug, Clone)]
pub enum SyncedRow {
    Child(child::Model),
    Visit(visit::Model),
    CasePlanItem(case_plan_item::Model),
}

/// The row for a merged record. Columns outside the sync rules come from
/// `server_columns`. A record that does not fit its table (a missing or
/// mistyped column) is a [`RowError::Shape`]: nothing is written.
pub fn to_row(
    record: &Record,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    server_columns: Map<String, Value>,
) -> Result<SyncedRow, RowError> {
    let (mut columns, meta) = record.split();
    columns.extend(server_columns);
    // An absent set is the empty set (set columns are NOT NULL).
    for rule in rules_for(record.entity).fields {
        if rule.kind.is_set() {
            columns
                .entry(rule.name)
                .or_insert_with(|| Value::Array(Vec::new()));
        }
    }
    columns.insert("id".into(), Value::String(record.id.to_string()));
    columns.insert("version".into(), Value::from(record.version));
    columns.insert(
        "field_clocks".into(),
        serde_json::to_value(meta).map_err(|err| RowError::Shape(err.to_string()))?,
    );
    columns.insert(
        "created_at".into(),
        serde_json::to_value(created_at).unwrap_or_default(),
    );
    columns.insert(
        "updated_at".into(),
        serde_json::to_value(updated_at).unwrap_or_default(),
    );
    columns.insert("deleted".into(), Value::Bool(record.is_deleted()));
    let row = Value::Object(columns);
    Ok(match record.entity {
        Entity::Child => SyncedRow::Child(model_of(row)?),
        Entity::Visit => SyncedRow::Visit(model_of(row)?),
        Entity::CasePlanItem => SyncedRow::CasePlanItem(model_of(row)?),
    })
}

fn model_of<M: DeserializeOwned + SyncedModel>(row: Value) -> Result<M, RowError> {
    serde_json::from_value(row)
        .map_err(|err| RowError::Shape(format!("the {} does not fit its table: {err}", M::ENTITY)))
}

/// Inserts new rows: children first, then the visits and case-plan items
/// that may refer to them, each table with multi-row inserts.
pub async fn insert_rows(db: &impl ConnectionTrait, rows: Vec<SyncedRow>) -> Result<(), DbErr> {
    let (mut children, mut visits, mut items) = (Vec::new(), Vec::new(), Vec::new());
    for row in rows {
        match row {
            SyncedRow::Child(m) => children.push(child::ActiveModel::from(m)),
            SyncedRow::Visit(m) => visits.push(visit::ActiveModel::from(m)),
            SyncedRow::CasePlanItem(m) => items.push(case_plan_item::ActiveModel::from(m)),
        }
    }
    super::insert_all(db, children).await?;
    super::insert_all(db, visits).await?;
    super::insert_all(db, items).await
}

/// Replaces an existing row with every column of `row`.
pub async fn update_row(db: &impl ConnectionTrait, row: SyncedRow) -> Result<(), DbErr> {
    match row {
        SyncedRow::Child(m) => update::<child::Entity>(db, m).await,
        SyncedRow::Visit(m) => update::<visit::Entity>(db, m).await,
        SyncedRow::CasePlanItem(m) => update::<case_plan_item::Entity>(db, m).await,
    }
}

async fn update<E>(db: &impl ConnectionTrait, model: E::Model) -> Result<(), DbErr>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + ActiveModelBehavior + Send,
{
    model.into_active_model().reset_all().update(db).await?;
    Ok(())
}

/// The transfers between villages of the given children:
/// `(child_id, village transferred from, effective date)`.
pub async fn transfers(
    db: &impl ConnectionTrait,
    child_ids: Vec<Uuid>,
) -> Result<Vec<(Uuid, Option<String>, NaiveDate, DateTime<Utc>)>, DbErr> {
    let mut out = Vec::new();
    for chunk in child_ids.chunks(500) {
        let rows: Vec<(Uuid, Option<String>, NaiveDate, DateTime<Utc>)> =
            register_event::Entity::find()
                .select_only()
                .column(register_event::Column::ChildId)
                .column(register_event::Column::FromValue)
                .column(register_event::Column::EffectiveDate)
                .column(register_event::Column::CreatedAt)
                .filter(register_event::Column::ChildId.is_in(chunk.iter().copied()))
                .filter(register_event::Column::Kind.eq("transferred"))
                .into_tuple()
                .all(db)
                .await?;
        out.extend(rows);
    }
    Ok(out)
}

/// The district's day of a visit's date-time, as the duplicate check counts
/// it.
pub fn visit_day(at: DateTime<Utc>) -> NaiveDate {
    crate::calendar::day_of(at)
}

/// The live visits to the given children on the given days (as
/// [`visit_day`] counts them), each day without the visits of the device it
/// names, if it names one: `(child_id, visit)` for each.
///
/// The days are a `VALUES` list joined to the visits, so each day is one
/// search of `(child_id, visited_at, deleted, device_id, id)` and the
/// statement's text depends only on how many days it asks for. (A hundred
/// days `OR`ed together took PostgreSQL 7 ms to plan and 7 ms to run; this
/// takes it 1 and 3.)
pub async fn visits_on_days(
    db: &impl ConnectionTrait,
    days: Vec<(Uuid, NaiveDate, Option<Uuid>)>,
) -> Result<Vec<(Uuid, OtherVisit)>, DbErr> {
    let backend = db.get_database_backend();
    let calendar = crate::calendar::district();
    let mut out = Vec::new();
    // Four bind parameters per day.
    for chunk in days.chunks(500) {
        let mut values = Vec::with_capacity(chunk.len() * 4);
        let mut rows = Vec::with_capacity(chunk.len());
        for (n, &(child_id, day, without)) in chunk.iter().enumerate() {
            let (from, to) = calendar.bounds(day);
            rows.push(match backend {
                DbBackend::Postgres => format!(
                    "(${}::uuid, ${}::timestamptz, ${}::timestamptz, ${}::uuid)",
                    4 * n + 1,
                    4 * n + 2,
                    4 * n + 3,
                    4 * n + 4
                ),
                _ => "(?, ?, ?, ?)".to_owned(),
            });
            values.extend([child_id.into(), from.into(), to.into(), without.into()]);
        }
        let days = rows.join(", ");
        let this_day = "v.child_id = d.child_id AND v.visited_at >= d.from_at \
             AND v.visited_at < d.to_at AND v.deleted = FALSE \
             AND (d.without IS NULL OR v.device_id IS NULL OR v.device_id <> d.without)";
        let sql = match backend {
            // A search of the visits for each day. `OFFSET 0` keeps the
            // planner from flattening the join into one hash join over
            // every visit, as it would for a hundred days.
            DbBackend::Postgres => format!(
                "SELECT v.child_id, v.id, v.device_id, v.visited_at \
                 FROM (VALUES {days}) AS d (child_id, from_at, to_at, without) \
                 CROSS JOIN LATERAL (SELECT v.child_id, v.id, v.device_id, v.visited_at \
                   FROM visits v WHERE {this_day} OFFSET 0) v"
            ),
            // CROSS JOIN: SQLite reads the days first and searches the
            // visits for each.
            _ => format!(
                "WITH d (child_id, from_at, to_at, without) AS (VALUES {days}) \
                 SELECT v.child_id, v.id, v.device_id, v.visited_at \
                 FROM d CROSS JOIN visits v WHERE {this_day}"
            ),
        };
        for row in db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?
        {
            let child_id: Uuid = row.try_get_by_index(0)?;
            let visited_at: DateTime<Utc> = row.try_get_by_index(3)?;
            out.push((
                child_id,
                OtherVisit {
                    visit_id: row.try_get_by_index(1)?,
                    device_id: row.try_get_by_index(2)?,
                    visited_on: visit_day(visited_at),
                },
            ));
        }
    }
    Ok(out)
}

/// Ids of the visits and case-plan items of a child (they follow the child
/// when it moves between scopes).
pub async fn belonging_to_child(
    db: &impl ConnectionTrait,
    child_id: Uuid,
) -> Result<Vec<(Entity, Uuid, i64)>, DbErr> {
    let visits = visit::Entity::find()
        .select_only()
        .column(visit::Column::Id)
        .column(visit::Column::Version)
        .filter(visit::Column::ChildId.eq(child_id))
        .into_tuple::<(Uuid, i64)>()
        .all(db)
        .await?;
    let items = case_plan_item::Entity::find()
        .select_only()
        .column(case_plan_item::Column::Id)
        .column(case_plan_item::Column::Version)
        .filter(case_plan_item::Column::ChildId.eq(child_id))
        .into_tuple::<(Uuid, i64)>()
        .all(db)
        .await?;
    Ok(visits
        .into_iter()
        .map(|(id, v)| (Entity::Visit, id, v))
        .chain(
            items
                .into_iter()
                .map(|(id, v)| (Entity::CasePlanItem, id, v)),
        )
        .collect())
}
