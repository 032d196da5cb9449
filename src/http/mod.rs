//! The HTTP layer: axum only, no filesystem paths. Fixed routes for `/cli`, `/static/` and
//! `/healthz`; everything else goes to the tree dispatcher, which parses the path itself
//! because axum's matcher cannot express the spec's grammar (spec/API.md §1.1).

mod download;
mod formats;
mod guard;
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
    let res = next.run(req).await;
    tracing::debug!(%method, %uri, status = res.status().as_u16(), "request");
    res
}
