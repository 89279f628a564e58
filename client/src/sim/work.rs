//! The offline work of the simulated days: directors record visits to the
//! children of their village, edit them, add needs, plan case work and
//! submit visits; before anyone syncs, the district edits the same children
//! (concurrent edits), a supervisor and the district both change a child's
//! visit interval, and the district transfers a child out of a village
//! whose phone then records a visit to it while still offline.

use serde_json::{Value, json};
use sync_core::record::Entity;
use uuid::Uuid;

use super::{
    SimError,
    console::Console,
    device::{Recorded, SimDevice},
};
use crate::{
    backoff::Jitter,
    edit::{Change, NewVisit},
    store::{LocalRecord, StoreError},
};

/// What the scenario set up that the checks must find.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Records edited concurrently by two people: each must have left a conflict.
    pub concurrent: Vec<(Entity, Uuid)>,
    /// The child moved by the district while its village's phone was offline.
    pub transferred: Option<Uuid>,
}

const KINDS: [&str; 4] = ["home_visit", "phone_follow_up", "school_visit", "other"];
const AREAS: [&str; 3] = ["living", "study", "psychology"];

/// A draw in `0..n` (`n > 0`).
pub fn pick(rng: &mut Jitter, n: usize) -> usize {
    ((rng.next_f64() * n as f64) as usize).min(n.saturating_sub(1))
}

/// True with probability `p`.
pub fn chance(rng: &mut Jitter, p: f64) -> bool {
    rng.next_f64() < p
}

/// The active children a phone holds, ordered by id.
pub async fn active_children(device: &SimDevice) -> Result<Vec<LocalRecord>, SimError> {
    Ok(device
        .store()
        .list(Entity::Child)
        .await?
        .into_iter()
        .filter(|c| c.record.get_str("status") == Some("active"))
        .collect())
}

/// The date `days_back` days before today in China, at 10:00 local time.
fn visit_time(days_back: usize) -> String {
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let day = today - chrono::Duration::days(i64::try_from(days_back).unwrap_or(0));
    format!("{day}T10:00:00+08:00")
}

/// Records one visit on `device` and remembers it.
pub async fn record_visit(
    device: &mut SimDevice,
    child: Uuid,
    kind: &str,
    days_back: usize,
    seed: u64,
) -> Result<Uuid, SimError> {
    let tag = format!("sim-{seed}-{}-{}", device.label, device.recorded.len());
    let id = device
        .store()
        .create_visit(NewVisit {
            child_id: child,
            village_id: device.unit,
            kind: kind.to_owned(),
            visited_at: visit_time(days_back),
            location: Some("home".into()),
            observations: Some(json!({ "living": tag })),
            review_status: None,
        })
        .await?;
    device.recorded.push(Recorded { id, tag });
    Ok(id)
}

