//! The report numbers reconcile with the log: on the hand-built register
//! plus recent visits (several kinds, months and villages,
//! a draft, visits just either side of midnight China time), every figure
//! of the reports is checked against what a supervisor reads elsewhere —
//! each month's and each kind's count against the total of
//! `GET /api/v1/visits` with the same filters, the overdue list and the
//! coverage against the due dates of the roster (`GET /api/v1/children`)
//! and of each child's page (`GET /api/v1/children/{id}`), the dashboard
//! against both. The two sides are computed by different code (the
//! reports' own queries; the log's and the roster's), so a visit counted
//! in the wrong month, a deleted visit or a draft counted by one side
//! only, or a due date computed another way fails a check.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use seedling_tests::{TestApp, on_both_backends};
use serde_json::{Value, json};
use uuid::Uuid;

use super::fixture::Register;
use super::report;
use crate::review::{china_day, day_at};

on_both_backends!(
    visits_by_month_and_kind_equal_the_visit_log_totals,
    overdue_and_coverage_agree_with_the_childrens_due_dates,
);

const KINDS: [&str; 4] = ["home_visit", "phone_follow_up", "school_visit", "other"];

/// Recent visits, relative to today (China time), so the
/// point-in-time figures (as of today) are not all "overdue":
///
/// | child | visit | on today |
/// |---|---|---|
/// | C1 (A1, 30 d) | phone follow-up 3 days ago | visited |
/// | C3 (A1, own 14 d) | home visit 20 days ago | 6 days overdue |
/// | C4 (A2, 30 d) | a draft yesterday (does not count) | overdue since 2026-04-19 |
/// | C5 (A2, 30 d) | home visit 10 days ago at 23:30, other kind 40 days ago at 00:30 | visited |
/// | C7 (B1, 30 d) | school visit 29 days ago | due tomorrow: visited |
/// | C2 (A1, 30 d) | — | overdue since 2026-03-12 |
async fn recent_visits(reg: &Register<'_>) {
    let f = &reg.fixture;
    reg.add_visits(
        "director-a1",
        &[
            (
                1,
                f.village_a1,
                "phone_follow_up",
                day_at(3, 10),
                "submitted",
            ),
            (3, f.village_a1, "home_visit", day_at(20, 9), "submitted"),
        ],
    )
    .await;
    reg.add_visits(
        "director-a2",
        &[
            (4, f.village_a2, "home_visit", day_at(1, 15), "draft"),
            (
                5,
                f.village_a2,
                "home_visit",
                format!("{}T23:30:00+08:00", china_day(10)),
                "approved",
            ),
            (
                5,
                f.village_a2,
                "other",
                format!("{}T00:30:00+08:00", china_day(40)),
                "returned",
            ),
        ],
    )
    .await;
    reg.add_visits(
        "director-b1",
        &[(7, f.village_b1, "school_visit", day_at(29, 11), "submitted")],
    )
    .await;
}

fn last_day_of(month: &str) -> NaiveDate {
    let first: NaiveDate = format!("{month}-01").parse().expect("a month");
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    };
    next.expect("a day").pred_opt().expect("a day")
}

/// The visit log's total for these filters.
async fn log_total(app: &TestApp, token: &str, filters: &[(&str, String)]) -> u64 {
    let query: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let page = report(
        app,
        token,
        &format!("/api/v1/visits?limit=1&{}", query.join("&")),
    )
    .await;
    page["total"].as_u64().expect("a total")
}

