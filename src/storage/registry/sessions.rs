//! Blob upload sessions in `.uploads/`: start, append, finish, cancel, and the owner file
//! that ties each to the repository and caller that started it.

use super::{RegistryError, UploadState, Uploader};
use crate::model::{Algo, Digest, Scope};
use crate::storage::Repo;
use crate::storage::blobs::pump;
use crate::storage::durable::DirSyncs;
use crate::storage::files::{self, random_hex};
use bytes::Bytes;
use futures_util::Stream;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes gathered before each write-and-hash step of a push (at least; the server's chunk
/// size when larger). Layers are big: 1 MiB steps cost a quarter of the thread wake-ups of
/// 256 KiB ones, for 2 MiB of memory per push (one step filling, one written); past 4 MiB
/// a push grows its steps like any upload, within the shared budget (`pool::large_batches`).
const PUSH_BATCH: usize = 1 << 20;

pub(super) fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Repo {
    /// The session file, when `id` names a session that `who` started. Anything else (a
    /// malformed id, no such session, another repository or caller, an owner file lost to a
    /// crash) gets the same answer, so ids cannot be probed.
    pub(super) fn session_path(&self, who: &Uploader, id: &str) -> Result<PathBuf, RegistryError> {
        let unknown = || RegistryError::UploadUnknown;
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

    /// Creates an empty upload session for `who` and returns its id (32 hex chars). The
    /// owner file is on disk (fsynced, renamed into place) before the id is handed out; a
    /// session whose owner file is missing answers to nobody.
    pub fn start_blob_upload(&self, who: &Uploader) -> Result<String, RegistryError> {
        let uploads = self.uploads_dir();
        crate::storage::files::create_dirs(&uploads)?;
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

    pub fn blob_upload_state(
        &self,
        who: &Uploader,
        id: &str,
    ) -> Result<UploadState, RegistryError> {
        let p = self.session_path(who, id)?;
        Ok(UploadState {
            size: fs::metadata(p)?.len(),
        })
    }

    pub fn cancel_blob_upload(&self, who: &Uploader, id: &str) -> Result<(), RegistryError> {
        let p = self.session_path(who, id)?;
        remove_session(&p)?;
        Ok(())
    }

    /// Appends `body` to a session, streaming (constant memory). `start`, from
    /// `Content-Range`, must equal the current size. A body that breaks off or stalls is cut
    /// back out, so the session stays usable. When the session starts empty the data is
    /// hashed on the way, which saves re-reading it when the upload is finished; the hash
    /// (`{id}.sha256`, with the length it covers) stays valid as long as nothing is appended,
    /// since a session only grows, or is cut back to where an append started.
    ///
    /// No thread waits on the client: the session is locked without blocking (a second
    /// request on it is refused at once), and the bytes are written batch by batch by short
    /// blocking tasks as they arrive.
    pub async fn append_blob_upload<S>(
        self: &Arc<Self>,
        who: &Uploader,
        id: &str,
        start: Option<u64>,
        mut body: S,
    ) -> Result<u64, RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let repo = Arc::clone(self);
        let (owner, sid) = (who.clone(), id.to_owned());
        let session =
            tokio::task::spawn_blocking(move || repo.open_session(&owner, &sid, start)).await??;
        let old = session.old;
        // A session of a user repository grows only as far as the quota allows, counting
        // what the user has pending elsewhere.
        let admit = |taken: u64| match &session.limit {
            Some((left, room, reserved)) if old + taken > *left => {
                let why = match room.check(*reserved, old + taken) {
                    Err(e) => e.to_string(),
                    Ok(()) => "quota exceeded".to_owned(),
                };
                Err(RegistryError::OverQuota(why))
            }
            _ => Ok(()),
        };
        let hasher = match old {
            0 => Some(Algo::Sha256.hasher()),
            _ => carried::take(&session.path, old),
        };
        let sink = (Arc::new(session.lock.try_clone()?), hasher);
        let batch = self.chunk_size().max(PUSH_BATCH);
        let pumped = pump(&mut body, sink, batch, admit).await;
        let OpenSession { lock, path, .. } = session;
        // Whatever went wrong, the session goes back to where it was: the client may send
        // the chunk again (after freeing room, say).
        tokio::task::spawn_blocking(move || -> Result<u64, RegistryError> {
            let ((_, hasher), taken) = match pumped {
                Ok(done) => done,
                Err(e) => {
                    lock.set_len(old)?;
                    return Err(e);
                }
            };
            let len = old + taken;
            match hasher {
                Some(h) => {
                    let hex = h.clone().finish_hex();
                    let _ = fs::write(sidecar(&path), format!("{len} {hex}"));
                    carried::put(&path, len, h);
                }
                // Stale now (its length says so too): the session is read again at the end.
                None if taken > 0 => {
                    let _ = fs::remove_file(sidecar(&path));
                }
                // An empty body (the usual `PUT ?digest=` after one `PATCH`) keeps the hash
                // of the bytes before it: hashing 200 MB twice was half a push's CPU.
                None => {}
            }
            Ok(len)
        })
        .await?
    }

    /// Opens a session for appending: locked (without waiting: a second request on one
    /// session is refused), at the offset the client says, with the room its user has left.
    pub(super) fn open_session(
        &self,
        who: &Uploader,
        id: &str,
        start: Option<u64>,
    ) -> Result<OpenSession, RegistryError> {
        let path = self.session_path(who, id)?;
        let f = OpenOptions::new().append(true).open(&path)?;
        let lock = nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock)
            .map_err(|_| RegistryError::UploadBusy)?;
        let old = lock.metadata()?.len();
        if start.is_some_and(|s| s != old) {
            return Err(RegistryError::WrongOffset(old));
        }
        let limit = match (self.room(who.repo.scope()), who.repo.scope()) {
            (Some(room), Scope::User(user)) => {
                let reserved = self.reserved(user, Some(id));
                Some((room.left(reserved), room, reserved))
            }
            _ => None,
        };
        Ok(OpenSession {
            lock,
            old,
            path,
            limit,
        })
    }

    /// The last request of an upload (`PUT`): `body` appended, then the session finished
    /// against `d`.
    pub async fn complete_blob_upload<S>(
        self: &Arc<Self>,
        who: &Uploader,
        id: &str,
        start: Option<u64>,
        body: S,
        d: &Digest,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        self.append_blob_upload(who, id, start, body).await?;
        let (who, id, d) = (who.clone(), id.to_owned(), d.clone());
        self.run(move |s| Ok(s.finish_blob_upload(&who, &id, &d)))
            .await?
    }

    /// A whole blob in one request (`POST` with `digest`): a session started and completed
    /// at once. A refused one leaves no session behind.
    pub async fn upload_whole_blob<S>(
        self: &Arc<Self>,
        who: &Uploader,
        start: Option<u64>,
        body: S,
        d: &Digest,
    ) -> Result<(), RegistryError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let owner = who.clone();
        let id = self.run(move |s| Ok(s.start_blob_upload(&owner))).await??;
        let done = self.complete_blob_upload(who, &id, start, body, d).await;
        if done.is_err() {
            let who = who.clone();
            let _ = self.run(move |s| Ok(s.cancel_blob_upload(&who, &id))).await;
        }
        done
    }

    /// Finishes a session: checks its content against `d`, stores it in `.blobs` (once) and
    /// marks it pending in the repository. A mismatch deletes the session.
    pub fn finish_blob_upload(
        &self,
        who: &Uploader,
        id: &str,
        d: &Digest,
    ) -> Result<(), RegistryError> {
        let r = &who.repo;
        let path = self.session_path(who, id)?;
        // The session's lease, as an append holds it, so that the collector cannot take
        // the file before it is a blob; without waiting (an append waits on its client).
        let session = File::open(&path)?;
        if session.try_lock().is_err() {
            return Err(RegistryError::UploadBusy);
        }
        if session.metadata()?.nlink() == 0 {
            return Err(RegistryError::UploadUnknown);
        }
        let len = fs::metadata(&path)?.len();
        let hex = session_hash(&path, len, d)?;
        let _ = fs::remove_file(sidecar(&path));
        if hex != d.hex() {
            let _ = remove_session(&path);
            return Err(RegistryError::UploadDigestMismatch(d.clone()));
        }
        if self.pending(r, d).is_none() {
            // The session's bytes become a pending blob of the repository: refused (the
            // session kept) when the user's usage has grown since they were sent.
            self.check_pending_room(r, Some(id), len)?;
        }
        // On disk before it is a blob and the push is told so, as an artifact upload's body
        // is: a crash after the answer must not leave a blob whose bytes are not its digest.
        session.sync_all()?;
        let _guard = self.blob_guard()?;
        let blob = self.blob_path(d);
        files::store_as_blob(&path, &blob)?;
        self.mark_pending(r, d, &blob)?;
        // Its name too, before the push hears 201: a power loss must not take the blob
        // (or the pending link that keeps the collector off it) that a manifest will name.
        let mut dirs = DirSyncs::default();
        dirs.entry(&blob);
        dirs.entry(&self.pending_path(r, d));
        dirs.sync()?;
        remove_session(&path)?;
        Ok(())
    }
}

