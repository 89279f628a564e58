//! Sign-in, refresh rotation, sign-out and token validation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use seedling_server::auth::Role;
use seedling_tests::{Fixture, TestApp, assert_error, fixture::PASSWORD, on_both_backends};
use serde_json::{Value, json};
use uuid::Uuid;

on_both_backends!(
    every_role_signs_in_and_sees_itself,
    a_wrong_password_or_unknown_user_gets_401,
    a_disabled_account_cannot_sign_in,
    refresh_rotates_and_a_reused_token_ends_the_session,
    logout_ends_the_session,
    expired_tampered_and_unsigned_tokens_are_refused,
    signing_keys_rotate_without_signing_anyone_out,
    a_password_sign_in_hands_out_the_devices_own_store_key,
    an_admin_changes_accounts_within_the_rules_and_each_change_ends_what_it_must,
);

async fn sign_in_on(app: &TestApp, username: &str, device: Uuid) -> Value {
    let (status, session) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({
                "username": username,
                "password": PASSWORD,
                "device_id": device,
                "device_name": "field phone",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    session
}

/// The field app wraps its store's key with the device key, so a director
/// who forgot the PIN signs in again and loses no pending visit. The key is
/// stable for one user on one device, never the same for two devices or
/// two users, and comes only with a password: a refresh token (all a stolen
/// phone holds) never yields it.
async fn a_password_sign_in_hands_out_the_devices_own_store_key(app: TestApp) {
    Fixture::load(&app).await;
    let phone = Uuid::new_v4();
    let first = sign_in_on(&app, "director-a1", phone).await;
    let key = first["device_key"]
        .as_str()
        .expect("a device key")
        .to_owned();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .expect("base64");
    assert_eq!(bytes.len(), 32);

    let again = sign_in_on(&app, "director-a1", phone).await;
    assert_eq!(
        again["device_key"],
        key.as_str(),
        "the same device, the same key"
    );

    let (status, refreshed) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": again["refresh_token"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert!(refreshed.get("device_key").is_none(), "{refreshed}");

    let other_phone = sign_in_on(&app, "director-a1", Uuid::new_v4()).await;
    assert_ne!(other_phone["device_key"], key.as_str());

    // Another account cannot take this device id over (found by an
    // attack: it cut the director's phone off); its app signs in with a
    // device id of its own, and gets a key of its own.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "director-a2", "password": PASSWORD, "device_id": phone})),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "device_in_use");
    let (status, me) = app
        .call(
            Method::GET,
            "/api/v1/auth/me",
            again["access_token"].as_str(),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the director's phone still works: {me}"
    );
    let theirs = sign_in_on(&app, "director-a2", Uuid::new_v4()).await;
    assert_ne!(theirs["device_key"], key.as_str());
    assert_eq!(
        sign_in_on(&app, "director-a1", phone).await["device_key"],
        key.as_str()
    );
}

async fn every_role_signs_in_and_sees_itself(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    for (username, role, unit) in [
        ("director-a1", "director", fixture.village_a1),
        ("supervisor-a", "supervisor", fixture.town_a),
        ("admin", "admin", fixture.district),
        ("integration", "integration", fixture.district),
    ] {
        let (status, session) = app.login(username, PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{session}");
        assert_eq!(session["user"]["role"], role);
        assert_eq!(session["user"]["org_unit"]["id"], unit.to_string());
        assert_eq!(session["token_type"], "Bearer");
        assert_eq!(session["district_time_zone"], "Asia/Shanghai");
        assert!(session["expires_in"].as_i64().unwrap() > 0);
        assert!(session["user"].get("password_hash").is_none());

        let token = session["access_token"].as_str().unwrap();
        let claims = app.jwt().verify(token).expect("valid token");
        assert_eq!(claims.sub, fixture.user_id(username));
        assert_eq!(claims.org, unit);

        let (status, me) = app
            .call(Method::GET, "/api/v1/auth/me", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["username"], username);
    }
}

async fn a_wrong_password_or_unknown_user_gets_401(app: TestApp) {
    Fixture::load(&app).await;
    let (status, body) = app.login("director-a1", "not-the-password").await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let (status, body) = app.login("nobody", PASSWORD).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
}

async fn a_disabled_account_cannot_sign_in(app: TestApp) {
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
    let fixture = Fixture::load(&app).await;
    let user = seedling_server::repo::users::find(app.db(), fixture.user_id("director-a2"))
        .await
        .unwrap()
        .unwrap();
    let mut active = user.into_active_model();
    active.active = Set(false);
    active.update(app.db()).await.unwrap();
    let (status, body) = app.login("director-a2", PASSWORD).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "account_disabled");
}

async fn refresh_rotates_and_a_reused_token_ends_the_session(app: TestApp) {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use seedling_server::entity::{audit_log, refresh_token};
    let fixture = Fixture::load(&app).await;
    let (_, first) = app.login("director-a1", PASSWORD).await;
    let first_refresh = first["refresh_token"].as_str().unwrap().to_owned();

    let (status, second) = refresh(&app, &first_refresh).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(
        second_refresh, first_refresh,
        "refresh must rotate the token"
    );
    assert!(
        app.jwt()
            .verify(second["access_token"].as_str().unwrap())
            .is_ok()
    );

    // The spent token comes back: someone holds a copy.
    let (status, body) = refresh(&app, &first_refresh).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh_token_reused",
    );
    // The reuse is on the audit trail, against the phone.
    let reuse = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("auth.refresh_reuse"))
        .all(app.db())
        .await
        .unwrap();
    assert_eq!(reuse.len(), 1, "{reuse:?}");
    assert_eq!(reuse[0].actor_id, Some(fixture.user_id("director-a1")));
    let session_device = refresh_token::Entity::find()
        .filter(refresh_token::Column::UserId.eq(fixture.user_id("director-a1")))
        .one(app.db())
        .await
        .unwrap()
        .expect("the session's tokens")
        .device_id;
    assert_eq!(reuse[0].record_id, Some(session_device));
    // ...and the access tokens of that session stop at once, the newest
    // included (found by an attack: they kept working for 15 minutes).
    for access in [&first["access_token"], &second["access_token"]] {
        let (status, body) = app
            .call(Method::GET, "/api/v1/auth/me", access.as_str(), None)
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED, "session_ended");
    }
    // ...and the whole family is revoked, including the newest token.
    let (status, body) = refresh(&app, &second_refresh).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh_token_revoked",
    );

    let (status, body) = refresh(&app, "made-up-token").await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_refresh_token",
    );
}

