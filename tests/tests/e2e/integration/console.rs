//! The console's delivery page in a real headless Chromium at tablet width:
//! the stand-in platform refuses two register messages, an admin sees them
//! parked with their last error and attempts, replays one from its row and
//! the other with "replay all" (by keyboard), sees both delivered, and
//! pauses and resumes delivery. Signing out revokes the console's refresh
//! token. A supervisor's console has no such page.

use std::time::Duration;

use fantoccini::Client;
use fantoccini::key::Key;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_server::entity::refresh_token;
use seedling_tests::platform::{Behaviour, StandIn};
use seedling_tests::{Backend, Device, Fixture, TestApp};
use uuid::Uuid;

use super::support::{KEY_ID, SECRET, app_for, counts, wait_until};
use crate::on_both;
use crate::review::browser::{Driver, click, element, go, open, shows, sign_in, snap};

on_both!(an_admin_replays_parked_deliveries_from_the_console);

/// The text of `css`, or an empty string while it is absent.
async fn text(browser: &Client, css: &str) -> String {
    match browser.find(fantoccini::Locator::Css(css)).await {
        Ok(found) => found.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Presses the page's refresh button until the count of `state` reads
/// `want` (delivery runs in the background; the page shows it on refresh).
async fn refresh_until(browser: &Client, state: &str, want: &str) {
    let css = format!("[data-count={state}]");
    for _ in 0..300 {
        if text(browser, &css).await == want {
            return;
        }
        if let Ok(button) = browser.find(fantoccini::Locator::Css("#refresh")).await {
            let _ = button.click().await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "`{css}` never read {want}; it reads `{}`",
        text(browser, &css).await
    );
}

async fn delivery_status(app: &TestApp, token: &str) -> serde_json::Value {
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/integration/admin/status",
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn an_admin_replays_parked_deliveries_from_the_console(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    // The platform refuses what it is sent: a 422 parks a message at once.
    stand_in.set(Behaviour::Fail(422));
    let app = app_for(backend, &stand_in, true, |_| {}).await;
    let fixture = Fixture::load(&app).await;
    let mut district = Device::sign_in(&app, "admin").await;
    let first = district
        .create_child(&app, fixture.village_a1, "赵一")
        .await;
    let second = district
        .create_child(&app, fixture.village_b1, "钱二")
        .await;
    wait_until("both register messages parked", || async {
        counts(&app).await.get("parked").copied() == Some(2)
    })
    .await;
    let token = app.token_for("admin").await;
    let parked = {
        let (status, body) = app
            .call(
                Method::GET,
                "/api/v1/integration/admin/parked",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().expect("a list").clone()
    };
    let message_of = |child: Uuid| -> String {
        parked
            .iter()
            .find(|m| m["aggregate_id"] == serde_json::json!(child))
            .and_then(|m| m["id"].as_str())
            .unwrap_or_else(|| panic!("no parked message about {child}: {parked:?}"))
            .to_owned()
    };
    let (one, other) = (message_of(first), message_of(second));

    let driver = Driver::start().await;
    let browser = driver.browser_sized(768, 1024).await;
    sign_in(&browser, &app, "admin").await;
    go(&browser, "#/deliveries").await;
    shows(&browser, "main h1", "省平台推送").await;
    shows(&browser, "[data-count=parked]", "2").await;
    shows(&browser, "#delivery-state", "推送运行中").await;
    // Each parked message with its attempts and the platform's answer.
    let row = format!("tr[data-delivery='{one}']");
    shows(&browser, &row, "纳入保障").await;
    shows(&browser, &row, "422").await;
    assert_eq!(
        text(&browser, &format!("{row} [data-attempts]")).await,
        "1",
        "a refused message is not retried"
    );
    shows(&browser, &format!("tr[data-delivery='{other}']"), "422").await;
    // The page fits a tablet held upright: no sideways scrolling of the page.
    let overflow = browser
        .execute(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            vec![],
        )
        .await
        .expect("measure the page");
    assert_eq!(overflow, serde_json::json!(0), "the page scrolls sideways");
    snap(&browser, "deliveries").await;

    // The platform is fixed; replay one message from its row.
    stand_in.set(Behaviour::Normal);
    click(&browser, &format!("[data-replay='{one}']")).await;
    shows(&browser, "#status", "已重新排队 1 条").await;
    refresh_until(&browser, "delivered", "1").await;
    shows(&browser, "[data-count=parked]", "1").await;
    assert!(
        browser.find(fantoccini::Locator::Css(&row)).await.is_err(),
        "a delivered message leaves the parked list"
    );

    // And the rest with "replay all", by keyboard.
    element(&browser, "#replay-all")
        .await
        .send_keys(&Key::Enter.to_string())
        .await
        .expect("press replay all");
    shows(&browser, "#status", "已重新排队 1 条").await;
    refresh_until(&browser, "delivered", "2").await;
    shows(&browser, "[data-count=parked]", "0").await;
    shows(&browser, "main", "暂无记录").await;
    let applied: Vec<String> = stand_in
        .applied()
        .into_iter()
        .map(|m| m.idempotency_key)
        .collect();
    assert_eq!(
        applied,
        vec![one, other],
        "each applied once, in replay order"
    );

    // Pause and resume, kept in the database.
    click(&browser, "#pause").await;
    shows(&browser, "#delivery-state", "推送已暂停").await;
    assert_eq!(delivery_status(&app, &token).await["paused"], true);
    click(&browser, "#resume").await;
    shows(&browser, "#delivery-state", "推送运行中").await;
    assert_eq!(delivery_status(&app, &token).await["paused"], false);

    // In English too.
    click(&browser, "#lang").await;
    shows(&browser, "main h1", "Provincial delivery").await;
    click(&browser, "#lang").await;

    // A supervisor's console has no delivery page, and the API refuses it.
    let refresh = browser
        .execute("return sessionStorage.getItem('seedling.refresh');", vec![])
        .await
        .expect("the console's refresh token");
    click(&browser, "#signout").await;
    element(&browser, "#username").await;
    // Signing out revoked the console's refresh token on the server.
    let admin_id = fixture.user_id("admin");
    wait_until("the sign-out to reach the server", || async {
        refresh_token::Entity::find()
            .filter(refresh_token::Column::UserId.eq(admin_id))
            .filter(refresh_token::Column::RevokedAt.is_not_null())
            .count(app.db())
            .await
            .expect("refresh tokens")
            > 0
    })
    .await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(serde_json::json!({ "refresh_token": refresh })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    sign_in(&browser, &app, "supervisor-a").await;
    assert!(
        browser
            .find(fantoccini::Locator::Css("nav a[href='#/deliveries']"))
            .await
            .is_err(),
        "the delivery page is for admins"
    );
    open(&browser, &app, "#/deliveries").await;
    shows(&browser, "main [role=alert]", "无权查看").await;
    browser.close().await.expect("close the browser");
}
