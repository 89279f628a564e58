//! Shared test vectors for the phone: a JSON document built from
//! sync-core's real functions — HLC text and ordering, `tick` / `observe`
//! with the skew bound, the scope checksum, the due rule, mutation encoding,
//! `urgent_first`, merge outcomes, the repair plan, who may write what and
//! the writes a phone sends again after a restore — compared with the committed
//! `tests/vectors/client.json`. The TypeScript SDK (`sdk/test/vectors.test.ts`)
//! checks its own implementation against every vector in that file, so the
//! phone and the server cannot drift apart.
//!
//! `SEEDLING_WRITE_VECTORS=1 cargo test -p seedling-sync-core --test vectors`
//! rewrites the file; otherwise a difference fails the test.

use std::path::PathBuf;

use chrono::NaiveDate;
use serde_json::{Value, json};
use sync_core::{
    clock::{DEFAULT_MAX_FORWARD_SKEW_MS, Hlc, HlcClock},
    merge::{Verdict, merge},
    protocol::{
        CompactRecord, ManifestEntry, Mutation, Repair, ScopeChecksum, fnv1a64, lost_writes,
        record_hash, urgent_first,
    },
    record::{Entity, Record},
    rules::{Actor, Role, Writers, rules_for},
    semantic::{DueInput, VisitIntervals, due_date, due_status},
    testing::{MutationBuilder as M, actor, child_create, hlc, ids, stored, uuid, visit_create},
};
use uuid::Uuid;

const NODE_A: u128 = 0x0f8e_6a52_3f6e_4c1e_9d55_4c7a_2b1d_9e01;
const NODE_B: u128 = 0x5e5e_5e5e_5e5e_5e5e_5e5e_5e5e_5e5e_5e5e;

