//! Backup and restore (docs/OPERATIONS.md, "Backup and restore";
//! docs/SYNC-PROTOCOL.md, "After a restore"). A restored server is behind
//! its phones: they hold visits it acknowledged after the backup and then
//! lost. Its new epoch tells them at their next pull; each sends back its
//! own writes the server lacks, then repairs its store and pulls on. Every
//! visit comes back, none doubled, and the phones end in step.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use seedling_client::{
    HttpTransport, Jitter, NewVisit, RecordingSleeper, Store, SyncOptions, Syncer,
    sim::net::sign_in,
};
use seedling_server::entity::conflict;
use seedling_server::entity::visit;
use seedling_server::service::backup;
use seedling_tests::{Backend, Device, Fixture, TestApp, fixture::PASSWORD, on_both_backends};
use serde_json::json;
use sync_core::record::Entity;
use sync_core::rules::{Actor, Role};
use uuid::Uuid;

on_both_backends!(
    after_a_restore_the_phones_bring_back_every_visit_the_server_lost,
    an_edit_still_in_the_outbox_at_the_restore_applies_after_it,
    a_push_with_a_cursor_from_before_the_restore_applies_nothing,
);

/// A phone: its store's file and its session.
struct Phone {
    path: PathBuf,
    token: String,
}

impl Phone {
    async fn sign_in(app: &TestApp, dir: &Path, username: &str) -> Self {
        let path = dir.join(format!("{username}.db"));
        let store = Store::open(&path).await.expect("open the phone's store");
        let device_id = store.device_id().await.expect("device id");
        let session = sign_in(
            &reqwest::Client::new(),
            &app.base_url,
            username,
            "phone",
            PASSWORD,
            device_id,
        )
        .await
        .expect("sign in");
        store
            .sign_in(Actor::new(session.user.id, Role::Director))
            .await
            .expect("store the account");
        store.close().await;
        Self {
            path,
            token: session.access_token,
        }
    }

    /// The phone's sync loop against the server as it is now.
    async fn syncer(&self, app: &TestApp) -> Syncer<HttpTransport, RecordingSleeper> {
        let store = Store::open(&self.path)
            .await
            .expect("open the phone's store");
        let transport =
            HttpTransport::new(&app.base_url, self.token.clone(), Duration::from_secs(30))
                .expect("a transport");
        Syncer::new(
            store,
            transport,
            RecordingSleeper::default(),
            Jitter::seeded(7),
            SyncOptions::default(),
        )
    }

    async fn record_visit(&self, app: &TestApp, child: Uuid, village: Uuid, hour: u32) -> Uuid {
        let syncer = self.syncer(app).await;
        let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
        let id = syncer
            .store()
            .create_visit(NewVisit {
                child_id: child,
                village_id: village,
                kind: "home_visit".to_owned(),
                visited_at: format!("{day}T{hour:02}:00:00+08:00"),
                location: None,
                observations: Some(json!({"living": "生活正常"})),
                review_status: Some("submitted".to_owned()),
            })
            .await
            .expect("record a visit");
        let report = syncer.sync().await.expect("sync");
        assert_eq!(report.applied, 1, "{report:?}");
        id
    }
}

/// How the test backs up and restores each database.
enum Backup {
    Sqlite(PathBuf),
    Postgres(PathBuf),
}

async fn back_up(app: &TestApp, dir: &Path) -> Backup {
    match app.backend {
        Backend::Sqlite => {
            // While the server runs: VACUUM INTO is one consistent snapshot.
            let path = dir.join("backup.db");
            let report = backup::backup(app.db(), &path).await.expect("a backup");
            assert!(report.bytes > 0);
            Backup::Sqlite(path)
        }
        Backend::Postgres => {
            let path = dir.join("backup.sql");
            let status = std::process::Command::new("pg_dump")
                .args(["--no-owner", "--file"])
                .arg(&path)
                .arg(&app.state.config.database_url)
                .status()
                .expect("run pg_dump");
            assert!(status.success(), "pg_dump failed");
            Backup::Postgres(path)
        }
    }
}

