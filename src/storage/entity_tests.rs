//! Branch, tag and job rules on a real data root (spec/LAYOUT.md §3, spec/API.md
//! §3.3–3.6): what the listings report, which state changes are refused, and what a
//! refusal leaves behind.

use crate::model::{FormatRef, Scope};
use crate::storage::fixture::{main_job as job, name, repo, upload};
use crate::storage::{JobUpdate, StoreError, TagUpdate, Visibility};
use std::fs;

#[test]
fn the_cleanup_policy_file_holds_exactly_its_two_keys() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let j = job("t1", "j1");
    r.ensure_job(&j).expect("created");
    let policy = tmp.path().join("branches/main/.cleanup_policy");
    fs::write(&policy, r#"{"max_released_tags": 2, "other": true}"#).expect("written");

    r.set_cleanup_policy(&j.tag.branch, vec![("max_daily_tags", 3)])
        .expect("updated");
    assert_eq!(
        fs::read_to_string(&policy).expect("the policy"),
        r#"{"max_daily_tags": 3, "max_released_tags": 2}"#
    );
}

#[test]
fn listings_count_and_flag_what_is_there() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let (a, b) = (job("t1", "j1"), job("t2", "j1"));
    upload(&r, &a, "iso", "disk.img", b"one");
    upload(&r, &b, "iso", "disk.img", b"two");
    r.update_tag(
        &b.tag,
        TagUpdate {
            locked: Some(true),
            description: Some("  nightly \n".into()),
            ..TagUpdate::default()
        },
    )
    .expect("updated");

    let all = Visibility::everything();
    let branches = r.list_branches(&Scope::Root, &all).expect("listed");
    assert_eq!(branches.len(), 1);
    assert_eq!(
        (branches[0].daily_tags, branches[0].locked_tags),
        (2, 1),
        "{branches:?}"
    );
    let tag = r.tag_info(&b.tag, &all).expect("the tag");
    assert!(tag.locked && !tag.released);
    assert_eq!(tag.description.as_deref(), Some("nightly"));
    let stored = tmp.path().join("branches/main/t2/.description");
    assert_eq!(
        fs::read_to_string(stored).expect("the description"),
        "nightly\n",
        "trimmed, then stored with a newline"
    );
    assert_eq!(tag.jobs.len(), 1);
    assert_eq!(tag.jobs[0].name, "j1");

    let hidden = Visibility::new(|url| !url.contains("/t2/"));
    let names: Vec<String> = r
        .branch_info(&a.tag.branch, false, &hidden)
        .expect("the branch")
        .tags
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["t1"]);
}

#[test]
fn a_locked_tag_keeps_its_branch() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let (a, b) = (job("t1", "j1"), job("t2", "j1"));
    upload(&r, &a, "iso", "disk.img", b"one");
    upload(&r, &b, "iso", "disk.img", b"two");
    let lock = TagUpdate {
        locked: Some(true),
        ..TagUpdate::default()
    };
    r.update_tag(&b.tag, lock).expect("locked");

    let err = r.delete_branch(&a.tag.branch).expect_err("refused");
    assert!(
        matches!(&err, StoreError::Refused(why) if why == "Tag t2 is locked"),
        "{err:?}"
    );
    // Checked before anything goes: the unlocked tag is still there too.
    assert!(r.job_exists(&a) && r.job_exists(&b));
}

#[test]
fn a_job_locks_once_its_formats_are_finished() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let j = job("t1", "j1");
    upload(&r, &j, "iso", "disk.img", b"one");
    let all = Visibility::everything();
    let lock = || JobUpdate {
        internal: Some(true),
        locked: Some(true),
    };

    let err = r.update_job(&j, lock(), &all).expect_err("dirty");
    assert!(
        matches!(&err, StoreError::Refused(why) if why == "Job has dirty formats"),
        "{err:?}"
    );
    let f = FormatRef::Job {
        job: j.clone(),
        format: name("iso"),
    };
    r.finalize_format(&f).expect("finalised");
    r.update_job(&j, lock(), &all).expect("locked");

    let info = r.job_info(&j, &all).expect("the job");
    assert!(info.entry.locked && info.internal);
    assert_eq!(info.digest.len(), 64, "sha256 hex of the job digest");
    assert_eq!(info.formats, ["iso"]);
    // Locked: the internal flag no longer changes, deleting a format is refused.
    let err = r
        .set_job_internal(&j, false)
        .expect_err("the job is locked");
    assert!(matches!(err, StoreError::Refused(_)), "{err:?}");
    assert!(r.delete_format(&f).is_err());
    r.unlock_job(&j).expect("unlocked");
    assert!(!r.job_info(&j, &all).expect("the job").entry.locked);
}

