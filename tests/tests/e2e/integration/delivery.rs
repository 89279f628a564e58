//! Outbound delivery against the stand-in platform.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use seedling_server::service::integration::worker::DeliveryWorker;
use seedling_tests::platform::{Behaviour, StandIn};
use seedling_tests::{Backend, Fixture};

use super::support::{
    KEY_ID, SECRET, app_for, assert_exactly_once_in_order, attempts, counts, delivered, enqueue,
    row, start_worker, wait_until,
};
use crate::on_both;

on_both!(
    deliveries_survive_an_outage_errors_and_timeouts_and_apply_exactly_once_in_order,
    a_restart_mid_delivery_loses_nothing_and_applies_nothing_twice,
    two_workers_never_send_one_message_at_once,
    a_flaky_platform_never_sees_a_childs_messages_out_of_order,
    a_bad_signature_is_refused_parked_and_delivered_after_replay,
    retry_after_is_honoured_and_repeated_failure_parks_the_message,
    a_paused_delivery_sends_nothing_until_resumed,
    a_stopping_worker_finishes_what_is_in_flight_and_hands_back_the_rest,
);

async fn deliveries_survive_an_outage_errors_and_timeouts_and_apply_exactly_once_in_order(
    backend: Backend,
) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    stand_in.go_down().await;
    // The worker `seedling serve` starts.
    let app = app_for(backend, &stand_in, true, |_| {}).await;
    let order = enqueue(&app, 6, 5).await;

    wait_until("attempts against the platform while it is down", || async {
        attempts(&app)
            .await
            .iter()
            .filter(|a| a.error.is_some())
            .count()
            >= 10
    })
    .await;
    assert_eq!(delivered(&app).await, 0);

    stand_in.come_up().await;
    stand_in.set(Behaviour::Fail(503));
    wait_until("a 503 answer", || async {
        attempts(&app)
            .await
            .iter()
            .any(|a| a.status_code == Some(503))
    })
    .await;
    stand_in.set(Behaviour::Hold(Duration::from_secs(2)));
    wait_until("a timed-out attempt", || async {
        attempts(&app).await.iter().any(|a| {
            a.error
                .as_deref()
                .is_some_and(|e| e.starts_with("timed out"))
        })
    })
    .await;
    stand_in.set(Behaviour::Normal);
    wait_until("every message delivered", || async {
        delivered(&app).await == 30
    })
    .await;

    assert_exactly_once_in_order(&stand_in, &order);
    assert!(stand_in.received().iter().all(|r| r.signature_ok));
    let history = attempts(&app).await;
    assert!(history.iter().any(|a| {
        a.status_code.is_none()
            && a.error
                .as_deref()
                .is_some_and(|e| e.starts_with("could not connect"))
    }));
    assert!(history.iter().all(|a| a.key_id == KEY_ID));
    assert!(
        history
            .iter()
            .filter(|a| a.outcome == "delivered")
            .all(|a| a.status_code.is_some_and(|s| (200..300).contains(&s))),
        "a delivered attempt has a 2xx answer"
    );
    assert_eq!(counts(&app).await.get("parked"), None);
}

async fn a_restart_mid_delivery_loses_nothing_and_applies_nothing_twice(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    // The platform applies, then its answer is held: the sender is cut off
    // before it learns the outcome.
    stand_in.set(Behaviour::Hold(Duration::from_secs(30)));
    let app = app_for(backend, &stand_in, false, |config| {
        config.integration_timeout_ms = 5_000;
        config.integration_lease_ms = 6_000;
    })
    .await;
    let order = enqueue(&app, 8, 2).await;
    let first = start_worker(&app).await;
    wait_until("the platform applying messages", || async {
        !stand_in.applied().is_empty()
    })
    .await;
    // The process dies mid-delivery: no graceful stop, its claims linger.
    first.task.abort();
    let _ = first.task.await;
    assert_eq!(
        delivered(&app).await,
        0,
        "nothing was recorded as delivered"
    );
    assert!(counts(&app).await.get("delivering").copied().unwrap_or(0) > 0);

    stand_in.set(Behaviour::Normal);
    let second = start_worker(&app).await;
    wait_until("every message delivered after the restart", || async {
        delivered(&app).await == 16
    })
    .await;
    second.stop().await;

    assert_exactly_once_in_order(&stand_in, &order);
    // The platform applied some messages before the crash and never got to
    // answer; after the restart they came again and were recognised (200,
    // where a first delivery is answered 201).
    assert!(
        stand_in.received().iter().any(|r| r.status == 200),
        "a message cut off mid-delivery was sent again and recognised as a repeat"
    );
}