/// What an operator does with every server stopped: put the backup back,
/// then mark the database restored.
async fn restore(app: &mut TestApp, from: &Backup) {
    let from = match from {
        Backup::Sqlite(path) | Backup::Postgres(path) => path.clone(),
    };
    let postgres = app.backend == Backend::Postgres;
    app.restart_around(|config| async move {
        let url = config.effective_database_url();
        if postgres {
            let (server, name) = url.rsplit_once('/').expect("a database name");
            let admin = sea_orm::Database::connect(seedling_tests::postgres_admin_url())
                .await
                .expect("connect as admin");
            admin
                .execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .await
                .expect("drop the damaged database");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create it empty");
            let _ = admin.close().await;
            let status = std::process::Command::new("psql")
                .args(["--quiet", "-v", "ON_ERROR_STOP=1", "--file"])
                .arg(&from)
                .arg(format!("{server}/{name}"))
                .stdout(std::process::Stdio::null())
                .status()
                .expect("run psql");
            assert!(status.success(), "psql failed to load the backup");
        } else {
            let file = backup::sqlite_file(&url).expect("a SQLite file");
            backup::replace_sqlite_file(&file, &from)
                .await
                .expect("put the backup in place");
        }
        let db = seedling_server::repo::connect(&url, Some(1))
            .await
            .expect("open the restored database");
        backup::mark_restored(&db).await.expect("mark it restored");
        let _ = db.close().await;
    })
    .await;
}

async fn after_a_restore_the_phones_bring_back_every_visit_the_server_lost(mut app: TestApp) {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let first_child = admin.create_child(&app, fixture.village_a1, "孙小禾").await;
    let second_child = admin.create_child(&app, fixture.village_a2, "周小满").await;
    let one = Phone::sign_in(&app, dir.path(), "director-a1").await;
    let two = Phone::sign_in(&app, dir.path(), "director-a2").await;
    for phone in [&one, &two] {
        phone.syncer(&app).await.sync().await.expect("bootstrap");
    }
    let before = one
        .record_visit(&app, first_child, fixture.village_a1, 9)
        .await;

    let saved = back_up(&app, dir.path()).await;

    // Acknowledged after the backup: two new visits and an edit.
    let after_one = one
        .record_visit(&app, first_child, fixture.village_a1, 11)
        .await;
    let after_two = two
        .record_visit(&app, second_child, fixture.village_a2, 10)
        .await;
    {
        let syncer = one.syncer(&app).await;
        syncer
            .store()
            .set_field(Entity::Visit, before, "follow_up", json!("下周再访"))
            .await
            .expect("an edit");
        syncer.sync().await.expect("sync the edit");
    }
    let visits = [before, after_one, after_two];

    restore(&mut app, &saved).await;
    let lost = visit::Entity::find()
        .filter(visit::Column::Id.is_in(visits))
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(
        lost, 1,
        "the restored server holds only the visit before the backup"
    );

    for (phone, resent) in [(&one, 2), (&two, 1)] {
        let report = phone
            .syncer(&app)
            .await
            .sync()
            .await
            .expect("the sync after the restore");
        assert!(report.recovered, "{report:?}");
        assert_eq!(report.resent, resent, "{report:?}");
        assert_eq!(report.diverged, None, "{report:?}");
    }
    for id in visits {
        let count = visit::Entity::find_by_id(id).count(app.db()).await.unwrap();
        assert_eq!(count, 1, "visit {id} is back, once");
    }
    let edited = visit::Entity::find_by_id(before)
        .one(app.db())
        .await
        .unwrap()
        .expect("the visit");
    assert_eq!(
        edited.follow_up.as_deref(),
        Some("下周再访"),
        "the edit is back"
    );

    // In step now: the next sync recovers nothing and agrees.
    for phone in [&one, &two] {
        let report = phone.syncer(&app).await.sync().await.expect("a later sync");
        assert!(!report.recovered, "{report:?}");
        assert_eq!(report.diverged, None, "{report:?}");
    }
    // A phone that bootstraps now sees every visit of its village.
    let mut fresh = Device::sign_in(&app, "director-a1").await;
    fresh.pull_all(&app).await;
    for id in [before, after_one] {
        assert!(fresh.get(Entity::Visit, id).is_some(), "{id}");
    }
}

