//! The photo store runs out of space or turns read-only mid-upload. The
//! store is a real 1 MiB tmpfs (`seedling_tests::disk`), so the errors are
//! the kernel's own `ENOSPC` and `EROFS`. The phone is answered 507
//! `insufficient_storage` with `Retry-After`; nothing is visible under the
//! photo's hash meanwhile; the bytes already received are kept; and once
//! space is back the same upload resumes and completes.

use reqwest::StatusCode;
use seedling_tests::disk::SmallDisk;
use seedling_tests::{Backend, Fixture, TestApp, assert_error};
use serde_json::{Value, json};

use crate::attachments::support::{
    download, photo, put_chunk, sha256_hex, status_of, stored_files,
};
use crate::on_both;

on_both!(
    a_full_disk_refuses_a_chunk_then_the_promotion_and_the_upload_resumes_when_space_is_back,
    a_read_only_disk_refuses_a_chunk_and_the_upload_resumes_when_it_is_writable_again,
);

const DISK_BYTES: u64 = 1024 * 1024;

/// A server whose photo store is a 1 MiB disk of its own.
async fn app_on_small_disk(backend: Backend) -> (TestApp, SmallDisk) {
    let mut disk = None;
    let app = TestApp::with_config(backend, |config| {
        disk = Some(SmallDisk::mount(
            &config.data_dir.join("attachments"),
            DISK_BYTES,
        ));
    })
    .await;
    (app, disk.expect("mounted"))
}

/// PUTs bytes `start..end` of `photo` and expects 507 with `Retry-After`;
/// returns the error body.
async fn refused_for_storage(
    app: &TestApp,
    token: &str,
    photo: &[u8],
    start: usize,
    end: usize,
) -> Value {
    let sha = sha256_hex(photo);
    let response = app
        .http
        .put(app.url(&format!("/api/v1/attachments/{sha}")))
        .bearer_auth(token)
        .header("content-type", "image/jpeg")
        .header(
            "content-range",
            format!("bytes {start}-{}/{}", end - 1, photo.len()),
        )
        .body(photo[start..end].to_vec())
        .send()
        .await
        .expect("upload sent");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().expect("ASCII").to_owned());
    let body: Value = response.json().await.expect("an error envelope");
    assert_error(
        status,
        &body,
        StatusCode::INSUFFICIENT_STORAGE,
        "insufficient_storage",
    );
    assert_eq!(retry_after.as_deref(), Some("60"), "{body}");
    body
}

/// Nothing is readable under the hash: not by GET, not by HEAD, and no
/// file carries its name in the store; the status says how far it got.
async fn nothing_visible(app: &TestApp, token: &str, photo: &[u8], received: usize) {
    let sha = sha256_hex(photo);
    let (status, body) = download(app, token, &sha).await;
    assert_error(
        status,
        &body.expect_err("no photo"),
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let head = app
        .http
        .head(app.url(&format!("/api/v1/attachments/{sha}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("HEAD sent");
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    let object = format!("objects/{}/{sha}", &sha[..2]);
    assert!(
        !stored_files(app).contains(&object),
        "{:?}",
        stored_files(app)
    );
    let now = status_of(app, token, &sha).await;
    assert_eq!(
        (now["status"].clone(), now["received_bytes"].clone()),
        (json!("pending"), json!(received)),
        "{now}"
    );
}

async fn a_full_disk_refuses_a_chunk_then_the_promotion_and_the_upload_resumes_when_space_is_back(
    backend: Backend,
) {
    let (app, disk) = app_on_small_disk(backend).await;
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let photo = photo(600_000, 3);
    let sha = sha256_hex(&photo);
    let half = 300_000;

    let (status, body) = put_chunk(&app, &token, &sha, &photo, 0, half).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The disk fills up: the second chunk cannot be kept.
    let filler = disk.fill();
    let refused = refused_for_storage(&app, &token, &photo, half, photo.len()).await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("full")),
        "{refused}"
    );
    nothing_visible(&app, &token, &photo, half).await;

    // Space comes back, but not enough to hold the chunks and the joined
    // photo at once: the chunk is kept, the promotion is refused.
    std::fs::remove_file(filler).expect("free the space");
    refused_for_storage(&app, &token, &photo, half, photo.len()).await;
    nothing_visible(&app, &token, &photo, photo.len()).await;

    // The disk is grown; the phone sends its last chunk again.
    disk.resize(4 * DISK_BYTES);
    let (status, body) = put_chunk(&app, &token, &sha, &photo, half, photo.len()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "complete", "{body}");
    let (status, bytes) = download(&app, &token, &sha).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes.expect("the photo") == photo, "the bytes round-trip");
    assert_eq!(
        stored_files(&app),
        vec![format!("objects/{}/{sha}", &sha[..2])],
        "the photo alone, no leftover chunk or staging file"
    );
    drop(app);
}

async fn a_read_only_disk_refuses_a_chunk_and_the_upload_resumes_when_it_is_writable_again(
    backend: Backend,
) {
    let (app, disk) = app_on_small_disk(backend).await;
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let photo = photo(200_000, 5);
    let sha = sha256_hex(&photo);
    let half = 100_000;

    let (status, body) = put_chunk(&app, &token, &sha, &photo, 0, half).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    disk.read_only();
    let refused = refused_for_storage(&app, &token, &photo, half, photo.len()).await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("read-only")),
        "{refused}"
    );
    nothing_visible(&app, &token, &photo, half).await;
    // The server keeps serving everything else.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        StatusCode::OK
    );

    disk.read_write();
    let (status, body) = put_chunk(&app, &token, &sha, &photo, half, photo.len()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "complete", "{body}");
    let (_, bytes) = download(&app, &token, &sha).await;
    assert!(bytes.expect("the photo") == photo, "the bytes round-trip");
    drop(app);
}
