//! The local/remote conflict matrix, one rstest case table per field kind:
//! what the merge does when the server side, the device side or both
//! changed a field since the device's base version.

use rstest::rstest;
use serde_json::{Value, json};
use sync_core::{
    merge::{ConflictKind, MergeOutcome, Reason, Verdict, Winner, merge},
    record::{Entity, Record},
    rules::{Role, rules_for},
    testing::{MutationBuilder as M, actor, hlc, ids, stored_visit},
};

/// The standard visit after its author changed `field` from another phone at
/// `server_wall` (now version 2); the device under test edits from version 1.
fn visit_changed_on_server(field: &str, value: Value, server_wall: u64) -> Record {
    let base = stored_visit("draft");
    let m = M::update(Entity::Visit, ids::VISIT, 1, hlc(server_wall, 0xe1))
        .set(field, value)
        .build();
    let out = merge(
        rules_for(Entity::Visit),
        Some(&base),
        &m,
        &actor(Role::Director),
    );
    assert!(out.changed);
    out.record.unwrap().into_owned()
}

fn apply<'a>(rec: &'a Record, m: &sync_core::protocol::Mutation, role: Role) -> MergeOutcome<'a> {
    merge(rules_for(rec.entity), Some(rec), m, &actor(role))
}

/// Last-writer-wins register (`location`): (server changed?, client
/// changed?, client clock) → (final value, conflict winner).
#[rstest]
#[case::neither(false, None, 0, "child's home", None)]
#[case::server_only(true, None, 0, "server", None)]
#[case::client_only_with_an_older_clock(false, Some("client"), 900, "client", None)]
#[case::client_only_with_a_newer_clock(false, Some("client"), 3_000, "client", None)]
#[case::both_client_newer(true, Some("client"), 3_000, "client", Some(Winner::Client))]
#[case::both_server_newer(true, Some("client"), 1_900, "server", Some(Winner::Server))]
#[case::both_same_value(true, Some("server"), 1_900, "server", None)]
fn lww_register(
    #[case] server_changed: bool,
    #[case] client_value: Option<&str>,
    #[case] client_wall: u64,
    #[case] expected: &str,
    #[case] winner: Option<Winner>,
) {
    let rec = if server_changed {
        visit_changed_on_server("location", json!("server"), 2_000)
    } else {
        stored_visit("draft")
    };
    let mut m = M::update(Entity::Visit, ids::VISIT, 1, hlc(client_wall, 0xc1));
    m = match client_value {
        Some(v) => m.set("location", json!(v)),
        None => m.set("follow_up", json!("call next week")),
    };
    let out = apply(&rec, &m.build(), Role::Director);
    let after = out.record.unwrap().into_owned();
    assert_eq!(after.get("location"), Some(json!(expected)));
    let conflict = out
        .conflicts
        .iter()
        .find(|c| c.field.as_deref() == Some("location"));
    assert_eq!(conflict.map(|c| c.winner), winner);
    if let Some(c) = conflict {
        assert_eq!(c.kind, ConflictKind::ConcurrentWrite);
        assert_eq!(c.server.value, json!("server"));
        assert_eq!(c.client.value, json!("client"));
        assert_eq!(out.verdict, Verdict::Merged);
    }
}

#[test]
fn lww_tie_on_equal_clocks_is_broken_by_the_value() {
    let rec = visit_changed_on_server("location", json!("aaa"), 2_000);
    let same_clock = M::update(Entity::Visit, ids::VISIT, 1, hlc(2_000, 0xe1))
        .set("location", json!("zzz"))
        .build();
    let out = apply(&rec, &same_clock, Role::Director);
    assert_eq!(
        out.record.unwrap().into_owned().get("location"),
        Some(json!("zzz"))
    );
    assert_eq!(out.conflicts[0].winner, Winner::Client);
}

/// Add-wins set (`needs`; the stored visit holds item `n1`): what happens
/// to item ids when the server side and the device side act on them.
#[rstest]
#[case::client_adds_new(None, vec![("n2", "living")], vec![], vec!["n1", "n2"], None)]
#[case::client_removes_seen(None, vec![], vec!["n1"], vec![], None)]
#[case::client_removes_absent(None, vec![], vec!["n9"], vec!["n1"], None)]
#[case::server_adds_client_adds(Some(("n3", "living")), vec![("n2", "study")], vec![], vec!["n1", "n2", "n3"], None)]
#[case::client_removes_item_server_changed(Some(("n1", "psychology")), vec![], vec!["n1"], vec!["n1"], Some((ConflictKind::RemoveVsUpdate, Winner::Server)))]
#[case::both_change_item_client_newer(Some(("n1", "psychology")), vec![("n1", "living")], vec![], vec!["n1"], Some((ConflictKind::ConcurrentItemWrite, Winner::Client)))]
#[case::server_adds_client_removes_other(Some(("n3", "living")), vec![], vec!["n1"], vec!["n3"], None)]
fn add_wins_set(
    #[case] server_upsert: Option<(&str, &str)>,
    #[case] client_add: Vec<(&str, &str)>,
    #[case] client_remove: Vec<&str>,
    #[case] expected_ids: Vec<&str>,
    #[case] conflict: Option<(ConflictKind, Winner)>,
) {
    let mut rec = stored_visit("draft");
    if let Some((id, area)) = server_upsert {
        let m = M::update(Entity::Visit, ids::VISIT, 1, hlc(2_000, 0xe1))
            .add("needs", json!({"id": id, "area": area}))
            .build();
        rec = apply(&rec, &m, Role::Director).record.unwrap().into_owned();
    }
    let mut m = M::update(Entity::Visit, ids::VISIT, 1, hlc(3_000, 0xc1));
    for (id, area) in client_add {
        m = m.add("needs", json!({"id": id, "area": area}));
    }
    for id in client_remove {
        m = m.remove("needs", id);
    }
    let out = apply(&rec, &m.build(), Role::Director);
    let after = out.record.unwrap().into_owned();
    let got: Vec<String> = after
        .get("needs")
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, expected_ids);
    assert_eq!(out.conflicts.first().map(|c| (c.kind, c.winner)), conflict);
}

