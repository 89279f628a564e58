//! Benchmark, ignored by default: 3,559 approvals (the reference
//! district's half year of visits) written at once, delivered by one worker
//! with the production defaults to the stand-in answering normally, then
//! with 20 % of its answers failing (500). Prints the time until every
//! message was delivered, the delivery rate, the time until 99 % were
//! delivered, and the attempts made; docs/BENCHMARKS.md keeps the figures.
//!
//! ```sh
//! cargo test -p seedling-tests --test e2e integration::bench -- --ignored --nocapture --test-threads 1
//! ```

use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::TransactionTrait;
use seedling_server::repo;
use seedling_tests::platform::{Behaviour, StandIn};
use seedling_tests::{Backend, TestApp};
use serde_json::json;
use uuid::Uuid;

use super::support::{KEY_ID, SECRET, attempts, delivered, start_worker};

const APPROVALS: usize = 3_559;
/// Children of the demo district the approvals are spread over.
const CHILDREN: usize = 960;

async fn burst(backend: Backend, failing_share: f64) {
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    if failing_share > 0.0 {
        stand_in.set(Behaviour::FailShare(failing_share));
    }
    let endpoint = stand_in.endpoint();
    // Production defaults, except that `seedling serve`'s own worker is off
    // so the clock starts when the burst is written.
    let app = TestApp::with_config(backend, move |config| {
        config.integration_endpoint = endpoint;
        config.integration_worker = false;
        config.integration_key_id = KEY_ID.to_owned();
        config.integration_signing_secret = seedling_server::config::Secret::new(SECRET);
    })
    .await;
    let children: Vec<Uuid> = (0..CHILDREN).map(|_| Uuid::new_v4()).collect();
    let txn = app.db().begin().await.expect("begin");
    for n in 0..APPROVALS {
        let visit = Uuid::now_v7();
        let child = children[(n * 7919) % CHILDREN];
        let now = Utc::now();
        repo::sync_records::enqueue(
            &txn,
            vec![repo::sync_records::message(
                "visit_approved".to_owned(),
                visit,
                json!({
                    "id": visit, "child_id": child, "author_id": Uuid::new_v4(),
                    "village_id": Uuid::new_v4(), "kind": "home_visit",
                    "visited_at": "2026-11-20T09:30:00+08:00", "location": "家中",
                    "observations": { "living": "生活照料良好，监护人按时接送上学。", "health": "身体健康" },
                    "needs": [{ "id": "n1", "area": "study", "note": "数学辅导" }],
                    "risk_flags": [], "photos": [], "follow_up": "下月电话回访",
                    "review_status": "approved", "review_comment": "记录完整"
                }),
                now,
            )],
        )
        .await
        .expect("enqueue");
    }
    txn.commit().await.expect("commit");

    let started = Instant::now();
    let worker = start_worker(&app).await;
    let total = i64::try_from(APPROVALS).expect("fits");
    let mut at_99 = None;
    loop {
        let done = delivered(&app).await;
        if at_99.is_none() && done * 100 >= total * 99 {
            at_99 = Some(started.elapsed());
        }
        if done == total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the burst did not drain"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    worker.stop().await;
    let made = attempts(&app).await.len();
    let received = stand_in.received().len();
    assert_eq!(stand_in.applied().len(), APPROVALS);
    eprintln!(
        "integration-bench backend={backend:?} failing={failing_share} messages={APPROVALS} \
         all_delivered_s={:.2} rate_per_s={:.0} p99_delivered_s={:.2} attempts={made} requests_seen={received}",
        elapsed.as_secs_f64(),
        APPROVALS as f64 / elapsed.as_secs_f64(),
        at_99.unwrap_or(elapsed).as_secs_f64(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn sqlite_normal() {
    burst(Backend::Sqlite, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn sqlite_twenty_percent_failing() {
    burst(Backend::Sqlite, 0.2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn postgres_normal() {
    burst(Backend::Postgres, 0.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn postgres_twenty_percent_failing() {
    burst(Backend::Postgres, 0.2).await;
}
