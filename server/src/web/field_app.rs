//! The director's field app under `/app/`: the built bundle of `app/dist/`
//! (see docs/FIELD-APP.md), an installable web app whose service worker
//! keeps the shell for offline use. Release builds compile the files into
//! the binary; debug builds read them from `app/dist/` on each request, so
//! a rebuilt bundle needs no rebuilt server.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use tower_http::compression::CompressionLayer;

use crate::error::AppError;
use crate::state::AppState;

#[derive(RustEmbed)]
#[folder = "../app/dist/"]
struct Bundle;

/// The app talks to this server only; photos are shown from blob: URLs of
/// the phone's own copies.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

const INDEX: &str = "index.html";

/// One file of the bundle, revalidated by its hash: a phone on a slow line
/// gets 304 for what it has, and the service worker sees new versions.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(found) = Bundle::get(path).filter(|_| inside(path)) else {
        return AppError::not_found("no such file of the field app").into_response();
    };
    let etag = format!("\"{}\"", hex::encode(found.metadata.sha256_hash()));
    let mut answer = if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        found.data.into_owned().into_response()
    };
    let mime = found.metadata.mimetype();
    let set = answer.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime) {
        set.insert(header::CONTENT_TYPE, value);
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        set.insert(header::ETAG, value);
    }
    set.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    set.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if path == "sw.js" {
        set.insert("service-worker-allowed", HeaderValue::from_static("/app/"));
    }
    answer
}

/// The bundle is plain relative paths; never a way out of it.
fn inside(path: &str) -> bool {
    !path
        .split(['/', '\\'])
        .any(|part| part == ".." || part.is_empty())
}

/// A path inside the app: a file of the bundle, or — for a path with no
/// file extension, such as a deep link — the app's page.
fn resolve(path: &str) -> &str {
    if path.is_empty() || (inside(path) && !path.contains('.') && Bundle::get(path).is_none()) {
        INDEX
    } else {
        path
    }
}

/// The field app's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/app", get(|| async { Redirect::permanent("/app/") }))
        .route(
            "/app/",
            get(|headers: HeaderMap| async move { file(INDEX, &headers) }),
        )
        .route(
            "/app/{*path}",
            get(|Path(path): Path<String>, headers: HeaderMap| async move {
                file(resolve(&path), &headers)
            }),
        )
        .layer(CompressionLayer::new())
}
