//! `seedling-sim`: runs a fleet of simulated phones against a Seedling
//! server holding the demo district, and checks that no visit was lost or
//! doubled, every phone converged and every concurrent edit left a conflict.
//! The last line on stdout is a JSON summary; the exit code is 0 only when
//! every check held. See `docs/SIMULATOR.md`.

use std::{io::Write, process::ExitCode, time::Duration};

use clap::Parser;
use seedling_client::{
    faulty::FaultRates,
    sim::{SimConfig, run},
};

#[derive(Debug, Parser)]
#[command(name = "seedling-sim", version, about = "Seedling fleet simulator")]
struct Cli {
    /// Server base URL on loopback, e.g. http://127.0.0.1:8080. Give it
    /// twice or more to spread each phone's requests over several servers.
    #[arg(long, required = true)]
    server: Vec<String>,
    /// Directors' phones: director-001 … director-327, then a second phone
    /// of each director, and so on, up to 3,270 (ten per director).
    #[arg(long, default_value_t = 10)]
    devices: usize,
    /// Visits each director records.
    #[arg(long, default_value_t = 10)]
    visits: usize,
    /// Simulated offline days.
    #[arg(long, default_value_t = 3)]
    days: usize,
    /// Inject network faults (dropped requests, lost answers, duplicates).
    #[arg(long)]
    faults: bool,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Password of the demo accounts.
    #[arg(long, env = "SEEDLING_SIM_PASSWORD", default_value = "seedling-demo")]
    password: String,
    /// Rounds of "everyone syncs" allowed at the end.
    #[arg(long, default_value_t = 40)]
    max_rounds: usize,
    /// Seconds allowed for the whole run.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
    /// Also write every mutation the servers acknowledged to this file, one
    /// per line: mutation id, status, record id, version (empty when
    /// rejected), separated by tabs. A failover test looks for each of them
    /// in the database that survived.
    #[arg(long, value_name = "PATH")]
    acked_out: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let base = SimConfig::new(cli.server[0].clone());
    let config = SimConfig {
        servers: cli.server.clone(),
        devices: cli.devices,
        visits: cli.visits,
        days: cli.days,
        faults: cli.faults.then_some(FaultRates::MOUNTAIN),
        seed: cli.seed,
        password: cli.password,
        max_rounds: cli.max_rounds,
        deadline: Duration::from_secs(cli.deadline_secs),
        ..base
    };
    let summary = match run(config).await {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("seedling-sim: {e}");
            return ExitCode::from(2);
        }
    };
    for problem in &summary.problems {
        eprintln!("problem: {problem}");
    }
    if let Some(path) = &cli.acked_out
        && let Err(e) = write_acknowledged(path, &summary.acknowledged)
    {
        eprintln!("seedling-sim: writing {}: {e}", path.display());
        return ExitCode::from(2);
    }
    let line = serde_json::to_string(&summary).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").is_err() {
        return ExitCode::from(2);
    }
    if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One line per acknowledged mutation: id, status, record id, version.
fn write_acknowledged(
    path: &std::path::Path,
    results: &[sync_core::protocol::MutationResult],
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for result in results {
        let value = serde_json::to_value(result).map_err(std::io::Error::other)?;
        let text = |key: &str| match &value[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            result.mutation_id(),
            text("status"),
            text("record_id"),
            text("version")
        )?;
    }
    out.flush()
}
