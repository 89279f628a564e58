//! The audit trail is append-only and hash-chained: concurrent writers never
//! fork it, and an edited, deleted or truncated row is found by `verify`.

use sea_orm::{ConnectionTrait, TransactionTrait};
use seedling_server::service::audit::{self, Entry};
use seedling_tests::{TestApp, on_both_backends};
use serde_json::json;
use uuid::Uuid;

on_both_backends!(
    concurrent_writers_keep_one_unbroken_chain,
    an_edited_row_is_found,
    a_deleted_row_is_found,
    rows_deleted_from_the_end_are_found,
    a_rolled_back_write_leaves_no_trace,
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
