//! Reports and visit rules on a small hand-built register: every figure is
//! worked out by hand below and compared exactly, on both backends; scope
//! (a supervisor sees only their town, a director gets none); CSV and XLSX
//! exports parse back to the JSON figures.
//!
//! The register (report day 2026-03-31, period 2026-01-01 – 2026-03-31):
//!
//! | child | village | category | added | visits (CST) | on 03-31 |
//! |---|---|---|---|---|---|
//! | C1 | A1 | in_difficulty (30) | 2025-06-01 | 12-15 home, 02-01 01:30 phone, 03-20 home, 03-25 home (deleted) | last 03-20, due 04-19: visited |
//! | C2 | A1 | scattered_orphan (30) | 2025-06-01 | 01-10 phone, 02-10 home, 03-25 home (draft) | last 02-10, due 03-12: 19 days overdue |
//! | C3 | A1 | left_behind (90), own interval 14 | 2025-06-01 | 01-05 home | due 01-19: 71 days overdue |
//! | C4 | A2 | in_difficulty | 2026-03-20 | — | due 04-19: not yet due |
//! | C5 | A2 | in_difficulty | 2025-01-01 | — | due 2025-01-31: 424 days overdue |
//! | C6 | A1 | in_difficulty | 2025-06-01, exited 2026-02-15 (moved_away) | 01-15 school, 02-01 home | not tracked |
//! | C7 | B1 | in_difficulty | 2026-02-01 (data matching) | 03-01 home | due 03-31 (today): visited |

mod fixture;
mod reconcile;

use std::io::Cursor;

use calamine::{Data, Reader, Xlsx};
use reqwest::{Method, StatusCode};
use seedling_tests::{Fixture, TestApp, assert_error, on_both_backends};
use serde_json::{Value, json};

use fixture::Register;

on_both_backends!(
    overdue_children_and_days_overdue_match_the_hand_count,
    coverage_by_town_and_village_matches_the_hand_count,
    visits_by_month_count_every_visit_of_the_period_once,
    register_changes_list_the_added_and_exited_children_with_reasons,
    open_needs_count_open_items_by_needs_area,
    benefit_totals_follow_the_dated_standards,
    the_dashboard_agrees_with_the_reports,
    a_supervisor_sees_nothing_of_another_town,
    directors_get_no_reports,
    a_period_ending_before_it_starts_is_refused_as_documented,
    csv_and_xlsx_exports_parse_back_to_the_json_figures,
    district_visit_rules_change_the_overdue_list,
    a_per_child_interval_set_through_sync_reaches_the_reports,
    the_last_visits_read_in_two_steps_equal_the_whole_aggregate,
);

const PERIOD: &str = "from=2026-01-01&to=2026-03-31";

fn day(s: &str) -> chrono::NaiveDate {
    s.parse().expect("a date")
}

async fn report(app: &TestApp, token: &str, path: &str) -> Value {
    let (status, body) = app.call(Method::GET, path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

async fn overdue_children_and_days_overdue_match_the_hand_count(app: TestApp) {
    let reg = Register::load(&app).await;
    let token = app.token_for("supervisor-a").await;
    let body = report(&app, &token, &format!("/api/v1/reports/overdue?{PERIOD}")).await;
    assert_eq!(body["filters"]["area"], "town");
    assert_eq!(body["filters"]["area_name"], "甲镇");
    assert_eq!(body["filters"]["as_of"], "2026-03-31");
    // Tracked: C1–C5 (C6 exited). Overdue: C5, C3, C2; C5 never visited.
    assert_eq!(
        body["summary"],
        json!({"tracked_children": 5, "overdue_children": 3, "never_visited": 1})
    );
    let rows: Vec<Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!([
                r["child_id"],
                r["interval_days"],
                r["registered_on"],
                r["last_visit_on"],
                r["due_date"],
                r["days_overdue"],
                r["village_name"],
                r["town_name"]
            ])
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            // 2025-01-01 + 30 = 2025-01-31; to 2026-03-31: 365 + 28 + 31 = 424.
            json!([
                reg.c[5],
                30,
                "2025-01-01",
                null,
                "2025-01-31",
                424,
                "甲二村",
                "甲镇"
            ]),
            // Own interval 14 wins over left_behind's 90: 01-05 + 14 = 01-19; 12 + 28 + 31 = 71.
            json!([
                reg.c[3],
                14,
                "2025-06-01",
                "2026-01-05",
                "2026-01-19",
                71,
                "甲一村",
                "甲镇"
            ]),
            // The draft of 03-25 does not count: 02-10 + 30 = 03-12; 19 days.
            json!([
                reg.c[2],
                30,
                "2025-06-01",
                "2026-02-10",
                "2026-03-12",
                19,
                "甲一村",
                "甲镇"
            ]),
        ]
    );

    // A month earlier, on 2026-02-28: C6 exited on 02-15 and C4 is not on
    // the register yet, so C1, C2, C3 and C5 are tracked. C1's last visit
    // is 02-01 (due 03-03), C2's 02-10 (due 03-12); C3 is due since 01-19
    // (12 + 28 = 40 days), C5 since 2025-01-31 (365 + 28 = 393 days).
    let body = report(&app, &token, "/api/v1/reports/overdue?as_of=2026-02-28").await;
    assert_eq!(
        body["summary"],
        json!({"tracked_children": 4, "overdue_children": 2, "never_visited": 1})
    );
    let days: Vec<(Value, Value)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["child_id"].clone(), r["days_overdue"].clone()))
        .collect();
    assert_eq!(
        days,
        vec![(json!(reg.c[5]), json!(393)), (json!(reg.c[3]), json!(40))]
    );
}

