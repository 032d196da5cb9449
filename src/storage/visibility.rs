//! Which entities a caller may see: listings, aliases and bundles only consider readable
//! URLs (spec/API.md §3); access control plugs its check in here.

use std::sync::Arc;

/// Which entities the caller may see: listings and aliases only consider readable URLs
/// (spec/API.md §3). Access control plugs its check in here.
#[derive(Clone)]
pub enum Visibility {
    /// No filtering (access control disabled): URLs are not even built.
    Everything,
    Only(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl Visibility {
    pub fn everything() -> Visibility {
        Visibility::Everything
    }

    pub fn new(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Visibility {
        Visibility::Only(Arc::new(f))
    }

    /// Whether the entity at the URL `url()` builds is visible.
    pub fn allows(&self, url: impl FnOnce() -> String) -> bool {
        match self {
            Visibility::Everything => true,
            Visibility::Only(f) => f(&url()),
        }
    }
}
