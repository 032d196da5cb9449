//! What can go wrong in a registry operation, said in storage terms. The HTTP side maps each
//! case to an OCI error code and status in one place (`http::registry::reply`); the text of
//! each is the message clients get.

use crate::model::Digest;
use crate::model::oci::ManifestError;
use crate::storage::StoreError;
use std::io;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No session by that id for this repository and caller (ids cannot be probed).
    #[error("Blob upload unknown to registry.")]
    UploadUnknown,
    /// Another request holds the session.
    #[error("another request is writing this upload")]
    UploadBusy,
    /// A chunk that does not start where the session ends.
    #[error("upload is at {0}")]
    WrongOffset(u64),
    /// A finished upload whose content is not the digest the client named.
    #[error("digest mismatch: {0}")]
    UploadDigestMismatch(Digest),
    /// A manifest pushed by digest whose content has another one.
    #[error("manifest digest is {0}")]
    ManifestDigestMismatch(Digest),
    /// A digest in a reference that does not parse (its text).
    #[error("{0}")]
    InvalidDigest(String),
    /// The user's quota cannot take it (the quota's own words).
    #[error("{0}")]
    OverQuota(String),
    /// A repository with neither an image nor pending content.
    #[error("repository name not known to registry")]
    RepositoryUnknown,
    /// A blob pull of a digest the repository does not hold.
    #[error("Unknown blob in registry.")]
    BlobUnknown,
    /// A digest a manifest names (or a blob delete targets) that the repository lacks.
    #[error("{0}")]
    MissingBlob(Digest),
    /// A manifest reference (tag, alias or digest) that names nothing.
    #[error("{0}")]
    ManifestUnknown(String),
    /// A manifest pull by a digest that does not parse.
    #[error("{0}")]
    InvalidReference(String),
    /// A manifest document refused as such.
    #[error("{0}")]
    BadManifest(ManifestError),
    /// An index names a stored manifest that cannot be read as one.
    #[error("{0}")]
    BadChild(Digest),
    #[error("size {declared} does not match the blob ({real})")]
    SizeMismatch { declared: u64, real: u64 },
    #[error("invalid tag")]
    InvalidTag,
    /// Aliases are computed, never pushed.
    #[error("uploading explicit 'latest', 'stable' or 'oldstable' tags is not supported")]
    AliasTag,
    /// Product paths are read-only.
    #[error("cannot push to a product path")]
    PushToProduct,
    #[error("cannot delete through a product path")]
    DeleteInProduct,
    #[error("Cannot upload files in locked jobs")]
    PushToLockedJob,
    #[error("Cannot delete images of locked jobs")]
    DeleteInLockedJob,
    /// A blob delete of a blob the repository's images (tagged `tags`) still link.
    #[error(
        "{digest} belongs to the image tagged {} in this repository: delete the image first \
         (DELETE /v2/{repo}/manifests/{{tag}})",
        tags.join(", ")
    )]
    BlobInUse {
        digest: Digest,
        tags: Vec<String>,
        repo: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio::task::JoinError> for RegistryError {
    fn from(e: tokio::task::JoinError) -> RegistryError {
        RegistryError::Store(StoreError::Join(e))
    }
}

impl From<io::Error> for RegistryError {
    fn from(e: io::Error) -> RegistryError {
        RegistryError::Store(StoreError::from(e))
    }
}
