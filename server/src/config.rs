//! Configuration: built-in defaults, then an optional TOML file, then
//! environment variables (`SEEDLING_*`, plus the conventional `DATABASE_URL`).
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` never shows the value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A value that must never reach a log line.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        })
    }
}

/// Everything the server can be told. Field names are the TOML keys; the
/// environment variable is `SEEDLING_` + the upper-cased name.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address `seedling serve` listens on.
    pub bind: SocketAddr,
    /// Folder for the SQLite database, the generated signing key and
    /// attachments.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`. Empty: SQLite at
    /// `<data_dir>/seedling.db`.
    pub database_url: String,
    /// Pool size. SQLite serialises writers, so its default is 1.
    pub db_max_connections: Option<u32>,
    /// HMAC keys that verify access tokens, by key id (each at least 32
    /// bytes). Set them (and `jwt_key_id`) when several server processes
    /// share a database. Empty, with `jwt_secret` empty too: the keys are
    /// the files in `<data_dir>/jwt-keys/`, one per key id, and the signing
    /// key's file is generated on first start. See docs/SECURITY.md for
    /// rotation.
    pub jwt_keys: std::collections::BTreeMap<String, Secret>,
    /// The key id new access tokens are signed with and carry in their
    /// header (`kid`).
    pub jwt_key_id: String,
    /// Shorthand for one key: the secret of `jwt_key_id`, when `jwt_keys`
    /// does not name it.
    pub jwt_secret: Secret,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token. Phones stay offline for weeks, so this
    /// outlives that.
    pub refresh_token_ttl_days: u64,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most mutations accepted in one push.
    pub max_push_mutations: usize,
    /// Most sync requests (pushes and pulls together) one process serves
    /// at once; one more is answered 503 `server_busy` with `Retry-After`,
    /// so a burst of phones cannot grow the process's memory without bound.
    pub max_sync_in_flight: usize,
    /// Sync requests that may wait, in arrival order, for one of those
    /// slots; one more is answered 503 `server_busy` at once.
    pub max_sync_queued: usize,
    /// Longest wait for a slot, in milliseconds; a request still waiting
    /// then is answered 503 `server_busy`.
    pub sync_queue_wait_ms: u64,
    /// Event streams (`GET /api/v1/sync/events`) one process holds open at
    /// once; one more is answered 503 `server_busy`.
    pub max_event_streams: usize,
    /// Seconds between an open event stream's heartbeats (an SSE comment),
    /// so proxies and phones see the connection is alive.
    pub events_heartbeat_secs: u64,
    /// A request that takes longer is answered 503 and its work dropped.
    /// It runs from the end of the headers to the start of the answer, so
    /// it covers reading the body but not streaming a download.
    pub request_timeout_secs: u64,
    /// A client must send its request line and headers within this time of
    /// opening the connection (or of its previous answer, on a kept-alive
    /// connection); otherwise the connection is closed.
    pub header_read_timeout_secs: u64,
    /// Longest pause while a request body arrives: a body that stops for
    /// longer is answered 408 `body_timeout` and nothing of it is kept.
    pub body_read_timeout_secs: u64,
    /// How long in-flight requests may run after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Where photos are kept. Empty: local disk under
    /// `<data_dir>/attachments`. Otherwise a URL `object_store` opens, e.g.
    /// `s3://bucket/prefix` (build with `--features s3`; credentials and
    /// endpoint from the `AWS_*` environment variables).
    pub attachment_store_url: String,
    /// Largest photo accepted, in bytes (the whole file, not a chunk).
    pub attachment_max_bytes: u64,
    /// Content types a photo may have.
    pub attachment_content_types: Vec<String>,
    /// Where `/metrics` (Prometheus) is served, as `host:port` on a listener
    /// of its own, e.g. `127.0.0.1:9187`. Empty: no metrics listener.
    pub metrics_listen: String,
    /// Also serve `/metrics` on the public port (`bind`). Off by default:
    /// the figures are for operators, not for every phone.
    pub metrics_on_public_port: bool,
    /// Where outbound messages for the provincial platform are posted
    /// (docs/INTEGRATION.md). Empty: nothing is delivered; messages wait in
    /// the outbox.
    pub integration_endpoint: String,
    /// Run the delivery worker inside `seedling serve` (when an endpoint is
    /// set). Turn off on processes that should only serve requests.
    pub integration_worker: bool,
    /// Id of the signing key, sent as `X-Seedling-Key-Id` so keys can rotate.
    pub integration_key_id: String,
    /// HMAC-SHA256 key shared with the platform; required with an endpoint.
    pub integration_signing_secret: Secret,
    /// How long one delivery request may take.
    pub integration_timeout_ms: u64,
    /// How long a claimed row stays reserved for its worker; must exceed
    /// the request timeout, so no two workers send a row at once.
    pub integration_lease_ms: u64,
    /// After this many failed attempts a row is parked for an admin.
    pub integration_max_attempts: u32,
    /// First retry delay; it doubles per attempt, with jitter.
    pub integration_backoff_base_ms: u64,
    /// Longest retry delay (also caps a `Retry-After`).
    pub integration_backoff_max_ms: u64,
    /// How often an idle worker looks for due rows.
    pub integration_poll_interval_ms: u64,
    /// Rows one worker claims at a time.
    pub integration_batch_size: u32,
    /// Requests one worker has in flight at once.
    pub integration_concurrency: u32,
    /// Most rows accepted in one inbound roster batch.
    pub integration_max_batch_rows: usize,
    /// Wrong passwords in a row before an account is locked out for
    /// `login_lockout_secs`.
    pub login_max_failures_per_account: u32,
    /// Failed sign-ins from one address (any account) before the address is
    /// locked out. High, because many phones share a carrier's address.
    pub login_max_failures_per_address: u32,
    /// How long a lockout lasts; failures older than this are forgotten.
    pub login_lockout_secs: u64,
    /// The district's time zone (an IANA name such as `Asia/Shanghai`): every
    /// day-based decision — register dates, visit checks, due and overdue
    /// days, reports by day and month — counts days in it. Checked at
    /// start-up.
    pub district_time_zone: String,
    /// Take the client address from the first `X-Forwarded-For` entry. Set
    /// it only behind a reverse proxy that overwrites that header.
    pub trust_forwarded_for: bool,
    /// Keys that encrypt identity-card numbers at rest, by key id (base64 of
    /// 32 random bytes). Empty: one key, id `k1`, is generated once and kept
    /// in `<data_dir>/id-number-key`.
    pub id_number_keys: std::collections::BTreeMap<String, Secret>,
    /// The key id new numbers are sealed with (see docs/SECURITY.md for
    /// rotation).
    pub id_number_key_id: String,
    /// Years after the effective date of a child's exit until
    /// `seedling retention run` archives the record (removes the personal
    /// fields, keeps what reports count). 0 turns archiving off. The default
    /// is an assumption: no rule fixes it (docs/SECURITY.md).
    pub retention_exited_years: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
            db_max_connections: None,
            jwt_keys: std::collections::BTreeMap::new(),
            jwt_key_id: "k1".to_owned(),
            jwt_secret: Secret::default(),
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_days: 90,
            max_body_bytes: 6 * 1024 * 1024,
            max_push_mutations: 500,
            max_sync_in_flight: 64,
            max_sync_queued: 1024,
            sync_queue_wait_ms: 5_000,
            max_event_streams: 2_000,
            events_heartbeat_secs: 25,
            request_timeout_secs: 30,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 20,
            shutdown_grace_secs: 20,
            attachment_store_url: String::new(),
            attachment_max_bytes: 10 * 1024 * 1024,
            attachment_content_types: ["image/jpeg", "image/png", "image/webp", "image/heic"]
                .map(str::to_owned)
                .to_vec(),
            metrics_listen: String::new(),
            metrics_on_public_port: false,
            integration_endpoint: String::new(),
            integration_worker: true,
            integration_key_id: "k1".to_owned(),
            integration_signing_secret: Secret::default(),
            integration_timeout_ms: 10_000,
            integration_lease_ms: 60_000,
            integration_max_attempts: 10,
            integration_backoff_base_ms: 2_000,
            integration_backoff_max_ms: 30 * 60 * 1000,
            integration_poll_interval_ms: 1_000,
            integration_batch_size: 50,
            integration_concurrency: 8,
            integration_max_batch_rows: 1_000,
            login_max_failures_per_account: 5,
            login_max_failures_per_address: 50,
            login_lockout_secs: 15 * 60,
            district_time_zone: sync_core::calendar::DEFAULT_DISTRICT_TIME_ZONE.to_owned(),
            trust_forwarded_for: false,
            id_number_keys: std::collections::BTreeMap::new(),
            id_number_key_id: "k1".to_owned(),
            retention_exited_years: 5,
        }
    }
}

