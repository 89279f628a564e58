//! The platform's side: client-credential sign-in, roster batches (row by
//! row, idempotent, dry run) reaching directors' phones, register events
//! going back out, and the change feed.

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_server::entity::{audit_log, change_log, child, outbox};
use seedling_tests::fixture::PASSWORD;
use seedling_tests::platform::StandIn;
use seedling_tests::{Backend, Device, Fixture, TestApp, assert_error};
use serde_json::{Value, json};
use sync_core::record::Entity;
use uuid::Uuid;

use super::support::{KEY_ID, SECRET, app_for, delivered, wait_until};
use crate::on_both;

on_both!(
    an_integration_account_signs_in_with_client_credentials_only,
    a_roster_batch_applies_good_rows_reports_bad_ones_and_reaches_the_directors_phone,
    a_retried_batch_changes_nothing_and_a_reused_batch_id_is_refused,
    a_dry_run_reports_without_changing_anything,
    register_changes_go_out_to_the_platform_and_into_the_change_feed,
);

async fn platform_token(app: &TestApp) -> String {
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/integration/token",
            None,
            Some(json!({
                "grant_type": "client_credentials",
                "client_id": "integration",
                "client_secret": PASSWORD,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().expect("token").to_owned()
}

async fn send(app: &TestApp, token: &str, batch: Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/integration/roster-batches",
        Some(token),
        Some(batch),
    )
    .await
}

fn added(external_id: &str, village_code: &str, category: &str) -> Value {
    json!({
        "action": "add",
        "external_id": external_id,
        "fields": {
            "name": "王小明",
            "gender": "male",
            "birth_date": "2015-03-02",
            "category": category,
            "village_code": village_code,
            "guardian_name": "王奶奶",
        }
    })
}

async fn count_children(app: &TestApp) -> u64 {
    child::Entity::find().count(app.db()).await.expect("count")
}

async fn count_changes(app: &TestApp) -> u64 {
    change_log::Entity::find()
        .count(app.db())
        .await
        .expect("count")
}

async fn an_integration_account_signs_in_with_client_credentials_only(backend: Backend) {
    let app = TestApp::new(backend).await;
    Fixture::load(&app).await;
    let token = platform_token(&app).await;
    let claims = app.jwt().verify(&token).expect("a valid token");
    assert_eq!(claims.role, seedling_server::auth::Role::Integration);

    for (client, secret) in [
        ("integration", "wrong-secret"),
        ("director-a1", PASSWORD),
        ("nobody", PASSWORD),
    ] {
        let (status, body) = app
            .call(
                Method::POST,
                "/api/v1/integration/token",
                None,
                Some(json!({ "grant_type": "client_credentials", "client_id": client, "client_secret": secret })),
            )
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/integration/token",
            None,
            Some(json!({ "grant_type": "password", "client_id": "integration", "client_secret": PASSWORD })),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    );

    // A director cannot post roster batches.
    let director = app.token_for("director-a1").await;
    let (status, body) = send(
        &app,
        &director,
        json!({ "batch_id": "b", "rows": [added("x", "990000001001", "in_difficulty")] }),
    )
    .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn a_roster_batch_applies_good_rows_reports_bad_ones_and_reaches_the_directors_phone(
    backend: Backend,
) {
    let app = TestApp::new(backend).await;
    let fixture = Fixture::load(&app).await;
    let token = platform_token(&app).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;

    let (status, report) = send(
        &app,
        &token,
        json!({
            "batch_id": "match-2026-11-001",
            "rows": [
                added("ZJ-001", "990000001001", "in_difficulty"),
                added("ZJ-002", "000000000000", "in_difficulty"),
                added("ZJ-003", "990000001001", "not_a_category"),
                { "row_id": "r4", "action": "add", "external_id": "ZJ-004", "fields": { "name": "李四", "village_code": "990000001001" } },
                { "action": "update", "external_id": "ZJ-404", "fields": { "category": "migrant" } },
                { "action": "add", "external_id": "ZJ-005", "fields": { "visit_interval_days": 30 } },
                added("ZJ-006", "990000001002", "left_behind"),
            ]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["applied"], 2);
    assert_eq!(report["rejected"], 5);
    let rows = report["rows"].as_array().expect("rows");
    let code = |i: usize| rows[i]["code"].as_str().unwrap_or("").to_owned();
    assert_eq!(rows[0]["status"], "applied");
    assert_eq!(code(1), "unknown_village");
    assert_eq!(code(2), "invalid_value");
    assert_eq!(rows[3]["row_id"], "r4");
    assert_eq!(code(3), "missing_field");
    assert_eq!(code(4), "unknown_external_id");
    assert_eq!(
        code(5),
        "role_not_allowed",
        "the visiting interval is the district's"
    );
    assert_eq!(rows[6]["status"], "applied");
    for row in rows.iter().filter(|r| r["status"] == "rejected") {
        assert!(
            row["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{row}"
        );
    }

    let child_id: Uuid = rows[0]["child_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("child id");
    phone.pull_all(&app).await;
    let on_phone = phone
        .get(Entity::Child, child_id)
        .expect("the added child reached the phone");
    assert_eq!(on_phone.get_str("external_id"), Some("ZJ-001"));
    assert_eq!(on_phone.get_str("category"), Some("in_difficulty"));
    assert_eq!(
        on_phone.get_str("village_id"),
        Some(fixture.village_a1.to_string().as_str())
    );
    let other: Uuid = rows[6]["child_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    assert!(
        phone.get(Entity::Child, other).is_none(),
        "another village's child stays out of scope"
    );

    // Exit through the feed: the phone hears of it at the next pull.
    let (status, report) = send(
        &app,
        &token,
        json!({ "batch_id": "match-2026-11-002", "rows": [
            { "action": "exit", "external_id": "ZJ-001", "fields": { "exit_reason": "adopted", "exit_date": "2026-11-20" } },
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["applied"], 1, "{report}");
    phone.pull_all(&app).await;
    assert!(
        phone.get(Entity::Child, child_id).is_none(),
        "an exited child leaves the village's phones"
    );
}

async fn a_retried_batch_changes_nothing_and_a_reused_batch_id_is_refused(backend: Backend) {
    let app = TestApp::new(backend).await;
    Fixture::load(&app).await;
    let token = platform_token(&app).await;
    let batch = json!({ "batch_id": "b-1", "rows": [
        added("ZJ-100", "990000001001", "in_difficulty"),
        added("ZJ-101", "990000002001", "migrant"),
    ]});
    let (status, first) = send(&app, &token, batch.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["replayed"], false);
    let (children, changes) = (count_children(&app).await, count_changes(&app).await);

    // The answer was lost; the platform sends the batch again, twice at once.
    let (again, at_once) = tokio::join!(
        send(&app, &token, batch.clone()),
        send(&app, &token, batch.clone())
    );
    for (status, report) in [again, at_once] {
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["replayed"], true);
        assert_eq!(report["rows"], first["rows"], "the same report");
    }
    assert_eq!(count_children(&app).await, children);
    assert_eq!(count_changes(&app).await, changes, "nothing applied twice");
    let imports = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("integration.roster_import"))
        .count(app.db())
        .await
        .expect("count");
    assert_eq!(imports, 1, "the import is on the audit trail once");

    let (status, body) = send(
        &app,
        &token,
        json!({ "batch_id": "b-1", "rows": [added("ZJ-102", "990000001001", "migrant")] }),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");

    let (status, body) = send(
        &app,
        &token,
        json!({ "batch_id": "b-2", "rows": [added("ZJ-100", "990000001001", "migrant")] }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["code"], "already_registered");

    // Telling Seedling what it already holds changes nothing.
    let changes = count_changes(&app).await;
    let (status, body) = send(
        &app,
        &token,
        json!({ "batch_id": "b-3", "rows": [
            { "action": "update", "external_id": "ZJ-100", "fields": { "category": "in_difficulty" } },
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["status"], "unchanged", "{body}");
    assert_eq!(count_changes(&app).await, changes);
}

async fn a_dry_run_reports_without_changing_anything(backend: Backend) {
    let app = TestApp::new(backend).await;
    Fixture::load(&app).await;
    let token = platform_token(&app).await;
    let rows = json!([
        added("ZJ-200", "990000001001", "in_difficulty"),
        added("ZJ-201", "nope", "migrant")
    ]);
    let (children, changes) = (count_children(&app).await, count_changes(&app).await);
    let outbox_rows = outbox::Entity::find().count(app.db()).await.expect("count");

    let (status, report) = send(
        &app,
        &token,
        json!({ "batch_id": "dry", "dry_run": true, "rows": rows }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["applied"], 1);
    assert_eq!(report["rows"][1]["code"], "unknown_village");
    assert_eq!(count_children(&app).await, children);
    assert_eq!(count_changes(&app).await, changes);
    assert_eq!(
        outbox::Entity::find().count(app.db()).await.expect("count"),
        outbox_rows
    );

    // The same batch id is still free for the real run.
    let (status, report) = send(&app, &token, json!({ "batch_id": "dry", "rows": rows })).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["replayed"], false);
    assert_eq!(count_children(&app).await, children + 1);
}

async fn register_changes_go_out_to_the_platform_and_into_the_change_feed(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    let app = app_for(backend, &stand_in, true, |_| {}).await;
    Fixture::load(&app).await;
    let token = platform_token(&app).await;
    let (status, report) = send(
        &app,
        &token,
        json!({ "batch_id": "r-1", "rows": [
            added("ZJ-300", "990000001001", "in_difficulty"),
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let (status, report) = send(&app, &token, json!({ "batch_id": "r-2", "rows": [
        { "action": "update", "external_id": "ZJ-300", "fields": { "category": "de_facto_unsupported", "village_code": "990000002001" } },
        { "action": "exit", "external_id": "ZJ-300", "fields": { "exit_reason": "turned_18", "exit_date": "2026-11-28" } },
    ]})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["applied"], 2, "{report}");

    wait_until("the register events delivered", || async {
        delivered(&app).await == 4
    })
    .await;
    let kinds: Vec<String> = stand_in
        .applied()
        .iter()
        .map(|m| m.event_type.clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "register_added",
            "register_category_changed",
            "register_transferred",
            "register_exited"
        ],
        "one message per register event, in order"
    );
    let exited = &stand_in.applied()[3].body;
    assert_eq!(exited["schema_version"], 1);
    assert_eq!(exited["event_type"], "register_exited");
    assert_eq!(exited["data"]["external_id"], "ZJ-300");
    assert_eq!(exited["data"]["effective_date"], "2026-11-28");
    assert_eq!(exited["data"]["source"], "data_matching");
    assert_eq!(exited["data"]["reason"], "turned_18");
    assert_eq!(exited["data"]["child"]["village_code"], "990000002001");
    let moved = &stand_in.applied()[2].body;
    assert_eq!(moved["data"]["from_village_code"], "990000001001");
    assert_eq!(moved["data"]["to_village_code"], "990000002001");

    // The change feed, page by page, from the beginning.
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    let mut pages_read = 0;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/api/v1/integration/changes?limit=1&cursor={c}"),
            None => "/api/v1/integration/changes?limit=1".to_owned(),
        };
        let (status, page) = app.call(Method::GET, &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let named = page["changes"].as_array().expect("changes");
        pages_read += usize::from(!named.is_empty());
        seen.extend(named.clone());
        cursor = Some(page["next_cursor"].as_str().expect("cursor").to_owned());
        if page["has_more"] == false {
            break;
        }
    }
    let latest = seen.last().expect("the child appears in the feed");
    assert_eq!(latest["entity"], "child");
    assert_eq!(latest["fields"]["external_id"], "ZJ-300");
    assert_eq!(latest["fields"]["status"], "exited");
    let (status, page) = app
        .call(
            Method::GET,
            &format!(
                "/api/v1/integration/changes?cursor={}",
                cursor.expect("cursor")
            ),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["changes"],
        json!([]),
        "nothing new after the last cursor"
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/integration/changes?cursor=abc",
            Some(&token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");

    let kept = child::Entity::find()
        .filter(child::Column::ExternalId.eq("ZJ-300"))
        .one(app.db())
        .await
        .expect("query")
        .expect("child");
    assert_eq!(kept.status, "exited");

    // Feed reads are audited like report reads: each page that named
    // records, with the children it was about; empty pages are not.
    let reads = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("change_feed.read"))
        .all(app.db())
        .await
        .expect("audit rows");
    assert_eq!(reads.len(), pages_read, "one entry per page with changes");
    assert!(reads.iter().all(|r| r.actor_id.is_some()));
    let kept_id = json!(kept.id);
    assert!(
        reads.iter().all(|r| {
            r.detail.as_ref().expect("detail")["child_ids"]
                .as_array()
                .expect("child ids")
                .contains(&kept_id)
        }),
        "every page here was about the one child: {reads:?}"
    );
}
