//! Scale-out: two `seedling serve` processes on one PostgreSQL database
//! (sharing the signing key), and every request of every phone goes to one
//! of them at random. Nothing keeps sync state in a process, so the fleet
//! still converges with nothing lost.

mod common;

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