async fn two_workers_never_send_one_message_at_once(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    stand_in.set(Behaviour::Hold(Duration::from_millis(5)));
    let app = app_for(backend, &stand_in, false, |_| {}).await;
    let order = enqueue(&app, 20, 6).await;
    let one = start_worker(&app).await;
    let two = start_worker(&app).await;
    wait_until("every message delivered", || async {
        delivered(&app).await == 120
    })
    .await;
    one.stop().await;
    two.stop().await;

    assert_eq!(stand_in.concurrent_duplicates(), 0);
    let received = stand_in.received();
    assert_eq!(received.len(), 120, "no message was sent twice");
    assert_exactly_once_in_order(&stand_in, &order);
}

async fn a_flaky_platform_never_sees_a_childs_messages_out_of_order(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    stand_in.set(Behaviour::FailShare(0.3));
    let app = app_for(backend, &stand_in, false, |_| {}).await;
    let order = enqueue(&app, 5, 8).await;
    let one = start_worker(&app).await;
    let two = start_worker(&app).await;
    wait_until("every message delivered", || async {
        delivered(&app).await == 40
    })
    .await;
    one.stop().await;
    two.stop().await;
    assert!(stand_in.received().iter().any(|r| r.status == 500));
    assert_exactly_once_in_order(&stand_in, &order);
}

async fn a_bad_signature_is_refused_parked_and_delivered_after_replay(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, "the-platform-expects-another-secret").await;
    // Every request here is answered at once; a loaded machine must not
    // turn a slow 401 into a timeout, which is retried (and counted).
    let app = app_for(backend, &stand_in, true, |config| {
        config.integration_timeout_ms = 5_000;
        config.integration_lease_ms = 8_000;
    })
    .await;
    Fixture::load(&app).await;
    let admin = app.token_for("admin").await;
    // Children A and B have two messages each, written one by one while the
    // worker runs.
    let order = enqueue(&app, 2, 2).await;
    let mut children = order.keys();
    let (a, b) = (
        *children.next().expect("child a"),
        *children.next().expect("child b"),
    );

    wait_until("the first message of each child parked", || async {
        counts(&app).await.get("parked").copied() == Some(2)
    })
    .await;
    let refused = stand_in.received();
    assert!(refused.iter().all(|r| !r.signature_ok && r.status == 401));
    assert!(stand_in.applied().is_empty());

    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/integration/admin/status",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["parked"], 2);
    assert_eq!(body["pending"], 2);
    assert_eq!(
        body["blocked_by_parked"], 2,
        "later messages wait behind parked ones"
    );
    assert_eq!(body["paused"], false);
    assert!(body["lag_seconds"].as_i64().is_some_and(|lag| lag >= 0));

    let (status, parked) = app
        .call(
            Method::GET,
            "/api/v1/integration/admin/parked",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{parked}");
    let parked = parked.as_array().expect("list").clone();
    assert_eq!(parked.len(), 2);
    for entry in &parked {
        assert_eq!(entry["last_status_code"], 401);
        assert_eq!(
            entry["attempts"], 1,
            "a refused signature is not retried blindly"
        );
        assert!(
            entry["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("401"))
        );
    }

    // The platform's key is fixed; child A's first message is replayed.
    stand_in.set_key(KEY_ID, SECRET);
    let first_a = order[&a][0];
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/integration/admin/deliveries/{first_a}/replay"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["replayed"][0], first_a.to_string());
    wait_until("child A's messages delivered", || async {
        delivered(&app).await == 2
    })
    .await;
    assert_eq!(row(&app, order[&b][0]).await.status, "parked");

    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/integration/admin/deliveries/{first_a}/replay"),
            Some(&admin),
            None,
        )
        .await;
    seedling_tests::assert_error(status, &body, StatusCode::CONFLICT, "conflict");

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/integration/admin/replay-parked",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_until("every message delivered", || async {
        delivered(&app).await == 4
    })
    .await;
    assert_exactly_once_in_order(&stand_in, &order);

    let (status, detail) = app
        .call(
            Method::GET,
            &format!("/api/v1/integration/admin/deliveries/{first_a}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["status"], "delivered");
    let history = detail["history"].as_array().expect("attempts");
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["status_code"], 401);
    assert_eq!(history[0]["outcome"], "parked");
    assert_eq!(history[1]["outcome"], "delivered");
    assert!(history[1]["latency_ms"].as_i64().is_some());
    assert!(
        history[1]["response_excerpt"]
            .as_str()
            .is_some_and(|e| e.contains("accepted"))
    );

    let audited: Vec<String> = seedling_server::entity::audit_log::Entity::find()
        .all(app.db())
        .await
        .expect("audit log")
        .into_iter()
        .map(|row| row.action)
        .collect();
    assert!(
        audited.contains(&"integration.replay".to_owned()),
        "{audited:?}"
    );
    assert!(
        audited.contains(&"integration.replay_parked".to_owned()),
        "{audited:?}"
    );

    let director = app.token_for("director-a1").await;
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/integration/admin/status",
            Some(&director),
            None,
        )
        .await;
    seedling_tests::assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

