//! Test support, behind the `testing` feature: fixed ids, actors, mutation
//! builders for each entity, proptest strategies for concurrent edits, and
//! arbitrary JSON and JSON mutation for fuzzing decoders.
//! Used by this crate's tests and benches and by the server's and client's
//! tests.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    clock::Hlc,
    merge::merge,
    protocol::{FieldChange, FieldOp, Mutation, Op},
    record::{Entity, Record},
    rules::{Actor, Role, rules_for},
};

/// A deterministic UUID from a small number.
pub fn uuid(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// A clock value at `wall_ms` for node `uuid(node)`.
pub fn hlc(wall_ms: u64, node: u128) -> Hlc {
    Hlc::new(wall_ms, 0, uuid(node))
}

/// Fixed ids used by the builders.
pub mod ids {
    use uuid::Uuid;

    /// The village of the standard records.
    pub const VILLAGE: Uuid = Uuid::from_u128(0x7100);
    /// Another village (for transfers).
    pub const OTHER_VILLAGE: Uuid = Uuid::from_u128(0x7200);
    /// The standard child.
    pub const CHILD: Uuid = Uuid::from_u128(0xc1);
    /// The standard visit.
    pub const VISIT: Uuid = Uuid::from_u128(0x51);
    /// The standard case-plan item.
    pub const PLAN_ITEM: Uuid = Uuid::from_u128(0x91);
    /// The director who authors the standard visit.
    pub const DIRECTOR: Uuid = Uuid::from_u128(0xd1);
    /// Another director.
    pub const OTHER_DIRECTOR: Uuid = Uuid::from_u128(0xd2);
    /// The town supervisor.
    pub const SUPERVISOR: Uuid = Uuid::from_u128(0x5e);
    /// A district admin.
    pub const ADMIN: Uuid = Uuid::from_u128(0xad);
    /// The provincial feed.
    pub const FEED: Uuid = Uuid::from_u128(0xfe);
    /// The director's phone.
    pub const PHONE: Uuid = Uuid::from_u128(0x0a);
}

/// An actor with the standard id for `role`.
pub fn actor(role: Role) -> Actor {
    let id = match role {
        Role::Director => ids::DIRECTOR,
        Role::Supervisor => ids::SUPERVISOR,
        Role::Admin => ids::ADMIN,
        Role::Integration => ids::FEED,
    };
    Actor::new(id, role)
}

/// Builds a [`Mutation`] field by field.
#[derive(Debug, Clone)]
pub struct MutationBuilder(Mutation);

impl MutationBuilder {
    fn new(entity: Entity, id: Uuid, op: Op, base: u64, hlc: Hlc) -> Self {
        let n = u128::from(base) << 64 | u128::from(hlc.wall_ms) << 16 | u128::from(hlc.counter);
        Self(Mutation {
            mutation_id: Uuid::from_u128(n ^ hlc.node.as_u128().rotate_left(7)),
            entity,
            record_id: id,
            op,
            base_version: base,
            hlc,
            fields: BTreeMap::new(),
        })
    }

    /// An empty create.
    pub fn create(entity: Entity, id: Uuid, hlc: Hlc) -> Self {
        Self::new(entity, id, Op::Create, 0, hlc)
    }

    /// An empty update from `base`.
    pub fn update(entity: Entity, id: Uuid, base: u64, hlc: Hlc) -> Self {
        Self::new(entity, id, Op::Update, base, hlc)
    }

    /// A delete from `base`.
    pub fn delete(entity: Entity, id: Uuid, base: u64, hlc: Hlc) -> Self {
        Self::new(entity, id, Op::Delete, base, hlc)
    }

    /// Sets a register at the mutation's clock.
    pub fn set(mut self, field: &str, value: Value) -> Self {
        let hlc = self.0.hlc;
        self.0
            .fields
            .insert(field.into(), FieldChange::set(hlc, value));
        self
    }

    /// Adds (or replaces) a set item at the mutation's clock.
    pub fn add(mut self, field: &str, item: Value) -> Self {
        self.items(field).0.push(item);
        self
    }

    /// Removes a set item by id.
    pub fn remove(mut self, field: &str, id: &str) -> Self {
        self.items(field).1.push(id.to_owned());
        self
    }

    fn items(&mut self, field: &str) -> (&mut Vec<Value>, &mut Vec<String>) {
        let hlc = self.0.hlc;
        let change = self
            .0
            .fields
            .entry(field.into())
            .or_insert_with(|| FieldChange::items(hlc, vec![], vec![]));
        if !matches!(change.op, FieldOp::Items { .. }) {
            change.op = FieldOp::Items {
                add: vec![],
                remove: vec![],
            };
        }
        match &mut change.op {
            FieldOp::Items { add, remove } => (add, remove),
            FieldOp::Set(_) => unreachable!("replaced above"),
        }
    }

    /// Sets the mutation id.
    pub fn id(mut self, mutation_id: Uuid) -> Self {
        self.0.mutation_id = mutation_id;
        self
    }

    /// The mutation.
    pub fn build(self) -> Mutation {
        self.0
    }
}

/// A create of the standard visit by the standard director, submitted.
pub fn visit_create(hlc: Hlc) -> MutationBuilder {
    MutationBuilder::create(Entity::Visit, ids::VISIT, hlc)
        .set("child_id", json!(ids::CHILD))
        .set("author_id", json!(ids::DIRECTOR))
        .set("device_id", json!(ids::PHONE))
        .set("village_id", json!(ids::VILLAGE))
        .set("kind", json!("home_visit"))
        .set("visited_at", json!("2026-03-02T10:30:00+08:00"))
        .set("location", json!("child's home"))
        .set(
            "observations",
            json!({"living": "stable", "study": "grade 4"}),
        )
        .set("review_status", json!("submitted"))
        .add(
            "needs",
            json!({"id": "n1", "area": "study", "note": "tutoring"}),
        )
        .add("photos", json!({"id": "p1", "sha256": "ab12"}))
}

/// A create of the standard child by an admin.
pub fn child_create(hlc: Hlc) -> MutationBuilder {
    MutationBuilder::create(Entity::Child, ids::CHILD, hlc)
        .set("name", json!("Li Xiaoming"))
        .set("gender", json!("male"))
        .set("birth_date", json!("2015-06-01"))
        .set("category", json!("in_difficulty"))
        .set("status", json!("active"))
        .set("village_id", json!(ids::VILLAGE))
        .set("guardian_name", json!("Li Wei"))
        .set("guardian_relation", json!("grandfather"))
        .set("guardian_phone", json!("13800000000"))
        .set("address", json!("Group 3"))
        .set("school", json!("Central Primary"))
        .set("benefit_standard_cny", json!(2843))
}

/// A create of the standard case-plan item by the director.
pub fn plan_item_create(hlc: Hlc) -> MutationBuilder {
    MutationBuilder::create(Entity::CasePlanItem, ids::PLAN_ITEM, hlc)
        .set("child_id", json!(ids::CHILD))
        .set("village_id", json!(ids::VILLAGE))
        .set("area", json!("study"))
        .set("description", json!("weekly maths tutoring"))
        .set("status", json!("open"))
}

/// Merges a create into an empty store and returns the stored record;
/// panics if it is rejected.
pub fn stored(create: &Mutation, actor: &Actor) -> Record {
    let out = merge(rules_for(create.entity), None, create, actor);
    assert!(!out.is_rejected(), "create rejected: {:?}", out.verdict);
    out.record.expect("created").into_owned()
}

/// The standard visit, stored at version 1 with the given review status.
pub fn stored_visit(review_status: &str) -> Record {
    let create = visit_create(hlc(1_000, 0xa0))
        .set("review_status", json!("draft"))
        .build();
    let mut rec = stored(&create, &actor(Role::Director));
    if let Some(crate::record::Field::Register(r)) = rec.fields.get_mut("review_status") {
        r.value = json!(review_status);
    }
    rec
}

/// Small value pools, so concurrent edits often collide.
fn pick_text() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("a")),
        Just(json!("b")),
        Just(json!("c")),
        Just(Value::Null)
    ]
}

