//! Pure helpers for the device's own copy of a record: applying a local
//! mutation through `sync_core::merge` (so every field gets a proper clock),
//! replaying pending mutations on top of a freshly pulled server copy, and
//! folding a new edit into a not-yet-sent mutation of the same record.
//!
//! Server versions are assigned by the server only. Locally the merge would
//! bump them, so every local result is *normalised*: its version and every
//! field's version are capped at the base version the next mutation will
//! carry. A later local edit is then always a fast-forward (the device has
//! seen its own edits), and removing an item the device itself added is
//! honoured.

use std::{borrow::Cow, collections::BTreeMap};

use sync_core::{
    merge::{MergeOutcome, Verdict, merge},
    protocol::{FieldChange, FieldOp, Mutation, Op},
    record::{Field, Record, item_id},
    rules::{Actor, rules_for},
};

/// Caps the record's version and every field and item version at `base`.
pub fn normalise(mut record: Record, base: u64) -> Record {
    record.version = base;
    for field in record.fields.values_mut() {
        match field {
            Field::Register(r) => r.version = r.version.min(base),
            Field::Items(items) => {
                for item in items.values_mut() {
                    item.version = item.version.min(base);
                }
            }
        }
    }
    if let Some(t) = record.tombstone.as_mut() {
        t.version = t.version.min(base);
    }
    record
}

/// Applies a local mutation to the device's current copy. The copy's
/// versions are first capped at the mutation's base, so the merge is a
/// fast-forward; authority, required fields and locks are still checked.
/// Returns the merge outcome with its record normalised.
pub fn apply_local(current: Option<&Record>, m: &Mutation, actor: &Actor) -> MergeOutcome<'static> {
    let rules = rules_for(m.entity);
    let capped = current.map(|r| normalise(r.clone(), m.base_version));
    let mut out = merge(rules, capped.as_ref(), m, actor).into_owned();
    out.record = out
        .record
        .map(|r| Cow::Owned(normalise(r.into_owned(), m.base_version)));
    out
}

/// True when a local outcome must be refused to the user: rejected, or any
/// field refused (the server would refuse it too).
pub fn refused(out: &MergeOutcome) -> Option<(String, String)> {
    match &out.verdict {
        Verdict::Rejected { reason, message } => Some((reason_code(reason), message.clone())),
        _ => out.refusals.first().map(|r| {
            (
                reason_code(&r.reason),
                format!("{}: {}", r.field, r.message),
            )
        }),
    }
}

/// The wire code of a reason (`locked`, `not_author`, ...).
pub fn reason_code<T: serde::Serialize>(reason: &T) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The device's view of a record: the server copy (`shadow`) with the
/// pending mutations replayed on top, in order, the way the server will
/// merge them. A pending mutation the merge would reject is skipped (the
/// server's answer will say why). `base` is the version new edits start
/// from. `None` when there is neither a shadow nor an applicable create.
pub fn rebuild(
    shadow: Option<&Record>,
    pending: &[Mutation],
    actor: &Actor,
    base: u64,
) -> Option<Record> {
    let mut view = shadow.cloned();
    for m in pending {
        let out = merge(rules_for(m.entity), view.as_ref(), m, actor);
        // Unchanged, the record is `view` itself, borrowed.
        if !out.is_rejected() && (out.changed || view.is_none()) {
            view = out.record.map(Cow::into_owned);
        }
    }
    view.map(|r| normalise(r, base))
}

/// What folding a new edit into an unsent mutation gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Folded {
    /// One mutation now carries both edits.
    One(Mutation),
    /// A create followed by a delete: nothing ever needs to reach the server.
    Nothing,
}

