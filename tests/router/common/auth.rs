//! The application with access control on (see tests/shared/auth.rs).

pub type Secured = crate::shared::auth::Secured<super::App>;
