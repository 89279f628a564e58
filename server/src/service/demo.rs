//! The demo district: a deterministic, generated copy of 奉化区 (12 towns,
//! 327 villages, their supervisors and directors, about 900 children and a
//! year of visit logs) for demos, manual testing and benchmarks.
//!
//! Everything follows from the `seed` and the `today` passed in: the same
//! inputs give the same rows, ids included. No name is a real person's.

mod children;
mod names;
mod roster;
#[cfg(test)]
mod tests;
mod visits;

use std::collections::BTreeMap;

use chrono::{DateTime, Days, NaiveDate, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sea_orm::{
    ActiveValue::NotSet, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    Set, TransactionSession, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::password;
use crate::entity::{
    benefit_standard, case_plan_item, change_log, child, conflict, org_unit, register_event, user,
    visit, visit_rule,
};
use crate::error::AppError;
use crate::repo::records::{self, SyncedModel};
use sync_core::semantic::VisitIntervals;

/// Active children per category. 13 scattered orphans and 590 children in
/// difficulty are the bureau's reported counts; the other categories are
/// assumptions of a plausible size for a district of 327 villages.
pub const ACTIVE_CHILDREN: [(&str, usize); 7] = [
    ("scattered_orphan", 13),
    ("in_difficulty", 590),
    ("institutional_orphan", 4),
    ("de_facto_unsupported", 30),
    ("left_behind", 180),
    ("migrant", 60),
    ("low_income_edge", 40),
];

/// Children added to the register in the half-year before `today` (reported:
/// 44), counted among `ACTIVE_CHILDREN`.
pub const ADDED_HALF_YEAR: usize = 44;

/// Children who left the register in the half-year before `today` (reported:
/// 45), in addition to `ACTIVE_CHILDREN`.
pub const EXITED_HALF_YEAR: usize = 45;

/// The half-year the reported figures cover: effective dates from
/// `today - HALF_YEAR_DAYS` up to yesterday.
pub const HALF_YEAR_DAYS: u64 = 182;

/// Monthly benefit standards in CNY: category, first day, amount. From
/// `reference-district.json`; de-facto unsupported children get the
/// scattered-orphan standard (national rule), and the earlier standards are
/// assumed to have started a year before the April 2025 change.
const BENEFIT_STANDARDS: [(&str, (i32, u32, u32), i32); 9] = [
    ("institutional_orphan", (2024, 4, 1), 3357),
    ("institutional_orphan", (2025, 4, 1), 3553),
    ("scattered_orphan", (2024, 4, 1), 2686),
    ("scattered_orphan", (2025, 4, 1), 2843),
    ("in_difficulty", (2024, 4, 1), 2686),
    ("in_difficulty", (2025, 4, 1), 2843),
    ("de_facto_unsupported", (2024, 4, 1), 2686),
    ("de_facto_unsupported", (2025, 4, 1), 2843),
    ("low_income_edge", (2025, 4, 1), 463),
];

/// Rows per `INSERT`: well under SQLite's and PostgreSQL's parameter limits.
const BATCH: usize = 500;

/// What `seed_demo` created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoSummary {
    pub towns: usize,
    pub villages: usize,
    pub supervisors: usize,
    pub directors: usize,
    pub admins: usize,
    /// Active children per category.
    pub children_by_category: BTreeMap<String, usize>,
    pub children_active: usize,
    pub children_exited: usize,
    /// First day of the half-year the `*_half_year` figures cover.
    pub half_year_from: NaiveDate,
    pub added_half_year: usize,
    pub exited_half_year: usize,
    pub visits: usize,
    pub visits_half_year: usize,
    pub visits_by_review_status: BTreeMap<String, usize>,
    pub visits_with_risk_flags: usize,
    pub case_plan_items: usize,
    /// Case-plan items with status `open`.
    pub open_needs_items: usize,
    /// Active children whose due date (last visit, or the day they were
    /// added, plus their interval) is before `today`.
    pub overdue_children: usize,
}

/// The demo accounts' password (printed by the CLI, written in the README).
pub const DEMO_PASSWORD: &str = "seedling-demo";

/// Loads the demo district when the database holds no org units, dated by
/// today's date in China; `None` when it already held data. The one place
/// here that reads the clock: [`seed_demo`] itself is deterministic.
pub async fn seed_if_empty(
    db: &DatabaseConnection,
    seed: u64,
) -> Result<Option<DemoSummary>, AppError> {
    if !is_empty(db).await? {
        return Ok(None);
    }
    let password_hash = password::hash_password(DEMO_PASSWORD)?;
    let today = district_day(Utc::now());
    Ok(Some(seed_demo(db, &password_hash, seed, today).await?))
}

/// True when the database holds no org units, i.e. nothing to collide with.
pub async fn is_empty(db: &impl ConnectionTrait) -> Result<bool, DbErr> {
    Ok(org_unit::Entity::find().one(db).await?.is_none())
}

/// Seeds the demo district in one transaction (a savepoint when `db` is
/// already a transaction). Expects an empty database (see [`is_empty`]).
/// Every account gets `password_hash`; `today` (a day of the district's
/// calendar) fixes the dates, and seeded rows are stamped at the start of
/// `today` in the district, so nothing is ahead of the clock of anyone for
/// whom it is already `today`: a phone that observes the pulled clocks
/// sees none in its future.
pub async fn seed_demo(
    db: &(impl ConnectionTrait + TransactionTrait),
    password_hash: &str,
    seed: u64,
    today: NaiveDate,
) -> Result<DemoSummary, DbErr> {
    let now = at_local(today, 0, 0);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let roster = roster::build(&mut rng, password_hash, now);
    let (children, events) = children::build(&mut rng, &roster, today);
    let (visits, items) = visits::build(&mut rng, &roster, &children, today, now);
    let alerts = urgent_alerts(&visits, today);
    let summary = summarize(&roster, &children, &events, &visits, &items, today);

    let district_id = roster.district_id;
    let town_of: BTreeMap<Uuid, Uuid> = roster.villages.iter().map(|v| (v.id, v.town_id)).collect();
    let mut changes = Vec::with_capacity(children.len() + visits.len() + items.len());
    // Records follow their child; an exited child's records leave the
    // village's phones but stay with the town and the district.
    let exited: std::collections::BTreeSet<Uuid> = children
        .iter()
        .filter(|c| c.model.status == "exited")
        .map(|c| c.model.id)
        .collect();
    let mut log = |entity: &str, record_id: Uuid, village_id: Uuid, child_id: Uuid| {
        changes.push(change_log::ActiveModel {
            seq: NotSet,
            entity: Set(entity.to_owned()),
            record_id: Set(record_id),
            version: Set(1),
            op: Set("upsert".to_owned()),
            village_id: Set((!exited.contains(&child_id)).then_some(village_id)),
            town_id: Set(town_of.get(&village_id).copied()),
            district_id: Set(Some(district_id)),
            created_at: Set(now),
        });
    };
    children
        .iter()
        .for_each(|c| log("child", c.model.id, c.model.village_id, c.model.id));
    visits
        .iter()
        .for_each(|v| log("visit", v.id, v.village_id, v.child_id));
    items
        .iter()
        .for_each(|i| log("case_plan_item", i.id, i.village_id, i.child_id));

    let txn = crate::repo::begin_write(db).await?;
    // Parents before children: the district, then towns, then villages.
    insert::<org_unit::Entity, _>(&txn, roster.org_units).await?;
    insert::<user::Entity, _>(&txn, roster.users).await?;
    insert::<visit_rule::Entity, _>(
        &txn,
        VisitIntervals::default()
            .by_category
            .into_iter()
            .map(|(category, days)| visit_rule::Model {
                district_id,
                category,
                interval_days: i32::try_from(days).unwrap_or(i32::MAX),
                updated_at: now,
                updated_by: None,
            }),
    )
    .await?;
    insert::<benefit_standard::Entity, _>(&txn, benefit_standards(&mut rng)).await?;
    // The sync metadata is stamped as each batch goes in: a whole
    // district's clocks took more memory than everything else the seed
    // holds.
    let children = children.into_iter().map(|c| stamped(c.model));
    insert::<child::Entity, _>(&txn, children).await?;
    insert::<register_event::Entity, _>(&txn, events).await?;
    insert::<visit::Entity, _>(&txn, visits.into_iter().map(stamped)).await?;
    insert::<case_plan_item::Entity, _>(&txn, items.into_iter().map(stamped)).await?;
    insert::<conflict::Entity, _>(&txn, alerts).await?;
    for batch in changes.chunks(BATCH) {
        change_log::Entity::insert_many(batch.to_vec())
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(summary)
}

/// Inserts the demo's dated benefit standards (into a database seeded
/// otherwise, such as the benchmark province).
pub async fn seed_benefit_standards(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    insert::<benefit_standard::Entity, _>(db, benefit_standards(&mut rng)).await
}

/// Inserts models in batches of [`BATCH`] rows.
/// Days back within which a demo visit's urgent risk flag is still an open
/// alert for the town and the district; older ones predate the alerts.
const OPEN_ALERT_DAYS: i64 = 14;

/// The open `urgent` alert a push raises for a visit carrying an urgent
/// risk flag (mandatory reporting), for the demo's recent visits, so the
/// console's red card and banners show as they would in the field.
fn urgent_alerts(visits: &[visit::Model], today: NaiveDate) -> Vec<conflict::Model> {
    visits
        .iter()
        .filter(|v| (today - crate::calendar::day_of(v.visited_at)).num_days() <= OPEN_ALERT_DAYS)
        .filter(|v| {
            v.risk_flags
                .as_array()
                .is_some_and(|flags| flags.iter().any(sync_core::protocol::is_urgent_item))
        })
        .map(|v| conflict::Model {
            // Derived from the visit's, so a seed gives the same district.
            id: Uuid::from_u128(v.id.as_u128().rotate_left(64)),
            entity: "visit".to_owned(),
            record_id: v.id,
            field: None,
            kind: "urgent".to_owned(),
            local_value: None,
            remote_value: None,
            local_clock: None,
            remote_clock: None,
            rule: None,
            winner: None,
            mutation_id: None,
            actor_id: Some(v.author_id),
            village_id: Some(v.village_id),
            status: "open".to_owned(),
            resolution: None,
            resolved_by: None,
            resolved_at: None,
            created_at: v.created_at,
        })
        .collect()
}

async fn insert<E, M>(
    db: &impl ConnectionTrait,
    models: impl IntoIterator<Item = M>,
) -> Result<(), DbErr>
where
    E: EntityTrait,
    M: IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: sea_orm::ActiveModelTrait<Entity = E>,
{
    let mut batch = Vec::with_capacity(BATCH);
    for model in models {
        batch.push(model.into_active_model());
        if batch.len() == BATCH {
            E::insert_many(std::mem::take(&mut batch))
                .exec_without_returning(db)
                .await?;
        }
    }
    E::insert_many(batch).exec_without_returning(db).await?;
    Ok(())
}

fn benefit_standards(rng: &mut ChaCha8Rng) -> Vec<benefit_standard::Model> {
    BENEFIT_STANDARDS
        .iter()
        .map(|&(category, (y, m, d), amount_cny)| {
            let from = NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN);
            let next = BENEFIT_STANDARDS
                .iter()
                .filter(|&&(c, (ny, nm, nd), _)| c == category && (ny, nm, nd) > (y, m, d))
                .filter_map(|&(_, (ny, nm, nd), _)| NaiveDate::from_ymd_opt(ny, nm, nd))
                .min();
            benefit_standard::Model {
                id: new_id(rng),
                category: category.to_owned(),
                amount_cny,
                effective_from: from,
                effective_to: next.and_then(|n| n.pred_opt()),
            }
        })
        .collect()
}

/// The monthly standard for `category` on `date`, if the category has one.
fn benefit_standard(category: &str, date: NaiveDate) -> Option<i32> {
    BENEFIT_STANDARDS
        .iter()
        .filter(|&&(c, (y, m, d), _)| {
            c == category && NaiveDate::from_ymd_opt(y, m, d).is_some_and(|from| from <= date)
        })
        .max_by_key(|&&(_, from, _)| from)
        .map(|&(_, _, amount)| amount)
}

/// The default visiting interval of `category` (`sync-core`'s assumed
/// defaults, which also fill the `visit_rules` table).
fn visit_interval(category: &str) -> i32 {
    i32::try_from(VisitIntervals::default().interval_days(category, None)).unwrap_or(i32::MAX)
}

/// A random (version 4) UUID drawn from the seeded generator.
fn new_id(rng: &mut ChaCha8Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rand::Rng::r#gen(rng)).into_uuid()
}

/// The day of the district's calendar at `instant`.
pub(crate) fn district_day(instant: DateTime<Utc>) -> NaiveDate {
    crate::calendar::day_of(instant)
}

/// `date` at `hour:minute` in the district, as UTC.
fn at_local(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    crate::calendar::start_of(date)
        + chrono::Duration::hours(i64::from(hour))
        + chrono::Duration::minutes(i64::from(minute))
}

/// A seeded row with its sync metadata: every field written once, when the
/// row was last updated, by the nil node (the server's seed), at version 1.
fn stamped<M: SyncedModel>(mut model: M) -> M {
    *model.field_clocks_mut() = records::written_at(&model, model.updated_at(), Uuid::nil())
        .unwrap_or_else(|err| panic!("demo rows follow the sync rules: {err}"));
    model
}

fn summarize(
    roster: &roster::Roster,
    children: &[children::PlannedChild],
    events: &[register_event::Model],
    visits: &[visit::Model],
    items: &[case_plan_item::Model],
    today: NaiveDate,
) -> DemoSummary {
    let half_year_from = today - Days::new(HALF_YEAR_DAYS);
    let count_role = |role: &str| roster.users.iter().filter(|u| u.role == role).count();
    let count_events = |kind: &str| {
        events
            .iter()
            .filter(|e| e.kind == kind && e.effective_date >= half_year_from)
            .count()
    };
    let mut children_by_category = BTreeMap::new();
    let mut last_visit: BTreeMap<Uuid, NaiveDate> = BTreeMap::new();
    for v in visits {
        let day = v.visited_at.date_naive();
        let last = last_visit.entry(v.child_id).or_insert(day);
        *last = (*last).max(day);
    }
    let mut overdue_children = 0;
    for c in children.iter().filter(|c| c.model.status == "active") {
        *children_by_category
            .entry(c.model.category.clone())
            .or_insert(0) += 1;
        let last = last_visit.get(&c.model.id).copied().unwrap_or(c.added);
        if last + Days::new(c.interval_days as u64) < today {
            overdue_children += 1;
        }
    }
    let mut visits_by_review_status = BTreeMap::new();
    for v in visits {
        *visits_by_review_status
            .entry(v.review_status.clone())
            .or_insert(0) += 1;
    }
    let children_active = children_by_category.values().sum();
    DemoSummary {
        towns: roster.org_units.iter().filter(|o| o.kind == "town").count(),
        villages: roster.villages.len(),
        supervisors: count_role("supervisor"),
        directors: count_role("director"),
        admins: count_role("admin"),
        children_by_category,
        children_active,
        children_exited: children.len() - children_active,
        half_year_from,
        added_half_year: count_events("added"),
        exited_half_year: count_events("exited"),
        visits: visits.len(),
        visits_half_year: visits
            .iter()
            .filter(|v| v.visited_at.date_naive() >= half_year_from)
            .count(),
        visits_by_review_status,
        visits_with_risk_flags: visits
            .iter()
            .filter(|v| v.risk_flags.as_array().is_some_and(|a| !a.is_empty()))
            .count(),
        case_plan_items: items.len(),
        open_needs_items: items.iter().filter(|i| i.status == "open").count(),
        overdue_children,
    }
}
