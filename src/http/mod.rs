//! The HTTP layer: axum only, no filesystem paths. Fixed routes for `/cli`, `/static/` and
//! `/healthz`; everything else goes to the tree dispatcher, which parses the path itself
//! because axum's matcher cannot express the spec's grammar (spec/API.md §1.1).

mod download;
mod formats;
pub(crate) mod guard;
mod products;
mod reply;
mod resources;
pub mod route;
mod statics;
mod tree;
pub use views::warn_unsupported_settings;
pub mod views;

use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/cli", get(statics::cli))
        .route("/static/{file}", get(statics::file))
        .route("/healthz", get(statics::healthz))
        .route("/v2/", any(crate::registry::dispatch))
        .route("/v2/{*rest}", any(crate::registry::dispatch))
        .fallback(tree::dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), guard::check))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}

/// The access log, at DEBUG as in dlrepo. Skipped cheaply when DEBUG is off.
async fn access_log(req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let uri = req.uri().clone();
    let remote = remote_of(&req);
    let res = next.run(req).await;
    tracing::debug!(%remote, %method, %uri, status = res.status().as_u16(), "request");
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
