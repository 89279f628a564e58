//! Scale-out: two `seedling serve` processes on one PostgreSQL database
//! (sharing the signing key), and every request of every phone goes to one
//! of them at random. Nothing keeps sync state in a process, so the fleet
//! still converges with nothing lost.

mod common;

use std::time::Duration;

use common::{CountingProxy, Server, free_port, fresh_postgres, seed_demo};
use seedling_client::{
    faulty::FaultRates,
    sim::{SimConfig, run},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_database_converge_with_nothing_lost() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let database_url = fresh_postgres().await;
    seed_demo(dir.path(), &database_url).await;
    let first = Server::start(dir.path(), &database_url, free_port()).await;
    let second = Server::start(dir.path(), &database_url, free_port()).await;
    // Counted on the way, so the test shows both processes served phones.
    let proxies = [
        CountingProxy::start(&first.url).await,
        CountingProxy::start(&second.url).await,
    ];

    let summary = run(SimConfig {
        servers: proxies.iter().map(|p| p.url.clone()).collect(),
        devices: 8,
        visits: 6,
        days: 3,
        faults: Some(FaultRates::MOUNTAIN),
        seed: 11,
        ..SimConfig::new(first.url.clone())
    })
    .await
    .expect("the simulation runs");

    assert!(summary.passed(), "{summary:?}");
    assert_eq!(
        (summary.lost, summary.duplicated, summary.diverged),
        (0, 0, 0)
    );
    assert!(summary.conflicts > 0, "{summary:?}");
    for (n, proxy) in proxies.iter().enumerate() {
        let answered = proxy
            .answered_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            answered > 10_000,
            "server {} answered only {answered} bytes ({} connections)",
            n + 1,
            proxy.connections.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
}

/// The events stream crosses processes: a device listening on one server
/// process hears of a visit pushed through the other (PostgreSQL `LISTEN`
/// / `NOTIFY`, docs/SYNC-PROTOCOL.md §4c). Writes the poke's latency to
/// stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_on_one_process_reaches_a_device_listening_on_the_other() {
    use seedling_client::events::Signal;
    use seedling_client::sim::net::sign_in;
    use seedling_client::{
        HttpTransport, Jitter, NewVisit, RecordingSleeper, Store, SyncOptions, Syncer,
    };
    use sync_core::record::Entity;
    use sync_core::rules::{Actor, Role};

    const PASSWORD: &str = seedling_server::service::demo::DEMO_PASSWORD;
    /// Only ends a broken run.
    const WAIT: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().expect("temporary folder");
    let database_url = fresh_postgres().await;
    seed_demo(dir.path(), &database_url).await;
    let a = Server::start(dir.path(), &database_url, free_port()).await;
    let b = Server::start(dir.path(), &database_url, free_port()).await;
    let http = reqwest::Client::new();

    // The director's tablet listens on process B.
    let tablet = sign_in(
        &http,
        &b.url,
        "director-001",
        "tablet",
        PASSWORD,
        uuid::Uuid::new_v4(),
    )
    .await
    .expect("sign in on B");
    let listening = HttpTransport::new(&b.url, tablet.access_token, WAIT).expect("a transport");
    let mut events = listening.events().await.expect("the stream opens on B");
    let first = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("in time");
    assert_eq!(first.expect("readable"), Some(Signal::Ready));

    // Their phone records a visit and pushes it through process A.
    let store = Store::open(dir.path().join("phone.db"))
        .await
        .expect("a store");
    let device = store.device_id().await.expect("device id");
    let session = sign_in(&http, &a.url, "director-001", "phone", PASSWORD, device)
        .await
        .expect("sign in on A");
    store
        .sign_in(Actor::new(session.user.id, Role::Director))
        .await
        .expect("store the account");
    let phone = Syncer::new(
        store,
        HttpTransport::new(&a.url, session.access_token, WAIT).expect("a transport"),
        RecordingSleeper::default(),
        Jitter::seeded(3),
        SyncOptions::default(),
    );
    phone.sync().await.expect("bootstrap on A");
    // The bootstrap itself commits nothing; anything B said meanwhile is
    // about the demo's own start-up and is let pass.
    while let Ok(early) = tokio::time::timeout(Duration::from_millis(500), events.next()).await {
        assert_eq!(early.expect("readable"), Some(Signal::Changed));
    }
    let child = phone.store().list(Entity::Child).await.expect("children")[0]
        .record
        .id;
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    phone
        .store()
        .create_visit(NewVisit {
            child_id: child,
            village_id: tablet.user.org_unit.id,
            kind: "home_visit".to_owned(),
            visited_at: format!("{day}T10:00:00+08:00"),
            location: None,
            observations: Some(serde_json::json!({"living": "生活正常"})),
            review_status: Some("submitted".to_owned()),
        })
        .await
        .expect("record a visit");
    let pushed = std::time::Instant::now();
    let report = phone.sync().await.expect("push through A");
    assert_eq!(report.applied, 1, "{report:?}");
    let heard = tokio::time::timeout(WAIT, events.next())
        .await
        .expect("in time");
    assert_eq!(heard.expect("readable"), Some(Signal::Changed));
    // The figure is for the reader of a `--nocapture` run; the events
    // benchmark measures it properly (docs/BENCHMARKS.md).
    eprintln!(
        "poke on B {} ms after the sync on A began",
        pushed.elapsed().as_millis()
    );
}
