//! The RxDB document of a Seedling record, and the one mutation a pushed
//! RxDB row stands for. Pure: no I/O, no clock reads (the arrival clock is
//! passed in), so "same row = same mutation", which is what makes RxDB's
//! resends idempotent.
//!
//! A document is the record's fields as plain JSON values (a set as an
//! array of its items, each with its `id`), plus `id` (the primary key),
//! `server_version` (the server version, the base of the next edit),
//! `field_clocks` (field → the HLC text of its last write; for a set, the
//! latest clock of its items) and `_deleted`; a purge notice is
//! `{id, _deleted: true, purged: "left_scope"}`. RxDB's schemas refuse
//! top-level names that start with an underscore other than `_deleted`,
//! hence the names.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sync_core::clock::Hlc;
use sync_core::merge::Reason;
use sync_core::protocol::{FieldChange, FieldOp, Mutation, Op, Purge, PurgeReason};
use sync_core::record::{Entity, Field, Record, item_id};
use sync_core::rules::{FieldKind, rules_for};
use uuid::Uuid;

/// The namespace of the mutation ids made for RxDB rows (a fixed UUID, so
/// every server process makes the same id for the same row).
const MUTATION_NAMESPACE: Uuid = Uuid::from_u128(0x5eed_1e55_4d8b_5a0e_9c1d_0000_0000_0001);

/// Keys a document carries that are not record fields.
const VERSION: &str = "server_version";
const CLOCKS: &str = "field_clocks";
const DELETED: &str = "_deleted";
const PURGED: &str = "purged";

/// Why a row could not be read as a mutation (answered 422: a client bug).
#[derive(Debug, PartialEq, Eq)]
pub struct BadRow(pub String);

/// A record as an RxDB document.
pub fn to_document(record: &Record) -> Value {
    let mut doc = Map::new();
    doc.insert("id".to_owned(), Value::String(record.id.to_string()));
    let mut clocks = Map::new();
    for (name, field) in &record.fields {
        doc.insert(name.clone(), field.value());
        let latest = match field {
            Field::Register(register) => Some(register.hlc),
            Field::Items(items) => items.values().map(|item| item.hlc).max(),
        };
        if let Some(hlc) = latest {
            clocks.insert(name.clone(), Value::String(hlc.to_string()));
        }
    }
    doc.insert(VERSION.to_owned(), Value::from(record.version));
    doc.insert(CLOCKS.to_owned(), Value::Object(clocks));
    doc.insert(DELETED.to_owned(), Value::Bool(record.is_deleted()));
    Value::Object(doc)
}

/// A purge notice as an RxDB document: deleted locally, with the reason.
pub fn purge_document(purge: &Purge) -> Value {
    let reason = match purge.reason {
        PurgeReason::LeftScope => "left_scope",
        PurgeReason::Deleted => "deleted",
    };
    serde_json::json!({
        "id": purge.record_id.to_string(),
        DELETED: true,
        PURGED: reason,
    })
}

/// The document of a pushed record the caller's scope does not hold live
/// after the push, deleted on the device: a delete that applied (no
/// `purged`); a create the server refused, with `purged` the refusal's
/// reason (`out_of_scope`, `visit_in_future`, …; what was sent is kept in
/// the server's conflict queue); or a record that applied but has left the
/// scope meanwhile (`left_scope`: a visit to a child transferred away).
pub fn gone_document(id: Uuid, refused: Option<Reason>, deleted: bool) -> Value {
    let mut doc = serde_json::json!({ "id": id.to_string(), DELETED: true });
    match refused {
        Some(reason) => doc[PURGED] = serde_json::to_value(reason).unwrap_or(Value::Null),
        None if !deleted => doc[PURGED] = Value::from("left_scope"),
        None => {}
    }
    doc
}

/// The record id a document names.
pub fn document_id(doc: &Value) -> Result<Uuid, BadRow> {
    doc.get("id")
        .and_then(Value::as_str)
        .and_then(|id| Uuid::try_parse(id).ok())
        .ok_or_else(|| BadRow("a document's `id` must be a UUID".to_owned()))
}

