//! The audit trail is append-only and hash-chained: concurrent writers never
//! fork it, and an edited, deleted or truncated row is found by `verify`.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, QueryFilter, TransactionTrait};
use seedling_server::entity::audit_log;
use seedling_server::service::audit::{self, Entry};
use seedling_tests::{Device, Fixture, TestApp, on_both_backends, wait_until};
use serde_json::{Value, json};
use sync_core::protocol::PROTOCOL_VERSION;
use uuid::Uuid;

on_both_backends!(
    concurrent_writers_keep_one_unbroken_chain,
    an_edited_row_is_found,
    a_deleted_row_is_found,
    rows_deleted_from_the_end_are_found,
    a_rolled_back_write_leaves_no_trace,
    reads_waiting_together_are_appended_in_one_batch_each_with_its_own_entry,
);

fn entry(n: usize) -> Entry {
    Entry {
        actor_id: Some(Uuid::now_v7()),
        action: "child.read",
        entity: Some("child"),
        record_id: Some(Uuid::now_v7()),
        detail: json!({ "n": n, "fields": ["name", "birth_date"], "note": "王小明 'OR 1=1 --" }),
    }
}

/// Appends `n` rows, each in its own transaction, up to eight at once.
async fn append(app: &TestApp, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let db = app.state.db.clone();
        tasks.spawn(async move {
            let txn = db.begin().await?;
            audit::record(&txn, entry(i)).await?;
            txn.commit().await
        });
        if tasks.len() >= 8 {
            tasks.join_next().await.unwrap().unwrap().expect("append");
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().expect("append");
    }
}

async fn verify(app: &TestApp) -> audit::VerifyReport {
    audit::verify(&app.state.db).await.expect("verify")
}

async fn concurrent_writers_keep_one_unbroken_chain(app: TestApp) {
    append(&app, 40).await;
    let report = verify(&app).await;
    assert!(report.intact, "{report:?}");
    assert_eq!((report.rows, report.appended), (40, 40));
}

async fn an_edited_row_is_found(app: TestApp) {
    append(&app, 5).await;
    app.state
        .db
        .execute_unprepared("UPDATE audit_log SET action = 'child.write' WHERE id = 3")
        .await
        .unwrap();
    let report = verify(&app).await;
    assert!(!report.intact);
    let found: Vec<_> = report.problems.iter().map(|p| (p.id, p.kind)).collect();
    assert_eq!(found, [(Some(3), "edited")]);
}

async fn a_deleted_row_is_found(app: TestApp) {
    append(&app, 5).await;
    app.state
        .db
        .execute_unprepared("DELETE FROM audit_log WHERE id = 2")
        .await
        .unwrap();
    let report = verify(&app).await;
    let found: Vec<_> = report.problems.iter().map(|p| (p.id, p.kind)).collect();
    assert_eq!(found, [(Some(3), "unlinked"), (None, "missing")]);
}

async fn rows_deleted_from_the_end_are_found(app: TestApp) {
    append(&app, 5).await;
    app.state
        .db
        .execute_unprepared("DELETE FROM audit_log WHERE id >= 4")
        .await
        .unwrap();
    let report = verify(&app).await;
    let found: Vec<_> = report.problems.iter().map(|p| (p.id, p.kind)).collect();
    assert_eq!(found, [(None, "missing")]);
    assert_eq!((report.rows, report.appended), (3, 5));
}

async fn a_rolled_back_write_leaves_no_trace(app: TestApp) {
    append(&app, 2).await;
    let txn = app.state.db.begin().await.unwrap();
    audit::record(&txn, entry(99)).await.unwrap();
    txn.rollback().await.unwrap();
    append(&app, 1).await;
    let report = verify(&app).await;
    assert!(report.intact, "{report:?}");
    assert_eq!((report.rows, report.appended), (3, 3));
}

/// Three phones pull while another session holds the audit writer: the
/// first pull's entry waits inside its batch, the other two queue behind
/// it and are then appended together. Each pull is answered only once its
/// own entry (naming its caller and the children it carried) is on the
/// trail, and the chain stays whole.
async fn reads_waiting_together_are_appended_in_one_batch_each_with_its_own_entry(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let mut phones = Vec::new();
    for (username, village) in [
        ("director-a1", fixture.village_a1),
        ("director-a2", fixture.village_a2),
        ("director-b1", fixture.village_b1),
    ] {
        let child = admin.create_child(&app, village, "吴小禾").await;
        phones.push((Device::sign_in(&app, username).await, child));
    }
    let queue = app.state.read_audits.clone();
    let (batches_before, _) = queue.batched();

    let holder_db = Database::connect(&app.state.config.database_url)
        .await
        .expect("connect");
    let holder = holder_db.begin().await.expect("a transaction");
    holder
        .execute_unprepared("UPDATE sync_locks SET taken = taken WHERE name = 'audit_log'")
        .await
        .expect("take the audit writer");
    let pull = |phone: &Device| {
        let (http, token) = (app.http.clone(), phone.token.clone());
        let url = app.url(&format!(
            "/api/v1/sync/pull?protocol_version={PROTOCOL_VERSION}"
        ));
        tokio::spawn(async move {
            let response = http
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("an answer");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        })
    };
    let mut sent = vec![pull(&phones[0].0)];
    wait_until("the first read is being appended", || async {
        queue.committing() && queue.waiting() == 0
    })
    .await;
    sent.push(pull(&phones[1].0));
    sent.push(pull(&phones[2].0));
    wait_until("the other reads queue behind it", || async {
        queue.waiting() == 2
    })
    .await;
    for task in &sent {
        assert!(
            !task.is_finished(),
            "a pull answered before its entry was on the trail"
        );
    }
    holder.rollback().await.expect("release the audit writer");
    for task in sent {
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("answered in time")
            .expect("the pull task");
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        queue.batched().0,
        batches_before + 1,
        "the two queued reads went together"
    );

    for (phone, child) in &phones {
        let entries = audit_log::Entity::find()
            .filter(audit_log::Column::Action.eq("sync.pull"))
            .filter(audit_log::Column::ActorId.eq(phone.user_id))
            .all(app.db())
            .await
            .expect("read the trail");
        assert_eq!(entries.len(), 1, "one entry per pull: {entries:?}");
        let detail = entries[0].detail.clone().unwrap_or_default();
        assert!(
            detail["children"]
                .as_array()
                .is_some_and(|ids| ids.contains(&json!(child))),
            "{detail}"
        );
    }
    let report = verify(&app).await;
    assert!(report.intact, "{report:?}");
    assert_eq!(report.rows, report.appended, "{report:?}");
    let _ = holder_db.close().await;
}