fn hlc_vectors() -> Value {
    let samples = [
        Hlc::new(0, 0, Uuid::nil()),
        Hlc::new(1_772_424_000_000, 1, Uuid::from_u128(NODE_A)),
        Hlc::new(1_772_424_000_000, 0xffff_ffff, Uuid::from_u128(NODE_B)),
        Hlc::new(5, 0xff, uuid(9)),
        Hlc::new(999_999_999_999_999, 0x10, uuid(1)),
    ];
    let round_trips: Vec<Value> = samples
        .iter()
        .map(|h| {
            let text = h.to_string();
            assert_eq!(text.parse::<Hlc>().unwrap(), *h);
            json!({"text": text, "wall_ms": h.wall_ms, "counter": h.counter, "node": h.node.simple().to_string()})
        })
        .collect();
    let invalid: Vec<Value> = [
        "00-1-2",
        "000000000000005-000000FF-00000000000000000000000000000009",
        "000000000000005_000000ff-00000000000000000000000000000009",
        "00000000000000a-000000ff-00000000000000000000000000000009",
        "000000000000005-000000ff-0000000000000000000000000000000g",
        "000000000000005-000000ff-000000000000000000000000000000009",
        "",
    ]
    .iter()
    .map(|t| {
        assert!(t.parse::<Hlc>().is_err(), "{t} must not parse");
        json!(t)
    })
    .collect();
    let mut ordering = Vec::new();
    for a in &samples {
        for b in &samples {
            ordering.push(json!([a.to_string(), b.to_string(), a.cmp(b) as i8]));
        }
    }

    // Clock runs: a fresh (or resumed) clock and a sequence of events.
    let node = Uuid::from_u128(NODE_A);
    let remote = |wall, counter| Hlc::new(wall, counter, Uuid::from_u128(NODE_B));
    type Step = (&'static str, u64, Option<Hlc>);
    type Run = (Option<Hlc>, u64, Vec<Step>);
    let runs: Vec<Run> = vec![
        // Ticks: monotonic even when the wall clock goes back.
        (
            None,
            DEFAULT_MAX_FORWARD_SKEW_MS,
            vec![
                ("tick", 1000, None),
                ("tick", 900, None),
                ("tick", 1000, None),
                ("tick", 1001, None),
            ],
        ),
        // Observe a clock slightly ahead (adopted), then one far ahead (skewed), then behind.
        (
            None,
            DEFAULT_MAX_FORWARD_SKEW_MS,
            vec![
                ("observe", 10_000, Some(remote(70_000, 4))),
                ("tick", 10_001, None),
                (
                    "observe",
                    10_002,
                    Some(remote(10_002 + DEFAULT_MAX_FORWARD_SKEW_MS + 1, 0)),
                ),
                (
                    "observe",
                    10_003,
                    Some(remote(10_003 + DEFAULT_MAX_FORWARD_SKEW_MS, 7)),
                ),
                ("observe", 400_000, Some(remote(1, 0))),
                ("observe", 400_000, Some(remote(400_000, 9))),
                ("tick", 399_000, None),
            ],
        ),
        // A phone of 2030 seen by a phone of 2026.
        (
            None,
            DEFAULT_MAX_FORWARD_SKEW_MS,
            vec![
                (
                    "observe",
                    1_767_225_600_000,
                    Some(remote(1_900_000_000_000, 0)),
                ),
                ("tick", 1_767_225_600_000, None),
            ],
        ),
        // Counter overflow rolls into the next millisecond; a zero bound.
        (
            Some(Hlc::new(7, u32::MAX, node)),
            0,
            vec![
                ("tick", 7, None),
                ("observe", 8, Some(remote(9, 0))),
                ("observe", 9, Some(remote(9, u32::MAX))),
            ],
        ),
    ];
    let clock_runs: Vec<Value> = runs
        .into_iter()
        .map(|(start, skew, steps)| {
            let mut clock = match start {
                Some(h) => HlcClock::resume(h, skew),
                None => HlcClock::with_max_skew(node, skew),
            };
            let steps: Vec<Value> = steps
                .into_iter()
                .map(|(op, now, remote)| match (op, remote) {
                    ("tick", _) => {
                        json!({"op": "tick", "now": now, "expect": clock.tick(now).to_string()})
                    }
                    (_, Some(r)) => {
                        let seen = clock.observe(r, now);
                        json!({"op": "observe", "now": now, "remote": r.to_string(),
                               "expect": seen.local.to_string(), "skewed": seen.skewed})
                    }
                    _ => unreachable!(),
                })
                .collect();
            json!({"node": node.simple().to_string(), "max_skew_ms": skew,
                   "start": start.map(|h| h.to_string()), "steps": steps})
        })
        .collect();
    json!({"round_trips": round_trips, "invalid": invalid, "ordering": ordering, "clock_runs": clock_runs})
}

fn checksum_vectors() -> Value {
    let fnv: Vec<Value> = [&b""[..], b"a", b"foobar", b"child\0"]
        .iter()
        .map(|bytes| {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            json!({"bytes_hex": hex, "hash": format!("{:016x}", fnv1a64(bytes))})
        })
        .collect();
    let recs: Vec<(Entity, Uuid, u64)> = vec![
        (Entity::Child, Uuid::from_u128(1), 3),
        (Entity::Visit, Uuid::from_u128(2), 7),
        (Entity::CasePlanItem, Uuid::from_u128(NODE_A), 1),
        (
            Entity::Visit,
            Uuid::from_u128(NODE_B),
            u64::from(u32::MAX) + 5,
        ),
        (Entity::Child, Uuid::from_u128(u128::MAX), 1),
    ];
    let records: Vec<Value> = recs
        .iter()
        .map(|(e, id, v)| json!({"entity": e, "id": id, "version": v, "hash": format!("{:016x}", record_hash(*e, *id, *v))}))
        .collect();
    let sets: Vec<Value> = [vec![], vec![0], vec![0, 1], vec![1, 0], vec![0, 1, 2, 3, 4]]
        .iter()
        .map(|pick| {
            let chosen: Vec<(Entity, Uuid, u64)> = pick.iter().map(|i| recs[*i]).collect();
            json!({"records": pick, "checksum": ScopeChecksum::of(chosen)})
        })
        .collect();
    json!({"fnv1a64": fnv, "records": records, "sets": sets})
}

fn due_vectors() -> Value {
    let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let intervals = VisitIntervals::default();
    // (category, active, override, registered on, last visit on, today)
    type Case = (
        &'static str,
        bool,
        Option<u32>,
        &'static str,
        Option<&'static str>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "left_behind",
            true,
            None,
            "2026-01-01",
            Some("2026-03-01"),
            "2026-05-30",
        ),
        (
            "left_behind",
            true,
            None,
            "2026-01-01",
            Some("2026-03-01"),
            "2026-05-29",
        ),
        (
            "left_behind",
            true,
            None,
            "2026-01-01",
            Some("2026-03-01"),
            "2026-05-31",
        ),
        (
            "scattered_orphan",
            true,
            None,
            "2026-01-01",
            None,
            "2026-02-15",
        ),
        (
            "in_difficulty",
            true,
            Some(7),
            "2026-01-01",
            Some("2026-02-26"),
            "2026-03-01",
        ),
        (
            "in_difficulty",
            true,
            Some(0),
            "2026-01-01",
            Some("2026-02-26"),
            "2026-03-01",
        ),
        ("migrant", true, None, "2025-12-31", None, "2026-03-31"),
        (
            "institutional_orphan",
            true,
            None,
            "2024-02-28",
            Some("2024-02-28"),
            "2024-05-28",
        ),
        (
            "de_facto_unsupported",
            true,
            None,
            "2026-01-01",
            Some("2026-12-15"),
            "2027-01-14",
        ),
        (
            "low_income_edge",
            true,
            None,
            "2026-01-01",
            Some("2026-01-31"),
            "2026-03-02",
        ),
        (
            "something_else",
            true,
            None,
            "2026-01-01",
            None,
            "2026-01-31",
        ),
        ("left_behind", false, None, "2026-01-01", None, "2026-12-01"),
    ];
    let out: Vec<Value> = cases
        .into_iter()
        .map(|(category, active, over, registered, last, today)| {
            let input = DueInput {
                category: category.into(),
                active,
                interval_override_days: over,
                registered_on: d(registered),
                last_visit_on: last.map(d),
            };
            json!({"category": category, "active": active, "interval_override_days": over,
                   "registered_on": registered, "last_visit_on": last, "today": today,
                   "due_date": due_date(&input, &intervals).to_string(),
                   "status": due_status(&input, d(today), &intervals)})
        })
        .collect();
    json!({"intervals": intervals, "cases": out})
}