async fn coverage_by_town_and_village_matches_the_hand_count(app: TestApp) {
    let reg = Register::load(&app).await;
    let line = |level: &str, children: u64, visited: u64, overdue: u64, nyd: u64, share: Value| {
        json!({"level": level, "children": children, "visited_within_interval": visited,
               "overdue": overdue, "not_yet_due": nyd, "coverage": share})
    };
    let pick = |row: &Value| {
        json!({"level": row["level"], "children": row["children"],
               "visited_within_interval": row["visited_within_interval"],
               "overdue": row["overdue"], "not_yet_due": row["not_yet_due"],
               "coverage": row["coverage"]})
    };

    let supervisor = app.token_for("supervisor-a").await;
    let body = report(
        &app,
        &supervisor,
        "/api/v1/reports/coverage?as_of=2026-03-31",
    )
    .await;
    // Town A: C1 visited; C2, C3, C5 overdue; C4 not yet due. 1 / 5.
    assert_eq!(
        pick(&body["summary"]),
        line("total", 5, 1, 3, 1, json!(0.2))
    );
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "town A and its two villages: {body}");
    assert_eq!(pick(&rows[0]), line("town", 5, 1, 3, 1, json!(0.2)));
    assert_eq!(rows[0]["town_id"], json!(reg.fixture.town_a));
    // A1: C1 visited, C2 and C3 overdue: 1 / 3.
    assert_eq!(pick(&rows[1]), line("village", 3, 1, 2, 0, json!(0.3333)));
    assert_eq!(rows[1]["village_id"], json!(reg.fixture.village_a1));
    // A2: C5 overdue, C4 not yet due: 0 / 2.
    assert_eq!(pick(&rows[2]), line("village", 2, 0, 1, 1, json!(0.0)));

    let admin = app.token_for("admin").await;
    let body = report(&app, &admin, "/api/v1/reports/coverage?as_of=2026-03-31").await;
    // Plus town B: C7 visited 03-01, due 03-31 = today, not overdue. 2 / 6.
    assert_eq!(
        pick(&body["summary"]),
        line("total", 6, 2, 3, 1, json!(0.3333))
    );
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5, "two towns and three villages: {body}");
    assert_eq!(rows[3]["town_id"], json!(reg.fixture.town_b));
    assert_eq!(pick(&rows[3]), line("town", 1, 1, 0, 0, json!(1.0)));
    assert_eq!(pick(&rows[4]), line("village", 1, 1, 0, 0, json!(1.0)));

    // Filtered to village A2 only.
    let body = report(
        &app,
        &admin,
        &format!(
            "/api/v1/reports/coverage?as_of=2026-03-31&village_id={}",
            reg.fixture.village_a2
        ),
    )
    .await;
    assert_eq!(
        pick(&body["summary"]),
        line("total", 2, 0, 1, 1, json!(0.0))
    );
    assert_eq!(body["rows"].as_array().unwrap().len(), 2);
}

