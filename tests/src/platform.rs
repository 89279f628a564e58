//! A stand-in for the provincial platform: an axum server on `127.0.0.1:0`
//! that receives Seedling's outbound messages as docs/INTEGRATION.md says
//! the real one does. It verifies each signature (HMAC-SHA256 over
//! `<timestamp>.<body>`, by key id, checked here with `ring` on its own) and
//! idempotency key, applies each message once (a repeated key is answered
//! 200 again without applying), records everything it received, and can be
//! told to misbehave: fail with a status, answer 429 with `Retry-After`,
//! hold answers past the sender's timeout, fail a share of requests, or go
//! down altogether (and come back on the same port).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;
use uuid::Uuid;

/// How the stand-in answers.
#[derive(Clone, Debug, PartialEq)]
pub enum Behaviour {
    /// Verify, apply once, answer 200.
    Normal,
    /// Answer this status without applying.
    Fail(u16),
    /// Answer 429 with `Retry-After: <secs>` without applying.
    RetryAfter(u64),
    /// Apply, then hold the answer this long (past the sender's timeout,
    /// the answer is lost: the sender must retry and be recognised).
    Hold(Duration),
    /// Answer 500 to about this share of requests (deterministically, by a
    /// counter), the rest normally.
    FailShare(f64),
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub idempotency_key: String,
    pub event_type: String,
    pub key_id: String,
    pub signature_ok: bool,
    pub status: u16,
}

/// One message applied (once per idempotency key), in the order applied.
#[derive(Clone, Debug)]
pub struct Applied {
    pub idempotency_key: String,
    pub event_type: String,
    pub child_id: Option<String>,
    pub body: Value,
}

#[derive(Debug, Default)]
struct Inner {
    received: Vec<Received>,
    applied: Vec<Applied>,
    applied_keys: HashSet<String>,
    in_flight: HashSet<String>,
    concurrent_duplicates: usize,
    requests: u64,
}

#[derive(Debug)]
struct Shared {
    keys: Mutex<HashMap<String, Vec<u8>>>,
    behaviour: Mutex<Behaviour>,
    inner: Mutex<Inner>,
    tolerance_secs: i64,
}

/// The running stand-in.
#[derive(Debug)]
pub struct StandIn {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<
        Option<(
            tokio::sync::oneshot::Sender<()>,
            tokio::task::JoinHandle<()>,
        )>,
    >,
}

impl StandIn {
    /// Starts on a free loopback port, accepting signatures under `key_id`.
    pub async fn start(key_id: &str, secret: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the stand-in");
        let addr = listener.local_addr().expect("stand-in address");
        let shared = Arc::new(Shared {
            keys: Mutex::new(HashMap::from([(
                key_id.to_owned(),
                secret.as_bytes().to_vec(),
            )])),
            behaviour: Mutex::new(Behaviour::Normal),
            inner: Mutex::new(Inner::default()),
            tolerance_secs: 300,
        });
        let stand_in = Self {
            addr,
            shared,
            server: Mutex::new(None),
        };
        stand_in.serve(listener);
        stand_in
    }

