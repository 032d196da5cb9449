//! Container images inside the tree (spec/CONTAINER.md): upload sessions in `.uploads/`,
//! manifests and blobs hard-linked into `{job}/container/{blobs,manifests}/{algo}/{xx}/{hex}`
//! from `.blobs/`. Owns every filesystem step of the registry; the HTTP side never sees a path.
//!
//! Blobs are scoped to a repository (CONTAINER.md §3.7, arbor's deviation): a digest is
//! readable under a name only when one of that repository's containers links it, or when it
//! was uploaded (or mounted) there and waits for its manifest. That waiting state is a
//! "pending" hard link `.uploads/reg-{key}-{algo}-{hex}`, `key` naming the repository, which
//! also keeps the blob away from the orphan collector until the manifest arrives; the
//! collector drops stale ones.
//!
//! Pending data of a user repository (`u/{user}/...`: its sessions and pending blobs) lies
//! outside `users/{user}/`, so `.disk_usage` does not count it, but it is reserved against
//! the quota: a chunk, a finished upload, a mount or a manifest pushed by digest that would
//! take the usage plus what the user has pending past the quota is refused (403 `DENIED`).
//! Pending links of a user repository end in `.{user}` so the reservation can be summed.

use super::aliases::pick_alias;
use super::files::{self, DirLock, exists, random_hex, sort_time, stamp_time};
use super::visibility::Visibility as Listing;
use super::{BlobReader, Repo, StoreError};
use crate::model::{Algo, Alias, BranchRef, Digest, JobRef, Name, Scope, TagRef};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Map, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Manifests are small; this bounds what is read into memory to parse one.
pub const MAX_MANIFEST: usize = 4 << 20;

/// A registry repository name, mapped onto the tree (spec/CONTAINER.md §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRepo {
    /// `[u/{user}/]{branch}/{job}`: the job `{job}` of every tag of the branch.
    Job { branch: BranchRef, job: Name },
    /// `[u/{user}/]{product}/{variant}/{product_branch}`: read-only.
    Product { scope: Scope, path: [Name; 3] },
}

impl ImageRepo {
    /// The repository (root or user) the name lives in.
    pub fn scope(&self) -> &Scope {
        match self {
            ImageRepo::Job { branch, .. } => &branch.scope,
            ImageRepo::Product { scope, .. } => scope,
        }
    }

    /// The name as clients spell it (lower case), e.g. `u/bob/main/myjob`.
    pub fn name(&self) -> String {
        let (scope, rest) = match self {
            ImageRepo::Job { branch, job } => (&branch.scope, format!("{}/{job}", branch.branch)),
            ImageRepo::Product { scope, path } => {
                (scope, format!("{}/{}/{}", path[0], path[1], path[2]))
            }
        };
        match scope {
            Scope::Root => rest,
            Scope::User(u) => format!("u/{u}/{rest}"),
        }
    }
}

/// The OCI distribution error codes arbor sends (spec/CONTAINER.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Denied,
    Unsupported,
    RangeInvalid,
    /// A blob DELETE of a blob an image of the repository still links.
    BlobInUse,
}

#[derive(Debug, thiserror::Error)]
pub enum RegError {
    #[error("{1}")]
    Oci(Code, String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio::task::JoinError> for RegError {
    fn from(e: tokio::task::JoinError) -> RegError {
        RegError::Store(StoreError::Join(e))
    }
}

impl From<io::Error> for RegError {
    fn from(e: io::Error) -> RegError {
        RegError::Store(StoreError::from(e))
    }
}

fn oci(code: Code, msg: impl Into<String>) -> RegError {
    RegError::Oci(code, msg.into())
}

/// A manifest ready to be sent.
pub struct ManifestFile {
    /// Opened with the manifest's digest.
    pub file: BlobReader,
    pub media_type: String,
}

/// A manifest stored by a push.
pub struct Pushed {
    pub digest: Digest,
    /// The manifest's `subject`, which the referrers API lists it under.
    pub subject: Option<Digest>,
}

/// Where an upload session stands.
pub struct UploadState {
    pub size: u64,
}

/// Who works on an upload session: the repository named in the URL and the caller's login
/// (`None` when auth is disabled, or for an anonymous caller). A session answers only to the
/// pair that started it, so that its id alone gives no access (spec/API.md, issue 11).
#[derive(Debug, Clone)]
pub struct Uploader {
    pub repo: ImageRepo,
    pub login: Option<String>,
}

impl Uploader {
    /// The content of the session's owner file: canonical name and login, nothing else, so
    /// that the same pair always gives the same bytes.
    fn owner_record(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "repo": self.repo.name(),
            "login": self.login,
        }))
        .expect("a JSON object of strings serialises")
    }
}

/// One container of a repository: the tag (or version) name and its dirs.
struct Container {
    name: Name,
    dir: PathBuf,
    /// The tag or version dir, for `.stamp` ages.
    parent: PathBuf,
}

fn rel_of(d: &Digest) -> String {
    format!("{}/{}/{}", d.algo().name(), &d.hex()[..2], d.hex())
}

/// A key naming a repository in `.uploads/` file names: 128 bits of the SHA-256 of its
/// name, so names of any length and case fit, and no two repositories share one.
fn repo_key(r: &ImageRepo) -> String {
    let mut h = Algo::Sha256.hasher();
    h.update(r.name().as_bytes());
    let mut key = h.finish_hex();
    key.truncate(32);
    key
}

fn pending_prefix(r: &ImageRepo) -> String {
    format!("reg-{}-", repo_key(r))
}

/// `name.{user}` for a user repository: the quota sums pending links by that suffix.
fn with_user(name: String, r: &ImageRepo) -> String {
    match r.scope() {
        Scope::Root => name,
        Scope::User(u) => format!("{name}.{u}"),
    }
}

fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The media type a stored manifest declares; OCI manifests may leave it out, so fall back
/// on the shape of the document.
fn media_type_of(doc: &Map<String, Value>) -> String {
    match doc.get("mediaType").and_then(Value::as_str) {
        Some(m) => m.to_owned(),
        None if doc.contains_key("manifests") => OCI_INDEX.to_owned(),
        None => OCI_MANIFEST.to_owned(),
    }
}