/// An edit a device could make to a visit field (valid values, small pools).
pub fn visit_field_edit() -> impl Strategy<Value = (String, FieldOpSpec)> {
    prop_oneof![
        pick_text().prop_map(|v| ("location".into(), FieldOpSpec::Set(v))),
        pick_text().prop_map(|v| ("follow_up".into(), FieldOpSpec::Set(v))),
        prop_oneof![
            Just("home_visit"),
            Just("phone_follow_up"),
            Just("school_visit")
        ]
        .prop_map(|k| ("kind".into(), FieldOpSpec::Set(json!(k)))),
        (0..3u8).prop_map(|n| (
            "observations".into(),
            FieldOpSpec::Set(json!({"living": n}))
        )),
        set_edit("needs"),
        set_edit("risk_flags"),
        set_edit("photos"),
    ]
}

/// A field edit as generated, before clocks are attached.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldOpSpec {
    /// Register value.
    Set(Value),
    /// Set items added and ids removed.
    Items(Vec<Value>, Vec<String>),
}

fn item(field: &str, id: u8, variant: u8) -> Value {
    let id = format!("{}{id}", &field[..1]);
    match field {
        "needs" => {
            let area = ["living", "study", "psychology"][usize::from(variant % 3)];
            json!({"id": id, "area": area})
        }
        "risk_flags" => json!({"id": id, "code": "neglect", "urgent": variant == 2}),
        _ => json!({"id": id, "sha256": format!("{variant:02x}")}),
    }
}

