//! Shared state handed to every request. It holds no sync state: any number
//! of server processes can run side by side on one database.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::auth::jwt::JwtKeys;
use crate::config::Config;

#[derive(Clone, Debug)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub config: Arc<Config>,
    pub jwt: Arc<JwtKeys>,
}

impl AppState {
    pub fn new(db: DatabaseConnection, config: Config, jwt: JwtKeys) -> Self {
        Self {
            db,
            config: Arc::new(config),
            jwt: Arc::new(jwt),
        }
    }
}
