use super::delete::prune_dir;
use super::*;
use crate::config::Config;
use crate::model::oci::OCI_MANIFEST;
use crate::model::{Algo, JobRef, TagRef};
use crate::storage::Repo;
use crate::storage::files::{self, DirLock};
use bytes::Bytes;
use std::fs;
use std::path::Path;
use std::sync::Arc;

pub(super) fn repo(dir: &Path) -> Repo {
    Repo::new(&Config {
        root_dir: dir.to_path_buf(),
        ..Config::default()
    })
    .expect("a repo in a temp dir")
}

/// `[u/{user}/]{branch}/{job}`.
pub(super) fn who(name: &str, login: Option<&str>) -> Uploader {
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

/// Uploads `data` as a blob of the repository `who` pushes to.
pub(super) fn upload(repo: &Repo, who: &Uploader, data: &[u8]) -> Digest {
    let d = sha256(data);
    let id = repo.start_blob_upload(who).unwrap();
    fs::write(repo.uploads_dir().join(&id), data).unwrap();
    repo.finish_blob_upload(who, &id, &d).unwrap();
    d
}

/// An image manifest of a config and one layer, both uploaded first.
pub(super) fn image(repo: &Repo, who: &Uploader, layer: &[u8]) -> (Vec<u8>, Digest, Digest) {
    let (config, layer_len) = (b"{}", layer.len());
    let (c, l) = (upload(repo, who, config), upload(repo, who, layer));
    let body = format!(
        r#"{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{c}", "size": 2}}, "layers": [{{"digest": "{l}", "size": {layer_len}}}]}}"#
    );
    (body.into_bytes(), c, l)
}

pub(super) fn job(who: &Uploader, tag: &str) -> JobRef {
    let ImageRepo::Job { branch, job } = &who.repo else {
        panic!("a job repository");
    };
    JobRef {
        tag: TagRef {
            branch: branch.clone(),
            tag: Name::parse(tag).unwrap(),
        },
        job: job.clone(),
    }
}

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

pub(super) fn sha256(data: &[u8]) -> Digest {
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
    let id = repo.start_blob_upload(&x).unwrap();
    fs::write(repo.uploads_dir().join(&id), b"layer").unwrap();
    repo.finish_blob_upload(&x, &id, &d).unwrap();
    let listed = |w: &Uploader| -> Vec<String> {
        repo.pending_in(&w.repo)
            .into_iter()
            .map(|(d, _)| d.to_string())
            .collect()
    };
    assert_eq!(listed(&x), [d.to_string()]);
    assert!(listed(&bob_x).is_empty() && listed(&y).is_empty());
    assert!(repo.open_image_blob(&y.repo, &d).is_err());

    // A user repository's link ends in the user, for the quota.
    let id = repo.start_blob_upload(&bob_x).unwrap();
    fs::write(repo.uploads_dir().join(&id), b"layer").unwrap();
    repo.finish_blob_upload(&bob_x, &id, &d).unwrap();
    let link = repo.pending_path(&bob_x.repo, &d);
    assert!(link.to_str().unwrap().ends_with(".bob"), "{link:?}");
    assert_eq!(listed(&bob_x), [d.to_string()]);
    assert_eq!(repo.reserved(&Name::parse("bob").unwrap(), None), 5);

    // An old-style link is found, and renamed when the blob is marked pending again.
    let old = repo.legacy_pending_path(&y.repo, &d);
    fs::hard_link(repo.blob_path(&d), &old).unwrap();
    assert!(repo.open_image_blob(&y.repo, &d).is_ok());
    repo.mark_pending(&y.repo, &d, &repo.blob_path(&d)).unwrap();
    assert!(!old.exists());
    assert_eq!(listed(&y), [d.to_string()]);
    repo.delete_image_blob(&y.repo, &d).unwrap();
    assert!(repo.open_image_blob(&y.repo, &d).is_err());
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