/// Folds `later` into `earlier` (an unsent mutation of the same record):
/// register values are replaced, set items combined (an add then a remove
/// of the same id cancels the add), a delete replaces an update and cancels
/// a create. The earlier mutation's id, op and base version are kept.
pub fn fold(earlier: &Mutation, later: &Mutation) -> Folded {
    match (earlier.op, later.op) {
        (Op::Create, Op::Delete) => return Folded::Nothing,
        (_, Op::Delete) => {
            let mut m = earlier.clone();
            m.op = Op::Delete;
            m.hlc = later.hlc;
            m.fields = BTreeMap::new();
            return Folded::One(m);
        }
        _ => {}
    }
    let mut m = earlier.clone();
    m.hlc = later.hlc;
    for (name, change) in &later.fields {
        let combined = match (m.fields.remove(name), &change.op) {
            (
                Some(FieldChange {
                    op: FieldOp::Items { add, remove },
                    ..
                }),
                FieldOp::Items {
                    add: add2,
                    remove: rm2,
                },
            ) => {
                let mut adds: BTreeMap<String, serde_json::Value> = add
                    .into_iter()
                    .filter_map(|v| item_id(&v).map(str::to_owned).map(|k| (k, v)))
                    .collect();
                let mut removes = remove;
                for id in rm2 {
                    adds.remove(id);
                    if !removes.contains(id) {
                        removes.push(id.clone());
                    }
                }
                for v in add2 {
                    if let Some(k) = item_id(v) {
                        removes.retain(|r| r != k);
                        adds.insert(k.to_owned(), v.clone());
                    }
                }
                FieldChange::items(change.hlc, adds.into_values().collect(), removes)
            }
            _ => change.clone(),
        };
        m.fields.insert(name.clone(), combined);
    }
    Folded::One(m)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sync_core::{clock::Hlc, record::Entity, rules::Role};
    use uuid::Uuid;

    use super::*;

    fn hlc(ms: u64) -> Hlc {
        Hlc::new(ms, 0, Uuid::from_u128(0xa))
    }

    fn update(ms: u64, fields: Vec<(&str, FieldChange)>) -> Mutation {
        Mutation {
            mutation_id: Uuid::from_u128(u128::from(ms)),
            entity: Entity::Visit,
            record_id: Uuid::from_u128(0x51),
            op: Op::Update,
            base_version: 3,
            hlc: hlc(ms),
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        }
    }

    #[test]
    fn folding_keeps_the_first_id_and_cancels_an_added_then_removed_item() {
        let a = update(
            1,
            vec![
                ("location", FieldChange::set(hlc(1), json!("home"))),
                (
                    "needs",
                    FieldChange::items(hlc(1), vec![json!({"id": "n1", "area": "study"})], vec![]),
                ),
            ],
        );
        let b = update(
            2,
            vec![
                ("location", FieldChange::set(hlc(2), json!("school"))),
                (
                    "needs",
                    FieldChange::items(hlc(2), vec![], vec!["n1".into(), "n0".into()]),
                ),
            ],
        );
        let Folded::One(m) = fold(&a, &b) else {
            panic!("an update folded into an update is one mutation")
        };
        assert_eq!(m.mutation_id, a.mutation_id);
        assert_eq!(m.base_version, 3);
        assert_eq!(
            m.fields["location"],
            FieldChange::set(hlc(2), json!("school"))
        );
        assert_eq!(
            m.fields["needs"],
            FieldChange::items(hlc(2), vec![], vec!["n1".into(), "n0".into()])
        );
    }

    #[test]
    fn a_create_then_delete_folds_to_nothing_and_an_update_then_delete_to_a_delete() {
        let mut create = update(1, vec![]);
        create.op = Op::Create;
        let mut delete = update(2, vec![]);
        delete.op = Op::Delete;
        assert_eq!(fold(&create, &delete), Folded::Nothing);
        let Folded::One(m) = fold(&update(1, vec![]), &delete) else {
            panic!("an update then a delete is a delete")
        };
        assert_eq!(
            (m.op, m.hlc, m.mutation_id),
            (Op::Delete, hlc(2), Uuid::from_u128(1))
        );
    }

    #[test]
    fn normalise_caps_every_version_at_the_base() {
        let actor = Actor::new(Uuid::from_u128(0xd1), Role::Director);
        let mut create = update(1, vec![]);
        create.op = Op::Create;
        create.base_version = 0;
        for (k, v) in [
            ("child_id", json!(Uuid::from_u128(0xc1))),
            ("author_id", json!(actor.user_id)),
            ("village_id", json!(Uuid::from_u128(0x7100))),
            ("kind", json!("home_visit")),
            ("visited_at", json!("2026-03-02T10:30:00+08:00")),
            ("review_status", json!("draft")),
        ] {
            create.fields.insert(k.into(), FieldChange::set(hlc(1), v));
        }
        let out = apply_local(None, &create, &actor);
        let rec = out.record.expect("a valid create makes a record");
        assert_eq!(rec.version, 0);
        assert!(
            rec.fields
                .values()
                .all(|f| matches!(f, Field::Register(r) if r.version == 0))
        );
        // Adding then removing an item locally works: the device saw its own add.
        let mut add = update(
            2,
            vec![(
                "needs",
                FieldChange::items(hlc(2), vec![json!({"id": "n1", "area": "living"})], vec![]),
            )],
        );
        add.base_version = 0;
        let rec = apply_local(Some(&rec), &add, &actor).record.unwrap();
        let mut rm = update(
            3,
            vec![(
                "needs",
                FieldChange::items(hlc(3), vec![], vec!["n1".into()]),
            )],
        );
        rm.base_version = 0;
        let rec = apply_local(Some(&rec), &rm, &actor).record.unwrap();
        assert_eq!(rec.get("needs"), Some(json!([])));
    }
}
