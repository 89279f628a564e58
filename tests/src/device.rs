//! A simulated phone for end-to-end tests: signs in with its own device id,
//! keeps its own clock, pushes mutations and pulls its scope into a map of
//! records, as the real client does, with raw access to every answer.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sync_core::clock::{Hlc, HlcClock};
use sync_core::protocol::{
    Mutation, PROTOCOL_VERSION, PullEncoding, PushResponse, ScopeChecksum, read_pull,
};
use sync_core::record::{Entity, Record};
use sync_core::testing::MutationBuilder;
use uuid::Uuid;

use crate::{TestApp, fixture::PASSWORD};

#[derive(Debug)]
pub struct Device {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token: String,
    pub clock: HlcClock,
    pub cursor: Option<String>,
    pub records: BTreeMap<(Entity, Uuid), Record>,
    pub last_checksum: Option<ScopeChecksum>,
    /// How its pulls ask for records (full unless a test says otherwise).
    pub encoding: PullEncoding,
}

impl Device {
    /// Signs in as `username` (fixture password) from a new device.
    pub async fn sign_in(app: &TestApp, username: &str) -> Self {
        Self::sign_in_with(app, username, PASSWORD).await
    }

    pub async fn sign_in_with(app: &TestApp, username: &str, password: &str) -> Self {
        let id = Uuid::new_v4();
        let (status, session) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": username, "password": password, "device_id": id })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "sign-in as {username}: {session}");
        Self {
            id,
            user_id: session["user"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user id"),
            token: session["access_token"].as_str().expect("token").to_owned(),
            clock: HlcClock::new(id),
            cursor: None,
            records: BTreeMap::new(),
            last_checksum: None,
            encoding: PullEncoding::Full,
        }
    }

    /// Signs in again from this same phone (after a refusal), keeping its
    /// records and cursor.
    pub async fn sign_in_again(&mut self, app: &TestApp, username: &str) {
        let (status, session) = app
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({ "username": username, "password": PASSWORD, "device_id": self.id })),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "sign-in again as {username}: {session}"
        );
        self.token = session["access_token"].as_str().expect("token").to_owned();
    }

    /// A fresh clock reading of this phone.
    pub fn tick(&mut self) -> Hlc {
        self.clock
            .tick(chrono::Utc::now().timestamp_millis() as u64)
    }

    pub fn create(&mut self, entity: Entity, id: Uuid) -> MutationBuilder {
        let hlc = self.tick();
        MutationBuilder::create(entity, id, hlc).id(Uuid::new_v4())
    }

    /// An update based on the version this phone holds.
    pub fn update(&mut self, entity: Entity, id: Uuid) -> MutationBuilder {
        let base = self.records.get(&(entity, id)).map_or(0, |r| r.version);
        let hlc = self.tick();
        MutationBuilder::update(entity, id, base, hlc).id(Uuid::new_v4())
    }

    /// Pushes a new child in `village` from this (admin's) phone and
    /// returns its id.
    pub async fn create_child(&mut self, app: &TestApp, village: Uuid, name: &str) -> Uuid {
        let id = Uuid::new_v4();
        let m = self
            .create(Entity::Child, id)
            .set("name", json!(name))
            .set("birth_date", json!("2015-03-02"))
            .set("category", json!("in_difficulty"))
            .set("status", json!("active"))
            .set("village_id", json!(village))
            .set("guardian_name", json!("王奶奶"))
            .build();
        let response = self.push(app, &[m]).await;
        assert!(
            matches!(
                response.results[0],
                sync_core::protocol::MutationResult::Applied { .. }
            ),
            "creating a child: {:?}",
            response.results
        );
        id
    }

    /// A submitted home visit by this (director's) phone, as a builder to
    /// add fields to.
    pub fn new_visit(
        &mut self,
        child: Uuid,
        village: Uuid,
        visited_at: &str,
    ) -> (Uuid, MutationBuilder) {
        let id = Uuid::new_v4();
        let (author, device) = (self.user_id, self.id);
        let builder = self
            .create(Entity::Visit, id)
            .set("child_id", json!(child))
            .set("author_id", json!(author))
            .set("device_id", json!(device))
            .set("village_id", json!(village))
            .set("kind", json!("home_visit"))
            .set("visited_at", json!(visited_at))
            .set("review_status", json!("submitted"));
        (id, builder)
    }

    /// Pushes and returns the raw status and body.
    pub async fn push_raw(
        &mut self,
        app: &TestApp,
        mutations: &[Mutation],
        protocol_version: u32,
    ) -> (StatusCode, Value) {
        let hlc = self.tick();
        app.call(
            reqwest::Method::POST,
            "/api/v1/sync/push",
            Some(&self.token),
            Some(json!({
                "protocol_version": protocol_version,
                "device_id": self.id,
                "device_hlc": hlc,
                "mutations": mutations,
            })),
        )
        .await
    }

    /// Sends a push from a task of its own, for a test that needs it in
    /// flight while it does something else; the task answers the status,
    /// the `Retry-After` header and the body.
    pub fn push_in_background(
        &mut self,
        app: &TestApp,
        mutations: &[Mutation],
    ) -> tokio::task::JoinHandle<(StatusCode, Option<String>, Value)> {
        let body = json!({
            "protocol_version": PROTOCOL_VERSION,
            "device_id": self.id,
            "device_hlc": self.tick(),
            "mutations": mutations,
        });
        let (http, url, token) = (
            app.http.clone(),
            app.url("/api/v1/sync/push"),
            self.token.clone(),
        );
        tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("an answer");
            let status = response.status();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            (
                status,
                retry_after,
                response.json().await.expect("a JSON body"),
            )
        })
    }

    /// Pushes; panics unless the server answered 200.
    pub async fn push(&mut self, app: &TestApp, mutations: &[Mutation]) -> PushResponse {
        let (status, body) = self.push_raw(app, mutations, PROTOCOL_VERSION).await;
        assert_eq!(status, StatusCode::OK, "push: {body}");
        let response: PushResponse = serde_json::from_value(body).expect("a push response");
        self.clock.observe(
            response.server_hlc,
            chrono::Utc::now().timestamp_millis() as u64,
        );
        response
    }

    /// One pull page with the raw answer, applied to this phone's records.
    pub async fn pull_page(&mut self, app: &TestApp, limit: u32) -> (StatusCode, Value) {
        let mut path =
            format!("/api/v1/sync/pull?protocol_version={PROTOCOL_VERSION}&limit={limit}");
        if let Some(cursor) = &self.cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        if self.encoding == PullEncoding::Compact {
            path.push_str("&encoding=compact");
        }
        let (status, body) = app
            .call(reqwest::Method::GET, &path, Some(&self.token), None)
            .await;
        if status == StatusCode::OK {
            let page =
                read_pull(&serde_json::to_vec(&body).expect("JSON")).expect("a pull response");
            for record in page.changes {
                self.records.insert((record.entity, record.id), record);
            }
            for purge in page.purges {
                self.records.remove(&(purge.entity, purge.record_id));
            }
            self.cursor = Some(page.next_cursor);
            self.last_checksum = page.scope_checksum;
        }
        (status, body)
    }

    /// Pulls until the server has nothing more; returns the pages fetched.
    pub async fn pull_all(&mut self, app: &TestApp) -> usize {
        for pages in 1..=1000 {
            let (status, body) = self.pull_page(app, 200).await;
            assert_eq!(status, StatusCode::OK, "pull: {body}");
            if body["has_more"] == false {
                return pages;
            }
        }
        panic!("pull did not finish in 1000 pages");
    }

    /// The checksum of the live records this phone holds.
    pub fn checksum(&self) -> ScopeChecksum {
        ScopeChecksum::of(
            self.records
                .values()
                .filter(|r| !r.is_deleted())
                .map(|r| (r.entity, r.id, r.version)),
        )
    }

    pub fn get(&self, entity: Entity, id: Uuid) -> Option<&Record> {
        self.records.get(&(entity, id))
    }
}
