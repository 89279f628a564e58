//! The authorization matrix: every route of the API, taken from the OpenAPI
//! document the router generates, called by every kind of caller — no
//! token, a director of the object's village, of another village of the
//! same town, of another town, the object's town supervisor, another town's
//! supervisor, the district admin, the integration account, and a phone
//! reported lost — with the answer each must get. A route without a row
//! fails the test, so a new route cannot ship without its decision here.
//!
//! Objects (a child, a visit, a photo, a phone) live in village A1 of town
//! A, so "own" and "other" are relative to them: the matrix checks
//! object-level scope too, not only roles.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use seedling_tests::{Device, Fixture, TestApp, fixture::PASSWORD, on_both_backends};
use serde_json::{Value, json};
use sync_core::merge::Reason;
use sync_core::protocol::{MutationResult, PROTOCOL_VERSION};
use uuid::Uuid;

use crate::attachments::support::{photo, sha256_hex, upload_whole, visit_with_photos};

/// A different photo for every upload of the matrix.
fn rand_seed() -> u8 {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(100);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

on_both_backends!(every_route_answers_every_caller_as_the_matrix_says);

/// Who calls, relative to the objects (which live in village A1, town A).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Caller {
    Anonymous,
    Director,
    DirectorOtherVillage,
    DirectorOtherTown,
    Supervisor,
    SupervisorOtherTown,
    Admin,
    Integration,
    LostPhone,
}

const CALLERS: [Caller; 9] = [
    Caller::Anonymous,
    Caller::Director,
    Caller::DirectorOtherVillage,
    Caller::DirectorOtherTown,
    Caller::Supervisor,
    Caller::SupervisorOtherTown,
    Caller::Admin,
    Caller::Integration,
    Caller::LostPhone,
];

impl Caller {
    fn username(self) -> Option<&'static str> {
        match self {
            Self::Anonymous => None,
            Self::Director | Self::LostPhone => Some("director-a1"),
            Self::DirectorOtherVillage => Some("director-a2"),
            Self::DirectorOtherTown => Some("director-b1"),
            Self::Supervisor => Some("supervisor-a"),
            Self::SupervisorOtherTown => Some("supervisor-b"),
            Self::Admin => Some("admin"),
            Self::Integration => Some("integration"),
        }
    }
}

/// What a caller must get. One letter per caller in the table below.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// `o`: served (2xx).
    Served,
    /// `u`: 401, not signed in (or the credentials do not hold).
    Unauthenticated,
    /// `f`: 403, the role may not do this.
    Forbidden,
    /// `h`: the object is outside the caller's area: 404 (or 403), or, for
    /// sync, refused per mutation or absent from the pull.
    Hidden,
    /// `r`: 403 `device_revoked`, the phone must wipe.
    Revoked,
}

fn expectations(row: &str) -> Vec<Expect> {
    let letters: Vec<char> = row.chars().filter(|c| !c.is_whitespace()).collect();
    assert_eq!(letters.len(), CALLERS.len(), "row {row:?}");
    letters
        .into_iter()
        .map(|letter| match letter {
            'o' => Expect::Served,
            'u' => Expect::Unauthenticated,
            'f' => Expect::Forbidden,
            'h' => Expect::Hidden,
            'r' => Expect::Revoked,
            other => panic!("unknown letter {other:?} in {row:?}"),
        })
        .collect()
}

/// A fresh session of one caller: its token, refresh token and device.
struct Session {
    user_id: Uuid,
    token: Option<String>,
    refresh_token: String,
    device_id: Uuid,
}

/// The objects of village A1 the requests are about.
struct World {
    fixture: Fixture,
    child: Uuid,
    visit: Uuid,
    photo_sha: String,
    lost: Session,
    /// The outbound message the child's registration wrote.
    outbox_id: Uuid,
}

/// One request, as a row builds it for one caller.
struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
    raw: Option<(&'static str, Vec<u8>)>,
}

impl Request {
    fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            body: None,
            raw: None,
        }
    }

    fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// How a served answer is read for object-level rows; the default treats
/// every 2xx as served.
type Classify = fn(&World, StatusCode, &Value) -> Option<Expect>;

struct Row {
    method: &'static str,
    path: &'static str,
    expect: &'static str,
    build: fn(&World, Caller, &Session) -> Request,
    classify: Option<Classify>,
}