async fn visits_by_month_count_every_visit_of_the_period_once(app: TestApp) {
    let reg = Register::load(&app).await;
    let month = |m: &str, home: i64, phone: i64, school: i64, total: i64| {
        json!({"month": m, "home_visit": home, "phone_follow_up": phone,
               "school_visit": school, "other": 0, "total": total})
    };
    let supervisor = app.token_for("supervisor-a").await;
    let body = report(
        &app,
        &supervisor,
        &format!("/api/v1/reports/visits-by-month?{PERIOD}"),
    )
    .await;
    // Jan: C3 home, C2 phone, C6 school. Feb: C1 phone (2026-01-31 17:30
    // UTC is 02-01 in China), C6 home, C2 home. Mar: C1 home, C2's draft
    // (home). Not counted: C1's 2025-12-15 visit (before the period) and
    // its deleted 03-25 visit.
    assert_eq!(
        body["rows"],
        json!([
            month("2026-01", 1, 1, 1, 3),
            month("2026-02", 2, 1, 0, 3),
            month("2026-03", 2, 0, 0, 2),
        ])
    );
    assert_eq!(
        body["summary"],
        json!({"total": 8, "by_kind": {"home_visit": 5, "phone_follow_up": 2, "school_visit": 1, "other": 0}})
    );

    // The same figures from the table itself, filtered as the visit log
    // filters (the child's current village, the day in China time): the
    // report reconciles with the log.
    assert_eq!(
        reg.visits_in(
            &[reg.fixture.village_a1, reg.fixture.village_a2],
            "2026-01-01",
            "2026-03-31",
            None
        )
        .await,
        8
    );
    assert_eq!(
        reg.visits_in(
            &[reg.fixture.village_a1, reg.fixture.village_a2],
            "2026-01-01",
            "2026-03-31",
            Some("home_visit")
        )
        .await,
        5
    );

    let admin = app.token_for("admin").await;
    let body = report(
        &app,
        &admin,
        &format!("/api/v1/reports/visits-by-month?{PERIOD}"),
    )
    .await;
    assert_eq!(body["summary"]["total"], 9, "plus C7's visit in town B");
    assert_eq!(body["rows"][2], month("2026-03", 3, 0, 0, 3));

    let body = report(
        &app,
        &admin,
        &format!(
            "/api/v1/reports/visits-by-month?{PERIOD}&village_id={}",
            reg.fixture.village_a2
        ),
    )
    .await;
    assert_eq!(body["summary"]["total"], 0);
    assert_eq!(
        body["rows"].as_array().unwrap().len(),
        3,
        "every month has a line"
    );

    // One month only: February.
    let body = report(
        &app,
        &admin,
        &format!(
            "/api/v1/reports/visits-by-month?from=2026-02-01&to=2026-02-28&town_id={}",
            reg.fixture.town_a
        ),
    )
    .await;
    assert_eq!(body["rows"], json!([month("2026-02", 2, 1, 0, 3)]));
}

async fn register_changes_list_the_added_and_exited_children_with_reasons(app: TestApp) {
    let reg = Register::load(&app).await;
    let supervisor = app.token_for("supervisor-a").await;
    let body = report(
        &app,
        &supervisor,
        &format!("/api/v1/reports/register-changes?{PERIOD}"),
    )
    .await;
    assert_eq!(
        body["summary"],
        json!({"added": 1, "exited": 1, "added_by_source": {"district": 1},
               "exited_by_reason": {"moved_away": 1}})
    );
    let rows: Vec<Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!([
                r["effective_date"],
                r["kind"],
                r["child_id"],
                r["source"],
                r["reason"]
            ])
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            json!(["2026-02-15", "exited", reg.c[6], "district", "moved_away"]),
            json!(["2026-03-20", "added", reg.c[4], "district", null]),
        ]
    );

    let admin = app.token_for("admin").await;
    let body = report(
        &app,
        &admin,
        &format!("/api/v1/reports/register-changes?{PERIOD}"),
    )
    .await;
    assert_eq!(
        body["summary"],
        json!({"added": 2, "exited": 1, "added_by_source": {"data_matching": 1, "district": 1},
               "exited_by_reason": {"moved_away": 1}})
    );
    assert_eq!(body["rows"][0]["child_id"], json!(reg.c[7]));
    assert_eq!(body["rows"][0]["effective_date"], "2026-02-01");

    // The whole of 2025: the six children of town A added on 2025-01-01
    // and 2025-06-01 (C7 is in town B).
    let body = report(
        &app,
        &supervisor,
        "/api/v1/reports/register-changes?from=2025-01-01&to=2025-12-31",
    )
    .await;
    assert_eq!(body["summary"]["added"], 5);
    assert_eq!(body["summary"]["exited"], 0);
}

