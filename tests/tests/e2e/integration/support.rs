//! Shared set-up: a server configured to deliver to a stand-in with short
//! delays, synthetic outbox rows, and condition waits with a generous
//! deadline (never a timing assertion).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use seedling_server::config::{Config, Secret};
use seedling_server::entity::{delivery_attempt, outbox};
use seedling_server::repo;
use seedling_server::service::integration::worker::DeliveryWorker;
use seedling_tests::platform::StandIn;
use seedling_tests::{Backend, TestApp};
use uuid::Uuid;

pub const KEY_ID: &str = "k1";
pub const SECRET: &str = "platform-shared-secret-0123456789abcdef";

/// Runs each scenario (an `async fn(Backend)`) on SQLite and PostgreSQL.
#[macro_export]
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(seedling_tests::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(seedling_tests::Backend::Postgres).await;
                }
            )*
        }
    };
}

/// Delivery to `endpoint` with delays in milliseconds.
pub fn configure(config: &mut Config, endpoint: &str, worker_in_serve: bool) {
    config.integration_endpoint = endpoint.to_owned();
    config.integration_worker = worker_in_serve;
    config.integration_key_id = KEY_ID.to_owned();
    config.integration_signing_secret = Secret::new(SECRET);
    config.integration_timeout_ms = 400;
    config.integration_lease_ms = 3_000;
    config.integration_max_attempts = 1_000;
    config.integration_backoff_base_ms = 10;
    config.integration_backoff_max_ms = 100;
    config.integration_poll_interval_ms = 10;
    config.integration_batch_size = 16;
    config.integration_concurrency = 4;
}

/// A server delivering to `stand_in`.
pub async fn app_for(
    backend: Backend,
    stand_in: &StandIn,
    worker_in_serve: bool,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let endpoint = stand_in.endpoint();
    TestApp::with_config(backend, move |config| {
        configure(config, &endpoint, worker_in_serve);
        adjust(config);
    })
    .await
}

/// A worker of its own process: new connections to the same database.
pub struct RunningWorker {
    pub task: tokio::task::JoinHandle<()>,
    pub stop: tokio::sync::watch::Sender<bool>,
}

pub async fn start_worker(app: &TestApp) -> RunningWorker {
    let state = seedling_server::startup::build_state((*app.state.config).clone())
        .await
        .expect("a second process's state");
    let worker = DeliveryWorker::new(&state).expect("worker");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(worker.run(stopped));
    RunningWorker { task, stop }
}

impl RunningWorker {
    /// Asks the worker to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Writes `per_child` messages for each child, interleaved across
/// children, with strictly increasing creation times. Returns each child's
/// message ids in order.
pub async fn enqueue(
    app: &TestApp,
    children: usize,
    per_child: usize,
) -> BTreeMap<Uuid, Vec<Uuid>> {
    let ids: Vec<Uuid> = (0..children).map(|_| Uuid::new_v4()).collect();
    let mut order: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    let start = Utc::now() - chrono::Duration::seconds(60);
    let mut n = 0i64;
    for round in 0..per_child {
        for child in &ids {
            n += 1;
            let id = Uuid::now_v7();
            let at = start + chrono::Duration::milliseconds(n);
            repo::sync_records::enqueue(
                app.db(),
                vec![outbox::Model {
                    id,
                    kind: "visit_approved".to_owned(),
                    aggregate_id: Uuid::new_v4(),
                    payload: serde_json::json!({ "child_id": child, "round": round }),
                    status: "pending".to_owned(),
                    attempts: 0,
                    next_attempt_at: at,
                    locked_until: None,
                    last_error: None,
                    created_at: at,
                    delivered_at: None,
                }],
            )
            .await
            .expect("enqueue");
            order.entry(*child).or_default().push(id);
        }
    }
    order
}

/// Waits (polling) until `check` holds, failing after a generous deadline.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let waited = tokio::time::timeout(Duration::from_secs(90), async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for {what}");
}

/// Outbox rows per status.
pub async fn counts(app: &TestApp) -> BTreeMap<String, i64> {
    repo::integration::status_counts(app.db())
        .await
        .expect("counts")
        .into_iter()
        .collect()
}

pub async fn delivered(app: &TestApp) -> i64 {
    counts(app).await.get("delivered").copied().unwrap_or(0)
}

pub async fn attempts(app: &TestApp) -> Vec<delivery_attempt::Model> {
    delivery_attempt::Entity::find()
        .order_by_asc(delivery_attempt::Column::StartedAt)
        .all(app.db())
        .await
        .expect("attempts")
}

pub async fn row(app: &TestApp, id: Uuid) -> outbox::Model {
    outbox::Entity::find()
        .filter(outbox::Column::Id.eq(id))
        .one(app.db())
        .await
        .expect("outbox row")
        .expect("row exists")
}

/// Every message applied exactly once by the stand-in, and each child's
/// messages applied in the order they were written.
pub fn assert_exactly_once_in_order(stand_in: &StandIn, order: &BTreeMap<Uuid, Vec<Uuid>>) {
    let applied = stand_in.applied();
    let expected: usize = order.values().map(Vec::len).sum();
    assert_eq!(applied.len(), expected, "every message applied once");
    let mut seen = std::collections::HashSet::new();
    for message in &applied {
        assert!(
            seen.insert(message.idempotency_key.clone()),
            "{} applied twice",
            message.idempotency_key
        );
    }
    for (child, ids) in order {
        let got: Vec<String> = applied
            .iter()
            .filter(|m| m.child_id.as_deref() == Some(&child.to_string()))
            .map(|m| m.idempotency_key.clone())
            .collect();
        let want: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        assert_eq!(got, want, "messages of child {child} out of order");
    }
}
