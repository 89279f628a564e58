//! The sync API end to end with simulated phones: exactly-once push,
//! scoped bootstrap and pull, conflicts kept, transfers purged and
//! delivered whole, protocol and device refusals, and a gap-free cursor.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_server::entity::{applied_mutation, conflict, outbox, register_event, visit};
use seedling_server::service::audit;
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};
use sync_core::protocol::{Mutation, MutationResult};
use sync_core::record::Entity;
use uuid::Uuid;

on_both_backends!(
    a_retried_push_applies_exactly_once,
    a_create_on_an_id_that_exists_is_refused_and_changes_nothing,
    a_fresh_device_bootstraps_only_its_scope,
    concurrent_edits_merge_and_keep_the_losing_value,
    a_director_cannot_write_outside_their_village,
    a_transferred_child_leaves_one_village_and_arrives_whole_in_another,
    an_urgent_visit_goes_first_and_raises_an_alert,
    old_apps_and_lost_phones_are_refused_clearly,
    a_pull_pages_through_everything_with_a_matching_checksum,
    a_compact_pull_carries_exactly_the_records_of_a_full_one,
    an_approved_visit_is_locked_and_a_later_correction_becomes_an_amendment,
    implausible_records_are_refused_with_a_reason_and_kept,
    text_with_a_nul_character_is_refused_and_the_rest_applies,
    pull_answers_are_gzip_compressed,
    a_record_with_only_its_required_fields_is_stored,
    the_same_push_sent_twice_at_once_applies_once,
    a_visit_recorded_offline_after_a_transfer_is_kept_and_follows_the_child,
    a_visit_the_same_day_after_a_transfer_to_another_town_is_flagged_for_both_towns,
    a_phone_clock_a_year_ahead_is_restamped_and_flagged_and_cannot_win_later_edits,
    a_cursor_for_another_scope_or_account_is_refused_and_lists_nothing,
    refusals_stay_in_the_senders_queue_and_are_bounded,
    a_moved_director_loses_the_old_village_and_receives_the_new_one,
    an_exited_child_leaves_the_village_phones_but_not_the_town,
    every_sync_read_and_write_of_a_child_is_audited,
    a_server_at_its_sync_cap_answers_busy_and_serves_again_when_a_slot_frees,
    a_sync_beyond_the_cap_waits_its_turn_and_is_served,
    a_sync_that_waits_past_the_deadline_is_answered_busy,
);

async fn create_child(app: &TestApp, admin: &mut Device, village: Uuid, name: &str) -> Uuid {
    admin.create_child(app, village, name).await
}

fn new_visit(phone: &mut Device, child: Uuid, village: Uuid, visited_at: &str) -> (Uuid, Mutation) {
    let (id, builder) = phone.new_visit(child, village, visited_at);
    (
        id,
        builder
            .set("observations", json!({ "living": "生活正常" }))
            .build(),
    )
}

fn today_at(hour: u32) -> String {
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    format!("{day}T{hour:02}:00:00+08:00")
}

async fn a_retried_push_applies_exactly_once(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "李小明").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(10));

    let first = phone.push(&app, std::slice::from_ref(&m)).await;
    assert!(
        matches!(first.results[0], MutationResult::Applied { version: 1, .. }),
        "{:?}",
        first.results
    );
    // The answer was lost; the phone sends the same mutation again, twice.
    let second = phone.push(&app, std::slice::from_ref(&m)).await;
    let third = phone.push(&app, &[m.clone(), m]).await;
    assert_eq!(
        second.results, first.results,
        "a retry answers the stored outcome"
    );
    assert_eq!(
        third.results,
        vec![first.results[0].clone(), first.results[0].clone()]
    );

    let db = app.db();
    assert_eq!(visit::Entity::find().count(db).await.unwrap(), 1);
    let stored = visit::Entity::find_by_id(visit_id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.version, 1,
        "a retry must not change the record again"
    );
    assert_eq!(
        applied_mutation::Entity::find()
            .filter(applied_mutation::Column::RecordId.eq(visit_id))
            .count(db)
            .await
            .unwrap(),
        1
    );
}

/// A create names a new record: a second create with the same id (another
/// phone's id clash, a client that lost track of what it sent) must not
/// merge into the first record, live or deleted; a retry of the first
/// create's own mutation still replays its answer.
async fn a_create_on_an_id_that_exists_is_refused_and_changes_nothing(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "周小雨").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, first) = new_visit(&mut phone, child, fixture.village_a1, &today_at(9));
    let answer = phone.push(&app, std::slice::from_ref(&first)).await;
    assert!(matches!(
        answer.results[0],
        MutationResult::Applied { version: 1, .. }
    ));

    let mut other = Device::sign_in(&app, "director-a1").await;
    let clash = other
        .create(Entity::Visit, visit_id)
        .set("child_id", json!(child))
        .set("author_id", json!(other.user_id))
        .set("village_id", json!(fixture.village_a1))
        .set("kind", json!("phone_follow_up"))
        .set("visited_at", json!(today_at(11)))
        .set("review_status", json!("draft"))
        .build();
    let answer = other.push(&app, std::slice::from_ref(&clash)).await;
    let MutationResult::Rejected { reason, .. } = &answer.results[0] else {
        panic!(
            "a create on an existing id was not refused: {:?}",
            answer.results
        );
    };
    assert_eq!(*reason, sync_core::merge::Reason::IdExists);
    let stored = visit::Entity::find_by_id(visit_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((stored.version, stored.kind.as_str()), (1, "home_visit"));

    // The first create's own retry still answers its stored outcome.
    let again = phone.push(&app, std::slice::from_ref(&first)).await;
    assert!(matches!(
        again.results[0],
        MutationResult::Applied { version: 1, .. }
    ));

    // Deleted: the id stays taken, the tombstone stays.
    phone.pull_all(&app).await;
    let delete =
        sync_core::testing::MutationBuilder::delete(Entity::Visit, visit_id, 1, phone.tick())
            .id(Uuid::new_v4())
            .build();
    let answer = phone.push(&app, &[delete]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Applied { .. }),
        "{:?}",
        answer.results
    );
    let clash = other
        .create(Entity::Visit, visit_id)
        .set("child_id", json!(child))
        .set("author_id", json!(other.user_id))
        .set("village_id", json!(fixture.village_a1))
        .set("kind", json!("home_visit"))
        .set("visited_at", json!(today_at(12)))
        .set("review_status", json!("draft"))
        .build();
    let answer = other.push(&app, &[clash]).await;
    assert!(
        matches!(
            answer.results[0],
            MutationResult::Rejected {
                reason: sync_core::merge::Reason::IdExists,
                ..
            }
        ),
        "{:?}",
        answer.results
    );
}