/// The hex digest of a session of `len` bytes in `d`'s algorithm: the one hashed while it
/// was written when it still matches (see `{id}.sha256`), else read again.
fn session_hash(path: &Path, len: u64, d: &Digest) -> io::Result<String> {
    let cached = fs::read_to_string(sidecar(path)).ok().and_then(|s| {
        let (l, hex) = s.split_once(' ')?;
        (l.parse::<u64>().ok()? == len && d.algo().name() == "sha256").then(|| hex.to_owned())
    });
    match cached {
        Some(h) => Ok(h),
        None => files::hash_file(d.algo(), path),
    }
}

/// The hash of each session in progress, carried from one append to the next in this
/// process, so that a session sent as several chunks is not read again when it is finished.
/// Keyed by the session's path and the length hashed: a session's bytes never change below
/// its length (it only grows, or is cut back to where an append started), so a hash of that
/// many bytes is still right, whichever process appended since. Another process's append
/// (several servers on one root) finds none and hashes at the end as before.
mod carried {
    use crate::model::Hasher;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use std::sync::{LazyLock, Mutex};

    /// Sessions abandoned half-way leave their entry until this many are held; then all
    /// go (each is a hasher's state, about 200 bytes with its path).
    const MAX: usize = 4096;

    static HASHES: LazyLock<Mutex<HashMap<PathBuf, (u64, Hasher)>>> =
        LazyLock::new(|| Mutex::new(HashMap::new()));

