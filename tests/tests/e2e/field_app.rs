//! The field app's files as the server hands them out at `/app/`: the
//! shell, the service worker allowed the whole app, the manifest, cheap
//! revalidation for phones on slow lines, compression, a strict content
//! security policy, and nothing outside the bundle. What the app does in a
//! browser is tested by app/test (headless Chromium).

use reqwest::header::{self, HeaderMap};
use reqwest::{Client, StatusCode, redirect};
use seedling_tests::{Backend, TestApp};

fn client() -> Client {
    Client::builder()
        .redirect(redirect::Policy::none())
        .no_gzip()
        .build()
        .expect("http client")
}

async fn get(app: &TestApp, path: &str, headers: HeaderMap) -> reqwest::Response {
    client()
        .get(app.url(path))
        .headers(headers)
        .send()
        .await
        .expect("request sent")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} on {}", response.url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_field_app_is_served_at_app_with_its_service_worker_and_manifest() {
    let app = TestApp::new(Backend::Sqlite).await;

    let bare = get(&app, "/app", HeaderMap::new()).await;
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(header(&bare, "location"), "/app/");

    let shell = get(&app, "/app/", HeaderMap::new()).await;
    assert_eq!(shell.status(), StatusCode::OK);
    assert!(header(&shell, "content-type").starts_with("text/html"));
    let csp = header(&shell, "content-security-policy").to_owned();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "worker-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let etag = header(&shell, "etag").to_owned();
    let html = shell.text().await.expect("the page");
    assert!(html.contains("manifest.webmanifest"), "{html}");

    // A phone that has the page asks again and gets 304, no body.
    let mut again = HeaderMap::new();
    again.insert(header::IF_NONE_MATCH, etag.parse().unwrap());
    let unchanged = get(&app, "/app/", again).await;
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert!(unchanged.bytes().await.unwrap().is_empty());

    let worker = get(&app, "/app/sw.js", HeaderMap::new()).await;
    assert_eq!(worker.status(), StatusCode::OK);
    assert!(header(&worker, "content-type").contains("javascript"));
    assert_eq!(header(&worker, "service-worker-allowed"), "/app/");

    let manifest = get(&app, "/app/manifest.webmanifest", HeaderMap::new()).await;
    assert_eq!(manifest.status(), StatusCode::OK);
    let manifest: serde_json::Value =
        serde_json::from_slice(&manifest.bytes().await.unwrap()).expect("the manifest is JSON");
    assert_eq!(manifest["start_url"], "/app/");
    assert!(
        manifest["icons"].as_array().is_some_and(|i| !i.is_empty()),
        "{manifest}"
    );
    for icon in manifest["icons"].as_array().unwrap() {
        let src = icon["src"].as_str().expect("an icon path");
        let path = if src.starts_with('/') {
            src.to_owned()
        } else {
            format!("/app/{src}")
        };
        let image = get(&app, &path, HeaderMap::new()).await;
        assert_eq!(image.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&image, "content-type"), "image/png", "{path}");
    }

    // The script goes compressed to a phone that accepts it.
    let mut gzip = HeaderMap::new();
    gzip.insert(header::ACCEPT_ENCODING, "gzip".parse().unwrap());
    let script = get(&app, "/app/app.js", gzip).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(header(&script, "content-encoding"), "gzip");

    // A deep link opens the app; a missing file is a 404 in the envelope.
    let deep = get(&app, "/app/children/123", HeaderMap::new()).await;
    assert_eq!(deep.status(), StatusCode::OK);
    assert!(header(&deep, "content-type").starts_with("text/html"));
    let missing = get(&app, "/app/nothing-here.js", HeaderMap::new()).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value = missing.json().await.expect("an error envelope");
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_bundle_is_served() {
    let app = TestApp::new(Backend::Sqlite).await;
    for path in [
        "/app/../Cargo.toml",
        "/app/%2e%2e/Cargo.toml",
        "/app/%2e%2e%2fCargo.toml",
        "/app/..%5cCargo.toml",
        "/app//etc/passwd",
        "/app/%2e%2e/%2e%2e/server/src/main.rs",
    ] {
        let response = get(&app, path, HeaderMap::new()).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST,
            "{path}: {status} {body}"
        );
        assert!(
            !body.contains("[workspace]") && !body.contains("fn main"),
            "{path}: {body}"
        );
    }
}
