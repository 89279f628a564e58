//! `seedling-bench` — drives the sync API of a running `seedling serve` the
//! way the benchmarks in `docs/BENCHMARKS.md` describe, and prints one JSON
//! result as its last line.
//!
//! Scenarios (`--scenario`):
//! * `push10k` — one director's device pushes `--visits` (10,000) visit
//!   creates in batches of `--batch` (100), one push after the other;
//! * `pull10k` — a fresh device of the same director pulls its village from
//!   no cursor with pages of `--limit` (1,000);
//! * `burst` — `--devices` (327) directors each push their share of
//!   `--visits` (3,559) in one push, all at once, then each pulls; with
//!   `--server-pid` the server's resident memory is sampled meanwhile;
//! * `bootstrap` — a fresh device of `--username` (supervisor-01) pulls its
//!   whole scope from no cursor;
//! * `events` — `--streams` (300) sync event streams stay open, spread over
//!   `--devices` (30) directors; in each of `--rounds` (30) rounds one of
//!   those directors' phones pushes a visit, and the time from the push's
//!   start to each of that village's streams receiving `changed` is taken.
//!
//! Sign-ins and the first pull that finds a village's children are done
//! before the clock starts. `bench/run.sh` runs all of it against SQLite,
//! PostgreSQL and pouchdb-server.

#[path = "../bench/api.rs"]
mod api;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api::{BenchError, ChildRef, Device, PullSummary};
use clap::{Parser, ValueEnum};
use seedling_client::stats::{Latency, proc_status_mib, round3};
use serde_json::{Value, json};
use sync_core::protocol::PullEncoding;
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    Push10k,
    Pull10k,
    Burst,
    Bootstrap,
    Events,
}

/// How a pull asks for records (`sync_core::protocol::PullEncoding`).
#[derive(Debug, Clone, Copy, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
enum Encoding {
    Full,
    Compact,
}

impl From<Encoding> for PullEncoding {
    fn from(encoding: Encoding) -> Self {
        match encoding {
            Encoding::Full => PullEncoding::Full,
            Encoding::Compact => PullEncoding::Compact,
        }
    }
}

/// Benchmarks the Seedling sync API of a running server.
#[derive(Debug, Parser)]
#[command(name = "seedling-bench")]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    server: String,
    /// What to measure.
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Free-form label copied into the result (e.g. `sqlite`).
    #[arg(long, default_value = "")]
    label: String,
    /// Password of the demo accounts.
    #[arg(long, default_value = "seedling-demo")]
    password: String,
    /// The director of push10k / pull10k.
    #[arg(long, default_value = "director-001")]
    director: String,
    /// The user of bootstrap.
    #[arg(long, default_value = "supervisor-01")]
    username: String,
    /// Visits pushed (push10k: 10,000; burst: 3,559 in total).
    #[arg(long)]
    visits: Option<usize>,
    /// Mutations per push in push10k.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Page size of pulls.
    #[arg(long, default_value_t = 1000)]
    limit: u32,
    /// Record encoding of pulls (pull10k, bootstrap); the phone's SDK asks
    /// for the compact one.
    #[arg(long, value_enum, default_value_t = Encoding::Compact)]
    encoding: Encoding,
    /// Devices of the burst (directors director-001 …).
    #[arg(long, default_value_t = 327)]
    devices: usize,
    /// Process id of the server, to read its memory (burst).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Concurrent sign-ins while preparing the burst (password hashing is slow on purpose).
    #[arg(long, default_value_t = 4)]
    prepare_concurrency: usize,
    /// Open event streams (events).
    #[arg(long, default_value_t = 300)]
    streams: usize,
    /// Pushes, one at a time, each poking one village's streams (events).
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
}

fn main() -> Result<(), BenchError> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(args.timeout_secs);
    let result = runtime.block_on(async {
        match tokio::time::timeout(timeout, run(&args)).await {
            Ok(result) => result,
            Err(_) => Err(format!("gave up after {} s", args.timeout_secs).into()),
        }
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string(&result)?)?;
    Ok(())
}