async fn retry_after_is_honoured_and_repeated_failure_parks_the_message(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    stand_in.set(Behaviour::RetryAfter(1));
    let app = app_for(backend, &stand_in, true, |config| {
        config.integration_max_attempts = 3;
        config.integration_backoff_max_ms = 5_000;
    })
    .await;
    Fixture::load(&app).await;
    let order = enqueue(&app, 1, 1).await;
    let id = order.values().next().expect("one child")[0];

    wait_until("a 429 answer", || async {
        !attempts(&app).await.is_empty()
    })
    .await;
    stand_in.set(Behaviour::Fail(500));
    let first = attempts(&app).await.remove(0);
    assert_eq!(first.status_code, Some(429));
    assert_eq!(first.outcome, "retry");
    let waiting = row(&app, id).await;
    assert!(
        waiting.next_attempt_at >= first.started_at + chrono::Duration::seconds(1),
        "the next attempt waits as long as Retry-After asked: {} vs {}",
        waiting.next_attempt_at,
        first.started_at
    );

    wait_until("the message parked", || async {
        row(&app, id).await.status == "parked"
    })
    .await;
    let history = attempts(&app).await;
    let codes: Vec<Option<i32>> = history.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, vec![Some(429), Some(500), Some(500)]);
    assert_eq!(history[2].outcome, "parked");
    let parked = row(&app, id).await;
    assert!(
        parked
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("gave up after 3 attempts")),
        "{:?}",
        parked.last_error
    );

    stand_in.set(Behaviour::Normal);
    let admin = app.token_for("admin").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/integration/admin/replay-parked",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_until("delivered after replay", || async {
        delivered(&app).await == 1
    })
    .await;
    assert_exactly_once_in_order(&stand_in, &order);
}

async fn a_paused_delivery_sends_nothing_until_resumed(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    let app = app_for(backend, &stand_in, false, |_| {}).await;
    Fixture::load(&app).await;
    let admin = app.token_for("admin").await;
    let order = enqueue(&app, 3, 1).await;

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/integration/admin/pause",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], true);
    // Another process's worker obeys the pause kept in the database.
    let other = seedling_server::startup::build_state((*app.state.config).clone())
        .await
        .expect("state");
    let worker = DeliveryWorker::new(&other).expect("worker");
    let running = AtomicBool::new(false);
    assert_eq!(worker.round(&running).await.expect("round"), 0);
    assert!(stand_in.received().is_empty());
    let (_, body) = app
        .call(
            Method::GET,
            "/api/v1/integration/admin/status",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(body["paused"], true);
    assert_eq!(body["pending"], 3);

    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/integration/admin/resume",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(worker.round(&running).await.expect("round"), 3);
    assert_eq!(delivered(&app).await, 3);
    assert_exactly_once_in_order(&stand_in, &order);
}

async fn a_stopping_worker_finishes_what_is_in_flight_and_hands_back_the_rest(backend: Backend) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    stand_in.set(Behaviour::Hold(Duration::from_millis(300)));
    let app = app_for(backend, &stand_in, false, |config| {
        config.integration_timeout_ms = 5_000;
        config.integration_lease_ms = 60_000;
        config.integration_batch_size = 40;
        config.integration_concurrency = 2;
    })
    .await;
    let order = enqueue(&app, 40, 1).await;
    let worker = start_worker(&app).await;
    wait_until("requests in flight", || async {
        !stand_in.applied().is_empty()
    })
    .await;
    worker.stop().await;

    // Every request that was sent got its answer and was recorded; the rows
    // claimed but not started went back to the queue at once, without
    // waiting for the lease (a minute here) to run out.
    let counts = counts(&app).await;
    assert_eq!(counts.get("delivering"), None, "{counts:?}");
    let sent = i64::try_from(stand_in.applied().len()).expect("fits");
    assert_eq!(delivered(&app).await, sent);
    assert!(sent < 40, "the worker stopped before sending everything");
    assert_eq!(counts.get("pending").copied(), Some(40 - sent));

    // The next worker delivers the rest.
    stand_in.set(Behaviour::Normal);
    let next = start_worker(&app).await;
    wait_until("the rest delivered", || async {
        delivered(&app).await == 40
    })
    .await;
    next.stop().await;
    assert_exactly_once_in_order(&stand_in, &order);
}
