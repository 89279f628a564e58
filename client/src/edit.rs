//! The local editing API a phone app calls: record a visit, change fields,
//! add or remove needs and risk flags, delete. Each edit is checked and
//! applied through `sync_core` (so the local copy carries proper clocks and
//! the same rules as the server), and stored together with its outbox entry
//! and the advanced device clock in one SQLite transaction.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sync_core::{
    protocol::{FieldChange, Mutation, Op},
    record::{Entity, Record},
};
use uuid::Uuid;

use crate::{
    local, outbox,
    outbox::Queued,
    store::{self, RecordRow, Store, StoreError},
};

/// A new visit as the director enters it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVisit {
    /// The child visited.
    pub child_id: Uuid,
    /// The child's village.
    pub village_id: Uuid,
    /// `home_visit`, `phone_follow_up`, `school_visit` or `other`.
    pub kind: String,
    /// When the visit happened (RFC 3339 with offset), as the director says.
    pub visited_at: String,
    /// Where it happened.
    pub location: Option<String>,
    /// Observations by area (living, study, psychology, health, safety).
    pub observations: Option<Value>,
    /// `draft` (default) or `submitted`.
    pub review_status: Option<String>,
}

/// One change to a record's fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Set a register field (`Value::Null` clears it).
    Set(String, Value),
    /// Add or replace an item (an object with a string `"id"`) of a set field.
    AddItem(String, Value),
    /// Remove an item of a set field by id.
    RemoveItem(String, String),
}

impl Store {
    /// Records a new visit by the signed-in director; returns its id.
    pub async fn create_visit(&self, visit: NewVisit) -> Result<Uuid, StoreError> {
        let id = Uuid::new_v4();
        let device = self.device_id().await?;
        let author = self.user().await?.ok_or(StoreError::NotSignedIn)?.user_id;
        let mut fields = vec![
            ("child_id", json!(visit.child_id)),
            ("author_id", json!(author)),
            ("device_id", json!(device)),
            ("village_id", json!(visit.village_id)),
            ("kind", json!(visit.kind)),
            ("visited_at", json!(visit.visited_at)),
            (
                "review_status",
                json!(visit.review_status.as_deref().unwrap_or("draft")),
            ),
        ];
        if let Some(l) = visit.location {
            fields.push(("location", json!(l)));
        }
        if let Some(o) = visit.observations {
            fields.push(("observations", o));
        }
        let changes = fields
            .into_iter()
            .map(|(k, v)| Change::Set(k.to_owned(), v))
            .collect();
        self.create(Entity::Visit, id, changes).await?;
        Ok(id)
    }

    /// Creates any record (e.g. a case-plan item) with the given fields.
    pub async fn create(
        &self,
        entity: Entity,
        id: Uuid,
        changes: Vec<Change>,
    ) -> Result<Queued, StoreError> {
        self.edit(entity, id, Op::Create, changes).await
    }

    /// Changes fields of a record.
    pub async fn update(
        &self,
        entity: Entity,
        id: Uuid,
        changes: Vec<Change>,
    ) -> Result<Queued, StoreError> {
        self.edit(entity, id, Op::Update, changes).await
    }

    /// Sets one register field.
    pub async fn set_field(
        &self,
        entity: Entity,
        id: Uuid,
        field: &str,
        value: Value,
    ) -> Result<Queued, StoreError> {
        self.update(entity, id, vec![Change::Set(field.to_owned(), value)])
            .await
    }

    /// Adds (or replaces) an item of a set field (`needs`, `risk_flags`, `photos`).
    pub async fn add_item(
        &self,
        entity: Entity,
        id: Uuid,
        field: &str,
        item: Value,
    ) -> Result<Queued, StoreError> {
        self.update(entity, id, vec![Change::AddItem(field.to_owned(), item)])
            .await
    }