fn mutation_vectors() -> Value {
    let urgent = M::update(Entity::Visit, ids::VISIT, 2, hlc(3_000, NODE_A))
        .add(
            "risk_flags",
            json!({"id": "r1", "kind": "physical_abuse", "urgent": true}),
        )
        .build();
    let samples: Vec<Mutation> = vec![
        visit_create(hlc(1_000, NODE_A)).build(),
        M::update(Entity::Visit, ids::VISIT, 4, hlc(2_000, NODE_A))
            .set("location", json!("school"))
            .set("follow_up", Value::Null)
            .add(
                "needs",
                json!({"id": "n2", "area": "study", "note": "tutoring"}),
            )
            .remove("needs", "n1")
            .build(),
        M::delete(Entity::CasePlanItem, ids::PLAN_ITEM, 3, hlc(2_500, NODE_A)).build(),
        urgent.clone(),
        M::update(Entity::Visit, uuid(0x52), 1, hlc(3_500, NODE_A))
            .add("risk_flags", json!({"id": "r2", "kind": "unsafe_housing"}))
            .build(),
    ];
    let encoded: Vec<Value> = samples
        .iter()
        .map(|m| {
            let wire = serde_json::to_value(m).unwrap();
            assert_eq!(
                &serde_json::from_value::<Mutation>(wire.clone()).unwrap(),
                m
            );
            json!({"mutation": wire, "is_urgent": m.is_urgent()})
        })
        .collect();
    let plain = |id: u128, n: u64| {
        M::update(Entity::Visit, uuid(id), 1, hlc(4_000 + n, NODE_A))
            .set("follow_up", json!(format!("step {n}")))
            .build()
    };
    let mut batch = vec![
        plain(0x61, 1),
        plain(0x62, 2),
        plain(0x61, 3),
        urgent,
        plain(0x63, 5),
    ];
    batch[3].mutation_id = uuid(0x9999);
    batch.push(
        M::update(Entity::Visit, ids::VISIT, 3, hlc(6_000, NODE_A))
            .set("follow_up", json!("after the flag"))
            .build(),
    );
    let input: Vec<Value> = batch
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect();
    let output: Vec<Uuid> = urgent_first(batch)
        .into_iter()
        .map(|m| m.mutation_id)
        .collect();
    json!({"encoded": encoded, "urgent_first": {"input": input, "output": output}})
}

