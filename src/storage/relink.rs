//! A metadata write moves a job's product links in several steps: the old version's links
//! go, `.metadata` is replaced, the new version's links are made. A crash between two of
//! them leaves the links apart from `.metadata`. So the write first records which job it
//! is relinking, in a leased `.uploads/{random}.relink` directory it removes when done; a
//! record whose writer died is found at the next start (or by the next collection) and
//! the links are made again from `.metadata`, as `fsck --repair` would.

use super::files::{Claim, DirLock, TempDir};
use super::products::gone_is_fine;
use super::{Repo, StoreError};
use crate::model::{BranchRef, JobRef, Name, Scope, TagRef};
use serde_json::{Value, json};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A record whose writer died, and the claim that keeps other processes off it.
struct Dead {
    path: PathBuf,
    job: JobRef,
    _claim: Claim,
}

/// The file in a record that names its job.
const JOB: &str = "job.json";

/// The kind of `.uploads/` entry a record is.
pub(crate) const KIND: &str = "relink";

impl Repo {
    /// Records, durably, that `j`'s product links are about to change. Dropping the record
    /// (the change done, or failed cleanly) removes it. The caller holds `j`'s lock.
    pub(crate) fn intend_relink(&self, j: &JobRef) -> Result<TempDir, StoreError> {
        let record = TempDir::create(&self.uploads_dir(), KIND)?;
        write_record(&record.path, j)?;
        super::durable::sync_dir(&self.uploads_dir())?;
        Ok(record)
    }

    /// Makes the product links of every job a dead writer left a record for agree with
    /// its `.metadata` again. Records a live writer holds are left to it.
    pub(crate) fn finish_relinks(&self) {
        for dead in self.dead_records() {
            let j = &dead.job;
            if let Err(e) = self.relink_job(j) {
                tracing::error!(job = %j.url(), error = %e, "cannot finish an interrupted product link");
                // Kept for the next try; the collector removes it once old.
                continue;
            }
            tracing::warn!(job = %j.url(), "finished an interrupted product link");
            if let Err(e) = gone_is_fine(fs::remove_dir_all(&dead.path)) {
                tracing::error!(record = %dead.path.display(), error = %e, "cannot remove a product link record");
            }
        }
    }

    /// The records of writers that died, and their jobs (what `fsck` reports).
    pub(crate) fn dead_relinks(&self) -> Vec<(PathBuf, JobRef)> {
        let dead = self.dead_records().into_iter();
        dead.map(|d| (d.path, d.job)).collect()
    }

    /// The records no live writer holds, each claimed while it is kept.
    fn dead_records(&self) -> Vec<Dead> {
        let Ok(entries) = fs::read_dir(self.uploads_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            // A record is leased before its job is written in it: one without a job is
            // still being made (or its writer died making it, before it changed anything,
            // and the collector removes it once old). Never taken for a dead one.
            .filter(|p| p.extension().is_some_and(|e| e == KIND) && p.join(JOB).exists())
            .filter_map(|path| {
                let claim = Claim::take(&path)?;
                // Gone meanwhile (another process finished it), or cut short: nothing to do.
                let job = read_record(&path)?;
                Some(Dead {
                    path,
                    job,
                    _claim: claim,
                })
            })
            .collect()
    }

    /// Links `j` into the version its `.metadata` names, and out of any other, under its
    /// lock. A job gone meanwhile has nothing to link.
    fn relink_job(&self, j: &JobRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Ok(());
        }
        let _lock = DirLock::acquire(&self.locks_dir(), &jdir)?;
        if !jdir.is_dir() {
            return Ok(());
        }
        if !self.relink_locked(j)? {
            // As the write itself would have ended; trying again would end the same.
            tracing::warn!(job = %j.url(), "a format of this job is another job's in its product version: left unlinked");
        }
        Ok(())
    }
}

