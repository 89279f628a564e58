//! The fleet simulator against the real server over the demo district: a
//! small fleet on a faulty network loses nothing, doubles nothing,
//! converges, and every concurrent edit leaves a conflict.

use seedling_client::faulty::FaultRates;
use seedling_client::sim::{SimConfig, run};
use seedling_server::service::demo;
use seedling_tests::{TestApp, on_both_backends};

on_both_backends!(a_small_fleet_on_a_faulty_network_loses_nothing_and_converges);

async fn a_small_fleet_on_a_faulty_network_loses_nothing_and_converges(app: TestApp) {
    demo::seed_if_empty(app.db(), 2025)
        .await
        .expect("seeding the demo district")
        .expect("an empty database");
    let summary = run(SimConfig {
        devices: 8,
        visits: 5,
        days: 3,
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
    assert!(summary.visits >= 8 * 5, "{summary:?}");
    assert!(summary.conflicts > 0, "{summary:?}");
    assert!(summary.faults > 0, "the network was faulty: {summary:?}");
    assert!(summary.rejected.is_empty(), "{summary:?}");
}
