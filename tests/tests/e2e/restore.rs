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
use seedling_server::entity::visit;
use seedling_server::service::backup;
use seedling_tests::{Backend, Device, Fixture, TestApp, fixture::PASSWORD, on_both_backends};
use serde_json::json;
use sync_core::record::Entity;
use sync_core::rules::{Actor, Role};
use uuid::Uuid;

on_both_backends!(after_a_restore_the_phones_bring_back_every_visit_the_server_lost);

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