/// The edits made before anyone syncs: concurrent edits of one child per
/// director by the district, a concurrent change of a visit interval by a
/// supervisor and the district, and a transfer. The district's edits are
/// based on the versions the phones downloaded, so they are concurrent with
/// the phones' offline edits.
pub async fn concurrent_edits(
    admin: &mut Console,
    supervisor: &SimDevice,
    directors: &mut [SimDevice],
    seed: u64,
) -> Result<Plan, SimError> {
    let mut plan = Plan::default();
    let mut used = Vec::new();
    for (i, director) in directors.iter().enumerate() {
        let Some(child) = active_children(director).await?.into_iter().next() else {
            continue;
        };
        let (id, base) = (child.record.id, child.server_version);
        director
            .store()
            .update(
                Entity::Child,
                id,
                vec![
                    Change::Set("guardian_phone".into(), json!(format!("138{i:08}"))),
                    Change::Set("address".into(), json!(format!("sim {seed}: lane {i}"))),
                ],
            )
            .await?;
        admin.update(
            Entity::Child,
            id,
            base,
            &[
                ("guardian_phone", json!(format!("139{i:08}"))),
                ("school", json!(format!("sim {seed}: school {i}"))),
            ],
        );
        plan.concurrent.push((Entity::Child, id));
        used.push(id);
    }

    // The district moves a child of the first village to the second while the
    // first village's phone is offline; that phone then records a visit to it.
    if let [first, second, ..] = directors {
        let children = active_children(first).await?;
        if let Some(moved) = children.iter().find(|c| !used.contains(&c.record.id)) {
            let (id, base) = (moved.record.id, moved.server_version);
            admin.update(
                Entity::Child,
                id,
                base,
                &[("village_id", json!(second.unit))],
            );
            record_visit(first, id, "home_visit", 0, seed).await?;
            plan.transferred = Some(id);
            used.push(id);
        }
    }

    // A supervisor and the district both change how often a child is visited.
    let town_children = active_children(supervisor).await?;
    if let Some(child) = town_children.iter().find(|c| !used.contains(&c.record.id)) {
        let (id, base) = (child.record.id, child.server_version);
        supervisor
            .store()
            .set_field(Entity::Child, id, "visit_interval_days", json!(45))
            .await?;
        admin.update(
            Entity::Child,
            id,
            base,
            &[("visit_interval_days", json!(60))],
        );
        plan.concurrent.push((Entity::Child, id));
    }
    Ok(plan)
}

/// One offline day of a director: `visits` new visits, edits of earlier
/// ones, needs, perhaps a case-plan item.
pub async fn director_day(
    device: &mut SimDevice,
    rng: &mut Jitter,
    visits: usize,
    days_back: usize,
    seed: u64,
) -> Result<(), SimError> {
    let children = active_children(device).await?;
    if children.is_empty() {
        return Ok(());
    }
    for _ in 0..visits {
        let child = children[pick(rng, children.len())].record.id;
        let kind = KINDS[pick(rng, KINDS.len())];
        let id = record_visit(device, child, kind, days_back, seed).await?;
        if chance(rng, 0.5) {
            let need = json!({
                "id": format!("need-{}", device.recorded.len()),
                "area": AREAS[pick(rng, AREAS.len())],
                "note": "found during the visit",
            });
            device
                .store()
                .add_item(Entity::Visit, id, "needs", need)
                .await?;
        }
    }
    if !device.recorded.is_empty() && chance(rng, 0.6) {
        // An earlier visit, pushed already or still waiting: a correction.
        let earlier = device.recorded[pick(rng, device.recorded.len())].id;
        let change = if chance(rng, 0.5) {
            Change::Set("location".into(), json!("village school"))
        } else {
            Change::Set(
                "follow_up".into(),
                json!(format!("call again in {days_back} days")),
            )
        };
        tolerate(
            device
                .store()
                .update(Entity::Visit, earlier, vec![change])
                .await,
        )?;
    }
    if !device.recorded.is_empty() && chance(rng, 0.3) {
        let earlier = device.recorded[pick(rng, device.recorded.len())].id;
        let submit = device
            .store()
            .set_field(Entity::Visit, earlier, "review_status", json!("submitted"))
            .await;
        tolerate(submit)?;
    }
    if chance(rng, 0.3) {
        let child = children[pick(rng, children.len())].record.id;
        let changes = [
            ("child_id", json!(child)),
            ("village_id", json!(device.unit)),
            ("area", json!(AREAS[pick(rng, AREAS.len())])),
            ("description", json!("tutoring twice a week")),
            ("status", json!("open")),
            ("owner", json!(device.username)),
        ]
        .into_iter()
        .map(|(k, v): (&str, Value)| Change::Set(k.to_owned(), v))
        .collect();
        device
            .store()
            .create(Entity::CasePlanItem, Uuid::new_v4(), changes)
            .await?;
    }
    Ok(())
}

/// An edit the app would refuse or could not find (a visit purged when its
/// child moved away, a visit already submitted) is shown to the user, not a
/// failure of the simulation.
fn tolerate<T>(result: Result<T, StoreError>) -> Result<(), SimError> {
    match result {
        Ok(_) | Err(StoreError::Refused { .. } | StoreError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
