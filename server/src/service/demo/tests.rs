//! The demo district on a fresh in-memory SQLite database: it loads, has the
//! reported counts, and is the same for the same seed.

use std::time::Instant;

use chrono::NaiveDate;
use migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, EntityTrait, PaginatorTrait};

use super::{DemoSummary, district_day, is_empty, seed_demo};
use crate::entity::{case_plan_item, change_log, child, org_unit, register_event, user, visit};

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

/// Every clock of a row's field clocks, wherever it sits in the document.
fn clocks_in(value: &serde_json::Value, out: &mut Vec<sync_core::clock::Hlc>) {
    match value {
        serde_json::Value::String(text) => {
            if let Ok(hlc) = text.parse() {
                out.push(hlc);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| clocks_in(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| clocks_in(v, out)),
        _ => {}
    }
}

/// Found by a phone fleet written from the protocol: the demo stamped rows
/// with UTC+8 wall time written as UTC, up to eight hours ahead, so a phone
/// that observed the pulled clocks had every write flagged `clock_skewed`.
/// Seeded at instants on both sides of the district's midnight (16:00Z),
/// no timestamp and no field clock is ahead of the instant of seeding.
#[tokio::test]
async fn a_fresh_demo_district_holds_nothing_ahead_of_now() {
    for instant in [
        "2025-11-29T15:59:00Z",
        "2025-11-29T16:00:00Z",
        "2025-11-29T23:30:00Z",
        "2025-11-30T03:00:00Z",
        "2025-11-30T15:58:00Z",
    ] {
        let now: chrono::DateTime<chrono::Utc> = instant.parse().expect("an instant");
        let db = fresh_db().await;
        seed_demo(&db, "not-a-real-hash", 11, district_day(now))
            .await
            .expect("seed");
        let mut stamps = Vec::new();
        let mut clocks = Vec::new();
        for v in visit::Entity::find().all(&db).await.expect("visits") {
            stamps.extend([
                ("visit", v.created_at),
                ("visit", v.updated_at),
                ("visit", v.visited_at),
            ]);
            clocks_in(&v.field_clocks, &mut clocks);
        }
        for c in child::Entity::find().all(&db).await.expect("children") {
            stamps.extend([("child", c.created_at), ("child", c.updated_at)]);
            clocks_in(&c.field_clocks, &mut clocks);
        }
        for i in case_plan_item::Entity::find()
            .all(&db)
            .await
            .expect("items")
        {
            stamps.extend([("item", i.created_at), ("item", i.updated_at)]);
            clocks_in(&i.field_clocks, &mut clocks);
        }
        for u in user::Entity::find().all(&db).await.expect("users") {
            stamps.extend([("user", u.created_at), ("user", u.updated_at)]);
        }
        for o in org_unit::Entity::find().all(&db).await.expect("units") {
            stamps.push(("org unit", o.created_at));
        }
        for e in register_event::Entity::find()
            .all(&db)
            .await
            .expect("events")
        {
            stamps.push(("register event", e.created_at));
        }
        for l in change_log::Entity::find().all(&db).await.expect("log") {
            stamps.push(("change log", l.created_at));
        }
        assert!(
            stamps.len() > 10_000 && clocks.len() > 10_000,
            "{instant}: too little seeded"
        );
        let ahead: Vec<_> = stamps.iter().filter(|(_, at)| *at > now).take(3).collect();
        assert!(ahead.is_empty(), "seeded at {instant}: {ahead:?}");
        let now_ms = u64::try_from(now.timestamp_millis()).expect("after 1970");
        let ahead: Vec<_> = clocks
            .iter()
            .filter(|c| c.wall_ms > now_ms)
            .take(3)
            .collect();
        assert!(ahead.is_empty(), "seeded at {instant}: clocks {ahead:?}");
    }
}

#[test]
fn the_district_day_turns_at_16_00_utc() {
    let day = |s: &str| district_day(s.parse().expect("an instant")).to_string();
    assert_eq!(day("2026-12-05T15:59:59Z"), "2026-12-05");
    assert_eq!(day("2026-12-05T16:00:00Z"), "2026-12-06");
}
