//! The console in a real headless Chromium, driven through chromedriver:
//! a supervisor signs in, filters the visit log, returns a visit with a
//! comment; the director's phone receives it as a task and sends a
//! correction; the supervisor approves it and sees it locked.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs
//! them); without them the test fails, it never skips. With
//! `SEEDLING_SCREENSHOTS=<folder>` it also saves screenshots of the main
//! pages there (how docs/screenshots/ is made).

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use seedling_tests::{Device, Fixture, TestApp, on_both_backends};
use serde_json::json;
use sync_core::protocol::MutationResult;
use sync_core::record::Entity;
use sync_core::tasks::review_tasks;
use tokio::process::{Child, Command};
use uuid::Uuid;

use super::{day_at, visit};

on_both_backends!(
    a_supervisor_reviews_in_the_console_and_the_phone_sees_the_outcome,
    two_phones_conflict_and_the_console_resolves_it_by_picking_a_value,
    a_visit_page_shows_its_photos_place_and_history_as_sentences,
    a_slow_answer_for_a_page_already_left_never_renders_over_the_current_one,
    an_urgent_visit_from_a_phone_reaches_the_dashboard_and_its_acknowledgement_the_district,
    at_phone_width_the_navigation_folds_away_and_tables_become_cards,
);

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest wait for something to appear on the page (a bound, not a
/// measurement: it only ends a broken run).
const WAIT: Duration = Duration::from_secs(30);

/// A chromedriver process, killed when dropped.
pub(crate) struct Driver {
    _process: Child,
    url: String,
}

impl Driver {
    pub(crate) async fn start() -> Self {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(tool).exists(),
                "{tool} is missing: install Debian's chromium and chromium-driver \
                 (apt-get install chromium chromium-driver; .ci/run does this)"
            );
        }
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("port").port()
        };
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start chromedriver");
        // chromedriver listens once it has started; connect until it does.
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            _process: process,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A laptop-sized browser.
    pub(crate) async fn browser(&self) -> Client {
        self.browser_sized(1280, 900).await
    }

    /// A browser with a window of `width` × `height` CSS pixels (768 wide
    /// is a tablet held upright, 390 a phone).
    pub(crate) async fn browser_sized(&self, width: u32, height: u32) -> Client {
        self.browser_with(width, height, None).await
    }

    /// A browser of `width` × `height` that saves downloads into
    /// `downloads` without asking.
    pub(crate) async fn browser_downloading(
        &self,
        width: u32,
        height: u32,
        downloads: &std::path::Path,
    ) -> Client {
        self.browser_with(width, height, Some(downloads)).await
    }

    async fn browser_with(
        &self,
        width: u32,
        height: u32,
        downloads: Option<&std::path::Path>,
    ) -> Client {
        let mut caps = serde_json::Map::new();
        let mut options = json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", format!("--window-size={width},{height}"),
                     "--lang=zh-CN"],
        });
        // Chromium keeps a window at least 500 px wide: a phone's width is
        // emulated instead.
        if width < 500 {
            options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 },
            });
        }
        if let Some(dir) = downloads {
            options["prefs"] = json!({
                "download.default_directory": dir,
                "download.prompt_for_download": false,
            });
        }
        caps.insert("goog:chromeOptions".to_owned(), options);
        // The dependency tree enables two TLS providers; pick one (the
        // session itself is plain HTTP on loopback).
        let _ = rustls::crypto::ring::default_provider().install_default();
        ClientBuilder::rustls()
            .expect("TLS roots")
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session")
    }
}

/// Saves a screenshot when `SEEDLING_SCREENSHOTS` names a folder.
pub(crate) async fn snap(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("SEEDLING_SCREENSHOTS") else {
        return;
    };
    let png = browser.screenshot().await.expect("screenshot");
    let path = PathBuf::from(dir).join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|err| panic!("write {}: {err}", path.display()));
}

pub(crate) async fn element(browser: &Client, css: &str) -> fantoccini::elements::Element {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"))
}

