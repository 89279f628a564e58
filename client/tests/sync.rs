//! The sync loop against the in-memory server: convergence, exactly-once
//! effect under lost responses, pending edits surviving pulls, purges,
//! urgent records first, and the fatal errors.

mod common;

use common::{Phone, director};
use seedling_client::{
    StoreError, SyncError, TransportError,
    fake::{FakeServer, Fault},
};
use serde_json::json;
use sync_core::{
    protocol::{FieldOp, MutationResult, PurgeReason},
    record::Entity,
    rules::{Actor, Role},
};
use uuid::Uuid;

#[tokio::test]
async fn two_phones_converge_after_concurrent_edits_of_one_visit() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    let b = Phone::new(&server, director()).await;
    let visit = a.record_visit("home").await;
    a.syncer.sync().await.unwrap();
    b.syncer.sync().await.unwrap();
    assert_eq!(
        b.store()
            .get(Entity::Visit, visit)
            .await
            .unwrap()
            .unwrap()
            .server_version,
        1
    );

    // Offline, both change the location; A adds a need, B writes follow-up. B is later.
    a.advance(60_000);
    b.advance(120_000);
    a.store()
        .set_field(Entity::Visit, visit, "location", json!("school"))
        .await
        .unwrap();
    a.store()
        .add_item(
            Entity::Visit,
            visit,
            "needs",
            json!({"id": "n1", "area": "study"}),
        )
        .await
        .unwrap();
    b.store()
        .set_field(
            Entity::Visit,
            visit,
            "location",
            json!("grandmother's house"),
        )
        .await
        .unwrap();
    b.store()
        .set_field(Entity::Visit, visit, "follow_up", json!("call school"))
        .await
        .unwrap();

    let rb = b.syncer.sync().await.unwrap();
    let ra = a.syncer.sync().await.unwrap();
    let rb2 = b.syncer.sync().await.unwrap();
    assert_eq!((rb.applied, ra.merged, ra.conflicts), (1, 1, 1));
    assert!(rb2.diverged.is_none() && ra.diverged.is_none());

    let on_server = server.record(Entity::Visit, visit).unwrap();
    assert_eq!(on_server.get_str("location"), Some("grandmother's house"));
    assert_eq!(on_server.get_str("follow_up"), Some("call school"));
    assert_eq!(
        on_server.get("needs"),
        Some(json!([{"id": "n1", "area": "study"}]))
    );
    for phone in [&a, &b] {
        let local = phone
            .store()
            .get(Entity::Visit, visit)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(local.record.content(), on_server.content());
        assert_eq!(local.server_version, on_server.version);
        assert!(!local.pending);
        assert!(phone.store().pending().await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_lost_push_response_and_its_retry_create_the_visit_exactly_once() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    let visit = a.record_visit("home").await;
    let sent = a.store().pending().await.unwrap()[0].mutation.mutation_id;
    server.fault_next_push(Fault::LoseResponse);

    let report = a.syncer.sync().await.unwrap();

    assert_eq!(report.attempts, 2, "one lost answer, one retry");
    assert_eq!(a.sleeper.waits().len(), 1);
    assert!(a.sleeper.waits()[0] <= std::time::Duration::from_millis(100));
    assert_eq!(server.records(Entity::Visit).len(), 1);
    assert_eq!(server.mutations_applied(), 1);
    assert_eq!(server.record(Entity::Visit, visit).unwrap().version, 1);
    assert!(matches!(
        server.result(sent),
        Some(MutationResult::Applied { version: 1, .. })
    ));
    assert!(a.store().pending().await.unwrap().is_empty());
    assert_eq!(
        a.store()
            .get(Entity::Visit, visit)
            .await
            .unwrap()
            .unwrap()
            .server_version,
        1
    );
}

#[tokio::test]
async fn dropped_requests_are_retried_with_growing_jittered_waits() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    a.record_visit("home").await;
    server.fault_next_push(Fault::DropRequest);
    server.fault_next_push(Fault::DropRequest);
    server.fault_next_pull(Fault::LoseResponse);

    let report = a.syncer.sync().await.unwrap();

    assert_eq!(report.attempts, 4);
    let waits = a.sleeper.waits();
    assert_eq!(waits.len(), 3);
    for (n, wait) in waits.iter().enumerate() {
        assert!(wait.as_millis() <= 100 << n, "wait {n} = {wait:?}");
    }
    assert_eq!(server.records(Entity::Visit).len(), 1);
    assert!(a.store().pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn giving_up_after_the_last_attempt_keeps_the_outbox() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    a.record_visit("home").await;
    for _ in 0..4 {
        server.fault_next_push(Fault::DropRequest);
    }
    let err = a.syncer.sync().await.unwrap_err();
    assert!(matches!(
        err,
        SyncError::Transport(TransportError::Retryable(_))
    ));
    assert_eq!(a.sleeper.waits().len(), 3);
    assert_eq!(a.store().pending().await.unwrap().len(), 1);
    a.syncer.sync().await.unwrap();
    assert_eq!(server.records(Entity::Visit).len(), 1);
}

#[tokio::test]
async fn a_pull_never_overwrites_a_pending_local_edit() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    let b = Phone::new(&server, director()).await;
    let visit = a.record_visit("home").await;
    a.syncer.sync().await.unwrap();
    b.syncer.sync().await.unwrap();

    a.advance(1_000);
    a.store()
        .set_field(Entity::Visit, visit, "location", json!("school"))
        .await
        .unwrap();
    b.advance(2_000);
    b.store()
        .set_field(Entity::Visit, visit, "follow_up", json!("bring books"))
        .await
        .unwrap();
    b.syncer.sync().await.unwrap();

    // A pulls without pushing: B's change arrives, A's edit stays on top.
    let mut report = Default::default();
    a.syncer.pull(&mut report, false).await.unwrap();
    let local = a.store().get(Entity::Visit, visit).await.unwrap().unwrap();
    assert_eq!(local.record.get_str("location"), Some("school"));
    assert_eq!(local.record.get_str("follow_up"), Some("bring books"));
    assert_eq!(local.server_version, 2);
    assert!(local.pending);
    assert_eq!(a.store().pending().await.unwrap().len(), 1);

    a.syncer.sync().await.unwrap();
    let on_server = server.record(Entity::Visit, visit).unwrap();
    assert_eq!(on_server.get_str("location"), Some("school"));
    assert_eq!(on_server.get_str("follow_up"), Some("bring books"));
}

