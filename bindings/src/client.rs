//! [`SeedlingClient`]: one phone's store and its server, as an app sees
//! them. Each method is one call of `seedling-client` (`Store`, `Auth`,
//! `Syncer`), run to completion on the client's own tokio runtime; values
//! cross as records of plain types.

use std::{sync::Arc, time::Duration};

use seedling_client::{
    Auth, Backoff, HttpTransport, Jitter, LocalRecord, NewVisit as ClientVisit, Session, Store,
    SyncError, SyncOptions, SyncReport, Syncer, TokioSleeper, TransportError, edit::Change,
};
use serde_json::Value;
use sync_core::{
    calendar::Calendar,
    record::{Entity, Record},
};

use crate::{
    SeedlingError,
    core::{DueStatus, parse_calendar, parse_day, parse_uuid},
};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Retries inside one `sync_now`: an app calls it again at the next network
/// change, so one call gives up after three tries (waits of at most 1, 2
/// s) instead of the client's default of minutes.
const SYNC_NOW_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(8),
    max_attempts: 3,
};

/// The signed-in user.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct User {
    /// User id.
    pub id: String,
    /// Sign-in name.
    pub username: String,
    /// Name to show.
    pub display_name: String,
    /// `director`, `supervisor` or `admin`.
    pub role: String,
    /// The village (town, district) the user works in.
    pub org_unit_id: String,
    /// Its name.
    pub org_unit_name: String,
    /// The district's IANA time zone: days are counted in it.
    pub district_time_zone: String,
}

impl From<&Session> for User {
    fn from(s: &Session) -> Self {
        Self {
            id: s.user.id.to_string(),
            username: s.user.username.clone(),
            display_name: s.user.display_name.clone(),
            role: s.user.role.to_string(),
            org_unit_id: s.user.org_unit.id.to_string(),
            org_unit_name: s.user.org_unit.name.clone(),
            district_time_zone: s.district_time_zone.clone(),
        }
    }
}

/// A visit as the director enters it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NewVisit {
    /// The child visited (id).
    pub child_id: String,
    /// `home_visit`, `phone_follow_up`, `school_visit` or `other`.
    pub kind: String,
    /// When it happened, RFC 3339 with offset (`2026-03-02T10:30:00+08:00`).
    pub visited_at: String,
    /// Where.
    pub location: Option<String>,
    /// Observations by area, a JSON object (`{"study": "doing well"}`).
    pub observations_json: Option<String>,
    /// True: submitted for review; false: a draft.
    pub submit: bool,
}

/// One change to a visit.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
pub enum VisitChange {
    /// Set a field to a JSON value (`"null"` clears it).
    Set {
        /// Field name (`location`, `observations`, `review_status`, …).
        field: String,
        /// The value as JSON text.
        value_json: String,
    },
    /// Add or replace an item (a JSON object with a string `id`) of a set
    /// field (`needs`, `risk_flags`).
    AddItem {
        /// Field name.
        field: String,
        /// The item as JSON text.
        item_json: String,
    },
    /// Remove an item of a set field by its id.
    RemoveItem {
        /// Field name.
        field: String,
        /// The item's id.
        item_id: String,
    },
}

/// A visit as the phone shows it (the server's copy with pending edits).
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Visit {
    /// Visit id.
    pub id: String,
    /// The child.
    pub child_id: String,
    /// Kind of visit.
    pub kind: String,
    /// When it happened (as entered).
    pub visited_at: String,
    /// Where.
    pub location: Option<String>,
    /// `draft`, `submitted`, `returned`, `approved`.
    pub review_status: String,
    /// The supervisor's comment, if any.
    pub review_comment: Option<String>,
    /// Every field's value, a JSON object (observations, needs, risk flags…).
    pub fields_json: String,
    /// The server version last received (0: not on the server yet).
    pub server_version: u64,
    /// True while edits of it wait to be sent.
    pub pending: bool,
}

/// A child of the village, as the register has it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Child {
    /// Child id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Category code.
    pub category: String,
    /// `active` or `exited`.
    pub status: String,
    /// The child's village.
    pub village_id: Option<String>,
    /// Every field's value, a JSON object.
    pub fields_json: String,
}

