//! Records as the merge sees them: a set of named fields, each a
//! last-writer-wins register (a JSON value with the clock and server version
//! of its last write) or an add-wins set of items keyed by their `"id"`;
//! plus the record's server version and an optional tombstone.
//!
//! Field names are the database column names. [`Record::values`] gives the
//! plain column values; [`Record::split`] / [`Record::join`] separate and
//! rejoin the values and the sync metadata (clocks and versions) so the
//! server can keep the latter in one JSON column.

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::{clock::Hlc, error::SyncError, rules};

/// The kinds of record that sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    /// A child on the register.
    Child,
    /// A visit (home visit, phone follow-up, ...) to a child.
    Visit,
    /// One entry of a child's case plan (needs ledger).
    CasePlanItem,
}

impl Entity {
    /// Every entity, in a fixed order.
    pub const ALL: [Entity; 3] = [Entity::Child, Entity::Visit, Entity::CasePlanItem];

    /// The wire name (`child`, `visit`, `case_plan_item`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Entity::Child => "child",
            Entity::Visit => "visit",
            Entity::CasePlanItem => "case_plan_item",
        }
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A last-writer-wins register: one value and the write that set it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Register {
    /// The value (JSON `null` when cleared).
    pub value: Value,
    /// Clock of the write that set it.
    pub hlc: Hlc,
    /// Server version of the record when it was set.
    pub version: u64,
}

/// One item of an add-wins set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// The item (a JSON object whose `"id"` is its key).
    pub value: Value,
    /// Clock of the write that last added or changed it.
    pub hlc: Hlc,
    /// Server version of the record when it was last added or changed.
    pub version: u64,
}

/// The state of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    /// A last-writer-wins register.
    Register(Register),
    /// An add-wins set of items keyed by id.
    Items(BTreeMap<String, Item>),
}

impl Field {
    /// The plain column value: the register's value, or the set's items as
    /// an array ordered by id.
    pub fn value(&self) -> Value {
        match self {
            Field::Register(r) => r.value.clone(),
            Field::Items(items) => Value::Array(items.values().map(|i| i.value.clone()).collect()),
        }
    }
}

/// A record's deletion marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Clock of the delete.
    pub hlc: Hlc,
    /// Server version of the record when it was deleted.
    pub version: u64,
}

/// A record with per-field clocks, as stored by the server and the phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Which entity.
    pub entity: Entity,
    /// The record id (made by the device that created it).
    pub id: Uuid,
    /// Server version; increases by one with every change. 0 = never stored.
    pub version: u64,
    /// Field states by field (column) name.
    pub fields: BTreeMap<String, Field>,
    /// Set when the record is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstone: Option<Tombstone>,
}

/// The sync metadata of one field, without its value (see [`Record::split`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldMeta {
    /// Clock and version of a register.
    Register {
        /// Clock of the last write.
        hlc: Hlc,
        /// Version of the last write.
        version: u64,
    },
    /// Clock and version per item id of an add-wins set.
    Items {
        /// Per item id: clock and version.
        items: BTreeMap<String, (Hlc, u64)>,
    },
}

/// The sync metadata of a record, kept by the server next to the column values.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RecordMeta {
    /// Per field name.
    pub fields: BTreeMap<String, FieldMeta>,
    /// The tombstone, if deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tombstone: Option<Tombstone>,
}

impl Record {
    /// An empty, never-stored record.
    pub fn empty(entity: Entity, id: Uuid) -> Self {
        Self {
            entity,
            id,
            version: 0,
            fields: BTreeMap::new(),
            tombstone: None,
        }
    }

    /// True when the record carries a tombstone.
    pub fn is_deleted(&self) -> bool {
        self.tombstone.is_some()
    }

    /// A register's value or `None` when absent (sets give their array).
    pub fn get(&self, field: &str) -> Option<Value> {
        self.fields.get(field).map(Field::value)
    }