/// Waits until `css` shows `text`.
pub(crate) async fn shows(browser: &Client, css: &str, text: &str) {
    for _ in 0..300 {
        if let Ok(found) = browser.find(Locator::Css(css)).await
            && found.text().await.is_ok_and(|t| t.contains(text))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = match browser.find(Locator::Css(css)).await {
        Ok(found) => found.text().await.unwrap_or_default(),
        Err(_) => "(absent)".to_owned(),
    };
    panic!("`{css}` never showed `{text}`; it shows `{now}`");
}

pub(crate) async fn open(browser: &Client, app: &TestApp, route: &str) {
    browser
        .goto(&app.url(&format!("/console/{route}")))
        .await
        .expect("navigate");
}

/// Signs `username` in on the console's sign-in page and waits for the
/// dashboard.
pub(crate) async fn sign_in(browser: &Client, app: &TestApp, username: &str) {
    open(browser, app, "").await;
    element(browser, "#username")
        .await
        .send_keys(username)
        .await
        .expect("type the username");
    element(browser, "#password")
        .await
        .send_keys(seedling_tests::fixture::PASSWORD)
        .await
        .expect("type the password");
    element(browser, "#signin")
        .await
        .click()
        .await
        .expect("sign in");
    shows(browser, "main h1", "仪表盘").await;
}

/// Waits for `css` and clicks it.
pub(crate) async fn click(browser: &Client, css: &str) {
    element(browser, css)
        .await
        .click()
        .await
        .unwrap_or_else(|err| panic!("click `{css}`: {err}"));
}

/// Clicks the navigation link to `route` (e.g. `#/visits`). The console
/// redraws the navigation on every page change, so a link found just
/// before a redraw is looked up again.
pub(crate) async fn go(browser: &Client, route: &str) {
    let css = format!("nav a[href='{route}']");
    let mut last = None;
    for _ in 0..5 {
        match element(browser, &css).await.click().await {
            Ok(_) => return,
            Err(err) => last = Some(err),
        }
    }
    panic!("open {route}: {last:?}");
}

async fn a_supervisor_reviews_in_the_console_and_the_phone_sees_the_outcome(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    // Her guardian is her grandmother, as the field app records it (a code).
    let relation = admin
        .update(Entity::Child, child)
        .set("guardian_relation", json!("grandmother"))
        .build();
    let response = admin.push(&app, &[relation]).await;
    assert!(
        matches!(response.results[0], MutationResult::Applied { .. }),
        "{:?}",
        response.results
    );
    let other = admin.create_child(&app, fixture.village_a2, "李明").await;
    let overdue = admin.create_child(&app, fixture.village_a2, "王芳").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let mut a2 = Device::sign_in(&app, "director-a2").await;
    let target = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(2, 10),
        &[],
    )
    .await;
    // Visits the filters must leave out: another kind, another village.
    visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(45, 10),
        &[("kind", json!("phone_follow_up"))],
    )
    .await;
    let risky = visit(
        &app,
        &mut a2,
        other,
        fixture.village_a2,
        &day_at(3, 15),
        &[(
            "risk_flags",
            json!({"id": "r1", "kind": "neglect", "note": "放学后无人看管"}),
        )],
    )
    .await;

    // Two phones of one director change the same field: a conflict to queue.
    let mut a2_tablet = Device::sign_in(&app, "director-a2").await;
    a2.pull_all(&app).await;
    a2_tablet.pull_all(&app).await;
    for (device, text) in [(&mut a2, "下周电话回访"), (&mut a2_tablet, "联系学校老师")]
    {
        let edit = device
            .update(Entity::Visit, risky)
            .set("follow_up", json!(text))
            .build();
        device.push(&app, &[edit]).await;
    }
    // 王芳 was last seen 40 days ago: overdue (monthly).
    visit(
        &app,
        &mut a2,
        overdue,
        fixture.village_a2,
        &day_at(40, 9),
        &[],
    )
    .await;

    let driver = Driver::start().await;
    let browser = driver.browser().await;

    // Sign in (the console opens in Chinese).
    sign_in(&browser, &app, "supervisor-a").await;
    // The dashboard's figures are the reports': 王芳 overdue, 张小花 and
    // 李明 visited within their month, so town A is covered 2 of 3.
    shows(&browser, "[data-card=overdueCount]", "1").await;
    shows(&browser, "[data-card=activeChildren]", "3").await;
    shows(
        &browser,
        &format!("tr[data-town='{}'] [data-coverage]", fixture.town_a),
        "67% (2/3)",
    )
    .await;
    assert!(
        browser
            .find(Locator::Css("nav a[href='#/deliveries']"))
            .await
            .is_err(),
        "the delivery page is for admins only"
    );
    snap(&browser, "dashboard").await;
    // Visits per month reconcile with the log: this month's total opens
    // the log for this month, which counts the same.
    let this_month = element(
        &browser,
        "#visits-per-month tbody tr:last-child [data-total]",
    )
    .await;
    let counted = this_month.text().await.expect("this month's total");
    assert!(counted.parse::<u32>().is_ok_and(|n| n >= 2), "{counted}");
    this_month.click().await.expect("open the month's visits");
    shows(&browser, "#visit-total", &format!("共 {counted} 条")).await;

    // Filter the log: submitted home visits in village A1.
    click(&browser, "nav a[href='#/visits']").await;
    shows(&browser, "#visit-total", "共 4 条").await;
    element(&browser, "#f-village")
        .await
        .select_by_value(&fixture.village_a1.to_string())
        .await
        .unwrap();
    element(&browser, "#f-kind")
        .await
        .select_by_value("home_visit")
        .await
        .unwrap();
    element(&browser, "#f-review_status")
        .await
        .select_by_value("submitted")
        .await
        .unwrap();
    click(&browser, "#apply-filters").await;
    shows(&browser, "#visit-total", "共 1 条").await;
    snap(&browser, "visit-log").await;

    // Return it with a comment.
    click(&browser, &format!("tr[data-visit='{target}'] a.open-visit")).await;
    element(&browser, "#review-comment")
        .await
        .send_keys("请补充孩子的学习情况")
        .await
        .unwrap();
    snap(&browser, "visit-detail").await;
    click(&browser, "#return").await;
    shows(&browser, "main", "已退回").await;

    // The director's phone receives it as a task and sends a correction.
    phone.pull_all(&app).await;
    let tasks = review_tasks(phone.user_id, phone.records.values());
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].visit_id, target);
    assert_eq!(tasks[0].comment.as_deref(), Some("请补充孩子的学习情况"));
    let fix = phone
        .update(Entity::Visit, target)
        .set(
            "observations",
            json!({"living": "生活正常", "study": "四年级，数学需辅导"}),
        )
        .set("review_status", json!("submitted"))
        .build();
    let pushed = phone.push(&app, &[fix]).await;
    assert!(
        matches!(pushed.results[0], MutationResult::Applied { .. }),
        "{:?}",
        pushed.results
    );

    // The corrected visit is back in the filtered queue; the supervisor
    // opens it, sees the correction, approves, and sees it locked.
    click(&browser, "#back-to-log").await;
    shows(&browser, "#visit-total", "共 1 条").await;
    assert_eq!(
        element(&browser, "#f-review_status")
            .await
            .prop("value")
            .await
            .expect("the status filter")
            .as_deref(),
        Some("submitted"),
        "the log comes back as it was filtered"
    );
    click(&browser, &format!("tr[data-visit='{target}'] a.open-visit")).await;
    shows(&browser, "main", "四年级，数学需辅导").await;
    click(&browser, "#approve").await;
    shows(&browser, "#locked", "已锁定").await;
    assert!(
        browser.find(Locator::Css("#approve")).await.is_err(),
        "a locked visit offers no decision"
    );
    snap(&browser, "visit-approved").await;
    phone.pull_all(&app).await;
    assert_eq!(
        phone
            .get(Entity::Visit, target)
            .unwrap()
            .get_str("review_status"),
        Some("approved")
    );
    assert!(review_tasks(phone.user_id, phone.records.values()).is_empty());

    // Back in the filtered queue, nothing is left to review.
    click(&browser, "#back-to-log").await;
    shows(&browser, "#visit-total", "共 0 条").await;

    // The conflict queue: the two phones' follow-ups; keep the winner.
    go(&browser, "#/conflicts").await;
    shows(&browser, "main h1", "冲突队列").await;
    shows(&browser, "main", "同时修改").await;
    shows(&browser, "main", "联系学校老师").await;
    click(&browser, "[data-conflict] button[data-action=keep]").await;
    shows(&browser, "#status", "已保存").await;
    shows(&browser, "main", "暂无记录").await;
    click(&browser, "a[href='#/conflicts?status=resolved']").await;
    shows(&browser, "[data-conflict]", "已处理").await;

    // The overdue list: 王芳, 10 days overdue; her page from there.
    go(&browser, "#/overdue").await;
    shows(&browser, "main h1", "逾期名单").await;
    shows(&browser, "main", "共 1 条").await;
    shows(&browser, "main tbody", "王芳").await;
    shows(&browser, "main tbody", "逾期 10 天").await;
    snap(&browser, "overdue").await;
    click(&browser, &format!("main tbody a[href='#/child/{overdue}']")).await;
    shows(&browser, "main h1", "王芳").await;
    shows(&browser, "main", "逾期 10 天").await;
    shows(&browser, "main", "纳入保障").await;

    go(&browser, "#/children").await;
    shows(&browser, "main h1", "儿童名册").await;
    shows(&browser, "main", "共 3 条").await;
    snap(&browser, "children").await;
    click(&browser, &format!("main tbody a[href='#/child/{child}']")).await;
    shows(&browser, "main h1", "张小花").await;
    shows(&browser, "main", "已通过").await;
    // The relation in words, never the code the phone sent.
    shows(&browser, "main", "王奶奶 · 祖母").await;
    assert!(!text_of(&browser, "main").await.contains("grandmother"));
    snap(&browser, "child").await;

    // English on request.
    click(&browser, "#lang").await;
    shows(&browser, "nav", "Visit log").await;
    open(&browser, &app, "#/dashboard").await;
    shows(&browser, "main h1", "Dashboard").await;
    snap(&browser, "dashboard-en").await;
    browser.close().await.expect("close the browser");
}