/// The mutation a pushed row stands for, or `None` when the new state
/// changes nothing the server holds (RxDB sends such rows back after it
/// took the server's state). `arrival` stamps a changed field whose clock
/// was not advanced (the app wrote around the clock hook).
pub fn to_mutation(
    entity: Entity,
    device: Uuid,
    assumed: Option<&Value>,
    new: &Value,
    arrival: Hlc,
) -> Result<Option<Mutation>, BadRow> {
    let id = document_id(new)?;
    if let Some(assumed) = assumed
        && document_id(assumed)? != id
    {
        return Err(BadRow(
            "`assumedMasterState` and `newDocumentState` name different records".to_owned(),
        ));
    }
    let is_deleted = |doc: &Value| doc.get(DELETED).and_then(Value::as_bool) == Some(true);
    let base_version = match assumed {
        Some(doc) => doc.get(VERSION).and_then(Value::as_u64).unwrap_or(0),
        None => 0,
    };
    // What the server held as the device saw it: nothing for a record it
    // never had (a create), nothing either for a purge notice.
    let assumed = assumed.filter(|doc| base_version > 0 || !is_deleted(doc));
    let new_clocks = clocks_of(new);
    let old_clocks = assumed.map(clocks_of).unwrap_or_default();
    let clock_for = |field: &str| {
        new_clocks
            .get(field)
            .copied()
            .filter(|hlc| old_clocks.get(field) != Some(hlc))
            .unwrap_or(arrival)
    };
    let latest = new_clocks.values().copied().max().unwrap_or(arrival);

    let (op, fields) = match (assumed, is_deleted(new)) {
        (None, true) => return Ok(None),
        (Some(old), true) if is_deleted(old) => return Ok(None),
        (Some(_), true) => (Op::Delete, BTreeMap::new()),
        (old, false) => {
            let op = if old.is_none() {
                Op::Create
            } else {
                Op::Update
            };
            let empty = Map::new();
            let old_fields = old.and_then(Value::as_object).unwrap_or(&empty);
            let new_fields = new
                .as_object()
                .ok_or_else(|| BadRow("a document must be a JSON object".to_owned()))?;
            let mut fields = BTreeMap::new();
            for name in record_fields(old_fields, new_fields) {
                let before = old_fields.get(name).unwrap_or(&Value::Null);
                let after = new_fields.get(name).unwrap_or(&Value::Null);
                if let Some(change) = field_op(entity, name, before, after)? {
                    fields.insert(
                        name.to_owned(),
                        FieldChange {
                            hlc: clock_for(name),
                            op: change,
                        },
                    );
                }
            }
            if fields.is_empty() {
                return Ok(None);
            }
            (op, fields)
        }
    };
    Ok(Some(Mutation {
        mutation_id: mutation_id(device, id, base_version, new),
        entity,
        record_id: id,
        op,
        base_version,
        hlc: if op == Op::Delete { arrival } else { latest },
        fields,
    }))
}

/// The record field names of either state, sorted, without the
/// document's own keys.
fn record_fields<'a>(old: &'a Map<String, Value>, new: &'a Map<String, Value>) -> Vec<&'a str> {
    let mut names: Vec<&str> = old
        .keys()
        .chain(new.keys())
        .map(String::as_str)
        .filter(|name| !matches!(*name, "id" | VERSION | CLOCKS | PURGED) && !name.starts_with('_'))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The write to one field between two states: a new value for a register,
/// the items added or changed and the ids removed for a set.
fn field_op(
    entity: Entity,
    name: &str,
    before: &Value,
    after: &Value,
) -> Result<Option<FieldOp>, BadRow> {
    let is_set = rules_for(entity)
        .field(name)
        .is_some_and(|rule| rule.kind == FieldKind::AddWinsSet);
    if !is_set {
        return Ok((before != after).then(|| FieldOp::Set(after.clone())));
    }
    let items = |value: &Value| -> Result<BTreeMap<String, Value>, BadRow> {
        match value {
            Value::Null => Ok(BTreeMap::new()),
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item_id(item)
                        .map(|id| (id.to_owned(), item.clone()))
                        .ok_or_else(|| {
                            BadRow(format!("every item of `{name}` needs a string `id`"))
                        })
                })
                .collect(),
            _ => Err(BadRow(format!("`{name}` must be an array of items"))),
        }
    };
    let (before, after) = (items(before)?, items(after)?);
    let add: Vec<Value> = after
        .iter()
        .filter(|(id, item)| before.get(*id) != Some(*item))
        .map(|(_, item)| item.clone())
        .collect();
    let remove: Vec<String> = before
        .keys()
        .filter(|id| !after.contains_key(*id))
        .cloned()
        .collect();
    Ok((!add.is_empty() || !remove.is_empty()).then_some(FieldOp::Items { add, remove }))
}

