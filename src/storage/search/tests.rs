use super::*;
use crate::model::Scope;
use crate::storage::Visibility;
use crate::storage::fixture::{TestRepo, job, main_job, upload};
use serde_json::json;

fn search(ix: &SearchIndex, repo: &Repo, q: &str) -> Vec<String> {
    let q = Query::parse(q).unwrap_or_else(|e| panic!("{e}"));
    let page = ix.search(repo, &q, &Access::everything(), None, 100);
    page.hits.into_iter().map(|h| h.url).collect()
}

/// An index of `repo` whose walks run 10 s after now: every time they see has settled.
fn built(repo: &Repo) -> SearchIndex {
    let ix = SearchIndex::default();
    ix.clock.store(later(), Ordering::SeqCst);
    ix.refresh(repo, &Subtree::All);
    ix
}

fn later() -> i64 {
    crate::storage::stamp_cache::now_ns() + 10_000_000_000
}

#[test]
fn the_most_specific_level_answers() {
    let r = TestRepo::new();
    let a = main_job("t1", "build");
    upload(&r, &a, "deb", "libfoo_1.0.deb", b"foo");
    upload(&r, &a, "deb", "bar_1.0.deb", b"bar");
    let u = job(
        Scope::User(crate::storage::fixture::name("alice")),
        "dev",
        "t",
        "x",
    );
    upload(&r, &u, "rpm", "libfoo-1.0.rpm", b"foo");
    let meta = json!({"product": "foo", "version": "1.2"});
    let meta = meta.as_object().cloned().unwrap_or_default();
    r.patch_metadata(&a, &meta, &Visibility::everything())
        .unwrap_or_else(|e| panic!("{e}"));
    let ix = built(&r);
    assert_eq!(search(&ix, &r, "product=foo"), ["/branches/main/t1/build/"]);
    assert_eq!(search(&ix, &r, "build"), ["/branches/main/t1/build/"]);
    assert_eq!(
        search(&ix, &r, "build deb"),
        ["/branches/main/t1/build/deb/"]
    );
    let mut files = search(&ix, &r, "libfoo");
    files.sort();
    assert_eq!(
        files,
        [
            "/branches/main/t1/build/deb/libfoo_1.0.deb",
            "/~alice/branches/dev/t/x/rpm/libfoo-1.0.rpm"
        ]
    );
    assert_eq!(
        search(&ix, &r, "name:*.DEB version=1.*"),
        [
            "/branches/main/t1/build/deb/bar_1.0.deb",
            "/branches/main/t1/build/deb/libfoo_1.0.deb"
        ]
    );
    let foo = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"foo"))
    );
    assert_eq!(search(&ix, &r, &foo).len(), 2);
    assert!(search(&ix, &r, &format!("sha256:{}", "0".repeat(64))).is_empty());
    assert_eq!(
        search(&ix, &r, "format:rpm kind:format"),
        ["/~alice/branches/dev/t/x/rpm/"]
    );
    assert!(search(&ix, &r, "locked:yes").is_empty());
}

#[test]
fn refresh_sees_new_and_deleted_jobs_and_pages_are_stable() {
    let r = TestRepo::new();
    for i in 0..5 {
        upload(&r, &main_job("t", &format!("j{i}")), "f", "a.txt", b"a");
    }
    let ix = built(&r);
    let q = Query::parse("a.txt").unwrap_or_else(|e| panic!("{e}"));
    let everything = Access::everything();
    let first = ix.search(&r, &q, &everything, None, 2);
    assert_eq!(first.hits.len(), 2);
    let cursor = first.next.clone().map(|k| k.encode()).unwrap_or_default();
    // A new job arrives between the pages: it sorts first, so the next page neither
    // repeats nor skips anything.
    upload(&r, &main_job("t", "new"), "f", "a.txt", b"a");
    ix.touch(Subtree::All);
    let after = SortKey::decode(&cursor);
    let rest = ix.search(&r, &q, &everything, after.as_ref(), 100);
    let mut seen: Vec<String> = first
        .hits
        .iter()
        .chain(&rest.hits)
        .map(|h| h.url.clone())
        .collect();
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    r.delete_job(&main_job("t", "j0"))
        .unwrap_or_else(|e| panic!("{e}"));
    ix.refresh(&r, &Subtree::Tag(main_job("t", "j0").tag));
    assert_eq!(search(&ix, &r, "a.txt").len(), 5, "j0 gone, new there");
    assert!(!search(&ix, &r, "a.txt").iter().any(|u| u.contains("/j0/")));
}

#[test]
fn hidden_results_never_count() {
    let r = TestRepo::new();
    upload(&r, &main_job("t", "open"), "f", "x", b"x");
    upload(&r, &main_job("t", "secret"), "f", "x", b"x");
    let ix = built(&r);
    let vis = Access::of(Visibility::new(|url| !url.contains("secret")));
    let q = Query::parse("x").unwrap_or_else(|e| panic!("{e}"));
    let page = ix.search(&r, &q, &vis, None, 1);
    assert_eq!(page.hits.len(), 1);
    assert!(page.next.is_none(), "the hidden one makes no next page");
}

