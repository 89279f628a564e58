//! Per-field merging of one mutation into a record: authority and value
//! checks, then last-writer-wins registers and add-wins sets.

use std::{borrow::Cow, cmp::Ordering, collections::BTreeMap};

use serde_json::Value;

use super::{Conflict, ConflictKind, Flag, MergeOutcome, Reason, Refusal, Side, Verdict, Winner};
use crate::{
    clock::Hlc,
    protocol::{FieldOp, Mutation, is_urgent_item},
    record::{Entity, Field, Item, Record, Register, item_id},
    rules::{Actor, DeletePolicy, EntityRules, FieldKind, FieldRule, Writers},
};

struct Ctx<'a> {
    actor: &'a Actor,
    author: Option<uuid::Uuid>,
    base: u64,
    version: u64,
    creating: bool,
    urgent: bool,
    conflicts: Vec<Conflict>,
    refusals: Vec<Refusal>,
    /// The fields taken from the device, in the mutation's (name) order.
    written: Vec<(&'static str, Field)>,
}

impl Ctx<'_> {
    fn refuse(&mut self, field: &str, item: Option<&str>, reason: Reason, msg: &str, value: Value) {
        self.refusals.push(Refusal {
            field: field.to_owned(),
            item_id: item.map(str::to_owned),
            reason,
            message: msg.to_owned(),
            value,
        });
    }

    fn took(&mut self, field: &'static str, value: Field) {
        self.written.push((field, value));
    }
}

/// Applies every field of `m` to `rec` and builds the outcome. On a record
/// deleted concurrently, an edit that changes anything is reported as an
/// edit-versus-delete conflict and, under [`DeletePolicy::EditWins`],
/// brings the record back; an edit that changes nothing leaves it deleted,
/// so the result does not depend on arrival order.
///
/// Every field is decided against `before` (a mutation names each field
/// once), and the taken ones are kept aside; the record afterwards is built
/// once at the end from those and the stored fields nobody wrote. A merge
/// that changes nothing (every concurrent write lost, or every field
/// refused) hands `before` back borrowed, and a written value's stored
/// predecessor is never copied.
pub(super) fn apply<'a>(
    rules: &EntityRules,
    before: Option<&'a Record>,
    m: &Mutation,
    actor: &Actor,
    author: Option<uuid::Uuid>,
) -> MergeOutcome<'a> {
    let creating = before.is_none();
    let mut cx = Ctx {
        actor,
        author,
        base: m.base_version,
        version: before.map_or(0, |b| b.version) + 1,
        creating,
        urgent: false,
        conflicts: Vec::new(),
        refusals: Vec::new(),
        written: Vec::new(),
    };
    for (name, change) in &m.fields {
        let Some(rule) = rules.field(name) else {
            cx.refuse(
                name,
                None,
                Reason::UnknownField,
                "no such field",
                op_value(&change.op),
            );
            continue;
        };
        match (rule.kind.is_set(), &change.op) {
            (false, FieldOp::Set(v)) => register(&mut cx, before, rule, change.hlc, v),
            (true, FieldOp::Items { add, remove }) => {
                items(&mut cx, before, rule, change.hlc, add, remove);
            }
            (true, FieldOp::Set(Value::Array(add))) => {
                items(&mut cx, before, rule, change.hlc, add, &[])
            }
            (true, op @ FieldOp::Set(_)) | (false, op @ FieldOp::Items { .. }) => {
                let msg = if rule.kind.is_set() {
                    "a set field takes add/remove"
                } else {
                    "a register field takes a value"
                };
                cx.refuse(name, None, Reason::WrongFieldKind, msg, op_value(op));
            }
        }
    }
    let changed = !cx.written.is_empty();
    let mut tombstone = before.and_then(|b| b.tombstone);
    if let Some(t) = tombstone
        && changed
    {
        let winner = match rules.delete_policy {
            DeletePolicy::EditWins => {
                tombstone = None;
                Winner::Client
            }
            DeletePolicy::DeleteWins => Winner::Server,
        };
        cx.conflicts.insert(
            0,
            Conflict {
                field: None,
                item_id: None,
                kind: ConflictKind::EditVsDelete,
                rule: None,
                server: Side {
                    value: Value::Null,
                    hlc: t.hlc,
                },
                client: Side {
                    value: serde_json::to_value(&m.fields).unwrap_or(Value::Null),
                    hlc: m.hlc,
                },
                winner,
            },
        );
    }
    let written = std::mem::take(&mut cx.written);
    let applied = written.iter().map(|(name, _)| (*name).to_owned()).collect();
    let rec = match before {
        Some(b) if !changed => Cow::Borrowed(b),
        _ => Cow::Owned(Record {
            entity: m.entity,
            id: m.record_id,
            version: if changed { cx.version } else { 0 },
            fields: with_written(before, written),
            tombstone,
        }),
    };
    let all_refused = !m.fields.is_empty()
        && cx.refusals.len() >= m.fields.len()
        && cx.conflicts.is_empty()
        && !changed;
    let verdict = if all_refused {
        let first = &cx.refusals[0];
        Verdict::Rejected {
            reason: first.reason,
            message: format!("{}: {}", first.field, first.message),
        }
    } else if cx.conflicts.is_empty() && cx.refusals.is_empty() {
        Verdict::Applied
    } else {
        Verdict::Merged
    };
    let mut out = MergeOutcome {
        verdict,
        // Borrowed means unchanged: nothing was written.
        record: Some(rec),
        changed,
        applied,
        conflicts: cx.conflicts,
        refusals: cx.refusals,
        flags: Vec::new(),
        amendment: None,
    };
    if creating && all_refused {
        out.record = None;
    }
    if cx.urgent && rules.entity == Entity::Visit {
        out.flags.push(Flag::Urgent);
    }
    super::merge_flags(rules, before, &mut out, actor);
    out
}

