//! Which entities a caller may see: listings, aliases and bundles only consider readable
//! URLs (spec/API.md §3); access control plugs its check in here.

use crate::model::{FormatRef, Name};
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

    /// Whether the file `rel` of the format `f` is visible: listings, checksums, bundles
    /// and package indexes of a format leave out the files an ACL hides one by one.
    pub fn allows_file(&self, f: &FormatRef, rel: &str) -> bool {
        self.allows(|| format!("{}{rel}", f.url()))
    }

    /// Whether the child entry `name` of a listing is visible, `url(name)` being its URL. A
    /// name read from the tree is always valid; one that is not matches no rule.
    pub fn allows_named(&self, name: &str, url: impl FnOnce(Name) -> String) -> bool {
        self.allows(|| Name::parse(name).map(url).unwrap_or_default())
    }
}