#[tokio::test]
async fn a_purge_removes_the_record_on_the_phone() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    let keep = a.record_visit("home").await;
    let gone = a.record_visit("school").await;
    a.syncer.sync().await.unwrap();
    assert_eq!(a.store().list(Entity::Visit).await.unwrap().len(), 2);

    server.purge(Entity::Visit, gone, PurgeReason::LeftScope);
    let report = a.syncer.sync().await.unwrap();

    assert_eq!(report.purged, 1);
    assert!(a.store().get(Entity::Visit, gone).await.unwrap().is_none());
    assert!(a.store().get(Entity::Visit, keep).await.unwrap().is_some());
    assert_eq!(report.diverged, None);
    assert_eq!(
        a.store().scope_checksum().await.unwrap(),
        server.scope_checksum()
    );
}

#[tokio::test]
async fn urgent_visits_are_pushed_first() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    let mut ordinary = Vec::new();
    for n in 0..3 {
        ordinary.push(a.record_visit(&format!("house {n}")).await);
    }
    let urgent = a.record_visit("school").await;
    a.store()
        .add_item(
            Entity::Visit,
            urgent,
            "risk_flags",
            json!({"id": "r1", "kind": "suspected_neglect", "urgent": true}),
        )
        .await
        .unwrap();
    server.fault_next_push(Fault::LoseResponse); // lets us see the first batch alone
    server.fault_next_push(Fault::Fail(TransportError::UpdateApp("stop".into())));
    let _ = a.syncer.sync().await;

    assert!(
        server.record(Entity::Visit, urgent).is_some(),
        "the urgent visit went in the first batch"
    );
    assert_eq!(server.records(Entity::Visit).len(), 2, "batch size is 2");
}

#[tokio::test]
async fn update_the_app_stops_at_once_and_keeps_the_outbox() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    a.record_visit("home").await;
    server.fault_next_push(Fault::Fail(TransportError::UpdateApp(
        "protocol 1 retired".into(),
    )));
    let err = a.syncer.sync().await.unwrap_err();
    assert!(matches!(
        err,
        SyncError::Transport(TransportError::UpdateApp(_))
    ));
    assert!(a.sleeper.waits().is_empty());
    assert_eq!(a.store().pending().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_revoked_device_wipes_its_store() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    a.record_visit("home").await;
    a.syncer.sync().await.unwrap();
    let old_device = a.store().device_id().await.unwrap();
    server.fault_next_push(Fault::Fail(TransportError::DeviceRevoked(
        "lost phone".into(),
    )));
    a.record_visit("school").await;

    let err = a.syncer.sync().await.unwrap_err();

    assert!(matches!(
        err,
        SyncError::Transport(TransportError::DeviceRevoked(_))
    ));
    assert!(a.store().list(Entity::Visit).await.unwrap().is_empty());
    assert!(a.store().pending().await.unwrap().is_empty());
    assert!(a.store().user().await.unwrap().is_none());
    assert_ne!(a.store().device_id().await.unwrap(), old_device);
}

