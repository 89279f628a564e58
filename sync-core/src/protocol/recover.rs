//! After a restore: the writes a device made that the server acknowledged
//! and then lost with the rest of the history after its backup
//! (docs/SYNC-PROTOCOL.md, "After a restore").
//!
//! The phone's shadow copy of a record holds every field with the clock of
//! its last write, and a clock names the node (the device) that made it. So
//! the device can tell which of the values it holds are its own writes, and
//! which of those the restored server lacks: it sends them again, each with
//! its original clock, and the server merges them as it merges any late
//! offline edit — same rules, same role checks. Values written by others
//! (a supervisor's decision, the register) are not the device's to replay:
//! they are lost with the server's history and are redone there.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use crate::clock::Hlc;
use crate::protocol::{FieldChange, FieldOp, Op};
use crate::record::{Field, Record};
use crate::rules::{Actor, Writers, rules_for};

/// One write to send again: a mutation without its id (the device gives it
/// one and keeps it in its outbox, so resending it is idempotent).
#[derive(Debug, Clone, PartialEq)]
pub struct LostWrite {
    /// Create when the server lacks the record, else update.
    pub op: Op,
    /// The server's version the write is based on (0 for a create).
    pub base_version: u64,
    /// The latest clock among the fields (the mutation's clock).
    pub hlc: Hlc,
    /// The fields, each with the clock of its original write.
    pub fields: BTreeMap<String, FieldChange>,
}

/// The writes of `device` (acting as `actor`) in `local` that the restored
/// server's copy `server` (`None`: it lacks the record) does not hold.
///
/// - The server holds the record: every register whose local clock is the
///   device's and later than the server's, and every set item likewise,
///   go in updates (one per distinct clock of a set's items, as the protocol
///   gives a set change one clock). A delete the device made is sent again.
/// - The server lacks the record and the device created it (it wrote a
///   field at the record's first version) and its role may create it: one
///   create with every field the role may write on create. A value someone
///   else wrote last (a supervisor's `approved`) is not the device's to
///   send: a required field of that kind takes the first value the role may
///   create it with (`submitted`), at the device's own first clock.
/// - Otherwise nothing: a record someone else created is theirs to redo.
pub fn lost_writes(
    device: Uuid,
    actor: &Actor,
    local: &Record,
    server: Option<&Record>,
) -> Vec<LostWrite> {
    match server {
        Some(server) => lost_updates(device, local, server),
        None => lost_create(device, actor, local).into_iter().collect(),
    }
}

