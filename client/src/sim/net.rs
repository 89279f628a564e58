//! The simulator's side of the network: signing in over REST, and the
//! transport each simulated phone uses — one or several servers (picked at
//! random per request, for the scale-out run) behind a tap that records
//! every answer the server sent, so the checks can count conflicts even
//! when the fault layer above it loses the answer.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde::Deserialize;
use serde_json::json;
use sync_core::protocol::{
    FetchRequest, FetchResponse, ManifestRequest, ManifestResponse, MutationResult, PullRequest,
    PullResponse, PushRequest, PushResponse,
};
use uuid::Uuid;

use super::SimError;
use crate::{
    backoff::Jitter,
    stats::Latency,
    transport::{HttpTransport, Transport, TransportError},
};

/// How long one request may take before the phone gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server answered to a sign-in, as far as the simulator needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    /// The bearer token.
    pub access_token: String,
    /// The signed-in user.
    pub user: SessionUser,
}

/// The user part of a sign-in answer.
#[derive(Debug, Clone, Deserialize)]
pub struct SessionUser {
    /// The user's id.
    pub id: Uuid,
    /// `director`, `supervisor` or `admin`.
    pub role: String,
    /// The unit the user works in (village, town or district).
    pub org_unit: OrgUnitRef,
}

/// An org unit reference.
#[derive(Debug, Clone, Deserialize)]
pub struct OrgUnitRef {
    /// The unit's id.
    pub id: Uuid,
}

/// Signs `username` in from the device `device_id` named after `label`,
/// retrying a few times when the server is not reachable yet.
pub async fn sign_in(
    http: &reqwest::Client,
    server: &str,
    username: &str,
    label: &str,
    password: &str,
    device_id: Uuid,
) -> Result<Session, SimError> {
    let body = json!({
        "username": username,
        "password": password,
        "device_id": device_id,
        "device_name": format!("seedling-sim {label}"),
    });
    let mut last = String::new();
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        let sent = http
            .post(format!("{server}/api/v1/auth/login"))
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| SimError::Http(format!("sign-in answer of {username}: {e}")));
        }
        last = format!(
            "HTTP {status}: {}",
            response.text().await.unwrap_or_default()
        );
        if !status.is_server_error() {
            break;
        }
    }
    Err(SimError::Http(format!("signing in as {username}: {last}")))
}

/// Every answer the servers sent, shared by all phones of a run, and how
/// long each request took.
#[derive(Debug, Default)]
pub struct Tap {
    results: Mutex<HashMap<Uuid, MutationResult>>,
    pushes: AtomicUsize,
    requests: AtomicUsize,
    errors: AtomicUsize,
    push_times: Mutex<Vec<Duration>>,
    pull_times: Mutex<Vec<Duration>>,
    progress: Option<Arc<AtomicUsize>>,
}

impl Tap {
    /// A tap that also counts answered pushes into `progress`.
    pub fn new(progress: Option<Arc<AtomicUsize>>) -> Self {
        Self {
            progress,
            ..Self::default()
        }
    }

    fn record(&self, answer: &PushResponse) {
        if let Ok(mut results) = self.results.lock() {
            for r in &answer.results {
                results.entry(r.mutation_id()).or_insert_with(|| r.clone());
            }
        }
        self.pushes.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = &self.progress {
            p.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One result per mutation id the servers answered.
    pub fn results(&self) -> Vec<MutationResult> {
        self.results
            .lock()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Push requests the servers answered.
    pub fn pushes(&self) -> usize {
        self.pushes.load(Ordering::Relaxed)
    }

    /// Requests sent to the servers (pushes and pulls, faults excluded).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests that failed below the fault layer: no connection, a
    /// timeout, a 5xx or any other error answer.
    pub fn errors(&self) -> usize {
        self.errors.load(Ordering::Relaxed)
    }

    /// Percentiles of the time from sending a push to reading its answer,
    /// over the pushes the servers answered.
    pub fn push_latency(&self) -> Latency {
        self.push_times
            .lock()
            .map_or_else(|_| Latency::default(), |t| Latency::of(&t))
    }

    /// The same for pulls.
    pub fn pull_latency(&self) -> Latency {
        self.pull_times
            .lock()
            .map_or_else(|_| Latency::default(), |t| Latency::of(&t))
    }

    /// Counts a request and, when it was answered, how long it took.
    fn time<T>(
        &self,
        times: &Mutex<Vec<Duration>>,
        started: Instant,
        outcome: &Result<T, TransportError>,
    ) {
        if outcome.is_ok() {
            if let Ok(mut t) = times.lock() {
                t.push(started.elapsed());
            }
        } else {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A phone's link to the servers: each request goes to one of them, chosen
/// by a seeded generator; every push answer is shown to the [`Tap`].
#[derive(Debug)]
pub struct SimTransport {
    routes: Vec<HttpTransport>,
    pick: Mutex<Jitter>,
    tap: Arc<Tap>,
}

impl SimTransport {
    /// A link to `servers` with the access token `token`.
    pub fn new(
        servers: &[String],
        token: &str,
        seed: u64,
        tap: Arc<Tap>,
    ) -> Result<Self, SimError> {
        let routes = servers
            .iter()
            .map(|s| HttpTransport::new(s.clone(), token, REQUEST_TIMEOUT))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SimError::Http(e.to_string()))?;
        if routes.is_empty() {
            return Err(SimError::Config("at least one server is needed".into()));
        }
        Ok(Self {
            routes,
            pick: Mutex::new(Jitter::seeded(seed)),
            tap,
        })
    }

    fn route(&self) -> &HttpTransport {
        let n = self.routes.len();
        let draw = self.pick.lock().map_or(0.0, |mut j| j.next_f64());
        // `draw` is in [0, 1), so the index is below `n`.
        let i = ((draw * n as f64) as usize).min(n - 1);
        &self.routes[i]
    }
}

impl Transport for SimTransport {
    async fn push(&self, request: PushRequest) -> Result<PushResponse, TransportError> {
        self.tap.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = self.route().push(request).await;
        self.tap.time(&self.tap.push_times, started, &outcome);
        let answer = outcome?;
        self.tap.record(&answer);
        Ok(answer)
    }

    async fn pull(&self, request: PullRequest) -> Result<PullResponse, TransportError> {
        self.tap.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = self.route().pull(request).await;
        self.tap.time(&self.tap.pull_times, started, &outcome);
        outcome
    }

    async fn manifest(&self, request: ManifestRequest) -> Result<ManifestResponse, TransportError> {
        self.tap.requests.fetch_add(1, Ordering::Relaxed);
        self.route().manifest(request).await
    }

    async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse, TransportError> {
        self.tap.requests.fetch_add(1, Ordering::Relaxed);
        self.route().fetch(request).await
    }
}