async fn a_fresh_device_bootstraps_only_its_scope(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let mine = create_child(&app, &mut admin, fixture.village_a1, "甲一村的孩子").await;
    let neighbour = create_child(&app, &mut admin, fixture.village_a2, "甲二村的孩子").await;
    let elsewhere = create_child(&app, &mut admin, fixture.village_b1, "乙一社区的孩子").await;
    let mut author = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut author, mine, fixture.village_a1, &today_at(9));
    author.push(&app, &[m]).await;

    let mut fresh = Device::sign_in(&app, "director-a1").await;
    fresh.pull_all(&app).await;
    assert!(fresh.get(Entity::Child, mine).is_some());
    assert!(
        fresh.get(Entity::Visit, visit_id).is_some(),
        "the director's own visit reaches their other phone"
    );
    assert!(
        fresh.get(Entity::Child, neighbour).is_none(),
        "another village's child leaked"
    );
    assert!(fresh.get(Entity::Child, elsewhere).is_none());
    assert_eq!(fresh.last_checksum, Some(fresh.checksum()));

    let mut supervisor = Device::sign_in(&app, "supervisor-a").await;
    supervisor.pull_all(&app).await;
    assert!(
        supervisor.get(Entity::Child, mine).is_some()
            && supervisor.get(Entity::Child, neighbour).is_some()
    );
    assert!(
        supervisor.get(Entity::Child, elsewhere).is_none(),
        "another town's child leaked"
    );
    assert_eq!(supervisor.last_checksum, Some(supervisor.checksum()));

    let mut district = Device::sign_in(&app, "admin").await;
    district.pull_all(&app).await;
    assert_eq!(district.records.len(), 4);
}

async fn concurrent_edits_merge_and_keep_the_losing_value(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "张小花").await;
    let mut phone_a = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut phone_a, child, fixture.village_a1, &today_at(14));
    phone_a.push(&app, &[m]).await;
    let mut phone_b = Device::sign_in(&app, "director-a1").await;
    phone_a.pull_all(&app).await;
    phone_b.pull_all(&app).await;

    // Both phones edit the same field offline, from version 1.
    let edit_a = phone_a
        .update(Entity::Visit, visit_id)
        .set("follow_up", json!("下周电话回访"))
        .build();
    let edit_b = phone_b
        .update(Entity::Visit, visit_id)
        .set("follow_up", json!("联系学校"))
        .build();
    let first = phone_a.push(&app, &[edit_a]).await;
    assert!(
        matches!(first.results[0], MutationResult::Applied { version: 2, .. }),
        "{:?}",
        first.results
    );
    let second = phone_b.push(&app, &[edit_b]).await;
    // Which value wins depends on the two clocks; the record changes only if B's does.
    let MutationResult::Merged {
        conflicts, version, ..
    } = &second.results[0]
    else {
        panic!("expected a merge: {:?}", second.results);
    };
    assert_eq!(conflicts.len(), 1);
    let merged_version = *version;
    assert!(
        merged_version == 2 || merged_version == 3,
        "{merged_version}"
    );

    // The losing value is kept for the supervisor.
    let rows = conflict::Entity::find()
        .filter(conflict::Column::RecordId.eq(visit_id))
        .filter(conflict::Column::Kind.eq("concurrent_write"))
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let values = [
        rows[0].local_value.clone().unwrap(),
        rows[0].remote_value.clone().unwrap(),
    ];
    assert!(
        values.contains(&json!("下周电话回访")) && values.contains(&json!("联系学校")),
        "{values:?}"
    );

    // Both phones converge on the server's copy.
    phone_a.pull_all(&app).await;
    phone_b.pull_all(&app).await;
    let a = phone_a.get(Entity::Visit, visit_id).unwrap();
    assert_eq!(Some(a), phone_b.get(Entity::Visit, visit_id));
    assert_eq!(a.version, merged_version);
    let winner = a.get_str("follow_up").unwrap();
    assert!(winner == "下周电话回访" || winner == "联系学校");
}

async fn a_director_cannot_write_outside_their_village(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "李四").await;
    let mut outsider = Device::sign_in(&app, "director-b1").await;
    let (visit_id, m) = new_visit(&mut outsider, child, fixture.village_a1, &today_at(11));
    let response = outsider.push(&app, &[m]).await;
    let MutationResult::Rejected { reason, .. } = &response.results[0] else {
        panic!("expected a rejection: {:?}", response.results);
    };
    assert_eq!(serde_json::to_value(reason).unwrap(), "out_of_scope");
    assert!(
        visit::Entity::find_by_id(visit_id)
            .one(app.db())
            .await
            .unwrap()
            .is_none()
    );
    // The refused mutation is kept where a supervisor can see it.
    let kept = conflict::Entity::find()
        .filter(conflict::Column::RecordId.eq(visit_id))
        .filter(conflict::Column::Kind.eq("rejected_mutation"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(kept, 1);

    // Nor record, in their own village, a visit to another village's child.
    let mut director_b = Device::sign_in(&app, "director-b1").await;
    let (_, foreign) = new_visit(&mut director_b, child, fixture.village_b1, &today_at(12));
    let response = director_b.push(&app, &[foreign]).await;
    let MutationResult::Rejected { reason, .. } = &response.results[0] else {
        panic!(
            "a visit to another village's child must be refused: {:?}",
            response.results
        );
    };
    assert_eq!(serde_json::to_value(reason).unwrap(), "out_of_scope");

    // A director cannot change a child's category either: that field is refused, the rest applies.
    let mut director = Device::sign_in(&app, "director-a1").await;
    director.pull_all(&app).await;
    let edit = director
        .update(Entity::Child, child)
        .set("category", json!("left_behind"))
        .set("guardian_phone", json!("13800000000"))
        .build();
    let response = director.push(&app, &[edit]).await;
    let MutationResult::Merged { refusals, .. } = &response.results[0] else {
        panic!("expected a partial merge: {:?}", response.results);
    };
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].field, "category");
    director.pull_all(&app).await;
    let stored = director.get(Entity::Child, child).unwrap();
    assert_eq!(stored.get_str("category"), Some("in_difficulty"));
    assert_eq!(stored.get_str("guardian_phone"), Some("13800000000"));
}

