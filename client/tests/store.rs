//! The local store on its own and across restarts: nothing typed is lost
//! when the app dies between an edit and a push, the clock never goes
//! backwards, and offline work that cancels out never travels.

mod common;

use common::{NOW, Phone, director, open, syncer};
use seedling_client::{Change, Queued, RecordingSleeper, StoreError, fake::FakeServer};
use serde_json::json;
use sync_core::record::Entity;

#[tokio::test]
async fn a_crash_between_edit_and_push_loses_nothing() {
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let visit = phone.record_visit("home").await;
    phone
        .store()
        .add_item(
            Entity::Visit,
            visit,
            "needs",
            json!({"id": "n1", "area": "living"}),
        )
        .await
        .unwrap();
    let before = phone.store().last_hlc().await.unwrap();
    let device = phone.store().device_id().await.unwrap();
    let path = phone.path();
    let clock = phone.clock.clone();
    let Phone { dir, syncer: s, .. } = phone;
    drop(s); // the app dies: no clean close

    // The phone's wall clock is now wrong and behind.
    clock.store(NOW - 3_600_000, std::sync::atomic::Ordering::SeqCst);
    let store = open(path, &clock).await;
    assert_eq!(store.device_id().await.unwrap(), device);
    assert_eq!(store.user().await.unwrap(), Some(director()));
    let pending = store.pending().await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "create and need folded into one unsent mutation"
    );
    let local = store.get(Entity::Visit, visit).await.unwrap().unwrap();
    assert!(local.pending);
    assert_eq!(
        local.record.get("needs"),
        Some(json!([{"id": "n1", "area": "living"}]))
    );

    store
        .set_field(Entity::Visit, visit, "follow_up", json!("again in May"))
        .await
        .unwrap();
    assert!(
        store.last_hlc().await.unwrap() > before,
        "the clock never goes back"
    );

    let s = syncer(store, &server, &RecordingSleeper::default());
    s.sync().await.unwrap();
    let on_server = server.record(Entity::Visit, visit).unwrap();
    assert_eq!(on_server.get_str("location"), Some("home"));
    assert_eq!(on_server.get_str("follow_up"), Some("again in May"));
    assert_eq!(
        on_server.get("needs"),
        Some(json!([{"id": "n1", "area": "living"}]))
    );
    assert!(s.store().pending().await.unwrap().is_empty());
    drop(dir);
}

#[tokio::test]
async fn a_mutation_sent_before_a_crash_is_resent_with_the_same_id() {
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let visit = phone.record_visit("home").await;
    server.fault_next_push(seedling_client::fake::Fault::LoseResponse);
    let mut report = Default::default();
    assert!(phone.syncer.push(&mut report).await.is_err());
    let first = phone.store().pending().await.unwrap();
    assert_eq!(first[0].attempts, 1);

    // An edit after the send does not change the frozen mutation.
    phone
        .store()
        .set_field(Entity::Visit, visit, "location", json!("school"))
        .await
        .unwrap();
    let pending = phone.store().pending().await.unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0], first[0]);

    phone.syncer.sync().await.unwrap();
    let on_server = server.record(Entity::Visit, visit).unwrap();
    assert_eq!(server.records(Entity::Visit).len(), 1);
    assert_eq!(on_server.get_str("location"), Some("school"));
    assert_eq!(on_server.version, 2);
    assert!(phone.store().pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_item_added_and_removed_across_two_pushes_is_gone_on_the_server() {
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let visit = phone.record_visit("home").await;
    phone
        .store()
        .add_item(
            Entity::Visit,
            visit,
            "needs",
            json!({"id": "n1", "area": "study"}),
        )
        .await
        .unwrap();
    server.fault_next_push(seedling_client::fake::Fault::LoseResponse);
    let mut report = Default::default();
    assert!(phone.syncer.push(&mut report).await.is_err());
    phone
        .store()
        .remove_item(Entity::Visit, visit, "needs", "n1")
        .await
        .unwrap();

    let report = phone.syncer.sync().await.unwrap();

    assert_eq!(
        report.conflicts, 0,
        "the removal was rebased on the device's own add"
    );
    assert_eq!(
        server.record(Entity::Visit, visit).unwrap().get("needs"),
        Some(json!([]))
    );
}

#[tokio::test]
async fn a_visit_created_and_deleted_offline_never_travels() {
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let visit = phone.record_visit("home").await;
    assert_eq!(
        phone.store().delete(Entity::Visit, visit).await.unwrap(),
        Queued::Cancelled
    );
    assert!(
        phone
            .store()
            .get(Entity::Visit, visit)
            .await
            .unwrap()
            .is_none()
    );
    assert!(phone.store().pending().await.unwrap().is_empty());
    phone.syncer.sync().await.unwrap();
    assert!(server.records(Entity::Visit).is_empty());
}

#[tokio::test]
async fn a_synced_visit_deleted_on_the_phone_is_deleted_on_the_server() {
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let visit = phone.record_visit("home").await;
    phone.syncer.sync().await.unwrap();
    phone.store().delete(Entity::Visit, visit).await.unwrap();
    assert!(phone.store().list(Entity::Visit).await.unwrap().is_empty());
    phone.syncer.sync().await.unwrap();
    assert!(server.record(Entity::Visit, visit).unwrap().is_deleted());
    let err = phone
        .store()
        .set_field(Entity::Visit, visit, "location", json!("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Refused { .. }), "{err}");
}

#[tokio::test]
async fn invalid_edits_are_refused_and_nothing_is_queued() {
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let visit = phone.record_visit("home").await;
    phone.syncer.sync().await.unwrap();
    let bad = [
        vec![Change::Set("review_comment".into(), json!("fine"))], // supervisors only
        vec![Change::Set("kind".into(), json!("party"))],          // not a visit kind
        vec![Change::AddItem(
            "needs".into(),
            json!({"id": "n1", "area": "fun"}),
        )],
    ];
    for changes in bad {
        let err = phone
            .store()
            .update(Entity::Visit, visit, changes)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Refused { .. }), "{err}");
    }
    let mut missing = common::visit("home");
    missing.visited_at = "yesterday".into();
    assert!(phone.store().create_visit(missing).await.is_err());
    assert!(phone.store().pending().await.unwrap().is_empty());
    assert_eq!(phone.store().list(Entity::Visit).await.unwrap().len(), 1);
}

#[tokio::test]
async fn visits_are_listed_by_child() {
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let a = phone.record_visit("home").await;
    let mut other = common::visit("school");
    other.child_id = uuid::Uuid::from_u128(0xc2);
    phone.store().create_visit(other).await.unwrap();
    let of_child = phone.store().visits_of_child(common::CHILD).await.unwrap();
    assert_eq!(of_child.len(), 1);
    assert_eq!(of_child[0].record.id, a);
    assert_eq!(of_child[0].server_version, 0);
}