/// The matrix. Letters, in order: anonymous, director (own village),
/// director (other village), director (other town), supervisor (own town),
/// supervisor (other town), admin, integration, lost phone.
fn rows() -> Vec<Row> {
    vec![
        Row {
            method: "get",
            path: "/healthz",
            expect: "ooooooooo",
            build: |_, _, _| Request::new(Method::GET, "/healthz"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/readyz",
            expect: "ooooooooo",
            build: |_, _, _| Request::new(Method::GET, "/readyz"),
            classify: None,
        },
        Row {
            // The body carries the credentials; anonymous sends wrong ones,
            // the lost phone signs in with its own device id.
            method: "post",
            path: "/api/v1/auth/login",
            expect: "uooooooor",
            build: |world, caller, _| {
                let (username, password) = match caller.username() {
                    Some(name) => (name, PASSWORD),
                    None => ("director-a1", "wrong password"),
                };
                let device = if caller == Caller::LostPhone {
                    world.lost.device_id
                } else {
                    Uuid::new_v4()
                };
                Request::new(Method::POST, "/api/v1/auth/login").json(
                    json!({ "username": username, "password": password, "device_id": device }),
                )
            },
            classify: None,
        },
        Row {
            // Anonymous presents a made-up token; the lost phone's tokens
            // were revoked when it was reported.
            method: "post",
            path: "/api/v1/auth/refresh",
            expect: "uooooooou",
            build: |_, _, session| {
                Request::new(Method::POST, "/api/v1/auth/refresh")
                    .json(json!({ "refresh_token": session.refresh_token }))
            },
            classify: None,
        },
        Row {
            // Only the refresh token counts: an unknown or revoked one is
            // answered 204 too, which tells nothing.
            method: "post",
            path: "/api/v1/auth/logout",
            expect: "ooooooooo",
            build: |_, _, session| {
                Request::new(Method::POST, "/api/v1/auth/logout")
                    .json(json!({ "refresh_token": session.refresh_token }))
            },
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/auth/me",
            expect: "uooooooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/auth/me"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/org-units",
            expect: "uooooooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/org-units"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/users",
            expect: "ufffooofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/users"),
            classify: None,
        },
        Row {
            method: "post",
            path: "/api/v1/users",
            expect: "ufffffofr",
            build: |_, _, _| {
                Request::new(Method::POST, "/api/v1/users").json(json!({
                    "username": format!("director-new-{}", Uuid::new_v4().simple()),
                    "display_name": "新主任",
                    "role": "director",
                    "org_unit_code": "990000001001",
                    "password": "a-long-enough-password",
                }))
            },
            classify: None,
        },
        Row {
            // Town B's supervisor, renamed to the name it has.
            method: "patch",
            path: "/api/v1/users/{id}",
            expect: "ufffffofr",
            build: |world, _, _| {
                Request::new(
                    Method::PATCH,
                    format!("/api/v1/users/{}", world.fixture.user_id("supervisor-b")),
                )
                .json(json!({ "display_name": "测试 supervisor-b" }))
            },
            classify: None,
        },
        Row {
            // Town B's supervisor gets the password it has (every row signs
            // in afresh, so the revoked refresh tokens end no later row).
            method: "post",
            path: "/api/v1/users/{id}/password",
            expect: "ufffffofr",
            build: |world, _, _| {
                Request::new(
                    Method::POST,
                    format!(
                        "/api/v1/users/{}/password",
                        world.fixture.user_id("supervisor-b")
                    ),
                )
                .json(json!({ "password": PASSWORD }))
            },
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/devices",
            expect: "ufffooofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/devices"),
            classify: None,
        },
        Row {
            // The phone of village A1's director.
            method: "put",
            path: "/api/v1/devices/{id}/state",
            expect: "ufffohofr",
            build: |world, _, _| {
                Request::new(
                    Method::PUT,
                    format!("/api/v1/devices/{}/state", world.lost.device_id),
                )
                .json(json!({ "state": "lost", "reason": "matrix" }))
            },
            classify: None,
        },
        Row {
            // A visit to the child of village A1, from the caller's phone.
            method: "post",
            path: "/api/v1/sync/push",
            expect: "uohhfhffr",
            build: |world, _, session| {
                let mut phone = Device {
                    id: session.device_id,
                    user_id: session.user_id,
                    token: String::new(),
                    clock: sync_core::clock::HlcClock::new(session.device_id),
                    cursor: None,
                    records: Default::default(),
                    last_checksum: None,
                    encoding: Default::default(),
                };
                let (_, builder) = phone.new_visit(
                    world.child,
                    world.fixture.village_a1,
                    "2026-11-20T09:30:00+08:00",
                );
                let mutation = builder
                    .set("observations", json!({ "living": "正常" }))
                    .build();
                Request::new(Method::POST, "/api/v1/sync/push").json(json!({
                    "protocol_version": PROTOCOL_VERSION,
                    "device_id": session.device_id,
                    "device_hlc": phone.tick(),
                    "mutations": [mutation],
                }))
            },
            classify: Some(|_, status, body| {
                if !status.is_success() {
                    return None;
                }
                let results: Vec<MutationResult> =
                    serde_json::from_value(body["results"].clone()).ok()?;
                Some(match results.as_slice() {
                    [MutationResult::Applied { .. }] => Expect::Served,
                    [
                        MutationResult::Rejected {
                            reason: Reason::OutOfScope | Reason::UnknownChild,
                            ..
                        },
                    ] => Expect::Hidden,
                    [MutationResult::Rejected { .. }] => Expect::Forbidden,
                    other => panic!("one result expected: {other:?}"),
                })
            }),
        },
        Row {
            // Is the child of village A1 in the caller's pull?
            method: "get",
            path: "/api/v1/sync/pull",
            expect: "uohhohofr",
            build: |_, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/sync/pull?protocol_version={PROTOCOL_VERSION}&limit=1000"),
                )
            },
            classify: Some(|world, status, body| {
                if !status.is_success() {
                    return None;
                }
                let child = world.child.to_string();
                let holds = body["changes"]
                    .as_array()?
                    .iter()
                    .any(|record| record["id"] == child.as_str());
                Some(if holds {
                    Expect::Served
                } else {
                    Expect::Hidden
                })
            }),
        },
        Row {
            // Does the caller's manifest list the child of village A1?
            method: "get",
            path: "/api/v1/sync/manifest",
            expect: "uohhohofr",
            build: |_, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/sync/manifest?protocol_version={PROTOCOL_VERSION}"),
                )
            },
            classify: Some(|world, status, body| {
                if !status.is_success() {
                    return None;
                }
                let child = world.child.to_string();
                let holds = body["entries"]
                    .as_array()?
                    .iter()
                    .any(|entry| entry[1] == child.as_str());
                Some(if holds {
                    Expect::Served
                } else {
                    Expect::Hidden
                })
            }),
        },
        Row {
            // Every device may hear of changes in its own scope; the
            // events name no record, so there is nothing to hide.
            method: "get",
            path: "/api/v1/sync/events",
            expect: "uoooooofr",
            build: |_, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/sync/events?protocol_version={PROTOCOL_VERSION}"),
                )
            },
            classify: None,
        },
        Row {
            // Asking for the child of village A1 by id.
            method: "post",
            path: "/api/v1/sync/fetch",
            expect: "uohhohofr",
            build: |world, _, _| {
                Request::new(Method::POST, "/api/v1/sync/fetch").json(json!({
                    "protocol_version": PROTOCOL_VERSION,
                    "records": [{"entity": "child", "id": world.child}],
                }))
            },
            classify: Some(|world, status, body| {
                if !status.is_success() {
                    return None;
                }
                let child = world.child.to_string();
                let holds = body["changes"]
                    .as_array()?
                    .iter()
                    .any(|record| record["id"] == child.as_str());
                Some(if holds {
                    Expect::Served
                } else {
                    Expect::Hidden
                })
            }),
        },
        Row {
            // Does the caller's RxDB pull of children carry the child of
            // village A1?
            method: "get",
            path: "/api/v1/rxdb/{collection}/pull",
            expect: "uohhohofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/rxdb/children/pull?batchSize=1000"),
            classify: Some(|world, status, body| {
                if !status.is_success() {
                    return None;
                }
                let child = world.child.to_string();
                let holds = body["documents"]
                    .as_array()?
                    .iter()
                    .any(|doc| doc["id"] == child.as_str() && doc["_deleted"] == false);
                Some(if holds {
                    Expect::Served
                } else {
                    Expect::Hidden
                })
            }),
        },
        Row {
            // A new visit to the child of village A1, as an RxDB app pushes
            // it; the answer is the server's document, or a deleted one
            // whose `purged` says why it was refused.
            method: "post",
            path: "/api/v1/rxdb/{collection}/push",
            expect: "uohhfhffr",
            build: |world, _, session| {
                let hlc = sync_core::clock::HlcClock::new(session.device_id)
                    .tick(u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0))
                    .to_string();
                let fields = [
                    ("child_id", json!(world.child)),
                    ("author_id", json!(session.user_id)),
                    ("village_id", json!(world.fixture.village_a1)),
                    ("kind", json!("home_visit")),
                    ("visited_at", json!("2026-11-20T09:30:00+08:00")),
                    ("review_status", json!("submitted")),
                ];
                let mut doc =
                    json!({ "id": Uuid::new_v4(), "_deleted": false, "field_clocks": {} });
                for (name, value) in fields {
                    doc[name] = value;
                    doc["field_clocks"][name] = json!(hlc);
                }
                Request::new(Method::POST, "/api/v1/rxdb/visits/push").json(json!([
                    { "assumedMasterState": null, "newDocumentState": doc }
                ]))
            },
            classify: Some(|_, status, body| {
                if !status.is_success() {
                    return None;
                }
                let [doc] = body.as_array()?.as_slice() else {
                    panic!("one document expected: {body}");
                };
                Some(match doc["purged"].as_str() {
                    None if doc["_deleted"] == false => Expect::Served,
                    Some("out_of_scope" | "unknown_child") => Expect::Hidden,
                    _ => Expect::Forbidden,
                })
            }),
        },
        Row {
            // Does the caller's WatermelonDB pull carry the child of
            // village A1?
            method: "get",
            path: "/api/v1/watermelon/pull",
            expect: "uohhohofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/watermelon/pull?limit=5000"),
            classify: Some(|world, status, body| {
                if !status.is_success() {
                    return None;
                }
                let child = world.child.to_string();
                let holds = body["changes"]["children"]["updated"]
                    .as_array()?
                    .iter()
                    .any(|raw| raw["id"] == child.as_str());
                Some(if holds {
                    Expect::Served
                } else {
                    Expect::Hidden
                })
            }),
        },
        Row {
            // A new visit to the child of village A1, as a WatermelonDB app
            // pushes it; its result says whether it was applied or why not.
            method: "post",
            path: "/api/v1/watermelon/push",
            expect: "uohhfhffr",
            build: |world, _, session| {
                let hlc = sync_core::clock::HlcClock::new(session.device_id)
                    .tick(u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0))
                    .to_string();
                let fields = [
                    ("child_id", json!(world.child)),
                    ("author_id", json!(session.user_id)),
                    ("village_id", json!(world.fixture.village_a1)),
                    ("kind", json!("home_visit")),
                    ("visited_at", json!("2026-11-20T09:30:00+08:00")),
                    ("review_status", json!("submitted")),
                ];
                let mut raw = json!({ "id": Uuid::new_v4(), "_status": "created", "_changed": "" });
                let mut clocks = serde_json::Map::new();
                for (name, value) in fields {
                    raw[name] = value;
                    clocks.insert(name.to_owned(), json!(hlc));
                }
                raw["field_clocks"] = json!(Value::Object(clocks).to_string());
                Request::new(Method::POST, "/api/v1/watermelon/push")
                    .json(json!({ "changes": { "visits": { "created": [raw] } } }))
            },
            classify: Some(|_, status, body| {
                if !status.is_success() {
                    return None;
                }
                let [result] = body["results"].as_array()?.as_slice() else {
                    panic!("one result expected: {body}");
                };
                Some(match result["reason"].as_str() {
                    None if result["status"] == "applied" => Expect::Served,
                    Some("out_of_scope" | "unknown_child") => Expect::Hidden,
                    _ => Expect::Forbidden,
                })
            }),
        },
        Row {
            // Uploading is open to every phone: photos are content-addressed
            // and readable only through a visit in scope.
            method: "put",
            path: "/api/v1/attachments/{sha256}",
            expect: "uoooooofr",
            build: |_, _, _| {
                let bytes = photo(1_000, rand_seed());
                let sha = sha256_hex(&bytes);
                let mut request = Request::new(Method::PUT, format!("/api/v1/attachments/{sha}"));
                request.raw = Some(("image/jpeg", bytes));
                request
            },
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/attachments/{sha256}/status",
            expect: "uoooooofr",
            build: |world, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/attachments/{}/status", world.photo_sha),
                )
            },
            classify: None,
        },
        Row {
            // Filtered to town A: another town's supervisor is refused;
            // directors get no reports.
            method: "get",
            path: "/api/v1/reports/overdue",
            expect: "ufffofoor",
            build: |world, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/reports/overdue?town_id={}", world.fixture.town_a),
                )
            },
            classify: None,
        },
        Row {
            // Each caller's own area; directors get no reports.
            method: "get",
            path: "/api/v1/reports/coverage",
            expect: "ufffoooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/reports/coverage"),
            classify: None,
        },
        Row {
            // Each caller's own area; directors get no reports.
            method: "get",
            path: "/api/v1/reports/visits-by-month",
            expect: "ufffoooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/reports/visits-by-month"),
            classify: None,
        },
        Row {
            // Each caller's own area; directors get no reports.
            method: "get",
            path: "/api/v1/reports/register-changes",
            expect: "ufffoooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/reports/register-changes"),
            classify: None,
        },
        Row {
            // Each caller's own area; directors get no reports.
            method: "get",
            path: "/api/v1/reports/open-needs",
            expect: "ufffoooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/reports/open-needs"),
            classify: None,
        },
        Row {
            // Each caller's own area; directors get no reports.
            method: "get",
            path: "/api/v1/reports/benefits",
            expect: "ufffoooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/reports/benefits"),
            classify: None,
        },
        Row {
            // Each caller's own area; directors get no reports.
            method: "get",
            path: "/api/v1/reports/dashboard",
            expect: "ufffoooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/reports/dashboard"),
            classify: None,
        },
        Row {
            // Phones compute due dates from the rules: every role reads them.
            method: "get",
            path: "/api/v1/visit-rules",
            expect: "uooooooor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/visit-rules"),
            classify: None,
        },
        Row {
            method: "put",
            path: "/api/v1/visit-rules/{category}",
            expect: "ufffffofr",
            build: |_, _, _| {
                Request::new(Method::PUT, "/api/v1/visit-rules/left_behind")
                    .json(json!({ "interval_days": 60 }))
            },
            classify: None,
        },
        Row {
            method: "delete",
            path: "/api/v1/visit-rules/{category}",
            expect: "ufffffofr",
            build: |_, _, _| Request::new(Method::DELETE, "/api/v1/visit-rules/left_behind"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/attachments/{sha256}",
            expect: "uohhohofr",
            build: |world, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/attachments/{}", world.photo_sha),
                )
            },
            classify: None,
        },
        Row {
            // Client credentials: only the integration account holds some.
            method: "post",
            path: "/api/v1/integration/token",
            expect: "uuuuuuuou",
            build: |_, caller, _| {
                let (client, secret) = match caller.username() {
                    Some(name) => (name, PASSWORD),
                    None => ("integration", "wrong secret"),
                };
                Request::new(Method::POST, "/api/v1/integration/token").json(json!({
                    "grant_type": "client_credentials",
                    "client_id": client,
                    "client_secret": secret,
                }))
            },
            classify: None,
        },
        Row {
            method: "post",
            path: "/api/v1/integration/roster-batches",
            expect: "uffffffor",
            build: |_, _, _| {
                Request::new(Method::POST, "/api/v1/integration/roster-batches").json(json!({
                    "batch_id": Uuid::new_v4().to_string(),
                    "dry_run": true,
                    "rows": [{ "action": "add", "external_id": "MATRIX-1", "fields": {
                        "name": "矩阵", "birth_date": "2015-01-01",
                        "category": "in_difficulty", "village_code": "990000001001" } }],
                }))
            },
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/integration/changes",
            expect: "ufffffoor",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/integration/changes"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/integration/admin/status",
            expect: "ufffffofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/integration/admin/status"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/integration/admin/parked",
            expect: "ufffffofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/integration/admin/parked"),
            classify: None,
        },
        Row {
            // The message the child's registration wrote.
            method: "get",
            path: "/api/v1/integration/admin/deliveries/{id}",
            expect: "ufffffofr",
            build: |world, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/integration/admin/deliveries/{}", world.outbox_id),
                )
            },
            classify: None,
        },
        Row {
            // The message is not parked: an admin is told so (409).
            method: "post",
            path: "/api/v1/integration/admin/deliveries/{id}/replay",
            expect: "ufffffofr",
            build: |world, _, _| {
                Request::new(
                    Method::POST,
                    format!(
                        "/api/v1/integration/admin/deliveries/{}/replay",
                        world.outbox_id
                    ),
                )
            },
            classify: Some(|_, status, _| {
                (status == StatusCode::CONFLICT).then_some(Expect::Served)
            }),
        },
        Row {
            method: "post",
            path: "/api/v1/integration/admin/replay-parked",
            expect: "ufffffofr",
            build: |_, _, _| Request::new(Method::POST, "/api/v1/integration/admin/replay-parked"),
            classify: None,
        },
        Row {
            method: "post",
            path: "/api/v1/integration/admin/pause",
            expect: "ufffffofr",
            build: |_, _, _| Request::new(Method::POST, "/api/v1/integration/admin/pause"),
            classify: None,
        },
        Row {
            method: "post",
            path: "/api/v1/integration/admin/resume",
            expect: "ufffffofr",
            build: |_, _, _| Request::new(Method::POST, "/api/v1/integration/admin/resume"),
            classify: None,
        },
        Row {
            // The visit log: supervisors and the district read it (another
            // town's supervisor gets an empty page), nobody else.
            method: "get",
            path: "/api/v1/visits",
            expect: "ufffooofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/visits"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/visits/{id}",
            expect: "ufffohofr",
            build: |world, _, _| {
                Request::new(Method::GET, format!("/api/v1/visits/{}", world.visit))
            },
            classify: None,
        },
        Row {
            // An urgent alert's acknowledgement: the town's supervisor and
            // the district reach it (the matrix's visit raised no alert:
            // 409, nothing changes); another town's supervisor does not
            // see the visit; directors and the rest are refused.
            method: "post",
            path: "/api/v1/visits/{id}/acknowledge",
            expect: "ufffohofr",
            build: |world, _, _| {
                Request::new(
                    Method::POST,
                    format!("/api/v1/visits/{}/acknowledge", world.visit),
                )
                .json(json!({ "action": "acknowledged" }))
            },
            classify: Some(|_, status, _| {
                (status == StatusCode::CONFLICT).then_some(Expect::Served)
            }),
        },
        Row {
            // A decision on a stale version: the town's supervisor reaches
            // the decision (409, nothing changes); only supervisors decide.
            method: "post",
            path: "/api/v1/visits/{id}/review",
            expect: "ufffohffr",
            build: |world, _, _| {
                Request::new(
                    Method::POST,
                    format!("/api/v1/visits/{}/review", world.visit),
                )
                .json(json!({ "decision": "return", "comment": "矩阵", "version": 0 }))
            },
            classify: Some(|_, status, _| {
                (status == StatusCode::CONFLICT).then_some(Expect::Served)
            }),
        },
        Row {
            method: "get",
            path: "/api/v1/children",
            expect: "ufffooofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/children"),
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/children/{id}",
            expect: "ufffohofr",
            build: |world, _, _| {
                Request::new(Method::GET, format!("/api/v1/children/{}", world.child))
            },
            classify: None,
        },
        Row {
            // Subject access is the bureau's: admins only, audited.
            method: "get",
            path: "/api/v1/children/{id}/export",
            expect: "ufffffofr",
            build: |world, _, _| {
                Request::new(
                    Method::GET,
                    format!("/api/v1/children/{}/export", world.child),
                )
            },
            classify: None,
        },
        Row {
            method: "get",
            path: "/api/v1/conflicts",
            expect: "ufffooofr",
            build: |_, _, _| Request::new(Method::GET, "/api/v1/conflicts"),
            classify: None,
        },
        Row {
            // No conflict has this id: readers get 404, the rest 403.
            method: "post",
            path: "/api/v1/conflicts/{id}/resolve",
            expect: "ufffhhhfr",
            build: |_, _, _| {
                Request::new(
                    Method::POST,
                    format!("/api/v1/conflicts/{}/resolve", Uuid::nil()),
                )
                .json(json!({ "action": "keep" }))
            },
            classify: None,
        },
    ]
}