    /// The URL messages are posted to.
    pub fn endpoint(&self) -> String {
        format!("http://{}/seedling/events", self.addr)
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let app = Router::new()
            .route("/seedling/events", post(receive))
            .with_state(self.shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        *self.server.lock().expect("stand-in lock") = Some((tx, task));
    }

    /// Stops listening: connections are refused until [`StandIn::come_up`].
    pub async fn go_down(&self) {
        let running = self.server.lock().expect("stand-in lock").take();
        if let Some((tx, task)) = running {
            let _ = tx.send(());
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same address.
    pub async fn come_up(&self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("rebind the stand-in's port");
        self.serve(listener);
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().expect("stand-in lock") = behaviour;
    }

    /// Accepts (only) this key from now on.
    pub fn set_key(&self, key_id: &str, secret: &str) {
        *self.shared.keys.lock().expect("stand-in lock") =
            HashMap::from([(key_id.to_owned(), secret.as_bytes().to_vec())]);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared
            .inner
            .lock()
            .expect("stand-in lock")
            .received
            .clone()
    }

    pub fn applied(&self) -> Vec<Applied> {
        self.shared
            .inner
            .lock()
            .expect("stand-in lock")
            .applied
            .clone()
    }

    /// Times a message arrived while another copy of it was being handled.
    pub fn concurrent_duplicates(&self) -> usize {
        self.shared
            .inner
            .lock()
            .expect("stand-in lock")
            .concurrent_duplicates
    }
}

async fn receive(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let key = header("idempotency-key");
    let event_type = header("x-seedling-event");
    let key_id = header("x-seedling-key-id");
    let signature_ok = verify(&shared, &headers, &body);
    let record = |status: StatusCode| {
        let mut inner = shared.inner.lock().expect("stand-in lock");
        inner.received.push(Received {
            idempotency_key: key.clone(),
            event_type: event_type.clone(),
            key_id: key_id.clone(),
            signature_ok,
            status: status.as_u16(),
        });
    };
    if !signature_ok {
        record(StatusCode::UNAUTHORIZED);
        return (StatusCode::UNAUTHORIZED, r#"{"error":"bad_signature"}"#).into_response();
    }
    if key.is_empty() {
        record(StatusCode::BAD_REQUEST);
        return (
            StatusCode::BAD_REQUEST,
            r#"{"error":"missing_idempotency_key"}"#,
        )
            .into_response();
    }
    let behaviour = shared.behaviour.lock().expect("stand-in lock").clone();
    let nth = {
        let mut inner = shared.inner.lock().expect("stand-in lock");
        inner.requests += 1;
        inner.requests
    };
    match behaviour {
        Behaviour::Fail(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            record(status);
            return (status, r#"{"error":"told_to_fail"}"#).into_response();
        }
        Behaviour::RetryAfter(secs) => {
            record(StatusCode::TOO_MANY_REQUESTS);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", secs.to_string())],
                r#"{"error":"slow_down"}"#,
            )
                .into_response();
        }
        Behaviour::FailShare(share) => {
            // A fixed, well-spread sequence: request n fails when the
            // fractional part of n·φ falls below the share.
            let golden = 0.618_033_988_749_895_f64;
            #[expect(clippy::cast_precision_loss, reason = "a request counter")]
            let point = (nth as f64 * golden).fract();
            if point < share {
                record(StatusCode::INTERNAL_SERVER_ERROR);
                return (StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"flaky"}"#).into_response();
            }
        }
        Behaviour::Normal | Behaviour::Hold(_) => {}
    }
    let _in_flight = InFlight {
        shared: shared.clone(),
        key: key.clone(),
    };
    let fresh = {
        let mut inner = shared.inner.lock().expect("stand-in lock");
        if !inner.in_flight.insert(key.clone()) {
            inner.concurrent_duplicates += 1;
        }
        let fresh = inner.applied_keys.insert(key.clone());
        if fresh {
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            inner.applied.push(Applied {
                idempotency_key: key.clone(),
                event_type: event_type.clone(),
                child_id: parsed["child_id"].as_str().map(str::to_owned),
                body: parsed,
            });
        }
        fresh
    };
    if let Behaviour::Hold(wait) = behaviour {
        tokio::time::sleep(wait).await;
    }
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    record(status);
    let answer = if fresh { "accepted" } else { "duplicate" };
    (status, format!(r#"{{"status":"{answer}"}}"#)).into_response()
}

/// Marks a message as being handled until dropped (also when the sender
/// hangs up mid-request and the handler is cancelled).
struct InFlight {
    shared: Arc<Shared>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.shared.inner.lock() {
            inner.in_flight.remove(&self.key);
        }
    }
}

/// Checks the documented signature with `ring`, independently of the
/// server's own code: key id known, timestamp within tolerance,
/// `v1=hex(HMAC-SHA256(key, "<timestamp>.<body>"))`.
fn verify(shared: &Shared, headers: &HeaderMap, body: &[u8]) -> bool {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(key_id), Some(timestamp), Some(signature)) = (
        get("x-seedling-key-id"),
        get("x-seedling-timestamp"),
        get("x-seedling-signature"),
    ) else {
        return false;
    };
    let Some(secret) = shared
        .keys
        .lock()
        .expect("stand-in lock")
        .get(key_id)
        .cloned()
    else {
        return false;
    };
    let Ok(sent_at) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - sent_at).abs() > shared.tolerance_secs {
        return false;
    }
    let Some(tag) = signature.strip_prefix("v1=").and_then(decode_hex) else {
        return false;
    };
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Writes `per_child` messages for each child, interleaved across
/// children, with strictly increasing creation times. Returns each child's
/// message ids in order.
pub async fn enqueue(
    db: &impl sea_orm::ConnectionTrait,
    children: usize,
    per_child: usize,
) -> BTreeMap<Uuid, Vec<Uuid>> {
    let ids: Vec<Uuid> = (0..children).map(|_| Uuid::new_v4()).collect();
    let mut order: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    let start = chrono::Utc::now() - chrono::Duration::seconds(60);
    let mut n = 0i64;
    for round in 0..per_child {
        for child in &ids {
            n += 1;
            let id = Uuid::now_v7();
            let at = start + chrono::Duration::milliseconds(n);
            seedling_server::repo::sync_records::enqueue(
                db,
                vec![seedling_server::entity::outbox::Model {
                    id,
                    kind: "visit_approved".to_owned(),
                    aggregate_id: Uuid::new_v4(),
                    payload: serde_json::json!({ "child_id": child, "round": round }),
                    status: "pending".to_owned(),
                    attempts: 0,
                    next_attempt_at: at,
                    locked_until: None,
                    last_error: None,
                    created_at: at,
                    delivered_at: None,
                }],
            )
            .await
            .expect("enqueue");
            order.entry(*child).or_default().push(id);
        }
    }
    order
}

/// Every message applied exactly once by the stand-in, and each child's
/// messages applied in the order they were written.
pub fn assert_exactly_once_in_order(stand_in: &StandIn, order: &BTreeMap<Uuid, Vec<Uuid>>) {
    let applied = stand_in.applied();
    let expected: usize = order.values().map(Vec::len).sum();
    assert_eq!(applied.len(), expected, "every message applied once");
    let mut seen = std::collections::HashSet::new();
    for message in &applied {
        assert!(
            seen.insert(message.idempotency_key.clone()),
            "{} applied twice",
            message.idempotency_key
        );
    }
    for (child, ids) in order {
        let got: Vec<String> = applied
            .iter()
            .filter(|m| m.child_id.as_deref() == Some(&child.to_string()))
            .map(|m| m.idempotency_key.clone())
            .collect();
        let want: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        assert_eq!(got, want, "messages of child {child} out of order");
    }
}
