//! The demo district on a fresh in-memory SQLite database: it loads, has the
//! reported counts, and is the same for the same seed.

use std::time::Instant;

use chrono::NaiveDate;
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, EntityTrait, PaginatorTrait};

use super::{DemoSummary, is_empty, seed_demo};
use crate::entity::{change_log, child, org_unit, user, visit};

async fn fresh_db() -> DatabaseConnection {
    // Children carry sealed identity-card numbers: one test key per process.
    let ring = crate::crypto::KeyRing::new(
        "k1",
        [("k1", "dW5pdC10ZXN0LWlkLW51bWJlci1rZXktMzItYnl0ZXM=")],
    )
    .expect("a test key");
    crate::crypto::install(ring).expect("the same key ring in every test");
    // One connection: every connection to `sqlite::memory:` is its own database.
    let mut options = ConnectOptions::new("sqlite::memory:");
    options.max_connections(1).min_connections(1);
    let db = Database::connect(options).await.expect("open sqlite");
    Migrator::up(&db, None).await.expect("migrate");
    db
}

async fn seeded(seed: u64) -> (DatabaseConnection, DemoSummary) {
    let db = fresh_db().await;
    assert!(is_empty(&db).await.expect("is_empty"));
    let today = NaiveDate::from_ymd_opt(2025, 11, 29).expect("date");
    let started = Instant::now();
    let summary = seed_demo(&db, "not-a-real-hash", seed, today)
        .await
        .expect("seed");
    eprintln!("seeded in {:?}: {summary:#?}", started.elapsed());
    (db, summary)
}

#[tokio::test]
async fn the_demo_district_has_the_reported_counts() {
    let (db, s) = seeded(2025).await;
    assert!(!is_empty(&db).await.expect("is_empty"));
    assert_eq!((s.towns, s.villages), (12, 327));
    assert_eq!((s.supervisors, s.directors, s.admins), (12, 327, 1));
    assert_eq!(s.children_by_category["scattered_orphan"], 13);
    assert_eq!(s.children_by_category["in_difficulty"], 590);
    assert_eq!((s.added_half_year, s.exited_half_year), (44, 45));
    assert!((6_000..8_000).contains(&s.visits), "visits: {}", s.visits);
    assert!(s.overdue_children > 0 && s.open_needs_items > 0);

    let count = |n: u64| usize::try_from(n).expect("count");
    assert_eq!(
        count(org_unit::Entity::find().count(&db).await.expect("count")),
        1 + 12 + 327
    );
    assert_eq!(
        count(user::Entity::find().count(&db).await.expect("count")),
        12 + 327 + 1
    );
    let children = count(child::Entity::find().count(&db).await.expect("count"));
    assert_eq!(children, s.children_active + s.children_exited);
    assert_eq!(
        count(visit::Entity::find().count(&db).await.expect("count")),
        s.visits
    );
    assert_eq!(
        count(change_log::Entity::find().count(&db).await.expect("count")),
        children + s.visits + s.case_plan_items
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_district() {
    let (a, sa) = seeded(7).await;
    let (b, sb) = seeded(7).await;
    assert_eq!(sa, sb);
    let first = |db| async move { visit::Entity::find().all(db).await.expect("visits") };
    assert_eq!(first(&a).await, first(&b).await);
    let (_, other) = seeded(8).await;
    assert_ne!(sa, other);
}