fn lost_updates(device: Uuid, local: &Record, server: &Record) -> Vec<LostWrite> {
    let base_version = server.version;
    let mut registers = BTreeMap::new();
    // (field, clock) -> items, for sets.
    let mut items: BTreeMap<(String, Hlc), Vec<Value>> = BTreeMap::new();
    for (name, field) in &local.fields {
        match (field, server.fields.get(name)) {
            (Field::Register(mine), theirs) if mine.hlc.node == device => {
                let newer = match theirs {
                    Some(Field::Register(theirs)) => mine.hlc > theirs.hlc,
                    _ => true,
                };
                if newer {
                    registers.insert(name.clone(), FieldChange::set(mine.hlc, mine.value.clone()));
                }
            }
            (Field::Items(mine), theirs) => {
                let theirs = match theirs {
                    Some(Field::Items(theirs)) => Some(theirs),
                    _ => None,
                };
                for (key, item) in mine {
                    let newer = theirs
                        .and_then(|theirs| theirs.get(key))
                        .is_none_or(|theirs| item.hlc > theirs.hlc);
                    if item.hlc.node == device && newer {
                        items
                            .entry((name.clone(), item.hlc))
                            .or_default()
                            .push(item.value.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let mut writes = Vec::new();
    // Registers and the latest item group of each set travel together.
    let mut first: BTreeMap<String, FieldChange> = registers;
    let mut later: Vec<(String, Hlc, Vec<Value>)> = Vec::new();
    for ((name, hlc), values) in items.into_iter().rev() {
        match first.entry(name) {
            std::collections::btree_map::Entry::Occupied(taken) => {
                later.push((taken.key().clone(), hlc, values));
            }
            std::collections::btree_map::Entry::Vacant(free) => {
                free.insert(items_change(hlc, values));
            }
        }
    }
    if !first.is_empty() {
        writes.push(update(base_version, first));
    }
    later.sort_by_key(|(_, hlc, _)| *hlc);
    for (name, hlc, values) in later {
        writes.push(update(
            base_version,
            BTreeMap::from([(name, items_change(hlc, values))]),
        ));
    }
    if let Some(tombstone) = &local.tombstone
        && tombstone.hlc.node == device
        && server.tombstone.is_none()
    {
        writes.push(LostWrite {
            op: Op::Delete,
            base_version,
            hlc: tombstone.hlc,
            fields: BTreeMap::new(),
        });
    }
    writes
}

fn lost_create(device: Uuid, actor: &Actor, local: &Record) -> Option<LostWrite> {
    let rules = rules_for(local.entity);
    if local.tombstone.is_some() {
        return None;
    }
    // The device created the record when it wrote one of its fields at the
    // first version; its first clock is the earliest of those.
    let created_at = local
        .fields
        .values()
        .flat_map(field_clocks)
        .filter(|(hlc, version)| hlc.node == device && *version <= 1)
        .map(|(hlc, _)| hlc)
        .min()?;
    let author = rules
        .author_field
        .and_then(|name| local.fields.get(name))
        .and_then(|field| {
            field
                .value()
                .as_str()
                .and_then(|text| Uuid::try_parse(text).ok())
        });
    if rules.create.check(actor, author, None, None).is_err() {
        return None;
    }
    let mut fields = BTreeMap::new();
    for (name, field) in &local.fields {
        let Some(rule) = rules.field(name) else {
            continue;
        };
        let change = match field {
            Field::Register(register) => {
                let to = Some(&register.value);
                if rule.writers.check(actor, author, None, to).is_ok() {
                    Some(FieldChange::set(register.hlc, register.value.clone()))
                } else if rule.required {
                    create_value_before(&rule.writers, actor, register.value.as_str())
                        .map(|value| FieldChange::set(created_at, Value::from(value)))
                } else {
                    None
                }
            }
            Field::Items(items) if rule.writers.check(actor, author, None, None).is_ok() => {
                let latest = items.values().map(|item| item.hlc).max();
                latest.map(|hlc| {
                    items_change(hlc, items.values().map(|item| item.value.clone()).collect())
                })
            }
            Field::Items(_) => None,
        };
        if let Some(change) = change {
            fields.insert(name.clone(), change);
        }
    }
    // A required field the role may not give any value: the server would
    // refuse the create, so it is not sent.
    let complete = rules
        .fields
        .iter()
        .filter(|rule| rule.required)
        .all(|rule| fields.contains_key(rule.name));
    (complete && !fields.is_empty()).then(|| LostWrite {
        op: Op::Create,
        base_version: 0,
        hlc: latest_clock(&fields).unwrap_or(created_at),
        fields,
    })
}

/// The value `actor` may create a transition-ruled field with from which
/// someone moved it to `now` (`submitted`, before `approved`); else the
/// first value it may create it with.
fn create_value_before(
    writers: &Writers,
    actor: &Actor,
    now: Option<&str>,
) -> Option<&'static str> {
    let Writers::Transitions(list) = writers else {
        return None;
    };
    let creatable = || {
        list.iter()
            .filter(|t| t.role == actor.role && t.from.is_none())
            .map(|t| t.to)
    };
    creatable()
        .find(|value| {
            list.iter()
                .any(|t| t.from == Some(*value) && Some(t.to) == now)
        })
        .or_else(|| creatable().next())
}

fn field_clocks(field: &Field) -> Vec<(Hlc, u64)> {
    match field {
        Field::Register(register) => vec![(register.hlc, register.version)],
        Field::Items(items) => items
            .values()
            .map(|item| (item.hlc, item.version))
            .collect(),
    }
}

fn items_change(hlc: Hlc, add: Vec<Value>) -> FieldChange {
    FieldChange {
        hlc,
        op: FieldOp::Items {
            add,
            remove: Vec::new(),
        },
    }
}

fn latest_clock(fields: &BTreeMap<String, FieldChange>) -> Option<Hlc> {
    fields.values().map(|change| change.hlc).max()
}

fn update(base_version: u64, fields: BTreeMap<String, FieldChange>) -> LostWrite {
    LostWrite {
        op: Op::Update,
        base_version,
        hlc: latest_clock(&fields).expect("an update has fields"),
        fields,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::record::{Entity, Item, Register};
    use crate::rules::Role;

    fn hlc(wall_ms: u64, node: Uuid) -> Hlc {
        Hlc {
            wall_ms,
            counter: 0,
            node,
        }
    }

    fn register(value: Value, hlc: Hlc, version: u64) -> Field {
        Field::Register(Register {
            value,
            hlc,
            version,
        })
    }

    struct World {
        phone: Uuid,
        director: Actor,
        supervisor_node: Uuid,
    }

    fn world() -> World {
        World {
            phone: Uuid::from_u128(1),
            director: Actor::new(Uuid::from_u128(10), Role::Director),
            supervisor_node: Uuid::from_u128(2),
        }
    }

    /// A visit the phone created at version 1 (07:00), that a supervisor
    /// then approved with a comment (version 2, 08:00).
    fn approved_visit(w: &World) -> Record {
        let created = hlc(7_000, w.phone);
        let approved = hlc(8_000, w.supervisor_node);
        let author = json!(w.director.user_id);
        Record {
            entity: Entity::Visit,
            id: Uuid::from_u128(99),
            version: 2,
            fields: BTreeMap::from([
                (
                    "child_id".into(),
                    register(json!(Uuid::from_u128(5)), created, 1),
                ),
                ("author_id".into(), register(author, created, 1)),
                (
                    "village_id".into(),
                    register(json!(Uuid::from_u128(6)), created, 1),
                ),
                ("kind".into(), register(json!("home_visit"), created, 1)),
                (
                    "visited_at".into(),
                    register(json!("2026-12-01T10:00:00+08:00"), created, 1),
                ),
                (
                    "review_status".into(),
                    register(json!("approved"), approved, 2),
                ),
                ("review_comment".into(), register(json!("好"), approved, 2)),
                (
                    "needs".into(),
                    Field::Items(BTreeMap::from([(
                        "n1".into(),
                        Item {
                            value: json!({"id": "n1", "area": "study"}),
                            hlc: created,
                            version: 1,
                        },
                    )])),
                ),
            ]),
            tombstone: None,
        }
    }

    #[test]
    fn a_visit_the_server_lost_is_created_again_with_the_phones_own_values() {
        let w = world();
        let visit = approved_visit(&w);
        let writes = lost_writes(w.phone, &w.director, &visit, None);
        assert_eq!(writes.len(), 1, "{writes:?}");
        let create = &writes[0];
        assert_eq!((create.op, create.base_version), (Op::Create, 0));
        // The supervisor's decision is not the phone's to replay: the visit
        // comes back as it was before it, submitted, at the phone's clock.
        assert_eq!(
            create.fields["review_status"],
            FieldChange::set(hlc(7_000, w.phone), json!("submitted"))
        );
        assert!(!create.fields.contains_key("review_comment"));
        for name in [
            "child_id",
            "author_id",
            "village_id",
            "kind",
            "visited_at",
            "needs",
        ] {
            assert!(create.fields.contains_key(name), "{name}");
        }
    }

    #[test]
    fn only_the_phones_own_writes_newer_than_the_servers_are_sent_again() {
        let w = world();
        let mut server = approved_visit(&w);
        server.version = 1;
        server.fields.insert(
            "review_status".into(),
            register(json!("submitted"), hlc(7_000, w.phone), 1),
        );
        server.fields.remove("review_comment");
        let mut local = approved_visit(&w);
        // After the backup the phone changed the follow-up and added a need.
        local.fields.insert(
            "follow_up".into(),
            register(json!("下周再访"), hlc(9_000, w.phone), 3),
        );
        if let Some(Field::Items(needs)) = local.fields.get_mut("needs") {
            needs.insert(
                "n2".into(),
                Item {
                    value: json!({"id": "n2", "area": "health"}),
                    hlc: hlc(9_500, w.phone),
                    version: 3,
                },
            );
        }
        let writes = lost_writes(w.phone, &w.director, &local, Some(&server));
        assert_eq!(writes.len(), 1, "{writes:?}");
        let update = &writes[0];
        assert_eq!((update.op, update.base_version), (Op::Update, 1));
        assert_eq!(
            update.fields.keys().collect::<Vec<_>>(),
            ["follow_up", "needs"],
            "the supervisor's approval and the values the server holds are not sent"
        );
        assert_eq!(
            update.fields["needs"].op,
            FieldOp::Items {
                add: vec![json!({"id": "n2", "area": "health"})],
                remove: vec![]
            }
        );
        assert_eq!(update.hlc, hlc(9_500, w.phone));
    }

    #[test]
    fn a_record_someone_else_created_is_not_the_phones_to_create() {
        let w = world();
        let mut visit = approved_visit(&w);
        for field in visit.fields.values_mut() {
            if let Field::Register(register) = field {
                register.hlc.node = w.supervisor_node;
            }
        }
        if let Some(Field::Items(needs)) = visit.fields.get_mut("needs") {
            for item in needs.values_mut() {
                item.hlc.node = w.supervisor_node;
            }
        }
        assert!(lost_writes(w.phone, &w.director, &visit, None).is_empty());
        // Nor may a director create a child, whoever's clocks it holds.
        visit.entity = Entity::Child;
        assert!(lost_writes(w.supervisor_node, &w.director, &visit, None).is_empty());
    }

    #[test]
    fn a_record_in_step_with_the_server_sends_nothing() {
        let w = world();
        let visit = approved_visit(&w);
        assert!(lost_writes(w.phone, &w.director, &visit, Some(&visit)).is_empty());
    }
}
