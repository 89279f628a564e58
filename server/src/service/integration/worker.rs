//! The delivery worker: posts outbox rows to the provincial platform.
//!
//! Each round it claims due rows under a lease (`repo::integration::claim`:
//! any number of workers in any number of processes never hold one row at
//! once, and a child's rows go one at a time, oldest first), posts each
//! signed with its idempotency key, and records the attempt and the row's
//! new state in one transaction. How each answer is treated is decided by
//! [`classify`]; retries wait an exponential back-off with jitter, or what
//! `Retry-After` asks; after `integration_max_attempts` a row is parked.
//!
//! On shutdown the worker claims nothing more, lets requests in flight
//! finish (they are bounded by the request timeout), and hands back rows it
//! claimed but did not start.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{outbound, signing};
use crate::config::Config;
use crate::entity::delivery_attempt;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::repo::integration::{Claimed, DELIVERED, Finish, PARKED, PENDING};
use crate::state::AppState;

/// The setting that pauses delivery in every process.
pub const PAUSED_SETTING: &str = "delivery_paused";

/// Time kept between the end of the last request a lease allows and the
/// end of the lease, for recording the attempt.
const LEASE_MARGIN: Duration = Duration::from_millis(500);

/// The most of an answer kept with an attempt.
const EXCERPT_CHARS: usize = 500;

/// What to do after an answer (or the lack of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The platform has the message.
    Delivered,
    /// Try again later (after `Retry-After` when the platform sent one).
    Retry,
    /// Retrying unchanged cannot succeed: park for an admin.
    Park,
}

/// The status-class policy (docs/INTEGRATION.md §5). `None`: no answer
/// (connection refused or reset, timeout).
pub fn classify(status: Option<StatusCode>) -> Verdict {
    let Some(status) = status else {
        return Verdict::Retry;
    };
    match status.as_u16() {
        200..=299 => Verdict::Delivered,
        // Timeout, too early, being processed under this key, rate limited.
        408 | 409 | 425 | 429 => Verdict::Retry,
        500..=599 => Verdict::Retry,
        // 1xx, 3xx (redirects are not followed) and every other 4xx: the
        // request is wrong for this endpoint; a retry would be the same.
        _ => Verdict::Park,
    }
}

/// The delay before attempt `attempt + 1` after `attempt` failures:
/// `base · 2^(attempt−1)` capped at `max`, then a random point in its upper
/// half ("equal jitter"), so workers that failed together do not retry
/// together.
pub fn backoff(attempt: u32, base: Duration, max: Duration, rng: &mut impl Rng) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    half + full.saturating_sub(half).mul_f64(rng.r#gen::<f64>())
}

/// `Retry-After` as seconds or an HTTP date, as a delay from `now`.
pub fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Settings of one worker, taken from the configuration.
#[derive(Clone, Debug)]
struct Settings {
    endpoint: String,
    key_id: String,
    secret: Vec<u8>,
    timeout: Duration,
    lease: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    poll: Duration,
    batch: u64,
    concurrency: usize,
}

impl Settings {
    fn from_config(config: &Config) -> AppResult<Self> {
        if config.integration_signing_secret.is_empty() {
            return Err(AppError::Internal(
                "integration_signing_secret must be set when integration_endpoint is".to_owned(),
            ));
        }
        let margin = u64::try_from(LEASE_MARGIN.as_millis()).unwrap_or(u64::MAX);
        if config.integration_lease_ms <= config.integration_timeout_ms.saturating_add(margin) {
            return Err(AppError::Internal(format!(
                "integration_lease_ms must exceed integration_timeout_ms by more than {margin} ms"
            )));
        }
        Ok(Self {
            endpoint: config.integration_endpoint.clone(),
            key_id: config.integration_key_id.clone(),
            secret: config
                .integration_signing_secret
                .expose()
                .as_bytes()
                .to_vec(),
            timeout: Duration::from_millis(config.integration_timeout_ms),
            lease: Duration::from_millis(config.integration_lease_ms),
            max_attempts: config.integration_max_attempts.max(1),
            backoff_base: Duration::from_millis(config.integration_backoff_base_ms),
            backoff_max: Duration::from_millis(config.integration_backoff_max_ms),
            poll: Duration::from_millis(config.integration_poll_interval_ms.max(1)),
            batch: u64::from(config.integration_batch_size.max(1)),
            concurrency: usize::try_from(config.integration_concurrency.max(1)).unwrap_or(1),
        })
    }
}

/// One delivery worker. Several may run in one process or many.
#[derive(Clone, Debug)]
pub struct DeliveryWorker {
    db: DatabaseConnection,
    http: reqwest::Client,
    settings: Arc<Settings>,
    id: Uuid,
}

