//! Targeted repair (docs/SYNC-PROTOCOL.md §4): a phone whose store was
//! damaged — a record lost, one at a wrong version, one it should not hold
//! — sees the scope checksum differ, reads the manifest, fetches only the
//! differing records, and ends with the server's checksum, for fewer bytes
//! than a new bootstrap. The manifest pages, and neither route hands out a
//! record outside the caller's scope.

use reqwest::{Method, StatusCode};
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};
use sync_core::protocol::{
    FetchResponse, ManifestEntry, ManifestResponse, PROTOCOL_VERSION, RecordRef, Repair,
};
use sync_core::record::Entity;
use uuid::Uuid;

on_both_backends!(
    a_damaged_store_is_repaired_with_only_the_differing_records,
    repair_routes_hand_out_nothing_outside_the_scope,
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
