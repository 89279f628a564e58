//! `seedling audit verify`: exit status 0 on an intact audit log, 1 with the
//! broken row named when a row was edited behind the server's back.

mod common;

use common::{seedling, sqlite_in};
use sea_orm::{ConnectionTrait, Database};
use seedling_server::service::audit::{self, Entry};
use serde_json::json;

/// A fresh SQLite database in a temporary folder, migrated by `seedling migrate`.
async fn migrated() -> (tempfile::TempDir, String, sea_orm::DatabaseConnection) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = sqlite_in(dir.path());
    let status = seedling(dir.path(), &url)
        .arg("migrate")
        .status()
        .await
        .expect("run seedling migrate");
    assert!(status.success());
    let db = Database::connect(&url).await.expect("open the database");
    (dir, url, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_exits_nonzero_on_a_tampered_row() {
    let (dir, url, db) = migrated().await;
    for n in 0..3 {
        audit::record(
            &db,
            Entry {
                actor_id: None,
                action: "report.export",
                entity: None,
                record_id: None,
                detail: json!({ "report": "overdue", "n": n }),
            },
        )
        .await
        .expect("append an audit row");
    }

    let verify = |dir: &std::path::Path| {
        let mut command = seedling(dir, &url);
        command.args(["audit", "verify"]);
        command
    };
    let intact = verify(dir.path()).output().await.expect("run audit verify");
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );

    db.execute_unprepared(
        "UPDATE audit_log SET detail = '{\"report\":\"coverage\",\"n\":1}' WHERE id = 2",
    )
    .await
    .expect("tamper with a row");
    let tampered = verify(dir.path()).output().await.expect("run audit verify");
    let stderr = String::from_utf8_lossy(&tampered.stderr);
    assert_eq!(tampered.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("row 2 was changed after it was written"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_child_lists_the_rows_naming_that_child() {
    let (dir, url, db) = migrated().await;
    let (child, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (action, children) in [
        ("sync.push", vec![child, other]),
        ("sync.pull", vec![other]),
        ("sync.pull", vec![child]),
    ] {
        audit::record(
            &db,
            Entry {
                actor_id: None,
                action,
                entity: Some("child"),
                record_id: None,
                detail: json!({ "children": children }),
            },
        )
        .await
        .expect("append an audit row");
    }
    let listed = seedling(dir.path(), &url)
        .args(["audit", "child", &child.to_string()])
        .output()
        .await
        .expect("run audit child");
    assert!(listed.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let found: Vec<_> = lines
        .iter()
        .map(|l| (l["id"].clone(), l["action"].clone()))
        .collect();
    assert_eq!(
        found,
        [
            (json!(1), json!("sync.push")),
            (json!(3), json!("sync.pull"))
        ]
    );
}
