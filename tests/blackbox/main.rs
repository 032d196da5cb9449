//! Black-box tests: each starts the real `arbor` binary (or a real client, proxy or
//! directory in front of it) on a temporary root and talks to it over sockets. One test
//! crate, so the suite links once rather than once per area; each module is one area, and
//! `cargo test --test blackbox AREA::` runs one of them.
//!
//! Tests run as threads of this one process, as they did within each former crate: they
//! may not change process-wide state (environment, working directory, signal handlers);
//! what a server needs goes into its own child's environment or configuration.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod client;
mod client_stream;
mod common;
#[path = "../shared/mod.rs"]
mod shared;

mod access;
mod apt;
mod apt_trust;
mod bad_input;
mod browser;
mod config;
mod crash;
mod disk_full;
mod dlrepo_cli;
mod downloads;
mod encodings;
mod faults;
mod files_api;
mod fsck;
mod gc;
mod ldap;
mod lifecycle;
mod limits;
mod manuals;
mod meta_cache;
mod metrics;
mod nginx;
mod pages;
mod plain_http;
mod products_api;
mod pubkey;
mod publish;
mod quota;
mod registry;
mod registry_conformance;
mod registry_sessions;
mod reload;
mod rpm;
mod scaleout;
mod search;
mod security;
mod security_headers;
mod signing;
mod takeover;
mod tree_api;
