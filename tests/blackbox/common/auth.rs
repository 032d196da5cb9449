//! A running server with access control on (see tests/shared/auth.rs).

pub use crate::shared::auth::basic;

pub type Secured = crate::shared::auth::Secured<super::TestServer>;
