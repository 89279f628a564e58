//! [`AttachmentStore`] on the `object_store` crate: local disk by default,
//! any store `object_store` can open by URL otherwise.
//!
//! Layout under the store's root:
//! `objects/<first two hex digits>/<sha256>` for finished photos and
//! `uploads/<upload id>/<start>-<end>` for the chunks of uploads in progress.
//! A photo is written with a multipart upload that is completed only when
//! the joined chunks hash to the expected value and aborted otherwise; on
//! local disk that is a staging file renamed into place, on S3 a multipart
//! upload that is only visible once completed.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{AttachmentStore, Download, Part, Promotion, Sha256Hex, StoreError};

#[derive(Debug, Clone)]
pub struct ObjectAttachmentStore {
    store: Arc<dyn ObjectStore>,
    root: Path,
}

impl ObjectAttachmentStore {
    /// Photos on local disk under `folder`, which is created if missing.
    pub fn local(folder: &FsPath) -> Result<Self, StoreError> {
        std::fs::create_dir_all(folder).map_err(|source| {
            StoreError::Backend(object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(source),
            })
        })?;
        let store = LocalFileSystem::new_with_prefix(folder)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            root: Path::default(),
        })
    }

    /// The store a URL names (`s3://bucket/prefix`, `file:///srv/photos`,
    /// `memory:///`), with `options` such as `aws_endpoint` or
    /// `aws_access_key_id`. S3 needs the server built with `--features s3`.
    pub fn from_url(
        url: &url::Url,
        options: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, StoreError> {
        let (store, root) = object_store::parse_url_opts(url, options)?;
        Ok(Self {
            store: Arc::from(store),
            root,
        })
    }

    fn object_path(&self, sha256: &Sha256Hex) -> Path {
        let hash = sha256.as_str();
        self.root.child("objects").child(&hash[..2]).child(hash)
    }

    fn upload_dir(&self, upload: Uuid) -> Path {
        self.root.child("uploads").child(upload.to_string())
    }

    fn part_path(&self, upload: Uuid, part: Part) -> Path {
        self.upload_dir(upload)
            .child(format!("{:012}-{:012}", part.start, part.end))
    }

    async fn join_and_verify(
        &self,
        upload: Uuid,
        parts: &[Part],
        sha256: &Sha256Hex,
    ) -> Result<Promotion, StoreError> {
        let mut writer =
            WriteMultipart::new(self.store.put_multipart(&self.object_path(sha256)).await?);
        let mut hasher = Sha256::new();
        for &part in parts {
            let bytes = match self.read_part(upload, part).await {
                Ok(bytes) => bytes,
                Err(err) => {
                    writer.abort().await?;
                    return Err(err);
                }
            };
            hasher.update(&bytes);
            writer.put(bytes);
        }
        let actual = hex::encode(hasher.finalize());
        if actual == sha256.as_str() {
            writer.finish().await?;
            Ok(Promotion::Stored)
        } else {
            writer.abort().await?;
            Ok(Promotion::HashMismatch {
                actual: Sha256Hex(actual),
            })
        }
    }

    async fn read_part(&self, upload: Uuid, part: Part) -> Result<Bytes, StoreError> {
        let bytes = self
            .store
            .get(&self.part_path(upload, part))
            .await?
            .bytes()
            .await?;
        if bytes.len() as u64 != part.end - part.start {
            return Err(StoreError::ShortPart {
                upload,
                start: part.start,
                end: part.end,
                actual: bytes.len(),
            });
        }
        Ok(bytes)
    }
}

impl AttachmentStore for ObjectAttachmentStore {
    fn put_part(
        &self,
        upload: Uuid,
        part: Part,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            self.store
                .put(&self.part_path(upload, part), bytes.into())
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn promote<'a>(
        &'a self,
        upload: Uuid,
        parts: &'a [Part],
        sha256: &'a Sha256Hex,
    ) -> BoxFuture<'a, Result<Promotion, StoreError>> {
        self.join_and_verify(upload, parts, sha256).boxed()
    }

    fn get<'a>(
        &'a self,
        sha256: &'a Sha256Hex,
    ) -> BoxFuture<'a, Result<Option<Download>, StoreError>> {
        async move {
            match self.store.get(&self.object_path(sha256)).await {
                Ok(result) => Ok(Some(Download {
                    size: result.meta.size,
                    body: result.into_stream().map_err(StoreError::from).boxed(),
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(err) => Err(err.into()),
            }
        }
        .boxed()
    }

    fn exists<'a>(&'a self, sha256: &'a Sha256Hex) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            match self.store.head(&self.object_path(sha256)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(err) => Err(err.into()),
            }
        }
        .boxed()
    }

    fn delete<'a>(&'a self, sha256: &'a Sha256Hex) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            match self.store.delete(&self.object_path(sha256)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(err.into()),
            }
        }
        .boxed()
    }

    fn delete_temp(&self, upload: Uuid) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let dir = self.upload_dir(upload);
            let chunks: Vec<Path> = self
                .store
                .list(Some(&dir))
                .map_ok(|meta| meta.location)
                .try_collect()
                .await?;
            for chunk in chunks {
                match self.store.delete(&chunk).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ObjectAttachmentStore) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let store = ObjectAttachmentStore::local(dir.path()).expect("local store");
        (dir, store)
    }

    #[tokio::test]
    async fn a_photo_appears_under_its_hash_only_when_the_chunks_match_it() {
        let (dir, store) = store();
        let photo = b"\xff\xd8\xff not really a jpeg, but three chunks of one".to_vec();
        let sha = Sha256Hex::of(&photo);
        let upload = Uuid::new_v4();
        let parts = Part::from_ends(&[10, 20, photo.len() as u64]);
        for part in &parts {
            let bytes = Bytes::copy_from_slice(&photo[part.start as usize..part.end as usize]);
            store.put_part(upload, *part, bytes).await.unwrap();
        }
        assert!(!store.exists(&sha).await.unwrap());

        let wrong = Sha256Hex::of(b"something else");
        let outcome = store.promote(upload, &parts, &wrong).await.unwrap();
        assert_eq!(
            outcome,
            Promotion::HashMismatch {
                actual: sha.clone()
            }
        );
        assert!(
            !store.exists(&wrong).await.unwrap(),
            "a mismatch stores nothing"
        );

        assert_eq!(
            store.promote(upload, &parts, &sha).await.unwrap(),
            Promotion::Stored
        );
        let download = store.get(&sha).await.unwrap().expect("stored");
        assert_eq!(download.size, photo.len() as u64);
        let body: Vec<Bytes> = download.body.try_collect().await.unwrap();
        assert_eq!(body.concat(), photo);

        store.delete_temp(upload).await.unwrap();
        assert!(
            !dir.path().join("uploads").join(upload.to_string()).exists(),
            "the temporary chunks are gone"
        );
    }
}
