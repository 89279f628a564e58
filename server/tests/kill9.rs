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
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, TransactionTrait,
};
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

/// A push the server has received and is still working on when it is
/// killed: the test holds the change-log writer lock, so the push waits
/// inside its transaction; the kill comes while it waits. The phone gets no
/// answer, the push left nothing behind, and the same push resent to the
/// restarted server is applied once.
async fn a_push_in_flight_at_the_kill_is_applied_once_when_resent(
    database_url: String,
    dir: &std::path::Path,
) {
    seed_demo(dir, &database_url).await;
    let port = free_port();
    let server = Server::start(dir, &database_url, port).await;
    let http = reqwest::Client::new();
    let device_id = uuid::Uuid::new_v4();
    let session: serde_json::Value = http
        .post(format!("{}/api/v1/auth/login", server.url))
        .json(
            &serde_json::json!({"username": "director-001", "password": "seedling-demo",
                                  "device_id": device_id}),
        )
        .send()
        .await
        .expect("sign in")
        .json()
        .await
        .expect("a session");
    let token = session["access_token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let author = session["user"]["id"].as_str().expect("user id").to_owned();
    let village = session["user"]["org_unit"]["id"]
        .as_str()
        .expect("village")
        .to_owned();
    let page: serde_json::Value = http
        .get(format!(
            "{}/api/v1/sync/pull?protocol_version=1&limit=500",
            server.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("pull")
        .json()
        .await
        .expect("a page");
    let child = page["changes"]
        .as_array()
        .and_then(|c| c.iter().find(|r| r["entity"] == "child"))
        .and_then(|r| r["id"].as_str())
        .expect("a child in the village")
        .to_owned();

    let node = device_id.simple().to_string();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock")
        .as_millis();
    let hlc = format!("{now_ms:015}-00000001-{node}");
    let visits: Vec<uuid::Uuid> = (0..5).map(|_| uuid::Uuid::new_v4()).collect();
    let field = |value: serde_json::Value| serde_json::json!({"hlc": hlc, "value": value});
    let push = serde_json::json!({
        "protocol_version": 1,
        "device_id": device_id,
        "device_hlc": hlc,
        "mutations": visits.iter().map(|id| serde_json::json!({
            "mutation_id": uuid::Uuid::new_v4(),
            "entity": "visit", "record_id": id, "op": "create", "base_version": 0, "hlc": hlc,
            "fields": {
                "child_id": field(child.clone().into()), "author_id": field(author.clone().into()),
                "village_id": field(village.clone().into()), "kind": field("home_visit".into()),
                "visited_at": field(chrono::Utc::now().to_rfc3339().into()),
                "review_status": field("submitted".into()),
            },
        })).collect::<Vec<_>>(),
    });

    // Hold the change-log writer lock the push needs.
    let db = sea_orm::Database::connect(&database_url)
        .await
        .expect("open the database");
    let holder = db.begin().await.expect("a transaction");
    holder
        .execute_unprepared("UPDATE sync_locks SET taken = taken + 1 WHERE name = 'change_log'")
        .await
        .expect("take the writer lock");

    let in_flight = tokio::spawn({
        let (http, url, token, push) = (
            http.clone(),
            server.url.clone(),
            token.clone(),
            push.clone(),
        );
        async move {
            http.post(format!("{url}/api/v1/sync/push"))
                .bearer_auth(token)
                .json(&push)
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    if in_flight.is_finished() {
        let answer = in_flight.await.expect("the push task").expect("an answer");
        panic!(
            "the push was answered while the writer lock was held: {} {}",
            answer.status(),
            answer.text().await.unwrap_or_default()
        );
    }
    server.kill9().await;
    let answer = in_flight.await.expect("the push task");
    assert!(
        answer.is_err(),
        "a push in flight at the kill got an answer: {:?}",
        answer.map(|r| r.status())
    );
    holder.rollback().await.expect("let go of the lock");

    // Nothing of the interrupted push was stored.
    let stored = || async {
        seedling_server::entity::visit::Entity::find()
            .filter(seedling_server::entity::visit::Column::Id.is_in(visits.clone()))
            .count(&db)
            .await
            .expect("count the visits")
    };
    assert_eq!(stored().await, 0, "an interrupted push left records behind");

    let restarted = Server::start(dir, &database_url, port).await;
    let answer: serde_json::Value = http
        .post(format!("{}/api/v1/sync/push", restarted.url))
        .bearer_auth(&token)
        .json(&push)
        .send()
        .await
        .expect("the resent push")
        .json()
        .await
        .expect("an answer");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), visits.len(), "{answer}");
    assert!(results.iter().all(|r| r["status"] == "applied"), "{answer}");
    assert_eq!(stored().await, visits.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_push_in_flight_at_the_kill_is_applied_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    a_push_in_flight_at_the_kill_is_applied_once_when_resent(sqlite_in(dir.path()), dir.path())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_push_in_flight_at_the_kill_is_applied_once() {
    let dir = tempfile::tempdir().expect("temporary folder");
    a_push_in_flight_at_the_kill_is_applied_once_when_resent(fresh_postgres().await, dir.path())
        .await;
}