async fn a_transferred_child_leaves_one_village_and_arrives_whole_in_another(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "赵小军").await;
    let mut old_director = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut old_director, child, fixture.village_a1, &today_at(8));
    old_director.push(&app, &[m]).await;
    old_director.pull_all(&app).await;
    let mut new_director = Device::sign_in(&app, "director-b1").await;
    new_director.pull_all(&app).await; // its cursor is now past the child's history
    assert!(new_director.records.is_empty());
    let mut supervisor_a = Device::sign_in(&app, "supervisor-a").await;
    supervisor_a.pull_all(&app).await;
    assert!(supervisor_a.get(Entity::Visit, visit_id).is_some());

    admin.pull_all(&app).await;
    let transfer = admin
        .update(Entity::Child, child)
        .set("village_id", json!(fixture.village_b1))
        .build();
    assert!(matches!(
        admin.push(&app, &[transfer]).await.results[0],
        MutationResult::Applied { .. }
    ));

    old_director.pull_all(&app).await;
    assert!(
        old_director.get(Entity::Child, child).is_none(),
        "the old village is told to purge the child"
    );
    assert!(
        old_director.get(Entity::Visit, visit_id).is_none(),
        "…and its visits"
    );
    assert_eq!(old_director.last_checksum, Some(old_director.checksum()));
    supervisor_a.pull_all(&app).await;
    assert!(
        supervisor_a.get(Entity::Visit, visit_id).is_none(),
        "the child left town A"
    );

    // A phone of the old village that bootstraps page by page never sees the
    // child's current (new village) data, though the child's old rows come
    // before the purge in its change log.
    let mut late = Device::sign_in(&app, "director-a1").await;
    for _ in 0..50 {
        let (status, body) = late.pull_page(&app, 1).await;
        assert_eq!(status, StatusCode::OK);
        let leaked = body["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == child.to_string());
        assert!(!leaked, "the old village received the moved child: {body}");
        if body["has_more"] == false {
            break;
        }
    }

    new_director.pull_all(&app).await;
    assert!(
        new_director.get(Entity::Child, child).is_some(),
        "the new village receives the child whole"
    );
    assert!(
        new_director.get(Entity::Visit, visit_id).is_some(),
        "…with its earlier visits"
    );
    assert_eq!(new_director.last_checksum, Some(new_director.checksum()));

    let transfers = register_event::Entity::find()
        .filter(register_event::Column::ChildId.eq(child))
        .filter(register_event::Column::Kind.eq("transferred"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(transfers, 1, "the transfer is a register event");
}

async fn an_urgent_visit_goes_first_and_raises_an_alert(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "陈小雨").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (_, routine) = new_visit(&mut phone, child, fixture.village_a1, &today_at(9));
    let urgent_id = Uuid::new_v4();
    let (author, device) = (phone.user_id, phone.id);
    let urgent = phone
        .create(Entity::Visit, urgent_id)
        .set("child_id", json!(child))
        .set("author_id", json!(author))
        .set("device_id", json!(device))
        .set("village_id", json!(fixture.village_a1))
        .set("kind", json!("home_visit"))
        .set("visited_at", json!(today_at(16)))
        .set("review_status", json!("submitted"))
        .add(
            "risk_flags",
            json!({ "id": "r1", "kind": "suspected_abuse", "urgent": true, "note": "身上有伤" }),
        )
        .build();
    let response = phone.push(&app, &[routine, urgent]).await;
    let first = serde_json::to_value(&response.results[0]).unwrap();
    assert_eq!(
        first["record_id"],
        urgent_id.to_string(),
        "the urgent visit is applied first"
    );
    assert!(
        first["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["flag"] == "urgent"),
        "{first}"
    );

    let alerts = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq("urgent_alert"))
        .filter(outbox::Column::AggregateId.eq(urgent_id))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(
        alerts, 1,
        "an alert is queued for the district and the province"
    );
    let queued = conflict::Entity::find()
        .filter(conflict::Column::RecordId.eq(urgent_id))
        .filter(conflict::Column::Kind.eq("urgent"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(queued, 1, "the supervisor sees the alert in their queue");
}

async fn old_apps_and_lost_phones_are_refused_clearly(app: TestApp) {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    Fixture::load(&app).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (status, body) = phone.push_raw(&app, &[], 0).await;
    assert_error(
        status,
        &body,
        StatusCode::UPGRADE_REQUIRED,
        "unsupported_protocol",
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("update the app")
    );
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/sync/pull?protocol_version=99",
            Some(&phone.token),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UPGRADE_REQUIRED,
        "unsupported_protocol",
    );
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/sync/pull?protocol_version=1&cursor=garbage",
            Some(&phone.token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");

    let device = seedling_server::repo::devices::find(app.db(), phone.id)
        .await
        .unwrap()
        .unwrap();
    let mut lost = device.into_active_model();
    lost.state = Set("lost".to_owned());
    lost.update(app.db()).await.unwrap();
    let (status, body) = phone.pull_page(&app, 10).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
    let (status, body) = phone.push_raw(&app, &[], 1).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
}

async fn a_pull_pages_through_everything_with_a_matching_checksum(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "周小宝").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let mut batch = Vec::new();
    for hour in 0..23 {
        let (_, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(hour));
        batch.push(m);
    }
    phone.push(&app, &batch).await;
    let mut fresh = Device::sign_in(&app, "director-a1").await;
    let mut pages = 0;
    loop {
        let (status, body) = fresh.pull_page(&app, 5).await;
        assert_eq!(status, StatusCode::OK);
        pages += 1;
        if body["has_more"] == false {
            break;
        }
        assert!(
            body["changes"].as_array().unwrap().len()
                + body["purges"].as_array().map_or(0, Vec::len)
                <= 5
        );
    }
    assert_eq!(pages, 5, "24 changes in pages of 5");
    assert_eq!(fresh.records.len(), 24);
    assert_eq!(fresh.last_checksum, Some(fresh.checksum()));
    // Once caught up, a pull answers nothing new and keeps the cursor.
    let cursor = fresh.cursor.clone();
    let (_, body) = fresh.pull_page(&app, 5).await;
    assert!(body["changes"].as_array().unwrap().is_empty());
    assert_eq!(fresh.cursor, cursor);
}

/// Pages of a full and a compact pull side by side: the same records once
/// rebuilt (mixed clocks, a set, a tombstone, a masked identity number
/// included), the checksum on the compact one's last page only, and fewer
/// bytes.
async fn a_compact_pull_carries_exactly_the_records_of_a_full_one(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "周小宝").await;
    let number = admin
        .update(Entity::Child, child)
        .set("id_number", json!("110101201503021234"))
        .build();
    admin.push(&app, &[number]).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let mut batch = Vec::new();
    let mut visits = Vec::new();
    for hour in 0..7 {
        let (id, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(hour));
        visits.push(id);
        batch.push(m);
    }
    phone.push(&app, &batch).await;
    phone.pull_all(&app).await;
    // One visit edited (its fields now carry two stamps), one deleted.
    let edit = phone
        .update(Entity::Visit, visits[0])
        .set("location", json!("school"))
        .add(
            "needs",
            json!({"id": "n1", "area": "study", "note": "书包"}),
        )
        .build();
    let delete =
        sync_core::testing::MutationBuilder::delete(Entity::Visit, visits[1], 1, phone.tick())
            .id(Uuid::new_v4())
            .build();
    let answer = phone.push(&app, &[edit, delete]).await;
    assert!(
        answer
            .results
            .iter()
            .all(|r| !matches!(r, MutationResult::Rejected { .. })),
        "{:?}",
        answer.results
    );

    for username in ["director-a1", "supervisor-a"] {
        let mut full = Device::sign_in(&app, username).await;
        let mut compact = Device::sign_in(&app, username).await;
        compact.encoding = sync_core::protocol::PullEncoding::Compact;
        let (mut full_bytes, mut compact_bytes, mut pages) = (0, 0, 0);
        loop {
            let (status, whole) = full.pull_page(&app, 3).await;
            assert_eq!(status, StatusCode::OK, "{whole}");
            let (status, small) = compact.pull_page(&app, 3).await;
            assert_eq!(status, StatusCode::OK, "{small}");
            pages += 1;
            full_bytes += whole.to_string().len();
            compact_bytes += small.to_string().len();
            assert_eq!(small["encoding"], "compact");
            assert!(whole.get("encoding").is_none(), "{whole}");
            assert_eq!(small["has_more"], whole["has_more"]);
            assert_eq!(small["purges"], whole["purges"]);
            assert!(whole["scope_checksum"].is_object(), "{whole}");
            if whole["has_more"] == true {
                assert!(small.get("scope_checksum").is_none(), "{small}");
            } else {
                assert_eq!(small["scope_checksum"], whole["scope_checksum"]);
                break;
            }
        }
        assert!(pages > 2, "{username}: {pages} pages");
        assert_eq!(compact.records, full.records, "{username}");
        assert_eq!(compact.records.len(), 8, "{username}");
        assert_eq!(compact.last_checksum, Some(compact.checksum()));
        let edited = &compact.records[&(Entity::Visit, visits[0])];
        assert_eq!(edited.get_str("location"), Some("school"));
        assert!(compact.records[&(Entity::Visit, visits[1])].is_deleted());
        let held = compact.records[&(Entity::Child, child)].get_str("id_number");
        match username {
            "director-a1" => assert_eq!(held, None),
            _ => assert!(held.is_some_and(|n| n.contains('*')), "{held:?}"),
        }
        assert!(
            compact_bytes * 2 < full_bytes,
            "{username}: {compact_bytes} bytes compact, {full_bytes} full"
        );
    }
    // An encoding the server does not know is refused, not guessed at.
    let (status, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/sync/pull?protocol_version=1&encoding=columnar",
            Some(&phone.token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
}

async fn an_approved_visit_is_locked_and_a_later_correction_becomes_an_amendment(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "孙小雪").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(10));
    phone.push(&app, &[m]).await;
    phone.pull_all(&app).await;

    // A director cannot approve their own visit.
    let self_approval = phone
        .update(Entity::Visit, visit_id)
        .set("review_status", json!("approved"))
        .build();
    let answer = phone.push(&app, &[self_approval]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Rejected { .. }),
        "{:?}",
        answer.results
    );

    let mut supervisor = Device::sign_in(&app, "supervisor-a").await;
    supervisor.pull_all(&app).await;
    let approve = supervisor
        .update(Entity::Visit, visit_id)
        .set("review_status", json!("approved"))
        .set("review_comment", json!("记录完整"))
        .build();
    let answer = supervisor.push(&app, &[approve]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Applied { .. }),
        "{:?}",
        answer.results
    );
    let stored = visit::Entity::find_by_id(visit_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.review_status, "approved");
    assert_eq!(
        stored.reviewed_by,
        Some(supervisor.user_id),
        "the reviewer is recorded"
    );

    // The director's phone, still at the old version, corrects the text.
    let correction = phone
        .update(Entity::Visit, visit_id)
        .set("follow_up", json!("补充：已联系村委"))
        .build();
    let answer = phone.push(&app, &[correction]).await;
    let MutationResult::Rejected {
        reason, amendment, ..
    } = &answer.results[0]
    else {
        panic!("an approved visit must not change: {:?}", answer.results);
    };
    assert_eq!(serde_json::to_value(reason).unwrap(), "locked");
    assert!(amendment, "the correction is kept as a proposed amendment");
    let after = visit::Entity::find_by_id(visit_id)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        after.version, stored.version,
        "the approved visit is unchanged"
    );
    assert_eq!(after.follow_up, None);
    let amendments = conflict::Entity::find()
        .filter(conflict::Column::RecordId.eq(visit_id))
        .filter(conflict::Column::Kind.eq("amendment"))
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(amendments.len(), 1);
    assert!(
        amendments[0]
            .remote_value
            .as_ref()
            .unwrap()
            .to_string()
            .contains("补充：已联系村委")
    );
}