#[test]
fn a_saved_index_loads_and_the_walk_fixes_what_changed_since() {
    let r = TestRepo::new();
    upload(&r, &main_job("t", "a"), "f", "x.bin", b"x");
    upload(
        &r,
        &job(
            Scope::User(crate::storage::fixture::name("u")),
            "b",
            "t",
            "c",
        ),
        "g",
        "y.bin",
        b"y",
    );
    let ix = built(&r);
    r.save_search_index(&ix.read())
        .unwrap_or_else(|e| panic!("{e}"));
    let loaded = SearchIndex::default();
    loaded.load(&r);
    assert_eq!(loaded.jobs(), 2);
    assert_eq!(search(&loaded, &r, "bin"), search(&ix, &r, "bin"));
    // Each record is kept while its job lives: no room reserved for growth it never gets.
    for rec in loaded.read().jobs.iter().flatten() {
        assert_eq!(rec.formats.capacity(), rec.formats.len(), "{}", rec.url);
        assert_eq!(rec.metadata.capacity(), rec.metadata.len(), "{}", rec.url);
        assert_eq!(rec.fields.capacity(), rec.fields.len(), "{}", rec.url);
    }
    // Changes made while the index was on disk: the walk after loading sees them.
    r.delete_job(&main_job("t", "a"))
        .unwrap_or_else(|e| panic!("{e}"));
    upload(&r, &main_job("t", "new"), "f", "z.bin", b"z");
    loaded.refresh(&r, &Subtree::All);
    let mut found = search(&loaded, &r, "bin");
    found.sort();
    assert_eq!(
        found,
        ["/branches/main/t/new/f/z.bin", "/~u/branches/b/t/c/g/y.bin"]
    );
    // A broken or foreign file is ignored: the walk builds everything.
    let path = r.search_index_path();
    let mut data = std::fs::read(&path).unwrap_or_default();
    data.truncate(data.len() / 2);
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("{e}"));
    assert!(!r.load_search_index(&mut |_| {}));
    std::fs::remove_dir_all(path.parent().unwrap_or(&path)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!r.load_search_index(&mut |_| {}));
}

#[test]
fn a_walk_over_an_unchanged_tree_reads_nothing_again() {
    let r = TestRepo::new();
    upload(&r, &main_job("t", "a"), "f", "x.bin", b"x");
    upload(&r, &main_job("t", "a"), "g", "y.bin", b"y");
    upload(&r, &main_job("t", "b"), "f", "x.bin", b"x");
    let ix = built(&r);
    let generation = ix.read().generation;
    ix.refresh(&r, &Subtree::All);
    assert_eq!(ix.read().generation, generation, "nothing changed");
    // A file into an existing format: only the format's directory changes.
    upload(&r, &main_job("t", "a"), "g", "z.bin", b"z");
    ix.refresh(&r, &Subtree::All);
    assert_eq!(
        ix.read().generation,
        generation + 2,
        "a removed and put again"
    );
    assert_eq!(search(&ix, &r, "z.bin"), ["/branches/main/t/a/g/z.bin"]);
}

#[test]
fn a_write_in_the_tick_a_walk_read_shows_at_the_next_walk() {
    let r = TestRepo::new();
    let a = main_job("t", "a");
    upload(&r, &a, "g", "x.bin", b"x");
    let dir = r.format_dir(&crate::storage::fixture::format(&a, "g"));
    let mtime = std::fs::metadata(&dir)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{e}"));
    let ns = mtime
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(0));
    // The walk reads in the tick of the upload...
    let ix = SearchIndex::default();
    ix.clock.store(ns, Ordering::SeqCst);
    ix.refresh(&r, &Subtree::All);
    // ...and another process uploads in that same tick: the format directory keeps the
    // mtime the walk saw.
    upload(&r, &a, "g", "y.bin", b"y");
    std::fs::File::open(&dir)
        .and_then(|f| f.set_modified(mtime))
        .unwrap_or_else(|e| panic!("{e}"));
    ix.clock.store(later(), Ordering::SeqCst);
    ix.refresh(&r, &Subtree::All);
    assert_eq!(search(&ix, &r, "y.bin"), ["/branches/main/t/a/g/y.bin"]);
    // Read once settled, the job is not read again.
    let generation = ix.read().generation;
    ix.refresh(&r, &Subtree::All);
    assert_eq!(ix.read().generation, generation);
}

#[test]
fn a_caller_who_reads_one_branch_looks_at_nothing_else() {
    let r = TestRepo::new();
    for i in 0..20 {
        let j = job(Scope::Root, "secret", &format!("t{i}"), "j");
        for f in 0..5 {
            upload(&r, &j, "f", &format!("{f}.bin"), b"s");
        }
    }
    let public = job(Scope::Root, "public", "t", "j");
    upload(&r, &public, "f", "p.bin", b"p");
    let ix = built(&r);
    let read = |url: &str| url.starts_with("/branches/public/");
    let access = Access::new(Visibility::new(read), read);
    let q = Query::parse("kind:file").unwrap_or_else(|e| panic!("{e}"));
    let page = ix.search(&r, &q, &access, None, 50);
    let urls: Vec<&str> = page.hits.iter().map(|h| h.url.as_str()).collect();
    assert_eq!(urls, ["/branches/public/t/j/f/p.bin"]);
    // The 20 hidden jobs are passed over by their branch: none of their 100 files is
    // looked at, nor a URL built for it.
    let w = page.work;
    assert_eq!(
        (w.jobs, w.opened, w.entries, w.urls),
        (21, 1, 2, 1),
        "{w:?}"
    );
    // Without an answer for whole branches, every file is looked at, and all but one refused.
    let page = ix.search(&r, &q, &Access::of(Visibility::new(read)), None, 50);
    assert_eq!(page.hits.len(), 1);
    assert_eq!((page.work.entries, page.work.urls), (122, 101));
    // A digest only hidden jobs hold finds nothing, by their branch alone.
    let s = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"s"))
    );
    let q = Query::parse(&s).unwrap_or_else(|e| panic!("{e}"));
    let page = ix.search(&r, &q, &access, None, 50);
    assert!(page.hits.is_empty());
    assert_eq!((page.work.opened, page.work.urls), (0, 0));
}
