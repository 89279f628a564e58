//! The sync API as the benchmark drives it: sign in as a demo user, push
//! visit creates, pull pages; every request timed.
//!
//! This is deliberately thinner than [`seedling_client::Syncer`]: no local
//! store and no outbox, so the figures measure the server and the wire, not
//! the device's SQLite.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use sync_core::clock::{Hlc, HlcClock};
use sync_core::protocol::{
    FieldChange, Mutation, MutationResult, Op, PROTOCOL_VERSION, PullEncoding, PushRequest,
    PushResponse, read_pull,
};
use sync_core::record::Entity;
use uuid::Uuid;

/// Any failure of a benchmark request; the benchmark stops on the first.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Deserialize)]
struct LoginAnswer {
    access_token: String,
    user: LoginUser,
}

#[derive(Debug, Deserialize)]
struct LoginUser {
    id: Uuid,
    org_unit: OrgUnit,
}

#[derive(Debug, Deserialize)]
struct OrgUnit {
    id: Uuid,
}

/// A signed-in device: its token, identity and clock.
#[derive(Debug)]
pub struct Device {
    http: reqwest::Client,
    base: String,
    token: String,
    /// The device id registered at sign-in.
    pub device_id: Uuid,
    /// The signed-in user's id (the author of the visits it records).
    pub user_id: Uuid,
    /// The user's org unit (the village of a director).
    pub org_unit_id: Uuid,
    /// How its pulls ask for records (compact, as the phone's SDK does).
    pub pull_encoding: PullEncoding,
    clock: HlcClock,
}

/// What one pull pass (from a cursor until `has_more` is false) returned.
#[derive(Debug, Default, Clone)]
pub struct PullSummary {
    /// Records received, all entities.
    pub records: usize,
    /// Of which visits.
    pub visits: usize,
    /// Of which children.
    pub children: usize,
    /// Of which case-plan items.
    pub case_plan_items: usize,
    /// Pages fetched.
    pub pages: usize,
    /// Response body bytes after decompression.
    pub bytes: usize,
    /// Cursor after the last page.
    pub cursor: Option<String>,
    /// Latency of each page request.
    pub latencies: Vec<Duration>,
}

/// A child the device may record visits for.
#[derive(Debug, Clone)]
pub struct ChildRef {
    /// The child's id.
    pub id: Uuid,
    /// Active and at least a year old: a visit in the last half year is valid.
    pub preferred: bool,
}

/// Counts of a push answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct PushSummary {
    /// Mutations applied or merged.
    pub applied: usize,
    /// Mutations rejected.
    pub rejected: usize,
}

