//! Start-up: turning a [`Config`] into a ready [`AppState`] (database open
//! and migrated, signing key loaded), and waiting for a shutdown signal.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;

use crate::auth::jwt::JwtKeys;
use crate::config::{Config, Secret};
use crate::repo;
use crate::state::AppState;
use crate::storage::{AttachmentStore, ObjectAttachmentStore};

/// Read connections to a SQLite database (pulls run on them while the one
/// writer connection applies pushes).
const SQLITE_READERS: u32 = 4;

/// Opens (creating if needed) and migrates the database, loads the signing
/// key, and returns the state the router needs.
pub async fn build_state(mut config: Config) -> anyhow::Result<AppState> {
    let calendar: crate::calendar::Calendar = config
        .district_time_zone
        .parse()
        .context("the setting district_time_zone")?;
    crate::calendar::install(calendar)?;
    let url = config.effective_database_url();
    if config.database_url.is_empty() {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data folder {}", config.data_dir.display()))?;
    }
    let db = repo::connect(&url, config.db_max_connections)
        .await
        .with_context(|| format!("opening the database ({})", redact_url(&url)))?;
    repo::migrate(&db).await.context("applying migrations")?;
    let reader = if repo::backend(&db) == sea_orm::DbBackend::Sqlite {
        repo::connect(&url, Some(SQLITE_READERS))
            .await
            .context("opening the database's read connections")?
    } else {
        db.clone()
    };
    let jwt = token_keys(&config)?;
    install_id_number_keys(&mut config)?;
    let attachments = open_attachment_store(&config)?;
    let epoch = repo::server_meta::epoch(&db)
        .await
        .context("reading the database's epoch")?;
    Ok(AppState::new(db, reader, config, jwt, attachments, epoch))
}

/// The access-token key ring: the configured keys (`jwt_keys`, plus
/// `jwt_secret` as the key of `jwt_key_id`), or else the key files of
/// `<data_dir>/jwt-keys/`.
fn token_keys(config: &Config) -> anyhow::Result<JwtKeys> {
    let mut keys = config.jwt_keys.clone();
    if !config.jwt_secret.is_empty() {
        keys.entry(config.jwt_key_id.clone())
            .or_insert_with(|| config.jwt_secret.clone());
    }
    if keys.is_empty() {
        keys = token_key_files(
            &config.data_dir.join("jwt-keys"),
            &config.jwt_key_id,
            &config.data_dir.join("jwt-secret"),
        )?;
    }
    let jwt = JwtKeys::new(
        &config.jwt_key_id,
        keys.iter()
            .map(|(id, key)| (id.as_str(), key.expose().as_bytes())),
        config.access_token_ttl_secs,
    )
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    tracing::info!(
        signing = jwt.signing_key_id(),
        verifying = ?jwt.key_ids().collect::<Vec<_>>(),
        "access-token keys loaded"
    );
    Ok(jwt)
}

