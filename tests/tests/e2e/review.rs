//! Supervisor review end to end: the visit log with its filters, the
//! review loop back to the director's phone, amendments, the conflict
//! queue, children's pages, and who may see and do what.

pub(crate) mod browser;
mod console_admin;
mod queue;
mod urgent;

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use seedling_server::entity::{audit_log, outbox};
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};
use sync_core::protocol::MutationResult;
use sync_core::record::Entity;
use sync_core::tasks::review_tasks;
use uuid::Uuid;

on_both_backends!(
    a_returned_visit_reaches_the_phone_and_the_correction_is_approved_and_locked,
    the_visit_log_filters_by_place_kind_status_date_and_flags,
    a_supervisor_never_sees_another_towns_children_or_visits,
    directors_and_admins_cannot_decide_and_bad_decisions_are_refused,
    a_childs_page_shows_register_visits_needs_and_due_date,
);

/// The day `days_ago` days before today, China time.
pub fn china_day(days_ago: i64) -> chrono::NaiveDate {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    (chrono::Utc::now().with_timezone(&china) - chrono::Duration::days(days_ago)).date_naive()
}

/// A day `days_ago` days before today, at `hour` China time.
pub fn day_at(days_ago: i64, hour: u32) -> String {
    format!("{}T{hour:02}:00:00+08:00", china_day(days_ago))
}

/// Pushes a submitted visit from `phone` and returns its id.
pub async fn visit(
    app: &TestApp,
    phone: &mut Device,
    child: Uuid,
    village: Uuid,
    visited_at: &str,
    extra: &[(&str, Value)],
) -> Uuid {
    let (id, mut builder) = phone.new_visit(child, village, visited_at);
    builder = builder.set("observations", json!({ "living": "生活正常" }));
    for (field, value) in extra {
        builder = if field == &"risk_flags" {
            builder.add(field, value.clone())
        } else {
            builder.set(field, value.clone())
        };
    }
    let response = phone.push(app, &[builder.build()]).await;
    assert!(
        matches!(response.results[0], MutationResult::Applied { .. }),
        "{:?}",
        response.results
    );
    id
}

/// GET as `token`, asserting 200.
pub async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// The ids of a visit-log page.
pub fn ids(page: &Value) -> Vec<String> {
    page["visits"]
        .as_array()
        .expect("visits")
        .iter()
        .map(|v| v["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn decide(app: &TestApp, token: &str, visit: Uuid, body: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/visits/{visit}/review"),
        Some(token),
        Some(body),
    )
    .await
}

