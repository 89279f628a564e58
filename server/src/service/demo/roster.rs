//! The demo district's org tree and accounts: 奉化区, its 12 towns with
//! their village counts, one supervisor per town, one director per village
//! and an admin.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::names;
use super::new_id;
use crate::entity::{org_unit, user};

/// The district: name and administrative code.
const DISTRICT: (&str, &str) = ("奉化区", "330213");

/// The towns and streets of `shared/data/reference-district.json`, in file
/// order: name, whether it is a street (街道) rather than a town (镇), and
/// its number of villages and communities (327 in all).
pub(super) const TOWNS: [(&str, bool, usize); 12] = [
    ("锦屏街道", true, 22),
    ("岳林街道", true, 25),
    ("江口街道", true, 30),
    ("西坞街道", true, 28),
    ("萧王庙街道", true, 24),
    ("方桥街道", true, 20),
    ("尚田街道", true, 34),
    ("溪口镇", false, 45),
    ("莼湖街道", true, 33),
    ("裘村镇", false, 24),
    ("大堰镇", false, 22),
    ("松岙镇", false, 20),
];

/// One village and the people who serve it.
#[derive(Debug)]
pub(super) struct Village {
    pub id: Uuid,
    pub town_id: Uuid,
    pub town_name: &'static str,
    pub name: String,
    pub community: bool,
    pub director_id: Uuid,
    pub supervisor_id: Uuid,
    /// Approximate centre, for visit locations.
    pub lat: f64,
    pub lon: f64,
}

/// The org tree and accounts, ready to insert.
#[derive(Debug)]
pub(super) struct Roster {
    pub org_units: Vec<org_unit::Model>,
    pub users: Vec<user::Model>,
    pub villages: Vec<Village>,
    pub admin_id: Uuid,
    pub district_id: Uuid,
}

pub(super) fn build(rng: &mut ChaCha8Rng, password_hash: &str, now: DateTime<Utc>) -> Roster {
    let district_id = new_id(rng);
    let mut org_units = vec![org_unit::Model {
        id: district_id,
        code: DISTRICT.1.to_owned(),
        name: DISTRICT.0.to_owned(),
        kind: "district".to_owned(),
        parent_id: None,
        created_at: now,
    }];
    let mut users = Vec::new();
    let mut account = |rng: &mut ChaCha8Rng, username: String, role: &str, org_unit_id: Uuid| {
        let id = new_id(rng);
        users.push(user::Model {
            id,
            username,
            display_name: names::person_name(rng, None, false),
            role: role.to_owned(),
            org_unit_id,
            password_hash: password_hash.to_owned(),
            active: true,
            created_at: now,
            updated_at: now,
        });
        id
    };
    let admin_id = account(rng, "admin".to_owned(), "admin", district_id);

    let mut villages = Vec::new();
    for (t, &(town_name, street, village_count)) in TOWNS.iter().enumerate() {
        let town_id = new_id(rng);
        let town_code = format!("{}{:03}", DISTRICT.1, t + 1);
        org_units.push(org_unit::Model {
            id: town_id,
            code: town_code.clone(),
            name: town_name.to_owned(),
            kind: "town".to_owned(),
            parent_id: Some(district_id),
            created_at: now,
        });
        let supervisor_id = account(
            rng,
            format!("supervisor-{:02}", t + 1),
            "supervisor",
            town_id,
        );
        // Fenghua spans about 29.5–29.8 N, 121.2–121.6 E; each town gets a
        // centre in that box and its villages lie around it.
        let (town_lat, town_lon) = (rng.gen_range(29.52..29.78), rng.gen_range(121.22..121.58));
        let mut taken = Vec::with_capacity(village_count);
        for v in 0..village_count {
            // Streets have a few urban communities among their villages.
            let community = street && v < village_count / 5;
            let name = loop {
                let candidate = names::village_name(rng, community);
                if !taken.contains(&candidate) {
                    break candidate;
                }
            };
            taken.push(name.clone());
            let id = new_id(rng);
            org_units.push(org_unit::Model {
                id,
                code: format!("{town_code}{:03}", v + 1),
                name: name.clone(),
                kind: "village".to_owned(),
                parent_id: Some(town_id),
                created_at: now,
            });
            let director_id = account(
                rng,
                format!("director-{:03}", villages.len() + 1),
                "director",
                id,
            );
            villages.push(Village {
                id,
                town_id,
                town_name,
                name,
                community,
                director_id,
                supervisor_id,
                lat: town_lat + rng.gen_range(-0.04..0.04),
                lon: town_lon + rng.gen_range(-0.04..0.04),
            });
        }
    }
    Roster {
        org_units,
        users,
        villages,
        admin_id,
        district_id,
    }
}