async fn run(args: &Args) -> Result<Value, BenchError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let base = args.server.trim_end_matches('/').to_owned();
    let mut result = match args.scenario {
        Scenario::Push10k => push10k(args, &http, &base).await?,
        Scenario::Pull10k => pull10k(args, &http, &base).await?,
        Scenario::Burst => burst(args, &http, &base).await?,
        Scenario::Bootstrap => bootstrap(args, &http, &base).await?,
        Scenario::Events => events(args, &http, &base).await?,
    };
    result["label"] = json!(args.label);
    Ok(result)
}

fn progress(message: &str) {
    eprintln!("seedling-bench: {message}");
}

fn per_second(n: usize, seconds: f64) -> f64 {
    if seconds > 0.0 {
        (n as f64 / seconds).round()
    } else {
        0.0
    }
}

async fn children_of(
    device: &Device,
    limit: u32,
) -> Result<(Vec<ChildRef>, PullSummary), BenchError> {
    let mut children = Vec::new();
    let summary = device.pull_all(None, limit, Some(&mut children)).await?;
    if children.is_empty() {
        return Err("the user's scope holds no child to visit".into());
    }
    Ok((children, summary))
}

async fn push10k(args: &Args, http: &reqwest::Client, base: &str) -> Result<Value, BenchError> {
    let visits = args.visits.unwrap_or(10_000);
    let batch = args.batch.clamp(1, 500);
    let mut device = Device::login(http, base, &args.director, &args.password).await?;
    let (children, _) = children_of(&device, args.limit).await?;
    let mut mutations = device.visit_creates(&children, visits, 0);
    let mut batches = Vec::new();
    while !mutations.is_empty() {
        let rest = mutations.split_off(batch.min(mutations.len()));
        batches.push(std::mem::replace(&mut mutations, rest));
    }
    progress(&format!(
        "push10k: {visits} visits for {} children in {} pushes",
        children.len(),
        batches.len()
    ));
    let (mut applied, mut rejected, mut latencies) = (0, 0, Vec::new());
    let started = Instant::now();
    for b in batches {
        let (summary, latency) = device.push(b).await?;
        applied += summary.applied;
        rejected += summary.rejected;
        latencies.push(latency);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "scenario": "push10k",
        "visits": visits,
        "applied": applied,
        "rejected": rejected,
        "seconds": round3(seconds),
        "visits_per_s": per_second(applied, seconds),
        "latency": Latency::of(&latencies),
    }))
}

async fn pull10k(args: &Args, http: &reqwest::Client, base: &str) -> Result<Value, BenchError> {
    let mut device = Device::login(http, base, &args.director, &args.password).await?;
    device.pull_encoding = args.encoding.into();
    let started = Instant::now();
    let summary = device.pull_all(None, args.limit, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "scenario": "pull10k",
        "encoding": args.encoding,
        "records": summary.records,
        "visits": summary.visits,
        "children": summary.children,
        "pages": summary.pages,
        "bytes": summary.bytes,
        "seconds": round3(seconds),
        "visits_per_s": per_second(summary.visits, seconds),
        "records_per_s": per_second(summary.records, seconds),
        "latency": Latency::of(&summary.latencies),
    }))
}

async fn bootstrap(args: &Args, http: &reqwest::Client, base: &str) -> Result<Value, BenchError> {
    let mut device = Device::login(http, base, &args.username, &args.password).await?;
    device.pull_encoding = args.encoding.into();
    let started = Instant::now();
    let summary = device.pull_all(None, args.limit, None).await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "scenario": "bootstrap",
        "encoding": args.encoding,
        "username": args.username,
        "records": summary.records,
        "children": summary.children,
        "visits": summary.visits,
        "case_plan_items": summary.case_plan_items,
        "pages": summary.pages,
        "bytes": summary.bytes,
        "seconds": round3(seconds),
        "records_per_s": per_second(summary.records, seconds),
        "latency": Latency::of(&summary.latencies),
    }))
}