async fn open_needs_count_open_items_by_needs_area(app: TestApp) {
    let reg = Register::load(&app).await;
    let supervisor = app.token_for("supervisor-a").await;
    let body = report(
        &app,
        &supervisor,
        "/api/v1/reports/open-needs?as_of=2026-03-31",
    )
    .await;
    // I1 (A1 living, open, due 03-01: past due), I2 (A1 study, in
    // progress, due 04-30), I4 (A2 psychology, open). Not counted: I3
    // (done), I5 (deleted), I6 (town B).
    assert_eq!(body["period_applied"], false);
    assert_eq!(
        body["summary"],
        json!({"open": 2, "in_progress": 1, "past_due": 1,
               "by_needs_area": {"living": 1, "psychology": 1, "study": 1}})
    );
    let rows: Vec<Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!([
                r["village_id"],
                r["needs_area"],
                r["open"],
                r["in_progress"],
                r["past_due"]
            ])
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            json!([reg.fixture.village_a1, "living", 1, 0, 1]),
            json!([reg.fixture.village_a1, "study", 0, 1, 0]),
            json!([reg.fixture.village_a2, "psychology", 1, 0, 0]),
        ]
    );

    // Only items created from February on: I2 (02-20) and I4 (03-05).
    let body = report(
        &app,
        &supervisor,
        "/api/v1/reports/open-needs?from=2026-02-01&to=2026-03-31",
    )
    .await;
    assert_eq!(body["period_applied"], true);
    assert_eq!(
        body["summary"],
        json!({"open": 1, "in_progress": 1, "past_due": 0,
               "by_needs_area": {"psychology": 1, "study": 1}})
    );
}

async fn benefit_totals_follow_the_dated_standards(app: TestApp) {
    Register::load(&app).await;
    let supervisor = app.token_for("supervisor-a").await;
    let body = report(
        &app,
        &supervisor,
        &format!("/api/v1/reports/benefits?{PERIOD}"),
    )
    .await;
    // in_difficulty: 2686 until 2026-01-31, 2843 from 02-01; scattered
    // orphans 2843; left-behind children have no standard.
    // Jan: C1, C5, C6 × 2686 = 8058; C2 2843.              → 10901
    // Feb: C1, C5, C6 (exits 02-15, paid for Feb) × 2843 = 8529; C2 2843. → 11372
    // Mar: C1, C5 × 2843 = 5686 (C4 added 03-20: from April); C2 2843.    → 8529
    let rows: Vec<Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            json!([
                r["month"],
                r["category"],
                r["children"],
                r["standard_cny"],
                r["total_cny"]
            ])
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            json!(["2026-01", "scattered_orphan", 1, 2843, 2843]),
            json!(["2026-01", "in_difficulty", 3, 2686, 8058]),
            json!(["2026-02", "scattered_orphan", 1, 2843, 2843]),
            json!(["2026-02", "in_difficulty", 3, 2843, 8529]),
            json!(["2026-03", "scattered_orphan", 1, 2843, 2843]),
            json!(["2026-03", "in_difficulty", 2, 2843, 5686]),
        ]
    );
    assert_eq!(
        body["summary"],
        json!({"total_cny": 30802,
               "by_month": {"2026-01": 10901, "2026-02": 11372, "2026-03": 8529}})
    );

    // The district adds C7 (added 2026-02-01: paid from March).
    let admin = app.token_for("admin").await;
    let body = report(&app, &admin, &format!("/api/v1/reports/benefits?{PERIOD}")).await;
    assert_eq!(
        body["summary"],
        json!({"total_cny": 33645,
               "by_month": {"2026-01": 10901, "2026-02": 11372, "2026-03": 11372}})
    );
}

