//! The gauges `/metrics` reads from the database and the process when it is
//! scraped, then the rendered Prometheus text.

use crate::repo;
use crate::repo::integration::{DELIVERED, DELIVERING, PARKED, PENDING};
use crate::state::AppState;

/// Sets the gauges and renders every metric. A database that does not
/// answer leaves its gauges at their last values and is shown by
/// `seedling_database_unreachable`; the scrape itself still succeeds.
pub async fn scrape(state: &AppState) -> String {
    let handle = crate::metrics::install();
    let in_flight = state.config.max_sync_in_flight - state.sync_slots.available_permits();
    metrics::gauge!("seedling_sync_in_flight").set(in_flight as f64);
    metrics::gauge!("seedling_sync_max_in_flight").set(state.config.max_sync_in_flight as f64);
    let queued = state.sync_queued.load(std::sync::atomic::Ordering::Acquire);
    metrics::gauge!("seedling_sync_queued").set(queued as f64);
    let pushes = &state.pushes;
    metrics::gauge!("seedling_push_waiting").set(pushes.waiting() as f64);
    let (groups, grouped) = pushes.grouped();
    metrics::counter!("seedling_push_groups_total").absolute(groups);
    metrics::counter!("seedling_push_grouped_pushes_total").absolute(grouped);
    metrics::counter!("seedling_push_groups_failed_total").absolute(pushes.failed_groups());
    metrics::gauge!("seedling_event_streams").set(state.events.open_streams() as f64);
    for (pool, db) in [("writer", &state.db), ("reader", &state.reader)] {
        let (open, idle) = repo::pool_connections(db);
        metrics::gauge!("seedling_db_pool_connections", "pool" => pool, "state" => "idle")
            .set(idle as f64);
        metrics::gauge!("seedling_db_pool_connections", "pool" => pool, "state" => "busy")
            .set(f64::from(open) - idle as f64);
    }
    if let Err(err) = database_gauges(state).await {
        tracing::debug!(error = %err, "metrics: the database gauges were not read");
    }
    metrics::gauge!("seedling_database_unreachable").set(if state.outage.in_progress() {
        1.0
    } else {
        0.0
    });
    handle.render()
}

async fn database_gauges(state: &AppState) -> Result<(), sea_orm::DbErr> {
    let txn = repo::begin_snapshot(&state.reader).await?;
    let counts = repo::integration::status_counts(&txn).await?;
    for status in [PENDING, DELIVERING, DELIVERED, PARKED] {
        let count = counts
            .iter()
            .find(|(name, _)| name == status)
            .map_or(0, |(_, count)| *count);
        metrics::gauge!("seedling_outbox_messages", "status" => status).set(count as f64);
    }
    let blocked = repo::integration::blocked_by_parked(&txn).await?;
    metrics::gauge!("seedling_outbox_blocked_by_parked").set(blocked as f64);
    let lag = repo::integration::oldest_undelivered(&txn)
        .await?
        .map_or(0, |at| (chrono::Utc::now() - at).num_seconds().max(0));
    metrics::gauge!("seedling_outbox_lag_seconds").set(lag as f64);
    let (urgent, oldest) = repo::review::unacknowledged_urgent(&txn).await?;
    metrics::gauge!("seedling_urgent_alerts_unacknowledged").set(urgent as f64);
    let waiting = oldest.map_or(0, |at| (chrono::Utc::now() - at).num_seconds().max(0));
    metrics::gauge!("seedling_urgent_alert_oldest_unacknowledged_seconds").set(waiting as f64);
    let chain = repo::audit::appended(&txn).await?;
    metrics::gauge!("seedling_audit_chain_length").set(chain as f64);
    txn.commit().await
}
