//! Semantic visit checks and the due-date rule.

use chrono::NaiveDate;
use rstest::rstest;
use serde_json::json;
use sync_core::{
    calendar::Calendar,
    merge::{Flag, Reason, Verdict, merge},
    record::{Entity, Record},
    rules::{Role, rules_for},
    semantic::{
        ChildFacts, DEFAULT_FUTURE_TOLERANCE_MS, DueInput, DueStatus, MAX_DUPLICATE_FLAGS,
        OtherVisit, VisitIntervals, check_visit, due_status,
    },
    testing::{MutationBuilder as M, actor, child_create, hlc, ids, stored, stored_visit},
};
use uuid::Uuid;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn facts() -> ChildFacts {
    ChildFacts {
        birth_date: d("2015-06-01"),
        exited_on: None,
        village_id: ids::VILLAGE,
        in_village_since: None,
        transferred_at: None,
    }
}

/// 2026-03-02T12:00:00+08:00, the server's "now" in these tests.
const NOW_MS: i64 = 1_772_424_000_000;

fn visit_at(at: &str) -> Record {
    let mut v = stored_visit("submitted");
    if let Some(sync_core::record::Field::Register(r)) = v.fields.get_mut("visited_at") {
        r.value = json!(at);
    }
    v
}

#[rstest]
#[case::normal("2026-03-02T10:30:00+08:00", None)]
#[case::tomorrow_morning_is_tolerated("2026-03-03T08:00:00+08:00", None)]
#[case::next_week("2026-03-09T10:00:00+08:00", Some(Reason::VisitInFuture))]
#[case::before_birth("2015-05-01T10:00:00+08:00", Some(Reason::VisitBeforeBirth))]
fn visit_dates(#[case] at: &str, #[case] refused: Option<Reason>) {
    let c = check_visit(
        &visit_at(at),
        &facts(),
        &[],
        NOW_MS,
        DEFAULT_FUTURE_TOLERANCE_MS,
        &Calendar::default(),
    );
    assert_eq!(c.refusal.map(|r| r.0), refused);
}

#[test]
fn a_visit_after_exit_or_transfer_is_kept_and_flagged() {
    let exited = ChildFacts {
        exited_on: Some(d("2026-02-20")),
        ..facts()
    };
    let c = check_visit(
        &visit_at("2026-03-02T10:30:00+08:00"),
        &exited,
        &[],
        NOW_MS,
        DEFAULT_FUTURE_TOLERANCE_MS,
        &Calendar::default(),
    );
    assert_eq!((c.refusal, c.flags), (None, vec![Flag::VisitAfterExit]));

    let moved = ChildFacts {
        village_id: ids::OTHER_VILLAGE,
        in_village_since: Some(d("2026-02-01")),
        ..facts()
    };
    let c = check_visit(
        &visit_at("2026-03-02T10:30:00+08:00"),
        &moved,
        &[],
        NOW_MS,
        DEFAULT_FUTURE_TOLERANCE_MS,
        &Calendar::default(),
    );
    assert_eq!(c.flags, vec![Flag::VisitAfterTransfer]);
    let c = check_visit(
        &visit_at("2026-01-15T10:30:00+08:00"),
        &moved,
        &[],
        NOW_MS,
        DEFAULT_FUTURE_TOLERANCE_MS,
        &Calendar::default(),
    );
    assert!(c.flags.is_empty(), "a visit before the transfer is fine");
}

#[test]
fn possible_duplicates_are_flagged_at_most_a_few_times_however_many_visits_that_day() {
    // A thousand visits from another phone that day: a handful of flags
    // say "possible duplicate" as well as a thousand would, and each flag
    // is a row in the supervisor's queue.
    let others: Vec<OtherVisit> = (1..=1000u128)
        .map(|n| OtherVisit {
            visit_id: Uuid::from_u128(n << 8),
            device_id: Some(Uuid::from_u128(0x0b)),
            visited_on: d("2026-03-02"),
        })
        .collect();
    let c = check("2026-03-02T10:30:00+08:00", &facts(), &others);
    let flagged: Vec<&Flag> = c
        .flags
        .iter()
        .filter(|f| matches!(f, Flag::PossibleDuplicate { .. }))
        .collect();
    assert_eq!(flagged.len(), MAX_DUPLICATE_FLAGS);
}

#[test]
fn a_second_visit_the_same_day_from_another_device_is_a_possible_duplicate() {
    let other = |device: u128, day: &str| OtherVisit {
        visit_id: Uuid::from_u128(device << 8),
        device_id: Some(Uuid::from_u128(device)),
        visited_on: d(day),
    };
    let others = [
        other(0x0b, "2026-03-02"),
        other(0x0b, "2026-03-01"),
        other(0x0a, "2026-03-02"),
    ];
    let c = check("2026-03-02T10:30:00+08:00", &facts(), &others);
    assert_eq!(
        c.flags,
        vec![Flag::PossibleDuplicate {
            other_visit_id: Uuid::from_u128(0x0b00)
        }]
    );
}

#[test]
fn a_refused_visit_check_turns_the_outcome_into_a_rejection() {
    let create = sync_core::testing::visit_create(hlc(2_000, 1))
        .set("visited_at", json!("2030-01-01T00:00:00+08:00"))
        .build();
    let mut out = merge(
        rules_for(Entity::Visit),
        None,
        &create,
        &actor(Role::Director),
    );
    let c = check_visit(
        out.record().unwrap(),
        &facts(),
        &[],
        NOW_MS,
        DEFAULT_FUTURE_TOLERANCE_MS,
        &Calendar::default(),
    );
    c.apply(None, &mut out);
    assert!(matches!(
        out.verdict,
        Verdict::Rejected {
            reason: Reason::VisitInFuture,
            ..
        }
    ));
    assert!(out.record.is_none());
}