async fn implausible_records_are_refused_with_a_reason_and_kept(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "吴小东").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let next_year = format!(
        "{}-06-01T10:00:00+08:00",
        chrono::Utc::now()
            .format("%Y")
            .to_string()
            .parse::<i32>()
            .unwrap()
            + 1
    );
    let (future_id, future) = new_visit(&mut phone, child, fixture.village_a1, &next_year);
    let (_, before_birth) = new_visit(
        &mut phone,
        child,
        fixture.village_a1,
        "2010-01-01T10:00:00+08:00",
    );
    let (_, unknown_child) =
        new_visit(&mut phone, Uuid::new_v4(), fixture.village_a1, &today_at(9));
    let item_id = Uuid::new_v4();
    let orphan_item = phone
        .create(Entity::CasePlanItem, item_id)
        .set("child_id", json!(Uuid::new_v4()))
        .set("village_id", json!(fixture.village_a1))
        .set("area", json!("study"))
        .set("description", json!("学业辅导"))
        .set("status", json!("open"))
        .build();
    let answer = phone
        .push(&app, &[future, before_birth, unknown_child, orphan_item])
        .await;
    let reasons: Vec<String> = answer
        .results
        .iter()
        .map(|r| match r {
            MutationResult::Rejected { reason, .. } => serde_json::to_value(reason)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned(),
            other => panic!("expected a rejection: {other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "visit_in_future",
            "visit_before_birth",
            "unknown_child",
            "unknown_child"
        ]
    );
    assert!(
        visit::Entity::find_by_id(future_id)
            .one(app.db())
            .await
            .unwrap()
            .is_none()
    );
    let kept = conflict::Entity::find()
        .filter(conflict::Column::Kind.eq("rejected_mutation"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(kept, 4, "every refused mutation is kept for the supervisor");
}

/// PostgreSQL's `jsonb` and `text` cannot hold U+0000: a value carrying
/// one is refused `invalid_value` on both databases — in a register, a set
/// item and deep in an object — and the rest of the push applies.
async fn text_with_a_nul_character_is_refused_and_the_rest_applies(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "郑小雨").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, visit) = phone.new_visit(child, fixture.village_a1, &today_at(9));
    let visit = visit
        .set("follow_up", json!("下周\u{0}再来"))
        .set("observations", json!({"home": {"note": "ok\u{0}"}}))
        .add(
            "needs",
            json!({"id": "n1", "area": "living", "note": "米\u{0}"}),
        )
        .add("needs", json!({"id": "n2", "area": "study"}))
        .set("location", json!("村委会"))
        .build();
    let (other_id, other) = new_visit(&mut phone, child, fixture.village_a1, &today_at(10));
    let answer = phone.push(&app, &[visit, other]).await;
    let MutationResult::Merged { refusals, .. } = &answer.results[0] else {
        panic!("expected the NUL fields refused: {:?}", answer.results);
    };
    let mut refused: Vec<(String, String)> = refusals
        .iter()
        .map(|r| {
            let reason = serde_json::to_value(r.reason).unwrap();
            (r.field.clone(), reason.as_str().unwrap().to_owned())
        })
        .collect();
    refused.sort();
    assert_eq!(
        refused,
        [
            ("follow_up".to_owned(), "invalid_value".to_owned()),
            ("needs".to_owned(), "invalid_value".to_owned()),
            ("observations".to_owned(), "invalid_value".to_owned()),
        ]
    );
    assert!(matches!(answer.results[1], MutationResult::Applied { .. }));
    phone.pull_all(&app).await;
    let stored = phone
        .get(Entity::Visit, visit_id)
        .expect("the visit applied");
    assert_eq!(stored.get_str("location"), Some("村委会"));
    assert_eq!(stored.get_str("follow_up"), None);
    let needs = stored.fields["needs"].value();
    assert_eq!(needs, json!([{"id": "n2", "area": "study"}]));
    assert!(phone.get(Entity::Visit, other_id).is_some());
    // The refused values are kept for the supervisor, the NUL replaced.
    let kept = conflict::Entity::find()
        .filter(conflict::Column::RecordId.eq(visit_id))
        .filter(conflict::Column::Kind.eq("refused_field"))
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(kept.len(), 3);
    let follow_up = kept
        .iter()
        .find(|row| row.field.as_deref() == Some("follow_up"))
        .expect("the follow-up kept");
    assert_eq!(follow_up.remote_value, Some(json!("下周\u{fffd}再来")));
}

