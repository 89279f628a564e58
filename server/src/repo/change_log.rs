//! The change log: one row per change to a synced record in a scope, in
//! server-sequence order, which pulls page through.
//!
//! **Gap-free order.** [`append`] first takes the `change_log` row of
//! `sync_locks` (an `UPDATE`, so the row stays locked until the transaction
//! ends), then inserts. Appending transactions therefore commit in the order
//! they got their sequence numbers, and a reader can never see sequence
//! `n + 1` while `n` is still uncommitted — the case where a cursor would
//! skip a change. Call it last in a transaction: the lock is held until
//! commit.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};
use sync_core::record::Entity;
use uuid::Uuid;

use crate::entity::{change_log, sync_lock};

/// Where a record sits: the village (absent once the child has exited),
/// the town and the district.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    pub village: Option<Uuid>,
    pub town: Option<Uuid>,
    pub district: Option<Uuid>,
}

/// Which scope column a pull filters on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeColumn {
    Village(Uuid),
    Town(Uuid),
    District(Uuid),
}

/// A change to append.
#[derive(Clone, Debug)]
pub enum NewChange {
    /// The record (at `version`) is in every scope of `placement`.
    Upsert {
        entity: Entity,
        record_id: Uuid,
        version: i64,
        placement: Placement,
    },
    /// The record left one scope.
    Purge {
        entity: Entity,
        record_id: Uuid,
        version: i64,
        scope: ScopeColumn,
    },
}

/// Appends changes in order, holding the change-log writer lock until the
/// caller's transaction ends (see the module doc).
pub async fn append(
    db: &impl ConnectionTrait,
    changes: Vec<NewChange>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if changes.is_empty() {
        return Ok(());
    }
    sync_lock::Entity::update_many()
        .col_expr(
            sync_lock::Column::Taken,
            Expr::col(sync_lock::Column::Taken).add(1),
        )
        .filter(sync_lock::Column::Name.eq("change_log"))
        .exec(db)
        .await?;
    let mut units = std::collections::BTreeSet::new();
    let rows: Vec<change_log::ActiveModel> = changes
        .into_iter()
        .map(|change| {
            let (entity, record_id, version, op, placement) = match change {
                NewChange::Upsert {
                    entity,
                    record_id,
                    version,
                    placement,
                } => (entity, record_id, version, "upsert", placement),
                NewChange::Purge {
                    entity,
                    record_id,
                    version,
                    scope,
                } => {
                    let mut placement = Placement::default();
                    match scope {
                        ScopeColumn::Village(id) => placement.village = Some(id),
                        ScopeColumn::Town(id) => placement.town = Some(id),
                        ScopeColumn::District(id) => placement.district = Some(id),
                    }
                    (entity, record_id, version, "purge", placement)
                }
            };
            units.extend(
                [placement.village, placement.town, placement.district]
                    .into_iter()
                    .flatten(),
            );
            change_log::ActiveModel {
                seq: NotSet,
                entity: Set(entity.as_str().to_owned()),
                record_id: Set(record_id),
                version: Set(version),
                op: Set(op.to_owned()),
                village_id: Set(placement.village),
                town_id: Set(placement.town),
                district_id: Set(placement.district),
                created_at: Set(now),
            }
        })
        .collect();
    // In order: the rows of one statement take their sequence numbers in
    // the order of its VALUES, and the statements run one after another.
    super::insert_all(db, rows).await?;
    if db.get_database_backend() == DbBackend::Postgres {
        // Delivered at COMMIT to every process listening, never on a
        // rollback (crate::events).
        db.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [
                crate::events::CHANNEL.into(),
                crate::events::Poke::payload(&units).into(),
            ],
        ))
        .await?;
    }
    Ok(())
}

/// The change log's head, and the org units its rows after `after` name
/// (at most 10,000 rows at a time: the rest are read next time).
pub async fn units_after(
    db: &impl ConnectionTrait,
    after: i64,
) -> Result<(i64, std::collections::BTreeSet<Uuid>), DbErr> {
    /// A row's sequence, village, town and district.
    type Units = (i64, Option<Uuid>, Option<Uuid>, Option<Uuid>);
    let rows: Vec<Units> = change_log::Entity::find()
        .select_only()
        .column(change_log::Column::Seq)
        .column(change_log::Column::VillageId)
        .column(change_log::Column::TownId)
        .column(change_log::Column::DistrictId)
        .filter(change_log::Column::Seq.gt(after))
        .order_by_asc(change_log::Column::Seq)
        .limit(10_000)
        .into_tuple()
        .all(db)
        .await?;
    let head = rows.last().map_or(after, |row| row.0);
    let units = rows
        .into_iter()
        .flat_map(|(_, village, town, district)| [village, town, district])
        .flatten()
        .collect();
    Ok((head, units))
}

/// The highest sequence number handed out (0 for an empty log).
pub async fn head(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let head: Option<Option<i64>> = change_log::Entity::find()
        .select_only()
        .column_as(change_log::Column::Seq.max(), "head")
        .into_tuple()
        .one(db)
        .await?;
    Ok(head.flatten().unwrap_or(0))
}