#[tokio::test]
async fn an_edit_to_a_visit_approved_meanwhile_is_refused_visibly_and_the_local_copy_reverts() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    let supervisor = Phone::new(&server, Actor::new(Uuid::from_u128(0x5), Role::Supervisor)).await;
    let visit = a.record_visit("home").await;
    a.store()
        .set_field(Entity::Visit, visit, "review_status", json!("submitted"))
        .await
        .unwrap();
    a.syncer.sync().await.unwrap();
    supervisor.syncer.sync().await.unwrap();
    // A supervisor may not change a visit's content: refused on the phone already.
    let err = supervisor
        .store()
        .set_field(Entity::Visit, visit, "location", json!("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Refused { reason, .. } if reason == "role_not_allowed"),
        "{err}"
    );
    supervisor
        .store()
        .set_field(Entity::Visit, visit, "review_status", json!("approved"))
        .await
        .unwrap();
    supervisor.syncer.sync().await.unwrap();

    // A has not pulled the approval and corrects the location.
    a.store()
        .set_field(Entity::Visit, visit, "location", json!("school"))
        .await
        .unwrap();
    let report = a.syncer.sync().await.unwrap();

    assert_eq!(report.rejected, 1);
    let rejections = a.store().rejections().await.unwrap();
    assert_eq!(rejections.len(), 1);
    assert_eq!(rejections[0].reason, "locked");
    assert!(matches!(
        rejections[0].result,
        MutationResult::Rejected {
            amendment: true,
            ..
        }
    ));
    assert_eq!(
        rejections[0].mutation.fields["location"].op,
        FieldOp::Set(json!("school"))
    );
    let local = a.store().get(Entity::Visit, visit).await.unwrap().unwrap();
    assert_eq!(local.record.get_str("location"), Some("home"));
    assert_eq!(local.record.get_str("review_status"), Some("approved"));
    assert!(a.store().pending().await.unwrap().is_empty());
    a.store()
        .dismiss_rejection(rejections[0].mutation_id)
        .await
        .unwrap();
    assert!(a.store().rejections().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_diverged_copy_is_reported_and_repaired() {
    let server = FakeServer::new();
    let a = Phone::new(&server, director()).await;
    let keep = a.record_visit("home").await;
    let lost = a.record_visit("school").await;
    a.syncer.sync().await.unwrap();
    server.forget(Entity::Visit, lost);

    let report = a.syncer.sync().await.unwrap();
    let divergence = report.diverged.expect("the checksum shows the difference");
    assert_eq!((divergence.local.count, divergence.server.count), (2, 1));

    let repaired = a.syncer.repair().await.unwrap();
    assert_eq!(repaired.diverged, None);
    assert!(a.store().get(Entity::Visit, lost).await.unwrap().is_none());
    assert!(a.store().get(Entity::Visit, keep).await.unwrap().is_some());
    assert_eq!(
        a.store().scope_checksum().await.unwrap(),
        server.scope_checksum()
    );
}

/// A server at its sync cap answers 503 `server_busy` with `Retry-After`:
/// the phone waits at least that long (spread, so turned-away phones do not
/// return in step) and tries again without spending its attempts, then
/// syncs; a server busy for ever still ends the sync with an error.
#[tokio::test]
async fn a_busy_server_is_waited_out_without_spending_attempts() {
    use std::time::Duration;
    let server = FakeServer::new();
    let phone = Phone::new(&server, director()).await;
    let visit = phone.record_visit("home").await;
    let busy = || {
        Fault::Fail(TransportError::Busy {
            retry_after: Duration::from_secs(3),
        })
    };
    // Far more busy answers than the phone's four attempts.
    for _ in 0..20 {
        server.fault_next_push(busy());
    }
    let report = phone
        .syncer
        .sync()
        .await
        .expect("synced once the server had room");
    assert_eq!(report.attempts, 1, "busy answers spent no attempt");
    assert!(server.record(Entity::Visit, visit).is_some());
    let waits = phone.sleeper.waits();
    assert_eq!(waits.len(), 20);
    assert!(
        waits
            .iter()
            .all(|w| *w >= Duration::from_secs(3) && *w <= Duration::from_secs(6)),
        "{waits:?}"
    );
    assert!(
        waits.iter().any(|w| *w != waits[0]),
        "the waits are spread: {waits:?}"
    );

    let later = phone.record_visit("school").await;
    for _ in 0..(seedling_client::sync::MAX_BUSY_WAITS + 10) {
        server.fault_next_push(busy());
    }
    let err = phone.syncer.sync().await.expect_err("busy for ever");
    assert!(
        matches!(err, SyncError::Transport(TransportError::Busy { .. })),
        "{err:?}"
    );
    assert!(server.record(Entity::Visit, later).is_none());
}
