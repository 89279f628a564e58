//! The fleet simulator against the real server over the demo district: a
//! small fleet on a faulty network loses nothing, doubles nothing,
//! converges, and every concurrent edit leaves a conflict; and the small
//! load run, hundreds of phones at once on PostgreSQL, keeps the same
//! promises.

use seedling_client::faulty::FaultRates;
use seedling_client::sim::{SimConfig, Summary, run};
use seedling_server::service::demo;
use seedling_tests::{Backend, TestApp, on_both_backends};

/// Loads the demo district, runs `devices` phones × `visits` visits over
/// `days` offline days on a faulty network, and checks what every run must
/// hold: quiet, nothing lost, doubled or diverged, every concurrent edit a
/// conflict, nothing rejected, and the faults really happened.
async fn faulty_fleet(app: &TestApp, devices: usize, visits: usize, days: usize) -> Summary {
    demo::seed_if_empty(app.db(), 2025)
        .await
        .expect("seeding the demo district")
        .expect("an empty database");
    let summary = run(SimConfig {
        devices,
        visits,
        days,
        faults: Some(FaultRates::MOUNTAIN),
        seed: 42,
        ..SimConfig::new(app.base_url.clone())
    })
    .await
    .expect("the simulation runs");

    assert!(summary.passed(), "{summary:?}");
    assert_eq!(
        (summary.lost, summary.duplicated, summary.diverged),
        (0, 0, 0),
        "{summary:?}"
    );
    assert!(summary.visits >= devices * visits, "{summary:?}");
    assert!(summary.conflicts > 0, "{summary:?}");
    assert!(summary.faults > 0, "the network was faulty: {summary:?}");
    assert!(summary.rejected.is_empty(), "{summary:?}");
    summary
}

on_both_backends!(a_small_fleet_on_a_faulty_network_loses_nothing_and_converges);

async fn a_small_fleet_on_a_faulty_network_loses_nothing_and_converges(app: TestApp) {
    faulty_fleet(&app, 8, 5, 3).await;
}

/// The small load run: 150 directors' phones syncing at once over a faulty
/// network against PostgreSQL (ten times as many requests waiting for the
/// pool as it has connections). Asserts the promises, not timings; the full
/// run at ten times the district is `bench/load.sh` (docs/RELIABILITY.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_of_150_phones_at_once_on_postgres_loses_nothing_and_converges() {
    let app = TestApp::new(Backend::Postgres).await;
    let summary = faulty_fleet(&app, 150, 2, 2).await;

    assert_eq!(summary.devices, 150 + 2, "{summary:?}");
    assert!(
        summary.push_latency.requests > 0 && summary.pull_latency.requests > 0,
        "latencies are recorded: {summary:?}"
    );
}
