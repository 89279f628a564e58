//! The demo register: children spread over the villages with plausible
//! ages, guardians and schools, each with an `added` register event, plus
//! the children added and exited in the last half-year.

use chrono::{DateTime, Days, Months, NaiveDate, Utc};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use super::roster::Roster;
use super::{
    ACTIVE_CHILDREN, ADDED_HALF_YEAR, EXITED_HALF_YEAR, HALF_YEAR_DAYS, at_local, benefit_standard,
    names, new_id, visit_interval,
};
use crate::entity::{child, register_event};

/// Categories of the children who left the register in the half-year.
const EXITED_CATEGORIES: &[&str] = &[
    "in_difficulty",
    "in_difficulty",
    "in_difficulty",
    "in_difficulty",
    "in_difficulty",
    "in_difficulty",
    "left_behind",
    "de_facto_unsupported",
    "low_income_edge",
    "scattered_orphan",
];

/// A generated child with what the visit generator needs to know.
#[derive(Debug)]
pub(super) struct PlannedChild {
    pub model: child::Model,
    /// Index into `Roster::villages`.
    pub village: usize,
    pub added: NaiveDate,
    pub age: i32,
    pub interval_days: i64,
}

pub(super) fn build(
    rng: &mut ChaCha8Rng,
    roster: &Roster,
    today: NaiveDate,
) -> (Vec<PlannedChild>, Vec<register_event::Model>) {
    let half_year_from = today - Days::new(HALF_YEAR_DAYS);
    let mut categories: Vec<&'static str> = ACTIVE_CHILDREN
        .iter()
        .flat_map(|&(category, n)| std::iter::repeat_n(category, n))
        .collect();
    let active = categories.len();
    categories.extend((0..EXITED_HALF_YEAR).map(|_| names::pick(rng, EXITED_CATEGORIES)));

    // Which active children joined in the half-year.
    let mut recent = vec![false; active];
    recent[..ADDED_HALF_YEAR].fill(true);
    recent.shuffle(rng);

    // Every village gets at least one child; the rest spread at random.
    let mut first_child_of: Vec<usize> = (0..roster.villages.len()).collect();
    first_child_of.shuffle(rng);

    let mut children = Vec::with_capacity(categories.len());
    let mut events = Vec::with_capacity(categories.len() + EXITED_HALF_YEAR);
    for (i, &category) in categories.iter().enumerate() {
        let village = if i < first_child_of.len() {
            first_child_of[i]
        } else {
            rng.gen_range(0..roster.villages.len())
        };
        let exited = i >= active;
        let under_16 = matches!(category, "left_behind" | "migrant");
        let exit = exited.then(|| {
            let date = today - Days::new(rng.gen_range(1..=HALF_YEAR_DAYS));
            let reason = match rng.gen_range(0..10) {
                _ if under_16 => "no_longer_eligible",
                0..=3 => "turned_18",
                4..=6 => "no_longer_eligible",
                7..=8 => "moved_away",
                _ => "adopted",
            };
            (date, reason)
        });
        let birth_date = match exit {
            Some((date, "turned_18")) => date - Months::new(18 * 12),
            _ => {
                let max_days = if under_16 {
                    16 * 365 - 10
                } else {
                    18 * 365 - 10
                };
                today - Days::new(rng.gen_range(365..max_days))
            }
        };
        let age = years_between(birth_date, exit.map_or(today, |(date, _)| date));
        let is_recent = !exited && recent[i];
        let added = if is_recent {
            today - Days::new(rng.gen_range(1..=HALF_YEAR_DAYS))
        } else {
            let earliest = (birth_date + Days::new(30)).max(today - Days::new(6 * 365));
            let latest = half_year_from - Days::new(1);
            earliest + Days::new(rng.gen_range(0..=(latest - earliest).num_days()) as u64)
        };
        let facts = Facts {
            category,
            birth_date,
            age,
            added,
            exit,
            standard_on: exit.map_or(today, |(date, _)| date),
        };
        let (model, interval_days) = child_model(rng, roster, village, &facts);
        events.push(register_event::Model {
            id: new_id(rng),
            child_id: model.id,
            kind: "added".to_owned(),
            effective_date: added,
            source: if is_recent && rng.gen_bool(0.3) {
                "data_matching".to_owned()
            } else {
                "district".to_owned()
            },
            from_value: None,
            to_value: Some(category.to_owned()),
            reason: None,
            recorded_by: Some(roster.admin_id),
            created_at: at_local(added, 9, 0),
        });
        if let Some((date, reason)) = exit {
            events.push(register_event::Model {
                id: new_id(rng),
                child_id: model.id,
                kind: "exited".to_owned(),
                effective_date: date,
                source: "district".to_owned(),
                from_value: Some("active".to_owned()),
                to_value: Some("exited".to_owned()),
                reason: Some(reason.to_owned()),
                recorded_by: Some(roster.admin_id),
                created_at: at_local(date, 10, 0),
            });
        }
        children.push(PlannedChild {
            model,
            village,
            added,
            age,
            interval_days,
        });
    }
    (children, events)
}

