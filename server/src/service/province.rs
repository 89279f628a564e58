//! A generated province for benchmarks: by default 100 districts of 12
//! towns and 27 villages each, one account per unit, 60,000 children and
//! 1,000,000 visits over about two years, loaded into PostgreSQL with
//! `COPY`. `seedling seed-province` runs it (docs/BENCHMARKS.md).
//!
//! The data set serves the report and visit-log queries: it writes org
//! units, users, children, register events, visits, needs-ledger items and
//! benefit standards, but no change-log rows, so phones cannot sync it.
//! Everything follows from the seed; every account's password is
//! [`PROVINCE_PASSWORD`]. No name is a real person's.

use std::time::Instant;

use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sea_orm::DatabaseConnection;
use sea_orm::sqlx::PgConnection;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::password;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::demo;

/// Every generated account's password.
pub const PROVINCE_PASSWORD: &str = "seedling-bench";

/// The shape of the generated province.
#[derive(Clone, Debug, Serialize)]
pub struct ProvinceSize {
    pub districts: usize,
    pub towns_per_district: usize,
    pub villages_per_town: usize,
    pub children: usize,
    pub visits: usize,
    pub seed: u64,
}

impl Default for ProvinceSize {
    fn default() -> Self {
        Self {
            districts: 100,
            towns_per_district: 12,
            villages_per_town: 27,
            children: 60_000,
            visits: 1_000_000,
            seed: 2025,
        }
    }
}

/// What was written, and how long it took.
#[derive(Clone, Debug, Serialize)]
pub struct ProvinceSummary {
    pub size: ProvinceSize,
    pub org_units: usize,
    pub users: usize,
    pub children: usize,
    pub register_events: usize,
    pub visits: usize,
    pub case_plan_items: usize,
    pub seconds: f64,
}

/// Categories with their share of children and visiting interval (the
/// assumed defaults).
const CATEGORIES: [(&str, f64, i64); 7] = [
    ("in_difficulty", 0.64, 30),
    ("left_behind", 0.20, 90),
    ("migrant", 0.06, 90),
    ("low_income_edge", 0.04, 30),
    ("de_facto_unsupported", 0.03, 30),
    ("scattered_orphan", 0.02, 30),
    ("institutional_orphan", 0.01, 90),
];

const KINDS: [(&str, f64); 4] = [
    ("home_visit", 0.70),
    ("phone_follow_up", 0.25),
    ("school_visit", 0.04),
    ("other", 0.01),
];

const REVIEW: [(&str, f64); 4] = [
    ("approved", 0.80),
    ("submitted", 0.15),
    ("returned", 0.03),
    ("draft", 0.02),
];

/// Rows per `COPY` chunk sent.
const CHUNK: usize = 20_000;

fn pick<'a>(rng: &mut ChaCha8Rng, table: &[(&'a str, f64)]) -> &'a str {
    let mut roll: f64 = rng.r#gen();
    for (value, share) in table {
        if roll < *share {
            return value;
        }
        roll -= share;
    }
    table[table.len() - 1].0
}

fn id(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid()
}

/// A CSV buffer for `COPY … (FORMAT csv)`: empty unquoted fields are NULL.
struct Rows {
    writer: csv::Writer<Vec<u8>>,
    count: usize,
}

impl Rows {
    fn new() -> Self {
        Self {
            writer: csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new()),
            count: 0,
        }
    }

    fn push<const N: usize>(&mut self, fields: [&str; N]) -> AppResult<()> {
        self.writer
            .write_record(fields)
            .map_err(|err| AppError::Internal(format!("CSV for COPY: {err}")))?;
        self.count += 1;
        Ok(())
    }

    fn take(&mut self) -> AppResult<Vec<u8>> {
        let writer = std::mem::replace(
            &mut self.writer,
            csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new()),
        );
        writer
            .into_inner()
            .map_err(|err| AppError::Internal(format!("CSV for COPY: {err}")))
    }
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339()
}