fn merge_case(name: &str, current: &Record, m: &Mutation) -> Value {
    let out = merge(
        rules_for(m.entity),
        Some(current),
        m,
        &actor(Role::Director),
    );
    let verdict = match &out.verdict {
        Verdict::Applied => json!({"status": "applied"}),
        Verdict::Merged => json!({"status": "merged"}),
        Verdict::Rejected { reason, .. } => json!({"status": "rejected", "reason": reason}),
    };
    let values = out.record().map(|r| {
        let mut v = serde_json::Map::new();
        for (k, f) in &r.fields {
            v.insert(k.clone(), f.value());
        }
        Value::Object(v)
    });
    let conflicts: Vec<Value> = out
        .conflicts
        .iter()
        .map(
            |c| json!({"field": c.field, "item_id": c.item_id, "kind": c.kind, "winner": c.winner}),
        )
        .collect();
    json!({"name": name, "current": current, "mutation": m, "verdict": verdict,
           "values": values, "conflicts": conflicts})
}

fn merge_vectors() -> Value {
    let director = actor(Role::Director);
    let v1 = stored(&visit_create(hlc(1_000, NODE_A)).build(), &director);
    // Phone B (same director) changed the location and need n1 at version 2.
    let b = M::update(Entity::Visit, ids::VISIT, 1, hlc(5_000, NODE_B))
        .set("location", json!("clinic"))
        .add(
            "needs",
            json!({"id": "n1", "area": "living", "note": "winter clothes"}),
        )
        .build();
    let v2 = merge(rules_for(Entity::Visit), Some(&v1), &b, &director)
        .record
        .unwrap()
        .into_owned();
    let from = |base, wall, node| M::update(Entity::Visit, ids::VISIT, base, hlc(wall, node));
    let mut approved = v2.clone();
    if let Some(sync_core::record::Field::Register(r)) = approved.fields.get_mut("review_status") {
        r.value = json!("approved");
    }
    let cases = vec![
        merge_case(
            "fast_forward_with_an_older_clock",
            &v2,
            &from(2, 3_000, NODE_A)
                .set("location", json!("school"))
                .build(),
        ),
        merge_case(
            "concurrent_write_server_wins",
            &v2,
            &from(1, 3_000, NODE_A)
                .set("location", json!("school"))
                .build(),
        ),
        merge_case(
            "concurrent_write_client_wins",
            &v2,
            &from(1, 7_000, NODE_A)
                .set("location", json!("school"))
                .build(),
        ),
        merge_case(
            "concurrent_write_equal_clocks_fall_back_to_json",
            &v2,
            &from(1, 5_000, NODE_B).set("location", json!("zzz")).build(),
        ),
        merge_case(
            "same_value_is_no_conflict",
            &v2,
            &from(1, 3_000, NODE_A)
                .set("location", json!("clinic"))
                .build(),
        ),
        merge_case(
            "untouched_field_is_taken",
            &v2,
            &from(1, 3_000, NODE_A)
                .set("follow_up", json!("call next week"))
                .build(),
        ),
        merge_case(
            "remove_unseen_update_is_not_honoured",
            &v2,
            &from(1, 7_000, NODE_A).remove("needs", "n1").build(),
        ),
        merge_case(
            "remove_seen_item_is_honoured",
            &v2,
            &from(2, 7_000, NODE_A).remove("needs", "n1").build(),
        ),
        merge_case(
            "concurrent_item_write_client_wins",
            &v2,
            &from(1, 7_000, NODE_A)
                .add("needs", json!({"id": "n1", "area": "psychology"}))
                .build(),
        ),
        merge_case(
            "concurrent_item_write_server_wins",
            &v2,
            &from(1, 2_000, NODE_A)
                .add("needs", json!({"id": "n1", "area": "psychology"}))
                .build(),
        ),
        merge_case(
            "new_item_is_added",
            &v2,
            &from(1, 2_000, NODE_A)
                .add("needs", json!({"id": "n2", "area": "study"}))
                .build(),
        ),
        merge_case(
            "approved_visit_is_locked",
            &approved,
            &from(2, 9_000, NODE_A)
                .set("follow_up", json!("later"))
                .build(),
        ),
    ];
    Value::Array(cases)
}

