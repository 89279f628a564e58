//! Visit photos: resumable, content-addressed uploads, their status, and
//! downloads within the caller's scope (docs/API.md, "Attachments").
//!
//! An upload is a row in `attachments` plus chunks in the store's temporary
//! area. Each chunk is written to the store first and then recorded by one
//! conditional update (`received_bytes` must still be where the chunk
//! starts), so no transaction is held open across disk or network I/O and a
//! retried or racing chunk never counts twice. The chunk that completes the
//! file joins the chunks, checks the SHA-256 and only then makes the photo
//! visible under its hash; a mismatch discards the whole upload.

mod sniff;

use bytes::Bytes;
use chrono::Utc;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role, Scope};
use crate::entity::attachment;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::audit;
use crate::state::AppState;
use crate::storage::{Download, Part, Promotion, Sha256Hex, StorageFault, StoreError};

/// How far the server has a photo.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AttachmentStatus {
    /// The photo's SHA-256 (64 lower-case hex characters).
    pub sha256: String,
    /// `pending` until the whole photo arrived and matched its hash, then
    /// `complete`. A photo nobody has started uploading is `pending` with
    /// `received_bytes` 0.
    #[schema(example = "pending")]
    pub status: String,
    /// Bytes the server holds; the next chunk starts here.
    pub received_bytes: u64,
    /// The photo's size, once an upload has declared it.
    pub size_bytes: Option<u64>,
    pub content_type: Option<String>,
}

impl AttachmentStatus {
    fn of(row: &attachment::Model) -> Self {
        Self {
            sha256: row.sha256.clone(),
            status: row.status.clone(),
            received_bytes: u64::try_from(row.received_bytes).unwrap_or(0),
            size_bytes: u64::try_from(row.size_bytes).ok(),
            content_type: Some(row.content_type.clone()),
        }
    }

