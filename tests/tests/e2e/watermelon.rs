//! WatermelonDB sync (docs/ADAPTERS.md): a bootstrap in bounded answers
//! holds what the native pull holds, with a `timestamp` that is the log
//! position and a cursor that must match it; a push sent twice is applied
//! once; what a push did not plainly apply comes back as changes; a
//! transfer reaches the old village as deletions. The adapter's own tests
//! run real WatermelonDB apps (adapters/watermelondb/test).

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends, url_encode};
use serde_json::{Value, json};
use sync_core::record::Entity;
use uuid::Uuid;

on_both_backends!(
    a_bootstrap_in_bounded_answers_holds_what_the_native_pull_holds,
    a_watermelon_push_sent_twice_is_applied_once,
    what_a_push_did_not_apply_comes_back_as_changes,
    a_transfer_reaches_the_old_village_as_deletions,
);

/// One pull after `at` (`(timestamp, cursor)`).
async fn wm_pull(
    app: &TestApp,
    phone: &Device,
    at: Option<&(i64, String)>,
    limit: u32,
) -> (StatusCode, Value) {
    let mut path = format!("/api/v1/watermelon/pull?limit={limit}");
    if let Some((timestamp, cursor)) = at {
        path.push_str(&format!(
            "&last_pulled_at={timestamp}&cursor={}",
            url_encode(cursor)
        ));
    }
    app.call(Method::GET, &path, Some(&phone.token), None).await
}

/// Pulls until `has_more` is false; the answers and where they reached.
async fn wm_pull_all(
    app: &TestApp,
    phone: &Device,
    at: &mut Option<(i64, String)>,
    limit: u32,
) -> Vec<Value> {
    let mut answers = Vec::new();
    for _ in 0..1000 {
        let (status, body) = wm_pull(app, phone, at.as_ref(), limit).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let timestamp = body["timestamp"].as_i64().expect("a timestamp");
        assert!(timestamp > 0, "WatermelonDB needs a positive timestamp");
        *at = Some((
            timestamp,
            body["cursor"].as_str().expect("a cursor").to_owned(),
        ));
        let more = body["has_more"] == true;
        answers.push(body);
        if !more {
            return answers;
        }
    }
    panic!("the pull did not end in 1000 answers");
}

/// `table:id` → server version of every live record, applying answers in order.
fn held(answers: &[Value]) -> BTreeMap<String, u64> {
    let mut held = BTreeMap::new();
    for answer in answers {
        for (table, changes) in answer["changes"].as_object().expect("changes") {
            assert_eq!(
                changes["created"],
                json!([]),
                "live records come as updated"
            );
            for raw in changes["updated"].as_array().expect("updated") {
                let version = raw["server_version"].as_u64().expect("a version");
                held.insert(format!("{table}:{}", raw["id"].as_str().unwrap()), version);
            }
            for id in changes["deleted"].as_array().expect("deleted") {
                held.remove(&format!("{table}:{}", id.as_str().unwrap()));
            }
        }
    }
    held
}

async fn wm_push(app: &TestApp, phone: &Device, changes: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/watermelon/push",
        Some(&phone.token),
        Some(json!({ "changes": changes })),
    )
    .await
}

/// A new visit as a WatermelonDB app holds it: JSON columns as text.
fn visit_raw(phone: &mut Device, child: Uuid, village: Uuid) -> Value {
    let hlc = phone.tick().to_string();
    let clocks: BTreeMap<&str, &str> = [
        "child_id",
        "author_id",
        "device_id",
        "village_id",
        "kind",
        "visited_at",
        "review_status",
        "needs",
    ]
    .into_iter()
    .map(|name| (name, hlc.as_str()))
    .collect();
    json!({
        "id": Uuid::new_v4(), "_status": "created", "_changed": "",
        "server_version": 0, "field_clocks": serde_json::to_string(&clocks).unwrap(),
        "child_id": child, "author_id": phone.user_id, "device_id": phone.id,
        "village_id": village, "kind": "home_visit",
        "visited_at": chrono::Utc::now().to_rfc3339(), "review_status": "submitted",
        "needs": r#"[{"id":"n1","area":"living"}]"#, "follow_up": "", "location": "",
    })
}

