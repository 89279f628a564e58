//! Retention for exited children: off the village's phones at once, and on
//! the server archived once the policy's years have passed since the exit's
//! effective date — personal fields gone, counts kept, audited, idempotent.

use chrono::{Months, NaiveDate};
use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_server::entity::{attachment, audit_log, child, outbox, visit};
use seedling_server::service::privacy::retention;
use seedling_tests::{Device, Fixture, TestApp, on_both_backends};
use serde_json::json;
use sync_core::protocol::MutationResult;
use sync_core::record::Entity;
use uuid::Uuid;

use crate::attachments::support::{download, photo, upload_whole};
use crate::review::{day_at, visit};

on_both_backends!(a_child_exited_beyond_the_policy_is_archived_and_a_recent_exit_is_untouched,);

/// A child in village A1 with every personal field set.
async fn register(app: &TestApp, admin: &mut Device, village: Uuid, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    let m = admin
        .create(Entity::Child, id)
        .set("name", json!(name))
        .set("birth_date", json!("2008-07-15"))
        .set("category", json!("left_behind"))
        .set("status", json!("active"))
        .set("village_id", json!(village))
        .set("id_number", json!("33021320080715123X"))
        .set("address", json!("甲一村五组3号"))
        .set("guardian_name", json!("外婆"))
        .set("guardian_phone", json!("13800000000"))
        .set("health_notes", json!("哮喘"))
        .build();
    applied(app, admin, m).await;
    id
}

async fn exit(app: &TestApp, admin: &mut Device, child: Uuid, on: NaiveDate) {
    admin.pull_all(app).await;
    let m = admin
        .update(Entity::Child, child)
        .set("status", json!("exited"))
        .set("exit_reason", json!("turned_18"))
        .set("exit_date", json!(on))
        .build();
    applied(app, admin, m).await;
}

async fn applied(app: &TestApp, admin: &mut Device, m: sync_core::protocol::Mutation) {
    let answer = admin.push(app, &[m]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Applied { .. }),
        "{:?}",
        answer.results
    );
}

async fn archives(app: &TestApp) -> u64 {
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("child.archive"))
        .count(app.db())
        .await
        .unwrap()
}

