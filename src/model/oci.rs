//! OCI and Docker manifest documents, parsed without I/O (spec/CONTAINER.md §3.5, OCI image
//! spec): media types, image manifest vs index, descriptors with the sizes they claim, the
//! `subject` and `artifactType` the referrers API lists. Storage decides what the digests
//! name; this module only reads documents, so every refusal here is about the bytes sent.

use super::Digest;
use serde_json::{Map, Value};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The manifest types a push may declare.
const PUSHABLE: [&str; 4] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// Manifests are small; this bounds what is read into memory to parse one.
pub const MAX_MANIFEST: usize = 4 << 20;

/// Why a manifest document is refused. The text is the message clients get.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not a JSON object.
    #[error("Invalid manifest.")]
    NotAnObject,
    #[error("manifest larger than {MAX_MANIFEST} bytes")]
    TooLarge,
    #[error("invalid mediaType")]
    BadMediaType,
    /// A media type arbor does not store as a manifest (the only non-`MANIFEST_INVALID`).
    #[error("unsupported manifest type {0:?}")]
    Unsupported(String),
    #[error("missing config")]
    MissingConfig,
    /// `manifests` or `layers` is there but is not an array.
    #[error("{0} is not a list")]
    NotAList(&'static str),
    #[error("invalid digest: {0}")]
    BadDigest(String),
    #[error("invalid size")]
    BadSize,
}

/// What a manifest document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image manifest: a config and layers.
    Image,
    /// An index (or Docker manifest list): other manifests.
    Index,
}

impl Kind {
    fn of(media_type: &str) -> Kind {
        if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            Kind::Index
        } else {
            Kind::Image
        }
    }
}

/// A reference from a manifest: a digest and the size the document claims for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub digest: Digest,
    pub size: Option<u64>,
}

impl Descriptor {
    fn parse(v: &Value) -> Result<Descriptor, ManifestError> {
        let raw = v.get("digest").and_then(Value::as_str);
        let digest = Digest::parse(raw).map_err(|e| ManifestError::BadDigest(e.0))?;
        let size = match v.get("size") {
            None => None,
            Some(s) => Some(s.as_u64().ok_or(ManifestError::BadSize)?),
        };
        Ok(Descriptor { digest, size })
    }
}

/// A parsed manifest document and what it refers to.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub doc: Map<String, Value>,
    pub media_type: String,
    pub kind: Kind,
    /// An image's config, then its layers; empty for an index.
    pub blobs: Vec<Descriptor>,
    /// An index's manifests; empty for an image.
    pub children: Vec<Descriptor>,
    /// The manifest this one refers to (OCI distribution spec, "Pushing Manifests with
    /// Subject"); it need not be in the registry.
    pub subject: Option<Descriptor>,
}

impl Manifest {
    /// A manifest being pushed: its `mediaType`, else the request's `Content-Type`, must be
    /// one of the four manifest types.
    pub fn parse_pushed(
        body: &[u8],
        content_type: Option<&str>,
    ) -> Result<Manifest, ManifestError> {
        let doc = parse_object(body)?;
        let media_type = match doc.get("mediaType") {
            Some(Value::String(m)) => m.clone(),
            Some(_) => return Err(ManifestError::BadMediaType),
            None => content_type
                .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
                .unwrap_or_default(),
        };
        if !PUSHABLE.contains(&media_type.as_str()) {
            return Err(ManifestError::Unsupported(media_type));
        }
        let mut m = Manifest::with_refs(doc, media_type)?;
        m.subject = m.doc.get("subject").map(Descriptor::parse).transpose()?;
        Ok(m)
    }

    /// A manifest already stored (the child of an index being pushed): its media type may
    /// be left out, and is then told by the document's shape.
    pub fn parse_stored(data: &[u8]) -> Result<Manifest, ManifestError> {
        let doc = parse_object(data)?;
        let media_type = media_type_of(&doc);
        let mut m = Manifest::with_refs(doc, media_type)?;
        // Checked when it was pushed; a push of its index must not fail for it now.
        m.subject = m.doc.get("subject").and_then(|s| Descriptor::parse(s).ok());
        Ok(m)
    }

