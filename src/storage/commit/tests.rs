//! The group commit on a real repository: batches, and each link's own result.

use super::*;
use crate::config::Config;
use crate::storage::files::read_json_map;
use crate::storage::fixture::{self, TestRepo};
use std::time::Duration;

fn rel(s: &str) -> RelPath {
    RelPath::parse(s).expect("a valid path")
}

/// Links queued for `fdir`, and whether a leader is applying a batch there.
fn queued(repo: &Repo, fdir: &Path) -> Option<(usize, bool)> {
    let map = repo.links.formats.lock().expect("queue");
    map.get(fdir).map(|p| (p.ops.len(), p.leader))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out waiting for {what}");
}

/// Runs `first`, and once its leader holds it in `apply_batch` (blocked on the job's
/// lock, which the test holds), queues `rest` behind it: they then land as one batch.
/// Returns every link's own result, `first`'s first.
fn one_batch_behind(
    repo: &Repo,
    f: &FormatRef,
    first: LinkRequest,
    rest: Vec<LinkRequest>,
) -> Vec<Result<(), StoreError>> {
    let FormatRef::Job { job, .. } = f else {
        unreachable!("job formats only")
    };
    let fdir = repo.format_dir(f);
    let held = DirLock::acquire(&repo.locks_dir(), &repo.job_dir(job)).expect("job lock");
    let n = rest.len();
    std::thread::scope(|scope| {
        let lead = scope.spawn(|| repo.commit_link(f, &fdir, first));
        wait_for("the leader", || queued(repo, &fdir) == Some((0, true)));
        let others: Vec<_> = rest
            .into_iter()
            .map(|req| scope.spawn(|| repo.commit_link(f, &fdir, req)))
            .collect();
        wait_for("the batch", || queued(repo, &fdir) == Some((n, true)));
        drop(held);
        std::iter::once(lead)
            .chain(others)
            .map(|t| t.join().expect("no panic"))
            .collect()
    })
}

fn request(repo: &TestRepo, path: &str, data: &[u8]) -> LinkRequest {
    let (blob, digest) = repo.blob(data);
    LinkRequest {
        rel: rel(path),
        blob,
        digest,
    }
}

#[test]
fn a_batch_of_writers_lands_whole_with_every_digest_listed() {
    let repo = TestRepo::new();
    let job = fixture::job(Scope::Root, "b", "t", "j");
    let f = fixture::format(&job, "f");
    repo.ensure_job(&job).expect("job");
    let rest = (1..6)
        .map(|i| request(&repo, &format!("dir/{i}"), format!("data {i}").as_bytes()))
        .collect();
    let results = one_batch_behind(&repo, &f, request(&repo, "first", b"first"), rest);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let fdir = repo.format_dir(&f);
    let digests = read_json_map(&fdir.join(".digests"));
    let mut names: Vec<_> = digests.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        ["dir/1", "dir/2", "dir/3", "dir/4", "dir/5", "first"]
    );
    for (name, digest) in &digests {
        let data = fs::read(fdir.join(name)).expect("linked file");
        let (blob, want) = repo.blob(&data);
        assert_eq!(digest.as_str(), Some(want.to_string().as_str()), "{name}");
        let (a, b) = (fs::metadata(fdir.join(name)), fs::metadata(blob));
        assert!(
            files::same_inode(&a.expect("file"), &b.expect("blob")),
            "{name}"
        );
    }
    assert!(fdir.join(".dirty").exists());
    assert!(queued(&repo, &fdir).is_none(), "the queue is left empty");
}

#[test]
fn one_failed_link_in_a_batch_loses_none_of_the_others() {
    let repo = TestRepo::new();
    let job = fixture::job(Scope::Root, "b", "t", "j");
    let f = fixture::format(&job, "f");
    repo.ensure_job(&job).expect("job");
    let fdir = repo.format_dir(&f);
    repo.commit_link(&f, &fdir, request(&repo, "d/x", b"x"))
        .expect("first link");
    // `d` is a directory now: a file cannot take its name.
    let rest = vec![
        request(&repo, "a", b"a"),
        request(&repo, "d", b"in the way"),
        request(&repo, "z", b"z"),
    ];
    let results = one_batch_behind(&repo, &f, request(&repo, "0", b"0"), rest);
    let failed: Vec<_> = results.iter().map(Result::is_err).collect();
    assert_eq!(failed, [false, false, true, false], "{results:?}");
    assert!(
        matches!(&results[2], Err(StoreError::Refused(why)) if why.contains("in the way")),
        "{results:?}"
    );
    let digests = read_json_map(&fdir.join(".digests"));
    let mut names: Vec<_> = digests.keys().cloned().collect();
    names.sort();
    assert_eq!(names, ["0", "a", "d/x", "z"]);
    assert_eq!(fs::read(fdir.join("d/x")).expect("kept"), b"x");
}

#[test]
fn a_batch_over_the_quota_refuses_only_the_links_that_do_not_fit() {
    let repo = TestRepo::with(Config {
        user_quota: 600,
        ..Config::default()
    });
    let job = fixture::job(Scope::User(fixture::name("u")), "b", "t", "j");
    let f = fixture::format(&job, "f");
    repo.ensure_job(&job).expect("job");
    let rest = vec![
        request(&repo, "big", &[b'b'; 1000]),
        request(&repo, "small", b"small"),
    ];
    let results = one_batch_behind(&repo, &f, request(&repo, "first", b"first"), rest);
    let failed: Vec<_> = results.iter().map(Result::is_err).collect();
    assert_eq!(failed, [false, true, false], "{results:?}");
    assert!(
        matches!(&results[1], Err(StoreError::Refused(why)) if why.contains("quota exceeded")),
        "{results:?}"
    );
    let fdir = repo.format_dir(&f);
    assert!(!fdir.join("big").exists());
    // What is recorded is what is on disk, `.disk_usage` included.
    let scope = Scope::User(fixture::name("u"));
    assert_eq!(
        repo.recount_usage(&scope, false).expect("recount"),
        Some((repo.recorded_usage(&scope), repo.recorded_usage(&scope)))
    );
    assert!(repo.recorded_usage(&scope) < 600);
}

