//! Crash safety: the `seedling` process is killed with SIGKILL while a
//! fleet of phones is pushing, then restarted on the same database; when
//! the fleet has finished, no visit is lost or doubled and every phone
//! equals the server.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{Server, free_port, fresh_postgres, seed_demo, seedling, sqlite_in};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_client::{
    faulty::FaultRates,
    sim::{SimConfig, run},
};

/// Pushes answered before the kill: the fleet is in the middle of its work.
const PUSHES_BEFORE_KILL: usize = 6;

async fn killed_mid_push_and_restarted_loses_nothing(database_url: String, dir: &std::path::Path) {
    seed_demo(dir, &database_url).await;
    let port = free_port();
    let server = Server::start(dir, &database_url, port).await;

    let progress = Arc::new(AtomicUsize::new(0));
    let fleet = tokio::spawn(run(SimConfig {
        devices: 8,
        visits: 6,
        days: 3,
        faults: Some(FaultRates::MOUNTAIN),
        seed: 9,
        progress: Some(progress.clone()),
        ..SimConfig::new(server.url.clone())
    }));

    // Wait (bounded) until the fleet is pushing, then kill the server.
    let mut polls = 0;
    while progress.load(Ordering::Relaxed) < PUSHES_BEFORE_KILL {
        assert!(!fleet.is_finished(), "the fleet finished before the kill");
        assert!(polls < 6_000, "the fleet never started pushing");
        polls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !fleet.is_finished(),
        "the kill must come while the fleet works"
    );
    let answered_before = progress.load(Ordering::Relaxed);
    server.kill9().await;

    // Same database, same port: the phones find it again.
    let _restarted = Server::start(dir, &database_url, port).await;
    let summary = fleet
        .await
        .expect("the fleet task")
        .expect("the simulation runs");

    assert!(summary.passed(), "{summary:?}");
    assert_eq!(
        (summary.lost, summary.duplicated, summary.diverged),
        (0, 0, 0)
    );
    assert!(summary.visits >= 8 * 6, "{summary:?}");
    assert!(
        summary.pushes > answered_before,
        "the fleet pushed after the restart: {summary:?}"
    );

    // The audit entries of the pushes and pulls were written with them: the
    // chain survived the kill whole, and it records the fleet's syncs.
    let verify = seedling(dir, &database_url)
        .args(["audit", "verify"])
        .output()
        .await
        .expect("run audit verify");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{stderr}");
    let db = sea_orm::Database::connect(&database_url)
        .await
        .expect("open the database");
    for action in ["sync.push", "sync.pull"] {
        let rows = seedling_server::entity::audit_log::Entity::find()
            .filter(seedling_server::entity::audit_log::Column::Action.eq(action))
            .count(&db)
            .await
            .expect("count audit rows");
        assert!(rows > 0, "no {action} entry after a fleet run");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_killed_mid_push_loses_nothing() {
    let dir = tempfile::tempdir().expect("temporary folder");
    killed_mid_push_and_restarted_loses_nothing(sqlite_in(dir.path()), dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_killed_mid_push_loses_nothing() {
    let dir = tempfile::tempdir().expect("temporary folder");
    killed_mid_push_and_restarted_loses_nothing(fresh_postgres().await, dir.path()).await;
}