    /// A register's value as a string slice, when it is a JSON string.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        match self.fields.get(field) {
            Some(Field::Register(r)) => r.value.as_str(),
            _ => None,
        }
    }

    /// The plain column values (sets as arrays ordered by item id).
    pub fn values(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(k, f)| (k.clone(), f.value()))
            .collect()
    }

    /// The content that must be equal on every replica once they converge:
    /// field values with their clocks, and the tombstone's clock. Server
    /// versions are left out, since they depend on arrival order.
    pub fn content(&self) -> (BTreeMap<String, Value>, Option<Hlc>) {
        let fields = self
            .fields
            .iter()
            .map(|(k, f)| {
                let v = match f {
                    Field::Register(r) => serde_json::json!([r.value, r.hlc]),
                    Field::Items(items) => Value::Array(
                        items
                            .values()
                            .map(|i| serde_json::json!([i.value, i.hlc]))
                            .collect(),
                    ),
                };
                (k.clone(), v)
            })
            .collect();
        (fields, self.tombstone.map(|t| t.hlc))
    }

    /// Splits into column values and sync metadata.
    pub fn split(&self) -> (Map<String, Value>, RecordMeta) {
        let fields = self
            .fields
            .iter()
            .map(|(k, f)| {
                let meta = match f {
                    Field::Register(r) => FieldMeta::Register {
                        hlc: r.hlc,
                        version: r.version,
                    },
                    Field::Items(items) => FieldMeta::Items {
                        items: items
                            .iter()
                            .map(|(id, i)| (id.clone(), (i.hlc, i.version)))
                            .collect(),
                    },
                };
                (k.clone(), meta)
            })
            .collect();
        (
            self.values(),
            RecordMeta {
                fields,
                tombstone: self.tombstone,
            },
        )
    }

    /// Rebuilds a record from column values and metadata, taking the values
    /// over rather than copying them. Columns without metadata (e.g. NULL
    /// columns never written) are skipped; a set item without metadata gets
    /// the field's oldest possible clock.
    pub fn join(
        entity: Entity,
        id: Uuid,
        version: u64,
        mut values: Map<String, Value>,
        meta: &RecordMeta,
    ) -> Result<Self, SyncError> {
        let rules = rules::rules_for(entity);
        let mut fields = BTreeMap::new();
        for (name, fmeta) in &meta.fields {
            let rule = rules.field(name).ok_or_else(|| SyncError::UnknownField {
                entity,
                field: name.clone(),
            })?;
            let value = values.remove(name).unwrap_or(Value::Null);
            let field = match (fmeta, rule.kind.is_set()) {
                (FieldMeta::Register { hlc, version }, false) => Field::Register(Register {
                    value,
                    hlc: *hlc,
                    version: *version,
                }),
                (FieldMeta::Items { items: metas }, true) => {
                    let bad = |why: &str| SyncError::InvalidValue {
                        entity,
                        field: name.clone(),
                        why: why.to_owned(),
                    };
                    let arr = match value {
                        Value::Array(a) => a,
                        Value::Null => Vec::new(),
                        _ => return Err(bad("a set column must hold an array")),
                    };
                    let mut items = BTreeMap::new();
                    for item in arr {
                        let key = item_id(&item).ok_or_else(|| bad("item without string id"))?;
                        let (hlc, version) = metas.get(key).copied().unwrap_or((Hlc::ZERO, 0));
                        items.insert(
                            key.to_owned(),
                            Item {
                                value: item,
                                hlc,
                                version,
                            },
                        );
                    }
                    Field::Items(items)
                }
                _ => {
                    return Err(SyncError::InvalidValue {
                        entity,
                        field: name.clone(),
                        why: "metadata kind does not match the field rule".into(),
                    });
                }
            };
            fields.insert(name.clone(), field);
        }
        Ok(Self {
            entity,
            id,
            version,
            fields,
            tombstone: meta.tombstone,
        })
    }
}

impl Record {
    /// A record whose every field was written by one write at `hlc` and
    /// server `version` — how rows that did not come through a merge (an
    /// import, the demo district) get their sync metadata. Fields the
    /// entity's rules do not know are refused; a set field must hold an array
    /// of items with string ids.
    pub fn written_at(
        entity: Entity,
        id: Uuid,
        version: u64,
        values: &Map<String, Value>,
        hlc: Hlc,
    ) -> Result<Self, SyncError> {
        let rules = rules::rules_for(entity);
        let mut fields = BTreeMap::new();
        for (name, value) in values {
            let rule = rules.field(name).ok_or_else(|| SyncError::UnknownField {
                entity,
                field: name.clone(),
            })?;
            let field = if rule.kind.is_set() {
                let bad = |why: &str| SyncError::InvalidValue {
                    entity,
                    field: name.clone(),
                    why: why.to_owned(),
                };
                let items = match value {
                    Value::Array(items) => items.as_slice(),
                    Value::Null => &[],
                    _ => return Err(bad("a set column must hold an array")),
                };
                let mut set = BTreeMap::new();
                for item in items {
                    let key = item_id(item).ok_or_else(|| bad("item without string id"))?;
                    set.insert(
                        key.to_owned(),
                        Item {
                            value: item.clone(),
                            hlc,
                            version,
                        },
                    );
                }
                Field::Items(set)
            } else {
                Field::Register(Register {
                    value: value.clone(),
                    hlc,
                    version,
                })
            };
            fields.insert(name.clone(), field);
        }
        Ok(Self {
            entity,
            id,
            version,
            fields,
            tombstone: None,
        })
    }
}

/// The `"id"` of a set item, if it is an object with a string id.
pub fn item_id(item: &Value) -> Option<&str> {
    item.as_object()?.get("id")?.as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_record_written_at_once_splits_and_joins_back_unchanged() {
        let hlc = Hlc::new(1_750_000_000_000, 0, Uuid::nil());
        let values: Map<String, Value> = json!({
            "kind": "home_visit",
            "needs": [{"id": "n1", "area": "study", "description": "辅导"}],
            "follow_up": null,
        })
        .as_object()
        .cloned()
        .unwrap_or_default();
        let id = Uuid::from_u128(7);
        let record = Record::written_at(Entity::Visit, id, 1, &values, hlc).unwrap();
        assert_eq!(record.values(), values);
        let (columns, meta) = record.split();
        assert_eq!(
            Record::join(Entity::Visit, id, 1, columns, &meta).unwrap(),
            record
        );
        match &record.fields["needs"] {
            Field::Items(items) => assert_eq!(items["n1"].hlc, hlc),
            other => panic!("needs must be a set, got {other:?}"),
        }
    }

    #[test]
    fn written_at_refuses_fields_the_rules_do_not_know() {
        let values = json!({"nickname": "x"})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let result = Record::written_at(Entity::Child, Uuid::nil(), 1, &values, Hlc::ZERO);
        assert!(matches!(result, Err(SyncError::UnknownField { .. })));
    }
}