/// The field clocks a document carries (unreadable ones are left out).
fn clocks_of(doc: &Value) -> BTreeMap<String, Hlc> {
    doc.get(CLOCKS)
        .and_then(Value::as_object)
        .map(|clocks| {
            clocks
                .iter()
                .filter_map(|(name, hlc)| Some((name.clone(), hlc.as_str()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// UUIDv5 over the device, the record, the base version and a hash of the
/// new state in canonical JSON (keys sorted): RxDB sends a row again until
/// it has an answer, and the same row must name the same mutation so the
/// server answers it from the stored outcome.
pub fn mutation_id(device: Uuid, record: Uuid, base_version: u64, new: &Value) -> Uuid {
    let mut name = Vec::with_capacity(72);
    name.extend_from_slice(device.as_bytes());
    name.extend_from_slice(record.as_bytes());
    name.extend_from_slice(&base_version.to_le_bytes());
    name.extend_from_slice(&Sha256::digest(canonical(new).as_bytes()));
    Uuid::new_v5(&MUTATION_NAMESPACE, &name)
}

/// JSON text with object keys sorted at every level.
fn canonical(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let ordered: BTreeMap<&String, Value> =
                    map.iter().map(|(k, v)| (k, sorted(v))).collect();
                Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DEVICE: Uuid = Uuid::from_u128(0x0f8e_6a52_3f6e_4c1e_9d55_4c7a_2b1d_9e01);
    const RECORD: &str = "3d6f0f5c-1b2a-4c3d-9e8f-7a6b5c4d3e2f";

    fn hlc(ms: u64) -> Hlc {
        Hlc::new(ms, 0, DEVICE)
    }

    fn master() -> Value {
        json!({
            "id": RECORD, "server_version": 4, "_deleted": false,
            "location": "home", "kind": "home_visit",
            "needs": [{"id": "n1", "area": "living"}],
            "field_clocks": {"location": hlc(100).to_string(), "kind": hlc(100).to_string(),
                             "needs": hlc(100).to_string()},
        })
    }

    #[test]
    fn an_edit_becomes_an_update_of_the_changed_fields_on_the_assumed_version() {
        let mut new = master();
        new["location"] = json!("school");
        new["needs"] = json!([{"id": "n2", "area": "study"}]);
        new["field_clocks"]["location"] = json!(hlc(300).to_string());
        new["field_clocks"]["needs"] = json!(hlc(300).to_string());
        let mutation = to_mutation(Entity::Visit, DEVICE, Some(&master()), &new, hlc(999))
            .unwrap()
            .unwrap();
        assert_eq!(mutation.op, Op::Update);
        assert_eq!(mutation.base_version, 4);
        assert_eq!(mutation.fields.len(), 2, "{:?}", mutation.fields);
        assert_eq!(mutation.fields["location"].hlc, hlc(300));
        assert_eq!(
            mutation.fields["needs"].op,
            FieldOp::Items {
                add: vec![json!({"id": "n2", "area": "study"})],
                remove: vec!["n1".to_owned()],
            }
        );
    }

    #[test]
    fn the_same_row_names_the_same_mutation_and_another_state_another() {
        let mut new = master();
        new["location"] = json!("school");
        let one = to_mutation(Entity::Visit, DEVICE, Some(&master()), &new, hlc(1)).unwrap();
        let again = to_mutation(Entity::Visit, DEVICE, Some(&master()), &new, hlc(2)).unwrap();
        assert_eq!(one.unwrap().mutation_id, again.unwrap().mutation_id);
        new["location"] = json!("clinic");
        let other = to_mutation(Entity::Visit, DEVICE, Some(&master()), &new, hlc(1)).unwrap();
        assert_ne!(
            other.unwrap().mutation_id,
            mutation_id(DEVICE, document_id(&master()).unwrap(), 4, &master())
        );
    }

    #[test]
    fn a_field_changed_without_a_new_clock_is_stamped_at_arrival() {
        let mut new = master();
        new["location"] = json!("school");
        let mutation = to_mutation(Entity::Visit, DEVICE, Some(&master()), &new, hlc(999))
            .unwrap()
            .unwrap();
        assert_eq!(mutation.fields["location"].hlc, hlc(999));
    }

    #[test]
    fn the_server_state_sent_back_unchanged_is_no_mutation() {
        let none = to_mutation(Entity::Visit, DEVICE, Some(&master()), &master(), hlc(1));
        assert_eq!(none.unwrap(), None);
    }

    #[test]
    fn a_new_document_is_a_create_and_a_deleted_one_a_delete() {
        let created = to_mutation(Entity::Visit, DEVICE, None, &master(), hlc(1))
            .unwrap()
            .unwrap();
        assert_eq!((created.op, created.base_version), (Op::Create, 0));
        assert_eq!(created.fields.len(), 3);
        let mut gone = master();
        gone["_deleted"] = json!(true);
        let deleted = to_mutation(Entity::Visit, DEVICE, Some(&master()), &gone, hlc(1))
            .unwrap()
            .unwrap();
        assert_eq!((deleted.op, deleted.base_version), (Op::Delete, 4));
        assert_eq!(
            to_mutation(Entity::Visit, DEVICE, None, &gone, hlc(1)).unwrap(),
            None
        );
    }

    #[test]
    fn documents_carry_values_version_clocks_and_the_tombstone() {
        let mut record = Record::empty(Entity::Visit, Uuid::try_parse(RECORD).unwrap());
        record.version = 6;
        record.fields.insert(
            "location".to_owned(),
            Field::Register(sync_core::record::Register {
                value: json!("home"),
                hlc: hlc(500),
                version: 6,
            }),
        );
        let doc = to_document(&record);
        assert_eq!(doc["location"], json!("home"));
        assert_eq!(doc["server_version"], json!(6));
        assert_eq!(doc["field_clocks"]["location"], json!(hlc(500).to_string()));
        assert_eq!(doc["_deleted"], json!(false));
    }
}