/// Reads every key file of `folder` (the file name is the key id) and
/// generates the signing key's file when it is absent. A folder created
/// fresh adopts the single key earlier versions kept in `legacy`
/// (`<data_dir>/jwt-secret`) as the signing key, so an upgrade signs nobody
/// out.
fn token_key_files(
    folder: &Path,
    signing_key_id: &str,
    legacy: &Path,
) -> anyhow::Result<std::collections::BTreeMap<String, Secret>> {
    let created = !folder.exists();
    std::fs::create_dir_all(folder)
        .with_context(|| format!("creating the key folder {}", folder.display()))?;
    let signing_path = folder.join(signing_key_id);
    if created
        && !signing_path.exists()
        && let Ok(old) = std::fs::read_to_string(legacy)
        && old.trim().len() >= crate::auth::jwt::MIN_KEY_BYTES
    {
        write_private(&signing_path, old.trim())
            .with_context(|| format!("writing {}", signing_path.display()))?;
        tracing::info!(from = %legacy.display(), to = %signing_path.display(), "adopted the existing token signing key");
    }
    if !signing_path.exists() {
        load_or_create_secret(&signing_path)?;
    }
    let mut keys = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(folder)
        .with_context(|| format!("reading the key folder {}", folder.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.file_type()?.is_file() {
            continue;
        }
        let key = std::fs::read_to_string(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        keys.insert(name, Secret::new(key.trim()));
    }
    Ok(keys)
}

/// Installs the identity-number key ring: the configured keys, or one key
/// generated once into the data folder.
fn install_id_number_keys(config: &mut Config) -> anyhow::Result<()> {
    if config.id_number_keys.is_empty() {
        let path = config.data_dir.join("id-number-key");
        let key = match std::fs::read_to_string(&path) {
            Ok(existing) => existing.trim().to_owned(),
            Err(_) => {
                let key = crate::crypto::KeyRing::generate_key();
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                write_private(&path, &key)
                    .with_context(|| format!("writing {}", path.display()))?;
                tracing::info!(path = %path.display(), "generated a new identity-number key");
                key
            }
        };
        config
            .id_number_keys
            .insert(config.id_number_key_id.clone(), Secret::new(key));
    }
    let ring = crate::crypto::KeyRing::new(
        &config.id_number_key_id,
        config
            .id_number_keys
            .iter()
            .map(|(id, key)| (id.as_str(), key.expose())),
    )?;
    crate::crypto::install(ring)?;
    Ok(())
}

/// Local disk under `<data_dir>/attachments`, or the store the configured
/// URL names, with options from the `AWS_*` environment variables.
fn open_attachment_store(config: &Config) -> anyhow::Result<Arc<dyn AttachmentStore>> {
    let store = if config.attachment_store_url.is_empty() {
        let folder = config.data_dir.join("attachments");
        ObjectAttachmentStore::local(&folder)
            .with_context(|| format!("opening the attachment folder {}", folder.display()))?
    } else {
        let url = url::Url::parse(&config.attachment_store_url)
            .context("attachment_store_url is not a URL")?;
        let options = std::env::vars()
            .filter(|(key, _)| key.starts_with("AWS_"))
            .map(|(key, value)| (key.to_ascii_lowercase(), value));
        ObjectAttachmentStore::from_url(&url, options)
            .with_context(|| format!("opening the attachment store {}", redact_url(url.as_str())))?
    };
    Ok(Arc::new(store))
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// A URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<Secret> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(Secret::new(existing));
        }
    }
    let mut bytes = [0u8; 48];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = STANDARD.encode(bytes);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    write_private(path, &secret).with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new token signing key");
    Ok(Secret::new(secret))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::{redact_url, token_key_files};

    #[test]
    fn token_key_files_are_generated_once_and_every_file_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, legacy) = (dir.path().join("jwt-keys"), dir.path().join("jwt-secret"));
        let first = token_key_files(&folder, "k1", &legacy).unwrap();
        assert_eq!(first.keys().collect::<Vec<_>>(), ["k1"]);
        let again = token_key_files(&folder, "k1", &legacy).unwrap();
        assert_eq!(again["k1"], first["k1"], "the key is generated only once");

        // Rotating: a new signing key id generates its file; the old stays.
        let rotated = token_key_files(&folder, "k2", &legacy).unwrap();
        assert_eq!(rotated.keys().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(rotated["k1"], first["k1"]);
        assert_ne!(rotated["k2"], first["k1"]);

        std::fs::remove_file(folder.join("k1")).unwrap();
        let retired = token_key_files(&folder, "k2", &legacy).unwrap();
        assert_eq!(retired.keys().collect::<Vec<_>>(), ["k2"]);
    }

    #[test]
    fn the_single_key_of_earlier_versions_is_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let (folder, legacy) = (dir.path().join("jwt-keys"), dir.path().join("jwt-secret"));
        let old = "an-old-single-key-of-more-than-32-bytes";
        std::fs::write(&legacy, old).unwrap();
        let keys = token_key_files(&folder, "k1", &legacy).unwrap();
        assert_eq!(keys["k1"].expose(), old);
    }

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redact_url("postgres://seedling:s3cret@db:5432/seedling"),
            "postgres://seedling:***@db:5432/seedling"
        );
        assert_eq!(
            redact_url("sqlite://data/seedling.db"),
            "sqlite://data/seedling.db"
        );
    }
}