#[test]
fn a_director_changing_an_exited_child_is_flagged() {
    let child = stored(
        &child_create(hlc(1_000, 1))
            .set("status", json!("exited"))
            .build(),
        &actor(Role::Admin),
    );
    let m = M::update(Entity::Child, ids::CHILD, 1, hlc(2_000, 2))
        .set("address", json!("new"))
        .build();
    let out = merge(
        rules_for(Entity::Child),
        Some(&child),
        &m,
        &actor(Role::Director),
    );
    assert_eq!(out.flags, vec![Flag::EditToExitedChild]);
}

#[rstest]
#[case::never_visited_not_due("in_difficulty", None, None, "2026-01-10", DueStatus::Upcoming { due: d("2026-01-31"), days_left: 21 })]
#[case::due_today("in_difficulty", None, Some("2026-01-01"), "2026-01-31", DueStatus::DueToday { due: d("2026-01-31") })]
#[case::overdue("left_behind", None, Some("2025-10-02"), "2026-01-10", DueStatus::Overdue { due: d("2025-12-31"), days_overdue: 10 })]
#[case::override_wins("institutional_orphan", Some(14), Some("2026-01-01"), "2026-01-10", DueStatus::Upcoming { due: d("2026-01-15"), days_left: 5 })]
#[case::unknown_category("other", None, Some("2026-01-01"), "2026-02-10", DueStatus::Overdue { due: d("2026-01-31"), days_overdue: 10 })]
fn due_dates(
    #[case] category: &str,
    #[case] override_days: Option<u32>,
    #[case] last: Option<&str>,
    #[case] today: &str,
    #[case] expected: DueStatus,
) {
    let child = DueInput {
        category: category.into(),
        active: true,
        interval_override_days: override_days,
        registered_on: d("2026-01-01"),
        last_visit_on: last.map(d),
    };
    assert_eq!(
        due_status(&child, d(today), &VisitIntervals::default()),
        expected
    );
    let exited = DueInput {
        active: false,
        ..child
    };
    assert_eq!(
        due_status(&exited, d(today), &VisitIntervals::default()),
        DueStatus::NotTracked
    );
}

fn check(at: &str, child: &ChildFacts, others: &[OtherVisit]) -> sync_core::semantic::VisitCheck {
    check_visit(
        &visit_at(at),
        child,
        others,
        NOW_MS,
        DEFAULT_FUTURE_TOLERANCE_MS,
        &Calendar::default(),
    )
}

/// Found by a phone fleet: a visit the same day after the child moved was
/// applied with no flag, since only later days counted. On the transfer's
/// own day, a visit after the moment it was recorded is after it.
#[test]
fn a_visit_the_same_day_after_the_transfer_is_flagged() {
    let moved = ChildFacts {
        village_id: ids::OTHER_VILLAGE,
        in_village_since: Some(d("2026-03-02")),
        transferred_at: Some("2026-03-02T01:00:00Z".parse().unwrap()),
        ..facts()
    };
    // 10:30 in the district is 02:30Z: after the transfer at 09:00 local.
    assert_eq!(
        check("2026-03-02T10:30:00+08:00", &moved, &[]).flags,
        vec![Flag::VisitAfterTransfer]
    );
    // 08:30 local, the same day but before it was recorded.
    assert!(
        check("2026-03-02T08:30:00+08:00", &moved, &[])
            .flags
            .is_empty()
    );
    // Written in UTC, the instant decides, not the UTC date.
    assert_eq!(
        check("2026-03-02T02:30:00Z", &moved, &[]).flags,
        vec![Flag::VisitAfterTransfer]
    );
}

/// Midnight in the district is 16:00Z: a visit at 15:59Z is on the
/// transfer's eve, one at 16:00Z on the next day.
#[test]
fn the_transfer_and_exit_checks_count_district_days() {
    let moved = ChildFacts {
        village_id: ids::OTHER_VILLAGE,
        in_village_since: Some(d("2026-03-01")),
        transferred_at: Some("2026-02-28T17:00:00Z".parse().unwrap()),
        ..facts()
    };
    assert!(check("2026-02-28T15:59:00Z", &moved, &[]).flags.is_empty());
    assert_eq!(
        check("2026-03-01T16:00:00Z", &moved, &[]).flags,
        vec![Flag::VisitAfterTransfer]
    );
    let exited = ChildFacts {
        exited_on: Some(d("2026-03-01")),
        ..facts()
    };
    assert!(check("2026-03-01T15:59:00Z", &exited, &[]).flags.is_empty());
    assert_eq!(
        check("2026-03-01T16:00:00Z", &exited, &[]).flags,
        vec![Flag::VisitAfterExit]
    );
}

/// Found by a phone fleet: 17:00Z and 21:00Z on one UTC day are one day in
/// the district (the next one) and were not flagged; the duplicate check
/// compares district days on both sides.
#[test]
fn the_duplicate_check_compares_district_days() {
    let other = OtherVisit {
        visit_id: Uuid::from_u128(0xb00),
        device_id: Some(Uuid::from_u128(0xb)),
        visited_on: d("2026-03-02"),
    };
    // 2026-03-01T17:00Z is 2026-03-02 01:00 in the district.
    assert_eq!(
        check(
            "2026-03-01T17:00:00Z",
            &facts(),
            std::slice::from_ref(&other)
        )
        .flags,
        vec![Flag::PossibleDuplicate {
            other_visit_id: other.visit_id
        }]
    );
    // 2026-03-01T15:59Z is still 2026-03-01 there.
    assert!(
        check("2026-03-01T15:59:00Z", &facts(), &[other])
            .flags
            .is_empty()
    );
}