async fn sign_in(app: &TestApp, username: &str) -> Session {
    let device_id = Uuid::new_v4();
    let (status, session) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": username, "password": PASSWORD, "device_id": device_id })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "sign-in as {username}: {session}");
    Session {
        user_id: session["user"]["id"].as_str().unwrap().parse().unwrap(),
        token: session["access_token"].as_str().map(str::to_owned),
        refresh_token: session["refresh_token"].as_str().unwrap().to_owned(),
        device_id,
    }
}

async fn session_of(app: &TestApp, world: &World, caller: Caller) -> Session {
    match caller {
        Caller::Anonymous => Session {
            user_id: Uuid::nil(),
            token: None,
            refresh_token: "not-a-refresh-token".to_owned(),
            device_id: Uuid::new_v4(),
        },
        Caller::LostPhone => Session {
            user_id: world.lost.user_id,
            token: world.lost.token.clone(),
            refresh_token: world.lost.refresh_token.clone(),
            device_id: world.lost.device_id,
        },
        other => sign_in(app, other.username().unwrap()).await,
    }
}

/// Sends the request; the answer's body as JSON (`null` when it is not,
/// as for a photo download).
async fn send(app: &TestApp, token: Option<&str>, request: Request) -> (StatusCode, Value) {
    let mut builder = app.http.request(request.method, app.url(&request.path));
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    if let Some((content_type, bytes)) = request.raw {
        builder = builder.header("content-type", content_type).body(bytes);
    }
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    let mut response = builder.send().await.unwrap();
    let status = response.status();
    let streaming = response
        .headers()
        .get("content-type")
        .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
    if streaming {
        // An event stream stays open: its first event shows it was served.
        let first = response.chunk().await.unwrap().unwrap_or_default();
        assert!(first.starts_with(b"event: ready"), "{first:?}");
        return (status, Value::Null);
    }
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn outcome(status: StatusCode, body: &Value) -> Expect {
    match status {
        s if s.is_success() => Expect::Served,
        StatusCode::UNAUTHORIZED => Expect::Unauthenticated,
        StatusCode::FORBIDDEN if body["error"]["code"] == "device_revoked" => Expect::Revoked,
        StatusCode::FORBIDDEN => Expect::Forbidden,
        StatusCode::NOT_FOUND => Expect::Hidden,
        other => panic!("unexpected {other}: {body}"),
    }
}

async fn world(app: &TestApp) -> World {
    let fixture = Fixture::load(app).await;
    let mut admin = Device::sign_in(app, "admin").await;
    let child = admin
        .create_child(app, fixture.village_a1, "矩阵小孩")
        .await;
    // A photo on a visit of village A1.
    let director = app.token_for("director-a1").await;
    let photo_sha = upload_whole(app, &director, &photo(2_000, 42)).await;
    let mut phone = Device::sign_in(app, "director-a1").await;
    let visit = visit_with_photos(app, &mut phone, fixture.village_a1, &[&photo_sha]).await;
    // A phone of the same director, reported lost by the admin.
    let lost = sign_in(app, "director-a1").await;
    let admin_token = app.token_for("admin").await;
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/api/v1/devices/{}/state", lost.device_id),
            Some(&admin_token),
            Some(json!({ "state": "lost" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let outbox_id = {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        use seedling_server::entity::outbox;
        outbox::Entity::find()
            .filter(outbox::Column::AggregateId.eq(child))
            .one(app.db())
            .await
            .unwrap()
            .expect("the child's registration wrote an outbound message")
            .id
    };
    World {
        fixture,
        child,
        visit,
        photo_sha,
        lost,
        outbox_id,
    }
}

async fn every_route_answers_every_caller_as_the_matrix_says(app: TestApp) {
    let world = world(&app).await;
    let _ = world.visit;
    let rows = rows();

    // Every documented route has exactly one row, and every row a route.
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.insert((method.clone(), path.clone()));
        }
    }
    let covered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|row| (row.method.to_owned(), row.path.to_owned()))
        .collect();
    let missing: Vec<_> = routes.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "routes without a matrix row: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&routes).collect();
    assert!(stale.is_empty(), "matrix rows without a route: {stale:?}");

    let mut wrong = Vec::new();
    for row in &rows {
        for (caller, expected) in CALLERS.into_iter().zip(expectations(row.expect)) {
            let session = session_of(&app, &world, caller).await;
            let request = (row.build)(&world, caller, &session);
            let (status, body) = send(&app, session.token.as_deref(), request).await;
            let got = row
                .classify
                .and_then(|classify| classify(&world, status, &body))
                .unwrap_or_else(|| outcome(status, &body));
            // Outside the caller's area, 403 and 404 both hide the object.
            let hidden_as_forbidden = expected == Expect::Hidden && got == Expect::Forbidden;
            if got != expected && !hidden_as_forbidden {
                wrong.push(format!(
                    "{} {} as {caller:?}: expected {expected:?}, got {got:?} ({status} {body})",
                    row.method, row.path
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
