//! The supervisor console under `/console/` (and the field app under
//! `/app/`, in `web/field_app.rs`): one HTML page, a small
//! vanilla-JavaScript app and a style sheet, compiled into the binary and
//! served by Seedling itself (no CDN: the network may be closed). The app
//! calls the JSON API with the signed-in supervisor's token; it is
//! described in docs/CONSOLE.md.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::state::AppState;

mod field_app;

const INDEX: &str = include_str!("web/console.html");
const SCRIPT: &str = include_str!("web/console.js");
const STYLE: &str = include_str!("web/console.css");
/// Apache ECharts (npm package `echarts`, its `dist/echarts.common.min.js`),
/// vendored with its licence in `web/vendor/echarts/`; the version is in
/// the README there and in the address console.js loads it from.
const ECHARTS: &[u8] = include_bytes!("web/vendor/echarts/echarts.min.js");

/// Everything the console loads comes from this server.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        body,
    )
        .into_response()
}

/// A vendored library: its address carries its version, so it is cached
/// for a year.
fn vendored(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The console's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(field_app::router())
        .route(
            "/console",
            get(|| async { Redirect::permanent("/console/") }),
        )
        .route(
            "/console/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/console/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/console/echarts.min.js",
            get(|| async { vendored("text/javascript; charset=utf-8", ECHARTS) }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

#[cfg(test)]
mod tests {
    use strum::VariantArray;

    use super::SCRIPT;
    use crate::error::ErrorCode;

    /// The console's table of Chinese error messages (`ERRORS_ZH` in
    /// console.js), as `(code, message)` pairs.
    fn chinese_messages() -> Vec<(String, String)> {
        let start = SCRIPT
            .find("const ERRORS_ZH = {")
            .expect("console.js has its ERRORS_ZH table");
        let body = &SCRIPT[start..];
        let body = &body[..body.find("\n};").expect("the table ends")];
        body.lines()
            .skip(1)
            .filter_map(|line| {
                let (code, message) = line.trim().split_once(':')?;
                let message = message.trim().trim_end_matches(',').trim_matches('"');
                Some((code.trim().to_owned(), message.to_owned()))
            })
            .collect()
    }

    #[test]
    fn every_error_code_has_a_chinese_message_in_the_console() {
        let messages = chinese_messages();
        let missing: Vec<&str> = ErrorCode::VARIANTS
            .iter()
            .map(|code| code.as_str())
            .filter(|code| !messages.iter().any(|(c, m)| c == code && !m.is_empty()))
            .collect();
        assert!(
            missing.is_empty(),
            "console.js ERRORS_ZH has no Chinese message for {missing:?}"
        );
        let unknown: Vec<&str> = messages
            .iter()
            .map(|(c, _)| c.as_str())
            .filter(|c| !ErrorCode::VARIANTS.iter().any(|code| code.as_str() == *c))
            .collect();
        assert!(
            unknown.is_empty(),
            "ERRORS_ZH names codes the API never answers: {unknown:?}"
        );
        for (code, message) in &messages {
            assert!(
                message
                    .chars()
                    .any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch)),
                "the message for {code} is not Chinese: {message}"
            );
        }
    }
}
