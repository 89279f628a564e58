//! A pull never skips a change: a change that commits after a pull but got
//! a lower sequence number than the pull's cursor must still arrive
//! (DESIGN.md §2.7, the sequence-gap problem of concurrent writers).

use std::time::Duration;

use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
use seedling_server::repo::change_log::{self, NewChange, Placement, ScopeColumn};
use seedling_tests::{TestApp, on_both_backends};
use sync_core::record::Entity;
use uuid::Uuid;

on_both_backends!(a_change_committed_late_with_a_lower_sequence_is_not_skipped);

async fn a_change_committed_late_with_a_lower_sequence_is_not_skipped(app: TestApp) {
    let village = Uuid::new_v4();
    let scope = ScopeColumn::Village(village);
    let change = move |record_id| NewChange::Upsert {
        entity: Entity::Visit,
        record_id,
        version: 1,
        placement: Placement {
            village: Some(village),
            town: None,
            district: None,
        },
    };
    let (slow, fast) = (Uuid::new_v4(), Uuid::new_v4());
    let db = app.db().clone();

    // Writer 1 appends and stays open, as a push still working would.
    let slow_txn = db.begin().await.unwrap();
    change_log::append(&slow_txn, vec![change(slow)], chrono::Utc::now())
        .await
        .unwrap();
    let slow_seq = max_seq(&slow_txn).await;

    // Writer 2 appends and commits meanwhile (or waits for writer 1).
    let writer_db = db.clone();
    let fast_writer = tokio::spawn(async move {
        let txn = writer_db.begin().await.unwrap();
        change_log::append(&txn, vec![change(fast)], chrono::Utc::now())
            .await
            .unwrap();
        txn.commit().await.unwrap();
    });
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        while !fast_writer.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // A device pulls now, through the read pool as pulls do. Whatever it
    // sees must not run past writer 1's uncommitted sequence number, or its
    // cursor would skip writer 1's change.
    let seen_early = change_log::page(&app.state.reader, scope, 0, 100, None)
        .await
        .unwrap();
    // The mechanism: appends to the change log are serial (SQLite's one
    // writer; the change-log writer lock on PostgreSQL), so writer 2 waits
    // for writer 1 and a higher sequence number never commits first. Were
    // they not, writer 2 would be done by now and its change visible.
    assert!(
        !fast_writer.is_finished(),
        "a second writer committed while the first was still open"
    );
    assert!(seen_early.is_empty(), "{seen_early:?}");
    assert!(
        seen_early.iter().all(|row| row.seq < slow_seq),
        "a pull saw sequence {:?} while {slow_seq} was uncommitted",
        seen_early.iter().map(|r| r.seq).collect::<Vec<_>>()
    );
    let cursor = seen_early.last().map_or(0, |row| row.seq);

    slow_txn.commit().await.unwrap();
    fast_writer.await.unwrap();
    let after = change_log::page(&db, scope, cursor, 100, None)
        .await
        .unwrap();
    let delivered: Vec<Uuid> = seen_early
        .iter()
        .chain(&after)
        .map(|row| row.record_id)
        .collect();
    assert!(
        delivered.contains(&slow),
        "the slow writer's change was skipped"
    );
    assert!(delivered.contains(&fast));
    let seqs: Vec<i64> = after.iter().map(|row| row.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

async fn max_seq(db: &impl ConnectionTrait) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT MAX(seq) AS seq FROM change_log",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "seq").unwrap()
}