/// Immutable after create (`child_id`) and server-only (`external_id`).
#[rstest]
#[case::immutable_same_value(Entity::Visit, "child_id", json!(ids::CHILD), Role::Director, None)]
#[case::immutable_changed(Entity::Visit, "child_id", json!(ids::OTHER_VILLAGE), Role::Director, Some(Reason::ImmutableField))]
#[case::server_only_by_feed(Entity::Child, "external_id", json!("ZJ-42"), Role::Integration, None)]
#[case::server_only_by_admin(Entity::Child, "external_id", json!("ZJ-42"), Role::Admin, Some(Reason::ServerOnlyField))]
#[case::server_only_by_director(Entity::Child, "external_id", json!("ZJ-42"), Role::Director, Some(Reason::ServerOnlyField))]
#[case::register_field_by_director(Entity::Child, "category", json!("left_behind"), Role::Director, Some(Reason::RoleNotAllowed))]
#[case::register_field_by_admin(Entity::Child, "category", json!("left_behind"), Role::Admin, None)]
#[case::guardian_by_director(Entity::Child, "guardian_phone", json!("139"), Role::Director, None)]
#[case::visit_content_by_supervisor(Entity::Visit, "observations", json!({"living": "ok"}), Role::Supervisor, Some(Reason::RoleNotAllowed))]
#[case::invalid_enum(Entity::Visit, "kind", json!("walk"), Role::Director, Some(Reason::InvalidValue))]
fn immutable_server_only_and_owned_fields(
    #[case] entity: Entity,
    #[case] field: &str,
    #[case] value: Value,
    #[case] role: Role,
    #[case] refused: Option<Reason>,
) {
    let rec = match entity {
        Entity::Visit => stored_visit("draft"),
        _ => sync_core::testing::stored(
            &sync_core::testing::child_create(hlc(1_000, 0xa1)).build(),
            &actor(Role::Admin),
        ),
    };
    let m = M::update(entity, rec.id, 1, hlc(2_000, 0xc1))
        .set(field, value.clone())
        .build();
    let out = apply(&rec, &m, role);
    assert_eq!(out.refusals.first().map(|r| r.reason), refused);
    let after = out.record.unwrap().into_owned();
    if refused.is_some() {
        assert_eq!(after, rec, "a refused field leaves the record as it was");
        assert_eq!(out.refusals[0].value, value, "the refused value is kept");
    } else {
        assert_eq!(after.get(field), Some(value));
    }
}

/// Value-level authority on `review_status`.
#[rstest]
#[case::director_submits_draft("draft", Role::Director, "submitted", None)]
#[case::director_resubmits_returned("returned", Role::Director, "submitted", None)]
#[case::director_cannot_approve(
    "submitted",
    Role::Director,
    "approved",
    Some(Reason::InvalidTransition)
)]
#[case::supervisor_approves("submitted", Role::Supervisor, "approved", None)]
#[case::supervisor_returns("submitted", Role::Supervisor, "returned", None)]
#[case::supervisor_cannot_approve_draft(
    "draft",
    Role::Supervisor,
    "approved",
    Some(Reason::InvalidTransition)
)]
#[case::admin_cannot_review("submitted", Role::Admin, "approved", Some(Reason::RoleNotAllowed))]
fn review_transitions(
    #[case] from: &str,
    #[case] role: Role,
    #[case] to: &str,
    #[case] refused: Option<Reason>,
) {
    let rec = stored_visit(from);
    let m = M::update(Entity::Visit, ids::VISIT, 1, hlc(2_000, 0xc1))
        .set("review_status", json!(to))
        .build();
    let out = apply(&rec, &m, role);
    match refused {
        None => assert_eq!(
            out.record.unwrap().into_owned().get_str("review_status"),
            Some(to)
        ),
        Some(reason) => {
            assert!(matches!(out.verdict, Verdict::Rejected { reason: r, .. } if r == reason));
            assert_eq!(
                out.record.unwrap().into_owned().get_str("review_status"),
                Some(from)
            );
        }
    }
}

