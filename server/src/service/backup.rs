//! Backup and restore (docs/OPERATIONS.md, "Backup and restore").
//!
//! A backup of a SQLite database is `VACUUM INTO`: one consistent snapshot,
//! taken while phones push. PostgreSQL is backed up with its own tools
//! (`pg_basebackup` and WAL archiving, or Patroni's); after restoring it,
//! `seedling mark-restored` does what `seedling restore` does for SQLite
//! after its copy: it gives the database a new epoch, so every phone learns
//! of the restore at its next pull and sends back what the server lost.

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{AppError, AppResult};
use crate::repo;

/// What a backup wrote.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// The change log's head in the backup.
    pub change_log_head: i64,
}

/// Writes a consistent copy of the (SQLite) database to `to`, which must not
/// exist.
pub async fn backup(db: &DatabaseConnection, to: &Path) -> AppResult<BackupReport> {
    if repo::backend(db) != DbBackend::Sqlite {
        return Err(AppError::Validation(
            "PostgreSQL is backed up with its own tools (pg_basebackup and WAL archiving, \
             or pg_dump); see docs/OPERATIONS.md, \"Backup and restore\""
                .to_owned(),
        ));
    }
    if to.exists() {
        return Err(AppError::Validation(format!(
            "{} exists; a backup never overwrites a file",
            to.display()
        )));
    }
    let target = to
        .to_str()
        .ok_or_else(|| AppError::Validation("the backup path is not valid UTF-8".to_owned()))?;
    let head = repo::change_log::head(db).await?;
    // The path is a literal in the statement: SQLite takes no parameter
    // there. Quotes are doubled, as SQL escapes them.
    db.execute_raw(Statement::from_string(
        DbBackend::Sqlite,
        format!("VACUUM INTO '{}'", target.replace('\'', "''")),
    ))
    .await?;
    let bytes = std::fs::metadata(to)
        .map_err(|err| AppError::Internal(format!("reading the backup's size: {err}")))?
        .len();
    Ok(BackupReport {
        path: to.to_path_buf(),
        bytes,
        change_log_head: head,
    })
}

/// Gives the database a new epoch: cursors made before are answered
/// `409 server_restored`, and the phones holding them send back what the
/// server lacks before they pull on (docs/SYNC-PROTOCOL.md, "After a
/// restore"). Run with every server stopped; they read the epoch at start.
pub async fn mark_restored(db: &DatabaseConnection) -> AppResult<String> {
    let epoch = Uuid::new_v4().simple().to_string();
    repo::server_meta::set_epoch(db, &epoch).await?;
    tracing::warn!(
        epoch,
        "the database is marked restored: phones will resend what it lacks"
    );
    Ok(epoch)
}

/// Replaces the SQLite database file `database` with the backup `from`
/// (checked first to be a Seedling database). The servers must be stopped.
/// The caller then migrates and marks the database restored.
pub async fn replace_sqlite_file(database: &Path, from: &Path) -> AppResult<()> {
    // Opened read-only as it is: `repo::connect` would switch it to WAL.
    let url = format!("sqlite://{}?mode=ro", from.display());
    let backup = sea_orm::Database::connect(url)
        .await
        .map_err(|err| AppError::Validation(format!("{} does not open: {err}", from.display())))?;
    let migrations = backup
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT COUNT(*) AS n FROM seaql_migrations",
        ))
        .await;
    let _ = backup.close().await;
    if migrations.is_err() {
        return Err(AppError::Validation(format!(
            "{} is not a Seedling database",
            from.display()
        )));
    }
    let io = |what: &str, err: std::io::Error| AppError::Internal(format!("{what}: {err}"));
    let staged = database.with_extension("restoring");
    std::fs::copy(from, &staged).map_err(|err| io("copying the backup", err))?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", database.display()));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(io("removing the old write-ahead log", err)),
        }
    }
    std::fs::rename(&staged, database).map_err(|err| io("putting the backup in place", err))?;
    Ok(())
}

/// The file of a `sqlite://` URL.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}