/// A PNG of `width` × `height` pixels (a sky over a field, with a house),
/// written by hand: stored deflate blocks, so no image library is needed.
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // no filter
        for x in 0..width {
            let house = x > width / 3 && x < width / 2 && y > height / 3 && y < height * 2 / 3;
            let roof = y > height / 5 && y <= height / 3 && {
                let mid = (width / 3 + width / 2) / 2;
                x.abs_diff(mid) < (y - height / 5) * 2
            };
            let rgb = if house {
                [200, 120, 60]
            } else if roof {
                [150, 40, 30]
            } else if y < height * 3 / 5 {
                [90 + (y * 100 / height) as u8, 160, 230]
            } else {
                [60, 140 + (x * 60 / width) as u8, 60]
            };
            raw.extend(rgb);
        }
    }
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend(*block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// Uploads `bytes` as a PNG photo from `phone`; answers its SHA-256.
async fn upload_photo(app: &TestApp, phone: &Device, bytes: Vec<u8>) -> String {
    let sha = seedling_server::storage::Sha256Hex::of(&bytes).to_string();
    let response = app
        .http
        .put(app.url(&format!("/api/v1/attachments/{sha}")))
        .bearer_auth(&phone.token)
        .header("content-type", "image/png")
        .body(bytes)
        .send()
        .await
        .expect("upload sent");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    sha
}

/// A day as the console writes it in a sentence (`12月3日`).
fn day_words(day: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    format!("{}月{}日", day.month(), day.day())
}

/// The visible text of `css`.
async fn text_of(browser: &Client, css: &str) -> String {
    element(browser, css).await.text().await.expect("text")
}

/// The open conflicts of `token`'s queue.
async fn open_conflicts(app: &TestApp, token: &str) -> Vec<serde_json::Value> {
    let (_, body) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/conflicts?limit=200",
            Some(token),
            None,
        )
        .await;
    body["conflicts"].as_array().expect("conflicts").clone()
}

/// Asserts that the page's main text names no field, code or value the
/// way the API does.
async fn assert_no_raw_words(browser: &Client, page: &str) {
    let text = text_of(browser, "main").await;
    for raw in [
        "follow_up",
        "next_planned_date",
        "visited_at",
        "observations",
        "review_status",
        "concurrent_write",
        "phone_follow_up",
        "home_visit",
        "dropout_risk",
        "lww",
        "JSON",
        "新值",
        "{\"",
        "null",
    ] {
        assert!(!text.contains(raw), "the {page} shows `{raw}`: {text}");
    }
    let uuid_like = text
        .split(|c: char| !c.is_ascii_hexdigit() && c != '-')
        .any(|word| word.len() == 36 && word.matches('-').count() == 4);
    assert!(!uuid_like, "the {page} shows an id: {text}");
}

