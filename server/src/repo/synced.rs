//! Queries on the synced tables (`children`, `visits`, `case_plan_items`)
//! by entity: load a row as a `sync-core` record, write a merged record
//! back, and the few lookups the merge's semantic checks need.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
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

/// Loads the current rows of many records of one entity, as records.
pub async fn load_many(
    db: &impl ConnectionTrait,
    entity: Entity,
    ids: Vec<Uuid>,
) -> Result<Vec<StoredRow>, RowError> {
    match entity {
        Entity::Child => load_many_from::<child::Entity>(db, ids).await,
        Entity::Visit => load_many_from::<visit::Entity>(db, ids).await,
        Entity::CasePlanItem => load_many_from::<case_plan_item::Entity>(db, ids).await,
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

fn stored<M: SyncedModel>(row: &M) -> Result<StoredRow, RowError> {
    let (reviewed_by, reviewed_at) = row.reviewed();
    Ok(StoredRow {
        record: records::to_record(row)?,
        created_at: row.created_at(),
        child_id: row.child_id(),
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
    row.as_ref().map(stored).transpose()
}

async fn load_many_from<E: SyncedTable>(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<Vec<StoredRow>, RowError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        for row in E::find()
            .filter(E::ID.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            out.push(stored(&row)?);
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

/// Writes a merged record: inserted when `is_new`, else the row is
/// replaced. Columns outside the sync rules come from `server_columns`.
pub async fn save(
    db: &impl ConnectionTrait,
    record: &Record,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    server_columns: Map<String, Value>,
    is_new: bool,
) -> Result<(), RowError> {
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
    match record.entity {
        Entity::Child => write::<child::Entity>(db, row, is_new).await,
        Entity::Visit => write::<visit::Entity>(db, row, is_new).await,
        Entity::CasePlanItem => write::<case_plan_item::Entity>(db, row, is_new).await,
    }
}

/// Effective date of the child's latest transfer between villages.
pub async fn last_transfer(
    db: &impl ConnectionTrait,
    child_id: Uuid,
) -> Result<Option<NaiveDate>, DbErr> {
    Ok(register_event::Entity::find()
        .filter(register_event::Column::ChildId.eq(child_id))
        .filter(register_event::Column::Kind.eq("transferred"))
        .order_by_desc(register_event::Column::EffectiveDate)
        .one(db)
        .await?
        .map(|event| event.effective_date))
}

/// The villages the child was transferred out of.
pub async fn transferred_from(
    db: &impl ConnectionTrait,
    child_id: Uuid,
) -> Result<Vec<Uuid>, DbErr> {
    let from: Vec<Option<String>> = register_event::Entity::find()
        .select_only()
        .column(register_event::Column::FromValue)
        .filter(register_event::Column::ChildId.eq(child_id))
        .filter(register_event::Column::Kind.eq("transferred"))
        .into_tuple()
        .all(db)
        .await?;
    Ok(from
        .into_iter()
        .flatten()
        .filter_map(|v| Uuid::try_parse(&v).ok())
        .collect())
}

/// Other live visits to the child around `day` (the day before to the day
/// after, in UTC, so any offset's calendar day is covered).
pub async fn visits_near(
    db: &impl ConnectionTrait,
    child_id: Uuid,
    except: Uuid,
    day: NaiveDate,
) -> Result<Vec<OtherVisit>, DbErr> {
    let from = (day - chrono::Days::new(1))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let to = (day + chrono::Days::new(2))
        .and_time(chrono::NaiveTime::MIN)
        .and_utc();
    let rows: Vec<(Uuid, Option<Uuid>, DateTime<Utc>)> = visit::Entity::find()
        .select_only()
        .columns([
            visit::Column::Id,
            visit::Column::DeviceId,
            visit::Column::VisitedAt,
        ])
        .filter(visit::Column::ChildId.eq(child_id))
        .filter(visit::Column::Id.ne(except))
        .filter(visit::Column::Deleted.eq(false))
        .filter(visit::Column::VisitedAt.gte(from))
        .filter(visit::Column::VisitedAt.lt(to))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(visit_id, device_id, visited_at)| OtherVisit {
            visit_id,
            device_id,
            visited_on: (visited_at + chrono::Duration::hours(8)).date_naive(),
        })
        .collect())
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

async fn write<E>(db: &impl ConnectionTrait, row: Value, is_new: bool) -> Result<(), RowError>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel> + SyncedModel,
    E::ActiveModel: ActiveModelTrait<Entity = E> + ActiveModelBehavior + Send,
{
    let model: E::Model = serde_json::from_value(row).map_err(|err| {
        RowError::Shape(format!(
            "the {} does not fit its table: {err}",
            E::Model::ENTITY
        ))
    })?;
    let active = model.into_active_model().reset_all();
    if is_new {
        active.insert(db).await?;
    } else {
        active.update(db).await?;
    }
    Ok(())
}