/// The phone pushes before it pulls, so an edit still in its outbox when
/// the server was restored reaches the restored server first: made on
/// versions the server lost (a visit it no longer holds, another at an
/// earlier version). The push carries the phone's cursor, so the server
/// refuses it (`server_restored`) before applying anything; the phone
/// recovers first, then sends the edit on the server's versions: it
/// applies, and nothing lands in the conflict queue.
async fn an_edit_still_in_the_outbox_at_the_restore_applies_after_it(mut app: TestApp) {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "孙小禾").await;
    let phone = Phone::sign_in(&app, dir.path(), "director-a1").await;
    phone.syncer(&app).await.sync().await.expect("bootstrap");
    let before = phone.record_visit(&app, child, fixture.village_a1, 9).await;

    let saved = back_up(&app, dir.path()).await;

    // Acknowledged after the backup: a new visit, and an edit of the older
    // one (its server version goes from 1 to 2).
    let after = phone
        .record_visit(&app, child, fixture.village_a1, 11)
        .await;
    {
        let syncer = phone.syncer(&app).await;
        syncer
            .store()
            .set_field(Entity::Visit, before, "follow_up", json!("下周再访"))
            .await
            .expect("an edit");
        syncer.sync().await.expect("sync the edit");
        // Then, offline until after the restore: an edit of each.
        syncer
            .store()
            .set_field(
                Entity::Visit,
                before,
                "observations",
                json!({"living": "缺冬衣"}),
            )
            .await
            .expect("an offline edit");
        syncer
            .store()
            .set_field(Entity::Visit, after, "follow_up", json!("联系学校"))
            .await
            .expect("an offline edit");
        assert_eq!(syncer.store().pending().await.unwrap().len(), 2);
    }

    restore(&mut app, &saved).await;

    let syncer = phone.syncer(&app).await;
    let report = syncer.sync().await.expect("the sync after the restore");
    assert!(report.recovered, "{report:?}");
    assert_eq!(report.diverged, None, "{report:?}");
    assert_eq!(
        syncer.store().rejections().await.unwrap(),
        vec![],
        "no edit refused"
    );
    assert_eq!(syncer.store().pending().await.unwrap().len(), 0, "all sent");
    let conflicts = conflict::Entity::find().count(app.db()).await.unwrap();
    assert_eq!(conflicts, 0, "nothing in the conflict queue");
    let stored = |id: Uuid| {
        let db = app.db().clone();
        async move {
            visit::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
                .expect("the visit is back")
        }
    };
    let older = stored(before).await;
    assert_eq!(older.follow_up.as_deref(), Some("下周再访"));
    assert_eq!(older.observations, Some(json!({"living": "缺冬衣"})));
    assert_eq!(stored(after).await.follow_up.as_deref(), Some("联系学校"));

    let again = syncer.sync().await.expect("a later sync");
    assert!(!again.recovered, "{again:?}");
    assert_eq!(again.diverged, None, "{again:?}");
}

/// A push of one new visit on the `day` of November 2026, carrying `cursor`.
fn push_with_cursor(
    phone: &mut Device,
    child: Uuid,
    village: Uuid,
    day: u32,
    cursor: &str,
) -> (Uuid, serde_json::Value) {
    let (id, visit) = phone.new_visit(child, village, &format!("2026-11-{day}T10:00:00+08:00"));
    let body = json!({
        "protocol_version": 1,
        "device_id": phone.id,
        "device_hlc": phone.tick(),
        "mutations": [visit.build()],
        "cursor": cursor,
    });
    (id, body)
}

/// The push's gate on the wire: a cursor made before the restore refuses
/// the whole push (409 `server_restored`) and applies nothing; a cursor the
/// server cannot read is ignored; the manifest's cursor is accepted.
async fn a_push_with_a_cursor_from_before_the_restore_applies_nothing(mut app: TestApp) {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "孙小禾").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;
    let old = phone.cursor.clone().expect("a cursor");
    let saved = back_up(&app, dir.path()).await;
    restore(&mut app, &saved).await;

    let (refused, body) = push_with_cursor(&mut phone, child, fixture.village_a1, 26, &old);
    let (status, answer) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/sync/push",
            Some(&phone.token),
            Some(body),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "server_restored", "{answer}");
    let stored = visit::Entity::find_by_id(refused)
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing applied");

    let (ignored, body) =
        push_with_cursor(&mut phone, child, fixture.village_a1, 27, "not-a-cursor");
    let (status, answer) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/sync/push",
            Some(&phone.token),
            Some(body),
        )
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::OK,
        "a push never fails for its cursor: {answer}"
    );
    assert_eq!(answer["results"][0]["status"], "applied", "{answer}");
    let stored = visit::Entity::find_by_id(ignored)
        .count(app.db())
        .await
        .unwrap();
    assert_eq!(stored, 1);

    let (status, manifest) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/sync/manifest?protocol_version=1",
            Some(&phone.token),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{manifest}");
    let fresh = manifest["cursor"]
        .as_str()
        .expect("the manifest's cursor")
        .to_owned();
    assert_ne!(fresh, old);
    let (_, body) = push_with_cursor(&mut phone, child, fixture.village_a1, 28, &fresh);
    let (status, answer) = app
        .call(
            reqwest::Method::POST,
            "/api/v1/sync/push",
            Some(&phone.token),
            Some(body),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["status"], "applied", "{answer}");
}
