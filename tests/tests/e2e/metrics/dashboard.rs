//! The Grafana dashboard (docs/grafana/seedling.json) and the alert rules
//! (docs/grafana/alerts.yml) against a real scrape: every metric and label
//! they query is one the server exports, and every metric the server
//! exports has a panel. The scrape follows traffic that makes each metric
//! appear: pushes and pulls, a conflict opened and resolved, a message
//! delivered to the stand-in platform, a sync request turned away.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use seedling_server::config::Secret;
use seedling_tests::platform::StandIn;
use seedling_tests::{Device, Fixture, TestApp, assert_error, on_both_backends, wait_until};
use serde_json::{Value, json};
use sync_core::protocol::PROTOCOL_VERSION;
use sync_core::record::Entity;

on_both_backends!(the_dashboard_and_the_alerts_query_only_what_the_server_exports);

const KEY_ID: &str = "k1";
const SECRET: &str = "platform-shared-secret-0123456789abcdef";

/// Labels Prometheus adds to every series it scrapes (not the server's).
const TARGET_LABELS: &[&str] = &["instance", "job"];

fn docs(file: &str) -> String {
    let path = format!("{}/../docs/grafana/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

async fn the_dashboard_and_the_alerts_query_only_what_the_server_exports(app: TestApp) {
    let dashboard: Value = serde_json::from_str(&docs("seedling.json")).expect("dashboard JSON");
    let alerts = docs("alerts.yml");
    let stand_in = StandIn::start(KEY_ID, SECRET).await;
    let endpoint = stand_in.endpoint();
    let mut app = app;
    app.restart_with(|config| {
        config.metrics_on_public_port = true;
        config.max_sync_queued = 0;
        config.integration_endpoint = endpoint;
        config.integration_worker = true;
        config.integration_key_id = KEY_ID.to_owned();
        config.integration_signing_secret = Secret::new(SECRET);
        config.integration_poll_interval_ms = 10;
    })
    .await;
    let scrape = traffic(&app, &stand_in).await;
    let exported = Exported::parse(&scrape);

    // The dashboard: one Prometheus data source variable that every query
    // goes through, and only exported names and labels.
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("variables");
    assert!(
        variables
            .iter()
            .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "a DS_PROMETHEUS data source variable"
    );
    let mut queries = Vec::new();
    collect_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 20, "the dashboard's queries: {queries:?}");
    let mut used = BTreeSet::new();
    for query in &queries {
        used.extend(exported.check(query));
    }
    let mut datasources = Vec::new();
    collect_datasources(&dashboard["panels"], &mut datasources);
    for datasource in &datasources {
        assert_eq!(
            datasource["uid"], "${DS_PROMETHEUS}",
            "a panel or query on another data source: {datasource}"
        );
    }

    // Every family the server exports has a panel.
    let families: BTreeSet<&str> = exported.families.keys().map(String::as_str).collect();
    let shown: BTreeSet<&str> = used.iter().map(|name| exported.family_of(name)).collect();
    let missing: Vec<_> = families.difference(&shown).collect();
    assert!(missing.is_empty(), "no panel for {missing:?}");

    // The alert rules on the server's metrics (the others are Patroni's).
    let mut in_alerts = BTreeSet::new();
    for expr in rule_expressions(&alerts) {
        if expr.contains("seedling_") {
            in_alerts.extend(exported.check(&expr));
        }
    }
    for expected in [
        "seedling_outbox_messages",
        "seedling_outbox_lag_seconds",
        "seedling_database_unreachable",
        "seedling_sync_turned_away_total",
        "seedling_http_requests_total",
    ] {
        assert!(in_alerts.contains(expected), "no alert on {expected}");
    }
}

/// Traffic that makes every metric appear, then the scrape.
async fn traffic(app: &TestApp, stand_in: &StandIn) -> String {
    let fixture = Fixture::load(app).await;
    // A child added to the register: its message goes to the platform.
    let mut admin = Device::sign_in(app, "admin").await;
    let child = admin.create_child(app, fixture.village_a1, "周小满").await;
    // Two phones of one director edit one visit: a conflict, resolved.
    let mut phone_a = Device::sign_in(app, "director-a1").await;
    let mut phone_b = Device::sign_in(app, "director-a1").await;
    phone_a.pull_all(app).await;
    let day = (chrono::Utc::now() - chrono::Duration::days(1)).date_naive();
    let (visit_id, visit) =
        phone_a.new_visit(child, fixture.village_a1, &format!("{day}T10:00:00+08:00"));
    phone_a
        .push(
            app,
            &[visit
                .set("observations", json!({"living": "生活正常"}))
                .build()],
        )
        .await;
    phone_b.pull_all(app).await;
    for (phone, text) in [(&mut phone_a, "下周电话回访"), (&mut phone_b, "联系学校")] {
        let edit = phone
            .update(Entity::Visit, visit_id)
            .set("follow_up", json!(text))
            .build();
        phone.push(app, &[edit]).await;
    }
    let supervisor = app.token_for("supervisor-a").await;
    let (status, queue) = app
        .call(Method::GET, "/api/v1/conflicts", Some(&supervisor), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    let conflict = queue["conflicts"][0]["id"]
        .as_str()
        .expect("a conflict")
        .to_owned();
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/conflicts/{conflict}/resolve"),
            Some(&supervisor),
            Some(json!({"action": "keep"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Every sync slot taken and no room to wait: a push turned away.
    let cap = u32::try_from(app.state.config.max_sync_in_flight).expect("cap");
    let held = app
        .state
        .sync_slots
        .clone()
        .acquire_many_owned(cap)
        .await
        .expect("the slots");
    let (status, body) = phone_a.push_raw(app, &[], PROTOCOL_VERSION).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "server_busy",
    );
    drop(held);

    wait_until("the child's message at the platform", || async {
        !stand_in.applied().is_empty()
    })
    .await;
    // The worker records the attempt after the platform's answer.
    let scrape = || async {
        let response = app
            .http
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("scrape");
        response.text().await.expect("the scrape's text")
    };
    wait_until("the delivery in the metrics", || async {
        let text = scrape().await;
        text.contains("seedling_delivery_latency_seconds_bucket")
            && text.contains(r#"seedling_delivery_attempts_total{outcome="delivered"}"#)
    })
    .await;
    scrape().await
}

/// What a scrape exports: each family (the name in its `# TYPE` line),
/// and the label keys of each series name.
struct Exported {
    families: BTreeMap<String, String>,
    labels: BTreeMap<String, BTreeSet<String>>,
}

impl Exported {
    fn parse(scrape: &str) -> Self {
        let mut families = BTreeMap::new();
        let mut labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in scrape.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut words = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (words.next(), words.next()) {
                    families.insert(name.to_owned(), kind.to_owned());
                }
            } else if !line.starts_with('#') && !line.is_empty() {
                for selector in selectors(line) {
                    labels
                        .entry(selector.name)
                        .or_default()
                        .extend(selector.labels);
                }
            }
        }
        families.retain(|name, _| name.starts_with("seedling_"));
        assert!(
            families.len() >= 15,
            "the scrape's families: {families:?}\n{scrape}"
        );
        Self { families, labels }
    }

    /// The family a series name belongs to (a histogram's `_bucket`,
    /// `_sum` and `_count` belong to the histogram).
    fn family_of<'a>(&self, name: &'a str) -> &'a str {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && self
                    .families
                    .get(base)
                    .is_some_and(|kind| kind == "histogram")
            {
                return base;
            }
        }
        name
    }

    /// Checks the names and labels `expr` selects and the labels it groups
    /// by; answers the names.
    fn check(&self, expr: &str) -> BTreeSet<String> {
        let found = selectors(expr);
        let mut names = BTreeSet::new();
        let mut known = BTreeSet::new();
        for selector in &found {
            let exported = self.labels.get(&selector.name).unwrap_or_else(|| {
                panic!(
                    "{} is not exported (in: {expr}); the server exports {:?}",
                    selector.name,
                    self.labels.keys().collect::<Vec<_>>()
                )
            });
            for label in &selector.labels {
                assert!(
                    exported.contains(label) || TARGET_LABELS.contains(&label.as_str()),
                    "{} has no label {label} (in: {expr}); it has {exported:?}",
                    selector.name
                );
            }
            known.extend(exported.iter().cloned());
            names.insert(selector.name.clone());
        }
        for label in grouping_labels(expr) {
            assert!(
                known.contains(&label) || TARGET_LABELS.contains(&label.as_str()),
                "grouped by {label}, which none of its metrics has (in: {expr})"
            );
        }
        names
    }
}

