//! The tree's resource functions, one module per entity (spec/API.md §3): method rules,
//! request validation and one storage call each. The dispatcher calls them; they see the
//! request through [`Ctx`](super::context::Ctx) only.

mod apt;
mod branches;
mod formats;
mod home;
mod jobs;
mod products;
mod rpm;
mod tags;
mod uploads;

pub use branches::{branch, branches};
pub use formats::format;
pub use home::{home, user_bare};
pub use jobs::{job, job_tar};
pub use products::{branch_index, level, version, version_tar};
pub use tags::tag;

use super::reply::ApiError;

/// What branches and tags answer to any other method.
const BRANCH_ALLOW: &str = "DELETE,GET,POST";

fn invalid() -> ApiError {
    ApiError::BadRequest("invalid parameters".into())
}
