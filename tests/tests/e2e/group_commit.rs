//! Group commit: pushes that wait while another commits are committed
//! together, each answered with exactly its own outcomes, exactly once, and
//! a group that fails never takes a push down with it.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{
    ColumnTrait, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, TransactionTrait,
};
use seedling_server::entity::{applied_mutation, audit_log, change_log, visit};
use seedling_tests::{Backend, Device, Fixture, TestApp, on_both_backends, wait_until};
use serde_json::{Value, json};
use sync_core::protocol::Mutation;
use uuid::Uuid;

on_both_backends!(
    two_pushes_with_the_same_mutation_id_in_one_group_apply_once,
    pushes_committed_together_are_each_answered_and_audited_alone,
);

fn yesterday_at(hour: u32) -> String {
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    format!("{day}T{hour:02}:00:00+08:00")
}

fn visits(
    phone: &mut Device,
    child: Uuid,
    village: Uuid,
    hours: std::ops::Range<u32>,
) -> Vec<Mutation> {
    hours
        .map(|hour| {
            phone
                .new_visit(child, village, &yesterday_at(hour))
                .1
                .set("observations", json!({ "living": "生活正常" }))
                .build()
        })
        .collect()
}

/// Another connection takes the database's writer (SQLite's write lock,
/// PostgreSQL's change-log writer lock), so the next push waits inside
/// its group until [`release`] and the pushes after it queue.
async fn hold_the_writer(app: &TestApp) -> (DatabaseConnection, DatabaseTransaction) {
    let holder_db = Database::connect(&app.state.config.database_url)
        .await
        .expect("connect");
    let holder = holder_db.begin().await.expect("a transaction");
    holder
        .execute_unprepared("UPDATE sync_locks SET taken = taken + 1 WHERE name = 'change_log'")
        .await
        .expect("take the writer");
    (holder_db, holder)
}

/// Waits until a push's group is committing (stuck behind the held
/// writer) with nothing left waiting.
async fn wait_committing(app: &TestApp) {
    wait_until("the first push is committing", || async {
        app.state.pushes.committing() && app.state.pushes.waiting() == 0
    })
    .await;
}

/// Waits until `n` pushes queue behind the group that is committing.
async fn wait_queued(app: &TestApp, n: usize) {
    wait_until("the other pushes queue behind it", || async {
        app.state.pushes.waiting() == n
    })
    .await;
}

type Sent = tokio::task::JoinHandle<(StatusCode, Option<String>, Value)>;

async fn answers(sent: Vec<Sent>) -> Vec<Value> {
    let mut out = Vec::new();
    for task in sent {
        let (status, _, body) = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("answered in time")
            .expect("the push task");
        assert_eq!(status, StatusCode::OK, "{body}");
        out.push(body);
    }
    out
}

/// A phone's resend racing its original lands in the same group: the
/// second copy finds the first's stored outcome inside the group, so both
/// are answered alike, the visit is stored once and logged once, and the
/// group still commits as one.
async fn two_pushes_with_the_same_mutation_id_in_one_group_apply_once(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child_a1 = admin.create_child(&app, fixture.village_a1, "林小川").await;
    let child_a2 = admin.create_child(&app, fixture.village_a2, "林小山").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let mut other = Device::sign_in(&app, "director-a2").await;
    let first = visits(&mut other, child_a2, fixture.village_a2, 8..9);
    let resent = visits(&mut phone, child_a1, fixture.village_a1, 8..11);
    let (groups_before, _) = app.state.pushes.grouped();

    let (holder_db, holder) = hold_the_writer(&app).await;
    let mut sent = vec![other.push_in_background(&app, &first)];
    wait_committing(&app).await;
    sent.push(phone.push_in_background(&app, &resent));
    sent.push(phone.push_in_background(&app, &resent));
    wait_queued(&app, 2).await;
    holder.rollback().await.expect("release the writer");
    let answered = answers(sent).await;

    assert_eq!(
        answered[1]["results"], answered[2]["results"],
        "the original and its resend answer the same outcomes"
    );
    for result in answered[1]["results"].as_array().expect("results") {
        assert_eq!(result["status"], "applied", "{result}");
        assert_eq!(result["version"], 1, "{result}");
    }
    let (groups_after, _) = app.state.pushes.grouped();
    assert_eq!(
        groups_after,
        groups_before + 1,
        "the original and its resend were committed as one group"
    );
    assert_eq!(app.state.pushes.failed_groups(), 0);
    for mutation in &resent {
        let stored = visit::Entity::find_by_id(mutation.record_id)
            .count(app.db())
            .await
            .expect("count visits");
        assert_eq!(stored, 1);
        let outcomes = applied_mutation::Entity::find()
            .filter(applied_mutation::Column::MutationId.eq(mutation.mutation_id))
            .count(app.db())
            .await
            .expect("count outcomes");
        assert_eq!(outcomes, 1, "one stored outcome per mutation id");
        let logged = change_log::Entity::find()
            .filter(change_log::Column::RecordId.eq(mutation.record_id))
            .count(app.db())
            .await
            .expect("count changes");
        assert_eq!(logged, 1, "the visit is in the change log once");
    }
    let _ = holder_db.close().await;
}