/// A metric name and the label keys matched on it.
#[derive(Debug)]
struct Selector {
    name: String,
    labels: Vec<String>,
}

/// Every `seedling_…` name in `text`, with the keys of the label matchers
/// (or, in a scrape, the labels) that follow it in braces.
fn selectors(text: &str) -> Vec<Selector> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(offset) = text[at..].find("seedling_") {
        let start = at + offset;
        let mut end = start;
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        at = end;
        if start > 0 && ident(bytes[start - 1]) {
            continue;
        }
        let mut labels = Vec::new();
        if bytes.get(end) == Some(&b'{') {
            let (keys, close) = matcher_keys(text, end + 1);
            labels = keys;
            at = close;
        }
        found.push(Selector {
            name: text[start..end].to_owned(),
            labels,
        });
    }
    found
}

/// The keys of `key op "value", …` from `from` up to the closing brace,
/// and the offset after it.
fn matcher_keys(text: &str, from: usize) -> (Vec<String>, usize) {
    let bytes = text.as_bytes();
    let mut keys = Vec::new();
    let mut i = from;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] == b'}' {
            return (keys, i + 1);
        }
        let key_start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        keys.push(text[key_start..i].to_owned());
        while i < bytes.len() && bytes[i] != b'"' {
            i += 1;
        }
        i += 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        i += 1;
    }
}

