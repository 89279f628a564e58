//! Helpers for the attachment tests: a simulated photo, raw chunk uploads,
//! status and download calls, and a look at what the store holds on disk.

use std::path::Path;

use reqwest::{Method, StatusCode};
use seedling_tests::{Device, TestApp};
use serde_json::{Value, json};
use sync_core::protocol::MutationResult;
use uuid::Uuid;

/// A JPEG-looking photo of `len` bytes whose content depends on `seed`.
pub fn photo(len: usize, seed: u8) -> Vec<u8> {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((0..len - 4).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    bytes
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    seedling_server::storage::Sha256Hex::of(bytes).to_string()
}

/// Sends bytes `start..end` (end exclusive) of `photo` as one chunk.
pub async fn put_chunk(
    app: &TestApp,
    token: &str,
    sha: &str,
    photo: &[u8],
    start: usize,
    end: usize,
) -> (StatusCode, Value) {
    put_raw(
        app,
        token,
        sha,
        "image/jpeg",
        Some(format!("bytes {start}-{}/{}", end - 1, photo.len())),
        photo[start..end].to_vec(),
    )
    .await
}

pub async fn put_raw(
    app: &TestApp,
    token: &str,
    sha: &str,
    content_type: &str,
    range: Option<String>,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let mut request = app
        .http
        .put(app.url(&format!("/api/v1/attachments/{sha}")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body);
    if let Some(range) = range {
        request = request.header("content-range", range);
    }
    let response = request.send().await.expect("upload sent");
    let status = response.status();
    let body = response.json().await.expect("a JSON answer");
    (status, body)
}

pub async fn upload_whole(app: &TestApp, token: &str, photo: &[u8]) -> String {
    let sha = sha256_hex(photo);
    let (status, body) = put_chunk(app, token, &sha, photo, 0, photo.len()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "complete", "{body}");
    sha
}

pub async fn status_of(app: &TestApp, token: &str, sha: &str) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/attachments/{sha}/status"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Downloads; on 200 returns the bytes, otherwise the error body.
pub async fn download(
    app: &TestApp,
    token: &str,
    sha: &str,
) -> (StatusCode, Result<Vec<u8>, Value>) {
    let response = app
        .http
        .get(app.url(&format!("/api/v1/attachments/{sha}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("download sent");
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        assert_eq!(response.headers()["etag"], format!("\"{sha}\"").as_str());
        let content_type = response.headers()["content-type"].clone();
        let bytes = response.bytes().await.expect("photo bytes").to_vec();
        assert_eq!(content_type, "image/jpeg");
        (status, Ok(bytes))
    } else {
        (
            status,
            Err(response.json().await.expect("an error envelope")),
        )
    }
}

/// Every file under the attachment folder, relative to it.
pub fn stored_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let root = app.state.config.data_dir.join("attachments");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

/// A child in `village` (through the admin's phone) and a visit to it by
/// `phone` carrying `photos`; returns the visit id.
pub async fn visit_with_photos(
    app: &TestApp,
    phone: &mut Device,
    village: Uuid,
    photos: &[&str],
) -> Uuid {
    let mut admin = Device::sign_in(app, "admin").await;
    let child = admin.create_child(app, village, "李小明").await;
    let (visit, mut builder) = phone.new_visit(child, village, "2026-11-28T10:00:00+08:00");
    for sha in photos {
        builder = builder.add("photos", json!({ "id": Uuid::new_v4(), "sha256": sha }));
    }
    let response = phone.push(app, &[builder.build()]).await;
    assert!(
        matches!(response.results[0], MutationResult::Applied { .. }),
        "{:?}",
        response.results
    );
    visit
}
