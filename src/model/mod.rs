//! Pure types that name things in the tree: validated names, artifact paths, digests and the
//! typed coordinates (scope, branch, tag, job, format, product version) the storage layer takes,
//! and OCI manifest documents as the registry reads them ([`oci`]).
//! Nothing here touches the filesystem.

mod digest;
pub mod escape;
mod name;
pub mod oci;
mod refs;

pub use digest::{Algo, Digest, DigestError, Hasher, sums_line};
pub use name::{NAME_MAX, Name, NotFound, RelPath, RelPathError, too_long};
pub use refs::{Alias, BranchRef, FormatRef, JobRef, PRODUCT_KEYS, Scope, TagRef, VersionRef};