/// The labels of every `by (…)` and `on (…)` clause in `expr`.
fn grouping_labels(expr: &str) -> Vec<String> {
    let mut labels = Vec::new();
    for keyword in ["by", "on"] {
        let mut rest = expr;
        while let Some(offset) = rest.find(keyword) {
            let before = rest[..offset].chars().next_back();
            let after = rest[offset + keyword.len()..].trim_start();
            rest = &rest[offset + keyword.len()..];
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let Some(list) = after.strip_prefix('(') else {
                continue;
            };
            let list = &list[..list.find(')').expect("a closing parenthesis")];
            labels.extend(
                list.split(',')
                    .map(str::trim)
                    .filter(|label| !label.is_empty())
                    .map(str::to_owned),
            );
        }
    }
    labels
}

/// Every PromQL query of the dashboard: the panels' `expr` and the
/// variables' queries.
fn collect_queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(text)) => out.push(text.clone()),
                    _ => collect_queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_queries(item, out)),
        _ => {}
    }
}

/// The `expr` of every rule in a Prometheus rule file: on its line, or the
/// lines indented under `expr: >-`.
fn rule_expressions(rules: &str) -> Vec<String> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut exprs = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let rest = rest.trim();
        if !matches!(rest, ">-" | ">" | "|" | "|-") {
            exprs.push(rest.to_owned());
            continue;
        }
        let mut block = Vec::new();
        while let Some(next) = lines.peek() {
            if next.trim().is_empty() || indent(next) <= indent(line) {
                break;
            }
            block.push(next.trim());
            lines.next();
        }
        exprs.push(block.join(" "));
    }
    exprs
}

/// Every data source a panel or query names.
fn collect_datasources<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if key == "datasource" {
                    out.push(value);
                } else {
                    collect_datasources(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_datasources(item, out)),
        _ => {}
    }
}

/// The parsers on the shapes the dashboard uses.
#[test]
fn selectors_and_groupings_are_read_from_promql() {
    let expr = r#"histogram_quantile(0.99, sum by (route, le) (rate(seedling_http_request_duration_seconds_bucket{instance=~"$instance", route=~"/a,b"}[5m]))) / on (instance) seedling_sync_in_flight"#;
    let found = selectors(expr);
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(
        found[0].name,
        "seedling_http_request_duration_seconds_bucket"
    );
    assert_eq!(found[0].labels, ["instance", "route"]);
    assert_eq!(found[1].name, "seedling_sync_in_flight");
    assert!(found[1].labels.is_empty());
    assert_eq!(grouping_labels(expr), ["route", "le", "instance"]);
    let rules = "      - alert: A\n        expr: >-\n          sum(x)\n            > 1\n        for: 5m\n      - alert: B\n        expr: y == 1\n";
    assert_eq!(rule_expressions(rules), ["sum(x) > 1", "y == 1"]);
    let scrape = r#"seedling_outbox_messages{status="parked"} 0"#;
    assert_eq!(selectors(scrape)[0].labels, ["status"]);
}
