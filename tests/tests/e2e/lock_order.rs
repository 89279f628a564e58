//! Pushes that touch the same children in opposite order wait for each
//! other; they never deadlock. A push locks the rows it will change before
//! it applies anything — visits, then case-plan items, then children, each
//! table in id order (`Batch::prefetch`, `repo::synced::load_many`) — so two
//! pushes over children X and Y, one listing X first and the other Y, take
//! their locks in the same order. (A load run once saw PostgreSQL abort
//! pushes with `40P01 deadlock detected` on `children` rows:
//! docs/RELIABILITY.md.)

use reqwest::StatusCode;
use seedling_tests::{Device, Fixture, TestApp, on_both_backends};
use serde_json::json;
use sync_core::record::Entity;

on_both_backends!(pushes_over_the_same_children_in_opposite_order_never_deadlock);

/// Rounds of three concurrent pushes: enough for their transactions to
/// interleave on two cores, few enough to stay quick.
const ROUNDS: u32 = 30;

async fn pushes_over_the_same_children_in_opposite_order_never_deadlock(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let village = fixture.village_a1;
    let mut first = Device::sign_in(&app, "admin").await;
    let x = first.create_child(&app, village, "孙小禾").await;
    let y = first.create_child(&app, village, "周小满").await;
    let mut second = Device::sign_in(&app, "admin").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let start = chrono::Utc::now() - chrono::Duration::days(2);
    for round in 0..ROUNDS {
        first.pull_all(&app).await;
        second.pull_all(&app).await;
        let guardian = |who: &str| json!(format!("{who}{round}"));
        let forward = [
            first
                .update(Entity::Child, x)
                .set("guardian_name", guardian("王"))
                .build(),
            first
                .update(Entity::Child, y)
                .set("guardian_name", guardian("王"))
                .build(),
        ];
        let backward = [
            second
                .update(Entity::Child, y)
                .set("guardian_name", guardian("李"))
                .build(),
            second
                .update(Entity::Child, x)
                .set("guardian_name", guardian("李"))
                .build(),
        ];
        let at = |minutes: u32| {
            (start + chrono::Duration::minutes(i64::from(round * 4 + minutes)))
                .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8"))
                .to_rfc3339()
        };
        let visits = [
            phone.new_visit(y, village, &at(0)).1.build(),
            phone.new_visit(x, village, &at(1)).1.build(),
        ];
        let pushes = [
            first.push_in_background(&app, &forward),
            second.push_in_background(&app, &backward),
            phone.push_in_background(&app, &visits),
        ];
        for push in pushes {
            let (status, _, body) = push.await.expect("the push task");
            assert_eq!(status, StatusCode::OK, "round {round}: {body}");
            for result in body["results"].as_array().expect("results") {
                assert_ne!(result["status"], "rejected", "round {round}: {result}");
            }
        }
    }
}