async fn logout_ends_the_session(app: TestApp) {
    Fixture::load(&app).await;
    let device = Uuid::new_v4();
    let session = sign_in_on(&app, "supervisor-a", device).await;
    let refresh_token = session["refresh_token"].as_str().unwrap();
    let access = session["access_token"].as_str();
    let (status, _) = app.call(Method::GET, "/api/v1/auth/me", access, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // The access token ends with the session, not 15 minutes later.
    let (status, body) = app.call(Method::GET, "/api/v1/auth/me", access, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "session_ended");
    let (status, body) = refresh(&app, refresh_token).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh_token_revoked",
    );
    // Signing in again on the same device at once works.
    let again = sign_in_on(&app, "supervisor-a", device).await;
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/auth/me",
            again["access_token"].as_str(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Signing out twice is fine.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({ "refresh_token": refresh_token })),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

async fn expired_tampered_and_unsigned_tokens_are_refused(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let user = fixture.user_id("director-a1");
    let device = Uuid::new_v4();

    // Expired an hour ago (beyond the 30 s leeway).
    let an_hour_ago = chrono::Utc::now().timestamp() - 3600 - app.jwt().ttl_secs();
    let expired = app
        .jwt()
        .issue(
            user,
            Role::Director,
            fixture.village_a1,
            device,
            an_hour_ago,
        )
        .unwrap();
    let (status, body) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&expired), None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "token_expired");

    // A director who rewrites their own token into an admin's.
    let valid = app.token_for("director-a1").await;
    let parts: Vec<&str> = valid.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["role"] = json!("admin");
    claims["org"] = json!(fixture.district);
    let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    let (status, body) = app
        .call(Method::GET, "/api/v1/users", Some(&tampered), None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");

    // `alg: none` with no signature.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{header}.{forged_payload}.");
    let (status, body) = app
        .call(Method::GET, "/api/v1/users", Some(&unsigned), None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");

    // No token, and a header that is not a bearer token.
    let (status, body) = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "missing_token");
    let response = app
        .http
        .get(app.url("/api/v1/auth/me"))
        .header("authorization", format!("Basic {valid}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// The operator's rotation (docs/SECURITY.md): add the new key beside the
/// old and sign with it; later remove the old key.
async fn signing_keys_rotate_without_signing_anyone_out(mut app: TestApp) {
    use seedling_server::config::Secret;
    use seedling_tests::TEST_JWT_SECRET;
    const NEW_KEY: &str = "a-new-signing-key-of-at-least-32-bytes!";
    Fixture::load(&app).await;
    let (_, session) = app.login("director-a1", PASSWORD).await;
    let old_access = session["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid(&old_access), "k1");

    app.restart_with(|config| {
        config.jwt_secret = Secret::default();
        config.jwt_keys = [
            ("k1".to_owned(), Secret::new(TEST_JWT_SECRET)),
            ("k2".to_owned(), Secret::new(NEW_KEY)),
        ]
        .into();
        config.jwt_key_id = "k2".to_owned();
    })
    .await;
    let (status, body) = me(&app, &old_access).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a token of the old key still works: {body}"
    );
    // The phone refreshes as usual and is handed a token of the new key.
    let (status, renewed) = refresh(&app, session["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let new_access = renewed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid(&new_access), "k2");
    let (_, fresh) = app.login("supervisor-a", PASSWORD).await;
    assert_eq!(kid(fresh["access_token"].as_str().unwrap()), "k2");
    assert_eq!(me(&app, &new_access).await.0, StatusCode::OK);

    app.restart_with(|config| {
        config.jwt_keys.remove("k1");
    })
    .await;
    let (status, body) = me(&app, &old_access).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");
    let (status, body) = me(&app, &new_access).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The session itself survives: its refresh token is not a JWT.
    let (status, again) = refresh(&app, renewed["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{again}");
}

async fn me(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.call(Method::GET, "/api/v1/auth/me", Some(token), None)
        .await
}

fn kid(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap_or_default().to_owned()
}

async fn refresh(app: &TestApp, token: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({ "refresh_token": token })),
    )
    .await
}

async fn an_admin_changes_accounts_within_the_rules_and_each_change_ends_what_it_must(
    app: TestApp,
) {
    let fixture = Fixture::load(&app).await;
    let admin = app.token_for("admin").await;
    let director = fixture.user_id("director-a1");
    let path = format!("/api/v1/users/{director}");
    let patch = |body: Value| {
        let (app, admin, path) = (&app, &admin, &path);
        async move { app.call(Method::PATCH, path, Some(admin), Some(body)).await }
    };

    // A director is bound to a village: a town's code, an unknown code and
    // an empty name are refused, and nothing changes.
    let (status, body) = patch(json!({ "org_unit_code": "990000002" })).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = patch(json!({ "org_unit_code": "no-such-code" })).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = patch(json!({ "display_name": "  " })).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = patch(json!({ "village": "990000001002" })).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown fields are refused: {body}"
    );
    let unchanged = seedling_server::repo::users::find(app.db(), director)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(unchanged.org_unit_id, fixture.village_a1);
    assert_eq!(unchanged.display_name, "测试 director-a1");

    // A move to village B1 (another town) and a new name.
    let (status, moved) =
        patch(json!({ "org_unit_code": "990000002001", "display_name": "王丽" })).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["org_unit"]["id"], json!(fixture.village_b1));
    assert_eq!(moved["display_name"], "王丽");

    // An admin may not disable themself; a short password is refused.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", fixture.user_id("admin")),
            Some(&admin),
            Some(json!({ "active": false })),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let password = format!("/api/v1/users/{director}/password");
    let (status, body) = app
        .call(
            Method::POST,
            &password,
            Some(&admin),
            Some(json!({ "password": "short" })),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    // An account that does not exist is not found.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", Uuid::new_v4()),
            Some(&admin),
            Some(json!({ "active": false })),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    // A new password revokes the refresh tokens of the account's sessions.
    let session = sign_in_on(&app, "director-a1", Uuid::new_v4()).await;
    let (status, body) = app
        .call(
            Method::POST,
            &password,
            Some(&admin),
            Some(json!({ "password": "a-fresh-password" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = refresh(&app, session["refresh_token"].as_str().unwrap()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "refresh_token_revoked",
    );
    assert_eq!(
        app.login("director-a1", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Disabling ends the account's sessions at once.
    let (status, session) = app.login("director-a1", "a-fresh-password").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let token = session["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &token).await.0, StatusCode::OK);
    let (status, body) = patch(json!({ "active": false })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], false);
    let (status, body) = me(&app, &token).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "session_ended");
    let (status, body) = app.login("director-a1", "a-fresh-password").await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "account_disabled");
    // Enabled again, it signs in.
    let (status, _) = patch(json!({ "active": true })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.login("director-a1", "a-fresh-password").await.0,
        StatusCode::OK
    );
}
