//! The sync events stream (`GET /api/v1/sync/events`, SYNC-PROTOCOL.md
//! §4c), read through the reference client's `HttpTransport::events`: a
//! change committed in the caller's scope pokes its stream, one elsewhere
//! does not; the stream ends with its access token; streams past the cap
//! are turned away. Across server processes: server/tests/two_processes.rs.

use std::time::Duration;

use seedling_client::events::{EventStream, Signal};
use seedling_client::{HttpTransport, TransportError};
use seedling_tests::{Device, Fixture, TestApp, on_both_backends};
use serde_json::json;

on_both_backends!(
    a_commit_in_scope_pokes_the_stream_and_one_elsewhere_does_not,
    the_stream_ends_when_its_access_token_expires,
    streams_past_the_cap_are_turned_away_with_retry_after,
);

/// A bound that only ends a broken run, not a measurement.
const WAIT: Duration = Duration::from_secs(20);

async fn open(app: &TestApp, token: &str) -> Result<EventStream, TransportError> {
    HttpTransport::new(&app.base_url, token, Duration::from_secs(30))
        .expect("a transport")
        .events()
        .await
}

async fn next(stream: &mut EventStream) -> Option<Signal> {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("an event or the stream's end in time")
        .expect("a readable stream")
}

fn yesterday_at(hour: u32) -> String {
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    format!("{day}T{hour:02}:00:00+08:00")
}

async fn a_commit_in_scope_pokes_the_stream_and_one_elsewhere_does_not(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let here = admin.create_child(&app, fixture.village_a1, "孙小禾").await;
    let there = admin.create_child(&app, fixture.village_b1, "周小满").await;
    let listener = Device::sign_in(&app, "director-a1").await;
    let mut stream = open(&app, &listener.token).await.expect("the stream opens");
    assert_eq!(next(&mut stream).await, Some(Signal::Ready));
    // A poke for the child created just before may still come (SQLite's
    // watcher reads the log every 200 ms): let it pass.
    while let Ok(early) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
        assert_eq!(early.expect("a readable stream"), Some(Signal::Changed));
    }

    // A visit in another town's village: nothing for this director.
    let mut elsewhere = Device::sign_in(&app, "director-b1").await;
    let (_, visit) = elsewhere.new_visit(there, fixture.village_b1, &yesterday_at(9));
    elsewhere.push(&app, &[visit.build()]).await;
    let quiet = tokio::time::timeout(Duration::from_millis(1500), stream.next()).await;
    assert!(quiet.is_err(), "no event for a change elsewhere: {quiet:?}");

    // The same director's other phone records a visit in the village.
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (_, visit) = phone.new_visit(here, fixture.village_a1, &yesterday_at(10));
    phone
        .push(&app, &[visit.set("follow_up", json!("下周再访")).build()])
        .await;
    assert_eq!(next(&mut stream).await, Some(Signal::Changed));

    // The town's supervisor hears of a register change in the village too.
    let supervisor = Device::sign_in(&app, "supervisor-a").await;
    let mut town = open(&app, &supervisor.token)
        .await
        .expect("the stream opens");
    assert_eq!(next(&mut town).await, Some(Signal::Ready));
    admin.create_child(&app, fixture.village_a2, "王小川").await;
    assert_eq!(next(&mut town).await, Some(Signal::Changed));
}

async fn the_stream_ends_when_its_access_token_expires(app: TestApp) {
    let mut app = app;
    app.restart_with(|config| config.access_token_ttl_secs = 2)
        .await;
    Fixture::load(&app).await;
    let phone = Device::sign_in(&app, "director-a1").await;
    let mut stream = open(&app, &phone.token).await.expect("the stream opens");
    assert_eq!(next(&mut stream).await, Some(Signal::Ready));
    assert_eq!(next(&mut stream).await, None, "ended with the token");
}

async fn streams_past_the_cap_are_turned_away_with_retry_after(app: TestApp) {
    let mut app = app;
    app.restart_with(|config| config.max_event_streams = 1)
        .await;
    Fixture::load(&app).await;
    let one = Device::sign_in(&app, "director-a1").await;
    let two = Device::sign_in(&app, "director-a2").await;
    let mut first = open(&app, &one.token).await.expect("the stream opens");
    assert_eq!(next(&mut first).await, Some(Signal::Ready));
    match open(&app, &two.token).await {
        Err(TransportError::Busy { retry_after }) => {
            assert!(retry_after > Duration::ZERO, "{retry_after:?}");
        }
        other => panic!("expected server_busy, got {other:?}"),
    }
    drop(first);
    // The slot comes back when the stream closes.
    seedling_tests::wait_until("the slot to come back", || async {
        open(&app, &two.token).await.is_ok()
    })
    .await;
}
