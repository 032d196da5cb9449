//! Process metrics, served at `/metrics` in the OpenMetrics text format that Prometheus
//! scrapes. One registry per process: the HTTP layer, the cleanup worker and publishing
//! record into it from wherever they run, without threading a handle through every call.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

/// The request methods the API uses; anything else counts as `OTHER`, which keeps the
/// number of series bounded whatever clients send.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(clippy::upper_case_acronyms)]
pub enum Method {
    GET,
    HEAD,
    PUT,
    PATCH,
    POST,
    DELETE,
    OTHER,
}

impl Method {
    pub fn of(m: &axum::http::Method) -> Method {
        match m.as_str() {
            "GET" => Method::GET,
            "HEAD" => Method::HEAD,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "POST" => Method::POST,
            "DELETE" => Method::DELETE,
            _ => Method::OTHER,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: Method,
    pub code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: Method,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Action {
    publish,
    unpublish,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    ok,
    error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    pub action: Action,
    pub result: Outcome,
}

type HistogramFamily = Family<MethodLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: HistogramFamily,
    pub in_flight: Gauge,
    pub received_bytes: Counter,
    pub sent_bytes: Counter,
    pub gc_runs: Counter,
    pub gc_deleted_tags: Counter,
    pub gc_deleted_blobs: Counter,
    pub gc_freed_bytes: Counter,
    pub publishes: Family<PublishLabels, Counter>,
    pub connections_refused: Counter,
    pub client_timeouts: Counter,
    /// Set at each scrape from `statvfs(2)` of the data root.
    pub disk_free_bytes: Gauge,
    pub disk_free_inodes: Gauge,
}

/// Time to the response head: 1 ms to about 16 s. Bodies stream after that, so downloads
/// and tar bundles are not timed whole; their bytes are counted instead.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 8))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("arbor");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily = Family::new_with_constructor(duration_histogram);
        let in_flight = Gauge::default();
        let (received_bytes, sent_bytes) = (Counter::default(), Counter::default());
        let (gc_runs, gc_deleted_tags) = (Counter::default(), Counter::default());
        let (gc_deleted_blobs, gc_freed_bytes) = (Counter::default(), Counter::default());
        let publishes = Family::<PublishLabels, Counter>::default();
        let (connections_refused, client_timeouts) = (Counter::default(), Counter::default());
        let (disk_free_bytes, disk_free_inodes) = (Gauge::default(), Gauge::default());
        registry.register(
            "build",
            "The running version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        registry.register(
            "http_requests",
            "HTTP requests answered, by method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from a request to its response head",
            duration.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being handled now",
            in_flight.clone(),
        );
        registry.register(
            "http_received_bytes",
            "Request body bytes received",
            received_bytes.clone(),
        );
        registry.register(
            "http_sent_bytes",
            "Response body bytes sent (sendfile included)",
            sent_bytes.clone(),
        );
        registry.register("gc_runs", "Cleanup passes completed", gc_runs.clone());
        registry.register(
            "gc_deleted_tags",
            "Tags deleted by cleanup policies",
            gc_deleted_tags.clone(),
        );
        registry.register(
            "gc_deleted_blobs",
            "Orphan blobs and stale uploads removed",
            gc_deleted_blobs.clone(),
        );
        registry.register(
            "gc_freed_bytes",
            "Bytes freed by removing orphan blobs and uploads",
            gc_freed_bytes.clone(),
        );
        registry.register(
            "publishes",
            "Tag publishes and un-publishes finished, by outcome",
            publishes.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections answered 503 because DLREPO_MAX_CONNECTIONS were open",
            connections_refused.clone(),
        );
        registry.register(
            "client_timeouts",
            "Connections dropped because a client stalled a body past DLREPO_CLIENT_TIMEOUT",
            client_timeouts.clone(),
        );
        registry.register(
            "disk_free_bytes",
            "Bytes free for the server on the filesystem of the data root",
            disk_free_bytes.clone(),
        );
        registry.register(
            "disk_free_inodes",
            "Inodes free for the server on the filesystem of the data root (0 where the filesystem has no inode table)",
            disk_free_inodes.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            in_flight,
            received_bytes,
            sent_bytes,
            gc_runs,
            gc_deleted_tags,
            gc_deleted_blobs,
            gc_freed_bytes,
            publishes,
            connections_refused,
            client_timeouts,
            disk_free_bytes,
            disk_free_inodes,
        }
    }

    /// Everything, in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn record_publish(&self, action: Action, ok: bool) {
        let result = if ok { Outcome::ok } else { Outcome::error };
        self.publishes
            .get_or_create(&PublishLabels { action, result })
            .inc();
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_labelled_series_with_the_prefix() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                method: Method::PUT,
                code: 201,
            })
            .inc();
        m.record_publish(Action::unpublish, false);
        let text = m.encode();
        assert!(
            text.contains(r#"arbor_http_requests_total{method="PUT",code="201"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"arbor_publishes_total{action="unpublish",result="error"} 1"#),
            "{text}"
        );
        assert!(text.contains("arbor_build_info{version="), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
