//! Property tests of the merge (DESIGN.md §2 invariants 3, 4, 5 and 9):
//! convergence in any arrival order, idempotence, nothing lost,
//! determinism, authority, locked records never change; plus clock and
//! wire round-trip properties (the compact pull encoding among them).
//!
//! Case count: proptest's default of 256 per property, overridable with the
//! `PROPTEST_CASES` environment variable (CI runs 1024). Failures are saved
//! under `sync-core/proptest-regressions/` and replayed first on every run.

use proptest::{prelude::*, test_runner::FileFailurePersistence};
use serde_json::{Value, json};
use sync_core::{
    clock::{Hlc, HlcClock},
    merge::{ConflictKind, MergeOutcome, merge},
    protocol::{CompactRecord, FieldOp, Mutation, Op},
    record::{Entity, Field, Record},
    rules::{Actor, Role, Writers, rules_for},
    testing::{
        MutationBuilder as M, actor, any_actor, any_edit, child_create, hlc, ids, plan_item_create,
        stored, stored_visit, uuid, visit_edit,
    },
};

fn apply<'a>(rec: &'a Record, m: &Mutation, who: &Actor) -> MergeOutcome<'a> {
    merge(rules_for(rec.entity), Some(rec), m, who)
}

fn apply_all(base: &Record, ms: &[(Mutation, Actor)], order: &[usize]) -> Record {
    order.iter().fold(base.clone(), |rec, &i| {
        apply(&rec, &ms[i].0, &ms[i].1)
            .record
            .expect("update keeps a record")
            .into_owned()
    })
}

fn stored_child() -> Record {
    stored(&child_create(hlc(1_000, 0xa1)).build(), &actor(Role::Admin))
}

fn any_base() -> impl Strategy<Value = Record> {
    prop_oneof![
        Just(stored_visit("draft")),
        Just(stored_visit("submitted")),
        Just(stored_visit("returned")),
        Just(stored_visit("approved")),
        Just(stored_child()),
        Just(stored(
            &plan_item_create(hlc(1_000, 0xa2)).build(),
            &actor(Role::Director)
        )),
    ]
}

/// A record and an arbitrary mutation to it by an arbitrary actor.
fn any_case() -> impl Strategy<Value = (Record, Mutation, Actor)> {
    any_base().prop_flat_map(|rec| {
        let e = rec.entity;
        (Just(rec), any_edit(e, 1), any_actor())
    })
}

/// Concurrent visit mutations from version 1, each from its own device:
/// author edits, supervisor comments / returns, the odd submit or delete.
/// Approvals are left out: whether an edit or an approval came first is a
/// server-order decision by design (the later one becomes an amendment or a
/// stale review), see docs/SYNC-PROTOCOL.md.
fn concurrent_visit_mutations(
    status: &'static str,
) -> impl Strategy<Value = Vec<(Mutation, Actor)>> {
    let one = move |i: u128| {
        let node = 0xb0 + i;
        prop_oneof![
            6 => visit_edit(1, node).prop_map(|m| (m, actor(Role::Director))),
            2 => (1_500..1_520u64, prop_oneof![Just("ok"), Just("see me")], any::<bool>())
                .prop_map(move |(w, text, ret)| {
                    let mut b = M::update(Entity::Visit, ids::VISIT, 1, hlc(w, node))
                        .set("review_comment", json!(text));
                    if ret && status == "submitted" {
                        b = b.set("review_status", json!("returned"));
                    }
                    (b.build(), actor(Role::Supervisor))
                }),
            1 => (1_500..1_520u64).prop_map(move |w| {
                (M::update(Entity::Visit, ids::VISIT, 1, hlc(w, node))
                    .set("review_status", json!("submitted")).build(), actor(Role::Director))
            }),
            1 => (1_500..1_520u64).prop_map(move |w| {
                (M::delete(Entity::Visit, ids::VISIT, 1, hlc(w, node)).build(), actor(Role::Director))
            }),
        ]
    };
    (2..6usize).prop_flat_map(move |n| (0..n as u128).map(one).collect::<Vec<_>>())
}

