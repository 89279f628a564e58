//! Identity-card numbers: sealed in the database, whole only for admins,
//! masked on directors' and supervisors' phones.

use sea_orm::{EntityTrait, QuerySelect};
use seedling_server::entity::child;
use seedling_tests::{Device, Fixture, TestApp, on_both_backends};
use serde_json::json;
use sync_core::protocol::MutationResult;
use sync_core::record::Entity;
use uuid::Uuid;

on_both_backends!(an_identity_number_is_sealed_at_rest_and_masked_on_field_phones);

const NUMBER: &str = "33021320150302123X";

async fn an_identity_number_is_sealed_at_rest_and_masked_on_field_phones(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = Uuid::new_v4();
    let mutation = admin
        .create(Entity::Child, child)
        .set("name", json!("吴小安"))
        .set("birth_date", json!("2015-03-02"))
        .set("category", json!("left_behind"))
        .set("status", json!("active"))
        .set("village_id", json!(fixture.village_a1))
        .set("id_number", json!(NUMBER))
        .build();
    let answer = admin.push(&app, &[mutation]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Applied { .. }),
        "{:?}",
        answer.results
    );

    let stored: String = child::Entity::find_by_id(child)
        .select_only()
        .column(child::Column::IdNumber)
        .into_tuple()
        .one(app.db())
        .await
        .unwrap()
        .expect("the child row");
    assert!(stored.starts_with("v1:k1:"), "{stored}");
    assert!(
        !stored.contains("1234") && !stored.contains("330213"),
        "{stored}"
    );

    for (username, expected) in [
        ("director-a1", "**************123X"),
        ("supervisor-a", "**************123X"),
        ("admin", NUMBER),
    ] {
        let mut phone = Device::sign_in(&app, username).await;
        phone.pull_all(&app).await;
        let record = phone.get(Entity::Child, child).expect("the child");
        assert_eq!(record.get("id_number"), Some(json!(expected)), "{username}");
    }
}
