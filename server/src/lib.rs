//! Seedling server: the REST sync API and the review, report, admin and
//! integration APIs, on axum and SeaORM.
//!
//! Three layers, visible in the module tree: [`routes`] (HTTP), [`service`]
//! (domain operations, one transaction each) and [`repo`] (queries over the
//! [`entity`] models). [`app`] builds the router; [`serve`] runs it on a
//! listener until a shutdown signal.

pub mod auth;
pub mod calendar;
pub mod config;
pub mod crypto;
pub mod entity;
pub mod error;
pub mod events;
mod listen;
pub mod metrics;
pub mod outage;
pub mod repo;
pub mod routes;
pub mod service;
pub mod startup;
pub mod state;
pub mod storage;
pub mod web;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

pub use routes::{app, openapi};
pub use state::AppState;

/// Serves the application on `listener` until `shutdown` completes, then
/// lets in-flight requests finish for up to the configured grace period.
/// The integration delivery worker runs beside it when configured and stops
/// with it, finishing the deliveries it has in flight.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let (stop_worker, worker_stop) = tokio::sync::watch::channel(false);
    let worker = service::integration::worker::spawn(&state, worker_stop)
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let feed = events::spawn(
        state.events.clone(),
        state.db.clone(),
        state.config.effective_database_url(),
        stop_worker.subscribe(),
    );
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let streams = state.events.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = stop_worker.send(true);
        // Open event streams would hold the shutdown for its whole grace.
        streams.close();
        let _ = signalled_tx.send(());
    };
    crate::metrics::install();
    let metrics_server = serve_metrics(&state).await?;
    let header_read_timeout = Duration::from_secs(state.config.header_read_timeout_secs);
    let server = listen::run(listener, app(state), header_read_timeout, shutdown);
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        () = async {
            let _ = signalled_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; stopping");
            Ok(())
        }
    };
    if let Some(metrics_server) = metrics_server {
        metrics_server.abort();
    }
    feed.abort();
    if let Some(worker) = worker
        && tokio::time::timeout(grace, worker).await.is_err()
    {
        tracing::warn!("the delivery worker did not stop in time");
    }
    result
}

/// Starts the metrics listener on `metrics_listen`, when set. A listener
/// that cannot bind stops start-up, as the public one does.
async fn serve_metrics(state: &AppState) -> std::io::Result<Option<tokio::task::JoinHandle<()>>> {
    let address = state.config.metrics_listen.trim();
    if address.is_empty() {
        return Ok(None);
    }
    let listener = TcpListener::bind(address).await.map_err(|err| {
        std::io::Error::new(err.kind(), format!("metrics_listen {address}: {err}"))
    })?;
    tracing::info!(address = %listener.local_addr()?, "serving /metrics");
    let router = routes::metrics::router(state.clone());
    Ok(Some(tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(error = %err, "the metrics listener stopped");
        }
    })))
}