/// Checks one visits-by-month report (with `place` as both report and log
/// filter) against the log, month by month and kind by kind; returns the
/// report's total.
async fn reconcile_months(
    app: &TestApp,
    token: &str,
    place: Option<(&str, Uuid)>,
    period: Option<(&str, &str)>,
) -> u64 {
    let mut path = "/api/v1/reports/visits-by-month?".to_owned();
    let mut log_place: Vec<(&str, String)> = Vec::new();
    if let Some((kind, id)) = place {
        path.push_str(&format!("{kind}_id={id}&"));
        log_place.push((kind, id.to_string()));
    }
    if let Some((from, to)) = period {
        path.push_str(&format!("from={from}&to={to}"));
    }
    let body = report(app, token, &path).await;
    let (from, to): (NaiveDate, NaiveDate) = (
        body["filters"]["from"].as_str().unwrap().parse().unwrap(),
        body["filters"]["to"].as_str().unwrap().parse().unwrap(),
    );
    let whole = [
        log_place.clone(),
        vec![("from", from.to_string()), ("to", to.to_string())],
    ]
    .concat();
    assert_eq!(
        body["summary"]["total"].as_u64(),
        Some(log_total(app, token, &whole).await),
        "{path}: the total against the log"
    );
    for kind in KINDS {
        let filters = [whole.clone(), vec![("kind", kind.to_owned())]].concat();
        assert_eq!(
            body["summary"]["by_kind"][kind].as_u64(),
            Some(log_total(app, token, &filters).await),
            "{path}: {kind} against the log"
        );
    }
    for row in body["rows"].as_array().expect("rows") {
        let month = row["month"].as_str().expect("a month");
        let start = from.max(format!("{month}-01").parse().unwrap());
        let end = to.min(last_day_of(month));
        let days = [
            log_place.clone(),
            vec![("from", start.to_string()), ("to", end.to_string())],
        ]
        .concat();
        assert_eq!(
            row["total"].as_u64(),
            Some(log_total(app, token, &days).await),
            "{path}: {month} against the log"
        );
        for kind in KINDS {
            let filters = [days.clone(), vec![("kind", kind.to_owned())]].concat();
            assert_eq!(
                row[kind].as_u64(),
                Some(log_total(app, token, &filters).await),
                "{path}: {month} {kind} against the log"
            );
        }
    }
    body["summary"]["total"].as_u64().expect("a total")
}

async fn visits_by_month_and_kind_equal_the_visit_log_totals(app: TestApp) {
    let reg = Register::load(&app).await;
    recent_visits(&reg).await;
    let f = reg.fixture.clone();
    let supervisor = app.token_for("supervisor-a").await;
    let admin = app.token_for("admin").await;
    let today = china_day(0).to_string();
    let since_january = Some(("2026-01-01", today.as_str()));

    // The figures are not trivially equal: visits in many months, of every
    // kind but "other" in Q1, in three villages.
    let q1 = reconcile_months(&app, &supervisor, None, Some(("2026-01-01", "2026-03-31"))).await;
    assert_eq!(q1, 8, "the hand count of the first quarter (reports.rs)");
    let all = reconcile_months(&app, &admin, None, since_january).await;
    assert_eq!(
        all,
        9 + 6,
        "Q1's nine, the register's 2025 visits left out, and six recent"
    );
    // The default period (twelve months up to today), the caller's scope.
    reconcile_months(&app, &supervisor, None, None).await;
    reconcile_months(&app, &admin, None, None).await;
    for (kind, id) in [
        ("town", f.town_a),
        ("town", f.town_b),
        ("village", f.village_a1),
        ("village", f.village_a2),
        ("village", f.village_b1),
    ] {
        reconcile_months(&app, &admin, Some((kind, id)), since_january).await;
    }
    let a2 = reconcile_months(
        &app,
        &supervisor,
        Some(("village", f.village_a2)),
        since_january,
    )
    .await;
    assert_eq!(a2, 3, "C4's draft and C5's two visits");
    // A single month that starts and ends mid-month.
    reconcile_months(&app, &admin, None, Some(("2026-01-15", "2026-02-10"))).await;
}

/// `GET /api/v1/children/{id}` for the child `id` names.
async fn child_page(app: &TestApp, token: &str, id: &Value) -> Value {
    report(
        app,
        token,
        &format!("/api/v1/children/{}", id.as_str().expect("an id")),
    )
    .await
}

/// A child's due facts as the roster and the child's page give them.
fn due_facts(child: &Value) -> Value {
    json!({
        "interval_days": child["interval_days"],
        "last_visit_on": child["last_visit_on"],
        "state": child["due"]["state"],
        "due": child["due"]["due"],
        "days_overdue": child["due"]["days_overdue"],
    })
}