/// A visit the supervisor returned for revision.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ReviewTask {
    /// The visit.
    pub visit_id: String,
    /// Its child.
    pub child_id: Option<String>,
    /// What to correct.
    pub comment: Option<String>,
    /// When the visit happened.
    pub visited_at: Option<String>,
}

/// A child and its next visit.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct ChildDue {
    /// The child.
    pub child_id: String,
    /// Name.
    pub name: String,
    /// Category code.
    pub category: String,
    /// Day of the last visit that counts (not a draft).
    pub last_visit_on: Option<String>,
    /// The visiting interval that applies.
    pub interval_days: u32,
    /// Where it stands.
    pub due: DueStatus,
}

/// The director's day.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct DayTasks {
    /// The day (the district's), `YYYY-MM-DD`.
    pub today: String,
    /// Visits returned for revision, oldest first.
    pub returned: Vec<ReviewTask>,
    /// Children overdue or due today, most overdue first.
    pub due: Vec<ChildDue>,
}

/// A change the server refused (or fields it refused), kept for the user.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Rejection {
    /// The refused mutation.
    pub mutation_id: String,
    /// `visit`, `child`, `case_plan_item`.
    pub entity: String,
    /// The record.
    pub record_id: String,
    /// Machine-readable reason (`locked`, …).
    pub reason: String,
    /// Explanation to show.
    pub message: String,
}

/// What one `sync_now` did.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct SyncSummary {
    /// Changes the server applied as sent.
    pub applied: u64,
    /// Changes merged with concurrent ones (losing values kept as conflicts).
    pub merged: u64,
    /// Changes refused (see `rejections()`).
    pub rejected: u64,
    /// Conflicts the merges reported.
    pub conflicts: u64,
    /// Records received.
    pub pulled: u64,
    /// Records removed (left the user's scope).
    pub purged: u64,
    /// Records fetched whole by a repair of a diverged copy.
    pub repaired: u64,
    /// True when the server had been restored from a backup and the phone
    /// sent back what it lost.
    pub recovered: bool,
    /// True when the phone's copy still differs from the server's after
    /// the repair (the next sync repairs again).
    pub diverged: bool,
    /// Tries it took (1: no retry).
    pub attempts: u32,
    /// Changes still waiting on the phone after the sync.
    pub pending: u64,
}

fn n(v: usize) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// One phone: its SQLite store and the server it syncs with.
#[derive(Debug, uniffi::Object)]
pub struct SeedlingClient {
    runtime: tokio::runtime::Runtime,
    store: Store,
    auth: Auth,
    /// One sync at a time (a second `sync_now` waits for the first).
    syncing: tokio::sync::Mutex<()>,
}

