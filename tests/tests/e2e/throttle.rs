//! Sign-in throttling: repeated wrong passwords lock the account out for a
//! while (even for the right password), repeated failures from one address
//! lock the address out, a success clears the account's count, and every
//! lockout is in the audit trail.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_server::entity::audit_log;
use seedling_tests::{
    Backend, Fixture, TestApp, assert_error, fixture::PASSWORD, on_both_backends,
};

on_both_backends!(
    five_wrong_passwords_lock_the_account_out,
    a_success_clears_the_count,
    the_integration_token_is_throttled_like_a_sign_in,
    a_locked_account_still_signs_in_from_its_own_phone,
);

/// Found by an attack: usernames are predictable (`director-NNN`) and five
/// wrong passwords locked the real director out for 15 minutes, so anyone
/// could lock out every director. The lockout stops new devices; the
/// director's own phone (a device already registered to the account)
/// still signs in with the right password.
async fn a_locked_account_still_signs_in_from_its_own_phone(app: TestApp) {
    Fixture::load(&app).await;
    let phone = uuid::Uuid::new_v4();
    let sign_in = |password: &'static str, device: uuid::Uuid| {
        let app = &app;
        async move {
            app.call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({
                    "username": "director-a1",
                    "password": password,
                    "device_id": device,
                })),
            )
            .await
        }
    };
    let (status, body) = sign_in(PASSWORD, phone).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Someone elsewhere guesses five times: the account is locked…
    for _ in 0..5 {
        let (status, _) = sign_in("guess", uuid::Uuid::new_v4()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = sign_in(PASSWORD, uuid::Uuid::new_v4()).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
    );
    // …but not for the director's own phone with the right password.
    let (status, body) = sign_in(PASSWORD, phone).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A wrong password from that phone is still refused.
    let (status, body) = sign_in("guess", phone).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
}

/// Found by an attack: 60 wrong secrets in 1.3 s at the integration token
/// route, unthrottled. It counts failures like a sign-in does.
async fn the_integration_token_is_throttled_like_a_sign_in(app: TestApp) {
    Fixture::load(&app).await;
    let attempt = |secret: &'static str| {
        let app = &app;
        async move {
            app.call(
                reqwest::Method::POST,
                "/api/v1/integration/token",
                None,
                Some(serde_json::json!({
                    "grant_type": "client_credentials",
                    "client_id": "integration",
                    "client_secret": secret,
                })),
            )
            .await
        }
    };
    for _ in 0..5 {
        let (status, body) = attempt("guess").await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let (status, body) = attempt("guess").await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
    );
    // While locked, the right secret is refused too (nothing is checked).
    let (status, body) = attempt(PASSWORD).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
    );
}

async fn five_wrong_passwords_lock_the_account_out(app: TestApp) {
    Fixture::load(&app).await;
    for _ in 0..5 {
        let (status, body) = app.login("director-a1", "guess").await;
        assert_error(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
    let response = app
        .http
        .post(app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({
            "username": "Director-A1",
            "password": PASSWORD,
            "device_id": uuid::Uuid::new_v4(),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "login_throttled");

    // Another account from the same address is not affected.
    let (status, _) = app.login("director-a2", PASSWORD).await;
    assert_eq!(status, StatusCode::OK);

    let lockouts = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("auth.lockout"))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(lockouts, 1);
}

async fn a_success_clears_the_count(app: TestApp) {
    Fixture::load(&app).await;
    for round in 0..3 {
        for _ in 0..4 {
            let (status, _) = app.login("director-a1", "guess").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "round {round}");
        }
        let (status, body) = app.login("director-a1", PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "round {round}: {body}");
    }
}

/// Failures spread over many accounts from one address lock the address.
async fn one_address_guessing_many_accounts_is_locked_out(backend: Backend) {
    let app = TestApp::with_config(backend, |config| {
        config.login_max_failures_per_address = 4;
    })
    .await;
    Fixture::load(&app).await;
    for user in ["director-a1", "director-a2", "director-b1", "nobody"] {
        let (status, _) = app.login(user, "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app.login("supervisor-a", PASSWORD).await;
    assert_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "login_throttled",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_one_address_guessing_many_accounts_is_locked_out() {
    one_address_guessing_many_accounts_is_locked_out(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_one_address_guessing_many_accounts_is_locked_out() {
    one_address_guessing_many_accounts_is_locked_out(Backend::Postgres).await;
}
