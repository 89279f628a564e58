//! Rows of the synced tables (`children`, `visits`, `case_plan_items`) as
//! `sync-core` records, and back.
//!
//! A row holds the field values as columns and the sync metadata (per-field
//! clocks and versions, the tombstone) as JSON in `field_clocks`; the field
//! names are the column names, as `sync_core::rules` declares them.

use chrono::{DateTime, Utc};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sync_core::clock::Hlc;
use sync_core::record::{Entity, Record, RecordMeta};
use sync_core::rules::rules_for;
use uuid::Uuid;

use crate::entity::{case_plan_item, child, visit};

/// A model of a synced table.
pub trait SyncedModel: Serialize {
    const ENTITY: Entity;
    fn id(&self) -> Uuid;
    fn version(&self) -> i64;
    fn field_clocks(&self) -> &Value;
    fn field_clocks_mut(&mut self) -> &mut Value;
    fn created_at(&self) -> DateTime<Utc>;
    fn updated_at(&self) -> DateTime<Utc>;
    /// The child the row belongs to (the row itself for a child).
    fn child_id(&self) -> Uuid;
    /// Who reviewed it and when (visits only).
    fn reviewed(&self) -> (Option<Uuid>, Option<DateTime<Utc>>) {
        (None, None)
    }
}

/// A synced table, with the columns that queries by entity need.
pub trait SyncedTable: EntityTrait<Model: SyncedModel> {
    const ID: Self::Column;
    const VERSION: Self::Column;
    const DELETED: Self::Column;
}

macro_rules! synced_table {
    ($module:ident, $entity:expr, child_id: |$row:ident| $child:expr $(, reviewed: |$r:ident| $reviewed:expr)?) => {
        impl SyncedModel for $module::Model {
            const ENTITY: Entity = $entity;
            fn id(&self) -> Uuid {
                self.id
            }
            fn version(&self) -> i64 {
                self.version
            }
            fn field_clocks(&self) -> &Value {
                &self.field_clocks
            }
            fn field_clocks_mut(&mut self) -> &mut Value {
                &mut self.field_clocks
            }
            fn created_at(&self) -> DateTime<Utc> {
                self.created_at
            }
            fn updated_at(&self) -> DateTime<Utc> {
                self.updated_at
            }
            fn child_id(&self) -> Uuid {
                let $row = self;
                $child
            }
            $(fn reviewed(&self) -> (Option<Uuid>, Option<DateTime<Utc>>) {
                let $r = self;
                $reviewed
            })?
        }
        impl SyncedTable for $module::Entity {
            const ID: Self::Column = $module::Column::Id;
            const VERSION: Self::Column = $module::Column::Version;
            const DELETED: Self::Column = $module::Column::Deleted;
        }
    };
}

synced_table!(child, Entity::Child, child_id: |row| row.id);
synced_table!(visit, Entity::Visit, child_id: |row| row.child_id, reviewed: |row| (row.reviewed_by, row.reviewed_at));
synced_table!(case_plan_item, Entity::CasePlanItem, child_id: |row| row.child_id);

/// Why a row could not be read as a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("row {id} of {entity}: {source}")]
    Sync {
        entity: Entity,
        id: Uuid,
        #[source]
        source: sync_core::error::SyncError,
    },
    #[error("row {id} of {entity}: {source}")]
    Json {
        entity: Entity,
        id: Uuid,
        #[source]
        source: serde_json::Error,
    },
}

/// The synced field values of a row: its columns, less those the entity's
/// rules do not sync (ids, versions, timestamps, server bookkeeping).
pub fn values_of<M: SyncedModel>(model: &M) -> Result<Map<String, Value>, RecordError> {
    let rules = rules_for(M::ENTITY);
    match serde_json::to_value(model) {
        Ok(Value::Object(columns)) => Ok(columns
            .into_iter()
            .filter(|(name, _)| rules.field(name).is_some())
            .collect()),
        Ok(_) => unreachable_shape(model),
        Err(source) => Err(RecordError::Json {
            entity: M::ENTITY,
            id: model.id(),
            source,
        }),
    }
}

/// The row as a `sync-core` record (values joined with their metadata).
/// The row is consumed: its metadata is read without a copy, and the
/// column values (serialized once, by `values_of`) move into the record.
pub fn to_record<M: SyncedModel>(mut model: M) -> Result<Record, RecordError> {
    // The metadata is read in place, and left out of the column values it
    // would otherwise be copied into and dropped from.
    let clocks = std::mem::take(model.field_clocks_mut());
    let values = values_of(&model)?;
    let meta = RecordMeta::deserialize(&clocks).map_err(|source| RecordError::Json {
        entity: M::ENTITY,
        id: model.id(),
        source,
    })?;
    let version = u64::try_from(model.version()).unwrap_or(0);
    Record::join(M::ENTITY, model.id(), version, values, &meta).map_err(|source| {
        RecordError::Sync {
            entity: M::ENTITY,
            id: model.id(),
            source,
        }
    })
}

/// The `field_clocks` of a row whose every field was written at once, at
/// `at` by `node` — rows made outside a merge (imports, the demo district).
pub fn written_at<M: SyncedModel>(
    model: &M,
    at: DateTime<Utc>,
    node: Uuid,
) -> Result<Value, RecordError> {
    let hlc = Hlc::new(u64::try_from(at.timestamp_millis()).unwrap_or(0), 0, node);
    let version = u64::try_from(model.version()).unwrap_or(0);
    let record = Record::written_at(M::ENTITY, model.id(), version, &values_of(model)?, hlc)
        .map_err(|source| RecordError::Sync {
            entity: M::ENTITY,
            id: model.id(),
            source,
        })?;
    serde_json::to_value(record.split().1).map_err(|source| RecordError::Json {
        entity: M::ENTITY,
        id: model.id(),
        source,
    })
}

/// Models are structs, so they serialize to objects; anything else is a
/// programming error reported as a JSON error rather than a panic.
fn unreachable_shape<M: SyncedModel, T>(model: &M) -> Result<T, RecordError> {
    Err(RecordError::Json {
        entity: M::ENTITY,
        id: model.id(),
        source: serde::ser::Error::custom("a model must serialize to a JSON object"),
    })
}
