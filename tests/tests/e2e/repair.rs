//! Targeted repair (docs/SYNC-PROTOCOL.md §4): a phone whose store was
//! damaged — a record lost, one at a wrong version, one it should not hold
//! — sees the scope checksum differ, reads the manifest, fetches only the
//! differing records, and ends with the server's checksum, for fewer bytes
//! than a new bootstrap — over HTTP, and through the reference client's
//! `Syncer::repair`. The manifest pages, and neither route hands out a
//! record outside the caller's scope.

use std::{
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use reqwest::{Method, StatusCode};
use seedling_client::{
    HttpTransport, Jitter, RecordingSleeper, Store, SyncOptions, Syncer, Transport, TransportError,
    sim::net::sign_in,
};
use seedling_server::service::demo;
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};
use sync_core::protocol::{
    FetchRequest, FetchResponse, ManifestEntry, ManifestRequest, ManifestResponse,
    PROTOCOL_VERSION, PullRequest, PullResponse, PushRequest, PushResponse, RecordRef, Repair,
};
use sync_core::record::Entity;
use sync_core::rules::{Actor, Role};
use uuid::Uuid;

on_both_backends!(
    a_damaged_store_is_repaired_with_only_the_differing_records,
    repair_routes_hand_out_nothing_outside_the_scope,
    the_reference_client_repairs_a_damaged_store_with_fewer_bytes_than_a_bootstrap,
);

/// Every page of the manifest, and the bytes it took.
async fn manifest(app: &TestApp, phone: &Device, limit: u32) -> (Vec<ManifestResponse>, usize) {
    let mut pages = Vec::new();
    let mut bytes = 0;
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let mut path =
            format!("/api/v1/sync/manifest?protocol_version={PROTOCOL_VERSION}&limit={limit}");
        if let Some(after) = &after {
            path.push_str(&format!("&after={after}"));
        }
        let (status, body) = app.call(Method::GET, &path, Some(&phone.token), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        bytes += body.to_string().len();
        let page: ManifestResponse = serde_json::from_value(body).expect("a manifest page");
        after = page.next_after.clone();
        pages.push(page);
        if after.is_none() {
            return (pages, bytes);
        }
    }
    panic!("the manifest did not end in 100 pages");
}

async fn fetch(app: &TestApp, phone: &Device, records: &[RecordRef]) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/sync/fetch",
        Some(&phone.token),
        Some(json!({ "protocol_version": PROTOCOL_VERSION, "records": records })),
    )
    .await
}

async fn a_damaged_store_is_repaired_with_only_the_differing_records(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let mut children = Vec::new();
    for n in 0..6 {
        children.push(
            admin
                .create_child(&app, fixture.village_a1, &format!("儿童{n}"))
                .await,
        );
    }
    let mut phone = Device::sign_in(&app, "director-a1").await;
    for (n, child) in children.iter().enumerate() {
        let (_, visit) = phone.new_visit(
            *child,
            fixture.village_a1,
            &format!("2026-03-0{}T02:00:00Z", n + 1),
        );
        let visit = visit
            .set("observations", json!({"living": "生活正常"}))
            .build();
        phone.push(&app, &[visit]).await;
    }
    phone.cursor = None;
    phone.records.clear();
    phone.pull_all(&app).await;
    let server = phone.last_checksum.expect("a checksum");
    assert_eq!(phone.checksum(), server);
    assert_eq!(server.count, 12);

    // A fresh bootstrap of the same scope, for the byte count.
    let (_, bootstrap) = app
        .call(
            Method::GET,
            &format!("/api/v1/sync/pull?protocol_version={PROTOCOL_VERSION}&limit=1000"),
            Some(&phone.token),
            None,
        )
        .await;
    let bootstrap_bytes = bootstrap.to_string().len();

    // The store is damaged: a child lost, a visit at a wrong version, and
    // a record the scope does not hold.
    let lost = (Entity::Child, children[0]);
    phone.records.remove(&lost);
    let stale = *phone
        .records
        .keys()
        .find(|(entity, _)| *entity == Entity::Visit)
        .expect("a visit");
    phone.records.get_mut(&stale).unwrap().version += 7;
    let stray = (Entity::Visit, Uuid::new_v4());
    let mut copy = phone.records[&stale].clone();
    copy.id = stray.1;
    phone.records.insert(stray, copy);
    assert_ne!(phone.checksum(), server, "the damage shows in the checksum");

    // Small pages, so the paging is exercised.
    let (pages, manifest_bytes) = manifest(&app, &phone, 5).await;
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|p| p.scope_checksum == server));
    let entries: Vec<ManifestEntry> = pages.iter().flat_map(|p| p.entries.clone()).collect();
    assert_eq!(entries.len(), 12);
    let mut sorted = entries.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, entries, "in order, none twice across pages");

    let repair = Repair::between(
        entries,
        phone
            .records
            .values()
            .filter(|r| !r.is_deleted())
            .map(|r| (r.entity, r.id, r.version)),
    );
    let as_ref = |(entity, id): (Entity, Uuid)| RecordRef { entity, id };
    let mut want = vec![as_ref(lost), as_ref(stale)];
    want.sort();
    assert_eq!(repair.fetch, want);
    assert_eq!(repair.drop, vec![as_ref(stray)]);

    let (status, body) = fetch(&app, &phone, &repair.fetch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fetch_bytes = body.to_string().len();
    let fetched: FetchResponse = serde_json::from_value(body).expect("a fetch response");
    assert_eq!(fetched.changes.len(), 2);
    assert!(fetched.missing.is_empty());
    for record in fetched.changes {
        phone.records.insert((record.entity, record.id), record);
    }
    for gone in repair.drop {
        phone.records.remove(&(gone.entity, gone.id));
    }
    assert_eq!(phone.checksum(), server, "repaired");
    assert!(
        manifest_bytes + fetch_bytes < bootstrap_bytes,
        "repair took {manifest_bytes} + {fetch_bytes} bytes, a bootstrap {bootstrap_bytes}"
    );
}

