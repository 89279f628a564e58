//! Visit photos end to end: resumable chunked upload, hash verification,
//! deduplication, downloads only within scope, the request limits, and a
//! visit whose photo has not arrived yet.

pub(crate) mod support;

use reqwest::{Method, StatusCode};
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends};
use serde_json::json;
use sync_core::record::Entity;

use support::{
    download, photo, put_chunk, put_raw, sha256_hex, status_of, stored_files, upload_whole,
    visit_with_photos,
};

on_both_backends!(
    a_photo_uploads_in_three_chunks_and_resumes_after_a_drop,
    a_photo_whose_bytes_do_not_match_its_name_is_refused_and_nothing_is_visible,
    a_second_uploader_of_the_same_photo_uploads_nothing,
    a_photo_is_downloadable_only_within_the_scope_of_its_visit,
    malformed_oversized_and_mistyped_uploads_are_refused,
    a_visit_syncs_before_its_photo_arrives_and_shows_it_pending,
);

async fn a_photo_uploads_in_three_chunks_and_resumes_after_a_drop(app: TestApp) {
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let photo = photo(300_000, 7);
    let sha = sha256_hex(&photo);
    let (c1, c2) = (100_000, 200_000);

    let (status, body) = put_chunk(&app, &token, &sha, &photo, 0, c1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["status"].clone(), body["received_bytes"].clone()),
        (json!("pending"), json!(c1))
    );

    // The connection drops half-way through the second chunk: the server
    // gets fewer bytes than announced and counts none of them.
    let (status, body) = put_raw(
        &app,
        &token,
        &sha,
        "image/jpeg",
        Some(format!("bytes {c1}-{}/{}", c2 - 1, photo.len())),
        photo[c1..c1 + 5_000].to_vec(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert_eq!(status_of(&app, &token, &sha).await["received_bytes"], c1);

    // Sent again, and this time the answer is lost: the phone asks.
    let (status, _) = put_chunk(&app, &token, &sha, &photo, c1, c2).await;
    assert_eq!(status, StatusCode::OK);
    let now = status_of(&app, &token, &sha).await;
    assert_eq!(now["received_bytes"], c2, "{now}");
    assert_eq!(now["size_bytes"], photo.len());
    assert_eq!(now["status"], "pending");

    // Nothing is readable before the photo is whole.
    let (status, _) = download(&app, &token, &sha).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        !stored_files(&app).iter().any(|f| f.starts_with("objects")),
        "a partial photo is visible: {:?}",
        stored_files(&app)
    );

    // A chunk past what the server holds is refused with where to resume;
    // a repeated chunk that overlaps counts its new bytes once.
    let (status, body) = put_chunk(&app, &token, &sha, &photo, c2 + 10, photo.len()).await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&c2.to_string()),
        "{body}"
    );
    let (status, body) = put_chunk(&app, &token, &sha, &photo, c1, photo.len()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "complete", "{body}");
    assert_eq!(body["received_bytes"], photo.len());

    let (status, bytes) = download(&app, &token, &sha).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        bytes.unwrap() == photo,
        "the download differs from the upload"
    );
    assert_eq!(
        stored_files(&app),
        [format!("objects/{}/{sha}", &sha[..2])],
        "exactly the photo remains; the chunks are cleaned up"
    );
}

async fn a_photo_whose_bytes_do_not_match_its_name_is_refused_and_nothing_is_visible(app: TestApp) {
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let photo = photo(50_000, 1);
    let claimed = sha256_hex(b"a different photo");

    let (status, _) = put_chunk(&app, &token, &claimed, &photo, 0, 20_000).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = put_chunk(&app, &token, &claimed, &photo, 20_000, photo.len()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&sha256_hex(&photo)) && message.contains("discarded"),
        "{message}"
    );

    let now = status_of(&app, &token, &claimed).await;
    assert_eq!(
        (now["status"].clone(), now["received_bytes"].clone()),
        (json!("pending"), json!(0)),
        "{now}"
    );
    assert_eq!(
        download(&app, &token, &claimed).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        download(&app, &token, &sha256_hex(&photo)).await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        stored_files(&app).is_empty(),
        "left behind: {:?}",
        stored_files(&app)
    );

    // The phone starts again with the right name and succeeds.
    upload_whole(&app, &token, &photo).await;
}

