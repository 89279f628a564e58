//! Seedling server: the REST sync API and the review, report, admin and
//! integration APIs, on axum and SeaORM.
//!
//! Three layers, visible in the module tree: [`routes`] (HTTP), [`service`]
//! (domain operations, one transaction each) and [`repo`] (queries over the
//! [`entity`] models). [`app`] builds the router; [`serve`] runs it on a
//! listener until a shutdown signal.

pub mod auth;
pub mod config;
pub mod crypto;
pub mod entity;
pub mod error;
pub mod repo;
pub mod routes;
pub mod service;
pub mod startup;
pub mod state;
pub mod storage;

use std::future::{Future, IntoFuture};
use std::time::Duration;

use tokio::net::TcpListener;

pub use routes::{app, openapi};
pub use state::AppState;

/// Serves the application on `listener` until `shutdown` completes, then
/// lets in-flight requests finish for up to the configured grace period.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let grace = Duration::from_secs(state.config.shutdown_grace_secs);
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        let _ = signalled_tx.send(());
    };
    let server = axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .into_future();
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => result,
        () = async {
            let _ = signalled_rx.await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_secs = grace.as_secs(), "in-flight requests did not finish in time; stopping");
            Ok(())
        }
    }
}
