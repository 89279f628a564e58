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
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
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

    /// The lines of the console's table `const NAME = {` … `};`.
    fn table(name: &str) -> Vec<&'static str> {
        let start = SCRIPT
            .find(&format!("const {name} = {{"))
            .unwrap_or_else(|| panic!("console.js has its {name} table"));
        let body = &SCRIPT[start..];
        let body = &body[..body.find("\n};").expect("the table ends")];
        body.lines().skip(1).collect()
    }

    /// `key: ["a", "b", …],` → (key, [a, b, …]).
    fn entry(line: &str) -> Option<(String, Vec<String>)> {
        let (key, rest) = line.trim().split_once(':')?;
        let list = rest
            .trim()
            .strip_prefix('[')?
            .trim_end_matches(',')
            .strip_suffix(']')?;
        let items = list
            .split("\", \"")
            .map(|item| item.trim().trim_matches('"').to_owned())
            .collect();
        Some((key.trim().to_owned(), items))
    }

    /// The keys of the Chinese words the conflict and visit pages add to
    /// the console (`Object.assign(T.zh, {` … `});`).
    fn added_chinese_words() -> Vec<(String, String)> {
        let start = SCRIPT
            .find("Object.assign(T.zh, {")
            .expect("console.js adds the pages' Chinese words");
        let body = &SCRIPT[start..];
        let body = &body[..body.find("\n});").expect("the words end")];
        let mut words = Vec::new();
        for line in body.lines().skip(1) {
            // `key: "…", key: "…",` — several to a line.
            let mut rest = line.trim();
            while let Some((key, after)) = rest.split_once(": \"") {
                let Some((text, tail)) = after.split_once('"') else {
                    break;
                };
                words.push((
                    key.trim().trim_start_matches(',').trim().to_owned(),
                    text.to_owned(),
                ));
                rest = tail.trim_start_matches(',').trim();
            }
        }
        words
    }

    fn is_chinese(text: &str) -> bool {
        text.chars()
            .any(|ch| ('\u{4e00}'..='\u{9fff}').contains(&ch))
    }

    #[test]
    fn every_synced_field_has_a_chinese_label_and_the_input_of_its_type() {
        use sync_core::record::Entity;
        use sync_core::rules::{ValueType, rules_for};

        let options: Vec<(String, Vec<String>)> =
            table("OPTIONS").into_iter().filter_map(entry).collect();
        let option_list = |name: &str| {
            options
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, list)| list.clone())
                .unwrap_or_else(|| panic!("OPTIONS has no list {name}"))
        };
        // FIELDS: `  entity: {` then `    field: ["type", "中文", "English"],`.
        let mut console: Vec<(String, String, Vec<String>)> = Vec::new();
        let mut entity = String::new();
        for line in table("FIELDS") {
            if let Some(name) = line.trim().strip_suffix(": {") {
                entity = name.to_owned();
            } else if let Some((field, spec)) = entry(line) {
                console.push((entity.clone(), field, spec));
            }
        }
        for entity in Entity::ALL {
            for rule in rules_for(entity).fields {
                let (_, _, spec) = console
                    .iter()
                    .find(|(e, f, _)| e == entity.as_str() && f == rule.name)
                    .unwrap_or_else(|| {
                        panic!("console.js FIELDS has no {}.{}", entity.as_str(), rule.name)
                    });
                assert_eq!(spec.len(), 3, "{}.{}: {spec:?}", entity.as_str(), rule.name);
                assert!(
                    is_chinese(&spec[1]),
                    "{}.{} has no Chinese label: {spec:?}",
                    entity.as_str(),
                    rule.name
                );
                let expected = match rule.ty {
                    ValueType::Text => "text",
                    ValueType::Date => "date",
                    ValueType::DateTime => "datetime",
                    ValueType::Uuid => "uuid",
                    ValueType::Count => "count",
                    ValueType::Number => "number",
                    ValueType::Object => "object",
                    ValueType::Place => "place",
                    ValueType::OneOf(values) => {
                        let list = spec[0].strip_prefix("one_of:").unwrap_or_else(|| {
                            panic!(
                                "{}.{} is one of a list: {spec:?}",
                                entity.as_str(),
                                rule.name
                            )
                        });
                        assert_eq!(
                            option_list(list),
                            values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>(),
                            "OPTIONS.{list} differs from the rules of {}.{}",
                            entity.as_str(),
                            rule.name
                        );
                        spec[0].as_str()
                    }
                    ValueType::Items(_) => {
                        assert!(spec[0].starts_with("items:"), "{spec:?}");
                        spec[0].as_str()
                    }
                };
                assert_eq!(
                    spec[0],
                    expected,
                    "{}.{} is edited as {} in the console",
                    entity.as_str(),
                    rule.name,
                    spec[0]
                );
            }
        }
        for (entity, field, _) in &console {
            let known = Entity::ALL
                .iter()
                .any(|e| e.as_str() == entity && rules_for(*e).field(field).is_some());
            assert!(
                known,
                "console.js FIELDS names {entity}.{field}, which does not sync"
            );
        }
    }

    #[test]
    fn every_refusal_reason_and_conflict_kind_is_explained_in_chinese() {
        use strum::IntoEnumIterator;
        use sync_core::merge::{ConflictKind, Flag, Reason};
        use sync_core::rules::FieldKind;

        let reasons: Vec<(String, Vec<String>)> =
            table("REASONS").into_iter().filter_map(entry).collect();
        for reason in Reason::VARIANTS {
            let code: &str = reason.into();
            let (_, words) = reasons
                .iter()
                .find(|(key, _)| key == code)
                .unwrap_or_else(|| panic!("console.js REASONS has no {code}"));
            assert!(
                is_chinese(&words[0]),
                "the reason {code} is not Chinese: {words:?}"
            );
        }
        let words = added_chinese_words();
        let mut kinds: Vec<String> = ConflictKind::VARIANTS
            .iter()
            .map(|k| <&str>::from(k).to_owned())
            .collect();
        kinds.extend(["refused_field", "rejected_mutation", "amendment"].map(str::to_owned));
        kinds.extend(
            Flag::iter()
                .filter(|f| *f != Flag::ClockSkewed)
                .map(|f| <&str>::from(&f).to_owned()),
        );
        for kind in &kinds {
            let key = format!("why_{kind}");
            assert!(
                words.iter().any(|(k, text)| *k == key && is_chinese(text)),
                "console.js explains no {kind} in Chinese ({key})"
            );
            assert!(
                SCRIPT.contains(&format!(" {kind}: \"")),
                "console.js T has no label for {kind}"
            );
        }
        for rule in FieldKind::VARIANTS {
            let code: &str = rule.into();
            assert!(
                SCRIPT.contains(&format!(" {code}: \"")),
                "console.js T has no words for the rule {code}"
            );
        }
        for (key, text) in &words {
            assert!(!text.is_empty(), "{key} is empty");
        }
    }
}
