//! Process metrics, served at `/metrics` in the OpenMetrics text format that Prometheus
//! scrapes. One registry per process: the HTTP layer, the cleanup worker and publishing
//! record into it from wherever they run, without threading a handle through every call.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};
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

/// The metadata caches of `storage/stamp_cache.rs` (docs/caches.md).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Cache {
    tag,
    job,
    branch,
    alias,
    digests,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Lookup {
    /// Answered from memory after its stamps were checked.
    hit,
    /// Read from the tree (nothing kept, or the tree had changed).
    read,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: Cache,
    pub lookup: Lookup,
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
    pub cache_lookups: Family<CacheLabels, Counter>,
    /// Set at each scrape from `statvfs(2)` of the data root.
    pub disk_free_bytes: Gauge,
    pub disk_free_inodes: Gauge,
}

/// Time to the response head: 1 ms to about 16 s. Bodies stream after that, so downloads
/// and tar bundles are not timed whole; their bytes are counted instead.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 4.0, 8))
}

/// Registers `metric` under `name` and hands it back, for the struct that keeps it.
fn register<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// The series appear in `/metrics` in the order they are registered here.
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("arbor");
        let r = &mut registry;
        let version = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        r.register("build", "The running version", version);
        let http = HttpMetrics::new(r);
        let gc = GcMetrics::new(r);
        let publishes = register(
            r,
            "publishes",
            "Tag publishes and un-publishes finished, by outcome",
            Family::<PublishLabels, Counter>::default(),
        );
        let connections_refused = register(
            r,
            "connections_refused",
            "Connections answered 503 because DLREPO_MAX_CONNECTIONS were open",
            Counter::default(),
        );
        let client_timeouts = register(
            r,
            "client_timeouts",
            "Connections dropped because a client stalled a body past DLREPO_CLIENT_TIMEOUT",
            Counter::default(),
        );
        let cache_lookups = register(
            r,
            "metadata_cache_lookups",
            "Metadata answers (tag, job, branch, alias order) served from memory after a stamp check, or read from the tree",
            Family::<CacheLabels, Counter>::default(),
        );
        let disk_free_bytes = register(
            r,
            "disk_free_bytes",
            "Bytes free for the server on the filesystem of the data root",
            Gauge::default(),
        );
        let disk_free_inodes = register(
            r,
            "disk_free_inodes",
            "Inodes free for the server on the filesystem of the data root (0 where the filesystem has no inode table)",
            Gauge::default(),
        );
        Metrics {
            registry,
            requests: http.requests,
            duration: http.duration,
            in_flight: http.in_flight,
            received_bytes: http.received_bytes,
            sent_bytes: http.sent_bytes,
            gc_runs: gc.runs,
            gc_deleted_tags: gc.deleted_tags,
            gc_deleted_blobs: gc.deleted_blobs,
            gc_freed_bytes: gc.freed_bytes,
            publishes,
            connections_refused,
            client_timeouts,
            cache_lookups,
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

    /// The counter of `lookup`s of `cache`, to keep and bump without a lookup per use.
    pub fn cache_counter(&self, cache: Cache, lookup: Lookup) -> Counter {
        self.cache_lookups
            .get_or_create(&CacheLabels { cache, lookup })
            .clone()
    }

    pub fn record_publish(&self, action: Action, ok: bool) {
        let result = if ok { Outcome::ok } else { Outcome::error };
        self.publishes
            .get_or_create(&PublishLabels { action, result })
            .inc();
    }
}

/// The request series, registered together.
struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    in_flight: Gauge,
    received_bytes: Counter,
    sent_bytes: Counter,
}

impl HttpMetrics {
    fn new(r: &mut Registry) -> HttpMetrics {
        let requests = register(
            r,
            "http_requests",
            "HTTP requests answered, by method and status",
            Family::<RequestLabels, Counter>::default(),
        );
        let duration = register(
            r,
            "http_request_duration_seconds",
            "Time from a request to its response head",
            HistogramFamily::new_with_constructor(duration_histogram),
        );
        let in_flight = register(
            r,
            "http_requests_in_flight",
            "Requests being handled now",
            Gauge::default(),
        );
        let received_bytes = register(
            r,
            "http_received_bytes",
            "Request body bytes received",
            Counter::default(),
        );
        let sent_bytes = register(
            r,
            "http_sent_bytes",
            "Response body bytes sent (sendfile included)",
            Counter::default(),
        );
        HttpMetrics {
            requests,
            duration,
            in_flight,
            received_bytes,
            sent_bytes,
        }
    }
}

/// The cleanup counters, registered together.
struct GcMetrics {
    runs: Counter,
    deleted_tags: Counter,
    deleted_blobs: Counter,
    freed_bytes: Counter,
}

impl GcMetrics {
    fn new(r: &mut Registry) -> GcMetrics {
        GcMetrics {
            runs: register(r, "gc_runs", "Cleanup passes completed", Counter::default()),
            deleted_tags: register(
                r,
                "gc_deleted_tags",
                "Tags deleted by cleanup policies",
                Counter::default(),
            ),
            deleted_blobs: register(
                r,
                "gc_deleted_blobs",
                "Orphan blobs and stale uploads removed",
                Counter::default(),
            ),
            freed_bytes: register(
                r,
                "gc_freed_bytes",
                "Bytes freed by removing orphan blobs and uploads",
                Counter::default(),
            ),
        }
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