/// Two phones of two villages committed in one group: each answer holds
/// exactly that phone's mutations, in its order, and each push has its own
/// audit entry naming its own caller.
async fn pushes_committed_together_are_each_answered_and_audited_alone(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child_a1 = admin.create_child(&app, fixture.village_a1, "周小禾").await;
    let child_a2 = admin.create_child(&app, fixture.village_a2, "周小苗").await;
    let child_b1 = admin.create_child(&app, fixture.village_b1, "周小麦").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let mut a2 = Device::sign_in(&app, "director-a2").await;
    let mut b1 = Device::sign_in(&app, "director-b1").await;
    let first = visits(&mut b1, child_b1, fixture.village_b1, 8..9);
    let from_a1 = visits(&mut a1, child_a1, fixture.village_a1, 8..10);
    let from_a2 = visits(&mut a2, child_a2, fixture.village_a2, 8..11);
    let audited_before = pushes_audited(&app).await;
    let (groups_before, _) = app.state.pushes.grouped();

    let (holder_db, holder) = hold_the_writer(&app).await;
    let mut sent = vec![b1.push_in_background(&app, &first)];
    wait_committing(&app).await;
    sent.push(a1.push_in_background(&app, &from_a1));
    sent.push(a2.push_in_background(&app, &from_a2));
    wait_queued(&app, 2).await;
    holder.rollback().await.expect("release the writer");
    let answered = answers(sent).await;
    assert_eq!(app.state.pushes.grouped().0, groups_before + 1);

    for (answer, sent) in answered[1..].iter().zip([&from_a1, &from_a2]) {
        let ids: Vec<String> = answer["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["mutation_id"].as_str().expect("id").to_owned())
            .collect();
        let expected: Vec<String> = sent.iter().map(|m| m.mutation_id.to_string()).collect();
        assert_eq!(ids, expected, "each push is answered with its own results");
    }
    let audited = pushes_audited(&app).await;
    let new: Vec<&(Option<Uuid>, i64)> = audited
        .iter()
        .filter(|entry| !audited_before.contains(entry))
        .collect();
    for (phone, visits) in [(&a1, 2), (&a2, 3), (&b1, 1)] {
        let entries: Vec<_> = new
            .iter()
            .filter(|(actor, _)| *actor == Some(phone.user_id))
            .collect();
        assert_eq!(entries.len(), 1, "one audit entry per push: {new:?}");
        assert_eq!(entries[0].1, visits, "{new:?}");
    }
    let _ = holder_db.close().await;
}

/// Each `sync.push` audit entry: its actor and how many visits it wrote.
async fn pushes_audited(app: &TestApp) -> Vec<(Option<Uuid>, i64)> {
    audit_log::Entity::find()
        .filter(audit_log::Column::Action.eq("sync.push"))
        .all(app.db())
        .await
        .expect("read the audit log")
        .into_iter()
        .map(|entry| {
            let detail = entry.detail.unwrap_or_default();
            let visits = detail["records"]["visit"].as_i64().unwrap_or(0);
            (entry.actor_id, visits)
        })
        .collect()
}

/// A group whose transaction fails (here: another session stored one of
/// its mutation ids meanwhile, so the group's insert meets a unique key)
/// is committed again push by push: the neighbour is applied, the clashing
/// push finds the stored outcome, and no push is answered an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_fails_commits_each_push_alone() {
    let app = TestApp::new(Backend::Postgres).await;
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child_a1 = admin.create_child(&app, fixture.village_a1, "吴小溪").await;
    let child_a2 = admin.create_child(&app, fixture.village_a2, "吴小岭").await;
    let child_b1 = admin.create_child(&app, fixture.village_b1, "吴小泉").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let mut a2 = Device::sign_in(&app, "director-a2").await;
    let mut b1 = Device::sign_in(&app, "director-b1").await;
    let first = visits(&mut b1, child_b1, fixture.village_b1, 8..9);
    let clashing = visits(&mut a1, child_a1, fixture.village_a1, 8..9);
    let neighbour = visits(&mut a2, child_a2, fixture.village_a2, 8..10);

    // A second session stores an outcome under the clashing mutation id and
    // keeps its transaction open, so the group's insert of that id waits on
    // it and then fails when it commits.
    let url = &app.state.config.database_url;
    let clash_db = Database::connect(url).await.expect("connect");
    let clash = clash_db.begin().await.expect("a transaction");
    let stored_outcome = json!({
        "status": "applied",
        "mutation_id": clashing[0].mutation_id,
        "record_id": clashing[0].record_id,
        "version": 1,
    });
    clash
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "INSERT INTO applied_mutations \
             (mutation_id, device_id, user_id, entity, record_id, outcome, created_at) \
             VALUES ($1, $2, $3, 'visit', $4, $5, now())",
            [
                clashing[0].mutation_id.into(),
                a1.id.into(),
                a1.user_id.into(),
                clashing[0].record_id.into(),
                stored_outcome.clone().into(),
            ],
        ))
        .await
        .expect("store the clashing outcome");

    let (holder_db, holder) = hold_the_writer(&app).await;
    let mut sent = vec![b1.push_in_background(&app, &first)];
    wait_committing(&app).await;
    sent.push(a1.push_in_background(&app, &clashing));
    sent.push(a2.push_in_background(&app, &neighbour));
    wait_queued(&app, 2).await;
    holder.rollback().await.expect("release the writer");
    let observer = Database::connect(url).await.expect("connect");
    wait_until("the group waits on the clashing outcome", || async {
        observer
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT COUNT(*) AS n FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            ))
            .await
            .expect("pg_stat_activity")
            .and_then(|row| row.try_get::<i64>("", "n").ok())
            .is_some_and(|n| n > 0)
    })
    .await;
    clash.commit().await.expect("commit the clashing outcome");
    let answered = answers(sent).await;

    assert_eq!(app.state.pushes.failed_groups(), 1, "the group failed once");
    let answer = &answered[1]["results"][0];
    assert_eq!(answer["status"], "applied", "{answer}");
    assert_eq!(
        answer["mutation_id"], stored_outcome["mutation_id"],
        "the clashing push is answered the stored outcome"
    );
    assert!(
        visit::Entity::find_by_id(clashing[0].record_id)
            .one(app.db())
            .await
            .expect("read the visit")
            .is_none(),
        "the stored outcome stands: the group's write of it was rolled back"
    );
    for result in answered[2]["results"].as_array().expect("results") {
        assert_eq!(
            result["status"], "applied",
            "the neighbour is applied: {result}"
        );
    }
    for mutation in &neighbour {
        let stored = visit::Entity::find_by_id(mutation.record_id)
            .count(app.db())
            .await
            .expect("count visits");
        assert_eq!(stored, 1);
    }
    let _ = observer.close().await;
    let _ = holder_db.close().await;
    let _ = clash_db.close().await;
}
