//! The three-way merge: one pure function of (stored record, the device's
//! mutation with its base version, the actor, the entity's rules) → outcome.
//!
//! * **Fast-forward** when nothing changed since the base: every field the
//!   device sent is taken (whatever its clock — a phone whose clock runs
//!   behind still gets its edits applied).
//! * Otherwise **per field**: a field changed since the base (its stored
//!   version is greater than the base version) and also by the device is
//!   resolved by its rule — last writer wins by HLC (ties broken by the
//!   canonical JSON of the value), or for add-wins sets per item, with
//!   removals honoured only for items the remover had seen.
//! * **Authority** is checked per field: a refused field is reported and
//!   the rest applies. A locked (approved) record never changes: the
//!   mutation is rejected and kept as a proposed amendment.
//! * **Deletes** are tombstones; delete versus a concurrent edit follows the
//!   entity's [`DeletePolicy`].
//!
//! Every losing value is returned in a [`Conflict`]; every refused value in a
//! [`Refusal`]. Server versions are assigned here: a changed record's version
//! is the stored version plus one.
//!
//! Re-applying the same mutation right away changes nothing, but a mutation
//! re-delivered after later changes could; the server therefore stores each
//! mutation's outcome under its id and answers retries from that store.

mod fields;
mod outcome;

use std::borrow::Cow;

use serde_json::Value;

pub use outcome::{
    Conflict, ConflictKind, Flag, MergeOutcome, Reason, Refusal, Side, Verdict, Winner,
};

use crate::{
    clock::{Hlc, HlcClock},
    protocol::{FieldOp, Mutation, Op},
    record::{Field, Record, Tombstone},
    rules::{Actor, DeletePolicy, Denied, EntityRules, Role},
};

/// Orders a received mutation on the receiver's clock: every clock in it is
/// observed; one too far ahead (see [`crate::clock`]) is replaced by the
/// receiver's clock. Returns true when anything was skewed (report
/// [`Flag::ClockSkewed`]). Call this before [`merge`] and store the admitted
/// mutation.
pub fn admit(mutation: &mut Mutation, clock: &mut HlcClock, now_ms: u64) -> bool {
    let mut skewed = false;
    let mut one = |h: &mut Hlc| {
        let seen = clock.observe(*h, now_ms);
        if seen.skewed {
            *h = seen.local;
            skewed = true;
        }
    };
    one(&mut mutation.hlc);
    for change in mutation.fields.values_mut() {
        one(&mut change.hlc);
    }
    skewed
}

/// Merges `mutation` by `actor` into `current` (the stored record, `None`
/// if the server has none) under `rules`.
pub fn merge<'a>(
    rules: &EntityRules,
    current: Option<&'a Record>,
    mutation: &Mutation,
    actor: &Actor,
) -> MergeOutcome<'a> {
    if mutation.entity != rules.entity
        || current.is_some_and(|r| r.entity != mutation.entity || r.id != mutation.record_id)
    {
        return MergeOutcome::rejected(
            current,
            Reason::EntityMismatch,
            "the mutation does not match the stored record's entity or id",
        );
    }
    if let Some(cur) = current
        && mutation.base_version > cur.version
    {
        return MergeOutcome::rejected(
            current,
            Reason::FutureBaseVersion,
            format!(
                "base version {} is newer than the server's {}; the device must re-download this record",
                mutation.base_version, cur.version
            ),
        );
    }
    match mutation.op {
        Op::Delete => merge_delete(rules, current, mutation, actor),
        Op::Create | Op::Update => merge_write(rules, current, mutation, actor),
    }
}

fn denied_reason(d: Denied) -> Reason {
    match d {
        Denied::Role => Reason::RoleNotAllowed,
        Denied::NotAuthor => Reason::NotAuthor,
        Denied::Transition => Reason::InvalidTransition,
    }
}

/// The record's author (as stored, or as given on create), parsed once.
fn author_of(rules: &EntityRules, rec: Option<&Record>, m: &Mutation) -> Option<uuid::Uuid> {
    let field = rules.author_field?;
    let text = match rec.and_then(|r| r.get_str(field)) {
        Some(a) => a,
        None => match m.fields.get(field).map(|c| &c.op) {
            Some(FieldOp::Set(Value::String(s))) => s,
            _ => return None,
        },
    };
    uuid::Uuid::try_parse(text).ok()
}

