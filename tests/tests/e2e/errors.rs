//! Bad input gets a clear error in the standard envelope, never a 500.

use reqwest::{Method, StatusCode};
use seedling_tests::{Fixture, TestApp, assert_error, on_both_backends};
use serde_json::json;

on_both_backends!(
    malformed_json_is_400,
    missing_or_mistyped_fields_are_422,
    a_wrong_content_type_is_415,
    an_oversized_body_is_413,
    unknown_routes_and_methods_use_the_envelope,
);

async fn malformed_json_is_400(app: TestApp) {
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(r#"{"username": "director-a1", "password": "#)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap();
    assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_json");
}

async fn missing_or_mistyped_fields_are_422(app: TestApp) {
    Fixture::load(&app).await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "director-a1" })),
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
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({
                "username": "director-a1", "password": "x", "device_id": "not-a-uuid",
            })),
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
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!([1, 2, 3])),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

async fn a_wrong_content_type_is_415(app: TestApp) {
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "text/plain")
        .body("username=director-a1")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap();
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

async fn an_oversized_body_is_413(app: TestApp) {
    let huge = "x".repeat(app.state.config.max_body_bytes + 1);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": huge, "password": "x" })),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

async fn unknown_routes_and_methods_use_the_envelope(app: TestApp) {
    let (status, body) = app
        .call(Method::GET, "/api/v1/no-such-thing", None, None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app
        .call(Method::DELETE, "/api/v1/auth/login", None, None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}