async fn pull_answers_are_gzip_compressed(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    create_child(&app, &mut admin, fixture.village_a1, "郑小北").await;
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = raw
        .get(app.url("/api/v1/sync/pull?protocol_version=1"))
        .bearer_auth(&admin.token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip")
    );
}

async fn a_record_with_only_its_required_fields_is_stored(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = Uuid::new_v4();
    let bare_child = admin
        .create(Entity::Child, child)
        .set("name", json!("刘小一"))
        .set("birth_date", json!("2016-05-05"))
        .set("category", json!("left_behind"))
        .set("status", json!("active"))
        .set("village_id", json!(fixture.village_a1))
        .build();
    let answer = admin.push(&app, &[bare_child]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Applied { .. }),
        "{:?}",
        answer.results
    );

    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (author, village) = (phone.user_id, fixture.village_a1);
    let bare_visit = phone
        .create(Entity::Visit, Uuid::new_v4())
        .set("child_id", json!(child))
        .set("author_id", json!(author))
        .set("village_id", json!(village))
        .set("kind", json!("phone_follow_up"))
        .set("visited_at", json!(today_at(9)))
        .set("review_status", json!("draft"))
        .build();
    let bare_item = phone
        .create(Entity::CasePlanItem, Uuid::new_v4())
        .set("child_id", json!(child))
        .set("village_id", json!(village))
        .set("area", json!("psychology"))
        .set("description", json!("心理疏导"))
        .set("status", json!("open"))
        .build();
    let answer = phone.push(&app, &[bare_visit, bare_item]).await;
    for result in &answer.results {
        assert!(
            matches!(result, MutationResult::Applied { .. }),
            "{result:?}"
        );
    }
    phone.pull_all(&app).await;
    assert_eq!(phone.records.len(), 3);
}

async fn the_same_push_sent_twice_at_once_applies_once(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "何小南").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let mut batch = Vec::new();
    for hour in 8..14 {
        batch.push(new_visit(&mut phone, child, fixture.village_a1, &today_at(hour)).1);
    }
    let body = json!({
        "protocol_version": 1,
        "device_id": phone.id,
        "device_hlc": phone.tick(),
        "mutations": batch,
    });
    let send = || {
        app.http
            .post(app.url("/api/v1/sync/push"))
            .bearer_auth(&phone.token)
            .json(&body)
            .send()
    };
    let (first, second) = tokio::join!(send(), send());
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        second.status(),
        StatusCode::OK,
        "a duplicated request must not fail"
    );
    let first: serde_json::Value = first.json().await.unwrap();
    let second: serde_json::Value = second.json().await.unwrap();
    assert_eq!(
        first["results"], second["results"],
        "both copies answer the same outcomes"
    );
    assert_eq!(visit::Entity::find().count(app.db()).await.unwrap(), 6);
}

