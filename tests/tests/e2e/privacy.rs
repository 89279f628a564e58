//! Identity-card numbers: sealed in the database, whole only for admins,
//! masked on directors' and supervisors' phones; subject access; and every
//! read of a child's record through the review API on the audit trail.

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use seedling_server::entity::{audit_log, child};
use seedling_server::service::audit;
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};
use sync_core::protocol::MutationResult;
use sync_core::record::Entity;
use uuid::Uuid;

on_both_backends!(
    an_identity_number_is_sealed_at_rest_masked_for_supervisors_and_kept_off_directors_phones,
    a_subject_access_export_holds_everything_about_the_child_and_is_audited,
    every_review_read_and_photo_download_is_audited_naming_its_children,
);

const NUMBER: &str = "33021320150302123X";

async fn an_identity_number_is_sealed_at_rest_masked_for_supervisors_and_kept_off_directors_phones(
    app: TestApp,
) {
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
        ("director-a1", None),
        ("supervisor-a", Some(json!("**************123X"))),
        ("admin", Some(json!(NUMBER))),
    ] {
        let mut phone = Device::sign_in(&app, username).await;
        phone.pull_all(&app).await;
        let record = phone.get(Entity::Child, child).expect("the child");
        assert_eq!(record.get("id_number"), expected, "{username}");
        assert_eq!(
            phone.last_checksum,
            Some(phone.checksum()),
            "{username}: the checksum holds without the field"
        );
    }
}

