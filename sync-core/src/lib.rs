//! Seedling's pure sync core: hybrid logical clocks, per-entity field rules,
//! three-way merge, semantic checks and the versioned wire protocol. No I/O,
//! no clock reads, no randomness: the same code runs on the server and on
//! the phone, and every decision is a pure function of its inputs.
//!
//! * [`clock`] — [`clock::Hlc`] and [`clock::HlcClock`] (time is passed in);
//! * [`record`] — records with per-field clocks and versions;
//! * [`rules`] — the declarative rule table (kinds, authority, locks, deletes);
//! * [`merge`] — [`merge::admit`] and [`merge::merge`] → [`merge::MergeOutcome`];
//! * [`tasks`] — the director's to-do list: visits returned for revision;
//! * [`semantic`] — visit checks and the due-date / overdue rule;
//! * [`protocol`] — push / pull / error types and the scope checksum;
//! * `testing` (feature `testing`) — builders and proptest strategies.
//!
//! `docs/SYNC-PROTOCOL.md` describes the protocol for client developers.
//!
//! # Two devices, one visit
//!
//! A director's two phones edit the same visit offline; the server merges
//! both pushes. The later write wins the contested field, the earlier value
//! is kept in a conflict, and the untouched changes of both apply.
//!
//! ```
//! use std::collections::BTreeMap;
//! use serde_json::json;
//! use sync_core::{
//!     clock::HlcClock,
//!     merge::{admit, merge, Verdict, Winner},
//!     protocol::{FieldChange, Mutation, MutationResult, Op},
//!     record::Entity,
//!     rules::{rules_for, Actor, Role},
//! };
//! use uuid::Uuid;
//!
//! let director = Actor::new(Uuid::from_u128(0xd1), Role::Director);
//! let visit_id = Uuid::from_u128(0x51);
//! let mut phone_a = HlcClock::new(Uuid::from_u128(0xa));
//! let mut phone_b = HlcClock::new(Uuid::from_u128(0xb));
//! let mut server = HlcClock::new(Uuid::from_u128(0x5e));
//! let now = 1_772_400_000_000; // 2026-03-02, passed in, never read
//!
//! let mutation = |n: u128, op, base, hlc, fields: Vec<(&str, FieldChange)>| Mutation {
//!     mutation_id: Uuid::from_u128(n),
//!     entity: Entity::Visit,
//!     record_id: visit_id,
//!     op,
//!     base_version: base,
//!     hlc,
//!     fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<BTreeMap<_, _>>(),
//! };
//! let rules = rules_for(Entity::Visit);
//!
//! // Phone A records the visit and pushes it: version 1.
//! let t = phone_a.tick(now);
//! let create = mutation(1, Op::Create, 0, t, vec![
//!     ("child_id", FieldChange::set(t, json!(Uuid::from_u128(0xc1)))),
//!     ("author_id", FieldChange::set(t, json!(director.user_id))),
//!     ("village_id", FieldChange::set(t, json!(Uuid::from_u128(0x7100)))),
//!     ("kind", FieldChange::set(t, json!("home_visit"))),
//!     ("visited_at", FieldChange::set(t, json!("2026-03-02T10:30:00+08:00"))),
//!     ("location", FieldChange::set(t, json!("home"))),
//!     ("review_status", FieldChange::set(t, json!("draft"))),
//! ]);
//! let v1 = merge(rules, None, &create, &director).record.unwrap().into_owned();
//! assert_eq!(v1.version, 1);
//!
//! // Both phones have version 1. Offline, A changes the location; a minute
//! // later B changes it too and adds a need.
//! let ta = phone_a.tick(now + 60_000);
//! let edit_a = mutation(2, Op::Update, 1, ta, vec![("location", FieldChange::set(ta, json!("school")))]);
//! let tb = phone_b.tick(now + 120_000);
//! let edit_b = mutation(3, Op::Update, 1, tb, vec![
//!     ("location", FieldChange::set(tb, json!("grandmother's house"))),
//!     ("needs", FieldChange::items(tb, vec![json!({"id": "n1", "area": "study"})], vec![])),
//! ]);
//!
//! // B's push arrives first, then A's.
//! let mut pushed_b = edit_b.clone();
//! assert!(!admit(&mut pushed_b, &mut server, now + 200_000)); // clock not skewed
//! let v2 = merge(rules, Some(&v1), &pushed_b, &director);
//! assert_eq!(v2.verdict, Verdict::Applied);
//! let after_a = merge(rules, v2.record(), &edit_a, &director);
//! assert_eq!(after_a.verdict, Verdict::Merged);
//!
//! let record = after_a.record.unwrap();
//! assert_eq!(record.get_str("location"), Some("grandmother's house")); // later write wins
//! assert_eq!(record.get("needs"), Some(json!([{"id": "n1", "area": "study"}])));
//! let conflict = &after_a.conflicts[0];
//! assert_eq!(conflict.winner, Winner::Server);
//! assert_eq!(conflict.loser().value, json!("school")); // kept, not dropped
//!
//! // What phone A is told: merged, its only change lost (and kept in the
//! // conflict), so the record stays at version 2.
//! let answer = MutationResult::from_outcome(&edit_a, &merge(rules, v2.record(), &edit_a, &director));
//! assert!(matches!(answer, MutationResult::Merged { version: 2, .. }));
//! ```

pub mod calendar;
pub mod clock;
pub mod error;
pub mod merge;
pub mod protocol;
pub mod record;
pub mod rules;
pub mod semantic;
pub mod tasks;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::SyncError;
