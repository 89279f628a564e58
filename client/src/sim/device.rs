//! One simulated phone: its own store file, its own (possibly wrong) wall
//! clock, a signed-in user, and a syncer over a faulty link. A phone can be
//! restarted (the store closed and opened again, as when the app is killed)
//! and remembers the visits it recorded, for the checks.

use std::{path::PathBuf, sync::Arc};

use serde_json::json;
use sync_core::rules::{Actor, Role};
use uuid::Uuid;

use super::{
    SimError,
    net::{self, SimTransport, Tap},
};
use crate::{
    backoff::{Jitter, TokioSleeper},
    faulty::{FaultRates, FaultyTransport},
    store::{NowFn, Store},
    sync::{SyncOptions, SyncReport, Syncer},
};

/// The syncer every simulated phone runs.
pub type SimSyncer = Syncer<FaultyTransport<SimTransport>, TokioSleeper>;

/// What every phone of a run shares.
#[derive(Debug)]
pub struct Shared {
    /// Base URLs of the servers.
    pub servers: Vec<String>,
    /// The demo password.
    pub password: String,
    /// Fault rates of every link.
    pub faults: FaultRates,
    /// Sync loop tuning.
    pub options: SyncOptions,
    /// Every answer the servers sent.
    pub tap: Arc<Tap>,
    /// For sign-in.
    pub http: reqwest::Client,
}

/// A visit recorded on a phone, and the tag that makes it recognisable on
/// the server whatever id it ends up under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The visit's id.
    pub id: Uuid,
    /// A text unique to this visit in this run.
    pub tag: String,
}

/// One phone.
#[derive(Debug)]
pub struct SimDevice {
    /// The user signed in (`director-001`, `admin`, …).
    pub username: String,
    /// The phone's name in tags and reports: the username, or for a
    /// director's further phones `director-001-phone2` ….
    pub label: String,
    /// The user's role.
    pub role: Role,
    /// The user's id.
    pub user_id: Uuid,
    /// The org unit the user works in (the director's village).
    pub unit: Uuid,
    /// The visits this phone recorded.
    pub recorded: Vec<Recorded>,
    /// The last successful sync's report.
    pub last_report: Option<SyncReport>,
    /// Syncs that gave up (every retry failed).
    pub failed_syncs: usize,
    /// Times the scope checksum disagreed and the phone repaired its copy.
    pub repairs: usize,
    /// Times the app was restarted.
    pub restarts: usize,
    path: PathBuf,
    skew_ms: i64,
    token: String,
    seed: u64,
    faults_before: usize,
    syncer: SimSyncer,
}

fn wall_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A wall clock `skew_ms` off the true time.
fn clock(skew_ms: i64) -> NowFn {
    Arc::new(move || u64::try_from(wall_ms().saturating_add(skew_ms)).unwrap_or(0))
}

impl SimDevice {
    /// Opens a store at `path` whose clock runs `skew_ms` off the true time,
    /// signs `username` in and prepares its syncer; `label` names the phone.
    pub async fn open(
        shared: &Shared,
        username: &str,
        label: &str,
        path: PathBuf,
        skew_ms: i64,
        seed: u64,
    ) -> Result<Self, SimError> {
        let store = Store::open_with_clock(&path, clock(skew_ms)).await?;
        let device_id = store.device_id().await?;
        let server = &shared.servers[0];
        let session = net::sign_in(
            &shared.http,
            server,
            username,
            label,
            &shared.password,
            device_id,
        )
        .await?;
        let role: Role = serde_json::from_value(json!(session.user.role))
            .map_err(|e| SimError::Http(format!("role of {username}: {e}")))?;
        store.sign_in(Actor::new(session.user.id, role)).await?;
        let token = session.access_token;
        let syncer = make_syncer(shared, store, &token, seed)?;
        Ok(Self {
            username: username.to_owned(),
            label: label.to_owned(),
            role,
            user_id: session.user.id,
            unit: session.user.org_unit.id,
            recorded: Vec::new(),
            last_report: None,
            failed_syncs: 0,
            repairs: 0,
            restarts: 0,
            path,
            skew_ms,
            token,
            seed,
            faults_before: 0,
            syncer,
        })
    }

    /// The phone's store.
    pub fn store(&self) -> &Store {
        self.syncer.store()
    }

    /// Faults injected on this phone's link so far.
    pub fn faults(&self) -> usize {
        self.faults_before + self.syncer.transport().counts().total()
    }

    /// Syncs (with the syncer's retries); repairs the copy when the scope
    /// checksum disagrees. Returns whether the phone had anything to push,
    /// or `None` when the sync gave up.
    pub async fn sync(&mut self) -> Option<bool> {
        match self.syncer.sync().await {
            Ok(report) => {
                let pushed = report.push_requests > 0;
                let report = if report.diverged.is_some() {
                    self.repairs += 1;
                    match self.syncer.repair().await {
                        Ok(repaired) => repaired,
                        Err(_) => {
                            self.failed_syncs += 1;
                            return None;
                        }
                    }
                } else {
                    report
                };
                self.last_report = Some(report);
                Some(pushed)
            }
            Err(_) => {
                self.failed_syncs += 1;
                None
            }
        }
    }

    /// Kills and restarts the app: the store is closed and opened again;
    /// only what was committed to it survives.
    pub async fn restart(&mut self, shared: &Shared) -> Result<(), SimError> {
        self.faults_before = self.faults();
        self.syncer.store().clone().close().await;
        let store = Store::open_with_clock(&self.path, clock(self.skew_ms)).await?;
        self.seed = self.seed.wrapping_add(0x9e37_79b9);
        self.syncer = make_syncer(shared, store, &self.token, self.seed)?;
        self.restarts += 1;
        Ok(())
    }
}

fn make_syncer(
    shared: &Shared,
    store: Store,
    token: &str,
    seed: u64,
) -> Result<SimSyncer, SimError> {
    let link = SimTransport::new(&shared.servers, token, seed, shared.tap.clone())?;
    let faulty = FaultyTransport::new(link, shared.faults, seed ^ 0x5eed);
    Ok(Syncer::new(
        store,
        faulty,
        TokioSleeper,
        Jitter::seeded(seed.rotate_left(17)),
        shared.options,
    ))
}

/// Total faults over `devices`.
pub fn total_faults(devices: &[SimDevice]) -> usize {
    devices.iter().map(SimDevice::faults).sum()
}