async fn a_visit_recorded_offline_after_a_transfer_is_kept_and_follows_the_child(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "马小川").await;
    let mut old_director = Device::sign_in(&app, "director-a1").await;
    old_director.pull_all(&app).await;

    // The district moves the child while the old director's phone is offline…
    admin.pull_all(&app).await;
    let transfer = admin
        .update(Entity::Child, child)
        .set("village_id", json!(fixture.village_a2))
        .build();
    admin.push(&app, &[transfer]).await;
    // The transfer took effect two days ago (the bureau recorded it late)…
    let event = register_event::Entity::find()
        .filter(register_event::Column::ChildId.eq(child))
        .filter(register_event::Column::Kind.eq("transferred"))
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    let mut backdated: register_event::ActiveModel = event.into();
    backdated.effective_date =
        sea_orm::Set((chrono::Utc::now() - chrono::Duration::days(2)).date_naive());
    sea_orm::ActiveModelTrait::update(backdated, app.db())
        .await
        .unwrap();
    // …and the old director's phone, offline, records a visit yesterday.
    let (visit_id, m) = new_visit(&mut old_director, child, fixture.village_a1, &today_at(15));
    let answer = old_director.push(&app, &[m]).await;
    let result = serde_json::to_value(&answer.results[0]).unwrap();
    assert_eq!(result["status"], "applied", "the visit is kept: {result}");
    assert!(
        result["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["flag"] == "visit_after_transfer"),
        "{result}"
    );

    old_director.records.insert(
        (Entity::Visit, visit_id),
        sync_core::record::Record::empty(Entity::Visit, visit_id),
    );
    old_director.pull_all(&app).await;
    assert!(old_director.get(Entity::Child, child).is_none());
    assert!(
        old_director.get(Entity::Visit, visit_id).is_none(),
        "the recording phone is told to drop its copy"
    );
    assert_eq!(old_director.last_checksum, Some(old_director.checksum()));

    let mut new_director = Device::sign_in(&app, "director-a2").await;
    new_director.pull_all(&app).await;
    assert!(
        new_director.get(Entity::Visit, visit_id).is_some(),
        "the visit follows the child"
    );
    let flagged = conflict::Entity::find()
        .filter(conflict::Column::RecordId.eq(visit_id))
        .filter(conflict::Column::Kind.eq("visit_after_transfer"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(flagged, 1, "the supervisor sees the flag");
}

/// Found by a phone fleet: a visit recorded offline on the day of the
/// child's transfer, after it, was applied with no flag, and the new
/// town's supervisor saw nothing. It is flagged, and both towns' queues
/// show the flag.
async fn a_visit_the_same_day_after_a_transfer_to_another_town_is_flagged_for_both_towns(
    app: TestApp,
) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "程小雨").await;
    let mut old_director = Device::sign_in(&app, "director-a1").await;
    old_director.pull_all(&app).await;

    admin.pull_all(&app).await;
    let transfer = admin
        .update(Entity::Child, child)
        .set("village_id", json!(fixture.village_b1))
        .build();
    admin.push(&app, &[transfer]).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // The old director, offline, visits the child a moment later.
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (visit_id, m) = new_visit(&mut old_director, child, fixture.village_a1, &now);
    let answer = old_director.push(&app, &[m]).await;
    let result = serde_json::to_value(&answer.results[0]).unwrap();
    assert_eq!(result["status"], "applied", "the visit is kept: {result}");
    assert!(
        result["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["flag"] == "visit_after_transfer"),
        "{result}"
    );
    for supervisor in ["supervisor-a", "supervisor-b"] {
        let token = app.token_for(supervisor).await;
        let (status, queue) = app
            .call(
                reqwest::Method::GET,
                "/api/v1/conflicts?kind=visit_after_transfer",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{queue}");
        let items = queue["conflicts"].as_array().cloned().unwrap_or_default();
        assert!(
            items.iter().any(|c| c["record_id"] == visit_id.to_string()),
            "{supervisor} does not see the flag: {queue}"
        );
    }
}

/// The clock-skew rule end to end (SYNC-PROTOCOL.md §1): a phone whose
/// clock runs a year ahead has its writes re-stamped with the server's
/// clock and flagged `clock_skewed`, so a later edit from a correct phone
/// still wins. A server that adopted the phone's clock would fail here.
async fn a_phone_clock_a_year_ahead_is_restamped_and_flagged_and_cannot_win_later_edits(
    app: TestApp,
) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "钟小年").await;
    let mut skewed = Device::sign_in(&app, "director-a1").await;
    let year_ms = 365 * 24 * 3600 * 1000;
    let now_ms = || chrono::Utc::now().timestamp_millis() as u64;
    skewed.clock = sync_core::clock::HlcClock::resume(
        sync_core::clock::Hlc::new(now_ms() + year_ms, 0, skewed.id),
        u64::MAX,
    );
    let (visit_id, m) = new_visit(&mut skewed, child, fixture.village_a1, &today_at(10));
    assert!(
        m.hlc.wall_ms > now_ms() + year_ms / 2,
        "the phone's clock is ahead"
    );
    let answer = skewed.push(&app, &[m]).await;
    let result = serde_json::to_value(&answer.results[0]).unwrap();
    assert_eq!(result["status"], "applied", "{result}");
    assert!(
        result["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["flag"] == "clock_skewed"),
        "{result}"
    );
    let after_push = now_ms();
    let mut reader = Device::sign_in(&app, "director-a1").await;
    reader.pull_all(&app).await;
    let stored = reader
        .get(Entity::Visit, visit_id)
        .expect("the visit")
        .clone();
    for (name, field) in &stored.fields {
        if let sync_core::record::Field::Register(register) = field {
            assert!(
                register.hlc.wall_ms <= after_push + 5 * 60 * 1000,
                "{name} kept the phone's clock {}",
                register.hlc
            );
        }
    }

    // The skewed phone edits first, a correct phone a moment later on the
    // same version: the later write wins. Had the server kept the phone's
    // year-ahead clock, the skewed value would beat every edit for a year.
    skewed
        .records
        .insert((Entity::Visit, visit_id), stored.clone());
    let early = skewed
        .update(Entity::Visit, visit_id)
        .set("follow_up", json!("不用回访"))
        .build();
    let answer = skewed.push(&app, &[early]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Applied { .. }),
        "{:?}",
        answer.results
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let later = reader
        .update(Entity::Visit, visit_id)
        .set("follow_up", json!("下周回访"))
        .build();
    reader.push(&app, &[later]).await;
    reader.pull_all(&app).await;
    assert_eq!(
        reader
            .get(Entity::Visit, visit_id)
            .and_then(|r| r.get_str("follow_up")),
        Some("下周回访"),
        "the correct phone's later edit wins"
    );
}

/// Found by an attack with a director's account: a cursor naming the
/// district (`<district id>.0`; every role sees the district's id) was
/// answered with purge notices listing every record id of the district.
/// Cursors are signed for their scope and account: a made-up one, an
/// edited one, or one made for another director is refused, and the
/// answer lists nothing.
async fn a_cursor_for_another_scope_or_account_is_refused_and_lists_nothing(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    for village in [fixture.village_a1, fixture.village_a2, fixture.village_b1] {
        create_child(&app, &mut admin, village, "儿童").await;
    }
    let mut other = Device::sign_in(&app, "director-a2").await;
    other.pull_all(&app).await;
    let theirs = other.cursor.clone().expect("a cursor");
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;
    let mine = phone.cursor.clone().expect("a cursor");
    let seq_edited = {
        let mut parts: Vec<&str> = mine.splitn(3, '.').collect();
        parts[1] = "0";
        parts.join(".")
    };
    for forged in [
        format!("{}.0", fixture.district.simple()),
        format!("{}.0", fixture.district),
        theirs,
        seq_edited,
        mine.replacen(
            &fixture.village_a1.simple().to_string(),
            &fixture.district.simple().to_string(),
            1,
        ),
    ] {
        let (status, body) = app
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/sync/pull?protocol_version=1&cursor={forged}"),
                Some(&phone.token),
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
        assert!(body.get("purges").is_none(), "{body}");
    }
    // The phone's own cursor still works.
    let (status, body) = phone.pull_page(&app, 100).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Found by an attack with a director's account: one push of visits to
/// children of other villages put an open `rejected_mutation`, with the
/// sender's text, into each target village's queue. A refusal for scope is
/// filed in the sender's own village only — their supervisor sees it, the
/// target town's does not — and at most 100 an hour per account.
async fn refusals_stay_in_the_senders_queue_and_are_bounded(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let target = create_child(&app, &mut admin, fixture.village_b1, "外镇的孩子").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let mutations: Vec<Mutation> = (0..120)
        .map(|_| new_visit(&mut phone, target, fixture.village_b1, &today_at(9)).1)
        .collect();
    let answer = phone.push(&app, &mutations).await;
    assert_eq!(answer.results.len(), 120);
    assert!(
        answer
            .results
            .iter()
            .all(|r| matches!(r, MutationResult::Rejected { .. })),
        "every one is refused"
    );
    let queue = |who: &'static str| {
        let app = &app;
        async move {
            let token = app.token_for(who).await;
            let (status, body) = app
                .call(
                    reqwest::Method::GET,
                    "/api/v1/conflicts?kind=rejected_mutation&limit=200",
                    Some(&token),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };
    let theirs = queue("supervisor-b").await;
    assert_eq!(
        theirs["total"], 0,
        "nothing in the target town's queue: {theirs}"
    );
    let mine = queue("supervisor-a").await;
    assert_eq!(
        mine["total"], 100,
        "bounded at 100 an hour: {}",
        mine["total"]
    );
    assert!(
        mine["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["village_id"] == fixture.village_a1.to_string()),
        "filed under the sender's village"
    );
}

async fn a_moved_director_loses_the_old_village_and_receives_the_new_one(app: TestApp) {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let old_child = create_child(&app, &mut admin, fixture.village_a1, "旧村的孩子").await;
    let new_child = create_child(&app, &mut admin, fixture.village_a2, "新村的孩子").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;
    assert!(phone.get(Entity::Child, old_child).is_some());

    // The bureau moves the director to village a2.
    let user = seedling_server::repo::users::find(app.db(), phone.user_id)
        .await
        .unwrap()
        .unwrap();
    let mut moved = user.into_active_model();
    moved.org_unit_id = Set(fixture.village_a2);
    moved.update(app.db()).await.unwrap();

    // The old token no longer carries the old village's scope.
    let (status, body) = phone.pull_page(&app, 100).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "stale_token");
    phone.sign_in_again(&app, "director-a1").await;
    phone.pull_all(&app).await;
    assert!(
        phone.get(Entity::Child, old_child).is_none(),
        "the old village's child is purged"
    );
    assert!(
        phone.get(Entity::Child, new_child).is_some(),
        "the new village arrives whole"
    );
    assert_eq!(phone.last_checksum, Some(phone.checksum()));
}

async fn an_exited_child_leaves_the_village_phones_but_not_the_town(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "满十八岁的孩子").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(10));
    phone.push(&app, &[m]).await;
    phone.pull_all(&app).await;
    let mut supervisor = Device::sign_in(&app, "supervisor-a").await;
    supervisor.pull_all(&app).await;

    admin.pull_all(&app).await;
    let exit = admin
        .update(Entity::Child, child)
        .set("status", json!("exited"))
        .set("exit_reason", json!("turned_18"))
        .set(
            "exit_date",
            json!((chrono::Utc::now() - chrono::Duration::days(1)).date_naive()),
        )
        .build();
    assert!(matches!(
        admin.push(&app, &[exit]).await.results[0],
        MutationResult::Applied { .. }
    ));

    phone.pull_all(&app).await;
    assert!(
        phone.get(Entity::Child, child).is_none(),
        "purged from the village's phones at once"
    );
    assert!(phone.get(Entity::Visit, visit_id).is_none());
    assert_eq!(phone.last_checksum, Some(phone.checksum()));
    supervisor.pull_all(&app).await;
    let kept = supervisor
        .get(Entity::Child, child)
        .expect("the town keeps the exited child");
    assert_eq!(kept.get_str("status"), Some("exited"));
    let exits = register_event::Entity::find()
        .filter(register_event::Column::ChildId.eq(child))
        .filter(register_event::Column::Kind.eq("exited"))
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0].reason.as_deref(), Some("turned_18"));
}

