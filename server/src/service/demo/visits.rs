//! A year of visit logs for the demo register: each child visited roughly
//! at their rule's interval (weekdays preferred, some children left
//! overdue), with observations, a few needs and risk flags, review states,
//! and the needs ledger (case-plan items) that follows from the needs.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc, Weekday};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use super::children::PlannedChild;
use super::roster::Roster;
use super::{at_local, names, new_id};
use crate::entity::{case_plan_item, visit};

/// Share of active children whose last visit is left older than their
/// interval, so the overdue list has something on it.
const OVERDUE_SHARE: f64 = 0.08;

/// Days between visits for a child with a 30-day rule: directors keep to
/// it most of the time, but not always.
fn gap(rng: &mut ChaCha8Rng, interval: i64) -> u64 {
    let (lo, hi) = match interval {
        ..=30 => (interval * 2 / 3, interval * 2 + interval / 7),
        _ => (interval * 2 / 3, interval * 3 / 2),
    };
    rng.gen_range(lo.max(1)..=hi.max(2)) as u64
}

pub(super) fn build(
    rng: &mut ChaCha8Rng,
    roster: &Roster,
    children: &[PlannedChild],
    today: NaiveDate,
    now: DateTime<Utc>,
) -> (Vec<visit::Model>, Vec<case_plan_item::Model>) {
    let mut visits = Vec::new();
    let mut items = Vec::new();
    for child in children {
        let start = (today - Days::new(365)).max(child.added + Days::new(1));
        let end = child.model.exit_date.unwrap_or(today);
        if start >= end {
            continue;
        }
        let window = (end - start).num_days();
        let interval = child.interval_days;
        let offset = if child.model.exit_date.is_none() && rng.gen_bool(OVERDUE_SHARE) {
            interval + rng.gen_range(1..=45)
        } else {
            rng.gen_range(1..interval.max(2))
        };
        let mut day = if offset <= window {
            end - Days::new(offset as u64)
        } else {
            start + Days::new(rng.gen_range(0..window) as u64)
        };
        let mut days = Vec::new();
        while day >= start {
            days.push(prefer_weekday(rng, day, start, end));
            day = day - Days::new(gap(rng, interval));
        }
        for day in days.into_iter().rev() {
            let visit = visit_model(rng, roster, child, day, today, now);
            items.extend(ledger_items(rng, child, &visit, today, now));
            visits.push(visit);
        }
    }
    (visits, items)
}

/// Moves most weekend visits to a weekday of the same week (Monday to
/// Friday before it), when that stays inside `[start, end)`.
fn prefer_weekday(
    rng: &mut ChaCha8Rng,
    day: NaiveDate,
    start: NaiveDate,
    end: NaiveDate,
) -> NaiveDate {
    let back = match day.weekday() {
        Weekday::Sat => rng.gen_range(1..=5),
        Weekday::Sun => rng.gen_range(2..=6),
        _ => return day,
    };
    let moved = day - Days::new(back);
    if rng.gen_bool(0.8) && moved >= start && moved < end {
        moved
    } else {
        day
    }
}

