//! User repository quotas: `users/{user}/.disk_usage` (spec/LAYOUT.md §6.4). The count is
//! read and written under a `flock` on the user directory, so several processes agree.
//!
//! The count is what a recount finds: the bytes of every regular file under `users/{user}/`,
//! dot-files included, each hard link in full, symlinks and directories nothing (walkdir
//! does not follow links; see `files::tree_bytes`). `.disk_usage` is one of those files,
//! so the number it holds includes its own length (see `with_own_length`). Every write
//! under `users/{user}/` changes the count together with the files, under that lock; a write
//! that would take the count past `DLREPO_USER_QUOTA` is refused before anything changes.

use super::files::{self, At, DirLock, Replace};
use super::{Repo, StoreError};
use crate::model::{Name, Scope};
use std::fs;
use std::path::{Path, PathBuf};

/// dlrepo's `human_readable`: decimal units, one decimal below 100 (`6.0`, `2.0K`, `10.7G`).
pub fn human_readable(n: u64) -> String {
    if n == 0 {
        return "0".into();
    }
    let mut value = n as f64;
    let mut unit = "";
    for u in ["K", "M", "G", "T"] {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    if value < 100.0 {
        format!("{value:.1}{unit}")
    } else {
        format!("{value:.0}{unit}")
    }
}

/// The count of a user repository whose other files hold `others` bytes: `.disk_usage`
/// holds it in decimal, so the count is the smallest `n` with `n = others + digits(n)`.
/// (One always exists: with `k` the digits of `others`, `n` has `k` or `k + 1` of them.)
pub(crate) fn with_own_length(others: u64) -> u64 {
    let digits = |n: u64| n.checked_ilog10().map_or(1, |l| u64::from(l) + 1);
    (1..=20)
        .map(|d| others.saturating_add(d))
        .find(|n| digits(*n) == n - others)
        .unwrap_or(u64::MAX)
}

/// Length of a regular file, 0 for anything else or nothing (a symlink counts nothing).
pub(crate) fn file_len(path: &Path) -> u64 {
    fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map_or(0, |m| m.len())
}

fn exceeded(user: &str, used: u64, quota: u64) -> StoreError {
    StoreError::bad(format!(
        "User {user} quota exceeded ({}/{}). Please make some ménage.",
        human_readable(used),
        human_readable(quota)
    ))
}

/// A user's usage, held with the user directory locked.
pub(crate) struct Usage {
    _lock: DirLock,
    user: String,
    path: PathBuf,
    /// Bytes of the user's files other than `.disk_usage` itself.
    others: u64,
    /// The number `.disk_usage` held when it was read.
    recorded: u64,
    quota: u64,
}

impl Usage {
    /// The count as `.disk_usage` will hold it.
    pub fn bytes(&self) -> u64 {
        with_own_length(self.others)
    }

    /// Accounts for a file of `old` bytes becoming `new` bytes (0 for none); refuses it,
    /// with dlrepo's message, when the count would grow past the quota. A change that does
    /// not grow the count always passes, so a user over the quota can still tidy up.
    pub fn charge(&mut self, old: u64, new: u64) -> Result<(), StoreError> {
        let after = self.others.saturating_sub(old).saturating_add(new);
        if after > self.others && with_own_length(after) > self.quota {
            return Err(exceeded(&self.user, self.bytes(), self.quota));
        }
        self.others = after;
        Ok(())
    }

    /// Accounts for a change already made, or one the server makes for itself (deletes,
    /// a post-process command's output, publish status lines): never refused.
    pub fn adjust(&mut self, old: u64, new: u64) {
        self.others = self.others.saturating_sub(old).saturating_add(new);
    }

    pub fn save(&self, repo: &Repo) -> Result<(), StoreError> {
        files::write_atomic(
            &repo.uploads_dir(),
            &self.path,
            self.bytes().to_string().as_bytes(),
        )
    }

    /// The count written and fsynced aside, for [`StagedCount::persist`] once the change it
    /// counts is made: what takes space is done before anything changes.
    pub fn staged(&self, repo: &Repo) -> Result<StagedCount, StoreError> {
        let tmp = files::TempFile::create(&repo.uploads_dir())?;
        tmp.fill(self.bytes().to_string().as_bytes())
            .at("write", &self.path)?;
        Ok(StagedCount {
            tmp,
            path: self.path.clone(),
        })
    }

    /// Saves the count together with the other files of `tx`, or not at all.
    pub fn stage(&self, tx: &mut Replace) -> Result<(), StoreError> {
        tx.write(&self.path, self.bytes().to_string().as_bytes())
    }
}

/// A user's count ready to replace `.disk_usage` (see [`Usage::staged`]).
pub(crate) struct StagedCount {
    tmp: files::TempFile,
    path: PathBuf,
}

impl StagedCount {
    pub fn persist(self) -> Result<(), StoreError> {
        self.tmp.persist(&self.path)
    }
}

/// A write into a user repository charged before it is made: the user's lock is held until
/// it is dropped, so the files and the count change together. Dropped unsaved (the write
/// failed), the count stays as it was.
pub(crate) struct Charged(Option<Usage>);

impl Charged {
    /// Saves the count with the write it was charged for (see [`Replace`]).
    pub fn stage(&self, tx: &mut Replace) -> Result<(), StoreError> {
        match &self.0 {
            Some(u) => u.stage(tx),
            None => Ok(()),
        }
    }
}

impl Repo {
    /// The locked usage of a user repository; `None` for the root repository.
    pub(crate) fn usage(&self, scope: &Scope) -> Result<Option<Usage>, StoreError> {
        let Scope::User(user) = scope else {
            return Ok(None);
        };
        let dir = self.scope_dir(scope);
        super::files::create_dirs(&dir)?;
        let lock = DirLock::acquire(&self.locks_dir(), &dir)?;
        let path = dir.join(".disk_usage");
        // Missing is zero. A read that fails is not: the count would restart from this
        // write's bytes alone. A stale handle (another host renamed it in) is looked up again.
        let raw = match super::files::retry_stale(|| fs::read(&path)) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(StoreError::at("read", &path, e)),
        };
        let recorded = std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Ok(Some(Usage {
            _lock: lock,
            user: user.to_string(),
            path,
            others: u64::saturating_sub(recorded, raw.len() as u64),
            recorded,
            quota: self.user_quota,
        }))
    }

    /// The user repository a path lies in, if any.
    fn user_scope_of(&self, path: &Path) -> Option<Scope> {
        path.strip_prefix(self.root.join("users"))
            .ok()?
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .and_then(|u| Name::parse(u).ok())
            .map(Scope::User)
    }

    /// The locked usage of the user repository holding `path`; `None` outside of one.
    pub(crate) fn usage_at(&self, path: &Path) -> Result<Option<Usage>, StoreError> {
        match self.user_scope_of(path) {
            Some(scope) => self.usage(&scope),
            None => Ok(None),
        }
    }

    /// Charges replacing the file at `path` with one of `len` bytes, before it is written.
    pub(crate) fn charge_file(&self, path: &Path, len: u64) -> Result<Charged, StoreError> {
        let mut usage = self.usage_at(path)?;
        if let Some(u) = usage.as_mut() {
            u.charge(file_len(path), len)?;
        }
        Ok(Charged(usage))
    }

    /// Replaces a dot-file atomically (see [`files::write_atomic`]), counted, and refused
    /// when it would take a user past the quota.
    pub(crate) fn write_counted(&self, path: &Path, data: &[u8]) -> Result<(), StoreError> {
        let charged = self.charge_file(path, data.len() as u64)?;
        match &charged.0 {
            Some(u) => self.write_with_count(path, data, u),
            None => files::write_atomic(&self.uploads_dir(), path, data),
        }
    }

    /// Replaces a file of a user repository and its count together, or neither (a full
    /// disk leaves both as they were).
    fn write_with_count(&self, path: &Path, data: &[u8], usage: &Usage) -> Result<(), StoreError> {
        let mut tx = Replace::new(&self.uploads_dir())?;
        tx.write(path, data)?;
        usage.stage(&mut tx)?;
        tx.commit()
    }

    /// The same for a file the server writes about its own work (the publish status): it
    /// is counted, but never refused, or the outcome of a publish could not be told.
    pub(crate) fn write_counted_unchecked(
        &self,
        path: &Path,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let mut usage = self.usage_at(path)?;
        let old = file_len(path);
        match usage.as_mut() {
            Some(u) => {
                u.adjust(old, data.len() as u64);
                self.write_with_count(path, data, u)
            }
            None => files::write_atomic(&self.uploads_dir(), path, data),
        }
    }

    /// Removes a dot-file (missing is fine), giving its bytes back.
    pub(crate) fn remove_counted(&self, path: &Path) -> Result<(), StoreError> {
        let mut usage = self.usage_at(path)?;
        let old = file_len(path);
        match usage.as_mut() {
            Some(u) if old > 0 => {
                u.adjust(old, 0);
                let count = u.staged(self)?;
                files::remove_flag(path).at("remove", path)?;
                count.persist()
            }
            _ => files::remove_flag(path).at("remove", path),
        }
    }

    /// What a user repository may still take, read without a lock and without creating
    /// anything: for refusing a write before any of its data is stored. The write itself
    /// charges again under the lock. `None` for the root repository.
    pub(crate) fn room(&self, scope: &Scope) -> Option<Room> {
        let Scope::User(user) = scope else {
            return None;
        };
        Some(Room {
            user: user.to_string(),
            used: self.recorded_usage(scope),
            quota: self.user_quota,
        })
    }

    /// What `.disk_usage` says, read without a lock (0 when missing or unreadable): for
    /// showing, and for refusals that are checked again under the lock.
    pub(crate) fn recorded_usage(&self, scope: &Scope) -> u64 {
        fs::read_to_string(self.scope_dir(scope).join(".disk_usage"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Compares a user's `.disk_usage` with a recount of the files, and with `fix` rewrites
    /// it from the recount when they differ (a full cleanup, `fsck --repair`). Returns
    /// `(recorded, on_disk)`: the number the file held and what the files hold (the file
    /// itself included, as it was then). `None` for the root repository.
    pub(crate) fn recount_usage(
        &self,
        scope: &Scope,
        fix: bool,
    ) -> Result<Option<(u64, u64)>, StoreError> {
        let Some(mut usage) = self.usage(scope)? else {
            return Ok(None);
        };
        let on_disk = files::tree_bytes(&self.scope_dir(scope));
        if fix && usage.recorded != on_disk {
            usage.others = on_disk.saturating_sub(file_len(&usage.path));
            usage.save(self)?;
        }
        Ok(Some((usage.recorded, on_disk)))
    }
}

/// A user's count as last saved, and the quota (see [`Repo::room`]).
pub(crate) struct Room {
    user: String,
    pub used: u64,
    quota: u64,
}

impl Room {
    /// What may still be added on top of `reserved`.
    pub fn left(&self, reserved: u64) -> u64 {
        self.quota
            .saturating_sub(self.used.saturating_add(reserved))
    }

    /// Whether `more` bytes on top of `reserved` (data held for the user elsewhere) fit.
    pub fn check(&self, reserved: u64, more: u64) -> Result<(), StoreError> {
        let after = self.used.saturating_add(reserved).saturating_add(more);
        if more > 0 && after > self.quota {
            return Err(exceeded(
                &self.user,
                self.used.saturating_add(reserved),
                self.quota,
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{human_readable, with_own_length};
    use crate::config::Config;
    use crate::model::{RelPath, Scope};
    use crate::storage::StoreError;
    use crate::storage::fixture::{self, TestRepo};

    fn user() -> Scope {
        Scope::User(fixture::name("u"))
    }

    fn repo(quota: u64) -> TestRepo {
        TestRepo::with(Config {
            user_quota: quota,
            ..Config::default()
        })
    }

    /// Links `data` as `{rel}` of the user's job `b/t/j`, format `f`.
    fn upload(repo: &TestRepo, rel: &str, data: &[u8]) -> Result<(), StoreError> {
        let job = fixture::job(user(), "b", "t", "j");
        let (_, digest) = repo.blob(data);
        let rel = RelPath::parse(rel).expect("path");
        repo.link_artifact(&fixture::format(&job, "f"), &rel, &digest)
    }

    /// The recorded count and a recount of the user's tree.
    fn counts(repo: &TestRepo) -> (u64, u64) {
        let (recorded, on_disk) = repo
            .recount_usage(&user(), false)
            .expect("recount")
            .expect("a user repository");
        assert_eq!(recorded, repo.recorded_usage(&user()));
        (recorded, on_disk)
    }

    #[test]
    fn the_root_repository_has_no_count() {
        let repo = repo(10);
        assert!(repo.usage(&Scope::Root).expect("usage").is_none());
        assert!(repo.room(&Scope::Root).is_none());
        assert_eq!(
            repo.recount_usage(&Scope::Root, true).expect("recount"),
            None
        );
    }

    #[test]
    fn the_count_follows_links_replacements_and_removals() {
        let repo = repo(1 << 20);
        upload(&repo, "a", b"aaaa").expect("a");
        upload(&repo, "dir/b", b"bb").expect("b");
        let (recorded, on_disk) = counts(&repo);
        assert_eq!(recorded, on_disk);
        // A replacement gives the old file's bytes back.
        upload(&repo, "a", b"a").expect("a again");
        assert_eq!(counts(&repo), (recorded - 3, recorded - 3));
        let fdir = repo.root.join("users/u/branches/b/t/j/f");
        repo.write_counted(&fdir.join("notes"), b"0123456789")
            .expect("write");
        let (recorded, on_disk) = counts(&repo);
        assert_eq!(recorded, on_disk);
        repo.remove_counted(&fdir.join("notes")).expect("remove");
        assert_eq!(counts(&repo), (recorded - 10, recorded - 10));
    }

    #[test]
    fn a_link_that_does_not_fit_is_refused_and_counts_nothing() {
        let repo = repo(300);
        upload(&repo, "a", &[b'a'; 100]).expect("fits");
        let before = counts(&repo);
        let e = upload(&repo, "b", &[b'b'; 250]).expect_err("over the quota");
        let StoreError::Refused(why) = e else {
            panic!("{e:?}")
        };
        assert!(
            why.starts_with("User u quota exceeded (") && why.ends_with("Please make some ménage."),
            "{why}"
        );
        assert_eq!(counts(&repo), before);
        // The room check before any body is read says the same.
        let room = repo.room(&user()).expect("a user");
        assert_eq!(room.used, before.0);
        assert!(room.check(0, 250).is_err());
        assert!(room.check(0, room.left(0)).is_ok());
        assert!(room.check(room.left(0), 1).is_err());
        // Shrinking is always allowed, even over the quota.
        let mut usage = repo.usage(&user()).expect("usage").expect("a user");
        assert!(usage.charge(0, 1 << 30).is_err());
        assert!(usage.charge(100, 0).is_ok());
    }

    #[test]
    fn a_wrong_count_is_fixed_by_a_recount() {
        let repo = repo(1 << 20);
        upload(&repo, "a", b"some bytes").expect("a");
        let (right, _) = counts(&repo);
        let path = repo.root.join("users/u/.disk_usage");
        std::fs::write(&path, b"5").expect("break the count");
        // What the recount finds holds the broken one-byte `.disk_usage`.
        let on_disk = right - right.to_string().len() as u64 + 1;
        assert_eq!(
            repo.recount_usage(&user(), true).expect("recount"),
            Some((5, on_disk))
        );
        assert_eq!(counts(&repo), (right, right));
    }

    #[test]
    fn sizes_read_like_dlrepo() {
        assert_eq!(human_readable(0), "0");
        assert_eq!(human_readable(6), "6.0");
        assert_eq!(human_readable(2000), "2.0K");
        assert_eq!(human_readable(10_737_418_240), "10.7G");
        assert_eq!(human_readable(123_456), "123K");
    }

    #[test]
    fn the_count_includes_its_own_file() {
        for others in (0..20_000).chain([u64::from(u32::MAX), 999_999_990, 99_999_999_999]) {
            let n = with_own_length(others);
            assert_eq!(n, others + n.to_string().len() as u64, "{others}");
        }
        assert_eq!(with_own_length(0), 1);
        assert_eq!(with_own_length(8), 9);
        // 9 + 1 = 10 has two digits: the count is 9 + 2.
        assert_eq!(with_own_length(9), 11);
        assert_eq!(with_own_length(996), 999);
        assert_eq!(with_own_length(997), 1001);
    }
}
