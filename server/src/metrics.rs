//! Prometheus metrics: what the process counts as it works, and the
//! recorder that renders them (docs/OPERATIONS.md, "Metrics").
//!
//! Counters and histograms are recorded where the work happens (the request
//! middleware, the push, the conflict queue, the delivery worker); gauges of
//! what the database holds (the outbox, the audit chain) are read when
//! `/metrics` is scraped, by `service::metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sync_core::protocol::{MutationResult, PushResponse};

/// Latency buckets, in seconds: from a cached pull page to a request that
/// waited on a failover.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often recorded histogram samples are folded into their buckets, so
/// they take bounded memory whether or not anyone scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder (once; later calls return the same
/// handle).
pub fn install() -> &'static PrometheusHandle {
    RECORDER.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
            .expect("the latency buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only gauges");
        }
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".to_owned())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            })
            .expect("start the metrics upkeep thread");
        handle
    })
}

/// One answered HTTP request. `route` is the matched route template
/// (`/api/v1/visits/{id}`), never the path itself, so labels stay few.
pub fn request(route: &str, method: &str, status: u16, elapsed: Duration) {
    let status = status.to_string();
    metrics::counter!(
        "seedling_http_requests_total",
        "route" => route.to_owned(),
        "method" => method.to_owned(),
        "status" => status,
    )
    .increment(1);
    metrics::histogram!(
        "seedling_http_request_duration_seconds",
        "route" => route.to_owned(),
        "method" => method.to_owned(),
    )
    .record(elapsed.as_secs_f64());
}

/// A sync request turned away because `max_sync_in_flight` were in flight.
pub fn sync_turned_away() {
    metrics::counter!("seedling_sync_turned_away_total").increment(1);
}

/// The results of one push: each mutation's status (and a rejection's
/// reason), and the conflicts the merge reported. A resend answered from
/// the stored outcomes counts again: these count answers, not writes.
pub fn push(response: &PushResponse) {
    metrics::counter!("seedling_sync_pushes_total").increment(1);
    for result in &response.results {
        let (status, reason, conflicts) = match result {
            MutationResult::Applied { .. } => ("applied", "", 0),
            MutationResult::Merged { conflicts, .. } => ("merged", "", conflicts.len()),
            MutationResult::Rejected { reason, .. } => ("rejected", reason.into(), 0),
        };
        metrics::counter!(
            "seedling_sync_mutations_total",
            "status" => status,
            "reason" => reason,
        )
        .increment(1);
        if conflicts > 0 {
            metrics::counter!("seedling_conflicts_opened_total").increment(conflicts as u64);
        }
    }
}

/// A pull page answered with `records` records.
pub fn pull(records: usize) {
    metrics::counter!("seedling_sync_pulls_total").increment(1);
    metrics::counter!("seedling_sync_pulled_records_total").increment(records as u64);
}

/// A supervisor resolved a conflict.
pub fn conflict_resolved(action: &str) {
    metrics::counter!("seedling_conflicts_resolved_total", "action" => action.to_owned())
        .increment(1);
}

/// A delivery attempt to the provincial platform ended `outcome`
/// (delivered, retry, parked); a delivered message's latency is from its
/// creation to the platform's acknowledgement.
pub fn delivery(outcome: &'static str, delivered_after: Option<Duration>) {
    metrics::counter!("seedling_delivery_attempts_total", "outcome" => outcome).increment(1);
    if let Some(latency) = delivered_after {
        metrics::histogram!("seedling_delivery_latency_seconds").record(latency.as_secs_f64());
    }
}