    /// Removes an item of a set field by its id.
    pub async fn remove_item(
        &self,
        entity: Entity,
        id: Uuid,
        field: &str,
        item_id: &str,
    ) -> Result<Queued, StoreError> {
        let change = Change::RemoveItem(field.to_owned(), item_id.to_owned());
        self.update(entity, id, vec![change]).await
    }

    /// Deletes a record (a tombstone; the server decides delete versus edit).
    pub async fn delete(&self, entity: Entity, id: Uuid) -> Result<Queued, StoreError> {
        self.edit(entity, id, Op::Delete, Vec::new()).await
    }

    /// Applies one local edit and queues its mutation, atomically.
    async fn edit(
        &self,
        entity: Entity,
        id: Uuid,
        op: Op,
        changes: Vec<Change>,
    ) -> Result<Queued, StoreError> {
        let now = self.now_ms();
        let mut tx = self.pool.begin().await?;
        let actor = store::user(&mut tx).await?.ok_or(StoreError::NotSignedIn)?;
        let row = store::load_row(&mut tx, entity, id).await?;
        if op != Op::Create && row.is_none() {
            return Err(StoreError::NotFound { entity, id });
        }
        let mut clock = store::load_clock(&mut tx).await?;
        let hlc = clock.tick(now);
        let base_version = row.as_ref().map_or(0, |r| r.base_version);
        let mutation = Mutation {
            mutation_id: Uuid::now_v7(),
            entity,
            record_id: id,
            op,
            base_version,
            hlc,
            fields: to_fields(hlc, changes),
        };
        let current = row.as_ref().map(|r| &r.local);
        if op == Op::Update && current.is_some_and(Record::is_deleted) {
            return Err(StoreError::Refused {
                reason: "record_deleted".into(),
                message: "the record was deleted on this device".into(),
            });
        }
        let outcome = local::apply_local(current, &mutation, &actor);
        if let Some((reason, message)) = local::refused(&outcome) {
            return Err(StoreError::Refused { reason, message });
        }
        let view = outcome
            .record
            .ok_or_else(|| store::corrupt("a local edit produced no record"))?
            .into_owned();
        let queued = outbox::enqueue(&mut tx, &mutation).await?;
        let shadow = row.and_then(|r| r.shadow);
        if queued == Queued::Cancelled && shadow.is_none() {
            store::delete_row(&mut tx, entity, id).await?;
        } else {
            let row = RecordRow {
                shadow,
                local: view,
                base_version,
            };
            store::save_row(&mut tx, &row).await?;
        }
        store::save_clock(&mut tx, &clock).await?;
        tx.commit().await?;
        Ok(queued)
    }
}

/// Turns changes into wire field changes, all stamped with `hlc`; several
/// item changes to one set field become one add/remove change.
fn to_fields(hlc: sync_core::clock::Hlc, changes: Vec<Change>) -> BTreeMap<String, FieldChange> {
    let mut fields: BTreeMap<String, FieldChange> = BTreeMap::new();
    for change in changes {
        let (name, add, remove) = match change {
            Change::Set(name, value) => {
                fields.insert(name, FieldChange::set(hlc, value));
                continue;
            }
            Change::AddItem(name, item) => (name, vec![item], Vec::new()),
            Change::RemoveItem(name, id) => (name, Vec::new(), vec![id]),
        };
        let later = FieldChange::items(hlc, add, remove);
        let merged = match fields.remove(&name) {
            Some(earlier) => {
                let as_mutation = |f: FieldChange| Mutation {
                    mutation_id: Uuid::nil(),
                    entity: Entity::Visit,
                    record_id: Uuid::nil(),
                    op: Op::Update,
                    base_version: 0,
                    hlc,
                    fields: BTreeMap::from([(name.clone(), f)]),
                };
                match local::fold(&as_mutation(earlier), &as_mutation(later.clone())) {
                    local::Folded::One(mut m) => m.fields.remove(&name).unwrap_or(later),
                    local::Folded::Nothing => later,
                }
            }
            None => later,
        };
        fields.insert(name, merged);
    }
    fields
}
