//! `seedling`: the server binary and its administrative commands.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use seedling_server::auth::Role;
use seedling_server::config::Config;
use seedling_server::service::auth::NewUser;
use seedling_server::{service, startup};
use tracing_subscriber::EnvFilter;

/// mimalloc hands freed memory back to the system, where the C allocator
/// kept every blocking thread's Argon2 buffers and the demo seed's rows.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "seedling",
    version,
    about = "Seedling: offline-first sync for child-welfare field work"
)]
struct Cli {
    /// Configuration file (TOML). Default: $SEEDLING_CONFIG, else ./seedling.toml if present.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (migrations are applied first).
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080.
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Load the demo district first if the database is empty.
        #[arg(long)]
        demo: bool,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load the demo district into an empty database.
    SeedDemo {
        /// Seed of the generator: the same seed gives the same district.
        #[arg(long, default_value_t = 2025)]
        seed: u64,
    },
    /// Generate a province-sized data set into an empty PostgreSQL
    /// database, for benchmarks (docs/BENCHMARKS.md). Password of every
    /// account: `seedling-bench`.
    SeedProvince {
        #[arg(long, default_value_t = 100)]
        districts: usize,
        #[arg(long, default_value_t = 12)]
        towns_per_district: usize,
        #[arg(long, default_value_t = 27)]
        villages_per_town: usize,
        #[arg(long, default_value_t = 60_000)]
        children: usize,
        #[arg(long, default_value_t = 1_000_000)]
        visits: usize,
        #[arg(long, default_value_t = 2025)]
        seed: u64,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Re-encrypt every identity-card number under the current key (after
    /// adding a new key and making it `id_number_key_id`).
    ResealIdNumbers,
    /// Inspect the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// The retention policy for exited children.
    Retention {
        #[command(subcommand)]
        command: RetentionCommand,
    },
    /// Write a consistent copy of the SQLite database to FILE, while the
    /// server runs (PostgreSQL: use its own tools, docs/OPERATIONS.md).
    Backup {
        /// Where to write the copy; must not exist.
        file: PathBuf,
    },
    /// Replace the SQLite database with the backup FILE and mark it
    /// restored, so phones send back what it lost. Stop every server first.
    Restore {
        /// A file `seedling backup` wrote.
        file: PathBuf,
    },
    /// Mark the database restored (after restoring PostgreSQL with its own
    /// tools), so phones send back what it lost. Stop every server first.
    MarkRestored,
}

#[derive(Debug, Subcommand)]
enum RetentionCommand {
    /// Archive every child who exited `retention_exited_years` or more ago:
    /// personal fields removed, counts kept, audited. Safe to re-run.
    Run {
        /// The day to count from (default: today, China time).
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit log's hash chain; exits 1 when a row was edited or deleted.
    Verify,
    /// Every audit row recording a read or write of one child's records
    /// (sync pushes and pulls, reviews, imports, exports), one JSON object
    /// per line, oldest first.
    Child {
        /// The child's id.
        id: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create an account. The password is read from SEEDLING_NEW_PASSWORD or prompted on stdin.
    Add {
        username: String,
        /// director, supervisor, admin or integration.
        #[arg(long)]
        role: String,
        /// Administrative code of the org unit the user belongs to.
        #[arg(long)]
        org_unit: String,
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let mut config = Config::load(cli.config.as_deref()).context("reading configuration")?;
    match cli.command {
        Command::Serve { bind, demo } => {
            if let Some(bind) = bind {
                config.bind = bind;
            }
            let state = startup::build_state(config).await?;
            if demo {
                seed_demo_if_empty(&state, 2025).await?;
            }
            let listener = tokio::net::TcpListener::bind(state.config.bind)
                .await
                .with_context(|| format!("binding {}", state.config.bind))?;
            tracing::info!(addr = %listener.local_addr()?, "seedling is listening");
            seedling_server::serve(state, listener, startup::shutdown_signal()).await?;
        }
        Command::Backup { file } => {
            let state = startup::build_state(config).await?;
            let report = service::backup::backup(&state.db, &file)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            eprintln!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Restore { file } => {
            let url = config.effective_database_url();
            let database = service::backup::sqlite_file(&url).ok_or_else(|| {
                anyhow::anyhow!(
                    "seedling restore replaces a SQLite file; restore PostgreSQL with its own \
                     tools, then run seedling mark-restored"
                )
            })?;
            service::backup::replace_sqlite_file(&database, &file)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            let state = startup::build_state(config).await?;
            let epoch = service::backup::mark_restored(&state.db)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            eprintln!(
                "restored {} from {}; new epoch {epoch}",
                database.display(),
                file.display()
            );
        }
        Command::MarkRestored => {
            let state = startup::build_state(config).await?;
            let epoch = service::backup::mark_restored(&state.db)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            eprintln!("marked restored; new epoch {epoch}");
        }
        Command::Migrate => {
            startup::build_state(config).await?;
            tracing::info!("migrations applied");
        }
        Command::SeedDemo { seed } => {
            let state = startup::build_state(config).await?;
            if !seed_demo_if_empty(&state, seed).await? {
                anyhow::bail!(
                    "the database already holds data; the demo district loads only into an empty database"
                );
            }
        }
        Command::SeedProvince {
            districts,
            towns_per_district,
            villages_per_town,
            children,
            visits,
            seed,
        } => {
            let state = startup::build_state(config).await?;
            let size = service::province::ProvinceSize {
                districts,
                towns_per_district,
                villages_per_town,
                children,
                visits,
                seed,
            };
            let summary =
                service::province::seed_province(&state.db, size, service::reports::today())
                    .await
                    .map_err(|err| anyhow::anyhow!("{err}"))?;
            eprintln!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Command::User {
            command:
                UserCommand::Add {
                    username,
                    role,
                    org_unit,
                    display_name,
                },
        } => {
            let role: Role = role.parse().map_err(|err| anyhow::anyhow!("{err}"))?;
            let password = match std::env::var("SEEDLING_NEW_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    eprint!("password for {username}: ");
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let state = startup::build_state(config).await?;
            let created = service::auth::create_user(
                &state.db,
                NewUser {
                    display_name: display_name.unwrap_or_else(|| username.clone()),
                    username,
                    role,
                    org_unit_code: org_unit,
                    password,
                },
                None,
            )
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))?;
            eprintln!(
                "created {} ({}) in {}",
                created.username,
                created.role.as_str(),
                created.org_unit.name
            );
        }
        Command::ResealIdNumbers => {
            let state = startup::build_state(config).await?;
            let report = service::privacy::reseal_id_numbers(&state.db)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            eprintln!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Retention {
            command: RetentionCommand::Run { as_of },
        } => {
            let state = startup::build_state(config).await?;
            let today = as_of.unwrap_or_else(service::privacy::retention::today);
            let report = service::privacy::retention::run(&state, today)
                .await
                .map_err(|err| anyhow::anyhow!("{err}"))?;
            eprintln!("{}", serde_json::to_string_pretty(&report)?);
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let state = startup::build_state(config).await?;
            let report = service::audit::verify(&state.db).await?;
            eprintln!("{}", serde_json::to_string_pretty(&report)?);
            if !report.intact {
                anyhow::bail!(
                    "the audit log has been tampered with: {} problem(s), first at {}",
                    report.problems.len(),
                    report.problems[0].message
                );
            }
            eprintln!("audit log intact: {} rows", report.rows);
        }
        Command::Audit {
            command: AuditCommand::Child { id },
        } => {
            let state = startup::build_state(config).await?;
            let mut out = std::io::stdout().lock();
            for row in service::audit::about_child(&state.db, id).await? {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({
                        "id": row.id,
                        "at": row.at,
                        "actor_id": row.actor_id,
                        "action": row.action,
                        "entity": row.entity,
                        "record_id": row.record_id,
                        "detail": row.detail,
                    })
                )?;
            }
        }
    }
    Ok(())
}

/// Loads the demo district when the database is empty; false when it was not.
async fn seed_demo_if_empty(state: &seedling_server::AppState, seed: u64) -> anyhow::Result<bool> {
    let summary = service::demo::seed_if_empty(&state.db, seed)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    let Some(summary) = summary else {
        tracing::info!("the database already holds data; demo district not loaded");
        return Ok(false);
    };
    eprintln!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!(
        "demo accounts (password `{}`): admin, supervisor-01 … supervisor-12, director-001 … director-327",
        service::demo::DEMO_PASSWORD
    );
    Ok(true)
}
