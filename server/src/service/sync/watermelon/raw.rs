//! The WatermelonDB raw record of a Seedling record, and the one mutation a
//! pushed raw record stands for. Pure: no I/O, no clock reads (the arrival
//! clock is passed in).
//!
//! WatermelonDB columns hold strings, numbers, booleans or null only, so a
//! raw record is the record's fields with every object, place and set
//! (`observations`, `location`, `needs`, `risk_flags`, `photos`) as JSON
//! text, plus `id`, `server_version` (the base of the next edit) and
//! `field_clocks` (JSON text: field → the HLC text of its last write).
//!
//! A pushed raw names what changed in WatermelonDB's own `_changed` (the
//! columns written since the last sync); only those are sent, on the
//! record's `server_version`. A set is sent as the items that differ from
//! the server's copy: add-wins keeps an item someone else added or changed
//! since the base, so diffing against the current copy loses nothing.

use serde_json::{Map, Value, json};
use sync_core::clock::Hlc;
use sync_core::protocol::Mutation;
use sync_core::record::{Entity, Record};
use sync_core::rules::{ValueType, rules_for};
use uuid::Uuid;

use crate::service::sync::rxdb::document::{self, BadRow};

/// Keys of a raw record that are not record fields.
const VERSION: &str = "server_version";
const CLOCKS: &str = "field_clocks";

/// Whether a field travels as JSON text (an object, a place or a set).
fn is_json_column(entity: Entity, field: &str) -> bool {
    rules_for(entity).field(field).is_some_and(|rule| {
        matches!(
            rule.ty,
            ValueType::Object | ValueType::Place | ValueType::Items(_)
        )
    })
}

/// A record as a WatermelonDB raw record (live records only).
pub fn to_raw(record: &Record) -> Value {
    let doc = document::to_document(record);
    let mut raw = Map::new();
    if let Value::Object(fields) = doc {
        for (name, value) in fields {
            match name.as_str() {
                "_deleted" => {}
                CLOCKS => {
                    raw.insert(name, Value::String(value.to_string()));
                }
                "id" | VERSION => {
                    raw.insert(name, value);
                }
                _ if is_json_column(record.entity, &name) && !value.is_null() => {
                    raw.insert(name, Value::String(value.to_string()));
                }
                _ => {
                    raw.insert(name, value);
                }
            }
        }
    }
    Value::Object(raw)
}

/// The record fields a raw record holds, decoded: JSON columns parsed, an
/// empty string in a column that is not free text read as null (what a
/// WatermelonDB column without a value holds), WatermelonDB's own keys and
/// the app's local-only columns (not in the rule table) left out.
fn record_fields(entity: Entity, raw: &Map<String, Value>) -> Result<Map<String, Value>, BadRow> {
    let rules = rules_for(entity);
    let mut fields = Map::new();
    for (name, value) in raw {
        let Some(rule) = rules.field(name) else {
            continue;
        };
        let decoded = match value {
            Value::String(text) if text.is_empty() && rule.ty != ValueType::Text => Value::Null,
            Value::String(text) if is_json_column(entity, name) => serde_json::from_str(text)
                .map_err(|_| BadRow(format!("column `{name}` must hold JSON text")))?,
            other => other.clone(),
        };
        fields.insert(name.clone(), decoded);
    }
    Ok(fields)
}

/// The field clocks a raw record carries (`field_clocks`, JSON text).
fn clocks(raw: &Map<String, Value>) -> Map<String, Value> {
    match raw.get(CLOCKS) {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or_default(),
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    }
}

fn object(raw: &Value) -> Result<&Map<String, Value>, BadRow> {
    raw.as_object()
        .ok_or_else(|| BadRow("a raw record must be a JSON object".to_owned()))
}

/// The record id a raw record names.
pub fn raw_id(raw: &Value) -> Result<Uuid, BadRow> {
    document::document_id(raw)
}

/// The mutation a raw record WatermelonDB pushed as `created` stands for.
pub fn created(
    entity: Entity,
    device: Uuid,
    raw: &Value,
    arrival: Hlc,
) -> Result<Option<Mutation>, BadRow> {
    let id = raw_id(raw)?;
    let raw = object(raw)?;
    let mut doc = record_fields(entity, raw)?;
    doc.insert("id".to_owned(), Value::String(id.to_string()));
    doc.insert(CLOCKS.to_owned(), Value::Object(clocks(raw)));
    document::to_mutation(entity, device, None, &Value::Object(doc), arrival)
}

