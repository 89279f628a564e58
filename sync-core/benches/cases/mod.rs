//! The merge benchmark's cases, run by `merge` (the system allocator, as
//! on a phone) and `merge_server` (mimalloc, as in the server): a typical
//! visit and a child record, on the fast-forward path and on the
//! concurrent (three-way, conflicting) path.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use serde_json::json;
use sync_core::{
    merge::merge,
    protocol::Mutation,
    record::{Entity, Record},
    rules::{Role, rules_for},
    testing::{MutationBuilder as M, actor, child_create, hlc, ids, stored, stored_visit},
};

fn visit_edit(base: u64, wall: u64, node: u128, tag: &str) -> Mutation {
    M::update(Entity::Visit, ids::VISIT, base, hlc(wall, node))
        .set("kind", json!("phone_follow_up"))
        .set("visited_at", json!("2026-03-03T09:00:00+08:00"))
        .set("location", json!(format!("school {tag}")))
        .set(
            "observations",
            json!({"living": tag, "study": "ok", "psychology": "calm"}),
        )
        .set("follow_up", json!(format!("call the guardian {tag}")))
        .set("next_planned_date", json!("2026-04-01"))
        .add("needs", json!({"id": "n1", "area": "living", "note": tag}))
        .add("needs", json!({"id": format!("n-{tag}"), "area": "study"}))
        .add(
            "risk_flags",
            json!({"id": format!("r-{tag}"), "code": "truancy"}),
        )
        .add(
            "photos",
            json!({"id": format!("p-{tag}"), "sha256": "00ff"}),
        )
        .set("review_status", json!("submitted"))
        .build()
}

fn child_edit(base: u64, wall: u64, node: u128, tag: &str) -> Mutation {
    let mut b = M::update(Entity::Child, ids::CHILD, base, hlc(wall, node));
    for f in [
        "name",
        "id_number",
        "guardian_name",
        "guardian_relation",
        "guardian_phone",
        "address",
        "school",
        "health_notes",
        "disability_notes",
    ] {
        b = b.set(f, json!(format!("{f} {tag}")));
    }
    b.set("gender", json!("female"))
        .set("birth_date", json!("2015-07-01"))
        .set("category", json!("left_behind"))
        .set("status", json!("active"))
        .set("village_id", json!(ids::VILLAGE))
        .set("benefit_standard_cny", json!(463))
        .set("visit_interval_days", json!(45))
        .build()
}

fn bench_case(c: &mut Criterion, name: &str, base: &Record, m: &Mutation, role: Role) {
    let who = actor(role);
    let rules = rules_for(base.entity);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(m.fields.len() as u64));
    g.bench_function("merge", |b| {
        b.iter(|| merge(rules, Some(black_box(base)), black_box(m), &who));
    });
    g.finish();
}

/// `stored` after another device's `edit` was merged into it: the base of
/// a concurrent case, every field changed since version 1.
fn edited_elsewhere(stored: &Record, edit: &Mutation, role: Role) -> Record {
    merge(rules_for(stored.entity), Some(stored), edit, &actor(role))
        .record
        .expect("the edit applies")
        .into_owned()
}

pub fn benches(c: &mut Criterion) {
    let visit = stored_visit("draft");
    let ff = visit_edit(1, 2_000, 0xc1, "client");
    bench_case(c, "visit_fast_forward", &visit, &ff, Role::Director);
    let server = visit_edit(1, 2_500, 0xe1, "server");
    let concurrent = edited_elsewhere(&visit, &server, Role::Director);
    bench_case(c, "visit_concurrent", &concurrent, &ff, Role::Director);

    let child = stored(&child_create(hlc(1_000, 0xa1)).build(), &actor(Role::Admin));
    let ff = child_edit(1, 2_000, 0xc1, "client");
    bench_case(c, "child_fast_forward", &child, &ff, Role::Admin);
    let server = child_edit(1, 2_500, 0xe1, "server");
    let concurrent = edited_elsewhere(&child, &server, Role::Admin);
    bench_case(c, "child_concurrent", &concurrent, &ff, Role::Admin);
}