/// The audit rows of `action` that name `child`, as (actor, detail).
async fn audited(app: &TestApp, action: &str, child: Uuid) -> Vec<(Option<Uuid>, Value)> {
    audit::about_child(app.db(), child)
        .await
        .expect("read the audit trail")
        .into_iter()
        .filter(|row| row.action == action)
        .map(|row| (row.actor_id, row.detail.unwrap_or_default()))
        .collect()
}

async fn every_sync_read_and_write_of_a_child_is_audited(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "审计小明").await;
    let elsewhere = create_child(&app, &mut admin, fixture.village_b1, "别村的孩子").await;
    let created = audited(&app, "sync.push", child).await;
    assert_eq!(created.len(), 1, "the child's creation: {created:?}");
    assert_eq!(created[0].0, Some(admin.user_id));
    assert_eq!(created[0].1["records"]["child"], json!(1));

    // A director's visit: one entry for the push, naming the child.
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (_, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(10));
    phone.push(&app, std::slice::from_ref(&m)).await;
    let writes = audited(&app, "sync.push", child).await;
    assert_eq!(writes.len(), 2, "{writes:?}");
    let (actor, detail) = &writes[1];
    assert_eq!(*actor, Some(phone.user_id));
    assert_eq!(detail["device_id"], json!(phone.id));
    assert_eq!(detail["records"], json!({ "visit": 1 }));
    assert_eq!(detail["children"], json!([child]));
    // A retry changes nothing, so it writes no entry either.
    phone.push(&app, &[m]).await;
    assert_eq!(audited(&app, "sync.push", child).await.len(), 2);

    // A fresh phone's bootstrap: the pages that carried the child's
    // records name it, with the director as reader; the other village's
    // child is named by no read of this director.
    let mut fresh = Device::sign_in(&app, "director-a1").await;
    fresh.pull_all(&app).await;
    let reads = audited(&app, "sync.pull", child).await;
    let by_fresh: Vec<_> = reads
        .iter()
        .filter(|(_, detail)| detail["device_id"] == json!(fresh.id))
        .collect();
    assert!(
        !by_fresh.is_empty(),
        "the bootstrap read is audited: {reads:?}"
    );
    for (actor, detail) in &by_fresh {
        assert_eq!(*actor, Some(fresh.user_id));
        assert_eq!(detail["id_numbers"], json!("none"));
    }
    let counted: u64 = by_fresh
        .iter()
        .map(|(_, d)| {
            d["records"]["child"].as_u64().unwrap_or(0)
                + d["records"]["visit"].as_u64().unwrap_or(0)
        })
        .sum();
    assert!(
        counted >= 2,
        "the child and its visit were read: {by_fresh:?}"
    );
    assert!(
        audited(&app, "sync.pull", elsewhere)
            .await
            .iter()
            .all(|(actor, _)| *actor != Some(fresh.user_id)),
        "a read of another village's child is never put on this director"
    );

    let report = audit::verify(app.db()).await.expect("verify");
    assert!(report.intact, "{report:?}");
}

