//! The fleet simulator behind `seedling-sim`: many phones, each with its
//! own store and clock, signed in as the demo district's directors (plus a
//! supervisor and the district admin), work offline for simulated days and
//! sync over a faulty network; then every phone syncs until the fleet is
//! quiet and the run checks the promises of DESIGN.md §2 — no visit lost or
//! doubled, every phone's copy equal to the server's, every concurrent edit
//! kept as a conflict. `docs/SIMULATOR.md` describes a run.
//!
//! ```no_run
//! # async fn demo() -> Result<(), seedling_client::sim::SimError> {
//! use seedling_client::sim::{SimConfig, run};
//! let summary = run(SimConfig {
//!     devices: 8,
//!     visits: 5,
//!     ..SimConfig::new("http://127.0.0.1:8080")
//! })
//! .await?;
//! assert!(summary.passed(), "{:?}", summary.problems);
//! # Ok(()) }
//! ```

pub mod check;
pub mod console;
pub mod device;
pub mod net;
pub mod work;

use std::{
    collections::{BTreeMap, HashMap},
    future::Future,
    path::PathBuf,
    sync::{Arc, atomic::AtomicUsize},
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::{
    backoff::{Backoff, Jitter},
    faulty::FaultRates,
    stats::{Latency, round3},
    store::StoreError,
    sync::{SyncError, SyncOptions},
};
use console::Console;
use device::{Shared, SimDevice};
use net::Tap;

/// Why a simulation could not run (a failed check is not an error: see
/// [`Summary::passed`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Signing in or talking to the server failed outright.
    #[error("server: {0}")]
    Http(String),
    /// A phone's store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sync failed where the simulation needs it to succeed.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// A simulated phone's task panicked or was cancelled.
    #[error("a phone's task failed: {0}")]
    Task(String),
}

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Base URLs of the servers (loopback only); with several, each request
    /// of each phone goes to one of them at random.
    pub servers: Vec<String>,
    /// Directors' phones: `director-001` … `director-327`, then a second
    /// phone of each (`director-001-phone2` …), a third, and so on up to
    /// [`MAX_DEVICES`].
    pub devices: usize,
    /// Visits each director records.
    pub visits: usize,
    /// Simulated offline days.
    pub days: usize,
    /// Faults of the network, or `None` for a perfect one.
    pub faults: Option<FaultRates>,
    /// Seed of every random choice.
    pub seed: u64,
    /// The demo accounts' password.
    pub password: String,
    /// Rounds of "everyone syncs" allowed before the fleet must be quiet.
    pub max_rounds: usize,
    /// Time allowed for the whole run.
    pub deadline: Duration,
    /// Retry timing of each phone's sync.
    pub backoff: Backoff,
    /// Counts push answers as they arrive (tests that kill the server watch it).
    pub progress: Option<Arc<AtomicUsize>>,
    /// Where the phones' stores go (a temporary folder when `None`).
    pub data_dir: Option<PathBuf>,
}