#[uniffi::export]
impl SeedlingClient {
    /// Opens (creating if needed) the store at `database_path` for the
    /// server at `server_url` (`https://seedling.example`). A session
    /// kept by an earlier sign-in is used again: an app restarted offline
    /// is still signed in.
    #[uniffi::constructor]
    pub fn new(database_path: String, server_url: String) -> Result<Arc<Self>, SeedlingError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("seedling")
            .enable_all()
            .build()
            .map_err(|e| SeedlingError::Storage {
                message: format!("could not start the client's runtime: {e}"),
            })?;
        let store = runtime.block_on(Store::open(&database_path))?;
        let auth = Auth::new(server_url, REQUEST_TIMEOUT)?;
        Ok(Arc::new(Self {
            runtime,
            store,
            auth,
            syncing: tokio::sync::Mutex::new(()),
        }))
    }

    /// This phone's device id (made on first open, kept across sign-outs;
    /// a new one after a wipe).
    pub fn device_id(&self) -> Result<String, SeedlingError> {
        Ok(self.block(self.store.device_id())?.to_string())
    }

    /// Signs in with a password (needs the network). The same user keeps
    /// the phone's records and outbox; another user starts from a wiped
    /// store, refused (`PendingForOtherUser`) while the previous user's
    /// changes wait to be sent.
    pub fn sign_in(
        &self,
        username: String,
        password: String,
        device_name: String,
    ) -> Result<User, SeedlingError> {
        self.runtime.block_on(async {
            let session = self
                .auth
                .sign_in(&self.store, &username, &password, &device_name)
                .await?;
            // The district's visit rules, while online (defaults otherwise).
            if let Ok(intervals) = self.auth.visit_intervals(&session.access_token).await {
                self.store.save_visit_intervals(&intervals).await?;
            }
            Ok(User::from(&session))
        })
    }

    /// The signed-in user, if any.
    pub fn current_user(&self) -> Result<Option<User>, SeedlingError> {
        Ok(self.block(self.store.session())?.as_ref().map(User::from))
    }

    /// Signs out: refused (`PendingWork`) while changes wait to be sent,
    /// unless `discard_pending`. Ends the session on the server when it can
    /// be reached, then erases every record of minors — children, visits,
    /// plan items, the outbox, refused changes — with the cursor, the
    /// session and the visit rules, overwriting the freed space; the device
    /// id and its clock stay.
    pub fn sign_out(&self, discard_pending: bool) -> Result<(), SeedlingError> {
        self.runtime.block_on(async {
            let _one_sync = self.syncing.lock().await;
            Ok(self.auth.sign_out(&self.store, discard_pending).await?)
        })
    }

    /// Records a visit (offline is fine: it is on disk, with its outbox
    /// entry, when this returns); returns its id. The visit's village is
    /// the child's, as the phone has it, else the director's own.
    pub fn record_visit(&self, visit: NewVisit) -> Result<String, SeedlingError> {
        let child_id = parse_uuid(&visit.child_id)?;
        let observations = visit
            .observations_json
            .as_deref()
            .map(parse_json)
            .transpose()?;
        self.runtime.block_on(async {
            let session = self
                .store
                .session()
                .await?
                .ok_or(SeedlingError::NotSignedIn)?;
            let village = self
                .store
                .get(Entity::Child, child_id)
                .await?
                .and_then(|c| c.record.get_str("village_id").map(str::to_owned))
                .map(|v| parse_uuid(&v))
                .transpose()?
                .unwrap_or(session.user.org_unit.id);
            let id = self
                .store
                .create_visit(ClientVisit {
                    child_id,
                    village_id: village,
                    kind: visit.kind,
                    visited_at: visit.visited_at,
                    location: visit.location,
                    observations,
                    review_status: Some(if visit.submit { "submitted" } else { "draft" }.into()),
                })
                .await?;
            Ok(id.to_string())
        })
    }

    /// Changes a visit (offline is fine), as one queued change.
    pub fn edit_visit(
        &self,
        visit_id: String,
        changes: Vec<VisitChange>,
    ) -> Result<(), SeedlingError> {
        let id = parse_uuid(&visit_id)?;
        let changes = changes
            .into_iter()
            .map(|c| {
                Ok(match c {
                    VisitChange::Set { field, value_json } => {
                        Change::Set(field, parse_json(&value_json)?)
                    }
                    VisitChange::AddItem { field, item_json } => {
                        Change::AddItem(field, parse_json(&item_json)?)
                    }
                    VisitChange::RemoveItem { field, item_id } => {
                        Change::RemoveItem(field, item_id)
                    }
                })
            })
            .collect::<Result<Vec<_>, SeedlingError>>()?;
        self.block(self.store.update(Entity::Visit, id, changes))?;
        Ok(())
    }

    /// Deletes a visit (a tombstone; the server decides delete versus edit).
    pub fn delete_visit(&self, visit_id: String) -> Result<(), SeedlingError> {
        let id = parse_uuid(&visit_id)?;
        self.block(self.store.delete(Entity::Visit, id))?;
        Ok(())
    }

    /// One visit, or none when the phone does not hold it (or it was deleted).
    pub fn visit(&self, visit_id: String) -> Result<Option<Visit>, SeedlingError> {
        let id = parse_uuid(&visit_id)?;
        Ok(self
            .block(self.store.get(Entity::Visit, id))?
            .filter(|r| !r.record.is_deleted())
            .map(|r| visit_of(&r)))
    }

    /// The live visits to one child.
    pub fn visits_of_child(&self, child_id: String) -> Result<Vec<Visit>, SeedlingError> {
        let id = parse_uuid(&child_id)?;
        Ok(self
            .block(self.store.visits_of_child(id))?
            .iter()
            .map(visit_of)
            .collect())
    }

    /// Every live visit on the phone.
    pub fn visits(&self) -> Result<Vec<Visit>, SeedlingError> {
        Ok(self
            .block(self.store.list(Entity::Visit))?
            .iter()
            .map(visit_of)
            .collect())
    }

    /// The children of the user's scope on the phone.
    pub fn children(&self) -> Result<Vec<Child>, SeedlingError> {
        Ok(self
            .block(self.store.list(Entity::Child))?
            .iter()
            .map(|r| child_of(&r.record))
            .collect())
    }

    /// The day's work on `today` (`YYYY-MM-DD`; `None`: today in the
    /// district's calendar): returned visits, children overdue or due.
    pub fn day_tasks(&self, today: Option<String>) -> Result<DayTasks, SeedlingError> {
        self.runtime.block_on(async {
            let (calendar, today) = self.today(today).await?;
            let tasks = self.store.day_tasks(today, &calendar).await?;
            Ok(DayTasks {
                today: tasks.today.to_string(),
                returned: tasks.returned.into_iter().map(review_task_of).collect(),
                due: tasks.due.into_iter().map(child_due_of).collect(),
            })
        })
    }

    /// Every child with its due status on `today` (`None`: the district's
    /// today), overdue first.
    pub fn children_due(&self, today: Option<String>) -> Result<Vec<ChildDue>, SeedlingError> {
        self.runtime.block_on(async {
            let (calendar, today) = self.today(today).await?;
            let children = self.store.children_due(today, &calendar).await?;
            Ok(children.into_iter().map(child_due_of).collect())
        })
    }

    /// Changes waiting to be sent.
    pub fn pending_count(&self) -> Result<u64, SeedlingError> {
        Ok(n(self.block(self.store.pending_count())?))
    }

    /// Changes the server refused, not yet dismissed: show them.
    pub fn rejections(&self) -> Result<Vec<Rejection>, SeedlingError> {
        Ok(self
            .block(self.store.rejections())?
            .into_iter()
            .map(|r| Rejection {
                mutation_id: r.mutation_id.to_string(),
                entity: r.entity.as_str().to_owned(),
                record_id: r.record_id.to_string(),
                reason: r.reason,
                message: r.message,
            })
            .collect())
    }

    /// The user has seen a refused change.
    pub fn dismiss_rejection(&self, mutation_id: String) -> Result<(), SeedlingError> {
        let id = parse_uuid(&mutation_id)?;
        self.block(self.store.dismiss_rejection(id))
    }

    /// Pushes the outbox, then pulls until the phone is up to date (up to
    /// three tries; a busy server is waited out as it asks). An expired
    /// access token is refreshed once with the kept refresh token; a copy
    /// that diverged from the server's is repaired; the district's visit
    /// rules are fetched again. A revoked phone is wiped before
    /// `DeviceRevoked` is returned.
    pub fn sync_now(&self) -> Result<SyncSummary, SeedlingError> {
        self.runtime.block_on(async {
            let _one_sync = self.syncing.lock().await;
            let mut session = self
                .store
                .session()
                .await?
                .ok_or(SeedlingError::NotSignedIn)?;
            let report = match self.sync_with(&session).await {
                Err(SyncError::Transport(TransportError::SignInAgain(_))) => {
                    session = self.auth.refresh(&session.refresh_token).await?;
                    self.store.save_session(&session).await?;
                    self.sync_with(&session).await?
                }
                other => other?,
            };
            if let Ok(intervals) = self.auth.visit_intervals(&session.access_token).await {
                self.store.save_visit_intervals(&intervals).await?;
            }
            Ok(SyncSummary {
                applied: n(report.applied),
                merged: n(report.merged),
                rejected: n(report.rejected),
                conflicts: n(report.conflicts),
                pulled: n(report.pulled),
                purged: n(report.purged),
                repaired: n(report.fetched),
                recovered: report.recovered,
                diverged: report.diverged.is_some(),
                attempts: report.attempts,
                pending: n(self.store.pending_count().await?),
            })
        })
    }
}