fn is_locked(rules: &EntityRules, rec: &Record) -> bool {
    rules
        .lock
        .is_some_and(|l| !rec.is_deleted() && rec.get_str(l.field) == Some(l.value))
}

fn merge_write<'a>(
    rules: &EntityRules,
    current: Option<&'a Record>,
    m: &Mutation,
    actor: &Actor,
) -> MergeOutcome<'a> {
    let author = author_of(rules, current, m);
    let Some(cur) = current else {
        if m.op == Op::Update {
            return MergeOutcome::rejected(None, Reason::RecordNotFound, "no such record");
        }
        if let Err(d) = rules.create.check(actor, author, None, None) {
            return MergeOutcome::rejected(
                None,
                denied_reason(d),
                format!("a {} may not create a {}", actor.role, rules.entity),
            );
        }
        if let Some(missing) = rules.fields.iter().find(|r| {
            r.required
                && !matches!(m.fields.get(r.name).map(|c| &c.op), Some(FieldOp::Set(v)) if !v.is_null())
        }) {
            return MergeOutcome::rejected(
                None,
                Reason::MissingRequiredField,
                format!("{} is required to create a {}", missing.name, rules.entity),
            );
        }
        return fields::apply(rules, None, m, actor, author);
    };
    if m.op == Op::Create {
        return MergeOutcome::rejected(
            current,
            Reason::IdExists,
            format!(
                "a {} with this id exists already; send an update with its version as the base",
                rules.entity
            ),
        );
    }
    if is_locked(rules, cur) {
        let mut out = MergeOutcome::rejected(
            current,
            Reason::Locked,
            "this visit is approved and locked; the change was kept as a proposed amendment",
        );
        out.amendment = Some(m.fields.clone());
        return out;
    }
    if let Some(lock) = rules.lock
        && matches!(m.fields.get(lock.field).map(|c| &c.op), Some(FieldOp::Set(Value::String(s))) if s == lock.value)
        && changed_since(cur, m.base_version, lock.review_fields)
    {
        return MergeOutcome::rejected(
            current,
            Reason::StaleReview,
            "the visit changed after the version you reviewed; review it again",
        );
    }
    if let Some(t) = cur.tombstone
        && m.base_version >= t.version
    {
        return MergeOutcome::rejected(
            current,
            Reason::RecordDeleted,
            "the record was deleted before this edit was made",
        );
    }
    fields::apply(rules, Some(cur), m, actor, author)
}

/// Accepts a proposed amendment to a locked record (DESIGN.md §2.9: an
/// approved visit is immutable; later corrections are amendments a reviewer
/// accepts or rejects). `mutation` carries the amended fields; the
/// `reviewer` must be a role that may write the lock field (for visits, a
/// supervisor), and the change is applied under the authority of `author`,
/// the record's author who proposed it, so every field rule still holds.
/// The lock field and the other review fields never change here: the record
/// stays locked.
pub fn accept_amendment<'a>(
    rules: &EntityRules,
    current: &'a Record,
    mutation: &Mutation,
    reviewer: &Actor,
    author: &Actor,
) -> MergeOutcome<'a> {
    let Some(lock) = rules.lock else {
        return MergeOutcome::rejected(
            Some(current),
            Reason::EntityMismatch,
            format!("a {} never locks, so it takes no amendments", rules.entity),
        );
    };
    if mutation.entity != rules.entity || current.id != mutation.record_id {
        return MergeOutcome::rejected(
            Some(current),
            Reason::EntityMismatch,
            "the amendment does not match the stored record's entity or id",
        );
    }
    // A reviewer is whoever may move the record into its locked state.
    let may_review = rules
        .field(lock.field)
        .is_some_and(|rule| match rule.writers {
            crate::rules::Writers::Transitions(list) => list
                .iter()
                .any(|t| t.role == reviewer.role && t.to == lock.value),
            other => other.admits_role(reviewer.role),
        });
    if !may_review {
        return MergeOutcome::rejected(
            Some(current),
            Reason::RoleNotAllowed,
            format!("a {} may not accept amendments", reviewer.role),
        );
    }
    if !is_locked(rules, current) {
        return MergeOutcome::rejected(
            Some(current),
            Reason::InvalidTransition,
            "the record is not locked; it is edited directly, not amended",
        );
    }
    if let Some(field) = mutation
        .fields
        .keys()
        .find(|name| lock.review_fields.contains(&name.as_str()))
    {
        return MergeOutcome::rejected(
            Some(current),
            Reason::RoleNotAllowed,
            format!("an amendment may not change the review field {field}"),
        );
    }
    fields::apply(
        rules,
        Some(current),
        mutation,
        author,
        author_of(rules, Some(current), mutation),
    )
}

