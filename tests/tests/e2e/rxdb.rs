//! RxDB replication (docs/ADAPTERS.md): a collection's pull comes in full
//! batches and holds what the native pull holds; a row sent twice is
//! applied once; a transfer reaches the old village as deleted documents;
//! the conflicts collection carries the scope's conflicts and takes no
//! writes. The adapter's own tests run real RxDB apps
//! (adapters/rxdb/test).

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends, url_encode};
use serde_json::{Value, json};
use sync_core::record::Entity;
use uuid::Uuid;

on_both_backends!(
    an_rxdb_pull_comes_in_full_batches_and_holds_what_the_native_pull_holds,
    an_rxdb_row_sent_twice_is_applied_once,
    a_transfer_reaches_the_old_village_as_deleted_documents,
    the_conflicts_collection_carries_the_scope_s_conflicts_and_takes_no_writes,
);

/// One RxDB pull: the documents and the checkpoint's cursor.
async fn rx_pull(
    app: &TestApp,
    phone: &Device,
    collection: &str,
    cursor: Option<&str>,
    batch: u32,
) -> (Vec<Value>, Option<String>) {
    let mut path = format!("/api/v1/rxdb/{collection}/pull?batchSize={batch}");
    if let Some(cursor) = cursor {
        path.push_str(&format!("&checkpoint={}", url_encode(cursor)));
    }
    let (status, body) = app.call(Method::GET, &path, Some(&phone.token), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let documents = body["documents"].as_array().expect("documents").clone();
    let cursor = body["checkpoint"]["cursor"].as_str().map(str::to_owned);
    (documents, cursor)
}

/// Every batch of a collection as RxDB reads them: until one is short.
async fn rx_pull_all(
    app: &TestApp,
    phone: &Device,
    collection: &str,
    cursor: &mut Option<String>,
    batch: u32,
) -> Vec<Vec<Value>> {
    let mut batches = Vec::new();
    for _ in 0..1000 {
        let (documents, next) = rx_pull(app, phone, collection, cursor.as_deref(), batch).await;
        let short = documents.len() < batch as usize;
        if !documents.is_empty() {
            *cursor = next;
        }
        batches.push(documents);
        if short {
            return batches;
        }
    }
    panic!("the pull did not end in 1000 batches");
}

async fn rx_push(
    app: &TestApp,
    phone: &Device,
    collection: &str,
    rows: Value,
) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/api/v1/rxdb/{collection}/push"),
        Some(&phone.token),
        Some(rows),
    )
    .await
}

/// A new visit as an RxDB app writes it, every field stamped with `hlc`.
fn visit_document(phone: &mut Device, child: Uuid, village: Uuid, extra: Value) -> Value {
    let hlc = phone.tick().to_string();
    let mut doc = json!({
        "id": Uuid::new_v4(), "_deleted": false, "field_clocks": {},
        "child_id": child, "author_id": phone.user_id, "device_id": phone.id,
        "village_id": village, "kind": "home_visit",
        "visited_at": chrono::Utc::now().to_rfc3339(), "review_status": "submitted",
    });
    if let Value::Object(extra) = extra {
        for (name, value) in extra {
            doc[name] = value;
        }
    }
    let names: Vec<String> = doc
        .as_object()
        .expect("an object")
        .keys()
        .filter(|name| !matches!(name.as_str(), "id" | "_deleted" | "field_clocks"))
        .cloned()
        .collect();
    for name in names {
        doc["field_clocks"][name] = json!(hlc);
    }
    doc
}

fn live(documents: impl IntoIterator<Item = Value>) -> BTreeMap<String, u64> {
    let mut held = BTreeMap::new();
    for doc in documents {
        let id = doc["id"].as_str().expect("an id").to_owned();
        if doc["_deleted"] == true {
            held.remove(&id);
        } else {
            held.insert(id, doc["server_version"].as_u64().expect("a version"));
        }
    }
    held
}

async fn an_rxdb_pull_comes_in_full_batches_and_holds_what_the_native_pull_holds(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "王小明").await;
    let mut director = Device::sign_in(&app, "director-a1").await;
    let mut visits = Vec::new();
    for day in 1..=7 {
        let (id, builder) = director.new_visit(
            child,
            fixture.village_a1,
            &format!("2026-11-0{day}T09:00:00+08:00"),
        );
        director.push(&app, &[builder.build()]).await;
        visits.push(id);
        if day == 3 {
            // The third visit changed twice at once: its log rows share a
            // page of two, which makes one document, so the server reads
            // the next page to fill the batch.
            for note in ["再去一次", "已约好"] {
                director.pull_all(&app).await;
                let edit = director
                    .update(Entity::Visit, id)
                    .set("follow_up", json!(note))
                    .build();
                director.push(&app, &[edit]).await;
            }
        }
    }

    let mut native = Device::sign_in(&app, "director-a1").await;
    native.pull_all(&app).await;
    let expected: BTreeMap<String, u64> = native
        .records
        .values()
        .filter(|record| record.entity == Entity::Visit && !record.is_deleted())
        .map(|record| (record.id.to_string(), record.version))
        .collect();
    assert_eq!(expected.len(), 7);

    let mut cursor = None;
    let batches = rx_pull_all(&app, &native, "visits", &mut cursor, 2).await;
    let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 2, 1], "full batches until the last");
    assert_eq!(live(batches.into_iter().flatten()), expected);
    let (more, _) = rx_pull(&app, &native, "visits", cursor.as_deref(), 2).await;
    assert!(more.is_empty(), "nothing after the end: {more:?}");

    let (children, _) = rx_pull(&app, &native, "children", None, 100).await;
    assert_eq!(
        live(children).into_keys().collect::<Vec<_>>(),
        [child.to_string()]
    );
}

