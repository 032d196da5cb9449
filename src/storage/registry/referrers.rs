//! The referrers API: the repository's manifests whose `subject` is a digest.

use super::container_layout::digest_of_link;
use super::manifests::read_small;
use super::{ImageRepo, RegistryError};
use crate::model::Digest;
use crate::model::oci::{self, Referrer, parse_doc};
use crate::storage::Repo;
use crate::storage::visibility::Visibility;
use std::path::PathBuf;

impl Repo {
    /// Manifests of the repository whose `subject` is `d` (OCI referrers API), as index
    /// descriptors sorted by digest: those of its images and those pushed by digest that
    /// wait in it (pending), never another repository's (§3.7). With `artifact_type`, only
    /// those of that type; only those whose `/v2/{name}/manifests/{digest}` the caller may
    /// read.
    pub fn manifest_referrers(
        &self,
        r: &ImageRepo,
        d: &Digest,
        artifact_type: Option<&str>,
        acl: &Visibility,
    ) -> Result<Vec<Referrer>, RegistryError> {
        let want = d.to_string();
        let name = r.name();
        let candidates = self.manifests_in(r);
        let mut found: std::collections::BTreeMap<String, Referrer> = Default::default();
        for (digest, path) in candidates {
            let key = digest.to_string();
            if found.contains_key(&key) {
                continue;
            }
            // Gone meanwhile (a delete, the collector), or too big for a manifest.
            let Some(data) = read_small(&path).ok().flatten() else {
                continue;
            };
            // Most pending files are layers: skip what cannot name the subject unparsed.
            let json = data.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            if !json || !data.windows(want.len()).any(|w| w == want.as_bytes()) {
                continue;
            }
            let Some(doc) = parse_doc(&data) else {
                continue;
            };
            let len = data.len() as u64;
            let Some(desc) = oci::referrer(&doc, &digest, len, &want, artifact_type) else {
                continue;
            };
            if !acl.allows(|| format!("/v2/{name}/manifests/{key}")) {
                continue;
            }
            found.insert(key, desc);
        }
        Ok(found.into_values().collect())
    }

    /// Every manifest the repository holds, with its file: those of its images, then every
    /// pending file (most are layers, which the caller skips).
    fn manifests_in(&self, r: &ImageRepo) -> Vec<(Digest, PathBuf)> {
        let mut out: Vec<(Digest, PathBuf)> = Vec::new();
        for c in self.containers(r) {
            for entry in walkdir::WalkDir::new(c.dir.join("manifests"))
                .min_depth(3)
                .max_depth(3)
                .sort_by_file_name()
                .into_iter()
                .filter_map(Result::ok)
            {
                if let Some(found) = digest_of_link(entry.path()) {
                    out.push((found, entry.into_path()));
                }
            }
        }
        out.extend(self.pending_in(r));
        out
    }
}
