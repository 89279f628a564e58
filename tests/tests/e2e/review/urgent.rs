//! Urgent risk alerts (mandatory reporting) in the review API: an urgent
//! visit comes first in the log and can be filtered; the town supervisor
//! or the district acknowledges it once (已知悉, then possibly 已上报);
//! other towns and directors are refused; the district sees who did what.

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_server::entity::{audit_log, conflict};
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};
use sync_core::record::Entity;
use uuid::Uuid;

use super::{day_at, get, ids, visit};

on_both_backends!(
    an_urgent_visit_comes_first_and_is_acknowledged_once_by_its_own_town,
    a_new_urgent_flag_after_an_acknowledgement_raises_the_alert_again,
);

async fn acknowledge(app: &TestApp, token: &str, visit: Uuid, action: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/visits/{visit}/acknowledge"),
        Some(token),
        Some(json!({ "action": action })),
    )
    .await
}

fn urgent_flag(kind: &str) -> Value {
    json!({ "id": Uuid::new_v4().to_string(), "kind": kind, "urgent": true, "note": "手臂有淤青" })
}

async fn an_urgent_visit_comes_first_and_is_acknowledged_once_by_its_own_town(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "陈小雨").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    // The urgent visit is older than the routine one: by date it would be
    // second.
    let urgent = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(3, 10),
        &[("risk_flags", urgent_flag("physical_abuse"))],
    )
    .await;
    let routine = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(1, 10),
        &[("risk_flags", json!({"id": "d1", "kind": "dropout_risk"}))],
    )
    .await;
    let supervisor = app.token_for("supervisor-a").await;

    let log = get(&app, &supervisor, "/api/v1/visits").await;
    assert_eq!(ids(&log), [urgent.to_string(), routine.to_string()]);
    assert_eq!(log["visits"][0]["urgent"], true);
    assert_eq!(log["visits"][0]["urgent_unhandled"], true);
    assert_eq!(log["visits"][0]["risk_types"], json!(["physical_abuse"]));
    assert_eq!(log["visits"][1]["urgent"], false);
    assert_eq!(log["visits"][1]["risk_types"], json!(["dropout_risk"]));
    let unhandled = get(&app, &supervisor, "/api/v1/visits?urgent=unhandled").await;
    assert_eq!(ids(&unhandled), [urgent.to_string()]);
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/visits?urgent=yes",
            Some(&supervisor),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // Another town's supervisor, the director and a visit without an
    // urgent flag are refused.
    let other_town = app.token_for("supervisor-b").await;
    let (status, body) = acknowledge(&app, &other_town, urgent, "acknowledged").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = acknowledge(&app, &phone.token, urgent, "acknowledged").await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = acknowledge(&app, &supervisor, routine, "acknowledged").await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no urgent risk alert"),
        "{body}"
    );
    let (status, body) = acknowledge(&app, &supervisor, urgent, "ignored").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // The urgent alert in the queue is handled on its visit, not resolved.
    let queue = get(&app, &supervisor, "/api/v1/conflicts?kind=urgent").await;
    assert_eq!(queue["total"], 1, "{queue}");
    assert_eq!(queue["conflicts"][0]["actions"], json!([]));
    let alert_id = queue["conflicts"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/conflicts/{alert_id}/resolve"),
            Some(&supervisor),
            Some(json!({"action": "keep"})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // The town supervisor acknowledges it: recorded with who and when.
    let (status, body) = acknowledge(&app, &supervisor, urgent, "acknowledged").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["unhandled"], false);
    assert_eq!(body["risk_types"], json!(["physical_abuse"]));
    assert_eq!(body["acknowledgements"][0]["action"], "acknowledged");
    assert_eq!(body["acknowledgements"][0]["by_name"], "测试 supervisor-a");
    assert_eq!(body["acknowledgements"][0]["by_role"], "supervisor");
    // Twice is answered clearly; reporting after acknowledging is recorded.
    let (status, body) = acknowledge(&app, &supervisor, urgent, "acknowledged").await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("already handled") && message.contains("测试 supervisor-a"),
        "{message}"
    );
    let (status, body) = acknowledge(&app, &supervisor, urgent, "reported").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = acknowledge(&app, &supervisor, urgent, "reported").await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");

    // The district sees both, with who and when; the alert left the
    // unhandled list and the top of the log.
    let admin_token = app.token_for("admin").await;
    let detail = get(&app, &admin_token, &format!("/api/v1/visits/{urgent}")).await;
    let acks = detail["urgent_alert"]["acknowledgements"]
        .as_array()
        .unwrap();
    let actions: Vec<&str> = acks.iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["acknowledged", "reported"]);
    assert!(
        acks.iter()
            .all(|a| a["by_name"] == "测试 supervisor-a" && a["at"].is_string())
    );
    assert_eq!(detail["urgent_alert"]["unhandled"], false);
    assert_eq!(
        get(&app, &admin_token, "/api/v1/visits?urgent=unhandled").await["total"],
        0
    );
    assert_eq!(
        ids(&get(&app, &admin_token, "/api/v1/visits?urgent=handled").await),
        [urgent.to_string()]
    );
    assert_eq!(
        ids(&get(&app, &admin_token, "/api/v1/visits").await),
        [routine.to_string(), urgent.to_string()]
    );
    let resolved = conflict::Entity::find()
        .filter(conflict::Column::RecordId.eq(urgent))
        .filter(conflict::Column::Kind.eq("urgent"))
        .filter(conflict::Column::Status.eq("resolved"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(resolved, 1, "acknowledging resolves the alert in the queue");
    let audited = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("visit.urgent_acknowledge"))
        .filter(audit_log::Column::RecordId.eq(urgent))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(audited, 2, "each acknowledgement is audited");
}

async fn a_new_urgent_flag_after_an_acknowledgement_raises_the_alert_again(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a2, "李明").await;
    let mut phone = Device::sign_in(&app, "director-a2").await;
    let urgent = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a2,
        &day_at(2, 9),
        &[("risk_flags", urgent_flag("abandonment"))],
    )
    .await;
    // The district acknowledges it.
    let admin_token = app.token_for("admin").await;
    let (status, body) = acknowledge(&app, &admin_token, urgent, "acknowledged").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acknowledgements"][0]["by_role"], "admin");

    // The director adds another urgent flag: unhandled again.
    phone.pull_all(&app).await;
    let edit = phone
        .update(Entity::Visit, urgent)
        .add("risk_flags", urgent_flag("self_harm"))
        .build();
    phone.push(&app, &[edit]).await;
    let supervisor = app.token_for("supervisor-a").await;
    let unhandled = get(&app, &supervisor, "/api/v1/visits?urgent=unhandled").await;
    assert_eq!(ids(&unhandled), [urgent.to_string()]);
    let detail = get(&app, &supervisor, &format!("/api/v1/visits/{urgent}")).await;
    assert_eq!(detail["urgent_alert"]["unhandled"], true);
    let mut types: Vec<&str> = detail["urgent_alert"]["risk_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["abandonment", "self_harm"]);
    let (status, body) = acknowledge(&app, &supervisor, urgent, "acknowledged").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["acknowledgements"].as_array().unwrap().len(), 2);
}
