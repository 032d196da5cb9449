//! Manifests: pulled by tag, alias or digest; pushed by tag (installed, see `install.rs`) or
//! by digest (pending). Parsing is `model::oci`'s; this finds what the descriptors name.

use super::container_layout::top_manifest;
use super::{ImageRepo, ManifestFile, Pushed, RegistryError};
use crate::model::oci::{
    Descriptor, MAX_MANIFEST, Manifest, ManifestError, media_type_of, parse_doc,
};
use crate::model::{Algo, Alias, Digest, JobRef, Name, TagRef};
use crate::storage::files;
use crate::storage::visibility::Visibility;
use crate::storage::{BlobReader, Repo};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

pub(super) fn read_small(path: &Path) -> Result<Option<Vec<u8>>, RegistryError> {
    let f = File::open(path)?;
    if f.metadata()?.len() > MAX_MANIFEST as u64 {
        return Ok(None);
    }
    let mut data = Vec::new();
    f.take(MAX_MANIFEST as u64).read_to_end(&mut data)?;
    Ok(Some(data))
}

impl Repo {
    /// A manifest by tag (or alias) or by digest (spec/CONTAINER.md §3.4).
    pub fn open_manifest(
        &self,
        r: &ImageRepo,
        reference: &str,
        acl: &Visibility,
    ) -> Result<ManifestFile, RegistryError> {
        let (path, digest) = if reference.contains(':') {
            let d = Digest::parse(Some(reference))
                .map_err(|_| RegistryError::InvalidReference(reference.to_owned()))?;
            let path = self
                .locate(r, &d)
                .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_owned()))?;
            (path, d.to_string())
        } else {
            let c = self.resolve_container(r, reference, acl)?;
            top_manifest(&c.dir)
                .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_owned()))?
        };
        let data = read_small(&path)?
            .ok_or_else(|| RegistryError::ManifestUnknown(reference.to_owned()))?;
        let doc = parse_doc(&data)
            .ok_or_else(|| RegistryError::BadManifest(ManifestError::NotAnObject))?;
        if let Ok(d) = Digest::parse(Some(&digest)) {
            let _ = files::touch(&self.blob_path(&d));
        }
        Ok(ManifestFile {
            file: BlobReader::open(self, &path, Some(digest))?,
            media_type: media_type_of(&doc),
        })
    }

    /// Stores a manifest (spec/CONTAINER.md §3.5 with arbor's deviations): byte for byte
    /// unless a `size` is missing; every referenced blob is checked, and the job lock and
    /// the quota too, before anything is written, so a refused push leaves the old image.
    /// By digest, the manifest only becomes pending (it is a child of an index to come).
    pub fn push_manifest(
        &self,
        r: &ImageRepo,
        reference: &str,
        body: &[u8],
        content_type: Option<&str>,
        may_link: &Visibility,
    ) -> Result<Pushed, RegistryError> {
        let ImageRepo::Job { branch, job } = r else {
            return Err(RegistryError::PushToProduct);
        };
        let target = PushTarget::parse(reference)?;
        let manifest =
            Manifest::parse_pushed(body, content_type).map_err(RegistryError::BadManifest)?;
        // The subject may be absent from the registry (OCI distribution spec): only its
        // descriptor is checked.
        let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
        let files = self.image_files(r, &manifest)?;
        check_sizes(&manifest, &files.sizes)?;
        // Only a manifest with a size left out is rewritten (as dlrepo does), so the
        // client's digest stays valid for every complete manifest.
        let data = if manifest.lacks_sizes() {
            manifest.with_sizes(&files.sizes)
        } else {
            body.to_vec()
        };
        let mut hasher = Algo::Sha256.hasher();
        hasher.update(&data);
        let digest = Digest::sha256_of_hex(hasher.finish_hex());
        match target {
            PushTarget::Digest(want) => self.park_manifest(r, &want, &digest, &data)?,
            PushTarget::Tag => {
                let tag = Name::parse(reference).map_err(|_| RegistryError::InvalidTag)?;
                let jref = JobRef {
                    tag: TagRef {
                        branch: branch.clone(),
                        tag,
                    },
                    job: job.clone(),
                };
                self.install_image(r, &jref, &digest, &data, &files.links, may_link)?;
            }
        }
        Ok(Pushed { digest, subject })
    }

    /// Every file the image needs, found in this repository only (§3.7), with the real
    /// size of each descriptor. An index brings its children's own blobs along, so that
    /// the tag holds the whole image.
    fn image_files(&self, r: &ImageRepo, m: &Manifest) -> Result<ImageFiles, RegistryError> {
        let mut files = ImageFiles::default();
        for Descriptor { digest: d, .. } in &m.blobs {
            let src = self
                .locate(r, d)
                .ok_or_else(|| RegistryError::MissingBlob(d.clone()))?;
            files.sizes.push(fs::metadata(&src)?.len());
            files.links.push((d.clone(), src));
        }
        for Descriptor { digest: d, .. } in &m.children {
            let src = self
                .locate(r, d)
                .ok_or_else(|| RegistryError::ManifestUnknown(d.to_string()))?;
            files.sizes.push(fs::metadata(&src)?.len());
            let data = read_small(&src)?.ok_or_else(|| RegistryError::BadChild(d.clone()))?;
            let child = Manifest::parse_stored(&data).map_err(|e| match e {
                ManifestError::NotAnObject | ManifestError::TooLarge => {
                    RegistryError::BadChild(d.clone())
                }
                e => RegistryError::BadManifest(e),
            })?;
            for cd in child.descriptors().map(|c| &c.digest) {
                let csrc = self
                    .locate(r, cd)
                    .ok_or_else(|| RegistryError::MissingBlob(cd.clone()))?;
                files.links.push((cd.clone(), csrc));
            }
            files.links.push((d.clone(), src));
        }
        Ok(files)
    }

    /// A manifest pushed by digest waits in the repository, as an uploaded blob does, for
    /// the index that will name it.
    fn park_manifest(
        &self,
        r: &ImageRepo,
        want: &Digest,
        digest: &Digest,
        data: &[u8],
    ) -> Result<(), RegistryError> {
        if want != digest {
            return Err(RegistryError::ManifestDigestMismatch(digest.clone()));
        }
        if self.pending(r, digest).is_none() {
            self.check_pending_room(r, None, data.len() as u64)?;
        }
        let _guard = self.blob_guard()?;
        let blob = self.store_bytes(digest, data)?;
        self.mark_pending(r, digest, &blob)
    }
}