async fn a_bootstrap_in_bounded_answers_holds_what_the_native_pull_holds(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "王小明").await;
    let mut director = Device::sign_in(&app, "director-a1").await;
    for day in 1..=5 {
        let (_, builder) = director.new_visit(
            child,
            fixture.village_a1,
            &format!("2026-11-0{day}T09:00:00+08:00"),
        );
        director.push(&app, &[builder.build()]).await;
    }
    let mut native = Device::sign_in(&app, "director-a1").await;
    native.pull_all(&app).await;
    let tables: BTreeMap<Entity, &str> = [
        (Entity::Child, "children"),
        (Entity::Visit, "visits"),
        (Entity::CasePlanItem, "case_plan_items"),
    ]
    .into_iter()
    .collect();
    let expected: BTreeMap<String, u64> = native
        .records
        .values()
        .filter(|record| !record.is_deleted())
        .map(|record| {
            (
                format!("{}:{}", tables[&record.entity], record.id),
                record.version,
            )
        })
        .collect();

    let mut at = None;
    let answers = wm_pull_all(&app, &native, &mut at, 2).await;
    assert!(
        answers.len() >= 3,
        "two changes an answer: {}",
        answers.len()
    );
    assert_eq!(held(&answers), expected);
    let last = answers.last().expect("an answer");
    assert_eq!(
        last["scope_checksum"],
        serde_json::to_value(native.checksum()).unwrap()
    );
    let timestamps: Vec<i64> = answers
        .iter()
        .map(|a| a["timestamp"].as_i64().unwrap())
        .collect();
    assert!(timestamps.windows(2).all(|w| w[0] < w[1]), "{timestamps:?}");

    // Nothing new: an empty answer at the same position.
    let (_, again) = wm_pull(&app, &native, at.as_ref(), 2).await;
    assert_eq!(held(std::slice::from_ref(&again)), BTreeMap::new());
    assert_eq!(again["has_more"], false);

    // A cursor and a timestamp that do not belong together are refused.
    let (timestamp, cursor) = at.clone().expect("a position");
    let (status, body) = wm_pull(&app, &native, Some(&(timestamp + 1, cursor)), 2).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/watermelon/pull?last_pulled_at=5",
            Some(&native.token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
}

