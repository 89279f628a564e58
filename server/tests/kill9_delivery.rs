//! Crash safety of the delivery worker: `seedling serve` is killed with
//! SIGKILL while it has messages in flight to the provincial platform (the
//! stand-in has applied them and not yet answered), then restarted on the
//! same database. Every message reaches the platform, none is applied twice
//! (the stand-in checks idempotency keys), and each child's messages keep
//! their order.

mod common;

use std::time::Duration;

use common::{Server, free_port, fresh_postgres, seedling, sqlite_in};
use sea_orm::Database;
use seedling_tests::platform::{Behaviour, StandIn, assert_exactly_once_in_order, enqueue};
use seedling_tests::wait_until;

const KEY_ID: &str = "k1";
const SECRET: &str = "platform-shared-secret-kill9-0123456789";
const CHILDREN: usize = 12;
const PER_CHILD: usize = 5;

/// Delivery settings: short delays, several requests in flight, a lease
/// longer than the request timeout (docs/OPERATIONS.md).
fn delivery_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SEEDLING_INTEGRATION_ENDPOINT", endpoint.to_owned()),
        ("SEEDLING_INTEGRATION_KEY_ID", KEY_ID.to_owned()),
        ("SEEDLING_INTEGRATION_SIGNING_SECRET", SECRET.to_owned()),
        ("SEEDLING_INTEGRATION_TIMEOUT_MS", "3000".to_owned()),
        ("SEEDLING_INTEGRATION_LEASE_MS", "4000".to_owned()),
        ("SEEDLING_INTEGRATION_POLL_INTERVAL_MS", "10".to_owned()),
        ("SEEDLING_INTEGRATION_BACKOFF_BASE_MS", "10".to_owned()),
        ("SEEDLING_INTEGRATION_BACKOFF_MAX_MS", "200".to_owned()),
        ("SEEDLING_INTEGRATION_MAX_ATTEMPTS", "1000".to_owned()),
        ("SEEDLING_INTEGRATION_CONCURRENCY", "4".to_owned()),
        ("SEEDLING_INTEGRATION_BATCH_SIZE", "8".to_owned()),
    ]
}

async fn delivered(db: &sea_orm::DatabaseConnection) -> i64 {
    seedling_server::repo::integration::status_counts(db)
        .await
        .expect("outbox counts")
        .into_iter()
        .find(|(status, _)| status == "delivered")
        .map_or(0, |(_, n)| n)
}

async fn killed_mid_delivery_and_restarted_delivers_each_message_once(
    database_url: String,
    dir: &std::path::Path,
) {
    let status = seedling(dir, &database_url)
        .arg("migrate")
        .status()
        .await
        .expect("run seedling migrate");
    assert!(status.success(), "seedling migrate failed: {status}");
    let db = Database::connect(&database_url)
        .await
        .expect("the test's own connection");
    let order = enqueue(&db, CHILDREN, PER_CHILD).await;
    let total = i64::try_from(CHILDREN * PER_CHILD).expect("fits");

    // The platform applies each message at once and holds its answer: at
    // any moment some messages are applied but not yet known delivered.
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    stand_in.set(Behaviour::Hold(Duration::from_millis(400)));
    let env = delivery_env(&stand_in.endpoint());
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let port = free_port();
    let server = Server::start_with(dir, &database_url, port, &env).await;

    wait_until("a third of the messages applied", || async {
        stand_in.applied().len() >= CHILDREN * PER_CHILD / 3
    })
    .await;
    server.kill9().await;
    let applied_before = stand_in.applied().len();
    assert!(
        delivered(&db).await < total && applied_before < CHILDREN * PER_CHILD,
        "the kill came before the end of the work"
    );

    stand_in.set(Behaviour::Normal);
    let _restarted = Server::start_with(dir, &database_url, port, &env).await;
    wait_until("every message delivered after the restart", || async {
        delivered(&db).await == total
    })
    .await;

    assert_exactly_once_in_order(&stand_in, &order);
    assert!(stand_in.received().iter().all(|r| r.signature_ok));
    // Messages the platform applied while the killed process waited for the
    // answer came again after the restart and were recognised as repeats
    // (200, where a first delivery is answered 201).
    assert!(
        stand_in.received().iter().any(|r| r.status == 200),
        "a message cut off mid-delivery was sent again and recognised"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_killed_mid_delivery_delivers_each_message_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    killed_mid_delivery_and_restarted_delivers_each_message_once(sqlite_in(dir.path()), dir.path())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_killed_mid_delivery_delivers_each_message_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    killed_mid_delivery_and_restarted_delivers_each_message_once(
        fresh_postgres().await,
        dir.path(),
    )
    .await;
}