async fn a_server_at_its_sync_cap_answers_busy_and_serves_again_when_a_slot_frees(
    mut app: TestApp,
) {
    // No room to wait: a request beyond the cap is turned away at once.
    app.restart_with(|config| config.max_sync_queued = 0).await;
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "忙时的孩子").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(11));

    // Every slot taken, as by that many syncs in flight.
    let cap = u32::try_from(app.state.config.max_sync_in_flight).unwrap();
    let held = app
        .state
        .sync_slots
        .clone()
        .acquire_many_owned(cap)
        .await
        .unwrap();
    let (status, body) = phone
        .push_raw(
            &app,
            std::slice::from_ref(&m),
            sync_core::protocol::PROTOCOL_VERSION,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
    );
    let answer = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/v1/sync/pull?protocol_version={}",
            sync_core::protocol::PROTOCOL_VERSION
        )))
        .bearer_auth(&phone.token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer.headers().contains_key(reqwest::header::RETRY_AFTER),
        "a busy answer says when to retry"
    );
    assert!(
        visit::Entity::find_by_id(visit_id)
            .one(app.db())
            .await
            .unwrap()
            .is_none(),
        "a refused push stores nothing"
    );

    // A slot frees: the same push goes through.
    drop(held);
    let response = phone.push(&app, &[m]).await;
    assert!(
        matches!(response.results[0], MutationResult::Applied { .. }),
        "{:?}",
        response.results
    );
}

async fn a_sync_beyond_the_cap_waits_its_turn_and_is_served(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "排队的孩子").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(11));

    let cap = u32::try_from(app.state.config.max_sync_in_flight).unwrap();
    let held = app
        .state
        .sync_slots
        .clone()
        .acquire_many_owned(cap)
        .await
        .unwrap();
    let push = phone.push_in_background(&app, std::slice::from_ref(&m));
    seedling_tests::wait_until("the push waits for a slot", || async {
        app.state
            .sync_queued
            .load(std::sync::atomic::Ordering::Acquire)
            == 1
    })
    .await;
    assert!(
        !push.is_finished(),
        "it waits rather than being turned away"
    );
    drop(held);
    let (status, _, body) = push.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["status"], "applied", "{body}");
    assert!(
        visit::Entity::find_by_id(visit_id)
            .one(app.db())
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        app.state
            .sync_queued
            .load(std::sync::atomic::Ordering::Acquire),
        0,
        "its place in the queue was given back"
    );
}

async fn a_sync_that_waits_past_the_deadline_is_answered_busy(mut app: TestApp) {
    app.restart_with(|config| config.sync_queue_wait_ms = 200)
        .await;
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = create_child(&app, &mut admin, fixture.village_a1, "等太久的孩子").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (visit_id, m) = new_visit(&mut phone, child, fixture.village_a1, &today_at(11));

    let cap = u32::try_from(app.state.config.max_sync_in_flight).unwrap();
    let _held = app
        .state
        .sync_slots
        .clone()
        .acquire_many_owned(cap)
        .await
        .unwrap();
    let (status, _, body) = phone
        .push_in_background(&app, std::slice::from_ref(&m))
        .await
        .unwrap();
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
    );
    assert!(
        visit::Entity::find_by_id(visit_id)
            .one(app.db())
            .await
            .unwrap()
            .is_none(),
        "a push turned away stores nothing"
    );
    assert_eq!(
        app.state
            .sync_queued
            .load(std::sync::atomic::Ordering::Acquire),
        0
    );
}
