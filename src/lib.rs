//! arbor: a self-hosted artifact repository, a drop-in replacement for dlrepo 0.44.
//!
//! Module map:
//! - [`config`]: every `DLREPO_*` setting, from the command line, the environment and an
//!   optional TOML file.
//! - [`cli`], [`commands`]: the command line and what each `arbor` sub-command does;
//!   [`client`]: the client commands (dlrepo-cli's), which talk to a server over HTTP.
//! - [`lifecycle`]: the server's start-up and its stop, in order.
//! - [`model`]: validated names, artifact paths, digests, typed entity coordinates and OCI
//!   manifests; pure values.
//! - [`storage`]: the only code that touches the filesystem (the tree, blobs, products,
//!   tars, registry content, GC, fsck).
//! - [`auth`]: identities (auth file, LDAP, trusted headers, tokens) and ACLs.
//! - [`http`]: axum routes, the guard, the tree dispatcher with its per-entity resources, and
//!   the registry adapter; no paths.
//! - [`publish`]: mirroring released tags to other servers; [`net`]: what outgoing HTTP
//!   clients share (TLS roots, retries).
//! - [`background`]: publishes and cleanup runs, tracked so that a stop waits for them;
//!   [`cleanup`]: the server's cleanup worker.
//! - [`server`]: accepting connections, with their timeouts and limits.
//! - [`zerocopy`]: connections that send file bodies with `sendfile(2)`.
//! - [`reload`]: reloading access control when its files change.
//! - [`metrics`], [`telemetry`]: Prometheus counters and logging.
//! - [`pyjson`]: JSON written byte for byte as Python's `json.dumps` writes it.
//! - [`signing`]: the OpenPGP key that signs package indexes, and its public half.
//! - [`state`]: what every request shares.

pub mod auth;
pub mod background;
pub mod cleanup;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod net;
pub mod publish;
pub mod pyjson;
pub mod reload;
pub mod server;
pub mod signing;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod zerocopy;

pub use server::serve;

#[cfg(test)]
mod module_graph_tests;