async fn an_rxdb_row_sent_twice_is_applied_once(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "李小红").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let doc = visit_document(&mut phone, child, fixture.village_a1, json!({}));
    let create = json!([{ "assumedMasterState": null, "newDocumentState": doc }]);
    let (status, first) = rx_push(&app, &phone, "visits", create.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, again) = rx_push(&app, &phone, "visits", create).await;
    assert_eq!(
        first, again,
        "the resend is answered from the stored outcome"
    );
    let master = first[0].clone();
    assert_eq!(master["server_version"], 1);
    assert_eq!(master["_deleted"], false);

    let mut edited = master.clone();
    edited["follow_up"] = json!("下周再来");
    edited["field_clocks"]["follow_up"] = json!(phone.tick().to_string());
    let update = json!([{ "assumedMasterState": master, "newDocumentState": edited }]);
    let (_, first) = rx_push(&app, &phone, "visits", update.clone()).await;
    let (_, again) = rx_push(&app, &phone, "visits", update).await;
    assert_eq!(first, again);
    assert_eq!(first[0]["server_version"], 2);
    assert_eq!(first[0]["follow_up"], "下周再来");

    // RxDB sends the server's state back once after taking it: no change.
    let settled = json!([{ "assumedMasterState": first[0], "newDocumentState": first[0] }]);
    let (status, answer) = rx_push(&app, &phone, "visits", settled).await;
    assert_eq!((status, answer), (StatusCode::OK, json!([])));

    let supervisor = Device::sign_in(&app, "supervisor-a").await;
    let id = first[0]["id"].as_str().expect("an id");
    let (_, visit) = app
        .call(
            Method::GET,
            &format!("/api/v1/visits/{id}"),
            Some(&supervisor.token),
            None,
        )
        .await;
    assert_eq!(visit["version"], 2, "{visit}");
    let (_, queue) = app
        .call(
            Method::GET,
            "/api/v1/conflicts?status=all",
            Some(&supervisor.token),
            None,
        )
        .await;
    let about: Vec<&Value> = queue["conflicts"]
        .as_array()
        .expect("conflicts")
        .iter()
        .filter(|c| c["record_id"] == id)
        .collect();
    assert!(
        about.is_empty(),
        "no resend was refused or merged: {about:?}"
    );
}

async fn a_transfer_reaches_the_old_village_as_deleted_documents(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小华").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let doc = visit_document(&mut phone, child, fixture.village_a1, json!({}));
    let visit = doc["id"].clone();
    let (status, _) = rx_push(
        &app,
        &phone,
        "visits",
        json!([{ "assumedMasterState": null, "newDocumentState": doc }]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (mut children_at, mut visits_at) = (None, None);
    rx_pull_all(&app, &phone, "children", &mut children_at, 100).await;
    rx_pull_all(&app, &phone, "visits", &mut visits_at, 100).await;

    admin.pull_all(&app).await;
    let moved = admin
        .update(Entity::Child, child)
        .set("village_id", json!(fixture.village_a2))
        .build();
    admin.push(&app, &[moved]).await;

    let children = rx_pull_all(&app, &phone, "children", &mut children_at, 100).await;
    let visits = rx_pull_all(&app, &phone, "visits", &mut visits_at, 100).await;
    let purge = |id: &Value| json!({ "id": id, "_deleted": true, "purged": "left_scope" });
    assert_eq!(children.concat(), [purge(&json!(child))]);
    assert_eq!(visits.concat(), [purge(&visit)]);
}

async fn the_conflicts_collection_carries_the_scope_s_conflicts_and_takes_no_writes(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "赵小刚").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let flags = json!({"risk_flags": [{"id": "r1", "kind": "physical_abuse", "urgent": true}]});
    let doc = visit_document(&mut phone, child, fixture.village_a1, flags);
    let visit = doc["id"].clone();
    let row = json!([{ "assumedMasterState": null, "newDocumentState": doc }]);
    let (status, _) = rx_push(&app, &phone, "visits", row.clone()).await;
    assert_eq!(status, StatusCode::OK);

    let mut cursor = None;
    let batches = rx_pull_all(&app, &phone, "conflicts", &mut cursor, 10).await;
    let urgent: Vec<&Value> = batches
        .iter()
        .flatten()
        .filter(|c| c["record_id"] == visit && c["kind"] == "urgent")
        .collect();
    assert_eq!(urgent.len(), 1, "{batches:?}");
    let (after, _) = rx_pull(&app, &phone, "conflicts", cursor.as_deref(), 10).await;
    assert!(after.is_empty(), "nothing twice: {after:?}");

    let elsewhere = Device::sign_in(&app, "director-b1").await;
    let (theirs, _) = rx_pull(&app, &elsewhere, "conflicts", None, 100).await;
    assert!(theirs.iter().all(|c| c["record_id"] != visit), "{theirs:?}");

    let (status, body) = rx_push(&app, &phone, "conflicts", row).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/rxdb/notes/pull",
            Some(&phone.token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}