async fn two_phones_conflict_and_the_console_resolves_it_by_picking_a_value(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let other = admin.create_child(&app, fixture.village_a2, "李明").await;
    let far = admin.create_child(&app, fixture.village_b1, "乙童").await;
    // One director's two phones (a phone and a tablet) hold the same visit.
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (target, create) = phone.new_visit(child, fixture.village_a1, &day_at(2, 10));
    let create = create
        .set("observations", json!({"living": "生活正常"}))
        .add(
            "needs",
            json!({"id": "n1", "area": "study", "description": "需要课外辅导"}),
        )
        .build();
    phone.push(&app, &[create]).await;
    let mut tablet = Device::sign_in(&app, "director-a1").await;
    phone.pull_all(&app).await;
    tablet.pull_all(&app).await;
    // Offline, each changes the follow-up, the next planned date and the
    // same needs item; the phone syncs first, the tablet after.
    let edits = [
        (&mut phone, "下周电话回访", "2026-12-20", "需要数学辅导"),
        (&mut tablet, "联系学校老师", "2026-12-27", "需要英语辅导"),
    ];
    for (device, follow_up, next, need) in edits {
        let edit = device
            .update(Entity::Visit, target)
            .set("follow_up", json!(follow_up))
            .set("next_planned_date", json!(next))
            .add(
                "needs",
                json!({"id": "n1", "area": "study", "description": need}),
            )
            .build();
        device.push(&app, &[edit]).await;
    }
    // Another child: two phones of village A2 disagree on the visit's kind.
    let mut a2 = Device::sign_in(&app, "director-a2").await;
    let second = visit(
        &app,
        &mut a2,
        other,
        fixture.village_a2,
        &day_at(3, 15),
        &[],
    )
    .await;
    let mut a2_tablet = Device::sign_in(&app, "director-a2").await;
    a2.pull_all(&app).await;
    a2_tablet.pull_all(&app).await;
    for (device, kind) in [(&mut a2, "school_visit"), (&mut a2_tablet, "other")] {
        let edit = device
            .update(Entity::Visit, second)
            .set("kind", json!(kind))
            .build();
        device.push(&app, &[edit]).await;
    }
    // Town B has a conflict of its own, which town A's queue never shows.
    let mut b1 = Device::sign_in(&app, "director-b1").await;
    let far_visit = visit(&app, &mut b1, far, fixture.village_b1, &day_at(1, 9), &[]).await;
    let mut b1_tablet = Device::sign_in(&app, "director-b1").await;
    b1.pull_all(&app).await;
    b1_tablet.pull_all(&app).await;
    for (device, text) in [(&mut b1, "乙镇的跟进"), (&mut b1_tablet, "乙镇的另一跟进")]
    {
        let edit = device
            .update(Entity::Visit, far_visit)
            .set("follow_up", json!(text))
            .build();
        device.push(&app, &[edit]).await;
    }

    let token = app.token_for("supervisor-a").await;
    let queue = open_conflicts(&app, &token).await;
    let find = |record: Uuid, field: &str| {
        queue
            .iter()
            .find(|c| c["record_id"] == json!(record) && c["field"] == json!(field))
            .unwrap_or_else(|| panic!("no {field} conflict in {queue:?}"))
            .clone()
    };
    let follow_up = find(target, "follow_up");
    let kind = find(second, "kind");
    assert!(
        queue.iter().all(|c| c["record_id"] != json!(far_visit)),
        "town B's conflict is in town A's queue"
    );
    assert_eq!(follow_up["child_name"], "张小花");
    // The tablet synced last: its follow-up won, the phone's lost.
    assert_eq!(follow_up["winner"], "client");
    assert_eq!(follow_up["remote_value"], "联系学校老师");

    let driver = Driver::start().await;
    let browser = driver.browser_sized(1366, 768).await;
    sign_in(&browser, &app, "supervisor-a").await;
    go(&browser, "#/conflicts").await;
    shows(&browser, "main h1", "冲突队列").await;
    // Grouped by child, then by visit, each heading a link to its page.
    let group = format!("[data-child='{child}']");
    shows(
        &browser,
        &format!("{group} > h2 a[href='#/child/{child}']"),
        "张小花",
    )
    .await;
    shows(
        &browser,
        &format!("{group} h3 a[href='#/visit/{target}']"),
        &day_words(super::china_day(2)),
    )
    .await;
    shows(
        &browser,
        &format!("[data-child='{other}'] h3 a[href='#/visit/{second}']"),
        "的走访",
    )
    .await;
    let text = text_of(&browser, "main").await;
    assert!(!text.contains("乙童"), "another town's child: {text}");
    // Chinese labels; the two values as the field shows them; the reason in words.
    let card = format!("[data-conflict='{}']", follow_up["id"].as_str().unwrap());
    shows(&browser, &format!("{card} h4"), "后续跟进").await;
    shows(
        &browser,
        &format!("{card} [data-side=server]"),
        "下周电话回访",
    )
    .await;
    shows(
        &browser,
        &format!("{card} [data-side=client]"),
        "测试 director-a1的设备提交的",
    )
    .await;
    shows(
        &browser,
        &format!("{card} [data-side=client]"),
        "联系学校老师",
    )
    .await;
    shows(&browser, &format!("{card} [data-side=client]"), "当前采用").await;
    shows(&browser, &format!("{card} .reason"), "以最后修改为准").await;
    let date_card = format!(
        "[data-conflict='{}']",
        find(target, "next_planned_date")["id"].as_str().unwrap()
    );
    shows(&browser, &format!("{date_card} h4"), "计划下次走访日期").await;
    shows(
        &browser,
        &format!("{date_card} [data-side=server]"),
        "2026年12月20日",
    )
    .await;
    let need = queue
        .iter()
        .find(|c| c["field"] == json!("needs#n1"))
        .expect("the needs item's conflict");
    let need_card = format!("[data-conflict='{}']", need["id"].as_str().unwrap());
    shows(&browser, &format!("{need_card} h4"), "需求").await;
    shows(
        &browser,
        &format!("{need_card} [data-side=server]"),
        "学业辅导：需要数学辅导",
    )
    .await;
    let kind_card = format!("[data-conflict='{}']", kind["id"].as_str().unwrap());
    shows(
        &browser,
        &format!("{kind_card} [data-side=server]"),
        "学校走访",
    )
    .await;
    shows(&browser, &format!("{kind_card} [data-side=client]"), "其他").await;
    assert_no_raw_words(&browser, "conflict queue").await;
    assert!(
        browser
            .find(Locator::Css("main input[placeholder*='JSON']"))
            .await
            .is_err(),
        "no JSON boxes"
    );
    snap(&browser, "conflicts").await;
    browser
        .execute(
            &format!("document.querySelector(\"{card}\").scrollIntoView();"),
            vec![],
        )
        .await
        .expect("scroll");
    snap(&browser, "conflicts-dates-and-needs").await;

    // Pick the phone's follow-up, which had lost.
    click(
        &browser,
        &format!("{card} [data-side=server] button[data-action=other]"),
    )
    .await;
    shows(&browser, "#status", "已保存").await;
    let deadline = std::time::Instant::now() + WAIT;
    while browser.find(Locator::Css(&card)).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the resolved conflict stays in the queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Edit the kind with its own input: a select of the visit kinds.
    click(&browser, &format!("{kind_card} details.edit summary")).await;
    element(&browser, &format!("{kind_card} details.edit select"))
        .await
        .select_by_value("phone_follow_up")
        .await
        .expect("choose a kind");
    browser
        .execute(
            &format!("document.querySelector(\"{kind_card}\").scrollIntoView();"),
            vec![],
        )
        .await
        .expect("scroll");
    snap(&browser, "conflicts-edit").await;
    click(&browser, &format!("{kind_card} button[data-action=new]")).await;
    shows(&browser, "#status", "已保存").await;
    let deadline = std::time::Instant::now() + WAIT;
    while browser.find(Locator::Css(&kind_card)).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the kind's conflict stays in the queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Both phones converge on the values chosen.
    for device in [&mut phone, &mut tablet] {
        device.pull_all(&app).await;
        assert_eq!(
            device.get(Entity::Visit, target).unwrap().get("follow_up"),
            Some(json!("下周电话回访"))
        );
    }
    for device in [&mut a2, &mut a2_tablet] {
        device.pull_all(&app).await;
        assert_eq!(
            device.get(Entity::Visit, second).unwrap().get_str("kind"),
            Some("phone_follow_up")
        );
    }
    // Resolved, in words: who chose what.
    click(&browser, "a[href='#/conflicts?status=resolved']").await;
    shows(&browser, &card, "已处理").await;
    shows(&browser, &card, "测试 supervisor-a 于").await;
    shows(&browser, &card, "改用了另一方的值").await;
    shows(&browser, &kind_card, "改为 电话回访").await;
    assert_no_raw_words(&browser, "resolved conflicts").await;
    snap(&browser, "conflicts-resolved").await;
    browser.close().await.expect("close the browser");

    let phone_browser = driver.browser_sized(390, 844).await;
    sign_in(&phone_browser, &app, "supervisor-a").await;
    open(&phone_browser, &app, "#/conflicts").await;
    shows(&phone_browser, &date_card, "2026年12月20日").await;
    let wide = phone_browser
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .expect("measure")
        .as_f64()
        .expect("a number");
    assert!(wide <= 390.0, "the queue is {wide}px wide at phone width");
    snap(&phone_browser, "phone-conflicts").await;
    phone_browser.close().await.expect("close the browser");
}

