//! Shared state handed to every request. It holds no sync state: any number
//! of server processes can run side by side on one database.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::jwt::JwtKeys;
use crate::config::Config;
use crate::storage::AttachmentStore;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
    /// Where photo bytes live (local disk, or an S3-compatible store).
    pub attachments: Arc<dyn AttachmentStore>,
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        config: Config,
        jwt: JwtKeys,
        attachments: Arc<dyn AttachmentStore>,
    ) -> Self {
        Self {
            db,
            config: Arc::new(config),
            jwt: Arc::new(jwt),
            attachments,
        }
    }
}