/// What a manifest push names: a digest (the manifest waits, pending) or a tag.
enum PushTarget {
    Digest(Digest),
    /// Checked as a name once the manifest is, as dlrepo does.
    Tag,
}

impl PushTarget {
    fn parse(reference: &str) -> Result<PushTarget, RegistryError> {
        if reference.contains(':') {
            let d =
                Digest::parse(Some(reference)).map_err(|e| RegistryError::InvalidDigest(e.0))?;
            return Ok(PushTarget::Digest(d));
        }
        if Alias::parse(&reference.to_lowercase()).is_some() {
            return Err(RegistryError::AliasTag);
        }
        Ok(PushTarget::Tag)
    }
}

/// The files an image links, and the real size of each of the manifest's descriptors.
#[derive(Default)]
struct ImageFiles {
    links: Vec<(Digest, PathBuf)>,
    sizes: Vec<u64>,
}

/// Refuses a descriptor whose declared size is not the size of its blob.
fn check_sizes(m: &Manifest, sizes: &[u64]) -> Result<(), RegistryError> {
    for (declared, real) in m.descriptors().map(|d| d.size).zip(sizes) {
        if let Some(s) = declared
            && s != *real
        {
            return Err(RegistryError::SizeMismatch {
                declared: s,
                real: *real,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::container_layout::{rel_of, top_manifest};
    use super::super::test_support::{everyone, image, job, repo, sha256, upload, who};
    use super::*;
    use crate::model::Scope;
    use crate::model::oci::{OCI_INDEX, OCI_MANIFEST};

    #[test]
    fn a_push_names_what_it_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("main/app", None);
        let (body, _, _) = image(&repo, &w, b"layer");
        let push = |reference: &str, body: &[u8]| {
            repo.push_manifest(&w.repo, reference, body, None, &everyone())
        };
        assert!(matches!(
            push("latest", &body),
            Err(RegistryError::AliasTag)
        ));
        assert!(matches!(
            push("sha256:zz", &body),
            Err(RegistryError::InvalidDigest(_))
        ));
        assert!(matches!(push("..", &body), Err(RegistryError::InvalidTag)));
        let lost = sha256(b"never uploaded");
        let missing = format!(
            r#"{{"mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{lost}", "size": 1}}}}"#
        );
        let refused = push("t1", missing.as_bytes());
        assert!(
            matches!(&refused, Err(RegistryError::MissingBlob(d)) if *d == lost),
            "{refused:?}"
        );
        let c = upload(&repo, &w, b"{}");
        let wrong = format!(
            r#"{{"mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{c}", "size": 3}}}}"#
        );
        let refused = push("t1", wrong.as_bytes());
        assert!(
            matches!(
                refused,
                Err(RegistryError::SizeMismatch {
                    declared: 3,
                    real: 2
                })
            ),
            "{refused:?}"
        );
        let refused = push("t1", b"[]");
        assert!(matches!(
            refused,
            Err(RegistryError::BadManifest(ManifestError::NotAnObject))
        ));
        let product = ImageRepo::Product {
            scope: Scope::Root,
            path: ["p", "v", "b"].map(|s| Name::parse(s).unwrap()),
        };
        let refused = repo.push_manifest(&product, "t1", &body, None, &everyone());
        assert!(matches!(refused, Err(RegistryError::PushToProduct)));
    }

    /// A size left out is filled in: the stored manifest, and so its digest, differ from
    /// what was sent.
    #[test]
    fn missing_sizes_are_filled_in() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("main/app", None);
        let c = upload(&repo, &w, b"{}");
        let body = format!(r#"{{"mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{c}"}}}}"#);
        let pushed = repo
            .push_manifest(&w.repo, "t1", body.as_bytes(), None, &everyone())
            .unwrap();
        assert_ne!(pushed.digest, sha256(body.as_bytes()));
        let stored = fs::read(repo.blob_path(&pushed.digest)).unwrap();
        let want = format!(
            r#"{{"mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{c}", "size": 2}}}}"#
        );
        assert_eq!(String::from_utf8(stored).unwrap(), want);
    }

    /// A manifest pushed by digest waits for its index, which brings its blobs along.
    #[test]
    fn an_index_installs_its_children_pushed_by_digest() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("main/app", None);
        let (child, config, layer) = image(&repo, &w, b"layer");
        let d = sha256(&child);
        let wrong = sha256(b"other");
        let refused = repo.push_manifest(&w.repo, &wrong.to_string(), &child, None, &everyone());
        assert!(matches!(
            refused,
            Err(RegistryError::ManifestDigestMismatch(_))
        ));
        repo.push_manifest(&w.repo, &d.to_string(), &child, None, &everyone())
            .unwrap();
        assert!(repo.pending(&w.repo, &d).is_some());
        assert!(repo.image_tags(&w.repo, |_| true).unwrap().is_empty());

        let len = child.len();
        let index = format!(
            r#"{{"mediaType": "{OCI_INDEX}", "manifests": [{{"digest": "{d}", "size": {len}}}]}}"#
        );
        let pushed = repo
            .push_manifest(&w.repo, "t1", index.as_bytes(), None, &everyone())
            .unwrap();
        let cdir = repo.job_dir(&job(&w, "t1")).join("container");
        assert_eq!(
            top_manifest(&cdir).map(|(_, d)| d),
            Some(pushed.digest.to_string())
        );
        for blob in [&d, &config, &layer] {
            assert!(cdir.join("blobs").join(rel_of(blob)).is_file());
        }
    }
}
