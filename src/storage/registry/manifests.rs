//! Manifests: pull by tag or digest, push.

use super::container_layout::top_manifest;
use super::oci::*;
use super::*;
use crate::model::{Algo, Alias, Digest, JobRef, Name, TagRef};
use crate::storage::files;
use crate::storage::tree::Listing;
use crate::storage::{BlobReader, Repo};
use serde_json::Value;
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

pub(super) fn read_small(path: &Path) -> Result<Option<Vec<u8>>, RegError> {
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
    pub fn reg_manifest(
        &self,
        r: &ImageRepo,
        reference: &str,
        acl: &Listing,
    ) -> Result<ManifestFile, RegError> {
        let (path, digest) = if reference.contains(':') {
            let d = Digest::parse(Some(reference))
                .map_err(|_| oci(Code::ManifestInvalid, reference))?;
            let path = self
                .locate(r, &d)
                .ok_or_else(|| oci(Code::ManifestUnknown, reference))?;
            (path, d.to_string())
        } else {
            let c = self.resolve_container(r, reference, acl)?;
            top_manifest(&c.dir).ok_or_else(|| oci(Code::ManifestUnknown, reference))?
        };
        let data = read_small(&path)?.ok_or_else(|| oci(Code::ManifestUnknown, reference))?;
        let doc =
            parse_doc(&data).ok_or_else(|| oci(Code::ManifestInvalid, "Invalid manifest."))?;
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
    pub fn reg_put_manifest(
        &self,
        r: &ImageRepo,
        reference: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<Pushed, RegError> {
        let ImageRepo::Job { branch, job } = r else {
            return Err(oci(Code::Unsupported, "cannot push to a product path"));
        };
        let by_digest = if reference.contains(':') {
            Some(Digest::parse(Some(reference)).map_err(|e| oci(Code::DigestInvalid, e.0))?)
        } else {
            if Alias::parse(&reference.to_lowercase()).is_some() {
                return Err(oci(
                    Code::Unsupported,
                    "uploading explicit 'latest', 'stable' or 'oldstable' tags is not supported",
                ));
            }
            None
        };
        let mut doc =
            parse_doc(body).ok_or_else(|| oci(Code::ManifestInvalid, "Invalid manifest."))?;
        let media_type = match doc.get("mediaType") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => return Err(oci(Code::ManifestInvalid, "invalid mediaType")),
            None => content_type
                .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
                .unwrap_or_default(),
        };
        if ![OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST].contains(&media_type.as_str()) {
            return Err(oci(
                Code::Unsupported,
                format!("unsupported manifest type {media_type:?}"),
            ));
        }
        let refs = refs_of(&doc, &media_type)?;
        // The subject may be absent from the registry (OCI distribution spec): only its
        // descriptor is checked.
        let subject = doc.get("subject").map(descriptor).transpose()?.map(|s| s.0);
        // Every file the image needs, found in this repository only (§3.7).
        let mut links: Vec<(Digest, PathBuf)> = Vec::new();
        let mut sizes = Vec::new();
        for (d, _) in &refs.blobs {
            let src = self
                .locate(r, d)
                .ok_or_else(|| oci(Code::BlobUnknown, d.to_string()))?;
            sizes.push(fs::metadata(&src)?.len());
            links.push((d.clone(), src));
        }
        for (d, _) in &refs.children {
            let src = self
                .locate(r, d)
                .ok_or_else(|| oci(Code::ManifestUnknown, d.to_string()))?;
            sizes.push(fs::metadata(&src)?.len());
            // A child's own blobs come along, so the tag holds the whole image.
            let data =
                read_small(&src)?.ok_or_else(|| oci(Code::ManifestInvalid, d.to_string()))?;
            let child =
                parse_doc(&data).ok_or_else(|| oci(Code::ManifestInvalid, d.to_string()))?;
            let child_refs = refs_of(&child, &media_type_of(&child))?;
            for (cd, _) in child_refs.blobs.iter().chain(&child_refs.children) {
                let csrc = self
                    .locate(r, cd)
                    .ok_or_else(|| oci(Code::BlobUnknown, cd.to_string()))?;
                links.push((cd.clone(), csrc));
            }
            links.push((d.clone(), src));
        }
        let declared = refs.blobs.iter().chain(&refs.children).map(|x| x.1);
        let mut missing = false;
        for (size, real) in declared.zip(&sizes) {
            match size {
                Some(s) if s != *real => {
                    return Err(oci(
                        Code::ManifestInvalid,
                        format!("size {s} does not match the blob ({real})"),
                    ));
                }
                Some(_) => {}
                None => missing = true,
            }
        }
        // Only a manifest with a size left out is rewritten (as dlrepo does), so the
        // client's digest stays valid for every complete manifest.
        let data: Vec<u8> = if missing {
            fill_sizes(&mut doc, &media_type, &sizes);
            crate::pyjson::to_string(&Value::Object(doc)).into_bytes()
        } else {
            body.to_vec()
        };
        let mut hasher = Algo::Sha256.hasher();
        hasher.update(&data);
        let digest = Digest::sha256_of_hex(hasher.finish_hex());
        if let Some(want) = &by_digest {
            if *want != digest {
                return Err(oci(
                    Code::DigestInvalid,
                    format!("manifest digest is {digest}"),
                ));
            }
            if self.pending(r, &digest).is_none() {
                self.check_pending_room(r, None, data.len() as u64)?;
            }
            let _guard = self.blob_guard()?;
            let blob = self.store_bytes(&digest, &data)?;
            self.mark_pending(r, &digest, &blob)?;
            return Ok(Pushed { digest, subject });
        }
        let tag = Name::parse(reference).map_err(|_| oci(Code::ManifestInvalid, "invalid tag"))?;
        let jref = JobRef {
            tag: TagRef {
                branch: branch.clone(),
                tag,
            },
            job: job.clone(),
        };
        self.install_image(r, &jref, &digest, &data, &links)?;
        Ok(Pushed { digest, subject })
    }
}
