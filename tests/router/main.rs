//! In-process router tests: the real router and `AppState` over a temporary data root,
//! driven with `tower::ServiceExt::oneshot` (tests/router/common). Routing, access control
//! and error mapping, in milliseconds; the black-box tier (tests/blackbox) keeps what
//! needs the binary, its signals and real clients.
// The tests check what a request left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;
#[path = "../shared/mod.rs"]
mod shared;

mod access;
mod apt;
mod bad_input;
mod downloads;
mod files_api;
mod pages;
mod plain_uploads;
mod products_api;
mod registry;
mod registry_conformance;
mod rpm;
mod search;
mod security;
mod security_headers;
mod tree_api;
