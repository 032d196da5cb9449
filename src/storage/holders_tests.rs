//! The search for an artifact a caller may read that holds some content: where it starts
//! and where it stops.

use super::HOLDER_SEARCH_STEPS;
use crate::model::{Digest, Scope};
use crate::storage::Visibility;
use crate::storage::fixture::{job, repo, upload};
use sha2::{Digest as _, Sha256};

fn digest(data: &[u8]) -> Digest {
    let hex = hex::encode(Sha256::digest(data));
    Digest::parse(Some(&format!("sha256:{hex}"))).expect("a sha256 digest")
}

/// Branch `b` with tags t1 to t4 holding other content and t5 holding `wanted`.
fn tree(r: &crate::storage::Repo) {
    for t in ["t1", "t2", "t3", "t4"] {
        upload(r, &job(Scope::Root, "b", t, "j"), "f", "x", t.as_bytes());
    }
    upload(r, &job(Scope::Root, "b", "t5", "j"), "f", "x", b"wanted");
}

/// A repository holding [`tree`], the digest of `wanted`, its blob's metadata, and a caller
/// who may read everything but is not marked so (`Visibility::everything()` needs no
/// search).
fn searched() -> (
    tempfile::TempDir,
    crate::storage::Repo,
    Digest,
    std::fs::Metadata,
    Visibility,
) {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    tree(&r);
    let d = digest(b"wanted");
    let blob = std::fs::metadata(r.blob_path(&d)).expect("the blob");
    (tmp, r, d, blob, Visibility::new(|_| true))
}

#[test]
fn the_search_reads_at_most_its_steps() {
    let (_tmp, r, d, blob, acl) = searched();
    // With no upload branch, tags are read in name order: t5's `.digests` is the 18th read.
    let found = |steps| {
        r.find_readable(&d, &blob, None, &acl, steps)
            .expect("searched")
    };
    assert!(!found(17), "found past its steps");
    assert!(found(18));
    assert_eq!(
        r.readable_blob(&d, None, &acl, None).expect("searched"),
        Some(6),
        "{HOLDER_SEARCH_STEPS} steps reach it"
    );
}

#[test]
fn a_new_tag_of_the_same_branch_finds_the_last_tags_first() {
    let (_tmp, r, d, blob, acl) = searched();
    let near = job(Scope::Root, "b", "t6", "j");
    // The user repositories, the root's branches, branch b, then t5's jobs, j's formats
    // and f's `.digests`.
    assert!(
        r.find_readable(&d, &blob, Some(&near), &acl, 6)
            .expect("searched")
    );
    assert!(
        !r.find_readable(&d, &blob, Some(&near), &acl, 5)
            .expect("searched")
    );
}

#[test]
fn content_held_only_where_the_caller_cannot_look_is_not_found() {
    let (_tmp, r, d, _, _) = searched();
    let acl = Visibility::new(|url| !url.contains("/t5/"));
    assert_eq!(
        r.readable_blob(&d, None, &acl, None).expect("searched"),
        None
    );
}

#[test]
fn the_access_guide_states_the_bound() {
    // Line breaks fall where they may.
    let doc = include_str!("../../docs/access.md")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let n = HOLDER_SEARCH_STEPS;
    let written = format!(
        "stops after {},{:03} directory listings",
        n / 1000,
        n % 1000
    );
    assert!(doc.contains(&written), "docs/access.md: {written:?}");
    let hints = format!("last saw the content, at most {}", super::HOLDER_HINTS);
    assert!(doc.contains(&hints), "docs/access.md: {hints:?}");
}

#[test]
fn other_repositories_cost_nothing_until_the_search_reaches_them() {
    let (tmp, r, d, blob, acl) = searched();
    for i in 0..50 {
        let dir = tmp.path().join(format!("users/u{i}/branches/b/t/j/f"));
        std::fs::create_dir_all(dir).expect("a user's format");
    }
    let near = job(Scope::Root, "b", "t6", "j");
    assert!(
        r.find_readable(&d, &blob, Some(&near), &acl, 6)
            .expect("searched")
    );
}

#[test]
fn the_search_index_names_holders_the_walk_would_reach_late() {
    use crate::storage::search::{SearchIndex, Subtree};
    let (tmp, r, d, blob, acl) = searched();
    let ix = SearchIndex::default();
    ix.refresh(&r, &Subtree::All);
    // t5 is the 18th read of the walk, but the index's first hint.
    assert!(r.hinted_holder(&d, &blob, &acl, Some(&ix)));
    assert!(!r.hinted_holder(&d, &blob, &acl, None));
    // Each hint passes the caller's ACL, at every level and at the file's own URL.
    for denied in ["/branches/b/", "/t5/", "/t5/j/", "/t5/j/f/", "/t5/j/f/x"] {
        let narrow = Visibility::new(move |url| !url.ends_with(denied));
        assert!(
            !r.hinted_holder(&d, &blob, &narrow, Some(&ix)),
            "{denied} denied"
        );
    }
    // A hint is checked on disk: a file that is no longer the blob holds nothing.
    let file = tmp.path().join("branches/b/t5/j/f/x");
    std::fs::remove_file(&file).expect("removed");
    std::fs::write(&file, b"wanted").expect("same bytes, another inode");
    assert!(!r.hinted_holder(&d, &blob, &acl, Some(&ix)));
}