/// Generates the province into an empty PostgreSQL database.
pub async fn seed_province(
    db: &DatabaseConnection,
    size: ProvinceSize,
    today: NaiveDate,
) -> AppResult<ProvinceSummary> {
    if db.get_database_backend() != sea_orm::DbBackend::Postgres {
        return Err(AppError::Validation(
            "the province data set is for PostgreSQL (set DATABASE_URL)".to_owned(),
        ));
    }
    if !demo::is_empty(db).await? {
        return Err(AppError::Conflict(
            "the database already holds data; the province loads only into an empty database"
                .to_owned(),
        ));
    }
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(size.seed);
    let now = today.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let stamp = ts(now);
    let hash = password::hash_password(PROVINCE_PASSWORD)?;
    let pool = db.get_postgres_connection_pool();
    let mut pooled = pool
        .acquire()
        .await
        .map_err(|err| AppError::Internal(format!("a PostgreSQL connection: {err}")))?;
    let conn: &mut PgConnection = &mut pooled;

    // The org tree and one account per unit.
    let mut units = Rows::new();
    let mut users = Rows::new();
    let mut villages: Vec<(Uuid, Uuid)> = Vec::new(); // (village, director)
    let mut first_district = None;
    for d in 0..size.districts {
        let district = id(&mut rng);
        first_district.get_or_insert(district);
        let code = format!("33{d:04}");
        units.push([
            &district.to_string(),
            &code,
            &format!("省测区{d:03}"),
            "district",
            "",
            &stamp,
        ])?;
        let admin = id(&mut rng);
        users.push([
            &admin.to_string(),
            &format!("p{d:03}-admin"),
            &format!("区管理员{d:03}"),
            "admin",
            &district.to_string(),
            &hash,
            "true",
            &stamp,
            &stamp,
        ])?;
        for t in 0..size.towns_per_district {
            let town = id(&mut rng);
            let code = format!("33{d:04}{t:03}");
            units.push([
                &town.to_string(),
                &code,
                &format!("测{d:03}镇{t:02}"),
                "town",
                &district.to_string(),
                &stamp,
            ])?;
            let supervisor = id(&mut rng);
            users.push([
                &supervisor.to_string(),
                &format!("p{d:03}-s{t:02}"),
                &format!("督导员{d:03}-{t:02}"),
                "supervisor",
                &town.to_string(),
                &hash,
                "true",
                &stamp,
                &stamp,
            ])?;
            for v in 0..size.villages_per_town {
                let village = id(&mut rng);
                let code = format!("33{d:04}{t:03}{v:03}");
                units.push([
                    &village.to_string(),
                    &code,
                    &format!("测{d:03}镇{t:02}村{v:02}"),
                    "village",
                    &town.to_string(),
                    &stamp,
                ])?;
                let director = id(&mut rng);
                users.push([
                    &director.to_string(),
                    &format!("p{d:03}-d{t:02}-{v:02}"),
                    &format!("主任{d:03}-{t:02}-{v:02}"),
                    "director",
                    &village.to_string(),
                    &hash,
                    "true",
                    &stamp,
                    &stamp,
                ])?;
                villages.push((village, director));
            }
        }
    }
    let integration = id(&mut rng);
    let first_district = first_district.unwrap_or_default().to_string();
    users.push([
        &integration.to_string(),
        "province-integration",
        "省级平台",
        "integration",
        &first_district,
        &hash,
        "true",
        &stamp,
        &stamp,
    ])?;
    let (unit_count, user_count) = (units.count, users.count);
    repo::bulk::copy_csv(
        conn,
        "org_units (id, code, name, kind, parent_id, created_at)",
        units.take()?,
    )
    .await?;
    repo::bulk::copy_csv(conn, "users (id, username, display_name, role, org_unit_id, password_hash, active, created_at, updated_at)", users.take()?).await?;

    // Children, their register events, visits and needs.
    let children_cols = "children (id, version, field_clocks, created_at, updated_at, deleted, name, gender, birth_date, category, status, exit_reason, exit_date, village_id)";
    let events_cols =
        "register_events (id, child_id, kind, effective_date, source, reason, created_at)";
    let visits_cols = "visits (id, version, field_clocks, created_at, updated_at, deleted, child_id, author_id, village_id, kind, visited_at, needs, risk_flags, photos, review_status)";
    let items_cols = "case_plan_items (id, version, field_clocks, created_at, updated_at, deleted, child_id, village_id, area, description, status, due_date)";
    let mut children = Rows::new();
    let mut events = Rows::new();
    let mut visits = Rows::new();
    let mut items = Rows::new();
    let (mut child_total, mut event_total, mut visit_total, mut item_total) = (0, 0, 0, 0);
    let per_child = size.visits as f64 / size.children.max(1) as f64;
    let category_shares: Vec<(&str, f64)> = CATEGORIES.iter().map(|(c, s, _)| (*c, *s)).collect();
    for n in 0..size.children {
        let (village, director) = villages[n * villages.len() / size.children.max(1)];
        let child = id(&mut rng);
        let category = pick(&mut rng, &category_shares);
        let interval = CATEGORIES
            .iter()
            .find(|c| c.0 == category)
            .map_or(30, |c| c.2);
        let added = today - Days::new(rng.gen_range(30..2_000));
        let exited = rng
            .gen_bool(0.05)
            .then(|| today - Days::new(rng.gen_range(1..180)));
        let exit = exited.filter(|e| *e > added);
        let birth = today - Days::new(rng.gen_range(365 * 2..365 * 17));
        let created = ts(added.and_hms_opt(1, 0, 0).unwrap_or_default().and_utc());
        children.push([
            &child.to_string(),
            "1",
            "{}",
            &created,
            &stamp,
            "false",
            &format!("儿童{n:05}"),
            if rng.gen_bool(0.5) { "male" } else { "female" },
            &birth.to_string(),
            category,
            if exit.is_some() { "exited" } else { "active" },
            if exit.is_some() { "moved_away" } else { "" },
            &exit.map(|e| e.to_string()).unwrap_or_default(),
            &village.to_string(),
        ])?;
        events.push([
            &id(&mut rng).to_string(),
            &child.to_string(),
            "added",
            &added.to_string(),
            "district",
            "",
            &created,
        ])?;
        if let Some(exit) = exit {
            events.push([
                &id(&mut rng).to_string(),
                &child.to_string(),
                "exited",
                &exit.to_string(),
                "district",
                "moved_away",
                &ts(now),
            ])?;
        }
        // Visits back from the last one, at about the interval; about one
        // active child in ten is left overdue.
        let count = per_child.floor() as usize + usize::from(rng.gen_bool(per_child.fract()));
        let end = exit.unwrap_or(today);
        let mut day = if rng.gen_bool(0.1) {
            end - Days::new((interval + rng.gen_range(1..60)) as u64)
        } else {
            end - Days::new(rng.gen_range(0..interval) as u64)
        };
        for _ in 0..count {
            let at = day
                .and_hms_opt(rng.gen_range(1..10), rng.gen_range(0..60), 0)
                .unwrap_or_default()
                .and_utc();
            let flags = if rng.gen_bool(0.01) {
                r#"[{"id":"f1","kind":"neglect","note":"生成"}]"#
            } else {
                "[]"
            };
            visits.push([
                &id(&mut rng).to_string(),
                "1",
                "{}",
                &ts(at),
                &ts(at),
                "false",
                &child.to_string(),
                &director.to_string(),
                &village.to_string(),
                pick(&mut rng, &KINDS),
                &ts(at),
                "[]",
                flags,
                "[]",
                pick(&mut rng, &REVIEW),
            ])?;
            day = day
                - Days::new(rng.gen_range((interval / 2).max(1)..=interval + interval / 3) as u64);
        }
        if rng.gen_bool(0.25) {
            let due = today + Duration::days(rng.gen_range(-60..90));
            items.push([
                &id(&mut rng).to_string(),
                "1",
                "{}",
                &stamp,
                &stamp,
                "false",
                &child.to_string(),
                &village.to_string(),
                ["living", "study", "psychology"][rng.gen_range(0..3)],
                "生成的需求",
                ["open", "in_progress", "done"][rng.gen_range(0..3)],
                &due.to_string(),
            ])?;
        }
        if visits.count >= CHUNK {
            child_total += children.count;
            event_total += events.count;
            visit_total += visits.count;
            item_total += items.count;
            flush(
                conn,
                [
                    (children_cols, &mut children),
                    (events_cols, &mut events),
                    (visits_cols, &mut visits),
                    (items_cols, &mut items),
                ],
            )
            .await?;
        }
    }
    child_total += children.count;
    event_total += events.count;
    visit_total += visits.count;
    item_total += items.count;
    flush(
        conn,
        [
            (children_cols, &mut children),
            (events_cols, &mut events),
            (visits_cols, &mut visits),
            (items_cols, &mut items),
        ],
    )
    .await?;
    demo::seed_benefit_standards(db).await?;
    repo::bulk::vacuum_analyze(conn).await?;
    Ok(ProvinceSummary {
        size,
        org_units: unit_count,
        users: user_count,
        children: child_total,
        register_events: event_total,
        visits: visit_total,
        case_plan_items: item_total,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Sends the buffered rows of each table, parents first.
async fn flush(conn: &mut PgConnection, tables: [(&str, &mut Rows); 4]) -> AppResult<()> {
    for (columns, rows) in tables {
        if rows.count > 0 {
            repo::bulk::copy_csv(conn, columns, rows.take()?).await?;
            rows.count = 0;
        }
    }
    Ok(())
}
