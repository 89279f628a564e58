//! Slow and stalled clients, over raw TCP sockets: a client that sends half
//! its headers, or nothing at all, is disconnected after
//! `header_read_timeout_secs`; a body that stops arriving is answered 408
//! `body_timeout` after `body_read_timeout_secs` and nothing of it is kept;
//! a body that trickles in forever runs into `request_timeout_secs` (503
//! `timeout`). Meanwhile every other client is served.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use seedling_tests::{Backend, Fixture, TestApp};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::attachments::support::{download, photo, sha256_hex, status_of, stored_files};
use crate::on_both;

on_both!(
    clients_that_stall_in_their_headers_are_disconnected_while_others_are_served,
    a_stalled_upload_is_answered_408_frees_its_connection_and_keeps_nothing,
    a_stalled_push_is_answered_408,
    a_body_that_trickles_forever_runs_into_the_request_timeout,
);

/// Short limits, so the tests take seconds.
async fn app_with_short_timeouts(backend: Backend) -> TestApp {
    TestApp::with_config(backend, |config| {
        config.header_read_timeout_secs = 1;
        config.body_read_timeout_secs = 1;
        config.request_timeout_secs = 4;
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    let addr = app.base_url.trim_start_matches("http://");
    TcpStream::connect(addr).await.expect("connect")
}

/// Everything the server sends until it closes the connection (or resets
/// it), and how long that took. Fails if it is still open after 20 s.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server never closed the connection");
    (received, started.elapsed())
}

/// The status code and JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| serde_json::from_str(body).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    (status, body)
}

async fn healthz_answers(app: &TestApp) {
    let started = Instant::now();
    // A new connection: a pooled one may be the idle one the server closes.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let response = fresh
        .get(app.url("/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("another client is served");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "served at once, not after the stalled clients: {:?}",
        started.elapsed()
    );
}

async fn clients_that_stall_in_their_headers_are_disconnected_while_others_are_served(
    backend: Backend,
) {
    let app = app_with_short_timeouts(backend).await;
    let mut stalled = Vec::new();
    for _ in 0..50 {
        let mut stream = connect(&app).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: seedling\r\nAccept: ")
            .await
            .expect("half the headers");
        stalled.push(stream);
    }
    let mut silent = connect(&app).await;
    // One request answered, then nothing more on a kept-alive connection.
    let mut idle = connect(&app).await;
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: seedling\r\n\r\n")
        .await
        .expect("a whole request");
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.expect("its answer");
    assert_eq!(&answer, b"HTTP/1.1 200");
    healthz_answers(&app).await;

    for stream in &mut stalled {
        let (received, _) = until_closed(stream).await;
        // hyper answers 408 or just closes; either way the connection is free.
        assert!(
            received.is_empty() || received.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&received)
        );
    }
    let (received, took) = until_closed(&mut silent).await;
    assert!(
        !received.starts_with(b"HTTP/1.1 2"),
        "a connection that sends nothing is closed too"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    let (_, took) = until_closed(&mut idle).await;
    assert!(
        took < Duration::from_secs(10),
        "an idle kept-alive connection is closed: {took:?}"
    );
    healthz_answers(&app).await;
}

async fn a_stalled_upload_is_answered_408_frees_its_connection_and_keeps_nothing(backend: Backend) {
    let app = app_with_short_timeouts(backend).await;
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let photo = photo(200_000, 11);
    let sha = sha256_hex(&photo);

    let mut stream = connect(&app).await;
    let head = format!(
        "PUT /api/v1/attachments/{sha} HTTP/1.1\r\nHost: seedling\r\n\
         Authorization: Bearer {token}\r\nContent-Type: image/jpeg\r\n\
         Content-Range: bytes 0-{}/{}\r\nContent-Length: {}\r\n\r\n",
        photo.len() - 1,
        photo.len(),
        photo.len()
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream
        .write_all(&photo[..50_000])
        .await
        .expect("a quarter of the body");
    healthz_answers(&app).await;

    let (received, took) = until_closed(&mut stream).await;
    let (status, body) = parse_answer(&received);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "body_timeout", "{body}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    let now = status_of(&app, &token, &sha).await;
    assert_eq!(now["received_bytes"], 0, "{now}");
    let (status, _) = download(&app, &token, &sha).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));
}

/// A server, and a signed-in director's push announcing `length` bytes of
/// which only `start` has been sent.
async fn push_started(backend: Backend, length: usize, start: &str) -> (TestApp, TcpStream) {
    let app = app_with_short_timeouts(backend).await;
    Fixture::load(&app).await;
    let token = app.token_for("director-a1").await;
    let mut stream = connect(&app).await;
    let head = format!(
        "POST /api/v1/sync/push HTTP/1.1\r\nHost: seedling\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n{start}"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("the beginning");
    (app, stream)
}

async fn a_stalled_push_is_answered_408(backend: Backend) {
    let (_app, mut stream) =
        push_started(backend, 5_000, "{\"protocol_version\": 1, \"mutations\": [").await;
    let (received, _) = until_closed(&mut stream).await;
    let (status, body) = parse_answer(&received);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "body_timeout", "{body}");
}

async fn a_body_that_trickles_forever_runs_into_the_request_timeout(backend: Backend) {
    let (_app, mut stream) = push_started(backend, 100_000, "").await;
    // A byte every 300 ms: never a pause long enough for the body timeout.
    let started = Instant::now();
    let mut received = Vec::new();
    while started.elapsed() < Duration::from_secs(20) {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
        if received.windows(4).any(|w| w == b"\r\n\r\n") && received.ends_with(b"}}") {
            break;
        }
    }
    let (status, body) = parse_answer(&received);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}
