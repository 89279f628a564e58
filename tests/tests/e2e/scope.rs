//! Role and scope checks on the org and account routes.

use reqwest::{Method, StatusCode};
use seedling_tests::{Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};

on_both_backends!(
    a_director_cannot_reach_a_supervisor_route,
    a_supervisor_sees_only_their_town,
    an_admin_creates_accounts_that_fit_their_unit,
);

async fn a_director_cannot_reach_a_supervisor_route(app: TestApp) {
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let (status, body) = app
        .call(Method::GET, "/api/v1/users", Some(&token), None)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn a_supervisor_sees_only_their_town(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let token = app.token_for("supervisor-a").await;

    let (status, users) = app
        .call(Method::GET, "/api/v1/users", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{users}");
    let mut names = usernames(&users);
    names.sort();
    assert_eq!(names, ["director-a1", "director-a2", "supervisor-a"]);

    let (status, units) = app
        .call(Method::GET, "/api/v1/org-units", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<String> = units
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&fixture.village_a1.to_string()));
    assert!(ids.contains(&fixture.village_a2.to_string()));
    assert!(
        !ids.contains(&fixture.village_b1.to_string()),
        "another town's village leaked"
    );
    assert!(!ids.contains(&fixture.district.to_string()));

    let admin = app.token_for("admin").await;
    let (_, all) = app
        .call(Method::GET, "/api/v1/users", Some(&admin), None)
        .await;
    assert_eq!(usernames(&all).len(), 7);
}

async fn an_admin_creates_accounts_that_fit_their_unit(app: TestApp) {
    Fixture::load(&app).await;
    let admin = app.token_for("admin").await;
    let new_director = json!({
        "username": "director-a1-deputy",
        "display_name": "新主任",
        "role": "director",
        "org_unit_code": "990000001001",
        "password": "a-long-enough-password",
    });
    let (status, created) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(new_director.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["org_unit"]["code"], "990000001001");
    let (status, session) = app
        .login("director-a1-deputy", "a-long-enough-password")
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&admin),
            Some(new_director),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");

    let misplaced = json!({
        "username": "supervisor-in-a-village",
        "display_name": "x",
        "role": "supervisor",
        "org_unit_code": "990000001001",
        "password": "a-long-enough-password",
    });
    let (status, body) = app
        .call(Method::POST, "/api/v1/users", Some(&admin), Some(misplaced))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let supervisor = app.token_for("supervisor-a").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/users",
            Some(&supervisor),
            Some(json!({
                "username": "x-director", "display_name": "x", "role": "director",
                "org_unit_code": "990000001002", "password": "a-long-enough-password",
            })),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

fn usernames(users: &Value) -> Vec<String> {
    users
        .as_array()
        .expect("a list of users")
        .iter()
        .map(|user| user["username"].as_str().unwrap().to_owned())
        .collect()
}
