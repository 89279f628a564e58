//! Health, readiness, the OpenAPI document, request ids and migrations.

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Statement};
use seedling_server::error::ErrorCode;
use seedling_tests::{TestApp, on_both_backends};
use serde_json::json;
use strum::VariantArray;

on_both_backends!(
    health_and_readiness_answer,
    the_openapi_document_lists_every_route,
    every_answer_carries_a_request_id,
    migrations_create_every_table,
);

async fn health_and_readiness_answer(app: TestApp) {
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
}

async fn the_openapi_document_lists_every_route(app: TestApp) {
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/auth/me", "get"),
        ("/api/v1/children/{id}/export", "get"),
        ("/api/v1/org-units", "get"),
        ("/api/v1/users", "get"),
        ("/api/v1/users", "post"),
        ("/api/v1/integration/token", "post"),
        ("/api/v1/integration/roster-batches", "post"),
        ("/api/v1/integration/changes", "get"),
        ("/api/v1/integration/admin/status", "get"),
        ("/api/v1/integration/admin/parked", "get"),
        ("/api/v1/integration/admin/deliveries/{id}", "get"),
        ("/api/v1/integration/admin/deliveries/{id}/replay", "post"),
        ("/api/v1/integration/admin/replay-parked", "post"),
        ("/api/v1/integration/admin/pause", "post"),
        ("/api/v1/integration/admin/resume", "post"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }
    let schemas = &doc["components"]["schemas"];
    let codes: Vec<&str> =
        schemas["ErrorEnvelope"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .expect("the error codes are enumerated")
            .iter()
            .map(|code| code.as_str().unwrap())
            .collect();
    for code in ErrorCode::VARIANTS {
        assert!(
            codes.contains(&code.as_str()),
            "error code {code:?} is not listed"
        );
    }
    // Nested bodies reach the document whole: a generated client needs the
    // mutation's fields, a refusal's reason and a conflict's sides.
    let mutation = &schemas["PushRequest"]["properties"]["mutations"]["items"];
    assert!(mutation["properties"]["fields"].is_object(), "{mutation}");
    let merged = &schemas["PushResponse"]["properties"]["results"]["items"]["oneOf"][1];
    for list in ["refusals", "conflicts", "flags"] {
        assert!(
            merged["properties"][list]["items"]["properties"].is_object(),
            "a merged result's {list} have no item schema"
        );
    }
    let refusal = &merged["properties"]["refusals"]["items"]["properties"]["reason"]["enum"];
    assert!(
        refusal.as_array().unwrap().contains(&json!("id_exists")),
        "{refusal}"
    );
    // Every reference names a schema the document holds: a client
    // generator stops at the first one that does not.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for reference in refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside the schemas: {reference}"));
        assert!(
            schemas.get(name).is_some(),
            "{reference} names no schema of the document"
        );
    }
}

fn collect_refs<'a>(value: &'a serde_json::Value, into: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(|r| r.as_str()) {
                into.push(reference);
            }
            map.values().for_each(|v| collect_refs(v, into));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
        _ => {}
    }
}

async fn every_answer_carries_a_request_id(app: TestApp) {
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    let id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header");
    assert!(!id.is_empty());
    let response = app
        .http
        .get(app.url("/healthz"))
        .header("x-request-id", "from-the-phone-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "from-the-phone-42");
}

async fn migrations_create_every_table(app: TestApp) {
    for table in [
        "org_units",
        "users",
        "devices",
        "refresh_tokens",
        "children",
        "register_events",
        "visit_rules",
        "benefit_standards",
        "visits",
        "case_plan_items",
        "change_log",
        "applied_mutations",
        "conflicts",
        "outbox",
        "audit_log",
        "attachments",
        "delivery_attempts",
        "integration_settings",
        "integration_batches",
    ] {
        let db = app.db();
        let count = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap_or_else(|err| panic!("table {table}: {err}"));
        assert!(count.is_some(), "table {table} answered nothing");
    }
}

/// The contract app developers generate clients from: any change to
/// `/openapi.json` shows as a diff of `snapshots/e2e__operations__openapi.snap`
/// to review (`cargo insta review`, or `INSTA_UPDATE=always` and read the
/// diff). The document does not depend on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_its_reviewed_snapshot() {
    let app = TestApp::new(seedling_tests::Backend::Sqlite).await;
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    // Client generators need one operation id per operation (found by
    // generating the TypeScript client: two routes were both `status`).
    let mut ids = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().expect("an operation id");
            if let Some(other) = ids.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("`{id}` names both {other} and {method} {path}");
            }
        }
    }
    insta::assert_json_snapshot!("openapi", doc);
}

/// `district_time_zone` is checked at start-up: a name that is not an IANA
/// zone stops the server with a message naming the setting, rather than
/// counting days in a wrong calendar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_time_zone_that_is_not_a_zone_stops_start_up() {
    let dir = tempfile::tempdir().expect("a folder");
    let config = seedling_server::config::Config {
        data_dir: dir.path().to_path_buf(),
        district_time_zone: "Asia/Beijing".to_owned(),
        ..seedling_server::config::Config::default()
    };
    let err = seedling_server::startup::build_state(config)
        .await
        .expect_err("an unknown zone is refused");
    let text = format!("{err:#}");
    assert!(text.contains("district_time_zone"), "{text}");
    assert!(text.contains("Asia/Beijing"), "{text}");
}
