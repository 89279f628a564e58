//! A multi-replica simulation: a server and several devices (two phones of
//! one director, a supervisor, an admin) edit at random while a network
//! delivers pushes, pulls and answers in random order, duplicated and
//! delayed, and drops some answers. Then editing stops and everyone syncs
//! until quiet (with an iteration guard). Every device must end with the
//! server's records, no mutation may be lost, an approved visit must never
//! change, and the same seed must give the same final state.
//!
//! Seeds come from proptest (64 runs by default, `PROPTEST_CASES` to change).

use std::collections::{BTreeMap, HashMap};

use proptest::{prelude::*, test_runner::FileFailurePersistence};
use serde_json::json;
use sync_core::{
    clock::HlcClock,
    merge::{admit, merge},
    protocol::{Mutation, MutationResult},
    record::{Entity, Record},
    rules::{Actor, Role, rules_for},
    testing::{MutationBuilder as M, actor, child_create, hlc, ids, stored, uuid, visit_create},
};

/// SplitMix64: a tiny deterministic generator for the schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

type Key = (Entity, uuid::Uuid);

enum Msg {
    Push(usize, Vec<Mutation>),
    PushAnswer(usize, Vec<MutationResult>),
    Pull(usize, usize),
    PullAnswer(usize, Vec<Record>, usize),
}

#[derive(Default)]
struct Server {
    records: BTreeMap<Key, Record>,
    log: Vec<Key>,
    outcomes: HashMap<uuid::Uuid, MutationResult>,
}

struct Device {
    who: Actor,
    clock: HlcClock,
    store: BTreeMap<Key, Record>,
    outbox: Vec<Mutation>,
    in_flight: bool,
    cursor: usize,
    made: Vec<uuid::Uuid>,
}