    fn with_refs(doc: Map<String, Value>, media_type: String) -> Result<Manifest, ManifestError> {
        let kind = Kind::of(&media_type);
        let (mut blobs, mut children) = (Vec::new(), Vec::new());
        match kind {
            Kind::Index => children = descriptors(&doc, "manifests")?,
            Kind::Image => {
                let config = doc.get("config").ok_or(ManifestError::MissingConfig)?;
                blobs.push(Descriptor::parse(config)?);
                blobs.extend(descriptors(&doc, "layers")?);
            }
        }
        Ok(Manifest {
            doc,
            media_type,
            kind,
            blobs,
            children,
            subject: None,
        })
    }

    /// Every descriptor, blobs first, in document order.
    pub fn descriptors(&self) -> impl Iterator<Item = &Descriptor> {
        self.blobs.iter().chain(&self.children)
    }

    /// Whether a descriptor leaves its `size` out.
    pub fn lacks_sizes(&self) -> bool {
        self.descriptors().any(|d| d.size.is_none())
    }

    /// The document with each descriptor's `size` set to `sizes` (in [`Self::descriptors`]
    /// order): replaced in place, or appended as the last key (spec/CONTAINER.md §3.5 step
    /// 5), written as Python's `json.dumps` would.
    pub fn with_sizes(mut self, sizes: &[u64]) -> Vec<u8> {
        let mut sizes = sizes.iter();
        let mut set = |v: &mut Value| {
            if let (Value::Object(m), Some(s)) = (v, sizes.next()) {
                m.insert("size".into(), (*s).into());
            }
        };
        let doc = &mut self.doc;
        match self.kind {
            Kind::Index => {
                if let Some(Value::Array(a)) = doc.get_mut("manifests") {
                    a.iter_mut().for_each(&mut set);
                }
            }
            Kind::Image => {
                if let Some(c) = doc.get_mut("config") {
                    set(c);
                }
                if let Some(Value::Array(a)) = doc.get_mut("layers") {
                    a.iter_mut().for_each(&mut set);
                }
            }
        }
        crate::pyjson::to_string(&Value::Object(self.doc)).into_bytes()
    }
}

fn parse_object(data: &[u8]) -> Result<Map<String, Value>, ManifestError> {
    if data.len() > MAX_MANIFEST {
        return Err(ManifestError::TooLarge);
    }
    parse_doc(data).ok_or(ManifestError::NotAnObject)
}

fn descriptors(
    doc: &Map<String, Value>,
    key: &'static str,
) -> Result<Vec<Descriptor>, ManifestError> {
    match doc.get(key) {
        None => Ok(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(Descriptor::parse).collect(),
        Some(_) => Err(ManifestError::NotAList(key)),
    }
}

/// A JSON object, or `None` for anything else.
pub fn parse_doc(data: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The media type a stored manifest declares; OCI manifests may leave it out, so fall back
/// on the shape of the document.
pub fn media_type_of(doc: &Map<String, Value>) -> String {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None if doc.contains_key("manifests") => OCI_INDEX.to_owned(),
        None => OCI_MANIFEST.to_owned(),
    }
}

/// A manifest as the referrers API lists it (OCI distribution spec, "Listing Referrers").
#[derive(Debug, Clone, PartialEq)]
pub struct Referrer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// The manifest's `artifactType`, else its config's media type.
    pub artifact_type: Option<String>,
    pub annotations: Option<Value>,
}