/// One child with a bit of everything: an identity number, a photo on an
/// approved visit, a second visit the same day from another phone (a
/// possible-duplicate conflict), a needs-ledger item, outbound messages and
/// a report that named the child. A second child must not leak in.
async fn a_subject_access_export_holds_everything_about_the_child_and_is_audited(app: TestApp) {
    use crate::attachments::support::{download, photo, upload_whole};
    use crate::review::{day_at, visit};

    let fixture = Fixture::load(&app).await;
    let village = fixture.village_a1;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = Uuid::new_v4();
    let create = admin
        .create(Entity::Child, child)
        .set("name", json!("周小雨"))
        .set("birth_date", json!("2014-06-01"))
        .set("category", json!("in_difficulty"))
        .set("status", json!("active"))
        .set("village_id", json!(village))
        .set("address", json!("甲一村三组12号"))
        .set("id_number", json!(NUMBER))
        .build();
    admin.push(&app, &[create]).await;
    let other = admin.create_child(&app, village, "别的孩子").await;

    let director = app.token_for("director-a1").await;
    let picture = photo(3_000, 77);
    let sha = upload_whole(&app, &director, &picture).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let photo_ref = json!({ "id": Uuid::new_v4(), "sha256": sha });
    let first = visit(
        &app,
        &mut phone,
        child,
        village,
        &day_at(40, 9),
        &[("photos", json!([photo_ref]))],
    )
    .await;
    let mut second_phone = Device::sign_in(&app, "director-a1").await;
    let second = visit(
        &app,
        &mut second_phone,
        child,
        village,
        &day_at(40, 15),
        &[],
    )
    .await;
    visit(&app, &mut phone, other, village, &day_at(3, 9), &[]).await;
    let need = phone
        .create(Entity::CasePlanItem, Uuid::new_v4())
        .set("child_id", json!(child))
        .set("village_id", json!(village))
        .set("area", json!("psychology"))
        .set("description", json!("心理疏导每月一次"))
        .set("status", json!("open"))
        .build();
    phone.push(&app, &[need]).await;

    let supervisor = app.token_for("supervisor-a").await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/visits/{first}/review"),
            Some(&supervisor),
            Some(json!({ "decision": "approve", "version": 1 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let admin_token = app.token_for("admin").await;
    let (status, _) = app
        .call(
            Method::GET,
            "/api/v1/reports/overdue",
            Some(&admin_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Supervisors, directors and the platform may not export.
    let path = format!("/api/v1/children/{child}/export");
    for who in [&supervisor, &director] {
        let (status, body) = app.call(Method::GET, &path, Some(who), None).await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }

    let (status, doc) = app.call(Method::GET, &path, Some(&admin_token), None).await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["format"], "seedling.subject-access/1");
    assert_eq!(doc["child"]["id"], child.to_string());
    assert_eq!(doc["child"]["name"], "周小雨");
    assert_eq!(
        doc["child"]["id_number"], NUMBER,
        "the bureau gets the whole number"
    );
    assert_eq!(doc["child"]["address"], "甲一村三组12号");
    assert!(doc["child"].get("field_clocks").is_none());
    let places: Vec<&str> = doc["places"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(places, ["village", "town", "district"]);
    assert_eq!(doc["register_events"][0]["kind"], "added");

    let visits = doc["visits"].as_array().unwrap();
    let visit_ids: Vec<&str> = visits
        .iter()
        .map(|v| v["record"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        visit_ids,
        [first.to_string(), second.to_string()],
        "this child's visits only"
    );
    let approved = &visits[0];
    assert_eq!(approved["record"]["review_status"], "approved");
    let kinds: Vec<&str> = approved["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "reviewed"]);
    assert_eq!(approved["review_decisions"][0]["review_status"], "approved");
    assert_eq!(
        approved["review_decisions"][0]["by"],
        fixture.user_id("supervisor-a").to_string()
    );
    let duplicate = visits
        .iter()
        .flat_map(|v| v["conflicts"].as_array().unwrap())
        .find(|c| c["kind"] == "possible_duplicate");
    assert!(
        duplicate.is_some(),
        "the same-day visit was flagged: {visits:?}"
    );
    assert_eq!(doc["needs"][0]["description"], "心理疏导每月一次");

    assert_eq!(doc["attachments"].as_array().unwrap().len(), 1);
    let attachment = &doc["attachments"][0];
    assert_eq!(attachment["sha256"], sha.as_str());
    assert_eq!(attachment["size_bytes"], 3_000);
    assert_eq!(attachment["visit_ids"], json!([first]));
    let download_path = attachment["download"].as_str().unwrap();
    assert_eq!(download_path, format!("/api/v1/attachments/{sha}"));
    let (status, bytes) = download(&app, &admin_token, &sha).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes.unwrap(), picture, "the photo itself is one call away");

    let kinds: Vec<&str> = doc["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"visit_approved"), "{kinds:?}");
    assert!(
        kinds.len() >= 2,
        "the registration and the approval: {kinds:?}"
    );
    for delivery in doc["deliveries"].as_array().unwrap() {
        let about = delivery["aggregate_id"].as_str().unwrap();
        assert!(
            about == child.to_string() || about == first.to_string(),
            "{delivery}"
        );
        assert!(delivery["attempts"].is_array());
    }

    let actions: Vec<&str> = doc["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"visit.approve"), "{actions:?}");
    assert!(
        actions.contains(&"report.read"),
        "the overdue list named the child: {actions:?}"
    );
    let people: Vec<&str> = doc["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["username"].as_str().unwrap())
        .collect();
    assert!(
        people.contains(&"supervisor-a") && people.contains(&"director-a1"),
        "{people:?}"
    );
    let text = doc.to_string();
    assert!(
        !text.contains("别的孩子") && !text.contains(&other.to_string()),
        "another child leaked in"
    );

    // The export is on the audit trail, and shows in the next export.
    let last = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("child.export"))
        .order_by_desc(audit_log::Column::Id)
        .one(app.db())
        .await
        .unwrap()
        .expect("the export was audited");
    assert_eq!(last.record_id, Some(child));
    assert_eq!(last.actor_id, Some(fixture.user_id("admin")));
    assert_eq!(last.detail.as_ref().unwrap()["visits"], 2);
    let (_, again) = app.call(Method::GET, &path, Some(&admin_token), None).await;
    let exports = again["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "child.export")
        .count();
    assert_eq!(exports, 1);

    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/children/{}/export", Uuid::new_v4()),
            Some(&admin_token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let _: Value = again;
}

/// The read actions `actor` has on the trail about `child`, in order.
async fn reads_of(app: &TestApp, child: Uuid, actor: Uuid) -> Vec<String> {
    const READS: [&str; 6] = [
        "children.list",
        "child.read",
        "visits.list",
        "visit.read",
        "conflicts.list",
        "attachment.download",
    ];
    audit::about_child(app.db(), child)
        .await
        .expect("read the audit trail")
        .into_iter()
        .filter(|row| row.actor_id == Some(actor) && READS.contains(&row.action.as_str()))
        .map(|row| row.action)
        .collect()
}

async fn every_review_read_and_photo_download_is_audited_naming_its_children(app: TestApp) {
    use crate::attachments::support::{download, photo, upload_whole};
    use crate::review::{day_at, visit};

    let fixture = Fixture::load(&app).await;
    let (a1, b1) = (fixture.village_a1, fixture.village_b1);
    let mut admin = Device::sign_in(&app, "admin").await;
    let seen = admin.create_child(&app, a1, "看得见").await;
    let neighbour = admin.create_child(&app, a1, "同村的").await;
    let elsewhere = admin.create_child(&app, b1, "别的镇").await;

    let director = app.token_for("director-a1").await;
    let sha = upload_whole(&app, &director, &photo(2_000, 5)).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let photos = json!([{ "id": Uuid::new_v4(), "sha256": sha }]);
    let first = visit(
        &app,
        &mut phone,
        seen,
        a1,
        &day_at(4, 9),
        &[("photos", photos)],
    )
    .await;
    // A second visit the same day is flagged as a possible duplicate.
    let mut second_phone = Device::sign_in(&app, "director-a1").await;
    visit(&app, &mut second_phone, seen, a1, &day_at(4, 15), &[]).await;
    visit(&app, &mut phone, neighbour, a1, &day_at(2, 9), &[]).await;
    let mut phone_b = Device::sign_in(&app, "director-b1").await;
    visit(&app, &mut phone_b, elsewhere, b1, &day_at(2, 9), &[]).await;

    let supervisor = app.token_for("supervisor-a").await;
    let reader = fixture.user_id("supervisor-a");
    let get = |path: String| {
        let (app, token) = (&app, &supervisor);
        async move {
            let (status, body) = app.call(Method::GET, &path, Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };

    let roster = get("/api/v1/children".to_owned()).await;
    assert!(roster["total"].as_u64().unwrap() >= 2, "{roster}");
    get(format!("/api/v1/children/{seen}")).await;
    get("/api/v1/visits".to_owned()).await;
    get(format!("/api/v1/visits/{first}")).await;
    let queue = get("/api/v1/conflicts".to_owned()).await;
    assert!(
        queue["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["kind"] == "possible_duplicate" && c["record_id"] != json!(null)),
        "{queue}"
    );
    let (status, _) = download(&app, &supervisor, &sha).await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(
        reads_of(&app, seen, reader).await,
        [
            "children.list",
            "child.read",
            "visits.list",
            "visit.read",
            "conflicts.list",
            "attachment.download"
        ],
        "every read that returned the child names it, once per request"
    );
    assert_eq!(
        reads_of(&app, neighbour, reader).await,
        ["children.list", "visits.list"],
        "the child's page, the visit, the queue and the photo did not show the neighbour"
    );
    assert!(
        reads_of(&app, elsewhere, reader).await.is_empty(),
        "another town's child was never returned"
    );

    let page = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("child.read"))
        .one(app.db())
        .await
        .unwrap()
        .expect("the child's page was audited");
    assert_eq!(
        (page.entity.as_deref(), page.record_id),
        (Some("child"), Some(seen))
    );
    assert_eq!(page.detail.unwrap()["child_ids"], json!([seen]));
    let opened = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("visit.read"))
        .one(app.db())
        .await
        .unwrap()
        .expect("the visit was audited");
    assert_eq!(opened.record_id, Some(first));
    let photo_read = audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("attachment.download"))
        .one(app.db())
        .await
        .unwrap()
        .expect("the download was audited");
    assert_eq!(photo_read.detail.unwrap()["sha256"], json!(sha));

    // A read that returns no child writes nothing; the chain holds.
    let before = audit::verify(app.db()).await.expect("verify");
    let none = get(format!("/api/v1/visits?child={}", Uuid::new_v4())).await;
    assert_eq!(none["visits"], json!([]));
    let after = audit::verify(app.db()).await.expect("verify");
    assert!(after.intact, "{after:?}");
    assert_eq!(after.rows, before.rows, "an empty list is not recorded");
}
