//! Identity-card numbers at rest: sealed in the database, and a key
//! rotation — add a key, make it current, `seedling reseal-id-numbers`,
//! drop the old key — leaves every number readable under the new key only.

mod common;

use common::{seed_demo_with, seedling, sqlite_in};
use sea_orm::{ConnectionTrait, Database, Statement};

const K1: &str = "a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZSE=";
const K2: &str = "a2V5LXR3by1rZXktdHdvLWtleS10d28ta2V5LXR3byE=";

async fn stored_numbers(url: &str) -> Vec<String> {
    let db = Database::connect(url).await.expect("open the database");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id_number FROM children WHERE id_number IS NOT NULL",
        ))
        .await
        .expect("read stored numbers");
    rows.iter()
        .map(|row| row.try_get::<String>("", "id_number").unwrap())
        .collect()
}

async fn reseal(dir: &std::path::Path, url: &str, keys: &str, current: &str) -> (bool, String) {
    let output = seedling(dir, url)
        .env("SEEDLING_ID_NUMBER_KEYS", keys)
        .env("SEEDLING_ID_NUMBER_KEY_ID", current)
        .arg("reseal-id-numbers")
        .output()
        .await
        .expect("run seedling reseal-id-numbers");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_are_sealed_and_survive_a_key_rotation() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let url = sqlite_in(dir.path());
    seed_demo_with(
        dir.path(),
        &url,
        &[
            ("SEEDLING_ID_NUMBER_KEYS", &format!("{{k1=\"{K1}\"}}")),
            ("SEEDLING_ID_NUMBER_KEY_ID", "k1"),
        ],
    )
    .await;

    let sealed = stored_numbers(&url).await;
    assert!(sealed.len() > 900, "the demo children have numbers");
    assert!(
        sealed.iter().all(|n| n.starts_with("v1:k1:")),
        "{:?}",
        &sealed[..2]
    );
    assert!(
        sealed.iter().all(|n| !n.contains("330213")),
        "no number is stored in the clear"
    );

    let both = format!("{{k1=\"{K1}\",k2=\"{K2}\"}}");
    let (ok, report) = reseal(dir.path(), &url, &both, "k2").await;
    assert!(ok, "{report}");
    assert!(
        report.contains(&format!("\"resealed\": {}", sealed.len())),
        "{report}"
    );
    let resealed = stored_numbers(&url).await;
    assert!(resealed.iter().all(|n| n.starts_with("v1:k2:")));

    // The old key can go: everything opens under k2 alone...
    let (ok, report) = reseal(dir.path(), &url, &format!("{{k2=\"{K2}\"}}"), "k2").await;
    assert!(ok, "{report}");
    assert!(report.contains("\"resealed\": 0"), "{report}");
    // ...and nothing opens under k1 alone.
    let (ok, report) = reseal(dir.path(), &url, &format!("{{k1=\"{K1}\"}}"), "k1").await;
    assert!(!ok);
    assert!(
        report.contains("key `k2`, which is not configured"),
        "{report}"
    );
}