/// What `build` decided about a child before filling in the details.
struct Facts {
    category: &'static str,
    birth_date: NaiveDate,
    age: i32,
    added: NaiveDate,
    /// Exit date and reason, for children who left the register.
    exit: Option<(NaiveDate, &'static str)>,
    /// The day whose benefit standard applies (today, or the exit date).
    standard_on: NaiveDate,
}

fn child_model(
    rng: &mut ChaCha8Rng,
    roster: &Roster,
    village: usize,
    facts: &Facts,
) -> (child::Model, i64) {
    let &Facts {
        category,
        birth_date,
        age,
        added,
        exit,
        standard_on,
    } = facts;
    let v = &roster.villages[village];
    let name = names::person_name(rng, None, true);
    let surname = names::surname_of(&name).to_owned();
    let relation = names::pick(
        rng,
        match category {
            "institutional_orphan" => &["institution"],
            "scattered_orphan" | "de_facto_unsupported" => {
                &["grandmother", "grandfather", "aunt", "uncle", "grandmother"]
            }
            "left_behind" => &["grandmother", "grandfather", "grandmother", "aunt", "uncle"],
            "migrant" => &["mother", "father"],
            _ => &["mother", "father", "grandmother", "grandfather", "mother"],
        },
    );
    let guardian_name = match relation {
        "institution" => "奉化区儿童福利院".to_owned(),
        "father" | "grandfather" | "uncle" => names::person_name(rng, Some(&surname), false),
        _ => names::person_name(rng, None, false),
    };
    let address = if v.community {
        format!(
            "{}{}{}幢{}室",
            v.town_name,
            v.name,
            rng.gen_range(1..40),
            rng.gen_range(101..1802)
        )
    } else {
        format!("{}{}{}号", v.town_name, v.name, rng.gen_range(1..300))
    };
    let health_notes = rng.gen_bool(0.08).then(|| {
        names::pick(
            rng,
            &[
                "哮喘，需定期复查",
                "先天性心脏病术后",
                "过敏性鼻炎",
                "贫血，在服药",
            ],
        )
        .to_owned()
    });
    let disability_notes = (category == "in_difficulty" && rng.gen_bool(0.25)).then(|| {
        names::pick(
            rng,
            &[
                "肢体残疾（四级）",
                "智力残疾（三级）",
                "听力残疾（二级）",
                "孤独症，在特教学校就读",
            ],
        )
        .to_owned()
    });
    let interval_override = rng.gen_bool(0.03).then_some(14);
    let updated_at: DateTime<Utc> =
        exit.map_or(at_local(added, 9, 0), |(date, _)| at_local(date, 10, 0));
    let id = new_id(rng);
    let gender = if rng.gen_bool(0.5) { "male" } else { "female" };
    let model = child::Model {
        id,
        version: 1,
        field_clocks: serde_json::Value::Null,
        created_at: at_local(added, 9, 0),
        updated_at,
        deleted: false,
        gender: Some(gender.to_owned()),
        id_number: Some(child::IdNumber(demo_id_number(id, birth_date, gender))),
        name,
        birth_date,
        category: category.to_owned(),
        status: if exit.is_some() { "exited" } else { "active" }.to_owned(),
        exit_reason: exit.map(|(_, reason)| reason.to_owned()),
        exit_date: exit.map(|(date, _)| date),
        village_id: v.id,
        guardian_name: Some(guardian_name),
        guardian_relation: Some(relation.to_owned()),
        guardian_phone: Some(names::phone(rng)),
        address: Some(address),
        school: names::school(rng, v.town_name, age),
        health_notes,
        disability_notes,
        benefit_standard_cny: benefit_standard(category, standard_on),
        visit_interval_days: interval_override,
        external_id: None,
        archived_at: None,
    };
    let interval = interval_override.unwrap_or_else(|| visit_interval(category));
    (model, i64::from(interval))
}

/// Whole years from `from` to `to`.
fn years_between(from: NaiveDate, to: NaiveDate) -> i32 {
    to.years_since(from)
        .and_then(|y| i32::try_from(y).ok())
        .unwrap_or(0)
}

/// A well-formed, made-up identity-card number of the district (330213):
/// region, birth date, a sequence whose last digit is odd for boys and even
/// for girls, and the ISO 7064 MOD 11-2 check character. Derived from the
/// child's id, so the generator's random stream is unchanged.
fn demo_id_number(id: Uuid, birth_date: NaiveDate, gender: &str) -> String {
    let mut sequence = u32::try_from(id.as_u128() % 1000).unwrap_or(0);
    if (sequence % 2 == 1) != (gender == "male") {
        sequence = (sequence + 1) % 1000;
    }
    let body = format!("330213{}{sequence:03}", birth_date.format("%Y%m%d"));
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .chars()
        .zip(WEIGHTS)
        .map(|(digit, weight)| digit.to_digit(10).unwrap_or(0) * weight)
        .sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body}{check}")
}
