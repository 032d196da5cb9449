//! arbor: a self-hosted artifact repository, a drop-in replacement for dlrepo 0.44.
//!
//! Module map:
//! - [`config`]: every `DLREPO_*` setting, from the environment and an optional TOML file.
//! - [`model`]: validated names, artifact paths, digests and typed entity coordinates.
//! - [`storage`]: the only code that touches the filesystem (the tree, blobs, products, tars).
//! - [`http`]: axum routes and the tree dispatcher; no paths.
//! - [`pyjson`]: JSON written byte for byte as Python's `json.dumps` writes it.
//! - [`server`]: accepting connections, with their timeouts and limits.
//! - [`zerocopy`]: connections that send file bodies with `sendfile(2)`.

pub mod auth;
pub mod commands;
pub mod config;
pub mod http;
pub mod metrics;
pub mod model;
pub mod publish;
pub mod pyjson;
pub mod registry;
pub mod reload;
pub mod server;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod zerocopy;

pub use server::serve;