impl Config {
    /// Defaults, then `file` (or `SEEDLING_CONFIG`, or `seedling.toml` if it
    /// exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("SEEDLING_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("seedling.toml"));
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("SEEDLING_").ignore(&["CONFIG"]))
            .merge(
                Env::raw()
                    .only(&["DATABASE_URL"])
                    .map(|_| "database_url".into()),
            )
            .extract()
            .map_err(Box::new)
    }

    /// The database URL actually used: the configured one, or the SQLite file
    /// in the data folder.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("seedling.db").display()
            )
        } else {
            self.database_url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let config = Config {
            jwt_secret: Secret::new("hunter2"),
            jwt_keys: [("k2".to_owned(), Secret::new("swordfish"))].into(),
            ..Config::default()
        };
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("swordfish"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn a_file_overrides_defaults_and_the_environment_overrides_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "seedling.toml",
                "bind = \"0.0.0.0:9000\"\nrefresh_token_ttl_days = 120\ndatabase_url = \"sqlite://from-file.db\"",
            )?;
            jail.set_env("SEEDLING_REFRESH_TOKEN_TTL_DAYS", "30");
            jail.set_env("DATABASE_URL", "postgres://db/seedling");
            let config = Config::load(None).map_err(|err| err.to_string())?;
            assert_eq!(config.bind.to_string(), "0.0.0.0:9000");
            assert_eq!(config.refresh_token_ttl_days, 30);
            assert_eq!(config.database_url, "postgres://db/seedling");
            assert_eq!(
                config.access_token_ttl_secs, 900,
                "untouched settings keep their default"
            );
            Ok(())
        });
    }

    #[test]
    #[expect(
        clippy::result_large_err,
        reason = "figment's Jail fixes the closure's error type"
    )]
    fn token_keys_from_the_file_and_the_environment_are_merged_by_key_id() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "seedling.toml",
                "jwt_key_id = \"k1\"\n[jwt_keys]\nk1 = \"old-old-old-old-old-old-old-old-old\"\n",
            )?;
            let config = Config::load(None).map_err(|err| err.to_string())?;
            assert_eq!(config.jwt_keys.keys().collect::<Vec<_>>(), ["k1"]);

            jail.set_env("SEEDLING_JWT_KEYS", "{k2=\"new\"}");
            jail.set_env("SEEDLING_JWT_KEY_ID", "k2");
            let config = Config::load(None).map_err(|err| err.to_string())?;
            assert_eq!(config.jwt_key_id, "k2");
            assert_eq!(config.jwt_keys.keys().collect::<Vec<_>>(), ["k1", "k2"]);
            assert_eq!(config.jwt_keys["k2"].expose(), "new");
            assert_eq!(
                config.jwt_keys["k1"].expose(),
                "old-old-old-old-old-old-old-old-old"
            );
            Ok(())
        });
    }

    #[test]
    fn empty_database_url_means_sqlite_in_the_data_folder() {
        let config = Config::default();
        assert_eq!(
            config.effective_database_url(),
            "sqlite://data/seedling.db?mode=rwc"
        );
    }
}