/// The stored fields nobody wrote, copied, beside the written ones (both
/// in name order, so the map is built from one sorted run).
fn with_written(
    before: Option<&Record>,
    written: Vec<(&'static str, Field)>,
) -> BTreeMap<String, Field> {
    let stored = before.map(|b| &b.fields);
    let mut kept = stored.into_iter().flatten().peekable();
    let mut out = Vec::with_capacity(stored.map_or(0, BTreeMap::len) + written.len());
    for (name, field) in written {
        while let Some((k, f)) = kept.next_if(|(k, _)| k.as_str() < name) {
            out.push((k.clone(), f.clone()));
        }
        kept.next_if(|(k, _)| k.as_str() == name);
        out.push((name.to_owned(), field));
    }
    out.extend(kept.map(|(k, f)| (k.clone(), f.clone())));
    out.into_iter().collect()
}

fn op_value(op: &FieldOp) -> Value {
    match op {
        FieldOp::Set(v) => v.clone(),
        FieldOp::Items { add, remove } => serde_json::json!({"add": add, "remove": remove}),
    }
}

/// Orders two writes for last-writer-wins: by clock, then by canonical JSON.
fn lww(a_hlc: Hlc, a: &Value, b_hlc: Hlc, b: &Value) -> Ordering {
    a_hlc.cmp(&b_hlc).then_with(|| {
        let a = serde_json::to_string(a).unwrap_or_default();
        let b = serde_json::to_string(b).unwrap_or_default();
        a.cmp(&b)
    })
}

fn check_authority(cx: &mut Ctx<'_>, rule: &FieldRule, from: Option<&Value>, to: &Value) -> bool {
    let unchanged = from == Some(to);
    let res = match rule.writers {
        // Re-sending the current value is not a transition; it needs only
        // the right to set that value at all.
        Writers::Transitions(list) if unchanged => {
            if list
                .iter()
                .any(|t| t.role == cx.actor.role && Some(t.to) == to.as_str())
            {
                Ok(())
            } else {
                Err(super::Denied::Role)
            }
        }
        w => w.check(
            cx.actor,
            cx.author,
            if cx.creating { None } else { from },
            Some(to),
        ),
    };
    match res {
        Ok(()) => true,
        Err(d) => {
            let reason = if rule.kind == FieldKind::ServerOnly && d == super::Denied::Role {
                Reason::ServerOnlyField
            } else {
                super::denied_reason(d)
            };
            let msg = match reason {
                Reason::ServerOnlyField => "written only by the provincial feed".to_owned(),
                Reason::NotAuthor => "only the visit's author may change this".to_owned(),
                Reason::InvalidTransition => format!(
                    "a {} may not change this from {} to {}",
                    cx.actor.role,
                    from.unwrap_or(&Value::Null),
                    to
                ),
                _ => format!("a {} may not change this field", cx.actor.role),
            };
            cx.refuse(rule.name, None, reason, &msg, to.clone());
            false
        }
    }
}

fn register(cx: &mut Ctx<'_>, before: Option<&Record>, rule: &FieldRule, hlc: Hlc, v: &Value) {
    let name = rule.name;
    let cur = match before.and_then(|b| b.fields.get(name)) {
        Some(Field::Register(r)) => Some(r),
        _ => None,
    };
    if !check_authority(cx, rule, cur.map(|r| &r.value), v) {
        return;
    }
    if rule.kind == FieldKind::ImmutableAfterCreate
        && let Some(c) = cur
        && !c.value.is_null()
        && c.value != *v
    {
        cx.refuse(
            name,
            None,
            Reason::ImmutableField,
            "cannot change after create",
            v.clone(),
        );
        return;
    }
    let invalid = if v.is_null() {
        rule.required.then_some("a value is required")
    } else {
        rule.ty.check(v).err()
    };
    if let Some(why) = invalid {
        cx.refuse(name, None, Reason::InvalidValue, why, v.clone());
        return;
    }
    let new = Register {
        value: v.clone(),
        hlc,
        version: cx.version,
    };
    match cur {
        None => {}
        // Same value: only a newer clock is taken (never a conflict).
        Some(c) if c.value == *v && hlc <= c.hlc => return,
        Some(c) if c.value == *v || c.version <= cx.base => {}
        Some(c) => {
            let client_wins = lww(hlc, v, c.hlc, &c.value) == Ordering::Greater;
            cx.conflicts.push(Conflict {
                field: Some(name.to_owned()),
                item_id: None,
                kind: ConflictKind::ConcurrentWrite,
                rule: Some(rule.kind),
                server: Side {
                    value: c.value.clone(),
                    hlc: c.hlc,
                },
                client: Side {
                    value: v.clone(),
                    hlc,
                },
                winner: if client_wins {
                    Winner::Client
                } else {
                    Winner::Server
                },
            });
            if !client_wins {
                return;
            }
        }
    }
    cx.took(name, Field::Register(new));
}

fn items(
    cx: &mut Ctx<'_>,
    before: Option<&Record>,
    rule: &FieldRule,
    hlc: Hlc,
    add: &[Value],
    remove: &[String],
) {
    let name = rule.name;
    let auth = rule.writers.check(cx.actor, cx.author, None, None);
    if let Err(d) = auth {
        let value = serde_json::json!({"add": add, "remove": remove});
        let msg = format!("a {} may not change this field", cx.actor.role);
        cx.refuse(name, None, super::denied_reason(d), &msg, value);
        return;
    }
    // Copied on the first change; a stored field of another kind counts as
    // an empty set.
    let empty = BTreeMap::new();
    let mut set = Cow::Borrowed(match before.and_then(|b| b.fields.get(name)) {
        Some(Field::Items(s)) => s,
        _ => &empty,
    });
    let mut touched = false;
    for id in remove {
        let Some(item) = set.get(id.as_str()) else {
            continue;
        };
        if item.version <= cx.base {
            set.to_mut().remove(id.as_str());
            touched = true;
        } else {
            cx.conflicts.push(Conflict {
                field: Some(name.to_owned()),
                item_id: Some(id.clone()),
                kind: ConflictKind::RemoveVsUpdate,
                rule: Some(rule.kind),
                server: Side {
                    value: item.value.clone(),
                    hlc: item.hlc,
                },
                client: Side {
                    value: Value::Null,
                    hlc,
                },
                winner: Winner::Server,
            });
        }
    }
    for v in add {
        if let Err(why) = rule.ty.check(v) {
            cx.refuse(name, item_id(v), Reason::InvalidValue, why, v.clone());
            continue;
        }
        let id = item_id(v).unwrap_or_default();
        let new = Item {
            value: v.clone(),
            hlc,
            version: cx.version,
        };
        match set.get(id) {
            None => {}
            Some(c) if c.value == *v && hlc <= c.hlc => continue,
            Some(c) if c.value == *v || c.version <= cx.base => {}
            Some(c) => {
                let client_wins = lww(hlc, v, c.hlc, &c.value) == Ordering::Greater;
                cx.conflicts.push(Conflict {
                    field: Some(name.to_owned()),
                    item_id: Some(id.to_owned()),
                    kind: ConflictKind::ConcurrentItemWrite,
                    rule: Some(rule.kind),
                    server: Side {
                        value: c.value.clone(),
                        hlc: c.hlc,
                    },
                    client: Side {
                        value: v.clone(),
                        hlc,
                    },
                    winner: if client_wins {
                        Winner::Client
                    } else {
                        Winner::Server
                    },
                });
                if !client_wins {
                    continue;
                }
            }
        }
        cx.urgent |= is_urgent_item(v);
        set.to_mut().insert(id.to_owned(), new);
        touched = true;
    }
    if touched {
        cx.took(name, Field::Items(set.into_owned()));
    }
}