fn parse_doc(data: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(data) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn read_small(path: &Path) -> Result<Option<Vec<u8>>, RegError> {
    let f = File::open(path)?;
    if f.metadata()?.len() > MAX_MANIFEST as u64 {
        return Ok(None);
    }
    let mut data = Vec::new();
    f.take(MAX_MANIFEST as u64).read_to_end(&mut data)?;
    Ok(Some(data))
}

/// The descriptors a manifest or index refers to, with the `size`s it claims.
struct Refs {
    blobs: Vec<(Digest, Option<u64>)>,
    children: Vec<(Digest, Option<u64>)>,
}

fn descriptor(v: &Value) -> Result<(Digest, Option<u64>), RegError> {
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

fn refs_of(doc: &Map<String, Value>, media_type: &str) -> Result<Refs, RegError> {
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

impl Repo {
    /// The pending link that keeps `d` in the repository `r`:
    /// `.uploads/reg-{key}-{algo}-{hex}[.{user}]`, `key` naming the repository (see
    /// [`repo_key`]), so that its pending content can be listed, and the user suffix
    /// letting the quota sum a user's reservation.
    fn pending_path(&self, r: &ImageRepo, d: &Digest) -> PathBuf {
        let base = format!("{}{}-{}", pending_prefix(r), d.algo().name(), d.hex());
        self.uploads_dir().join(with_user(base, r))
    }

    /// The name arbor gave pending links before they named their repository
    /// (`reg-{sha256(name, digest)}`): still honoured, so that a push waiting for its
    /// manifest across an upgrade completes. The collector drops them like any other.
    fn legacy_pending_path(&self, r: &ImageRepo, d: &Digest) -> PathBuf {
        let mut h = Algo::Sha256.hasher();
        h.update(r.name().as_bytes());
        h.update(b"\n");
        h.update(d.to_string().as_bytes());
        self.uploads_dir()
            .join(with_user(format!("reg-{}", h.finish_hex()), r))
    }

    /// The pending link of `d` in `r`, if there is one.
    fn pending(&self, r: &ImageRepo, d: &Digest) -> Option<PathBuf> {
        [self.pending_path(r, d), self.legacy_pending_path(r, d)]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// Removes the pending link of `d` in `r`; `false` when there was none.
    fn drop_pending(&self, r: &ImageRepo, d: &Digest) -> io::Result<bool> {
        let mut dropped = false;
        for p in [self.pending_path(r, d), self.legacy_pending_path(r, d)] {
            match fs::remove_file(p) {
                Ok(()) => dropped = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(dropped)
    }

    /// Every digest pending in `r`, with its link.
    fn pending_in(&self, r: &ImageRepo) -> Vec<(Digest, PathBuf)> {
        let prefix = pending_prefix(r);
        let mut out = Vec::new();
        for entry in fs::read_dir(self.uploads_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let rest = rest.split_once('.').map_or(rest, |(d, _)| d);
            let Some((algo, hex)) = rest.split_once('-') else {
                continue;
            };
            if let Ok(d) = Digest::parse(Some(&format!("{algo}:{hex}"))) {
                out.push((d, entry.path()));
            }
        }
        out
    }

    /// Bytes a user has pending in the registry: its sessions (but `except`) and its
    /// pending blobs, each pending link in full as the usage counts links.
    fn reserved(&self, user: &Name, except: Option<&str>) -> u64 {
        let repo_prefix = format!("u/{user}/");
        let mut total = 0;
        for entry in fs::read_dir(self.uploads_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let counts = if let Some(rest) = name.strip_prefix("reg-") {
                rest.split_once('.')
                    .is_some_and(|(_, u)| u == user.as_str())
            } else if is_session_id(name) && except != Some(name) {
                fs::read(owner_file(&entry.path()))
                    .ok()
                    .and_then(|o| serde_json::from_slice::<Value>(&o).ok())
                    .and_then(|o| o.get("repo")?.as_str().map(str::to_owned))
                    .is_some_and(|repo| repo.starts_with(&repo_prefix))
            } else {
                false
            };
            if counts && let Ok(m) = entry.metadata() {
                total += m.len();
            }
        }
        total
    }

    /// Refuses `more` bytes of new pending data in `r` when the user's usage plus what it
    /// has pending (sessions other than `except` included) would pass the quota.
    fn check_pending_room(
        &self,
        r: &ImageRepo,
        except: Option<&str>,
        more: u64,
    ) -> Result<(), RegError> {
        let (Some(room), Scope::User(user)) = (self.room(r.scope()), r.scope()) else {
            return Ok(());
        };
        room.check(self.reserved(user, except), more)
            .map_err(|e| oci(Code::Denied, e.to_string()))
    }

    /// The session file, when `id` names a session that `who` started. Anything else (a
    /// malformed id, no such session, another repository or caller, an owner file lost to a
    /// crash) gets the same answer, so ids cannot be probed.
    fn session_path(&self, who: &Uploader, id: &str) -> Result<PathBuf, RegError> {
        let unknown = || oci(Code::BlobUploadUnknown, "Blob upload unknown to registry.");
        if !is_session_id(id) {
            return Err(unknown());
        }
        let p = self.uploads_dir().join(id);
        let owned = fs::read(owner_file(&p)).is_ok_and(|o| o == who.owner_record());
        if !owned || !p.is_file() {
            return Err(unknown());
        }
        Ok(p)
    }

    fn containers(&self, r: &ImageRepo) -> Vec<Container> {
        let mut out = Vec::new();
        match r {
            ImageRepo::Job { branch, job } => {
                let bdir = self.branch_dir(branch);
                for tag in Repo::list_entities(&bdir).unwrap_or_default() {
                    let parent = bdir.join(&tag);
                    let dir = parent.join(job).join("container");
                    if dir.is_dir() {
                        out.push(Container {
                            name: tag,
                            dir,
                            parent,
                        });
                    }
                }
            }
            ImageRepo::Product { scope, path } => {
                let pdir = self
                    .products_dir(scope)
                    .join(&path[0])
                    .join(&path[1])
                    .join(&path[2]);
                for version in Repo::list_entities(&pdir).unwrap_or_default() {
                    let parent = pdir.join(&version);
                    let dir = parent.join("container");
                    if dir.is_dir() {
                        out.push(Container {
                            name: version,
                            dir,
                            parent,
                        });
                    }
                }
            }
        }
        out
    }

    /// The URL whose read access decides whether a tag (or version) takes part in aliases.
    fn container_url(r: &ImageRepo, name: &Name) -> String {
        match r {
            ImageRepo::Job { branch, .. } => TagRef {
                branch: branch.clone(),
                tag: name.clone(),
            }
            .url(),
            ImageRepo::Product { scope, path } => format!(
                "{}/products/{}/{}/{}/{name}/",
                scope.url(),
                path[0],
                path[1],
                path[2]
            ),
        }
    }

    /// Tags of a repository, sorted, filtered by `visible(tag)`: only tags pushed (or
    /// versions), never the aliases, which a client could not delete (spec/CONTAINER.md
    /// §3.3 lists `latest`; the OCI spec lists tags). A repository with neither an image nor
    /// pending content is unknown (404 `NAME_UNKNOWN`).
    pub fn reg_tags(
        &self,
        r: &ImageRepo,
        visible: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, RegError> {
        let containers = self.containers(r);
        if containers.is_empty() && self.pending_in(r).is_empty() {
            return Err(oci(
                Code::NameUnknown,
                "repository name not known to registry",
            ));
        }
        let mut tags: Vec<String> = containers
            .into_iter()
            .map(|c| c.name.to_string())
            .filter(|t| visible(t))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Every repository with at least one container (spec/CONTAINER.md §3.2), root repo only.
    pub fn reg_catalog(&self) -> Vec<String> {
        let mut out = Vec::new();
        let branches = self.branches_dir(&Scope::Root);
        for b in Repo::list_entities(&branches).unwrap_or_default() {
            let mut jobs = Vec::new();
            for t in Repo::list_entities(&branches.join(&b)).unwrap_or_default() {
                let tdir = branches.join(&b).join(&t);
                for j in Repo::list_entities(&tdir).unwrap_or_default() {
                    if tdir.join(&j).join("container").is_dir() {
                        jobs.push(format!("{b}/{j}"));
                    }
                }
            }
            out.extend(jobs);
        }
        let products = self.products_dir(&Scope::Root);
        for p in Repo::list_entities(&products).unwrap_or_default() {
            for v in Repo::list_entities(&products.join(&p)).unwrap_or_default() {
                for pb in Repo::list_entities(&products.join(&p).join(&v)).unwrap_or_default() {
                    let pbdir = products.join(&p).join(&v).join(&pb);
                    let any = Repo::list_entities(&pbdir)
                        .unwrap_or_default()
                        .iter()
                        .any(|ver| pbdir.join(ver).join("container").is_dir());
                    if any {
                        out.push(format!("{p}/{v}/{pb}"));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The container a tag (or alias) names.
    fn resolve_container(
        &self,
        r: &ImageRepo,
        tag: &str,
        acl: &Listing,
    ) -> Result<Container, RegError> {
        let unknown = || oci(Code::ManifestUnknown, tag);
        let lower = tag.to_lowercase();
        let all = self.containers(r);
        if let Some(alias) = Alias::parse(&lower) {
            let candidates = all
                .into_iter()
                .filter(|c| acl.allows(|| Repo::container_url(r, &c.name)))
                .map(|c| (sort_time(stamp_time(&c.parent)), c.dir.clone(), c.dir))
                .collect();
            // A container's tag dir is two levels up, through the product symlink if any.
            let dir = pick_alias(candidates, alias, |dir| {
                fs::canonicalize(dir)
                    .ok()
                    .and_then(|d| d.parent()?.parent().map(|t| exists(&t.join(".stable"))))
                    .unwrap_or(false)
            })
            .ok_or_else(unknown)?;
            return Ok(Container {
                name: Name::parse(&lower).map_err(|_| unknown())?,
                parent: dir.clone(),
                dir,
            });
        }
        all.into_iter()
            .find(|c| c.name.as_str() == lower)
            .ok_or_else(unknown)
    }

    /// Where the repository holds `d`: one of its containers (as a blob or a manifest), or
    /// a pending upload or manifest push.
    fn locate(&self, r: &ImageRepo, d: &Digest) -> Option<PathBuf> {
        if let Some(pending) = self.pending(r, d) {
            return Some(pending);
        }
        let rel = rel_of(d);
        self.containers(r).into_iter().find_map(|c| {
            ["blobs", "manifests"]
                .iter()
                .map(|kind| c.dir.join(kind).join(&rel))
                .find(|p| p.is_file())
        })
    }

    /// Opens a blob for HEAD/GET when the repository holds it (spec/CONTAINER.md §3.7).
    pub fn reg_open_blob(&self, r: &ImageRepo, d: &Digest) -> Result<BlobReader, RegError> {
        let found = self
            .locate(r, d)
            .ok_or_else(|| oci(Code::BlobUnknown, "Unknown blob in registry."))?;
        // The `.blobs` file is the same inode; prefer it (X-Sendfile path) and touch it.
        let blob = self.blob_path(d);
        let path = if blob.is_file() { blob } else { found };
        let _ = files::touch(&path);
        Ok(BlobReader::open(self, &path, Some(d.to_string()))?)
    }

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

    // ---- uploads ------------------------------------------------------------------------

    /// Creates an empty upload session for `who` and returns its id (32 hex chars). The
    /// owner file is on disk (fsynced, renamed into place) before the id is handed out; a
    /// session whose owner file is missing answers to nobody.
    pub fn reg_start_upload(&self, who: &Uploader) -> Result<String, RegError> {
        let uploads = self.uploads_dir();
        fs::create_dir_all(&uploads)?;
        loop {
            let id = random_hex();
            let path = uploads.join(&id);
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
            if let Err(e) = files::write_atomic(&uploads, &owner_file(&path), &who.owner_record()) {
                let _ = fs::remove_file(&path);
                return Err(e.into());
            }
            return Ok(id);
        }
    }

    pub fn reg_upload_state(&self, who: &Uploader, id: &str) -> Result<UploadState, RegError> {
        let p = self.session_path(who, id)?;
        Ok(UploadState {
            size: fs::metadata(p)?.len(),
        })
    }

    pub fn reg_cancel_upload(&self, who: &Uploader, id: &str) -> Result<(), RegError> {
        let p = self.session_path(who, id)?;
        remove_session(&p)?;
        Ok(())
    }

    /// Appends `body` to a session, streaming (constant memory). `start`, from
    /// `Content-Range`, must equal the current size. A body that breaks off or stalls is cut
    /// back out, so the session stays usable. When the session starts empty the data is
    /// hashed on the way, which saves re-reading it when the upload is finished.
    ///
    /// No thread waits on the client: the session is locked without blocking (a second
    /// request on it is refused at once), and the bytes are written batch by batch by short
    /// blocking tasks as they arrive.
    pub async fn reg_append<S>(
        self: &Arc<Self>,
        who: &Uploader,
        id: &str,
        start: Option<u64>,
        mut body: S,
    ) -> Result<u64, RegError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let repo = Arc::clone(self);
        let (owner, sid) = (who.clone(), id.to_owned());
        let session =
            tokio::task::spawn_blocking(move || repo.open_session(&owner, &sid, start)).await??;
        let old = session.old;
        let hasher = (old == 0).then(|| Algo::Sha256.hasher());
        let mut sink = Some((Arc::new(session.lock.try_clone()?), hasher));
        let mut in_flight: Option<super::Flush> = None;
        let (mut batch, mut batch_len, mut taken) = (Vec::new(), 0usize, 0u64);
        let outcome: Result<(), RegError> = async {
            loop {
                let next = body.next().await.transpose().map_err(super::body_error)?;
                let end = next.is_none();
                if let Some(chunk) = next {
                    taken += chunk.len() as u64;
                    // A session of a user repository grows only as far as the quota allows,
                    // counting what the user has pending elsewhere.
                    if let Some((left, room, reserved)) = &session.limit
                        && old + taken > *left
                    {
                        let why = match room.check(*reserved, old + taken) {
                            Err(e) => e.to_string(),
                            Ok(()) => "quota exceeded".to_owned(),
                        };
                        return Err(oci(Code::Denied, why));
                    }
                    batch_len += chunk.len();
                    batch.push(chunk);
                }
                if batch_len >= self.chunk_size() || (end && !batch.is_empty()) {
                    if let Some(flush) = in_flight.take() {
                        sink = Some(flush.wait().await?);
                    }
                    let (file, hasher) = sink
                        .take()
                        .ok_or_else(|| oci(Code::BlobUploadInvalid, "upload writer lost"))?;
                    let data = std::mem::take(&mut batch);
                    in_flight = Some(super::Flush::start(file, hasher, data).await);
                    batch_len = 0;
                }
                if end {
                    break;
                }
            }
            if let Some(flush) = in_flight.take() {
                sink = Some(flush.wait().await?);
            }
            Ok(())
        }
        .await;
        let OpenSession { lock, path, .. } = session;
        let hasher = sink.and_then(|(_, h)| h);
        // Whatever went wrong, the session goes back to where it was: the client may send
        // the chunk again (after freeing room, say).
        tokio::task::spawn_blocking(move || -> Result<u64, RegError> {
            if let Err(e) = outcome {
                lock.set_len(old)?;
                return Err(e);
            }
            let len = old + taken;
            if let Some(h) = hasher {
                let _ = fs::write(sidecar(&path), format!("{len} {}", h.finish_hex()));
            }
            Ok(len)
        })
        .await?
    }

    /// Opens a session for appending: locked (without waiting: a second request on one
    /// session is refused), at the offset the client says, with the room its user has left.
    fn open_session(
        &self,
        who: &Uploader,
        id: &str,
        start: Option<u64>,
    ) -> Result<OpenSession, RegError> {
        let path = self.session_path(who, id)?;
        let f = OpenOptions::new().append(true).open(&path)?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| oci(Code::RangeInvalid, "another request is writing this upload"))?;
        let old = lock.metadata()?.len();
        if start.is_some_and(|s| s != old) {
            return Err(oci(Code::RangeInvalid, format!("upload is at {old}")));
        }
        let limit = match (self.room(who.repo.scope()), who.repo.scope()) {
            (Some(room), Scope::User(user)) => {
                let reserved = self.reserved(user, Some(id));
                Some((room.left(reserved), room, reserved))
            }
            _ => None,
        };
        let _ = fs::remove_file(sidecar(&path));
        Ok(OpenSession {
            lock,
            old,
            path,
            limit,
        })
    }

    /// Finishes a session: checks its content against `d`, stores it in `.blobs` (once) and
    /// marks it pending in the repository. A mismatch deletes the session.
    pub fn reg_finish_upload(&self, who: &Uploader, id: &str, d: &Digest) -> Result<(), RegError> {
        let r = &who.repo;
        let path = self.session_path(who, id)?;
        // The session's lease, as an append holds it, so that the collector cannot take
        // the file before it is a blob; without waiting (an append waits on its client).
        let session = File::open(&path)?;
        if session.try_lock().is_err() {
            return Err(oci(
                Code::RangeInvalid,
                "another request is writing this upload",
            ));
        }
        if session.metadata()?.nlink() == 0 {
            return Err(oci(
                Code::BlobUploadUnknown,
                "Blob upload unknown to registry.",
            ));
        }
        let len = fs::metadata(&path)?.len();
        let cached = fs::read_to_string(sidecar(&path)).ok().and_then(|s| {
            let (l, hex) = s.split_once(' ')?;
            (l.parse::<u64>().ok()? == len && d.algo().name() == "sha256").then(|| hex.to_owned())
        });
        let hex = match cached {
            Some(h) => h,
            None => files::hash_file(d.algo(), &path)?,
        };
        let _ = fs::remove_file(sidecar(&path));
        if hex != d.hex() {
            let _ = remove_session(&path);
            return Err(oci(Code::DigestInvalid, format!("digest mismatch: {d}")));
        }
        if self.pending(r, d).is_none() {
            // The session's bytes become a pending blob of the repository: refused (the
            // session kept) when the user's usage has grown since they were sent.
            self.check_pending_room(r, Some(id), len)?;
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
        let _guard = self.blob_guard()?;
        let blob = self.blob_path(d);
        if let Some(dir) = blob.parent() {
            fs::create_dir_all(dir)?;
        }
        match fs::hard_link(&path, &blob) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => files::touch(&blob)?,
            Err(e) => return Err(StoreError::at("link", &path, e).into()),
        }
        self.mark_pending(r, d, &blob)?;
        remove_session(&path)?;
        Ok(())
    }

    fn mark_pending(&self, r: &ImageRepo, d: &Digest, blob: &Path) -> Result<(), RegError> {
        let pending = self.pending_path(r, d);
        let legacy = self.legacy_pending_path(r, d);
        if legacy.is_file() {
            // One link per blob and repository, under today's name.
            fs::rename(&legacy, &pending)?;
        }
        match fs::hard_link(blob, &pending) {
            Ok(()) => Ok(()),
            // Refresh it: the collector drops pending links by age.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(files::touch(&pending)?),
            Err(e) => Err(e.into()),
        }
    }

    /// Cross-repository mount: when `from` holds `d`, it becomes pending in `to` without a
    /// copy. `false` when `from` does not hold it (the client then uploads).
    pub fn reg_mount(
        &self,
        to: &ImageRepo,
        from: &ImageRepo,
        d: &Digest,
    ) -> Result<bool, RegError> {
        let Some(src) = self.locate(from, d) else {
            return Ok(false);
        };
        if self.pending(to, d).is_none() {
            self.check_pending_room(to, None, fs::metadata(&src)?.len())?;
        }
        let _guard = self.blob_guard()?;
        let _ = files::touch(&src);
        self.mark_pending(to, d, &src)?;
        Ok(true)
    }

    // ---- manifests ------------------------------------------------------------------------

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

    /// Writes `data` to `.blobs` unless there, returning the blob path. The caller holds
    /// the blob guard.
    fn store_bytes(&self, d: &Digest, data: &[u8]) -> Result<PathBuf, RegError> {
        let blob = self.blob_path(d);
        if blob.is_file() {
            files::touch(&blob)?;
            return Ok(blob);
        }
        let tmp = files::TempFile::create(&self.uploads_dir())?;
        (&tmp.file).write_all(data)?;
        tmp.file.sync_all()?;
        tmp.file
            .set_permissions(fs::Permissions::from_mode(0o644))?;
        if let Some(dir) = blob.parent() {
            fs::create_dir_all(dir)?;
        }
        match fs::hard_link(&tmp.path, &blob) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => files::touch(&blob)?,
            Err(e) => return Err(e.into()),
        }
        Ok(blob)
    }

    /// Builds the new `container` dir aside, then swaps it in under the job's lock.
    fn install_image(
        &self,
        r: &ImageRepo,
        j: &JobRef,
        digest: &Digest,
        data: &[u8],
        links: &[(Digest, PathBuf)],
    ) -> Result<(), RegError> {
        // A user's image that cannot fit is refused before anything is created or stored;
        // the swap below charges it again, exactly, under the user's lock.
        if let Some(room) = self.room(&j.tag.branch.scope) {
            let mut seen = std::collections::HashSet::new();
            let mut total = data.len() as u64;
            for (d, p) in links {
                if seen.insert(rel_of(d)) {
                    total += fs::metadata(p)?.len();
                }
            }
            let old = files::tree_bytes(&self.job_dir(j).join("container"));
            room.check(0, total.saturating_sub(old))
                .map_err(|e| oci(Code::Denied, e.to_string()))?;
        }
        let _guard = self.blob_guard()?;
        let (jdir, _lock) = self.locked_job(j)?;
        if exists(&jdir.join(".locked")) {
            return Err(oci(Code::Denied, "Cannot upload files in locked jobs"));
        }
        let uploads = self.uploads_dir();
        // Leased, so that the collector leaves it alone however long the build takes.
        let stage = files::TempDir::create(&uploads, "container")?;
        let staging = stage.path.join("container");
        let built = (|| -> Result<u64, RegError> {
            let mut total = 0;
            let manifest = self.store_bytes(digest, data)?;
            let mut all: Vec<(&str, &Digest, &Path)> = vec![("manifests", digest, &manifest)];
            all.extend(links.iter().map(|(d, p)| ("blobs", d, p.as_path())));
            for (kind, d, src) in all {
                let dest = staging.join(kind).join(rel_of(d));
                if dest.exists() {
                    continue;
                }
                if let Some(dir) = dest.parent() {
                    fs::create_dir_all(dir)?;
                }
                // Link the `.blobs` inode when it is there, so dedup holds.
                let blob = self.blob_path(d);
                let from = if blob.is_file() { blob.as_path() } else { src };
                fs::hard_link(from, &dest)?;
                total += fs::metadata(&dest)?.len();
            }
            Ok(total)
        })();
        let cleanup = || {
            let _ = fs::remove_dir_all(&staging);
        };
        let total = match built {
            Ok(t) => t,
            Err(e) => {
                cleanup();
                return Err(e);
            }
        };
        let cdir = jdir.join("container");
        let mut usage = match self.usage(&j.tag.branch.scope) {
            Ok(u) => u,
            Err(e) => {
                cleanup();
                return Err(e.into());
            }
        };
        if let Some(u) = usage.as_mut() {
            let old = files::tree_bytes(&cdir);
            if let Err(e) = u.charge(old, total) {
                cleanup();
                return Err(oci(Code::Denied, e.to_string()));
            }
        }
        // Written before the swap: a full disk refuses the push with the old image intact.
        let count = match usage.as_ref().map(|u| u.staged(self)).transpose() {
            Ok(c) => c,
            Err(e) => {
                cleanup();
                return Err(e.into());
            }
        };
        let trash = uploads.join(format!("{}.deleting", random_hex()));
        let had_old = cdir.is_dir();
        // One step where the filesystem can: a crash then leaves the old image or the new
        // one, never a job without its container. The old one is then in `staging`.
        let exchanged = had_old && files::rename_exchange(&staging, &cdir)?;
        if exchanged {
            fs::rename(&staging, &trash)?;
        } else {
            if had_old {
                fs::rename(&cdir, &trash)?;
            }
            if let Err(e) = fs::rename(&staging, &cdir) {
                if had_old {
                    let _ = fs::rename(&trash, &cdir);
                }
                cleanup();
                return Err(StoreError::at("rename", &cdir, e).into());
            }
        }
        if let Some(count) = count {
            count.persist()?;
        }
        drop(usage);
        if had_old {
            let _ = fs::remove_dir_all(&trash);
        }
        self.link_container_product(j, &jdir);
        for (d, _) in links {
            let _ = self.drop_pending(r, d);
        }
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }

    /// Creates the job as needed and takes its lock. A registry delete may remove the job
    /// dir it emptied (see [`Repo::prune_job`]) between the two, or while the lock is
    /// awaited (`DirLock` then finds the path gone: `NotFound`); the job is then made
    /// again, so the push never fails for it.
    fn locked_job(&self, j: &JobRef) -> Result<(PathBuf, DirLock), RegError> {
        for _ in 0..5 {
            let jdir = self.ensure_job(j)?;
            match DirLock::acquire(&jdir) {
                Ok(lock) => return Ok((jdir, lock)),
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NotFound.into())
    }

    /// A job already in a product version gets its new `container` linked there too, so
    /// the image is pullable by product path without setting the metadata again.
    fn link_container_product(&self, j: &JobRef, jdir: &Path) {
        let Ok(vdir) = fs::canonicalize(jdir.join(".product")) else {
            return;
        };
        let link = vdir.join("container");
        if fs::symlink_metadata(&link).is_ok() {
            return;
        }
        let target = format!(
            "../../../../../branches/{}/{}/{}/container",
            j.tag.branch.branch, j.tag.tag, j.job
        );
        let _ = symlink(target, link);
    }

    /// Deletes the image a tag names, or every image of the repository whose manifest is
    /// `reference` (a digest), and a manifest by that digest waiting in the repository.
    /// Locked jobs refuse, before anything changes.
    ///
    /// The blobs of a deleted image stay in the repository, waiting as uploaded blobs do
    /// (OCI distribution spec: blobs are deleted on their own, and the conformance suite
    /// deletes them after the manifest), until a blob `DELETE` or the orphan collector. A job
    /// the image was the only content of goes too, and then its tag if nothing else is left
    /// in it: a registry delete leaves no empty job behind.
    pub fn reg_delete_manifest(&self, r: &ImageRepo, reference: &str) -> Result<(), RegError> {
        let ImageRepo::Job { .. } = r else {
            return Err(oci(
                Code::Unsupported,
                "cannot delete through a product path",
            ));
        };
        let (targets, by_digest) = if reference.contains(':') {
            let d = Digest::parse(Some(reference)).map_err(|e| oci(Code::DigestInvalid, e.0))?;
            let want = d.to_string();
            let hits: Vec<Container> = self
                .containers(r)
                .into_iter()
                .filter(|c| top_manifest(&c.dir).is_some_and(|(_, dg)| dg == want))
                .collect();
            if hits.is_empty() && self.pending(r, &d).is_none() {
                return Err(oci(Code::ManifestUnknown, reference));
            }
            (hits, Some(d))
        } else {
            let lower = reference.to_lowercase();
            let hit = self
                .containers(r)
                .into_iter()
                .find(|c| c.name.as_str() == lower)
                .ok_or_else(|| oci(Code::ManifestUnknown, reference))?;
            (vec![hit], None)
        };
        for c in &targets {
            let jdir = c.dir.parent().map(Path::to_path_buf).unwrap_or_default();
            if exists(&jdir.join(".locked")) {
                return Err(oci(Code::Denied, "Cannot delete images of locked jobs"));
            }
        }
        // Pending first: a crash before the image goes leaves links the collector drops.
        for c in &targets {
            self.keep_blobs_pending(r, &c.dir)?;
        }
        if let Some(d) = &by_digest {
            self.drop_pending(r, d)?;
        }
        for c in targets {
            if let Some(jdir) = c.dir.parent()
                && let Ok(vdir) = fs::canonicalize(jdir.join(".product"))
            {
                let link = vdir.join("container");
                if super::files::same_file(&link, &c.dir) {
                    let _ = fs::remove_file(&link);
                }
            }
            self.remove_tree(&c.dir)?;
            // A registry delete leaves no empty job (nor tag) behind.
            if let Some(jdir) = c.dir.parent()
                && self.prune_job(jdir)
            {
                prune_dir(&c.parent);
            }
        }
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }

    /// Marks the blobs of the image in `cdir` pending in `r`, fresh, so they outlive the
    /// image by the orphan lifetime.
    fn keep_blobs_pending(&self, r: &ImageRepo, cdir: &Path) -> Result<(), RegError> {
        // Shared with uploads: the collector cannot take a blob between link and touch.
        let _guard = self.blob_guard()?;
        for entry in walkdir::WalkDir::new(cdir.join("blobs"))
            .min_depth(3)
            .max_depth(3)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            let Some(d) = digest_of_link(entry.path()) else {
                continue;
            };
            self.mark_pending(r, &d, entry.path())?;
            files::touch(&self.pending_path(r, &d))?;
        }
        Ok(())
    }

    /// Removes a job dir left with nothing but its `.stamp`, under the job's lock (which a
    /// push holds from creating the job to swapping its image in; see
    /// [`Repo::locked_job`]). `true` when it went.
    fn prune_job(&self, jdir: &Path) -> bool {
        let Ok(_lock) = DirLock::acquire(jdir) else {
            return false;
        };
        prune_dir(jdir)
    }

    /// Deletes a blob from a repository (`DELETE /v2/{name}/blobs/{digest}`): one waiting
    /// for a manifest, or left by a deleted image, goes at once (its file in `.blobs/` with
    /// the orphan collector, when no other repository or job holds it). A blob an image of
    /// the repository still links is refused (405 `DENIED`): removing it would leave that
    /// image, its job bundle and whatever was published from it unpullable.
    pub fn reg_delete_blob(&self, r: &ImageRepo, d: &Digest) -> Result<(), RegError> {
        let rel = rel_of(d);
        let users: Vec<String> = self
            .containers(r)
            .into_iter()
            .filter(|c| {
                ["blobs", "manifests"]
                    .iter()
                    .any(|kind| c.dir.join(kind).join(&rel).is_file())
            })
            .map(|c| c.name.to_string())
            .collect();
        if !users.is_empty() {
            return Err(oci(
                Code::BlobInUse,
                format!(
                    "{d} belongs to the image tagged {} in this repository: delete the image \
                     first (DELETE /v2/{}/manifests/{{tag}})",
                    users.join(", "),
                    r.name()
                ),
            ));
        }
        if self.drop_pending(r, d)? {
            Ok(())
        } else {
            Err(oci(Code::BlobUnknown, d.to_string()))
        }
    }

    /// Manifests of the repository whose `subject` is `d` (OCI referrers API), as index
    /// descriptors sorted by digest: those of its images and those pushed by digest that
    /// wait in it (pending), never another repository's (§3.7). With `artifact_type`, only
    /// those of that type; only those whose `/v2/{name}/manifests/{digest}` the caller may
    /// read.
    pub fn reg_referrers(
        &self,
        r: &ImageRepo,
        d: &Digest,
        artifact_type: Option<&str>,
        acl: &Listing,
    ) -> Result<Vec<Value>, RegError> {
        let want = d.to_string();
        let name = r.name();
        let mut candidates: Vec<(Digest, PathBuf)> = Vec::new();
        for c in self.containers(r) {
            for entry in walkdir::WalkDir::new(c.dir.join("manifests"))
                .min_depth(3)
                .max_depth(3)
                .sort_by_file_name()
                .into_iter()
                .filter_map(Result::ok)
            {
                if let Some(found) = digest_of_link(entry.path()) {
                    candidates.push((found, entry.into_path()));
                }
            }
        }
        candidates.extend(self.pending_in(r));
        let mut found: std::collections::BTreeMap<String, Value> = Default::default();
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
            let subject = doc
                .get("subject")
                .and_then(|s| s.get("digest"))
                .and_then(Value::as_str);
            let media_type = media_type_of(&doc);
            let is_manifest = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST]
                .contains(&media_type.as_str());
            if subject != Some(want.as_str()) || !is_manifest {
                continue;
            }
            // OCI distribution spec, "Listing Referrers": the manifest's `artifactType`,
            // else its config's media type.
            let atype = doc
                .get("artifactType")
                .and_then(Value::as_str)
                .or_else(|| {
                    doc.get("config")
                        .and_then(|c| c.get("mediaType"))
                        .and_then(Value::as_str)
                })
                .map(str::to_owned);
            if artifact_type.is_some_and(|t| Some(t) != atype.as_deref()) {
                continue;
            }
            if !acl.allows(|| format!("/v2/{name}/manifests/{key}")) {
                continue;
            }
            let mut desc = Map::new();
            desc.insert("mediaType".into(), media_type.into());
            desc.insert("digest".into(), key.clone().into());
            desc.insert("size".into(), (data.len() as u64).into());
            if let Some(t) = atype {
                desc.insert("artifactType".into(), t.into());
            }
            if let Some(a) = doc.get("annotations") {
                desc.insert("annotations".into(), a.clone());
            }
            found.insert(key, Value::Object(desc));
        }
        Ok(found.into_values().collect())
    }
}

/// `{id}.sha256`: the length and SHA-256 of a session hashed while it was written.
/// A session locked for one append.
struct OpenSession {
    lock: nix::fcntl::Flock<File>,
    /// Its size before the append.
    old: u64,
    path: PathBuf,
    /// `(room left, the user's room, bytes reserved elsewhere)` for a user repository.
    limit: Option<(u64, super::quota::Room, u64)>,
}

fn sidecar(session: &Path) -> PathBuf {
    session.with_extension("sha256")
}

/// `{id}.owner`: who may use the session (see [`Uploader`]).
fn owner_file(session: &Path) -> PathBuf {
    session.with_extension("owner")
}

/// Removes a session, then its sidecars: a crash in between leaves sidecars alone, which
/// answer to nothing and go with the stale uploads.
fn remove_session(session: &Path) -> io::Result<()> {
    fs::remove_file(session)?;
    let _ = fs::remove_file(sidecar(session));
    let _ = fs::remove_file(owner_file(session));
    Ok(())
}

/// The session a file of `.uploads/` belongs to, when it is a session's sidecar
/// (`{id}.sha256`, `{id}.owner`).
pub(crate) fn sidecar_session(name: &std::ffi::OsStr) -> Option<&str> {
    let (id, ext) = name.to_str()?.split_once('.')?;
    (is_session_id(id) && (ext == "sha256" || ext == "owner")).then_some(id)
}

/// The manifest a container serves by tag: the first under `manifests/*/*/*` (there is
/// one), as `(path, "{algo}:{hex}")`.
pub(crate) fn top_manifest(cdir: &Path) -> Option<(PathBuf, String)> {
    walkdir::WalkDir::new(cdir.join("manifests"))
        .min_depth(3)
        .max_depth(3)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file())
        .and_then(|e| {
            let algo = e
                .path()
                .parent()?
                .parent()?
                .file_name()?
                .to_str()?
                .to_owned();
            let hex = e.file_name().to_str()?.to_owned();
            Some((e.into_path(), format!("{algo}:{hex}")))
        })
}

/// Removes `dir` when it holds nothing but its `.stamp`. `rmdir` refuses a dir that is not
/// empty, so whatever a concurrent request puts in it meanwhile stays, and gets the stamp
/// back (with a new time: the one thing such a race changes).
fn prune_dir(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let only_stamp = entries
        .map(|e| e.map(|e| e.file_name() == ".stamp"))
        .all(|stamp| matches!(stamp, Ok(true)));
    if !only_stamp {
        return false;
    }
    let stamp = dir.join(".stamp");
    match fs::remove_file(&stamp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(_) => return false,
    }
    if fs::remove_dir(dir).is_ok() {
        return true;
    }
    let _ = files::create_flag(&stamp);
    false
}

/// The digest a file of a container names: `{algo}/{xx}/{hex}`.
fn digest_of_link(path: &Path) -> Option<Digest> {
    let hex = path.file_name()?.to_str()?;
    let algo = path.parent()?.parent()?.file_name()?.to_str()?;
    Digest::parse(Some(&format!("{algo}:{hex}"))).ok()
}

/// Sets each descriptor's `size` to the real one: replaced in place, or appended as the
/// last key (spec/CONTAINER.md §3.5 step 5).
fn fill_sizes(doc: &mut Map<String, Value>, media_type: &str, sizes: &[u64]) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn repo(dir: &Path) -> Repo {
        Repo::new(&Config {
            root_dir: dir.to_path_buf(),
            ..Config::default()
        })
        .expect("a repo in a temp dir")
    }

    /// `[u/{user}/]{branch}/{job}`.
    fn who(name: &str, login: Option<&str>) -> Uploader {
        let n = |s: &str| Name::parse(s).expect("a name");
        let segs: Vec<&str> = name.split('/').collect();
        let (scope, branch, job) = match segs.as_slice() {
            ["u", user, b, j] => (Scope::User(n(user)), n(b), n(j)),
            [b, j] => (Scope::Root, n(b), n(j)),
            _ => panic!("{name}"),
        };
        Uploader {
            repo: ImageRepo::Job {
                branch: BranchRef { scope, branch },
                job,
            },
            login: login.map(str::to_owned),
        }
    }

    fn unknown<T>(r: Result<T, RegError>) -> bool {
        matches!(r, Err(RegError::Oci(Code::BlobUploadUnknown, _)))
    }

    #[test]
    fn a_session_answers_to_its_repository_and_login_only() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let alice = who("main/x", Some("alice"));
        let id = repo.reg_start_upload(&alice).unwrap();
        assert_eq!(repo.reg_upload_state(&alice, &id).unwrap().size, 0);
        for other in [
            who("main/x", Some("bob")),
            who("main/x", None),
            who("main/y", Some("alice")),
            who("u/alice/main/x", Some("alice")),
        ] {
            assert!(unknown(repo.reg_upload_state(&other, &id)), "{other:?}");
            assert!(unknown(repo.reg_cancel_upload(&other, &id)), "{other:?}");
            let mut h = Algo::Sha256.hasher();
            h.update(b"");
            let d = Digest::sha256_of_hex(h.finish_hex());
            assert!(
                unknown(repo.reg_finish_upload(&other, &id, &d)),
                "{other:?}"
            );
        }
        assert!(repo.uploads_dir().join(&id).is_file());
        // A session whose owner file is gone (a crash right after creating it) is nobody's.
        fs::remove_file(repo.uploads_dir().join(format!("{id}.owner"))).unwrap();
        assert!(unknown(repo.reg_upload_state(&alice, &id)));
        // Temp files of artifact uploads have session-like names but no owner.
        let tmp_file = files::TempFile::create(&repo.uploads_dir()).unwrap();
        let name = tmp_file
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(unknown(repo.reg_upload_state(&alice, &name)));
        assert!(unknown(repo.reg_upload_state(&alice, "../../etc/passwd")));
    }

    /// A session of a user repository grows only as far as the quota allows, counting the
    /// user's other pending data, however the body is cut into chunks.
    #[tokio::test]
    async fn a_user_session_stops_at_the_quota() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Arc::new(
            Repo::new(&Config {
                root_dir: tmp.path().to_path_buf(),
                user_quota: 4096,
                ..Config::default()
            })
            .unwrap(),
        );
        let chunks = |n: usize| {
            let items: Vec<Result<Bytes, std::io::Error>> =
                (0..n).map(|_| Ok(Bytes::from(vec![7u8; 1000]))).collect();
            futures_util::stream::iter(items)
        };
        let bob = who("u/bob/main/x", Some("bob"));
        let other = repo.reg_start_upload(&bob).unwrap();
        assert_eq!(
            repo.reg_append(&bob, &other, None, chunks(2))
                .await
                .unwrap(),
            2000
        );
        let id = repo.reg_start_upload(&bob).unwrap();
        let denied = repo.reg_append(&bob, &id, None, chunks(10)).await;
        assert!(
            matches!(denied, Err(RegError::Oci(Code::Denied, _))),
            "{denied:?}"
        );
        assert_eq!(repo.reg_upload_state(&bob, &id).unwrap().size, 0);
        // What fits next to the other session passes, in any number of requests.
        assert_eq!(
            repo.reg_append(&bob, &id, Some(0), chunks(1))
                .await
                .unwrap(),
            1000
        );
        assert_eq!(
            repo.reg_append(&bob, &id, Some(1000), chunks(1))
                .await
                .unwrap(),
            2000
        );
        let denied = repo.reg_append(&bob, &id, Some(2000), chunks(1)).await;
        assert!(
            matches!(denied, Err(RegError::Oci(Code::Denied, _))),
            "{denied:?}"
        );
        assert_eq!(repo.reg_upload_state(&bob, &id).unwrap().size, 2000);
        // Another user, and the root repository, have their own room.
        for name in ["u/carol/main/x", "main/x"] {
            let w = who(name, None);
            let id = repo.reg_start_upload(&w).unwrap();
            assert_eq!(
                repo.reg_append(&w, &id, None, chunks(4)).await.unwrap(),
                4000
            );
        }
    }

    fn sha256(data: &[u8]) -> Digest {
        let mut h = Algo::Sha256.hasher();
        h.update(data);
        Digest::sha256_of_hex(h.finish_hex())
    }

    /// Pending links name their repository, so its pending content can be listed without
    /// hashing blobs, and a link named the old way (before an upgrade) still counts.
    #[test]
    fn pending_links_are_listed_per_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let (x, bob_x, y) = (
            who("main/x", None),
            who("u/bob/main/x", None),
            who("main/y", None),
        );
        let d = sha256(b"layer");
        let id = repo.reg_start_upload(&x).unwrap();
        fs::write(repo.uploads_dir().join(&id), b"layer").unwrap();
        repo.reg_finish_upload(&x, &id, &d).unwrap();
        let listed = |w: &Uploader| -> Vec<String> {
            repo.pending_in(&w.repo)
                .into_iter()
                .map(|(d, _)| d.to_string())
                .collect()
        };
        assert_eq!(listed(&x), [d.to_string()]);
        assert!(listed(&bob_x).is_empty() && listed(&y).is_empty());
        assert!(repo.reg_open_blob(&y.repo, &d).is_err());

        // A user repository's link ends in the user, for the quota.
        let id = repo.reg_start_upload(&bob_x).unwrap();
        fs::write(repo.uploads_dir().join(&id), b"layer").unwrap();
        repo.reg_finish_upload(&bob_x, &id, &d).unwrap();
        let link = repo.pending_path(&bob_x.repo, &d);
        assert!(link.to_str().unwrap().ends_with(".bob"), "{link:?}");
        assert_eq!(listed(&bob_x), [d.to_string()]);
        assert_eq!(repo.reserved(&Name::parse("bob").unwrap(), None), 5);

        // An old-style link is found, and renamed when the blob is marked pending again.
        let old = repo.legacy_pending_path(&y.repo, &d);
        fs::hard_link(repo.blob_path(&d), &old).unwrap();
        assert!(repo.reg_open_blob(&y.repo, &d).is_ok());
        repo.mark_pending(&y.repo, &d, &repo.blob_path(&d)).unwrap();
        assert!(!old.exists());
        assert_eq!(listed(&y), [d.to_string()]);
        repo.reg_delete_blob(&y.repo, &d).unwrap();
        assert!(repo.reg_open_blob(&y.repo, &d).is_err());
    }

    /// A job dir pruned by a registry delete while a push waited for its lock is made
    /// again for the push; a dir with anything but its stamp is never pruned.
    #[test]
    fn a_push_survives_the_prune_of_its_job() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let n = |s: &str| Name::parse(s).unwrap();
        let j = JobRef {
            tag: TagRef {
                branch: BranchRef {
                    scope: Scope::Root,
                    branch: n("main"),
                },
                tag: n("t1"),
            },
            job: n("j"),
        };
        let jdir = repo.ensure_job(&j).unwrap();
        let waited = DirLock::acquire(&jdir).unwrap();
        assert!(prune_dir(&jdir) && prune_dir(jdir.parent().unwrap()));
        assert!(!jdir.exists());
        drop(waited);
        let (again, lock) = repo.locked_job(&j).unwrap();
        assert!(again.join(".stamp").is_file());
        assert!(again.parent().unwrap().join(".stamp").is_file());
        drop(lock);
        fs::create_dir(again.join("docs")).unwrap();
        assert!(!repo.prune_job(&again));
        assert!(again.join(".stamp").is_file() && again.join("docs").is_dir());
    }

    #[test]
    fn sidecars_name_their_session() {
        let id = "0123456789abcdef0123456789abcdef";
        let name = |s: String| sidecar_session(std::ffi::OsStr::new(&s)).map(str::to_owned);
        assert_eq!(name(format!("{id}.owner")).as_deref(), Some(id));
        assert_eq!(name(format!("{id}.sha256")).as_deref(), Some(id));
        assert_eq!(name(id.to_owned()), None);
        assert_eq!(name(format!("{id}.link")), None);
        assert_eq!(name(format!("{id}.deleting")), None);
        assert_eq!(name(format!("reg-{id}.owner")), None);
    }
}
