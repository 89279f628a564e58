//! Test harness for Seedling's end-to-end tests: a real server on
//! `127.0.0.1:0` over a fresh database (a SQLite file in a temporary folder,
//! or a new PostgreSQL database per test), and HTTP clients signed in as the
//! roles of a small fixture district.

pub mod chaos;
pub mod device;
pub mod disk;
pub mod fixture;
pub mod platform;
pub mod sockets;

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use seedling_server::AppState;
use seedling_server::auth::jwt::JwtKeys;
use seedling_server::config::{Config, Secret};
use serde_json::{Value, json};
use uuid::Uuid;

pub use device::Device;
pub use fixture::Fixture;

/// The HMAC key of every test server, so tests can forge tokens on purpose.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// The identity-number key of every test server (one key ring per process).
pub const TEST_ID_NUMBER_KEY: &str = "dGVzdC1pZC1udW1iZXIta2V5LTMyLWJ5dGVzLTAxMjM=";

/// Where PostgreSQL tests create their databases. CI must reach it: the
/// PostgreSQL tests fail, never skip, when it is down.
pub fn postgres_admin_url() -> String {
    std::env::var("SEEDLING_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server over its own fresh database.
#[derive(Debug)]
pub struct TestApp {
    pub base_url: String,
    pub state: AppState,
    pub http: reqwest::Client,
    pub backend: Backend,
    _data_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    /// A server over an empty, migrated database of the given backend.
    pub async fn new(backend: Backend) -> Self {
        Self::with_config(backend, |_| {}).await
    }

    /// As [`TestApp::new`], with the configuration adjusted first.
    pub async fn with_config(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temporary folder");
        let database_url = match backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                data_dir.path().join("seedling.db").display()
            ),
            Backend::Postgres => create_postgres_database().await,
        };
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            database_url,
            jwt_secret: Secret::new(TEST_JWT_SECRET),
            id_number_keys: [("k1".to_owned(), Secret::new(TEST_ID_NUMBER_KEY))].into(),
            ..Config::default()
        };
        adjust(&mut config);
        let (state, base_url, shutdown) = start(config).await;
        Self {
            base_url,
            state,
            http: reqwest::Client::new(),
            backend,
            _data_dir: data_dir,
            shutdown: Some(shutdown),
        }
    }

    /// Stops this server and starts a new one over the same database and
    /// data folder, with the configuration adjusted first: an operator's
    /// restart after editing the configuration.
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Config)) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let mut config = Config::clone(&self.state.config);
        adjust(&mut config);
        let (state, base_url, shutdown) = start(config).await;
        self.state = state;
        self.base_url = base_url;
        self.shutdown = Some(shutdown);
    }

    /// Stops this server and closes its database connections, runs
    /// `offline` (an operator's work while it is down, such as a restore)
    /// with its configuration, then starts a new server with it.
    pub async fn restart_around<F, Fut>(&mut self, offline: F)
    where
        F: FnOnce(Config) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = self.state.db.clone().close().await;
        let _ = self.state.reader.clone().close().await;
        let config = Config::clone(&self.state.config);
        offline(config.clone()).await;
        let (state, base_url, shutdown) = start(config).await;
        self.state = state;
        self.base_url = base_url;
        self.shutdown = Some(shutdown);
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.state.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// The same server's keys, to forge tokens in tests.
    pub fn jwt(&self) -> &JwtKeys {
        &self.state.jwt
    }

    /// Sends a request with an optional bearer token and JSON body and
    /// returns the status and the JSON answer (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let bytes = response.bytes().await.expect("response body");
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "{status}: body is not JSON: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, value)
    }

    /// Signs in and returns the whole session answer.
    pub async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({
                "username": username,
                "password": password,
                "device_id": Uuid::new_v4(),
                "device_name": "test phone",
            })),
        )
        .await
    }

    /// Signs in and returns the access token, panicking on failure.
    pub async fn token_for(&self, username: &str) -> String {
        let (status, body) = self.login(username, fixture::PASSWORD).await;
        assert_eq!(status, StatusCode::OK, "sign-in as {username}: {body}");
        body["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }
}

/// Builds the state and serves it on `127.0.0.1:0`.
async fn start(config: Config) -> (AppState, String, tokio::sync::oneshot::Sender<()>) {
    let state = seedling_server::startup::build_state(config)
        .await
        .expect("server state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base_url = format!("http://{}", listener.local_addr().expect("local addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let serve_state = state.clone();
    tokio::spawn(async move {
        let _ = seedling_server::serve(serve_state, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    (state, base_url, tx)
}

/// Waits (polling) until `check` holds, failing after a generous deadline.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let waited = tokio::time::timeout(std::time::Duration::from_secs(90), async {
        while !check().await {
            tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for {what}");
}

/// `text` percent-encoded for a query string (unreserved bytes kept).
pub fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts the standard error envelope with the given status and code.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "unexpected status; body: {body}");
    assert_eq!(
        body["error"]["code"], code,
        "unexpected error code; body: {body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error needs a message: {body}"
    );
}

async fn create_postgres_database() -> String {
    let admin_url = postgres_admin_url();
    let admin = Database::connect(&admin_url).await.unwrap_or_else(|err| {
        panic!(
            "PostgreSQL is not reachable at {admin_url} ({err}). Start it \
             (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) \
             or point SEEDLING_TEST_POSTGRES at one."
        )
    });
    let name = format!("seedling_test_{}", Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("SEEDLING_TEST_POSTGRES must end with /<database>"),
    }
}

/// Generates `#[tokio::test]`s that run each scenario (an `async fn(TestApp)`
/// in the calling module) once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::TestApp::new($crate::Backend::Sqlite).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::TestApp::new($crate::Backend::Postgres).await).await;
                }
            )*
        }
    };
}