    fn not_started(sha256: &Sha256Hex) -> Self {
        Self {
            sha256: sha256.to_string(),
            status: repo::attachments::PENDING.to_owned(),
            received_bytes: 0,
            size_bytes: None,
            content_type: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.status == repo::attachments::COMPLETE
    }
}

/// One chunk as the phone sent it: bytes `start..=end` of a `total`-byte
/// photo of type `content_type`.
#[derive(Debug)]
pub struct Chunk {
    pub start: u64,
    pub end: u64,
    pub total: u64,
    pub content_type: String,
    pub bytes: Bytes,
}

/// A photo the caller may read.
#[derive(Debug)]
pub struct Photo {
    pub content_type: String,
    pub download: Download,
}

/// Photos are for the people who visit and review: the integration
/// account exchanges records, never pictures of children.
fn require_field_role(caller: &AuthUser) -> AppResult<()> {
    caller.require_role(&[Role::Director, Role::Supervisor, Role::Admin])
}

/// How far the server has `sha256`. Any signed-in caller may ask: it is
/// how a phone learns it can skip an upload another phone already made.
#[tracing::instrument(skip(state, caller), fields(sha256 = %sha256))]
pub async fn status(
    state: &AppState,
    caller: &AuthUser,
    sha256: &Sha256Hex,
) -> AppResult<AttachmentStatus> {
    require_field_role(caller)?;
    Ok(repo::attachments::find(&state.db, sha256.as_str())
        .await?
        .map_or_else(
            || AttachmentStatus::not_started(sha256),
            |row| AttachmentStatus::of(&row),
        ))
}

/// Receives one chunk; answers how far the photo now is.
#[tracing::instrument(skip(state, caller, chunk), fields(sha256 = %sha256, start = chunk.start, end = chunk.end, total = chunk.total))]
pub async fn upload_chunk(
    state: &AppState,
    caller: &AuthUser,
    sha256: &Sha256Hex,
    chunk: Chunk,
) -> AppResult<AttachmentStatus> {
    require_field_role(caller)?;
    check_chunk(state, &chunk)?;
    let row = match repo::attachments::find(&state.db, sha256.as_str()).await? {
        Some(row) if row.status == repo::attachments::COMPLETE => {
            if state
                .attachments
                .exists(sha256)
                .await
                .map_err(store_error)?
            {
                // Deduplicated: someone already uploaded this very photo.
                return Ok(AttachmentStatus::of(&row));
            }
            tracing::warn!("a complete photo is missing from the store; accepting it again");
            repo::attachments::forget_lost(&state.db, sha256.as_str()).await?;
            start_upload(state, caller, sha256, &chunk).await?
        }
        Some(row) => row,
        None => start_upload(state, caller, sha256, &chunk).await?,
    };
    if u64::try_from(row.size_bytes).ok() != Some(chunk.total)
        || row.content_type != chunk.content_type
    {
        return Err(AppError::Conflict(format!(
            "an upload of this photo is in progress as {} bytes of {}; send the same size and type",
            row.size_bytes, row.content_type
        )));
    }
    let upload = row.upload_id.ok_or_else(|| {
        AppError::Internal(format!("pending attachment {sha256} has no upload id"))
    })?;
    let mut ends = parse_parts(&row)?;
    let received = ends.last().copied().unwrap_or(0);
    let end = chunk.end + 1;
    if end > received {
        if chunk.start > received {
            return Err(AppError::Conflict(format!(
                "the server holds {received} bytes of this photo; resume at byte {received}"
            )));
        }
        // A chunk overlapping what is already here (a retry after a lost
        // answer) contributes only its new bytes.
        let fresh = chunk.bytes.slice(usize_of(received - chunk.start)?..);
        let part = Part {
            start: received,
            end,
        };
        state
            .attachments
            .put_part(upload, part, fresh)
            .await
            .map_err(store_error)?;
        ends.push(end);
        let parts = serde_json::to_string(&ends)
            .map_err(|err| AppError::Internal(format!("encoding chunk list: {err}")))?;
        let advanced =
            repo::attachments::advance(&state.db, sha256.as_str(), upload, received, end, parts)
                .await?;
        if !advanced {
            // Another request moved this upload first; say where it stands.
            return status(state, caller, sha256).await;
        }
    } else if received < chunk.total {
        // Nothing new in this chunk (a retry of one already counted).
        return Ok(AttachmentStatus::of(&row));
    }
    if ends.last().copied() == Some(chunk.total) {
        return finish(state, caller, sha256, upload, &ends).await;
    }
    status(state, caller, sha256).await
}

/// The photo, if a live visit in the caller's scope references it, or the
/// caller uploaded it and no visit references it yet. A download is
/// audited (`attachment.download`), naming the children of the visits in
/// scope that show the photo; a photo no visit shows yet names no child
/// and is not recorded.
#[tracing::instrument(skip(state, caller), fields(sha256 = %sha256))]
pub async fn download(state: &AppState, caller: &AuthUser, sha256: &Sha256Hex) -> AppResult<Photo> {
    require_field_role(caller)?;
    let row = repo::attachments::find(&state.db, sha256.as_str())
        .await?
        .filter(|row| row.status == repo::attachments::COMPLETE)
        .ok_or_else(|| AppError::not_found("this photo has not been uploaded (yet)"))?;
    let references = repo::attachments::referencing(&state.db, sha256.as_str()).await?;
    let scope = Scope::of(caller);
    let mut villages: Vec<Uuid> = references.iter().map(|(village, _)| *village).collect();
    villages.sort_unstable();
    villages.dedup();
    let mut seen = Vec::new();
    for village in villages {
        if scope.contains(&repo::org_units::lineage(&state.db, village).await?) {
            seen.push(village);
        }
    }
    // The children of the visits in scope that show the photo.
    let children: Vec<Uuid> = references
        .iter()
        .filter(|(village, _)| seen.contains(village))
        .map(|(_, child)| *child)
        .collect();
    let allowed =
        !children.is_empty() || (references.is_empty() && row.created_by == Some(caller.user_id));
    if !allowed {
        return Err(AppError::forbidden(
            "this photo belongs to no visit in your scope",
        ));
    }
    let download = state
        .attachments
        .get(sha256)
        .await
        .map_err(store_error)?
        .ok_or_else(|| AppError::Internal(format!("photo {sha256} is recorded but not stored")))?;
    audit::record_read(
        state,
        caller,
        "attachment.download",
        None,
        children,
        json!({ "sha256": sha256.as_str() }),
    )
    .await?;
    Ok(Photo {
        content_type: row.content_type,
        download,
    })
}

fn check_chunk(state: &AppState, chunk: &Chunk) -> AppResult<()> {
    let config = &state.config;
    if !config
        .attachment_content_types
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(&chunk.content_type))
    {
        return Err(AppError::UnsupportedMediaType(format!(
            "a photo must be one of {}; got `{}`",
            config.attachment_content_types.join(", "),
            chunk.content_type
        )));
    }
    if chunk.total > config.attachment_max_bytes {
        return Err(AppError::PayloadTooLarge(format!(
            "a photo may be at most {} bytes; this one is {}",
            config.attachment_max_bytes, chunk.total
        )));
    }
    if chunk.total == 0 || chunk.start > chunk.end || chunk.end >= chunk.total {
        return Err(AppError::Validation(format!(
            "`Content-Range: bytes {}-{}/{}` is not a range inside the photo",
            chunk.start, chunk.end, chunk.total
        )));
    }
    if chunk.bytes.len() as u64 != chunk.end - chunk.start + 1 {
        return Err(AppError::Validation(format!(
            "the chunk is {} bytes but `Content-Range` announces {}",
            chunk.bytes.len(),
            chunk.end - chunk.start + 1
        )));
    }
    Ok(())
}