struct Sim {
    rng: Rng,
    now: u64,
    server: Server,
    server_clock: HlcClock,
    devices: Vec<Device>,
    net: Vec<Msg>,
    next_id: u128,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut server = Server::default();
        let child = stored(&child_create(hlc(1, 0x5)).build(), &actor(Role::Admin));
        server.records.insert((Entity::Child, child.id), child);
        server.log.push((Entity::Child, ids::CHILD));
        let dev = |who: Actor, node: u128| Device {
            who,
            clock: HlcClock::new(uuid(node)),
            store: BTreeMap::new(),
            outbox: Vec::new(),
            in_flight: false,
            cursor: 0,
            made: Vec::new(),
        };
        Self {
            rng: Rng(seed),
            now: 1_000,
            server,
            server_clock: HlcClock::new(uuid(0x5e5e)),
            devices: vec![
                dev(actor(Role::Director), 0x1),
                dev(actor(Role::Director), 0x2),
                dev(actor(Role::Supervisor), 0x3),
                dev(actor(Role::Admin), 0x4),
            ],
            net: Vec::new(),
            next_id: 0x1_0000,
        }
    }

    fn edit(&mut self, d: usize) {
        // Device clocks: phone 1 runs 3 minutes behind, phone 2 a year ahead.
        let skew: i64 = match d {
            0 => -180_000,
            1 => 31_536_000_000,
            _ => 0,
        };
        let now = self.now.saturating_add_signed(skew);
        let h = self.devices[d].clock.tick(now);
        self.next_id += 1;
        let id = self.next_id;
        let dev = &self.devices[d];
        let visits: Vec<&Record> = dev
            .store
            .values()
            .filter(|r| r.entity == Entity::Visit && !r.is_deleted())
            .collect();
        let pick = |rng: &mut Rng| (!visits.is_empty()).then(|| visits[rng.below(visits.len())]);
        let m = match dev.who.role {
            Role::Director => match (self.rng.below(10), pick(&mut self.rng)) {
                (0..=2, _) | (_, None) => {
                    let mut m = visit_create(h).build();
                    m.record_id = uuid(id);
                    m
                }
                (3, Some(v)) => M::delete(Entity::Visit, v.id, v.version, h).build(),
                (k, Some(v)) => {
                    let n = self.rng.below(4);
                    let b = M::update(Entity::Visit, v.id, v.version, h);
                    match k {
                        4 => b.set("review_status", json!("submitted")),
                        5 => b.add("needs", json!({"id": format!("n{n}"), "area": "living"})),
                        6 => b.remove("needs", &format!("n{n}")),
                        7 => b.add(
                            "risk_flags",
                            json!({"id": format!("r{n}"), "urgent": n == 0}),
                        ),
                        _ => b.set("location", json!(format!("place {n}"))),
                    }
                    .build()
                }
            },
            Role::Supervisor => {
                let Some(v) = pick(&mut self.rng) else { return };
                let b = M::update(Entity::Visit, v.id, v.version, h);
                match self.rng.below(3) {
                    0 => b.set("review_status", json!("approved")),
                    1 => b.set("review_status", json!("returned")),
                    _ => b.set("review_comment", json!(format!("note {id}"))),
                }
                .build()
            }
            _ => {
                let Some(c) = dev.store.get(&(Entity::Child, ids::CHILD)) else {
                    return;
                };
                let cats = ["in_difficulty", "left_behind", "scattered_orphan"];
                M::update(Entity::Child, c.id, c.version, h)
                    .set("category", json!(cats[self.rng.below(3)]))
                    .set("address", json!(format!("house {id}")))
                    .build()
            }
        };
        let dev = &mut self.devices[d];
        dev.made.push(m.mutation_id);
        dev.outbox.push(m);
    }

    fn sync(&mut self, d: usize) {
        let dev = &mut self.devices[d];
        // With a push in flight, retry it now and then (its answer may be lost).
        let may_push = !dev.in_flight || self.rng.chance(20);
        if !dev.outbox.is_empty() && may_push {
            dev.in_flight = true;
            self.net.push(Msg::Push(d, dev.outbox.clone()));
        } else {
            self.net.push(Msg::Pull(d, dev.cursor));
        }
    }

    fn serve_push(&mut self, batch: Vec<Mutation>) -> Vec<MutationResult> {
        let s = &mut self.server;
        batch
            .into_iter()
            .map(|mut m| {
                if let Some(r) = s.outcomes.get(&m.mutation_id) {
                    return r.clone();
                }
                let who = self
                    .devices
                    .iter()
                    .find(|d| d.made.contains(&m.mutation_id))
                    .unwrap()
                    .who;
                admit(&mut m, &mut self.server_clock, self.now);
                let key = (m.entity, m.record_id);
                let before = s.records.get(&key);
                let out = merge(rules_for(m.entity), before, &m, &who);
                if let Some(b) = before
                    && b.get_str("review_status") == Some("approved")
                {
                    assert_eq!(out.record(), Some(b), "an approved visit changed");
                }
                let r = MutationResult::from_outcome(&m, &out);
                if out.changed {
                    let record = out.record.expect("a changed record").into_owned();
                    s.records.insert(key, record);
                    s.log.push(key);
                }
                s.outcomes.insert(m.mutation_id, r.clone());
                r
            })
            .collect()
    }

    fn deliver(&mut self) {
        let i = self.rng.below(self.net.len());
        let msg = if self.rng.chance(10) {
            match &self.net[i] {
                Msg::Push(d, b) => Msg::Push(*d, b.clone()),
                Msg::Pull(d, c) => Msg::Pull(*d, *c),
                _ => self.net.swap_remove(i),
            }
        } else {
            self.net.swap_remove(i)
        };
        let lose_answer = self.rng.chance(10);
        match msg {
            Msg::Push(d, batch) => {
                let results = self.serve_push(batch);
                if !lose_answer {
                    self.net.push(Msg::PushAnswer(d, results));
                }
            }
            Msg::Pull(d, cursor) => {
                let end = self.server.log.len().min(cursor + 5);
                let mut keys: Vec<Key> = self.server.log[cursor.min(end)..end].to_vec();
                keys.dedup();
                let recs = keys
                    .iter()
                    .map(|k| self.server.records[k].clone())
                    .collect();
                if !lose_answer {
                    self.net.push(Msg::PullAnswer(d, recs, end));
                }
            }
            Msg::PushAnswer(d, results) => {
                let dev = &mut self.devices[d];
                dev.outbox
                    .retain(|m| !results.iter().any(|r| r.mutation_id() == m.mutation_id));
                dev.in_flight = false;
            }
            Msg::PullAnswer(d, recs, next) => {
                let dev = &mut self.devices[d];
                for r in recs {
                    for f in r.fields.values() {
                        if let sync_core::record::Field::Register(reg) = f {
                            dev.clock.observe(reg.hlc, self.now);
                        }
                    }
                    let newer = dev
                        .store
                        .get(&(r.entity, r.id))
                        .is_none_or(|o| o.version <= r.version);
                    if newer {
                        dev.store.insert((r.entity, r.id), r);
                    }
                }
                dev.cursor = dev.cursor.max(next);
            }
        }
    }

    fn quiet(&self) -> bool {
        self.net.is_empty()
            && self
                .devices
                .iter()
                .all(|d| d.outbox.is_empty() && d.cursor >= self.server.log.len())
    }

    fn run(&mut self, steps: usize) -> BTreeMap<Key, Record> {
        for _ in 0..steps {
            self.now += 1 + self.rng.below(50) as u64;
            let d = self.rng.below(self.devices.len());
            match self.rng.below(4) {
                0 => self.edit(d),
                1 => self.sync(d),
                _ if !self.net.is_empty() => self.deliver(),
                _ => {}
            }
        }
        let mut guard = 0;
        while !self.quiet() {
            guard += 1;
            assert!(guard < 100_000, "the system did not become quiet");
            self.now += 1;
            if self.net.is_empty() || self.rng.chance(30) {
                let d = self.rng.below(self.devices.len());
                self.sync(d);
            } else {
                self.deliver();
            }
        }
        self.server.records.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).map_or(64, |c: u32| c / 4),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/simulation.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_and_lose_nothing(seed in any::<u64>(), steps in 50..400usize) {
        let mut sim = Sim::new(seed);
        let fin = sim.run(steps);
        for d in &sim.devices {
            prop_assert_eq!(&d.store, &fin, "a device's copy differs from the server's");
            for id in &d.made {
                prop_assert!(sim.server.outcomes.contains_key(id), "mutation {id} lost");
            }
        }
        for (id, r) in &sim.server.outcomes {
            if let MutationResult::Rejected { reason, .. } = r {
                prop_assert!(
                    !matches!(reason, sync_core::merge::Reason::MissingRequiredField
                        | sync_core::merge::Reason::RoleNotAllowed
                        | sync_core::merge::Reason::NotAuthor),
                    "mutation {id} wrongly rejected: {reason:?}");
            }
        }
        let mut again = Sim::new(seed);
        prop_assert_eq!(again.run(steps), fin, "same seed, different result");
    }
}