impl Device {
    /// Signs in as `username` with a fresh device id.
    pub async fn login(
        http: &reqwest::Client,
        base: &str,
        username: &str,
        password: &str,
    ) -> Result<Self, BenchError> {
        let device_id = Uuid::new_v4();
        let answer = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"username": username, "password": password, "device_id": device_id}))
            .send()
            .await?;
        let status = answer.status();
        if !status.is_success() {
            let body = answer.text().await.unwrap_or_default();
            return Err(format!("login as {username}: HTTP {status}: {body}").into());
        }
        let session: LoginAnswer = answer.json().await?;
        Ok(Self {
            http: http.clone(),
            base: base.to_owned(),
            token: session.access_token,
            device_id,
            user_id: session.user.id,
            org_unit_id: session.user.org_unit.id,
            pull_encoding: PullEncoding::Compact,
            clock: HlcClock::new(device_id),
        })
    }

    /// Pulls from `cursor` (none: bootstrap) with pages of `limit` until the
    /// server says there is no more; records children seen into `children`.
    pub async fn pull_all(
        &self,
        cursor: Option<String>,
        limit: u32,
        mut children: Option<&mut Vec<ChildRef>>,
    ) -> Result<PullSummary, BenchError> {
        let mut summary = PullSummary {
            cursor,
            ..PullSummary::default()
        };
        let old_enough = (chrono::Utc::now() - chrono::Duration::days(366))
            .format("%Y-%m-%d")
            .to_string();
        // Bounded: a scope of a million records at limit 1 would still end.
        for _ in 0..1_000_000 {
            let mut query = vec![
                ("protocol_version", PROTOCOL_VERSION.to_string()),
                ("limit", limit.to_string()),
            ];
            if let Some(c) = &summary.cursor {
                query.push(("cursor", c.clone()));
            }
            if self.pull_encoding == PullEncoding::Compact {
                query.push(("encoding", "compact".to_owned()));
            }
            let started = Instant::now();
            let answer = send_when_served(|| {
                self.http
                    .get(format!("{}/api/v1/sync/pull", self.base))
                    .bearer_auth(&self.token)
                    .query(&query)
            })
            .await?;
            let status = answer.status();
            let body = answer.bytes().await?;
            summary.latencies.push(started.elapsed());
            if !status.is_success() {
                return Err(
                    format!("pull: HTTP {status}: {}", String::from_utf8_lossy(&body)).into(),
                );
            }
            summary.bytes += body.len();
            summary.pages += 1;
            let page = read_pull(&body)?;
            for record in &page.changes {
                summary.records += 1;
                match record.entity {
                    Entity::Visit => summary.visits += 1,
                    Entity::CasePlanItem => summary.case_plan_items += 1,
                    Entity::Child => {
                        summary.children += 1;
                        if let Some(list) = children.as_deref_mut()
                            && !record.is_deleted()
                        {
                            let active = record.get_str("status") == Some("active");
                            let born_before = record
                                .get_str("birth_date")
                                .is_some_and(|b| b < old_enough.as_str());
                            list.push(ChildRef {
                                id: record.id,
                                preferred: active && born_before,
                            });
                        }
                    }
                }
            }
            summary.cursor = Some(page.next_cursor);
            if !page.has_more {
                return Ok(summary);
            }
        }
        Err("pull did not end after a million pages".into())
    }

    /// Builds `count` visit creates for `children`, the `n`-th dated
    /// `(offset + n) % 180 + 1` days ago, spread round-robin over the children.
    pub fn visit_creates(
        &mut self,
        children: &[ChildRef],
        count: usize,
        offset: usize,
    ) -> Vec<Mutation> {
        let preferred: Vec<&ChildRef> = children.iter().filter(|c| c.preferred).collect();
        let pool: Vec<&ChildRef> = if preferred.is_empty() {
            children.iter().collect()
        } else {
            preferred
        };
        let now = chrono::Utc::now();
        (0..count)
            .map(|n| {
                let child = pool[n % pool.len()];
                let days_ago = ((offset + n) % 180 + 1) as i64;
                let visited_at = now - chrono::Duration::days(days_ago)
                    + chrono::Duration::minutes((n % 600) as i64);
                let hlc = self.clock.tick(now_ms());
                visit_create(
                    hlc,
                    child.id,
                    self.user_id,
                    self.device_id,
                    self.org_unit_id,
                    visited_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    n,
                )
            })
            .collect()
    }

    /// Pushes one batch; returns the counts and the request latency.
    /// The reference client's transport for this device's session (the
    /// events stream).
    pub fn transport(&self) -> Result<seedling_client::HttpTransport, BenchError> {
        Ok(seedling_client::HttpTransport::new(
            &self.base,
            self.token.clone(),
            std::time::Duration::from_secs(120),
        )?)
    }

    pub async fn push(
        &mut self,
        mutations: Vec<Mutation>,
    ) -> Result<(PushSummary, Duration), BenchError> {
        let request = PushRequest {
            protocol_version: PROTOCOL_VERSION,
            device_id: self.device_id,
            device_hlc: self.clock.tick(now_ms()),
            mutations,
            cursor: None,
        };
        let body = serde_json::to_vec(&request)?;
        let started = Instant::now();
        let answer = send_when_served(|| {
            self.http
                .post(format!("{}/api/v1/sync/push", self.base))
                .bearer_auth(&self.token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await?;
        let status = answer.status();
        let bytes = answer.bytes().await?;
        let latency = started.elapsed();
        if !status.is_success() {
            return Err(format!("push: HTTP {status}: {}", String::from_utf8_lossy(&bytes)).into());
        }
        let response: PushResponse = serde_json::from_slice(&bytes)?;
        let _ = self.clock.observe(response.server_hlc, now_ms());
        let mut summary = PushSummary::default();
        for result in &response.results {
            match result {
                MutationResult::Applied { .. } | MutationResult::Merged { .. } => {
                    summary.applied += 1
                }
                MutationResult::Rejected { .. } => summary.rejected += 1,
            }
        }
        Ok((summary, latency))
    }
}

/// One visit create as a director's phone records it: the required fields,
/// a location, observations in the five areas and a follow-up note.
fn visit_create(
    hlc: Hlc,
    child_id: Uuid,
    author_id: Uuid,
    device_id: Uuid,
    village_id: Uuid,
    visited_at: String,
    n: usize,
) -> Mutation {
    let field = |value: Value| FieldChange::set(hlc, value);
    let fields = [
        ("child_id", field(json!(child_id))),
        ("author_id", field(json!(author_id))),
        ("device_id", field(json!(device_id))),
        ("village_id", field(json!(village_id))),
        ("kind", field(json!("home_visit"))),
        ("visited_at", field(json!(visited_at))),
        ("review_status", field(json!("submitted"))),
        ("location", field(json!("home"))),
        ("observations", field(observations(n))),
        (
            "follow_up",
            field(json!("check school attendance next visit")),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Mutation {
        mutation_id: Uuid::now_v7(),
        entity: Entity::Visit,
        record_id: Uuid::now_v7(),
        op: Op::Create,
        base_version: 0,
        hlc,
        fields,
    }
}

/// The observations object of a visit (the same shape the PouchDB side
/// stores, see `bench/pouch.js`).
pub fn observations(n: usize) -> Value {
    json!({
        "living": format!("meals regular, house clean (visit {n})"),
        "study": "attends school, grade average",
        "psychology": "cheerful, talks about friends",
        "health": "no complaints",
        "safety": "no concerns",
    })
}

/// Sends the request; while the server answers 503 `server_busy` (its cap
/// of sync requests in flight is reached), waits `Retry-After` seconds and
/// sends it again, as a phone does. The latency measured includes the
/// waits.
async fn send_when_served(
    request: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, reqwest::Error> {
    for _ in 0..100 {
        let answer = request().send().await?;
        if answer.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Ok(answer);
        }
        let wait = answer
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    request().send().await
}