/// The manifest `doc` (`digest`, `size` bytes) as a referrer of `subject`, when it names
/// it and, with a filter, is of `artifact_type`; `None` otherwise. Tolerant: a stored
/// document that is no valid manifest is simply not a referrer.
pub fn referrer(
    doc: &Map<String, Value>,
    digest: &Digest,
    size: u64,
    subject: &str,
    artifact_type: Option<&str>,
) -> Option<Referrer> {
    let names = doc
        .get("subject")
        .and_then(|s| s.get("digest"))
        .and_then(Value::as_str);
    let media_type = media_type_of(doc);
    if names != Some(subject) || !PUSHABLE.contains(&media_type.as_str()) {
        return None;
    }
    let atype = doc.get("artifactType").and_then(Value::as_str).or_else(|| {
        doc.get("config")
            .and_then(|c| c.get("mediaType"))
            .and_then(Value::as_str)
    });
    if artifact_type.is_some_and(|t| Some(t) != atype) {
        return None;
    }
    Some(Referrer {
        media_type,
        digest: digest.clone(),
        size,
        artifact_type: atype.map(str::to_owned),
        annotations: doc.get("annotations").cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn bytes(v: Value) -> Vec<u8> {
        serde_json::to_vec(&v).expect("a JSON value serialises")
    }

    fn digest(s: &str) -> Digest {
        Digest::parse(Some(s)).expect("a test digest")
    }

    fn image(media_type: &str) -> Value {
        json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": A, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": B, "size": 5}],
        })
    }

    #[test]
    fn an_image_manifest_lists_its_config_then_its_layers() {
        let m = Manifest::parse_pushed(&bytes(image(OCI_MANIFEST)), None).unwrap();
        assert_eq!(m.kind, Kind::Image);
        assert_eq!(m.media_type, OCI_MANIFEST);
        let blobs: Vec<_> = m
            .blobs
            .iter()
            .map(|d| (d.digest.to_string(), d.size))
            .collect();
        assert_eq!(blobs, [(A.to_owned(), Some(2)), (B.to_owned(), Some(5))]);
        assert!(m.children.is_empty() && m.subject.is_none() && !m.lacks_sizes());
    }

    #[test]
    fn a_docker_schema2_manifest_is_an_image() {
        let m = Manifest::parse_pushed(&bytes(image(DOCKER_MANIFEST)), None).unwrap();
        assert_eq!((m.kind, m.blobs.len()), (Kind::Image, 2));
    }

    #[test]
    fn an_index_lists_its_manifests() {
        let doc = json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": A}, {"digest": B, "size": 9}],
        });
        // No mediaType in the document: the request's Content-Type says what it is.
        let m = Manifest::parse_pushed(&bytes(doc.clone()), Some(&format!("{OCI_INDEX}; x=y")))
            .unwrap();
        assert_eq!((m.kind, m.media_type.as_str()), (Kind::Index, OCI_INDEX));
        let sizes: Vec<_> = m.children.iter().map(|d| d.size).collect();
        assert_eq!(sizes, [None, Some(9)]);
        assert!(m.blobs.is_empty() && m.lacks_sizes());
        // Stored, the same document is told an index by its shape.
        assert_eq!(
            Manifest::parse_stored(&bytes(doc)).unwrap().kind,
            Kind::Index
        );
    }

    #[test]
    fn missing_sizes_are_filled_in_document_order() {
        let doc = json!({"mediaType": DOCKER_LIST, "manifests": [{"digest": A}, {"size": 1, "digest": B}]});
        let m = Manifest::parse_pushed(&bytes(doc), None).unwrap();
        let out = String::from_utf8(m.with_sizes(&[7, 8])).unwrap();
        assert_eq!(
            out,
            format!(
                r#"{{"mediaType": "{DOCKER_LIST}", "manifests": [{{"digest": "{A}", "size": 7}}, {{"size": 8, "digest": "{B}"}}]}}"#
            )
        );
    }

    #[test]
    fn unknown_media_types_are_unsupported() {
        let err = Manifest::parse_pushed(&bytes(image("application/x-nope")), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"unsupported manifest type "application/x-nope""#
        );
        let mut doc = image(OCI_MANIFEST);
        doc.as_object_mut().unwrap().remove("mediaType");
        let err = Manifest::parse_pushed(&bytes(doc), None).unwrap_err();
        assert_eq!(err, ManifestError::Unsupported(String::new()));
    }

    #[test]
    fn malformed_documents_say_what_is_wrong() {
        let cases: Vec<(Vec<u8>, ManifestError)> = vec![
            (b"[1]".to_vec(), ManifestError::NotAnObject),
            (b"{not json".to_vec(), ManifestError::NotAnObject),
            (bytes(json!({"mediaType": 2})), ManifestError::BadMediaType),
            (
                bytes(json!({"mediaType": OCI_MANIFEST})),
                ManifestError::MissingConfig,
            ),
            (
                bytes(json!({"mediaType": OCI_MANIFEST, "config": {"digest": A}, "layers": {}})),
                ManifestError::NotAList("layers"),
            ),
            (
                bytes(json!({"mediaType": OCI_INDEX, "manifests": "x"})),
                ManifestError::NotAList("manifests"),
            ),
            (
                bytes(json!({"mediaType": OCI_MANIFEST, "config": {"size": 1}})),
                ManifestError::BadDigest("None".into()),
            ),
            (
                bytes(json!({"mediaType": OCI_MANIFEST, "config": {"digest": "md5:zz"}})),
                ManifestError::BadDigest("md5:zz".into()),
            ),
            (
                bytes(json!({"mediaType": OCI_MANIFEST, "config": {"digest": A, "size": -1}})),
                ManifestError::BadSize,
            ),
            (
                bytes(json!({"mediaType": OCI_MANIFEST, "config": {"digest": A}, "subject": {}})),
                ManifestError::BadDigest("None".into()),
            ),
        ];
        for (data, want) in cases {
            let got = Manifest::parse_pushed(&data, None).unwrap_err();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&data));
        }
        assert_eq!(ManifestError::NotAnObject.to_string(), "Invalid manifest.");
        assert_eq!(
            ManifestError::NotAList("layers").to_string(),
            "layers is not a list"
        );
        assert_eq!(
            ManifestError::BadDigest("x".into()).to_string(),
            "invalid digest: x"
        );
    }

    #[test]
    fn oversize_documents_are_refused_unread() {
        let mut data = bytes(image(OCI_MANIFEST));
        data.resize(MAX_MANIFEST + 1, b' ');
        assert_eq!(
            Manifest::parse_stored(&data).unwrap_err(),
            ManifestError::TooLarge
        );
        data.truncate(MAX_MANIFEST);
        assert!(Manifest::parse_stored(&data).is_ok());
    }

    #[test]
    fn subject_and_artifact_type_make_a_referrer() {
        let mut doc = image(OCI_MANIFEST);
        let obj = doc.as_object_mut().unwrap();
        obj.insert(
            "subject".into(),
            json!({"mediaType": OCI_MANIFEST, "digest": C, "size": 3}),
        );
        obj.insert("annotations".into(), json!({"k": "v"}));
        let m = Manifest::parse_pushed(&bytes(doc.clone()), None).unwrap();
        assert_eq!(m.subject.map(|s| s.digest), Some(digest(C)));

        let obj = doc.as_object().unwrap();
        let r = referrer(obj, &digest(A), 10, C, None).unwrap();
        assert_eq!(
            r,
            Referrer {
                media_type: OCI_MANIFEST.into(),
                digest: digest(A),
                size: 10,
                artifact_type: Some("application/vnd.oci.image.config.v1+json".into()),
                annotations: Some(json!({"k": "v"})),
            }
        );
        assert!(
            referrer(obj, &digest(A), 10, B, None).is_none(),
            "another subject"
        );
        let sbom = Some("application/x-sbom");
        assert!(referrer(obj, &digest(A), 10, C, sbom).is_none());

        // `artifactType` wins over the config's media type.
        let mut doc = doc;
        doc.as_object_mut()
            .unwrap()
            .insert("artifactType".into(), json!("application/x-sbom"));
        let r = referrer(doc.as_object().unwrap(), &digest(A), 10, C, sbom).unwrap();
        assert_eq!(r.artifact_type.as_deref(), sbom);
    }
}