/// One burst device, ready: signed in, its children known, its visits built.
struct Prepared {
    device: Device,
    cursor: Option<String>,
    mutations: Vec<sync_core::protocol::Mutation>,
}

/// What one burst device measured.
struct DeviceRun {
    pushed: usize,
    applied: usize,
    rejected: usize,
    pulled_visits: usize,
    push_latency: Duration,
    pull_latencies: Vec<Duration>,
}

async fn burst(args: &Args, http: &reqwest::Client, base: &str) -> Result<Value, BenchError> {
    let devices = args.devices.max(1);
    let visits = args.visits.unwrap_or(3_559);
    // The share of device i: visits / devices, one more for the first (visits % devices).
    let share = move |i: usize| visits / devices + usize::from(i < visits % devices);
    let rss_start = args
        .server_pid
        .and_then(|pid| proc_status_mib(pid, "VmRSS"));
    progress(&format!("burst: preparing {devices} devices"));
    let gate = Arc::new(Semaphore::new(args.prepare_concurrency.max(1)));
    let mut preparing = JoinSet::new();
    for i in 0..devices {
        let (gate, http, base) = (gate.clone(), http.clone(), base.to_owned());
        let (password, limit) = (args.password.clone(), args.limit);
        preparing.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let username = format!("director-{:03}", i + 1);
            let mut device = Device::login(&http, &base, &username, &password).await?;
            let (children, summary) = children_of(&device, limit).await?;
            let mutations = device.visit_creates(&children, share(i), i * 7);
            Ok::<_, BenchError>(Prepared {
                device,
                cursor: summary.cursor,
                mutations,
            })
        });
    }
    let mut prepared = Vec::with_capacity(devices);
    while let Some(joined) = preparing.join_next().await {
        prepared.push(joined??);
    }

    let rss_before = args
        .server_pid
        .and_then(|pid| proc_status_mib(pid, "VmRSS"));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = args.server_pid.map(|pid| {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = proc_status_mib(pid, "VmRSS") {
                    peak = peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    });

    progress(&format!(
        "burst: {devices} devices push {visits} visits at once, then pull"
    ));
    let barrier = Arc::new(Barrier::new(devices + 1));
    let limit = args.limit;
    let mut running = JoinSet::new();
    for p in prepared {
        let barrier = barrier.clone();
        running.spawn(async move {
            let Prepared {
                mut device,
                cursor,
                mutations,
            } = p;
            let pushed = mutations.len();
            barrier.wait().await;
            let (summary, push_latency) = device.push(mutations).await?;
            let pulled = device.pull_all(cursor, limit, None).await?;
            Ok::<_, BenchError>(DeviceRun {
                pushed,
                applied: summary.applied,
                rejected: summary.rejected,
                pulled_visits: pulled.visits,
                push_latency,
                pull_latencies: pulled.latencies,
            })
        });
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut runs = Vec::with_capacity(devices);
    while let Some(joined) = running.join_next().await {
        runs.push(joined??);
    }
    let seconds = started.elapsed().as_secs_f64();
    sampling.store(false, Ordering::Relaxed);
    let peak_rss = sampler.and_then(|s| s.join().ok());
    let hwm = args
        .server_pid
        .and_then(|pid| proc_status_mib(pid, "VmHWM"));

    let pushed: usize = runs.iter().map(|r| r.pushed).sum();
    let applied: usize = runs.iter().map(|r| r.applied).sum();
    let rejected: usize = runs.iter().map(|r| r.rejected).sum();
    let pulled_visits: usize = runs.iter().map(|r| r.pulled_visits).sum();
    let short_pulls = runs.iter().filter(|r| r.pulled_visits < r.applied).count();
    let push_latencies: Vec<Duration> = runs.iter().map(|r| r.push_latency).collect();
    let pull_latencies: Vec<Duration> = runs
        .iter()
        .flat_map(|r| r.pull_latencies.iter().copied())
        .collect();
    let all: Vec<Duration> = push_latencies
        .iter()
        .chain(pull_latencies.iter())
        .copied()
        .collect();
    Ok(json!({
        "scenario": "burst",
        "devices": devices,
        "visits": pushed,
        "applied": applied,
        "rejected": rejected,
        "pulled_visits": pulled_visits,
        "devices_missing_own_visits_in_pull": short_pulls,
        "seconds": round3(seconds),
        "visits_per_s": per_second(applied, seconds),
        "latency": Latency::of(&all),
        "push_latency": Latency::of(&push_latencies),
        "pull_latency": Latency::of(&pull_latencies),
        "server_rss_start_mib": rss_start,
        "server_rss_before_mib": rss_before,
        "server_rss_peak_mib": peak_rss,
        "server_vmhwm_mib": hwm,
    }))
}

/// `events`: how long a push takes to reach the open streams of its scope.
async fn events(args: &Args, http: &reqwest::Client, base: &str) -> Result<Value, BenchError> {
    use seedling_client::events::Signal;
    let villages = if args.devices == 327 {
        30
    } else {
        args.devices.max(1)
    };
    let streams = args.streams.max(villages);
    progress(&format!(
        "events: {streams} streams over {villages} directors, {} rounds",
        args.rounds
    ));
    // Per village: a phone that pushes, the children it visits, and a
    // listening session whose token the village's streams share.
    let mut phones = Vec::with_capacity(villages);
    let mut listeners = Vec::with_capacity(villages);
    for i in 0..villages {
        let username = format!("director-{:03}", i + 1);
        let phone = Device::login(http, base, &username, &args.password).await?;
        let (children, _) = children_of(&phone, args.limit).await?;
        phones.push((phone, children));
        listeners.push(Device::login(http, base, &username, &args.password).await?);
    }
    let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut readers = JoinSet::new();
    for s in 0..streams {
        let village = s % villages;
        let mut stream = listeners[village].transport()?.events().await?;
        if stream.next().await? != Some(Signal::Ready) {
            return Err("a stream did not open with `ready`".into());
        }
        let tx = tx.clone();
        readers.spawn(async move {
            while let Ok(Some(signal)) = stream.next().await {
                if signal == Signal::Changed && tx.send((village, Instant::now())).is_err() {
                    break;
                }
            }
        });
    }
    // What the sign-ins and bootstraps committed is let pass.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while heard.try_recv().is_ok() {}
    let per_village = |v: usize| (0..streams).filter(|s| s % villages == v).count();
    let (mut latencies, mut push_latencies, mut missed) = (Vec::new(), Vec::new(), 0usize);
    for round in 0..args.rounds {
        // A pause of its own before each push, so the pushes do not fall
        // in step with a watcher that reads the log on a timer (SQLite).
        let pause = (round * 37 % 250) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let village = round % villages;
        let (phone, children) = &mut phones[village];
        let mutations = phone.visit_creates(children, 1, round * 13 + 5);
        let started = Instant::now();
        let (_, push_latency) = phone.push(mutations).await?;
        push_latencies.push(push_latency);
        let mut waiting = per_village(village);
        let deadline = started + Duration::from_secs(10);
        while waiting > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, heard.recv()).await {
                Ok(Some((v, at))) if v == village => {
                    latencies.push(at - started);
                    waiting -= 1;
                }
                Ok(Some(_)) => {}
                _ => {
                    missed += waiting;
                    break;
                }
            }
        }
    }
    readers.abort_all();
    Ok(json!({
        "scenario": "events",
        "streams": streams,
        "villages": villages,
        "rounds": args.rounds,
        "pokes_received": latencies.len(),
        "pokes_missed": missed,
        "poke_latency": Latency::of(&latencies),
        "push_latency": Latency::of(&push_latencies),
    }))
}
