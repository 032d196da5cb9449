//! What a resource function knows of its request: the state, method, headers, body and
//! the caller's view of the tree, built once by the dispatcher. Handlers depend on this
//! module, never on the dispatcher.

use super::canonical::Addressed;
use super::guard::Caller;
use super::query::{self, Plus};
use super::reply::{ApiError, ApiResult};
use crate::state::AppState;
use crate::storage::Visibility;
use crate::storage::encodings::Encoding;
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// The server's URL for examples and copy-paste lines: `DLREPO_PUBLIC_URL`, else `http://`
/// and the request's `Host` when it looks like a host name and port (it is echoed into
/// pages and shell lines: nothing else gets through).
pub fn public_base(app: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = &app.config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        });
    format!("http://{}", host.unwrap_or("HOST:PORT"))
}

/// Largest JSON request body accepted (spec/API.md §1.5 asks for at least 1 MiB).
const JSON_LIMIT: usize = 1 << 20;
/// How much of an oversized JSON body is read and dropped before giving up on the client.
const DRAIN_LIMIT: usize = super::body::DRAIN_LIMIT;

/// Everything a resource function needs from the request.
pub struct Ctx {
    pub app: AppState,
    pub method: Method,
    pub headers: HeaderMap,
    /// The raw query string, when the URL has a `?`.
    pub query: Option<String>,
    /// The percent-decoded path, compared with canonical URLs for redirects.
    pub path: String,
    pub body: std::sync::Mutex<Option<Body>>,
    /// What the caller may see in listings.
    pub acl: Visibility,
    /// Where the caller may add: product versions a job may be linked into (Q50).
    pub adds: Visibility,
    /// The connection, for zero-copy file bodies (absent in in-process tests).
    pub conn: Option<crate::zerocopy::ZcConn>,
    /// A browser asked: negotiated views answer HTML (spec/API.md §1.3).
    pub html: bool,
    /// Who the caller is, for "Authenticated as" on pages.
    pub login: Option<String>,
    /// How a bundle URL asked for its bundle (`.tar` unless it said otherwise).
    pub encoding: Encoding,
}

impl Ctx {
    /// The context of a request the guard let through (`caller` is `None` when access
    /// control is off).
    pub fn new(app: AppState, parts: Parts, body: Body) -> Ctx {
        let conn = parts
            .extensions
            .get::<axum::extract::ConnectInfo<crate::zerocopy::ZcConn>>()
            .map(|c| c.0.clone());
        let caller = parts.extensions.get::<Caller>().cloned();
        Ctx {
            html: super::views::wants_html(&parts.headers),
            login: caller.as_ref().and_then(|c| c.id.login.clone()),
            app,
            // The path the guard checked: a read's `.` segments are gone.
            path: percent_decode_str(&super::canonical::read_path(
                parts.uri.path(),
                &parts.method,
            ))
            .decode_utf8_lossy()
            .into_owned(),
            query: parts.uri.query().map(str::to_owned),
            method: parts.method,
            headers: parts.headers,
            body: std::sync::Mutex::new(Some(body)),
            acl: match caller.clone() {
                Some(caller) => Visibility::new(move |url| caller.can_read(url)),
                None => Visibility::everything(),
            },
            adds: match caller {
                Some(caller) => Visibility::new(move |url| caller.can_add(url)),
                None => Visibility::everything(),
            },
            conn,
            encoding: Encoding::Tar,
        }
    }

    /// A GET from a browser: the negotiated views render a page (HEAD keeps its API answer).
    pub fn page(&self) -> bool {
        self.html && self.method == Method::GET
    }

    /// Title, breadcrumbs and login for a page at the request path.
    pub fn chrome(&self) -> super::views::Chrome {
        super::views::Chrome::for_path(&self.path, self.login.clone())
    }

    /// The server's address for copy-paste lines: see [`public_base`].
    pub fn public_base(&self) -> String {
        public_base(&self.app, &self.headers)
    }

    pub fn is_read(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    /// `Some` when the request path is not the canonical one: a 302 there, unless the
    /// caller could not read that URL (an alias resolved to it); then the 404 of a missing
    /// entity, so that a redirect never discloses what the caller could not fetch. "Could
    /// read" is what the guard will check when the redirect is followed, bundles' entities
    /// included.
    pub fn canonical(&self, url: &str) -> Option<ApiResult> {
        if self.path == url {
            return None;
        }
        let target = Addressed::parse(&crate::model::escape::location(url));
        let readable = target
            .checks(&Method::GET)
            .iter()
            .all(|c| self.acl.allows(|| c.path.clone()));
        if !readable {
            return Some(Err(ApiError::NotFound));
        }
        Some(Ok(super::reply::redirect(url)))
    }

    /// The request body; a second call gets an empty one. (A mutex only so that `Ctx` is
    /// `Sync` and can be borrowed across awaits: there is never contention.)
    pub fn take_body(&self) -> Body {
        self.body
            .lock()
            .ok()
            .and_then(|mut b| b.take())
            .unwrap_or_else(Body::empty)
    }

    /// The request body as JSON, whatever its Content-Type. An oversized body is still read
    /// (up to a bound) and discarded, so the client gets to see the 413 instead of a reset.
    pub async fn json(&self) -> Result<Value, ApiError> {
        use futures_util::StreamExt;
        let mut stream = self.take_body().into_data_stream();
        let (mut data, mut seen) = (Vec::new(), 0usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match super::body::stalled(&e) {
                true => ApiError::from(crate::storage::StoreError::ClientTimeout),
                false => ApiError::BadRequest(format!("invalid body: {e}")),
            })?;
            seen += chunk.len();
            if seen <= JSON_LIMIT {
                data.extend_from_slice(&chunk);
            } else if seen > DRAIN_LIMIT {
                break;
            }
        }
        if seen > JSON_LIMIT {
            return Err(ApiError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large".into(),
            ));
        }
        serde_json::from_slice(&data)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON data: {e}")))
    }

    /// Query parameters, form-decoded (`+` is a space there, unlike in paths).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let Some(q) = &self.query else {
            return Vec::new();
        };
        query::raw_pairs(q)
            // `token` authenticates (see guard.rs); it is never a job filter.
            .filter(|(k, _)| *k != "token")
            .map(|(k, v)| {
                let v = v.unwrap_or("");
                (query::decode(k, Plus::Space), query::decode(v, Plus::Space))
            })
            .collect()
    }

    /// A bundle of the request's entity, streamed in the encoding asked for (spec/API.md §6).
    pub fn tar(&self, plan: crate::storage::TarPlan) -> Response {
        let chunk_size = self.app.repo.chunk_size();
        let (method, headers) = (&self.method, &self.headers);
        super::encoded::bundle_response(plan, self.encoding, method, headers, chunk_size)
    }

    /// The URL of the bundle of the entity at `url` in the encoding asked for.
    pub fn bundle_url(&self, url: &str) -> String {
        format!("{}{}", url.trim_end_matches('/'), self.encoding.suffix())
    }

    /// The answer to the bundle of the entity at `url`: a redirect to `{url}.tar` (or the
    /// encoding asked for) when
    /// the request spelled it otherwise (an alias, say: spec/API.md Q7), else `plan`
    /// streamed, or the reason it has none.
    pub fn bundle(
        &self,
        url: &str,
        plan: Result<crate::storage::TarPlan, crate::storage::StoreError>,
    ) -> ApiResult {
        if let Some(r) = self.canonical(&self.bundle_url(url)) {
            return r;
        }
        Ok(self.tar(plan?))
    }
}