fn write_record(dir: &Path, j: &JobRef) -> Result<(), StoreError> {
    let user = match &j.tag.branch.scope {
        Scope::Root => Value::Null,
        Scope::User(u) => u.as_str().into(),
    };
    let text = json!({
        "user": user,
        "branch": j.tag.branch.branch.as_str(),
        "tag": j.tag.tag.as_str(),
        "job": j.job.as_str(),
    })
    .to_string();
    let path = dir.join(JOB);
    let mut file = fs::File::create(&path)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    super::durable::sync_dir(dir)?;
    Ok(())
}

/// The job a record names; `None` for anything a record never holds.
fn read_record(dir: &Path) -> Option<JobRef> {
    let text = fs::read(dir.join(JOB)).ok()?;
    let v: Value = serde_json::from_slice(&text).ok()?;
    let name = |key: &str| Name::parse(v.get(key)?.as_str()?).ok();
    let scope = match v.get("user")? {
        Value::Null => Scope::Root,
        _ => Scope::User(name("user")?),
    };
    Some(JobRef {
        tag: TagRef {
            branch: BranchRef {
                scope,
                branch: name("branch")?,
            },
            tag: name("tag")?,
        },
        job: name("job")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Visibility;
    use crate::storage::fixture::{self, TestRepo};
    use serde_json::Map;

    fn product(version: &str) -> Map<String, Value> {
        let text = format!(
            r#"{{"product": "p", "product_variant": "v", "product_branch": "pb", "version": "{version}"}}"#
        );
        serde_json::from_str(&text).unwrap()
    }

    fn records(repo: &Repo) -> usize {
        fs::read_dir(repo.uploads_dir())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == KIND))
            .count()
    }

    /// What a writer killed between removing the old links and making the new ones
    /// leaves: `.metadata` naming version 2, the job linked nowhere, and its record.
    #[test]
    fn a_metadata_write_cut_short_is_finished_at_the_next_start() {
        let repo = TestRepo::new();
        let j = fixture::main_job("t", "j");
        fixture::upload(&repo, &j, "fmt", "a.txt", b"a");
        repo.patch_metadata(&j, &product("1"), &Visibility::everything())
            .unwrap();
        let version = |n: &str| {
            repo.products_dir(&j.tag.branch.scope)
                .join("p/v/pb")
                .join(n)
        };
        assert!(version("1").join("fmt").is_dir());
        assert_eq!(records(&repo), 0, "a finished write leaves no record");

        dead_record(&repo, &j);
        repo.cleanup_product_tree(&j).unwrap();
        let (data, _) = repo.merged_metadata(&j, &product("2")).unwrap();
        let text = crate::pyjson::object_to_string_sorted(&data);
        fs::write(repo.job_dir(&j).join(".metadata"), text).unwrap();
        assert!(!version("2").exists());

        // Opened as the offline commands do, nothing changes: `fsck` reports it.
        let offline = fixture::repo(&repo.root);
        let found = offline.fsck(false).unwrap();
        // One finding for the write, none besides for its job's links.
        assert_eq!(found.findings.len(), 1, "{:?}", found.findings);
        assert!(
            found.findings[0].problem.contains("cut short"),
            "{:?}",
            found.findings
        );
        assert_eq!(records(&offline), 1);
        assert!(!version("2").exists());

        let again = server(&repo);
        assert_eq!(fs::read(version("2").join("fmt/a.txt")).unwrap(), b"a");
        assert!(!version("1").exists());
        assert_eq!(records(&again), 0, "the record is gone once done");
        assert!(again.fsck(false).unwrap().healthy());
    }

    /// A dead writer's record, as it leaves it: there, with its job, leased by nobody.
    fn dead_record(repo: &Repo, j: &JobRef) {
        let record = repo.uploads_dir().join(format!("{}.{KIND}", random()));
        fs::create_dir_all(&record).unwrap();
        write_record(&record, j).unwrap();
    }

    fn random() -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        format!("dead{}", N.fetch_add(1, Ordering::SeqCst))
    }

    fn server(repo: &Repo) -> Repo {
        Repo::for_server(&crate::config::Config {
            root_dir: repo.root.clone(),
            ..Default::default()
        })
        .unwrap()
    }

    /// A writer killed after its `.product` link and some of its format links (or after
    /// all of them, before it removed its record): the missing ones are linked, and the
    /// version is not made again, so its stamp (the order of `latest`) stays.
    #[test]
    fn a_write_cut_short_after_its_version_link_only_adds_what_is_missing() {
        let repo = TestRepo::new();
        let j = fixture::main_job("t", "j");
        fixture::upload(&repo, &j, "a", "a.txt", b"a");
        fixture::upload(&repo, &j, "b", "b.txt", b"b");
        repo.patch_metadata(&j, &product("1"), &Visibility::everything())
            .unwrap();
        let version = repo.products_dir(&j.tag.branch.scope).join("p/v/pb/1");
        let stamp = || {
            fs::metadata(version.join(".stamp"))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before = stamp();
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::remove_file(version.join("b")).unwrap();
        dead_record(&repo, &j);
        dead_record(&repo, &j);
        let again = server(&repo);
        assert!(version.join("a/a.txt").exists() && version.join("b/b.txt").exists());
        assert_eq!(stamp(), before);
        assert_eq!(records(&again), 0);
    }

    /// A format another job provides in the version stays that job's; the job's other
    /// formats are linked all the same.
    #[test]
    fn a_clashing_format_keeps_the_others_linked() {
        let repo = TestRepo::new();
        let (one, two) = (fixture::main_job("t", "one"), fixture::main_job("t", "two"));
        let everyone = Visibility::everything();
        fixture::upload(&repo, &one, "b", "x", b"1");
        repo.patch_metadata(&one, &product("1"), &everyone).unwrap();
        for f in ["a", "c"] {
            fixture::upload(&repo, &two, f, "x", b"2");
        }
        repo.patch_metadata(&two, &product("1"), &everyone).unwrap();
        // Uploaded after the metadata: not linked until the next write (spec/API.md Q17).
        fixture::upload(&repo, &two, "b", "x", b"2");
        let version = repo.products_dir(&two.tag.branch.scope).join("p/v/pb/1");
        repo.cleanup_product_tree(&two).unwrap();
        dead_record(&repo, &two);
        server(&repo);
        assert_eq!(fs::read(version.join("b/x")).unwrap(), b"1");
        assert_eq!(fs::read(version.join("a/x")).unwrap(), b"2");
        assert_eq!(fs::read(version.join("c/x")).unwrap(), b"2");
    }

    /// A record is leased before its job is written into it: until then it may be a
    /// writer's being made, never taken for a dead one.
    #[test]
    fn a_record_without_its_job_is_left_alone() {
        let repo = TestRepo::new();
        let record = repo.uploads_dir().join(format!("new.{KIND}"));
        fs::create_dir_all(&record).unwrap();
        repo.finish_relinks();
        assert!(record.is_dir());
    }

    #[test]
    fn a_live_writers_record_is_left_to_it() {
        let repo = TestRepo::new();
        let j = fixture::main_job("t", "j");
        fixture::upload(&repo, &j, "fmt", "a.txt", b"a");
        let record = repo.intend_relink(&j).unwrap();
        assert_eq!(read_record(&record.path), Some(j.clone()));
        repo.finish_relinks();
        assert!(
            record.path.join(JOB).exists(),
            "a held record is not touched"
        );
        drop(record);
        assert_eq!(
            records(&repo),
            0,
            "a record is removed when its writer is done"
        );
    }

    #[test]
    fn a_record_names_a_users_job_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let j = fixture::job(Scope::User(fixture::name("carol")), "b", "t", "j");
        write_record(dir.path(), &j).unwrap();
        assert_eq!(read_record(dir.path()), Some(j));
        fs::write(
            dir.path().join(JOB),
            r#"{"user": null, "branch": "..", "tag": "t", "job": "j"}"#,
        )
        .unwrap();
        assert_eq!(read_record(dir.path()), None);
    }
}
