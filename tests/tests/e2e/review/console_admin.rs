//! The district's own work in the console, in a real headless Chromium: the
//! register changed from a child's page and the roster (through the same
//! sync push as every writer, so the villages' phones follow), the reports
//! with their charts and their CSV and Excel downloads, and the accounts
//! and phones pages. Uses the Driver helpers of `browser.rs`.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::Duration;

use calamine::{Data, Reader, Xlsx};
use fantoccini::{Client, Locator};
use reqwest::{Method, StatusCode};
use seedling_tests::{Device, Fixture, TestApp, fixture::PASSWORD, on_both_backends};
use serde_json::{Value, json};
use sync_core::record::Entity;
use uuid::Uuid;

use super::browser::{Driver, click, element, open, shows, sign_in, snap};
use super::{day_at, visit};

on_both_backends!(
    a_child_transferred_in_the_console_reaches_both_villages_phones,
    reports_download_from_their_buttons_as_files_that_open,
    an_admin_moves_a_director_resets_a_password_disables_an_account_and_reports_a_phone_lost,
);

/// The vendored ECharts comes from the binary, cached for a year, at the
/// version the console asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echarts_is_served_by_seedling_with_a_year_long_cache() {
    let app = TestApp::new(seedling_tests::Backend::Sqlite).await;
    let response = app
        .http
        .get(app.url("/console/echarts.min.js?v=5.6.0"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(header("content-type").contains("javascript"));
    let cache = header("cache-control");
    assert!(
        cache.contains("max-age=31536000") && cache.contains("immutable"),
        "{cache}"
    );
    let body = response.text().await.expect("the library");
    assert!(
        body.contains("Apache Software Foundation"),
        "its licence header"
    );
    assert!(body.contains("\"5.6.0\""), "ECharts 5.6.0");
    let console = app
        .http
        .get(app.url("/console/app.js"))
        .send()
        .await
        .expect("an answer")
        .text()
        .await
        .expect("the console");
    assert!(
        console.contains("const ECHARTS_VERSION = \"5.6.0\";"),
        "the console asks for the vendored version"
    );
}

/// axe-core (tests/vendor/axe-core), injected into the page under test.
const AXE: &str = include_str!("../../../vendor/axe-core/axe.min.js");

/// Runs axe-core on the page as it is and fails on any serious or
/// critical violation (WCAG 2 A and AA rules).
async fn assert_accessible(browser: &Client, page: &str) {
    let loaded = browser
        .execute(&format!("{AXE}\nreturn typeof axe;"), vec![])
        .await
        .expect("inject axe-core");
    assert_eq!(loaded, json!("object"), "axe-core loaded");
    let violations = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
               .then((r) => done(r.violations
                 .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                 .map((v) => v.id + ': ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '))))
               .catch((e) => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("run axe-core");
    assert_eq!(
        violations,
        json!([]),
        "serious accessibility violations on {page}"
    );
}

/// Types `text` into the village picker `id`'s search box and waits until
/// the picker has chosen `village`.
async fn pick_village(browser: &Client, id: &str, text: &str, village: Uuid) {
    element(browser, &format!("#{id}-search"))
        .await
        .send_keys(text)
        .await
        .expect("type into the village search");
    for _ in 0..100 {
        let chosen = element(browser, &format!("#{id}"))
            .await
            .prop("value")
            .await
            .expect("the picker's value");
        if chosen.as_deref() == Some(village.to_string().as_str()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the picker #{id} never chose {village} after typing {text}");
}

/// Waits for a new file ending in `suffix` in `dir` and answers its bytes.
async fn downloaded(dir: &Path, suffix: &str) -> (PathBuf, Vec<u8>) {
    for _ in 0..300 {
        let found = std::fs::read_dir(dir)
            .expect("the download folder")
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| path.to_string_lossy().ends_with(suffix));
        if let Some(path) = found {
            // Chromium writes `.crdownload` first and renames at the end.
            let bytes = std::fs::read(&path).expect("read the download");
            return (path, bytes);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no *{suffix} was downloaded into {}", dir.display());
}

async fn a_child_transferred_in_the_console_reaches_both_villages_phones(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let mut a2 = Device::sign_in(&app, "director-a2").await;
    a1.pull_all(&app).await;
    a2.pull_all(&app).await;
    assert!(a1.get(Entity::Child, child).is_some(), "A1's phone has her");
    assert!(a2.get(Entity::Child, child).is_none(), "A2's phone has not");

    let driver = Driver::start().await;
    let browser = driver.browser_sized(1366, 768).await;
    sign_in(&browser, &app, "admin").await;

    // Category first: 困境儿童 → 留守儿童.
    open(&browser, &app, &format!("#/child/{child}")).await;
    shows(&browser, "main h1", "张小花").await;
    element(&browser, "#r-category")
        .await
        .select_by_value("left_behind")
        .await
        .expect("choose the category");
    click(&browser, "#do-category").await;
    shows(&browser, "#register-events", "类别变更").await;
    shows(&browser, "#register-events", "留守儿童").await;

    // Then the transfer to 甲二村, found by typing in the picker.
    pick_village(&browser, "r-village", "甲二", fixture.village_a2).await;
    let picked = element(&browser, "#r-village option:checked")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(picked, "甲二村（甲镇）", "villages read 村名（镇名）");
    click(&browser, "#do-transfer").await;
    shows(&browser, "#child-village", "甲二村（甲镇）").await;
    shows(&browser, "tr[data-event=transferred]", "甲一村（甲镇）").await;
    shows(&browser, "tr[data-event=transferred]", "甲二村（甲镇）").await;
    snap(&browser, "child-register").await;
    browser
        .execute(
            "document.querySelector('#register-events-h').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    snap(&browser, "child-register-events").await;
    assert_accessible(&browser, "a child's page with the register forms").await;

    // The old village's phone is told to purge her, the new one receives
    // her whole, in her new category.
    a1.pull_all(&app).await;
    assert!(
        a1.get(Entity::Child, child).is_none(),
        "A1's phone purged the transferred child"
    );
    a2.pull_all(&app).await;
    let arrived = a2
        .get(Entity::Child, child)
        .expect("A2's phone received the child");
    assert_eq!(
        arrived.get_str("village_id"),
        Some(fixture.village_a2.to_string().as_str())
    );
    assert_eq!(arrived.get_str("category"), Some("left_behind"));
    assert_eq!(arrived.get_str("name"), Some("张小花"));

    // Exit with a reason and an effective date.
    element(&browser, "#r-exit-reason")
        .await
        .select_by_value("moved_away")
        .await
        .unwrap();
    let exit_date = super::china_day(1).to_string();
    let date = element(&browser, "#r-exit-date").await;
    browser
        .execute(
            "arguments[0].value = arguments[1];",
            vec![
                serde_json::to_value(&date).unwrap(),
                json!(exit_date.clone()),
            ],
        )
        .await
        .unwrap();
    click(&browser, "#do-exit").await;
    shows(&browser, "tr[data-event=exited]", &exit_date).await;
    shows(&browser, "tr[data-event=exited]", "迁出").await;
    shows(&browser, "#child-state", "已退出保障").await;
    a2.pull_all(&app).await;
    assert!(
        a2.get(Entity::Child, child).is_none(),
        "the exited child is purged from the village's phone"
    );
    // The server holds the same, written as the admin's push.
    let token = app.token_for("admin").await;
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/api/v1/children/{child}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["status"], "exited");
    assert_eq!(page["exit_reason"], "moved_away");
    assert_eq!(page["exit_date"], exit_date);
    let kinds: Vec<&str> = page["register_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for kind in ["added", "category_changed", "transferred", "exited"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // A new child from the roster: a bad form is refused in Chinese and
    // keeps what was typed; a complete one reaches village B1's phone.
    open(&browser, &app, "#/children?add=1").await;
    element(&browser, "#n-name")
        .await
        .send_keys("赵小雨")
        .await
        .unwrap();
    // The date input is required in the page; leave it empty and bypass the
    // browser's own check to see the console's.
    browser
        .execute(
            "document.querySelector('#add-child-form').noValidate = true;",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "#do-add-child").await;
    shows(&browser, "#add-child-error", "请填写必填项").await;
    shows(&browser, "#add-child-error", "出生日期").await;
    let kept = element(&browser, "#n-name")
        .await
        .prop("value")
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("赵小雨"), "the typed name is kept");
    let birth = element(&browser, "#n-birth").await;
    browser
        .execute(
            "arguments[0].value = '2016-05-04';",
            vec![serde_json::to_value(&birth).unwrap()],
        )
        .await
        .unwrap();
    element(&browser, "#n-category")
        .await
        .select_by_value("migrant")
        .await
        .unwrap();
    pick_village(&browser, "n-village", "乙一", fixture.village_b1).await;
    snap(&browser, "children-add").await;
    assert_accessible(&browser, "the roster with the new-child form").await;
    click(&browser, "#do-add-child").await;
    shows(&browser, "main h1", "赵小雨").await;
    shows(&browser, "tr[data-event=added]", "纳入保障").await;
    let new_child: Uuid = browser
        .current_url()
        .await
        .unwrap()
        .fragment()
        .and_then(|f| f.strip_prefix("/child/"))
        .and_then(|id| id.parse().ok())
        .expect("the new child's page");
    let mut b1 = Device::sign_in(&app, "director-b1").await;
    b1.pull_all(&app).await;
    let record = b1
        .get(Entity::Child, new_child)
        .expect("B1's phone received the new child");
    assert_eq!(record.get_str("category"), Some("migrant"));
    assert_eq!(record.get_str("birth_date"), Some("2016-05-04"));

    // At phone width the register forms fit without sideways scrolling.
    let phone = driver.browser_sized(390, 844).await;
    sign_in(&phone, &app, "admin").await;
    open(&phone, &app, &format!("#/child/{new_child}")).await;
    element(&phone, "#register-panel").await;
    assert_no_sideways_scroll(&phone).await;
    snap(&phone, "phone-child-register").await;
    browser.close().await.unwrap();
    phone.close().await.unwrap();
}

async fn assert_no_sideways_scroll(browser: &Client) {
    let (scroll, client) = (
        browser
            .execute("return document.documentElement.scrollWidth;", vec![])
            .await
            .unwrap(),
        browser
            .execute("return document.documentElement.clientWidth;", vec![])
            .await
            .unwrap(),
    );
    assert!(
        scroll.as_u64() <= client.as_u64(),
        "the page scrolls sideways: {scroll} > {client}"
    );
}

async fn reports_download_from_their_buttons_as_files_that_open(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let seen = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let overdue = admin.create_child(&app, fixture.village_a2, "王芳").await;
    let mut a1 = Device::sign_in(&app, "director-a1").await;
    let mut a2 = Device::sign_in(&app, "director-a2").await;
    visit(&app, &mut a1, seen, fixture.village_a1, &day_at(2, 10), &[]).await;
    visit(
        &app,
        &mut a2,
        overdue,
        fixture.village_a2,
        &day_at(40, 9),
        &[],
    )
    .await;

    let downloads = tempfile::tempdir().expect("a download folder");
    let driver = Driver::start().await;
    let browser = driver
        .browser_downloading(1366, 768, downloads.path())
        .await;
    sign_in(&browser, &app, "supervisor-a").await;
    element(&browser, "#visits-per-month").await;
    assert_accessible(&browser, "the dashboard").await;
    for (route, heading) in [
        ("#/visits", "走访记录"),
        ("#/conflicts", "冲突队列"),
        ("#/overdue", "逾期名单"),
        ("#/children", "儿童名册"),
    ] {
        click(&browser, &format!("nav a[href='{route}']")).await;
        shows(&browser, "main h1", heading).await;
        element(&browser, "main form, main table, main p").await;
        assert_accessible(&browser, route).await;
    }
    // Any Content-Security-Policy violation while the reports load and draw.
    browser
        .execute(
            "window.cspViolations = [];
             document.addEventListener('securitypolicyviolation',
               (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "nav a[href='#/reports']").await;
    shows(&browser, "main h1", "统计报表").await;
    // ECharts, served by Seedling, draws under the console's CSP.
    element(&browser, "#report-coverage .chart canvas").await;
    element(&browser, "#report-visits-by-month .chart canvas").await;
    let violations = browser
        .execute("return window.cspViolations;", vec![])
        .await
        .unwrap();
    assert_eq!(
        violations,
        json!([]),
        "ECharts runs under the console's CSP"
    );
    // Coverage per town and per village.
    shows(
        &browser,
        &format!(
            "#report-coverage tr[data-unit='{}'] [data-coverage]",
            fixture.town_a
        ),
        "50%",
    )
    .await;
    shows(
        &browser,
        &format!(
            "#report-coverage tr[data-unit='{}'] [data-coverage]",
            fixture.village_a1
        ),
        "100%",
    )
    .await;
    shows(&browser, "#report-overdue", "王芳").await;

    // A chosen period goes into every report's query: the last three months.
    let today = super::china_day(0);
    let from = (today - chrono::Months::new(2)).format("%Y-%m").to_string();
    let to = today.format("%Y-%m").to_string();
    for (id, value) in [("#f-from-month", &from), ("#f-to-month", &to)] {
        let input = element(&browser, id).await;
        browser
            .execute(
                "arguments[0].value = arguments[1];",
                vec![serde_json::to_value(&input).unwrap(), json!(value)],
            )
            .await
            .unwrap();
    }
    click(&browser, "#apply-report").await;
    shows(&browser, "#report-period", &format!("{from}-01")).await;
    let months = browser
        .find_all(Locator::Css("#report-visits-by-month tbody tr"))
        .await
        .unwrap();
    assert_eq!(months.len(), 3, "three months in the period");
    snap(&browser, "reports").await;
    browser
        .execute(
            "document.querySelector('#report-visits-by-month').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    snap(&browser, "reports-visits").await;
    assert_accessible(&browser, "the reports").await;

    // The overdue list as CSV, from its button.
    click(&browser, "[data-export='overdue.csv']").await;
    let (path, bytes) = downloaded(downloads.path(), ".csv").await;
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("overdue-{from}-01-")),
        "named after the report and its period: {name}"
    );
    assert!(
        bytes.starts_with(b"\xEF\xBB\xBF"),
        "CSV for Excel has a BOM"
    );
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[3..])
        .records()
        .map(|r| r.expect("a CSV record").iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows[0][2], "儿童姓名");
    assert_eq!(rows.len(), 2, "one overdue child: {rows:?}");
    assert_eq!(rows[1][2], "王芳");
    assert_eq!(rows[1][1], "甲二村");

    // Coverage as XLSX: a workbook calamine opens, with the town and both
    // villages.
    click(&browser, "[data-export='coverage.xlsx']").await;
    let (_, bytes) = downloaded(downloads.path(), ".xlsx").await;
    let mut workbook: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).expect("an XLSX workbook");
    let sheet = workbook.sheet_names()[0].clone();
    assert_eq!(sheet, "走访覆盖率");
    let range = workbook.worksheet_range(&sheet).expect("the sheet");
    let rows: Vec<Vec<Data>> = range.rows().map(<[Data]>::to_vec).collect();
    assert_eq!(rows[0][0], Data::String("层级".into()));
    let village_a1 = rows
        .iter()
        .find(|r| r[2] == Data::String("甲一村".into()))
        .expect("village A1's row");
    assert_eq!(village_a1[7], Data::Float(1.0), "{village_a1:?}");

    // A first month after the last is not sent; the page says why.
    open(&browser, &app, "#/reports?from=2026-12&to=2026-01").await;
    shows(&browser, "#period-error", "起始月份不能晚于截止月份").await;

    // At phone width: nothing scrolls sideways.
    let phone = driver.browser_sized(390, 844).await;
    sign_in(&phone, &app, "supervisor-a").await;
    open(&phone, &app, "#/reports").await;
    element(&phone, "#report-coverage .chart canvas").await;
    assert_no_sideways_scroll(&phone).await;
    snap(&phone, "phone-reports").await;
    // The dashboard's month table fits a phone without scrolling inside
    // its box either.
    open(&phone, &app, "#/dashboard").await;
    element(&phone, "#visits-per-month tbody tr").await;
    let overflow = phone
        .execute(
            "const box = document.querySelector('#visits-per-month').parentElement; \
             return box.scrollWidth - box.clientWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        overflow,
        json!(0),
        "the month table scrolls sideways on a phone"
    );
    browser.close().await.unwrap();
    phone.close().await.unwrap();
}

async fn an_admin_moves_a_director_resets_a_password_disables_an_account_and_reports_a_phone_lost(
    app: TestApp,
) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let in_a1 = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let in_a2 = admin.create_child(&app, fixture.village_a2, "李明").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;
    assert!(phone.get(Entity::Child, in_a1).is_some());

    let driver = Driver::start().await;
    let browser = driver.browser_sized(1366, 768).await;
    sign_in(&browser, &app, "admin").await;
    click(&browser, "nav a[href='#/users']").await;
    shows(&browser, "main h1", "账号管理").await;
    shows(
        &browser,
        "tr[data-username='director-a1'] [data-unit]",
        "甲一村（甲镇）",
    )
    .await;
    snap(&browser, "users").await;
    assert_accessible(&browser, "the accounts").await;

    // Move director-a1 to 甲二村.
    let director = fixture.user_id("director-a1");
    click(
        &browser,
        &format!("tr[data-user='{director}'] a.manage-user"),
    )
    .await;
    shows(&browser, "#edit-user-h", "director-a1").await;
    pick_village(&browser, "u-village", "甲二", fixture.village_a2).await;
    click(&browser, "#do-save-user").await;
    shows(&browser, "#edit-user", "甲二村（甲镇）").await;
    snap(&browser, "user-edit").await;
    assert_accessible(&browser, "an account being managed").await;
    let token = app.token_for("admin").await;
    let (status, users) = app
        .call(Method::GET, "/api/v1/users", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let moved = account(&users, "director-a1");
    assert_eq!(moved["org_unit"]["id"], json!(fixture.village_a2));
    // Her phone is told its token is stale, refreshes by signing in, and
    // its next pull swaps village A1's child for village A2's.
    let (status, body) = phone.pull_page(&app, 200).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "stale_token");
    phone.sign_in_again(&app, "director-a1").await;
    phone.pull_all(&app).await;
    assert!(
        phone.get(Entity::Child, in_a1).is_none(),
        "A1's child purged"
    );
    assert!(
        phone.get(Entity::Child, in_a2).is_some(),
        "A2's child arrived"
    );

    // A new password: the old one no longer signs in, the new one does.
    element(&browser, "#u-password")
        .await
        .send_keys("short")
        .await
        .unwrap();
    browser
        .execute(
            "document.querySelector('#password-form').noValidate = true;",
            vec![],
        )
        .await
        .unwrap();
    click(&browser, "#do-password").await;
    shows(&browser, "#edit-user-error", "密码至少需要 10 位").await;
    let field = element(&browser, "#u-password").await;
    field.clear().await.unwrap();
    field.send_keys("a-new-password-2026").await.unwrap();
    click(&browser, "#do-password").await;
    shows(&browser, "#status", "密码已重置").await;
    assert_eq!(
        app.login("director-a1", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.login("director-a1", "a-new-password-2026").await.0,
        StatusCode::OK
    );

    // Disable (asked first: it signs the account's devices out), then the
    // account cannot sign in.
    click(&browser, "#do-toggle-user").await;
    let question = browser.get_alert_text().await.expect("a confirmation");
    assert!(question.contains("确定停用账号"), "{question}");
    browser.accept_alert().await.expect("confirm");
    shows(&browser, "#edit-user", "已停用").await;
    let (status, body) = app.login("director-a1", "a-new-password-2026").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "account_disabled");

    // A new account, bound to a village chosen in the picker.
    open(&browser, &app, "#/users?new=1").await;
    element(&browser, "#nu-username")
        .await
        .send_keys("director-a2b")
        .await
        .unwrap();
    element(&browser, "#nu-display-name")
        .await
        .send_keys("新 主任")
        .await
        .unwrap();
    pick_village(&browser, "nu-village", "乙一", fixture.village_b1).await;
    element(&browser, "#nu-password")
        .await
        .send_keys("another-password-1")
        .await
        .unwrap();
    click(&browser, "#do-create-user").await;
    shows(&browser, "#edit-user-h", "director-a2b").await;
    // The account's page says it was created (the notice outlives the
    // address change that opened it).
    shows(&browser, "#status", "账号已创建").await;
    let (status, _) = app.login("director-a2b", "another-password-1").await;
    assert_eq!(status, StatusCode::OK);

    // The same username again is refused with that reason, not with the
    // generic "changed by someone else" of a stale version.
    open(&browser, &app, "#/users?new=1").await;
    element(&browser, "#nu-username")
        .await
        .send_keys("director-a2b")
        .await
        .unwrap();
    element(&browser, "#nu-display-name")
        .await
        .send_keys("另一位 主任")
        .await
        .unwrap();
    pick_village(&browser, "nu-village", "乙一", fixture.village_b1).await;
    element(&browser, "#nu-password")
        .await
        .send_keys("another-password-2")
        .await
        .unwrap();
    click(&browser, "#do-create-user").await;
    shows(
        &browser,
        "#new-user-error",
        "用户名“director-a2b”已被其他账号使用",
    )
    .await;

    // Phones: director-a2's is reported lost and is refused at once.
    let mut lost = Device::sign_in(&app, "director-a2").await;
    click(&browser, "nav a[href='#/devices']").await;
    shows(&browser, "main h1", "设备管理").await;
    click(&browser, &format!("[data-lost='{}']", lost.id)).await;
    // A lost phone is wiped: asked first; declining changes nothing.
    let question = browser.get_alert_text().await.expect("a confirmation");
    assert!(question.contains("报失"), "{question}");
    browser.dismiss_alert().await.expect("decline");
    let (status, _) = lost.pull_page(&app, 10).await;
    assert_eq!(status, StatusCode::OK, "declined: the phone still works");
    click(&browser, &format!("[data-lost='{}']", lost.id)).await;
    browser.accept_alert().await.expect("confirm");
    shows(
        &browser,
        &format!("tr[data-device='{}'] [data-state]", lost.id),
        "已报失",
    )
    .await;
    snap(&browser, "devices").await;
    assert_accessible(&browser, "the phones").await;
    let (status, body) = lost.pull_page(&app, 200).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "device_revoked");
    // The admin's own test phone, replaced: retired, its next pull is told
    // to wipe.
    element(
        &browser,
        &format!("tr[data-device='{}'] input[name=reason]", admin.id),
    )
    .await
    .send_keys("换了新手机")
    .await
    .unwrap();
    click(&browser, &format!("[data-retire='{}']", admin.id)).await;
    shows(
        &browser,
        &format!("tr[data-device='{}'] [data-state]", admin.id),
        "已停用（已更换）",
    )
    .await;
    let (status, body) = admin.pull_page(&app, 200).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "device_revoked");

    // Each change is on the audit trail.
    let actions = audit_actions(&app).await;
    for action in [
        "user.update",
        "user.set_password",
        "user.create",
        "device.set_state",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }

    // At 768 px (a tablet held upright) the admin's header, with all nine
    // pages, stays one line.
    let tablet = driver.browser_sized(768, 1024).await;
    sign_in(&tablet, &app, "admin").await;
    let height = tablet
        .execute(
            "return document.getElementById('top').getBoundingClientRect().height;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        height.as_f64().is_some_and(|h| h < 60.0),
        "header {height} px high at 768 px"
    );
    assert_no_sideways_scroll(&tablet).await;
    snap(&tablet, "tablet-dashboard").await;
    tablet.close().await.unwrap();

    let phone_browser = driver.browser_sized(390, 844).await;
    sign_in(&phone_browser, &app, "admin").await;
    open(&phone_browser, &app, "#/users").await;
    shows(&phone_browser, "main h1", "账号管理").await;
    assert_no_sideways_scroll(&phone_browser).await;
    snap(&phone_browser, "phone-users").await;
    browser.close().await.unwrap();
    phone_browser.close().await.unwrap();
}

fn account<'a>(users: &'a Value, username: &str) -> &'a Value {
    users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no account {username} in {users}"))
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    use sea_orm::EntityTrait;
    use seedling_server::entity::audit_log;
    audit_log::Entity::find()
        .all(app.db())
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.action)
        .collect()
}
