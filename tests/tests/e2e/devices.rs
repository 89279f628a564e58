//! Replaced and lost phones: a supervisor marks a device; a retired phone
//! may still send what it holds and is then told to wipe; a lost phone is
//! refused at once; every change of state is audited.

use reqwest::{Method, StatusCode};
use sea_orm::{EntityTrait, QueryOrder};
use seedling_server::entity::audit_log;
use seedling_server::service::audit;
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::json;
use sync_core::protocol::MutationResult;

on_both_backends!(
    a_retired_phone_sends_its_pending_visits_then_is_told_to_wipe,
    a_lost_phone_is_refused_everything_at_once,
    only_supervisors_and_admins_of_the_area_manage_devices,
);

async fn set_state(
    app: &TestApp,
    token: &str,
    device: uuid::Uuid,
    state: &str,
) -> (StatusCode, serde_json::Value) {
    app.call(
        Method::PUT,
        &format!("/api/v1/devices/{device}/state"),
        Some(token),
        Some(json!({ "state": state, "reason": "换了新手机" })),
    )
    .await
}

async fn a_retired_phone_sends_its_pending_visits_then_is_told_to_wipe(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "赵小雨").await;
    let mut old_phone = Device::sign_in(&app, "director-a1").await;
    old_phone.pull_all(&app).await;
    let supervisor = app.token_for("supervisor-a").await;
    let (status, body) = set_state(&app, &supervisor, old_phone.id, "retired").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "retired");

    // The visit recorded offline before the switch still arrives...
    let (visit, builder) =
        old_phone.new_visit(child, fixture.village_a1, "2026-11-20T10:00:00+08:00");
    let builder = builder.set("observations", json!({ "living": "生活正常" }));
    let answer = old_phone.push(&app, &[builder.build()]).await;
    assert_eq!(answer.results.len(), 1);
    assert!(
        matches!(answer.results[0], MutationResult::Applied { .. }),
        "{:?}",
        answer.results
    );
    // ...then the phone's pull tells it to wipe, and it cannot sign in again.
    let (status, body) = old_phone.pull_page(&app, 50).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
    assert!(body["error"]["message"].as_str().unwrap().contains("wipe"));
    // Told to wipe, it may push no more: its pending work went once.
    let (_, late) = old_phone.new_visit(child, fixture.village_a1, "2026-11-21T10:00:00+08:00");
    let (status, body) = old_phone.push_raw(&app, &[late.build()], 1).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
    let (status, body) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&old_phone.token), None)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "director-a1", "password": seedling_tests::fixture::PASSWORD, "device_id": old_phone.id })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");

    // The new phone gets the visit.
    let mut new_phone = Device::sign_in(&app, "director-a1").await;
    new_phone.pull_all(&app).await;
    assert!(
        new_phone
            .get(sync_core::record::Entity::Visit, visit)
            .is_some()
    );

    let report = audit::verify(app.db()).await.unwrap();
    assert!(report.intact);
    let actions: Vec<String> = audit_log::Entity::find()
        .order_by_asc(audit_log::Column::Id)
        .all(app.db())
        .await
        .expect("audit rows")
        .into_iter()
        .filter(|row| row.action.starts_with("device."))
        .map(|row| row.action)
        .collect();
    assert_eq!(
        actions,
        ["device.set_state", "device.told_to_wipe"],
        "the retirement and the wipe instruction are on the record"
    );
}

async fn a_lost_phone_is_refused_everything_at_once(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "钱小川").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let refresh = {
        let (status, session) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": "director-a1", "password": seedling_tests::fixture::PASSWORD, "device_id": phone.id })),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        session["refresh_token"].as_str().unwrap().to_owned()
    };

    let (status, _) = set_state(&app, &app.token_for("admin").await, phone.id, "lost").await;
    assert_eq!(status, StatusCode::OK);

    let (_, builder) = phone.new_visit(child, fixture.village_a1, "2026-11-20T10:00:00+08:00");
    let (status, body) = phone.push_raw(&app, &[builder.build()], 1).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
    let (status, body) = phone.pull_page(&app, 50).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
    // Whatever it asks, while its access token is still valid.
    let (status, body) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&phone.token), None)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refresh_token": refresh })),
        )
        .await;
    assert!(
        status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN,
        "{status} {body}"
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "director-a1", "password": seedling_tests::fixture::PASSWORD, "device_id": phone.id })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "device_revoked");
}

async fn only_supervisors_and_admins_of_the_area_manage_devices(app: TestApp) {
    Fixture::load(&app).await;
    let phone = Device::sign_in(&app, "director-a1").await;
    let director = app.token_for("director-a2").await;
    let other_supervisor = app.token_for("supervisor-b").await;
    let supervisor = app.token_for("supervisor-a").await;

    let (status, body) = set_state(&app, &director, phone.id, "lost").await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = set_state(&app, &other_supervisor, phone.id, "lost").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = set_state(&app, &supervisor, phone.id, "stolen").await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (status, list) = app
        .call(Method::GET, "/api/v1/devices", Some(&supervisor), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&phone.id.to_string().as_str()), "{list}");
    let (_, list) = app
        .call(
            Method::GET,
            "/api/v1/devices",
            Some(&other_supervisor),
            None,
        )
        .await;
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|d| d["username"] != "director-a1"),
        "{list}"
    );
    let (status, body) = app
        .call(Method::GET, "/api/v1/devices", Some(&director), None)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}
