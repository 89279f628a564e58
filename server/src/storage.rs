//! Where attachment bytes live. Photos are content-addressed: a finished
//! photo is stored under its SHA-256, and only after the whole file was
//! hashed and found to match, so a partial or corrupt file is never visible
//! under a hash. Chunks of an upload in progress sit in a temporary area,
//! one object per chunk, under the upload's id.
//!
//! [`AttachmentStore`] is the small interface the service uses;
//! [`ObjectAttachmentStore`] implements it on the `object_store` crate, so
//! local disk (the default, `<data_dir>/attachments`) and any S3-compatible
//! store are a matter of configuration (`attachment_store_url`).

mod object;

use std::fmt;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde::Deserialize;
use uuid::Uuid;

pub use object::ObjectAttachmentStore;

/// A SHA-256 as exactly 64 lower-case hex characters: the name of a photo.
/// Nothing else parses, so a path built from it cannot escape its folder.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Sha256Hex(String);

impl Sha256Hex {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(bytes)))
    }
}

impl TryFrom<String> for Sha256Hex {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let valid = value.len() == 64
            && value
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if valid {
            Ok(Self(value))
        } else {
            Err(
                "an attachment is named by its SHA-256: exactly 64 lower-case hex characters"
                    .to_owned(),
            )
        }
    }
}

impl fmt::Display for Sha256Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One chunk of an upload: bytes `start..end` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    pub start: u64,
    pub end: u64,
}

impl Part {
    /// The chunks named by their end offsets, in order.
    pub fn from_ends(ends: &[u64]) -> Vec<Part> {
        let mut start = 0;
        ends.iter()
            .map(|&end| {
                let part = Part { start, end };
                start = end;
                part
            })
            .collect()
    }
}

/// What became of an upload asked to become a stored photo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Promotion {
    /// The bytes hash to the expected value; the photo is now stored.
    Stored,
    /// They do not; nothing was stored under the hash.
    HashMismatch { actual: Sha256Hex },
}

/// A stored photo, streamed.
pub struct Download {
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Download")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("attachment store: {0}")]
    Backend(#[from] object_store::Error),
    #[error("attachment store: chunk {start}..{end} of upload {upload} is {actual} bytes long")]
    ShortPart {
        upload: Uuid,
        start: u64,
        end: u64,
        actual: usize,
    },
}

/// A store that cannot take more bytes right now: a condition of the
/// machine, not of the request, that ends when an operator frees space or
/// remounts the disk writable. The bytes already received stay where they
/// were, so the upload resumes afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageFault {
    /// No space left, a quota reached, or a file-size limit hit.
    Full,
    /// The store's file system is mounted read-only.
    ReadOnly,
}

impl StoreError {
    /// The out-of-space or read-only condition behind this error, if that
    /// is what it is: found by walking the error chain down to the
    /// operating system's error (`ENOSPC`, `EDQUOT`, `EFBIG`, `EROFS`).
    pub fn fault(&self) -> Option<StorageFault> {
        use std::io::ErrorKind;
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(err) = next {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => {
                        return Some(StorageFault::Full);
                    }
                    ErrorKind::ReadOnlyFilesystem => return Some(StorageFault::ReadOnly),
                    _ => {}
                }
            }
            next = err.source();
        }
        None
    }
}

/// The attachment store as the service sees it. Implementations must make a
/// photo visible under its hash atomically (write, then rename or commit).
pub trait AttachmentStore: Send + Sync + fmt::Debug {
    /// Keeps one chunk of upload `upload` in the temporary area.
    fn put_part(
        &self,
        upload: Uuid,
        part: Part,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Joins the chunks `parts` of `upload`, in order, and stores the result
    /// under `sha256` only if that is its hash.
    fn promote<'a>(
        &'a self,
        upload: Uuid,
        parts: &'a [Part],
        sha256: &'a Sha256Hex,
    ) -> BoxFuture<'a, Result<Promotion, StoreError>>;

    /// The stored photo, or `None` when there is none under this hash.
    fn get<'a>(
        &'a self,
        sha256: &'a Sha256Hex,
    ) -> BoxFuture<'a, Result<Option<Download>, StoreError>>;

    /// True when a photo is stored under this hash.
    fn exists<'a>(&'a self, sha256: &'a Sha256Hex) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Removes every chunk of `upload` from the temporary area.
    fn delete_temp(&self, upload: Uuid) -> BoxFuture<'_, Result<(), StoreError>>;

    /// Removes the photo stored under this hash (nothing when there is none).
    fn delete<'a>(&'a self, sha256: &'a Sha256Hex) -> BoxFuture<'a, Result<(), StoreError>>;
}
