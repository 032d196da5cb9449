//! Typed coordinates of tree entities. Each knows its canonical URL path; only the storage
//! layer turns them into filesystem paths.

use super::Name;
use std::fmt::Write;

/// Which repository: the root one, or `users/{user}/` reached through `/~{user}/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Root,
    User(Name),
}

impl Scope {
    /// URL prefix of the repository: `` or `/~{user}`.
    pub fn url(&self) -> String {
        match self {
            Scope::Root => String::new(),
            Scope::User(u) => format!("/~{u}"),
        }
    }
}

/// The tag names that select another tag (spec/API.md §4). They can never be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alias {
    Latest,
    Stable,
    OldStable,
}

impl Alias {
    pub fn parse(raw: &str) -> Option<Alias> {
        match raw {
            "latest" => Some(Alias::Latest),
            "stable" => Some(Alias::Stable),
            "oldstable" => Some(Alias::OldStable),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BranchRef {
    pub scope: Scope,
    pub branch: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagRef {
    pub branch: BranchRef,
    pub tag: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobRef {
    pub tag: TagRef,
    pub job: Name,
}

/// A format reached either through its job or through a product version's symlink.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FormatRef {
    Job { job: JobRef, format: Name },
    Version { version: VersionRef, format: Name },
}

/// The job metadata keys that name the product version a job is linked into, in the order
/// of its URL (and of [`VersionRef`]'s fields).
pub const PRODUCT_KEYS: [&str; 4] = ["product", "product_variant", "product_branch", "version"];

/// `products/{product}/{variant}/{product_branch}/{version}` in one scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionRef {
    pub scope: Scope,
    pub product: Name,
    pub variant: Name,
    pub product_branch: Name,
    pub version: Name,
}

fn push_seg(out: &mut String, seg: &str) {
    out.push('/');
    out.push_str(seg);
}

impl BranchRef {
    /// `/[~u]/branches/{b}/`
    pub fn url(&self) -> String {
        let mut s = self.scope.url();
        let _ = write!(s, "/branches/{}/", self.branch);
        s
    }
}

impl TagRef {
    pub fn url(&self) -> String {
        format!("{}{}/", self.branch.url(), self.tag)
    }
}

impl JobRef {
    pub fn url(&self) -> String {
        format!("{}{}/", self.tag.url(), self.job)
    }

    /// `{job}-{tag}`: the archive name when the metadata names no product.
    pub fn default_archive_name(&self) -> String {
        format!("{}-{}", self.job, self.tag.tag)
    }
}

impl VersionRef {
    /// The version a job of `scope` names with its metadata, `name(key)` being the value of
    /// each of [`PRODUCT_KEYS`] as a name: `None` unless all four are.
    pub fn from_fields(
        scope: &Scope,
        name: impl FnMut(&str) -> Option<Name>,
    ) -> Option<VersionRef> {
        let [product, variant, product_branch, version] = PRODUCT_KEYS.map(name);
        Some(VersionRef {
            scope: scope.clone(),
            product: product?,
            variant: variant?,
            product_branch: product_branch?,
            version: version?,
        })
    }

    pub fn url(&self) -> String {
        let mut s = self.scope.url();
        s.push_str("/products");
        for seg in [
            &self.product,
            &self.variant,
            &self.product_branch,
            &self.version,
        ] {
            push_seg(&mut s, seg.as_str());
        }
        s.push('/');
        s
    }

    /// `{product}-{variant}-v{version}`
    pub fn archive_name(&self) -> String {
        format!("{}-{}-v{}", self.product, self.variant, self.version)
    }
}

impl FormatRef {
    pub fn name(&self) -> &Name {
        match self {
            FormatRef::Job { format, .. } | FormatRef::Version { format, .. } => format,
        }
    }

    /// Canonical URL of the format directory, with the trailing `/`.
    pub fn url(&self) -> String {
        match self {
            FormatRef::Job { job, format } => format!("{}{format}/", job.url()),
            FormatRef::Version { version, format } => format!("{}{format}/", version.url()),
        }
    }

    pub fn is_product(&self) -> bool {
        matches!(self, FormatRef::Version { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version is named only by all four keys, in URL order.
    #[test]
    fn a_version_is_named_by_all_four_product_keys_or_not_at_all() {
        let scope = Scope::Root;
        let values = |k: &str| match k {
            "product" => "os",
            "product_variant" => "arm",
            "product_branch" => "1.x",
            _ => "1.2",
        };
        let name = |k: &str| Name::parse(values(k)).ok();
        let v = VersionRef::from_fields(&scope, name).expect("all four");
        assert_eq!(v.url(), "/products/os/arm/1.x/1.2/");
        let without_branch = |k: &str| (k != "product_branch").then(|| name(k)).flatten();
        assert_eq!(VersionRef::from_fields(&scope, without_branch), None);
    }
}
