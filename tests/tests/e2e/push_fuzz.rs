//! The push decoder through the real router, with a real token and
//! database: arbitrary bytes, arbitrary JSON, and a valid push with any
//! value replaced, a key removed, a byte flipped or the text cut. Every
//! answer is one the OpenAPI document lists for `POST /api/v1/sync/push`,
//! never a 5xx, and every refusal is the error envelope with a code and a
//! message. (The pure decoder and the merge are fuzzed at large case
//! counts in `sync-core/tests/fuzz.rs`.)
//!
//! Cases: `SEEDLING_PUSH_FUZZ_CASES`, else `PROPTEST_CASES` capped at 256
//! (each case is an HTTP request and maybe a write). Failures are saved to
//! `tests/proptest-regressions/push_fuzz.txt` and replayed first.

use axum::body::Body;
use axum::http::{Request, header};
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use seedling_tests::{Device, Fixture, TestApp, on_both_backends};
use serde_json::Value;
use sync_core::protocol::PushRequest;
use sync_core::testing::{any_json, mutate_json};
use tower::ServiceExt;

on_both_backends!(push_bodies_of_any_shape_get_a_documented_answer);

fn cases() -> u32 {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    env("SEEDLING_PUSH_FUZZ_CASES").unwrap_or_else(|| env("PROPTEST_CASES").unwrap_or(256).min(256))
}

/// The body to send: raw bytes, any JSON, or the valid push mutated.
fn any_body(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    let mutated = (
        prop::collection::vec(any::<usize>(), 0..6),
        any_json(),
        any::<bool>(),
        any::<prop::sample::Index>(),
        any::<(prop::sample::Index, u8)>(),
        0..3u8,
    )
        .prop_map(move |(steps, with, remove, cut, (at, byte), how)| {
            let mut value = valid.clone();
            mutate_json(&mut value, &steps, with, remove);
            let mut text = serde_json::to_vec(&value).expect("serialisable");
            match how {
                0 => {}
                1 => {
                    let i = at.index(text.len());
                    text[i] ^= byte;
                }
                _ => text.truncate(cut.index(text.len() + 1)),
            }
            text
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any_json().prop_map(|v| serde_json::to_vec(&v).expect("serialisable")),
        mutated,
    ]
}

async fn push_bodies_of_any_shape_get_a_documented_answer(app: TestApp) {
    let fixture = Fixture::load(&app).await;
    let mut admin = Device::sign_in(&app, "admin").await;
    let child = admin.create_child(&app, fixture.village_a1, "王小红").await;
    let mut phone = Device::sign_in(&app, "director-a1").await;
    let (_, visit) = phone.new_visit(child, fixture.village_a1, "2026-11-28T10:00:00+08:00");
    let valid = serde_json::to_value(PushRequest {
        protocol_version: sync_core::protocol::PROTOCOL_VERSION,
        device_id: phone.id,
        device_hlc: phone.tick(),
        mutations: vec![visit.build()],
        cursor: None,
    })
    .expect("serialisable");

    let doc = serde_json::to_value(seedling_server::openapi()).expect("the document");
    let documented: Vec<u16> = doc["paths"]["/api/v1/sync/push"]["post"]["responses"]
        .as_object()
        .expect("push responses")
        .keys()
        .filter_map(|code| code.parse().ok())
        .collect();
    let router = seedling_server::app(app.state.clone());
    let token = phone.token.clone();
    let runtime = tokio::runtime::Handle::current();

    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/push_fuzz.txt",
        ))),
        ..Config::default()
    });
    let outcome = runner.run(&any_body(valid), |body| {
        let request = Request::post("/api/v1/sync/push")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .expect("a request");
        let (status, bytes) = tokio::task::block_in_place(|| {
            runtime.block_on(async {
                let response = router.clone().oneshot(request).await.expect("infallible");
                let status = response.status().as_u16();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .expect("body")
                    .to_bytes();
                (status, bytes)
            })
        });
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|_| TestCaseError::fail(format!("{status}: the answer is not JSON")))?;
        prop_assert!(status < 500, "{status}: {answer}");
        prop_assert!(
            documented.contains(&status),
            "{status} is not documented: {answer}"
        );
        if status == 200 {
            prop_assert!(answer["results"].is_array(), "{answer}");
        } else {
            let code = answer["error"]["code"].as_str().unwrap_or("");
            let message = answer["error"]["message"].as_str().unwrap_or("");
            prop_assert!(
                !code.is_empty() && !message.is_empty(),
                "{status}: {answer}"
            );
        }
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