#[test]
fn another_director_cannot_edit_the_authors_visit() {
    let rec = stored_visit("draft");
    let m = M::update(Entity::Visit, ids::VISIT, 1, hlc(2_000, 0xc1))
        .set("location", json!("x"))
        .build();
    let other = sync_core::rules::Actor::new(ids::OTHER_DIRECTOR, Role::Director);
    let out = merge(rules_for(Entity::Visit), Some(&rec), &m, &other);
    assert!(matches!(
        out.verdict,
        Verdict::Rejected {
            reason: Reason::NotAuthor,
            ..
        }
    ));
}

#[test]
fn an_edit_to_an_approved_visit_is_kept_as_an_amendment() {
    let rec = stored_visit("approved");
    let m = M::update(Entity::Visit, ids::VISIT, 1, hlc(2_000, 0xc1))
        .set("observations", json!({"living": "corrected"}))
        .build();
    let out = apply(&rec, &m, Role::Director);
    assert!(matches!(
        out.verdict,
        Verdict::Rejected {
            reason: Reason::Locked,
            ..
        }
    ));
    assert_eq!(out.record.unwrap().into_owned(), rec);
    assert_eq!(out.amendment.unwrap(), m.fields);
}

#[test]
fn an_approval_of_a_version_that_changed_since_is_refused_as_stale() {
    let rec = visit_changed_on_server("observations", json!({"living": "new"}), 2_000);
    let rec = {
        let m = M::update(Entity::Visit, ids::VISIT, 2, hlc(2_100, 0xe1))
            .set("review_status", json!("submitted"))
            .build();
        apply(&rec, &m, Role::Director).record.unwrap().into_owned()
    };
    let approve_v1 = M::update(Entity::Visit, ids::VISIT, 1, hlc(2_200, 0x5e))
        .set("review_status", json!("approved"))
        .build();
    let out = apply(&rec, &approve_v1, Role::Supervisor);
    assert!(matches!(
        out.verdict,
        Verdict::Rejected {
            reason: Reason::StaleReview,
            ..
        }
    ));
    let approve_v3 = M::update(Entity::Visit, ids::VISIT, 3, hlc(2_300, 0x5e))
        .set("review_status", json!("approved"))
        .build();
    assert_eq!(
        apply(&rec, &approve_v3, Role::Supervisor).verdict,
        Verdict::Applied
    );
}

/// Delete versus concurrent edit, in both arrival orders, per entity policy:
/// visits and case-plan items keep the edit (edit wins), children stay
/// deleted (delete wins) with the edit merged into the tombstoned record.
#[rstest]
#[case::visit_edit_wins(Entity::Visit, Role::Director, "location", false)]
#[case::child_delete_wins(Entity::Child, Role::Admin, "address", true)]
fn delete_versus_edit(
    #[case] entity: Entity,
    #[case] role: Role,
    #[case] field: &str,
    #[case] deleted: bool,
    #[values(true, false)] delete_first: bool,
) {
    let rec = match entity {
        Entity::Visit => stored_visit("draft"),
        _ => sync_core::testing::stored(
            &sync_core::testing::child_create(hlc(1_000, 0xa1)).build(),
            &actor(Role::Admin),
        ),
    };
    let del = M::delete(entity, rec.id, 1, hlc(2_000, 0xd0)).build();
    let edit = M::update(entity, rec.id, 1, hlc(2_100, 0xe0))
        .set(field, json!("edited"))
        .build();
    let (first, second) = if delete_first {
        (&del, &edit)
    } else {
        (&edit, &del)
    };
    let mid = apply(&rec, first, role).record.unwrap().into_owned();
    let out = apply(&mid, second, role);
    let after = out.record.unwrap().into_owned();
    assert_eq!(after.is_deleted(), deleted);
    assert_eq!(
        after.get(field),
        Some(json!("edited")),
        "the edit is never lost"
    );
    let kind = if delete_first {
        ConflictKind::EditVsDelete
    } else {
        ConflictKind::DeleteVsEdit
    };
    assert_eq!(out.conflicts[0].kind, kind);
}

#[test]
fn an_edit_to_a_record_the_device_knew_was_deleted_is_rejected() {
    let rec = stored_visit("draft");
    let del = M::delete(Entity::Visit, ids::VISIT, 1, hlc(2_000, 0xd0)).build();
    let gone = apply(&rec, &del, Role::Director)
        .record
        .unwrap()
        .into_owned();
    let late = M::update(Entity::Visit, ids::VISIT, 2, hlc(2_100, 0xd0))
        .set("location", json!("x"))
        .build();
    let out = apply(&gone, &late, Role::Director);
    assert!(matches!(
        out.verdict,
        Verdict::Rejected {
            reason: Reason::RecordDeleted,
            ..
        }
    ));
}
