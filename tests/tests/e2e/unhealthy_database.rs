//! The database goes away while the server runs: requests that need it are
//! answered `503 database_unavailable` with `Retry-After` (never a 500, never
//! a hang), health stays up, readiness says not ready, and when the database
//! returns the server recovers on its own, without a restart.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use seedling_tests::chaos::ChaosProxy;
use seedling_tests::{Backend, Device, Fixture, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_gives_503_and_the_server_recovers_alone() {
    let target = "127.0.0.1:5432".parse().unwrap();
    let proxy = ChaosProxy::start(target).await;
    let proxied = proxy.addr.to_string();
    let app = TestApp::with_config(Backend::Postgres, |config| {
        config.database_url = config.database_url.replace("127.0.0.1:5432", &proxied);
        config.db_max_connections = Some(4);
    })
    .await;
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    admin.create_child(&app, fixture.village_a1, "孙小禾").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;

    proxy.break_connections();
    for _ in 0..3 {
        let response = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("retry-after"));

        let (status, body) = phone.pull_page(&app, 50).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "database_unavailable");

        let (status, body) = app
            .login("director-a2", seedling_tests::fixture::PASSWORD)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK, "the process itself is alive");

    proxy.restore();
    // The pool reconnects by itself; give it a bounded number of tries.
    let mut ready = false;
    for _ in 0..100 {
        let (status, _) = app.call(Method::GET, "/readyz", None, None).await;
        if status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ready,
        "the server did not recover after the database returned"
    );
    phone.pull_all(&app).await;
    let (status, body) = app
        .login("director-a2", seedling_tests::fixture::PASSWORD)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
