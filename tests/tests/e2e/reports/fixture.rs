//! The hand-built register the report tests count by hand (see the table
//! in `reports.rs`): seven children, their register events, visits,
//! needs-ledger items and two dated benefit standards, written straight
//! into the database with fixed dates.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ColumnTrait, EntityTrait, IntoActiveModel, JoinType, PaginatorTrait, QueryFilter, QuerySelect,
    RelationTrait,
};
use seedling_server::entity::{benefit_standard, case_plan_item, child, register_event, visit};
use seedling_tests::{Fixture, TestApp};
use serde_json::json;
use uuid::Uuid;

pub struct Register<'a> {
    app: &'a TestApp,
    pub fixture: Fixture,
    /// `c[1]` … `c[7]` are the children C1 … C7 (`c[0]` is unused).
    pub c: [Uuid; 8],
}

/// Child number, village, category, added, (exit date, reason), own interval.
type ChildLine = (
    usize,
    Uuid,
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
    Option<i32>,
);

/// Child number, village, needs area, status, due, created, deleted.
type ItemLine = (
    usize,
    Uuid,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    bool,
);

fn day(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

/// A moment given in China time, e.g. `2026-03-20T10:00:00+08:00`.
fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 time")
        .with_timezone(&Utc)
}

impl<'a> Register<'a> {
    pub async fn load(app: &'a TestApp) -> Register<'a> {
        let fixture = Fixture::load(app).await;
        let db = app.db();
        let (a1, a2, b1) = (fixture.village_a1, fixture.village_a2, fixture.village_b1);
        let mut c = [Uuid::nil(); 8];
        for slot in c.iter_mut().skip(1) {
            *slot = Uuid::new_v4();
        }

        // (child, village, category, added, exited, own interval)
        let children: [ChildLine; 7] = [
            (1, a1, "in_difficulty", "2025-06-01", None, None),
            (2, a1, "scattered_orphan", "2025-06-01", None, None),
            (3, a1, "left_behind", "2025-06-01", None, Some(14)),
            (4, a2, "in_difficulty", "2026-03-20", None, None),
            (5, a2, "in_difficulty", "2025-01-01", None, None),
            (
                6,
                a1,
                "in_difficulty",
                "2025-06-01",
                Some(("2026-02-15", "moved_away")),
                None,
            ),
            (7, b1, "in_difficulty", "2026-02-01", None, None),
        ];
        let mut events = Vec::new();
        for (n, village, category, added, exit, own) in children {
            let created = at(&format!("{added}T09:00:00+08:00"));
            let model = child::Model {
                id: c[n],
                version: 1,
                field_clocks: json!({}),
                created_at: created,
                updated_at: created,
                deleted: false,
                name: format!("儿童{n}"),
                gender: None,
                birth_date: day("2015-05-05"),
                id_number: None,
                category: category.to_owned(),
                status: if exit.is_some() { "exited" } else { "active" }.to_owned(),
                exit_reason: exit.map(|(_, reason)| reason.to_owned()),
                exit_date: exit.map(|(date, _)| day(date)),
                village_id: village,
                guardian_name: None,
                guardian_relation: None,
                guardian_phone: None,
                address: None,
                school: None,
                health_notes: None,
                disability_notes: None,
                benefit_standard_cny: None,
                visit_interval_days: own,
                external_id: None,
                archived_at: None,
            };
            child::Entity::insert(model.into_active_model())
                .exec_without_returning(db)
                .await
                .expect("child");
            let source = if n == 7 { "data_matching" } else { "district" };
            events.push(event(c[n], "added", added, source, None));
            if let Some((date, reason)) = exit {
                events.push(event(c[n], "exited", date, "district", Some(reason)));
            }
        }
        register_event::Entity::insert_many(
            events.into_iter().map(IntoActiveModel::into_active_model),
        )
        .exec_without_returning(db)
        .await
        .expect("register events");

        let author = fixture.user_id("director-a1");
        // (child, village, kind, when, review status, deleted)
        let visits: [(usize, Uuid, &str, &str, &str, bool); 12] = [
            (
                1,
                a1,
                "home_visit",
                "2025-12-15T10:00:00+08:00",
                "approved",
                false,
            ),
            (
                1,
                a1,
                "phone_follow_up",
                "2026-02-01T01:30:00+08:00",
                "approved",
                false,
            ),
            (
                1,
                a1,
                "home_visit",
                "2026-03-20T10:00:00+08:00",
                "submitted",
                false,
            ),
            (
                1,
                a1,
                "home_visit",
                "2026-03-25T10:00:00+08:00",
                "submitted",
                true,
            ),
            (
                2,
                a1,
                "phone_follow_up",
                "2026-01-10T15:00:00+08:00",
                "approved",
                false,
            ),
            (
                2,
                a1,
                "home_visit",
                "2026-02-10T09:00:00+08:00",
                "returned",
                false,
            ),
            (
                2,
                a1,
                "home_visit",
                "2026-03-25T09:00:00+08:00",
                "draft",
                false,
            ),
            (
                3,
                a1,
                "home_visit",
                "2026-01-05T11:00:00+08:00",
                "approved",
                false,
            ),
            (
                6,
                a1,
                "school_visit",
                "2026-01-15T14:00:00+08:00",
                "approved",
                false,
            ),
            (
                6,
                a1,
                "home_visit",
                "2026-02-01T10:00:00+08:00",
                "approved",
                false,
            ),
            (
                7,
                b1,
                "home_visit",
                "2026-03-01T10:00:00+08:00",
                "submitted",
                false,
            ),
            // C5 and C4: never visited.
            (
                1,
                a1,
                "home_visit",
                "2025-11-02T10:00:00+08:00",
                "approved",
                false,
            ),
        ];
        let rows = visits.map(|(n, village, kind, when, status, deleted)| {
            visit_row(c[n], author, village, kind, at(when), status, deleted).into_active_model()
        });
        visit::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .expect("visits");

        // (child, village, needs area, status, due, created, deleted)
        let items: [ItemLine; 6] = [
            (
                1,
                a1,
                "living",
                "open",
                Some("2026-03-01"),
                "2026-01-10T12:00:00+08:00",
                false,
            ),
            (
                2,
                a1,
                "study",
                "in_progress",
                Some("2026-04-30"),
                "2026-02-20T12:00:00+08:00",
                false,
            ),
            (
                2,
                a1,
                "living",
                "done",
                None,
                "2026-01-12T12:00:00+08:00",
                false,
            ),
            (
                5,
                a2,
                "psychology",
                "open",
                None,
                "2026-03-05T12:00:00+08:00",
                false,
            ),
            (
                1,
                a1,
                "living",
                "open",
                None,
                "2026-03-06T12:00:00+08:00",
                true,
            ),
            (
                7,
                b1,
                "living",
                "open",
                None,
                "2026-03-07T12:00:00+08:00",
                false,
            ),
        ];
        let rows = items.map(|(n, village, area, status, due, created, deleted)| {
            let created = at(created);
            case_plan_item::Model {
                id: Uuid::new_v4(),
                version: 1,
                field_clocks: json!({}),
                created_at: created,
                updated_at: created,
                deleted,
                child_id: c[n],
                village_id: village,
                area: area.to_owned(),
                description: format!("{area} 需求"),
                status: status.to_owned(),
                owner: None,
                due_date: due.map(day),
            }
            .into_active_model()
        });
        case_plan_item::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await
            .expect("needs-ledger items");

        let standards = [
            ("in_difficulty", 2686, "2024-04-01", Some("2026-01-31")),
            ("in_difficulty", 2843, "2026-02-01", None),
            ("scattered_orphan", 2843, "2024-04-01", None),
        ]
        .map(|(category, amount, from, to)| {
            benefit_standard::Model {
                id: Uuid::new_v4(),
                category: category.to_owned(),
                amount_cny: amount,
                effective_from: day(from),
                effective_to: to.map(day),
            }
            .into_active_model()
        });
        benefit_standard::Entity::insert_many(standards)
            .exec_without_returning(db)
            .await
            .expect("benefit standards");

        Register { app, fixture, c }
    }

    /// Adds visits by `director`: (child number, village, kind, moment in
    /// RFC 3339, review status).
    pub async fn add_visits(&self, director: &str, lines: &[(usize, Uuid, &str, String, &str)]) {
        let author = self.fixture.user_id(director);
        let rows = lines.iter().map(|(n, village, kind, when, status)| {
            visit_row(self.c[*n], author, *village, kind, at(when), status, false)
                .into_active_model()
        });
        visit::Entity::insert_many(rows)
            .exec_without_returning(self.app.db())
            .await
            .expect("visits");
    }

    /// Visits straight from the table, filtered as the visit log filters:
    /// not deleted, the child registered in one of `villages` now, on a day
    /// (China time) from `from` to `to`, of `kind` if given.
    pub async fn visits_in(
        &self,
        villages: &[Uuid],
        from: &str,
        to: &str,
        kind: Option<&str>,
    ) -> u64 {
        let start = at(&format!("{from}T00:00:00+08:00"));
        let end = at(&format!("{}T00:00:00+08:00", day(to).succ_opt().unwrap()));
        let mut query = visit::Entity::find()
            .join(JoinType::InnerJoin, visit::Relation::Child.def())
            .filter(child::Column::VillageId.is_in(villages.to_vec()))
            .filter(visit::Column::Deleted.eq(false))
            .filter(visit::Column::VisitedAt.gte(start))
            .filter(visit::Column::VisitedAt.lt(end));
        if let Some(kind) = kind {
            query = query.filter(visit::Column::Kind.eq(kind));
        }
        query.count(self.app.db()).await.expect("count visits")
    }
}

/// A visit row as the phones' pushes leave it, written straight to the table.
fn visit_row(
    child: Uuid,
    author: Uuid,
    village: Uuid,
    kind: &str,
    when: DateTime<Utc>,
    status: &str,
    deleted: bool,
) -> visit::Model {
    visit::Model {
        id: Uuid::new_v4(),
        version: 1,
        field_clocks: json!({}),
        created_at: when,
        updated_at: when,
        deleted,
        child_id: child,
        author_id: author,
        device_id: None,
        village_id: village,
        kind: kind.to_owned(),
        visited_at: when,
        location: None,
        observations: None,
        needs: json!([]),
        risk_flags: json!([]),
        photos: json!([]),
        follow_up: None,
        next_planned_date: None,
        review_status: status.to_owned(),
        review_comment: None,
        reviewed_by: None,
        reviewed_at: None,
    }
}

fn event(
    child: Uuid,
    kind: &str,
    date: &str,
    source: &str,
    reason: Option<&str>,
) -> register_event::Model {
    register_event::Model {
        id: Uuid::new_v4(),
        child_id: child,
        kind: kind.to_owned(),
        effective_date: day(date),
        source: source.to_owned(),
        from_value: None,
        to_value: None,
        reason: reason.map(str::to_owned),
        recorded_by: None,
        created_at: at(&format!("{date}T09:00:00+08:00")),
    }
}