async fn a_visit_page_shows_its_photos_place_and_history_as_sentences(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    // One photo uploaded, one still on the phone.
    let uploaded = upload_photo(&app, &phone, png(320, 240)).await;
    let waiting = seedling_server::storage::Sha256Hex::of(&png(200, 150)).to_string();
    let (target, create) = phone.new_visit(child, fixture.village_a1, &day_at(1, 9));
    let create = create
        .set(
            "observations",
            json!({"living": "生活正常", "study": "成绩中等"}),
        )
        .set(
            "location",
            json!({"lat": 29.661234, "lon": 121.403456, "accuracy_m": 15}),
        )
        .set("follow_up", json!("下周电话回访"))
        .set("next_planned_date", json!("2026-12-20"))
        .add(
            "needs",
            json!({"id": "n1", "area": "study", "description": "需要数学辅导"}),
        )
        .add(
            "risk_flags",
            json!({"id": "r1", "kind": "dropout_risk", "note": "经常缺课"}),
        )
        .add("photos", json!({"id": "p1", "sha256": uploaded}))
        .add("photos", json!({"id": "p2", "sha256": waiting}))
        .build();
    let pushed = phone.push(&app, &[create]).await;
    assert!(
        matches!(pushed.results[0], MutationResult::Applied { .. }),
        "{:?}",
        pushed.results
    );

    let driver = Driver::start().await;
    let browser = driver.browser_sized(1366, 768).await;
    sign_in(&browser, &app, "supervisor-a").await;
    open(&browser, &app, &format!("#/visit/{target}")).await;
    // Returned with a comment; the phone corrects and resubmits.
    element(&browser, "#review-comment")
        .await
        .send_keys("缺少学校信息")
        .await
        .expect("type the comment");
    click(&browser, "#return").await;
    shows(&browser, "main", "已退回").await;
    phone.pull_all(&app).await;
    let fix = phone
        .update(Entity::Visit, target)
        .set(
            "observations",
            json!({"living": "生活正常", "study": "镇中心小学四年级"}),
        )
        .set("follow_up", json!("联系班主任"))
        .set("review_status", json!("submitted"))
        .build();
    phone.push(&app, &[fix]).await;
    open(&browser, &app, "#/dashboard").await;
    shows(&browser, "main h1", "仪表盘").await;
    open(&browser, &app, &format!("#/visit/{target}")).await;
    click(&browser, "#approve").await;
    shows(&browser, "#locked", "已锁定").await;
    // A correction after approval is an amendment, accepted on the page.
    phone.pull_all(&app).await;
    let late = phone
        .update(Entity::Visit, target)
        .set("follow_up", json!("下月再访"))
        .build();
    phone.push(&app, &[late]).await;
    open(&browser, &app, "#/dashboard").await;
    shows(&browser, "main h1", "仪表盘").await;
    open(&browser, &app, &format!("#/visit/{target}")).await;
    let amendment = "[data-conflict][data-kind=amendment]";
    shows(&browser, amendment, "修正内容").await;
    shows(&browser, amendment, "后续跟进").await;
    shows(&browser, amendment, "下月再访").await;
    click(&browser, &format!("{amendment} button[data-action=accept]")).await;
    shows(&browser, amendment, "采纳了修正").await;
    phone.pull_all(&app).await;
    let on_phone = phone.get(Entity::Visit, target).unwrap();
    assert_eq!(on_phone.get_str("follow_up"), Some("下月再访"));
    assert_eq!(on_phone.get_str("review_status"), Some("approved"));
    // Once more from the start, without the notice.
    open(&browser, &app, "#/dashboard").await;
    shows(&browser, "main h1", "仪表盘").await;
    open(&browser, &app, &format!("#/visit/{target}")).await;
    shows(&browser, "#locked", "已锁定").await;

    // The photos: a thumbnail that opens full size, and the one not yet uploaded.
    let shown = element(
        &browser,
        &format!("li[data-photo='{uploaded}'][data-state=shown] img"),
    )
    .await;
    let width = browser
        .execute(
            "return arguments[0].complete ? arguments[0].naturalWidth : -1;",
            vec![serde_json::to_value(&shown).unwrap()],
        )
        .await
        .expect("the thumbnail's width");
    let mut width = width.as_i64().unwrap_or(-1);
    for _ in 0..50 {
        if width > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        width = browser
            .execute(
                "return arguments[0].naturalWidth;",
                vec![serde_json::to_value(&shown).unwrap()],
            )
            .await
            .expect("the thumbnail's width")
            .as_i64()
            .unwrap_or(-1);
    }
    assert_eq!(width, 320, "the thumbnail shows the uploaded photo");
    shows(
        &browser,
        &format!("li[data-photo='{waiting}'][data-state=pending]"),
        "待上传",
    )
    .await;
    // The place: village and town by name, the coordinates with their accuracy.
    shows(&browser, "#visit-place", "甲镇 甲一村").await;
    shows(
        &browser,
        "#visit-coords",
        "北纬 29.66123°，东经 121.40346°（精度约 15 米）",
    )
    .await;
    shows(&browser, "#visit-needs", "学业辅导：需要数学辅导").await;
    shows(&browser, "#visit-risks", "辍学或失学风险：经常缺课").await;
    shows(&browser, "#visit-fields", "学习情况").await;
    shows(&browser, "#visit-fields", "2026年12月20日").await;
    // The history, as sentences.
    let today = day_words(super::china_day(0));
    for sentence in [
        format!("测试 director-a1 于 {today} 提交了走访记录"),
        format!("测试 supervisor-a 于 {today} 退回：缺少学校信息"),
        format!("测试 director-a1 于 {today} 修改了 走访情况、后续跟进，并重新提交"),
        format!("测试 supervisor-a 于 {today} 审核通过"),
        format!("测试 supervisor-a 于 {today} 采纳了修正，修改了 后续跟进"),
    ] {
        shows(&browser, "#history", &sentence).await;
    }
    assert_no_raw_words(&browser, "visit page").await;
    snap(&browser, "visit-page").await;
    browser
        .execute(
            "document.getElementById('history').scrollIntoView();",
            vec![],
        )
        .await
        .expect("scroll");
    snap(&browser, "visit-page-history").await;
    click(
        &browser,
        &format!("li[data-photo='{uploaded}'] button.thumb"),
    )
    .await;
    let full = element(&browser, "#photo-view img.full").await;
    assert!(
        full.is_displayed().await.expect("displayed"),
        "the photo opens full size"
    );
    snap(&browser, "visit-photo").await;
    click(&browser, "#photo-close").await;
    let deadline = std::time::Instant::now() + WAIT;
    while browser.find(Locator::Css("#photo-view")).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the photo does not close"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await.expect("close the browser");

    let phone_browser = driver.browser_sized(390, 844).await;
    sign_in(&phone_browser, &app, "supervisor-a").await;
    open(&phone_browser, &app, &format!("#/visit/{target}")).await;
    element(
        &phone_browser,
        &format!("li[data-photo='{uploaded}'][data-state=shown] img"),
    )
    .await;
    shows(&phone_browser, "#history", "退回：缺少学校信息").await;
    let wide = phone_browser
        .execute("return document.documentElement.scrollWidth;", vec![])
        .await
        .expect("measure")
        .as_f64()
        .expect("a number");
    assert!(
        wide <= 390.0,
        "the visit page is {wide}px wide at phone width"
    );
    snap(&phone_browser, "phone-visit-page").await;
    phone_browser
        .execute("window.scrollTo(0, document.body.scrollHeight);", vec![])
        .await
        .expect("scroll");
    snap(&phone_browser, "phone-visit-history").await;
    phone_browser.close().await.expect("close the browser");
}

