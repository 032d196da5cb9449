//! The HTTP layer: axum only, no filesystem paths. Fixed routes for `/cli`, `/search`, `/static/`,
//! `/healthz`, `/metrics` and `/pubkey`; `/v2/` goes to the registry adapter (`registry/`), everything
//! else to the tree dispatcher. The guard parses every path once (`canonical.rs`), because
//! axum's matcher cannot express the spec's grammar (spec/API.md §1.1), and both
//! dispatchers act on what it parsed.

mod body;
mod bundle;
pub(crate) mod caching;
mod canonical;
mod context;
mod dispatch;
pub(crate) mod download;
mod encoded;
pub(crate) mod guard;
pub(crate) mod observe;
mod pubkey;
mod query;
pub(crate) mod registry;
mod reply;
mod resources;
pub mod route;
pub(crate) mod search;
pub(crate) mod security;
mod shapes;
mod statics;
pub(crate) use body::{StallGuard, byte_stream, drain};
pub(crate) use canonical::Addressed;
pub use views::warn_unsupported_settings;
pub mod views;

use crate::state::AppState;
use axum::Router;
use axum::middleware;
use axum::routing::{any, get};

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/cli", get(statics::cli))
        .route("/search", get(search::search))
        .route("/static/{file}", get(statics::file))
        .route("/healthz", get(statics::healthz))
        .route("/metrics", get(observe::serve_metrics))
        .route("/pubkey", get(pubkey::armored))
        .route("/pubkey.gpg", get(pubkey::binary))
        .route("/v2/", any(registry::dispatch))
        .route("/v2/{*rest}", any(registry::dispatch))
        .fallback(dispatch::dispatch)
        .layer(middleware::from_fn_with_state(state.clone(), guard::check))
        .layer(middleware::from_fn(observe::observe))
        .layer(middleware::map_response(name_the_server))
        .with_state(state)
}

/// `Server: arbor` on every answer: the arbor client sends large files while it hashes them
/// only to a server that takes a `PUT` without a `Digest` (dlrepo does not). No version, so
/// the header tells an attacker nothing about which fixes a server has.
async fn name_the_server(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut().insert(
        axum::http::header::SERVER,
        axum::http::HeaderValue::from_static("arbor"),
    );
    res
}