fn visit_model(
    rng: &mut ChaCha8Rng,
    roster: &Roster,
    child: &PlannedChild,
    day: NaiveDate,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> visit::Model {
    let village = &roster.villages[child.village];
    let kind = match rng.gen_range(0..100) {
        0..=69 => "home_visit",
        70..=91 => "phone_follow_up",
        92..=97 if child.age >= 6 => "school_visit",
        92..=97 => "home_visit",
        _ => "other",
    };
    let visited_at = if kind == "phone_follow_up" {
        at_local(day, rng.gen_range(9..21), rng.gen_range(0..60))
    } else {
        at_local(day, rng.gen_range(8..18), rng.gen_range(0..60))
    };
    let latest = now - Duration::minutes(1);
    let visited_at = visited_at.min(latest - Duration::minutes(10));
    let created_at = (visited_at + Duration::minutes(rng.gen_range(10..2 * 24 * 60))).min(latest);

    let mut observations = Map::new();
    for (area, p) in [
        ("living", 1.0),
        ("study", 0.7),
        ("health", 0.5),
        ("psychology", 0.6),
        ("safety", 0.4),
    ] {
        if (area != "study" || child.age >= 6) && rng.gen_bool(p) {
            observations.insert(area.to_owned(), names::observation(rng, area).into());
        }
    }
    let needs: Vec<Value> = if rng.gen_bool(0.12) {
        let area = match rng.gen_range(0..3) {
            1 if child.age >= 6 => "study",
            2 => "psychology",
            _ => "living",
        };
        vec![json!({ "id": new_id(rng), "area": area, "description": names::need(rng, area) })]
    } else {
        Vec::new()
    };
    let risk_flags: Vec<Value> = if rng.gen_bool(0.006) {
        // The field's risk codes (GLOSSARY.md); the mandatory-reporting
        // ones are marked urgent, as the field app marks them.
        let &(flag, note, urgent) = names::pick(
            rng,
            &[
                &("unsafe_housing", "房屋墙体开裂，雨季有隐患", false),
                &("unsafe_housing", "用电线路老化", false),
                &("guardianship_gap", "监护人长期外出，孩子独自在家", false),
                &("untreated_illness", "孩子咳嗽两周未就医", false),
                &("abandonment", "祖母住院，暂无人照料", true),
                &("self_harm", "孩子提到不想活了，需立即关注", true),
                &("physical_abuse", "孩子手臂有多处淤青，说法前后不一", true),
            ],
        );
        let mut item = json!({ "id": new_id(rng), "kind": flag, "note": note });
        if urgent {
            item["urgent"] = json!(true);
        }
        vec![item]
    } else {
        Vec::new()
    };
    let location = (kind != "phone_follow_up" && rng.gen_bool(0.85)).then(|| {
        json!({
            "lat": round6(village.lat + rng.gen_range(-0.005..0.005)),
            "lon": round6(village.lon + rng.gen_range(-0.005..0.005)),
            "accuracy_m": rng.gen_range(5..60),
        })
    });

    let age_days = (today - day).num_days();
    let roll = rng.gen_range(0..1000);
    let status = match (age_days <= 14, roll) {
        (true, 0..=79) | (false, 0..=4) => "draft",
        (true, 80..=629) | (false, 5..=24) => "submitted",
        (true, 630..=679) | (false, 25..=34) => "returned",
        _ => "approved",
    };
    let reviewed_at = matches!(status, "returned" | "approved")
        .then(|| (created_at + Duration::minutes(rng.gen_range(120..5 * 24 * 60))).min(latest));
    let follow_up = rng.gen_bool(0.3).then(|| {
        names::pick(
            rng,
            &[
                "下月再次入户走访",
                "联系学校了解学习情况",
                "协助申请临时救助",
                "电话跟进监护人",
            ],
        )
        .to_owned()
    });
    let next_planned_date = rng
        .gen_bool(0.5)
        .then(|| day + Days::new(child.interval_days as u64));
    let updated_at = reviewed_at.unwrap_or(created_at);
    visit::Model {
        id: new_id(rng),
        version: 1,
        field_clocks: Value::Null,
        created_at,
        updated_at,
        deleted: false,
        child_id: child.model.id,
        author_id: village.director_id,
        device_id: None,
        village_id: village.id,
        kind: kind.to_owned(),
        visited_at,
        location,
        observations: Some(Value::Object(observations)),
        needs: Value::Array(needs),
        risk_flags: Value::Array(risk_flags),
        photos: json!([]),
        follow_up,
        next_planned_date,
        review_status: status.to_owned(),
        review_comment: (status == "returned").then(|| names::return_comment(rng).to_owned()),
        reviewed_by: reviewed_at.map(|_| village.supervisor_id),
        reviewed_at,
    }
}

/// One needs-ledger item per need a visit recorded: older ones mostly done,
/// recent ones mostly open or in progress.
fn ledger_items(
    rng: &mut ChaCha8Rng,
    child: &PlannedChild,
    visit: &visit::Model,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Vec<case_plan_item::Model> {
    let Value::Array(needs) = &visit.needs else {
        return Vec::new();
    };
    let visited = visit.visited_at.date_naive();
    let old = (today - visited).num_days() > 120;
    needs
        .iter()
        .map(|need| {
            let area = need["area"].as_str().unwrap_or("living");
            let roll = rng.gen_range(0..100);
            let status = match (old, roll) {
                (true, 0..=84) | (false, 0..=14) => "done",
                (true, 85..=94) | (false, 15..=49) => "in_progress",
                _ => "open",
            };
            let owner = match area {
                "study" => names::pick(rng, &["志愿者（学业辅导）", "学校班主任"]),
                "psychology" => names::pick(rng, &["镇社工站", "心理咨询师"]),
                _ => "儿童主任",
            };
            let updated_at = if status == "open" {
                visit.created_at
            } else {
                (visit.created_at + Duration::days(rng.gen_range(1..30)))
                    .min(now - Duration::minutes(1))
            };
            case_plan_item::Model {
                id: new_id(rng),
                version: 1,
                field_clocks: Value::Null,
                created_at: visit.created_at,
                updated_at,
                deleted: false,
                child_id: child.model.id,
                village_id: visit.village_id,
                area: area.to_owned(),
                description: need["description"].as_str().unwrap_or_default().to_owned(),
                status: status.to_owned(),
                owner: Some(owner.to_owned()),
                due_date: Some(visited + Days::new(if old { 30 } else { 60 })),
            }
        })
        .collect()
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}