async fn the_dashboard_agrees_with_the_reports(app: TestApp) {
    Register::load(&app).await;
    let admin = app.token_for("admin").await;
    let dashboard = report(&app, &admin, &format!("/api/v1/reports/dashboard?{PERIOD}")).await;
    let overdue = report(&app, &admin, &format!("/api/v1/reports/overdue?{PERIOD}")).await;
    let coverage = report(&app, &admin, &format!("/api/v1/reports/coverage?{PERIOD}")).await;
    let visits = report(
        &app,
        &admin,
        &format!("/api/v1/reports/visits-by-month?{PERIOD}"),
    )
    .await;
    assert_eq!(
        dashboard["overdue_children"],
        overdue["summary"]["overdue_children"]
    );
    assert_eq!(dashboard["overdue_children"], 3);
    assert_eq!(dashboard["tracked_children"], 6);
    assert_eq!(dashboard["coverage"], coverage["summary"]);
    let towns: Vec<&Value> = coverage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["level"] == "town")
        .collect();
    assert_eq!(dashboard["coverage_by_town"].as_array().unwrap().len(), 2);
    assert_eq!(dashboard["coverage_by_town"][0], *towns[0]);
    assert_eq!(dashboard["coverage_by_town"][1], *towns[1]);
    assert_eq!(dashboard["visits_by_month"], visits["rows"]);
}