async fn a_slow_answer_for_a_page_already_left_never_renders_over_the_current_one(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    admin.create_child(&app, fixture.village_a1, "张小花").await;
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    sign_in(&browser, &app, "supervisor-a").await;

    // The roster's answers now arrive late (1.5 s), as on a slow network.
    browser
        .execute(
            r"const fetchNow = window.fetch;
              window.lateAnswers = 0;
              window.fetch = (input, init) => {
                const answer = fetchNow(input, init);
                if (!String(input).includes('/api/v1/children')) return answer;
                return answer.then((r) => new Promise((done) => setTimeout(() => {
                  window.lateAnswers += 1; done(r);
                }, 1500)));
              };",
            vec![],
        )
        .await
        .expect("slow down the roster");
    // Open the roster, and before it answers move on to the visit log.
    go(&browser, "#/children").await;
    go(&browser, "#/visits").await;
    shows(&browser, "main h1", "走访记录").await;
    // Wait until the roster's late answer has come in …
    for _ in 0..100 {
        let late = browser
            .execute("return window.lateAnswers;", vec![])
            .await
            .expect("read the counter");
        if late.as_u64().is_some_and(|n| n >= 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let late = browser
        .execute("return window.lateAnswers;", vec![])
        .await
        .expect("read the counter");
    assert_eq!(late, json!(1), "the roster was asked for and answered late");
    // … and give it time to render, were it going to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heading = element(&browser, "main h1")
        .await
        .text()
        .await
        .expect("the heading");
    assert_eq!(
        heading, "走访记录",
        "the page left behind rendered over the log"
    );
    assert!(
        browser.find(Locator::Css("#visit-filters")).await.is_ok(),
        "the visit log is still on screen"
    );
    assert_eq!(
        element(&browser, "nav a[aria-current=page]")
            .await
            .text()
            .await
            .expect("the current page"),
        "走访记录"
    );
    browser.close().await.expect("close the browser");
}

/// True when `css` is on the page and displayed.
async fn displayed(browser: &Client, css: &str) -> bool {
    match browser.find(Locator::Css(css)).await {
        Ok(found) => found.is_displayed().await.unwrap_or(false),
        Err(_) => false,
    }
}

/// The sign-in page shows neither the navigation nor a sign-out button.
async fn assert_signed_out_page(browser: &Client) {
    element(browser, "#signin").await;
    for css in ["#top", "#nav", "#signout"] {
        assert!(
            !displayed(browser, css).await,
            "the sign-in page shows `{css}`"
        );
    }
}

async fn an_urgent_visit_from_a_phone_reaches_the_dashboard_and_its_acknowledgement_the_district(
    app: TestApp,
) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "陈小雨").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let routine = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(1, 10),
        &[],
    )
    .await;

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    open(&browser, &app, "#/login").await;
    assert_signed_out_page(&browser).await;
    snap(&browser, "login").await;
    sign_in(&browser, &app, "supervisor-a").await;
    shows(&browser, "[data-card=urgentCard]", "0").await;

    // The phone pushes an urgent visit (older than the routine one) while
    // the dashboard is open: the red card counts it without a reload.
    let urgent = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(4, 10),
        &[(
            "risk_flags",
            json!({"id": "r1", "kind": "physical_abuse", "urgent": true, "note": "手臂有多处淤青"}),
        )],
    )
    .await;
    shows(&browser, "[data-card=urgentCard]", "1").await;
    let class = element(&browser, "#urgent-card")
        .await
        .attr("class")
        .await
        .expect("the card's class");
    assert!(
        class.is_some_and(|c| c.contains("alarm")),
        "the card is red"
    );
    snap(&browser, "dashboard-urgent").await;

    // The card opens the unhandled urgent visits; in the whole log the
    // urgent visit comes first, its risk in Chinese.
    click(&browser, "#urgent-card").await;
    shows(&browser, "#visit-total", "共 1 条").await;
    go(&browser, "#/visits").await;
    shows(&browser, "#visit-total", "共 2 条").await;
    let first = element(&browser, "main tbody tr:first-child").await;
    assert_eq!(
        first.attr("data-visit").await.unwrap(),
        Some(urgent.to_string()),
        "the urgent visit comes first"
    );
    shows(
        &browser,
        "main tbody tr:first-child",
        "疑似遭受家庭暴力、虐待、殴打或欺凌",
    )
    .await;
    shows(&browser, "main tbody tr:first-child", "紧急 · 未处理").await;
    assert!(
        !first.text().await.unwrap().contains("physical_abuse"),
        "no raw code"
    );
    snap(&browser, "visit-log-urgent").await;

    // The visit's page: a red banner; the supervisor acknowledges it.
    click(&browser, &format!("tr[data-visit='{urgent}'] a.open-visit")).await;
    shows(&browser, "#urgent-banner", "紧急风险 · 强制报告").await;
    shows(
        &browser,
        "#urgent-banner",
        "疑似遭受家庭暴力、虐待、殴打或欺凌",
    )
    .await;
    shows(&browser, "#urgent-banner", "尚无人处理").await;
    snap(&browser, "visit-urgent").await;
    click(&browser, "#ack-acknowledged").await;
    shows(&browser, "#acknowledgements", "测试 supervisor-a（督导员）").await;
    shows(&browser, "#acknowledgements", "“已知悉”").await;
    assert!(
        browser
            .find(Locator::Css("#ack-acknowledged"))
            .await
            .is_err(),
        "acknowledged once"
    );
    element(&browser, "#ack-reported").await;

    // A return without a comment is not sent.
    click(&browser, "#return").await;
    shows(&browser, "#comment-error", "退回修改时请填写审核意见").await;
    // Errors come in Chinese: the director edits the visit meanwhile, so
    // the approval of the version on screen is refused (409).
    phone.pull_all(&app).await;
    let edit = phone
        .update(Entity::Visit, urgent)
        .set("follow_up", json!("已联系派出所"))
        .build();
    phone.push(&app, &[edit]).await;
    click(&browser, "#approve").await;
    shows(
        &browser,
        "#status",
        "记录已被他人修改或状态已变化，请刷新页面后重试",
    )
    .await;
    let notice = element(&browser, "#status").await.text().await.unwrap();
    assert!(!notice.contains("changed since"), "{notice}");
    // A notice belongs to its page.
    go(&browser, "#/dashboard").await;
    shows(&browser, "main h1", "仪表盘").await;
    assert!(
        !displayed(&browser, "#status").await,
        "the notice was cleared"
    );
    shows(&browser, "[data-card=urgentCard]", "0").await;

    // Signed out is signed out; the district sees who acknowledged when.
    click(&browser, "#signout").await;
    assert_signed_out_page(&browser).await;
    sign_in(&browser, &app, "admin").await;
    open(&browser, &app, &format!("#/visit/{urgent}")).await;
    shows(&browser, "#acknowledgements", "测试 supervisor-a（督导员）").await;
    shows(&browser, "#acknowledgements", "已知悉").await;
    snap(&browser, "visit-urgent-acknowledged").await;
    // This server has no provincial endpoint: the delivery page says so.
    go(&browser, "#/deliveries").await;
    shows(&browser, "#delivery-state", "未配置省级平台").await;
    let _ = routine;
    browser.close().await.expect("close the browser");
}

