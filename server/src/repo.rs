//! Persistence: connecting, migrating, and the queries. This is the only
//! layer that builds queries; services call it inside their transactions.

pub mod attachments;
pub mod audit;
pub mod bulk;
pub mod change_log;
pub mod devices;
pub mod id_numbers;
pub mod integration;
pub mod login_failures;
pub mod org_units;
pub mod records;
pub mod refresh_tokens;
pub mod reports;
pub mod retention;
pub mod review;
pub mod server_meta;
pub mod subject;
pub mod sync_records;
pub mod synced;
pub mod users;
pub mod visit_rules;

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbBackend, DbErr, EntityTrait, IsolationLevel, Iterable,
    SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

/// Opens the database at `url`. SQLite files are created when missing and
/// run in WAL mode with foreign keys on and a busy timeout; SQLite gets one
/// pooled connection unless told otherwise, since it serialises writers.
pub async fn connect(url: &str, max_connections: Option<u32>) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    // Every statement with its duration at TRACE (`RUST_LOG=sqlx::query=trace`
    // shows them), and any slower than a second at WARN.
    options
        .sqlx_logging(true)
        .sqlx_logging_level(log::LevelFilter::Trace)
        .sqlx_slow_statements_logging_settings(log::LevelFilter::Warn, Duration::from_secs(1))
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        options
            .max_connections(max_connections.unwrap_or(1))
            .map_sqlx_sqlite_opts(|opts| {
                opts.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
            });
    } else {
        options.max_connections(max_connections.unwrap_or(16));
    }
    Database::connect(options).await
}

/// Begins a transaction that will write. On SQLite it takes the write lock
/// at `BEGIN` (`BEGIN IMMEDIATE`), so a writer that finds another process
/// writing waits for it (up to the busy timeout) instead of failing at its
/// first write: a deferred transaction that has read cannot wait for the
/// lock. PostgreSQL ignores the mode.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// Begins a read-only transaction that sees one snapshot throughout
/// (`REPEATABLE READ` on PostgreSQL; on SQLite every transaction reads one
/// snapshot, and asking for a level there only logs a warning).
pub async fn begin_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Sqlite => db.begin().await,
        _ => {
            db.begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
        }
    }
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// True when the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> Result<(), DbErr> {
    db.ping().await
}

/// A pool's connections: (open, idle).
pub fn pool_connections(db: &DatabaseConnection) -> (u32, usize) {
    match backend(db) {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    }
}

/// The backend in use, for the few queries that differ.
pub fn backend(db: &DatabaseConnection) -> DbBackend {
    db.get_database_backend()
}

/// Bind parameters per statement: well under SQLite's limit (32,766) and
/// PostgreSQL's (65,535), so a multi-row insert of any size is split into
/// statements that both accept.
pub const MAX_BIND_PARAMETERS: usize = 16_000;

/// Inserts rows with multi-row `INSERT`s, as few as the bind-parameter
/// limit allows.
pub async fn insert_all<A>(db: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait + Send,
{
    let columns = <A::Entity as EntityTrait>::Column::iter().count().max(1);
    let per_statement = (MAX_BIND_PARAMETERS / columns).max(1);
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(per_statement).collect();
        <A::Entity as EntityTrait>::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(())
}