fn repair_vectors() -> Value {
    let id = Uuid::from_u128;
    let manifest = vec![
        ManifestEntry(Entity::Child, id(1), 2),
        ManifestEntry(Entity::Child, id(NODE_B), 1),
        ManifestEntry(Entity::Visit, id(2), 5),
        ManifestEntry(Entity::Visit, id(3), 1),
        ManifestEntry(Entity::CasePlanItem, id(4), 7),
    ];
    let device = vec![
        (Entity::CasePlanItem, id(4), 7),
        (Entity::Visit, id(2), 4),
        (Entity::Child, id(1), 2),
        (Entity::Visit, id(9), 1),
        (Entity::Child, id(NODE_A), 3),
        (Entity::CasePlanItem, id(5), 1),
    ];
    let cases = [
        (manifest.clone(), device.clone()),
        (manifest.clone(), vec![]),
        (vec![], device.clone()),
        (
            manifest.clone(),
            manifest.iter().map(|e| (e.0, e.1, e.2)).collect(),
        ),
    ];
    let out: Vec<Value> = cases
        .into_iter()
        .map(|(server, device)| {
            let plan = Repair::between(server.clone(), device.clone());
            json!({"manifest": server, "device": device.iter().map(|(e, i, v)| json!({"entity": e, "id": i, "version": v})).collect::<Vec<_>>(),
                   "fetch": plan.fetch, "drop": plan.drop})
        })
        .collect();
    Value::Array(out)
}

fn writers_json(writers: &Writers) -> Value {
    let roles = |contains: &dyn Fn(Role) -> bool| -> Vec<Role> {
        [
            Role::Director,
            Role::Supervisor,
            Role::Admin,
            Role::Integration,
        ]
        .into_iter()
        .filter(|r| contains(*r))
        .collect()
    };
    match writers {
        Writers::Roles(set) => json!({"roles": roles(&|r| set.contains(r))}),
        Writers::Author(set) => json!({"author": roles(&|r| set.contains(r))}),
        Writers::Transitions(list) => json!({"transitions": list
            .iter()
            .map(|t| json!({"role": t.role, "author": t.author, "from": t.from, "to": t.to}))
            .collect::<Vec<_>>()}),
    }
}

/// Who may create each entity and write each field: the table the phone
/// keeps to decide which of its writes it may send again.
fn rules_vectors() -> Value {
    let out: Vec<Value> = [Entity::Child, Entity::Visit, Entity::CasePlanItem]
        .into_iter()
        .map(|entity| {
            let rules = rules_for(entity);
            let fields: Vec<Value> = rules
                .fields
                .iter()
                .map(|f| json!({"name": f.name, "writers": writers_json(&f.writers), "required": f.required}))
                .collect();
            json!({"entity": entity, "create": writers_json(&rules.create),
                   "author_field": rules.author_field, "fields": fields})
        })
        .collect();
    Value::Array(out)
}