impl SeedlingClient {
    fn block<T, E: Into<SeedlingError>>(
        &self,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, SeedlingError> {
        self.runtime.block_on(f).map_err(Into::into)
    }

    /// The district's calendar (the session's zone) and the day asked, or
    /// today in it.
    async fn today(
        &self,
        today: Option<String>,
    ) -> Result<(Calendar, chrono::NaiveDate), SeedlingError> {
        let session = self
            .store
            .session()
            .await?
            .ok_or(SeedlingError::NotSignedIn)?;
        let calendar = parse_calendar(&session.district_time_zone)?;
        let day = match today {
            Some(day) => parse_day(&day)?,
            None => i64::try_from(self.store.now_ms())
                .ok()
                .and_then(|ms| calendar.day_of_ms(ms))
                .ok_or_else(|| SeedlingError::input("the phone's clock is out of range"))?,
        };
        Ok((calendar, day))
    }

    /// One sync with `session`'s token, then a repair if the copy diverged.
    async fn sync_with(&self, session: &Session) -> Result<SyncReport, SyncError> {
        let transport = HttpTransport::new(
            self.auth.base_url(),
            session.access_token.clone(),
            REQUEST_TIMEOUT,
        )?;
        let seed = self.store.device_id().await?.as_u64_pair().0;
        let options = SyncOptions {
            backoff: SYNC_NOW_BACKOFF,
            ..SyncOptions::default()
        };
        let syncer = Syncer::new(
            self.store.clone(),
            transport,
            TokioSleeper,
            Jitter::from_entropy(seed),
            options,
        );
        let mut report = syncer.sync().await?;
        if report.diverged.is_some() {
            let repair = syncer.repair().await?;
            report.applied += repair.applied;
            report.merged += repair.merged;
            report.rejected += repair.rejected;
            report.conflicts += repair.conflicts;
            report.pulled += repair.pulled;
            report.purged += repair.purged;
            report.fetched += repair.fetched;
            report.diverged = repair.diverged;
        }
        Ok(report)
    }
}

fn parse_json(text: &str) -> Result<Value, SeedlingError> {
    serde_json::from_str(text).map_err(|e| SeedlingError::input(format!("not JSON: {e}")))
}

fn values_json(record: &Record) -> String {
    let values: serde_json::Map<String, Value> = record
        .fields
        .keys()
        .filter_map(|k| record.get(k).map(|v| (k.clone(), v)))
        .collect();
    Value::Object(values).to_string()
}

fn text(record: &Record, field: &str) -> Option<String> {
    record.get_str(field).map(str::to_owned)
}

fn visit_of(r: &LocalRecord) -> Visit {
    let v = &r.record;
    Visit {
        id: v.id.to_string(),
        child_id: text(v, "child_id").unwrap_or_default(),
        kind: text(v, "kind").unwrap_or_default(),
        visited_at: text(v, "visited_at").unwrap_or_default(),
        location: text(v, "location"),
        review_status: text(v, "review_status").unwrap_or_default(),
        review_comment: text(v, "review_comment"),
        fields_json: values_json(v),
        server_version: r.server_version,
        pending: r.pending,
    }
}

fn child_of(c: &Record) -> Child {
    Child {
        id: c.id.to_string(),
        name: text(c, "name").unwrap_or_default(),
        category: text(c, "category").unwrap_or_default(),
        status: text(c, "status").unwrap_or_default(),
        village_id: text(c, "village_id"),
        fields_json: values_json(c),
    }
}

fn review_task_of(t: sync_core::tasks::ReviewTask) -> ReviewTask {
    ReviewTask {
        visit_id: t.visit_id.to_string(),
        child_id: t.child_id.map(|c| c.to_string()),
        comment: t.comment,
        visited_at: t.visited_at,
    }
}

fn child_due_of(c: seedling_client::ChildDue) -> ChildDue {
    ChildDue {
        child_id: c.child_id.to_string(),
        name: c.name,
        category: c.category,
        last_visit_on: c.last_visit_on.map(|d| d.to_string()),
        interval_days: c.interval_days,
        due: c.due.into(),
    }
}
