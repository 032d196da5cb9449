//! The token directory `.tokens/` (arbor only; dlrepo ignores dot entries): one private file
//! per API token. What a token means is `auth::tokens`' business; this module keeps its files
//! crash-safe with the same staging as every other write of the tree.

use super::files::TempFile;
use std::fs::{DirBuilder, File};
use std::io::{self, Write as _};
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

/// The files of `.tokens/`, named by the caller (which validates names before they get here).
#[derive(Debug, Clone)]
pub struct TokenFiles {
    dir: PathBuf,
    uploads: PathBuf,
}

impl TokenFiles {
    /// The token directory of the data root `root`.
    pub fn in_root(root: &Path) -> TokenFiles {
        TokenFiles {
            dir: root.join(".tokens"),
            uploads: root.join(".uploads"),
        }
    }

    /// Replaces `name` with `data`: staged in `.uploads/`, fsynced, renamed, and the rename
    /// itself fsynced, since losing it in a crash would lose a token already handed out. The
    /// file stays 0600 (it holds a hash of the secret) in a 0700 directory.
    pub fn write(&self, name: &str, data: &[u8]) -> io::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let tmp = TempFile::create(&self.uploads).map_err(io::Error::other)?;
        (&tmp.file).write_all(data)?;
        tmp.file.sync_data()?;
        tmp.persist(&self.dir.join(name))
            .map_err(io::Error::other)?;
        File::open(&self.dir)?.sync_all()
    }

    /// The content of `name`; `None` when there is no such file.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn exists(&self, name: &str) -> io::Result<bool> {
        self.dir.join(name).try_exists()
    }

    /// Every file name in the directory, in no particular order; a missing directory has none.
    pub fn names(&self) -> io::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Deletes `name`; `false` when there was no such file.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        match std::fs::remove_file(self.dir.join(name)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}
