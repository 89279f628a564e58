//! The demo district: the reported counts, rows the sync engine can read,
//! and demo accounts that sign in.

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_server::entity::{case_plan_item, child, register_event, user, visit};
use seedling_server::repo::records;
use seedling_server::service::demo::{self, DEMO_PASSWORD};
use seedling_tests::{Device, TestApp, on_both_backends};
use sync_core::record::Entity;

on_both_backends!(the_demo_district_has_the_reported_counts_and_valid_sync_rows);

async fn the_demo_district_has_the_reported_counts_and_valid_sync_rows(app: TestApp) {
    let db = app.db();
    let summary = demo::seed_if_empty(db, 2025)
        .await
        .unwrap()
        .expect("an empty database is seeded");
    assert!(
        demo::seed_if_empty(db, 2025).await.unwrap().is_none(),
        "seeding twice must not add anything"
    );

    assert_eq!((summary.towns, summary.villages), (12, 327));
    assert_eq!(
        (summary.supervisors, summary.directors, summary.admins),
        (12, 327, 1)
    );
    assert_eq!(summary.children_by_category["scattered_orphan"], 13);
    assert_eq!(summary.children_by_category["in_difficulty"], 590);
    assert_eq!(
        (summary.added_half_year, summary.exited_half_year),
        (44, 45)
    );
    assert!(
        (6_000..8_000).contains(&summary.visits),
        "about 7,000 visits: {}",
        summary.visits
    );
    assert!(summary.overdue_children > 0 && summary.open_needs_items > 0);

    // The database agrees with the summary.
    let count_users = |role: &'static str| {
        user::Entity::find()
            .filter(user::Column::Role.eq(role))
            .count(db)
    };
    assert_eq!(count_users("director").await.unwrap(), 327);
    assert_eq!(count_users("supervisor").await.unwrap(), 12);
    let scattered = child::Entity::find()
        .filter(child::Column::Category.eq("scattered_orphan"))
        .filter(child::Column::Status.eq("active"))
        .count(db)
        .await
        .unwrap();
    assert_eq!(scattered, 13);
    let since = summary.half_year_from;
    let events = |kind: &'static str| {
        register_event::Entity::find()
            .filter(register_event::Column::Kind.eq(kind))
            .filter(register_event::Column::EffectiveDate.gte(since))
            .count(db)
    };
    assert_eq!(events("added").await.unwrap(), 44);
    assert_eq!(events("exited").await.unwrap(), 45);
    assert_eq!(
        visit::Entity::find().count(db).await.unwrap(),
        summary.visits as u64
    );

    // Every synced row reads as a sync-core record with a clock on every field.
    for row in child::Entity::find().all(db).await.unwrap() {
        let record = records::to_record(row.clone()).unwrap();
        assert_eq!(record.values(), records::values_of(&row).unwrap());
    }
    for row in visit::Entity::find().all(db).await.unwrap() {
        let record = records::to_record(row.clone()).unwrap();
        assert_eq!(
            record.get_str("review_status"),
            Some(row.review_status.as_str())
        );
    }
    for row in case_plan_item::Entity::find().all(db).await.unwrap() {
        records::to_record(row).unwrap();
    }

    // The four kinds of demo account sign in; a wrong password does not.
    for username in ["admin", "supervisor-01", "director-001", "director-327"] {
        let (status, body) = app.login(username, DEMO_PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "{username}: {body}");
    }
    let (status, _) = app.login("director-001", "wrong-password").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A demo director's phone bootstraps its village: active children only,
    // with their visits, and a checksum that matches.
    let mut phone = Device::sign_in_with(&app, "director-001", DEMO_PASSWORD).await;
    phone.pull_all(&app).await;
    let me = user::Entity::find()
        .filter(user::Column::Username.eq("director-001"))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let children: Vec<_> = phone
        .records
        .values()
        .filter(|r| r.entity == Entity::Child)
        .collect();
    assert!(!children.is_empty());
    for child in &children {
        assert_eq!(child.get_str("status"), Some("active"));
        assert_eq!(
            child.get_str("village_id"),
            Some(me.org_unit_id.to_string().as_str())
        );
    }
    let active_here = child::Entity::find()
        .filter(child::Column::VillageId.eq(me.org_unit_id))
        .filter(child::Column::Status.eq("active"))
        .count(db)
        .await
        .unwrap();
    assert_eq!(children.len() as u64, active_here);
    assert!(phone.records.values().any(|r| r.entity == Entity::Visit));
    assert_eq!(phone.last_checksum, Some(phone.checksum()));
}