    /// The hash of the first `len` bytes of `session`, if this process holds it.
    pub(super) fn take(session: &Path, len: u64) -> Option<Hasher> {
        let mut map = HASHES.lock().ok()?;
        match map.remove(session) {
            Some((l, h)) if l == len => Some(h),
            _ => None,
        }
    }

    pub(super) fn put(session: &Path, len: u64, h: Hasher) {
        if let Ok(mut map) = HASHES.lock() {
            if map.len() >= MAX {
                map.clear();
            }
            map.insert(session.to_path_buf(), (len, h));
        }
    }

    pub(super) fn forget(session: &Path) {
        if let Ok(mut map) = HASHES.lock() {
            map.remove(session);
        }
    }
}

/// A session locked for one append.
pub(super) struct OpenSession {
    pub(super) lock: nix::fcntl::Flock<File>,
    /// Its size before the append.
    pub(super) old: u64,
    pub(super) path: PathBuf,
    /// `(room left, the user's room, bytes reserved elsewhere)` for a user repository.
    pub(super) limit: Option<(u64, crate::storage::quota::Room, u64)>,
}

/// `{id}.sha256`: the length and SHA-256 of a session hashed while it was written.
pub(super) fn sidecar(session: &Path) -> PathBuf {
    session.with_extension("sha256")
}

/// `{id}.owner`: who may use the session (see [`Uploader`]).
pub(super) fn owner_file(session: &Path) -> PathBuf {
    session.with_extension("owner")
}