impl DeliveryWorker {
    /// A worker posting to the configured endpoint.
    pub fn new(state: &AppState) -> AppResult<Self> {
        let settings = Settings::from_config(&state.config)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(state.config.integration_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("seedling/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| AppError::Internal(format!("building the HTTP client: {err}")))?;
        Ok(Self {
            db: state.db.clone(),
            http,
            settings: Arc::new(settings),
            id: Uuid::now_v7(),
        })
    }

    /// This worker's id, recorded with each of its attempts.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Delivers until `shutdown` turns true, then finishes what is in
    /// flight and returns.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        tracing::info!(worker = %self.id, endpoint = %self.settings.endpoint, "delivery worker started");
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = stopping.clone();
        let mut watcher = shutdown.clone();
        let watch_task = tokio::spawn(async move {
            while !*watcher.borrow() {
                if watcher.changed().await.is_err() {
                    break;
                }
            }
            flag.store(true, Ordering::SeqCst);
        });
        while !stopping.load(Ordering::SeqCst) {
            let worked = match self.round(&stopping).await {
                Ok(count) => count,
                Err(err) => {
                    tracing::warn!(worker = %self.id, error = %err, "delivery round failed");
                    0
                }
            };
            if worked == 0 {
                tokio::select! {
                    () = tokio::time::sleep(self.settings.poll) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        watch_task.abort();
        tracing::info!(worker = %self.id, "delivery worker stopped");
    }

    /// One round: claim due rows and attempt each. Returns how many rows
    /// were claimed (0 when paused or nothing is due).
    pub async fn round(&self, stopping: &AtomicBool) -> AppResult<usize> {
        if paused(&self.db).await? {
            return Ok(0);
        }
        let lease = Uuid::now_v7();
        // The clock starts once the connection is held: waiting for it must
        // not eat into the lease.
        let txn = crate::repo::begin_write(&self.db).await?;
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let rows = repo::integration::claim(&txn, lease, now, until, self.settings.batch).await?;
        txn.commit().await?;
        let count = rows.len();
        // A request started after this could outlive the lease, and another
        // worker could claim the row meanwhile: such rows are handed back.
        let last_start = until
            - chrono::Duration::from_std(self.settings.timeout + LEASE_MARGIN).unwrap_or_default();
        let unstarted = std::sync::Mutex::new(Vec::new());
        futures::stream::iter(rows)
            .for_each_concurrent(self.settings.concurrency, |row| {
                let unstarted = &unstarted;
                async move {
                    if stopping.load(Ordering::SeqCst) || Utc::now() > last_start {
                        unstarted.lock().map(|mut list| list.push(row.id)).ok();
                        return;
                    }
                    if let Err(err) = self.attempt(row, lease).await {
                        tracing::warn!(worker = %self.id, error = %err, "recording a delivery attempt failed; the row is retried when its lease runs out");
                    }
                }
            })
            .await;
        let unstarted = unstarted.into_inner().unwrap_or_default();
        if !unstarted.is_empty() {
            repo::integration::release(&self.db, lease, &unstarted).await?;
        }
        Ok(count)
    }

    /// Posts one row and records the attempt.
    async fn attempt(&self, row: Claimed, lease: Uuid) -> AppResult<()> {
        let settings = &self.settings;
        let attempt_no = row.attempts.saturating_add(1);
        let body = serde_json::to_vec(&outbound::envelope(&row))
            .map_err(|err| AppError::Internal(err.to_string()))?;
        let started_at = Utc::now();
        let timestamp = started_at.timestamp();
        let signature = signing::sign(&settings.secret, timestamp, &body);
        let clock = Instant::now();
        let sent = self
            .http
            .post(&settings.endpoint)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("idempotency-key", row.id.to_string())
            .header("x-seedling-event", row.kind.as_str())
            .header("x-seedling-timestamp", timestamp.to_string())
            .header("x-seedling-key-id", settings.key_id.as_str())
            .header("x-seedling-signature", signature)
            .header("x-seedling-attempt", attempt_no.to_string())
            .body(body)
            .send()
            .await;
        let (status, wait, excerpt, error) = match sent {
            Ok(response) => {
                let status = response.status();
                let wait = retry_after(response.headers(), std::time::SystemTime::now());
                let excerpt = match response.text().await {
                    Ok(text) => Some(text.chars().take(EXCERPT_CHARS).collect::<String>()),
                    Err(err) => Some(format!("(answer unreadable: {err})")),
                };
                (Some(status), wait, excerpt, None)
            }
            Err(err) => (None, None, None, Some(describe(&err))),
        };
        let latency_ms = i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX);
        let now = Utc::now();
        let mut verdict = classify(status);
        let failure = match (&error, status) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(status)) if verdict != Verdict::Delivered => Some(format!("HTTP {status}")),
            _ => None,
        };
        if verdict == Verdict::Retry
            && u32::try_from(attempt_no).unwrap_or(u32::MAX) >= settings.max_attempts
        {
            verdict = Verdict::Park;
        }
        let delay = match verdict {
            Verdict::Retry => wait.map_or_else(
                || {
                    backoff(
                        u32::try_from(attempt_no).unwrap_or(1),
                        settings.backoff_base,
                        settings.backoff_max,
                        &mut rand::thread_rng(),
                    )
                },
                |wait| wait.min(settings.backoff_max),
            ),
            _ => Duration::ZERO,
        };
        let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
        let (state, outcome) = match verdict {
            Verdict::Delivered => (DELIVERED, "delivered"),
            Verdict::Retry => (PENDING, "retry"),
            Verdict::Park => (PARKED, "parked"),
        };
        let last_error = match (verdict, &failure) {
            (Verdict::Park, Some(failure)) if classify(status) == Verdict::Retry => Some(format!(
                "gave up after {attempt_no} attempts; last: {failure}"
            )),
            (_, failure) => failure.clone(),
        };
        crate::metrics::delivery(
            outcome,
            (verdict == Verdict::Delivered)
                .then(|| (now - row.created_at).to_std().unwrap_or_default()),
        );
        match verdict {
            Verdict::Delivered => {
                tracing::debug!(event = %row.id, attempt = attempt_no, latency_ms, "delivered")
            }
            Verdict::Retry => {
                tracing::info!(event = %row.id, attempt = attempt_no, error = ?failure, retry_in_ms = delay.as_millis() as u64, "delivery failed; will retry")
            }
            Verdict::Park => {
                tracing::warn!(event = %row.id, attempt = attempt_no, error = ?last_error, "delivery parked for an admin")
            }
        }
        let record = delivery_attempt::Model {
            id: Uuid::now_v7(),
            outbox_id: row.id,
            attempt: attempt_no,
            started_at,
            latency_ms,
            status_code: status.map(|s| i32::from(s.as_u16())),
            outcome: outcome.to_owned(),
            error: failure,
            response_excerpt: excerpt,
            key_id: settings.key_id.clone(),
            worker_id: self.id,
        };
        let txn = crate::repo::begin_write(&self.db).await?;
        let kept = repo::integration::finish(
            &txn,
            row.id,
            lease,
            Finish {
                status: state,
                attempts: attempt_no,
                next_attempt_at: next,
                last_error,
                delivered_at: (verdict == Verdict::Delivered).then_some(now),
            },
            record,
        )
        .await?;
        txn.commit().await?;
        if !kept {
            tracing::warn!(event = %row.id, "lease ran out before the attempt was recorded; another worker owns the row now");
        }
        Ok(())
    }
}

/// True when an admin paused delivery (in any process).
pub async fn paused(db: &DatabaseConnection) -> AppResult<bool> {
    Ok(repo::integration::setting(db, PAUSED_SETTING)
        .await?
        .and_then(|value| value.as_bool())
        .unwrap_or(false))
}

/// Starts the worker when delivery is configured and enabled. `None` when
/// it is not (no endpoint, or `integration_worker = false`).
pub fn spawn(
    state: &AppState,
    shutdown: watch::Receiver<bool>,
) -> AppResult<Option<JoinHandle<()>>> {
    if !state.config.integration_worker || state.config.integration_endpoint.is_empty() {
        return Ok(None);
    }
    let worker = DeliveryWorker::new(state)?;
    Ok(Some(tokio::spawn(worker.run(shutdown))))
}

fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text.chars().take(EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn each_status_class_is_treated_as_documented() {
        let verdict = |code: u16| classify(Some(StatusCode::from_u16(code).unwrap()));
        for code in [200, 201, 202, 204] {
            assert_eq!(verdict(code), Verdict::Delivered, "{code}");
        }
        for code in [408, 409, 425, 429, 500, 502, 503, 504] {
            assert_eq!(verdict(code), Verdict::Retry, "{code}");
        }
        for code in [301, 302, 400, 401, 403, 404, 413, 422] {
            assert_eq!(verdict(code), Verdict::Park, "{code}");
        }
        assert_eq!(classify(None), Verdict::Retry, "no answer at all");
    }

    #[test]
    fn backoff_doubles_within_jitter_and_stops_at_the_cap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        for attempt in 1..=12u32 {
            let full = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let delay = backoff(attempt, base, max, &mut rng);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "attempt {attempt}: {delay:?}"
                );
            }
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_403_200);
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(90)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers, now), None);
    }
}
