//! `/metrics`: Prometheus text, scraped as Prometheus would, off the public
//! port unless configured; the dashboard and alert rules in docs/grafana
//! checked against it (`dashboard`).

mod dashboard;

use reqwest::StatusCode;
use seedling_tests::{Backend, Device, Fixture, TestApp, on_both_backends};
use serde_json::json;

on_both_backends!(
    the_public_port_serves_no_metrics_by_default,
    a_scrape_shows_requests_sync_results_and_the_database_gauges,
);

async fn the_public_port_serves_no_metrics_by_default(app: TestApp) {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

async fn a_scrape_shows_requests_sync_results_and_the_database_gauges(app: TestApp) {
    // The same database, restarted with the metrics on the public port.
    let mut app = app;
    app.restart_with(|config| config.metrics_on_public_port = true)
        .await;
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "周小满").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let (_, visit) = phone.new_visit(child, fixture.village_a1, &format!("{day}T10:00:00+08:00"));
    phone
        .push(
            &app,
            &[visit
                .set("observations", json!({"living": "生活正常"}))
                .add(
                    "risk_flags",
                    json!({"id": "r1", "kind": "suspected_abuse", "urgent": true, "note": "身上有伤"}),
                )
                .build()],
        )
        .await;
    // One refused request, so a 4xx status is counted too.
    let _ = app
        .http
        .get(app.url("/api/v1/sync/pull"))
        .send()
        .await
        .unwrap();

    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    for expected in [
        r#"seedling_http_requests_total{route="/api/v1/sync/push",method="POST",status="200"}"#,
        r#"seedling_http_requests_total{route="/api/v1/sync/pull",method="GET",status="401"}"#,
        r#"seedling_http_request_duration_seconds_bucket{route="/api/v1/sync/push",method="POST",le="0.5"}"#,
        r#"seedling_sync_mutations_total{status="applied",reason=""}"#,
        "seedling_sync_pushes_total",
        "seedling_sync_pulls_total",
        "seedling_sync_in_flight",
        r#"seedling_db_pool_connections{pool="writer",state="idle"}"#,
        r#"seedling_outbox_messages{status="pending"}"#,
        "seedling_outbox_lag_seconds",
        "seedling_audit_chain_length",
        "seedling_database_unreachable 0",
    ] {
        assert!(text.contains(expected), "no {expected} in:\n{text}");
    }
    assert_eq!(
        gauge(&text, "seedling_urgent_alerts_unacknowledged"),
        1.0,
        "the urgent visit's alert waits for a supervisor"
    );
    let waiting = gauge(&text, "seedling_urgent_alert_oldest_unacknowledged_seconds");
    assert!((0.0..600.0).contains(&waiting), "{waiting}");
    let chain = gauge(&text, "seedling_audit_chain_length");
    assert!(
        chain >= 1.0,
        "the sign-ins and the push were audited: {chain}"
    );
}

/// The value of an unlabelled gauge.
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// `metrics_listen` serves `/metrics` on a listener of its own, and only
/// that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_serves_metrics_on_its_own_port() {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let address = format!("127.0.0.1:{port}");
    let app = TestApp::with_config(Backend::Sqlite, |config| {
        config.metrics_listen = address.clone();
    })
    .await;
    // The listener is bound as the server starts, beside the public one.
    let scrape = format!("http://{address}/metrics");
    seedling_tests::wait_until("the metrics listener", || async {
        app.http.get(&scrape).send().await.is_ok()
    })
    .await;
    let response = app.http.get(&scrape).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("seedling_sync_in_flight")
    );
    let other = app
        .http
        .get(format!("http://{address}/api/v1/sync/pull"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "only /metrics there");
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(
        public.status(),
        StatusCode::NOT_FOUND,
        "not on the public port"
    );
}
