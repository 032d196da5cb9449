//! What every request leaves behind: the access log line and the request metrics, and
//! `GET /metrics` to read the latter.

use crate::metrics::{self, Method, MethodLabels, RequestLabels};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Why a request failed on the server's side, for the log: a response carrying this is
/// logged with its request's method and URL, which the code that failed does not know.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    detail: String,
    /// An error (a 500: something is broken), or a refusal the operator should see (a
    /// 507: the disk is full).
    broken: bool,
}

impl Failure {
    pub(crate) fn error(detail: String) -> Failure {
        Failure {
            detail,
            broken: true,
        }
    }

    pub(crate) fn refused(detail: String) -> Failure {
        Failure {
            detail,
            broken: false,
        }
    }
}

/// Counts requests, their time to the response head and the body bytes both ways; logs
/// one line per request at DEBUG, as dlrepo's access log does, and every failure.
pub async fn observe(req: Request, next: Next) -> Response {
    let m = metrics::get();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let log =
        tracing::enabled!(tracing::Level::DEBUG).then(|| (redacted(req.uri()), remote_of(&req)));
    let req = req.map(|b| counted(b, &m.received_bytes, false));
    m.in_flight.inc();
    let start = Instant::now();
    let res = next.run(req).await;
    let elapsed = start.elapsed().as_secs_f64();
    m.in_flight.dec();
    let label = Method::of(&method);
    m.requests
        .get_or_create(&RequestLabels {
            method: label,
            code: res.status().as_u16(),
        })
        .inc();
    m.duration
        .get_or_create(&MethodLabels { method: label })
        .observe(elapsed);
    if let Some(f) = res.extensions().get::<Failure>() {
        let url = redacted(&uri);
        if f.broken {
            tracing::error!(%method, %url, error = %f.detail, "request failed");
        } else {
            tracing::warn!(%method, %url, error = %f.detail, "request refused");
        }
    }
    if let Some((uri, remote)) = log {
        tracing::debug!(%remote, %method, %uri, status = res.status().as_u16(), "request");
    }
    res.map(|b| counted(b, &m.sent_bytes, true))
}

/// What the log shows in place of a secret.
const REDACTED: &str = "REDACTED";

/// The path and query as requested, with the value of every `token` parameter (an API token
/// the guard accepts, spec/AUTH.md §2) replaced by [`REDACTED`]: a log is read by more people,
/// and kept longer, than the token is meant to be. The key is matched the way a lenient
/// reader would (percent-decoded, any case), so no spelling of it slips through.
fn redacted(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_token_key(key) => format!("{key}={REDACTED}"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

fn is_token_key(key: &str) -> bool {
    // `+` read as a space, then trimmed: the most lenient reading wins.
    super::query::decode(key, super::query::Plus::Space)
        .trim()
        .eq_ignore_ascii_case("token")
}

/// `body`, with its bytes added to `counter` as they pass. Bodies known to be empty skip
/// the wrapper, and so, when `up_front`, do those of a known size (our own JSON and pages):
/// counting them at once spares a box per request on the busiest routes. Streams (uploads,
/// file and tar downloads) are counted frame by frame.
fn counted(body: Body, counter: &Counter, up_front: bool) -> Body {
    match body.size_hint().exact() {
        Some(0) => body,
        Some(n) if up_front => {
            counter.inc_by(n);
            body
        }
        _ => Body::new(Counted::new(body, counter)),
    }
}

/// `GET /metrics`. Readable by whoever the ACLs let read `/metrics`.
pub async fn serve_metrics(State(app): State<AppState>) -> Response {
    let m = metrics::get();
    if let Ok(space) = app.repo.run(|r| r.disk_space()).await {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        m.disk_free_bytes.set(gauge(space.free_bytes));
        m.disk_free_inodes.set(gauge(space.free_inodes));
    }
    let mut res = m.encode().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}

/// The client, as the last `X-Forwarded-For` names it behind a proxy (spec/AUTH.md §2
/// step 0), else the peer of the connection; `-` on a Unix socket without the header.
fn remote_of(req: &Request) -> String {
    if let Some(v) = forwarded(req.headers(), "x-forwarded-for") {
        return v.to_owned();
    }
    req.extensions()
        .get::<axum::extract::ConnectInfo<crate::zerocopy::ZcConn>>()
        .and_then(|c| c.0.peer())
        .map_or_else(|| "-".to_owned(), |a| a.ip().to_string())
}

/// The last occurrence of a proxy header, trimmed, as dlrepo reads them: the proxy nearest
/// to arbor appends last.
pub(crate) fn forwarded<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A body that adds the size of each data frame to a counter as it passes. Frames go
/// through untouched (sendfile placeholders included) and the size hint is kept, so
/// `Content-Length` does not change.
struct Counted {
    inner: Body,
    counter: Counter,
}

impl Counted {
    fn new(inner: Body, counter: &Counter) -> Counted {
        Counted {
            inner,
            counter: counter.clone(),
        }
    }
}

impl HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.counter.inc_by(data.len() as u64);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the layer adds to a request, against the same route without it (issue 18: under
    /// 5 µs). Timed, so not run by default; run it on a release build:
    /// `cargo test --release --lib observe::tests::cost -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore]
    async fn cost() {
        use axum::Router;
        use axum::routing::get;
        use tower::ServiceExt;
        async fn per_request(app: &Router, n: u32) -> std::time::Duration {
            let start = Instant::now();
            for _ in 0..n {
                let req = Request::get("/x").body(Body::empty()).expect("request");
                let res = app.clone().oneshot(req).await.expect("response");
                let body = axum::body::to_bytes(res.into_body(), 64).await;
                assert_eq!(body.ok().as_deref(), Some(&b"{}"[..]));
            }
            start.elapsed() / n
        }
        let plain = Router::new().route("/x", get(|| async { "{}" }));
        let observed = plain.clone().layer(axum::middleware::from_fn(observe));
        // Alternating runs; the best of each is the least disturbed by the machine.
        let (mut best_plain, mut best_observed) =
            (std::time::Duration::MAX, std::time::Duration::MAX);
        for _ in 0..5 {
            best_plain = best_plain.min(per_request(&plain, 100_000).await);
            best_observed = best_observed.min(per_request(&observed, 100_000).await);
        }
        println!(
            "per request: {best_plain:?} without the layer, {best_observed:?} with it: {:?} for the layer",
            best_observed.saturating_sub(best_plain)
        );
    }

    fn shown(uri: &str) -> String {
        redacted(&uri.parse::<Uri>().expect("URI"))
    }

    #[test]
    fn tokens_never_reach_the_access_log() {
        assert_eq!(shown("/branches/"), "/branches/");
        assert_eq!(shown("/branches/?x=1"), "/branches/?x=1");
        assert_eq!(
            shown("/branches/b/t/j/f/a.bin?token=arbor_abc_SECRET"),
            "/branches/b/t/j/f/a.bin?token=REDACTED"
        );
        assert_eq!(
            shown("/x?a=1&token=SECRET&b=2&TOKEN=SECRET&%74oken=SECRET&token="),
            "/x?a=1&token=REDACTED&b=2&TOKEN=REDACTED&%74oken=REDACTED&token=REDACTED"
        );
        // Only the `token` key: others, and a bare `token` without value, are kept.
        assert_eq!(
            shown("/x?tokens=1&my_token=2&token"),
            "/x?tokens=1&my_token=2&token"
        );
    }
}
