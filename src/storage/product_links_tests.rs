//! Product links on a real data root (spec/LAYOUT.md §4, spec/API.md Q11, Q16): metadata
//! naming a product version links the job's formats into `products/P/V/PB/ver/`, a format
//! another job provides is refused, and deleting the job removes what it linked.

use super::{StoreError, Visibility};
use crate::model::{FormatRef, JobRef};
use crate::storage::fixture::{main_job as job, name, repo};
use serde_json::{Map, Value, json};
use std::fs;
use std::path::Path;

/// Uploads `iso/disk.img` to `j`.
fn upload(r: &super::Repo, j: &crate::model::JobRef, data: &[u8]) {
    crate::storage::fixture::upload(r, j, "iso", "disk.img", data);
}

fn product_metadata() -> Map<String, Value> {
    let Value::Object(m) = json!({
        "product": "foo", "product_variant": "x86", "product_branch": "1", "version": "1.0"
    }) else {
        unreachable!("an object literal")
    };
    m
}

/// `{tag}/{job}` with an uploaded format, linked into the product version of
/// [`product_metadata`].
fn linked_job(r: &super::Repo, tag: &str, job_name: &str, data: &[u8]) -> JobRef {
    let j = job(tag, job_name);
    upload(r, &j, data);
    r.patch_metadata(&j, &product_metadata(), &Visibility::everything())
        .expect("linked to 1.0");
    j
}

fn version_dir(root: &Path) -> std::path::PathBuf {
    root.join("products/foo/x86/1/1.0")
}

#[test]
fn metadata_links_the_formats_into_the_product_version() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    linked_job(&r, "t1", "j1", b"image one");

    let vdir = version_dir(tmp.path());
    let link = vdir.join("iso");
    assert_eq!(
        fs::read_link(&link).expect("a symlink"),
        Path::new("../../../../../branches/main/t1/j1/iso")
    );
    assert_eq!(
        fs::read(link.join("disk.img")).expect("readable through the link"),
        b"image one"
    );
    let back = fs::canonicalize(tmp.path().join("branches/main/t1/j1/.product"))
        .expect("the job points at its version");
    assert_eq!(back, fs::canonicalize(&vdir).expect("the version dir"));
    assert!(vdir.join(".stamp").exists());
}

#[test]
fn a_format_another_job_provides_is_refused() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let (first, second) = (job("t1", "j1"), job("t2", "j1"));
    upload(&r, &first, b"image one");
    upload(&r, &second, b"image two");
    let meta = product_metadata();
    r.patch_metadata(&first, &meta, &Visibility::everything())
        .expect("the first job links");

    let err = r
        .patch_metadata(&second, &meta, &Visibility::everything())
        .expect_err("the second job clashes");
    let StoreError::Refused(why) = err else {
        panic!("a 400, not {err:?}")
    };
    assert_eq!(
        why,
        "Format iso of product version /products/foo/x86/1/1.0/ is already provided by another job"
    );
    // The refused job keeps its old metadata and no product link.
    let jdir = tmp.path().join("branches/main/t2/j1");
    assert!(!jdir.join(".product").exists());
    assert!(!fs::read_to_string(jdir.join(".metadata")).is_ok_and(|m| m.contains("foo")));
    assert_eq!(
        fs::read(version_dir(tmp.path()).join("iso/disk.img")).expect("still the first"),
        b"image one"
    );
}

/// A link to nothing in the version (its job's delete cut short by a crash, or a dlrepo
/// root) is refused before anything changes, and gives way once `fsck --repair` has
/// removed it.
#[test]
fn a_dangling_link_is_refused_until_fsck_removes_it() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let gone = linked_job(&r, "t1", "j1", b"image one");
    fs::remove_dir_all(r.job_dir(&gone)).expect("the job gone, its link left");
    let j = job("t2", "j1");
    upload(&r, &j, b"image two");
    let everyone = Visibility::everything();
    let err = r
        .patch_metadata(&j, &product_metadata(), &everyone)
        .expect_err("refused");
    assert!(err.to_string().contains("fsck --repair"), "{err}");
    assert!(!r.job_dir(&j).join(".product").exists(), "nothing changed");
    assert!(r.fsck(true).expect("fsck").healthy());
    r.patch_metadata(&j, &product_metadata(), &everyone)
        .expect("linked once the link is gone");
    assert_eq!(
        fs::read(version_dir(tmp.path()).join("iso/disk.img")).expect("linked"),
        b"image two"
    );
}

