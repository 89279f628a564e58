//! The conflict queue: concurrent edits and notices in scope, each
//! resolved by keeping the winner, choosing the other value or entering a
//! new one; a resolution that changes the record syncs to the phones.

use reqwest::{Method, StatusCode};
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};
use sync_core::merge::Flag;
use sync_core::protocol::MutationResult;
use sync_core::record::Entity;
use uuid::Uuid;

use super::{day_at, get, ids, visit};

on_both_backends!(
    a_concurrent_edit_is_resolved_with_the_other_value_and_reaches_both_phones,
    notices_are_acknowledged_and_the_queue_keeps_to_the_town,
    a_conflict_moves_with_its_child_to_the_town_it_is_transferred_to,
    a_visit_is_checked_against_every_other_visit_of_its_day_whatever_its_push_holds,
);

async fn resolve(app: &TestApp, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/conflicts/{id}/resolve"),
        Some(token),
        Some(body),
    )
    .await
}

async fn a_concurrent_edit_is_resolved_with_the_other_value_and_reaches_both_phones(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let mut phone_a = Device::sign_in(&app, "director-a1").await;
    let visit_id = visit(
        &app,
        &mut phone_a,
        child,
        fixture.village_a1,
        &day_at(1, 9),
        &[],
    )
    .await;
    let mut phone_b = Device::sign_in(&app, "director-a1").await;
    phone_a.pull_all(&app).await;
    phone_b.pull_all(&app).await;
    for (phone, text) in [(&mut phone_a, "下周电话回访"), (&mut phone_b, "联系学校")] {
        let edit = phone
            .update(Entity::Visit, visit_id)
            .set("follow_up", json!(text))
            .build();
        phone.push(&app, &[edit]).await;
    }

    let token = app.token_for("supervisor-a").await;
    let flagged = get(&app, &token, "/api/v1/visits?has_conflict=true").await;
    assert_eq!(ids(&flagged), [visit_id.to_string()]);
    assert_eq!(flagged["visits"][0]["open_conflicts"], 1);
    let queue = get(&app, &token, "/api/v1/conflicts").await;
    assert_eq!(queue["total"], 1, "{queue}");
    let conflict = &queue["conflicts"][0];
    assert_eq!(conflict["kind"], "concurrent_write");
    assert_eq!(conflict["field"], "follow_up");
    assert_eq!(conflict["rule"], "lww");
    assert_eq!(conflict["actions"], json!(["keep", "other", "new"]));
    let winner_value = if conflict["winner"] == "server" {
        &conflict["local_value"]
    } else {
        &conflict["remote_value"]
    };
    let other_value = if conflict["winner"] == "server" {
        conflict["remote_value"].clone()
    } else {
        conflict["local_value"].clone()
    };
    let stored = get(&app, &token, &format!("/api/v1/visits/{visit_id}")).await;
    assert_eq!(&stored["record"]["follow_up"], winner_value);

    let id = conflict["id"].as_str().unwrap().to_owned();
    let (status, body) = resolve(&app, &token, &id, json!({"action": "other"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["resolution"]["action"], "other");
    let (status, body) = resolve(&app, &token, &id, json!({"action": "keep"})).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");

    // The chosen value is a normal change: both phones receive it.
    for phone in [&mut phone_a, &mut phone_b] {
        phone.pull_all(&app).await;
        let record = phone.get(Entity::Visit, visit_id).unwrap();
        assert_eq!(record.get("follow_up"), Some(other_value.clone()));
    }
    let detail = get(&app, &token, &format!("/api/v1/visits/{visit_id}")).await;
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["actor_role"], "supervisor");
    assert_eq!(last["changes"][0]["field"], "follow_up");
    let open = get(&app, &token, "/api/v1/conflicts").await;
    assert_eq!(open["total"], 0);
    let resolved = get(&app, &token, "/api/v1/conflicts?status=resolved").await;
    assert_eq!(resolved["total"], 1);
}

async fn notices_are_acknowledged_and_the_queue_keeps_to_the_town(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    // Two phones record a visit to the same child on the same day.
    let mut phone_a = Device::sign_in(&app, "director-a1").await;
    let mut phone_b = Device::sign_in(&app, "director-a1").await;
    visit(
        &app,
        &mut phone_a,
        child,
        fixture.village_a1,
        &day_at(1, 9),
        &[],
    )
    .await;
    visit(
        &app,
        &mut phone_b,
        child,
        fixture.village_a1,
        &day_at(1, 16),
        &[],
    )
    .await;

    let other_town = app.token_for("supervisor-b").await;
    assert_eq!(
        get(&app, &other_town, "/api/v1/conflicts").await["total"],
        0
    );

    let token = app.token_for("supervisor-a").await;
    let queue = get(&app, &token, "/api/v1/conflicts?kind=possible_duplicate").await;
    assert_eq!(queue["total"], 1, "{queue}");
    let notice = &queue["conflicts"][0];
    assert_eq!(notice["actions"], json!(["keep"]));
    let id = notice["id"].as_str().unwrap().to_owned();

    let (status, body) = resolve(&app, &other_town, &id, json!({"action": "keep"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = resolve(&app, &token, &id, json!({"action": "other"})).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = resolve(
        &app,
        &token,
        &id,
        json!({"action": "keep", "note": "两次不同时间的走访"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resolution"]["note"], "两次不同时间的走访");
    let (status, body) = resolve(
        &app,
        &token,
        &Uuid::new_v4().to_string(),
        json!({"action": "keep"}),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

async fn a_conflict_moves_with_its_child_to_the_town_it_is_transferred_to(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let mut phone_a = Device::sign_in(&app, "director-a1").await;
    let visit_id = visit(
        &app,
        &mut phone_a,
        child,
        fixture.village_a1,
        &day_at(1, 9),
        &[],
    )
    .await;
    let mut phone_b = Device::sign_in(&app, "director-a1").await;
    phone_a.pull_all(&app).await;
    phone_b.pull_all(&app).await;
    for (phone, text) in [(&mut phone_a, "下周电话回访"), (&mut phone_b, "联系学校")] {
        let edit = phone
            .update(Entity::Visit, visit_id)
            .set("follow_up", json!(text))
            .build();
        phone.push(&app, &[edit]).await;
    }
    let town_a = app.token_for("supervisor-a").await;
    let town_b = app.token_for("supervisor-b").await;
    let queue = get(&app, &town_a, "/api/v1/conflicts").await;
    assert_eq!(queue["total"], 1, "{queue}");
    let conflict = &queue["conflicts"][0];
    // The queue names what the conflict is about.
    assert_eq!(conflict["child_id"], json!(child));
    assert_eq!(conflict["child_name"], "张小花");
    assert!(conflict["visited_at"].is_string(), "{conflict}");
    let id = conflict["id"].as_str().unwrap().to_owned();
    assert_eq!(get(&app, &town_b, "/api/v1/conflicts").await["total"], 0);

    // The district moves the child to town B: its visit is town B's now,
    // and so is the conflict about it.
    admin.pull_all(&app).await;
    let transfer = admin
        .update(Entity::Child, child)
        .set("village_id", json!(fixture.village_b1))
        .build();
    admin.push(&app, &[transfer]).await;
    assert_eq!(get(&app, &town_a, "/api/v1/conflicts").await["total"], 0);
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/visits/{visit_id}"),
            Some(&town_a),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = resolve(&app, &town_a, &id, json!({"action": "keep"})).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let queue = get(&app, &town_b, "/api/v1/conflicts").await;
    assert_eq!(queue["total"], 1, "{queue}");
    assert_eq!(queue["conflicts"][0]["id"], json!(id));
    let (status, body) = resolve(&app, &town_b, &id, json!({"action": "keep"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["resolved_by_name"], "测试 supervisor-b");
    assert_eq!(body["child_name"], "张小花");
    // The district sees it wherever the child is.
    let admin_token = app.token_for("admin").await;
    let all = get(&app, &admin_token, "/api/v1/conflicts?status=all").await;
    assert_eq!(all["total"], 1, "{all}");
}

/// The visits a result names as possible duplicates.
fn duplicates_of(result: &MutationResult) -> Vec<Uuid> {
    let flags = match result {
        MutationResult::Applied { flags, .. } | MutationResult::Merged { flags, .. } => flags,
        other => panic!("not applied: {other:?}"),
    };
    let mut others: Vec<Uuid> = flags
        .iter()
        .filter_map(|flag| match flag {
            Flag::PossibleDuplicate { other_visit_id } => Some(*other_visit_id),
            _ => None,
        })
        .collect();
    others.sort();
    others
}

/// The push reads a day's visits without those of the one phone its
/// visits of that day were recorded on (never their duplicates), yet a
/// visit is still checked against every other: a stored visit that names
/// no phone, another phone's, and in the same push a visit that names no
/// phone counts them all.
async fn a_visit_is_checked_against_every_other_visit_of_its_day_whatever_its_push_holds(
    app: TestApp,
) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let mut phone_a = Device::sign_in(&app, "director-a1").await;
    let mut phone_b = Device::sign_in(&app, "director-a1").await;
    let at = |hour: u32| day_at(1, hour).replace(":00:00+", ":30:00+");
    let sorted = |mut ids: Vec<Uuid>| {
        ids.sort();
        ids
    };
    let (no_phone_before, builder) = phone_a.new_visit(child, fixture.village_a1, &at(7));
    let response = phone_a
        .push(&app, &[builder.set("device_id", Value::Null).build()])
        .await;
    assert!(duplicates_of(&response.results[0]).is_empty());
    let first = visit(&app, &mut phone_a, child, fixture.village_a1, &at(8), &[]).await;
    let (second, builder) = phone_b.new_visit(child, fixture.village_a1, &at(9));
    let response = phone_b.push(&app, &[builder.build()]).await;
    assert_eq!(
        duplicates_of(&response.results[0]),
        sorted(vec![no_phone_before, first])
    );

    // Phone A alone: its day is read without phone A's visits.
    let (third, builder) = phone_a.new_visit(child, fixture.village_a1, &at(10));
    let response = phone_a.push(&app, &[builder.build()]).await;
    assert_eq!(
        duplicates_of(&response.results[0]),
        sorted(vec![no_phone_before, second])
    );

    // With a visit naming no phone beside it: the day is read whole.
    let (fourth, same_phone) = phone_a.new_visit(child, fixture.village_a1, &at(11));
    let (_, no_phone) = phone_a.new_visit(child, fixture.village_a1, &at(12));
    let no_phone = no_phone.set("device_id", Value::Null);
    let response = phone_a
        .push(&app, &[same_phone.build(), no_phone.build()])
        .await;
    assert_eq!(
        duplicates_of(&response.results[0]),
        sorted(vec![no_phone_before, second])
    );
    assert_eq!(
        duplicates_of(&response.results[1]),
        sorted(vec![no_phone_before, first, second, third, fourth])
    );
}
