//! Shared state handed to every request. It holds no sync state: any number
//! of server processes can run side by side on one database.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::outage::DbOutage;
use crate::storage::AttachmentStore;

#[derive(Clone, Debug)]
pub struct AppState {
    /// The connection pool for writes (and reads inside write transactions).
    pub db: DatabaseConnection,
    /// The pool for read-only work such as pulls. On PostgreSQL the same
    /// pool as `db`; on SQLite, whose single writer connection would make
    /// every pull wait behind every push, separate connections that read
    /// the WAL snapshot while a push writes.
    pub reader: DatabaseConnection,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    /// Where photo bytes live (local disk, or an S3-compatible store).
    pub attachments: Arc<dyn AttachmentStore>,
    /// Slots for sync requests in flight in this process
    /// (`max_sync_in_flight`): load shedding, not sync state.
    pub sync_slots: Arc<tokio::sync::Semaphore>,
    /// Sync requests waiting for a slot now (at most `max_sync_queued`).
    pub sync_queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Whether the database is reachable, so an outage is logged once.
    pub outage: Arc<DbOutage>,
    /// The database's epoch (`repo::server_meta`), read at start-up: a
    /// restore happens with the server stopped.
    pub epoch: Arc<str>,
    /// Pushes waiting to be committed together (group commit,
    /// `service::sync::push::group`): requests in flight, not sync state.
    pub pushes: Arc<crate::service::sync::push::group::PushQueue>,
    /// Reads waiting to be put on the audit trail together
    /// (`service::audit::reads`): requests in flight.
    pub read_audits: Arc<crate::service::audit::reads::ReadAudits>,
    /// "Your scope changed" pokes for the open event streams
    /// (`max_event_streams`).
    pub events: Arc<crate::events::Events>,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        reader: DatabaseConnection,
        config: Config,
        jwt: JwtKeys,
        attachments: Arc<dyn AttachmentStore>,
        epoch: String,
    ) -> Self {
        Self {
            outage: DbOutage::new(db.clone()),
            db,
            reader,
            sync_slots: Arc::new(tokio::sync::Semaphore::new(config.max_sync_in_flight)),
            sync_queued: Arc::default(),
            pushes: Arc::default(),
            read_audits: Arc::default(),
            events: Arc::new(crate::events::Events::new(config.max_event_streams)),
            config: Arc::new(config),
            jwt: Arc::new(jwt),
            attachments,
            epoch: epoch.into(),
        }
    }
}