/// `lost_writes` on a table of records the phone held and the restored
/// server's copies.
fn lost_write_vectors() -> Value {
    const PHONE: u128 = 0x0a;
    const SUPERVISOR_PHONE: u128 = 0x5e5e;
    let director = Actor::new(uuid(0xd1), Role::Director);
    let reg = |value: Value, wall: u64, node: u128, version: u64| json!({"register": {"value": value, "hlc": hlc(wall, node), "version": version}});
    let items = |list: &[(&str, Value, u64, u128, u64)]| {
        let map: serde_json::Map<String, Value> = list
            .iter()
            .map(|(id, value, wall, node, version)| {
                (
                    (*id).to_owned(),
                    json!({"value": value, "hlc": hlc(*wall, *node), "version": version}),
                )
            })
            .collect();
        json!({"items": map})
    };
    let record = |entity: Entity, id: u128, version: u64, fields: Value| -> Record {
        serde_json::from_value(
            json!({"entity": entity, "id": uuid(id), "version": version, "fields": fields}),
        )
        .expect("a record")
    };
    // A visit the phone created at version 1 (07:00) and a supervisor
    // approved with a comment at version 2 (08:00).
    let visit_fields = |status: &str, status_node: u128| {
        json!({
            "child_id": reg(json!(uuid(0xc1)), 7_000, PHONE, 1),
            "author_id": reg(json!(director.user_id), 7_000, PHONE, 1),
            "device_id": reg(json!(uuid(PHONE)), 7_000, PHONE, 1),
            "village_id": reg(json!(uuid(0x7100)), 7_000, PHONE, 1),
            "kind": reg(json!("home_visit"), 7_000, PHONE, 1),
            "visited_at": reg(json!("2026-12-01T10:00:00+08:00"), 7_000, PHONE, 1),
            "review_status": reg(json!(status), if status_node == PHONE { 7_000 } else { 8_000 }, status_node, if status_node == PHONE { 1 } else { 2 }),
            "needs": items(&[("n1", json!({"id": "n1", "area": "study"}), 7_000, PHONE, 1)]),
        })
    };
    let approved = {
        let mut fields = visit_fields("approved", SUPERVISOR_PHONE);
        fields["review_comment"] = reg(json!("好"), 8_000, SUPERVISOR_PHONE, 2);
        record(Entity::Visit, 0x99, 2, fields)
    };
    let submitted = record(Entity::Visit, 0x99, 1, visit_fields("submitted", PHONE));
    // After the backup the phone changed the follow-up, added two needs at
    // two clocks and a risk flag, and deleted nothing.
    let edited = {
        let mut fields = visit_fields("submitted", PHONE);
        fields["follow_up"] = reg(json!("下周再访"), 9_000, PHONE, 2);
        fields["needs"] = items(&[
            ("n1", json!({"id": "n1", "area": "study"}), 7_000, PHONE, 1),
            ("n2", json!({"id": "n2", "area": "living"}), 9_500, PHONE, 3),
            (
                "n3",
                json!({"id": "n3", "area": "psychology"}),
                9_600,
                PHONE,
                4,
            ),
        ]);
        fields["risk_flags"] = items(&[(
            "r1",
            json!({"id": "r1", "kind": "unsafe_housing"}),
            9_700,
            PHONE,
            5,
        )]);
        record(Entity::Visit, 0x99, 5, fields)
    };
    let mut deleted = submitted.clone();
    deleted.version = 2;
    deleted.tombstone = Some(sync_core::record::Tombstone {
        hlc: hlc(9_000, PHONE),
        version: 2,
    });
    let returned = {
        let mut fields = visit_fields("returned", SUPERVISOR_PHONE);
        fields["review_comment"] = reg(json!("补充照片"), 8_000, SUPERVISOR_PHONE, 2);
        record(Entity::Visit, 0x99, 2, fields)
    };
    let draft = record(Entity::Visit, 0x99, 1, visit_fields("draft", PHONE));
    let incomplete = {
        let mut fields = visit_fields("submitted", PHONE);
        fields.as_object_mut().unwrap().remove("visited_at");
        record(Entity::Visit, 0x99, 1, fields)
    };
    let someone_elses = {
        let mut fields = visit_fields("submitted", PHONE);
        fields["author_id"] = reg(json!(uuid(0xd2)), 7_000, PHONE, 1);
        record(Entity::Visit, 0x99, 1, fields)
    };
    let by_another_phone = record(Entity::Visit, 0x99, 1, {
        let text = serde_json::to_string(&visit_fields("submitted", PHONE)).unwrap();
        serde_json::from_str(&text.replace(
            &uuid(PHONE).simple().to_string(),
            &uuid(SUPERVISOR_PHONE).simple().to_string(),
        ))
        .unwrap()
    });
    let plan_item = record(
        Entity::CasePlanItem,
        0x91,
        2,
        json!({
            "child_id": reg(json!(uuid(0xc1)), 7_000, PHONE, 1),
            "village_id": reg(json!(uuid(0x7100)), 7_000, PHONE, 1),
            "area": reg(json!("study"), 7_000, PHONE, 1),
            "description": reg(json!("每周辅导"), 7_000, PHONE, 1),
            "status": reg(json!("in_progress"), 9_000, PHONE, 2),
        }),
    );
    let child = record(
        Entity::Child,
        0xc1,
        3,
        json!({
            "name": reg(json!("孙小禾"), 7_000, PHONE, 1),
            "birth_date": reg(json!("2015-03-01"), 7_000, PHONE, 1),
            "category": reg(json!("left_behind"), 7_000, PHONE, 1),
            "status": reg(json!("active"), 7_000, PHONE, 1),
            "village_id": reg(json!(uuid(0x7100)), 7_000, PHONE, 1),
            "guardian_phone": reg(json!("13800000000"), 9_000, PHONE, 3),
        }),
    );
    let mut child_on_server = child.clone();
    child_on_server.version = 2;
    child_on_server.fields.remove("guardian_phone");
    let mut supervisor_later = submitted.clone();
    supervisor_later.version = 2;
    supervisor_later.fields.insert(
        "follow_up".into(),
        serde_json::from_value(reg(json!("督导员的意见"), 9_900, SUPERVISOR_PHONE, 2)).unwrap(),
    );
    let cases: Vec<(&str, &Record, Option<&Record>, Actor)> = vec![
        (
            "lost_approved_visit_comes_back_submitted",
            &approved,
            None,
            director,
        ),
        (
            "lost_returned_visit_comes_back_submitted",
            &returned,
            None,
            director,
        ),
        ("lost_draft_comes_back_a_draft", &draft, None, director),
        (
            "in_step_sends_nothing",
            &approved,
            Some(&approved),
            director,
        ),
        (
            "edits_after_the_backup_in_groups_by_clock",
            &edited,
            Some(&submitted),
            director,
        ),
        (
            "an_older_write_than_the_servers_is_not_sent",
            &edited,
            Some(&supervisor_later),
            director,
        ),
        (
            "a_delete_the_phone_made_is_sent_again",
            &deleted,
            Some(&submitted),
            director,
        ),
        (
            "a_lost_deleted_record_is_not_created",
            &deleted,
            None,
            director,
        ),
        (
            "a_visit_missing_a_required_field_is_not_created",
            &incomplete,
            None,
            director,
        ),
        (
            "another_directors_visit_is_not_created",
            &someone_elses,
            None,
            director,
        ),
        (
            "a_visit_another_device_created_is_not_created",
            &by_another_phone,
            None,
            director,
        ),
        (
            "a_plan_item_the_director_created",
            &plan_item,
            None,
            director,
        ),
        ("a_child_a_director_may_not_create", &child, None, director),
        (
            "a_directors_edit_of_a_child_is_sent",
            &child,
            Some(&child_on_server),
            director,
        ),
        (
            "a_supervisor_may_not_create_a_visit",
            &submitted,
            None,
            Actor::new(uuid(0x5e), Role::Supervisor),
        ),
    ];
    let out: Vec<Value> = cases
        .into_iter()
        .map(|(name, local, server, actor)| {
            let writes: Vec<Value> = lost_writes(uuid(PHONE), &actor, local, server)
                .into_iter()
                .map(|w| json!({"op": w.op, "base_version": w.base_version, "hlc": w.hlc, "fields": w.fields}))
                .collect();
            json!({"name": name, "device": uuid(PHONE), "actor": {"user_id": actor.user_id, "role": actor.role},
                   "local": local, "server": server, "writes": writes})
        })
        .collect();
    Value::Array(out)
}