async fn overdue_and_coverage_agree_with_the_childrens_due_dates(app: TestApp) {
    let reg = Register::load(&app).await;
    recent_visits(&reg).await;
    let f = reg.fixture.clone();
    let today = china_day(0);

    for user in ["supervisor-a", "supervisor-b", "admin"] {
        let token = app.token_for(user).await;
        let roster = report(&app, &token, "/api/v1/children").await;
        let children = roster["children"].as_array().expect("children").clone();
        let overdue_report = report(&app, &token, "/api/v1/reports/overdue").await;
        assert_eq!(overdue_report["filters"]["as_of"], json!(today.to_string()));

        // The same children are tracked and overdue.
        assert_eq!(
            overdue_report["summary"]["tracked_children"], roster["total"],
            "{user}: tracked children against the roster"
        );
        assert_eq!(
            overdue_report["summary"]["overdue_children"], roster["overdue"],
            "{user}: overdue count against the roster"
        );
        let listed: BTreeSet<String> = overdue_report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["child_id"].as_str().unwrap().to_owned())
            .collect();
        let roster_overdue: BTreeSet<String> =
            report(&app, &token, "/api/v1/children?overdue=true").await["children"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect();
        assert_eq!(listed, roster_overdue, "{user}: the overdue children");

        // Each overdue line says what the child's page says.
        for row in overdue_report["rows"].as_array().unwrap() {
            let page = child_page(&app, &token, &row["child_id"]).await;
            assert_eq!(
                due_facts(&page),
                json!({
                    "interval_days": row["interval_days"],
                    "last_visit_on": row["last_visit_on"],
                    "state": "overdue",
                    "due": row["due_date"],
                    "days_overdue": row["days_overdue"],
                }),
                "{user}: {} on the report and on the child's page",
                page["name"]
            );
        }
        // The roster and the pages agree for every child, overdue or not.
        for child in &children {
            let page = child_page(&app, &token, &child["id"]).await;
            assert_eq!(due_facts(&page), due_facts(child), "{}", child["name"]);
        }

        // Coverage per village and town, counted from the roster.
        let coverage = report(&app, &token, "/api/v1/reports/coverage").await;
        let mut counted: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        for child in &children {
            let last: Option<NaiveDate> =
                child["last_visit_on"].as_str().map(|d| d.parse().unwrap());
            let interval = child["interval_days"].as_i64().unwrap();
            let visited = last.is_some_and(|d| (today - d).num_days() <= interval);
            let overdue = child["due"]["state"] == "overdue";
            assert!(
                !(visited && overdue),
                "{}: both visited and overdue",
                child["name"]
            );
            let line = [
                1,
                u64::from(visited),
                u64::from(overdue),
                u64::from(!visited && !overdue),
            ];
            for key in [&child["village_id"], &child["town_id"]] {
                let sum = counted.entry(key.as_str().unwrap().to_owned()).or_default();
                for (total, add) in sum.iter_mut().zip(line) {
                    *total += add;
                }
            }
        }
        for row in coverage["rows"].as_array().unwrap() {
            let key = if row["level"] == "village" {
                &row["village_id"]
            } else {
                &row["town_id"]
            };
            let want = counted
                .get(key.as_str().unwrap())
                .copied()
                .unwrap_or_default();
            let got = [
                &row["children"],
                &row["visited_within_interval"],
                &row["overdue"],
                &row["not_yet_due"],
            ]
            .map(|v| v.as_u64().unwrap());
            assert_eq!(
                got, want,
                "{user}: coverage of {} {}",
                row["level"], row["village_name"]
            );
        }

        // The dashboard shows the same.
        let dashboard = report(&app, &token, "/api/v1/reports/dashboard").await;
        assert_eq!(dashboard["overdue_children"], roster["overdue"]);
        assert_eq!(dashboard["tracked_children"], roster["total"]);
        assert_eq!(dashboard["coverage"], coverage["summary"]);
    }

    // And the figures are the ones worked out by hand above: town A has
    // C1 and C5 visited, C2, C3 and C4 overdue; town B's C7 is visited.
    let admin = app.token_for("admin").await;
    let overdue = report(&app, &admin, "/api/v1/reports/overdue").await;
    let listed: BTreeSet<String> = overdue["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["child_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([2, 3, 4].map(|n| reg.c[n].to_string()))
    );
    let c3 = overdue["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["child_id"] == json!(reg.c[3]))
        .unwrap();
    assert_eq!(
        c3["days_overdue"], 6,
        "own interval of 14 days, last visit 20 days ago"
    );
    let coverage = report(
        &app,
        &admin,
        &format!("/api/v1/reports/coverage?town_id={}", f.town_a),
    )
    .await;
    assert_eq!(coverage["summary"]["children"], 5);
    assert_eq!(coverage["summary"]["visited_within_interval"], 2);
    assert_eq!(coverage["summary"]["coverage"], 0.4);
}
