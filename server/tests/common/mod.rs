//! Helpers for tests that run the real `seedling` binary: a fresh database
//! (a SQLite file or a new PostgreSQL database), the demo district loaded
//! with `seedling seed-demo`, and `seedling serve` processes on free
//! loopback ports, polled on `/readyz` until they answer.

#![allow(dead_code)] // each test binary uses a different part of the helpers

use std::{path::Path, process::Stdio, time::Duration};

use sea_orm::{ConnectionTrait, Database};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The signing key every server process of a test shares.
pub const JWT_SECRET: &str = "kill9-test-secret-kill9-test-secret-0001";

/// Where PostgreSQL tests create their databases.
fn postgres_admin_url() -> String {
    std::env::var("SEEDLING_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A new, empty PostgreSQL database; its URL.
pub async fn fresh_postgres() -> String {
    let admin_url = postgres_admin_url();
    let admin = Database::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is not reachable at {admin_url}: {e}"));
    let name = format!("seedling_test_{}", Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    let _ = admin.close().await;
    let (server, _) = admin_url
        .rsplit_once('/')
        .expect("URL ends with /<database>");
    format!("{server}/{name}")
}

/// A SQLite database file in `dir`; its URL.
pub fn sqlite_in(dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", dir.join("seedling.db").display())
}

/// The `seedling` binary, configured for `dir` and `database_url`.
pub fn seedling(dir: &Path, database_url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_seedling"));
    command
        .current_dir(dir)
        .env("SEEDLING_DATA_DIR", dir)
        .env("SEEDLING_JWT_SECRET", JWT_SECRET)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Loads the demo district with `seedling seed-demo`.
pub async fn seed_demo(dir: &Path, database_url: &str) {
    seed_demo_with(dir, database_url, &[]).await;
}

/// As [`seed_demo`], with extra environment variables.
pub async fn seed_demo_with(dir: &Path, database_url: &str, env: &[(&str, &str)]) {
    let status = seedling(dir, database_url)
        .envs(env.iter().copied())
        .arg("seed-demo")
        .status()
        .await
        .expect("run seedling seed-demo");
    assert!(status.success(), "seedling seed-demo failed: {status}");
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A running `seedling serve`.
#[derive(Debug)]
pub struct Server {
    /// Its base URL.
    pub url: String,
    /// The process (killed when dropped).
    pub process: Child,
}

impl Server {
    /// Starts `seedling serve` on `port` and waits until `/readyz` answers.
    pub async fn start(dir: &Path, database_url: &str, port: u16) -> Self {
        Self::start_with(dir, database_url, port, &[]).await
    }

    /// As [`Server::start`], with extra environment variables.
    pub async fn start_with(
        dir: &Path,
        database_url: &str,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let process = seedling(dir, database_url)
            .envs(env.iter().copied())
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .spawn()
            .expect("start seedling serve");
        let server = Self {
            url: format!("http://127.0.0.1:{port}"),
            process,
        };
        server.wait_ready().await;
        server
    }

    /// Polls `/readyz` (every 50 ms, for at most 60 s).
    async fn wait_ready(&self) {
        let http = reqwest::Client::new();
        for _ in 0..1200 {
            let ready = http
                .get(format!("{}/readyz", self.url))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} never became ready", self.url);
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub async fn kill9(mut self) {
        self.process.start_kill().expect("SIGKILL the server");
        let status = self.process.wait().await.expect("reap the server");
        assert!(!status.success(), "the server was killed: {status}");
    }
}

/// A loopback TCP forwarder in front of one server that counts what passes,
/// so a test can show each of several servers really answered.
pub struct CountingProxy {
    /// Its base URL (point clients here instead of at the server).
    pub url: String,
    /// Connections accepted.
    pub connections: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Bytes the server sent back through it.
    pub answered_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(target_url: &str) -> Self {
        use std::sync::atomic::Ordering;
        let target = target_url
            .strip_prefix("http://")
            .expect("an http:// URL")
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let connections = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let answered_bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (conns, bytes) = (connections.clone(), answered_bytes.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::Relaxed);
                let (target, bytes) = (target.clone(), bytes.clone());
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    if let Ok((_, back)) =
                        tokio::io::copy_bidirectional(&mut client, &mut server).await
                    {
                        bytes.fetch_add(back, Ordering::Relaxed);
                    }
                });
            }
        });
        Self {
            url,
            connections,
            answered_bytes,
            task,
        }
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