async fn a_child_exited_beyond_the_policy_is_archived_and_a_recent_exit_is_untouched(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let village = fixture.village_a1;
    let today = retention::today();
    assert_eq!(
        app.state.config.retention_exited_years, 5,
        "the documented default"
    );
    let mut admin = Device::sign_in(&app, "admin").await;
    let old = register(&app, &mut admin, village, "早已离册的孩子").await;
    let recent = register(&app, &mut admin, village, "昨天离册的孩子").await;

    let director = app.token_for("director-a1").await;
    let picture = photo(2_500, 91);
    let sha = upload_whole(&app, &director, &picture).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let photo_ref = json!({ "id": Uuid::new_v4(), "sha256": sha });
    let old_visit = visit(
        &app,
        &mut phone,
        old,
        village,
        &day_at(2, 9),
        &[
            ("photos", json!([photo_ref])),
            ("follow_up", json!("下月再访，关注哮喘")),
        ],
    )
    .await;
    let recent_visit = visit(&app, &mut phone, recent, village, &day_at(2, 10), &[]).await;
    let need_id = Uuid::new_v4();
    let need = phone
        .create(Entity::CasePlanItem, need_id)
        .set("child_id", json!(old))
        .set("village_id", json!(village))
        .set("area", json!("health"))
        .set("description", json!("哮喘用药"))
        .set("status", json!("open"))
        .build();
    phone.push(&app, &[need]).await;
    let mut supervisor = Device::sign_in(&app, "supervisor-a").await;
    supervisor.pull_all(&app).await;
    phone.pull_all(&app).await;

    let long_ago = today.checked_sub_months(Months::new(6 * 12)).unwrap();
    exit(&app, &mut admin, old, long_ago).await;
    exit(&app, &mut admin, recent, today.pred_opt().unwrap()).await;

    // Off the village's phones at once, before any archiving.
    phone.pull_all(&app).await;
    for (entity, id) in [
        (Entity::Child, old),
        (Entity::Child, recent),
        (Entity::Visit, old_visit),
        (Entity::Visit, recent_visit),
        (Entity::CasePlanItem, need_id),
    ] {
        assert!(
            phone.get(entity, id).is_none(),
            "{entity:?} {id} still on the phone"
        );
    }
    assert_eq!(phone.last_checksum, Some(phone.checksum()));

    // The platform has received the messages about the old child (messages
    // still owed keep their payload until delivered).
    outbox::Entity::update_many()
        .col_expr(outbox::Column::Status, Expr::value("delivered"))
        .filter(outbox::Column::AggregateId.eq(old))
        .exec(app.db())
        .await
        .unwrap();

    let report = retention::run(&app.state, today)
        .await
        .expect("retention run");
    assert_eq!(report.archived_ids, [old], "only the exit past the policy");
    assert_eq!(report.photos_removed, 1);
    assert_eq!(report.photo_errors, 0);

    let archived = child::Entity::find_by_id(old)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(archived.name, retention::pseudonym(old));
    assert!(archived.archived_at.is_some());
    assert_eq!(
        archived.birth_date,
        NaiveDate::from_ymd_opt(2008, 1, 1).unwrap()
    );
    for (field, value) in [
        (
            "id_number",
            archived.id_number.as_ref().map(|n| n.0.clone()),
        ),
        ("address", archived.address.clone()),
        ("guardian_name", archived.guardian_name.clone()),
        ("guardian_phone", archived.guardian_phone.clone()),
        ("health_notes", archived.health_notes.clone()),
    ] {
        assert_eq!(value, None, "{field} must be gone");
    }
    // What reports count stays.
    assert_eq!(
        (
            archived.status.as_str(),
            archived.category.as_str(),
            archived.exit_date,
            archived.village_id
        ),
        ("exited", "left_behind", Some(long_ago), village)
    );
    let kept_visit = visit::Entity::find_by_id(old_visit)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert!(!kept_visit.deleted, "the visit still counts");
    assert_eq!(kept_visit.kind, "home_visit");
    assert_eq!(
        (
            kept_visit.observations.clone(),
            kept_visit.follow_up.clone()
        ),
        (None, None)
    );
    assert_eq!(kept_visit.photos, json!([]));
    assert!(
        attachment::Entity::find_by_id(sha.clone())
            .one(app.db())
            .await
            .unwrap()
            .is_none()
    );
    let admin_token = app.token_for("admin").await;
    let (status, _) = download(&app, &admin_token, &sha).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the photo is gone");
    let text = serde_json::to_string(&export(&app, &admin_token, old).await).unwrap();
    for personal in [
        "早已离册的孩子",
        "33021320080715123X",
        "甲一村五组3号",
        "哮喘",
        "外婆",
    ] {
        assert!(
            !text.contains(personal),
            "`{personal}` survived the archive: {text}"
        );
    }

    let untouched = child::Entity::find_by_id(recent)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.name, "昨天离册的孩子");
    assert_eq!(untouched.address.as_deref(), Some("甲一村五组3号"));
    assert_eq!(
        untouched.id_number.map(|n| n.0).as_deref(),
        Some("33021320080715123X")
    );
    assert!(untouched.archived_at.is_none());

    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/reports/register-changes?from={long_ago}&to={long_ago}"),
            Some(&admin_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["summary"]["exited"], 1,
        "the archived exit still counts: {body}"
    );
    assert_eq!(body["rows"][0]["child_id"], json!(old));

    // The town's phones are told to purge the archived child; the recent
    // exit stays with the town.
    supervisor.pull_all(&app).await;
    assert!(supervisor.get(Entity::Child, old).is_none());
    assert!(supervisor.get(Entity::Visit, old_visit).is_none());
    assert!(supervisor.get(Entity::Child, recent).is_some());
    assert_eq!(supervisor.last_checksum, Some(supervisor.checksum()));

    // Audited once; a second run changes nothing.
    assert_eq!(archives(&app).await, 1);
    let again = retention::run(&app.state, today).await.expect("second run");
    assert_eq!(again.archived, 0);
    assert_eq!(archives(&app).await, 1);

    // Nothing brings the personal fields back through sync.
    let m = admin
        .update(Entity::Child, old)
        .set("address", json!("新地址"))
        .build();
    let answer = admin.push(&app, &[m]).await;
    assert!(
        matches!(answer.results[0], MutationResult::Rejected { .. }),
        "{:?}",
        answer.results
    );
    let still = child::Entity::find_by_id(old)
        .one(app.db())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.address, None);
}

async fn export(app: &TestApp, token: &str, child: Uuid) -> serde_json::Value {
    let (status, doc) = app
        .call(
            Method::GET,
            &format!("/api/v1/children/{child}/export"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    doc
}
