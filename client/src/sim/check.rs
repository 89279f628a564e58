//! The checks after the fleet went quiet, against a fresh district-wide
//! pull (a new admin device on a clean link): every visit recorded on a
//! phone exists on the server exactly once; every phone's copy of its scope
//! equals the server's (checksum, versions, values, and — for directors —
//! the set of records a village should hold); every concurrent edit left a
//! conflict.

use std::collections::{BTreeMap, HashMap, HashSet};

use sync_core::{
    protocol::MutationResult,
    record::{Entity, Record},
    rules::Role,
};
use uuid::Uuid;

use super::{SimError, device::SimDevice, work::Plan};
use crate::store::LocalRecord;

/// The server's records, keyed by entity and id (live records only).
pub type ServerCopy = HashMap<(Entity, Uuid), Record>;

/// Every live record a device holds, by entity and id.
pub async fn records_of(device: &SimDevice) -> Result<Vec<LocalRecord>, SimError> {
    let mut all = Vec::new();
    for entity in Entity::ALL {
        all.extend(device.store().list(entity).await?);
    }
    Ok(all)
}

/// The server's copy as seen by a device that just pulled everything.
pub async fn server_copy(verifier: &SimDevice) -> Result<ServerCopy, SimError> {
    Ok(records_of(verifier)
        .await?
        .into_iter()
        .map(|r| ((r.record.entity, r.record.id), r.record))
        .collect())
}

/// Visits not on the server, and extra copies of a visit on the server.
pub fn lost_and_duplicated(devices: &[SimDevice], server: &ServerCopy) -> (usize, usize) {
    let mut by_tag: HashMap<String, usize> = HashMap::new();
    for record in server.values().filter(|r| r.entity == Entity::Visit) {
        if let Some(tag) = record
            .get("observations")
            .and_then(|o| o.get("living").and_then(|t| t.as_str().map(str::to_owned)))
        {
            *by_tag.entry(tag).or_default() += 1;
        }
    }
    let mut lost = 0;
    let mut duplicated = 0;
    for visit in devices.iter().flat_map(|d| &d.recorded) {
        let found = server.contains_key(&(Entity::Visit, visit.id));
        let copies = by_tag.get(&visit.tag).copied().unwrap_or(0);
        if !found || copies == 0 {
            lost += 1;
        }
        duplicated += copies.saturating_sub(1);
    }
    (lost, duplicated)
}

/// The records a director's phone must hold: the active children of the
/// village and their visits and case-plan items.
fn village_scope(server: &ServerCopy, village: Uuid) -> HashSet<(Entity, Uuid)> {
    let village = village.to_string();
    let children: HashSet<String> = server
        .values()
        .filter(|r| {
            r.entity == Entity::Child
                && r.get_str("status") == Some("active")
                && r.get_str("village_id") == Some(village.as_str())
        })
        .map(|r| r.id.to_string())
        .collect();
    server
        .values()
        .filter(|r| match r.entity {
            Entity::Child => children.contains(&r.id.to_string()),
            _ => r.get_str("child_id").is_some_and(|c| children.contains(c)),
        })
        .map(|r| (r.entity, r.id))
        .collect()
}

/// The records each unit's phones must hold, by unit: each town as its
/// supervisor's fresh pull returned it, each village as [`villages`] found it.
pub type Scopes = HashMap<Uuid, HashSet<(Entity, Uuid)>>;

/// The records a director's phone must hold in each of `villages` (every
/// village computed once, however many phones work in it).
pub fn villages(server: &ServerCopy, villages: impl IntoIterator<Item = Uuid>) -> Scopes {
    let mut scopes = Scopes::new();
    for village in villages {
        scopes
            .entry(village)
            .or_insert_with(|| village_scope(server, village));
    }
    scopes
}

/// What is wrong with one device's copy (empty: it equals the server's).
pub async fn divergence(
    device: &SimDevice,
    server: &ServerCopy,
    towns: &Scopes,
    villages: &Scopes,
) -> Result<Vec<String>, SimError> {
    let mut problems = Vec::new();
    match &device.last_report {
        None => problems.push("never finished a sync".to_owned()),
        Some(r) if r.diverged.is_some() => {
            problems.push(format!("scope checksum differs: {:?}", r.diverged));
        }
        Some(_) => {}
    }
    let mut held = HashSet::new();
    for local in records_of(device).await? {
        let key = (local.record.entity, local.record.id);
        if local.pending {
            problems.push(format!("{key:?} still has unpushed edits"));
            continue;
        }
        if local.server_version == 0 {
            // A record the phone made that the server keeps outside this
            // phone's scope (a visit to a child who moved away).
            continue;
        }
        held.insert(key);
        match server.get(&key) {
            None => problems.push(format!(
                "{key:?} is on the phone but not live on the server"
            )),
            Some(s) => {
                let mut expected = s.values();
                if device.role == Role::Director {
                    // A director's phone never receives identity numbers.
                    expected.remove("id_number");
                }
                if s.version != local.record.version || expected != local.record.values() {
                    problems.push(format!(
                        "{key:?} differs: phone v{} {:?}, server v{} {:?}",
                        local.record.version,
                        local.record.values(),
                        s.version,
                        expected
                    ));
                }
            }
        }
    }
    let expected = match device.role {
        Role::Director => villages.get(&device.unit),
        Role::Supervisor => towns.get(&device.unit),
        _ => None,
    };
    if let Some(expected) = expected {
        for missing in expected.difference(&held).take(5) {
            problems.push(format!("{missing:?} is in scope but not on the phone"));
        }
        for extra in held.difference(expected).take(5) {
            problems.push(format!("{extra:?} is on the phone but outside its scope"));
        }
    }
    Ok(problems)
}

/// Conflicts the servers reported (one count per conflict, each mutation
/// once), and the concurrently edited records that left none.
pub fn conflicts(results: &[MutationResult], plan: &Plan) -> (usize, Vec<(Entity, Uuid)>) {
    let mut total = 0;
    let mut with_conflict = HashSet::new();
    for result in results {
        if let MutationResult::Merged {
            record_id,
            conflicts,
            ..
        } = result
        {
            total += conflicts.len();
            if !conflicts.is_empty() {
                with_conflict.insert(*record_id);
            }
        }
    }
    let missing = plan
        .concurrent
        .iter()
        .filter(|(_, id)| !with_conflict.contains(id))
        .copied()
        .collect();
    (total, missing)
}

/// Rejections the servers answered: by reason, a count and one message.
pub fn rejections(results: &[MutationResult]) -> BTreeMap<String, (usize, String)> {
    let mut by_reason: BTreeMap<String, (usize, String)> = BTreeMap::new();
    for result in results {
        if let MutationResult::Rejected {
            reason, message, ..
        } = result
        {
            let reason = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("{reason:?}"));
            let entry = by_reason
                .entry(reason)
                .or_insert_with(|| (0, message.clone()));
            entry.0 += 1;
        }
    }
    by_reason
}