/// The mutation a raw record WatermelonDB pushed as `updated` stands for:
/// the columns in its `_changed`, on its `server_version`, against
/// `current` (the server's copy in the caller's scope, if it holds one).
/// `None` when the server already holds what was written. The mutation id
/// is a UUIDv5 of the device, the record, the base and what was written
/// (the changed fields with their clocks), so a push sent again after a
/// lost answer is answered from the stored outcome.
pub fn updated(
    entity: Entity,
    device: Uuid,
    raw: &Value,
    current: Option<&Record>,
    arrival: Hlc,
) -> Result<Option<Mutation>, BadRow> {
    let id = raw_id(raw)?;
    let raw = object(raw)?;
    let base = raw.get(VERSION).and_then(Value::as_u64).unwrap_or(0);
    let fields = record_fields(entity, raw)?;
    let raw_clocks = clocks(raw);
    let changed: Vec<&str> = raw
        .get("_changed")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|name| fields.contains_key(*name))
        .collect();
    let mut assumed = match current {
        Some(record) => document::to_document(record),
        None => json!({ "id": id.to_string() }),
    };
    assumed[VERSION] = Value::from(base);
    assumed["_deleted"] = Value::Bool(false);
    let mut new = assumed.clone();
    let mut written = Map::new();
    for name in &changed {
        let value = fields.get(*name).cloned().unwrap_or(Value::Null);
        let clock = raw_clocks.get(*name).cloned().unwrap_or(Value::Null);
        new[*name] = value.clone();
        match &clock {
            Value::Null => {
                if let Some(clocks) = new[CLOCKS].as_object_mut() {
                    clocks.remove(*name);
                }
            }
            clock => {
                if !new[CLOCKS].is_object() {
                    new[CLOCKS] = json!({});
                }
                new[CLOCKS][*name] = clock.clone();
            }
        }
        written.insert((*name).to_owned(), json!([value, clock]));
    }
    let mutation = document::to_mutation(entity, device, Some(&assumed), &new, arrival)?;
    Ok(mutation.map(|mut mutation| {
        mutation.mutation_id =
            document::mutation_id(device, id, base, &json!({ "updated": written }));
        mutation
    }))
}