fn orders(n: usize) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let ids: Vec<usize> = (0..n).collect();
    (Just(ids.clone()).prop_shuffle(), Just(ids).prop_shuffle())
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    })]

    /// Invariants 3 and 4: the same concurrent visit edits, applied in any
    /// two orders, give the same record content.
    #[test]
    fn visit_edits_converge_in_any_order(
        (status, ms, (a, b)) in prop_oneof![Just("draft"), Just("submitted"), Just("returned")]
            .prop_flat_map(|s| (Just(s), concurrent_visit_mutations(s)))
            .prop_flat_map(|(s, ms)| { let n = ms.len(); (Just(s), Just(ms), orders(n)) })
    ) {
        let base = stored_visit(status);
        let x = apply_all(&base, &ms, &a);
        let y = apply_all(&base, &ms, &b);
        prop_assert_eq!(x.content(), y.content());
    }

    /// Convergence for children (delete wins) and case-plan items (edit
    /// wins), with arbitrary writers, including refused and invalid writes.
    #[test]
    fn child_and_plan_edits_converge_in_any_order(
        (base, ms, (a, b)) in prop_oneof![
            Just(stored_child()),
            Just(stored(&plan_item_create(hlc(1_000, 0xa2)).build(), &actor(Role::Director))),
        ].prop_flat_map(|base| {
            let e = base.entity;
            let ms = proptest::collection::vec((any_edit(e, 1), any_actor()), 2..6);
            (Just(base), ms)
        }).prop_flat_map(|(base, ms)| {
            // one device per mutation: distinct clocks
            let ms: Vec<_> = ms.into_iter().enumerate().map(|(i, (mut m, who))| {
                let node = uuid(0x100 + i as u128);
                m.hlc.node = node;
                for c in m.fields.values_mut() { c.hlc.node = node; }
                (m, who)
            }).collect();
            let n = ms.len();
            (Just(base), Just(ms), orders(n))
        })
    ) {
        let x = apply_all(&base, &ms, &a);
        let y = apply_all(&base, &ms, &b);
        prop_assert_eq!(x.content(), y.content());
    }

    /// Applying a mutation a second time right away changes nothing.
    #[test]
    fn applying_twice_changes_nothing((rec, m, who) in any_case()) {
        let once = apply(&rec, &m, &who);
        let r1 = once.record().cloned().unwrap();
        let twice = apply(&r1, &m, &who);
        prop_assert!(!twice.changed);
        prop_assert_eq!(twice.record().cloned().unwrap(), r1);
    }

    /// Invariant 4: the merge is a pure function.
    #[test]
    fn merge_is_deterministic((rec, m, who) in any_case()) {
        prop_assert_eq!(apply(&rec, &m, &who), apply(&rec, &m, &who));
    }

    /// Invariant 9: a field changes only by a role (and, for visit content,
    /// the author) that owns it; a tombstone only by one who may delete.
    #[test]
    fn no_field_changes_by_a_role_that_does_not_own_it((rec, m, who) in any_case()) {
        let rules = rules_for(rec.entity);
        let after = apply(&rec, &m, &who).record.unwrap().into_owned();
        let author = rec.get_str("author_id").map(|a| a == who.user_id.to_string());
        for (name, field) in &after.fields {
            if rec.fields.get(name) == Some(field) { continue; }
            let rule = rules.field(name).unwrap();
            match rule.writers {
                Writers::Roles(r) => prop_assert!(r.contains(who.role), "{name} by {}", who.role),
                Writers::Author(r) => prop_assert!(r.contains(who.role) && author == Some(true)),
                Writers::Transitions(list) => {
                    let from = rec.get_str(name);
                    let to = after.get_str(name);
                    prop_assert!(from == to || list.iter().any(|t| t.role == who.role
                        && t.from == from && Some(t.to) == to), "{from:?}->{to:?} by {}", who.role);
                }
            }
        }
        if after.tombstone != rec.tombstone {
            prop_assert!(rules.delete.admits_role(who.role));
        }
    }

    /// An approved visit never changes, whatever anyone sends.
    #[test]
    fn a_locked_visit_never_changes(
        ms in proptest::collection::vec((any_edit(Entity::Visit, 1), any_actor()), 1..5)
    ) {
        let base = stored_visit("approved");
        let after = apply_all(&base, &ms, &(0..ms.len()).collect::<Vec<_>>());
        prop_assert_eq!(after, base);
    }

    /// Invariant 5: after two concurrent mutations, every value the second
    /// one sent is in the record, in a conflict, or in a refusal; and every
    /// concurrent value it overwrote is in a conflict.
    #[test]
    fn nothing_is_lost(
        (base, m1, w1, m2, w2) in any_base().prop_flat_map(|b| {
            let e = b.entity;
            (Just(b), any_edit(e, 1), any_actor(), any_edit(e, 1), any_actor())
        })
    ) {
        let mut m2 = m2;
        m2.hlc.node = uuid(0x999);
        for c in m2.fields.values_mut() { c.hlc.node = uuid(0x999); }
        let mid = apply(&base, &m1, &w1).record.unwrap().into_owned();
        let out = apply(&mid, &m2, &w2);
        let after = out.record().cloned().unwrap();
        if out.is_rejected() {
            prop_assert_eq!(&after, &mid);
            return Ok(());
        }
        if m2.op == Op::Delete {
            prop_assert!(after.is_deleted() || out.conflicts.iter().any(|c| c.kind == ConflictKind::DeleteVsEdit));
            return Ok(());
        }
        let refused = |f: &str, item: Option<&str>| out.refusals.iter()
            .any(|r| r.field == f && (r.item_id.is_none() || r.item_id.as_deref() == item));
        let in_conflict = |f: &str, item: Option<&str>, v: &Value| out.conflicts.iter().any(|c|
            c.field.as_deref() == Some(f) && c.item_id.as_deref() == item
            && (&c.client.value == v || &c.server.value == v));
        for (f, change) in &m2.fields {
            match &change.op {
                FieldOp::Set(v) if !v.is_array() => prop_assert!(
                    after.get(f).as_ref() == Some(v) || in_conflict(f, None, v) || refused(f, None),
                    "value of {f} lost"),
                FieldOp::Set(_) => {}
                FieldOp::Items { add, .. } => for it in add {
                    let id = it["id"].as_str().unwrap();
                    let present = matches!(after.fields.get(f.as_str()),
                        Some(Field::Items(s)) if s.get(id).map(|i| &i.value) == Some(it));
                    prop_assert!(present || in_conflict(f, Some(id), it) || refused(f, Some(id))
                        || add.iter().filter(|x| x["id"] == it["id"]).count() > 1,
                        "item {id} of {f} lost");
                }
            }
        }
        for (f, field) in &mid.fields {
            if let Field::Register(r) = field
                && r.version > 1
                && after.get(f).as_ref() != Some(&r.value)
            {
                prop_assert!(in_conflict(f, None, &r.value), "concurrent value of {f} lost");
            }
        }
    }

    /// Clocks: tick is strictly monotonic, observe never goes back, and the
    /// text form sorts like the clock.
    #[test]
    fn clocks_are_monotonic_and_text_sorts_like_clocks(
        events in proptest::collection::vec((any::<bool>(), 0..5_000u64, 0..2_000_000u64, 0..3u32), 1..40)
    ) {
        let mut c = HlcClock::with_max_skew(uuid(1), 60_000);
        let mut last = c.last();
        for (local, now, remote_wall, counter) in events {
            let next = if local { c.tick(now) } else {
                let seen = c.observe(Hlc::new(remote_wall, counter, uuid(2)), now);
                prop_assert_eq!(seen.skewed, remote_wall > now + 60_000);
                if !seen.skewed { prop_assert!(seen.local.wall_ms >= remote_wall); }
                seen.local
            };
            prop_assert!(next > last);
            prop_assert!(next.to_string() > last.to_string());
            prop_assert_eq!(next.to_string().parse::<Hlc>().unwrap(), next);
            last = next;
        }
    }

    /// Records and mutations survive the wire and the split/join used for storage.
    #[test]
    fn records_and_mutations_round_trip((rec, m, who) in any_case()) {
        let after = apply(&rec, &m, &who).record.unwrap().into_owned();
        let json = serde_json::to_string(&after).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Record>(&json).unwrap(), &after);
        let (values, meta) = after.split();
        let meta = serde_json::from_value(serde_json::to_value(&meta).unwrap()).unwrap();
        let joined = Record::join(after.entity, after.id, after.version, values, &meta).unwrap();
        prop_assert_eq!(joined, after);
        let json = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(serde_json::from_str::<Mutation>(&json).unwrap(), m);
    }

    /// The compact pull encoding gives back the record it encodes, over
    /// the wire, before and after a merge mixed its fields' stamps.
    #[test]
    fn the_compact_encoding_round_trips((rec, m, who) in any_case()) {
        let after = apply(&rec, &m, &who).record.unwrap().into_owned();
        for record in [rec, after] {
            let json = serde_json::to_string(&CompactRecord::from(record.clone())).unwrap();
            let back: CompactRecord = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(back.into_record().unwrap(), record);
        }
    }
}