async fn a_supervisor_sees_nothing_of_another_town(app: TestApp) {
    let reg = Register::load(&app).await;
    let other = app.token_for("supervisor-b").await;
    for path in [
        "overdue",
        "coverage",
        "visits-by-month",
        "register-changes",
        "open-needs",
        "benefits",
        "dashboard",
    ] {
        let body = report(&app, &other, &format!("/api/v1/reports/{path}?{PERIOD}")).await;
        let text = body.to_string();
        for id in [
            reg.fixture.town_a,
            reg.fixture.village_a1,
            reg.fixture.village_a2,
        ]
        .into_iter()
        .chain(reg.c[1..=6].iter().copied())
        {
            assert!(
                !text.contains(&id.to_string()),
                "{path} leaked {id}: {body}"
            );
        }
        assert!(!text.contains("甲"), "{path} leaked a town-A name: {body}");
        assert_eq!(body["filters"]["area_id"], json!(reg.fixture.town_b));
    }
    // Town B's own figures: C7 only.
    let body = report(
        &app,
        &other,
        &format!("/api/v1/reports/visits-by-month?{PERIOD}"),
    )
    .await;
    assert_eq!(body["summary"]["total"], 1);
    let body = report(&app, &other, "/api/v1/reports/coverage?as_of=2026-03-31").await;
    assert_eq!(body["summary"]["children"], 1);

    // Asking for town A or one of its villages is refused.
    for filter in [
        format!("town_id={}", reg.fixture.town_a),
        format!("village_id={}", reg.fixture.village_a1),
    ] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/reports/overdue?{filter}"),
                Some(&other),
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    // A village that is not in the given town, and a town id given as a
    // village, are refused as invalid.
    let admin = app.token_for("admin").await;
    let (status, body) = app
        .call(
            Method::GET,
            &format!(
                "/api/v1/reports/coverage?town_id={}&village_id={}",
                reg.fixture.town_b, reg.fixture.village_a1
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/api/v1/reports/coverage?village_id={}", reg.fixture.town_a),
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/reports/visits-by-month?from=2026-03-01&to=2026-01-01",
            Some(&admin),
            None,
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

async fn directors_get_no_reports(app: TestApp) {
    Register::load(&app).await;
    let director = app.token_for("director-a1").await;
    for path in [
        "overdue",
        "coverage",
        "visits-by-month",
        "register-changes",
        "open-needs",
        "benefits",
        "dashboard",
    ] {
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/api/v1/reports/{path}"),
                Some(&director),
                None,
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    }
    let (status, body) = app
        .call(Method::GET, "/api/v1/reports/overdue", None, None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "missing_token");
    // Directors do read the visit rules: their phones compute due dates.
    let (status, rules) = app
        .call(Method::GET, "/api/v1/visit-rules", Some(&director), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{rules}");
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/visit-rules/left_behind",
            Some(&director),
            Some(json!({"interval_days": 30})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

/// Found by schemathesis: `GET /reports/dashboard?from=7635-10-06` (a
/// period starting after today, its default end) answered a 422 the
/// document did not list. Every report route refuses such a period with the
/// same envelope, and documents the answer.
async fn a_period_ending_before_it_starts_is_refused_as_documented(app: TestApp) {
    Register::load(&app).await;
    let admin = app.token_for("admin").await;
    let (status, doc) = app.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "overdue",
        "coverage",
        "visits-by-month",
        "register-changes",
        "open-needs",
        "benefits",
        "dashboard",
    ] {
        let route = format!("/api/v1/reports/{path}");
        let operation = &doc["paths"][&route]["get"];
        for code in ["400", "422"] {
            assert!(
                operation["responses"].get(code).is_some(),
                "GET {route} does not document {code}"
            );
        }
        for query in ["from=7635-10-06", "from=2026-03-31&to=2026-01-01"] {
            let (status, body) = app
                .call(Method::GET, &format!("{route}?{query}"), Some(&admin), None)
                .await;
            assert_error(
                status,
                &body,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("after it ends")),
                "{route}?{query}: {body}"
            );
        }
    }
}

async fn download(
    app: &TestApp,
    token: &str,
    path: &str,
    accept: Option<&str>,
) -> (String, String, Vec<u8>) {
    let mut request = app.http.get(app.url(path)).bearer_auth(token);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    (
        content_type,
        disposition,
        response.bytes().await.unwrap().to_vec(),
    )
}

fn csv_rows(bytes: &[u8]) -> Vec<Vec<String>> {
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "CSV for Excel starts with a BOM"
    );
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[3..]);
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn xlsx_rows(bytes: Vec<u8>, sheet: &str) -> Vec<Vec<Data>> {
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).expect("an XLSX workbook");
    assert_eq!(workbook.sheet_names(), vec![sheet.to_owned()]);
    let range = workbook.worksheet_range(sheet).expect("the sheet");
    range.rows().map(<[Data]>::to_vec).collect()
}

async fn csv_and_xlsx_exports_parse_back_to_the_json_figures(app: TestApp) {
    Register::load(&app).await;
    let token = app.token_for("supervisor-a").await;

    let (content_type, disposition, bytes) = download(
        &app,
        &token,
        &format!("/api/v1/reports/overdue?{PERIOD}&format=csv"),
        None,
    )
    .await;
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert_eq!(
        disposition,
        "attachment; filename=\"overdue-2026-01-01-2026-03-31.csv\""
    );
    let rows = csv_rows(&bytes);
    assert_eq!(rows[0][0], "镇（街道）");
    assert_eq!(rows[0][8], "逾期天数");
    assert_eq!(rows.len(), 4, "a header and the three overdue children");
    let days: Vec<&str> = rows[1..].iter().map(|r| r[8].as_str()).collect();
    assert_eq!(days, ["424", "71", "19"]);
    assert_eq!(rows[1][3], "困境儿童");
    assert_eq!(rows[1][6], "", "never visited");
    assert_eq!(rows[2][6], "2026-01-05");

    // Chosen by the Accept header.
    let (content_type, _, bytes) = download(
        &app,
        &token,
        &format!("/api/v1/reports/visits-by-month?{PERIOD}"),
        Some("text/csv"),
    )
    .await;
    assert!(content_type.starts_with("text/csv"));
    let rows = csv_rows(&bytes);
    assert_eq!(
        rows[0],
        ["月份", "入户走访", "电话回访", "学校走访", "其他", "合计"]
    );
    assert_eq!(rows[1], ["2026-01", "1", "1", "1", "0", "3"]);
    assert_eq!(rows[3], ["2026-03", "2", "0", "0", "0", "2"]);

    let (content_type, disposition, bytes) = download(
        &app,
        &token,
        "/api/v1/reports/coverage?as_of=2026-03-31&format=xlsx",
        None,
    )
    .await;
    assert_eq!(
        content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert!(disposition.ends_with(".xlsx\""), "{disposition}");
    let rows = xlsx_rows(bytes, "走访覆盖率");
    assert_eq!(rows[0][0], Data::String("层级".into()));
    assert_eq!(rows.len(), 5, "header, town A, two villages, total");
    assert_eq!(rows[1][0], Data::String("镇（街道）".into()));
    assert_eq!(rows[1][3], Data::Float(5.0));
    assert_eq!(rows[1][7], Data::Float(0.2));
    assert_eq!(rows[4][0], Data::String("合计".into()));
    assert_eq!(rows[4][4], Data::Float(1.0));

    let (_, _, bytes) = download(
        &app,
        &token,
        &format!("/api/v1/reports/register-changes?{PERIOD}"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    )
    .await;
    let rows = xlsx_rows(bytes, "纳入与退出");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][1], Data::String("退出保障".into()));
    assert_eq!(rows[1][7], Data::String("迁出".into()));
    // A real date: Excel's serial day number (days since 1899-12-30).
    let serial = (day("2026-02-15") - day("1899-12-30")).num_days() as f64;
    assert!(
        matches!(&rows[1][0], Data::DateTime(d) if d.as_f64() == serial),
        "a date cell: {:?}",
        rows[1][0]
    );

    for (path, sheet, lines) in [
        ("open-needs", "需求台账", 4),
        ("benefits", "保障金", 7),
        ("overdue", "逾期未走访", 4),
        ("visits-by-month", "走访统计", 4),
    ] {
        let (_, _, bytes) = download(
            &app,
            &token,
            &format!("/api/v1/reports/{path}?{PERIOD}&format=xlsx"),
            None,
        )
        .await;
        assert_eq!(xlsx_rows(bytes, sheet).len(), lines, "{path}");
    }

    let (status, body) = app
        .call(
            Method::GET,
            "/api/v1/reports/overdue?format=pdf",
            Some(&token),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "unsupported_format");
}

async fn district_visit_rules_change_the_overdue_list(app: TestApp) {
    let reg = Register::load(&app).await;
    let admin = app.token_for("admin").await;
    let director = app.token_for("director-a1").await;

    // The assumed defaults, as every role reads them.
    let rules = report(&app, &director, "/api/v1/visit-rules").await;
    assert_eq!(rules["district_id"], json!(reg.fixture.district));
    let intervals: sync_core::semantic::VisitIntervals =
        serde_json::from_value(rules["intervals"].clone()).expect("sync-core's VisitIntervals");
    assert_eq!(intervals, sync_core::semantic::VisitIntervals::default());
    assert!(
        rules["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["source"] == "default")
    );

    // Scattered orphans every 60 days: C2 (last visit 02-10) is due 04-11
    // and leaves the overdue list.
    let (status, changed) = app
        .call(
            Method::PUT,
            "/api/v1/visit-rules/scattered_orphan",
            Some(&admin),
            Some(json!({"interval_days": 60})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["intervals"]["by_category"]["scattered_orphan"], 60);
    let line = changed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "scattered_orphan")
        .unwrap()
        .clone();
    assert_eq!(line["source"], "district");
    assert_eq!(line["default_days"], 30);
    assert_eq!(line["updated_by"], json!(reg.fixture.user_id("admin")));

    let body = report(&app, &admin, "/api/v1/reports/overdue?as_of=2026-03-31").await;
    let overdue: Vec<Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["child_id"].clone())
        .collect();
    assert_eq!(overdue, vec![json!(reg.c[5]), json!(reg.c[3])]);

    // The phone computes the same due date from what it reads.
    let phone_rules: sync_core::semantic::VisitIntervals = serde_json::from_value(
        report(&app, &director, "/api/v1/visit-rules").await["intervals"].clone(),
    )
    .unwrap();
    let c2 = sync_core::semantic::DueInput {
        category: "scattered_orphan".into(),
        active: true,
        interval_override_days: None,
        registered_on: "2025-06-01".parse().unwrap(),
        last_visit_on: Some("2026-02-10".parse().unwrap()),
    };
    assert_eq!(
        sync_core::semantic::due_date(&c2, &phone_rules),
        "2026-04-11".parse().unwrap()
    );

    // Refused: a supervisor, an unknown category, an interval out of range.
    let supervisor = app.token_for("supervisor-a").await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/visit-rules/migrant",
            Some(&supervisor),
            Some(json!({"interval_days": 30})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/visit-rules/teenager",
            Some(&admin),
            Some(json!({"interval_days": 30})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/visit-rules/migrant",
            Some(&admin),
            Some(json!({"interval_days": 0})),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );

    // Back to the default: C2 is overdue again.
    let (status, reset) = app
        .call(
            Method::DELETE,
            "/api/v1/visit-rules/scattered_orphan",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reset}");
    assert_eq!(reset["intervals"]["by_category"]["scattered_orphan"], 30);
    let body = report(&app, &admin, "/api/v1/reports/overdue?as_of=2026-03-31").await;
    assert_eq!(body["summary"]["overdue_children"], 3);
}

async fn a_per_child_interval_set_through_sync_reaches_the_reports(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = seedling_tests::Device::sign_in(&app, "admin").await;
    let child = admin
        .create_child(&app, fixture.village_a1, "同步儿童")
        .await;
    let mut director = seedling_tests::Device::sign_in(&app, "director-a1").await;
    director.pull_all(&app).await;
    // A visit today: nobody is overdue.
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).date_naive();
    let (_, visit) = director.new_visit(
        child,
        fixture.village_a1,
        &format!("{today}T09:00:00+08:00"),
    );
    let visit = visit.build();
    director.push(&app, &[visit]).await;

    let token = app.token_for("supervisor-a").await;
    let in_20_days = today + chrono::Duration::days(20);
    let path = format!("/api/v1/reports/overdue?as_of={in_20_days}");
    let body = report(&app, &token, &path).await;
    assert_eq!(
        body["summary"]["overdue_children"], 0,
        "due in 30 days: {body}"
    );

    // The supervisor sets the child's own interval to 14 days through sync.
    let mut supervisor = seedling_tests::Device::sign_in(&app, "supervisor-a").await;
    supervisor.pull_all(&app).await;
    let change = supervisor
        .update(sync_core::record::Entity::Child, child)
        .set("visit_interval_days", json!(14))
        .build();
    supervisor.push(&app, &[change]).await;

    let body = report(&app, &token, &path).await;
    assert_eq!(body["summary"]["overdue_children"], 1, "{body}");
    assert_eq!(body["rows"][0]["interval_days"], 14);
    assert_eq!(body["rows"][0]["days_overdue"], 6);
    // And the director's phone has the override at its next pull.
    director.pull_all(&app).await;
    assert_eq!(
        director
            .get(sync_core::record::Entity::Child, child)
            .and_then(|c| c.get("visit_interval_days")),
        Some(json!(14))
    );
    // The visits-by-month report counts the synced visit.
    let body = report(
        &app,
        &token,
        &format!("/api/v1/reports/visits-by-month?from={today}&to={today}"),
    )
    .await;
    assert_eq!(body["summary"]["total"], 1);
}

/// A large report reads the children's last visits in two steps (the
/// recent window, then the rest child by child); whatever the window, the
/// answer must be the whole aggregate's.
async fn the_last_visits_read_in_two_steps_equal_the_whole_aggregate(app: TestApp) {
    use seedling_server::repo::reports::{Area, last_visits, last_visits_since};
    let reg = Register::load(&app).await;
    let db = app.db();
    let cst = |d: &str| {
        chrono::DateTime::parse_from_rfc3339(&format!("{d}T00:00:00+08:00"))
            .expect("a day")
            .with_timezone(&chrono::Utc)
    };
    let before = cst("2026-04-01");
    for area in [
        Area::All,
        Area::District(reg.fixture.district),
        Area::Town(reg.fixture.town_a),
    ] {
        let whole = last_visits(db, area, before).await.expect("last visits");
        // The deleted visit of C1 and the draft of C2 do not count; C4 and
        // C5 were never visited.
        let when = |n: usize| whole.get(&reg.c[n]).map(|at| at.to_rfc3339());
        assert_eq!(when(1).as_deref(), Some("2026-03-20T02:00:00+00:00"));
        assert_eq!(when(2).as_deref(), Some("2026-02-10T01:00:00+00:00"));
        assert_eq!(when(3).as_deref(), Some("2026-01-05T03:00:00+00:00"));
        assert!(when(4).is_none() && when(5).is_none());
        let mut window_missed_some = false;
        let mut since = cst("2025-11-01");
        while since <= before {
            let window_only = last_visits_since(db, area, &[], since, before)
                .await
                .expect("window");
            window_missed_some |= window_only.len() < whole.len();
            // The children of the area: C7 lives in town B.
            let ids = match area {
                Area::Town(_) => &reg.c[1..7],
                _ => &reg.c[1..],
            };
            let two_steps = last_visits_since(db, area, ids, since, before)
                .await
                .expect("two steps");
            assert_eq!(two_steps, whole, "{area:?}, window from {since}");
            since += chrono::Duration::days(6);
        }
        assert!(
            window_missed_some,
            "{area:?}: some window must leave children to the second step"
        );
    }
}