/// The delete of a record WatermelonDB pushed in `deleted`, on `base` (the
/// `server_version` the app sent) or, when the app could not tell it, on
/// the server's current version. `None` when the caller's scope holds no
/// such record (it was never pushed, or it is gone already).
pub fn deleted(
    entity: Entity,
    device: Uuid,
    id: Uuid,
    base: Option<u64>,
    current: Option<&Record>,
    arrival: Hlc,
) -> Result<Option<Mutation>, BadRow> {
    let Some(record) = current else {
        return Ok(None);
    };
    let base = base.unwrap_or(record.version);
    let mut assumed = document::to_document(record);
    assumed[VERSION] = Value::from(base);
    let mut new = assumed.clone();
    new["_deleted"] = Value::Bool(true);
    let mutation = document::to_mutation(entity, device, Some(&assumed), &new, arrival)?;
    Ok(mutation.map(|mut mutation| {
        mutation.mutation_id = document::mutation_id(device, id, base, &json!("deleted"));
        mutation
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::protocol::{FieldOp, Op};
    use sync_core::record::{Field, Item, Register};

    const DEVICE: Uuid = Uuid::from_u128(0x0f8e_6a52_3f6e_4c1e_9d55_4c7a_2b1d_9e01);
    const RECORD: Uuid = Uuid::from_u128(0x3d6f_0f5c_1b2a_4c3d_9e8f_7a6b_5c4d_3e2f);

    fn hlc(ms: u64) -> Hlc {
        Hlc::new(ms, 0, DEVICE)
    }

    /// A visit at version 4: location "home", one need n1.
    fn server_visit() -> Record {
        let mut record = Record::empty(Entity::Visit, RECORD);
        record.version = 4;
        let register = |value: Value| {
            Field::Register(Register {
                value,
                hlc: hlc(100),
                version: 4,
            })
        };
        record
            .fields
            .insert("location".to_owned(), register(json!("home")));
        record
            .fields
            .insert("kind".to_owned(), register(json!("home_visit")));
        let mut needs = std::collections::BTreeMap::new();
        needs.insert(
            "n1".to_owned(),
            Item {
                value: json!({"id": "n1", "area": "living"}),
                hlc: hlc(100),
                version: 4,
            },
        );
        record
            .fields
            .insert("needs".to_owned(), Field::Items(needs));
        record
    }

    #[test]
    fn a_raw_record_holds_sets_and_places_as_json_text() {
        let raw = to_raw(&server_visit());
        assert_eq!(raw["id"], json!(RECORD.to_string()));
        assert_eq!(raw["server_version"], json!(4));
        assert_eq!(raw["location"], json!("\"home\""));
        assert_eq!(raw["kind"], json!("home_visit"));
        assert_eq!(raw["needs"], json!(r#"[{"area":"living","id":"n1"}]"#));
        let clocks: Value = serde_json::from_str(raw["field_clocks"].as_str().unwrap()).unwrap();
        assert_eq!(clocks["kind"], json!(hlc(100).to_string()));
        assert!(raw.get("_deleted").is_none());
    }

    #[test]
    fn an_update_sends_only_the_changed_columns_on_the_raw_version() {
        let mut raw = to_raw(&server_visit());
        raw["server_version"] = json!(3);
        raw["location"] = json!("\"school\"");
        raw["kind"] = json!("phone_call"); // not in _changed: not sent
        raw["needs"] = json!(r#"[{"id":"n1","area":"living"},{"id":"n2","area":"study"}]"#);
        raw["field_clocks"] = json!(
            json!({"location": hlc(300).to_string(), "needs": hlc(300).to_string()}).to_string()
        );
        raw["_changed"] = json!("location,needs,updated_at");
        raw["_status"] = json!("updated");
        let mutation = updated(Entity::Visit, DEVICE, &raw, Some(&server_visit()), hlc(999))
            .unwrap()
            .unwrap();
        assert_eq!((mutation.op, mutation.base_version), (Op::Update, 3));
        assert_eq!(
            mutation.fields.keys().collect::<Vec<_>>(),
            ["location", "needs"]
        );
        assert_eq!(mutation.fields["location"].hlc, hlc(300));
        assert_eq!(
            mutation.fields["needs"].op,
            FieldOp::Items {
                add: vec![json!({"id": "n2", "area": "study"})],
                remove: vec![],
            }
        );
    }

    #[test]
    fn the_same_write_names_the_same_mutation_whatever_the_server_holds_now() {
        let mut raw = to_raw(&server_visit());
        raw["location"] = json!("\"school\"");
        raw["_changed"] = json!("location");
        let first = updated(Entity::Visit, DEVICE, &raw, Some(&server_visit()), hlc(1))
            .unwrap()
            .unwrap();
        let mut moved_on = server_visit();
        moved_on.version = 5;
        if let Some(Field::Register(kind)) = moved_on.fields.get_mut("kind") {
            kind.value = json!("phone_call");
        }
        let again = updated(Entity::Visit, DEVICE, &raw, Some(&moved_on), hlc(2))
            .unwrap()
            .unwrap();
        assert_eq!(first.mutation_id, again.mutation_id);
        raw["location"] = json!("\"clinic\"");
        let other = updated(Entity::Visit, DEVICE, &raw, Some(&server_visit()), hlc(1))
            .unwrap()
            .unwrap();
        assert_ne!(first.mutation_id, other.mutation_id);
    }

    #[test]
    fn a_write_the_server_already_holds_is_no_mutation() {
        let mut raw = to_raw(&server_visit());
        raw["_changed"] = json!("location");
        assert_eq!(
            updated(Entity::Visit, DEVICE, &raw, Some(&server_visit()), hlc(1)).unwrap(),
            None
        );
    }

    #[test]
    fn a_created_raw_is_a_create_of_its_non_empty_columns() {
        let mut raw = to_raw(&server_visit());
        raw["server_version"] = json!(0);
        raw["follow_up"] = json!("");
        raw["next_planned_date"] = json!("");
        raw["updated_at"] = json!(1_700_000_000_000_u64);
        let mutation = created(Entity::Visit, DEVICE, &raw, hlc(1))
            .unwrap()
            .unwrap();
        assert_eq!((mutation.op, mutation.base_version), (Op::Create, 0));
        assert_eq!(
            mutation.fields.keys().collect::<Vec<_>>(),
            ["follow_up", "kind", "location", "needs"]
        );
        assert_eq!(
            mutation.fields["follow_up"].op,
            FieldOp::Set(json!("")),
            "an empty free text is a value"
        );
    }

    #[test]
    fn bad_json_text_in_a_json_column_is_a_bad_row() {
        let mut raw = to_raw(&server_visit());
        raw["needs"] = json!("[{");
        raw["_changed"] = json!("needs");
        assert!(updated(Entity::Visit, DEVICE, &raw, Some(&server_visit()), hlc(1)).is_err());
    }

    #[test]
    fn a_delete_is_on_the_version_sent_or_else_the_current_one() {
        let known = deleted(
            Entity::Visit,
            DEVICE,
            RECORD,
            Some(2),
            Some(&server_visit()),
            hlc(1),
        )
        .unwrap()
        .unwrap();
        assert_eq!((known.op, known.base_version), (Op::Delete, 2));
        let unknown = deleted(
            Entity::Visit,
            DEVICE,
            RECORD,
            None,
            Some(&server_visit()),
            hlc(1),
        )
        .unwrap()
        .unwrap();
        assert_eq!(unknown.base_version, 4);
        assert_eq!(
            deleted(Entity::Visit, DEVICE, RECORD, Some(2), None, hlc(1)).unwrap(),
            None
        );
    }
}