async fn a_returned_visit_reaches_the_phone_and_the_correction_is_approved_and_locked(
    app: TestApp,
) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let visit_id = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(1, 10),
        &[],
    )
    .await;
    let supervisor = app.token_for("supervisor-a").await;

    // The supervisor finds it among the submitted visits and returns it.
    let page = get(&app, &supervisor, "/api/v1/visits?review_status=submitted").await;
    assert_eq!(ids(&page), [visit_id.to_string()]);
    assert_eq!(page["visits"][0]["child_name"], "张小花");
    assert_eq!(page["visits"][0]["town_name"], "甲镇");
    let (status, body) = decide(
        &app,
        &supervisor,
        visit_id,
        json!({"decision": "return", "comment": "请补充孩子的学习情况", "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["review_status"], "returned");
    assert_eq!(body["version"], 2);

    // The phone receives it at its next pull, as a task with the comment.
    phone.pull_all(&app).await;
    let tasks = review_tasks(phone.user_id, phone.records.values());
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].visit_id, visit_id);
    assert_eq!(tasks[0].comment.as_deref(), Some("请补充孩子的学习情况"));

    // The director corrects and resubmits through sync.
    let fix = phone
        .update(Entity::Visit, visit_id)
        .set(
            "observations",
            json!({ "living": "生活正常", "study": "四年级，数学需辅导" }),
        )
        .set("review_status", json!("submitted"))
        .build();
    let response = phone.push(&app, &[fix]).await;
    assert!(
        matches!(
            response.results[0],
            MutationResult::Applied { version: 3, .. }
        ),
        "{:?}",
        response.results
    );
    phone.pull_all(&app).await;
    assert!(review_tasks(phone.user_id, phone.records.values()).is_empty());

    // A stale approval (of version 2) is refused; the current one locks it.
    let (status, body) = decide(
        &app,
        &supervisor,
        visit_id,
        json!({"decision": "approve", "version": 2}),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = decide(
        &app,
        &supervisor,
        visit_id,
        json!({"decision": "approve", "version": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["locked"], true);

    let detail = get(&app, &supervisor, &format!("/api/v1/visits/{visit_id}")).await;
    assert_eq!(detail["review_status"], "approved");
    assert_eq!(detail["locked"], true);
    assert_eq!(detail["review_comment"], Value::Null);
    assert_eq!(
        detail["record"]["observations"]["study"],
        "四年级，数学需辅导"
    );
    let kinds: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "reviewed", "edited", "reviewed"]);
    let return_step = &detail["history"][1];
    assert_eq!(return_step["actor_role"], "supervisor");
    assert!(
        return_step["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["field"] == "review_status"
                && c["before"] == "submitted"
                && c["after"] == "returned"),
        "{return_step}"
    );

    // The approval is reported to the provincial platform and audited.
    let sent = outbox::Entity::find()
        .filter(outbox::Column::Kind.eq("visit_approved"))
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].aggregate_id, visit_id);
    assert_eq!(sent[0].payload["review_status"], "approved");
    assert_eq!(sent[0].payload["version"], 4);
    let audited: Vec<String> = audit_log::Entity::find()
        .filter(audit_log::Column::RecordId.eq(visit_id))
        .all(app.db())
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert!(
        audited.contains(&"visit.return".to_owned())
            && audited.contains(&"visit.approve".to_owned()),
        "{audited:?}"
    );

    // The phone sees it approved; a later edit becomes an amendment, which
    // the supervisor accepts: the visit stays locked with the correction.
    phone.pull_all(&app).await;
    assert_eq!(
        phone
            .get(Entity::Visit, visit_id)
            .unwrap()
            .get_str("review_status"),
        Some("approved")
    );
    let late = phone
        .update(Entity::Visit, visit_id)
        .set("follow_up", json!("下月再访"))
        .build();
    let response = phone.push(&app, &[late]).await;
    assert!(
        matches!(response.results[0], MutationResult::Rejected { .. }),
        "{:?}",
        response.results
    );
    let amended = get(&app, &supervisor, "/api/v1/visits?amended=true").await;
    assert_eq!(ids(&amended), [visit_id.to_string()]);
    let queue = get(&app, &supervisor, "/api/v1/conflicts?kind=amendment").await;
    assert_eq!(queue["total"], 1, "{queue}");
    assert_eq!(
        queue["conflicts"][0]["actions"],
        json!(["accept", "reject"])
    );
    let amendment = queue["conflicts"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/conflicts/{amendment}/resolve"),
            Some(&supervisor),
            Some(json!({"action": "accept"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "resolved");
    phone.pull_all(&app).await;
    let on_phone = phone.get(Entity::Visit, visit_id).unwrap();
    assert_eq!(on_phone.get_str("follow_up"), Some("下月再访"));
    assert_eq!(on_phone.get_str("review_status"), Some("approved"));
    let detail = get(&app, &supervisor, &format!("/api/v1/visits/{visit_id}")).await;
    assert_eq!(detail["history"][4]["kind"], "amendment_accepted");
}

async fn the_visit_log_filters_by_place_kind_status_date_and_flags(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let one = admin.create_child(&app, fixture.village_a1, "甲一童").await;
    let two = admin.create_child(&app, fixture.village_a2, "甲二童").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let mut a2 = Device::sign_in(&app, "director-a2").await;
    let recent = visit(&app, &mut a1, one, fixture.village_a1, &day_at(2, 9), &[]).await;
    let old = visit(
        &app,
        &mut a1,
        one,
        fixture.village_a1,
        &day_at(40, 9),
        &[("kind", json!("phone_follow_up"))],
    )
    .await;
    let risky = visit(
        &app,
        &mut a2,
        two,
        fixture.village_a2,
        &day_at(5, 15),
        &[(
            "risk_flags",
            json!({"id": "r1", "kind": "neglect", "note": "无人看管"}),
        )],
    )
    .await;
    let token = app.token_for("supervisor-a").await;
    let all = get(&app, &token, "/api/v1/visits").await;
    assert_eq!(all["total"], 3);
    assert_eq!(
        ids(&all),
        [recent.to_string(), risky.to_string(), old.to_string()],
        "newest first"
    );
    let asc = get(
        &app,
        &token,
        "/api/v1/visits?sort=visited_asc&limit=1&offset=1",
    )
    .await;
    assert_eq!(asc["total"], 3);
    assert_eq!(ids(&asc), [risky.to_string()]);

    let village = get(
        &app,
        &token,
        &format!("/api/v1/visits?village={}", fixture.village_a2),
    )
    .await;
    assert_eq!(ids(&village), [risky.to_string()]);
    let town = get(
        &app,
        &token,
        &format!("/api/v1/visits?town={}", fixture.town_a),
    )
    .await;
    assert_eq!(town["total"], 3);
    let director = fixture.user_id("director-a1");
    let by_director = get(&app, &token, &format!("/api/v1/visits?director={director}")).await;
    assert_eq!(by_director["total"], 2);
    let by_child = get(&app, &token, &format!("/api/v1/visits?child={two}")).await;
    assert_eq!(ids(&by_child), [risky.to_string()]);
    let phone_calls = get(&app, &token, "/api/v1/visits?kind=phone_follow_up").await;
    assert_eq!(ids(&phone_calls), [old.to_string()]);
    let flagged = get(&app, &token, "/api/v1/visits?risk=true").await;
    assert_eq!(ids(&flagged), [risky.to_string()]);
    assert_eq!(flagged["visits"][0]["risk_flags"], 1);
    let unflagged = get(&app, &token, "/api/v1/visits?risk=false").await;
    assert_eq!(unflagged["total"], 2);
    let (from, to) = (china_day(10), china_day(3));
    let window = get(&app, &token, &format!("/api/v1/visits?from={from}&to={to}")).await;
    assert_eq!(ids(&window), [risky.to_string()]);
    let none_conflicted = get(&app, &token, "/api/v1/visits?has_conflict=true").await;
    assert_eq!(none_conflicted["total"], 0);

    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/visits?kind=sleepover",
            Some(&token),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/visits?from=yesterday",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

async fn a_supervisor_never_sees_another_towns_children_or_visits(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child_a = admin.create_child(&app, fixture.village_a1, "甲童").await;
    let child_b = admin.create_child(&app, fixture.village_b1, "乙童").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let mut b1 = Device::sign_in(&app, "director-b1").await;
    let visit_a = visit(
        &app,
        &mut a1,
        child_a,
        fixture.village_a1,
        &day_at(1, 9),
        &[],
    )
    .await;
    let visit_b = visit(
        &app,
        &mut b1,
        child_b,
        fixture.village_b1,
        &day_at(1, 9),
        &[],
    )
    .await;

    let token = app.token_for("supervisor-b").await;
    let page = get(&app, &token, "/api/v1/visits").await;
    assert_eq!(ids(&page), [visit_b.to_string()]);
    let roster = get(&app, &token, "/api/v1/children").await;
    let names: Vec<&str> = roster["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["乙童"]);
    for path in [
        format!("/api/v1/visits/{visit_a}"),
        format!("/api/v1/children/{child_a}"),
    ] {
        let (status, body) = app.call(Method::GET, &path, Some(&token), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    for path in [
        format!("/api/v1/visits?town={}", fixture.town_a),
        format!("/api/v1/visits?village={}", fixture.village_a1),
        format!("/api/v1/children?town={}", fixture.town_a),
    ] {
        let (status, body) = app.call(Method::GET, &path, Some(&token), None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = decide(
        &app,
        &token,
        visit_a,
        json!({"decision": "approve", "version": 1}),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // The district sees both towns.
    let admin_token = app.token_for("admin").await;
    let all = get(&app, &admin_token, "/api/v1/visits").await;
    assert_eq!(all["total"], 2);

    // A director has no review API at all.
    let director = app.token_for("director-a1").await;
    for path in [
        "/api/v1/visits".to_owned(),
        format!("/api/v1/visits/{visit_a}"),
        "/api/v1/children".to_owned(),
        format!("/api/v1/children/{child_a}"),
        "/api/v1/conflicts".to_owned(),
    ] {
        let (status, body) = app.call(Method::GET, &path, Some(&director), None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = decide(
        &app,
        &director,
        visit_a,
        json!({"decision": "approve", "version": 1}),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/conflicts/{}/resolve", Uuid::new_v4()),
            Some(&director),
            Some(json!({"action": "keep"})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn directors_and_admins_cannot_decide_and_bad_decisions_are_refused(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "甲童").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let visit_id = visit(&app, &mut a1, child, fixture.village_a1, &day_at(1, 9), &[]).await;
    let admin_token = app.token_for("admin").await;
    let (status, body) = decide(
        &app,
        &admin_token,
        visit_id,
        json!({"decision": "approve", "version": 1}),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let token = app.token_for("supervisor-a").await;
    let (status, body) = decide(
        &app,
        &token,
        visit_id,
        json!({"decision": "return", "comment": "  ", "version": 1}),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = decide(
        &app,
        &token,
        visit_id,
        json!({"decision": "bless", "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = decide(
        &app,
        &token,
        Uuid::new_v4(),
        json!({"decision": "approve", "version": 1}),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, _) = decide(
        &app,
        &token,
        visit_id,
        json!({"decision": "approve", "version": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Approved is final: neither approved again nor returned.
    let (status, body) = decide(
        &app,
        &token,
        visit_id,
        json!({"decision": "return", "comment": "再看看", "version": 2}),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("approved"),
        "{body}"
    );
    // Nothing of the refused attempts was written.
    let detail = get(&app, &token, &format!("/api/v1/visits/{visit_id}")).await;
    assert_eq!(detail["version"], 2);
    assert_eq!(detail["review_status"], "approved");
}

async fn a_childs_page_shows_register_visits_needs_and_due_date(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let seen = admin.create_child(&app, fixture.village_a1, "常访童").await;
    let unseen = admin.create_child(&app, fixture.village_a1, "未访童").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let visited = visit(&app, &mut a1, seen, fixture.village_a1, &day_at(40, 9), &[]).await;
    let need = a1
        .create(Entity::CasePlanItem, Uuid::new_v4())
        .set("child_id", json!(seen))
        .set("village_id", json!(fixture.village_a1))
        .set("area", json!("study"))
        .set("description", json!("数学辅导"))
        .set("status", json!("open"))
        .build();
    a1.push(&app, &[need]).await;

    let token = app.token_for("supervisor-a").await;
    let page = get(&app, &token, &format!("/api/v1/children/{seen}")).await;
    assert_eq!(page["name"], "常访童");
    assert_eq!(page["village_name"], "甲一村");
    assert_eq!(page["register_events"][0]["kind"], "added");
    assert_eq!(page["visits"][0]["id"], visited.to_string());
    assert_eq!(page["needs"][0]["description"], "数学辅导");
    // in_difficulty: every 30 days; the last visit was 40 days ago.
    assert_eq!(page["interval_days"], 30);
    assert_eq!(page["due"]["state"], "overdue");
    assert_eq!(page["due"]["days_overdue"], 10);

    // Never visited, added today: due in 30 days.
    let roster = get(&app, &token, "/api/v1/children").await;
    assert_eq!(roster["total"], 2);
    assert_eq!(roster["overdue"], 1);
    let overdue = get(&app, &token, "/api/v1/children?overdue=true").await;
    assert_eq!(overdue["children"][0]["id"], seen.to_string());
    let fresh = roster["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == unseen.to_string())
        .unwrap();
    assert_eq!(fresh["due"]["state"], "upcoming");
    assert_eq!(fresh["due"]["days_left"], 30);
}