fn set_edit(field: &'static str) -> impl Strategy<Value = (String, FieldOpSpec)> {
    (
        proptest::collection::vec((1..4u8, 0..3u8), 0..3),
        proptest::collection::vec(1..4u8, 0..2),
    )
        .prop_map(move |(adds, removes)| {
            let add = adds.into_iter().map(|(i, v)| item(field, i, v)).collect();
            let prefix = &field[..1];
            let remove = removes
                .into_iter()
                .map(|i| format!("{prefix}{i}"))
                .collect();
            (field.to_owned(), FieldOpSpec::Items(add, remove))
        })
}

/// Turns generated field edits into a mutation with one clock.
pub fn to_mutation(
    entity: Entity,
    id: Uuid,
    base: u64,
    hlc: Hlc,
    edits: Vec<(String, FieldOpSpec)>,
) -> Mutation {
    let mut b = MutationBuilder::update(entity, id, base, hlc);
    for (field, spec) in edits {
        b = match spec {
            FieldOpSpec::Set(v) => b.set(&field, v),
            FieldOpSpec::Items(add, remove) => {
                let b = add.into_iter().fold(b, |b, it| b.add(&field, it));
                remove.into_iter().fold(b, |b, id| b.remove(&field, &id))
            }
        };
    }
    b.build()
}

/// A concurrent edit of the standard visit from `base` by the author on
/// device `node` at a random wall time.
pub fn visit_edit(base: u64, node: u128) -> impl Strategy<Value = Mutation> {
    (
        1_500..1_520u64,
        proptest::collection::vec(visit_field_edit(), 1..4),
    )
        .prop_map(move |(wall, edits)| {
            to_mutation(Entity::Visit, ids::VISIT, base, hlc(wall, node), edits)
        })
}

/// Any role.
pub fn any_role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::Director),
        Just(Role::Supervisor),
        Just(Role::Admin),
        Just(Role::Integration),
    ]
}