impl SimConfig {
    /// Defaults for one server: 10 phones × 10 visits over 3 days, no faults.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            servers: vec![server.into()],
            devices: 10,
            visits: 10,
            days: 3,
            faults: None,
            seed: 1,
            password: "seedling-demo".into(),
            max_rounds: 40,
            deadline: Duration::from_secs(600),
            backoff: Backoff {
                base: Duration::from_millis(20),
                max: Duration::from_secs(1),
                max_attempts: 8,
            },
            progress: None,
            data_dir: None,
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        if self.servers.is_empty() {
            return Err(SimError::Config("no server given".into()));
        }
        for server in &self.servers {
            let rest = server
                .strip_prefix("http://")
                .ok_or_else(|| SimError::Config(format!("{server}: only http:// on loopback")))?;
            if !(rest.starts_with("127.0.0.1:") || rest.starts_with("localhost:")) {
                return Err(SimError::Config(format!(
                    "{server}: the simulator writes test data; it only talks to 127.0.0.1"
                )));
            }
        }
        if !(1..=MAX_DEVICES).contains(&self.devices) {
            return Err(SimError::Config(format!(
                "devices must be 1..={MAX_DEVICES} ({PHONES_PER_DIRECTOR} phones of each of the {DIRECTORS} demo directors)"
            )));
        }
        if self.days == 0 || self.max_rounds == 0 {
            return Err(SimError::Config(
                "days and max_rounds must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// Directors of the demo district.
pub const DIRECTORS: usize = 327;
/// Phones one director may carry in a run.
pub const PHONES_PER_DIRECTOR: usize = 10;
/// The largest fleet: ten times the district.
pub const MAX_DEVICES: usize = DIRECTORS * PHONES_PER_DIRECTOR;
/// Phones signing in at the same time while the fleet starts (each sign-in
/// costs the server a password hash).
const SIGN_IN_CONCURRENCY: usize = 8;

/// The user and the name of phone `n` (from 0) of the fleet: the directors
/// in order, then each director's second phone, and so on.
pub fn phone(n: usize) -> (String, String) {
    let username = format!("director-{:03}", n % DIRECTORS + 1);
    let label = match n / DIRECTORS {
        0 => username.clone(),
        k => format!("{username}-phone{}", k + 1),
    };
    (username, label)
}

/// The outcome of a run; the binary prints it as its last line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Phones simulated (directors, the supervisor and the admin).
    pub devices: usize,
    /// Visits recorded on the phones.
    pub visits: usize,
    /// Recorded visits not on the server.
    pub lost: usize,
    /// Extra copies of recorded visits on the server.
    pub duplicated: usize,
    /// Conflicts the server reported.
    pub conflicts: usize,
    /// Phones whose copy differs from the server's.
    pub diverged: usize,
    /// Wall time of the whole run.
    pub elapsed_seconds: f64,
    /// Concurrently edited records that left no conflict.
    pub missing_conflicts: usize,
    /// Mutations the server rejected, by reason.
    pub rejected: BTreeMap<String, usize>,
    /// Faults injected.
    pub faults: usize,
    /// Requests that reached a server.
    pub requests: usize,
    /// Of those, requests that failed below the fault layer (no
    /// connection, a timeout, a 5xx, another error answer).
    pub request_errors: usize,
    /// Time of each answered push, from sending it to reading the answer.
    pub push_latency: Latency,
    /// The same for pulls (one page each).
    pub pull_latency: Latency,
    /// Wall time from the first bootstrap pull until the fleet was quiet
    /// (sign-ins and the checks excluded).
    pub sync_seconds: f64,
    /// Requests that reached a server per second of `sync_seconds`.
    pub requests_per_second: f64,
    /// Visits recorded per second of `sync_seconds`.
    pub visits_per_second: f64,
    /// Push requests the servers answered.
    pub pushes: usize,
    /// Rounds of the final sync until the fleet was quiet.
    pub rounds: usize,
    /// Whether the fleet became quiet within the bounds.
    pub quiet: bool,
    /// Checksum repairs, app restarts and syncs that gave up on the way.
    pub repairs: usize,
    /// App restarts.
    pub restarts: usize,
    /// Syncs that gave up after every retry (the next one carried on).
    pub failed_syncs: usize,
    /// The seed of the run.
    pub seed: u64,
    /// What went wrong, in words (not in the JSON line).
    #[serde(skip)]
    pub problems: Vec<String>,
    /// One answer per mutation id the servers acknowledged, below the fault
    /// layer (an answer the phone "lost" is here too): what the server
    /// promised to keep. Not in the JSON line; `seedling-sim --acked-out`
    /// writes it to a file so a failover test can look for each id in the
    /// database that survived.
    #[serde(skip)]
    pub acknowledged: Vec<sync_core::protocol::MutationResult>,
}

impl Summary {
    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.quiet
            && self.lost == 0
            && self.duplicated == 0
            && self.diverged == 0
            && self.missing_conflicts == 0
    }
}

/// Runs `f` on every device at once and hands the devices back in order.
async fn run_all<F, Fut>(devices: Vec<SimDevice>, f: F) -> Result<Vec<SimDevice>, SimError>
where
    F: Fn(usize, SimDevice) -> Fut,
    Fut: Future<Output = Result<SimDevice, SimError>> + Send + 'static,
{
    let n = devices.len();
    let mut set = tokio::task::JoinSet::new();
    for (i, device) in devices.into_iter().enumerate() {
        let work = f(i, device);
        set.spawn(async move { (i, work.await) });
    }
    let mut back: Vec<Option<SimDevice>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.map_err(|e| SimError::Task(e.to_string()))?;
        back[i] = Some(result?);
    }
    Ok(back.into_iter().flatten().collect())
}

/// Opens and signs in every phone, a few at a time, and hands them back in
/// the order of `names` (user, label).
async fn open_all(
    shared: &Arc<Shared>,
    dir: &std::path::Path,
    names: Vec<(String, String)>,
    seed: u64,
) -> Result<Vec<SimDevice>, SimError> {
    let gate = Arc::new(tokio::sync::Semaphore::new(SIGN_IN_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    let n = names.len();
    for (i, (username, label)) in names.into_iter().enumerate() {
        let (shared, gate) = (shared.clone(), gate.clone());
        let skew = i.checked_sub(1).map_or(0, skew_of);
        let path = dir.join(format!("{label}.db"));
        let device_seed = seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
        set.spawn(async move {
            let _turn = gate
                .acquire_owned()
                .await
                .map_err(|e| SimError::Task(e.to_string()))?;
            let device =
                SimDevice::open(&shared, &username, &label, path, skew, device_seed).await?;
            Ok::<_, SimError>((i, device))
        });
    }
    let mut back: Vec<Option<SimDevice>> = (0..n).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        let (i, device) = joined.map_err(|e| SimError::Task(e.to_string()))??;
        back[i] = Some(device);
    }
    Ok(back.into_iter().flatten().collect())
}

/// The wall-clock error of phone `i`: one far ahead (a year), one behind
/// (three days), the rest right.
fn skew_of(director: usize) -> i64 {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    match director {
        1 => 365 * DAY_MS,
        2 => -3 * DAY_MS,
        _ => 0,
    }
}

/// Runs a simulation and checks the result.
pub async fn run(config: SimConfig) -> Result<Summary, SimError> {
    config.validate()?;
    let started = Instant::now();
    let temp = tempfile::tempdir().map_err(|e| SimError::Config(e.to_string()))?;
    let dir = config
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let tap = Arc::new(Tap::new(config.progress.clone()));
    let options = SyncOptions {
        batch_size: 100,
        page_limit: 1000,
        backoff: config.backoff,
    };
    let shared = Arc::new(Shared {
        servers: config.servers.clone(),
        password: config.password.clone(),
        faults: config.faults.unwrap_or(FaultRates::NONE),
        options,
        tap: tap.clone(),
        http: reqwest::Client::new(),
    });
    let seed = config.seed;

    // Index 0 is a town supervisor, then the directors' phones; the
    // district admin works at a console.
    let mut names = vec![("supervisor-01".to_owned(), "supervisor-01".to_owned())];
    names.extend((0..config.devices).map(phone));
    let mut devices = open_all(&shared, &dir, names, seed).await?;

    // Online once: every phone downloads its scope.
    let syncing = Instant::now();
    devices = run_all(devices, |_, mut d| async move {
        d.sync().await;
        Ok(d)
    })
    .await?;

    let mut console = Console::open(&shared, seed ^ 0xad).await?;
    let plan = {
        // One phone of each director takes part in the concurrent edits.
        let (lead, phones) = devices.split_at_mut(1);
        let firsts = phones.len().min(DIRECTORS);
        work::concurrent_edits(&mut console, &lead[0], &mut phones[..firsts], seed).await?
    };
    // The district's edits reach the server while the phones are offline.
    console.push_all().await?;

    // Offline days; on each, some phones find a network.
    for day in 0..config.days {
        let days_back = config.days - 1 - day;
        let per_day = config.visits / config.days + usize::from(day < config.visits % config.days);
        let shared = shared.clone();
        devices = run_all(devices, move |i, mut d| {
            let shared = shared.clone();
            async move {
                let mut rng = Jitter::seeded(seed ^ ((day as u64) << 32) ^ (i as u64));
                if i >= 1 {
                    work::director_day(&mut d, &mut rng, per_day, days_back, seed).await?;
                    if work::chance(&mut rng, 0.1) {
                        d.restart(&shared).await?;
                    }
                }
                // The supervisor syncs right after the edits.
                if (i == 0 && day == 0) || work::chance(&mut rng, 0.5) {
                    d.sync().await;
                }
                Ok(d)
            }
        })
        .await?;
    }

    // Everyone syncs until a round in which nobody had anything to push.
    let mut summary = Summary {
        seed,
        devices: devices.len() + 1,
        ..Summary::default()
    };
    for round in 1..=config.max_rounds {
        if started.elapsed() > config.deadline {
            summary
                .problems
                .push("deadline passed before the fleet was quiet".into());
            break;
        }
        summary.rounds = round;
        let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = outcomes.clone();
        devices = run_all(devices, move |_, mut d| {
            let seen = seen.clone();
            async move {
                let pushed = d.sync().await;
                if let Ok(mut s) = seen.lock() {
                    s.push(pushed);
                }
                Ok(d)
            }
        })
        .await?;
        let all_quiet = outcomes
            .lock()
            .map(|o| o.iter().all(|p| *p == Some(false)))
            .unwrap_or(false);
        if all_quiet {
            summary.quiet = true;
            break;
        }
    }
    if !summary.quiet {
        summary
            .problems
            .push(format!("not quiet after {} rounds", summary.rounds));
    }
    let sync_seconds = syncing.elapsed().as_secs_f64();

    verify(&config, &devices, &plan, &tap, &dir, &mut summary).await?;
    summary.faults = device::total_faults(&devices) + console.faults();
    summary.requests = tap.requests();
    summary.request_errors = tap.errors();
    summary.pushes = tap.pushes();
    summary.push_latency = tap.push_latency();
    summary.pull_latency = tap.pull_latency();
    summary.sync_seconds = round3(sync_seconds);
    if sync_seconds > 0.0 {
        summary.requests_per_second = round3(summary.requests as f64 / sync_seconds);
        summary.visits_per_second = round3(summary.visits as f64 / sync_seconds);
    }
    summary.elapsed_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    drop(devices);
    drop(temp);
    Ok(summary)
}

/// Supervisors whose fresh pulls together cover the district.
const TOWNS: usize = 12;

/// Pulls every town afresh on a clean link (the twelve supervisors, on new
/// devices) and runs the checks against their union.
async fn verify(
    config: &SimConfig,
    devices: &[SimDevice],
    plan: &work::Plan,
    tap: &Tap,
    dir: &std::path::Path,
    summary: &mut Summary,
) -> Result<(), SimError> {
    let clean = Shared {
        servers: config.servers.clone(),
        password: config.password.clone(),
        faults: FaultRates::NONE,
        options: SyncOptions {
            page_limit: 1000,
            backoff: config.backoff,
            ..SyncOptions::default()
        },
        tap: Arc::new(Tap::new(None)),
        http: reqwest::Client::new(),
    };
    let mut server = check::ServerCopy::new();
    let mut towns = HashMap::new();
    for town in 1..=TOWNS {
        let name = format!("supervisor-{town:02}");
        let path = dir.join(format!("verify-{name}.db"));
        let mut verifier = SimDevice::open(&clean, &name, &name, path, 0, town as u64).await?;
        if verifier.sync().await.is_none() {
            return Err(SimError::Http(format!(
                "the verifying pull of {name} failed"
            )));
        }
        let copy = check::server_copy(&verifier).await?;
        towns.insert(verifier.unit, copy.keys().copied().collect());
        server.extend(copy);
    }

    summary.visits = devices.iter().map(|d| d.recorded.len()).sum();
    (summary.lost, summary.duplicated) = check::lost_and_duplicated(devices, &server);
    let villages = check::villages(
        &server,
        devices
            .iter()
            .filter(|d| d.role == sync_core::rules::Role::Director)
            .map(|d| d.unit),
    );
    for device in devices {
        let problems = check::divergence(device, &server, &towns, &villages).await?;
        if !problems.is_empty() {
            summary.diverged += 1;
            for p in problems.into_iter().take(3) {
                summary.problems.push(format!("{}: {p}", device.label));
            }
        }
        summary.repairs += device.repairs;
        summary.restarts += device.restarts;
        summary.failed_syncs += device.failed_syncs;
    }
    let results = tap.results();
    summary.acknowledged = results.clone();
    let (conflicts, missing) = check::conflicts(&results, plan);
    summary.conflicts = conflicts;
    summary.missing_conflicts = missing.len();
    for m in missing {
        summary.problems.push(format!(
            "{m:?} was edited concurrently but left no conflict"
        ));
    }
    for (reason, (count, example)) in check::rejections(&results) {
        summary.rejected.insert(reason.clone(), count);
        summary
            .problems
            .push(format!("{count} rejected as {reason}, e.g. {example}"));
    }
    if summary.lost > 0 {
        summary
            .problems
            .push(format!("{} visits lost", summary.lost));
    }
    if summary.duplicated > 0 {
        summary
            .problems
            .push(format!("{} visits doubled", summary.duplicated));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_go_round_the_directors_then_add_a_phone_each() {
        assert_eq!(phone(0), ("director-001".into(), "director-001".into()));
        assert_eq!(phone(326), ("director-327".into(), "director-327".into()));
        assert_eq!(
            phone(327),
            ("director-001".into(), "director-001-phone2".into())
        );
        assert_eq!(
            phone(MAX_DEVICES - 1),
            ("director-327".into(), "director-327-phone10".into())
        );
    }

    #[test]
    fn the_fleet_is_at_most_ten_times_the_district() {
        let config = |devices| SimConfig {
            devices,
            ..SimConfig::new("http://127.0.0.1:1")
        };
        assert!(config(MAX_DEVICES).validate().is_ok());
        assert!(config(MAX_DEVICES + 1).validate().is_err());
        assert!(config(0).validate().is_err());
    }
}