#[test]
fn linking_needs_add_access_to_the_version() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let j = job("t1", "j1");
    upload(&r, &j, b"image one");
    let no_products = Visibility::new(|url| !url.starts_with("/products/"));
    let err = r
        .patch_metadata(&j, &product_metadata(), &no_products)
        .expect_err("refused");
    assert!(matches!(err, StoreError::Denied), "{err:?}");
    assert!(!tmp.path().join("products").join("foo").exists());
}

#[test]
fn deleting_the_job_unlinks_it_and_prunes_empty_levels() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let (kept, gone) = (job("t1", "j1"), job("t2", "j1"));
    upload(&r, &kept, b"image one");
    upload(&r, &gone, b"image two");
    let mut other = product_metadata();
    other.insert("version".into(), "2.0".into());
    r.patch_metadata(&kept, &product_metadata(), &Visibility::everything())
        .expect("linked to 1.0");
    r.patch_metadata(&gone, &other, &Visibility::everything())
        .expect("linked to 2.0");

    r.delete_job(&gone).expect("deleted");
    let branch = tmp.path().join("products/foo/x86/1");
    assert!(!branch.join("2.0").exists(), "the emptied version goes");
    assert!(branch.join("1.0/iso").exists(), "the other version stays");

    r.delete_job(&kept).expect("deleted");
    assert!(
        !tmp.path().join("products/foo").exists(),
        "empty levels go up to the products dir"
    );
}

#[test]
fn changing_the_version_moves_the_links() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let j = linked_job(&r, "t1", "j1", b"image one");
    let mut newer = Map::new();
    newer.insert("version".into(), "1.1".into());
    r.patch_metadata(&j, &newer, &Visibility::everything())
        .expect("moved to 1.1");
    let branch = tmp.path().join("products/foo/x86/1");
    assert!(!branch.join("1.0").exists());
    assert!(branch.join("1.1/iso/disk.img").exists());
}

#[test]
fn deleting_a_format_drops_its_version_link() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let j = linked_job(&r, "t1", "j1", b"image one");
    let f = FormatRef::Job {
        job: j,
        format: name("iso"),
    };
    r.delete_format(&f).expect("deleted");
    let link = version_dir(tmp.path()).join("iso");
    assert!(
        fs::symlink_metadata(&link).is_err(),
        "no dangling link (Q11)"
    );
}

/// A job made in a tag after the tag's delete listed the jobs it deletes one by one (a
/// metadata write racing the delete) goes with the tag's tree: its version is unlinked all
/// the same, instead of staying behind empty or with links to nothing.
#[test]
fn a_job_that_goes_with_its_tag_unlinks_its_version() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let j = linked_job(&r, "t1", "j1", b"image one");
    let vdir = version_dir(tmp.path());
    assert!(vdir.join("iso").is_dir());

    // What the delete does after its listing: the tree into the trash, the jobs it holds
    // unlinked from their versions there.
    let tdir = r.tag_dir(&j.tag);
    let scope = j.tag.branch.scope.clone();
    r.remove_tree_then(&tdir, |trash| r.unlink_trashed_jobs(trash, 1, &scope))
        .expect("deleted");
    assert!(!vdir.exists(), "the version went with its only job");
    assert!(!tmp.path().join("products").exists());

    // The same through a branch's tree, two levels above its jobs.
    let k = linked_job(&r, "t2", "j2", b"image two");
    assert!(vdir.join("iso").is_dir());
    let bdir = r.branch_dir(&k.tag.branch);
    r.remove_tree_then(&bdir, |trash| r.unlink_trashed_jobs(trash, 2, &scope))
        .expect("deleted");
    assert!(!vdir.exists());
}