async fn at_phone_width_the_navigation_folds_away_and_tables_become_cards(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "张小花").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let urgent = visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(1, 10),
        &[(
            "risk_flags",
            json!({"id": "r1", "kind": "abandonment", "urgent": true, "note": "独自在家三天"}),
        )],
    )
    .await;
    visit(
        &app,
        &mut phone,
        child,
        fixture.village_a1,
        &day_at(5, 10),
        &[],
    )
    .await;

    let driver = Driver::start().await;
    let browser = driver.browser_sized(390, 844).await;
    open(&browser, &app, "#/login").await;
    assert_signed_out_page(&browser).await;
    sign_in(&browser, &app, "supervisor-a").await;
    let measure = |script: &'static str| {
        let browser = browser.clone();
        async move {
            browser
                .execute(script, vec![])
                .await
                .expect("measure")
                .as_f64()
                .expect("a number")
        }
    };
    // One compact header line; the navigation folded behind 菜单.
    let header =
        measure("return document.getElementById('top').getBoundingClientRect().height;").await;
    assert!(header < 60.0, "the header is {header}px tall");
    assert!(
        !displayed(&browser, "#nav").await,
        "the navigation is folded"
    );
    assert!(displayed(&browser, "#menu").await);
    shows(&browser, "[data-card=urgentCard]", "1").await;
    snap(&browser, "phone-dashboard").await;
    click(&browser, "#menu").await;
    assert!(
        displayed(&browser, "#nav").await,
        "the menu opens the navigation"
    );
    assert_eq!(
        element(&browser, "#menu")
            .await
            .attr("aria-expanded")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    snap(&browser, "phone-menu").await;
    click(&browser, "nav a[href='#/visits']").await;
    shows(&browser, "#visit-total", "共 2 条").await;
    assert!(
        !displayed(&browser, "#nav").await,
        "a new page folds the menu again"
    );

    // The log as cards: each cell says what it is, nothing scrolls sideways.
    let display = browser
        .execute(
            "return getComputedStyle(document.querySelector('main tbody td')).display;",
            vec![],
        )
        .await
        .expect("the cell's display");
    assert_eq!(display, json!("block"), "a row is a card");
    let labelled = browser
        .execute(
            "return getComputedStyle(document.querySelector('main tbody td'), '::before').content;",
            vec![],
        )
        .await
        .expect("the cell's label");
    assert_eq!(labelled, json!("\"走访时间\""), "a cell names its column");
    shows(
        &browser,
        "main tbody tr:first-child",
        "被遗弃或长期无人照料",
    )
    .await;
    snap(&browser, "phone-visit-log").await;
    let width = measure("return window.innerWidth;").await;
    assert!(
        (width - 390.0).abs() < 1.0,
        "the viewport is {width}px wide"
    );
    let wide = measure("return document.documentElement.scrollWidth;").await;
    let widest = browser
        .execute(
            "return [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 391)
               .map((e) => e.tagName + '.' + e.className + '#' + e.id + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 8).join('; ');",
            vec![],
        )
        .await
        .expect("the widest elements");
    assert!(wide <= 390.0, "the page is {wide}px wide: {widest}");
    click(&browser, &format!("tr[data-visit='{urgent}'] a.open-visit")).await;
    shows(&browser, "#urgent-banner", "被遗弃或长期无人照料").await;
    let wide = measure("return document.documentElement.scrollWidth;").await;
    assert!(wide <= 390.0, "the visit page is {wide}px wide");
    snap(&browser, "phone-visit").await;

    // Every card's column names are whole (走访周期（天）, not 走访周期（…).
    for (page, heading) in [
        ("#/children", "儿童名册"),
        ("#/overdue", "逾期名单"),
        ("#/visits", "走访记录"),
    ] {
        open(&browser, &app, page).await;
        shows(&browser, "main h1", heading).await;
        shows(&browser, "main", "共").await;
        let cut = browser
            .execute(
                "const pen = document.createElement('canvas').getContext('2d');
                 return [...document.querySelectorAll('main td[data-label]')].filter((td) => {
                   const b = getComputedStyle(td, '::before');
                   pen.font = `${b.fontWeight} ${b.fontSize} ${b.fontFamily}`;
                   return pen.measureText(td.dataset.label).width > parseFloat(b.width) + 0.5;
                 }).map((td) => td.dataset.label);",
                vec![],
            )
            .await
            .expect("the card labels");
        assert_eq!(cut, json!([]), "labels cut short on {page}");
    }
    browser.close().await.expect("close the browser");
}