/// Any actor: a standard one per role, or a director who is not the author.
pub fn any_actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        any_role().prop_map(actor),
        Just(Actor::new(ids::OTHER_DIRECTOR, Role::Director)),
    ]
}

/// A value for any field of any entity: sometimes valid, sometimes not.
pub fn any_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        pick_text(),
        Just(json!("approved")),
        Just(json!("returned")),
        Just(json!("submitted")),
        Just(json!("exited")),
        Just(json!("orphan")),
        Just(json!(ids::OTHER_VILLAGE)),
        Just(json!("2026-01-01")),
        Just(json!(30)),
        Just(json!({"living": 1})),
    ]
}

/// An arbitrary mutation by anyone to any field of the standard record of
/// `entity`, from `base`.
pub fn any_edit(entity: Entity, base: u64) -> impl Strategy<Value = Mutation> {
    let names: Vec<&'static str> = rules_for(entity).fields.iter().map(|f| f.name).collect();
    let id = match entity {
        Entity::Child => ids::CHILD,
        Entity::Visit => ids::VISIT,
        Entity::CasePlanItem => ids::PLAN_ITEM,
    };
    let field = (proptest::sample::select(names), any_value(), 0..3u8).prop_map(|(n, v, i)| {
        let spec = if rules_for(Entity::Visit)
            .field(n)
            .is_some_and(|r| r.kind.is_set())
        {
            FieldOpSpec::Items(vec![item(n, i, i)], vec![format!("{}{}", &n[..1], i + 1)])
        } else {
            FieldOpSpec::Set(v)
        };
        (n.to_owned(), spec)
    });
    (
        1_500..1_520u64,
        0..4u128,
        proptest::collection::vec(field, 1..4),
        0..10u8,
    )
        .prop_map(move |(wall, node, edits, del)| {
            if del == 0 {
                MutationBuilder::delete(entity, id, base, hlc(wall, 0xb0 + node)).build()
            } else {
                to_mutation(entity, id, base, hlc(wall, 0xb0 + node), edits)
            }
        })
}

/// Any JSON, with the edges a decoder meets: extreme numbers, floats where
/// integers belong, empty and long strings, clock-like and id-like text.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::from)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        ".{0,24}".prop_map(Value::from),
        Just(json!(
            "999999999999999-ffffffff-ffffffffffffffffffffffffffffffff"
        )),
        Just(json!(
            "000000000000000-00000000-00000000000000000000000000000000"
        )),
        Just(json!("00000000-0000-0000-0000-000000000000")),
        Just(json!("create")),
        Just(json!("update")),
        Just(json!("delete")),
        Just(json!("visit")),
        Just(json!("child")),
        Just(json!("case_plan_item")),
        Just(json!("approved")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    ".{0,8}",
                    Just("set".to_owned()),
                    Just("add".to_owned()),
                    Just("remove".to_owned()),
                    Just("hlc".to_owned()),
                    Just("id".to_owned()),
                    Just("urgent".to_owned()),
                ],
                inner,
                0..5
            )
            .prop_map(|map| Value::Object(map.into_iter().collect::<serde_json::Map<_, _>>())),
        ]
    })
}

/// Replaces the value at a path chosen by `steps` (each step picks a child
/// of an array or object, modulo its length) with `with`; a path that
/// reaches a leaf early replaces that leaf. With `remove`, a chosen object
/// key is dropped instead.
pub fn mutate_json(value: &mut Value, steps: &[usize], with: Value, remove: bool) {
    let Some((&step, rest)) = steps.split_first() else {
        *value = with;
        return;
    };
    match value {
        Value::Array(items) if !items.is_empty() => {
            let i = step % items.len();
            mutate_json(&mut items[i], rest, with, remove);
        }
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step % map.len()).cloned().expect("a key");
            if remove && rest.is_empty() {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate_json(child, rest, with, remove);
            }
        }
        _ => *value = with,
    }
}