#[test]
fn a_batch_for_a_job_locked_meanwhile_fails_whole_and_leaves_nothing() {
    let repo = TestRepo::new();
    let job = fixture::job(Scope::Root, "b", "t", "j");
    let f = fixture::format(&job, "f");
    repo.ensure_job(&job).expect("job");
    let fdir = repo.format_dir(&f);
    fs::write(repo.job_dir(&job).join(".locked"), b"").expect("lock the job");
    let rest = vec![request(&repo, "a", b"a"), request(&repo, "b", b"b")];
    let results = one_batch_behind(&repo, &f, request(&repo, "0", b"0"), rest);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StoreError::Conflict(_)))),
        "{results:?}"
    );
    assert!(!fdir.exists(), "no format left without its files");
}

#[test]
fn digests_lengths_are_projected_exactly() {
    let keys = [
        "b",
        "a/x.tar.gz",
        "z\"quote",
        "é\u{1F600}",
        "tab\there",
        "b",
        "a/x.tar.gz",
        "m",
    ];
    let mut map = Map::new();
    let mut len = 0; // no file yet
    for (i, key) in keys.iter().enumerate() {
        let value = if i % 2 == 0 {
            format!("sha256:{}", "ab".repeat(32))
        } else {
            format!("md5:{}", "c".repeat(32))
        };
        let projected = digests_len_with(&map, len, key, &value);
        map.insert((*key).to_owned(), value.clone().into());
        let real = pyjson::object_to_string_sorted(&map).len() as u64;
        assert_eq!(projected, real, "{key}");
        if map.len() > 1 {
            assert!(projected.saturating_sub(len) <= new_entry_len(key, &value));
        }
        len = real;
    }
}

#[test]
fn a_kept_digests_map_is_used_only_while_the_file_still_says_the_same() {
    let dir = tempfile::tempdir().expect("tmp");
    let fdir = dir.path();
    let path = fdir.join(".digests");
    let queue = LinkQueue::default();
    let ours = Digests::new(serde_json::from_str(r#"{"a": "sha256:1"}"#).expect("json"));
    let text = ours.text();
    fs::write(&path, &text).expect("write");
    queue.keep(fdir, &path, ours, text);
    let kept = queue.load(fdir, &path).expect("load");
    assert_eq!(kept.map()["a"], "sha256:1");
    // Another process rewrote it with the same size, and its inode number and times came
    // out the same (a freed inode reused within one timer tick): the identity matches,
    // the content does not.
    let theirs = r#"{"a": "sha256:2"}"#;
    fs::write(&path, theirs).expect("write");
    let stale = Digests::new(serde_json::from_str(r#"{"a": "sha256:1"}"#).expect("json"));
    let stale_text = stale.text();
    let id = file_id(&path).expect("id");
    queue
        .digests
        .lock()
        .expect("cache")
        .insert(fdir.to_path_buf(), (id, stale, stale_text));
    let read = queue.load(fdir, &path).expect("load");
    assert_eq!(read.map()["a"], "sha256:2");
}

/// The directories the batch flushed, as a set, and whether any was flushed twice.
fn flushed(run: impl FnOnce()) -> (std::collections::BTreeSet<PathBuf>, bool) {
    crate::storage::durable::tests::take_synced();
    run();
    let synced = crate::storage::durable::tests::take_synced();
    let set: std::collections::BTreeSet<PathBuf> = synced.iter().cloned().collect();
    let twice = set.len() != synced.len();
    (set, twice)
}

#[test]
fn a_landed_batch_flushes_each_directory_it_changed_once() {
    let repo = TestRepo::new();
    let job = fixture::job(Scope::Root, "b", "t", "j");
    let f = fixture::format(&job, "f");
    repo.ensure_job(&job).expect("job");
    let fdir = repo.format_dir(&f);
    // A new format and a new directory in it: every directory up to the root too, as
    // the branch, tag and job may be new.
    let first = request(&repo, "a/x", b"x");
    let blob_dir = first.blob.parent().expect("blob dir").to_path_buf();
    let (set, twice) = flushed(|| repo.commit_link(&f, &fdir, first).expect("linked"));
    assert!(!twice, "{set:?}");
    let mut want: std::collections::BTreeSet<PathBuf> = [fdir.join("a"), fdir.clone(), blob_dir]
        .into_iter()
        .collect();
    want.extend(
        fdir.ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&repo.root))
            .map(Path::to_path_buf),
    );
    assert_eq!(set, want);
    // Into the format as it is now: the link's directory (the format's, with `.digests`)
    // and its blob's.
    let second = request(&repo, "y", b"y");
    let blob_dir = second.blob.parent().expect("blob dir").to_path_buf();
    let (set, twice) = flushed(|| repo.commit_link(&f, &fdir, second).expect("linked"));
    assert!(!twice, "{set:?}");
    assert_eq!(set, [fdir.clone(), blob_dir].into_iter().collect());
}