async fn a_second_uploader_of_the_same_photo_uploads_nothing(app: TestApp) {
    Fixture::load(&app).await;
    let first = app.token_for("director-a1").await;
    let second = app.token_for("director-b1").await;
    let photo = photo(80_000, 3);
    let sha = upload_whole(&app, &first, &photo).await;

    let seen = status_of(&app, &second, &sha).await;
    assert_eq!(
        seen["status"], "complete",
        "the second phone can skip the upload: {seen}"
    );
    // Even a phone that sends anyway is answered at once from the first chunk.
    let (status, body) = put_chunk(&app, &second, &sha, &photo, 0, 1_000).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["status"].clone(), body["received_bytes"].clone()),
        (json!("complete"), json!(photo.len()))
    );
    assert_eq!(stored_files(&app).len(), 1, "{:?}", stored_files(&app));

    // Knowing a hash is not owning the photo: only its uploader reads it
    // while no visit references it.
    assert_eq!(download(&app, &first, &sha).await.0, StatusCode::OK);
    let (status, body) = download(&app, &second, &sha).await;
    assert_error(
        status,
        &body.unwrap_err(),
        StatusCode::FORBIDDEN,
        "forbidden",
    );
}

async fn a_photo_is_downloadable_only_within_the_scope_of_its_visit(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let photo = photo(120_000, 9);
    let sha = upload_whole(&app, &phone.token, &photo).await;
    visit_with_photos(&app, &mut phone, fixture.village_a1, &[&sha]).await;

    for reader in ["director-a1", "supervisor-a", "admin"] {
        let token = app.token_for(reader).await;
        let (status, bytes) = download(&app, &token, &sha).await;
        assert_eq!(status, StatusCode::OK, "{reader}: {bytes:?}");
        assert!(bytes.unwrap() == photo, "{reader} got other bytes");
    }
    for outsider in ["director-a2", "supervisor-b", "director-b1"] {
        let token = app.token_for(outsider).await;
        let (status, body) = download(&app, &token, &sha).await;
        assert_error(
            status,
            &body.unwrap_err(),
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
}

async fn malformed_oversized_and_mistyped_uploads_are_refused(app: TestApp) {
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let photo = photo(10_000, 5);
    let sha = sha256_hex(&photo);

    for bad in [
        sha.to_uppercase(),
        sha[..63].to_owned(),
        format!("{}g", &sha[..63]),
        "..%2F..%2Fjwt-secret".to_owned(),
    ] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/attachments/{bad}"),
                Some(&token),
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_path");
        let (status, body) = put_raw(&app, &token, &bad, "image/jpeg", None, photo.clone()).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_path");
    }

    // Over the per-photo limit (10 MiB by default), announced by the range.
    let huge = 10 * 1024 * 1024 + 1;
    let (status, body) = put_raw(
        &app,
        &token,
        &sha,
        "image/jpeg",
        Some(format!("bytes 0-999/{huge}")),
        photo[..1_000].to_vec(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    // A chunk over the request body limit (6 MiB by default).
    let big = vec![0xFF; 6 * 1024 * 1024 + 1];
    let (status, body) = put_raw(
        &app,
        &token,
        &sha,
        "image/jpeg",
        Some(format!("bytes 0-{}/{}", big.len() - 1, big.len())),
        big,
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    // Not an accepted type, or bytes that are not what the type says.
    let (status, body) = put_raw(&app, &token, &sha, "text/html", None, photo.clone()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (status, body) = put_raw(&app, &token, &sha, "image/png", None, photo.clone()).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    // A malformed range, and one outside the photo.
    let (status, body) = put_raw(
        &app,
        &token,
        &sha,
        "image/jpeg",
        Some("bytes=0-9".to_owned()),
        photo[..10].to_vec(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_content_range",
    );
    let (status, body) = put_raw(
        &app,
        &token,
        &sha,
        "image/jpeg",
        Some("bytes 0-9/5".to_owned()),
        photo[..10].to_vec(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // None of it left a trace, and a proper upload still works.
    assert_eq!(status_of(&app, &token, &sha).await["received_bytes"], 0);
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
    upload_whole(&app, &token, &photo).await;
}

async fn a_visit_syncs_before_its_photo_arrives_and_shows_it_pending(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let photo = photo(60_000, 11);
    let sha = sha256_hex(&photo);
    let visit = visit_with_photos(&app, &mut phone, fixture.village_a1, &[&sha]).await;

    let mut supervisor = Device::sign_in(&app, "supervisor-a").await;
    supervisor.pull_all(&app).await;
    let photos = supervisor
        .get(Entity::Visit, visit)
        .and_then(|record| record.get("photos"))
        .expect("the visit reached the supervisor with its photos");
    assert_eq!(photos[0]["sha256"], sha.as_str(), "{photos}");

    let pending = status_of(&app, &supervisor.token, &sha).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(pending["received_bytes"], 0);
    let (status, body) = download(&app, &supervisor.token, &sha).await;
    assert_error(
        status,
        &body.unwrap_err(),
        StatusCode::NOT_FOUND,
        "not_found",
    );

    upload_whole(&app, &phone.token, &photo).await;
    assert_eq!(
        status_of(&app, &supervisor.token, &sha).await["status"],
        "complete"
    );
    let (status, bytes) = download(&app, &supervisor.token, &sha).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes.unwrap() == photo);
}
