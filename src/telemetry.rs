//! Logs (`tracing`) and metrics (Prometheus). Every metric is declared and described here, once.
//! Labels come only from small fixed sets: protocol, error code, projection name.

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

pub const HITS_RECEIVED: &str = "footfall_hits_received_total";
pub const HITS_REJECTED: &str = "footfall_hits_rejected_total";
pub const HITS_APPENDED: &str = "footfall_hits_appended_total";
pub const APPEND_BATCH_SIZE: &str = "footfall_append_batch_size_events";
pub const APPEND_DURATION: &str = "footfall_append_duration_seconds";
pub const APPEND_FAILURES: &str = "footfall_append_failures_total";
pub const APPEND_QUEUE_FULL: &str = "footfall_append_queue_full_total";
pub const PROJECTION_EVENTS: &str = "footfall_projection_events_total";
pub const PROJECTION_PARKED: &str = "footfall_projection_parked_events_total";
pub const PROJECTION_PREPARED_AHEAD: &str = "footfall_projection_batches_prepared_ahead_total";
pub const PROJECTION_BATCH_DURATION: &str = "footfall_projection_batch_duration_seconds";
pub const PROJECTION_LAG_EVENTS: &str = "footfall_projection_lag_events";
pub const PROJECTION_LAG_SECONDS: &str = "footfall_projection_lag_seconds";
pub const QUERY_CACHE: &str = "footfall_query_cache_total";
pub const QUERY_VERSION_READS: &str = "footfall_query_version_reads_total";
pub const PROPS_NOT_ROLLED_UP: &str = "footfall_props_not_rolled_up_total";
pub const READS_ABANDONED: &str = "footfall_reads_abandoned_total";

/// Starts structured logging. `RUST_LOG` picks levels (default `info`). Calling it twice is harmless.
pub fn init_logs(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        describe();
        handle
    })
}

fn describe() {
    describe_counter!(
        HITS_RECEIVED,
        Unit::Count,
        "Hits received by collection, by protocol."
    );
    describe_counter!(
        HITS_REJECTED,
        Unit::Count,
        "Hits refused, by protocol and error code."
    );
    describe_counter!(
        HITS_APPENDED,
        Unit::Count,
        "Hit events durably appended to the log."
    );
    describe_histogram!(
        APPEND_BATCH_SIZE,
        Unit::Count,
        "Events per append transaction."
    );
    describe_histogram!(
        APPEND_DURATION,
        Unit::Seconds,
        "Time to append one batch durably."
    );
    describe_counter!(
        APPEND_FAILURES,
        Unit::Count,
        "Append batches that failed (their hits got 503)."
    );
    describe_counter!(
        APPEND_QUEUE_FULL,
        Unit::Count,
        "Requests refused because the appender queue was full."
    );
    describe_counter!(
        QUERY_CACHE,
        Unit::Count,
        "Report queries answered from the shared answers (hit) or computed (miss)."
    );
    describe_counter!(
        PROPS_NOT_ROLLED_UP,
        Unit::Count,
        "Props of applied hits whose key is past its property's FOOTFALL_MAX_PROP_KEYS: kept in the enriched hits, not rolled up."
    );
    describe_counter!(
        QUERY_VERSION_READS,
        Unit::Count,
        "Statements that read the read models' versions for reports (one for every group of reports that arrived together)."
    );
    describe_counter!(
        READS_ABANDONED,
        Unit::Count,
        "Reads cancelled because their client closed the connection before the answer."
    );
    describe_counter!(
        PROJECTION_PARKED,
        Unit::Count,
        "Events a projection parked because their data could not be applied, by projection."
    );
    describe_counter!(
        PROJECTION_PREPARED_AHEAD,
        Unit::Count,
        "Batches of a backlog a projection's writer prepared (folded) while it wrote the batch before, by projection."
    );
    describe_counter!(
        PROJECTION_EVENTS,
        Unit::Count,
        "Events applied, by projection."
    );
    describe_histogram!(
        PROJECTION_BATCH_DURATION,
        Unit::Seconds,
        "Time to apply and commit one batch."
    );
    describe_gauge!(
        PROJECTION_LAG_EVENTS,
        Unit::Count,
        "Events in the log a projection has not applied yet."
    );
    describe_gauge!(
        PROJECTION_LAG_SECONDS,
        Unit::Seconds,
        "Age of the last event a projection applied, when behind."
    );
}
