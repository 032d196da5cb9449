//! Manifest documents: media types, descriptors and sizes (spec/CONTAINER.md §3.5).

use super::*;
use crate::model::Digest;
use serde_json::{Map, Value};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests are small; this bounds what is read into memory to parse one.
pub const MAX_MANIFEST: usize = 4 << 20;

/// The media type a stored manifest declares; OCI manifests may leave it out, so fall back
/// on the shape of the document.
pub(super) fn media_type_of(doc: &Map<String, Value>) -> String {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None if doc.contains_key("manifests") => OCI_INDEX.to_owned(),
        None => OCI_MANIFEST.to_owned(),
    }
}

pub(super) fn parse_doc(data: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The descriptors a manifest or index refers to, with the `size`s it claims.
pub(super) struct Refs {
    pub(super) blobs: Vec<(Digest, Option<u64>)>,
    pub(super) children: Vec<(Digest, Option<u64>)>,
}

pub(super) fn descriptor(v: &Value) -> Result<(Digest, Option<u64>), RegError> {
    let raw = v.get("digest").and_then(Value::as_str);
    let d = Digest::parse(raw)
        .map_err(|e| oci(Code::ManifestInvalid, format!("invalid digest: {}", e.0)))?;
    let size = match v.get("size") {
        None => None,
        Some(s) => Some(
            s.as_u64()
                .ok_or_else(|| oci(Code::ManifestInvalid, "invalid size"))?,
        ),
    };
    Ok((d, size))
}

pub(super) fn refs_of(doc: &Map<String, Value>, media_type: &str) -> Result<Refs, RegError> {
    let mut refs = Refs {
        blobs: Vec::new(),
        children: Vec::new(),
    };
    let list = |key: &str| -> Result<Vec<Value>, RegError> {
        match doc.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => Ok(a.clone()),
            Some(_) => Err(oci(Code::ManifestInvalid, format!("{key} is not a list"))),
        }
    };
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        for m in list("manifests")? {
            refs.children.push(descriptor(&m)?);
        }
    } else {
        let config = doc
            .get("config")
            .ok_or_else(|| oci(Code::ManifestInvalid, "missing config"))?;
        refs.blobs.push(descriptor(config)?);
        for l in list("layers")? {
            refs.blobs.push(descriptor(&l)?);
        }
    }
    Ok(refs)
}

/// Sets each descriptor's `size` to the real one: replaced in place, or appended as the
/// last key (spec/CONTAINER.md §3.5 step 5).
pub(super) fn fill_sizes(doc: &mut Map<String, Value>, media_type: &str, sizes: &[u64]) {
    let mut sizes = sizes.iter();
    let mut set = |v: &mut Value| {
        if let (Value::Object(m), Some(s)) = (v, sizes.next()) {
            m.insert("size".into(), (*s).into());
        }
    };
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        if let Some(Value::Array(a)) = doc.get_mut("manifests") {
            a.iter_mut().for_each(&mut set);
        }
    } else {
        if let Some(c) = doc.get_mut("config") {
            set(c);
        }
        if let Some(Value::Array(a)) = doc.get_mut("layers") {
            a.iter_mut().for_each(&mut set);
        }
    }
}