/// Up to `limit` changes in `scope` after sequence `after`, in order; of
/// one entity only when `only` names it.
pub async fn page(
    db: &impl ConnectionTrait,
    scope: ScopeColumn,
    after: i64,
    limit: u64,
    only: Option<Entity>,
) -> Result<Vec<change_log::Model>, DbErr> {
    let mut query = filtered(scope, change_log::Entity::find());
    if let Some(entity) = only {
        query = query.filter(change_log::Column::Entity.eq(entity.as_str()));
    }
    query
        .filter(change_log::Column::Seq.gt(after))
        .order_by_asc(change_log::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// Every `(entity, record_id)` whose latest change in `scope` is an upsert:
/// what a device of that scope holds once it has pulled everything.
pub async fn records_in_scope(
    db: &impl ConnectionTrait,
    scope: ScopeColumn,
) -> Result<Vec<(String, Uuid)>, DbErr> {
    let rows: Vec<(String, Uuid, i64, String)> = filtered(scope, change_log::Entity::find())
        .select_only()
        .column(change_log::Column::Entity)
        .column(change_log::Column::RecordId)
        .column(change_log::Column::Seq)
        .column(change_log::Column::Op)
        .order_by_asc(change_log::Column::Seq)
        .into_tuple()
        .all(db)
        .await?;
    let mut latest = std::collections::HashMap::with_capacity(rows.len());
    for (entity, id, _, op) in rows {
        latest.insert((entity, id), op);
    }
    Ok(latest
        .into_iter()
        .filter(|(_, op)| op == "upsert")
        .map(|(key, _)| key)
        .collect())
}

/// The changes in `scope` after sequence `after` to the given records, in
/// order: `(entity, record_id, op)`. What decides whether a record on a
/// page is still in the scope at the end of the snapshot.
pub async fn later_changes(
    db: &impl ConnectionTrait,
    scope: ScopeColumn,
    after: i64,
    record_ids: Vec<Uuid>,
) -> Result<Vec<(String, Uuid, String)>, DbErr> {
    let mut out = Vec::new();
    for chunk in record_ids.chunks(500) {
        let rows: Vec<(String, Uuid, String, i64)> = filtered(scope, change_log::Entity::find())
            .select_only()
            .column(change_log::Column::Entity)
            .column(change_log::Column::RecordId)
            .column(change_log::Column::Op)
            .column(change_log::Column::Seq)
            .filter(change_log::Column::Seq.gt(after))
            .filter(change_log::Column::RecordId.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        out.extend(rows);
    }
    out.sort_by_key(|row| row.3);
    Ok(out
        .into_iter()
        .map(|(entity, id, op, _)| (entity, id, op))
        .collect())
}

/// `(id, version)` of every live record of `entity` that `scope` holds
/// (its latest change in the scope is an upsert), in one query that the
/// database answers from the change log's scope index and the record
/// table's primary key: what the scope checksum sums.
pub async fn held_versions(
    db: &impl ConnectionTrait,
    scope: ScopeColumn,
    entity: Entity,
) -> Result<Vec<(Uuid, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let param = |n: usize| match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    };
    let (column, scope_id) = match scope {
        ScopeColumn::Village(id) => ("village_id", id),
        ScopeColumn::Town(id) => ("town_id", id),
        ScopeColumn::District(id) => ("district_id", id),
    };
    let table = match entity {
        Entity::Child => "children",
        Entity::Visit => "visits",
        Entity::CasePlanItem => "case_plan_items",
    };
    // SQLite, without statistics, would read the rows of `entity` in the
    // whole log through `(entity, record_id)` for the grouping's order; for
    // a village or a town the unary `+` leaves it the scope's index, which
    // reads only the scope's rows (a village's checksum: 5.5 ms → 0.1 ms in
    // the demo district).
    // A district's rows are most of the log: there `(entity, record_id)`
    // is the cheaper way, and SQLite is left to choose it.
    let entity_term = match (backend, scope) {
        (DbBackend::Sqlite, ScopeColumn::Village(_) | ScopeColumn::Town(_)) => "+entity",
        _ => "entity",
    };
    let sql = format!(
        "SELECT r.id, r.version FROM {table} r \
         JOIN (SELECT record_id, MAX(seq) AS last_seq FROM change_log \
               WHERE {column} = {p1} AND {entity_term} = {p2} GROUP BY record_id) l \
           ON l.record_id = r.id \
         JOIN change_log c ON c.seq = l.last_seq \
         WHERE c.op = 'upsert' AND NOT r.deleted",
        p1 = param(1),
        p2 = param(2),
    );
    let statement =
        Statement::from_sql_and_values(backend, sql, [scope_id.into(), entity.as_str().into()]);
    db.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect()
}

fn filtered(
    scope: ScopeColumn,
    query: sea_orm::Select<change_log::Entity>,
) -> sea_orm::Select<change_log::Entity> {
    match scope {
        ScopeColumn::Village(id) => query.filter(change_log::Column::VillageId.eq(id)),
        ScopeColumn::Town(id) => query.filter(change_log::Column::TownId.eq(id)),
        ScopeColumn::District(id) => query.filter(change_log::Column::DistrictId.eq(id)),
    }
}