/// Removes a session, then its sidecars: a crash in between leaves sidecars alone, which
/// answer to nothing and go with the stale uploads.
pub(super) fn remove_session(session: &Path) -> io::Result<()> {
    carried::forget(session);
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{repo, who};
    use super::*;
    use crate::config::Config;

    use crate::storage::files;

    fn unknown<T>(r: Result<T, RegistryError>) -> bool {
        matches!(r, Err(RegistryError::UploadUnknown))
    }

    #[test]
    fn a_session_answers_to_its_repository_and_login_only() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let alice = who("main/x", Some("alice"));
        let id = repo.start_blob_upload(&alice).unwrap();
        assert_eq!(repo.blob_upload_state(&alice, &id).unwrap().size, 0);
        for other in [
            who("main/x", Some("bob")),
            who("main/x", None),
            who("main/y", Some("alice")),
            who("u/alice/main/x", Some("alice")),
        ] {
            assert!(unknown(repo.blob_upload_state(&other, &id)), "{other:?}");
            assert!(unknown(repo.cancel_blob_upload(&other, &id)), "{other:?}");
            let mut h = Algo::Sha256.hasher();
            h.update(b"");
            let d = Digest::sha256_of_hex(h.finish_hex());
            assert!(
                unknown(repo.finish_blob_upload(&other, &id, &d)),
                "{other:?}"
            );
        }
        assert!(repo.uploads_dir().join(&id).is_file());
        // A session whose owner file is gone (a crash right after creating it) is nobody's.
        fs::remove_file(repo.uploads_dir().join(format!("{id}.owner"))).unwrap();
        assert!(unknown(repo.blob_upload_state(&alice, &id)));
        // Temp files of artifact uploads have session-like names but no owner.
        let tmp_file = files::TempFile::create(&repo.uploads_dir()).unwrap();
        let name = tmp_file
            .path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(unknown(repo.blob_upload_state(&alice, &name)));
        assert!(unknown(repo.blob_upload_state(&alice, "../../etc/passwd")));
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
        let other = repo.start_blob_upload(&bob).unwrap();
        assert_eq!(
            repo.append_blob_upload(&bob, &other, None, chunks(2))
                .await
                .unwrap(),
            2000
        );
        let id = repo.start_blob_upload(&bob).unwrap();
        let denied = repo.append_blob_upload(&bob, &id, None, chunks(10)).await;
        assert!(
            matches!(denied, Err(RegistryError::OverQuota(_))),
            "{denied:?}"
        );
        assert_eq!(repo.blob_upload_state(&bob, &id).unwrap().size, 0);
        // What fits next to the other session passes, in any number of requests.
        assert_eq!(
            repo.append_blob_upload(&bob, &id, Some(0), chunks(1))
                .await
                .unwrap(),
            1000
        );
        assert_eq!(
            repo.append_blob_upload(&bob, &id, Some(1000), chunks(1))
                .await
                .unwrap(),
            2000
        );
        let denied = repo
            .append_blob_upload(&bob, &id, Some(2000), chunks(1))
            .await;
        assert!(
            matches!(denied, Err(RegistryError::OverQuota(_))),
            "{denied:?}"
        );
        assert_eq!(repo.blob_upload_state(&bob, &id).unwrap().size, 2000);
        // Another user, and the root repository, have their own room.
        for name in ["u/carol/main/x", "main/x"] {
            let w = who(name, None);
            let id = repo.start_blob_upload(&w).unwrap();
            assert_eq!(
                repo.append_blob_upload(&w, &id, None, chunks(4))
                    .await
                    .unwrap(),
                4000
            );
        }
    }

    /// The hash taken while a session was written outlives an empty append (the `PUT` that
    /// follows one `PATCH`) and is carried on by the next chunk, so finishing does not read
    /// the blob again; a chunk appended without it makes it stale, and then it goes.
    #[tokio::test]
    async fn the_streaming_hash_survives_an_empty_append() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = Arc::new(repo(tmp.path()));
        let w = who("main/x", None);
        let body = |data: &'static [u8]| {
            let items: Vec<Result<Bytes, io::Error>> = vec![Ok(Bytes::from_static(data))];
            futures_util::stream::iter(items)
        };
        let id = repo.start_blob_upload(&w).unwrap();
        let path = repo.uploads_dir().join(&id);
        repo.append_blob_upload(&w, &id, None, body(b"hello"))
            .await
            .unwrap();
        let hashed = fs::read_to_string(sidecar(&path)).unwrap();
        assert!(hashed.starts_with("5 "), "{hashed}");
        let none: Vec<Result<Bytes, io::Error>> = vec![];
        let empty = futures_util::stream::iter(none);
        assert_eq!(
            repo.append_blob_upload(&w, &id, Some(5), empty)
                .await
                .unwrap(),
            5
        );
        assert_eq!(fs::read_to_string(sidecar(&path)).unwrap(), hashed);
        // Finishing takes the recorded hash.
        let d = Digest::sha256_of_hex(hashed[2..].to_owned());
        assert_eq!(session_hash(&path, 5, &d).unwrap(), d.hex());
        // A second chunk carries the hash on (this process held it)...
        repo.append_blob_upload(&w, &id, Some(5), body(b" world"))
            .await
            .unwrap();
        let mut h = Algo::Sha256.hasher();
        h.update(b"hello world");
        let d = Digest::sha256_of_hex(h.finish_hex());
        let carried = format!("11 {}", d.hex());
        assert_eq!(fs::read_to_string(sidecar(&path)).unwrap(), carried);
        // ... unless it does not hold it (another server appended): then it goes stale.
        carried::forget(&path);
        repo.append_blob_upload(&w, &id, Some(11), body(b"!"))
            .await
            .unwrap();
        assert!(!sidecar(&path).exists());
        let mut h = Algo::Sha256.hasher();
        h.update(b"hello world!");
        let d = Digest::sha256_of_hex(h.finish_hex());
        repo.finish_blob_upload(&w, &id, &d).unwrap();
        assert!(repo.locate(&w.repo, &d).is_some());
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