/// Whole records and their compact pull encoding (both ways), and compact
/// records a reader must refuse.
fn compact_vectors() -> Value {
    let director = actor(Role::Director);
    let v1 = stored(&visit_create(hlc(1_000, NODE_A)).build(), &director);
    let edit = M::update(Entity::Visit, ids::VISIT, 1, hlc(5_000, NODE_B))
        .set("location", json!("clinic"))
        .add(
            "needs",
            json!({"id": "n1", "area": "living", "note": "winter clothes"}),
        )
        .build();
    let v2 = merge(rules_for(Entity::Visit), Some(&v1), &edit, &director)
        .record
        .unwrap()
        .into_owned();
    let delete = M::delete(Entity::Visit, ids::VISIT, 2, hlc(9_000, NODE_A)).build();
    let v3 = merge(rules_for(Entity::Visit), Some(&v2), &delete, &director)
        .record
        .unwrap()
        .into_owned();
    let child = stored(
        &child_create(hlc(2_000, NODE_B)).build(),
        &actor(Role::Admin),
    );
    let mut empty = Record::empty(Entity::CasePlanItem, uuid(77));
    empty.version = 1;
    let pairs: Vec<Value> = [
        ("fresh_visit", v1),
        ("edited_visit", v2),
        ("deleted_visit", v3),
        ("child", child),
        ("no_fields", empty),
    ]
    .into_iter()
    .map(|(name, record)| {
        let compact = CompactRecord::from(record.clone());
        assert_eq!(compact.clone().into_record().unwrap(), record, "{name}");
        json!({"name": name, "record": record, "compact": compact})
    })
    .collect();
    let stamp = json!([hlc(1_000, NODE_A), 1]);
    let id = uuid(5);
    let refused: Vec<Value> = [
        ("register_and_set", json!({"values": {"needs": []}, "sets": {"needs": []}, "clock": stamp})),
        ("item_without_id", json!({"sets": {"needs": [{"area": "study"}]}, "clock": stamp})),
        ("item_named_twice", json!({"sets": {"needs": [{"id": "n1"}, {"id": "n1"}]}, "clock": stamp})),
        ("stamp_for_missing_field", json!({"values": {"follow_up": "x"}, "clock": stamp, "clocks": {"location": stamp}})),
        ("stamp_for_missing_item", json!({"sets": {"needs": [{"id": "n1"}]}, "clock": stamp, "clocks": {"needs": {"n2": stamp}}})),
        ("no_stamp_at_all", json!({"values": {"follow_up": "x"}})),
        ("item_stamps_for_a_register", json!({"values": {"follow_up": "x"}, "clock": stamp, "clocks": {"follow_up": {"n1": stamp}}})),
        ("register_stamp_for_a_set", json!({"sets": {"needs": []}, "clock": stamp, "clocks": {"needs": stamp}})),
    ]
    .into_iter()
    .map(|(name, mut body)| {
        body["entity"] = json!("visit");
        body["id"] = json!(id);
        body["version"] = json!(1);
        let compact: CompactRecord = serde_json::from_value(body.clone()).unwrap();
        assert!(compact.into_record().is_err(), "{name} must be refused");
        json!({"name": name, "compact": body})
    })
    .collect();
    // Not even a compact record: the reader refuses them as it reads.
    let unreadable: Vec<Value> = [
        ("values_null", json!({"values": null, "clock": stamp})),
        ("sets_null", json!({"sets": null, "clock": stamp})),
        ("clocks_null", json!({"values": {"follow_up": "x"}, "clock": stamp, "clocks": null})),
        ("a_set_stamps_null", json!({"sets": {"needs": []}, "clock": stamp, "clocks": {"needs": null}})),
        ("a_set_not_an_array", json!({"sets": {"needs": ""}, "clock": stamp})),
        ("values_not_an_object", json!({"values": "ab", "clock": stamp})),
        ("stamp_empty", json!({"values": {"follow_up": "x"}, "clock": []})),
        ("stamp_not_a_clock", json!({"values": {"follow_up": "x"}, "clock": ["x", 1]})),
        ("stamp_negative_version", json!({"values": {"follow_up": "x"}, "clock": [hlc(1_000, NODE_A), -1]})),
        ("stamp_three_long", json!({"values": {"follow_up": "x"}, "clock": [hlc(1_000, NODE_A), 1, 2]})),
        ("item_stamp_not_a_stamp", json!({"sets": {"needs": [{"id": "n1"}]}, "clock": stamp, "clocks": {"needs": {"n1": "a"}}})),
        ("clock_a_string", json!({"values": {"follow_up": "x"}, "clock": "x"})),
    ]
    .into_iter()
    .map(|(name, mut body)| {
        body["entity"] = json!("visit");
        body["id"] = json!(id);
        body["version"] = json!(1);
        assert!(serde_json::from_value::<CompactRecord>(body.clone()).is_err(), "{name} must not read");
        json!({"name": name, "compact": body})
    })
    .collect();
    json!({"pairs": pairs, "refused": refused, "unreadable": unreadable})
}

fn vectors() -> Value {
    json!({
        "about": "Generated by sync-core/tests/vectors.rs from sync-core's own functions; SEEDLING_WRITE_VECTORS=1 rewrites it. The TypeScript SDK checks itself against every vector.",
        "hlc": hlc_vectors(),
        "checksum": checksum_vectors(),
        "due": due_vectors(),
        "mutations": mutation_vectors(),
        "merges": merge_vectors(),
        "repair": repair_vectors(),
        "rules": rules_vectors(),
        "lost_writes": lost_write_vectors(),
        "compact": compact_vectors(),
    })
}

#[test]
fn the_client_vectors_file_matches_sync_core() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/client.json");
    let text = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("SEEDLING_WRITE_VECTORS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} differs from what sync-core computes now: a change in sync-core changed what phones must compute. \
         Check the SDK, then rewrite the file with SEEDLING_WRITE_VECTORS=1 cargo test -p seedling-sync-core --test vectors",
        path.display()
    );
}