async fn start_upload(
    state: &AppState,
    caller: &AuthUser,
    sha256: &Sha256Hex,
    chunk: &Chunk,
) -> AppResult<attachment::Model> {
    if chunk.start != 0 {
        return Err(AppError::Conflict(
            "the server holds no bytes of this photo; start at byte 0".to_owned(),
        ));
    }
    if !sniff::looks_like(&chunk.content_type, &chunk.bytes) {
        return Err(AppError::UnsupportedMediaType(format!(
            "the bytes are not a {} image",
            chunk.content_type
        )));
    }
    let total = i64::try_from(chunk.total)
        .map_err(|_| AppError::PayloadTooLarge("the photo is far too large".to_owned()))?;
    repo::attachments::insert_if_absent(
        &state.db,
        attachment::Model {
            sha256: sha256.to_string(),
            size_bytes: total,
            content_type: chunk.content_type.to_ascii_lowercase(),
            status: repo::attachments::PENDING.to_owned(),
            received_bytes: 0,
            created_by: Some(caller.user_id),
            created_at: Utc::now(),
            completed_at: None,
            upload_id: Some(Uuid::new_v4()),
            parts: "[]".to_owned(),
        },
    )
    .await?;
    repo::attachments::find(&state.db, sha256.as_str())
        .await?
        .ok_or_else(|| AppError::Internal(format!("attachment {sha256} vanished after insert")))
}

/// Joins the chunks, checks the hash, and makes the photo visible.
async fn finish(
    state: &AppState,
    caller: &AuthUser,
    sha256: &Sha256Hex,
    upload: Uuid,
    ends: &[u64],
) -> AppResult<AttachmentStatus> {
    let parts = Part::from_ends(ends);
    match state.attachments.promote(upload, &parts, sha256).await {
        Ok(Promotion::Stored) => {
            repo::attachments::complete(&state.db, sha256.as_str(), upload, Utc::now()).await?;
            clean_up(state, upload).await;
            status(state, caller, sha256).await
        }
        Ok(Promotion::HashMismatch { actual }) => {
            repo::attachments::discard(&state.db, sha256.as_str(), upload).await?;
            clean_up(state, upload).await;
            Err(AppError::Validation(format!(
                "the uploaded bytes hash to {actual}, not {sha256}; the upload was discarded, \
                 send the photo again from byte 0"
            )))
        }
        Err(err) => {
            // A racing request may have finished it meanwhile.
            let now = status(state, caller, sha256).await?;
            if now.is_complete() {
                Ok(now)
            } else {
                Err(store_error(err))
            }
        }
    }
}

async fn clean_up(state: &AppState, upload: Uuid) {
    if let Err(err) = state.attachments.delete_temp(upload).await {
        tracing::warn!(%upload, error = %err, "could not remove an upload's temporary chunks");
    }
}

fn parse_parts(row: &attachment::Model) -> AppResult<Vec<u64>> {
    serde_json::from_str(&row.parts).map_err(|err| {
        AppError::Internal(format!("attachment {}: bad chunk list: {err}", row.sha256))
    })
}

fn usize_of(n: u64) -> AppResult<usize> {
    usize::try_from(n).map_err(|_| AppError::Internal("offset overflow".to_owned()))
}

/// A full or read-only store is the machine's condition, answered 507 so
/// the phone keeps its bytes and retries later; anything else is internal.
fn store_error(err: StoreError) -> AppError {
    match err.fault() {
        Some(fault) => AppError::InsufficientStorage {
            read_only: fault == StorageFault::ReadOnly,
            detail: err.to_string(),
        },
        None => AppError::Internal(err.to_string()),
    }
}