#[test]
fn a_branch_listed_again_reads_only_the_tags_that_changed() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let all = Visibility::everything();
    let (t1, t2) = (job("t1", "j1"), job("t2", "j1"));
    r.ensure_job(&t1).expect("t1");
    r.ensure_job(&t2).expect("t2");
    let branch = &t1.tag.branch;
    let bdir = tmp.path().join("branches/main");
    let describe = |tag: &str, text: &str| fs::write(bdir.join(tag).join(".description"), text);
    describe("t1", "one").expect("t1");
    describe("t2", "two").expect("t2");
    let described = |r: &crate::storage::Repo| -> Vec<(String, Option<String>)> {
        let info = r.branch_info(branch, false, &all).expect("the branch");
        info.tags
            .into_iter()
            .map(|t| (t.name, t.description))
            .collect()
    };
    // Past the window in which a change could hide in the directories' times.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(described(&r)[0].1.as_deref(), Some("one"));
    // Rewritten in place (never done by arbor or dlrepo): t1's directory keeps its times,
    // so a listing that reads t1 again shows it and one that takes it over does not.
    fs::OpenOptions::new()
        .write(true)
        .open(bdir.join("t1/.description"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"ONE"))
        .expect("rewritten");
    // A new tag changes the branch; t2's new description changes t2's directory.
    r.ensure_job(&job("t3", "j1")).expect("t3");
    fs::write(bdir.join("t2/.new"), "TWO").expect("staged");
    fs::rename(bdir.join("t2/.new"), bdir.join("t2/.description")).expect("replaced");
    let now = described(&r);
    assert_eq!(
        now,
        [
            ("t1".into(), Some("one".into())),
            ("t2".into(), Some("TWO".into())),
            ("t3".into(), None),
        ]
    );
}

/// The HTTP layer renders a kept tag's JSON once (`TagInfo::rendered`): every caller who sees
/// all its jobs shares that slot, a caller shown fewer jobs gets none, and a change to the
/// tag gives a new one.
#[test]
fn a_kept_tag_shares_its_rendering_only_with_callers_who_see_every_job() {
    use std::sync::Arc;
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let (a, b) = (job("t1", "j1"), job("t1", "j2"));
    upload(&r, &a, "iso", "disk.img", b"one");
    upload(&r, &b, "iso", "disk.img", b"two");
    // Past every filesystem's racy window, so that the answer is kept.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let all = Visibility::everything();
    let memo = |v: &Visibility| r.tag_info(&a.tag, v).expect("the tag").rendered;
    let first = memo(&all).expect("a slot");
    assert!(Arc::ptr_eq(&first, &memo(&all).expect("a slot")));
    // The whole view shares the kept entries too: a kept answer copies no job's metadata.
    let jobs = |v: &Visibility| r.tag_info(&a.tag, v).expect("the tag").jobs;
    assert!(Arc::ptr_eq(&jobs(&all), &jobs(&all)));
    let narrow = Visibility::new(|url| !url.contains("/j2/"));
    let partial = r.tag_info(&a.tag, &narrow).expect("the tag");
    assert_eq!(partial.jobs.len(), 1);
    assert_eq!(partial.jobs[0].name, "j1");
    assert!(!Arc::ptr_eq(&partial.jobs, &jobs(&all)));
    assert!(
        partial.rendered.is_none(),
        "a partial view must not share the whole rendering"
    );
    let locked = TagUpdate {
        locked: Some(true),
        ..TagUpdate::default()
    };
    r.update_tag(&a.tag, locked).expect("locked");
    let after = memo(&all).expect("a slot");
    assert!(
        !Arc::ptr_eq(&first, &after),
        "a changed tag kept the old rendering"
    );
}

#[test]
fn a_kept_job_shares_its_rendering_only_with_callers_who_see_every_format() {
    use std::sync::Arc;
    let tmp = tempfile::tempdir().expect("a temp dir");
    let r = repo(tmp.path());
    let j = job("t1", "j1");
    upload(&r, &j, "iso", "disk.img", b"one");
    upload(&r, &j, "secret", "key.pem", b"two");
    // Past every filesystem's racy window, so that the answer is kept.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let all = Visibility::everything();
    let whole = r.job_info(&j, &all).expect("the job");
    assert!(
        Arc::ptr_eq(&whole, &r.job_info(&j, &all).expect("the job")),
        "a caller who sees every format gets the kept answer itself"
    );
    assert!(whole.rendered.is_some());
    let narrow = Visibility::new(|url| !url.contains("/secret/"));
    let partial = r.job_info(&j, &narrow).expect("the job");
    assert_eq!(partial.formats, ["iso"]);
    assert!(
        partial.rendered.is_none(),
        "a partial view must not share the whole rendering"
    );
    r.update_job(
        &j,
        JobUpdate {
            internal: Some(true),
            ..JobUpdate::default()
        },
        &all,
    )
    .expect("updated");
    let after = r.job_info(&j, &all).expect("the job");
    assert!(
        after.internal && !Arc::ptr_eq(&whole, &after),
        "a changed job kept the old answer"
    );
}
