//! User repository quotas: `users/{user}/.disk_usage` (spec/LAYOUT.md §6.4). The count is
//! read and written under a `flock` on the user directory, so several processes agree.

use super::files::{self, DirLock};
use super::{Repo, StoreError};
use crate::model::Scope;
use std::fs;
use std::path::Path;

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

/// A user's usage, held with the user directory locked.
pub(crate) struct Usage {
    _lock: DirLock,
    user: String,
    path: std::path::PathBuf,
    pub bytes: u64,
    quota: u64,
}

impl Usage {
    /// Accounts for a file of `size` bytes replacing one of `replaced` bytes; refuses it
    /// (with dlrepo's message) when the quota would be exceeded.
    pub fn add(&mut self, replaced: u64, size: u64) -> Result<(), StoreError> {
        let after = self.bytes.saturating_sub(replaced) + size;
        if after > self.quota {
            return Err(StoreError::bad(format!(
                "User {} quota exceeded ({}/{}). Please make some ménage.",
                self.user,
                human_readable(self.bytes),
                human_readable(self.quota)
            )));
        }
        self.bytes = after;
        Ok(())
    }

    pub fn save(&self, repo: &Repo) -> Result<(), StoreError> {
        files::write_atomic(
            &repo.uploads_dir(),
            &self.path,
            self.bytes.to_string().as_bytes(),
        )
    }
}

impl Repo {
    /// The locked usage of a user repository; `None` for the root repository.
    pub(crate) fn usage(&self, scope: &Scope) -> Result<Option<Usage>, StoreError> {
        let Scope::User(user) = scope else {
            return Ok(None);
        };
        let dir = self.scope_dir(scope);
        fs::create_dir_all(&dir)?;
        let lock = DirLock::acquire(&dir)?;
        let path = dir.join(".disk_usage");
        let bytes = fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Ok(Some(Usage {
            _lock: lock,
            user: user.to_string(),
            path,
            bytes,
            quota: self.user_quota,
        }))
    }

    /// Subtracts what a tree about to be deleted holds from its user's usage, when it lies
    /// in a user repository (every file counts, dot-files included).
    pub(crate) fn release_usage(&self, tree: &Path) -> Result<(), StoreError> {
        let users = self.root.join("users");
        let Some(user) = tree
            .strip_prefix(&users)
            .ok()
            .and_then(|rest| rest.components().next())
            .and_then(|c| c.as_os_str().to_str())
            .and_then(|u| crate::model::Name::parse(u).ok())
        else {
            return Ok(());
        };
        let size = files::tree_bytes(tree);
        if let Some(mut usage) = self.usage(&Scope::User(user))? {
            usage.bytes = usage.bytes.saturating_sub(size);
            usage.save(self)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::human_readable;

    #[test]
    fn sizes_read_like_dlrepo() {
        assert_eq!(human_readable(0), "0");
        assert_eq!(human_readable(6), "6.0");
        assert_eq!(human_readable(2000), "2.0K");
        assert_eq!(human_readable(10_737_418_240), "10.7G");
        assert_eq!(human_readable(123_456), "123K");
    }
}