/// True when a field other than `except` changed after version `base`.
fn changed_since(rec: &Record, base: u64, except: &[&str]) -> bool {
    rec.fields.iter().any(|(name, f)| {
        !except.contains(&name.as_str())
            && match f {
                Field::Register(r) => r.version > base,
                Field::Items(items) => items.values().any(|i| i.version > base),
            }
    })
}

fn merge_delete<'a>(
    rules: &EntityRules,
    current: Option<&'a Record>,
    m: &Mutation,
    actor: &Actor,
) -> MergeOutcome<'a> {
    let Some(cur) = current else {
        return MergeOutcome::rejected(None, Reason::RecordNotFound, "no such record");
    };
    if let Err(d) = rules
        .delete
        .check(actor, author_of(rules, current, m), None, None)
    {
        return MergeOutcome::rejected(
            current,
            denied_reason(d),
            format!("a {} may not delete this {}", actor.role, rules.entity),
        );
    }
    if is_locked(rules, cur) {
        return MergeOutcome::rejected(
            current,
            Reason::Locked,
            "an approved visit cannot be deleted",
        );
    }
    let mut out = MergeOutcome {
        verdict: Verdict::Applied,
        record: Some(Cow::Borrowed(cur)),
        changed: false,
        applied: Vec::new(),
        conflicts: Vec::new(),
        refusals: Vec::new(),
        flags: Vec::new(),
        amendment: None,
    };
    let rec = out.record.as_mut().expect("just set");
    let new_version = cur.version + 1;
    if let Some(t) = cur.tombstone {
        if m.hlc > t.hlc {
            let rec = rec.to_mut();
            rec.tombstone = Some(Tombstone {
                hlc: m.hlc,
                version: new_version,
            });
            rec.version = new_version;
            out.changed = true;
        }
        return out;
    }
    let concurrent = cur.version > m.base_version;
    let delete = !concurrent || rules.delete_policy == DeletePolicy::DeleteWins;
    if concurrent {
        let newest = cur
            .fields
            .values()
            .filter_map(|f| match f {
                Field::Register(r) => Some(r.hlc),
                Field::Items(items) => items.values().map(|i| i.hlc).max(),
            })
            .max()
            .unwrap_or(Hlc::ZERO);
        out.conflicts.push(Conflict {
            field: None,
            item_id: None,
            kind: ConflictKind::DeleteVsEdit,
            rule: None,
            server: Side {
                value: Value::Object(cur.values()),
                hlc: newest,
            },
            client: Side {
                value: Value::Null,
                hlc: m.hlc,
            },
            winner: if delete {
                Winner::Client
            } else {
                Winner::Server
            },
        });
        out.verdict = Verdict::Merged;
    }
    if delete {
        let rec = rec.to_mut();
        rec.tombstone = Some(Tombstone {
            hlc: m.hlc,
            version: new_version,
        });
        rec.version = new_version;
        out.changed = true;
    }
    out
}

/// Flags raised by the merge itself (semantic checks add more).
fn merge_flags(
    rules: &EntityRules,
    before: Option<&Record>,
    out: &mut MergeOutcome<'_>,
    actor: &Actor,
) {
    if !out.changed {
        return;
    }
    if rules.entity == crate::record::Entity::Child
        && actor.role == Role::Director
        && before.and_then(|r| r.get_str("status")) == Some("exited")
    {
        out.flags.push(Flag::EditToExitedChild);
    }
}
