//! `/api/v1/attachments/*`: visit photos, uploaded in resumable chunks and
//! named by their SHA-256 (docs/API.md, "Attachments").

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorBody, ErrorCode};
use crate::routes::extract::ApiPath;
use crate::service::attachments::{self, AttachmentStatus, Chunk};
use crate::state::AppState;
use crate::storage::Sha256Hex;

/// Upload a photo, or one chunk of it. The body is the raw bytes;
/// `Content-Range: bytes <start>-<end>/<total>` places them (omit it to send
/// the whole photo at once). Answers how far the photo now is; the chunk
/// that completes it is checked against the hash.
#[utoipa::path(put, path = "/api/v1/attachments/{sha256}", tag = "attachments",
    security(("bearer" = [])),
    params(
        ("sha256" = String, Path, description = "SHA-256 of the whole photo, 64 lower-case hex characters", pattern = "^[0-9a-f]{64}$"),
        ("Content-Range" = Option<String>, Header, description = "`bytes <start>-<end>/<total>`, end inclusive"),
        ("Content-Type" = String, Header, description = "image/jpeg, image/png, image/webp or image/heic"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk's bytes"),
    responses(
        (status = 200, description = "Where the upload stands; `complete` once stored", body = AttachmentStatus),
        (status = 400, description = "Not a SHA-256, or a malformed Content-Range", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 409, description = "The chunk does not start where the server stands; ask the status", body = ErrorBody),
        (status = 413, description = "The photo or the chunk is too large", body = ErrorBody),
        (status = 415, description = "Not an accepted image type", body = ErrorBody),
        (status = 408, description = "The body stopped arriving for `body_read_timeout_secs`; nothing of it was kept", body = ErrorBody),
        (status = 422, description = "The bytes do not hash to the name (upload discarded), or the range does not fit", body = ErrorBody),
        (status = 507, description = "The photo store is full or read-only; the bytes received before are kept. Retry after `Retry-After` seconds from `received_bytes`", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(sha256): ApiPath<Sha256Hex>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> AppResult<Json<AttachmentStatus>> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge(format!(
                "a chunk may be at most {} bytes; send the photo in smaller chunks",
                state.config.max_body_bytes
            ))
        } else {
            AppError::from(rejection)
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or("").trim().to_owned())
        .ok_or_else(|| {
            AppError::UnsupportedMediaType(
                "send the photo's `Content-Type`, e.g. image/jpeg".to_owned(),
            )
        })?;
    let (start, end, total) = match headers.get(header::CONTENT_RANGE) {
        Some(value) => parse_content_range(value)?,
        None if bytes.is_empty() => {
            return Err(AppError::Validation("the photo is empty".to_owned()));
        }
        None => (0, bytes.len() as u64 - 1, bytes.len() as u64),
    };
    let chunk = Chunk {
        start,
        end,
        total,
        content_type,
        bytes,
    };
    attachments::upload_chunk(&state, &caller, &sha256, chunk)
        .await
        .map(Json)
}

/// How many bytes of a photo the server holds (`received_bytes`), so a
/// phone resumes where it stopped, and whether it is `complete` (then an
/// upload is unnecessary: the server deduplicates by hash).
#[utoipa::path(get, path = "/api/v1/attachments/{sha256}/status", tag = "attachments", operation_id = "attachment_status",
    security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the photo", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "Where the photo stands", body = AttachmentStatus),
        (status = 400, description = "Not a SHA-256", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(sha256): ApiPath<Sha256Hex>,
) -> AppResult<Json<AttachmentStatus>> {
    attachments::status(&state, &caller, &sha256)
        .await
        .map(Json)
}

/// Download a photo. Only a photo referenced by a visit in the caller's
/// scope, or one the caller uploaded that no visit references yet.
#[utoipa::path(get, path = "/api/v1/attachments/{sha256}", tag = "attachments",
    security(("bearer" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the photo", pattern = "^[0-9a-f]{64}$")),
    responses(
        (status = 200, description = "The photo's bytes", content_type = "image/*", body = Vec<u8>),
        (status = 400, description = "Not a SHA-256", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "No visit in your scope references this photo", body = ErrorBody),
        (status = 404, description = "Not uploaded (yet)", body = ErrorBody),
    ))]
pub async fn download(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(sha256): ApiPath<Sha256Hex>,
) -> AppResult<Response> {
    let photo = attachments::download(&state, &caller, &sha256).await?;
    let content_type = HeaderValue::from_str(&photo.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let etag = HeaderValue::from_str(&format!("\"{sha256}\""))
        .map_err(|err| AppError::Internal(err.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_LENGTH,
                HeaderValue::from(photo.download.size),
            ),
            (header::ETAG, etag),
            // The content of a hash never changes; only its reader's rights do.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
        ],
        Body::from_stream(photo.download.body),
    )
        .into_response())
}

/// `bytes <start>-<end>/<total>` → (start, end, total), end inclusive.
fn parse_content_range(value: &HeaderValue) -> AppResult<(u64, u64, u64)> {
    let invalid = || {
        AppError::bad_request(
            ErrorCode::InvalidContentRange,
            "`Content-Range` must read `bytes <start>-<end>/<total>`, e.g. `bytes 0-524287/1835008`",
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let (range, total) = text
        .strip_prefix("bytes ")
        .and_then(|rest| rest.split_once('/'))
        .ok_or_else(invalid)?;
    let (start, end) = range.split_once('-').ok_or_else(invalid)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| invalid());
    Ok((number(start)?, number(end)?, number(total)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_or_are_refused() {
        let parse = |s: &'static str| parse_content_range(&HeaderValue::from_static(s));
        assert_eq!(parse("bytes 0-99/300").unwrap(), (0, 99, 300));
        assert_eq!(parse("bytes 200-299/300").unwrap(), (200, 299, 300));
        for bad in [
            "0-99/300",
            "bytes 0-99",
            "bytes */300",
            "bytes a-b/c",
            "items 0-1/2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