async fn a_watermelon_push_sent_twice_is_applied_once(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "李小红").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let raw = visit_raw(&mut phone, child, fixture.village_a1);
    let id = raw["id"].as_str().unwrap().to_owned();
    let create = json!({ "visits": { "created": [raw] } });
    let (status, first) = wm_push(&app, &phone, create.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["results"][0]["status"], "applied", "{first}");
    assert_eq!(first["changes"]["visits"]["updated"], json!([]));
    let (_, again) = wm_push(&app, &phone, create).await;
    assert_eq!(first["results"], again["results"], "the stored outcome");

    // An edit of two columns, sent twice (the answer was lost).
    let mut at = None;
    let answers = wm_pull_all(&app, &phone, &mut at, 100).await;
    let mut edited = answers[0]["changes"]["visits"]["updated"]
        .as_array()
        .unwrap()
        .iter()
        .find(|raw| raw["id"] == id.as_str())
        .expect("the visit pulled")
        .clone();
    assert_eq!(edited["server_version"], 1);
    edited["follow_up"] = json!("下周再来");
    edited["needs"] = json!(r#"[{"id":"n1","area":"living"},{"id":"n2","area":"study"}]"#);
    edited["_status"] = json!("updated");
    edited["_changed"] = json!("follow_up,needs");
    let update = json!({ "visits": { "updated": [edited] } });
    let (_, first) = wm_push(&app, &phone, update.clone()).await;
    assert_eq!(first["results"][0]["status"], "applied", "{first}");
    // The resend finds the server holding what it writes: nothing to
    // apply, and the server's copy comes back with its new version.
    let (_, again) = wm_push(&app, &phone, update).await;
    assert_eq!(again["results"], json!([]), "{again}");
    assert_eq!(
        again["changes"]["visits"]["updated"][0]["server_version"],
        2
    );

    let supervisor = Device::sign_in(&app, "supervisor-a").await;
    let (_, visit) = app
        .call(
            Method::GET,
            &format!("/api/v1/visits/{id}"),
            Some(&supervisor.token),
            None,
        )
        .await;
    assert_eq!(visit["version"], 2, "{visit}");
    assert_eq!(visit["record"]["follow_up"], "下周再来", "{visit}");
    assert_eq!(
        visit["record"]["needs"].as_array().map(Vec::len),
        Some(2),
        "{visit}"
    );
    let (_, queue) = app
        .call(
            Method::GET,
            "/api/v1/conflicts?status=all",
            Some(&supervisor.token),
            None,
        )
        .await;
    let about: Vec<&Value> = queue["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .filter(|c| c["record_id"] == id.as_str())
        .collect();
    assert!(about.is_empty(), "nothing refused or merged: {about:?}");
}

async fn what_a_push_did_not_apply_comes_back_as_changes(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小华").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let raw = visit_raw(&mut phone, child, fixture.village_a1);
    let id = raw["id"].as_str().unwrap().to_owned();
    wm_push(
        &app,
        &phone,
        json!({ "visits": { "created": [raw.clone()] } }),
    )
    .await;
    let supervisor = app.token_for("supervisor-a").await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/visits/{id}/review"),
            Some(&supervisor),
            Some(json!({"decision": "approve", "version": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An edit to the approved visit, a visit for another village's child
    // and a column of the wrong shape for the rule table's field.
    let mut edit = raw.clone();
    edit["follow_up"] = json!("改一下");
    edit["server_version"] = json!(1);
    edit["_status"] = json!("updated");
    edit["_changed"] = json!("follow_up");
    let other_child = admin.create_child(&app, fixture.village_b1, "外村").await;
    let foreign = visit_raw(&mut phone, other_child, fixture.village_b1);
    let foreign_id = foreign["id"].as_str().unwrap().to_owned();
    let (status, answer) = wm_push(
        &app,
        &phone,
        json!({ "visits": { "created": [foreign], "updated": [edit] } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut reasons: Vec<&str> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or("-"))
        .collect();
    reasons.sort_unstable();
    assert_eq!(reasons, ["locked", "out_of_scope"], "{answer}");
    let back = &answer["changes"]["visits"];
    assert_eq!(back["deleted"], json!([foreign_id]));
    let approved = &back["updated"][0];
    assert_eq!(approved["id"], id.as_str());
    assert_eq!(approved["review_status"], "approved");
    assert_eq!(
        approved["follow_up"], "",
        "the approved text, not the edit: {approved}"
    );

    // A table Seedling does not sync, and a JSON column that is not JSON.
    let (status, body) = wm_push(&app, &phone, json!({ "notes": { "created": [] } })).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // Rows that cannot be read are refused one by one, and the good row
    // beside them applies: one bad row never holds back the rest.
    let mut broken = visit_raw(&mut phone, child, fixture.village_a1);
    broken["needs"] = json!("[{");
    let broken_id = broken["id"].as_str().unwrap().to_owned();
    let mut no_uuid = visit_raw(&mut phone, child, fixture.village_a1);
    no_uuid["id"] = json!("Xq3b9_local");
    let mut bad_edit = raw.clone();
    bad_edit["observations"] = json!("{not json");
    bad_edit["server_version"] = json!(2);
    bad_edit["_status"] = json!("updated");
    bad_edit["_changed"] = json!("observations");
    let good = visit_raw(&mut phone, child, fixture.village_a1);
    let good_id = good["id"].as_str().unwrap().to_owned();
    let (status, answer) = wm_push(
        &app,
        &phone,
        json!({ "visits": { "created": [broken, no_uuid, good], "updated": [bad_edit] } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let refused: Vec<(&str, &str, &str)> = answer["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["table"].as_str().unwrap(),
                r["id"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            ("visits", broken_id.as_str(), "invalid_value"),
            ("visits", "Xq3b9_local", "invalid_value"),
            ("visits", id.as_str(), "invalid_value"),
        ],
        "{answer}"
    );
    assert!(
        answer["refused"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["message"].as_str().unwrap().is_empty()),
        "{answer}"
    );
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{answer}");
    assert_eq!(results[0]["status"], "applied", "{answer}");
    assert_eq!(results[0]["record_id"], good_id.as_str(), "{answer}");
    // A refused row is not answered back: the device keeps its copy.
    assert_eq!(
        answer["changes"]["visits"]["updated"],
        json!([]),
        "{answer}"
    );
    assert_eq!(
        answer["changes"]["visits"]["deleted"],
        json!([]),
        "{answer}"
    );
}

async fn a_transfer_reaches_the_old_village_as_deletions(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "赵小军").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let raw = visit_raw(&mut phone, child, fixture.village_a1);
    let visit = raw["id"].clone();
    wm_push(&app, &phone, json!({ "visits": { "created": [raw] } })).await;
    let mut at = None;
    wm_pull_all(&app, &phone, &mut at, 100).await;

    admin.pull_all(&app).await;
    let moved = admin
        .update(Entity::Child, child)
        .set("village_id", json!(fixture.village_a2))
        .build();
    admin.push(&app, &[moved]).await;

    let answers = wm_pull_all(&app, &phone, &mut at, 100).await;
    let changes = &answers[0]["changes"];
    assert_eq!(changes["children"]["deleted"], json!([child]));
    assert_eq!(changes["visits"]["deleted"], json!([visit]));
    assert_eq!(changes["children"]["updated"], json!([]));

    // The deleting device's own delete of a visit, on the version it held.
    let fresh = Device::sign_in(&app, "director-a2").await;
    let mut at = None;
    let answers = wm_pull_all(&app, &fresh, &mut at, 100).await;
    let version = held(&answers)[&format!("visits:{}", visit.as_str().unwrap())];
    let (status, answer) = wm_push(
        &app,
        &fresh,
        json!({ "visits": { "deleted": [{ "id": visit, "server_version": version }] } }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // A director may not delete another's visit: refused and sent back.
    assert_eq!(answer["results"][0]["status"], "rejected", "{answer}");
    assert_eq!(answer["changes"]["visits"]["updated"][0]["id"], visit);
}
