//! The review loop in the core: accepting an amendment to an approved
//! (locked) visit, and the director's list of visits returned for revision.

use serde_json::json;
use sync_core::{
    merge::{Reason, Verdict, accept_amendment, merge},
    rules::{Role, rules_for},
    tasks::review_tasks,
    testing::{MutationBuilder as M, actor, hlc, ids, stored_visit},
};

fn rejected_with(out: &sync_core::merge::MergeOutcome) -> Option<Reason> {
    match &out.verdict {
        Verdict::Rejected { reason, .. } => Some(*reason),
        _ => None,
    }
}

#[test]
fn an_edit_to_an_approved_visit_is_kept_as_an_amendment_a_supervisor_can_accept() {
    let rules = rules_for(sync_core::record::Entity::Visit);
    let approved = stored_visit("approved");
    let edit = M::update(
        sync_core::record::Entity::Visit,
        ids::VISIT,
        1,
        hlc(5_000, 0xa0),
    )
    .set("follow_up", json!("see the school again"))
    .build();
    let refused = merge(rules, Some(&approved), &edit, &actor(Role::Director));
    assert_eq!(rejected_with(&refused), Some(Reason::Locked));
    let proposed = refused.amendment.expect("kept as an amendment");

    let mut amendment = edit.clone();
    amendment.fields = proposed;
    let out = accept_amendment(
        rules,
        &approved,
        &amendment,
        &actor(Role::Supervisor),
        &actor(Role::Director),
    );
    assert!(!out.is_rejected(), "{:?}", out.verdict);
    let after = out.record.expect("record").into_owned();
    assert_eq!(after.get_str("follow_up"), Some("see the school again"));
    assert_eq!(
        after.get_str("review_status"),
        Some("approved"),
        "stays locked"
    );
    assert_eq!(after.version, approved.version + 1);
}

#[test]
fn only_a_reviewer_accepts_and_only_content_is_amended() {
    let rules = rules_for(sync_core::record::Entity::Visit);
    let approved = stored_visit("approved");
    let amendment = M::update(
        sync_core::record::Entity::Visit,
        ids::VISIT,
        1,
        hlc(5_000, 0xa0),
    )
    .set("follow_up", json!("x"))
    .build();
    let by_director = accept_amendment(
        rules,
        &approved,
        &amendment,
        &actor(Role::Director),
        &actor(Role::Director),
    );
    assert_eq!(rejected_with(&by_director), Some(Reason::RoleNotAllowed));

    let reopening = M::update(
        sync_core::record::Entity::Visit,
        ids::VISIT,
        1,
        hlc(5_000, 0xa0),
    )
    .set("review_status", json!("submitted"))
    .build();
    let out = accept_amendment(
        rules,
        &approved,
        &reopening,
        &actor(Role::Supervisor),
        &actor(Role::Director),
    );
    assert_eq!(rejected_with(&out), Some(Reason::RoleNotAllowed));

    let submitted = stored_visit("submitted");
    let out = accept_amendment(
        rules,
        &submitted,
        &amendment,
        &actor(Role::Supervisor),
        &actor(Role::Director),
    );
    assert_eq!(rejected_with(&out), Some(Reason::InvalidTransition));
}

#[test]
fn returned_visits_are_the_directors_tasks_until_resubmitted() {
    let rules = rules_for(sync_core::record::Entity::Visit);
    let submitted = stored_visit("submitted");
    let back = M::update(
        sync_core::record::Entity::Visit,
        ids::VISIT,
        1,
        hlc(6_000, 0x5e),
    )
    .set("review_status", json!("returned"))
    .set("review_comment", json!("请补充学习情况"))
    .build();
    let returned = merge(rules, Some(&submitted), &back, &actor(Role::Supervisor))
        .record
        .expect("returned")
        .into_owned();
    let tasks = review_tasks(ids::DIRECTOR, [&returned]);
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].visit_id, ids::VISIT);
    assert_eq!(tasks[0].comment.as_deref(), Some("请补充学习情况"));
    assert!(review_tasks(ids::OTHER_DIRECTOR, [&returned]).is_empty());

    let fix = M::update(
        sync_core::record::Entity::Visit,
        ids::VISIT,
        returned.version,
        hlc(7_000, 0xa0),
    )
    .set(
        "observations",
        json!({"study": "grade 4, needs maths help"}),
    )
    .set("review_status", json!("submitted"))
    .build();
    let resubmitted = merge(rules, Some(&returned), &fix, &actor(Role::Director));
    assert!(!resubmitted.is_rejected(), "{:?}", resubmitted.verdict);
    assert!(
        review_tasks(
            ids::DIRECTOR,
            [&resubmitted.record.expect("record").into_owned()]
        )
        .is_empty()
    );
}
