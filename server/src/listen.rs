//! The connection loop under [`crate::serve`]: hyper's HTTP/1 and HTTP/2
//! server with a timer, which `axum::serve` does not configure, so that a
//! client that sends its request line and headers too slowly — or opens a
//! connection and sends nothing — is disconnected after
//! `header_read_timeout_secs` instead of holding a connection forever. The
//! request body and the whole request have their own limits in the router
//! (`body_read_timeout_secs`, `request_timeout_secs`; see
//! [`crate::routes::app`]).
//!
//! On shutdown it stops accepting, asks every open connection to finish its
//! request in flight and close, and returns once they all have.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

/// Serves `router` on `listener` until `shutdown` completes and every
/// connection open then has finished.
pub async fn run(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    builder.http2().timer(TokioTimer::new());

    // Dropping `stop` tells every connection to close after its request in
    // flight; `closed` completes when every connection's `open` is dropped.
    let (stop, stopping) = watch::channel(());
    let (closed, open) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(router.clone().map_request(
            move |request: Request<Incoming>| {
                let mut request = request.map(Body::new);
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            },
        ));
        let builder = builder.clone();
        let mut stopping = stopping.clone();
        let open = open.clone();
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte; a client that
            // connects and sends nothing is held to the same limit here.
            let mut probe = [0u8; 1];
            let first_byte = tokio::time::timeout(header_read_timeout, stream.peek(&mut probe));
            tokio::select! {
                arrived = first_byte => if arrived.is_err() {
                    tracing::debug!(%peer, "no request within the header read timeout; closing");
                    return;
                },
                _ = stopping.changed() => return,
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(result),
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_end(connection.await);
                }
            }
            drop(open);
        });
    }
    drop(listener);
    drop(stop);
    drop(open);
    closed.closed().await;
    Ok(())
}

fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(err) = result {
        // A header read timeout, a reset by the peer, a malformed request:
        // the connection is gone, the server is not affected.
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// Errors of one connection (the peer gave up before it was accepted) are
/// skipped; others (too many open files) are logged and retried after a
/// pause, so the loop never spins.
async fn accept_failed(err: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