async fn repair_routes_hand_out_nothing_outside_the_scope(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let mine = admin.create_child(&app, fixture.village_a1, "张小红").await;
    let theirs = admin.create_child(&app, fixture.village_b1, "赵小刚").await;
    let phone = Device::sign_in(&app, "director-a1").await;

    let (pages, _) = manifest(&app, &phone, 1000).await;
    let ids: Vec<Uuid> = pages
        .iter()
        .flat_map(|p| p.entries.iter().map(|e| e.1))
        .collect();
    assert_eq!(ids, vec![mine]);

    let asked = [
        RecordRef {
            entity: Entity::Child,
            id: mine,
        },
        RecordRef {
            entity: Entity::Child,
            id: theirs,
        },
        RecordRef {
            entity: Entity::Visit,
            id: Uuid::new_v4(),
        },
    ];
    let (status, body) = fetch(&app, &phone, &asked).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!body.to_string().contains("赵小刚"), "{body}");
    let fetched: FetchResponse = serde_json::from_value(body).expect("a fetch response");
    assert_eq!(fetched.changes.len(), 1);
    assert_eq!(fetched.changes[0].id, mine);
    let mut missing = fetched.missing.clone();
    missing.sort();
    let mut expected = asked[1..].to_vec();
    expected.sort();
    assert_eq!(missing, expected);

    let too_many: Vec<RecordRef> = (0..501)
        .map(|_| RecordRef {
            entity: Entity::Visit,
            id: Uuid::new_v4(),
        })
        .collect();
    let (status, body) = fetch(&app, &phone, &too_many).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/sync/manifest?protocol_version={PROTOCOL_VERSION}&after=nonsense"),
            Some(&phone.token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");

    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/sync/manifest?protocol_version=99",
            Some(&phone.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UPGRADE_REQUIRED, "{body}");

    let supervisor = Device::sign_in(&app, "integration").await;
    let (status, body) = fetch(&app, &supervisor, &asked).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

/// A transport that counts the JSON bytes of every answer it receives.
struct Counting {
    inner: HttpTransport,
    bytes: AtomicUsize,
}

impl Counting {
    fn count<T: serde::Serialize>(&self, answer: &Result<T, TransportError>) {
        if let Ok(body) = answer {
            let n = serde_json::to_vec(body).map_or(0, |b| b.len());
            self.bytes.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn take(&self) -> usize {
        self.bytes.swap(0, Ordering::Relaxed)
    }
}

impl Transport for Counting {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, TransportError> {
        let answer = self.inner.push(request).await;
        self.count(&answer);
        answer
    }
    async fn pull(&self, request: PullRequest) -> Result<PullResponse, TransportError> {
        let answer = self.inner.pull(request).await;
        self.count(&answer);
        answer
    }
    async fn manifest(&self, request: ManifestRequest) -> Result<ManifestResponse, TransportError> {
        let answer = self.inner.manifest(request).await;
        self.count(&answer);
        answer
    }
    async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, TransportError> {
        let answer = self.inner.fetch(request).await;
        self.count(&answer);
        answer
    }
}

/// The reference client's repair, over HTTP against the demo district: a
/// director's phone whose store lost two records, holds one at an old
/// version and holds one the scope does not have fetches exactly the
/// three, drops the fourth, agrees with the server's checksum again, and
/// reads fewer bytes doing so than a new bootstrap of the same scope.
async fn the_reference_client_repairs_a_damaged_store_with_fewer_bytes_than_a_bootstrap(
    app: TestApp,
) {
    demo::seed_if_empty(app.db(), 2025)
        .await
        .expect("seeding the demo district")
        .expect("an empty database");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("phone.db");
    let store = Store::open(&path).await.expect("open the phone's store");
    let http = reqwest::Client::new();
    let device_id = store.device_id().await.expect("device id");
    let session = sign_in(
        &http,
        &app.base_url,
        "director-001",
        "phone",
        "seedling-demo",
        device_id,
    )
    .await
    .expect("sign in");
    store
        .sign_in(Actor::new(session.user.id, Role::Director))
        .await
        .expect("store the account");
    let transport = Counting {
        inner: HttpTransport::new(&app.base_url, session.access_token, Duration::from_secs(30))
            .expect("a transport"),
        bytes: AtomicUsize::new(0),
    };
    let syncer = Syncer::new(
        store,
        transport,
        RecordingSleeper::default(),
        Jitter::seeded(1),
        SyncOptions::default(),
    );
    let first = syncer.sync().await.expect("the bootstrap");
    assert_eq!(first.diverged, None);
    assert!(first.pulled > 10, "a village's worth of records: {first:?}");

    // Damage the store behind the client's back.
    let db = sea_orm::sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the store's file");
    let visits: Vec<(String,)> = sea_orm::sqlx::query_as(
        "SELECT id FROM records WHERE entity = 'visit' ORDER BY id LIMIT 3",
    )
    .fetch_all(&db)
    .await
    .expect("the phone's visits");
    assert_eq!(visits.len(), 3, "the village has visits");
    for (id,) in &visits[..2] {
        sea_orm::sqlx::query("DELETE FROM records WHERE entity = 'visit' AND id = ?")
            .bind(id)
            .execute(&db)
            .await
            .expect("lose a record");
    }
    sea_orm::sqlx::query(
        "UPDATE records SET shadow_version = shadow_version + 7 WHERE entity = 'visit' AND id = ?",
    )
    .bind(&visits[2].0)
    .execute(&db)
    .await
    .expect("a wrong version");
    let stray = Uuid::new_v4();
    sea_orm::sqlx::query(
        "INSERT INTO records (entity, id, shadow, shadow_version, shadow_deleted, base_version, local, deleted, child_id) \
         SELECT entity, ?, shadow, shadow_version, shadow_deleted, base_version, local, deleted, child_id \
         FROM records WHERE entity = 'child' LIMIT 1",
    )
    .bind(stray.to_string())
    .execute(&db)
    .await
    .expect("a record the scope does not hold");
    db.close().await;

    let noticed = syncer.sync().await.expect("a sync");
    assert!(noticed.diverged.is_some(), "the checksum shows the damage");

    syncer.transport().take();
    let repaired = syncer.repair().await.expect("the repair");
    let repair_bytes = syncer.transport().take();
    assert_eq!(repaired.diverged, None, "{repaired:?}");
    assert_eq!(repaired.fetched, 3, "{repaired:?}");
    assert_eq!(repaired.purged, 1, "{repaired:?}");
    assert!(
        syncer
            .store()
            .get(Entity::Child, stray)
            .await
            .unwrap()
            .is_none()
    );
    for (id,) in &visits {
        let id = id.parse().expect("a uuid");
        assert!(
            syncer
                .store()
                .get(Entity::Visit, id)
                .await
                .unwrap()
                .is_some()
        );
    }

    let again = syncer.rebootstrap().await.expect("a bootstrap");
    let bootstrap_bytes = syncer.transport().take();
    assert_eq!(again.diverged, None);
    eprintln!("repair: {repair_bytes} bytes; bootstrap: {bootstrap_bytes} bytes");
    assert!(
        repair_bytes * 2 < bootstrap_bytes,
        "the repair read {repair_bytes} bytes, a bootstrap {bootstrap_bytes}"
    );
}
